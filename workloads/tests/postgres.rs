//! The PostgreSQL clients against a real PostgreSQL (Debian's postgresql) on loopback.
//!
//! Each test initialises a throw-away cluster in a temporary directory (as user `postgres` when
//! run as root, since PostgreSQL refuses to run as root), starts it on a free port without fsync,
//! and stops it at the end. Without the server binaries the tests fail under `CI=true` and are
//! skipped with a printed reason otherwise.

#[path = "support/local_server.rs"]
mod local_server;

use checkers::{Budget, Verdict};
use local_server::{free_port, missing};
use serde_json::{json, Value};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use workloads::clients::postgres::{IdempotencyMode, PostgresFactory, PostgresWorkload};
use workloads::generator;
use workloads::{build, ClientFactory, Invocation, PhaseLimits, Recorder, Runner, RunnerConfig};

const STARTUP_MAX: Duration = Duration::from_secs(30);

struct Postgres {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Fast shutdown (SIGINT) so the server's own processes exit too; then make sure.
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| d.join("postgres").exists() && d.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

/// uid and gid of user `postgres` from /etc/passwd, when we are root.
fn run_as() -> Option<(u32, u32)> {
    let me = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&me.stdout).trim() != "0" {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.starts_with("postgres:"))?;
    let fields: Vec<&str> = line.split(':').collect();
    Some((fields[2].parse().ok()?, fields[3].parse().ok()?))
}

fn command(bin: &Path, user: Option<(u32, u32)>) -> Command {
    let mut c = Command::new(bin);
    if let Some((uid, gid)) = user {
        c.uid(uid).gid(gid);
    }
    c
}

async fn start_postgres() -> Option<Postgres> {
    let Some(bin) = bin_dir() else {
        return missing("PostgreSQL", "postgresql");
    };
    let user = run_as();
    let dir = tempfile::tempdir().unwrap();
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
    }
    let data = dir.path().join("data");
    let init = command(&bin.join("initdb"), user)
        .args(["--auth=trust", "--username=postgres", "--no-sync", "-D"])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("cannot run initdb");
    assert!(
        init.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let port = free_port();
    let child = command(&bin.join("postgres"), user)
        .arg("-D")
        .arg(&data)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-F", "-k"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start postgres");
    let pg = Postgres {
        child,
        addr: format!("127.0.0.1:{port}"),
        _dir: dir,
    };
    let factory = PostgresFactory::new(PostgresWorkload::Set);
    let started = Instant::now();
    while factory.open(0, &pg.addr).await.is_err() {
        assert!(
            started.elapsed() < STARTUP_MAX,
            "PostgreSQL did not accept connections within {STARTUP_MAX:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some(pg)
}

/// Runs `workload` on `system` (a postgres entry of the catalog): `ops` operations on 8
/// threads, then the final phase; returns the checkers' verdicts with their summaries, after
/// checking that the workload's main operation succeeded often (a history of errors proves
/// nothing).
async fn run(pg: &Postgres, system: &str, workload: &str, ops: u64) -> Vec<(Verdict, String)> {
    run_with(pg, system, workload, ops, json!({})).await
}

/// [`run`] with a plan's `[client]` table.
async fn run_with(
    pg: &Postgres,
    system: &str,
    workload: &str,
    ops: u64,
    client: Value,
) -> Vec<(Verdict, String)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let recorder = Recorder::create(&path).unwrap();
    let opts = workloads::WorkloadOptions {
        client: serde_json::from_value(client).unwrap(),
        ..Default::default()
    };
    let (w, factory) = build(system, workload, &opts).unwrap();
    let config = RunnerConfig::new(8, vec![pg.addr.clone()], 5);
    let mut runner = Runner::start(config, factory, recorder.clone())
        .await
        .unwrap();
    let limits = PhaseLimits {
        time_limit: Duration::from_secs(60),
        grace: Duration::from_secs(2),
    };
    let cancel = CancellationToken::new();
    runner
        .run_phase(generator::limit(ops, w.generator), limits, &cancel)
        .await
        .unwrap();
    if let Some(fin) = w.final_generator {
        runner.run_phase(fin, limits, &cancel).await.unwrap();
    }
    runner.close().await.unwrap();
    recorder.finish().await.unwrap();
    let history = checkers::formats::read_path(&path, None).unwrap();
    let main_f = match workload {
        "idempotency" => "request",
        "versioned-append" => "append",
        "list-append" | "rw-register" => "txn",
        _ => "add",
    };
    let ok = history
        .ops()
        .unwrap()
        .iter()
        .filter(|o| o.f == main_f && o.is_ok())
        .count();
    assert!(ok >= 50, "{workload}: only {ok} ok {main_f} operations");
    w.checkers
        .iter()
        .map(|spec| {
            let checker = checkers::by_name(&spec.name, &spec.options).unwrap();
            let r = checkers::run_checker(checker.as_ref(), &history, &Budget::default()).unwrap();
            (
                r.verdict,
                format!("{workload} {}: {}", spec.name, r.summary),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_workloads_pass_their_checkers() {
    let Some(pg) = start_postgres().await else {
        return;
    };
    for workload in ["idempotency", "versioned-append", "set"] {
        for (verdict, summary) in run(&pg, "postgres", workload, 600).await {
            assert_eq!(verdict, Verdict::Valid, "{summary}");
        }
    }
}

/// Transactions at each isolation level PostgreSQL gives, judged by the model that level
/// promises (its repeatable read is snapshot isolation): no false alarm, and the transactions
/// mostly commit (serialization failures are `fail`, so a history of failures proves nothing).
/// Whether a short local run shows G2-item under repeatable read depends on timing, so the
/// anomalies are left to the plans (plans/known-anomalies/postgres-*-repeatable-read.toml).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_pass_the_model_their_isolation_level_promises() {
    let Some(pg) = start_postgres().await else {
        return;
    };
    for (workload, isolation, model) in [
        ("list-append", "serializable", "serializable"),
        ("rw-register", "serializable", "serializable"),
        ("list-append", "repeatable-read", "snapshot-isolation"),
        ("list-append", "read-committed", "read-committed"),
    ] {
        let client = json!({ "isolation": isolation, "consistency-model": model });
        let results = run_with(&pg, "postgres", workload, 600, client).await;
        assert!(!results.is_empty(), "{workload}: no checker");
        for (verdict, summary) in results {
            assert_eq!(verdict, Verdict::Valid, "{isolation}: {summary}");
        }
    }
}

/// Read committed lets a transaction see other transactions' commits between its statements, so
/// 600 list-append transactions on 8 threads judged as serializable show cycles (G-single,
/// G2-item) and non-repeatable reads: seen in every one of 4 runs here, each with dozens of
/// anomalies, so a miss would mean the client or the checker lost them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_committed_judged_as_serializable_is_flagged() {
    let Some(pg) = start_postgres().await else {
        return;
    };
    let client = json!({ "isolation": "read-committed", "consistency-model": "serializable" });
    let results = run_with(&pg, "postgres", "list-append", 600, client).await;
    assert!(!results.is_empty());
    for (verdict, summary) in results {
        assert_eq!(verdict, Verdict::Invalid, "{summary}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_then_insert_idempotency_is_flagged() {
    let Some(pg) = start_postgres().await else {
        return;
    };
    let results = run(&pg, "postgres-check-then-insert", "idempotency", 1000).await;
    assert!(!results.is_empty());
    for (verdict, summary) in results {
        assert_eq!(verdict, Verdict::Invalid, "{summary}");
    }
}

async fn open(addr: &str, w: PostgresWorkload) -> Box<dyn workloads::Client> {
    let mut c = PostgresFactory::new(w).open(0, addr).await.unwrap();
    c.setup().await.unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_speak_the_documented_vocabulary() {
    let Some(pg) = start_postgres().await else {
        return;
    };
    let mut c = open(
        &pg.addr,
        PostgresWorkload::Idempotency(IdempotencyMode::UniqueConstraint),
    )
    .await;
    let req = Invocation::new("request", json!({"amount": 5})).with_key("k1");
    let first = c.invoke(&req).await;
    let again = c.invoke(&req).await;
    assert!(first.value.get("effect").is_some(), "{first:?}");
    assert_eq!(
        first.value, again.value,
        "the same response for the same key"
    );
    let effects = c
        .invoke(&Invocation::new("effects", Value::Null).with_key("k1"))
        .await;
    assert_eq!(effects.value, json!(1));

    let mut c = open(&pg.addr, PostgresWorkload::VersionedAppend).await;
    let append = |v: u64, e: u64| {
        Invocation::new("append", json!({"expected": v, "event": e})).with_key("s")
    };
    assert_eq!(c.invoke(&append(0, 10)).await.kind, checkers::EventType::Ok);
    let stale = c.invoke(&append(0, 11)).await;
    assert_eq!(
        (stale.kind, stale.error.as_deref()),
        (checkers::EventType::Fail, Some("wrong-expected-version"))
    );
    let ahead = c.invoke(&append(5, 12)).await;
    assert_eq!(ahead.kind, checkers::EventType::Fail, "no gaps: {ahead:?}");
    assert_eq!(c.invoke(&append(1, 13)).await.kind, checkers::EventType::Ok);
    let read = c
        .invoke(&Invocation::new("read", Value::Null).with_key("s"))
        .await;
    assert_eq!(
        read.value,
        json!([{"version": 1, "event": 10}, {"version": 2, "event": 13}])
    );

    let mut c = open(&pg.addr, PostgresWorkload::Set).await;
    for e in [3, 1, 2] {
        let add = Invocation::new("add", json!(e)).with_key("s");
        assert_eq!(c.invoke(&add).await.kind, checkers::EventType::Ok);
    }
    let read = c
        .invoke(&Invocation::new("read", Value::Null).with_key("s"))
        .await;
    let mut got: Vec<u64> = read
        .value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, [1, 2, 3]);
}
