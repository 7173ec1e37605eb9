//! ZooKeeper: a CAS register through versioned writes, the control that should pass.
//!
//! Each register key is a znode `root/key` holding the value's JSON text. `read` is `getData`
//! (a missing znode reads as null); `write` is an unconditional `setData` (or `create` when the
//! znode does not exist yet); `cas [old, new]` reads the znode and, when it holds `old`, writes
//! `new` with the version it read, so a write in between makes the server refuse it (and the
//! client reads and compares again, a bounded number of times). ZooKeeper serves a read from
//! the server the session is connected to, which may be a lagging follower (it promises
//! sequential consistency for reads, not linearizability), so every read, and the read of every
//! CAS, is preceded by `sync`, ZooKeeper's recipe for a read that sees every write committed
//! before it began. Without it this workload's linearizability check flags stale reads even
//! without faults (seen in a 30 s run).
//!
//! How answers map to the history: an error the server returned (bad version, node exists,
//! no node, not authorised, read-only server) means the write did not happen: `fail` (`info`
//! for a CAS, see [`Completion::not_applied`]); a CAS fails only with `cas-mismatch`, after a
//! read that saw another value. A lost
//! connection, a timeout or an expired session after sending: `info`. Reads that fail are `fail`.

use crate::client::{Client, ClientFactory};
use crate::op::{Completion, Invocation, CAS_MISMATCH};
use anyhow::Context as _;
use async_trait::async_trait;
use serde_json::Value;
use std::time::Duration;
use zookeeper_client as zk;

/// Read-compare-write rounds of one CAS before giving up (each lost only to a concurrent write).
const CAS_ATTEMPTS_MAX: usize = 5;

/// Opens ZooKeeper register clients. Nodes are `host:port`.
#[derive(Debug, Clone)]
pub struct ZooKeeperFactory {
    /// The parent znode of every register; setup creates it and deletes its children.
    pub root: String,
    pub session_timeout: Duration,
    pub connect_timeout: Duration,
}

impl ZooKeeperFactory {
    pub fn new() -> Self {
        ZooKeeperFactory {
            root: "/faultline".into(),
            session_timeout: Duration::from_secs(6),
            connect_timeout: Duration::from_secs(2),
        }
    }

    pub fn with_root(mut self, root: impl Into<String>) -> Self {
        self.root = root.into();
        self
    }
}

impl Default for ZooKeeperFactory {
    fn default() -> Self {
        Self::new()
    }
}

impl ZooKeeperFactory {
    /// A session to the one server at `node`.
    async fn connect(&self, node: &str) -> anyhow::Result<zk::Client> {
        zk::Client::connector()
            .with_session_timeout(self.session_timeout)
            .with_connection_timeout(self.connect_timeout)
            .with_fail_eagerly()
            .connect(node)
            .await
            .with_context(|| format!("cannot connect to ZooKeeper at {node}"))
    }
}

#[async_trait]
impl ClientFactory for ZooKeeperFactory {
    fn name(&self) -> String {
        "zookeeper cas register".into()
    }

    async fn open(&self, _process: u64, node: &str) -> anyhow::Result<Box<dyn Client>> {
        let client = self.connect(node).await?;
        Ok(Box::new(ZooKeeperClient {
            zk: client,
            root: self.root.clone(),
        }))
    }

    /// The server's own copy: a session to that one server, and `getData` of every register
    /// under the root *without* `sync`, so the answer is what that server holds, not what the
    /// leader would say (the convergence check's per-node read).
    async fn replica_snapshot(
        &self,
        node: &str,
    ) -> anyhow::Result<Option<crate::client::ReplicaSnapshot>> {
        let client = self.connect(node).await?;
        let children = match client.list_children(&self.root).await {
            Ok(c) => c,
            Err(zk::Error::NoNode) => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("listing {} on {node}", self.root)),
        };
        let mut out = crate::client::ReplicaSnapshot::new();
        for child in children {
            let path = format!("{}/{child}", self.root);
            match client.get_data(&path).await {
                Ok((bytes, _)) => {
                    let value =
                        decode(&bytes).map_err(|e| anyhow::anyhow!("{path} on {node}: {e}"))?;
                    out.insert(child, value);
                }
                // Deleted between the listing and the read: not held any more.
                Err(zk::Error::NoNode) => {}
                Err(e) => return Err(e).with_context(|| format!("reading {path} on {node}")),
            }
        }
        Ok(Some(out))
    }
}

/// One process's ZooKeeper session.
pub struct ZooKeeperClient {
    zk: zk::Client,
    root: String,
}

/// Whether the server refused the write (nothing happened) or we cannot know.
fn effect_error(op: &Invocation, e: zk::Error) -> Completion {
    use zk::Error::*;
    match e {
        BadVersion | NodeExists | NoNode | NoAuth | NotReadOnly | BadArguments(_) | InvalidAcl
        | QuotaExceeded | Throttled => Completion::not_applied(op, format!("{e}")),
        _ => Completion::info(format!("{e}")),
    }
}

fn decode(bytes: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(bytes).map_err(|_| {
        format!(
            "the znode holds {:?}, not JSON; was it written by something else?",
            String::from_utf8_lossy(bytes)
        )
    })
}

impl ZooKeeperClient {
    fn path(&self, op: &Invocation) -> String {
        format!("{}/{}", self.root, op.key.as_deref().unwrap_or("register"))
    }

    fn create_options() -> zk::CreateOptions<'static> {
        zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
    }

    /// ZooKeeper serves reads from the server a session is connected to, which may lag the
    /// leader; `sync` first makes that server catch up with the leader, so the read that
    /// follows sees every write committed before the sync began (the documented recipe for an
    /// up-to-date read). A failed sync leaves nothing changed: the read is `fail`.
    async fn synced(&self, path: &str) -> Result<(), String> {
        match self.zk.sync(path).await {
            Ok(()) | Err(zk::Error::NoNode) => Ok(()),
            Err(e) => Err(format!("sync before the read: {e}")),
        }
    }

    async fn read(&self, path: &str) -> Completion {
        if let Err(e) = self.synced(path).await {
            return Completion::fail(e);
        }
        match self.zk.get_data(path).await {
            Ok((bytes, _)) => match decode(&bytes) {
                Ok(v) => Completion::ok(v),
                Err(e) => Completion::fail(e),
            },
            Err(zk::Error::NoNode) => Completion::ok(Value::Null),
            Err(e) => Completion::fail(format!("{e}")),
        }
    }

    async fn write(&self, path: &str, op: &Invocation) -> Completion {
        let data = op.value.to_string();
        // Bounded: set, else create, else (someone created it meanwhile) set once more.
        for _ in 0..2 {
            match self.zk.set_data(path, data.as_bytes(), None).await {
                Ok(_) => return Completion::ok(op.value.clone()),
                Err(zk::Error::NoNode) => {}
                Err(e) => return effect_error(op, e),
            }
            match self
                .zk
                .create(path, data.as_bytes(), &Self::create_options())
                .await
            {
                Ok(_) => return Completion::ok(op.value.clone()),
                Err(zk::Error::NodeExists) => {}
                Err(e) => return effect_error(op, e),
            }
        }
        Completion::fail("the znode kept appearing and disappearing; nothing was written")
    }

    async fn cas(&self, path: &str, op: &Invocation) -> Completion {
        let Some([old, new]) = op.value.as_array().map(Vec::as_slice) else {
            return Completion::fail("cas value must be [old, new]");
        };
        let new_data = new.to_string();
        if old.is_null() {
            // From "absent": create succeeds only if nobody created the znode.
            return match self
                .zk
                .create(path, new_data.as_bytes(), &Self::create_options())
                .await
            {
                Ok(_) => Completion::ok(op.value.clone()),
                Err(zk::Error::NodeExists) => Completion::fail(CAS_MISMATCH),
                Err(e) => effect_error(op, e),
            };
        }
        // A version conflict only says that someone wrote in between, maybe the same value
        // again; it is not a comparison failure. Read again and retry, a bounded number of
        // times; a `fail` always rests on a read that saw another value.
        for _ in 0..CAS_ATTEMPTS_MAX {
            // A comparison against a lagging server's value would be a false `fail`.
            if let Err(e) = self.synced(path).await {
                return Completion::not_applied(op, e);
            }
            let (bytes, stat) = match self.zk.get_data(path).await {
                Ok(r) => r,
                Err(zk::Error::NoNode) => return Completion::fail(CAS_MISMATCH),
                Err(e) => return Completion::not_applied(op, format!("reading before cas: {e}")),
            };
            match decode(&bytes) {
                Ok(current) if current == *old => {}
                Ok(_) => return Completion::fail(CAS_MISMATCH),
                Err(e) => return Completion::not_applied(op, e),
            }
            match self
                .zk
                .set_data(path, new_data.as_bytes(), Some(stat.version))
                .await
            {
                Ok(_) => return Completion::ok(op.value.clone()),
                Err(zk::Error::BadVersion) => continue,
                Err(e) => return effect_error(op, e),
            }
        }
        Completion::not_applied(op, "version conflicts on every attempt")
    }
}

#[async_trait]
impl Client for ZooKeeperClient {
    async fn setup(&mut self) -> anyhow::Result<()> {
        match self
            .zk
            .create(&self.root, b"", &Self::create_options())
            .await
        {
            Ok(_) | Err(zk::Error::NodeExists) => {}
            Err(e) => return Err(e).with_context(|| format!("creating {}", self.root)),
        }
        let children = self
            .zk
            .list_children(&self.root)
            .await
            .with_context(|| format!("listing {}", self.root))?;
        for child in children {
            match self
                .zk
                .delete(&format!("{}/{child}", self.root), None)
                .await
            {
                Ok(()) | Err(zk::Error::NoNode) => {}
                Err(e) => return Err(e).with_context(|| format!("deleting {}/{child}", self.root)),
            }
        }
        Ok(())
    }

    async fn invoke(&mut self, op: &Invocation) -> Completion {
        let path = self.path(op);
        match op.f.as_str() {
            "read" => self.read(&path).await,
            "write" => self.write(&path, op).await,
            "cas" => self.cas(&path, op).await,
            other => Completion::fail(format!("zookeeper register: unknown operation {other:?}")),
        }
    }
}
