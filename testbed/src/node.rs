//! One node: its services, the routing of requests to them, and its lifecycle.
//!
//! Two kinds of state live on a node. The register is replicated: every node holds a replica
//! and requests go to the primary (see [`crate::kv`]). Everything else (queue, outbox,
//! idempotent requests, members, unique ids, streams, task leases) has one *home* node, the
//! lowest name unless `--home` says otherwise, like a partition with a single owner: other nodes
//! forward such requests to it over the peer link, so a partition between a node and the home
//! makes those requests fail there, as with a real broker's partition leader.
//!
//! Lifecycle: [`start`] replays the write-ahead log, binds, and spawns the server and the
//! background loops (heartbeats and elections, the outbox dispatcher); every task of the node
//! runs under one cancellation token, so [`NodeHandle::kill`] is a crash: no handler, loop or
//! connection of the node runs another step afterwards.

use crate::config::NodeConfig;
use crate::http::{Handler, Reply, Req};
use crate::net::{Net, PeerError};
use crate::store::{Record, Store};
use crate::{kv, outbox, queue, services};
use serde_json::{json, Value};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A running node's state, shared by its handlers and loops.
pub struct Node {
    pub cfg: NodeConfig,
    pub net: Net,
    pub store: Store,
    pub kv: kv::Replica,
    pub broker: queue::Broker,
    pub outbox: outbox::Outbox,
    pub services: services::Services,
    cancel: CancellationToken,
    started: Instant,
}

impl Node {
    /// Spawns `fut` as a task of this node: it stops when the node is killed.
    pub fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let cancel = self.cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = fut => {}
            }
        });
    }

    pub fn is_home(&self) -> bool {
        self.cfg.home_name() == self.cfg.name
    }

    pub fn is_killed(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// A line on stderr, prefixed with the node name and the time since start.
    pub fn log(&self, msg: impl AsRef<str>) {
        eprintln!(
            "[{} +{:.3}s] {}",
            self.cfg.name,
            self.started.elapsed().as_secs_f64(),
            msg.as_ref()
        );
    }

    /// Bound on a forwarded request: the slowest thing a target does is a replicated write.
    pub fn forward_timeout(&self) -> Duration {
        self.cfg.settings.write_timeout + self.cfg.settings.peer_timeout * 2
    }

    /// Forwards a client request to `target` and relays its answer. A request that was already
    /// forwarded once is refused instead (no loops).
    pub async fn forward(&self, target: &str, req: &Req, why: &str) -> Reply {
        if req.forwarded {
            return Reply::unavailable(
                why,
                true,
                format!(
                    "{} cannot serve {} and does not forward twice",
                    self.cfg.name, req.path
                ),
            );
        }
        match self
            .net
            .forward(target, &req.path, &req.body, self.forward_timeout())
            .await
        {
            Ok(v) => Reply::ok(v),
            Err(PeerError::Refused { status, body }) => Reply { status, body },
            Err(PeerError::NotSent(e)) => Reply::unavailable(
                "unreachable",
                true,
                format!("{} cannot reach {target}: {e}", self.cfg.name),
            ),
            Err(PeerError::Ambiguous(e)) => Reply::unavailable(
                "unreachable",
                false,
                format!("forwarding to {target} failed midway: {e}"),
            ),
        }
    }

    async fn handle(self: Arc<Self>, req: Req) -> Reply {
        if let Some(from) = &req.from {
            if self.net.is_blocked(from) {
                return Reply::unavailable(
                    "blocked",
                    true,
                    format!("{} is partitioned from {from}", self.cfg.name),
                );
            }
        }
        let path = req.path.as_str();
        match path {
            "/status" => return Reply::ok(self.status().await),
            "/admin/block" => return self.admin_block(&req.body),
            _ => {}
        }
        if let Some(rest) = path.strip_prefix("/peer/") {
            return kv::peer(&self, rest, &req.body).await;
        }
        if let Some(rest) = path.strip_prefix("/kv/") {
            return kv::client(&self, rest, &req).await;
        }
        let service = path.trim_start_matches('/').split('/').next().unwrap_or("");
        if !matches!(
            service,
            "queue" | "outbox" | "idem" | "members" | "unique" | "stream" | "lease"
        ) {
            return Reply::error(404, "not-found", true, format!("no endpoint {path}"));
        }
        if !self.is_home() {
            let home = self.cfg.home_name();
            return self.forward(&home, &req, "not-home").await;
        }
        let op = &path[service.len() + 2..];
        let r = match service {
            "queue" => queue::handle(&self, op, &req.body).await,
            "outbox" => outbox::handle(&self, op, &req.body).await,
            _ => services::handle(&self, service, op, &req.body).await,
        };
        r.unwrap_or_else(|e| e)
    }

    async fn status(&self) -> Value {
        let kv = self.kv.status();
        json!({
            "node": self.cfg.name,
            "home": self.cfg.home_name(),
            "bugs": self.cfg.bugs.iter().map(|b| b.name()).collect::<Vec<_>>(),
            "blocked": self.net.blocked(),
            "kv": kv,
            "outbox": self.outbox.status().await,
            // The node's own wall clock (`clock_gettime(CLOCK_REALTIME)` through libc, which a
            // clock fault shifts): what faultline's clock probe reads to verify a fault.
            "now_us": unix_now_us(),
        })
    }

    fn admin_block(&self, body: &Value) -> Reply {
        let Some(list) = body.get("peers").and_then(Value::as_array) else {
            return Reply::bad("field \"peers\" must be a list of node names");
        };
        let mut peers = std::collections::BTreeSet::new();
        for p in list {
            match p.as_str() {
                Some(s) if self.net.peer_names().iter().any(|n| n == s) => {
                    peers.insert(s.to_string());
                }
                _ => return Reply::bad(format!("{p} is not a peer of {}", self.cfg.name)),
            }
        }
        self.log(format!("blocking peers {peers:?}"));
        self.net.set_blocked(peers);
        Reply::ok(json!({ "blocked": self.net.blocked() }))
    }

    fn replay(&mut self, records: Vec<Record>) {
        for r in &records {
            self.kv.replay(r);
            self.broker.replay(r, &self.cfg.settings);
            self.outbox.replay(r);
            self.services.replay(r);
        }
    }
}

/// A started node.
pub struct NodeHandle {
    node: Arc<Node>,
    addr: SocketAddr,
}

impl NodeHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn name(&self) -> &str {
        &self.node.cfg.name
    }

    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Replaces the peers this node cannot talk to (see [`crate::net`]).
    pub fn block(&self, peers: &[&str]) {
        self.node
            .net
            .set_blocked(peers.iter().map(|s| s.to_string()).collect());
    }

    /// Crashes the node: every task stops at its next step, the port is released.
    pub fn kill(self) {
        self.node.log("killed");
        self.node.cancel.cancel();
    }

    /// Resolves when the node is killed (by [`NodeHandle::kill`] or a signal in the binary).
    pub async fn killed(&self) {
        self.node.cancel.cancelled().await
    }
}

/// Binds `cfg.listen` and starts the node.
pub async fn start(cfg: NodeConfig) -> anyhow::Result<NodeHandle> {
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| anyhow::anyhow!("--listen {}: cannot bind: {e}", cfg.listen))?;
    start_on(cfg, listener).await
}

/// Starts the node on an already bound listener (tests bind port 0 first to learn the ports).
pub async fn start_on(cfg: NodeConfig, listener: TcpListener) -> anyhow::Result<NodeHandle> {
    cfg.validate().map_err(anyhow::Error::msg)?;
    let addr = listener.local_addr()?;
    let latency = cfg.settings.storage_latency;
    let (store, records) = match &cfg.data_dir {
        Some(dir) => Store::open(dir, latency)?,
        None => (Store::memory(latency), Vec::new()),
    };
    let replayed = records.len();
    let mut node = Node {
        net: Net::new(&cfg.name, &cfg.peers)?,
        store,
        kv: kv::Replica::new(),
        broker: queue::Broker::default(),
        outbox: outbox::Outbox::default(),
        services: services::Services::default(),
        cancel: CancellationToken::new(),
        started: Instant::now(),
        cfg,
    };
    node.replay(records);
    let node = Arc::new(node);
    node.log(format!(
        "listening on {addr}; peers {:?}; home {}; bugs {:?}; {replayed} records replayed",
        node.net.peer_names(),
        node.cfg.home_name(),
        node.cfg.bugs.iter().map(|b| b.name()).collect::<Vec<_>>()
    ));
    let weak = Arc::downgrade(&node);
    let handler: Handler = Arc::new(move |req: Req| {
        let node = weak.upgrade();
        Box::pin(async move {
            match node {
                Some(n) => n.handle(req).await,
                None => Reply::unavailable("stopped", true, "the node is stopped"),
            }
        })
    });
    tokio::spawn(crate::http::serve(listener, handler, node.cancel.clone()));
    node.spawn(kv::run(Arc::clone(&node)));
    if node.is_home() {
        node.spawn(outbox::run(Arc::clone(&node)));
    }
    Ok(NodeHandle { node, addr })
}

/// Microseconds since the Unix epoch by this process's clock (0 if it reads before 1970).
fn unix_now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
