//! Node-to-node links through the proxy container (`--links proxy`) on NATS: every route a
//! server holds goes through the proxy (none around it by gossip), a partition made of toxics
//! cuts an isolated server off from the JetStream meta leader, and the heal brings it back.

mod cluster_support;

use std::time::Duration;

use cluster_support::{docker_or_skip, ensure_image, eventually, leftovers};
use faultline::cluster::{links, Cluster, ClusterOptions, SystemParams};
use nemeses::grudge::Grudge;
use nemeses::partition::{CutMode, Partitioner, ProxyLinks};

/// The remote addresses of a server's routes, from its monitoring endpoint.
async fn route_ips(c: &Cluster, node: &str) -> Vec<String> {
    let monitor = c.host_addr(node, "monitor").unwrap();
    let body: serde_json::Value = reqwest::get(format!("http://{monitor}/routez"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ip"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Whether the server says it is healthy (in 2.9: in contact with a JetStream meta leader).
async fn healthy(c: &Cluster, node: &str) -> bool {
    let monitor = c.host_addr(node, "monitor").unwrap();
    match reqwest::get(format!("http://{monitor}/healthz")).await {
        Ok(r) => r.status().is_success(),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_routes_go_through_the_proxy_and_a_cut_isolates_a_server() {
    let Some(()) = docker_or_skip("nats links") else {
        return;
    };
    ensure_image().await;
    let (system, plan) = links::system_with_proxy_links("nats", SystemParams::default()).unwrap();
    let c = Cluster::up(system, ClusterOptions::default())
        .await
        .unwrap_or_else(|e| panic!("nats with proxy links starts: {e:#}"));
    let run_id = c.run_id().to_string();
    let proxy_ip = c.ip(links::PROXY_NODE).await.unwrap().to_string();
    let servers = ["n1", "n2", "n3"];
    for n in servers {
        let ips = route_ips(&c, n).await;
        assert_eq!(ips.len(), 2, "{n}: a route to each other server: {ips:?}");
        assert!(
            ips.iter().all(|ip| *ip == proxy_ip),
            "{n}: every route through the proxy at {proxy_ip}: {ips:?}"
        );
    }

    let api = c.host_addr(links::PROXY_NODE, "api").unwrap();
    let client = nemeses::toxiproxy::Client::new(&api.to_string()).unwrap();
    let cuts = ProxyLinks::new(client, plan, CutMode::BlackHole);
    let names: Vec<String> = servers.iter().map(|s| s.to_string()).collect();
    cuts.apply(&Grudge::isolate(&names, "n1").unwrap())
        .await
        .unwrap();
    // Raft notices a silent leader after a few seconds; bounded well above that.
    let cut_off = eventually(Duration::from_secs(60), || async {
        (!healthy(&c, "n1").await).then_some(())
    })
    .await;
    assert!(
        cut_off.is_some(),
        "n1 still healthy 60 s after its links were cut"
    );
    assert!(healthy(&c, "n2").await || healthy(&c, "n3").await);

    cuts.heal().await.unwrap();
    let back = eventually(Duration::from_secs(90), || async {
        healthy(&c, "n1").await.then_some(())
    })
    .await;
    assert!(back.is_some(), "n1 not healthy 90 s after the heal");

    c.teardown().await.unwrap();
    assert_eq!(leftovers(&run_id).await, (0, 0));
}
