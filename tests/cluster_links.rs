//! Node-to-node links through the proxy container (`--links proxy`). On NATS: every route a
//! server holds goes through the proxy (none around it by gossip), a partition made of toxics
//! cuts an isolated server off from the JetStream meta leader, and the heal brings it back.
//! etcd, RabbitMQ and Redis are redirected links (DNAT by destination port): each test shows
//! their peer traffic at the proxy, and where the system has one, a failover caused by a cut.

mod cluster_support;

use std::time::Duration;

use cluster_support::{docker_or_skip, ensure_image, etcdctl, eventually, exec, leftovers};
use faultline::cluster::{links, Cluster, ClusterOptions, SystemParams};
use nemeses::grudge::Grudge;
use nemeses::partition::{CutMode, LinkPlan, Partitioner, ProxyLinks};

/// `system` started with its links through the proxy, and the links; `None` (skip) without
/// Docker.
async fn start_linked(system: &str) -> Option<(Cluster, LinkPlan)> {
    docker_or_skip(&format!("{system} links"))?;
    ensure_image().await;
    let (linked, plan) = links::system_with_proxy_links(system, SystemParams::default()).unwrap();
    let c = Cluster::up(linked, ClusterOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{system} with proxy links starts: {e:#}"));
    Some((c, plan))
}

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
    let Some((c, plan)) = start_linked("nats").await else {
        return;
    };
    let run_id = c.run_id().to_string();
    let proxy_ip = c.ip(links::PROXY_NODE).await.unwrap().to_string();
    let servers = ["n1", "n2", "n3"];
    for n in servers {
        // Healthy means in contact with the meta leader; the full mesh may still be forming.
        let ips = eventually(Duration::from_secs(30), || async {
            let ips = route_ips(&c, n).await;
            (ips.len() >= 2).then_some(ips)
        })
        .await
        .unwrap_or_default();
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

/// etcd's members must agree on one set of peer URLs, so its links are redirected inside each
/// container (a DNAT rule per peer port) rather than configured: the members replicate through
/// the proxy, cutting n1's links takes its quorum away, the heal gives it back, and a restarted
/// member installs its rules again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_peer_traffic_is_redirected_through_the_proxy() {
    let Some((c, plan)) = start_linked("etcd").await else {
        return;
    };
    let run_id = c.run_id().to_string();
    let (code, rules) = exec(&c, "n1", &["iptables", "-t", "nat", "-S", "OUTPUT"]).await;
    assert_eq!(code, 0, "{rules}");
    assert!(
        rules.contains("--dport 2382") && rules.contains("--dport 2383") && rules.contains("DNAT"),
        "{rules}"
    );
    assert_eq!(etcdctl(&c, "n1", &["put", "k", "v1"]).await.0, 0);
    assert!(etcdctl(&c, "n3", &["get", "k"]).await.1.ends_with("v1"));

    let api = c.host_addr(links::PROXY_NODE, "api").unwrap();
    let client = nemeses::toxiproxy::Client::new(&api.to_string()).unwrap();
    let cuts = ProxyLinks::new(client, plan, CutMode::BlackHole);
    let names: Vec<String> = ["n1", "n2", "n3"].map(String::from).to_vec();
    cuts.apply(&Grudge::isolate(&names, "n1").unwrap())
        .await
        .unwrap();
    // A linearizable read needs a quorum: n1 alone has none, n2 and n3 do.
    let cut_off = eventually(Duration::from_secs(30), || async {
        (etcdctl(&c, "n1", &["get", "k"]).await.0 != 0).then_some(())
    })
    .await;
    assert!(
        cut_off.is_some(),
        "n1 still serves 30 s after its links were cut"
    );
    let wrote = eventually(Duration::from_secs(30), || async {
        (etcdctl(&c, "n2", &["put", "k", "v2"]).await.0 == 0).then_some(())
    })
    .await;
    assert!(wrote.is_some(), "the majority side takes writes");

    cuts.heal().await.unwrap();
    let caught_up = eventually(Duration::from_secs(60), || async {
        let (code, out) = etcdctl(&c, "n1", &["get", "k"]).await;
        (code == 0 && out.ends_with("v2")).then_some(())
    })
    .await;
    assert!(caught_up.is_some(), "n1 not caught up 60 s after the heal");

    // A restart starts a fresh network namespace; the rules come back with the server.
    c.kill("n2").await.unwrap();
    c.start("n2").await.unwrap();
    c.wait_node_ready("n2", Duration::from_secs(60))
        .await
        .unwrap();
    let (_, rules) = exec(&c, "n2", &["iptables", "-t", "nat", "-S", "OUTPUT"]).await;
    assert!(rules.contains("--dport 2381"), "{rules}");

    c.teardown().await.unwrap();
    assert_eq!(leftovers(&run_id).await, (0, 0));
}

/// RabbitMQ's Erlang distribution is redirected like etcd's peer traffic (each node has a
/// distribution port of its own; peers find it through epmd): every distribution connection a
/// node accepted comes from the proxy, none straight from a peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_distribution_is_redirected_through_the_proxy() {
    let Some((c, _plan)) = start_linked("rabbitmq").await else {
        return;
    };
    let run_id = c.run_id().to_string();
    let proxy_ip = c.ip(links::PROXY_NODE).await.unwrap().to_string();
    // Erlang keeps one connection per pair of nodes, dialed by either side: three in all.
    let mut accepted = vec![];
    for (node, dist_port) in [("n1", 25673), ("n2", 25674), ("n3", 25675)] {
        let filter = format!("( sport = :{dist_port} )");
        let (code, out) = exec(&c, node, &["ss", "-Htn", "state", "established", &filter]).await;
        assert_eq!(code, 0, "{out}");
        // A rabbitmqctl call inside the container connects from the node itself: not a peer.
        let own_ip = c.ip(node).await.unwrap().to_string();
        accepted.extend(
            out.lines()
                .filter_map(|l| l.split_whitespace().last())
                .filter_map(|addr| addr.rsplit_once(':').map(|(ip, _)| (node, ip.to_string())))
                .filter(|(_, ip)| *ip != own_ip && !ip.starts_with("127.")),
        );
    }
    assert_eq!(accepted.len(), 3, "one connection per pair: {accepted:?}");
    assert!(
        accepted.iter().all(|(_, ip)| *ip == proxy_ip),
        "every distribution connection through the proxy at {proxy_ip}: {accepted:?}"
    );
    c.teardown().await.unwrap();
    assert_eq!(leftovers(&run_id).await, (0, 0));
}

/// The peers' addresses among a Redis server's or sentinel's client connections (`CLIENT
/// LIST`), without those made inside its own container, and how many of them are replicas.
async fn redis_peer_ips(c: &Cluster, node: &str, port: u16) -> (Vec<String>, usize) {
    let (code, out) = exec(
        c,
        node,
        &["redis-cli", "-p", &port.to_string(), "client", "list"],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let own_ip = c.ip(node).await.unwrap().to_string();
    let (mut ips, mut replicas) = (vec![], 0);
    for line in out.lines() {
        let field = |key: &str| {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(key))
                .unwrap_or_default()
                .to_string()
        };
        let ip = field("addr=")
            .rsplit_once(':')
            .map(|(ip, _)| ip.to_string());
        let Some(ip) = ip.filter(|ip| *ip != own_ip && !ip.starts_with("127.")) else {
            continue;
        };
        replicas += usize::from(field("flags=").contains('S'));
        ips.push(ip);
    }
    (ips, replicas)
}

/// Redis's servers and sentinels share one port between clients and peers, so each node
/// announces a peer port of its own, redirected inside its container: replication and every
/// sentinel connection go through the proxy, and cutting the primary's links makes the
/// sentinels fail over to a replica; after the heal the old primary follows the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_replication_and_sentinels_go_through_the_proxy() {
    let Some((c, plan)) = start_linked("redis").await else {
        return;
    };
    let run_id = c.run_id().to_string();
    let proxy_ip = c.ip(links::PROXY_NODE).await.unwrap().to_string();
    let (ips, replicas) = redis_peer_ips(&c, "n1", 6379).await;
    assert_eq!(replicas, 2, "both replicas follow n1: {ips:?}");
    assert!(
        ips.len() >= 5 && ips.iter().all(|ip| *ip == proxy_ip),
        "replicas and sentinels reach n1 through the proxy at {proxy_ip}: {ips:?}"
    );
    // Sentinels connect to each other once they heard of each other on the primary.
    let ips = eventually(Duration::from_secs(30), || async {
        let (ips, _) = redis_peer_ips(&c, "s1", 26379).await;
        (ips.len() >= 2).then_some(ips)
    })
    .await
    .unwrap_or_default();
    assert!(
        ips.len() >= 2 && ips.iter().all(|ip| *ip == proxy_ip),
        "s2 and s3 reach s1 through the proxy at {proxy_ip}: {ips:?}"
    );

    let api = c.host_addr(links::PROXY_NODE, "api").unwrap();
    let client = nemeses::toxiproxy::Client::new(&api.to_string()).unwrap();
    let cuts = ProxyLinks::new(client, plan, CutMode::BlackHole);
    let names: Vec<String> = ["n1", "n2", "n3", "s1", "s2", "s3"]
        .map(String::from)
        .to_vec();
    cuts.apply(&Grudge::isolate(&names, "n1").unwrap())
        .await
        .unwrap();
    // Down after 5 s, then an election and the promotion: well under a minute.
    let new_primary = eventually(Duration::from_secs(60), || async {
        match c.leader().await {
            Ok(Some(l)) if l != "n1" => Some(l),
            _ => None,
        }
    })
    .await;
    assert!(
        new_primary.is_some(),
        "no failover 60 s after the primary's links were cut"
    );

    cuts.heal().await.unwrap();
    let follows = eventually(Duration::from_secs(90), || async {
        let (_, out) = exec(
            &c,
            "n1",
            &["redis-cli", "-p", "6379", "info", "replication"],
        )
        .await;
        (out.contains("role:slave") && out.contains("master_link_status:up")).then_some(())
    })
    .await;
    assert!(
        follows.is_some(),
        "n1 does not follow the new primary {new_primary:?} 90 s after the heal"
    );

    c.teardown().await.unwrap();
    assert_eq!(leftovers(&run_id).await, (0, 0));
}
