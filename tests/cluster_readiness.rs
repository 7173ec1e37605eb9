//! The readiness wait is bounded and its failures name the node and what it waited for; a
//! failed start leaves nothing behind.

mod cluster_support;

use std::time::Duration;

use cluster_support::{docker_or_skip, ensure_image, leftovers};
use faultline::cluster::{Cluster, ClusterOptions, Probe, System, SystemParams, TemplateSystem};

/// A one-node system running `cmd` in the base image, probed by `probe`, waiting at most 3 s.
fn system(cmd: &[&str], probe: Probe) -> System {
    let t = TemplateSystem {
        name: "probe-test".into(),
        image: faultline::images::base_image_ref(),
        nodes: 1,
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        peer_port: 1,
        ports: vec![],
        probe,
        ready_timeout: Duration::from_secs(3),
    };
    System::from_template(&t, &SystemParams::default()).unwrap()
}

/// Starts the system and returns the error text and what Docker still has of the run.
async fn failed_start(s: System) -> (String, (usize, usize)) {
    ensure_image().await;
    let run_id = faultline::cluster::new_run_id("probe-test");
    let opts = ClusterOptions {
        run_id: Some(run_id.clone()),
        ..Default::default()
    };
    let err = match Cluster::up(s, opts).await {
        Ok(_) => panic!("the start must fail"),
        Err(e) => format!("{e:#}"),
    };
    (err, leftovers(&run_id).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_that_never_passes_times_out_naming_node_and_probe() {
    let Some(()) = docker_or_skip("readiness timeout") else {
        return;
    };
    let s = system(
        &["sh", "-c", "echo booting {name}; exec sleep 300"],
        Probe::exec_expect(&["cat", "/tmp/ready"], "yes"),
    );
    let (err, left) = failed_start(s).await;
    assert!(err.starts_with("node n1 not ready after "), "{err}");
    assert!(
        err.contains("waited for `cat /tmp/ready` to exit 0 printing \"yes\""),
        "{err}"
    );
    assert!(
        err.contains("No such file or directory"),
        "the last failure: {err}"
    );
    assert!(
        err.contains("n1| booting n1"),
        "the node's last log lines: {err}"
    );
    assert_eq!(left, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_exits_fails_the_start_at_once() {
    let Some(()) = docker_or_skip("node exits") else {
        return;
    };
    let s = system(
        &["sh", "-c", "echo cannot start; exit 1"],
        Probe::Log("never printed".into()),
    );
    let (err, left) = failed_start(s).await;
    assert!(
        err.starts_with("node n1 exited while waiting for its log to contain"),
        "{err}"
    );
    assert!(err.contains("n1| cannot start"), "{err}");
    assert_eq!(left, (0, 0));
}
