//! The convergence check on three in-process testbed nodes (no Docker): a healthy cluster whose
//! third node missed writes in a partition catches up once idle and passes; with the
//! `replica-divergence` bug the last node keeps older values and is named with the key and
//! both values.

use checkers::Verdict;
use faultline::convergence::{check, record_nodes};
use serde_json::json;
use std::time::Duration;
use testbed::config::Settings;
use testbed::{Bug, Cluster, ClusterSpec};
use workloads::clients::testbed::{Family, TestbedFactory, TestbedOptions};
use workloads::{ClientFactory, Invocation};

/// Writes `keys` keys through the primary (n1 or n2) with n3 cut off for the second half,
/// heals, and returns the judged reading of every node.
async fn writes_then_convergence(bug: Option<Bug>, keys: usize) -> checkers::CheckResult {
    let settings = Settings {
        lease: Duration::from_millis(300),
        peer_timeout: Duration::from_millis(250),
        ..Settings::default()
    };
    let c = Cluster::start(ClusterSpec {
        nodes: 3,
        bugs: bug.into_iter().collect(),
        settings,
        durable: false,
    })
    .await
    .expect("the cluster starts");
    // n3 is a backup throughout: the one a partition cuts off, and the one the bug affects.
    c.partition(&[&[0, 1], &[2]]);
    let primary = c
        .wait_for_primary(&[2], Duration::from_secs(10))
        .await
        .expect("a primary among n1 and n2");
    c.heal();
    let factory = TestbedFactory::new(Family::Register, TestbedOptions::default());
    let mut client = factory.open(1, &c.addr(primary)).await.unwrap();
    for i in 0..keys {
        if i == keys / 2 {
            c.partition(&[&[0, 1], &[2]]);
        }
        let op = Invocation::new("write", json!(i)).with_key(format!("r{i}"));
        let done = client.invoke(&op).await;
        assert_eq!(done.kind, checkers::EventType::Ok, "write {i}: {done:?}");
    }
    c.heal();
    let nodes: Vec<(String, String)> = (0..c.len())
        .map(|i| (c.name(i).to_string(), c.addr(i)))
        .collect();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "convergence-{}",
        if bug.is_some() { "bug" } else { "healthy" }
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let readings = record_nodes(&factory, &nodes, &dir)
        .await
        .unwrap()
        .expect("the register family reads each node");
    assert!(dir.join("convergence.json").is_file());
    check(&readings)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_cluster_converges_after_a_partition_heals() {
    let r = writes_then_convergence(None, 30).await;
    assert_eq!(r.verdict, Verdict::Valid, "{}", r.summary);
    assert!(r.summary.contains("30 keys on 3 nodes"), "{}", r.summary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_skips_writes_is_named_with_key_and_both_values() {
    let r = writes_then_convergence(Some(Bug::ReplicaDivergence), 30).await;
    assert_eq!(r.verdict, Verdict::Invalid, "{}", r.summary);
    assert!(r.anomalies.iter().all(|a| a.data["node"] == "n3"));
    let a = &r.anomalies[0];
    assert_eq!(a.kind, "diverged");
    assert!(
        a.explanation.starts_with("once quiescent, n3 holds r")
            && a.explanation.contains("while n1, n2 hold"),
        "{}",
        a.explanation
    );
}
