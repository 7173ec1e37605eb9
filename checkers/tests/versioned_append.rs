//! The versioned-append checker: docs/scenarios.md I6 (racing commits at one expected version:
//! exactly one success, the rest conflict; stream gap- and duplicate-free).

mod stream_support;
use stream_support::{anomaly, check, outcome};

fn va(fixture: &str) -> String {
    outcome(&check("versioned-append", &[], fixture))
}

fn i6(racer: &str, read: &str) -> String {
    format!(
        r#"
        0 invoke append k=s {{"expected":0,"event":"e1"}}
        1 invoke append k=s {{"expected":0,"event":"e2"}}
        0 ok append k=s
        {racer}
        2 invoke append k=s {{"expected":1,"event":"e3"}}
        2 ok append k=s
        3 invoke read k=s
        3 ok read k=s {read}
        "#
    )
}

#[test]
fn i6_racing_appends_at_one_version_have_one_winner() {
    let conflict = "1 fail append k=s e=wrong-expected-version";
    assert_eq!(va(&i6(conflict, r#"["e1","e3"]"#)), "valid");
    let r = check(
        "versioned-append",
        &[],
        &i6("1 ok append k=s", r#"["e1","e3"]"#),
    );
    assert_eq!(outcome(&r), "invalid lost-append,multiple-winners");
    assert_eq!(anomaly(&r, "multiple-winners").ops, [1, 2, 3]);
    assert_eq!(anomaly(&r, "lost-append").ops, [1, 3, 6, 7]);
}

#[test]
fn i6_the_final_stream_is_gap_and_duplicate_free() {
    let conflict = "1 fail append k=s e=wrong-expected-version";
    assert_eq!(
        va(&i6(conflict, r#"["e1","e3","e3"]"#)),
        "invalid duplicate-in-stream"
    );
    assert_eq!(
        va(&i6(
            conflict,
            r#"[{"version":1,"event":"e1"},{"version":3,"event":"e3"}]"#
        )),
        "invalid gap,misplaced"
    );
    assert_eq!(va(&i6(conflict, r#"["e3","e1"]"#)), "invalid misplaced");
    assert_eq!(
        va(&i6(conflict, r#"["e1","e3","e9"]"#)),
        "invalid unexpected"
    );
    assert_eq!(
        va(&i6(conflict, r#"["e1","e3","e2"]"#)),
        "invalid failed-but-appended"
    );
    assert_eq!(va(&i6("1 info append k=s", r#"["e1","e3"]"#)), "valid");
}

#[test]
fn idempotent_retries_of_one_event_are_one_winner() {
    let retry = r#"
        0 invoke append k=s {"expected":0,"event":"e1"}
        0 info append k=s e=timed-out
        1 invoke append k=s {"expected":0,"event":"e1"}
        1 ok append k=s
        2 invoke append k=s {"expected":0,"event":"e1"}
        2 ok append k=s
        3 invoke read k=s
        3 ok read k=s ["e1"]
    "#;
    assert_eq!(va(retry), "valid");
}

#[test]
fn appends_completing_after_the_final_read_began_are_not_judged_and_no_read_is_unknown() {
    let late = r#"
        0 invoke append k=s {"expected":0,"event":"e1"}
        1 invoke read k=s
        0 ok append k=s
        1 ok read k=s []
    "#;
    let r = check("versioned-append", &[], late);
    assert_eq!(outcome(&r), "valid");
    assert_eq!(r.details["not_checked"], 1);
    let r = check(
        "versioned-append",
        &[],
        "0 invoke append k=s {\"expected\":0,\"event\":1}\n0 ok append k=s",
    );
    assert_eq!(outcome(&r), "unknown");
}
