//! Network-fault helpers: one small container per node, on faultline's base image, that shares
//! the node's network namespace and runs the partition rules there, so a node whose image has no
//! iptables (or no shell) is partitioned all the same.
//!
//! Design decisions:
//! - A helper joins the node with Docker's `NetworkMode: container:<node id>`: it sees the
//!   node's interfaces and its netfilter tables, so the iptables rules it installs are the
//!   node's rules, exactly as if run inside the node (`nemeses::partition::Iptables` is
//!   unchanged; it calls `NodeControl::net_exec`, which lands here). Only the helper gets
//!   NET_ADMIN; the node itself gets no capability for it.
//! - Which runs use helpers is the controller's decision (`run.rs`): every node of a user's own
//!   image (`system.image`) when the run partitions with iptables, whether or not that image
//!   happens to have iptables. Deciding by the image source, not by probing the image, keeps the
//!   choice deterministic (a probe needs a shell the image may lack), keeps the user's server
//!   free of NET_ADMIN, and runs the same iptables everywhere. Systems on faultline's own images
//!   keep their rules in the node: no extra containers, nothing changed for them.
//! - A container that joined another's namespace stays in it when that container stops; a node
//!   killed and started again gets a fresh namespace. So before each command the helper checks
//!   the node's main process id (Docker's inspect): a new one means the node restarted, and the
//!   helper is restarted too (Docker resolves `container:<id>` at every start), which joins the
//!   node's new namespace. A restarted node then has no rules, as an in-node restart would. A
//!   node that is not running is an error, as an exec into it would be.
//! - Helpers carry the run's labels (plus `faultline.node` and `faultline.helper=net`), so
//!   teardown, `Drop`, the signal path and `faultline clean` remove them like any node; their
//!   name is `fl-<run>-<node>-net`. Teardown removes them before the nodes whose namespace they
//!   hold.
//! - The helper's command is `sleep infinity`: it only has to exist for `exec`.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bollard::Docker;
use testcontainers::runners::AsyncRunner;
use testcontainers::{GenericImage, ImageExt};

use super::{docker, exec_in, image_parts, ExecOutput, NodeContainer};

/// Label on helper containers; its value says what they help with.
pub const LABEL_HELPER: &str = "faultline.helper";
/// The value of [`LABEL_HELPER`] on network-fault helpers.
pub const NET_HELPER: &str = "net";
/// Longest a helper may take to be created and started.
const HELPER_START_TIMEOUT_S: u64 = 60;

/// One node's network-fault helper.
pub(crate) struct NetHelper {
    pub(crate) container: NodeContainer,
    /// The node's main process id when the helper last joined its namespace.
    joined_pid: tokio::sync::Mutex<i64>,
}

/// The helper container's name for a node's container name.
pub(crate) fn helper_name(node_container_name: &str) -> String {
    format!("{node_container_name}-net")
}

/// The node's main process id, or an error naming the node when it is not running.
async fn node_pid(docker: &Docker, node: &str, node_id: &str) -> Result<i64> {
    let state = docker
        .inspect_container(node_id, None)
        .await
        .with_context(|| format!("inspecting node {node}"))?
        .state
        .unwrap_or_default();
    match (state.running, state.pid) {
        (Some(true), Some(pid)) if pid > 0 => Ok(pid),
        _ => bail!("node {node} is not running, so its network cannot be changed"),
    }
}

impl NetHelper {
    /// Creates and starts the helper of a running node.
    pub(crate) async fn start(
        docker: &Docker,
        image: &str,
        run_id: &str,
        system: &str,
        node: &str,
        node_id: &str,
        node_container_name: &str,
    ) -> Result<NetHelper> {
        let pid = node_pid(docker, node, node_id).await?;
        let (repository, tag) = image_parts(image);
        let mut labels = docker::run_labels(run_id, system);
        labels.insert(docker::LABEL_NODE.into(), node.to_string());
        labels.insert(LABEL_HELPER.into(), NET_HELPER.into());
        let mode = format!("container:{node_id}");
        let container = GenericImage::new(repository, tag)
            .with_container_name(helper_name(node_container_name))
            .with_labels(labels)
            .with_cmd(["sleep", "infinity"])
            .with_cap_add("NET_ADMIN")
            .with_startup_timeout(Duration::from_secs(HELPER_START_TIMEOUT_S))
            // Not `with_network`: testcontainers would try to create a network by that name.
            // A joined namespace takes no published ports (testcontainers publishes all when
            // none are mapped) and no extra hosts.
            .with_host_config_modifier(move |host| {
                host.network_mode = Some(mode.clone());
                host.publish_all_ports = Some(false);
                host.port_bindings = None;
                host.extra_hosts = None;
            })
            .start()
            .await
            .map_err(|e| anyhow!("starting the network helper of node {node}: {e}"))?;
        Ok(NetHelper {
            container,
            joined_pid: tokio::sync::Mutex::new(pid),
        })
    }

    /// Runs `cmd` in the helper, in the node's current network namespace (rejoining it first
    /// when the node restarted), bounded by `timeout`.
    pub(crate) async fn exec(
        &self,
        docker: &Docker,
        node: &str,
        node_id: &str,
        cmd: &[&str],
        timeout: Duration,
    ) -> Result<ExecOutput> {
        let what = format!("`{}` in the network helper of node {node}", cmd.join(" "));
        let run = async {
            self.follow_node(docker, node, node_id).await?;
            exec_in(&self.container, cmd).await
        };
        tokio::time::timeout(timeout, run)
            .await
            .map_err(|_| anyhow!("{what} did not finish within {} s", timeout.as_secs()))?
            .with_context(|| format!("running {what}"))
    }

    /// Restarts the helper when the node's main process is not the one it joined.
    async fn follow_node(&self, docker: &Docker, node: &str, node_id: &str) -> Result<()> {
        let mut joined = self.joined_pid.lock().await;
        let pid = node_pid(docker, node, node_id).await?;
        if pid == *joined {
            return Ok(());
        }
        // `sleep` as process 1 ignores SIGTERM: no grace period.
        self.container
            .stop_with_timeout(Some(0))
            .await
            .with_context(|| format!("stopping the network helper of node {node}"))?;
        self.container
            .start()
            .await
            .with_context(|| format!("restarting the network helper of node {node}"))?;
        *joined = pid;
        Ok(())
    }
}
