//! The RabbitMQ queue workload against a real three-node cluster (quorum queue replicated over
//! all three): a short healthy run through `workloads::Runner`, one client process per node,
//! checked by the delivery checker.

mod cluster_support;

use checkers::{Budget, Verdict};
use cluster_support::{docker_or_skip, leftovers, start};
use serde_json::json;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use workloads::generator;
use workloads::{build, PhaseLimits, Recorder, Runner, RunnerConfig, WorkloadOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_cluster_delivers_every_confirmed_message() {
    let Some(()) = docker_or_skip("rabbitmq queue workload") else {
        return;
    };
    let c = start("rabbitmq").await;
    let run_id = c.run_id().to_string();
    let nodes: Vec<String> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| c.host_addr(n, "amqp").unwrap().to_string())
        .collect();

    let dir = std::env::temp_dir().join(format!("faultline-workload-rabbitmq-{run_id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("history.jsonl");
    let recorder = Recorder::create(&path).unwrap();
    let (w, factory) = build("rabbitmq", "queue", &WorkloadOptions::default()).unwrap();
    let config = RunnerConfig::new(7, nodes, 3);
    let mut runner = Runner::start(config, factory, recorder.clone())
        .await
        .unwrap();
    let limits = PhaseLimits {
        time_limit: Duration::from_secs(60),
        grace: Duration::from_secs(5),
    };
    let cancel = CancellationToken::new();
    runner
        .run_phase(generator::limit(400, w.generator), limits, &cancel)
        .await
        .unwrap();
    runner
        .run_phase(w.final_generator.unwrap(), limits, &cancel)
        .await
        .unwrap();
    runner.close().await.unwrap();
    recorder.finish().await.unwrap();

    let history = checkers::formats::read_path(&path, None).unwrap();
    let ops = history.ops().unwrap();
    let count = |f: &str| ops.iter().filter(|o| o.f == f && o.is_ok()).count();
    assert!(
        count("produce") > 50 && count("ack") > 50,
        "produces {} acks {}",
        count("produce"),
        count("ack")
    );
    assert_eq!(
        ops.iter().rfind(|o| o.f == "drain").unwrap().complete_value,
        json!([])
    );
    for spec in &w.checkers {
        let checker = checkers::by_name(&spec.name, &spec.options).unwrap();
        let r = checkers::run_checker(checker.as_ref(), &history, &Budget::default()).unwrap();
        assert_eq!(r.verdict, Verdict::Valid, "{}: {}", spec.name, r.summary);
    }
    let _ = std::fs::remove_dir_all(&dir);

    c.teardown().await.unwrap();
    assert_eq!(leftovers(&run_id).await, (0, 0));
}
