//! The testbed as a system under test: three containers running `faultline testbed-node` (the
//! faultline binary copied in), node flags passed through, writes and reads through any node,
//! the primary found by the leader query, a failover after kill -9 of the primary, the old
//! primary back (its data dir kept) holding the key, and nothing left after teardown.

mod cluster_support;

use std::net::SocketAddr;
use std::time::Duration;

use cluster_support::{docker_or_skip, ensure_image, eventually, leftovers};
use faultline::cluster::{Cluster, ClusterOptions, System, SystemParams};
use serde_json::{json, Value};

async fn post(at: SocketAddr, path: &str, body: Value) -> Option<Value> {
    let r = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap()
        .post(format!("http://{at}{path}"))
        .json(&body)
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testbed_cluster_replicates_fails_over_and_keeps_its_data() {
    let Some(()) = docker_or_skip("testbed cluster") else {
        return;
    };
    ensure_image().await;
    let params = SystemParams {
        node_args: vec!["--lease-ms=300".into(), "--bug=double-create".into()],
        ..SystemParams::default()
    };
    let system = System::by_name("testbed", &params).expect("the testbed system");
    let c = Cluster::up(system, ClusterOptions::default())
        .await
        .expect("the testbed cluster starts");
    let run_id = c.run_id().to_string();
    let addr = |n: &str| c.host_addr(n, "client").unwrap();

    // The node flags reached the nodes.
    let status = post(addr("n2"), "/status", json!({}))
        .await
        .expect("status");
    assert_eq!(status["bugs"], json!(["double-create"]), "{status}");

    // A write through one node is read back through another (forwarded to the primary).
    let w = eventually(Duration::from_secs(10), || async {
        post(addr("n3"), "/kv/write", json!({"key": "k", "value": 7})).await
    })
    .await;
    assert!(w.is_some(), "a write is accepted");
    let r = post(addr("n2"), "/kv/read", json!({"key": "k"}))
        .await
        .expect("a read");
    assert_eq!(r["value"], json!(7), "{r}");

    // The leader query names the primary; killing it elects another.
    let primary = eventually(Duration::from_secs(10), || async {
        c.leader().await.ok().flatten()
    })
    .await
    .expect("a primary");
    c.kill(&primary).await.expect("kill -9 the primary");
    let next = eventually(Duration::from_secs(15), || async {
        c.leader().await.ok().flatten().filter(|l| *l != primary)
    })
    .await
    .expect("a new primary after the kill");
    assert_ne!(next, primary);

    // The old primary restarts from its write-ahead log and still has the value.
    c.start(&primary).await.expect("restart");
    let back = eventually(Duration::from_secs(15), || async {
        post(addr(&primary), "/kv/read", json!({"key": "k"}))
            .await
            .filter(|v| v["value"] == json!(7))
    })
    .await;
    assert!(
        back.is_some(),
        "{primary} serves the value after its restart"
    );
    let st = post(addr(&primary), "/status", json!({}))
        .await
        .expect("status");
    assert!(st["kv"]["keys"].as_u64() >= Some(1), "{st}");

    c.teardown().await.expect("teardown");
    assert_eq!(leftovers(&run_id).await, (0, 0));
}
