//! Shared by the cluster tests: skip when there is no Docker (fail under CI), make sure the base image exists,
//! start a system, and ask Docker what is left of a run.

#![allow(dead_code)]

use std::time::Duration;

use faultline::cluster::{docker, Cluster, ClusterOptions, System, SystemParams};

#[path = "../../testsupport/prereq.rs"]
pub mod prereq;

/// `None` (after printing why) when this machine has no Docker: the test then skips; under CI
/// it fails instead (testsupport/prereq.rs).
pub fn docker_or_skip(test: &str) -> Option<()> {
    match docker::available() {
        Ok(()) => Some(()),
        Err(e) => prereq::skip("no Docker daemon", &format!("{test}: {e:#}")),
    }
}

/// Builds the base image if it is missing (once; concurrent test processes wait for the first).
pub async fn ensure_image() {
    let d = docker::connect().expect("docker");
    faultline::images::ensure_base(&d)
        .await
        .expect("the base image builds");
}

/// Starts `system` with its defaults and returns the ready cluster.
pub async fn start(system: &str) -> Cluster {
    ensure_image().await;
    let s = System::by_name(system, &SystemParams::default()).expect("a known system");
    let c = Cluster::up(s, ClusterOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{system} cluster starts: {e:#}"));
    eprintln!("{system}: ready in {:.1} s", c.ready_in().as_secs_f64());
    c
}

/// Containers and networks Docker still has for a run.
pub async fn leftovers(run_id: &str) -> (usize, usize) {
    let d = docker::connect().expect("docker");
    let runs = docker::list_runs(&d).await.expect("listing runs");
    runs.iter()
        .find(|r| r.run_id == run_id)
        .map(|r| (r.containers.len(), r.networks.len()))
        .unwrap_or((0, 0))
}

/// Retries `f` until it returns `Some` or `timeout` passes (for a client that connects while a
/// system settles, e.g. right after a failover).
pub async fn eventually<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs `argv` in `node`'s container: its exit code and output.
pub async fn exec(c: &Cluster, node: &str, argv: &[&str]) -> (i64, String) {
    let out = c
        .exec(node, argv)
        .await
        .unwrap_or_else(|e| panic!("exec {argv:?} in {node}: {e:#}"));
    (out.exit_code, out.output)
}

/// `etcdctl` against `node`'s own member: exit code and trimmed output.
pub async fn etcdctl(c: &Cluster, node: &str, args: &[&str]) -> (i64, String) {
    let mut argv = vec![
        "etcdctl",
        "--endpoints=http://127.0.0.1:2379",
        "--command-timeout=3s",
    ];
    argv.extend_from_slice(args);
    let (code, out) = exec(c, node, &argv).await;
    (code, out.trim().to_string())
}
