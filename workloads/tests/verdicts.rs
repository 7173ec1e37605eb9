//! Every in-memory workload of the catalog, run end to end and judged by the checkers it names:
//! the correct systems pass, the buggy ones are flagged.

use checkers::{Budget, Verdict};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use workloads::generator;
use workloads::{build, PhaseLimits, Recorder, Runner, RunnerConfig, WorkloadOptions};

/// Runs `workload` on `system` for `ops` operations (then its final phase) and returns each
/// named checker's verdict.
async fn verdicts(system: &str, workload: &str, ops: u64) -> Vec<(String, Verdict, String)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let recorder = Recorder::create(&path).unwrap();
    let opts = WorkloadOptions {
        seed: 3,
        ..WorkloadOptions::default()
    };
    let (w, factory) = build(system, workload, &opts).unwrap();
    let config = RunnerConfig::new(6, vec!["memory".into()], 11);
    let mut runner = Runner::start(config, factory, recorder.clone())
        .await
        .unwrap();
    let limits = PhaseLimits {
        time_limit: Duration::from_secs(30),
        grace: Duration::from_secs(1),
    };
    let cancel = CancellationToken::new();
    runner
        .run_phase(generator::limit(ops, w.generator), limits, &cancel)
        .await
        .unwrap();
    if let Some(fin) = w.final_generator {
        runner.run_phase(fin, limits, &cancel).await.unwrap();
    }
    runner.close().await.unwrap();
    recorder.finish().await.unwrap();
    let history = checkers::formats::read_path(&path, None).unwrap();
    w.checkers
        .iter()
        .map(|spec| {
            let checker = checkers::by_name(&spec.name, &spec.options).unwrap();
            let budget = Budget {
                time_limit: Some(Duration::from_secs(60)),
                ..Budget::default()
            };
            let r = checkers::run_checker(checker.as_ref(), &history, &budget).unwrap();
            (spec.name.clone(), r.verdict, r.summary)
        })
        .collect()
}

fn assert_all(results: &[(String, Verdict, String)], expected: Verdict) {
    assert!(!results.is_empty(), "the workload names checkers");
    for (name, verdict, summary) in results {
        assert_eq!(*verdict, expected, "{name}: {summary}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_linearizable_register_passes_the_linearizability_checker() {
    assert_all(&verdicts("memory", "register", 2000).await, Verdict::Valid);
    assert_all(
        &verdicts("memory", "cas-register", 2000).await,
        Verdict::Valid,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_reads_are_flagged_as_not_linearizable() {
    assert_all(
        &verdicts("memory-stale", "register", 2000).await,
        Verdict::Invalid,
    );
    assert_all(
        &verdicts("memory-stale", "cas-register", 2000).await,
        Verdict::Invalid,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_memory_queue_delivers_exactly_once() {
    assert_all(&verdicts("memory", "queue", 2000).await, Verdict::Valid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_that_drops_acknowledged_messages_is_flagged() {
    assert_all(
        &verdicts("memory-lossy", "queue", 3000).await,
        Verdict::Invalid,
    );
}
