//! Nothing left behind: a normal end, SIGINT while holding, SIGTERM while starting, and a panic
//! all remove the run's containers and network; `faultline clean` removes what a SIGKILLed
//! controller left and keeps runs whose controller lives. Each path is proven by asking Docker.

mod cluster_support;

use std::process::Stdio;
use std::time::Duration;

use cluster_support::{docker_or_skip, ensure_image, eventually, leftovers};
use faultline::cluster::{Cluster, ClusterOptions, System, SystemParams};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const BIN: &str = env!("CARGO_BIN_EXE_faultline");
/// Longest any step here may take (a start, an exit after a signal).
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

fn one_node_etcd() -> System {
    let params = SystemParams {
        nodes: Some(1),
        ..Default::default()
    };
    System::by_name("etcd", &params).unwrap()
}

/// `faultline cluster up` as a child process, with its stdout lines.
struct Up {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    run_id: String,
}

async fn cluster_up(args: &[&str]) -> Up {
    let mut child = Command::new(BIN)
        .args(["cluster", "up", "--system", "etcd"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = next_line(&mut lines).await;
    let run_id = first
        .split(" as run ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no run id in {first:?}"))
        .to_string();
    Up {
        child,
        lines,
        run_id,
    }
}

async fn next_line(lines: &mut Lines<BufReader<ChildStdout>>) -> String {
    tokio::time::timeout(STEP_TIMEOUT, lines.next_line())
        .await
        .expect("a line in time")
        .unwrap()
        .expect("output, not its end")
}

impl Up {
    async fn wait_for_line(&mut self, prefix: &str) -> String {
        loop {
            let l = next_line(&mut self.lines).await;
            if l.starts_with(prefix) {
                return l;
            }
        }
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.id().expect("still running").to_string();
        let ok = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} {pid}");
    }

    async fn exit_code(mut self) -> Option<i32> {
        tokio::time::timeout(STEP_TIMEOUT, self.child.wait())
            .await
            .expect("exits in time")
            .unwrap()
            .code()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_end_removes_everything() {
    let Some(()) = docker_or_skip("normal end") else {
        return;
    };
    ensure_image().await;
    let mut up = cluster_up(&["--nodes", "1", "--hold", "1s"]).await;
    up.wait_for_line("ready in").await;
    let run_id = up.run_id.clone();
    assert_eq!(up.exit_code().await, Some(0));
    assert_eq!(leftovers(&run_id).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_while_holding_removes_everything() {
    let Some(()) = docker_or_skip("SIGINT") else {
        return;
    };
    ensure_image().await;
    let mut up = cluster_up(&["--nodes", "1", "--hold", "300s"]).await;
    up.wait_for_line("holding").await;
    let run_id = up.run_id.clone();
    assert_eq!(
        leftovers(&run_id).await,
        (1, 1),
        "the cluster exists while held"
    );
    up.signal("INT");
    assert_eq!(up.exit_code().await, Some(130));
    assert_eq!(leftovers(&run_id).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_starting_removes_everything() {
    let Some(()) = docker_or_skip("SIGTERM") else {
        return;
    };
    ensure_image().await;
    let up = cluster_up(&["--hold", "300s"]).await;
    let run_id = up.run_id.clone();
    // Signal as soon as Docker shows the first container: mid-start.
    let seen = eventually(STEP_TIMEOUT, || async {
        Some(leftovers(&run_id).await).filter(|(c, _)| *c > 0)
    })
    .await;
    assert!(seen.is_some(), "the start created containers");
    up.signal("TERM");
    assert_eq!(up.exit_code().await, Some(143));
    assert_eq!(leftovers(&run_id).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_removes_everything() {
    let Some(()) = docker_or_skip("panic") else {
        return;
    };
    ensure_image().await;
    let run_id = faultline::cluster::new_run_id("panic");
    let (tx, rx) = tokio::sync::oneshot::channel();
    let rid = run_id.clone();
    let task = tokio::spawn(async move {
        let opts = ClusterOptions {
            run_id: Some(rid.clone()),
            ..Default::default()
        };
        let c = Cluster::up(one_node_etcd(), opts).await.unwrap();
        // A fault in force (a paused node) must not stop the removal.
        c.pause("n1").await.unwrap();
        tx.send(leftovers(&rid).await).unwrap();
        panic!("a bug in the middle of a run");
    });
    let err = task.await.unwrap_err();
    assert!(err.is_panic());
    assert_eq!(
        rx.await.unwrap(),
        (1, 1),
        "the cluster existed before the panic"
    );
    assert_eq!(leftovers(&run_id).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_removes_what_a_killed_controller_left_and_keeps_live_runs() {
    let Some(()) = docker_or_skip("clean") else {
        return;
    };
    ensure_image().await;
    let live = Cluster::up(one_node_etcd(), ClusterOptions::default())
        .await
        .unwrap();
    // Something labeled faultline=1 that no run's controller owns: whose it is cannot be told.
    let d = faultline::cluster::docker::connect().unwrap();
    let unowned = format!("fl-unowned-{}", std::process::id());
    d.create_network(bollard::models::NetworkCreateRequest {
        name: unowned.clone(),
        labels: Some([("faultline".to_string(), "1".to_string())].into()),
        ..Default::default()
    })
    .await
    .unwrap();

    let mut up = cluster_up(&["--nodes", "1", "--hold", "300s"]).await;
    up.wait_for_line("holding").await;
    let orphan = up.run_id.clone();
    up.signal("KILL");
    assert_eq!(up.exit_code().await, None, "killed by a signal");
    assert_eq!(
        leftovers(&orphan).await,
        (1, 1),
        "SIGKILL leaves the run behind"
    );

    let out = Command::new(BIN).arg("clean").output().await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains(&format!("removed run {orphan}")), "{text}");
    assert!(
        text.contains(&format!("kept    run {}", live.run_id())),
        "{text}"
    );
    assert_eq!(leftovers(&orphan).await, (0, 0));
    assert_eq!(leftovers(live.run_id()).await, (1, 1), "a live run is kept");
    assert!(
        text.contains(&format!("[{unowned}] without an owner label")),
        "{text}"
    );
    d.remove_network(&unowned).await.unwrap();
    live.teardown().await.unwrap();
}
