//! The rw-register checker: what can be inferred from registers (docs: checkers::txn::rw_register)
//! and flagged, one fixture per anomaly, clean histories, indeterminate transactions. Several
//! fixtures are the shapes of Elle's test cases (jepsen-io/elle, test/elle/rw_register_test.clj),
//! written anew.

mod txn_support;

use checkers::Verdict::{Invalid, Valid};
use txn_support::{check, kinds, serial, strongest, verdicts};

const RW: &str = "rw-register";

#[test]
fn a_serial_history_satisfies_every_model() {
    let h = serial(&[
        "ok [[:w :x 1] [:w :y 1]]",
        "ok [[:r :x 1] [:w :x 2]]",
        "fail [[:w :x 3]]",
        "ok [[:r :x 2] [:r :y 1]]",
    ]);
    let r = check(RW, "strict-serializable", &h);
    assert_eq!(r.verdict, Valid, "{}", r.summary);
    assert!(r.anomalies.is_empty());
    assert_eq!(strongest(&r), ["strict-serializable"]);
}

#[test]
fn g1a_aborted_read() {
    let h = serial(&["fail [[:w :x 1]]", "ok [[:r :x 1]]"]);
    let r = check(RW, "read-committed", &h);
    assert_eq!((r.verdict, kinds(&r)), (Invalid, vec!["G1a".to_string()]));
}

#[test]
fn g1b_intermediate_read() {
    let h = serial(&["ok [[:w :x 1] [:w :x 2]]", "ok [[:r :x 1]]"]);
    let r = check(RW, "read-committed", &h);
    assert_eq!((r.verdict, kinds(&r)), (Invalid, vec!["G1b".to_string()]));
}

#[test]
fn g1c_each_reads_the_others_write() {
    let h = serial(&["ok [[:w :x 1] [:r :y 1]]", "ok [[:w :y 1] [:r :x 1]]"]);
    let r = check(RW, "read-committed", &h);
    assert_eq!((r.verdict, kinds(&r)), (Invalid, vec!["G1c".to_string()]));
}

#[test]
fn g_single_read_skew() {
    // T2 sees T1's write of x, and y still in its initial state.
    let h = serial(&["ok [[:w :x 1] [:w :y 1]]", "ok [[:r :x 1] [:r :y nil]]"]);
    let r = check(RW, "snapshot-isolation", &h);
    assert_eq!(kinds(&r), ["G-single"]);
    assert_eq!(strongest(&r), ["read-committed"]);
    let text = &r.anomalies[0].explanation;
    assert!(
        text.contains("read key y as nil (its initial state), without 1, which T1 wrote"),
        "{text}"
    );
}

#[test]
fn g2_item_write_skew_passes_snapshot_isolation() {
    let h = serial(&["ok [[:r :x nil] [:w :y 1]]", "ok [[:r :y nil] [:w :x 1]]"]);
    let r = check(RW, "serializable", &h);
    assert_eq!(kinds(&r), ["G2-item"]);
    assert_eq!(strongest(&r), ["snapshot-isolation"]);
    verdicts(
        RW,
        &h,
        &[
            ("read-committed", Valid),
            ("repeatable-read", Invalid),
            ("snapshot-isolation", Valid),
            ("serializable", Invalid),
        ],
    );
}

#[test]
fn lost_update() {
    let h = serial(&["ok [[:r :x nil] [:w :x 1]]", "ok [[:r :x nil] [:w :x 2]]"]);
    let r = check(RW, "snapshot-isolation", &h);
    assert_eq!(r.verdict, Invalid);
    assert!(
        kinds(&r).contains(&"lost-update".to_string()),
        "{:?}",
        kinds(&r)
    );
    assert_eq!(check(RW, "read-committed", &h).verdict, Valid);
}

#[test]
fn internal_inconsistency_and_garbage() {
    let h = serial(&["ok [[:w :x 1] [:r :x 2]]", "ok [[:w :x 2]]"]);
    assert!(kinds(&check(RW, "read-committed", &h)).contains(&"internal".to_string()));
    let h = serial(&["ok [[:r :x 9]]"]);
    assert_eq!(kinds(&check(RW, "read-committed", &h)), ["garbage-read"]);
    let h = serial(&["ok [[:r :x nil] [:r :x nil] [:w :x 1] [:r :x 1]]"]);
    assert_eq!(check(RW, "strict-serializable", &h).verdict, Valid);
}

#[test]
fn a_stale_read_breaks_strict_serializability_only() {
    let h = serial(&["ok [[:w :x 1]]", "ok [[:r :x nil]]"]);
    let r = check(RW, "strict-serializable", &h);
    assert_eq!(kinds(&r), ["G-single-realtime"]);
    assert_eq!(strongest(&r), ["serializable"]);
}

#[test]
fn an_indeterminate_write_proves_nothing_unless_it_was_read() {
    let h = serial(&["info [[:w :x 1] [:w :y 1]]", "ok [[:r :x nil] [:r :y nil]]"]);
    assert_eq!(check(RW, "strict-serializable", &h).verdict, Valid);
    let h = serial(&["info [[:w :x 1] [:w :y 1]]", "ok [[:r :x 1] [:r :y nil]]"]);
    assert_eq!(kinds(&check(RW, "serializable", &h)), ["G-single"]);
}

#[test]
fn nothing_is_assumed_about_the_order_of_two_writes() {
    // Without writes-follow-reads (an assumption Elle makes only on request), T2's overwrite of
    // T1's value orders nothing, and this history is fine.
    let h = serial(&[
        "ok [[:w :x 1]]",
        "ok [[:r :x 1] [:w :x 2]]",
        "ok [[:r :x 2]]",
    ]);
    assert_eq!(check(RW, "strict-serializable", &h).verdict, Valid);
}

#[test]
fn a_second_read_showing_a_new_value_is_allowed_by_read_committed_only() {
    let h = log_of(&[
        "0 :invoke :txn [[:r :x nil] [:r :x nil]]",
        "1 :invoke :txn [[:w :x 1]]",
        "1 :ok :txn [[:w :x 1]]",
        "0 :ok :txn [[:r :x nil] [:r :x 1]]",
    ]);
    let r = check(RW, "read-committed", &h);
    assert_eq!(r.verdict, Valid, "{}", r.summary);
    assert!(kinds(&r).contains(&"nonrepeatable-read".to_string()));
    assert_eq!(check(RW, "snapshot-isolation", &h).verdict, Invalid);
}

fn log_of(lines: &[&str]) -> checkers::History {
    txn_support::log(&lines.join("\n"))
}
