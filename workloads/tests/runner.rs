//! The runner and recorder against in-memory systems: what a real run writes to history.jsonl,
//! read back with the checkers crate.

use async_trait::async_trait;
use checkers::{EventType, History, Op, Process};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use workloads::clients::memory::{MemoryQueueFactory, MemoryRegisterFactory, RegisterBug};
use workloads::generator::{self, Gen};
use workloads::workload::{self, RegisterOptions};
use workloads::{
    Client, ClientFactory, Completion, Invocation, PhaseEnd, PhaseLimits, PhaseSummary, Recorder,
    Runner, RunnerConfig,
};

fn limits(time_limit_ms: u64) -> PhaseLimits {
    PhaseLimits {
        time_limit: Duration::from_millis(time_limit_ms),
        grace: Duration::from_millis(200),
    }
}

fn config(concurrency: usize, seed: u64) -> RunnerConfig {
    let mut c = RunnerConfig::new(concurrency, vec!["n1".into(), "n2".into()], seed);
    c.op_timeout = Duration::from_millis(200);
    c.connect_timeout = Duration::from_millis(500);
    c
}

/// Runs one phase of `gen` against `factory`, returns the phase summary and the history as read
/// back from the file (its ops paired and validated).
async fn run_one(
    dir: &Path,
    factory: Arc<dyn ClientFactory>,
    gen: Gen,
    config: RunnerConfig,
    phase: PhaseLimits,
) -> (PhaseSummary, History, Vec<Op>) {
    let path = dir.join("history.jsonl");
    let recorder = Recorder::create(&path).unwrap();
    let mut runner = Runner::start(config, factory, recorder.clone())
        .await
        .unwrap();
    let summary = runner
        .run_phase(gen, phase, &CancellationToken::new())
        .await
        .unwrap();
    runner.close().await.unwrap();
    recorder.finish().await.unwrap();
    let (history, ops) = read_back(&path);
    (summary, history, ops)
}

fn read_back(path: &Path) -> (History, Vec<Op>) {
    let history = checkers::formats::read_path(path, None).unwrap();
    let ops = history
        .ops()
        .unwrap_or_else(|e| panic!("invalid history: {e}"));
    (history, ops)
}

/// Reads (by key) that returned a value which had been overwritten before the read began: the
/// write of that value completed, then another write was invoked and completed, all before the
/// read was invoked. Sound only for write-once values (every write a fresh value).
fn stale_reads(ops: &[Op]) -> Vec<&Op> {
    let writes: Vec<&Op> = ops.iter().filter(|o| o.f == "write").collect();
    ops.iter()
        .filter(|r| r.f == "read" && r.is_ok() && !r.complete_value.is_null())
        .filter(|r| {
            let Some(w) = writes
                .iter()
                .find(|w| w.key == r.key && w.invoke_value == r.complete_value)
            else {
                return false;
            };
            let Some(w_done) = w.complete_time else {
                return false;
            };
            writes.iter().any(|w2| {
                w2.key == r.key
                    && w2.is_ok()
                    && w2.invoke_time > w_done
                    && w2.complete_time.is_some_and(|t| t < r.invoke_time)
            })
        })
        .collect()
}

/// Writes of fresh values (0, 1, 2, ...) and reads, on one key.
fn fresh_writes_and_reads() -> Gen {
    let mut next = 0i64;
    let writes = generator::from_fn(move |_| {
        next += 1;
        Invocation::new("write", json!(next)).with_key("x")
    });
    let reads = generator::repeat(Invocation::new("read", Value::Null).with_key("x"));
    generator::mix(vec![writes, reads])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linearizable_register_under_concurrency_records_a_valid_paired_history() {
    let dir = tempfile::tempdir().unwrap();
    let w = workload::register(&RegisterOptions::default());
    let gen = generator::limit(3000, w.generator);
    let (summary, history, ops) = run_one(
        dir.path(),
        Arc::new(MemoryRegisterFactory::new()),
        gen,
        config(10, 42),
        limits(20_000),
    )
    .await;
    assert_eq!(summary.ended, PhaseEnd::Exhausted);
    assert_eq!(summary.invoked, 3000);
    assert_eq!(ops.len(), 3000);
    assert!(
        ops.iter().all(|o| o.complete_index.is_some()),
        "every op completed"
    );
    assert_eq!(
        summary.ok + summary.fail,
        3000,
        "nothing indeterminate in memory"
    );
    // Real concurrency: some operation was invoked while another was still running.
    let overlapping = ops
        .windows(2)
        .any(|w| w[1].invoke_index < w[0].complete_index.unwrap());
    assert!(overlapping, "workers interleave");
    // The vocabulary the linearizability checker reads.
    for o in &ops {
        assert!(o.key.as_deref().is_some_and(|k| k.starts_with('r')));
        match o.f.as_str() {
            "read" => assert!(o.invoke_value.is_null()),
            "write" => assert!(o.invoke_value.is_i64()),
            "cas" => assert!(o.invoke_value.as_array().is_some_and(|a| a.len() == 2)),
            other => panic!("unexpected f {other}"),
        }
    }
    assert!(ops.iter().any(|o| o.f == "cas" && o.is_ok()));
    assert!(ops.iter().any(|o| o.f == "cas" && o.is_fail()));
    // Times are monotonic in index order, indices dense from 0.
    for (i, e) in history.events.iter().enumerate() {
        assert_eq!(e.index, i as u64);
    }
    assert!(history.events.windows(2).all(|w| w[0].time <= w[1].time));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_linearizable_register_never_serves_an_overwritten_value() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, ops) = run_one(
        dir.path(),
        Arc::new(MemoryRegisterFactory::new()),
        generator::limit(3000, fresh_writes_and_reads()),
        config(8, 1),
        limits(20_000),
    )
    .await;
    assert!(ops.iter().filter(|o| o.f == "read" && o.is_ok()).count() > 1000);
    assert_eq!(stale_reads(&ops).len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_register_with_the_stale_read_bug_serves_overwritten_values() {
    let dir = tempfile::tempdir().unwrap();
    let factory = MemoryRegisterFactory::with_bug(RegisterBug::StaleReads { probability: 0.3 }, 5);
    let (_, _, ops) = run_one(
        dir.path(),
        Arc::new(factory),
        generator::limit(3000, fresh_writes_and_reads()),
        config(8, 1),
        limits(20_000),
    )
    .await;
    let stale = stale_reads(&ops);
    assert!(stale.len() > 10, "only {} stale reads", stale.len());
}

/// A client that never answers every `hang_every`-th operation of the run, and answers ok
/// otherwise. Counts opens and closes.
struct Hanging {
    hang_every: u64,
    calls: Arc<AtomicU64>,
    opens: Arc<AtomicU64>,
    closes: Arc<AtomicU64>,
}

struct HangingClient {
    hang_every: u64,
    calls: Arc<AtomicU64>,
    closes: Arc<AtomicU64>,
}

#[async_trait]
impl ClientFactory for Hanging {
    fn name(&self) -> String {
        "hanging".into()
    }
    async fn open(&self, _process: u64, _node: &str) -> anyhow::Result<Box<dyn Client>> {
        self.opens.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(HangingClient {
            hang_every: self.hang_every,
            calls: Arc::clone(&self.calls),
            closes: Arc::clone(&self.closes),
        }))
    }
}

#[async_trait]
impl Client for HangingClient {
    async fn invoke(&mut self, op: &Invocation) -> Completion {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n.is_multiple_of(self.hang_every) {
            std::future::pending::<()>().await;
        }
        Completion::ok(op.value.clone())
    }
    async fn close(&mut self) {
        self.closes.fetch_add(1, Ordering::SeqCst);
    }
}

fn hanging(hang_every: u64) -> (Arc<Hanging>, Arc<AtomicU64>, Arc<AtomicU64>) {
    let opens = Arc::new(AtomicU64::new(0));
    let closes = Arc::new(AtomicU64::new(0));
    let f = Hanging {
        hang_every,
        calls: Arc::new(AtomicU64::new(0)),
        opens: Arc::clone(&opens),
        closes: Arc::clone(&closes),
    };
    (Arc::new(f), opens, closes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_operation_is_info_and_its_process_id_is_retired() {
    let dir = tempfile::tempdir().unwrap();
    let (factory, opens, closes) = hanging(7);
    let concurrency = 4;
    let (summary, _, ops) = run_one(
        dir.path(),
        factory,
        generator::limit(60, generator::repeat(Invocation::new("write", json!(1)))),
        config(concurrency, 3),
        limits(20_000),
    )
    .await;
    let infos: Vec<&Op> = ops.iter().filter(|o| o.is_info()).collect();
    assert!(!infos.is_empty());
    assert_eq!(summary.info, infos.len() as u64);
    for o in &infos {
        assert_eq!(o.error.as_deref(), Some("timed-out"));
        assert!(
            o.complete_index.is_some(),
            "a timeout is recorded, not left open"
        );
    }
    // Every retired process whose thread ran again was followed by process + concurrency.
    let c = concurrency as u64;
    let processes: HashSet<u64> = ops.iter().map(|o| o.process).collect();
    let followed: Vec<&&Op> = infos
        .iter()
        .filter(|o| {
            ops.iter()
                .any(|l| l.invoke_index > o.invoke_index && l.process % c == o.process % c)
        })
        .collect();
    assert!(!followed.is_empty());
    for o in &followed {
        assert!(
            processes.contains(&(o.process + c)),
            "process {} has no successor",
            o.process
        );
    }
    // (History::ops() already rejected any invoke by a retired process.)
    // A client is closed after each timeout, and a new one opened for the successor process
    // (besides one per thread at the start and one each for setup and teardown).
    assert_eq!(opens.load(Ordering::SeqCst), c + followed.len() as u64 + 2);
    assert!(closes.load(Ordering::SeqCst) >= infos.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_file_is_readable_while_the_run_is_still_going() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let recorder = Recorder::create(&path).unwrap();
    let mut runner = Runner::start(
        config(2, 9),
        Arc::new(MemoryRegisterFactory::new()),
        recorder.clone(),
    )
    .await
    .unwrap();
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let gen = generator::rate(
        200.0,
        workload::register(&RegisterOptions::default()).generator,
    );
    let run = tokio::spawn(async move {
        let s = runner.run_phase(gen, limits(60_000), &stop).await.unwrap();
        runner.close().await.unwrap();
        s
    });
    // Within a few flush intervals, events are on disk while the phase still runs.
    let mut seen = 0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let text = std::fs::read_to_string(&path).unwrap();
        seen = text.lines().count();
        if seen >= 20 {
            // Whatever is on disk is whole lines of a valid history prefix.
            let complete: String = text.lines().map(|l| format!("{l}\n")).collect();
            let h = checkers::formats::read_str(&complete, None).unwrap();
            h.ops().unwrap();
            break;
        }
    }
    assert!(!run.is_finished(), "the run was still going");
    assert!(seen >= 20, "only {seen} events on disk while running");
    cancel.cancel();
    let summary = run.await.unwrap();
    assert_eq!(summary.ended, PhaseEnd::Cancelled);
    recorder.finish().await.unwrap();
    let (_, ops) = read_back(&path);
    assert_eq!(ops.len() as u64, summary.invoked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_stops_generation_and_interrupted_operations_become_info() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let recorder = Recorder::create(&path).unwrap();
    // Every 2nd op hangs; the op timeout is longer than the test, so only the interruption at the
    // end of the grace period can complete them.
    let (factory, _, _) = hanging(2);
    let mut cfg = config(3, 1);
    cfg.op_timeout = Duration::from_secs(3600);
    let mut runner = Runner::start(cfg, factory, recorder.clone()).await.unwrap();
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.cancel();
    });
    let gen = generator::repeat(Invocation::new("write", json!(1)));
    let summary = runner
        .run_phase(gen, limits(60_000), &cancel)
        .await
        .unwrap();
    assert_eq!(summary.ended, PhaseEnd::Cancelled);
    assert_eq!(summary.interrupted, 3, "all three threads were hanging");
    recorder.finish().await.unwrap();
    let (_, ops) = read_back(&path);
    let interrupted = ops
        .iter()
        .filter(|o| o.is_info() && o.error.as_deref() == Some("interrupted"))
        .count();
    assert_eq!(interrupted, 3);
    assert!(ops.iter().all(|o| o.complete_index.is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_time_limit_ends_an_endless_generator() {
    let dir = tempfile::tempdir().unwrap();
    let (summary, _, ops) = run_one(
        dir.path(),
        Arc::new(MemoryRegisterFactory::new()),
        generator::rate(
            500.0,
            workload::register(&RegisterOptions::default()).generator,
        ),
        config(4, 2),
        limits(300),
    )
    .await;
    assert_eq!(summary.ended, PhaseEnd::TimeLimit);
    assert!(summary.elapsed_ms < 5_000.0, "bounded by limit + grace");
    assert!(!ops.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_final_phase_after_the_main_one_drains_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let recorder = Recorder::create(&path).unwrap();
    let w = workload::queue(&Default::default());
    let mut runner = Runner::start(
        config(4, 8),
        Arc::new(MemoryQueueFactory::new()),
        recorder.clone(),
    )
    .await
    .unwrap();
    let cancel = CancellationToken::new();
    let main = runner
        .run_phase(generator::limit(500, w.generator), limits(20_000), &cancel)
        .await
        .unwrap();
    assert_eq!(main.ended, PhaseEnd::Exhausted);
    // (The controller heals faults here.)
    recorder
        .record_nemesis(EventType::Info, "heal", Value::Null)
        .await
        .unwrap();
    let fin = runner
        .run_phase(w.final_generator.unwrap(), limits(20_000), &cancel)
        .await
        .unwrap();
    assert_eq!(fin.ended, PhaseEnd::Exhausted);
    runner.close().await.unwrap();
    recorder.finish().await.unwrap();
    let (history, ops) = read_back(&path);
    // Every produced id is delivered exactly once, by consume or drain; the last drain is empty.
    let produced: BTreeMap<u64, &Op> = ops
        .iter()
        .filter(|o| o.f == "produce" && o.is_ok())
        .map(|o| (o.invoke_value["id"].as_u64().unwrap(), o))
        .collect();
    let mut delivered: HashMap<u64, u32> = HashMap::new();
    for o in ops
        .iter()
        .filter(|o| (o.f == "consume" || o.f == "drain") && o.is_ok())
    {
        for m in o.complete_value.as_array().unwrap() {
            *delivered.entry(m["id"].as_u64().unwrap()).or_default() += 1;
        }
    }
    assert!(produced.len() > 100);
    for id in produced.keys() {
        assert_eq!(delivered.get(id), Some(&1), "id {id}");
    }
    let last = ops.iter().rfind(|o| o.f == "drain").unwrap();
    assert_eq!(last.complete_value, json!([]));
    assert!(history
        .events
        .iter()
        .any(|e| e.process == Process::Nemesis && e.f == "heal"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_thread_the_same_seed_records_the_same_operations() {
    async fn ops_for(seed: u64) -> Vec<(String, Option<String>, Value, Value)> {
        let dir = tempfile::tempdir().unwrap();
        let gen = generator::limit(
            300,
            workload::register(&RegisterOptions::default()).generator,
        );
        let (_, _, ops) = run_one(
            dir.path(),
            Arc::new(MemoryRegisterFactory::new()),
            gen,
            config(1, seed),
            limits(20_000),
        )
        .await;
        ops.into_iter()
            .map(|o| (o.f, o.key, o.invoke_value, o.complete_value))
            .collect()
    }
    let a = ops_for(77).await;
    assert_eq!(a.len(), 300);
    assert_eq!(a, ops_for(77).await);
    assert_ne!(a, ops_for(78).await);
}

struct Unreachable;

#[async_trait]
impl ClientFactory for Unreachable {
    fn name(&self) -> String {
        "unreachable".into()
    }
    async fn open(&self, process: u64, node: &str) -> anyhow::Result<Box<dyn Client>> {
        if process == workloads::runner::SETUP_PROCESS {
            return MemoryRegisterFactory::new().open(process, node).await;
        }
        anyhow::bail!("connection refused by {node}")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_without_a_client_fails_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let writes_then_cas = generator::seq(vec![
        generator::limit(5, generator::repeat(Invocation::new("write", json!(1)))),
        generator::once(Invocation::new("cas", json!([1, 2]))),
    ]);
    let (summary, _, ops) = run_one(
        dir.path(),
        Arc::new(Unreachable),
        writes_then_cas,
        config(2, 0),
        limits(5_000),
    )
    .await;
    assert_eq!((summary.fail, summary.info), (5, 1));
    for o in &ops {
        let error = o.error.as_deref().unwrap();
        if o.f == "cas" {
            // Never sent, but `fail` on a CAS would claim the register did not hold 1.
            assert!(o.is_info(), "{o:?}");
            assert!(error.starts_with("not-applied: no-client: connection refused by n"));
        } else {
            assert!(o.is_fail(), "{o:?}");
            assert!(error.starts_with("no-client: connection refused by n"));
        }
    }
}

/// While a server is down, a thread backs off between attempts to open a client instead of
/// recording a `no-client` failure as fast as the loop turns: two threads against a server that
/// refuses every connection for one second record tens of failures (10 ms, 20 ms, ... up to
/// 1 s apart), not the thousands the unthrottled loop recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_without_a_client_backs_off_between_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let writes = generator::repeat(Invocation::new("write", json!(1)));
    let (summary, _, ops) = run_one(
        dir.path(),
        Arc::new(Unreachable),
        writes,
        config(2, 0),
        limits(1_000),
    )
    .await;
    assert!(summary.fail > 0, "{summary:?}");
    assert!(
        summary.invoked <= 2 * 10,
        "at most 8 attempts a second per thread, plus the one in flight: {summary:?}"
    );
    assert!(ops.iter().all(|o| o.is_fail()), "{ops:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_counters_follow_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let recorder = Recorder::create(&path).unwrap();
    recorder
        .record_nemesis(EventType::Info, "start-partition", json!({"n1": ["n2"]}))
        .await
        .unwrap();
    let mut runner = Runner::start(
        config(3, 4),
        Arc::new(MemoryRegisterFactory::new()),
        recorder.clone(),
    )
    .await
    .unwrap();
    let summary = runner
        .run_phase(
            generator::limit(
                200,
                workload::register(&RegisterOptions::default()).generator,
            ),
            limits(20_000),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    runner.close().await.unwrap();
    let done = recorder.finish().await.unwrap();
    let stats = done.stats;
    assert_eq!(stats.invoked, 200);
    assert_eq!(stats.total.ok, summary.ok);
    assert_eq!(stats.total.fail, summary.fail);
    assert_eq!(
        stats
            .by_f
            .values()
            .map(|c| c.ok + c.fail + c.info)
            .sum::<u64>(),
        200
    );
    assert_eq!(stats.active_faults.get("partition"), Some(&1));
    assert_eq!(
        done.events, 401,
        "200 invocations, 200 completions, 1 nemesis event"
    );
    // After finish, the recorder refuses further events.
    assert!(recorder
        .record_nemesis(EventType::Info, "stop-partition", Value::Null)
        .await
        .is_err());
}
