//! The RabbitMQ queue workload against a real three-node cluster (quorum queue replicated over
//! all three): a short healthy run through `workloads::Runner`, one client process per node,
//! checked by the delivery checker.

mod cluster_support;
#[path = "../workloads/tests/support/queue_run.rs"]
mod queue_run;

use cluster_support::{docker_or_skip, leftovers, start};
use queue_run::{run_and_expect_valid, QueueRun};
use std::time::Duration;
use workloads::WorkloadOptions;

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
    let run = QueueRun {
        system: "rabbitmq",
        workload: "queue",
        opts: WorkloadOptions::default(),
        nodes,
        concurrency: 7,
        seed: 3,
        ops_max: 400,
        grace: Duration::from_secs(5),
        ok_min: 50,
    };
    run_and_expect_valid(run, &dir.join("history.jsonl")).await;
    let _ = std::fs::remove_dir_all(&dir);

    c.teardown().await.unwrap();
    assert_eq!(leftovers(&run_id).await, (0, 0));
}
