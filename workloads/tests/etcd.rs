//! The etcd client against a real etcd 3.4 (Debian's etcd-server) on loopback.
//!
//! Each test starts its own single-node etcd on free ports with a temporary data directory and
//! kills it at the end. Without an `etcd` binary the tests fail under `CI=true` and are skipped
//! with a printed reason otherwise.

#[path = "support/local_server.rs"]
mod local_server;

use checkers::History;
use local_server::{free_port, installed, ServerProcess};
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use workloads::clients::etcd::{EtcdFactory, ReadMode};
use workloads::generator;
use workloads::workload::{self, RegisterOptions};
use workloads::{ClientFactory, Invocation, PhaseEnd, PhaseLimits, Recorder, Runner, RunnerConfig};

const STARTUP_MAX: Duration = Duration::from_secs(20);

struct Etcd {
    _process: ServerProcess,
    client_addr: String,
    _dir: tempfile::TempDir,
}

/// Starts etcd, or returns None (skip) when it is not installed and we are not in CI.
async fn start_etcd() -> Option<Etcd> {
    let bin = installed(&["/usr/bin/etcd", "/usr/local/bin/etcd"], "etcd-server")?;
    let dir = tempfile::tempdir().unwrap();
    let (client, peer) = (free_port(), free_port());
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
    let child = Command::new(bin)
        .args(["--name", "t1", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--listen-client-urls", &client_url])
        .args(["--advertise-client-urls", &client_url])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("t1={peer_url}")])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("cannot start etcd");
    let etcd = Etcd {
        _process: ServerProcess(child),
        client_addr: format!("127.0.0.1:{client}"),
        _dir: dir,
    };
    // Ready when a linearizable read answers (the node has elected itself leader).
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let r = http
            .post(format!("{client_url}/v3/kv/range"))
            .json(&json!({"key": "AA=="}))
            .timeout(Duration::from_secs(1))
            .send()
            .await;
        if matches!(&r, Ok(resp) if resp.status().is_success()) {
            return Some(etcd);
        }
        assert!(
            started.elapsed() < STARTUP_MAX,
            "etcd did not answer within {STARTUP_MAX:?}: {r:?}; log: {}",
            std::fs::read_to_string(etcd._dir.path().join("etcd.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn op(f: &str, key: &str, value: Value) -> Invocation {
    Invocation::new(f, value).with_key(key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_operations_map_onto_ok_and_fail() {
    let Some(etcd) = start_etcd().await else {
        return;
    };
    for mode in [ReadMode::Linearizable, ReadMode::Serializable] {
        let factory = EtcdFactory::new(mode).with_prefix(format!("t-{mode}/"));
        let mut c = factory.open(0, &etcd.client_addr).await.unwrap();
        c.setup().await.unwrap();
        let read = c.invoke(&op("read", "a", Value::Null)).await;
        assert_eq!(
            (read.kind, read.value),
            (checkers::EventType::Ok, Value::Null)
        );
        let w = c.invoke(&op("write", "a", json!(3))).await;
        assert_eq!(w.kind, checkers::EventType::Ok);
        assert_eq!(
            c.invoke(&op("read", "a", Value::Null)).await.value,
            json!(3)
        );
        let miss = c.invoke(&op("cas", "a", json!([1, 2]))).await;
        assert_eq!(
            (miss.kind, miss.error.as_deref()),
            (checkers::EventType::Fail, Some("cas-mismatch"))
        );
        let hit = c.invoke(&op("cas", "a", json!([3, 4]))).await;
        assert_eq!(hit.kind, checkers::EventType::Ok, "{hit:?}");
        assert_eq!(
            c.invoke(&op("read", "a", Value::Null)).await.value,
            json!(4)
        );
        // CAS from "absent" on a key never written.
        let fresh = c.invoke(&op("cas", "b", json!([null, 1]))).await;
        assert_eq!(fresh.kind, checkers::EventType::Ok, "{fresh:?}");
        // setup clears the prefix: registers start empty again.
        c.setup().await.unwrap();
        assert_eq!(
            c.invoke(&op("read", "a", Value::Null)).await.value,
            Value::Null
        );
        c.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_node_fails_operations_without_guessing() {
    // A port nobody listens on: the connection is refused before anything is sent.
    let port = free_port();
    let factory = EtcdFactory::new(ReadMode::Linearizable);
    let mut c = factory.open(0, &format!("127.0.0.1:{port}")).await.unwrap();
    for o in [op("write", "a", json!(1)), op("read", "a", Value::Null)] {
        let done = c.invoke(&o).await;
        assert_eq!(done.kind, checkers::EventType::Fail, "{o:?}: {done:?}");
        assert!(done.error.unwrap().starts_with("connection-refused"));
    }
    // A CAS that was never sent is not a failed comparison (which is what `fail` on a CAS tells
    // the linearizability checker), so it is reported indeterminate, which is always sound.
    let cas = c.invoke(&op("cas", "a", json!([1, 2]))).await;
    assert_eq!(cas.kind, checkers::EventType::Info, "{cas:?}");
    assert!(cas
        .error
        .unwrap()
        .starts_with("not-applied: connection-refused"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_register_run_against_etcd_records_a_valid_history() {
    let Some(etcd) = start_etcd().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let recorder = Recorder::create(&path).unwrap();
    let factory = Arc::new(EtcdFactory::new(ReadMode::Linearizable).with_prefix("run/"));
    let mut config = RunnerConfig::new(5, vec![etcd.client_addr.clone()], 7);
    config.op_timeout = Duration::from_secs(2);
    let mut runner = Runner::start(config, factory, recorder.clone())
        .await
        .unwrap();
    let w = workload::register(&RegisterOptions {
        ops_per_key: 100,
        ..RegisterOptions::default()
    });
    let summary = runner
        .run_phase(
            generator::limit(600, w.generator),
            PhaseLimits {
                time_limit: Duration::from_secs(30),
                grace: Duration::from_secs(2),
            },
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    runner.close().await.unwrap();
    recorder.finish().await.unwrap();
    assert_eq!(summary.ended, PhaseEnd::Exhausted);
    let history: History = checkers::formats::read_path(&path, None).unwrap();
    let ops = history.ops().unwrap();
    assert_eq!(ops.len(), 600);
    assert!(
        ops.iter().filter(|o| o.is_ok()).count() > 400,
        "a healthy node answers"
    );
    assert!(ops
        .iter()
        .any(|o| o.f == "read" && o.is_ok() && !o.complete_value.is_null()));
    assert!(ops.iter().any(|o| o.f == "cas" && o.is_ok()));
    assert!(ops.iter().any(|o| o.f == "cas" && o.is_fail()));
    // Keys rotate: at most 100 ops per key, so 600 ops touch at least 6 keys.
    let mut per_key: std::collections::BTreeMap<String, usize> = Default::default();
    for o in &ops {
        *per_key.entry(o.key.clone().unwrap()).or_default() += 1;
    }
    assert!(per_key.len() >= 6, "{per_key:?}");
    assert!(per_key.values().all(|n| *n <= 100), "{per_key:?}");
    // A healthy etcd with quorum reads is linearizable, by the checker the workload names.
    for spec in &w.checkers {
        let checker = checkers::by_name(&spec.name, &spec.options).unwrap();
        let budget = checkers::Budget {
            time_limit: Some(Duration::from_secs(60)),
            ..Default::default()
        };
        let r = checkers::run_checker(checker.as_ref(), &history, &budget).unwrap();
        assert_eq!(
            r.verdict,
            checkers::Verdict::Valid,
            "{}: {}",
            spec.name,
            r.summary
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_snapshot_is_the_members_keys_under_the_prefix() {
    let Some(etcd) = start_etcd().await else {
        return;
    };
    let factory = EtcdFactory::new(ReadMode::Linearizable).with_prefix("snap/");
    let mut c = factory.open(0, &etcd.client_addr).await.unwrap();
    c.setup().await.unwrap();
    c.invoke(&op("write", "r1", json!(3))).await;
    c.invoke(&op("write", "r2", json!([1, 2]))).await;
    // A key outside the prefix is not part of it.
    let other = EtcdFactory::new(ReadMode::Linearizable).with_prefix("snaq/");
    let mut o = other.open(0, &etcd.client_addr).await.unwrap();
    o.invoke(&op("write", "r1", json!(9))).await;
    let snap = factory
        .replica_snapshot(&etcd.client_addr)
        .await
        .unwrap()
        .expect("etcd reads each member");
    assert_eq!(
        snap.into_iter().collect::<Vec<_>>(),
        vec![
            ("r1".to_string(), json!(3)),
            ("r2".to_string(), json!([1, 2]))
        ]
    );
}
