//! The seam between fault injection and the cluster it acts on.
//!
//! Nemeses must not depend on the controller (the controller depends on them), so faults are
//! written against [`NodeControl`], a small async trait over "a set of named nodes in
//! containers": run a command in one, kill / start / pause / unpause it, ask for its address,
//! its server process and the current leader. The controller implements it for its `Cluster`
//! (`src/nemesis.rs`); tests implement it with a scripted fake. Everything a fault does goes
//! through this trait, so a fault can only touch the run's own containers: never the host, never
//! the host clock.
//!
//! Contract for implementors: `start` and `unpause` are idempotent (starting a running node or
//! unpausing a running one succeeds), because the final heal applies them blindly to every node
//! in case a fault was interrupted half-way. Calls may block for a while (a container start), so
//! callers in this crate bound each with a timeout.

use anyhow::{bail, Context, Result};
/// Re-exported so that implementors (the controller) need no dependency of their own.
pub use async_trait::async_trait;
use base64::Engine as _;
use std::net::IpAddr;
use std::time::Duration;

/// What a command run inside a node printed, and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code; -1 when the runtime did not report one.
    pub code: i64,
    /// Standard output and standard error, interleaved as the runtime returned them.
    pub output: String,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.code == 0
    }
}

/// A reading of wall-clock time as a system under test reports it (Redis `TIME`, PostgreSQL
/// `now()`, an HTTP `Date` header), used to prove that a clock fault reached the server process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockReading {
    /// Nanoseconds since the Unix epoch, as the system reported them.
    pub unix_ns: i128,
    /// The reading's resolution: 1 s for an HTTP Date header, 1 µs for Redis TIME.
    pub resolution_ns: u64,
    /// Where the reading came from, for the record ("redis TIME", "http Date").
    pub source: String,
}

/// Control over the nodes of one running cluster. See the module docs for the contract.
#[async_trait]
pub trait NodeControl: Send + Sync {
    /// Names of all nodes, in a stable order.
    fn nodes(&self) -> Vec<String>;

    /// The node's address on the run's network (what its peers use to reach it).
    async fn ip(&self, node: &str) -> Result<IpAddr>;

    /// Runs `argv` inside the node (as root) and returns its exit code and output.
    async fn exec(&self, node: &str, argv: &[&str]) -> Result<ExecOutput>;

    /// Runs `argv` where the node's network rules are made (iptables): by default inside the
    /// node itself; an implementation may run it in a helper container that shares the node's
    /// network namespace instead, for images that have no iptables (or no shell). The command
    /// sees the node's interfaces and rules either way.
    async fn net_exec(&self, node: &str, argv: &[&str]) -> Result<ExecOutput> {
        self.exec(node, argv).await
    }

    /// Kills the node's processes with SIGKILL; its data stays on its file system.
    async fn kill(&self, node: &str) -> Result<()>;

    /// Starts a killed node again (same file system, so the data is kept). Idempotent.
    async fn start(&self, node: &str) -> Result<()>;

    /// Freezes every process of the node (SIGSTOP or the cgroup freezer).
    async fn pause(&self, node: &str) -> Result<()>;

    /// Resumes a paused node. Idempotent.
    async fn unpause(&self, node: &str) -> Result<()>;

    /// Waits until the node serves clients again, at most `timeout`.
    async fn wait_ready(&self, node: &str, timeout: Duration) -> Result<()>;

    /// The node the system currently reports as leader or primary, if it has one and says so.
    async fn leader(&self) -> Result<Option<String>>;

    /// Process id (inside the node) of the server process a clock fault must reach.
    async fn server_pid(&self, _node: &str) -> Result<Option<u32>> {
        Ok(None)
    }

    /// The wall-clock time as the node's server reports it, when the system exposes one.
    async fn clock_probe(&self, _node: &str) -> Result<Option<ClockReading>> {
        Ok(None)
    }

    /// Writes `bytes` to `path` inside the node with permissions `mode`, atomically (a temporary
    /// file renamed into place, so a process that has the old file mapped keeps a valid copy).
    /// The default goes through `exec` with the content base64-encoded in an argument, which
    /// suits files up to ~90 KiB; implementations may upload directly instead.
    async fn write_file(&self, node: &str, path: &str, bytes: &[u8], mode: u32) -> Result<()> {
        const ARG_BYTES_MAX: usize = 120 * 1024;
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        if b64.len() > ARG_BYTES_MAX {
            bail!(
                "{path}: {} bytes is too large to write through exec ({} bytes base64, limit {ARG_BYTES_MAX})",
                bytes.len(),
                b64.len()
            );
        }
        let mode = format!("{mode:o}");
        let out = self
            .exec(
                node,
                &[
                    "sh",
                    "-c",
                    r#"set -e; mkdir -p "$(dirname "$2")"; printf '%s' "$1" | base64 -d > "$2.tmp.$$"; chmod "$3" "$2.tmp.$$"; mv -f "$2.tmp.$$" "$2""#,
                    "sh",
                    &b64,
                    path,
                    &mode,
                ],
            )
            .await
            .with_context(|| format!("writing {path} on {node}"))?;
        if !out.success() {
            bail!(
                "writing {path} on {node} exited {}: {}",
                out.code,
                out.output.trim()
            );
        }
        Ok(())
    }
}

/// Runs a command and fails with its output when it exits non-zero.
pub async fn exec_ok(ctl: &dyn NodeControl, node: &str, argv: &[&str]) -> Result<String> {
    let out = ctl
        .exec(node, argv)
        .await
        .with_context(|| format!("exec on {node}"))?;
    if !out.success() {
        bail!(
            "{} on {node} exited {}: {}",
            argv.first().copied().unwrap_or("command"),
            out.code,
            out.output.trim()
        );
    }
    Ok(out.output)
}

/// [`sh_ok`] through [`NodeControl::net_exec`]: a script that changes the node's network rules.
pub async fn net_sh_ok(ctl: &dyn NodeControl, node: &str, script: &str) -> Result<String> {
    let argv = ["sh", "-c", script, "sh"];
    let out = ctl
        .net_exec(node, &argv)
        .await
        .with_context(|| format!("exec on {node}"))?;
    if !out.success() {
        bail!("sh on {node} exited {}: {}", out.code, out.output.trim());
    }
    Ok(out.output)
}

/// Runs a shell script (`sh -c SCRIPT sh ARGS...`) and fails with its output on non-zero exit.
pub async fn sh_ok(
    ctl: &dyn NodeControl,
    node: &str,
    script: &str,
    args: &[&str],
) -> Result<String> {
    let mut argv = vec!["sh", "-c", script, "sh"];
    argv.extend_from_slice(args);
    exec_ok(ctl, node, &argv).await
}
