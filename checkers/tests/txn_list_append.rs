//! The list-append checker: one fixture per anomaly it must flag (with that kind), clean
//! histories that pass under every model, indeterminate transactions, and the three input formats.
//! Several fixtures are the shapes of Elle's own test cases (jepsen-io/elle,
//! test/elle/list_append_test.clj), written anew.

mod txn_support;

use checkers::formats::read_str;
use checkers::Verdict::{Invalid, Valid};
use txn_support::{check, kinds, log, serial, strongest, verdicts};

const LA: &str = "list-append";

#[test]
fn a_serial_history_satisfies_every_model() {
    let h = serial(&[
        "ok [[:append :x 1] [:append :y 1]]",
        "ok [[:r :x [1]] [:append :x 2]]",
        "ok [[:r :x [1 2]] [:r :y [1]]]",
        "fail [[:append :x 9]]",
        "ok [[:r :x [1 2]]]",
    ]);
    for model in [
        "read-committed",
        "snapshot-isolation",
        "strict-serializable",
    ] {
        let r = check(LA, model, &h);
        assert_eq!(r.verdict, Valid, "{model}: {}", r.summary);
        assert!(r.anomalies.is_empty());
        assert_eq!(strongest(&r), ["strict-serializable"]);
    }
}

#[test]
fn g0_write_cycle_is_flagged_even_under_read_committed() {
    // x shows T1's append before T2's; y shows T2's before T1's.
    let h = serial(&[
        "ok [[:append :x 1] [:append :y 1]]",
        "ok [[:append :x 2] [:append :y 2]]",
        "ok [[:r :x [1 2]] [:r :y [2 1]]]",
    ]);
    let r = check(LA, "read-committed", &h);
    assert_eq!(r.verdict, Invalid);
    assert_eq!(kinds(&r), ["G0"]);
    assert!(strongest(&r).is_empty());
    let a = &r.anomalies[0];
    assert_eq!(a.data["steps"].as_array().unwrap().len(), 2);
    assert!(
        a.explanation
            .contains("appended 1 to key x and T2 appended 2 right after it"),
        "{}",
        a.explanation
    );
}

#[test]
fn g1a_aborted_read() {
    let h = serial(&["fail [[:append :x 1]]", "ok [[:r :x [1]]]"]);
    let r = check(LA, "read-committed", &h);
    assert_eq!(r.verdict, Invalid);
    assert_eq!(kinds(&r), ["G1a"]);
    assert!(r.anomalies[0].explanation.contains("which failed"));
}

#[test]
fn g1b_intermediate_read_is_also_a_g_single() {
    // T2 sees T1's first append to x but not its second: intermediate (G1b), and T2 both
    // follows T1 (wr) and precedes it (rw), which is G-single.
    let h = serial(&["ok [[:append :x 1] [:append :x 2]]", "ok [[:r :x [1]]]"]);
    let r = check(LA, "read-committed", &h);
    assert_eq!(r.verdict, Invalid);
    assert_eq!(kinds(&r), ["G-single", "G1b"]);
}

#[test]
fn g1c_cyclic_information_flow() {
    // T1 appends x before T2 (the final read orders them), yet T1 read T2's append to y.
    let h = serial(&[
        "ok [[:append :x 1] [:r :y [1]]]",
        "ok [[:append :x 2] [:append :y 1]]",
        "ok [[:r :x [1 2]]]",
    ]);
    let r = check(LA, "read-committed", &h);
    assert_eq!(r.verdict, Invalid);
    assert_eq!(kinds(&r), ["G1c"]);
    let text = &r.anomalies[0].explanation;
    assert!(text.contains("(wr)") && text.contains("(ww)"), "{text}");
}

#[test]
fn g_single_read_skew_passes_read_committed_only() {
    // T2 sees T1's append to x but not the one to y.
    let h = serial(&[
        "ok [[:append :x 1] [:append :y 1]]",
        "ok [[:r :x [1]] [:r :y nil]]",
    ]);
    let r = check(LA, "snapshot-isolation", &h);
    assert_eq!(kinds(&r), ["G-single"]);
    assert_eq!(strongest(&r), ["read-committed"]);
    verdicts(
        LA,
        &h,
        &[
            ("read-committed", Valid),
            ("repeatable-read", Invalid),
            ("snapshot-isolation", Invalid),
            ("serializable", Invalid),
        ],
    );
    let text = &r.anomalies[0].explanation;
    assert!(
        text.contains("T2 read key y empty, without 1, which T1 appended"),
        "{text}"
    );
}

#[test]
fn g2_item_write_skew_passes_snapshot_isolation() {
    // Each reads the key the other appends to, and misses it (the shape of Elle's
    // repeatable-read-test).
    let h = serial(&[
        "ok [[:r :x nil] [:append :y 1]]",
        "ok [[:r :y nil] [:append :x 1]]",
        "ok [[:r :x [1]] [:r :y [1]]]",
    ]);
    let r = check(LA, "serializable", &h);
    assert_eq!(kinds(&r), ["G2-item"]);
    assert_eq!(strongest(&r), ["snapshot-isolation"]);
    verdicts(
        LA,
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
fn g_nonadjacent_breaks_snapshot_isolation() {
    // wr rw wr rw around four transactions (Elle's G-nonadjacent-test): no two rw adjacent.
    let h = serial(&[
        "ok [[:append :x 1]]",
        "ok [[:r :x [1]] [:r :y nil]]",
        "ok [[:append :y 1]]",
        "ok [[:r :y [1]] [:r :x nil]]",
    ]);
    let r = check(LA, "snapshot-isolation", &h);
    assert_eq!(kinds(&r), ["G-nonadjacent"]);
    assert_eq!(r.verdict, Invalid);
    assert_eq!(r.anomalies[0].data["cycle"].as_array().unwrap().len(), 4);
    assert_eq!(strongest(&r), ["read-committed"]);
}

#[test]
fn adjacent_rw_edges_are_g2_item_and_pass_snapshot_isolation() {
    // rw rw wr: T1 misses T2's append, T2 misses T3's, T3 is read by T1.
    let h = serial(&[
        "ok [[:r :x nil] [:r :z [1]]]",
        "ok [[:append :x 1] [:r :y nil]]",
        "ok [[:append :y 1] [:append :z 1]]",
        "ok [[:r :x [1]] [:r :y [1]]]",
    ]);
    let r = check(LA, "snapshot-isolation", &h);
    assert_eq!(r.verdict, Valid, "{}", r.summary);
    assert_eq!(kinds(&r), ["G2-item"]);
    assert_eq!(check(LA, "serializable", &h).verdict, Invalid);
}

#[test]
fn a_chain_of_rw_edges_without_a_cycle_is_serializable() {
    // Elle's counterexample to G-nonadjacent (rw rw wr rw wr): the edges do not close a cycle.
    let h = serial(&[
        "ok [[:r :x [5]] [:append :y 1]]",
        "ok [[:r :y nil] [:append :z 2]]",
        "ok [[:r :z nil] [:append :t 3]]",
        "ok [[:r :t [3]] [:append :u 4]]",
        "ok [[:r :u nil] [:append :x 5]]",
        "ok [[:r :y [1]] [:r :z [2]] [:r :u [4]]]",
    ]);
    let r = check(LA, "serializable", &h);
    assert_eq!(r.verdict, Valid, "{}", r.summary);
    // Run one after another, T1 read what T5 appended later: that is a real-time anomaly only.
    assert_eq!(strongest(&r), ["serializable"]);
}

#[test]
fn lost_update_counts_from_repeatable_read_up() {
    // Both read [0] and both append (Elle's lost-update-test).
    let h = serial(&[
        "ok [[:append :x 0]]",
        "ok [[:r :x [0]] [:append :x 1]]",
        "ok [[:r :x [0]] [:append :x 2]]",
    ]);
    let r = check(LA, "snapshot-isolation", &h);
    assert_eq!(kinds(&r), ["G2-item", "lost-update"]);
    verdicts(
        LA,
        &h,
        &[
            ("read-committed", Valid),
            ("repeatable-read", Invalid),
            ("snapshot-isolation", Invalid),
        ],
    );
    // One transaction appending twice over its own read is no lost update.
    let h = serial(&[
        "ok [[:r :x nil] [:append :x 1] [:append :x 2]]",
        "ok [[:r :x [1 2]]]",
    ]);
    assert_eq!(check(LA, "strict-serializable", &h).verdict, Valid);
}

#[test]
fn internal_inconsistency() {
    let h = serial(&["ok [[:append :x 1] [:r :x nil]]"]);
    let r = check(LA, "read-committed", &h);
    assert_eq!(kinds(&r), ["internal"]);
    assert_eq!(r.verdict, Invalid);
    // Reading its own appends after an earlier read is consistent.
    let h = serial(&["ok [[:r :x nil] [:append :x 1] [:r :x [1]]]"]);
    assert_eq!(check(LA, "strict-serializable", &h).verdict, Valid);
}

#[test]
fn duplicate_elements_and_incompatible_orders() {
    let h = serial(&["ok [[:append :x 1]]", "ok [[:r :x [1 1]]]"]);
    assert!(kinds(&check(LA, "read-committed", &h)).contains(&"duplicate-elements".to_string()));
    let h = serial(&[
        "ok [[:append :x 1]]",
        "ok [[:append :x 2]]",
        "ok [[:r :x [1 2]]]",
        "ok [[:r :x [2 1]]]",
    ]);
    let r = check(LA, "read-committed", &h);
    assert!(
        kinds(&r).contains(&"incompatible-order".to_string()),
        "{:?}",
        kinds(&r)
    );
    assert_eq!(r.verdict, Invalid);
}

#[test]
fn garbage_read() {
    let h = serial(&["ok [[:r :x [7]]]"]);
    assert_eq!(kinds(&check(LA, "read-committed", &h)), ["garbage-read"]);
}

#[test]
fn a_stale_read_breaks_strict_serializability_only() {
    // T2 starts after T1 completed, yet misses T1's append: fine for serializability (T2 can
    // be ordered first), not in real time.
    let h = serial(&["ok [[:append :x 1]]", "ok [[:r :x nil]]"]);
    let r = check(LA, "strict-serializable", &h);
    assert_eq!(kinds(&r), ["G-single-realtime"]);
    assert_eq!(strongest(&r), ["serializable"]);
    assert!(
        r.anomalies[0]
            .explanation
            .contains("completed (event 1) before T2 was invoked (event 2)"),
        "{}",
        r.anomalies[0].explanation
    );
    verdicts(
        LA,
        &h,
        &[("serializable", Valid), ("strict-serializable", Invalid)],
    );
    // Concurrent, the same reads are fine in real time too.
    let h = log("0 :invoke :txn [[:append :x 1]]\n1 :invoke :txn [[:r :x nil]]\n0 :ok :txn [[:append :x 1]]\n1 :ok :txn [[:r :x nil]]");
    assert_eq!(check(LA, "strict-serializable", &h).verdict, Valid);
}

#[test]
fn an_indeterminate_transaction_proves_nothing_unless_it_was_seen() {
    // Never seen: its appends may not have happened; reads missing them are fine.
    let h = serial(&[
        "info [[:append :x 1] [:append :y 1]]",
        "ok [[:r :x nil] [:r :y nil]]",
    ]);
    assert_eq!(check(LA, "strict-serializable", &h).verdict, Valid);
    // Seen through x, so it committed; missing its y append is then read skew.
    let h = serial(&[
        "info [[:append :x 1] [:append :y 1]]",
        "ok [[:r :x [1]] [:r :y nil]]",
    ]);
    let r = check(LA, "serializable", &h);
    assert_eq!(kinds(&r), ["G-single"]);
    // An info transaction's own reads are unknown: nothing is read from them.
    let h = serial(&[
        "ok [[:append :x 1]]",
        "info [[:r :x nil] [:append :y 1]]",
        "ok [[:r :y [1]] [:r :x [1]]]",
    ]);
    assert_eq!(check(LA, "serializable", &h).verdict, Valid);
}

#[test]
fn a_failed_transaction_not_seen_is_harmless() {
    let h = serial(&["fail [[:append :x 1]]", "ok [[:r :x nil]]"]);
    assert_eq!(check(LA, "strict-serializable", &h).verdict, Valid);
}

#[test]
fn unread_appends_follow_the_longest_read() {
    // The shape of Elle's unobserved-write-test: y never shows T1's append, so T1's append to y
    // came after T2's; x shows T1 before T2: G0.
    let h = serial(&[
        "ok [[:append :x 1] [:append :y 1]]",
        "ok [[:append :x 2] [:append :y 2]]",
        "ok [[:r :x [1 2]]]",
        "ok [[:r :y [2]]]",
    ]);
    let r = check(LA, "read-committed", &h);
    assert!(kinds(&r).contains(&"G0".to_string()), "{:?}", kinds(&r));
}

#[test]
fn edn_and_jsonl_read_the_same() {
    let edn = r#"[{:type :invoke, :f :txn, :process 0, :value [[:append 5 1] [:r 6 nil]]}
{:type :ok, :f :txn, :process 0, :value [[:append 5 1] [:r 6 [1]]]}
{:type :invoke, :f :txn, :process 1, :value [[:append 5 2] [:append 6 1]]}
{:type :ok, :f :txn, :process 1, :value [[:append 5 2] [:append 6 1]]}
{:type :invoke, :f :txn, :process 2, :value [[:r 5 nil]]}
{:type :ok, :f :txn, :process 2, :value [[:r 5 [1 2]]]}]"#;
    let jsonl = r#"{"index":0,"process":0,"type":"invoke","f":"txn","value":[["append",5,1],["r",6,null]]}
{"index":1,"process":0,"type":"ok","f":"txn","value":[["append",5,1],["r",6,[1]]]}
{"index":2,"process":1,"type":"invoke","f":"txn","value":[["append",5,2],["append",6,1]]}
{"index":3,"process":1,"type":"ok","f":"txn","value":[["append",5,2],["append",6,1]]}
{"index":4,"process":2,"type":"invoke","f":"txn","value":[["r",5,null]]}
{"index":5,"process":2,"type":"ok","f":"txn","value":[["r",5,[1,2]]]}
"#;
    for text in [edn, jsonl] {
        let h = read_str(text, None).unwrap();
        let r = check(LA, "serializable", &h);
        assert_eq!(kinds(&r), ["G1c"], "{}", r.summary);
    }
    // Streamed from JSONL (as `faultline check` does), never holding the history: the same.
    let options = checkers::CheckOptions {
        consistency_model: Some("serializable".into()),
        ..Default::default()
    };
    let streamed = checkers::stream::check_jsonl(jsonl.as_bytes(), LA, &options)
        .expect("a streaming form")
        .expect("readable");
    assert_eq!(kinds(&streamed), ["G1c"]);
    assert_eq!(
        streamed.anomalies[0].explanation,
        check(LA, "serializable", &read_str(jsonl, None).unwrap()).anomalies[0].explanation
    );
}

#[test]
fn a_micro_op_of_the_wrong_family_names_its_line() {
    let h = serial(&["ok [[:append :x 1]]", "ok [[:w :x 2]]"]);
    let c = checkers::by_name(LA, &Default::default()).unwrap();
    let e = c.check(&h, &Default::default()).unwrap_err();
    assert_eq!(
        e.line, 3,
        "the invocation, the first event with the bad micro-op"
    );
    assert!(e.message.contains("rw-register"), "{}", e.message);
    let bad = checkers::CheckOptions {
        consistency_model: Some("linearizable".into()),
        ..Default::default()
    };
    let err = checkers::by_name(LA, &bad).err().unwrap();
    assert!(err.contains("serializable"), "{err}");
}

#[test]
fn other_operations_are_ignored_and_none_at_all_is_unknown() {
    let h = log("0 :invoke :read nil\n0 :ok :read 3");
    let r = check(LA, "serializable", &h);
    assert_eq!(r.verdict, checkers::Verdict::Unknown);
    assert!(r.summary.contains("read 1"), "{}", r.summary);
}

#[test]
fn a_second_read_showing_others_appends_is_allowed_by_read_committed_only() {
    // T1 reads x, T2 appends and commits, T1 appends and reads again: PostgreSQL's read
    // committed does exactly this.
    let h = log("0 :invoke :txn [[:r :x nil] [:append :x 2] [:r :x nil]]\n\
                 1 :invoke :txn [[:append :x 1]]\n\
                 1 :ok :txn [[:append :x 1]]\n\
                 0 :ok :txn [[:r :x []] [:append :x 2] [:r :x [1 2]]]");
    let r = check(LA, "read-committed", &h);
    assert_eq!(r.verdict, Valid, "{}", r.summary);
    assert!(
        kinds(&r).contains(&"nonrepeatable-read".to_string()),
        "{:?}",
        kinds(&r)
    );
    assert_eq!(check(LA, "repeatable-read", &h).verdict, Invalid);
    // Missing its own append is wrong at every level.
    let h = serial(&[
        "ok [[:r :x nil] [:append :x 1] [:r :x [7]]]",
        "ok [[:append :x 7]]",
    ]);
    assert!(kinds(&check(LA, "read-committed", &h)).contains(&"internal".to_string()));
}

#[test]
fn snapshot_isolation_without_g_single() {
    // The shape of Elle's histories/si-without-g-single.edn, with keys of our own: four
    // transactions whose only cycles have adjacent rw edges, so snapshot isolation holds and
    // serializability does not.
    let h = serial(&[
        "ok [[:append :c 1]]",
        "ok [[:append :b 1] [:r :c nil]]",
        "ok [[:r :a nil] [:r :b nil] [:append :c 2]]",
        "ok [[:append :a 1] [:r :c [1]]]",
    ]);
    let r = check(LA, "snapshot-isolation", &h);
    assert_eq!(r.verdict, Valid, "{}", r.summary);
    assert_eq!(kinds(&r), ["G2-item"]);
    assert_eq!(strongest(&r), ["snapshot-isolation"]);
    assert_eq!(check(LA, "serializable", &h).verdict, Invalid);
}
