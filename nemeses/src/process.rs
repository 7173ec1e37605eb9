//! Process faults: kill -9 and restart with the data kept, pause and resume, rolling restart.
//!
//! All of them act on whole nodes through [`NodeControl`] (for containers: `docker kill -s KILL`,
//! `docker start`, `docker pause` / `unpause`, which uses the cgroup freezer, so every process of
//! the node stops at once and no signal handler can interfere). The container's file system
//! survives a kill, so a restarted node comes back with its data.
//!
//! The state (which nodes this package killed or paused) is kept here so that stopping a fault
//! undoes exactly what starting it did. Healing does not trust that state alone: it resumes and
//! starts *every* node (both operations are idempotent by the trait's contract), so an action
//! interrupted half-way by a cancellation is still undone.

use anyhow::{Context, Result};
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::control::NodeControl;

/// What an action did: the nodes it affected and the errors it met on the others.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub done: Vec<String>,
    pub errors: Vec<String>,
}

impl Outcome {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Runs one node-control call with a bound.
pub(crate) async fn bounded<T>(
    timeout: Duration,
    what: &str,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r.with_context(|| what.to_string()),
        Err(_) => anyhow::bail!("{what}: no answer within {} ms", timeout.as_millis()),
    }
}

/// Kill / pause state and actions for one cluster.
pub struct Processes {
    ctl: Arc<dyn NodeControl>,
    killed: Mutex<BTreeSet<String>>,
    paused: Mutex<BTreeSet<String>>,
    op_timeout: Duration,
    ready_timeout: Duration,
}

impl Processes {
    pub fn new(ctl: Arc<dyn NodeControl>, op_timeout: Duration, ready_timeout: Duration) -> Self {
        Processes {
            ctl,
            killed: Mutex::new(BTreeSet::new()),
            paused: Mutex::new(BTreeSet::new()),
            op_timeout,
            ready_timeout,
        }
    }

    pub fn killed(&self) -> BTreeSet<String> {
        self.killed.lock().expect("lock").clone()
    }

    pub fn paused(&self) -> BTreeSet<String> {
        self.paused.lock().expect("lock").clone()
    }

    /// SIGKILLs each node.
    pub async fn kill(&self, nodes: &[String]) -> Outcome {
        let mut out = Outcome::default();
        for n in nodes {
            // Marked first so that a stop restarts it even if this call is interrupted; a kill
            // that failed is unmarked (the final heal starts every node regardless).
            self.killed.lock().expect("lock").insert(n.clone());
            match bounded(self.op_timeout, &format!("kill {n}"), self.ctl.kill(n)).await {
                Ok(()) => out.done.push(n.clone()),
                Err(e) => {
                    self.killed.lock().expect("lock").remove(n);
                    out.errors.push(format!("{e:#}"));
                }
            }
        }
        out
    }

    /// Starts every node this package killed and waits until each is ready again.
    pub async fn restart_killed(&self) -> Outcome {
        let nodes: Vec<String> = self.killed().into_iter().collect();
        let mut out = Outcome::default();
        for n in &nodes {
            match bounded(self.op_timeout, &format!("start {n}"), self.ctl.start(n)).await {
                Ok(()) => {
                    self.killed.lock().expect("lock").remove(n);
                    out.done.push(n.clone());
                }
                Err(e) => out.errors.push(format!("{e:#}")),
            }
        }
        for n in &out.done {
            if let Err(e) = self.wait_ready(n).await {
                out.errors.push(format!("{e:#}"));
            }
        }
        out
    }

    /// Freezes each node.
    pub async fn pause(&self, nodes: &[String]) -> Outcome {
        let mut out = Outcome::default();
        for n in nodes {
            self.paused.lock().expect("lock").insert(n.clone());
            match bounded(self.op_timeout, &format!("pause {n}"), self.ctl.pause(n)).await {
                Ok(()) => out.done.push(n.clone()),
                Err(e) => {
                    self.paused.lock().expect("lock").remove(n);
                    out.errors.push(format!("{e:#}"));
                }
            }
        }
        out
    }

    /// Resumes every node this package paused.
    pub async fn resume_paused(&self) -> Outcome {
        let nodes: Vec<String> = self.paused().into_iter().collect();
        let mut out = Outcome::default();
        for n in &nodes {
            match bounded(
                self.op_timeout,
                &format!("unpause {n}"),
                self.ctl.unpause(n),
            )
            .await
            {
                Ok(()) => {
                    self.paused.lock().expect("lock").remove(n);
                    out.done.push(n.clone());
                }
                Err(e) => out.errors.push(format!("{e:#}")),
            }
        }
        out
    }

    /// Kills and restarts the nodes one at a time, waiting for each to be ready before the next.
    /// Stops at the first node that does not come back, so a rolling restart never takes down
    /// more than one node at once.
    pub async fn rolling_restart(&self, order: &[String]) -> Outcome {
        let mut out = Outcome::default();
        for n in order {
            let one = std::slice::from_ref(n);
            let k = self.kill(one).await;
            out.errors.extend(k.errors.iter().cloned());
            let s = self.restart_killed().await;
            out.errors.extend(s.errors.iter().cloned());
            if !k.is_ok() || !s.is_ok() {
                break;
            }
            out.done.push(n.clone());
        }
        out
    }

    async fn wait_ready(&self, node: &str) -> Result<()> {
        bounded(
            self.ready_timeout + Duration::from_secs(1),
            &format!("waiting for {node} to be ready"),
            self.ctl.wait_ready(node, self.ready_timeout),
        )
        .await
    }

    /// Resumes and starts every node (the first half of a heal). Returns the errors.
    pub async fn resume_all(&self) -> Vec<String> {
        let mut errors = Vec::new();
        for n in self.ctl.nodes() {
            match bounded(
                self.op_timeout,
                &format!("unpause {n}"),
                self.ctl.unpause(&n),
            )
            .await
            {
                Ok(()) => {
                    self.paused.lock().expect("lock").remove(&n);
                }
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        for n in self.ctl.nodes() {
            match bounded(self.op_timeout, &format!("start {n}"), self.ctl.start(&n)).await {
                Ok(()) => {
                    self.killed.lock().expect("lock").remove(&n);
                }
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        errors
    }

    /// Waits for every node to be ready (the last step of a heal, once the network and clocks
    /// are back: a node cut off from its quorum is not ready). Returns the errors.
    pub async fn wait_all_ready(&self) -> Vec<String> {
        let mut errors = Vec::new();
        for n in self.ctl.nodes() {
            if let Err(e) = self.wait_ready(&n).await {
                errors.push(format!("{e:#}"));
            }
        }
        errors
    }
}
