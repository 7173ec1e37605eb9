//! The RabbitMQ queue client against a real rabbitmq-server (Debian's rabbitmq-server) on
//! loopback: one node, its data, config, Erlang cookie and epmd on free ports in a temporary
//! directory.
//!
//! Without a rabbitmq-server installation the tests fail under `CI=true` and are skipped with a
//! printed reason otherwise.

#[path = "support/local_server.rs"]
mod local_server;
#[path = "support/queue_run.rs"]
mod queue_run;

use checkers::EventType;
use local_server::{free_port, installed};
use queue_run::{expect_stalled_acks_to_commit_once, run_and_expect_valid, QueueRun};
use serde_json::{json, Value};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use workloads::clients::rabbitmq::RabbitMqFactory;
use workloads::{ClientFactory, Invocation, WorkloadOptions};

const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
const STARTUP_MAX: Duration = Duration::from_secs(60);
const SHUTDOWN_MAX: Duration = Duration::from_secs(15);

struct Rabbit {
    child: Child,
    addr: String,
    epmd_port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Rabbit {
    fn drop(&mut self) {
        // The server script, the Erlang VM and its helpers share one process group.
        let pgid = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &pgid]).status();
        let started = Instant::now();
        while started.elapsed() < SHUTDOWN_MAX {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &pgid]).status();
        let _ = self.child.wait();
        // epmd daemonizes out of the group; stop the one this node started.
        let _ = Command::new("epmd")
            .arg("-kill")
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

async fn start_rabbit() -> Option<Rabbit> {
    installed(&[SERVER], "rabbitmq-server")?;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("home")).unwrap();
    let (port, dist_port, epmd_port) = (free_port(), free_port(), free_port());
    let conf = d.join("rabbit.conf");
    std::fs::write(
        &conf,
        format!("loopback_users = none\nlisteners.tcp.default = 127.0.0.1:{port}\n"),
    )
    .unwrap();
    let node = format!("faultline{port}@localhost");
    let child = Command::new(SERVER)
        .env("HOME", d.join("home"))
        .env("RABBITMQ_HOME", "/usr/lib/rabbitmq")
        .env("RABBITMQ_BASE", d)
        .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
        .env("RABBITMQ_LOG_BASE", d.join("log"))
        .env("RABBITMQ_NODENAME", &node)
        .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
        .env("RABBITMQ_DIST_PORT", dist_port.to_string())
        .env("ERL_EPMD_PORT", epmd_port.to_string())
        .env("RABBITMQ_CONFIG_FILE", &conf)
        .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
        .env("RABBITMQ_ENABLED_PLUGINS", "")
        .env("RABBITMQ_PID_FILE", d.join("pid"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start rabbitmq-server");
    let mut rabbit = Rabbit {
        child,
        addr: format!("127.0.0.1:{port}"),
        epmd_port,
        _dir: dir,
    };
    let started = Instant::now();
    while tokio::net::TcpStream::connect(&rabbit.addr).await.is_err() {
        if let Ok(Some(status)) = rabbit.child.try_wait() {
            panic!("rabbitmq-server exited during start-up: {status}");
        }
        assert!(
            started.elapsed() < STARTUP_MAX,
            "rabbitmq-server did not listen within {STARTUP_MAX:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some(rabbit)
}

fn op(f: &str, value: Value) -> Invocation {
    Invocation::new(f, value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirms_manual_acks_and_requeue_when_a_holder_closes() {
    let Some(rabbit) = start_rabbit().await else {
        return;
    };
    let factory = RabbitMqFactory::new();
    let mut c = factory.open(0, &rabbit.addr).await.unwrap();
    // Before setup there is no queue: the broker returns the message, nothing is enqueued.
    let unroutable = c.invoke(&op("produce", json!({"id": 0}))).await;
    assert_eq!(unroutable.kind, EventType::Fail, "{unroutable:?}");
    c.setup().await.unwrap();
    for id in [1, 2] {
        let p = c.invoke(&op("produce", json!({ "id": id }))).await;
        assert_eq!((p.kind, p.value), (EventType::Ok, json!({ "id": id })));
    }
    let first = c.invoke(&op("consume", Value::Null)).await;
    assert_eq!(
        (first.kind, first.value),
        (EventType::Ok, json!([{"id": 1}]))
    );
    let ack = c.invoke(&op("ack", json!({"id": 1}))).await;
    assert_eq!(ack.kind, EventType::Ok, "{ack:?}");
    // An ack for a message this channel does not hold sends nothing.
    assert_eq!(
        c.invoke(&op("ack", json!({"id": 9}))).await.kind,
        EventType::Fail
    );
    // Message 2 is taken by another client that closes without acking: it is requeued.
    let mut other = factory.open(1, &rabbit.addr).await.unwrap();
    let taken = other.invoke(&op("consume", Value::Null)).await;
    assert_eq!(taken.value, json!([{"id": 2}]));
    assert_eq!(c.invoke(&op("drain", Value::Null)).await.value, json!([]));
    other.close().await;
    let started = Instant::now();
    let again = loop {
        let d = c.invoke(&op("drain", Value::Null)).await;
        if d.value != json!([]) || started.elapsed() > Duration::from_secs(5) {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(again.value, json!([{"id": 2}]));
    assert_eq!(
        c.invoke(&op("ack", json!({"id": 2}))).await.kind,
        EventType::Ok
    );
    c.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_stalled_past_the_requeue_deadline_never_commits_twice() {
    let Some(rabbit) = start_rabbit().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Past the 2 s deadline the client requeues the delivery itself, so the late ack sends
    // nothing (fail) and the message is consumed again: redelivered, never committed twice.
    expect_stalled_acks_to_commit_once(
        "rabbitmq",
        "queue",
        rabbit.addr.clone(),
        "3s",
        &dir.path().join("history.jsonl"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_workload_passes_the_delivery_checker() {
    let Some(rabbit) = start_rabbit().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = QueueRun {
        system: "rabbitmq",
        workload: "queue",
        opts: WorkloadOptions::default(),
        nodes: vec![rabbit.addr.clone()],
        concurrency: 5,
        seed: 2,
        ops_max: 600,
        grace: Duration::from_secs(2),
        ok_min: 100,
    };
    run_and_expect_valid(run, &dir.path().join("history.jsonl")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_held_past_the_deadline_is_requeued_and_its_late_ack_fails() {
    let Some(rabbit) = start_rabbit().await else {
        return;
    };
    let factory = RabbitMqFactory {
        requeue_after: Duration::from_millis(300),
        ..RabbitMqFactory::new()
    };
    let mut holder = factory.open(0, &rabbit.addr).await.unwrap();
    holder.setup().await.unwrap();
    let p = holder.invoke(&op("produce", json!({"id": 5}))).await;
    assert_eq!(p.kind, EventType::Ok, "{p:?}");
    let taken = holder.invoke(&op("consume", Value::Null)).await;
    assert_eq!(taken.value, json!([{"id": 5}]));
    // The holder stays open and idle; its deadline, not a close, returns the message.
    let mut drainer = factory.open(1, &rabbit.addr).await.unwrap();
    let started = Instant::now();
    let again = loop {
        let d = drainer.invoke(&op("drain", Value::Null)).await;
        if d.value != json!([]) || started.elapsed() > Duration::from_secs(5) {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(again.value, json!([{"id": 5}]));
    let late = holder.invoke(&op("ack", json!({"id": 5}))).await;
    assert_eq!(late.kind, EventType::Fail, "{late:?}");
    assert_eq!(
        drainer.invoke(&op("ack", json!({"id": 5}))).await.kind,
        EventType::Ok
    );
    assert_eq!(
        drainer.invoke(&op("drain", Value::Null)).await.value,
        json!([])
    );
    holder.close().await;
    drainer.close().await;
}
