//! The NATS JetStream queue client against a real nats-server (Debian's nats-server) on
//! loopback, with JetStream storage in a temporary directory.
//!
//! Without a `nats-server` binary the tests fail under `CI=true` and are skipped with a printed
//! reason otherwise.

#[path = "support/queue_run.rs"]
mod queue_run;

use checkers::EventType;
use queue_run::{run_and_expect_valid, QueueRun};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use workloads::clients::nats::NatsFactory;
use workloads::{ClientFactory, Invocation, WorkloadOptions};

const STARTUP_MAX: Duration = Duration::from_secs(20);

struct Nats {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_nats() -> Option<Nats> {
    let Some(bin) = [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists()) else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("nats-server is not installed; CI must install the nats-server package");
        }
        eprintln!("SKIPPED: nats-server is not installed (apt-get install nats-server)");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(bin)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start nats-server");
    let nats = Nats {
        child,
        addr: format!("127.0.0.1:{port}"),
        _dir: dir,
    };
    let started = Instant::now();
    while tokio::net::TcpStream::connect(&nats.addr).await.is_err() {
        assert!(
            started.elapsed() < STARTUP_MAX,
            "nats-server did not listen within {STARTUP_MAX:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Some(nats)
}

fn op(f: &str, value: Value) -> Invocation {
    Invocation::new(f, value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_consume_ack_and_redelivery_after_the_ack_wait() {
    let Some(nats) = start_nats().await else {
        return;
    };
    let factory = NatsFactory {
        ack_wait: Duration::from_secs(1),
        ..NatsFactory::new()
    };
    let mut c = factory.open(0, &nats.addr).await.unwrap();
    c.setup().await.unwrap();
    for id in [1, 2] {
        let p = c.invoke(&op("produce", json!({ "id": id }))).await;
        assert_eq!((p.kind, p.value), (EventType::Ok, json!({ "id": id })));
    }
    // A duplicate produce (same dedup id) is acknowledged but stored once.
    assert_eq!(
        c.invoke(&op("produce", json!({"id": 1}))).await.kind,
        EventType::Ok
    );
    let first = c.invoke(&op("consume", Value::Null)).await;
    assert_eq!(first.value, json!([{"id": 1, "delivery": 1}]));
    let ack = c.invoke(&op("ack", json!({"id": 1}))).await;
    assert_eq!(ack.kind, EventType::Ok, "{ack:?}");
    // An ack for a message this client does not hold sends nothing.
    assert_eq!(
        c.invoke(&op("ack", json!({"id": 9}))).await.kind,
        EventType::Fail
    );
    // Message 2 is consumed by another client that never acks it: redelivered after the wait.
    let mut other = factory.open(1, &nats.addr).await.unwrap();
    let taken = other.invoke(&op("consume", Value::Null)).await;
    assert_eq!(taken.value, json!([{"id": 2, "delivery": 1}]));
    assert_eq!(c.invoke(&op("drain", Value::Null)).await.value, json!([]));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let again = c.invoke(&op("drain", Value::Null)).await;
    assert_eq!(again.value, json!([{"id": 2, "delivery": 2}]));
    assert_eq!(
        c.invoke(&op("ack", json!({"id": 2}))).await.kind,
        EventType::Ok
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_workload_passes_the_delivery_checker() {
    let Some(nats) = start_nats().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = QueueRun {
        system: "nats",
        workload: "queue",
        opts: WorkloadOptions {
            nats_ack_wait: Duration::from_secs(1),
            ..WorkloadOptions::default()
        },
        nodes: vec![nats.addr.clone()],
        concurrency: 5,
        seed: 2,
        ops_max: 600,
        grace: Duration::from_secs(2),
        ok_min: 100,
    };
    run_and_expect_valid(run, &dir.path().join("history.jsonl")).await;
}
