//! The bank checker: every read sees the conserved total, taken from --initial or else from
//! the first read.

mod stream_support;
use stream_support::{anomaly, check, outcome};

fn reads(second: &str) -> String {
    format!(
        r#"
        0 invoke transfer {{"from":"a","to":"b","amount":5}}
        1 invoke read
        0 ok transfer
        1 ok read {{"a":5,"b":15}}
        1 invoke read
        1 ok read {second}
        "#
    )
}

#[test]
fn every_read_sums_to_the_total() {
    let initial = &[("initial", r#"{"a":10,"b":10}"#)];
    assert_eq!(
        outcome(&check("bank", initial, &reads(r#"{"a":5,"b":15}"#))),
        "valid"
    );
    let r = check("bank", initial, &reads(r#"{"a":0,"b":15}"#));
    assert_eq!(outcome(&r), "invalid wrong-total");
    assert_eq!(anomaly(&r, "wrong-total").ops, [4, 5]);
    assert_eq!(
        outcome(&check(
            "bank",
            &[("initial", "21")],
            &reads(r#"{"a":5,"b":15}"#)
        )),
        "invalid wrong-total"
    );
}

#[test]
fn without_initial_the_first_read_sets_the_total_and_says_so() {
    let r = check("bank", &[], &reads(r#"{"a":0,"b":15}"#));
    assert_eq!(outcome(&r), "invalid wrong-total");
    assert!(
        r.summary
            .contains("total 20, from the sum of the first ok read (event 3)"),
        "{}",
        r.summary
    );
    assert_eq!(
        outcome(&check("bank", &[], "0 invoke read\n0 fail read")),
        "unknown"
    );
    let err = checkers::by_name("bank", &stream_support::options(&[("initial", "[1]")]))
        .err()
        .unwrap();
    assert!(
        err.contains("expected an integer total or an object"),
        "{err}"
    );
}
