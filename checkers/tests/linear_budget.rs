//! The budget: a search that runs out of time or memory answers `unknown` with the reason,
//! never a verdict it has not proven.
//!
//! The hard history: one register, 2,000 ops by 20 workers, one op in five timing out, three
//! values, and the last read changed to a value never written. Every order of the pending
//! timed-out ops has to be ruled out before "invalid" can be said, which takes far longer and
//! far more memory than the limits below.

use checkers::linear::synth::{register_history, SynthParams};
use checkers::linear::Linearizable;
use checkers::{Budget, CheckResult, Checker, EventType, History, Verdict};
use serde_json::json;
use std::time::Duration;

fn hard_params() -> SynthParams {
    SynthParams {
        seed: 7,
        ops: 2000,
        keys: 1,
        processes: 20,
        values: 3,
        info_per_mille: 200,
        cas: true,
    }
}

fn hard_history() -> History {
    let mut history = register_history(&hard_params());
    let last_read = history
        .events
        .iter()
        .rposition(|e| e.f == "read" && e.kind == EventType::Ok)
        .expect("a read");
    history.events[last_read].value = json!(1_000_000);
    history
}

fn check(history: &History, budget: Budget) -> CheckResult {
    Linearizable::new(Some("cas-register"), None)
        .unwrap()
        .check(history, &budget)
        .unwrap()
}

#[test]
fn a_time_limit_gives_unknown_with_the_reason() {
    let budget = Budget {
        time_limit: Some(Duration::from_millis(20)),
        memory_bytes_max: None,
    };
    let r = check(&hard_history(), budget);
    assert_eq!(r.verdict, Verdict::Unknown, "{}", r.summary);
    let reason = r.unknown_reason.expect("a reason");
    assert!(reason.contains("time limit of 0.020 s"), "{reason}");
    assert!(r.anomalies.is_empty());
}

#[test]
fn a_memory_cap_gives_unknown_and_is_not_exceeded() {
    let cap = 2 << 20;
    let budget = Budget {
        time_limit: Some(Duration::from_secs(120)),
        memory_bytes_max: Some(cap),
    };
    let r = check(&hard_history(), budget);
    assert_eq!(r.verdict, Verdict::Unknown, "{}", r.summary);
    let reason = r.unknown_reason.expect("a reason");
    assert!(reason.contains("memory cap of 2.0 MiB"), "{reason}");
    let peak = r.details["peak_cache_bytes_all_partitions"]
        .as_u64()
        .unwrap();
    assert!(peak <= cap, "peak {peak} over the cap {cap}");
    assert!(peak > cap / 2, "the search stopped early: peak {peak}");
}

#[test]
fn a_budget_that_suffices_changes_nothing() {
    // The same history before the bad read was planted: easy, well within the budget.
    let r = check(
        &register_history(&hard_params()),
        Budget {
            time_limit: Some(Duration::from_secs(60)),
            memory_bytes_max: Some(64 << 20),
        },
    );
    assert_eq!(r.verdict, Verdict::Valid, "{}", r.summary);
}

#[test]
fn an_invalid_partition_wins_over_one_that_ran_out() {
    // Key "hard" cannot be decided within the budget; key "bad" is plainly invalid.
    let mut history = hard_history();
    for e in &mut history.events {
        e.key = Some("hard".to_string());
    }
    let next = history.events.len() as u64;
    let extra = [
        (0, EventType::Invoke, "write", json!(1)),
        (0, EventType::Ok, "write", json!(1)),
        (1, EventType::Invoke, "read", json!(null)),
        (1, EventType::Ok, "read", json!(2)),
    ];
    for (i, (p, kind, f, value)) in extra.into_iter().enumerate() {
        history.events.push(checkers::Event {
            index: next + i as u64,
            time: history.events.last().unwrap().time + 1,
            process: checkers::Process::Client(10_000 + p),
            kind,
            f: f.to_string(),
            key: Some("bad".to_string()),
            value,
            error: None,
        });
    }
    let r = check(
        &history,
        Budget {
            time_limit: Some(Duration::from_secs(60)),
            memory_bytes_max: Some(8 << 20),
        },
    );
    assert_eq!(r.verdict, Verdict::Invalid, "{}", r.summary);
    assert_eq!(r.anomalies.len(), 1);
    assert_eq!(r.anomalies[0].data["key"], "bad");
}
