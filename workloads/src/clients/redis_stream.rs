//! Redis streams: one stream read by one consumer group, with acks and claims of stalled
//! consumers' messages.
//!
//! `produce {"id": N}` is `XADD stream * id N`; `consume` first claims (`XAUTOCLAIM`) one message
//! that another consumer has held unacknowledged for longer than [`RedisStreamFactory::claim_idle`],
//! and when there is none reads one new message (`XREADGROUP ... >`); `drain` does the same with
//! up to [`DRAIN_BATCH`]; `ack {"id": N}` is `XACK` of the entry this client received for N.
//! Each process reads as its own consumer (`p<process>`), so a retired process's pending
//! entries stay in the group's pending list until someone claims them: the stalled consumer
//! that claims exist for. A claimed message is delivered twice, so the workload is checked
//! against at-least-once.
//!
//! How answers map to the history:
//! - connection refused, or an error reply (Redis applied nothing): `fail`;
//! - any other error after sending: `info` (an `XADD` may have been stored; a read may have
//!   handed out messages and moved them to our pending list);
//! - `XACK` answering 0: the entry was no longer pending (already acked): `fail`, no effect;
//! - an `ack` for a message this client did not receive: `fail`, nothing sent.

use crate::client::{Client, ClientFactory};
use crate::clients::redis::{Route, Routing};
use crate::op::{Completion, Invocation};
use crate::stall::{Stall, Staller};
use anyhow::Context as _;
use async_trait::async_trait;
use redis::{ErrorKind, RedisError, Value as RValue};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

/// Messages one `drain` takes at most (claimed plus new).
pub const DRAIN_BATCH: usize = 100;
/// Entry ids one client remembers for acks at most (beyond it the oldest are forgotten and
/// stay pending until claimed).
const HELD_MAX: usize = 10_000;

/// Opens Redis stream clients.
#[derive(Debug, Clone)]
pub struct RedisStreamFactory {
    /// The stream's key; setup deletes it and creates the group anew.
    pub stream: String,
    pub group: String,
    /// A pending entry idle this long may be claimed by another consumer.
    pub claim_idle: Duration,
    pub connect_timeout: Duration,
    /// Acks that wait first; past `claim_idle` another consumer may claim the entry.
    pub ack_stall: Stall,
    /// Seeds the stall decisions.
    pub seed: u64,
    /// How a process picks the primary ([`Routing`]).
    pub routing: Routing,
}

impl RedisStreamFactory {
    pub fn new() -> Self {
        RedisStreamFactory {
            stream: "faultline:stream".into(),
            group: "workers".into(),
            claim_idle: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            ack_stall: Stall::NONE,
            seed: 0,
            routing: Routing::FollowPrimary,
        }
    }
}

impl Default for RedisStreamFactory {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl ClientFactory for RedisStreamFactory {
    fn name(&self) -> String {
        "redis stream with a consumer group".into()
    }

    async fn open(&self, process: u64, node: &str) -> anyhow::Result<Box<dyn Client>> {
        self.open_among(process, node, &[node.to_string()]).await
    }

    /// Every process talks to the primary (see [`Route`]): a stream lives on the primary, and a
    /// replica refuses XADD, XREADGROUP and XACK.
    async fn open_among(
        &self,
        process: u64,
        node: &str,
        nodes: &[String],
    ) -> anyhow::Result<Box<dyn Client>> {
        let route = Route::open_with(node, nodes, self.connect_timeout, self.routing).await?;
        Ok(Box::new(RedisStreamClient {
            route,
            config: self.clone(),
            consumer: format!("p{process}"),
            held: HashMap::new(),
            staller: Staller::new(self.ack_stall, self.seed, process),
        }))
    }
}

/// One process's connection, its consumer name, and the entry ids of messages it received
/// (message id -> stream entry id).
pub struct RedisStreamClient {
    route: Route,
    config: RedisStreamFactory,
    consumer: String,
    held: HashMap<String, String>,
    staller: Staller,
}

/// `fail` when Redis certainly applied nothing, else `info`.
fn error_completion(e: RedisError) -> Completion {
    let applied_nothing = e.is_connection_refusal()
        || matches!(e.kind(), ErrorKind::Server(_) | ErrorKind::Extension);
    if applied_nothing {
        Completion::fail(format!("{e}"))
    } else {
        Completion::info(format!("{e}"))
    }
}

fn id_of(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Object(m) => m.get("id").and_then(id_of),
        _ => None,
    }
}

fn id_value(text: &str) -> Value {
    match text.parse::<u64>() {
        Ok(n) => json!(n),
        Err(_) => Value::String(text.to_string()),
    }
}

fn text(v: &RValue) -> Option<String> {
    match v {
        RValue::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        RValue::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// `[[entry-id, [field, value, ...]], ...]` -> (entry id, message id) pairs. Entries without
/// fields (deleted ones, as Redis 6.2 reports them in claims) carry no message and are skipped.
fn entries(list: &RValue) -> Vec<(String, String)> {
    let RValue::Array(items) = list else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let RValue::Array(pair) = item else { continue };
        let (Some(entry), Some(RValue::Array(fields))) = (pair.first().and_then(text), pair.get(1))
        else {
            continue;
        };
        let mut it = fields.chunks(2);
        let id = it.find_map(|kv| match kv {
            [k, v] if text(k).as_deref() == Some("id") => text(v),
            _ => None,
        });
        if let Some(id) = id {
            out.push((entry, id));
        }
    }
    out
}

impl RedisStreamClient {
    /// The completion of a failed command; a replica's answer or a lost connection also sends
    /// the next operation looking for the primary.
    fn failed(&mut self, e: RedisError) -> Completion {
        self.route.saw(&e);
        error_completion(e)
    }

    async fn produce(&mut self, op: &Invocation) -> Completion {
        let Some(id) = id_of(&op.value) else {
            return Completion::fail("produce needs an id (a string or integer)");
        };
        let r: Result<String, RedisError> = redis::cmd("XADD")
            .arg(&self.config.stream)
            .arg("*")
            .arg("id")
            .arg(&id)
            .query_async(&mut self.route.con)
            .await;
        match r {
            Ok(_) => Completion::ok(json!({ "id": id_value(&id) })),
            Err(e) => self.failed(e),
        }
    }

    /// Claims up to `max` entries idle past `claim_idle`, following the cursor a bounded number
    /// of rounds.
    async fn claim(
        &mut self,
        max: usize,
        rounds_max: usize,
    ) -> Result<Vec<(String, String)>, RedisError> {
        let mut got = Vec::new();
        let mut cursor = "0-0".to_string();
        for _ in 0..rounds_max {
            let reply: RValue = redis::cmd("XAUTOCLAIM")
                .arg(&self.config.stream)
                .arg(&self.config.group)
                .arg(&self.consumer)
                .arg(self.config.claim_idle.as_millis() as u64)
                .arg(&cursor)
                .arg("COUNT")
                .arg(max - got.len())
                .query_async(&mut self.route.con)
                .await?;
            let RValue::Array(parts) = reply else { break };
            got.extend(parts.get(1).map(entries).unwrap_or_default());
            cursor = parts.first().and_then(text).unwrap_or_else(|| "0-0".into());
            if cursor == "0-0" || got.len() >= max {
                break;
            }
        }
        Ok(got)
    }

    async fn read_new(&mut self, max: usize) -> Result<Vec<(String, String)>, RedisError> {
        let reply: RValue = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&self.config.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(max)
            .arg("STREAMS")
            .arg(&self.config.stream)
            .arg(">")
            .query_async(&mut self.route.con)
            .await?;
        // [[stream, entries]] or nil when nothing is new.
        let RValue::Array(streams) = reply else {
            return Ok(Vec::new());
        };
        Ok(streams
            .iter()
            .filter_map(|s| match s {
                RValue::Array(kv) => kv.get(1).map(entries),
                _ => None,
            })
            .flatten()
            .collect())
    }

    async fn take(&mut self, max: usize, claim_rounds_max: usize) -> Completion {
        let mut got = match self.claim(max, claim_rounds_max).await {
            Ok(g) => g,
            Err(e) => return self.failed(e),
        };
        if got.len() < max {
            match self.read_new(max - got.len()).await {
                Ok(more) => got.extend(more),
                // Claimed entries are now pending on this consumer, unreported: `info`.
                Err(e) if got.is_empty() => return self.failed(e),
                Err(e) => return Completion::info(format!("{e}")),
            }
        }
        let mut out = Vec::with_capacity(got.len());
        for (entry, id) in got {
            if self.held.len() >= HELD_MAX {
                self.held.clear();
            }
            out.push(json!({ "id": id_value(&id) }));
            self.held.insert(id, entry);
        }
        Completion::ok(Value::Array(out))
    }

    async fn ack(&mut self, op: &Invocation) -> Completion {
        let stalled = self.staller.hold().await;
        crate::stall::note(self.ack_now(op).await, stalled)
    }

    async fn ack_now(&mut self, op: &Invocation) -> Completion {
        let Some(id) = id_of(&op.value) else {
            return Completion::fail("ack needs an id");
        };
        let Some(entry) = self.held.remove(&id) else {
            return Completion::fail("not-held: this client received no entry for that message");
        };
        let r: Result<i64, RedisError> = redis::cmd("XACK")
            .arg(&self.config.stream)
            .arg(&self.config.group)
            .arg(&entry)
            .query_async(&mut self.route.con)
            .await;
        match r {
            Ok(1) => Completion::ok(Value::Null),
            Ok(_) => Completion::fail("not-pending: the entry was already acknowledged"),
            Err(e) => self.failed(e),
        }
    }
}

#[async_trait]
impl Client for RedisStreamClient {
    async fn setup(&mut self) -> anyhow::Result<()> {
        let c = &self.config;
        let _: i64 = redis::cmd("DEL")
            .arg(&c.stream)
            .query_async(&mut self.route.con)
            .await
            .with_context(|| format!("deleting Redis stream {}", c.stream))?;
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&c.stream)
            .arg(&c.group)
            .arg("$")
            .arg("MKSTREAM")
            .query_async(&mut self.route.con)
            .await
            .with_context(|| format!("creating consumer group {} on {}", c.group, c.stream))?;
        Ok(())
    }

    async fn invoke(&mut self, op: &Invocation) -> Completion {
        self.route.refresh().await;
        match op.f.as_str() {
            "produce" | "publish" => self.produce(op).await,
            "consume" => self.take(1, 1).await,
            "drain" => self.take(DRAIN_BATCH, 100).await,
            "ack" => self.ack(op).await,
            other => Completion::fail(format!("redis stream: unknown operation {other:?}")),
        }
    }
}
