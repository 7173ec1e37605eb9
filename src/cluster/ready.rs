//! Readiness: every node's probe (TCP, HTTP, a command, a log line), retried within one
//! deadline; a node that dies or never gets ready fails with its name, the probe and the tail
//! of its log.

use super::*;

impl Cluster {
    /// Waits until every node passes its readiness probe, or fails naming the first node that
    /// did not and what it waited for.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let waits = self
            .nodes
            .iter()
            .map(|n| self.wait_until(&n.name, deadline));
        for r in futures_util::future::join_all(waits).await {
            r?;
        }
        Ok(())
    }

    /// Waits until one node passes its readiness probe (e.g. after `start`).
    pub async fn wait_node_ready(&self, node: &str, timeout: Duration) -> Result<()> {
        self.wait_until(node, Instant::now() + timeout).await
    }

    pub(super) async fn wait_until(&self, node: &str, deadline: Instant) -> Result<()> {
        let spec = self
            .system
            .node(node)
            .ok_or_else(|| anyhow!("no node {node:?} in this cluster"))?;
        let t0 = Instant::now();
        loop {
            // An attempt never runs past the deadline, so the wait is bounded by `timeout`.
            let left = deadline.saturating_duration_since(Instant::now());
            let attempt = left.clamp(
                Duration::from_millis(PROBE_ATTEMPT_MIN_MS),
                Duration::from_secs(PROBE_ATTEMPT_TIMEOUT_S),
            );
            let last = match self.probe_once(node, &spec.probe, attempt).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if !self.container_alive(node).await? {
                bail!(
                    "node {node} exited while waiting for {}; its last log lines:\n{}",
                    spec.probe.describe(),
                    self.log_tail(node).await
                );
            }
            if Instant::now() + self.system.probe_interval > deadline {
                bail!(
                    "node {node} not ready after {:.1} s: waited for {} (last: {last}); its last log lines:\n{}",
                    t0.elapsed().as_secs_f64(),
                    spec.probe.describe(),
                    self.log_tail(node).await
                );
            }
            tokio::time::sleep(self.system.probe_interval).await;
        }
    }

    pub(super) async fn container_alive(&self, node: &str) -> Result<bool> {
        let id = self.container_id(node)?;
        let state = self.docker.inspect_container(id, None).await?.state;
        Ok(state.and_then(|s| s.running).unwrap_or(false))
    }

    pub(super) async fn log_tail(&self, node: &str) -> String {
        let Ok(container) = self.container(node) else {
            return String::new();
        };
        let logs = container_logs(container)
            .await
            .unwrap_or_else(|e| format!("(logs unavailable: {e})"));
        let lines: Vec<&str> = logs.lines().collect();
        lines[lines.len().saturating_sub(ERROR_LOG_LINES)..]
            .iter()
            .map(|l| format!("  {node}| {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// One readiness attempt; `Err` says what was seen instead.
    pub(super) fn probe_once<'a>(
        &'a self,
        node: &'a str,
        probe: &'a Probe,
        attempt: Duration,
    ) -> futures_util::future::BoxFuture<'a, std::result::Result<(), String>> {
        Box::pin(async move {
            match probe {
                Probe::Exec {
                    cmd,
                    output_contains,
                } => {
                    let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
                    let out = self
                        .exec_timeout(node, &args, attempt)
                        .await
                        .map_err(|e| format!("{e:#}"))?;
                    let text_ok = output_contains
                        .as_ref()
                        .is_none_or(|t| out.output.contains(t.as_str()));
                    if out.exit_code == 0 && text_ok {
                        Ok(())
                    } else {
                        Err(format!(
                            "exit {}: {}",
                            out.exit_code,
                            last_line(&out.output)
                        ))
                    }
                }
                Probe::Log(text) => {
                    let logs = self.logs(node).await.map_err(|e| format!("{e:#}"))?;
                    if logs.contains(text.as_str()) {
                        Ok(())
                    } else {
                        Err(format!("not in the log yet: {text:?}"))
                    }
                }
                Probe::Tcp(port) => {
                    // The node's own address on the run network, not the published host port:
                    // Docker's userland proxy accepts on the host port whether or not anything
                    // listens in the container, so a connect there proves nothing.
                    let n = self.node(node).map_err(|e| e.to_string())?;
                    let (container_port, _) = *n
                        .ports
                        .get(port)
                        .ok_or_else(|| format!("node {node} has no port named {port:?}"))?;
                    let ip = self.ip(node).await.map_err(|e| format!("{e:#}"))?;
                    let addr = SocketAddr::new(ip, container_port);
                    match tokio::time::timeout(attempt, tokio::net::TcpStream::connect(addr)).await
                    {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err(e)) => Err(format!("connect {addr}: {e}")),
                        Err(_) => Err(format!("connect {addr}: timed out")),
                    }
                }
                Probe::Http {
                    port,
                    path,
                    body_contains,
                } => {
                    let addr = self.host_addr(node, port).map_err(|e| e.to_string())?;
                    let url = format!("http://{addr}{path}");
                    let resp = http_client()
                        .get(&url)
                        .timeout(attempt)
                        .send()
                        .await
                        .map_err(|e| format!("GET {url}: {e}"))?;
                    let status = resp.status();
                    let body = resp.text().await.unwrap_or_default();
                    let text_ok = body_contains
                        .as_ref()
                        .is_none_or(|t| body.contains(t.as_str()));
                    if status.is_success() && text_ok {
                        Ok(())
                    } else {
                        Err(format!("GET {url}: {status} {}", last_line(&body)))
                    }
                }
                Probe::All(ps) => {
                    for p in ps {
                        self.probe_once(node, p, attempt).await?;
                    }
                    Ok(())
                }
            }
        })
    }
}
