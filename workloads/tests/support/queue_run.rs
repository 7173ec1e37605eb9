//! One run of a queue workload through the real runner against live servers, judged by the
//! workload's own checkers: the shared body of the "a healthy system passes the delivery
//! checker" tests (NATS, RabbitMQ, Redis streams; also the RabbitMQ cluster test at the root,
//! which includes this file by path).

use checkers::{Budget, Verdict};
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use workloads::generator;
use workloads::{build, PhaseLimits, Recorder, Runner, RunnerConfig, WorkloadOptions};

/// What to run and how much success to expect.
pub struct QueueRun {
    pub system: &'static str,
    pub workload: &'static str,
    pub opts: WorkloadOptions,
    pub nodes: Vec<String>,
    pub concurrency: usize,
    pub seed: u64,
    /// Operations of the main phase.
    pub ops_max: u64,
    /// Grace of each phase after its time limit.
    pub grace: Duration,
    /// Successful produces and acks each expected, at least.
    pub ok_min: usize,
}

/// Runs the main phase and the final drain, records into `history`, and asserts: enough ok
/// produces and acks, a final drain that came back empty, and every checker valid.
pub async fn run_and_expect_valid(run: QueueRun, history: &Path) {
    for r in run_and_check(run, history).await {
        assert_eq!(r.verdict, Verdict::Valid, "{}: {}", r.checker, r.summary);
    }
}

/// [`run_and_expect_valid`] without the verdict assertion: the workload's checker results.
#[allow(dead_code)] // not every including test file judges verdicts itself
pub async fn run_and_check(run: QueueRun, history: &Path) -> Vec<checkers::CheckResult> {
    let recorder = Recorder::create(history).unwrap();
    let (w, factory) = build(run.system, run.workload, &run.opts).unwrap();
    let config = RunnerConfig::new(run.concurrency, run.nodes, run.seed);
    let mut runner = Runner::start(config, factory, recorder.clone())
        .await
        .unwrap();
    let limits = PhaseLimits {
        time_limit: Duration::from_secs(60),
        grace: run.grace,
    };
    let cancel = CancellationToken::new();
    runner
        .run_phase(generator::limit(run.ops_max, w.generator), limits, &cancel)
        .await
        .unwrap();
    runner
        .run_phase(w.final_generator.unwrap(), limits, &cancel)
        .await
        .unwrap();
    runner.close().await.unwrap();
    recorder.finish().await.unwrap();

    let history = checkers::formats::read_path(history, None).unwrap();
    let ops = history.ops().unwrap();
    let count = |f: &str| ops.iter().filter(|o| o.f == f && o.is_ok()).count();
    assert!(
        count("produce") > run.ok_min && count("ack") > run.ok_min,
        "produces {} acks {}",
        count("produce"),
        count("ack")
    );
    assert_eq!(
        ops.iter().rfind(|o| o.f == "drain").unwrap().complete_value,
        json!([])
    );
    w.checkers
        .iter()
        .map(|spec| {
            let checker = checkers::by_name(&spec.name, &spec.options).unwrap();
            checkers::run_checker(checker.as_ref(), &history, &Budget::default()).unwrap()
        })
        .collect()
}

/// A run in which a tenth of the acks stall for `stall` first (a plan's `[client]` ack stalls),
/// judged as exactly-once: asserts that some acks stalled (the history marks them) and that
/// every checker still finds the run valid, i.e. no message was committed twice.
#[allow(dead_code)]
pub async fn expect_stalled_acks_to_commit_once(
    system: &'static str,
    workload: &'static str,
    node: String,
    stall: &str,
    history: &Path,
) {
    let client = [
        ("ack-stall-probability", json!(0.1)),
        ("ack-stall", json!(stall)),
        ("guarantee", json!("exactly-once")),
    ];
    let run = QueueRun {
        system,
        workload,
        opts: WorkloadOptions {
            client: client
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            seed: 9,
            ..WorkloadOptions::default()
        },
        nodes: vec![node],
        concurrency: 5,
        seed: 9,
        ops_max: 200,
        grace: Duration::from_secs(4),
        ok_min: 30,
    };
    let results = run_and_check(run, history).await;
    let text = std::fs::read_to_string(history).unwrap();
    let stalled = text.matches("stalled_ms").count() + text.matches("after holding").count();
    assert!(stalled > 0, "no ack stalled");
    for r in results {
        assert_eq!(r.verdict, Verdict::Valid, "{}: {}", r.checker, r.summary);
    }
}
