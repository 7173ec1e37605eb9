//! The client role: how a workload talks to one system.
//!
//! A [`ClientFactory`] opens one [`Client`] per logical process, bound to one node. The runner
//! calls [`Client::setup`] once before the run (on a client of its own), then
//! [`Client::invoke`] for each operation of the process, wrapped in the per-operation timeout,
//! and at the end [`Client::teardown`] once and [`Client::close`] on every client.
//!
//! The contract that keeps histories honest is in [`Client::invoke`]: a client answers `ok` only
//! for what happened, `fail` only for what definitely did not happen (a CAS whose comparison
//! failed, a request refused before it was sent), and `info` for anything ambiguous. The runner
//! adds the timeout: a call that does not answer in time becomes `info` (never `ok` or `fail`),
//! and the client that was interrupted is closed and replaced, since its connection may be in any
//! state.

use crate::op::{Completion, Invocation};
use async_trait::async_trait;

/// One process's connection to the system under test.
#[async_trait]
pub trait Client: Send {
    /// Once per run, before any operation: create tables, queues, initial keys.
    async fn setup(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    /// Performs `op` and says how it ended; see the module documentation for what `ok`, `fail`
    /// and `info` may mean. Must be cancel-safe in the sense that dropping the future leaves the
    /// client closable (the runner drops it on timeout and then calls `close`).
    async fn invoke(&mut self, op: &Invocation) -> Completion;

    /// Once per run, after the last operation: remove what `setup` created, when that matters.
    async fn teardown(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    /// Releases the connection. Called on every client, also after a timeout.
    async fn close(&mut self) {}
}

/// Opens clients. Shared by all workers of a run.
#[async_trait]
pub trait ClientFactory: Send + Sync {
    /// A short name for logs and plans, e.g. `etcd` or `memory-register`.
    fn name(&self) -> String;

    /// Opens a client for `process` talking to `node` (an address such as `127.0.0.1:2379` or
    /// `n1:2379`). An error here means the client could not connect; the runner then completes
    /// the process's next operation with `fail` (`no-client`), since nothing was sent.
    async fn open(&self, process: u64, node: &str) -> anyhow::Result<Box<dyn Client>>;

    /// Opens a client for `process`, assigned to `node`, knowing every node the runner was
    /// given (`nodes`). Clients that must find the primary themselves (Redis behind Sentinel)
    /// override it; the default opens on `node`.
    async fn open_among(
        &self,
        process: u64,
        node: &str,
        nodes: &[String],
    ) -> anyhow::Result<Box<dyn Client>> {
        let _ = nodes;
        self.open(process, node).await
    }

    /// `node`'s own copy of the data, read from that node directly (never forwarded to a
    /// leader), as key -> value: what the convergence check compares across nodes once the
    /// cluster is quiescent after the final heal. `Ok(None)` when this system or workload has no
    /// such read (the default).
    async fn replica_snapshot(&self, node: &str) -> anyhow::Result<Option<ReplicaSnapshot>> {
        let _ = node;
        Ok(None)
    }
}

/// One node's data as [`ClientFactory::replica_snapshot`] reads it: key -> value.
pub type ReplicaSnapshot = std::collections::BTreeMap<String, serde_json::Value>;
