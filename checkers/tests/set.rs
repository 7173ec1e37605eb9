//! The set checker: docs/scenarios.md I2 (no duplicate members, final count exact), plus lost,
//! stale, unexpected and never-read elements.

mod stream_support;
use stream_support::{anomaly, check, outcome};

fn set(opts: &[(&str, &str)], fixture: &str) -> String {
    outcome(&check("set", opts, fixture))
}

fn i2(read: &str) -> String {
    format!(
        r#"
        # concurrent requests adding the same members
        0 invoke add k=team "alice"
        1 invoke add k=team "alice"
        2 invoke add k=team "bob"
        0 ok add k=team
        1 ok add k=team
        2 ok add k=team
        3 invoke read k=team
        3 ok read k=team {read}
        "#
    )
}

#[test]
fn i2_concurrent_adds_of_the_same_members_leave_each_member_once() {
    assert_eq!(set(&[], &i2(r#"["alice","bob"]"#)), "valid");
    let r = check("set", &[], &i2(r#"["alice","bob","alice"]"#));
    assert_eq!(outcome(&r), "invalid duplicate");
    assert_eq!(anomaly(&r, "duplicate").ops, [6, 7]);
    let r = check("set", &[], &i2(r#"["alice"]"#));
    assert_eq!(outcome(&r), "invalid lost");
    assert_eq!(anomaly(&r, "lost").ops, [2, 5, 6, 7]);
    assert_eq!(
        set(&[], &i2(r#"["alice","bob","carol"]"#)),
        "invalid unexpected"
    );
}

const STALE: &str = r#"
    0 invoke add 1
    0 ok add
    1 invoke read
    1 ok read []
    1 invoke read
    1 ok read [1]
"#;

#[test]
fn stale_reads_count_only_when_reads_are_linearizable() {
    let r = check("set", &[], STALE);
    assert_eq!(outcome(&r), "valid | reported stale");
    assert_eq!(anomaly(&r, "stale").ops, [0, 1, 2, 3]);
    assert!(
        r.summary.contains("use --guarantee linearizable"),
        "{}",
        r.summary
    );
    assert_eq!(
        set(&[("guarantee", "linearizable")], STALE),
        "invalid stale"
    );
    // A read concurrent with the add may miss it.
    let concurrent =
        "0 invoke add 1\n1 invoke read\n1 ok read []\n0 ok add\n1 invoke read\n1 ok read [1]";
    assert_eq!(set(&[("guarantee", "linearizable")], concurrent), "valid");
}

#[test]
fn indeterminate_failed_and_late_adds() {
    let fixture = |second: &str, read: &str| {
        format!(
            "0 invoke add 1\n0 ok add\n1 invoke add 2\n{second}\n2 invoke read\n2 ok read {read}"
        )
    };
    assert_eq!(set(&[], &fixture("1 info add", "[1]")), "valid");
    assert_eq!(
        set(&[], &fixture("1 info add", "[1,2]")),
        "valid | reported recovered"
    );
    assert_eq!(
        set(&[], &fixture("1 fail add", "[1,2]")),
        "invalid failed-but-read"
    );
    let late = "0 invoke add 1\n1 invoke read\n0 ok add\n1 ok read []";
    assert_eq!(set(&[], late), "valid | reported never-read");
}

#[test]
fn acknowledged_adds_without_a_read_are_unknown() {
    let r = check("set", &[], "0 invoke add 1\n0 ok add");
    assert_eq!(outcome(&r), "unknown");
    assert!(r.unknown_reason.unwrap().contains("no ok read"));
    let err = checkers::by_name(
        "set",
        &stream_support::options(&[("guarantee", "exactly-once")]),
    )
    .err()
    .unwrap();
    assert!(err.contains("expected eventual"), "{err}");
}
