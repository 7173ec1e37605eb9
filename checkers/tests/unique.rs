//! The unique checker: docs/scenarios.md B5 (a create on an existing id succeeds) and ids handed
//! out twice.

mod stream_support;
use stream_support::{anomaly, check, outcome};

fn b5(second: &str) -> String {
    format!(
        r#"
        0 invoke create k=order-9
        1 invoke create k=order-9
        0 ok create k=order-9
        {second}
        "#
    )
}

#[test]
fn b5_concurrent_creates_of_one_id_succeed_at_most_once() {
    let r = check("unique", &[], &b5("1 ok create k=order-9"));
    assert_eq!(outcome(&r), "invalid duplicate-create");
    assert_eq!(anomaly(&r, "duplicate-create").ops, [0, 1, 2, 3]);
    assert_eq!(
        outcome(&check(
            "unique",
            &[],
            &b5("1 fail create k=order-9 e=exists")
        )),
        "valid"
    );
    // An indeterminate create proves nothing.
    assert_eq!(
        outcome(&check("unique", &[], &b5("1 info create k=order-9"))),
        "valid"
    );
}

#[test]
fn ids_may_come_in_the_value_and_generated_ids_must_differ() {
    let fixture = |second: &str| {
        format!(
            "0 invoke create {{\"id\":5}}\n0 ok create\n1 invoke create \"5\"\n1 fail create\n2 invoke generate\n2 ok generate 17\n3 invoke generate\n3 ok generate {second}"
        )
    };
    assert_eq!(outcome(&check("unique", &[], &fixture("18"))), "valid");
    let r = check("unique", &[], &fixture("{\"id\":17}"));
    assert_eq!(outcome(&r), "invalid duplicate-id");
    assert_eq!(anomaly(&r, "duplicate-id").ops, [4, 5, 6, 7]);
}

#[test]
fn a_history_without_creates_is_unknown() {
    assert_eq!(
        outcome(&check("unique", &[], "0 invoke read\n0 ok read")),
        "unknown"
    );
}
