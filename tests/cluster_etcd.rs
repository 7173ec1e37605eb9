//! A 3-node etcd cluster end to end: writes and reads through etcd's JSON gateway from the host,
//! then every operation the fault code relies on (leader, exec, kill, start with data kept,
//! pause, network disconnect, logs, teardown), each checked by its effect.

mod cluster_support;

use std::net::SocketAddr;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use cluster_support::{docker_or_skip, eventually, leftovers, start};

/// A small etcd v3 JSON-gateway client: POST /v3/kv/put and /v3/kv/range with base64 keys.
struct Etcd {
    http: reqwest::Client,
}

impl Etcd {
    fn new(timeout: Duration) -> Etcd {
        Etcd {
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(timeout)
                .build()
                .unwrap(),
        }
    }

    async fn put(&self, at: SocketAddr, key: &str, value: &str) -> Result<(), String> {
        let body = serde_json::json!({"key": B64.encode(key), "value": B64.encode(value)});
        let r = self
            .http
            .post(format!("http://{at}/v3/kv/put"))
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status();
        let v: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
        if status.is_success() && v.get("header").is_some() {
            Ok(())
        } else {
            Err(format!("{status}: {v}"))
        }
    }

    async fn get(&self, at: SocketAddr, key: &str) -> Result<Option<String>, String> {
        let body = serde_json::json!({"key": B64.encode(key)});
        let r = self
            .http
            .post(format!("http://{at}/v3/kv/range"))
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(format!("{}", r.status()));
        }
        let v: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
        match v["kvs"].as_array().and_then(|kvs| kvs.first()) {
            None => Ok(None),
            Some(kv) => {
                let raw = B64
                    .decode(kv["value"].as_str().unwrap_or(""))
                    .map_err(|e| e.to_string())?;
                Ok(Some(String::from_utf8_lossy(&raw).into_owned()))
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_cluster_serves_clients_and_survives_every_node_operation() {
    let Some(()) = docker_or_skip("etcd cluster") else {
        return;
    };
    let c = start("etcd").await;
    let run_id = c.run_id().to_string();
    let kv = Etcd::new(Duration::from_secs(3));

    // Named nodes with their own containers, addresses and host ports.
    assert_eq!(c.node_names(), ["n1", "n2", "n3"]);
    let ips = c.ips().await.unwrap();
    assert_eq!(ips.len(), 3);
    assert_eq!(
        ips.values().collect::<std::collections::HashSet<_>>().len(),
        3
    );
    for n in c.node_names() {
        assert!(!c.container_id(&n).unwrap().is_empty());
        assert!(c.host_port(&n, "client").unwrap() > 0);
    }
    assert!(c.host_port("n1", "nope").is_err());

    // A write through one node is read through every node.
    kv.put(c.host_addr("n1", "client").unwrap(), "k", "v1")
        .await
        .unwrap();
    for n in ["n1", "n2", "n3"] {
        let got = kv
            .get(c.host_addr(n, "client").unwrap(), "k")
            .await
            .unwrap();
        assert_eq!(got.as_deref(), Some("v1"), "read through {n}");
    }
    assert_eq!(
        kv.get(c.host_addr("n2", "client").unwrap(), "missing")
            .await
            .unwrap(),
        None
    );

    // exec returns exit codes and output.
    let out = c
        .exec("n1", &["sh", "-c", "echo hello; exit 3"])
        .await
        .unwrap();
    assert_eq!(out.exit_code, 3);
    assert_eq!(out.output.trim(), "hello");
    let hosts = c.exec("n1", &["getent", "hosts", "n2"]).await.unwrap();
    assert_eq!(hosts.exit_code, 0, "nodes resolve each other by name");
    assert!(
        hosts.output.contains(&ips["n2"].to_string()),
        "{}",
        hosts.output
    );
    let caps = c
        .exec("n1", &["iptables", "-L", "INPUT", "-n"])
        .await
        .unwrap();
    assert_eq!(
        caps.exit_code, 0,
        "NET_ADMIN lets iptables run: {}",
        caps.output
    );

    // The leader is one of the nodes; killing it elects another, and the cluster still takes
    // writes.
    let leader = c.leader().await.unwrap().expect("a leader once ready");
    assert!(c.node_names().contains(&leader));
    c.kill(&leader).await.unwrap();
    assert!(!c.is_running(&leader).await.unwrap());
    let new_leader = eventually(Duration::from_secs(15), || async {
        c.leader().await.unwrap().filter(|l| *l != leader)
    })
    .await
    .expect("a new leader after the old one was killed");
    let survivor = c.host_addr(&new_leader, "client").unwrap();
    kv.put(survivor, "k", "v2").await.unwrap();

    // The killed node starts again with its data and catches up.
    c.start(&leader).await.unwrap();
    c.wait_node_ready(&leader, Duration::from_secs(30))
        .await
        .unwrap();
    let back = c.host_addr(&leader, "client").unwrap();
    assert_eq!(back.port(), c.host_port(&leader, "client").unwrap());
    let got = eventually(Duration::from_secs(10), || async {
        kv.get(back, "k").await.ok().flatten().filter(|v| v == "v2")
    })
    .await;
    assert_eq!(
        got.as_deref(),
        Some("v2"),
        "restarted node serves the newest value"
    );

    // A paused node answers nothing; once resumed it serves again.
    c.pause("n3").await.unwrap();
    assert!(!c.is_running("n3").await.unwrap());
    let short = Etcd::new(Duration::from_millis(800));
    let n3 = c.host_addr("n3", "client").unwrap();
    assert!(
        short.get(n3, "k").await.is_err(),
        "a paused node must not answer"
    );
    c.unpause("n3").await.unwrap();
    let got = eventually(Duration::from_secs(10), || async {
        kv.get(n3, "k").await.ok().flatten()
    })
    .await;
    assert_eq!(got.as_deref(), Some("v2"));

    // A node taken off the network loses its peers; put back, it is ready again.
    c.disconnect("n2").await.unwrap();
    let cut = c
        .exec("n2", &["sh", "-c", "getent hosts n1 || echo unresolved"])
        .await
        .unwrap();
    assert!(cut.output.contains("unresolved"), "{}", cut.output);
    c.connect("n2").await.unwrap();
    c.wait_node_ready("n2", Duration::from_secs(30))
        .await
        .unwrap();

    // Logs: each node's output is collected into the folder.
    let dir = std::env::temp_dir().join(format!("fl-etcd-logs-{run_id}"));
    c.collect_logs(&dir).await.unwrap();
    for n in ["n1", "n2", "n3"] {
        let text = std::fs::read_to_string(dir.join(format!("{n}.log"))).unwrap();
        assert!(text.contains("ready to serve client requests"), "{n}.log");
    }
    std::fs::remove_dir_all(&dir).unwrap();

    // Teardown removes the three containers and the network.
    let removed = c.teardown().await.unwrap();
    assert_eq!(removed.containers.len(), 3);
    assert_eq!(removed.networks.len(), 1);
    assert_eq!(leftovers(&run_id).await, (0, 0));
}
