//! Generators, specified on a virtual clock: `simulate` runs the real scheduler with a scripted
//! client, so rates, phases and time limits are checked exactly, without waiting.

use checkers::EventType;
use serde_json::{json, Value};
use std::time::Duration;
use workloads::generator::*;
use workloads::op::{Completion, Invocation};
use workloads::schedule::{simulate, SimOp};

const MS: u64 = 1_000_000;

fn read() -> Invocation {
    Invocation::new("read", Value::Null)
}

fn write(v: i64) -> Invocation {
    Invocation::new("write", json!(v))
}

/// Runs `gen` with `threads` workers, 1 ms per op, every op ok.
fn run(gen: Gen, threads: usize, seed: u64) -> Vec<SimOp> {
    simulate(gen, threads, seed, MS, 100_000, |_| {
        Completion::ok(Value::Null)
    })
}

fn fs(ops: &[SimOp]) -> Vec<&str> {
    ops.iter().map(|o| o.op.f.as_str()).collect()
}

fn random_writes() -> Gen {
    from_fn(|rng| {
        use rand::RngExt;
        write(rng.random_range(0..1000))
    })
}

#[test]
fn the_same_seed_yields_the_same_operations_on_the_same_threads() {
    let make = || limit(500, mix(vec![random_writes(), repeat(read())]));
    let a = run(make(), 5, 7);
    let b = run(make(), 5, 7);
    let c = run(make(), 5, 8);
    assert_eq!(a.len(), 500);
    assert_eq!(a, b);
    assert_ne!(a, c, "another seed draws other operations");
}

#[test]
fn mix_weighted_draws_in_proportion_to_the_weights() {
    let gen = limit(
        4000,
        mix_weighted(vec![(3, repeat(read())), (1, repeat(write(1)))]),
    );
    let ops = run(gen, 4, 1);
    let reads = fs(&ops).iter().filter(|f| **f == "read").count();
    let share = reads as f64 / ops.len() as f64;
    assert!((0.72..0.78).contains(&share), "read share {share}");
}

#[test]
fn mix_drops_exhausted_generators_and_ends_with_the_last() {
    let gen = mix(vec![once(write(1)), limit(3, repeat(read()))]);
    let ops = run(gen, 2, 3);
    let mut f = fs(&ops);
    f.sort();
    assert_eq!(f, ["read", "read", "read", "write"]);
}

#[test]
fn rate_spaces_operations_over_all_threads() {
    // 1000 ops/s for 2 s of virtual time on 50 threads: about 2000 operations, never two at the
    // same instant by accident of the thread count.
    let gen = time_limit(Duration::from_secs(2), rate(1000.0, repeat(read())));
    let ops = run(gen, 50, 11);
    assert!((1900..=2100).contains(&ops.len()), "{} ops", ops.len());
    let starts: Vec<u64> = ops.iter().map(|o| o.start_ns).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn delay_keeps_a_fixed_gap_when_threads_are_free() {
    let ops = run(
        limit(5, delay(Duration::from_millis(10), repeat(read()))),
        3,
        0,
    );
    let starts: Vec<u64> = ops.iter().map(|o| o.start_ns / MS).collect();
    assert_eq!(starts, [0, 10, 20, 30, 40]);
}

#[test]
fn time_limit_plans_nothing_at_or_after_its_deadline() {
    let gen = time_limit(Duration::from_millis(100), repeat(read()));
    let ops = run(gen, 2, 0);
    // 1 ms per op on 2 threads: 2 ops per ms for 100 ms.
    assert_eq!(ops.len(), 200);
    assert!(ops.iter().all(|o| o.start_ns < 100 * MS));
}

#[test]
fn phases_start_only_when_every_operation_of_the_previous_phase_completed() {
    let gen = phases(vec![
        limit(7, repeat(write(1))),
        sleep(Duration::from_millis(5)),
        limit(4, repeat(read())),
    ]);
    let ops = run(gen, 3, 2);
    assert_eq!(fs(&ops).iter().filter(|f| **f == "write").count(), 7);
    let last_write_done = ops
        .iter()
        .filter(|o| o.op.f == "write")
        .map(|o| o.start_ns + MS)
        .max()
        .unwrap();
    let first_read = ops
        .iter()
        .filter(|o| o.op.f == "read")
        .map(|o| o.start_ns)
        .min()
        .unwrap();
    assert_eq!(
        first_read,
        last_write_done + 5 * MS,
        "the sleep phase sits between"
    );
}

#[test]
fn seq_runs_generators_one_after_the_other() {
    let ops = run(
        seq(vec![once(write(1)), once(write(2)), once(read())]),
        1,
        0,
    );
    let values: Vec<(&str, &Value)> = ops.iter().map(|o| (o.op.f.as_str(), &o.op.value)).collect();
    assert_eq!(
        values,
        [
            ("write", &json!(1)),
            ("write", &json!(2)),
            ("read", &Value::Null)
        ]
    );
}

#[test]
fn each_thread_gives_every_thread_its_own_copy() {
    let ops = run(each_thread(|| ops(vec![read(), write(9)])), 4, 5);
    for t in 0..4 {
        let mine: Vec<&str> = ops
            .iter()
            .filter(|o| o.thread == t)
            .map(|o| o.op.f.as_str())
            .collect();
        assert_eq!(mine, ["read", "write"], "thread {t}");
    }
}

#[test]
fn reserve_splits_threads_between_generators() {
    let gen = reserve(
        vec![(1, limit(10, repeat(write(1))))],
        limit(30, repeat(read())),
    );
    let ops = run(gen, 4, 9);
    assert!(ops
        .iter()
        .filter(|o| o.op.f == "write")
        .all(|o| o.thread == 0));
    assert!(ops
        .iter()
        .filter(|o| o.op.f == "read")
        .all(|o| o.thread != 0));
    assert_eq!(ops.len(), 40);
}

#[test]
fn until_ok_retries_until_an_ok_and_no_further() {
    // The first two reads fail, the third is ok: one thread reads three times, then stops.
    let mut calls = 0;
    let ops = simulate(until_ok(10, repeat(read())), 1, 0, MS, 100, |_| {
        calls += 1;
        if calls <= 2 {
            Completion::fail("unavailable")
        } else {
            Completion::ok(json!(3))
        }
    });
    assert_eq!(ops.len(), 3);
}

#[test]
fn until_ok_gives_up_after_its_attempts() {
    let ops = simulate(until_ok(4, repeat(read())), 2, 0, MS, 100, |_| {
        Completion::info("timed-out")
    });
    assert_eq!(ops.len(), 4);
}

#[test]
fn final_reads_until_ok_on_each_thread() {
    let mut calls = 0;
    let gen = each_thread(|| until_ok(5, repeat(read())));
    let ops = simulate(gen, 3, 0, MS, 100, |_| {
        calls += 1;
        if calls % 2 == 1 {
            Completion::fail("unavailable")
        } else {
            Completion::ok(json!(1))
        }
    });
    for t in 0..3 {
        let last = ops.iter().rfind(|o| o.thread == t).unwrap();
        assert_eq!(
            last.completion.kind,
            EventType::Ok,
            "thread {t} ends with an ok read"
        );
    }
}

#[test]
fn a_process_that_got_info_is_replaced_by_process_plus_concurrency() {
    // Every third op is indeterminate.
    let mut n = 0;
    let ops = simulate(limit(30, repeat(write(1))), 3, 4, MS, 100, |_| {
        n += 1;
        if n % 3 == 0 {
            Completion::info("timed-out")
        } else {
            Completion::ok(Value::Null)
        }
    });
    for (i, o) in ops.iter().enumerate() {
        assert_eq!(
            o.process % 3,
            o.thread as u64,
            "process {} on thread {}",
            o.process,
            o.thread
        );
        if o.completion.is_info() {
            assert!(
                ops[i + 1..].iter().all(|later| later.process != o.process),
                "process {} invoked again after info",
                o.process
            );
        }
    }
    assert!(
        ops.iter().any(|o| o.process >= 3),
        "some process was retired"
    );
}

#[test]
fn map_rewrites_operations_with_the_rng() {
    let gen = map(limit(50, repeat(read())), |op, rng| {
        use rand::RngExt;
        let k = rng.random_range(0..3);
        op.with_key(format!("k{k}"))
    });
    let ops = run(gen, 2, 1);
    assert!(ops
        .iter()
        .all(|o| matches!(o.op.key.as_deref(), Some("k0" | "k1" | "k2"))));
}

#[test]
fn an_exhausted_run_stops_even_when_the_generator_waits_for_nothing() {
    // synchronize over an empty generator: done at once.
    assert!(run(synchronize(nothing()), 2, 0).is_empty());
}
