//! NATS JetStream: a work queue with producer deduplication ids, explicit acks and redelivery
//! after the ack wait.
//!
//! One stream (work-queue retention, a deduplication window) and one durable pull consumer with
//! explicit acks shared by every process. `produce {"id": N}` publishes with `Nats-Msg-Id: N` and
//! waits for the stream's acknowledgement; `consume` fetches at most one message, `drain` up to
//! [`DRAIN_BATCH`], each delivery reported with JetStream's own delivery count; `ack {"id": N}`
//! acknowledges a message this client holds and waits for the server to confirm the ack.
//! A message a client consumed but did not ack (its process crashed, or the ack was lost) is
//! redelivered after the ack wait: what the delivery checker's duplicate and double-commit
//! findings are about. An ack stall ([`NatsFactory::ack_stall`]) makes a client hold a message
//! past the ack wait before acking it, so the late ack races the redelivered copy's.
//!
//! How answers map to the history: "no stream for the subject" is `fail` (nothing stored); any
//! other publish or ack error, including a timeout waiting for the acknowledgement, is `info`.
//! A fetch that errs is `info` (a message may have been handed to us and lost). An ack for a
//! message this client does not hold is `fail` (nothing was sent).

use crate::client::{Client, ClientFactory};
use crate::op::{Completion, Invocation};
use crate::stall::{Stall, Staller};
use anyhow::Context as _;
use async_nats::jetstream::{self, consumer, context::PublishErrorKind, message::Acker, stream};
use async_trait::async_trait;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

/// Messages one `drain` fetches at most.
pub const DRAIN_BATCH: usize = 100;
/// Messages one client holds unacknowledged at most (older ones are forgotten, and redelivered
/// by the server after the ack wait).
const HELD_MAX: usize = 10_000;

/// Opens JetStream queue clients.
#[derive(Debug, Clone)]
pub struct NatsFactory {
    pub stream: String,
    pub subject: String,
    pub consumer: String,
    /// How long the server waits for an ack before redelivering.
    pub ack_wait: Duration,
    /// How long a `consume` waits for a message before answering `[]`.
    pub fetch_wait: Duration,
    /// Stream replicas (1 for a single server, 3 for a cluster).
    pub replicas: usize,
    pub connect_timeout: Duration,
    /// Acks that wait first (a consumer held past the ack wait: docs/scenarios.md B1).
    pub ack_stall: Stall,
    /// Seeds the stall decisions.
    pub seed: u64,
}

impl NatsFactory {
    pub fn new() -> Self {
        NatsFactory {
            stream: "FAULTLINE".into(),
            subject: "faultline.queue".into(),
            consumer: "workers".into(),
            ack_wait: Duration::from_secs(5),
            fetch_wait: Duration::from_millis(200),
            replicas: 1,
            connect_timeout: Duration::from_secs(2),
            ack_stall: Stall::NONE,
            seed: 0,
        }
    }
}

impl Default for NatsFactory {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl ClientFactory for NatsFactory {
    fn name(&self) -> String {
        "nats jetstream queue".into()
    }

    async fn open(&self, process: u64, node: &str) -> anyhow::Result<Box<dyn Client>> {
        let url = if node.starts_with("nats://") {
            node.to_string()
        } else {
            format!("nats://{node}")
        };
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(self.connect_timeout)
            .connect(url.as_str())
            .await
            .with_context(|| format!("cannot connect to NATS at {node}"))?;
        Ok(Box::new(NatsClient {
            js: jetstream::new(client),
            config: self.clone(),
            held: HashMap::new(),
            staller: Staller::new(self.ack_stall, self.seed, process),
        }))
    }
}

/// One process's JetStream connection, with the messages it consumed and not yet acked.
pub struct NatsClient {
    js: jetstream::Context,
    config: NatsFactory,
    held: HashMap<String, Acker>,
    staller: Staller,
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

impl NatsClient {
    async fn consumer(&self) -> Result<consumer::PullConsumer, String> {
        let stream = self
            .js
            .get_stream(&self.config.stream)
            .await
            .map_err(|e| format!("{e}"))?;
        stream
            .get_consumer(&self.config.consumer)
            .await
            .map_err(|e| format!("{e}"))
    }

    async fn produce(&mut self, op: &Invocation) -> Completion {
        let Some(id) = id_of(&op.value) else {
            return Completion::fail("produce needs an id (a string or integer)");
        };
        let publish = jetstream::message::PublishMessage::build()
            .payload(id.clone().into())
            .message_id(&id);
        let ack = match self
            .js
            .send_publish(self.config.subject.clone(), publish)
            .await
        {
            Ok(ack) => ack,
            Err(e) if e.kind() == PublishErrorKind::StreamNotFound => {
                return Completion::fail(format!("{e}"))
            }
            Err(e) => return Completion::info(format!("{e}")),
        };
        match ack.await {
            Ok(_) => Completion::ok(json!({ "id": id_value(&id) })),
            Err(e) if e.kind() == PublishErrorKind::StreamNotFound => {
                Completion::fail(format!("{e}"))
            }
            Err(e) => Completion::info(format!("{e}")),
        }
    }

    async fn fetch(&mut self, max: usize, wait: Duration) -> Completion {
        let consumer = match self.consumer().await {
            Ok(c) => c,
            // Nothing was fetched: looking the consumer up hands out no message.
            Err(e) => return Completion::fail(e),
        };
        let mut batch = match consumer
            .fetch()
            .max_messages(max)
            .expires(wait)
            .messages()
            .await
        {
            Ok(b) => b,
            Err(e) => return Completion::info(format!("{e}")),
        };
        let mut got = Vec::new();
        // Bounded by `max` messages and the fetch's expiry.
        while let Some(m) = batch.next().await {
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    if got.is_empty() {
                        return Completion::info(format!("{e}"));
                    }
                    break;
                }
            };
            let delivered = m.info().map(|i| i.delivered).unwrap_or(0);
            let (msg, acker) = m.split();
            let id = String::from_utf8_lossy(&msg.payload).to_string();
            if self.held.len() >= HELD_MAX {
                self.held.clear();
            }
            self.held.insert(id.clone(), acker);
            let mut d = json!({ "id": id_value(&id) });
            if delivered > 0 {
                d["delivery"] = json!(delivered);
            }
            got.push(d);
        }
        Completion::ok(Value::Array(got))
    }

    async fn ack(&mut self, op: &Invocation) -> Completion {
        let stalled = self.staller.hold().await;
        crate::stall::note(self.ack_now(op).await, stalled)
    }

    async fn ack_now(&mut self, op: &Invocation) -> Completion {
        let Some(id) = id_of(&op.value) else {
            return Completion::fail("ack needs an id");
        };
        let Some(acker) = self.held.remove(&id) else {
            return Completion::fail("not-held: this client holds no delivery of that message");
        };
        match acker.double_ack().await {
            Ok(()) => Completion::ok(Value::Null),
            Err(e) => Completion::info(format!("{e}")),
        }
    }
}

#[async_trait]
impl Client for NatsClient {
    async fn setup(&mut self) -> anyhow::Result<()> {
        let c = &self.config;
        // Start from an empty stream: delete it (if any) and create it again.
        let _ = self.js.delete_stream(&c.stream).await;
        let stream = self
            .js
            .create_stream(stream::Config {
                name: c.stream.clone(),
                subjects: vec![c.subject.clone()],
                retention: stream::RetentionPolicy::WorkQueue,
                duplicate_window: Duration::from_secs(120),
                num_replicas: c.replicas,
                ..Default::default()
            })
            .await
            .with_context(|| format!("creating JetStream stream {}", c.stream))?;
        stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some(c.consumer.clone()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: c.ack_wait,
                ..Default::default()
            })
            .await
            .with_context(|| format!("creating JetStream consumer {}", c.consumer))?;
        Ok(())
    }

    async fn invoke(&mut self, op: &Invocation) -> Completion {
        match op.f.as_str() {
            "produce" | "publish" => self.produce(op).await,
            "consume" => {
                let wait = self.config.fetch_wait;
                self.fetch(1, wait).await
            }
            "drain" => {
                let wait = self.config.fetch_wait;
                self.fetch(DRAIN_BATCH, wait).await
            }
            "ack" => self.ack(op).await,
            other => Completion::fail(format!("nats queue: unknown operation {other:?}")),
        }
    }
}
