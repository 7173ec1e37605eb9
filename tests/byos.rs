//! Bring your own system: `faultline run --plan` with a `[system]` table and a client in another
//! language, through the binary, as a user runs it.
//!
//! - examples/pykv (a Python store with a Perl client): flagged (exit 1) with its planted
//!   stale-read bug, valid (exit 0) without it, under kills and partitions that must really
//!   have happened;
//! - each mistake in a `[system]` table is one line on stderr, exit 3, and no run folder (so
//!   nothing started); a readiness check that never passes names the node and its last probe
//!   output and keeps the node's log in the run folder.
//!
//! - faultline as a library: the same pykv plans with a client written in Rust
//!   (examples/pykv_rust_client.rs) instead of the Perl one, flagged and valid alike.
//! - a client that exits at start is one line naming the plan file and `system.client`, with
//!   its stderr, exit 3, before anything starts.
//!
//! Tests that need Docker skip without it (testsupport/prereq.rs), except under CI, where they
//! fail.

#[path = "../testsupport/prereq.rs"]
mod prereq;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

#[path = "../examples/pykv_rust_client.rs"]
#[allow(dead_code)]
mod pykv_rust_client;

/// `false` (after saying why) without Docker outside CI; a panic under CI.
fn docker_or_skip(test: &str) -> bool {
    match faultline::cluster::docker::available() {
        Ok(()) => true,
        Err(e) => prereq::skip::<()>("no Docker daemon", &format!("{test}: {e:#}")).is_some(),
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh store folder for one test.
fn store(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("byos-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

struct Ran {
    code: i32,
    stderr: String,
    /// The one run folder of the store, if a run started.
    run_dir: Option<PathBuf>,
}

/// `faultline run --plan <plan> --store <store> --quiet --seed 7 <extra>`.
fn run(plan: &Path, store: &Path, extra: &[&str]) -> Ran {
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["run", "--quiet", "--seed", "7", "--plan"])
        .arg(plan)
        .arg("--store")
        .arg(store)
        .args(extra)
        .output()
        .expect("running faultline");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    eprintln!("{stderr}");
    let run_dir = std::fs::read_dir(store).ok().and_then(|tests| {
        tests
            .filter_map(|t| t.ok())
            .filter(|t| t.path().is_dir())
            .flat_map(|t| std::fs::read_dir(t.path()).into_iter().flatten())
            .filter_map(|r| r.ok().map(|r| r.path()))
            .find(|p| p.join("plan.json").exists())
    });
    Ran {
        code: out.status.code().unwrap_or(-1),
        stderr,
        run_dir,
    }
}

fn history(run_dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(run_dir.join("history.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The faults that took effect (`start-kill`, `start-partition`, ...).
fn faults(history: &[Value]) -> Vec<String> {
    history
        .iter()
        .filter(|e| e["process"] == "nemesis")
        .filter_map(|e| e["f"].as_str())
        .filter(|f| f.starts_with("start-"))
        .map(str::to_string)
        .collect()
}

/// The run did work and faults took effect, so its verdict proves something.
fn ran_for_real(plan: &str, run_dir: &Path) {
    let h = history(run_dir);
    let ops = h.iter().filter(|e| e["type"] == "ok").count();
    assert!(ops > 100, "{plan}: only {ops} ok operations");
    assert!(
        !faults(&h).is_empty(),
        "{plan}: no fault took effect, so the run proved nothing"
    );
}

fn checker_verdicts(run_dir: &Path) -> Vec<(String, String)> {
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("results.json")).unwrap())
            .unwrap();
    results["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["checker"].as_str().unwrap().to_string(),
                r["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Containers Docker still has for the run whose folder this is.
async fn leftovers(run_dir: &Path) -> usize {
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("plan.json")).unwrap()).unwrap();
    let Some(run_id) = plan["cluster"]["run_id"].as_str() else {
        return 0;
    };
    let d = faultline::cluster::docker::connect().unwrap();
    let runs = faultline::cluster::docker::list_runs(&d).await.unwrap();
    runs.iter()
        .find(|r| r.run_id == run_id)
        .map(|r| r.containers.len() + r.networks.len())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pykv_with_its_stale_read_bug_is_flagged_and_without_it_is_valid() {
    if !docker_or_skip("pykv") {
        return;
    }
    let examples = repo().join("examples/pykv");
    for (plan, expected_code, expected_verdict) in [
        ("plan-stale-read.toml", 1, "invalid"),
        ("plan.toml", 0, "valid"),
    ] {
        let store = store(plan.trim_end_matches(".toml"));
        let ran = run(&examples.join(plan), &store, &[]);
        let dir = ran.run_dir.clone().expect("a run folder");
        ran_for_real(plan, &dir);
        assert_eq!(
            checker_verdicts(&dir),
            [("linearizable".to_string(), expected_verdict.to_string())],
            "{plan}"
        );
        assert_eq!(ran.code, expected_code, "{plan}: {}", ran.stderr);
        let client_log = std::fs::read_to_string(dir.join("client-stderr.log")).unwrap();
        assert!(
            client_log.contains("p0| process 0 talks to n1"),
            "the Perl client's stderr is kept: {client_log}"
        );
        assert!(dir.join("nodes/n1.log").exists(), "node logs are kept");
        assert_eq!(leftovers(&dir).await, 0, "{plan}: the cluster was removed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pykv_with_a_client_written_in_rust_through_the_library() {
    if !docker_or_skip("pykv-rust") {
        return;
    }
    let examples = repo().join("examples/pykv");
    for (plan, expected_verdict) in [
        ("plan-stale-read.toml", checkers::Verdict::Invalid),
        ("plan.toml", checkers::Verdict::Valid),
    ] {
        let mut p = faultline::plan::Plan::from_file(&examples.join(plan)).unwrap();
        p.store = store(&format!("rust-{}", plan.trim_end_matches(".toml")))
            .display()
            .to_string();
        p.seed = 7;
        // The Rust client replaces the plan's Perl one, which is then not needed at all.
        p.system_def.as_mut().unwrap().client.clear();
        let opts = faultline::run::RunOptions {
            quiet: true,
            ..Default::default()
        };
        let own = Arc::new(pykv_rust_client::PykvFactory);
        let outcome = faultline::run::run_plan_with_client(p, opts, Some(own))
            .await
            .unwrap();
        let dir = outcome.run_dir.clone();
        ran_for_real(plan, &dir);
        assert!(
            outcome.harness_errors.is_empty(),
            "{:?}",
            outcome.harness_errors
        );
        assert_eq!(
            outcome.verdict,
            expected_verdict,
            "{plan}: {:?}",
            checker_verdicts(&dir)
        );
        assert!(
            !dir.join("client-stderr.log").exists(),
            "no client program was started"
        );
        assert_eq!(leftovers(&dir).await, 0, "{plan}: the cluster was removed");
    }
}

/// A client that answers `init` and nothing useful: enough for runs that fail before an
/// operation.
const IDLE_CLIENT: &str = r#"$| = 1;
while (<STDIN>) {
    if (/"init"/) { print qq({"type":"init_ok","protocol":1}\n) }
    else { print qq({"type":"error","error":"this client only answers init"}\n) }
}
"#;

/// A plan folder with a `store.py`, a `client.pl` that answers init, and a plan whose
/// `[system]` table is `table`.
fn plan_with(test: &str, table: &str) -> (PathBuf, PathBuf) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("byos-plan-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("store.py"), "print('hi')\n").unwrap();
    std::fs::write(dir.join("client.pl"), IDLE_CLIENT).unwrap();
    let plan = dir.join("plan.toml");
    std::fs::write(
        &plan,
        format!("workload = \"register\"\nnemesis = []\ntime_limit = \"5s\"\n\n[system]\n{table}"),
    )
    .unwrap();
    (plan, store(test))
}

const GOOD: &str = r#"name = "mykv"
files = ["store.py"]
command = ["python3", "/opt/mykv/store.py", "--peers={peers:peer}"]
ports = { client = 8000, peer = 9000 }
ready = { tcp = "client", timeout = "5s" }
client = ["perl", "client.pl"]
"#;

/// Runs a plan whose table is GOOD with `from` replaced by `to`; asserts exit 3, one error
/// line, no run folder; returns the line.
fn bad_table(test: &str, from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from}");
    let (plan, store) = plan_with(test, &GOOD.replace(from, to));
    let ran = run(&plan, &store, &[]);
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    assert!(ran.run_dir.is_none(), "nothing started for bad input");
    // One error line, the last; a package build prints its progress before it.
    let errors: Vec<&str> = ran
        .stderr
        .lines()
        .filter(|l| l.starts_with("faultline: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {}", ran.stderr);
    assert_eq!(ran.stderr.lines().last(), Some(errors[0]));
    errors[0].to_string()
}

#[test]
fn each_mistake_in_a_system_table_is_one_line_and_exit_3_before_anything_starts() {
    let line = bad_table("placeholder", "{peers:peer}", "{peer:peer}");
    assert!(
        line.starts_with(
            "faultline: error: system.command: unknown placeholder {peer:peer}; known: {name}"
        ),
        "{line}"
    );
    let line = bad_table("port", "{peers:peer}", "{peers:gossip}");
    assert_eq!(
        line,
        "faultline: error: system.command: {peers:gossip} names no port of system.ports (client, peer)"
    );
    let line = bad_table("file", "\"store.py\"]", "\"stor.py\"]");
    assert!(
        line.starts_with("faultline: error: system.files: cannot read ")
            && line.contains("stor.py"),
        "{line}"
    );
    let line = bad_table("key", "ports =", "portz =");
    assert!(line.contains("system: unknown field `portz`"), "{line}");
    let line = bad_table("ready", "tcp = \"client\"", "tcp = \"admin\"");
    assert!(
        line.contains("system.ready.tcp: \"admin\" names no port"),
        "{line}"
    );
    // Only a Rust program with its own client (faultline as a library) may leave it out.
    let line = bad_table("client", "client = [\"perl\", \"client.pl\"]\n", "");
    assert!(
        line.contains("system.client: give the client program"),
        "{line}"
    );
}

/// Neither Docker nor a node is needed to find a client that cannot start: it is started once
/// before anything else, and its failure is one line naming the plan file and `system.client`.
#[test]
fn a_client_that_exits_at_start_is_one_line_naming_the_plan_and_the_command_before_anything_starts()
{
    let dying = r#"client = ["perl", "-e", "print STDERR qq(Can't locate JSON/XS.pm in \\@INC\\n); exit 2"]"#;
    let (plan, store) = plan_with(
        "client-dies",
        &GOOD.replace(r#"client = ["perl", "client.pl"]"#, dying),
    );
    let ran = run(&plan, &store, &[]);
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    assert!(ran.run_dir.is_none(), "nothing started");
    let line = ran.stderr.lines().last().unwrap_or_default().to_string();
    assert!(
        line.starts_with(&format!(
            "faultline: error: {}: system.client `perl -e ",
            plan.display()
        )) && line.contains("` fails at start: client process check did not start: ")
            && line.ends_with(
                "it exited (exit status: 2); its stderr's last lines: Can't locate JSON/XS.pm in @INC"
            ),
        "{}",
        ran.stderr
    );
    assert_eq!(
        ran.stderr
            .lines()
            .filter(|l| l.starts_with("faultline: error:"))
            .count(),
        1
    );

    let missing = r#"client = ["./no-such-client"]"#;
    let (plan, store) = plan_with(
        "client-missing",
        &GOOD.replace(r#"client = ["perl", "client.pl"]"#, missing),
    );
    let ran = run(&plan, &store, &[]);
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    assert!(ran.run_dir.is_none());
    let line = ran.stderr.lines().last().unwrap_or_default();
    assert!(
        line.starts_with(&format!(
            "faultline: error: {}: system.client `./no-such-client` fails at start: cannot start the client `./no-such-client`: No such file or directory",
            plan.display()
        )),
        "{line}"
    );
}

#[test]
fn aiming_at_the_leader_or_proxying_links_needs_the_keys_that_make_them_possible() {
    let (plan, store) = plan_with("leader", GOOD);
    let ran = run(&plan, &store, &["--nemesis", "kill:leader"]);
    assert_eq!(ran.code, 3);
    assert!(
        ran.stderr
            .contains("--nemesis kill:leader: aiming at the leader needs system.leader"),
        "{}",
        ran.stderr
    );
    let ran = run(&plan, &store, &["--links", "proxy"]);
    assert_eq!(ran.code, 3);
    assert!(
        ran.stderr.contains("set system.peer_port"),
        "{}",
        ran.stderr
    );
    assert!(ran.run_dir.is_none());
}

#[test]
fn an_image_that_is_not_there_is_refused_and_never_pulled() {
    if !docker_or_skip("image") {
        return;
    }
    let line = bad_table(
        "image",
        "files =",
        "image = \"faultline-test/not-built:never\"\nfiles =",
    );
    assert_eq!(
        line,
        "faultline: error: system.image: faultline-test/not-built:never does not exist locally, and faultline never pulls images: build or load it first (docker build -t faultline-test/not-built:never ...)"
    );
}

#[test]
fn a_package_apt_cannot_install_is_refused_with_apts_own_line() {
    if !docker_or_skip("packages") {
        return;
    }
    let line = bad_table(
        "packages",
        "files =",
        "packages = [\"faultline-no-such-package\"]\nfiles =",
    );
    assert!(
        line.starts_with(
            "faultline: error: system.packages: faultline-no-such-package cannot be installed: E: "
        ) && line.contains("faultline-no-such-package"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_readiness_check_that_never_passes_names_the_node_its_last_probe_and_keeps_its_log() {
    if !docker_or_skip("readiness") {
        return;
    }
    let table = r#"name = "deaf"
nodes = 2
command = ["sh", "-c", "echo deaf node {name} listening nowhere; exec sleep 600"]
ports = { client = 8000 }
ready = { tcp = "client", timeout = "4s" }
client = ["perl", "client.pl"]
"#;
    let (plan, store) = plan_with("readiness", table);
    let ran = run(&plan, &store, &[]);
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("node n1 not ready after")
            && ran.stderr.contains("a TCP connect to its client port")
            && ran.stderr.contains("(last: connect ")
            && ran.stderr.contains("Connection refused"),
        "{}",
        ran.stderr
    );
    let dir = ran.run_dir.expect("the run folder keeps the logs");
    let log = std::fs::read_to_string(dir.join("nodes/n1.log")).unwrap();
    assert!(log.contains("deaf node n1 listening nowhere"), "{log}");
    assert_eq!(leftovers(&dir).await, 0);
}

/// etcd plugged in as a user's own system by a newcomer who read only the docs
/// (plans/own/etcd-as-user*.toml and a Python client on etcd's JSON gateway): valid under
/// partitions and kills, and flagged with the bug planted in the client (reads answered from
/// the process's own cache of its writes, which no fault is needed to expose).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_plugged_in_from_the_docs_alone_is_valid_and_its_stale_client_is_flagged() {
    if !docker_or_skip("etcd-as-user") {
        return;
    }
    for (plan, extra, expected_code, expected_verdict) in [
        ("etcd-as-user.toml", vec!["--time-limit", "20s"], 0, "valid"),
        (
            "etcd-as-user-stale-cache.toml",
            vec!["--time-limit", "10s", "--nemesis", "none"],
            1,
            "invalid",
        ),
    ] {
        let store = store(plan.trim_end_matches(".toml"));
        let ran = run(&repo().join("plans/own").join(plan), &store, &extra);
        let dir = ran.run_dir.clone().expect("a run folder");
        let h = history(&dir);
        let ops = h.iter().filter(|e| e["type"] == "ok").count();
        assert!(ops > 100, "{plan}: only {ops} ok operations");
        if expected_verdict == "valid" {
            assert!(!faults(&h).is_empty(), "{plan}: no fault took effect");
        }
        assert_eq!(
            checker_verdicts(&dir),
            [("linearizable".to_string(), expected_verdict.to_string())],
            "{plan}"
        );
        assert_eq!(ran.code, expected_code, "{plan}: {}", ran.stderr);
        assert_eq!(leftovers(&dir).await, 0, "{plan}: the cluster was removed");
    }
}

/// Redis Cluster, which faultline does not ship, from plans/own alone: whether a short run
/// catches its lost writes depends on where the faults land, so this asserts that the run
/// completes with a verdict (valid or invalid, never unknown or a harness error), that faults
/// took effect, and that nothing is left behind; the plan's comment says what runs found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_plugged_in_by_a_plan_and_a_script_runs_end_to_end() {
    if !docker_or_skip("redis-cluster") {
        return;
    }
    let store = store("redis-cluster");
    let ran = run(
        &repo().join("plans/own/redis-cluster.toml"),
        &store,
        &["--time-limit", "20s"],
    );
    assert!(ran.code == 0 || ran.code == 1, "{}", ran.stderr);
    let dir = ran.run_dir.expect("a run folder");
    let h = history(&dir);
    assert!(h.iter().filter(|e| e["type"] == "ok").count() > 100);
    assert!(!faults(&h).is_empty(), "no fault took effect");
    let verdicts = checker_verdicts(&dir);
    assert_eq!(verdicts.len(), 1);
    assert!(
        ["valid", "invalid"].contains(&verdicts[0].1.as_str()),
        "{verdicts:?}"
    );
    assert_eq!(leftovers(&dir).await, 0);
}
