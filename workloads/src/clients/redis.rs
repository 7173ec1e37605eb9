//! Redis: a register with CAS (a Lua script run atomically by the server) and a list queue.
//!
//! Register values are stored as their JSON text under `prefix + key`; CAS is one `EVAL` that
//! compares and sets, so it is atomic on the server whatever the client does. The queue is one
//! list: `produce` is `RPUSH`, `consume` is `LPOP`, `drain` is `LPOP key count` (Redis 6.2+).
//! Every client talks to a node that acts as primary, whatever node it was assigned
//! ([`Route`]): replicas refuse writes and may serve stale reads, which would make any register
//! test fail for a reason that says nothing about failover. Which primary, and when it looks
//! again, is the [`Routing`] mode (a plan's `[client] routing`):
//! - `follow-primary` (default): the primary with the most connected replicas, looked for again
//!   after a `READONLY` or any connection error; a client that asks every node, so it leaves a
//!   primary cut off from its replicas as soon as anything goes wrong.
//! - `node-bound`: the primary the client knows, kept until it refuses (`READONLY` once it is
//!   demoted, or a refused connection); after a dropped connection the client asks the same
//!   node first. This is how the applications in Jepsen's Redis analysis behaved: they went on
//!   writing to a primary that a partition had cut off, and the Sentinels' failover discarded
//!   those acknowledged writes at the heal.
//!
//! How answers map to the history:
//! - connection refused (at open or later): nothing was sent: `fail`;
//! - an error reply from the server (`READONLY` on a replica, `MASTERDOWN`, `OOM`, ...): Redis
//!   rejected the command and applied nothing: `fail` (`info` for a CAS, whose `fail` means
//!   "compare failed", see [`Completion::not_applied`]). The CAS script writes only as its last
//!   step, so an error reply never follows a partial write;
//! - any other error after sending (connection dropped, I/O error): `info` for writes, CAS,
//!   produce and consume (a pop may have removed the message), `fail` for register reads (a read
//!   changes nothing).
//!
//! The client's own response timeout is off: the runner's per-operation timeout decides, and
//! yields `info`.

use crate::client::{Client, ClientFactory};
use crate::op::{Completion, Invocation, CAS_MISMATCH};
use anyhow::Context as _;
use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ErrorKind, RedisError};
use serde_json::{json, Value};
use std::time::Duration;

/// Compare-and-set: ARGV[1] is the expected value's JSON text, or "" for "absent".
const CAS_SCRIPT: &str = r#"
local cur = redis.call('GET', KEYS[1])
if (ARGV[1] == '' and cur == false) or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
"#;

/// Bound on SCAN rounds when setup clears old keys.
const SCAN_ROUNDS_MAX: usize = 10_000;
/// Messages one `drain` pops at most.
const DRAIN_BATCH: usize = 1_000;

/// How a client picks the primary and when it looks again (module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Routing {
    #[default]
    FollowPrimary,
    NodeBound,
}

impl Routing {
    /// The `[client] routing` names.
    pub const NAMES: &'static [&'static str] = &["follow-primary", "node-bound"];

    pub fn parse(name: &str) -> Result<Routing, String> {
        match name {
            "follow-primary" => Ok(Routing::FollowPrimary),
            "node-bound" => Ok(Routing::NodeBound),
            other => Err(format!(
                "expected one of {}, not {other:?}",
                Routing::NAMES.join(", ")
            )),
        }
    }
}

/// Which Redis workload a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisWorkload {
    Register,
    Queue,
}

/// Opens Redis clients.
#[derive(Debug, Clone)]
pub struct RedisFactory {
    pub workload: RedisWorkload,
    /// Keys are `prefix + key`; the queue is the list `prefix + "queue"`. Setup deletes every key
    /// under the prefix, so each run starts empty.
    pub prefix: String,
    pub connect_timeout: Duration,
    pub routing: Routing,
}

impl RedisFactory {
    pub fn new(workload: RedisWorkload) -> Self {
        RedisFactory {
            workload,
            prefix: "faultline:".into(),
            connect_timeout: Duration::from_secs(2),
            routing: Routing::FollowPrimary,
        }
    }

    pub fn with_routing(mut self, routing: Routing) -> Self {
        self.routing = routing;
        self
    }

    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }
}

#[async_trait]
impl ClientFactory for RedisFactory {
    fn name(&self) -> String {
        match self.workload {
            RedisWorkload::Register => "redis register".into(),
            RedisWorkload::Queue => "redis list queue".into(),
        }
    }

    async fn open(&self, process: u64, node: &str) -> anyhow::Result<Box<dyn Client>> {
        self.open_among(process, node, &[node.to_string()]).await
    }

    async fn open_among(
        &self,
        _process: u64,
        node: &str,
        nodes: &[String],
    ) -> anyhow::Result<Box<dyn Client>> {
        let route = Route::open_with(node, nodes, self.connect_timeout, self.routing).await?;
        Ok(Box::new(RedisClient {
            route,
            workload: self.workload,
            prefix: self.prefix.clone(),
        }))
    }

    /// The register: every key under the prefix as `node` itself holds it (a replica answers
    /// `GET` from its own data), for the convergence check.
    async fn replica_snapshot(
        &self,
        node: &str,
    ) -> anyhow::Result<Option<crate::client::ReplicaSnapshot>> {
        if self.workload != RedisWorkload::Register {
            return Ok(None);
        }
        let mut con = connect(node, self.connect_timeout).await?;
        let keys = scan_prefix(&mut con, &self.prefix).await?;
        let mut out = crate::client::ReplicaSnapshot::new();
        for key in keys {
            let text: Option<String> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut con)
                .await
                .with_context(|| format!("GET {key} on {node}"))?;
            if let Some(text) = text {
                let value = parse_value(&text).map_err(anyhow::Error::msg)?;
                out.insert(key[self.prefix.len()..].to_string(), value);
            }
        }
        Ok(Some(out))
    }
}

/// Every key under `prefix` (bounded SCAN rounds).
async fn scan_prefix(con: &mut MultiplexedConnection, prefix: &str) -> anyhow::Result<Vec<String>> {
    let pattern = format!("{prefix}*");
    let mut cursor: u64 = 0;
    let mut out = Vec::new();
    for _ in 0..SCAN_ROUNDS_MAX {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(con)
            .await
            .context("SCAN")?;
        out.extend(keys);
        if next == 0 {
            return Ok(out);
        }
        cursor = next;
    }
    anyhow::bail!("more than {SCAN_ROUNDS_MAX} SCAN rounds listing keys under {pattern:?}")
}

/// Opens a connection to `node` (`host:port` or a `redis://` URL), bounded by `timeout`.
pub async fn connect(node: &str, timeout: Duration) -> anyhow::Result<MultiplexedConnection> {
    let url = if node.starts_with("redis://") {
        node.to_string()
    } else {
        format!("redis://{node}/")
    };
    let client =
        redis::Client::open(url.as_str()).with_context(|| format!("bad Redis address {node:?}"))?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(None);
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .with_context(|| format!("cannot connect to Redis at {node}"))
}

/// What `ROLE` says of a node: a primary with this many connected replicas, or not a primary.
fn primary_replicas(role: &redis::Value) -> Option<usize> {
    let redis::Value::Array(items) = role else {
        return None;
    };
    let name = match items.first()? {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        redis::Value::SimpleString(s) => s.clone(),
        _ => return None,
    };
    if name != "master" {
        return None;
    }
    Some(match items.get(2) {
        Some(redis::Value::Array(replicas)) => replicas.len(),
        _ => 0,
    })
}

/// A connection to a node that acts as primary, found the way a Sentinel-unaware client with
/// every address would: ask each node `ROLE`. [`Routing::FollowPrimary`] takes the primary with
/// the most connected replicas (a deposed primary cut off by a partition still says "master",
/// but its replicas have left it), the assigned node first on a tie, and looks again after a
/// `READONLY` reply or a broken connection. [`Routing::NodeBound`] takes the first node that
/// says "master", asking the node it talks to first, then the assigned one, then the others in
/// order, and looks again only after a refusal (`READONLY`, refused connection) or a broken
/// connection (which usually finds the same node again). When no node says "master" (a
/// failover in progress) the client stays on the node it has, whose answers (`READONLY`,
/// refused connections) are then recorded as they come.
pub struct Route {
    pub con: MultiplexedConnection,
    /// The node `con` talks to.
    pub node: String,
    assigned: String,
    nodes: Vec<String>,
    timeout: Duration,
    stale: bool,
    routing: Routing,
}

impl Route {
    /// A [`Routing::FollowPrimary`] route.
    pub async fn open(node: &str, nodes: &[String], timeout: Duration) -> anyhow::Result<Route> {
        Route::open_with(node, nodes, timeout, Routing::FollowPrimary).await
    }

    pub async fn open_with(
        node: &str,
        nodes: &[String],
        timeout: Duration,
        routing: Routing,
    ) -> anyhow::Result<Route> {
        let nodes: Vec<String> = if nodes.is_empty() {
            vec![node.to_string()]
        } else {
            nodes.to_vec()
        };
        let (primary, con) = match find_primary(node, node, &nodes, timeout, routing).await {
            Some(found) => found,
            None => (node.to_string(), connect(node, timeout).await?),
        };
        Ok(Route {
            con,
            node: primary,
            assigned: node.to_string(),
            nodes,
            timeout,
            stale: false,
            routing,
        })
    }

    /// Looks for the primary again if the last answer said this node is not it.
    pub async fn refresh(&mut self) {
        if !self.stale {
            return;
        }
        let found = find_primary(
            &self.node,
            &self.assigned,
            &self.nodes,
            self.timeout,
            self.routing,
        )
        .await;
        if let Some((node, con)) = found {
            self.node = node;
            self.con = con;
            self.stale = false;
        }
    }

    /// Notes an error: a replica's `READONLY` or a lost connection means "find the primary".
    pub fn saw(&mut self, e: &RedisError) {
        if e.code() == Some("READONLY")
            || e.is_connection_refusal()
            || e.is_connection_dropped()
            || e.is_io_error()
        {
            self.stale = true;
        }
    }
}

/// The primary among `nodes` (see [`Route`]), `current` being the node the client talks to;
/// `None` when no node answers "master".
async fn find_primary(
    current: &str,
    assigned: &str,
    nodes: &[String],
    timeout: Duration,
    routing: Routing,
) -> Option<(String, MultiplexedConnection)> {
    let order: Vec<&String> = match routing {
        Routing::FollowPrimary => nodes.iter().collect(),
        Routing::NodeBound => {
            let mut order: Vec<&String> = Vec::with_capacity(nodes.len());
            for n in nodes
                .iter()
                .filter(|n| *n == current)
                .chain(nodes.iter().filter(|n| *n == assigned))
                .chain(nodes.iter())
            {
                if !order.contains(&n) {
                    order.push(n);
                }
            }
            order
        }
    };
    let mut best: Option<(usize, bool, String, MultiplexedConnection)> = None;
    for node in order {
        let Ok(mut con) = connect(node, timeout).await else {
            continue;
        };
        let role = tokio::time::timeout(
            timeout,
            redis::cmd("ROLE").query_async::<redis::Value>(&mut con),
        )
        .await;
        let Ok(Ok(role)) = role else {
            continue;
        };
        let Some(replicas) = primary_replicas(&role) else {
            continue;
        };
        if routing == Routing::NodeBound {
            return Some((node.clone(), con));
        }
        let is_assigned = node == assigned;
        let better = match &best {
            None => true,
            Some((r, a, _, _)) => (replicas, is_assigned) > (*r, *a),
        };
        if better {
            best = Some((replicas, is_assigned, node.clone(), con));
        }
    }
    best.map(|(_, _, node, con)| (node, con))
}

/// One process's Redis connection.
pub struct RedisClient {
    route: Route,
    workload: RedisWorkload,
    prefix: String,
}

/// Whether a failed command may have been applied.
fn classify(e: &RedisError) -> Applied {
    if e.is_connection_refusal() {
        return Applied::No;
    }
    match e.kind() {
        ErrorKind::Server(_) | ErrorKind::Extension => Applied::No,
        _ => Applied::Maybe,
    }
}

#[derive(PartialEq)]
enum Applied {
    No,
    Maybe,
}

fn effect_error(op: &Invocation, e: RedisError) -> Completion {
    match classify(&e) {
        Applied::No => Completion::not_applied(op, format!("{e}")),
        Applied::Maybe => Completion::info(format!("{e}")),
    }
}

fn parse_value(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|_| {
        format!("the stored value {text:?} is not JSON; was the key written by something else?")
    })
}

/// A message id as produced: integers stay integers.
fn id_value(text: String) -> Value {
    match text.parse::<u64>() {
        Ok(n) => json!(n),
        Err(_) => Value::String(text),
    }
}

impl RedisClient {
    fn key(&self, op: &Invocation) -> String {
        format!("{}{}", self.prefix, op.key.as_deref().unwrap_or(""))
    }

    fn queue_key(&self, op: &Invocation) -> String {
        format!("{}{}", self.prefix, op.key.as_deref().unwrap_or("queue"))
    }

    async fn register(&mut self, op: &Invocation) -> Completion {
        let key = self.key(op);
        match op.f.as_str() {
            "read" => {
                let r: Result<Option<String>, _> = redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut self.route.con)
                    .await;
                match r {
                    Ok(None) => Completion::ok(Value::Null),
                    Ok(Some(text)) => match parse_value(&text) {
                        Ok(v) => Completion::ok(v),
                        Err(e) => Completion::fail(e),
                    },
                    // A read changes nothing: one that did not answer never happened.
                    Err(e) => {
                        self.route.saw(&e);
                        Completion::fail(format!("{e}"))
                    }
                }
            }
            "write" => {
                let r: Result<(), _> = redis::cmd("SET")
                    .arg(&key)
                    .arg(op.value.to_string())
                    .query_async(&mut self.route.con)
                    .await;
                match r {
                    Ok(()) => Completion::ok(op.value.clone()),
                    Err(e) => {
                        self.route.saw(&e);
                        effect_error(op, e)
                    }
                }
            }
            "cas" => {
                let Some([old, new]) = op.value.as_array().map(Vec::as_slice) else {
                    return Completion::fail("cas value must be [old, new]");
                };
                let expected = if old.is_null() {
                    String::new()
                } else {
                    old.to_string()
                };
                let r: Result<i64, _> = redis::cmd("EVAL")
                    .arg(CAS_SCRIPT)
                    .arg(1)
                    .arg(&key)
                    .arg(expected)
                    .arg(new.to_string())
                    .query_async(&mut self.route.con)
                    .await;
                match r {
                    Ok(1) => Completion::ok(op.value.clone()),
                    Ok(_) => Completion::fail(CAS_MISMATCH),
                    Err(e) => {
                        self.route.saw(&e);
                        effect_error(op, e)
                    }
                }
            }
            other => Completion::fail(format!("redis register: unknown operation {other:?}")),
        }
    }

    async fn queue(&mut self, op: &Invocation) -> Completion {
        let key = self.queue_key(op);
        match op.f.as_str() {
            "produce" | "enqueue" => {
                let id = match &op.value {
                    Value::Object(m) => m.get("id").cloned().unwrap_or(Value::Null),
                    v => v.clone(),
                };
                let text = match &id {
                    Value::Number(n) => n.to_string(),
                    Value::String(s) => s.clone(),
                    _ => return Completion::fail("produce needs an id (a string or integer)"),
                };
                let r: Result<i64, _> = redis::cmd("RPUSH")
                    .arg(&key)
                    .arg(text)
                    .query_async(&mut self.route.con)
                    .await;
                match r {
                    Ok(_) => Completion::ok(json!({ "id": id })),
                    Err(e) => {
                        self.route.saw(&e);
                        effect_error(op, e)
                    }
                }
            }
            "consume" | "dequeue" => {
                let r: Result<Option<String>, _> = redis::cmd("LPOP")
                    .arg(&key)
                    .query_async(&mut self.route.con)
                    .await;
                match r {
                    Ok(got) => Completion::ok(Value::Array(
                        got.into_iter()
                            .map(|t| json!({ "id": id_value(t) }))
                            .collect(),
                    )),
                    Err(e) => {
                        self.route.saw(&e);
                        effect_error(op, e)
                    }
                }
            }
            "drain" => {
                let r: Result<Option<Vec<String>>, _> = redis::cmd("LPOP")
                    .arg(&key)
                    .arg(DRAIN_BATCH)
                    .query_async(&mut self.route.con)
                    .await;
                match r {
                    Ok(got) => Completion::ok(Value::Array(
                        got.unwrap_or_default()
                            .into_iter()
                            .map(|t| json!({ "id": id_value(t) }))
                            .collect(),
                    )),
                    Err(e) => {
                        self.route.saw(&e);
                        effect_error(op, e)
                    }
                }
            }
            other => Completion::fail(format!("redis queue: unknown operation {other:?}")),
        }
    }
}

#[async_trait]
impl Client for RedisClient {
    async fn setup(&mut self) -> anyhow::Result<()> {
        let keys = scan_prefix(&mut self.route.con, &self.prefix)
            .await
            .context("listing old keys")?;
        for batch in keys.chunks(1000) {
            let _: i64 = redis::cmd("DEL")
                .arg(batch)
                .query_async(&mut self.route.con)
                .await
                .context("DEL old keys")?;
        }
        Ok(())
    }

    async fn invoke(&mut self, op: &Invocation) -> Completion {
        self.route.refresh().await;
        match self.workload {
            RedisWorkload::Register => self.register(op).await,
            RedisWorkload::Queue => self.queue(op).await,
        }
    }
}
