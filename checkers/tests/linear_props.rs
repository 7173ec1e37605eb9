//! Properties of the linearizability checker.
//!
//! - Histories recorded from a sequential execution, with overlapping intervals and timeouts,
//!   are linearizable; changing one read to a value never written makes them not.
//! - A read of a value no write could have produced is never judged valid.
//! - On small random histories (any mix of ok, fail, info and never-completed ops) the verdict
//!   equals that of an exhaustive search without memo or pruning, for the register, queue and
//!   set models: every shortcut the search takes is checked against the definition.
//! - So it does on histories of several keys (checked on every core at once, the parallel
//!   path), on info-heavy histories, and on histories of more than 64 ops (bitsets of several
//!   words); there the exhaustive search keeps a memo of failed configurations, and nothing
//!   else, so that it finishes.
//! - So it does when the search restarts with the other order (info ops first) after a few
//!   configurations, and with values spread wide enough that many are never read (the
//!   registers merge those into one).
//! - A history with nothing completed to check is `unknown`, never `valid`.

use checkers::linear::models::{FifoQueue, Register, Set, UnorderedQueue};
use checkers::linear::synth::{register_history, SynthParams};
use checkers::linear::{check_model, check_model_threads, check_model_tuned, Model};
use checkers::{Budget, Event, EventType, History, Process, Verdict};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

/// A value no generated history ever writes.
const NEVER_WRITTEN: u64 = 1_000_000;

fn verdict<M: Model>(model: M, history: &History) -> Verdict {
    check_model(model, history, &Budget::default())
        .expect("well-formed")
        .verdict
}

fn cas_register() -> Register {
    Register::new(true, None)
}

/// Positions (in `history.events`) of ok reads.
fn ok_reads(history: &History) -> Vec<usize> {
    history
        .events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.f == "read" && e.kind == EventType::Ok)
        .map(|(i, _)| i)
        .collect()
}

fn synth_params() -> impl Strategy<Value = SynthParams> {
    (
        any::<u64>(),
        1usize..150,
        0usize..4,
        1usize..8,
        1u64..6,
        0u32..300,
        any::<bool>(),
    )
        .prop_map(
            |(seed, ops, keys, processes, values, info_per_mille, cas)| SynthParams {
                seed,
                ops,
                keys,
                processes,
                values,
                info_per_mille,
                cas,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn a_history_recorded_from_a_sequential_execution_is_linearizable(p in synth_params()) {
        let history = register_history(&p);
        // Something definite to check: an ok op, or a cas that observed a mismatch.
        let completed = history.events.iter().any(|e| {
            e.kind == EventType::Ok || e.error.as_deref() == Some("cas-mismatch")
        });
        let expected = if completed { Verdict::Valid } else { Verdict::Unknown };
        prop_assert_eq!(verdict(cas_register(), &history), expected);
    }

    #[test]
    fn one_read_of_a_value_never_written_makes_it_not(p in synth_params(), pick in any::<prop::sample::Index>()) {
        let mut history = register_history(&p);
        let reads = ok_reads(&history);
        prop_assume!(!reads.is_empty());
        history.events[*pick.get(&reads)].value = json!(NEVER_WRITTEN);
        prop_assert_eq!(verdict(cas_register(), &history), Verdict::Invalid);
    }
}

// --- small random histories against an exhaustive search ----------------------------------

/// One generated op: what, its values, how it ended, and when.
#[derive(Debug, Clone)]
struct Spec {
    kind: u8,
    a: u8,
    b: u8,
    /// 0 ok, 1 fail, 2 info, 3 never completed.
    outcome: u8,
    start: u16,
    len: u16,
    key: u8,
}

fn spec() -> impl Strategy<Value = Spec> {
    (0u8..3, 0u8..4, 0u8..3, 0u8..4, 0u16..20, 1u16..8).prop_map(
        |(kind, a, b, outcome, start, len)| Spec {
            kind,
            a,
            b,
            outcome,
            start,
            len,
            key: 0,
        },
    )
}

/// Like [`spec`], on one of three keys, with two ops in three indeterminate (info or never
/// completed).
fn info_heavy_keyed_spec() -> impl Strategy<Value = Spec> {
    (spec(), 0u8..3, 0u8..6).prop_map(|(s, key, outcome)| Spec {
        key,
        outcome: [0, 1, 2, 2, 3, 3][outcome as usize],
        ..s
    })
}

/// More than 64 ops on one key, spread out in time so that about five overlap at once, one in
/// twelve indeterminate (each indeterminate op doubles what the exhaustive search explores).
fn wide_specs() -> impl Strategy<Value = Vec<Spec>> {
    prop::collection::vec(spec(), 65..100).prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(i, s)| Spec {
                start: (i as u16) * 2 + s.start % 4,
                outcome: if s.a == 0 && s.b == 0 {
                    2
                } else {
                    s.outcome % 2
                },
                ..s
            })
            .collect()
    })
}

/// Small values, where 3 stands for nil.
fn small(v: u8) -> Value {
    if v == 3 {
        Value::Null
    } else {
        json!(v)
    }
}

/// A history from specs: each op on its own process, events ordered by time (invocations
/// first on ties). `ops(kind, a, b)` gives f, the invocation's value and the completion's.
fn history(specs: &[Spec], ops: impl Fn(&Spec) -> (&'static str, Value, Value)) -> History {
    let mut timed: Vec<(u32, u8, Event)> = Vec::new();
    for (p, s) in specs.iter().enumerate() {
        let (f, invoke, complete) = ops(s);
        let event = |kind, value| Event {
            index: 0,
            time: 0,
            process: Process::Client(p as u64),
            kind,
            f: f.to_string(),
            key: (s.key > 0).then(|| format!("k{}", s.key)),
            value,
            // faultline's clients fail a cas only on a real comparison, and say so.
            error: (kind == EventType::Fail && f == "cas").then(|| "cas-mismatch".to_string()),
        };
        timed.push((u32::from(s.start), 0, event(EventType::Invoke, invoke)));
        let kind = match s.outcome {
            0 => EventType::Ok,
            1 => EventType::Fail,
            2 => EventType::Info,
            _ => continue,
        };
        timed.push((u32::from(s.start + s.len), 1, event(kind, complete)));
    }
    timed.sort_by_key(|(t, order, _)| (*t, *order));
    let events = timed
        .into_iter()
        .enumerate()
        .map(|(i, (t, _, mut e))| {
            e.index = i as u64;
            e.time = t as u64;
            e
        })
        .collect();
    History::new(events)
}

fn register_ops(s: &Spec) -> (&'static str, Value, Value) {
    match s.kind {
        0 => ("read", Value::Null, small(s.a)),
        1 => ("write", small(s.a % 3), small(s.a % 3)),
        _ => ("cas", json!([s.a % 3, s.b]), json!([s.a % 3, s.b])),
    }
}

/// Register ops over values 0..8, so that many written values are never read or compared.
fn register_ops_wide(s: &Spec) -> (&'static str, Value, Value) {
    let v = |x: u8| json!(x % 8);
    match s.kind {
        0 => (
            "read",
            Value::Null,
            v(s.a.wrapping_mul(3).wrapping_add(s.b)),
        ),
        1 => ("write", v(s.a + 2 * s.b), v(s.a + 2 * s.b)),
        _ => (
            "cas",
            json!([s.a % 3, (s.a + s.b) % 8]),
            json!([s.a % 3, (s.a + s.b) % 8]),
        ),
    }
}

fn queue_ops(s: &Spec) -> (&'static str, Value, Value) {
    match s.kind {
        0 | 1 => ("enqueue", json!(s.a), json!(s.a)),
        _ => ("dequeue", Value::Null, small(s.a)),
    }
}

fn set_ops(s: &Spec) -> (&'static str, Value, Value) {
    match s.kind {
        0 | 1 => ("add", json!(s.a % 3), json!(s.a % 3)),
        _ => {
            let seen: Vec<u8> = (0..3).filter(|bit| s.b & (1 << bit) != 0).collect();
            ("read", Value::Null, json!(seen))
        }
    }
}

/// Linearizable by definition: some order of all definite ops and any subset of indeterminate
/// ones respects real time (an op completed before another was invoked goes first) and the
/// model accepts it. Exhaustive, key by key (linearizability is local); no pruning, and a memo
/// of failed configurations only when `memo` is set. `None`: nothing definite to check.
fn oracle<M: Model>(mut model: M, history: &History, memo: bool) -> Option<bool> {
    struct O<I> {
        input: I,
        call: u64,
        ret: u64,
        info: bool,
    }
    type Keyed<I> = (Option<String>, Vec<O<I>>);
    let mut keys: Vec<Keyed<M::Input>> = Vec::new();
    for op in history.ops().expect("well-formed") {
        let decoded = if op.is_fail() {
            model.decode_failed(&op)
        } else {
            model.decode(&op)
        };
        if let Some(input) = decoded.expect("decodes") {
            let key = model.partition(&op);
            let slot = match keys.iter().position(|(k, _)| *k == key) {
                Some(i) => i,
                None => {
                    keys.push((key, Vec::new()));
                    keys.len() - 1
                }
            };
            keys[slot].1.push(O {
                input,
                call: op.invoke_index,
                ret: if op.is_info() {
                    u64::MAX
                } else {
                    op.complete_index.unwrap()
                },
                info: op.is_info(),
            });
        }
    }
    if keys.iter().all(|(_, ops)| ops.iter().all(|o| o.info)) {
        return None;
    }
    type Failed<S> = HashSet<(u128, S)>;
    fn go<M: Model>(
        model: &M,
        ops: &[O<M::Input>],
        placed: u128,
        state: &M::State,
        failed: &mut Option<Failed<M::State>>,
    ) -> bool {
        let pending_definite = ops
            .iter()
            .enumerate()
            .filter(|(i, o)| placed & (1 << i) == 0 && !o.info);
        let Some(deadline) = pending_definite.map(|(_, o)| o.ret).min() else {
            return true;
        };
        if let Some(f) = failed {
            if f.contains(&(placed, state.clone())) {
                return false;
            }
        }
        for (i, o) in ops.iter().enumerate() {
            if placed & (1 << i) != 0 || o.call > deadline {
                continue;
            }
            let nexts = model
                .branches(state, &o.input)
                .unwrap_or_else(|| model.step(state, &o.input).into_iter().collect());
            if nexts
                .iter()
                .any(|next| go(model, ops, placed | (1 << i), next, failed))
            {
                return true;
            }
        }
        if let Some(f) = failed {
            f.insert((placed, state.clone()));
        }
        false
    }
    Some(keys.iter().all(|(key, ops)| {
        assert!(ops.len() <= 128, "the oracle's bitset holds 128 ops");
        let mut failed = memo.then(HashSet::new);
        go(&model, ops, 0, &model.init(key.as_deref()), &mut failed)
    }))
}

fn expected_verdict<M: Model>(model: M, history: &History, memo: bool) -> Verdict {
    match oracle(model, history, memo) {
        None => Verdict::Unknown,
        Some(true) => Verdict::Valid,
        Some(false) => Verdict::Invalid,
    }
}

fn agree<M: Model + Clone>(model: M, history: &History) -> Result<(), TestCaseError> {
    let expected = expected_verdict(model.clone(), history, false);
    let result = check_model(model, history, &Budget::default()).expect("well-formed");
    same(&result, expected)
}

/// As [`agree`], on every core from the first step, against the oracle with its memo.
fn agree_in_parallel<M: Model + Clone>(model: M, history: &History) -> Result<(), TestCaseError> {
    let expected = expected_verdict(model.clone(), history, true);
    let result = check_model_threads(model, history, &Budget::default(), Duration::ZERO)
        .expect("well-formed");
    same(&result, expected)
}

/// As [`agree_in_parallel`], with every search restarting after `restart` configurations (and
/// twice as many every second attempt), alternating the order in which candidates are tried.
fn agree_restarting<M: Model + Clone>(
    model: M,
    history: &History,
    restart: u64,
) -> Result<(), TestCaseError> {
    let expected = expected_verdict(model.clone(), history, true);
    let result = check_model_tuned(model, history, &Budget::default(), Duration::ZERO, restart)
        .expect("well-formed");
    same(&result, expected)
}

fn same(result: &checkers::CheckResult, expected: Verdict) -> Result<(), TestCaseError> {
    prop_assert_eq!(result.verdict, expected, "{}", result.summary);
    if expected == Verdict::Invalid {
        // Every invalid key carries its evidence: the op no order could place.
        prop_assert_eq!(
            result.anomalies.len(),
            result.details["invalid_keys"].as_array().unwrap().len()
        );
        for a in &result.anomalies {
            prop_assert!(!a.data["unplaceable"].as_array().unwrap().is_empty());
        }
    }
    if expected == Verdict::Unknown {
        prop_assert!(result
            .unknown_reason
            .as_deref()
            .unwrap()
            .starts_with("no completed operations to check"));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn the_register_search_agrees_with_exhaustive_search(specs in prop::collection::vec(spec(), 1..8)) {
        agree(cas_register(), &history(&specs, register_ops))?;
    }

    #[test]
    fn the_fifo_queue_search_agrees_with_exhaustive_search(specs in prop::collection::vec(spec(), 1..8)) {
        agree(FifoQueue::new(None).unwrap(), &history(&specs, queue_ops))?;
    }

    #[test]
    fn the_unordered_queue_search_agrees_with_exhaustive_search(specs in prop::collection::vec(spec(), 1..8)) {
        agree(UnorderedQueue::new(None).unwrap(), &history(&specs, queue_ops))?;
    }

    #[test]
    fn the_set_search_agrees_with_exhaustive_search(specs in prop::collection::vec(spec(), 1..8)) {
        agree(Set::new(None).unwrap(), &history(&specs, set_ops))?;
    }

    #[test]
    fn several_info_heavy_keys_agree_with_exhaustive_search_in_parallel(
        specs in prop::collection::vec(info_heavy_keyed_spec(), 1..22),
    ) {
        agree_in_parallel(cas_register(), &history(&specs, register_ops))?;
    }

    #[test]
    fn info_heavy_keys_agree_with_exhaustive_search_across_restarts(
        specs in prop::collection::vec(info_heavy_keyed_spec(), 1..22),
        restart in 1u64..6,
    ) {
        agree_restarting(cas_register(), &history(&specs, register_ops), restart)?;
    }

    #[test]
    fn values_never_read_agree_with_exhaustive_search(
        specs in prop::collection::vec(info_heavy_keyed_spec(), 1..22),
        restart in prop::sample::select(vec![1u64, 3, 1 << 20]),
    ) {
        agree_restarting(cas_register(), &history(&specs, register_ops_wide), restart)?;
    }

    #[test]
    fn a_read_no_write_could_produce_is_never_valid(
        specs in prop::collection::vec(spec(), 1..30),
        pick in any::<prop::sample::Index>(),
    ) {
        let mut history = history(&specs, register_ops);
        let reads = ok_reads(&history);
        prop_assume!(!reads.is_empty());
        history.events[*pick.get(&reads)].value = json!(NEVER_WRITTEN);
        let v = verdict(cas_register(), &history);
        prop_assert_ne!(v, Verdict::Valid);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn more_than_64_ops_agree_with_exhaustive_search(specs in wide_specs()) {
        agree_in_parallel(cas_register(), &history(&specs, register_ops))?;
    }

    #[test]
    fn more_than_64_ops_agree_with_exhaustive_search_across_restarts(specs in wide_specs()) {
        agree_restarting(cas_register(), &history(&specs, register_ops_wide), 2)?;
    }

    #[test]
    fn more_than_64_ops_of_a_queue_agree_with_exhaustive_search(specs in wide_specs()) {
        agree_in_parallel(FifoQueue::new(None).unwrap(), &history(&specs, queue_ops))?;
    }
}
