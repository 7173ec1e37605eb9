//! The NATS JetStream queue client against a real nats-server (Debian's nats-server) on
//! loopback, with JetStream storage in a temporary directory.
//!
//! Without a `nats-server` binary the tests fail under `CI=true` and are skipped with a printed
//! reason otherwise.

#[path = "support/local_server.rs"]
mod local_server;
#[path = "support/queue_run.rs"]
mod queue_run;

use checkers::EventType;
use local_server::{free_port, installed, wait_listening, ServerProcess};
use queue_run::{run_and_check, run_and_expect_valid, QueueRun};
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::Duration;
use workloads::clients::nats::NatsFactory;
use workloads::{ClientFactory, Invocation, WorkloadOptions};

const STARTUP_MAX: Duration = Duration::from_secs(20);

struct Nats {
    _process: ServerProcess,
    addr: String,
    _dir: tempfile::TempDir,
}

async fn start_nats() -> Option<Nats> {
    let bin = installed(
        &[
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
            "/usr/local/bin/nats-server",
        ],
        "nats-server",
    )?;
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
        _process: ServerProcess(child),
        addr: format!("127.0.0.1:{port}"),
        _dir: dir,
    };
    wait_listening(&nats.addr, "nats-server", STARTUP_MAX).await;
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

/// docs/scenarios.md B1 on a real broker: a consumer holds a message past the ack wait, JetStream
/// redelivers it to another consumer, and both acknowledge it. The stalled client's late ack
/// and the second consumer's ack both report success (`double_ack` is confirmed by the
/// server), so the history shows one message consumed twice and committed twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_ack_after_redelivery_is_confirmed_twice() {
    let Some(nats) = start_nats().await else {
        return;
    };
    let factory = NatsFactory {
        ack_wait: Duration::from_secs(1),
        ..NatsFactory::new()
    };
    let mut stalled = factory.open(0, &nats.addr).await.unwrap();
    stalled.setup().await.unwrap();
    let mut other = factory.open(1, &nats.addr).await.unwrap();
    let p = stalled.invoke(&op("produce", json!({"id": 7}))).await;
    assert_eq!(p.kind, EventType::Ok);
    let first = stalled.invoke(&op("consume", Value::Null)).await;
    assert_eq!(first.value, json!([{"id": 7, "delivery": 1}]));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = other.invoke(&op("consume", Value::Null)).await;
    assert_eq!(second.value, json!([{"id": 7, "delivery": 2}]));
    let late = stalled.invoke(&op("ack", json!({"id": 7}))).await;
    let on_time = other.invoke(&op("ack", json!({"id": 7}))).await;
    eprintln!("late ack: {late:?}\non-time ack: {on_time:?}");
    assert_eq!(late.kind, EventType::Ok, "{late:?}");
    assert_eq!(on_time.kind, EventType::Ok, "{on_time:?}");
    assert_eq!(
        stalled.invoke(&op("drain", Value::Null)).await.value,
        json!([])
    );
}

/// The same, driven by the workload's seeded ack stalls (`[client]` options of a plan): judged
/// as exactly-once, the delivery checker flags the double commits; judged as at-least-once
/// (JetStream's redelivery guarantee), the same behaviour is allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_stalls_past_the_ack_wait_are_double_commits_under_exactly_once() {
    let Some(nats) = start_nats().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut verdicts = vec![];
    for guarantee in ["exactly-once", "at-least-once"] {
        let client = [
            ("ack-stall-probability", json!(0.2)),
            ("ack-stall", json!("1500ms")),
            ("ack-wait", json!("1s")),
            ("guarantee", json!(guarantee)),
        ];
        let run = QueueRun {
            system: "nats",
            workload: "queue",
            opts: WorkloadOptions {
                client: client
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
                seed: 5,
                ..WorkloadOptions::default()
            },
            nodes: vec![nats.addr.clone()],
            concurrency: 5,
            seed: 5,
            ops_max: 300,
            grace: Duration::from_secs(3),
            ok_min: 40,
        };
        let history = dir.path().join(format!("{guarantee}.jsonl"));
        let results = run_and_check(run, &history).await;
        let text = std::fs::read_to_string(&history).unwrap();
        assert!(
            text.contains(r#""stalled_ms":1500"#),
            "the stalled acks are marked in the history"
        );
        let delivery = results.iter().find(|r| r.checker == "delivery").unwrap();
        eprintln!("{guarantee}: {} {}", delivery.verdict, delivery.summary);
        verdicts.push(delivery.clone());
    }
    let exactly = &verdicts[0];
    assert_eq!(
        exactly.verdict,
        checkers::Verdict::Invalid,
        "{}",
        exactly.summary
    );
    assert!(
        exactly
            .anomalies
            .iter()
            .any(|a| a.kind == "double-committed"),
        "{:?}",
        exactly
            .anomalies
            .iter()
            .map(|a| &a.kind)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        verdicts[1].verdict,
        checkers::Verdict::Valid,
        "{}",
        verdicts[1].summary
    );
}
