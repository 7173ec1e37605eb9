//! Shared by the nemesis tests: decide whether real containers can run here, start a system
//! with the clock shim in place, and wrap it for the nemesis.
//!
//! Skipping follows testsupport/prereq.rs: without Docker or the base image a test prints why
//! (and the command that builds the image) and passes, except under CI, where it fails (CI must
//! build the images first, so a missing image there is a broken pipeline, not a reason to pass).
//! FAULTLINE_TEST_IMAGE runs the tests on another local image.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use faultline::cluster::{docker, Cluster, ClusterOptions, System, SystemParams};
use faultline::nemesis::{clock_shim_files, ClusterControl};
use nemeses::driver::{Nemesis, NemesisConfig};
use nemeses::record::MemoryRecorder;

// Some test files include cluster_support too, which has its own copy: one file, one rule.
#[allow(clippy::duplicate_mod)]
#[path = "../../testsupport/prereq.rs"]
mod prereq;

/// The image the tests run, when it exists; `None` (after printing why) to skip.
pub async fn image_or_skip(test: &str) -> Option<String> {
    if let Err(e) = docker::available() {
        return prereq::skip("no Docker daemon", &format!("{test}: {e:#}"));
    }
    let image = std::env::var("FAULTLINE_TEST_IMAGE")
        .unwrap_or_else(|_| faultline::images::base_image_ref());
    let d = docker::connect().expect("docker client");
    let exists = faultline::images::image_exists(&d, &image)
        .await
        .expect("asking Docker for the image");
    if exists {
        return Some(image);
    }
    prereq::skip(
        "no base image",
        &format!("{test}: {image} is missing: run `faultline images build` first"),
    )
}

/// Starts `system` on `image` with the clock shim loaded in every node from the first start.
pub async fn start(system: &str, image: &str) -> Arc<Cluster> {
    start_with(system, image, true).await
}

/// Starts `system` on `image`, with or without the clock shim files.
pub async fn start_with(system: &str, image: &str, shim: bool) -> Arc<Cluster> {
    let params = SystemParams {
        image: Some(image.to_string()),
        ..SystemParams::default()
    };
    let s = System::by_name(system, &params).expect("a known system");
    let opts = ClusterOptions {
        files: if shim { clock_shim_files() } else { vec![] },
        ..ClusterOptions::default()
    };
    let c = Cluster::up(s, opts)
        .await
        .unwrap_or_else(|e| panic!("{system} cluster starts: {e:#}"));
    eprintln!("{system}: ready in {:.1} s", c.ready_in().as_secs_f64());
    Arc::new(c)
}

/// Starts `system` on `image` ready for every clock fault: the shim, faultline's binary in the
/// nodes and CAP_SYS_PTRACE (`faultline::nemesis::add_clock_fault_options`, as `faultline run`).
pub async fn start_for_clock(system: &str, image: &str) -> Arc<Cluster> {
    let params = SystemParams {
        image: Some(image.to_string()),
        ..SystemParams::default()
    };
    let s = System::by_name(system, &params).expect("a known system");
    let mut opts = ClusterOptions::default();
    faultline::nemesis::add_clock_fault_options(&mut opts, &s).expect("clock fault options");
    let c = Cluster::up(s, opts)
        .await
        .unwrap_or_else(|e| panic!("{system} cluster starts: {e:#}"));
    eprintln!("{system}: ready in {:.1} s", c.ready_in().as_secs_f64());
    Arc::new(c)
}

/// A nemesis over a cluster from [`start_for_clock`]: clock faults patch the vDSO of servers
/// the shim cannot reach.
pub fn nemesis_with_vdso(cluster: &Arc<Cluster>) -> (Arc<Nemesis>, Arc<MemoryRecorder>) {
    let rec = Arc::new(MemoryRecorder::new());
    let ctl = Arc::new(ClusterControl::new(cluster.clone()));
    let config = NemesisConfig {
        op_timeout: Duration::from_secs(30),
        ready_timeout: Duration::from_secs(60),
        clock_vdso_helper: Some(faultline::nemesis::CLOCK_VDSO_HELPER.to_string()),
        ..NemesisConfig::default()
    };
    (Arc::new(Nemesis::new(ctl, rec.clone(), config)), rec)
}

/// A nemesis over `cluster` recording into memory.
pub fn nemesis(cluster: &Arc<Cluster>) -> (Arc<Nemesis>, Arc<MemoryRecorder>) {
    let rec = Arc::new(MemoryRecorder::new());
    let ctl = Arc::new(ClusterControl::new(cluster.clone()));
    let config = NemesisConfig {
        op_timeout: Duration::from_secs(30),
        ready_timeout: Duration::from_secs(60),
        clock_restart_to_load: true,
        ..NemesisConfig::default()
    };
    (Arc::new(Nemesis::new(ctl, rec.clone(), config)), rec)
}

/// Whether `from` can open a TCP connection to `to`'s `port` on the run network, tried from
/// inside `from` with a 2 s bound (bash's /dev/tcp: every node image has bash).
pub async fn reaches(cluster: &Cluster, from: &str, to: &str, port: u16) -> bool {
    let ip = cluster.ip(to).await.expect("node address");
    let script = format!("timeout 2 bash -c '</dev/tcp/{ip}/{port}'");
    let out = cluster
        .exec(from, &["sh", "-c", &script])
        .await
        .expect("exec");
    out.exit_code == 0
}

/// Removes the run (drop every nemesis over it first, so this is the last reference; otherwise
/// the cluster's own Drop removes it when the last reference goes).
pub async fn teardown(cluster: Arc<Cluster>) {
    if let Ok(c) = Arc::try_unwrap(cluster) {
        c.teardown().await.expect("teardown");
    }
}
