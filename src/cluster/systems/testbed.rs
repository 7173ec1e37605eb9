//! The calibrated testbed (the `testbed` crate): three nodes of `faultline testbed-node`, the
//! testbed's server inside faultline's own binary. The binary goes into each container at
//! creation, so the testbed needs no image of its own and always matches the controller that
//! drives it. Nodes dial each other by name on port 7000; a node's data (its write-ahead log)
//! lives under its data folder, so kill -9 and restart keep what it persisted. Ready means the
//! node answers `GET /status`; the primary is the node whose status says so with the highest
//! epoch.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

use super::{data_dir, node_names};
use crate::cluster::system::{
    LeaderQuery, NodeFile, NodeSpec, PortSpec, Probe, System, SystemParams, DEFAULT_PROBE_INTERVAL,
};

pub const CLIENT_PORT: u16 = 7000;
/// Where the faultline binary goes inside each node.
pub const BINARY_PATH: &str = "/usr/local/bin/faultline";

/// Set by faultline's `main`: this process is the faultline binary, whatever its file is named.
static RUNNING_AS_FAULTLINE: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Called by faultline's `main`, so that a copy under another name (`cp faultline /tmp/fl`)
/// still puts itself into the nodes.
pub fn running_as_faultline() {
    RUNNING_AS_FAULTLINE.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// The faultline binary to put into the nodes: `$FAULTLINE_BIN`, else this process's own
/// executable when it is faultline (by name, or by `main` saying so), else a `faultline` next
/// to it or one folder up (a test harness in `target/<profile>/deps/`).
pub fn faultline_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("FAULTLINE_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("cannot locate the faultline binary")?;
    if RUNNING_AS_FAULTLINE.load(std::sync::atomic::Ordering::Relaxed)
        || exe.file_name().and_then(|n| n.to_str()) == Some("faultline")
    {
        return Ok(exe);
    }
    let dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    for candidate in [dir.join("faultline"), dir.join("../faultline")] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    anyhow::bail!(
        "the testbed runs faultline's own binary in its containers, and none was found near {}; build it (cargo build) or set FAULTLINE_BIN",
        exe.display()
    )
}

/// The faultline binary as a file for a node, at [`BINARY_PATH`]. Read from disk once per
/// process: a testbed run with proxy links puts it into four containers, and the system is
/// built twice (once to learn the node names for the links).
pub fn binary_file() -> Result<NodeFile> {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let contents = match BYTES.get() {
        Some(b) => b.clone(),
        None => {
            let binary = faultline_binary()?;
            let bytes =
                std::fs::read(&binary).with_context(|| format!("reading {}", binary.display()))?;
            BYTES.get_or_init(|| bytes).clone()
        }
    };
    Ok(NodeFile {
        path: BINARY_PATH.into(),
        contents,
        mode: 0o755,
    })
}

/// The testbed cluster; `params.node_args` go to every node (bugs, timings).
pub fn system(params: &SystemParams) -> Result<System> {
    let file = binary_file()?;
    let names = node_names(params.nodes.unwrap_or(3));
    let nodes = names
        .iter()
        .map(|name| {
            let peers = names
                .iter()
                .filter(|p| *p != name)
                .map(|p| format!("{p}={}", params.dial_addr(name, p, CLIENT_PORT)))
                .collect::<Vec<_>>()
                .join(",");
            let dir = data_dir(name);
            let mut cmd = vec![
                BINARY_PATH.to_string(),
                "testbed-node".into(),
                format!("--node={name}"),
                format!("--listen=0.0.0.0:{CLIENT_PORT}"),
                format!("--peers={peers}"),
                format!("--data-dir={dir}/testbed"),
            ];
            cmd.extend(params.node_args.iter().cloned());
            NodeSpec {
                name: name.clone(),
                role: "server".into(),
                cmd,
                env: vec![],
                data_dir: dir,
                files: vec![file.clone()],
                ports: vec![PortSpec {
                    name: "client".into(),
                    container_port: CLIENT_PORT,
                }],
                probe: Probe::Http {
                    port: "client".into(),
                    path: "/status".into(),
                    body_contains: Some("\"kv\"".into()),
                },
                log_files: vec![],
            }
        })
        .collect();
    Ok(System {
        name: workloads::BuiltinCluster::Testbed.name().into(),
        image: params.image(),
        nodes,
        ready_timeout: Duration::from_secs(30),
        probe_interval: DEFAULT_PROBE_INTERVAL,
        leader: LeaderQuery::TestbedStatus,
    })
}
