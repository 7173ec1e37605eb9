//! An in-process cluster on loopback, for tests: start N nodes on ephemeral ports, crash and
//! restart one (from its data directory), partition and heal with the nodes' blocklists.
//!
//! Crash and partition are simulated, not emulated: a kill drops every task of the node at its
//! next step (see [`crate::node`]), a partition makes nodes refuse to talk to each other. The
//! real-container versions (kill -9, iptables) come from faultline's nemeses through plans.

use crate::config::{Bug, NodeConfig, Settings};
use crate::node::{self, NodeHandle};
use anyhow::Context as _;
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// Bound on rebinding a killed node's port.
const REBIND_ATTEMPTS_MAX: u32 = 50;

pub struct Cluster {
    configs: Vec<NodeConfig>,
    nodes: Vec<Option<NodeHandle>>,
    _data: Option<tempfile_like::TempDir>,
}

/// A temporary directory removed on drop (kept tiny to avoid a dependency for the library).
mod tempfile_like {
    use std::path::{Path, PathBuf};

    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new(tag: &str) -> std::io::Result<TempDir> {
            static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let p = std::env::temp_dir().join(format!(
                "faultline-testbed-{tag}-{}-{n}",
                std::process::id()
            ));
            std::fs::create_dir_all(&p)?;
            Ok(TempDir(p))
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// How to start a cluster.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub nodes: usize,
    pub bugs: Vec<Bug>,
    pub settings: Settings,
    /// Give every node a data directory (under a temporary directory removed on drop).
    pub durable: bool,
}

impl ClusterSpec {
    pub fn new(nodes: usize) -> ClusterSpec {
        ClusterSpec {
            nodes,
            bugs: Vec::new(),
            settings: Settings::default(),
            durable: false,
        }
    }
}

impl Cluster {
    /// Starts nodes `n1..nN` on 127.0.0.1 ephemeral ports.
    pub async fn start(spec: ClusterSpec) -> anyhow::Result<Cluster> {
        anyhow::ensure!(spec.nodes > 0, "a cluster needs at least one node");
        let mut listeners = Vec::new();
        for _ in 0..spec.nodes {
            listeners.push(TcpListener::bind("127.0.0.1:0").await?);
        }
        let addrs: Vec<SocketAddr> = listeners
            .iter()
            .map(|l| l.local_addr())
            .collect::<Result<_, _>>()?;
        let data = if spec.durable {
            Some(tempfile_like::TempDir::new("data")?)
        } else {
            None
        };
        let names: Vec<String> = (1..=spec.nodes).map(|i| format!("n{i}")).collect();
        let mut configs = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let mut c = NodeConfig::new(name.clone(), addrs[i]);
            c.peers = names
                .iter()
                .zip(&addrs)
                .filter(|(n, _)| *n != name)
                .map(|(n, a)| (n.clone(), a.to_string()))
                .collect();
            c.bugs = spec.bugs.iter().copied().collect();
            c.settings = spec.settings.clone();
            c.data_dir = data.as_ref().map(|d| d.path().join(name));
            configs.push(c);
        }
        let mut nodes = Vec::new();
        for (c, l) in configs.iter().zip(listeners) {
            nodes.push(Some(node::start_on(c.clone(), l).await?));
        }
        Ok(Cluster {
            configs,
            nodes,
            _data: data,
        })
    }

    pub fn len(&self) -> usize {
        self.configs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.configs.is_empty()
    }

    pub fn name(&self, i: usize) -> &str {
        &self.configs[i].name
    }

    /// `127.0.0.1:PORT` of node `i` (stays the same across restarts).
    pub fn addr(&self, i: usize) -> String {
        self.configs[i].listen.to_string()
    }

    pub fn addrs(&self) -> Vec<String> {
        (0..self.len()).map(|i| self.addr(i)).collect()
    }

    pub fn data_dir(&self, i: usize) -> Option<PathBuf> {
        self.configs[i].data_dir.clone()
    }

    pub fn handle(&self, i: usize) -> Option<&NodeHandle> {
        self.nodes[i].as_ref()
    }

    /// Crashes node `i` (no-op when it is down).
    pub fn kill(&mut self, i: usize) {
        if let Some(h) = self.nodes[i].take() {
            h.kill();
        }
    }

    /// Restarts node `i` on its address, replaying its data directory if it has one.
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.kill(i);
        let c = self.configs[i].clone();
        let mut last = None;
        for _ in 0..REBIND_ATTEMPTS_MAX {
            match TcpListener::bind(c.listen).await {
                Ok(l) => {
                    self.nodes[i] = Some(node::start_on(c, l).await?);
                    return Ok(());
                }
                Err(e) => {
                    last = Some(e);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        Err(last.expect("at least one attempt")).with_context(|| format!("rebinding {}", c.listen))
    }

    /// Splits the cluster: nodes in different groups cannot talk; nodes in no group are
    /// isolated from everyone.
    pub fn partition(&self, groups: &[&[usize]]) {
        for (i, h) in self.nodes.iter().enumerate() {
            let Some(h) = h else { continue };
            let mine: BTreeSet<usize> = groups
                .iter()
                .find(|g| g.contains(&i))
                .map(|g| g.iter().copied().collect())
                .unwrap_or_else(|| BTreeSet::from([i]));
            let blocked: Vec<&str> = (0..self.len())
                .filter(|j| !mine.contains(j))
                .map(|j| self.name(j))
                .collect();
            h.block(&blocked);
        }
    }

    pub fn heal(&self) {
        for h in self.nodes.iter().flatten() {
            h.block(&[]);
        }
    }

    /// Node `i`'s `/status`, read in-process.
    pub fn role(&self, i: usize) -> Option<(crate::kv::Role, Option<String>, u64)> {
        self.nodes[i].as_ref().map(|h| h.node().kv.role())
    }

    /// Waits (bounded) until some running node outside `excluded` is primary; returns it.
    pub async fn wait_for_primary(
        &self,
        excluded: &[usize],
        timeout: Duration,
    ) -> anyhow::Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            for i in 0..self.len() {
                if excluded.contains(&i) {
                    continue;
                }
                if let Some((crate::kv::Role::Primary, _, _)) = self.role(i) {
                    return Ok(i);
                }
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "no primary among the nodes within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits (bounded) until `f` holds for node `i`'s outbox status (see `/status`).
    pub async fn wait_outbox(
        &self,
        i: usize,
        timeout: Duration,
        f: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(h) = &self.nodes[i] {
                let v = h.node().outbox.status().await;
                if f(&v) {
                    return Ok(v);
                }
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the outbox status of node {i} did not reach the expected state within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}
