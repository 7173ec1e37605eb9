//! What the linearizability checker concludes, beyond the models: nothing checked is never
//! valid, every bad key is reported with its likely cause, and a failed op means what its input
//! format says it means (docs/history.md, "linearizable").
//!
//! Fixtures are compact lines `PROCESS TYPE F [KEY=K] VALUE`, turned into faultline JSONL (one
//! second per event) by [`jsonl`]; Jepsen log and EDN fixtures are written out where the format
//! is the point.

use checkers::linear::{Compat, Linearizable};
use checkers::{formats, Budget, CheckResult, Checker, Verdict};
use serde_json::{json, Map, Value};

/// `0 ok write k=a 1` lines as faultline JSONL; event i happens at i seconds.
fn jsonl(fixture: &str) -> String {
    let mut out = String::new();
    for (index, line) in fixture
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let mut words = line.splitn(4, ' ');
        let (process, kind, f) = (
            words.next().unwrap(),
            words.next().unwrap(),
            words.next().unwrap(),
        );
        let mut rest = words.next().unwrap_or("").trim();
        let mut event = Map::new();
        event.insert("index".into(), json!(index));
        event.insert("time".into(), json!(index as u64 * 1_000_000_000));
        event.insert(
            "process".into(),
            match process {
                "n" => json!("nemesis"),
                p => json!(p.parse::<u64>().unwrap()),
            },
        );
        event.insert("type".into(), json!(kind));
        event.insert("f".into(), json!(f));
        for (prefix, field) in [("k=", "key"), ("e=", "error")] {
            if let Some(tail) = rest.strip_prefix(prefix) {
                let end = tail.find(' ').unwrap_or(tail.len());
                event.insert(field.into(), json!(&tail[..end]));
                rest = tail[end..].trim_start();
            }
        }
        if !rest.is_empty() {
            event.insert("value".into(), serde_json::from_str::<Value>(rest).unwrap());
        }
        out.push_str(&Value::Object(event).to_string());
        out.push('\n');
    }
    out
}

fn check_text(model: &str, compat: Compat, initial: Option<Value>, text: &str) -> CheckResult {
    let history = formats::read_str(text, None).unwrap_or_else(|e| panic!("fixture: {e}"));
    Linearizable::new(Some(model), initial)
        .unwrap()
        .with_compat(compat)
        .check(&history, &Budget::default())
        .expect("well-formed")
}

fn check(model: &str, fixture: &str) -> CheckResult {
    check_text(model, Compat::Faultline, None, &jsonl(fixture))
}

// --- nothing checked is never valid -----------------------------------------------------------

#[test]
fn a_history_with_nothing_completed_is_unknown_never_valid() {
    let cases = [
        ("empty", String::new()),
        (
            "only nemesis events",
            jsonl("n info start-partition\nn info stop-partition"),
        ),
        (
            "every op failed or timed out",
            jsonl(
                "0 invoke write 1
                 0 fail write 1
                 1 invoke read null
                 1 info read e=timed-out
                 2 invoke write 2",
            ),
        ),
    ];
    for (what, text) in cases {
        let r = check_text("cas-register", Compat::Faultline, None, &text);
        assert_eq!(r.verdict, Verdict::Unknown, "{what}: {}", r.summary);
        let reason = r.unknown_reason.unwrap();
        assert!(
            reason.starts_with("no completed operations to check"),
            "{what}: {reason}"
        );
    }
}

#[test]
fn every_checker_says_unknown_for_an_empty_history() {
    let empty = formats::read_str("", None).unwrap();
    for name in checkers::CHECKER_NAMES {
        let checker = checkers::by_name(name, &Default::default()).unwrap();
        let r = checker.check(&empty, &Budget::default()).unwrap();
        assert_eq!(r.verdict, Verdict::Unknown, "{name}: {}", r.summary);
        assert!(
            r.unknown_reason
                .as_deref()
                .unwrap()
                .contains("no completed operations to check"),
            "{name}: {:?}",
            r.unknown_reason
        );
    }
}

#[test]
fn one_completed_op_is_something_to_check() {
    let r = check("cas-register", "0 invoke write 1\n0 ok write 1");
    assert_eq!(r.verdict, Verdict::Valid, "{}", r.summary);
}

// --- Jepsen logs: a read logged :fail :timed-out ------------------------------------------------

#[test]
fn a_jepsen_log_with_a_failed_timed_out_read_is_decided() {
    // Jepsen's etcd logs: process 1's read timed out and was logged :fail; process 1 goes on.
    let log = "INFO  jepsen.util - 0\t:invoke\t:write\t1
INFO  jepsen.util - 0\t:ok\t:write\t1
INFO  jepsen.util - 1\t:invoke\t:read\tnil
INFO  jepsen.util - 1\t:fail\t:read\t:timed-out
INFO  jepsen.util - 1\t:invoke\t:read\tnil
INFO  jepsen.util - 1\t:ok\t:read\t1
";
    let r = check_text("cas-register", Compat::Faultline, None, log);
    assert_eq!(r.verdict, Verdict::Valid, "{}", r.summary);
    let r = check_text(
        "cas-register",
        Compat::Faultline,
        None,
        &log.replace(":read\t1", ":read\t2"),
    );
    assert_eq!(r.verdict, Verdict::Invalid, "{}", r.summary);
}

// --- what a failed cas means, by input ----------------------------------------------------------

/// The register held 1 throughout, yet a cas [1 2] failed.
const SEQUENTIAL_FAILED_CAS_LOG: &str = "0 :invoke :write 1
0 :ok :write 1
1 :invoke :cas [1 2]
1 :fail :cas [1 2]";

#[test]
fn a_failed_cas_is_an_observation_only_where_the_input_says_so() {
    // A Jepsen log, as Porcupine reads it: an observed mismatch, impossible here.
    let r = check_text(
        "cas-register",
        Compat::Faultline,
        None,
        SEQUENTIAL_FAILED_CAS_LOG,
    );
    assert_eq!(r.verdict, Verdict::Invalid, "{}", r.summary);
    assert_eq!(r.anomalies[0].data["cause"], "failed-cas");
    // faultline JSONL with the client's cas-mismatch error: the same.
    let mismatch =
        "0 invoke write 1\n0 ok write 1\n1 invoke cas [1,2]\n1 fail cas e=cas-mismatch [1,2]";
    assert_eq!(check("cas-register", mismatch).verdict, Verdict::Invalid);
    // Without that error, and in Jepsen EDN, :fail only says it did not take effect.
    let plain = mismatch.replace(" e=cas-mismatch", "");
    assert_eq!(check("cas-register", &plain).verdict, Verdict::Valid);
    let edn = "{:process 0, :type :invoke, :f :write, :value 1}
{:process 0, :type :ok, :f :write, :value 1}
{:process 1, :type :invoke, :f :cas, :value [1 2]}
{:process 1, :type :fail, :f :cas, :value [1 2]}";
    let r = check_text("cas-register", Compat::Faultline, None, edn);
    assert_eq!(r.verdict, Verdict::Valid, "{}", r.summary);
    // --compat knossos drops every failed op, whatever the input.
    let r = check_text(
        "cas-register",
        Compat::Knossos,
        None,
        SEQUENTIAL_FAILED_CAS_LOG,
    );
    assert_eq!(r.verdict, Verdict::Valid, "{}", r.summary);
}

#[test]
fn with_knossos_conventions_a_nil_read_means_value_unknown() {
    let edn = "{:process 0, :type :invoke, :f :write, :value 3}
{:process 0, :type :ok, :f :write, :value 3}
{:process 1, :type :invoke, :f :read, :value nil}
{:process 1, :type :ok, :f :read, :value nil}
{:process 1, :type :invoke, :f :read, :value nil}
{:process 1, :type :ok, :f :read, :value 3}";
    let initial = Some(json!(0));
    let faultline = check_text("cas-register", Compat::Faultline, initial.clone(), edn);
    assert_eq!(faultline.verdict, Verdict::Invalid, "{}", faultline.summary);
    let knossos = check_text("cas-register", Compat::Knossos, initial, edn);
    assert_eq!(knossos.verdict, Verdict::Valid, "{}", knossos.summary);
    // The same in a multi-register txn: the nil micro-read tells nothing.
    let txn = "{:process 0, :type :invoke, :f :txn, :value [[:w :x 1]]}
{:process 0, :type :ok, :f :txn, :value [[:w :x 1]]}
{:process 1, :type :invoke, :f :txn, :value [[:r :x nil] [:r :y nil]]}
{:process 1, :type :ok, :f :txn, :value [[:r :x nil] [:r :y 0]]}";
    let initial = Some(json!({"x": 0, "y": 0}));
    let r = check_text("multi-register", Compat::Knossos, initial.clone(), txn);
    assert_eq!(r.verdict, Verdict::Valid, "{}", r.summary);
    let r = check_text("multi-register", Compat::Faultline, initial, txn);
    assert_eq!(r.verdict, Verdict::Invalid, "{}", r.summary);
}

#[test]
fn the_registry_takes_the_compat_option() {
    let options = checkers::CheckOptions {
        model: Some("cas-register".into()),
        compat: Some("knossos".into()),
        ..Default::default()
    };
    let history = formats::read_str(SEQUENTIAL_FAILED_CAS_LOG, None).unwrap();
    let r = checkers::by_name("linearizable", &options)
        .unwrap()
        .check(&history, &Budget::default())
        .unwrap();
    assert_eq!(r.verdict, Verdict::Valid, "{}", r.summary);
    let bad = checkers::CheckOptions {
        compat: Some("porcupine-ish".into()),
        ..Default::default()
    };
    let err = checkers::by_name("linearizable", &bad).err().unwrap();
    assert!(err.contains("unknown compat"), "{err}");
    let err = checkers::by_name("delivery", &options).err().unwrap();
    assert!(err.contains("--compat"), "{err}");
}

// --- every bad key, with its likely cause -------------------------------------------------------

/// Key `a`: a lost write (5 acknowledged, then a read sees the older 1), 2 more ops than `c`.
/// Key `b`: fine. Key `c`: a read of 9, never written.
const THREE_KEYS: &str = "
    0 invoke write k=a 1
    0 ok write k=a 1
    1 invoke write k=b 1
    1 ok write k=b 1
    0 invoke write k=a 5
    0 ok write k=a 5
    2 invoke read k=c null
    2 ok read k=c 9
    3 invoke read k=a null
    3 ok read k=a 1
    3 invoke read k=b null
    3 ok read k=b 1
    3 invoke read k=a null
    3 ok read k=a 1";

#[test]
fn every_invalid_key_is_reported_largest_first() {
    let r = check("cas-register", THREE_KEYS);
    assert_eq!(r.verdict, Verdict::Invalid);
    assert_eq!(r.anomalies.len(), 2, "{:#?}", r.anomalies);
    assert_eq!(r.anomalies[0].data["key"], "a");
    assert_eq!(r.anomalies[1].data["key"], "c");
    assert_eq!(r.details["invalid_keys"], json!(["a", "c"]));
    assert_eq!(r.details["undecided_keys"], json!([]));
    assert!(
        r.summary.contains("keys \"a\", \"c\" (2 of 3 partitions)"),
        "{}",
        r.summary
    );
}

#[test]
fn a_lost_write_is_named_with_when_it_was_acknowledged() {
    let r = check("cas-register", THREE_KEYS);
    let a = &r.anomalies[0];
    assert_eq!(a.data["cause"], "lost-write");
    // The write of 5 is invoked at event 4 and acknowledged at 5.000 s; the read at event 8.
    assert_eq!(a.data["cause_ops"], json!([4, 8]));
    assert!(
        a.explanation.contains(
            "Likely cause: a lost write: the acknowledged write 5 (op 4, process 0), completed at 5.000 s, was never observed"
        ),
        "{}",
        a.explanation
    );
    assert!(a.ops.contains(&4) && a.ops.contains(&8), "{:?}", a.ops);
}

#[test]
fn a_read_of_a_value_never_written_is_named() {
    let r = check("cas-register", THREE_KEYS);
    let c = &r.anomalies[1];
    assert_eq!(c.data["cause"], "read-of-unwritten-value");
    assert!(
        c.explanation
            .contains("a read of a value no write produced: op 6 (process 2) did read 9"),
        "{}",
        c.explanation
    );
}

#[test]
fn a_stale_read_is_named() {
    // 5 was read, so it was not lost; a later read sees the replaced 1.
    let r = check(
        "cas-register",
        "0 invoke write 1
         0 ok write 1
         0 invoke write 5
         0 ok write 5
         1 invoke read 5
         1 ok read 5
         2 invoke read null
         2 ok read 1",
    );
    assert_eq!(r.verdict, Verdict::Invalid);
    let a = &r.anomalies[0];
    assert_eq!(a.data["cause"], "stale-read", "{}", a.explanation);
    assert_eq!(a.data["cause_ops"], json!([6, 2]));
    assert!(
        a.explanation
            .contains("Likely cause: a stale read: op 6 (process 2) did read 1"),
        "{}",
        a.explanation
    );
}

#[test]
fn no_cause_is_named_where_none_fits() {
    // Two reads disagree on the order of two concurrent writes: no single shape explains it.
    let r = check(
        "cas-register",
        "0 invoke write 1
         1 invoke write 2
         2 invoke read null
         2 ok read 1
         3 invoke read null
         3 ok read 2
         2 invoke read null
         2 ok read 1
         3 invoke read null
         3 ok read 2
         0 ok write 1
         1 ok write 2",
    );
    assert_eq!(r.verdict, Verdict::Invalid, "{}", r.summary);
    assert!(
        r.anomalies[0].data.get("cause").is_none(),
        "{}",
        r.anomalies[0].explanation
    );
}

#[test]
fn keys_the_budget_left_undecided_are_named() {
    // No time at all: nothing is decided, and every key says so.
    let history = formats::read_str(&jsonl(THREE_KEYS), None).unwrap();
    let budget = Budget {
        time_limit: Some(std::time::Duration::ZERO),
        ..Budget::default()
    };
    let r = Linearizable::new(Some("cas-register"), None)
        .unwrap()
        .check(&history, &budget)
        .unwrap();
    assert_eq!(r.verdict, Verdict::Unknown, "{}", r.summary);
    assert_eq!(r.details["undecided_keys"], json!(["a", "b", "c"]));
    assert!(r.summary.contains("undecided"), "{}", r.summary);
}

// --- the Model contract --------------------------------------------------------------------------

/// A model that says its reads are read-only, but its reads count.
#[derive(Clone)]
struct LyingCounter;

impl checkers::linear::Model for LyingCounter {
    type State = i64;
    type Input = bool;
    fn name(&self) -> &str {
        "lying-counter"
    }
    fn decode(&mut self, op: &checkers::Op) -> Result<Option<bool>, String> {
        Ok(Some(op.f == "read"))
    }
    fn init(&self, _: Option<&str>) -> i64 {
        0
    }
    fn step(&self, n: &i64, _read: &bool) -> Option<i64> {
        Some(n + 1)
    }
    fn is_read_only(&self, read: &bool) -> bool {
        *read
    }
    fn describe_op(&self, read: &bool) -> String {
        if *read { "read" } else { "add" }.to_string()
    }
    fn describe_state(&self, n: &i64) -> String {
        format!("{n}")
    }
}

#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "broke its contract: read is read-only")]
fn a_read_only_op_that_changes_the_state_trips_a_debug_assertion() {
    let history = formats::read_str(&jsonl("0 invoke read null\n0 ok read 1"), None).unwrap();
    let _ = checkers::linear::check_model(LyingCounter, &history, &Budget::default());
}

// --- the search's shortcuts for timed-out ops hide no anomaly ------------------------------------

#[test]
fn a_read_that_sees_a_timed_out_write_out_of_order_is_still_flagged() {
    // 2 was written by a timed-out write and read; then 1, overwritten by it, is read again.
    let r = check(
        "cas-register",
        "0 invoke write 1
         0 ok write 1
         1 invoke write 2
         1 info write e=timed-out 2
         2 invoke read null
         2 ok read 2
         2 invoke read null
         2 ok read 1",
    );
    assert_eq!(r.verdict, Verdict::Invalid, "{}", r.summary);
    assert!(
        r.anomalies[0].explanation.contains("read 1"),
        "{}",
        r.summary
    );
}

#[test]
fn a_value_no_op_reads_still_explains_a_failed_cas() {
    // Nothing reads 7, so the registers merge it with every other unread value; it is still
    // the only value that lets the cas see something other than 1.
    let timed_out = "0 invoke write 1
         0 ok write 1
         1 invoke write 7
         1 info write e=timed-out 7
         2 invoke cas [1,5]
         2 fail cas e=cas-mismatch [1,5]";
    let r = check("cas-register", timed_out);
    assert_eq!(r.verdict, Verdict::Valid, "{}", r.summary);
    let r = check(
        "cas-register",
        "0 invoke write 1
         0 ok write 1
         2 invoke cas [1,5]
         2 fail cas e=cas-mismatch [1,5]",
    );
    assert_eq!(r.verdict, Verdict::Invalid, "{}", r.summary);
    // The evidence names the ops by their own values.
    let r = check(
        "cas-register",
        "0 invoke write 7
         0 ok write 7
         1 invoke write 1
         1 ok write 1
         2 invoke cas [1,5]
         2 fail cas e=cas-mismatch [1,5]",
    );
    assert_eq!(r.verdict, Verdict::Invalid, "{}", r.summary);
    assert!(!r.summary.contains("a value no op reads"), "{}", r.summary);
}

#[test]
fn timed_out_ops_still_chain_when_a_read_needs_it() {
    // Only the timed-out write of 3 followed by the timed-out cas [3 4] explains the read of 4.
    let r = check(
        "cas-register",
        "0 invoke write 1
         0 ok write 1
         1 invoke write 3
         1 info write e=timed-out 3
         2 invoke cas [3,4]
         2 info cas e=timed-out [3,4]
         3 invoke read null
         3 ok read 4",
    );
    assert_eq!(r.verdict, Verdict::Valid, "{}", r.summary);
    // A timed-out write right after another timed-out op is never needed: here the write of 4
    // alone explains the read, whatever the cas did.
    let r = check(
        "cas-register",
        "0 invoke write 1
         0 ok write 1
         1 invoke cas [1,3]
         1 info cas e=timed-out [1,3]
         2 invoke write 4
         2 info write e=timed-out 4
         3 invoke read null
         3 ok read 4
         3 invoke read null
         3 ok read 1",
    );
    assert_eq!(r.verdict, Verdict::Invalid, "{}", r.summary);
}
