//! The ZooKeeper CAS register against a real standalone ZooKeeper (Debian's zookeeper package,
//! run with the system Java) on loopback, with its data in a temporary directory.
//!
//! Without the ZooKeeper jar or `java` the tests fail under `CI=true` and are skipped with a
//! printed reason otherwise.

#[path = "support/local_server.rs"]
mod local_server;

use checkers::{Budget, EventType, Verdict};
use local_server::{free_port, installed, ServerProcess};
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use workloads::clients::zookeeper::ZooKeeperFactory;
use workloads::generator;
use workloads::{build, ClientFactory, Invocation, PhaseLimits, Recorder, Runner, RunnerConfig};

const STARTUP_MAX: Duration = Duration::from_secs(60);
const JAR: &str = "/usr/share/java/zookeeper.jar";

struct ZooKeeper {
    _process: ServerProcess,
    addr: String,
    _dir: tempfile::TempDir,
}

async fn start_zookeeper() -> Option<ZooKeeper> {
    let java = installed(&["/usr/bin/java"], "zookeeper")?;
    installed(&[JAR], "zookeeper")?;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(java)
        .args(["-Dzookeeper.admin.enableServer=false", "-cp"])
        .arg(format!("/etc/zookeeper/conf:{JAR}"))
        .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
        .arg(port.to_string())
        .arg(dir.path().join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start ZooKeeper");
    let server = ZooKeeper {
        _process: ServerProcess(child),
        addr: format!("127.0.0.1:{port}"),
        _dir: dir,
    };
    let started = Instant::now();
    let factory = ZooKeeperFactory::new();
    while factory.open(0, &server.addr).await.is_err() {
        assert!(
            started.elapsed() < STARTUP_MAX,
            "ZooKeeper did not accept sessions within {STARTUP_MAX:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Some(server)
}

fn op(f: &str, value: Value) -> Invocation {
    Invocation::new(f, value).with_key("a")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cas_register_operations_through_versioned_writes() {
    let Some(server) = start_zookeeper().await else {
        return;
    };
    let factory = ZooKeeperFactory::new().with_root("/t");
    let mut c = factory.open(0, &server.addr).await.unwrap();
    c.setup().await.unwrap();
    assert_eq!(c.invoke(&op("read", Value::Null)).await.value, Value::Null);
    assert_eq!(
        c.invoke(&op("cas", json!([1, 2]))).await.kind,
        EventType::Fail
    );
    assert_eq!(
        c.invoke(&op("cas", json!([null, 1]))).await.kind,
        EventType::Ok
    );
    let again = c.invoke(&op("cas", json!([null, 5]))).await;
    assert_eq!(
        (again.kind, again.error.as_deref()),
        (EventType::Fail, Some("cas-mismatch"))
    );
    assert_eq!(
        c.invoke(&op("cas", json!([1, 2]))).await.kind,
        EventType::Ok
    );
    assert_eq!(c.invoke(&op("write", json!(4))).await.kind, EventType::Ok);
    assert_eq!(c.invoke(&op("read", Value::Null)).await.value, json!(4));
    c.setup().await.unwrap();
    assert_eq!(c.invoke(&op("read", Value::Null)).await.value, Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_register_run_against_zookeeper_is_linearizable() {
    let Some(server) = start_zookeeper().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let recorder = Recorder::create(&path).unwrap();
    let (w, factory) = build("zookeeper", "cas-register", &Default::default()).unwrap();
    let config = RunnerConfig::new(5, vec![server.addr.clone()], 4);
    let mut runner = Runner::start(config, factory, recorder.clone())
        .await
        .unwrap();
    let limits = PhaseLimits {
        time_limit: Duration::from_secs(60),
        grace: Duration::from_secs(2),
    };
    runner
        .run_phase(
            generator::limit(600, w.generator),
            limits,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    runner.close().await.unwrap();
    recorder.finish().await.unwrap();
    let history = checkers::formats::read_path(&path, None).unwrap();
    let ops = history.ops().unwrap();
    assert!(ops.iter().filter(|o| o.is_ok()).count() > 300);
    assert!(ops.iter().any(|o| o.f == "cas" && o.is_ok()));
    for spec in &w.checkers {
        let checker = checkers::by_name(&spec.name, &spec.options).unwrap();
        let r = checkers::run_checker(checker.as_ref(), &history, &Budget::default()).unwrap();
        assert_eq!(r.verdict, Verdict::Valid, "{}: {}", spec.name, r.summary);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_snapshot_is_the_servers_registers_under_the_root() {
    let Some(server) = start_zookeeper().await else {
        return;
    };
    let factory = ZooKeeperFactory::new().with_root("/snap");
    // Before setup the root does not exist: an empty copy, not an error.
    let empty = factory.replica_snapshot(&server.addr).await.unwrap();
    assert_eq!(empty, Some(Default::default()));
    let mut c = factory.open(0, &server.addr).await.unwrap();
    c.setup().await.unwrap();
    c.invoke(&Invocation::new("write", json!(3)).with_key("r1"))
        .await;
    c.invoke(&Invocation::new("write", json!([1, 2])).with_key("r2"))
        .await;
    // A register under another root is not part of it.
    let other = ZooKeeperFactory::new().with_root("/snaq");
    let mut o = other.open(0, &server.addr).await.unwrap();
    o.setup().await.unwrap();
    o.invoke(&Invocation::new("write", json!(9)).with_key("r1"))
        .await;
    let snap = factory
        .replica_snapshot(&server.addr)
        .await
        .unwrap()
        .expect("ZooKeeper reads each server");
    assert_eq!(
        snap.into_iter().collect::<Vec<_>>(),
        vec![
            ("r1".to_string(), json!(3)),
            ("r2".to_string(), json!([1, 2]))
        ]
    );
}
