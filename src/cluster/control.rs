//! What faults and checks do to a running node: exec (in the node or its network helper),
//! kill with data kept, start, pause, network disconnect and connect, copying files in, and
//! reading logs out.

use super::*;

impl Cluster {
    /// Runs `cmd` inside `node` (as root) and returns its exit code and output; bounded by
    /// [`EXEC_TIMEOUT_S`].
    pub async fn exec(&self, node: &str, cmd: &[&str]) -> Result<ExecOutput> {
        self.exec_timeout(node, cmd, Duration::from_secs(EXEC_TIMEOUT_S))
            .await
    }

    /// [`Cluster::exec`] with an explicit time limit.
    pub async fn exec_timeout(
        &self,
        node: &str,
        cmd: &[&str],
        timeout: Duration,
    ) -> Result<ExecOutput> {
        let container = self.container(node)?;
        let what = format!("`{}` in node {node}", cmd.join(" "));
        tokio::time::timeout(timeout, exec_in(container, cmd))
            .await
            .map_err(|_| anyhow!("{what} did not finish within {} s", timeout.as_secs()))?
            .with_context(|| format!("running {what}"))
    }

    /// Runs `cmd` where the node's network rules are made: in its network helper when it has
    /// one (same namespace, faultline's tools), else in the node; bounded by [`EXEC_TIMEOUT_S`].
    pub async fn net_exec(&self, node: &str, cmd: &[&str]) -> Result<ExecOutput> {
        match self.net_helpers.get(node) {
            Some(helper) => {
                let id = self.container_id(node)?;
                helper
                    .exec(
                        &self.docker,
                        node,
                        id,
                        cmd,
                        Duration::from_secs(EXEC_TIMEOUT_S),
                    )
                    .await
            }
            None => self.exec(node, cmd).await,
        }
    }

    /// Names of the network helper containers (empty unless the run uses them).
    pub fn net_helper_ids(&self) -> Vec<String> {
        self.net_helpers
            .values()
            .map(|h| h.container.id().to_string())
            .collect()
    }

    /// kill -9 of the node's process (the container stays, with its data).
    pub async fn kill(&self, node: &str) -> Result<()> {
        let id = self.container_id(node)?;
        self.docker
            .kill_container(
                id,
                Some(KillContainerOptions {
                    signal: "KILL".into(),
                }),
            )
            .await
            .with_context(|| format!("killing node {node}"))
    }

    /// Starts a stopped or killed node again, with the data it had. Does not wait for readiness:
    /// see [`Cluster::wait_node_ready`].
    pub async fn start(&self, node: &str) -> Result<()> {
        self.container(node)?
            .start()
            .await
            .with_context(|| format!("starting node {node}"))
    }

    /// Freezes every process of the node (SIGSTOP-like, through the cgroup freezer).
    pub async fn pause(&self, node: &str) -> Result<()> {
        self.container(node)?
            .pause()
            .await
            .with_context(|| format!("pausing node {node}"))
    }

    pub async fn unpause(&self, node: &str) -> Result<()> {
        self.container(node)?
            .unpause()
            .await
            .with_context(|| format!("resuming node {node}"))
    }

    /// Whether the node's container is running (and not paused).
    pub async fn is_running(&self, node: &str) -> Result<bool> {
        let id = self.container_id(node)?;
        let state = self.docker.inspect_container(id, None).await?.state;
        Ok(state
            .map(|s| s.running == Some(true) && s.paused != Some(true))
            .unwrap_or(false))
    }

    /// Takes the node off the run network (all its links drop at once).
    pub async fn disconnect(&self, node: &str) -> Result<()> {
        let id = self.container_id(node)?.to_string();
        self.docker
            .disconnect_network(
                &self.network,
                NetworkDisconnectRequest {
                    container: id,
                    force: Some(true),
                },
            )
            .await
            .with_context(|| format!("disconnecting node {node} from {}", self.network))
    }

    /// Puts a disconnected node back on the run network under its name.
    pub async fn connect(&self, node: &str) -> Result<()> {
        let id = self.container_id(node)?.to_string();
        self.docker
            .connect_network(
                &self.network,
                NetworkConnectRequest {
                    container: id,
                    endpoint_config: Some(EndpointSettings {
                        aliases: Some(vec![node.to_string()]),
                        ..Default::default()
                    }),
                },
            )
            .await
            .with_context(|| format!("connecting node {node} to {}", self.network))
    }

    /// Copies a file into a node (running or not), e.g. the faultline binary for helper roles.
    pub async fn copy_into(&self, node: &str, file: &NodeFile) -> Result<()> {
        let id = self.container_id(node)?.to_string();
        self.upload(&id, std::slice::from_ref(file))
            .await
            .with_context(|| format!("copying {} into node {node}", file.path))
    }

    /// The node's stdout and stderr so far.
    pub async fn logs(&self, node: &str) -> Result<String> {
        container_logs(self.container(node)?)
            .await
            .with_context(|| format!("reading the logs of node {node}"))
    }

    /// Writes `<dir>/<node>.log` (stdout + stderr) for every node, and the node's log files
    /// under `<dir>/<node>/`.
    pub async fn collect_logs(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for n in &self.nodes {
            let text = container_logs(self.container(&n.name)?).await?;
            let path = dir.join(format!("{}.log", n.name));
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            let spec = self.system.node(&n.name).expect("nodes come from the spec");
            for f in &spec.log_files {
                let into = dir.join(&n.name);
                if let Err(e) = download(&self.docker, &n.container_id, f, &into).await {
                    // A log file a node has not written yet is no reason to fail a run.
                    let note = into.join(format!("{}.missing", sanitize(f)));
                    std::fs::create_dir_all(&into).ok();
                    std::fs::write(note, format!("{f}: {e}\n")).ok();
                }
            }
        }
        Ok(())
    }
}
