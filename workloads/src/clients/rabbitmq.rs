//! RabbitMQ: a replicated queue with publisher confirms and manual acks.
//!
//! One durable queue of the [`QueueType`] a plan asks for: by default a quorum queue
//! (`x-queue-type: quorum`, the Raft-replicated queue type that spans the cluster's nodes rather
//! than living on one); or a classic mirrored queue (`faultline-mirrored`, which the cluster's
//! `ha-faultline` policy mirrors on every node and lets an unsynchronised mirror take over
//! when the leader fails or shuts down: availability over safety, the configuration in which
//! the literature lost messages). Each process holds one connection and one
//! channel in confirm mode. `produce {"id": N}` publishes N through the default exchange with
//! `mandatory` set and waits for the broker's confirm; `consume` takes at most one message with
//! `basic.get` without auto-ack, `drain` up to [`DRAIN_BATCH`]; `ack {"id": N}` sends
//! `basic.ack` for the delivery this channel holds.
//!
//! Why `basic.get` and not a push consumer: a pull answers "nothing there" at once, which is
//! what `drain` must report as `[]`, and it hands over exactly the messages the history records
//! (a push consumer's prefetch would hold deliveries the history never saw). Unacked deliveries
//! go back to the queue when the channel closes; the runner closes a client after `info`, so a
//! message consumed by a retired process is redelivered — legitimate under at-least-once, which
//! is the guarantee this workload is checked against.
//!
//! RabbitMQ (3.10, as Debian ships it) has no per-queue ack deadline, yet a workload needs one:
//! a delivery whose ack the generator never sent (the phase ended between consume and ack)
//! would otherwise stay held by an idle open channel through the final drain and be reported
//! stranded. So each client plays the ack deadline itself: a delivery held longer than
//! [`RabbitMqFactory::requeue_after`] is rejected with requeue by a background task, and a later
//! `ack` of it is `fail` (not held, nothing sent). One lock decides which of ack and requeue
//! gets each delivery tag, so a tag is never both acked and rejected.
//!
//! How answers map to the history: a confirm `ack` is `ok`; an ack that carries the message back
//! as unroutable (no queue) is `fail` (no queue took it); a `nack` is `info`: RabbitMQ sends one
//! when the queue could not take responsibility for the message (for a quorum queue, e.g. when
//! its leader was lost mid-replication), which does not prove that no replica kept it, and
//! `fail` is reserved for "certainly no effect"; a publish or confirm that errs (connection or
//! channel lost before the confirm) is `info`. A
//! `basic.get` that errs is `info` (a message may have been handed out and lost with the
//! channel). An ack for a message this channel does not hold is `fail` (nothing sent); an ack
//! written to the channel is `ok`, an error writing it `info`. AMQP has no reply to
//! `basic.ack`, so an `ok` ack means "sent on an open channel": if the connection dies before
//! the broker reads it, the message is redelivered and the checker reports a duplicate.

use crate::client::{Client, ClientFactory};
use crate::op::{Completion, Invocation};
use crate::stall::{Stall, Staller};
use anyhow::Context as _;
use async_trait::async_trait;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::Confirmation;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Messages one `drain` takes at most.
pub const DRAIN_BATCH: usize = 100;
/// Deliveries one client holds unacknowledged at most (beyond it the oldest are forgotten;
/// the broker redelivers them when the channel closes).
const HELD_MAX: usize = 10_000;

/// Opens RabbitMQ queue clients.
#[derive(Debug, Clone)]
pub struct RabbitMqFactory {
    pub queue: String,
    /// `user:password` as configured on the brokers (RabbitMQ's default user, with
    /// `loopback_users = none` so it may log in from other hosts).
    pub credentials: String,
    /// The virtual host, URL-encoded (`%2f` is `/`).
    pub vhost: String,
    pub connect_timeout: Duration,
    /// A delivery held unacknowledged this long is rejected with requeue (the ack deadline
    /// RabbitMQ lacks; see the module documentation).
    pub requeue_after: Duration,
    /// Acks that wait first; past `requeue_after` the delivery is requeued, so the late ack
    /// is `fail` (nothing sent) and the message comes back.
    pub ack_stall: Stall,
    /// Seeds the stall decisions.
    pub seed: u64,
    pub queue_type: QueueType,
}

/// The replicated queue type (module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueType {
    #[default]
    Quorum,
    ClassicMirrored,
}

/// The classic mirrored queue's name; the cluster's `ha-faultline` policy matches it
/// (`src/cluster/systems/rabbitmq.rs`).
pub const MIRRORED_QUEUE: &str = "faultline-mirrored";

impl QueueType {
    /// The `[client] queue-type` names.
    pub const NAMES: &'static [&'static str] = &["quorum", "classic-mirrored"];

    pub fn parse(name: &str) -> Result<QueueType, String> {
        match name {
            "quorum" => Ok(QueueType::Quorum),
            "classic-mirrored" => Ok(QueueType::ClassicMirrored),
            other => Err(format!(
                "expected one of {}, not {other:?}",
                QueueType::NAMES.join(", ")
            )),
        }
    }
}

impl RabbitMqFactory {
    /// A factory for `queue_type`, on its queue.
    pub fn with_queue_type(mut self, queue_type: QueueType) -> Self {
        self.queue_type = queue_type;
        if queue_type == QueueType::ClassicMirrored {
            self.queue = MIRRORED_QUEUE.into();
        }
        self
    }

    pub fn new() -> Self {
        RabbitMqFactory {
            queue: "faultline".into(),
            credentials: "guest:guest".into(),
            vhost: "%2f".into(),
            connect_timeout: Duration::from_secs(5),
            requeue_after: Duration::from_secs(2),
            ack_stall: Stall::NONE,
            seed: 0,
            queue_type: QueueType::Quorum,
        }
    }
}

impl Default for RabbitMqFactory {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl ClientFactory for RabbitMqFactory {
    fn name(&self) -> String {
        match self.queue_type {
            QueueType::Quorum => "rabbitmq quorum queue".into(),
            QueueType::ClassicMirrored => "rabbitmq classic mirrored queue".into(),
        }
    }

    async fn open(&self, process: u64, node: &str) -> anyhow::Result<Box<dyn Client>> {
        let host = node.strip_prefix("amqp://").unwrap_or(node);
        let uri = format!("amqp://{}@{host}/{}", self.credentials, self.vhost);
        let conn = tokio::time::timeout(
            self.connect_timeout,
            Connection::connect(&uri, ConnectionProperties::default()),
        )
        .await
        .map_err(|_| anyhow::anyhow!("timed out after {:?}", self.connect_timeout))
        .and_then(|r| r.map_err(anyhow::Error::from))
        .with_context(|| format!("cannot connect to RabbitMQ at {node}"))?;
        let channel = conn
            .create_channel()
            .await
            .with_context(|| format!("cannot open a channel on RabbitMQ at {node}"))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .context("cannot enable publisher confirms")?;
        let held: Held = Arc::new(Mutex::new(HashMap::new()));
        let requeuer = tokio::spawn(requeue_overdue(
            channel.clone(),
            held.clone(),
            self.requeue_after,
        ));
        Ok(Box::new(RabbitMqClient {
            conn,
            channel,
            config: self.clone(),
            held,
            requeuer,
            staller: Staller::new(self.ack_stall, self.seed, process),
        }))
    }
}

/// Deliveries a channel holds unacknowledged: message id -> (delivery tag, when delivered).
type Held = Arc<Mutex<HashMap<String, (u64, Instant)>>>;

/// How often the requeue task looks for overdue deliveries.
const REQUEUE_TICK: Duration = Duration::from_millis(100);

/// Rejects with requeue every delivery held longer than `after`, until the channel closes.
async fn requeue_overdue(channel: Channel, held: Held, after: Duration) {
    loop {
        tokio::time::sleep(REQUEUE_TICK).await;
        let overdue: Vec<u64> = {
            let mut h = held.lock().expect("held deliveries lock");
            let ids: Vec<String> = h
                .iter()
                .filter(|(_, (_, at))| at.elapsed() >= after)
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter()
                .filter_map(|id| h.remove(id))
                .map(|(tag, _)| tag)
                .collect()
        };
        for tag in overdue {
            let opts = BasicNackOptions {
                multiple: false,
                requeue: true,
            };
            if channel.basic_nack(tag, opts).await.is_err() {
                // The channel is gone: the broker requeued everything it held.
                return;
            }
        }
    }
}

/// One process's connection and channel, with the deliveries it holds unacknowledged.
pub struct RabbitMqClient {
    conn: Connection,
    channel: Channel,
    config: RabbitMqFactory,
    held: Held,
    requeuer: tokio::task::JoinHandle<()>,
    staller: Staller,
}

impl Drop for RabbitMqClient {
    fn drop(&mut self) {
        self.requeuer.abort();
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

fn queue_args(queue_type: QueueType) -> FieldTable {
    let mut args = FieldTable::default();
    let name = match queue_type {
        QueueType::Quorum => "quorum",
        QueueType::ClassicMirrored => "classic",
    };
    args.insert("x-queue-type".into(), AMQPValue::LongString(name.into()));
    args
}

impl RabbitMqClient {
    async fn produce(&mut self, op: &Invocation) -> Completion {
        let Some(id) = id_of(&op.value) else {
            return Completion::fail("produce needs an id (a string or integer)");
        };
        let confirm = match self
            .channel
            .basic_publish(
                "".into(),
                self.config.queue.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                id.as_bytes(),
                // Persistent: quorum queues store every message anyway; say so explicitly.
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
        {
            Ok(c) => c,
            Err(e) => return Completion::info(format!("publish: {e}")),
        };
        match confirm.await {
            Ok(Confirmation::Ack(None)) => Completion::ok(json!({ "id": id_value(&id) })),
            Ok(Confirmation::Ack(Some(_))) => {
                Completion::fail("unroutable: returned by the broker, no queue took it")
            }
            // See the module documentation: a nack does not prove the message was not stored.
            Ok(Confirmation::Nack(_)) => Completion::info("nack: the broker did not confirm it"),
            Ok(Confirmation::NotRequested) => {
                Completion::info("publisher confirms are off on this channel")
            }
            Err(e) => Completion::info(format!("confirm: {e}")),
        }
    }

    async fn get(&mut self, max: usize) -> Completion {
        let mut got = Vec::new();
        // Bounded by `max` messages; stops at the first "queue empty".
        while got.len() < max {
            let m = match self
                .channel
                .basic_get(
                    self.config.queue.as_str().into(),
                    BasicGetOptions { no_ack: false },
                )
                .await
            {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => {
                    // Deliveries already taken are held on this channel; the runner closes it
                    // after `info`, which requeues them.
                    return Completion::info(format!("basic.get: {e}"));
                }
            };
            let d = m.delivery;
            let id = String::from_utf8_lossy(&d.data).to_string();
            {
                let mut h = self.held.lock().expect("held deliveries lock");
                if h.len() >= HELD_MAX {
                    // Forgotten tags are never acked; the broker requeues them on close.
                    h.clear();
                }
                h.insert(id.clone(), (d.delivery_tag, Instant::now()));
            }
            got.push(json!({ "id": id_value(&id) }));
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
        let held = self.held.lock().expect("held deliveries lock").remove(&id);
        let Some((tag, _)) = held else {
            return Completion::fail(
                "not-held: this channel holds no delivery of that message (or it was requeued)",
            );
        };
        match self
            .channel
            .basic_ack(tag, BasicAckOptions::default())
            .await
        {
            Ok(()) => Completion::ok(Value::Null),
            Err(e) => Completion::info(format!("basic.ack: {e}")),
        }
    }
}

#[async_trait]
impl Client for RabbitMqClient {
    async fn setup(&mut self) -> anyhow::Result<()> {
        let q = self.config.queue.as_str();
        // Start from an empty queue: delete it (if any) and declare it again.
        self.channel
            .queue_delete(q.into(), QueueDeleteOptions::default())
            .await
            .with_context(|| format!("deleting RabbitMQ queue {q}"))?;
        self.channel
            .queue_declare(
                q.into(),
                QueueDeclareOptions::durable(),
                queue_args(self.config.queue_type),
            )
            .await
            .with_context(|| format!("declaring RabbitMQ queue {q}"))?;
        Ok(())
    }

    async fn invoke(&mut self, op: &Invocation) -> Completion {
        match op.f.as_str() {
            "produce" | "publish" => self.produce(op).await,
            "consume" => self.get(1).await,
            "drain" => self.get(DRAIN_BATCH).await,
            "ack" => self.ack(op).await,
            other => Completion::fail(format!("rabbitmq queue: unknown operation {other:?}")),
        }
    }

    async fn close(&mut self) {
        // Closing the connection requeues every delivery this client still holds.
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            self.conn.close(200, "faultline: client closed".into()),
        )
        .await;
        self.requeuer.abort();
        self.held.lock().expect("held deliveries lock").clear();
    }
}
