//! The counter checker: every read lies between what the acknowledged adds force and what the
//! possibly-applied adds allow, with concurrency taken into account.

mod stream_support;
use serde_json::json;
use stream_support::{anomaly, check, outcome};

fn counter(opts: &[(&str, &str)], fixture: &str) -> String {
    outcome(&check("counter", opts, fixture))
}

/// add 2 acknowledged before the read; add 3 concurrent with it (and then indeterminate).
fn reading(second: &str, value: i64) -> String {
    format!("0 invoke add 2\n0 ok add\n1 invoke add 3\n2 invoke read\n2 ok read {value}\n{second}")
}

#[test]
fn reads_lie_between_acknowledged_and_possible_increments() {
    for v in [2, 5] {
        assert_eq!(
            counter(&[], &reading("1 info add e=timed-out", v)),
            "valid",
            "read {v}"
        );
    }
    let r = check("counter", &[], &reading("1 info add e=timed-out", 6));
    assert_eq!(outcome(&r), "invalid out-of-bounds");
    let a = anomaly(&r, "out-of-bounds");
    assert_eq!(a.ops, [3, 4]);
    assert_eq!(
        (a.data["lower"].clone(), a.data["upper"].clone()),
        (json!(2), json!(5))
    );
    assert_eq!(
        counter(&[], &reading("1 info add", 1)),
        "invalid out-of-bounds"
    );
    // A failed add never applied; one still running at the end may have.
    assert_eq!(counter(&[], &reading("", 5)), "valid");
    let failed_first =
        "0 invoke add 2\n0 ok add\n1 invoke add 3\n1 fail add\n2 invoke read\n2 ok read 5";
    assert_eq!(counter(&[], failed_first), "invalid out-of-bounds");
}

#[test]
fn negative_deltas_initial_values_and_separate_keys() {
    let fixture = "0 invoke add -4\n1 invoke read k=x\n1 ok read k=x 10\n2 invoke read\n2 ok read VALUE\n0 ok add";
    for (v, want) in [
        (10, "valid"),
        (6, "valid"),
        (5, "invalid out-of-bounds"),
        (11, "invalid out-of-bounds"),
    ] {
        let f = fixture.replace("VALUE", &v.to_string());
        assert_eq!(counter(&[("initial", "10")], &f), want, "read {v}");
    }
    let err = checkers::by_name(
        "counter",
        &stream_support::options(&[("initial", "\"ten\"")]),
    )
    .err()
    .unwrap();
    assert!(err.contains("expected an integer"), "{err}");
}

#[test]
fn adds_without_reads_are_unknown() {
    assert_eq!(counter(&[], "0 invoke add 1\n0 ok add"), "unknown");
}
