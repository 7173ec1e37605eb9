//! Synthetic register histories whose answer is known, for tests and benchmarks.
//!
//! The generator runs a real sequential cas-register per key and records what concurrent
//! clients would have seen: every op gets an interval, takes effect at one instant inside it
//! (an op that times out takes effect at a random later instant, or never), and its result is
//! what the register returned at that instant. So the history is linearizable by construction;
//! a test can then break it on purpose. Deterministic for a given seed.

use crate::history::{Event, EventType, History, Process};
use serde_json::{json, Value};

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthParams {
    pub seed: u64,
    pub ops: usize,
    /// Keys the ops spread over (one register each); 0 means ops carry no key.
    pub keys: usize,
    /// Concurrent client workers.
    pub processes: usize,
    /// Written values are drawn from `0..values`; fewer values make the search harder.
    pub values: u64,
    /// Per mille of ops that time out (`info`); the worker continues as a new process.
    pub info_per_mille: u32,
    /// Mix in cas ops (a failed cas completes `fail`).
    pub cas: bool,
}

impl Default for SynthParams {
    fn default() -> Self {
        SynthParams {
            seed: 1,
            ops: 200,
            keys: 1,
            processes: 5,
            values: 5,
            info_per_mille: 20,
            cas: true,
        }
    }
}

/// SplitMix64: small, fast, and good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Read,
    Write(u64),
    Cas(u64, u64),
}

struct Planned {
    process: u64,
    key: Option<usize>,
    kind: Kind,
    start: u64,
    end: u64,
    /// When it takes effect; `None` for a timed-out op that never does.
    effect: Option<u64>,
    timed_out: bool,
    /// Filled in by the sequential run: the value read, or whether a cas swapped.
    read: Option<u64>,
    swapped: bool,
}

/// A linearizable register history (cas-register model; a read of nil is a key never
/// written). Times are in nanoseconds.
pub fn register_history(p: &SynthParams) -> History {
    let mut rng = Rng(p.seed);
    let mut planned: Vec<Planned> = Vec::with_capacity(p.ops);
    let workers = p.processes.max(1);
    let mut clock = vec![0u64; workers];
    let mut process: Vec<u64> = (0..workers as u64).collect();
    let mut next_process = workers as u64;
    for _ in 0..p.ops {
        // The worker that is free first goes next, so the ops interleave.
        let w = (0..workers).min_by_key(|&w| clock[w]).unwrap_or(0);
        let start = clock[w] + rng.below(20_000);
        let end = start + 1_000 + rng.below(100_000);
        let kind = match rng.below(10) {
            0..=4 => Kind::Read,
            5..=7 if p.cas => Kind::Cas(rng.below(p.values), rng.below(p.values)),
            _ => Kind::Write(rng.below(p.values)),
        };
        let timed_out = rng.below(1000) < p.info_per_mille as u64;
        let effect = if !timed_out {
            Some(start + rng.below(end - start))
        } else if rng.below(2) == 0 {
            // A timed-out op may still take effect, even after its caller gave up.
            Some(start + rng.below(4 * (end - start)))
        } else {
            None
        };
        planned.push(Planned {
            process: process[w],
            key: (p.keys > 0).then(|| rng.below(p.keys as u64) as usize),
            kind,
            start,
            end,
            effect,
            timed_out,
            read: None,
            swapped: false,
        });
        clock[w] = end + 1;
        if timed_out {
            process[w] = next_process;
            next_process += 1;
        }
    }
    // The sequential run, in effect order.
    let mut order: Vec<usize> = (0..planned.len())
        .filter(|&i| planned[i].effect.is_some())
        .collect();
    order.sort_by_key(|&i| (planned[i].effect, i));
    let mut registers: Vec<Option<u64>> = vec![None; p.keys.max(1)];
    for i in order {
        let op = &mut planned[i];
        let reg = &mut registers[op.key.unwrap_or(0)];
        match op.kind {
            Kind::Read => op.read = *reg,
            Kind::Write(v) => *reg = Some(v),
            Kind::Cas(old, new) => {
                if *reg == Some(old) {
                    *reg = Some(new);
                    op.swapped = true;
                }
            }
        }
    }
    // A cas that took effect after its worker timed out is an info op anyway; a read that
    // never took effect only happens to timed-out reads (they read nothing).
    let mut events: Vec<(u64, u8, Event)> = Vec::with_capacity(2 * planned.len());
    for op in &planned {
        let (f, invoke_value) = match op.kind {
            Kind::Read => ("read", Value::Null),
            Kind::Write(v) => ("write", json!(v)),
            Kind::Cas(old, new) => ("cas", json!([old, new])),
        };
        let key = op.key.map(|k| format!("k{k}"));
        let (kind, value) = if op.timed_out {
            (EventType::Info, Value::Null)
        } else {
            match op.kind {
                Kind::Read => (EventType::Ok, op.read.map_or(Value::Null, |v| json!(v))),
                Kind::Cas(..) if !op.swapped => (EventType::Fail, invoke_value.clone()),
                _ => (EventType::Ok, invoke_value.clone()),
            }
        };
        let event = |time, kind, value| Event {
            index: 0,
            time,
            process: Process::Client(op.process),
            kind,
            f: f.to_string(),
            key: key.clone(),
            value,
            error: None,
        };
        events.push((
            op.start,
            0,
            event(op.start, EventType::Invoke, invoke_value.clone()),
        ));
        let mut done = event(op.end, kind, value);
        if op.timed_out {
            done.error = Some("timed-out".to_string());
        } else if kind == EventType::Fail {
            // A cas that found another value, as faultline's clients record it.
            done.error = Some(super::models::CAS_MISMATCH.to_string());
        }
        events.push((op.end, 1, done));
    }
    events.sort_by_key(|(t, order, _)| (*t, *order));
    History::new(
        events
            .into_iter()
            .enumerate()
            .map(|(i, (_, _, mut e))| {
                e.index = i as u64;
                e
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_history_pairs_and_has_the_asked_shape() {
        let h = register_history(&SynthParams {
            ops: 300,
            keys: 3,
            info_per_mille: 50,
            ..SynthParams::default()
        });
        let ops = h.ops().expect("well-formed");
        assert_eq!(ops.len(), 300);
        assert!(ops.iter().any(|o| o.is_info()));
        assert!(ops.iter().any(|o| o.is_fail()));
        assert_eq!(
            ops.iter()
                .filter_map(|o| o.key.clone())
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            3
        );
    }
}
