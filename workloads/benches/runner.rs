//! Throughput of the runner itself: the scheduler, 100 workers, the recorder writing a real
//! history.jsonl, against the in-memory linearizable register (so the client costs nothing).
//!
//! `cargo bench -p workloads --bench runner` prints operations recorded per second (each is an
//! invocation and a completion event on disk). Environment: `RUNNER_BENCH_OPS` (default 500000),
//! `RUNNER_BENCH_CONCURRENCY` (default 100), `RUNNER_BENCH_WORKERS` (tokio worker threads,
//! default 2, the target machine's cores).

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use workloads::clients::memory::MemoryRegisterFactory;
use workloads::generator;
use workloads::workload::{self, RegisterOptions};
use workloads::{PhaseLimits, Recorder, Runner, RunnerConfig};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let ops = env_or("RUNNER_BENCH_OPS", 500_000);
    let concurrency = env_or("RUNNER_BENCH_CONCURRENCY", 100) as usize;
    let workers = env_or("RUNNER_BENCH_WORKERS", 2) as usize;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("history.jsonl");
    let (summary, elapsed, events, bytes) = rt.block_on(async {
        let recorder = Recorder::create(&path).expect("history file");
        let config = RunnerConfig::new(concurrency, vec!["memory".into()], 1);
        let mut runner = Runner::start(
            config,
            Arc::new(MemoryRegisterFactory::new()),
            recorder.clone(),
        )
        .await
        .expect("runner");
        let w = workload::register(&RegisterOptions::default());
        let started = Instant::now();
        let summary = runner
            .run_phase(
                generator::limit(ops, w.generator),
                PhaseLimits {
                    time_limit: Duration::from_secs(600),
                    grace: Duration::from_secs(5),
                },
                &CancellationToken::new(),
            )
            .await
            .expect("phase");
        runner.close().await.expect("close");
        let done = recorder.finish().await.expect("finish");
        let elapsed = started.elapsed();
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        (summary, elapsed, done.events, bytes)
    });
    let completed = summary.ok + summary.fail + summary.info;
    let secs = elapsed.as_secs_f64();
    println!(
        "runner: concurrency {concurrency}, {workers} tokio worker threads, in-memory register, history to a real file"
    );
    println!(
        "runner: {completed} ops ({events} events, {:.1} MB) in {secs:.2} s",
        bytes as f64 / 1e6
    );
    println!(
        "runner: ops recorded per second: {:.0} (target >= 50000)",
        completed as f64 / secs
    );
}
