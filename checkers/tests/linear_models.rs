//! The built-in models on compact histories, valid and invalid, and the evidence an invalid one
//! carries. Fixtures are Jepsen log lines (`PROCESS :TYPE :F VALUE`, one event per line, no
//! timestamps) or EDN maps when ops need keys.

use checkers::linear::Linearizable;
use checkers::{formats, Budget, CheckResult, Checker, Verdict};
use serde_json::{json, Value};

/// Checks `text` against `model` (with `initial`, when given).
fn check_with(model: &str, initial: Option<Value>, text: &str) -> CheckResult {
    let history = formats::read_str(text, None).unwrap_or_else(|e| panic!("fixture: {e}"));
    Linearizable::new(Some(model), initial)
        .unwrap_or_else(|e| panic!("{e}"))
        .check(&history, &Budget::default())
        .expect("well-formed")
}

fn check(model: &str, text: &str) -> CheckResult {
    check_with(model, None, text)
}

fn assert_verdict(model: &str, text: &str, expected: Verdict) -> CheckResult {
    let result = check(model, text);
    assert_eq!(
        result.verdict, expected,
        "{model} on\n{text}\n{}",
        result.summary
    );
    result
}

// --- register -----------------------------------------------------------------------------

#[test]
fn a_read_concurrent_with_a_write_may_see_it() {
    assert_verdict(
        "register",
        "0 :invoke :write 1
         1 :invoke :read nil
         0 :ok :write 1
         1 :ok :read 1",
        Verdict::Valid,
    );
}

#[test]
fn a_read_after_a_completed_write_must_see_it() {
    let r = assert_verdict(
        "register",
        "0 :invoke :write 1
         0 :ok :write 1
         1 :invoke :read nil
         1 :ok :read nil",
        Verdict::Invalid,
    );
    let a = &r.anomalies[0];
    assert_eq!(a.kind, "nonlinearizable");
    assert_eq!(
        a.explanation,
        "after op 0 the register holds 1; op 2 (process 1) read nil between lines 3 and 4 \
         cannot take effect there, and no order of the other pending operations lets it. \
         Likely cause: a lost write: the acknowledged write 1 (op 0, process 0), completed at \
         line 2, was never observed, while op 2 (process 1), invoked at line 3 after it \
         completed, did read nil, an older value."
    );
    assert_eq!(
        a.data,
        json!({"key": null, "prefix": [0], "unplaceable": [2],
               "states": ["the register holds 1"], "model": "register",
               "cause": "lost-write", "cause_ops": [0, 2]})
    );
    assert_eq!(a.ops, vec![0, 2, 3]);
}

#[test]
fn an_indeterminate_write_may_take_effect_late_or_never() {
    let timed_out = "0 :invoke :write 1
                     0 :info :write :timed-out
                     1 :invoke :read nil
                     1 :ok :read nil
                     2 :invoke :read nil
                     2 :ok :read 1";
    assert_verdict("register", timed_out, Verdict::Valid);
    // ...but once seen it stays.
    let back = format!("{timed_out}\n3 :invoke :read nil\n3 :ok :read nil");
    assert_verdict("register", &back, Verdict::Invalid);
}

#[test]
fn a_write_that_never_completed_may_take_effect() {
    assert_verdict(
        "register",
        "0 :invoke :write 1
         1 :invoke :read nil
         1 :ok :read 1",
        Verdict::Valid,
    );
}

#[test]
fn a_failed_write_did_not_happen() {
    assert_verdict(
        "register",
        "0 :invoke :write 1
         0 :fail :write 1
         1 :invoke :read nil
         1 :ok :read 1",
        Verdict::Invalid,
    );
}

#[test]
fn the_initial_value_is_an_option() {
    let text = "0 :invoke :read nil\n0 :ok :read 0";
    assert_eq!(check("register", text).verdict, Verdict::Invalid);
    assert_eq!(
        check_with("register", Some(json!(0)), text).verdict,
        Verdict::Valid
    );
}

#[test]
fn the_register_model_does_not_guess_at_a_cas() {
    let r = check("register", "0 :invoke :cas [1 2]\n0 :ok :cas [1 2]");
    assert_eq!(r.verdict, Verdict::Unknown);
    assert!(
        r.unknown_reason
            .as_deref()
            .unwrap()
            .contains("cas-register"),
        "{r:?}"
    );
}

// --- cas-register -------------------------------------------------------------------------

#[test]
fn a_cas_succeeds_only_from_its_old_value() {
    let swap = "0 :invoke :write 1
                0 :ok :write 1
                1 :invoke :cas [1 2]
                1 :ok :cas [1 2]
                2 :invoke :read nil
                2 :ok :read 2";
    assert_verdict("cas-register", swap, Verdict::Valid);
    assert_verdict(
        "cas-register",
        &swap.replace(":write 1", ":write 3"),
        Verdict::Invalid,
    );
}

#[test]
fn a_failed_cas_saw_another_value() {
    // The register held 1 throughout: a cas [1 2] cannot have found another value.
    let sequential = "0 :invoke :write 1
                      0 :ok :write 1
                      1 :invoke :cas [1 2]
                      1 :fail :cas [1 2]";
    let r = assert_verdict("cas-register", sequential, Verdict::Invalid);
    assert!(
        r.anomalies[0].explanation.contains("failed cas [1 2]"),
        "{}",
        r.anomalies[0].explanation
    );
    // Concurrent with the write, it may have seen nil.
    assert_verdict(
        "cas-register",
        "0 :invoke :write 1
         1 :invoke :cas [1 2]
         1 :fail :cas [1 2]
         0 :ok :write 1",
        Verdict::Valid,
    );
}

#[test]
fn an_indeterminate_cas_may_have_swapped() {
    let text = "0 :invoke :write 1
                0 :ok :write 1
                1 :invoke :cas [1 2]
                1 :info :cas :timed-out
                2 :invoke :read nil
                2 :ok :read 2
                3 :invoke :read nil
                3 :ok :read 2";
    assert_verdict("cas-register", text, Verdict::Valid);
    assert_verdict(
        "cas-register",
        &text.replace("2 :ok :read 2", "2 :ok :read 3"),
        Verdict::Invalid,
    );
}

#[test]
fn knossos_edn_with_nemesis_events_and_open_invocations_checks() {
    let text = r#"[{:type :invoke, :f :write, :value 1, :process 0, :time 10}
 {:type :info, :f :start, :value nil, :process :nemesis, :time 15}
 {:type :ok, :f :write, :value 1, :process 0, :time 20}
 {:type :invoke, :f :cas, :value [1 2], :process 1, :time 30}
 {:type :invoke, :f :read, :value nil, :process 2, :time 40}
 {:type :ok, :f :read, :value 2, :process 2, :time 50}]"#;
    assert_verdict("cas-register", text, Verdict::Valid);
    assert_verdict(
        "cas-register",
        &text.replace(":value 2, :process 2", ":value 3, :process 2"),
        Verdict::Invalid,
    );
}

// --- kv -----------------------------------------------------------------------------------

const KV_OK: &str = r#"{:process 0, :type :invoke, :f :put, :key "x", :value "a"}
{:process 0, :type :ok, :f :put, :key "x", :value "a"}
{:process 1, :type :invoke, :f :append, :key "x", :value "b"}
{:process 2, :type :invoke, :f :get, :key "x", :value nil}
{:process 1, :type :ok, :f :append, :key "x", :value "b"}
{:process 2, :type :ok, :f :get, :key "x", :value "ab"}
{:process 3, :type :invoke, :f :get, :key "y", :value nil}
{:process 3, :type :ok, :f :get, :key "y", :value ""}
"#;

#[test]
fn kv_appends_and_gets_per_key() {
    assert_verdict("kv", KV_OK, Verdict::Valid);
}

#[test]
fn kv_evidence_names_the_failing_key() {
    let bad = KV_OK.replace(r#":key "y", :value ""}"#, r#":key "y", :value "z"}"#);
    let r = assert_verdict("kv", &bad, Verdict::Invalid);
    assert_eq!(r.anomalies.len(), 1);
    let a = &r.anomalies[0];
    assert_eq!(a.data["key"], "y");
    assert_eq!(a.data["states"], json!(["the value is \"\""]));
    assert!(
        a.explanation.starts_with(
            "key \"y\": from the initial state, the value is \"\"; op 6 (process 3) get \"z\""
        ),
        "{}",
        a.explanation
    );
    assert_eq!(r.details["partitions"], 2);
}

#[test]
fn kv_initial_values_per_key() {
    let text = r#"{:process 0, :type :invoke, :f :get, :key "y", :value nil}
{:process 0, :type :ok, :f :get, :key "y", :value "seed"}
"#;
    assert_eq!(check("kv", text).verdict, Verdict::Invalid);
    let r = check_with("kv", Some(json!({"y": "seed"})), text);
    assert_eq!(r.verdict, Verdict::Valid);
}

// --- multi-register -----------------------------------------------------------------------

#[test]
fn a_multi_register_txn_is_atomic() {
    let text = "0 :invoke :txn [[:w :x 1] [:w :y 1]]
                0 :ok :txn [[:w :x 1] [:w :y 1]]
                1 :invoke :txn [[:r :x nil] [:r :y nil]]
                1 :ok :txn [[:r :x 1] [:r :y 1]]";
    assert_verdict("multi-register", text, Verdict::Valid);
    assert_verdict(
        "multi-register",
        &text.replace("[:r :y 1]]", "[:r :y nil]]"),
        Verdict::Invalid,
    );
}

#[test]
fn a_multi_register_read_sees_a_map() {
    let text = "0 :invoke :write {:x 1, :y 2}
                0 :ok :write {:x 1, :y 2}
                1 :invoke :read nil
                1 :ok :read {:x 1, :y 2}";
    assert_verdict("multi-register", text, Verdict::Valid);
    assert_verdict(
        "multi-register",
        &text.replace("1 :ok :read {:x 1, :y 2}", "1 :ok :read {:x 1, :y 3}"),
        Verdict::Invalid,
    );
}

// --- queues -------------------------------------------------------------------------------

const TWO_ENQUEUED: &str = "0 :invoke :enqueue 1
                            0 :ok :enqueue 1
                            0 :invoke :enqueue 2
                            0 :ok :enqueue 2";

#[test]
fn a_fifo_queue_hands_out_the_oldest_first() {
    let first = |v: u32| format!("{TWO_ENQUEUED}\n1 :invoke :dequeue nil\n1 :ok :dequeue {v}");
    assert_verdict("fifo-queue", &first(1), Verdict::Valid);
    let r = assert_verdict("fifo-queue", &first(2), Verdict::Invalid);
    assert_eq!(
        r.anomalies[0].data["states"],
        json!(["the queue holds [1, 2] (head first)"])
    );
}

#[test]
fn concurrent_enqueues_may_land_in_either_order() {
    assert_verdict(
        "fifo-queue",
        "0 :invoke :enqueue 1
         1 :invoke :enqueue 2
         0 :ok :enqueue 1
         1 :ok :enqueue 2
         2 :invoke :dequeue nil
         2 :ok :dequeue 2
         2 :invoke :dequeue nil
         2 :ok :dequeue 1",
        Verdict::Valid,
    );
}

#[test]
fn an_unordered_queue_hands_out_any_element_once() {
    let then = |rest: &str| format!("{TWO_ENQUEUED}\n{rest}");
    assert_verdict(
        "unordered-queue",
        &then("1 :invoke :dequeue nil\n1 :ok :dequeue 2"),
        Verdict::Valid,
    );
    assert_verdict(
        "unordered-queue",
        &then("1 :invoke :dequeue nil\n1 :ok :dequeue 3"),
        Verdict::Invalid,
    );
    assert_verdict(
        "unordered-queue",
        &then("1 :invoke :dequeue nil\n1 :ok :dequeue 2\n1 :invoke :dequeue nil\n1 :ok :dequeue 2"),
        Verdict::Invalid,
    );
}

#[test]
fn an_unanswered_dequeue_may_have_taken_any_element() {
    let text = format!(
        "{TWO_ENQUEUED}
         1 :invoke :dequeue nil
         1 :info :dequeue :timed-out
         2 :invoke :dequeue nil
         2 :ok :dequeue 1
         2 :invoke :dequeue nil
         2 :ok :dequeue nil"
    );
    // The lost dequeue took 2, so the queue was empty at the end.
    assert_verdict("unordered-queue", &text, Verdict::Valid);
    // Without it, 2 is still in the queue and the empty answer is wrong.
    let without = text.replace(":info :dequeue :timed-out", ":fail :dequeue nil");
    assert_verdict("unordered-queue", &without, Verdict::Invalid);
    // In a FIFO queue the lost dequeue can only take the head: here after the first
    // dequeue, when the head is 2.
    assert_verdict("fifo-queue", &text, Verdict::Valid);
    // 2 before 1 needs the lost dequeue to have taken 1, which then cannot come out again.
    let swapped = text
        .replace("2 :ok :dequeue 1", "2 :ok :dequeue 2")
        .replace("2 :ok :dequeue nil", "2 :ok :dequeue 1");
    assert_verdict("fifo-queue", &swapped, Verdict::Invalid);
    assert_verdict("unordered-queue", &swapped, Verdict::Valid);
}

// --- set ----------------------------------------------------------------------------------

#[test]
fn a_set_read_returns_exactly_what_was_added() {
    let text = "0 :invoke :add 1
                0 :ok :add 1
                1 :invoke :add 2
                2 :invoke :read nil
                2 :ok :read #{1}
                1 :ok :add 2
                2 :invoke :read nil
                2 :ok :read #{1 2}";
    assert_verdict("set", text, Verdict::Valid);
    assert_verdict(
        "set",
        &text.replace("2 :ok :read #{1 2}", "2 :ok :read #{2}"),
        Verdict::Invalid,
    );
}

// --- options, detection, evidence -------------------------------------------------------

#[test]
fn bad_options_are_rejected_before_any_history() {
    let err = Linearizable::new(Some("regster"), None).unwrap_err();
    assert!(err.contains("unknown model \"regster\""), "{err}");
    assert!(err.contains("cas-register"), "{err}");
    let err = Linearizable::new(Some("set"), Some(json!(3))).unwrap_err();
    assert!(err.contains("--initial"), "{err}");
    let err = Linearizable::new(None, Some(json!(3))).unwrap_err();
    assert!(err.contains("--model"), "{err}");
}

#[test]
fn without_a_model_the_ops_choose_one() {
    let history = formats::read_str(KV_OK, None).unwrap();
    let r = Linearizable::new(None, None)
        .unwrap()
        .check(&history, &Budget::default())
        .unwrap();
    assert_eq!(r.verdict, Verdict::Valid);
    assert_eq!(r.details["model"], "kv");
    let queue = formats::read_str(TWO_ENQUEUED, None).unwrap();
    let r = Linearizable::new(None, None)
        .unwrap()
        .check(&queue, &Budget::default())
        .unwrap();
    assert_eq!(r.verdict, Verdict::Unknown);
    assert!(r.unknown_reason.unwrap().contains("--model"));
}

#[test]
fn the_registry_builds_the_checker_from_options() {
    let options = checkers::CheckOptions {
        model: Some("cas-register".into()),
        initial: Some(json!(0)),
        ..Default::default()
    };
    let checker = checkers::by_name("linearizable", &options).unwrap();
    assert_eq!(checker.name(), "linearizable");
    let history = formats::read_str("0 :invoke :cas [0 1]\n0 :ok :cas [0 1]", None).unwrap();
    let r = checker.check(&history, &Budget::default()).unwrap();
    assert_eq!(r.verdict, Verdict::Valid, "{}", r.summary);
    let bad = checkers::CheckOptions {
        model: Some("nope".into()),
        ..Default::default()
    };
    assert!(checkers::by_name("linearizable", &bad).is_err());
}

#[test]
fn timestamps_become_seconds_in_the_explanation() {
    let jsonl = r#"{"index":0,"time":1000000000,"process":0,"type":"invoke","f":"write","key":"r1","value":3}
{"index":1,"time":1100000000,"process":0,"type":"ok","f":"write","key":"r1","value":3}
{"index":2,"time":1200000000,"process":4,"type":"invoke","f":"read","key":"r1","value":null}
{"index":3,"time":1310000000,"process":4,"type":"ok","f":"read","key":"r1","value":4}
"#;
    let r = check("register", jsonl);
    assert_eq!(r.verdict, Verdict::Invalid);
    assert_eq!(
        r.anomalies[0].explanation,
        "key \"r1\": after op 0 the register holds 3; op 2 (process 4) read 4 between 1.200 s \
         and 1.310 s cannot take effect there, and no order of the other pending operations \
         lets it. Likely cause: a read of a value no write produced: op 2 (process 4) did \
         read 4 between 1.200 s and 1.310 s, and no write of that value exists."
    );
    assert!(r.summary.starts_with("not linearizable"), "{}", r.summary);
}

#[test]
fn the_evidence_lists_every_state_the_prefix_can_leave() {
    // Two concurrent writes, then a read of a value neither wrote: after both, the register
    // holds 1 or 2 depending on their order.
    let r = assert_verdict(
        "register",
        "0 :invoke :write 1
         1 :invoke :write 2
         0 :ok :write 1
         1 :ok :write 2
         2 :invoke :read nil
         2 :ok :read 3",
        Verdict::Invalid,
    );
    let a = &r.anomalies[0];
    let mut states: Vec<String> = serde_json::from_value(a.data["states"].clone()).unwrap();
    states.sort();
    assert_eq!(states, vec!["the register holds 1", "the register holds 2"]);
    let mut prefix: Vec<u64> = serde_json::from_value(a.data["prefix"].clone()).unwrap();
    prefix.sort();
    assert_eq!(prefix, vec![0, 1]);
    assert_eq!(a.data["unplaceable"], json!([4]));
    assert!(
        a.explanation.contains("(depending on their order)"),
        "{}",
        a.explanation
    );
}

#[test]
fn per_partition_figures_are_in_the_details() {
    let r = check("kv", KV_OK);
    let parts = r.details["per_partition"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0]["key"], "x");
    assert_eq!(parts[0]["ops"], 3);
    assert_eq!(parts[0]["verdict"], "valid");
    assert!(parts[0]["states_explored"].as_u64().unwrap() >= 3);
    assert!(parts[0]["peak_cache_bytes"].as_u64().unwrap() > 0);
    assert_eq!(r.details["ops"], 4);
}

#[test]
fn events_out_of_index_order_are_an_error_naming_the_line() {
    let mut history = formats::read_str("0 :invoke :write 1\n0 :ok :write 1", None).unwrap();
    history.events[1].index = 0;
    let err = Linearizable::new(Some("register"), None)
        .unwrap()
        .check(&history, &Budget::default())
        .unwrap_err();
    assert_eq!(err.line, 2);
    assert!(err.message.contains("strictly increasing"), "{err}");
}
