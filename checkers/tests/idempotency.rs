//! The idempotency checker: docs/scenarios.md I1 (identical requests with one idempotency key: one
//! effect, equal responses) and I4 (concurrent "leave" commands: one state change).

mod stream_support;
use stream_support::{anomaly, check, check_err, outcome};

fn idem(fixture: &str) -> String {
    outcome(&check("idempotency", &[], fixture))
}

fn i1(second_response: &str, effects: u64) -> String {
    format!(
        r#"
        0 invoke request k=idem-1 {{"amount":5}}
        1 invoke request k=idem-1 {{"amount":5}}
        0 ok request k=idem-1 {{"payment":"p1","amount":5}}
        1 ok request k=idem-1 {second_response}
        2 invoke effects k=idem-1
        2 ok effects k=idem-1 {effects}
        "#
    )
}

#[test]
fn i1_identical_requests_have_one_effect_and_equal_responses() {
    assert_eq!(idem(&i1(r#"{"amount":5,"payment":"p1"}"#, 1)), "valid");
    let r = check("idempotency", &[], &i1(r#"{"payment":"p2","amount":5}"#, 2));
    assert_eq!(outcome(&r), "invalid different-responses,multiple-effects");
    assert_eq!(anomaly(&r, "different-responses").ops, [1, 2, 3]);
    assert_eq!(anomaly(&r, "multiple-effects").ops, [4, 5]);
    assert_eq!(
        idem(&i1(r#"{"payment":"p1","amount":5}"#, 0)),
        "invalid missing-effect"
    );
}

fn i4(effects: &str) -> String {
    format!(
        r#"
        0 invoke command k=leave:m7
        1 invoke command k=leave:m7
        0 ok command k=leave:m7 {{"left":true}}
        1 ok command k=leave:m7 {{"left":false}}
        2 invoke effects
        2 ok effects {effects}
        "#
    )
}

#[test]
fn i4_concurrent_leaves_change_state_once_whatever_they_answer() {
    assert_eq!(idem(&i4(r#"{"leave:m7":1}"#)), "valid");
    assert_eq!(idem(&i4(r#"{"leave:m7":2}"#)), "invalid multiple-effects");
}

#[test]
fn effects_must_match_what_the_requests_did() {
    // Every request refused, yet an effect.
    let refused =
        "0 invoke request k=a\n0 fail request k=a\n1 invoke effects k=a\n1 ok effects k=a 1";
    assert_eq!(idem(refused), "invalid unexpected-effect");
    // An indeterminate request may or may not have had its effect.
    for n in [0, 1] {
        let info = format!(
            "0 invoke request k=a\n0 info request k=a\n1 invoke effects k=a\n1 ok effects k=a {n}"
        );
        assert_eq!(idem(&info), "valid");
    }
    // A read concurrent with the only request may see nothing yet.
    let early =
        "0 invoke request k=a\n1 invoke effects k=a\n1 ok effects k=a 0\n0 ok request k=a 1";
    assert_eq!(idem(early), "valid");
}

#[test]
fn without_an_effects_read_one_effect_cannot_be_told_from_two() {
    let r = check(
        "idempotency",
        &[],
        "0 invoke request k=a\n0 ok request k=a 1",
    );
    assert_eq!(outcome(&r), "unknown");
    assert!(r
        .unknown_reason
        .unwrap()
        .contains("1 key never had an ok effects read"));
    let err = check_err("idempotency", &[], "0 invoke request\n0 ok request");
    assert!(
        err.starts_with("line 1: invoke \"request\" has no key"),
        "{err}"
    );
}
