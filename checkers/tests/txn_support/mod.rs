//! Shared by the transactional checkers' tests: histories written as Jepsen log lines, and one
//! helper that checks a history under a consistency model through the registry.
//!
//! `serial` takes transactions that ran one after another, each `TYPE [MICRO-OPS]` in Jepsen's
//! EDN (`ok [[:append :x 1] [:r :y [1 2]]]`), on processes 0, 1, 2, ... in turn; the invocation
//! carries the same micro-ops. `log` takes Jepsen log lines as they are, for interleavings.
#![allow(dead_code)]

use checkers::formats::{read_str, Format};
use checkers::{by_name, Budget, CheckOptions, CheckResult, History, Verdict};

/// Transactions one after another; process i runs the i-th (so `info` never blocks a process).
pub fn serial(txns: &[&str]) -> History {
    let mut text = String::new();
    for (p, t) in txns.iter().enumerate() {
        let (kind, mops) = t.split_once(' ').expect("TYPE [MICRO-OPS]");
        text.push_str(&format!("{p} :invoke :txn {mops}\n"));
        text.push_str(&format!("{p} :{kind} :txn {mops}\n"));
    }
    log(&text)
}

/// Jepsen log lines (`PROCESS :TYPE :txn VALUE`), one event each, in order.
pub fn log(text: &str) -> History {
    read_str(text, Some(Format::JepsenLog)).unwrap_or_else(|e| panic!("fixture: {e}"))
}

/// Checks `history` with `checker` judged as `model`.
pub fn check(checker: &str, model: &str, history: &History) -> CheckResult {
    let options = CheckOptions {
        consistency_model: Some(model.to_string()),
        ..CheckOptions::default()
    };
    let c = by_name(checker, &options).expect("checker");
    checkers::run_checker(c.as_ref(), history, &Budget::default()).expect("a readable history")
}

/// The anomaly kinds a result lists, sorted, each once.
pub fn kinds(r: &CheckResult) -> Vec<String> {
    let mut k: Vec<String> = r.anomalies.iter().map(|a| a.kind.clone()).collect();
    k.sort();
    k.dedup();
    k
}

/// The strongest models the result says the history satisfies.
pub fn strongest(r: &CheckResult) -> Vec<String> {
    r.details["strongest_satisfied"]
        .as_array()
        .expect("strongest_satisfied")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// Asserts the verdict under each model: `(model, verdict)`.
pub fn verdicts(checker: &str, history: &History, expected: &[(&str, Verdict)]) {
    for (model, verdict) in expected {
        let r = check(checker, model, history);
        assert_eq!(
            r.verdict, *verdict,
            "under {model}: {}\n{:#?}",
            r.summary, r.anomalies
        );
    }
}
