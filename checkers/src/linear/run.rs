//! From a history to a result: decode ops, split them into partitions, search the partitions in
//! parallel under one budget, and turn the outcome into a verdict with evidence.

use super::cause::{register_cause, Cause, CauseKind, Seen};
use super::memo::{Control, StopReason};
use super::search::{search, Failure, Outcome, PartOp, SearchStats, RESTART_FIRST_STATES};
use super::Model;
use crate::stream::AnomalyKind;
use crate::{Anomaly, Budget, CheckResult, History, HistoryError, Op};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const CHECKER: &str = "linearizable";
/// Prefix ops named one by one in an explanation; longer prefixes show their last few.
const PREFIX_NAMED_MAX: usize = 6;
const PREFIX_TAIL: usize = 3;

struct Partition<I> {
    key: Option<String>,
    ops: Vec<PartOp<I>>,
}

struct PartResult<S> {
    outcome: Outcome<S>,
    stats: SearchStats,
    elapsed_ms: f64,
}

/// Checks `history` against `model`: the entry point for a model of your own.
///
/// A malformed history is an `Err`; an op the model cannot decode, or a budget that runs out,
/// gives an `unknown` verdict with the reason.
pub fn check_model<M: Model>(
    model: M,
    history: &History,
    budget: &Budget,
) -> Result<CheckResult, HistoryError> {
    check_model_threads(model, history, budget, HELPERS_AFTER)
}

/// [`check_model`] with helper threads brought in after `helpers_after` instead of the usual
/// millisecond; `Duration::ZERO` runs every history of several partitions on every core, so
/// that tests reach the parallel path with small histories.
#[doc(hidden)]
pub fn check_model_threads<M: Model>(
    model: M,
    history: &History,
    budget: &Budget,
    helpers_after: Duration,
) -> Result<CheckResult, HistoryError> {
    check_model_tuned(model, history, budget, helpers_after, RESTART_FIRST_STATES)
}

/// [`check_model_threads`] whose searches restart with the other order after
/// `restart_first_states` configurations (then twice as many every second attempt), so that
/// tests reach every order with small histories.
#[doc(hidden)]
pub fn check_model_tuned<M: Model>(
    mut model: M,
    history: &History,
    budget: &Budget,
    helpers_after: Duration,
    restart_first_states: u64,
) -> Result<CheckResult, HistoryError> {
    let started = Instant::now();
    let deadline = budget.time_limit.map(|t| started + t);
    let ops = history.ops()?;
    // Real-time order is read from event indices: they must increase, as the contract says.
    if let Some(pos) = history
        .events
        .windows(2)
        .position(|w| w[1].index <= w[0].index)
    {
        return Err(HistoryError {
            line: pos + 2,
            message: format!(
                "index {} does not follow {}; expected strictly increasing indices in the order events happened",
                history.events[pos + 1].index,
                history.events[pos].index
            ),
        });
    }
    let places = Places::new(history);

    // Decode, and split by partition (in invocation order within each).
    let mut index: HashMap<Option<String>, usize> = HashMap::new();
    let mut parts: Vec<Partition<M::Input>> = Vec::new();
    let mut dropped = 0usize;
    for (src, op) in ops.iter().enumerate() {
        let decoded = if op.is_fail() {
            model.decode_failed(op)
        } else {
            model.decode(op)
        };
        let input = match decoded {
            Ok(Some(input)) => input,
            Ok(None) => {
                dropped += 1;
                continue;
            }
            Err(message) => {
                let reason = format!(
                    "the {} model cannot check op {} ({}, process {}, {} {}): {message}",
                    model.name(),
                    op.invoke_index,
                    places.at(op.invoke_index),
                    op.process,
                    op.outcome,
                    op.f
                );
                return Ok(CheckResult::unknown(CHECKER, reason));
            }
        };
        let key = model.partition(op);
        let slot = *index.entry(key.clone()).or_insert_with(|| {
            parts.push(Partition {
                key,
                ops: Vec::new(),
            });
            parts.len() - 1
        });
        let info = op.is_info();
        parts[slot].ops.push(PartOp {
            input,
            call: op.invoke_index,
            ret: if info {
                u64::MAX
            } else {
                op.complete_index.unwrap_or(u64::MAX)
            },
            info,
            src,
        });
    }
    parts.sort_by(|a, b| a.key.cmp(&b.key));
    let definite: usize = parts
        .iter()
        .map(|p| p.ops.iter().filter(|o| !o.info).count())
        .sum();
    if definite == 0 {
        // Nothing completed that constrains an order: a check of nothing passes nothing.
        let tally = crate::OpTally::of(history);
        let mut result = CheckResult::nothing_checked(CHECKER, &tally);
        if tally.ok > 0 {
            let reason = format!(
                "{}: the {} model kept no completed op of the {} ok ones as a constraint ({})",
                crate::NOTHING_CHECKED,
                model.name(),
                tally.ok,
                tally.describe()
            );
            result.summary.clone_from(&reason);
            result.unknown_reason = Some(reason);
        }
        return Ok(result);
    }

    let mut control = Control::new(deadline, budget.memory_bytes_max);
    control.restart_first_states = restart_first_states;
    let results = run_partitions(&model, &parts, &control, helpers_after);
    Ok(conclude(
        &model, &ops, &places, &parts, results, &control, dropped, budget,
    ))
}

/// Cores available to this process, looked up once (the lookup reads cgroup files).
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The calling thread works alone for this long before it brings in helper threads: small
/// histories never pay for threads (on a loaded machine a new thread can wait milliseconds for a
/// core), large ones get every core after a millisecond.
const HELPERS_AFTER: Duration = Duration::from_millis(1);

/// Searches every partition, largest first, on up to one thread per core. An invalid partition
/// does not stop the others: a user wants every bad key, not the first one found.
fn run_partitions<M: Model>(
    model: &M,
    parts: &[Partition<M::Input>],
    control: &Control,
    helpers_after: Duration,
) -> Vec<Option<PartResult<M::State>>> {
    let started = Instant::now();
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(parts[i].ops.len()));
    let slots: Vec<Mutex<Option<PartResult<M::State>>>> =
        parts.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    // Claims and checks partitions until none is left; `poll` runs between search steps.
    let work = |poll: &dyn Fn()| loop {
        let k = next.fetch_add(1, Ordering::Relaxed);
        let Some(&i) = order.get(k) else { break };
        if control.should_stop() {
            break;
        }
        poll();
        let part = &parts[i];
        let part_started = Instant::now();
        let init = model.init(part.key.as_deref());
        // The model's rewrite pays where timed-out ops abound (many of them become equal);
        // without info ops the search runs on the ops as they are.
        let (outcome, stats) = if part.ops.iter().any(|o| o.info) {
            let mut simple_init = init.clone();
            let mut inputs: Vec<M::Input> = part.ops.iter().map(|o| o.input.clone()).collect();
            model.simplify_partition(&mut simple_init, &mut inputs);
            let simplified: Vec<PartOp<M::Input>> = part
                .ops
                .iter()
                .zip(inputs)
                .map(|(o, input)| PartOp { input, ..*o })
                .collect();
            let (mut outcome, stats) = search(model, simple_init, &simplified, control, poll);
            if let Outcome::Invalid(failure) = &mut outcome {
                // Evidence in the history's own values: the prefix's state, replayed.
                // (The other states, of other orders, may still show merged values.)
                if let Some(state) = replay(model, &init, &part.ops, &failure.prefix) {
                    let others = failure.states.iter().skip(1).filter(|s| **s != state);
                    failure.states = std::iter::once(state.clone())
                        .chain(others.cloned())
                        .collect();
                }
            }
            (outcome, stats)
        } else {
            search(model, init, &part.ops, control, poll)
        };
        let result = PartResult {
            outcome,
            stats,
            elapsed_ms: part_started.elapsed().as_secs_f64() * 1e3,
        };
        *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
    };
    let threads = if parts.len() > 1 {
        cores().min(parts.len())
    } else {
        1
    };
    if threads <= 1 {
        work(&|| {});
    } else {
        std::thread::scope(|s| {
            let helping = std::cell::Cell::new(false);
            let call_helpers = || {
                if !helping.get()
                    && started.elapsed() >= helpers_after
                    && next.load(Ordering::Relaxed) < order.len()
                {
                    helping.set(true);
                    for _ in 1..threads {
                        s.spawn(|| work(&|| {}));
                    }
                }
            };
            work(&call_helpers);
        });
    }
    slots
        .into_iter()
        .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect()
}

/// The state `prefix` (partition op indices, in order) leaves from `init`, when the model
/// accepts it step by step (a nondeterministic op stops the replay: `None`).
fn replay<M: Model>(
    model: &M,
    init: &M::State,
    ops: &[PartOp<M::Input>],
    prefix: &[usize],
) -> Option<M::State> {
    let mut state = init.clone();
    for &p in prefix {
        let input = &ops[p].input;
        if model.branches(&state, input).is_some() {
            return None;
        }
        state = model.step(&state, input)?;
    }
    Some(state)
}

/// Where an event is, for a person: seconds since the start, or the line when the history has
/// no timestamps.
struct Places {
    synthetic: bool,
    /// (event index, time) in history order.
    events: Vec<(u64, u64)>,
}

impl Places {
    fn new(history: &History) -> Self {
        Places {
            synthetic: history.synthetic_time,
            events: history.events.iter().map(|e| (e.index, e.time)).collect(),
        }
    }

    fn position(&self, index: u64) -> Option<usize> {
        self.events.binary_search_by_key(&index, |&(i, _)| i).ok()
    }

    /// "line 12" or "1.200 s".
    fn at(&self, index: u64) -> String {
        match self.position(index) {
            // Synthetic time is the event's line number in its file.
            Some(p) if self.synthetic => format!("line {}", self.events[p].1),
            Some(p) => format!("{:.3} s", self.events[p].1 as f64 / 1e9),
            None => format!("event {index}"),
        }
    }

    /// "between lines 3 and 9", "between 1.200 s and 1.310 s", "invoked at line 3 and never
    /// completed".
    fn interval(&self, op: &Op) -> String {
        let (call, done) = (self.at(op.invoke_index), op.complete_index);
        match done {
            None => format!("invoked at {call} and never completed"),
            Some(done) => {
                let done = self.at(done);
                if self.synthetic {
                    format!(
                        "between lines {} and {}",
                        call.trim_start_matches("line "),
                        done.trim_start_matches("line ")
                    )
                } else {
                    format!("between {call} and {done}")
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn conclude<M: Model>(
    model: &M,
    ops: &[Op],
    places: &Places,
    parts: &[Partition<M::Input>],
    results: Vec<Option<PartResult<M::State>>>,
    control: &Control,
    dropped: usize,
    budget: &Budget,
) -> CheckResult {
    let name = model.name().to_string();
    // (ops in the partition, anomaly): reported largest partition first.
    let mut invalid: Vec<(usize, Option<String>, Anomaly)> = Vec::new();
    let mut undecided_keys: Vec<Option<String>> = Vec::new();
    let mut stopped = None;
    let mut decided = 0usize;
    let mut total = SearchStats::default();
    let mut per_partition = Vec::new();
    let op_count: usize = parts.iter().map(|p| p.ops.len()).sum();
    for (part, result) in parts.iter().zip(&results) {
        let info_ops = part.ops.iter().filter(|o| o.info).count();
        let key = part.key.clone().map_or(Value::Null, Value::String);
        let Some(result) = result else {
            undecided_keys.push(part.key.clone());
            per_partition.push(json!({"key": key, "ops": part.ops.len(), "info_ops": info_ops, "verdict": "not checked"}));
            continue;
        };
        let verdict = match &result.outcome {
            Outcome::Valid => {
                decided += 1;
                "valid"
            }
            Outcome::Invalid(failure) => {
                decided += 1;
                let anomaly = evidence(model, part, failure, ops, places);
                invalid.push((part.ops.len(), part.key.clone(), anomaly));
                "invalid"
            }
            Outcome::Stopped(reason) => {
                if *reason != StopReason::Cancelled {
                    stopped.get_or_insert(*reason);
                }
                undecided_keys.push(part.key.clone());
                "unknown"
            }
        };
        let s = result.stats;
        total.configurations += s.configurations;
        total.steps += s.steps;
        total.cache_entries += s.cache_entries;
        total.peak_cache_bytes = total.peak_cache_bytes.max(s.peak_cache_bytes);
        per_partition.push(json!({
            "key": key,
            "ops": part.ops.len(),
            "info_ops": info_ops,
            "verdict": verdict,
            "states_explored": s.configurations,
            "steps": s.steps,
            "cache_entries": s.cache_entries,
            "peak_cache_bytes": s.peak_cache_bytes,
            "search_attempts": s.attempts,
            "elapsed_ms": result.elapsed_ms,
        }));
    }
    // Largest partition first; ties by key, so the order is stable.
    invalid.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let invalid_keys: Vec<Option<String>> = invalid.iter().map(|(_, k, _)| k.clone()).collect();
    let anomalies: Vec<Anomaly> = invalid.into_iter().map(|(_, _, a)| a).collect();
    // A partition may also never have started because the time ran out between partitions.
    if !undecided_keys.is_empty() && stopped.is_none() {
        stopped = Some(control.reason().unwrap_or(StopReason::Cancelled));
    }
    let key_json = |k: &Option<String>| k.clone().map_or(Value::Null, Value::String);
    let details = json!({
        "model": name,
        "partitions": parts.len(),
        "partitions_decided": decided,
        "invalid_keys": invalid_keys.iter().map(key_json).collect::<Vec<_>>(),
        "undecided_keys": undecided_keys.iter().map(key_json).collect::<Vec<_>>(),
        "ops": op_count,
        "ops_dropped": dropped,
        "states_explored": total.configurations,
        "steps": total.steps,
        "cache_entries": total.cache_entries,
        "peak_cache_bytes": total.peak_cache_bytes,
        "peak_cache_bytes_all_partitions": control.peak_bytes(),
        "per_partition": per_partition,
    });
    let scope = format!(
        "{op_count} ops in {} partition{} against the {name} model ({dropped} failed or unanswered ops dropped)",
        parts.len(),
        if parts.len() == 1 { "" } else { "s" },
    );
    let limit = stopped.map(|reason| match reason {
        StopReason::TimeLimit => format!(
            "the time limit of {:.3} s ran out",
            budget.time_limit.map_or(0.0, |t| t.as_secs_f64())
        ),
        StopReason::MemoryCap => format!(
            "the search's memo tables reached the memory cap of {}",
            bytes_text(control.memory_bytes_max())
        ),
        StopReason::Cancelled | StopReason::Restart => "the search stopped".to_string(),
    });
    let undecided_text = match &limit {
        Some(limit) if !undecided_keys.is_empty() => format!(
            "; {} undecided ({limit}): {}",
            plural_partitions(undecided_keys.len()),
            keys_text(&undecided_keys)
        ),
        _ => String::new(),
    };
    let result = if let Some(first) = anomalies.first() {
        let summary = format!(
            "not linearizable: {scope}; no valid order exists for {} ({} of {}){undecided_text}. {}",
            keys_text(&invalid_keys),
            anomalies.len(),
            plural_partitions(parts.len()),
            first.explanation
        );
        CheckResult::invalid(CHECKER, summary, anomalies)
    } else if let Some(limit) = limit {
        CheckResult::unknown(
            CHECKER,
            format!(
                "{limit} before the search finished: {decided} of {} decided, none invalid{undecided_text}; {} states explored ({scope})",
                plural_partitions(parts.len()),
                total.configurations
            ),
        )
    } else {
        CheckResult::valid(
            CHECKER,
            format!(
                "linearizable: {scope}; {} states explored",
                total.configurations
            ),
        )
    };
    result.with_details(details)
}

fn plural_partitions(n: usize) -> String {
    if n == 1 {
        "1 partition".to_string()
    } else {
        format!("{n} partitions")
    }
}

/// Keys shown in a summary; long lists keep their first few and say how many in all.
const KEYS_NAMED_MAX: usize = 10;

/// `the history` (one unkeyed partition), `key "a"`, `keys "a", "b", … (12 in all)`.
fn keys_text(keys: &[Option<String>]) -> String {
    let named: Vec<String> = keys.iter().flatten().map(|k| format!("{k:?}")).collect();
    match named.len() {
        0 => "the history".to_string(),
        1 => format!("key {}", named[0]),
        n if n <= KEYS_NAMED_MAX => format!("keys {}", named.join(", ")),
        n => format!(
            "keys {}, … ({n} in all)",
            named[..KEYS_NAMED_MAX].join(", ")
        ),
    }
}

fn bytes_text(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

/// The anomaly of one failing partition, as data and as a sentence.
fn evidence<M: Model>(
    model: &M,
    part: &Partition<M::Input>,
    failure: &Failure<M::State>,
    ops: &[Op],
    places: &Places,
) -> Anomaly {
    let invoke = |p: usize| ops[part.ops[p].src].invoke_index;
    let prefix: Vec<u64> = failure.prefix.iter().map(|&p| invoke(p)).collect();
    let states: Vec<String> = failure
        .states
        .iter()
        .map(|s| model.describe_state(s))
        .collect();
    let key_text = part
        .key
        .as_ref()
        .map_or(String::new(), |k| format!("key {k:?}: "));
    let after = match prefix.len() {
        0 => "from the initial state,".to_string(),
        1 => format!("after op {}", prefix[0]),
        n if n <= PREFIX_NAMED_MAX => format!("after ops {}", join(&prefix)),
        n => format!(
            "after {n} ops (the last: {})",
            join(&prefix[n - PREFIX_TAIL..])
        ),
    };
    let holds = if states.len() > 1 {
        format!("{} (depending on their order)", states.join(" or "))
    } else {
        states.join("")
    };
    let mut involved: Vec<u64> = prefix.iter().rev().take(PREFIX_TAIL).copied().collect();
    let (unplaceable, sentence) = if failure.unplaceable == usize::MAX {
        (
            Vec::new(),
            format!("{key_text}{after} {holds}; no pending operation can take effect there."),
        )
    } else {
        let x = &part.ops[failure.unplaceable];
        let op = &ops[x.src];
        involved.push(op.invoke_index);
        involved.extend(op.complete_index);
        let there = if states.len() > 1 {
            "in any of these states"
        } else {
            "there"
        };
        // Usually the op is impossible in every state the prefix leaves; when it is possible
        // in some, the search proved that those lead nowhere: say which case it is.
        let possible = failure
            .states
            .iter()
            .filter(|s| super::search::possible(model, s, &x.input))
            .count();
        let verdict = if possible == 0 {
            format!(
                "cannot take effect {there}, and no order of the other pending operations lets it"
            )
        } else if possible == states.len() {
            format!("could take effect {there}, but no order of the operations still pending completes a linearization after it")
        } else {
            "cannot take effect in some of these states, and no order of the operations still pending completes a linearization after it from the others".to_string()
        };
        (
            vec![op.invoke_index],
            format!(
                "{key_text}{after} {holds}; op {} (process {}) {} {} {verdict}.",
                op.invoke_index,
                op.process,
                model.describe_op(&x.input),
                places.interval(op),
            ),
        )
    };
    let mut sentence = sentence;
    let mut data = json!({
        "key": part.key,
        "prefix": prefix,
        "unplaceable": unplaceable,
        "states": states,
        "model": model.name(),
    });
    let unplaceable_op = (failure.unplaceable != usize::MAX).then_some(failure.unplaceable);
    if let Some(cause) = likely_cause(model, part, unplaceable_op) {
        let cause_ops: Vec<u64> = cause.ops.iter().map(|&p| invoke(p)).collect();
        involved.extend(&cause_ops);
        sentence.push(' ');
        sentence.push_str(&cause_sentence(model, part, &cause, ops, places));
        data["cause"] = json!(cause.kind.as_str());
        data["cause_ops"] = json!(cause_ops);
    }
    involved.sort_unstable();
    involved.dedup();
    Anomaly {
        kind: super::Kind::Nonlinearizable.name().to_string(),
        ops: involved,
        explanation: sentence,
        data,
    }
}

/// The likely cause of a failed partition, when its model reads as a register.
fn likely_cause<M: Model>(
    model: &M,
    part: &Partition<M::Input>,
    unplaceable: Option<usize>,
) -> Option<Cause> {
    let seen: Option<Vec<Seen<M::State>>> = part
        .ops
        .iter()
        .map(|o| {
            model.register_view(&o.input).map(|view| Seen {
                view,
                call: o.call,
                ret: (!o.info).then_some(o.ret),
            })
        })
        .collect();
    register_cause(&model.init(part.key.as_deref()), &seen?, unplaceable)
}

/// The likely cause as a sentence with the ops' places.
fn cause_sentence<M: Model>(
    model: &M,
    part: &Partition<M::Input>,
    cause: &Cause,
    ops: &[Op],
    places: &Places,
) -> String {
    let op = |k: usize| &ops[part.ops[cause.ops[k]].src];
    let what = |k: usize| model.describe_op(&part.ops[cause.ops[k]].input);
    let done = |o: &Op| {
        o.complete_index
            .map_or("never".to_string(), |i| places.at(i))
    };
    match cause.kind {
        CauseKind::UnwrittenRead => {
            let r = op(0);
            format!(
                "Likely cause: a read of a value no write produced: op {} (process {}) did {} {}, and no write of that value exists.",
                r.invoke_index, r.process, what(0), places.interval(r)
            )
        }
        CauseKind::FailedCas => {
            let c = op(0);
            format!(
                "Likely cause: a failed cas that contradicts every order: op {} (process {}) {} {}.",
                c.invoke_index, c.process, what(0), places.interval(c)
            )
        }
        CauseKind::LostWrite => {
            let (w, r) = (op(0), op(1));
            format!(
                "Likely cause: a lost write: the acknowledged {} (op {}, process {}), completed at {}, was never observed, while op {} (process {}), invoked at {} after it completed, did {}, an older value.",
                what(0), w.invoke_index, w.process, done(w), r.invoke_index, r.process, places.at(r.invoke_index), what(1)
            )
        }
        CauseKind::StaleRead => {
            let (r, w) = (op(0), op(1));
            format!(
                "Likely cause: a stale read: op {} (process {}) did {}, invoked at {}, though {} (op {}, process {}), invoked after every write of that value completed, had completed at {}.",
                r.invoke_index, r.process, what(0), places.at(r.invoke_index), what(1), w.invoke_index, w.process, done(w)
            )
        }
    }
}

fn join(ids: &[u64]) -> String {
    ids.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
