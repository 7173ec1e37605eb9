//! The testbed's queue generators: consumes followed by the acks, nacks and offset commits a
//! thread owes, and the final drain.

use super::*;

/// Work a thread owes after a consume: acks (or nacks) of what it received, then offset commits.
#[derive(Default)]
pub(super) struct Owed {
    acks: VecDeque<Value>,
    commits: BTreeMap<u64, u64>,
}

/// Produce unique ids and consume them; a thread that received messages acknowledges each (or,
/// in the retry workload, rejects each: processing always fails), then commits the offsets past
/// them, before it does anything else. Offsets are committed even when an ack failed, as a real
/// consumer whose lease silently expired would.
pub(super) struct QueueGen {
    group: String,
    partitions: u32,
    nack: bool,
    commit_offsets: bool,
    next_id: u64,
    owed: BTreeMap<usize, Owed>,
}

impl QueueGen {
    pub(super) fn new(o: &TestbedOptions, nack: bool, commit_offsets: bool) -> QueueGen {
        QueueGen {
            group: o.group.clone(),
            partitions: o.partitions.max(1),
            nack,
            commit_offsets,
            next_id: 0,
            owed: BTreeMap::new(),
        }
    }
}

/// The ack (or nack) of a delivery: its id plus where it was, so the client can name it.
pub(super) fn ack_of(f: &str, delivery: &Value) -> Invocation {
    let mut v = json!({ "id": delivery.get("id").cloned().unwrap_or(Value::Null) });
    for k in ["partition", "offset"] {
        if let Some(x) = delivery.get(k) {
            v[k] = x.clone();
        }
    }
    Invocation::new(f, v)
}

pub(super) fn owed_after(done: &Completed<'_>, owed: &mut BTreeMap<usize, Owed>, commit: bool) {
    if done.completion.kind == EventType::Info {
        // The process is replaced: its leases and membership are gone with it.
        owed.remove(&done.thread);
        return;
    }
    if !matches!(done.op.f.as_str(), "consume" | "drain") || done.completion.kind != EventType::Ok {
        return;
    }
    let Some(list) = done.completion.value.as_array() else {
        return;
    };
    let w = owed.entry(done.thread).or_default();
    for d in list {
        w.acks.push_back(json!(d));
        if commit {
            if let (Some(p), Some(o)) = (
                d.get("partition").and_then(Value::as_u64),
                d.get("offset").and_then(Value::as_u64),
            ) {
                let e = w.commits.entry(p).or_insert(0);
                *e = (*e).max(o + 1);
            }
        }
    }
}

impl Generator for QueueGen {
    fn next(&mut self, ctx: &mut Ctx<'_>) -> Next {
        if ctx.free.is_empty() {
            return Next::Pending { wake_ns: None };
        }
        let ack_f = if self.nack { "nack" } else { "ack" };
        for &t in ctx.free {
            let Some(w) = self.owed.get_mut(&t) else {
                continue;
            };
            let op = if let Some(d) = w.acks.pop_front() {
                ack_of(ack_f, &d)
            } else if let Some((p, o)) = w.commits.pop_first() {
                Invocation::new(
                    "commit-offset",
                    json!({ "group": self.group, "partition": p, "offset": o }),
                )
            } else {
                continue;
            };
            return Next::Op(Planned {
                thread: t,
                at_ns: ctx.time_ns,
                op,
            });
        }
        let Some(thread) = ctx.some_free_thread() else {
            return Next::Pending { wake_ns: None };
        };
        let roll = ctx.rng.random_range(0..10);
        let op = if roll < 5 {
            self.next_id += 1;
            Invocation::new("produce", json!({ "id": self.next_id }))
        } else if roll == 9 && self.commit_offsets {
            let p = ctx.rng.random_range(0..self.partitions);
            Invocation::new(
                "fetch-offset",
                json!({ "group": self.group, "partition": p }),
            )
        } else {
            Invocation::new("consume", Value::Null)
        };
        Next::Op(Planned {
            thread,
            at_ns: ctx.time_ns,
            op,
        })
    }

    fn update(&mut self, done: &Completed<'_>) {
        owed_after(done, &mut self.owed, self.commit_offsets);
    }
}

/// The final phase on one thread: drain, acknowledge (or reject) what came, and again, until a
/// drain comes back empty; then read the dead-letter queue. Drains that deliver nothing are
/// bounded by `drains_max` (a drain that delivers is progress; the phase's time limit bounds
/// those).
pub(super) struct DrainGen {
    thread: Option<usize>,
    busy: bool,
    nack: bool,
    /// Drains left that may come back with nothing.
    drains_left: u64,
    /// Drains left in all (a bug that redelivers forever never drains empty).
    total_left: u64,
    owed: BTreeMap<usize, Owed>,
    stage: DrainStage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DrainStage {
    Draining,
    DeadLetters,
    Done,
}

impl DrainGen {
    pub(super) fn new(drains_max: u64, drain_ops_max: u64, nack: bool) -> DrainGen {
        DrainGen {
            thread: None,
            busy: false,
            nack,
            drains_left: drains_max,
            total_left: drain_ops_max.max(1),
            owed: BTreeMap::new(),
            stage: DrainStage::Draining,
        }
    }
}

impl Generator for DrainGen {
    fn next(&mut self, ctx: &mut Ctx<'_>) -> Next {
        if self.stage == DrainStage::Done {
            return Next::Done;
        }
        let t = *self
            .thread
            .get_or_insert_with(|| ctx.all.iter().copied().min().expect("a phase has threads"));
        if self.busy || !ctx.free.contains(&t) {
            return Next::Pending { wake_ns: None };
        }
        let f = if self.nack { "nack" } else { "ack" };
        let op = match self.owed.get_mut(&t).and_then(|w| w.acks.pop_front()) {
            Some(d) => ack_of(f, &d),
            None if self.stage == DrainStage::DeadLetters => {
                self.stage = DrainStage::Done;
                Invocation::new("dead-letter", Value::Null)
            }
            None if self.drains_left == 0 || self.total_left == 0 => {
                self.stage = DrainStage::Done;
                Invocation::new("dead-letter", Value::Null)
            }
            None => Invocation::new("drain", Value::Null),
        };
        self.busy = true;
        Next::Op(Planned {
            thread: t,
            at_ns: ctx.time_ns,
            op,
        })
    }

    fn update(&mut self, done: &Completed<'_>) {
        if Some(done.thread) != self.thread {
            return;
        }
        self.busy = false;
        let empty_drain = done.op.f == "drain"
            && done.completion.kind == EventType::Ok
            && done.completion.value.as_array().is_some_and(Vec::is_empty);
        if empty_drain && self.stage == DrainStage::Draining {
            self.stage = DrainStage::DeadLetters;
        }
        let delivered = done.op.f == "drain"
            && done.completion.kind == EventType::Ok
            && done
                .completion
                .value
                .as_array()
                .is_some_and(|l| !l.is_empty());
        if done.op.f == "drain" && !delivered {
            self.drains_left = self.drains_left.saturating_sub(1);
        }
        if done.op.f == "drain" {
            self.total_left = self.total_left.saturating_sub(1);
        }
        owed_after(done, &mut self.owed, false);
    }
}
