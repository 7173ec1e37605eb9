//! Fixtures shared by the tests and the benchmark: a synthetic register history of any size and
//! the results a run might have produced for it. Deterministic: the same arguments give the same
//! history, so a failing test can be replayed.
#![allow(dead_code)]

use checkers::{Anomaly, CheckResult, Event, EventType, History, Process};
use reports::RunResults;
use serde_json::{json, Value};

/// A small, fast, deterministic generator (xorshift64*); tests need no statistical quality.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// An invoked op not yet completed: f, key, value.
type OpenOp = (String, String, Value);

/// A history of about `events` events: `concurrency` workers doing read / write / cas on five
/// keys, completions 85% ok, 10% fail, 5% info (the worker continues as a new process), and a
/// partition that starts and stops every `events / 10` events, plus one instant `kill`. One
/// invocation is left open at the end (never completed).
pub fn register_history(events: usize, concurrency: u64, seed: u64) -> History {
    let mut rng = Rng::new(seed);
    let mut out: Vec<Event> = Vec::with_capacity(events + 16);
    let mut time: u64 = 1_000_000;
    // worker -> (process id, open op: (f, key, value))
    let mut workers: Vec<(u64, Option<OpenOp>)> = (0..concurrency).map(|p| (p, None)).collect();
    let mut next_process = concurrency;
    let fault_every = (events / 10).max(4);
    let mut partitioned = false;
    let push = |out: &mut Vec<Event>,
                time: u64,
                process: Process,
                kind: EventType,
                f: &str,
                key: Option<String>,
                value: Value,
                error: Option<String>| {
        let index = out.len() as u64;
        out.push(Event {
            index,
            time,
            process,
            kind,
            f: f.to_string(),
            key,
            value,
            error,
        });
    };
    while out.len() < events {
        time += 1 + rng.below(200_000);
        if out.len() % fault_every == fault_every / 2 {
            let f = if partitioned {
                "stop-partition"
            } else {
                "start-partition"
            };
            push(
                &mut out,
                time,
                Process::Nemesis,
                EventType::Info,
                f,
                None,
                json!({"n1": ["n2", "n3"]}),
                None,
            );
            partitioned = !partitioned;
            continue;
        }
        if out.len() == events / 3 {
            push(
                &mut out,
                time,
                Process::Nemesis,
                EventType::Info,
                "kill",
                None,
                json!(["n2"]),
                None,
            );
            continue;
        }
        let w = rng.below(concurrency) as usize;
        let (process, open) = &mut workers[w];
        match open.take() {
            None => {
                let key = format!("k{}", rng.below(5));
                let (f, value) = match rng.below(3) {
                    0 => ("read", Value::Null),
                    1 => ("write", json!(rng.below(10))),
                    _ => ("cas", json!([rng.below(10), rng.below(10)])),
                };
                push(
                    &mut out,
                    time,
                    Process::Client(*process),
                    EventType::Invoke,
                    f,
                    Some(key.clone()),
                    value.clone(),
                    None,
                );
                *open = Some((f.to_string(), key, value));
            }
            Some((f, key, value)) => {
                let roll = rng.below(100);
                let (kind, error) = if roll < 85 {
                    (EventType::Ok, None)
                } else if roll < 95 {
                    (EventType::Fail, Some("cas-mismatch".to_string()))
                } else {
                    (EventType::Info, Some("timed-out".to_string()))
                };
                let value = if f == "read" && kind == EventType::Ok {
                    json!(rng.below(10))
                } else {
                    value
                };
                push(
                    &mut out,
                    time,
                    Process::Client(*process),
                    kind,
                    &f,
                    Some(key),
                    value,
                    error,
                );
                if kind == EventType::Info {
                    *process = next_process;
                    next_process += 1;
                }
            }
        }
    }
    // Complete every open op but one, which stays open (never completed).
    let mut left_open = false;
    for (process, open) in workers.iter_mut() {
        if let Some((f, key, value)) = open.take() {
            if !left_open {
                left_open = true;
                continue;
            }
            time += 1000;
            push(
                &mut out,
                time,
                Process::Client(*process),
                EventType::Ok,
                &f,
                Some(key),
                value,
                None,
            );
        }
    }
    History::new(out)
}

/// Invoke event indices of the first `n` ops on `key`.
pub fn invokes_on(history: &History, key: &str, n: usize) -> Vec<u64> {
    history
        .events
        .iter()
        .filter(|e| e.kind == EventType::Invoke && e.key.as_deref() == Some(key))
        .take(n)
        .map(|e| e.index)
        .collect()
}

/// Results as a run with a linearizability failure on `k0` would have them.
pub fn run_results(history: &History) -> RunResults {
    let on_k0 = invokes_on(history, "k0", 6);
    let (prefix, unplaceable) = on_k0.split_at(on_k0.len().saturating_sub(2));
    let lin = Anomaly {
        kind: "nonlinearizable".into(),
        ops: unplaceable.to_vec(),
        explanation: "no linearization of key k0 can place the last ops after the prefix".into(),
        data: json!({
            "key": "k0",
            "model": "cas-register",
            "prefix": prefix,
            "unplaceable": unplaceable,
            "states": prefix.iter().enumerate().map(|(i, _)| format!("{i}")).collect::<Vec<_>>(),
        }),
    };
    let lost = Anomaly {
        kind: "lost".into(),
        ops: on_k0.iter().take(2).copied().collect(),
        explanation: "an acknowledged write was never read".into(),
        data: json!({"value": 7}),
    };
    let mut r = RunResults::new(
        "etcd-register",
        vec![
            CheckResult::valid("stats", format!("{} events", history.events.len())),
            CheckResult::invalid(
                "linearizable",
                "key k0 is not linearizable",
                vec![lin, lost],
            ),
            CheckResult::unknown(
                "set",
                "time budget of 10 s ran out after 1200 of 5000 elements",
            ),
        ],
    );
    r.seed = Some(42);
    r.command = Some("faultline run --test etcd-register --seed 42 --time-limit 60s".into());
    r.started_at = Some("2024-05-01T12:00:00Z".into());
    r
}

pub fn plan() -> Value {
    json!({
        "system": "etcd",
        "versions": {"etcd": "3.4.23"},
        "nodes": ["n1", "n2", "n3"],
        "workload": "register",
        "nemesis": ["partition-halves", "kill"],
        "seed": 42,
        "time_limit": "60s",
        "concurrency": 10,
    })
}
