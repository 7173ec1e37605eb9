//! etcd 3.4 through its JSON gateway: `POST /v3/kv/range`, `/v3/kv/put` and `/v3/kv/txn`, keys
//! and values base64-encoded, register values stored as their JSON text.
//!
//! Why the gateway and not gRPC: it needs nothing but an HTTP client (reqwest without TLS), and
//! every etcd 3.4 node serves it on the client port. Each process gets its own HTTP client, so a
//! process that is replaced after `info` also gets fresh connections.
//!
//! How answers map to the history, which is what the test is worth:
//! - a connection that could not be made: nothing was sent, so `fail` (`connection-refused`);
//! - a read that errs in any other way: `fail` too, because a read has no effect, so a read that
//!   did not answer is the same as one that never happened (Jepsen's rule for reads);
//! - a write or CAS that errs after the request may have left: `info`, unless etcd's error code
//!   says it refused the request before proposing it (invalid argument, permission, too many
//!   requests), which is `fail`;
//! - a CAS whose comparison failed: `fail` (`cas-mismatch`), since nothing changed; a CAS that
//!   was refused or never sent is `info` instead (see [`Completion::not_applied`]), because a
//!   failed CAS tells the linearizability checker what the register held.
//!
//! `--read-mode serializable` sets `"serializable": true` on reads: the node answers from its
//! local state without a quorum, which is allowed to be stale. That is the known-bad control.

use crate::client::{Client, ClientFactory};
use crate::op::{Completion, Invocation, CAS_MISMATCH};
use anyhow::Context as _;
use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};
use std::str::FromStr;
use std::time::Duration;

/// How reads are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadMode {
    /// Through the Raft quorum (etcd's default): reads must be linearizable.
    Linearizable,
    /// From the node's local state: may be stale.
    Serializable,
}

impl FromStr for ReadMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "linearizable" => Ok(ReadMode::Linearizable),
            "serializable" => Ok(ReadMode::Serializable),
            other => Err(format!(
                "unknown read mode {other:?}; expected linearizable or serializable"
            )),
        }
    }
}

impl std::fmt::Display for ReadMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReadMode::Linearizable => "linearizable",
            ReadMode::Serializable => "serializable",
        })
    }
}

/// Opens etcd register clients.
#[derive(Debug, Clone)]
pub struct EtcdFactory {
    pub read_mode: ReadMode,
    /// Every register key `k` is stored at `prefix + k`; setup deletes everything under it, so
    /// each run starts from empty registers.
    pub prefix: String,
    /// Bound on establishing a TCP connection.
    pub connect_timeout: Duration,
}

impl EtcdFactory {
    pub fn new(read_mode: ReadMode) -> Self {
        EtcdFactory {
            read_mode,
            prefix: "faultline/".into(),
            connect_timeout: Duration::from_secs(2),
        }
    }

    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }
}

#[async_trait]
impl ClientFactory for EtcdFactory {
    fn name(&self) -> String {
        format!("etcd ({} reads)", self.read_mode)
    }

    async fn open(&self, _process: u64, node: &str) -> anyhow::Result<Box<dyn Client>> {
        Ok(Box::new(self.client(node)?))
    }

    /// Every key under the prefix as `node`'s member holds it: one serializable range read,
    /// answered from that member's own state.
    async fn replica_snapshot(
        &self,
        node: &str,
    ) -> anyhow::Result<Option<crate::client::ReplicaSnapshot>> {
        self.client(node)?.local_snapshot().await.map(Some)
    }
}

impl EtcdFactory {
    fn client(&self, node: &str) -> anyhow::Result<EtcdClient> {
        let base = if node.starts_with("http://") || node.starts_with("https://") {
            node.trim_end_matches('/').to_string()
        } else {
            format!("http://{node}")
        };
        let http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .pool_max_idle_per_host(2)
            .build()
            .context("cannot build an HTTP client")?;
        Ok(EtcdClient {
            http,
            base,
            prefix: self.prefix.clone(),
            read_mode: self.read_mode,
        })
    }
}

/// One process's etcd client.
pub struct EtcdClient {
    http: reqwest::Client,
    base: String,
    prefix: String,
    read_mode: ReadMode,
}

/// Why a gateway call did not produce a response body.
enum CallError {
    /// No connection was made: the request never left.
    NotSent(String),
    /// etcd answered with an error code that means it refused the request before proposing it.
    Refused(String),
    /// Anything else: the request may have been applied.
    Ambiguous(String),
}

impl EtcdClient {
    fn key(&self, op: &Invocation) -> String {
        B64.encode(format!(
            "{}{}",
            self.prefix,
            op.key.as_deref().unwrap_or("")
        ))
    }

    async fn call(&self, path: &str, body: Value) -> Result<Value, CallError> {
        let url = format!("{}{}", self.base, path);
        let resp = match self.http.post(&url).json(&body).send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() => {
                return Err(CallError::NotSent(format!("connection-refused: {e}")))
            }
            Err(e) => return Err(CallError::Ambiguous(format!("{e}"))),
        };
        let status = resp.status();
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) => return Err(CallError::Ambiguous(format!("reading the response: {e}"))),
        };
        let body: Value = serde_json::from_str(&text).map_err(|e| {
            CallError::Ambiguous(format!(
                "HTTP {status}: unreadable response ({e}): {text:.200}"
            ))
        })?;
        if !status.is_success() || body.get("error").is_some() || body.get("code").is_some() {
            let code = body.get("code").and_then(Value::as_i64).unwrap_or(-1);
            let msg = body
                .get("message")
                .or_else(|| body.get("error"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let err = format!("etcd error {code} (HTTP {status}): {msg}");
            // gRPC codes: 3 invalid argument, 7 permission denied, 8 resource exhausted (too many
            // requests), 16 unauthenticated: refused before any proposal. Others (14 unavailable,
            // 4 deadline exceeded: "request timed out", "leader changed") may still commit.
            return Err(match code {
                3 | 7 | 8 | 16 => CallError::Refused(err),
                _ => CallError::Ambiguous(err),
            });
        }
        Ok(body)
    }

    async fn read(&self, op: &Invocation) -> Completion {
        let mut body = json!({ "key": self.key(op) });
        if self.read_mode == ReadMode::Serializable {
            body["serializable"] = Value::Bool(true);
        }
        match self.call("/v3/kv/range", body).await {
            Ok(resp) => {
                let kv = resp
                    .get("kvs")
                    .and_then(Value::as_array)
                    .and_then(|kvs| kvs.first());
                match kv {
                    None => Completion::ok(Value::Null),
                    Some(kv) => match decode_value(kv.get("value")) {
                        Ok(v) => Completion::ok(v),
                        Err(e) => Completion::fail(e),
                    },
                }
            }
            // A read changes nothing: one that did not answer never happened, as far as any
            // checker can tell.
            Err(CallError::NotSent(e) | CallError::Refused(e) | CallError::Ambiguous(e)) => {
                Completion::fail(e)
            }
        }
    }

    async fn write(&self, op: &Invocation) -> Completion {
        let body = json!({ "key": self.key(op), "value": B64.encode(op.value.to_string()) });
        match self.call("/v3/kv/put", body).await {
            Ok(_) => Completion::ok(op.value.clone()),
            Err(e) => effect_error(op, e),
        }
    }

    async fn cas(&self, op: &Invocation) -> Completion {
        let Some([old, new]) = op.value.as_array().map(Vec::as_slice) else {
            return Completion::fail("cas value must be [old, new]");
        };
        let key = self.key(op);
        let compare = if old.is_null() {
            json!({ "key": key, "result": "EQUAL", "target": "VERSION", "version": "0" })
        } else {
            json!({ "key": key, "result": "EQUAL", "target": "VALUE", "value": B64.encode(old.to_string()) })
        };
        let body = json!({
            "compare": [compare],
            "success": [{ "request_put": { "key": key, "value": B64.encode(new.to_string()) } }],
            "failure": [],
        });
        match self.call("/v3/kv/txn", body).await {
            // proto3 JSON leaves `succeeded: false` out.
            Ok(resp) => match resp.get("succeeded").and_then(Value::as_bool) {
                Some(true) => Completion::ok(op.value.clone()),
                _ => Completion::fail(CAS_MISMATCH),
            },
            Err(e) => effect_error(op, e),
        }
    }
}

fn effect_error(op: &Invocation, e: CallError) -> Completion {
    match e {
        CallError::NotSent(e) | CallError::Refused(e) => Completion::not_applied(op, e),
        CallError::Ambiguous(e) => Completion::info(e),
    }
}

fn decode_value(v: Option<&Value>) -> Result<Value, String> {
    // An empty value is left out of the JSON (proto3 default).
    let b64 = v.and_then(Value::as_str).unwrap_or("");
    let bytes = B64
        .decode(b64)
        .map_err(|e| format!("etcd returned a value that is not base64: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|_| {
        format!(
            "the stored value {:?} is not JSON; was the key written by something else?",
            String::from_utf8_lossy(&bytes)
        )
    })
}

impl EtcdClient {
    /// The end of the range of every key under the prefix: the prefix with its last byte
    /// incremented.
    fn prefix_end(&self) -> anyhow::Result<Vec<u8>> {
        let mut end = self.prefix.clone().into_bytes();
        match end.last_mut() {
            Some(b) if *b < 0xff => *b += 1,
            _ => anyhow::bail!("the etcd key prefix must end in a byte below 0xff"),
        }
        Ok(end)
    }

    /// This member's keys under the prefix (without it) and values, read serializably.
    async fn local_snapshot(&self) -> anyhow::Result<crate::client::ReplicaSnapshot> {
        let end = self.prefix_end()?;
        let body = json!({
            "key": B64.encode(&self.prefix), "range_end": B64.encode(&end), "serializable": true,
        });
        let resp = match self.call("/v3/kv/range", body).await {
            Ok(r) => r,
            Err(CallError::NotSent(e) | CallError::Refused(e) | CallError::Ambiguous(e)) => {
                anyhow::bail!("range read at {}: {e}", self.base)
            }
        };
        let mut out = crate::client::ReplicaSnapshot::new();
        let kvs = resp.get("kvs").and_then(Value::as_array);
        for kv in kvs.into_iter().flatten() {
            let key = B64
                .decode(kv.get("key").and_then(Value::as_str).unwrap_or(""))
                .context("etcd returned a key that is not base64")?;
            let key = String::from_utf8_lossy(&key);
            let key = key.strip_prefix(&self.prefix).unwrap_or(&key).to_string();
            let value = decode_value(kv.get("value")).map_err(anyhow::Error::msg)?;
            out.insert(key, value);
        }
        Ok(out)
    }
}

#[async_trait]
impl Client for EtcdClient {
    async fn setup(&mut self) -> anyhow::Result<()> {
        // Delete [prefix, prefix with its last byte incremented): every key under the prefix.
        let end = self.prefix_end()?;
        let body = json!({ "key": B64.encode(&self.prefix), "range_end": B64.encode(&end) });
        match self.call("/v3/kv/deleterange", body).await {
            Ok(_) => Ok(()),
            Err(CallError::NotSent(e) | CallError::Refused(e) | CallError::Ambiguous(e)) => {
                anyhow::bail!(
                    "cannot clear keys under {:?} at {}: {e}",
                    self.prefix,
                    self.base
                )
            }
        }
    }

    async fn invoke(&mut self, op: &Invocation) -> Completion {
        match op.f.as_str() {
            "read" => self.read(op).await,
            "write" => self.write(op).await,
            "cas" => self.cas(op).await,
            other => Completion::fail(format!("etcd register: unknown operation {other:?}")),
        }
    }
}
