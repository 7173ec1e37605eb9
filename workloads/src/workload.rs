//! Workloads: what a test does to a system, which guarantee that tests, and which checkers judge
//! the history.
//!
//! A [`Workload`] bundles an endless main generator (the controller bounds it with a rate and a
//! time limit), an optional final generator (run after the faults are healed: final reads,
//! drains) and the checkers with their options. [`build_builtin`] pairs a workload with a
//! shipped system's client factory; [`Builtin::workloads`] lists the pairs that exist, for
//! `--help` and plan validation.
//!
//! Register workloads rotate keys the way Jepsen's independent generator does: a few keys are in
//! use at once, each gets a bounded number of operations and is then replaced by a fresh key.
//! That keeps each key's history small enough for the linearizability search while the run as a
//! whole stays long, and the checker checks keys independently (P-compositionality).

use crate::builtin::Builtin;
use crate::client::ClientFactory;
use crate::clients::etcd::{EtcdFactory, ReadMode};
use crate::clients::memory::{MemoryQueueFactory, MemoryRegisterFactory, QueueBug, RegisterBug};
use crate::clients::nats::NatsFactory;
use crate::clients::postgres::{IdempotencyMode, PostgresFactory, PostgresWorkload};
use crate::clients::rabbitmq::{QueueType, RabbitMqFactory};
use crate::clients::redis::{RedisFactory, RedisWorkload, Routing};
use crate::clients::redis_stream::RedisStreamFactory;
use crate::clients::zookeeper::ZooKeeperFactory;
use crate::generator::{self, Gen, Rng};
use crate::op::Invocation;
use crate::stall::{option_count, option_duration, option_guarantee, option_probability, Stall};
use checkers::CheckOptions;
use rand::RngExt;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A checker to run on the history, with its options.
#[derive(Debug, Clone)]
pub struct CheckerSpec {
    /// A name `checkers::by_name` accepts.
    pub name: String,
    pub options: CheckOptions,
}

/// See the module documentation.
pub struct Workload {
    pub name: String,
    /// The guarantee under test, in a sentence for the report.
    pub guarantee: String,
    pub checkers: Vec<CheckerSpec>,
    /// The main phase's operations; endless unless the workload says otherwise.
    pub generator: Gen,
    /// Run after faults heal (final reads, drains); bounded on its own.
    pub final_generator: Option<Gen>,
}

impl std::fmt::Debug for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workload")
            .field("name", &self.name)
            .field("guarantee", &self.guarantee)
            .field("checkers", &self.checkers)
            .field("final_generator", &self.final_generator.is_some())
            .finish_non_exhaustive()
    }
}

/// The main generator bounded by a rate (ops per second overall, `None` = as fast as the
/// workers go) and a time limit.
pub fn paced(gen: Gen, rate_ops_per_s: Option<f64>, limit: Duration) -> Gen {
    let gen = match rate_ops_per_s {
        Some(r) => generator::rate(r, gen),
        None => gen,
    };
    generator::time_limit(limit, gen)
}

/// Options of the register workloads.
#[derive(Debug, Clone)]
pub struct RegisterOptions {
    /// Keys in use at once.
    pub keys_in_flight: usize,
    /// Operations per key before it is replaced by a fresh one.
    pub ops_per_key: u64,
    /// Values written are drawn from 0..value_count (few values make CAS succeed sometimes).
    pub value_count: i64,
    /// Include `cas` operations.
    pub cas: bool,
}

/// The `[client]` options of the register workloads (`register`, `cas-register`) on every
/// system but the testbed, whose workloads read their own.
pub const REGISTER_CLIENT_OPTIONS: &[&str] = &["ops-per-key"];

/// Bound on `ops-per-key`: a key's operations are one linearizability search, whose cost grows
/// fast with its length.
pub const OPS_PER_KEY_MAX: u64 = 100_000;

impl RegisterOptions {
    /// `self` with a plan's `[client]` table applied; an error names the option. `ops-per-key`
    /// lets a key live through a failover and its heal (a lost write is only seen by later
    /// reads of the same key), at the price of a longer search per key.
    pub fn with_table(
        &self,
        table: &std::collections::BTreeMap<String, Value>,
    ) -> Result<RegisterOptions, String> {
        let mut o = self.clone();
        for (key, v) in table {
            let set = match key.as_str() {
                "ops-per-key" => option_count(v).and_then(|n| match n {
                    1..=OPS_PER_KEY_MAX => {
                        o.ops_per_key = n;
                        Ok(())
                    }
                    _ => Err(format!("expected 1 to {OPS_PER_KEY_MAX}, not {n}")),
                }),
                _ => Err(format!(
                    "unknown option for the register workloads; known: {}",
                    REGISTER_CLIENT_OPTIONS.join(", ")
                )),
            };
            set.map_err(|e| format!("client.{key}: {e}"))?;
        }
        Ok(o)
    }
}

impl Default for RegisterOptions {
    fn default() -> Self {
        RegisterOptions {
            keys_in_flight: 3,
            ops_per_key: 200,
            value_count: 5,
            cas: true,
        }
    }
}

struct KeyRotation {
    slots: Vec<(u64, u64)>,
    next_key: u64,
    ops_per_key: u64,
}

impl KeyRotation {
    fn pick(&mut self, rng: &mut Rng) -> String {
        let i = rng.random_range(0..self.slots.len());
        let (key, left) = &mut self.slots[i];
        let name = format!("r{key}");
        *left -= 1;
        if *left == 0 {
            self.slots[i] = (self.next_key, self.ops_per_key);
            self.next_key += 1;
        }
        name
    }
}

/// Read, write and (optionally) CAS on rotating keys, checked for linearizability with the
/// cas-register model. Ops: `read` (value null; ok value = the value read or null), `write`
/// (value v), `cas` (value [old, new]; ok = swapped, fail = the comparison failed).
pub fn register(opts: &RegisterOptions) -> Workload {
    assert!(opts.keys_in_flight > 0 && opts.ops_per_key > 0 && opts.value_count > 0);
    let mut keys = KeyRotation {
        slots: (0..opts.keys_in_flight as u64)
            .map(|k| (k, opts.ops_per_key))
            .collect(),
        next_key: opts.keys_in_flight as u64,
        ops_per_key: opts.ops_per_key,
    };
    let values = opts.value_count;
    let cas = opts.cas;
    let gen = generator::from_fn(move |rng| {
        let key = keys.pick(rng);
        let kinds = if cas { 3 } else { 2 };
        let op = match rng.random_range(0..kinds) {
            0 => Invocation::new("read", Value::Null),
            1 => Invocation::new("write", json!(rng.random_range(0..values))),
            _ => Invocation::new(
                "cas",
                json!([rng.random_range(0..values), rng.random_range(0..values)]),
            ),
        };
        op.with_key(key)
    });
    let name = if cas { "cas-register" } else { "register" };
    Workload {
        name: name.into(),
        guarantee: "linearizability: every read sees the latest completed write or CAS, as if each operation took effect at one instant between its invocation and completion".into(),
        checkers: vec![CheckerSpec {
            name: "linearizable".into(),
            options: CheckOptions {
                model: Some("cas-register".into()),
                ..CheckOptions::default()
            },
        }],
        generator: gen,
        final_generator: None,
    }
}

/// Options of the queue workload.
#[derive(Debug, Clone)]
pub struct QueueOptions {
    /// `at-most-once`, `at-least-once` or `exactly-once`: what the system promises.
    pub guarantee: String,
    /// Bound on final drains (each drain returns what was left; the drain stops at `[]`).
    pub drain_attempts_max: u64,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            guarantee: "exactly-once".into(),
            drain_attempts_max: 100,
        }
    }
}

/// Produce unique ids and consume them, then drain until empty; checked by `delivery`.
pub fn queue(opts: &QueueOptions) -> Workload {
    let mut next_id = 0u64;
    let produce = generator::from_fn(move |_| {
        let id = next_id;
        next_id += 1;
        Invocation::new("produce", json!({ "id": id }))
    });
    let consume = generator::repeat(Invocation::new("consume", Value::Null));
    let gen = generator::mix(vec![produce, consume]);
    let drain = generator::until(
        opts.drain_attempts_max,
        generator::repeat(Invocation::new("drain", Value::Null)),
        |c| c.kind == checkers::EventType::Ok && c.value.as_array().is_some_and(Vec::is_empty),
    );
    // One thread drains, so "[]" means empty after every other drain finished.
    let final_gen = generator::reserve(vec![(1, drain)], generator::nothing());
    Workload {
        name: "queue".into(),
        guarantee: format!(
            "{} delivery: every acknowledged message is delivered, none twice, none invented",
            opts.guarantee
        ),
        checkers: vec![CheckerSpec {
            name: "delivery".into(),
            options: CheckOptions {
                guarantee: Some(opts.guarantee.clone()),
                ..CheckOptions::default()
            },
        }],
        generator: gen,
        final_generator: Some(final_gen),
    }
}

/// Acknowledges what was consumed: after a `consume` or `drain` on a thread returns deliveries,
/// that thread's next operations are `ack {"id": N}` of each, before it takes anything else from
/// `inner`. A thread whose operation ended `info` drops its pending acks: its new process has a
/// new client that does not hold those deliveries (the broker redelivers them after its ack
/// wait).
struct Acking {
    inner: Gen,
    pending: std::collections::BTreeMap<usize, std::collections::VecDeque<Value>>,
}

impl generator::Generator for Acking {
    fn next(&mut self, ctx: &mut generator::Ctx<'_>) -> generator::Next {
        let mut free = ctx.free.to_vec();
        free.sort_unstable();
        for t in free {
            if let Some(id) = self.pending.get_mut(&t).and_then(|q| q.pop_front()) {
                return generator::Next::Op(generator::Planned {
                    thread: t,
                    at_ns: ctx.time_ns,
                    op: Invocation::new("ack", json!({ "id": id })),
                });
            }
        }
        match self.inner.next(ctx) {
            generator::Next::Done if self.pending.values().any(|q| !q.is_empty()) => {
                generator::Next::Pending { wake_ns: None }
            }
            other => other,
        }
    }

    fn update(&mut self, done: &generator::Completed<'_>) {
        let c = done.completion;
        if c.kind == checkers::EventType::Info {
            self.pending.remove(&done.thread);
        } else if c.kind == checkers::EventType::Ok
            && matches!(done.op.f.as_str(), "consume" | "drain")
        {
            if let Some(deliveries) = c.value.as_array() {
                let q = self.pending.entry(done.thread).or_default();
                q.extend(deliveries.iter().filter_map(|d| d.get("id").cloned()));
            }
        }
        self.inner.update(done);
    }
}

/// `inner` with every delivery acknowledged by the thread that received it, before that thread
/// takes anything else; pending acks are dropped when the thread's process is retired.
pub fn acking(inner: Gen) -> Gen {
    Box::new(Acking {
        inner,
        pending: Default::default(),
    })
}

/// The queue workload for brokers with explicit acks: produce, consume and ack what was
/// consumed; at the end wait `ack_wait` (so unacked deliveries come back), then drain (and ack)
/// until a drain is empty. Checked by `delivery`.
pub fn queue_with_acks(opts: &QueueOptions, ack_wait: Duration) -> Workload {
    let mut w = queue(opts);
    w.name = "queue".into();
    w.generator = acking(w.generator);
    let drain = generator::until(
        opts.drain_attempts_max,
        generator::repeat(Invocation::new("drain", Value::Null)),
        |c| c.kind == checkers::EventType::Ok && c.value.as_array().is_some_and(Vec::is_empty),
    );
    w.final_generator = Some(generator::phases(vec![
        generator::sleep(ack_wait + Duration::from_millis(500)),
        acking(generator::reserve(vec![(1, drain)], generator::nothing())),
    ]));
    w
}

/// Options of the idempotency workload.
#[derive(Debug, Clone)]
pub struct IdempotencyOptions {
    /// Identical requests sent per idempotency key, by different processes at once.
    pub requests_per_key: u64,
}

impl Default for IdempotencyOptions {
    fn default() -> Self {
        IdempotencyOptions {
            requests_per_key: 5,
        }
    }
}

/// Identical requests per idempotency key, concurrently, then one effects read per key;
/// checked by `idempotency` (one effect per key, equal responses).
pub fn idempotency(opts: &IdempotencyOptions) -> Workload {
    assert!(opts.requests_per_key > 0);
    let issued_keys = Arc::new(AtomicU64::new(0));
    let issued = Arc::clone(&issued_keys);
    let per_key = opts.requests_per_key;
    let mut n = 0u64;
    let gen = generator::from_fn(move |_| {
        let k = n / per_key;
        n += 1;
        issued.store(k + 1, Ordering::Relaxed);
        Invocation::new("request", json!({ "request": k })).with_key(format!("idem-{k}"))
    });
    let final_gen = generator::deferred(move || {
        let keys = issued_keys.load(Ordering::Relaxed);
        generator::seq(
            (0..keys)
                .map(|k| {
                    let read =
                        Invocation::new("effects", Value::Null).with_key(format!("idem-{k}"));
                    generator::until_ok(FINAL_ATTEMPTS_MAX, generator::repeat(read))
                })
                .collect(),
        )
    });
    Workload {
        name: "idempotency".into(),
        guarantee: "exactly-once effect per idempotency key, and every response to one key equal"
            .into(),
        checkers: vec![CheckerSpec {
            name: "idempotency".into(),
            options: CheckOptions::default(),
        }],
        generator: gen,
        final_generator: Some(final_gen),
    }
}

/// Bound on final reads of one key (each retried until ok).
const FINAL_ATTEMPTS_MAX: u64 = 10;

/// Options of the versioned-append workload.
#[derive(Debug, Clone)]
pub struct VersionedAppendOptions {
    /// Streams written at once.
    pub streams: usize,
    /// Share of reads among operations, in percent (reads refresh the writers' known version).
    pub read_percent: u32,
}

impl Default for VersionedAppendOptions {
    fn default() -> Self {
        VersionedAppendOptions {
            streams: 4,
            read_percent: 20,
        }
    }
}

/// Appends at an expected version: each writer uses the latest version it has seen (from
/// completed appends and reads), so concurrent writers race for the same version; the generator
/// learns from completions through [`generator::Generator::update`].
struct VersionedAppendGen {
    streams: usize,
    read_percent: u32,
    known: Vec<u64>,
    next_event: u64,
}

impl generator::Generator for VersionedAppendGen {
    fn next(&mut self, ctx: &mut generator::Ctx<'_>) -> generator::Next {
        let Some(thread) = ctx.some_free_thread() else {
            return generator::Next::Pending { wake_ns: None };
        };
        let s = ctx.rng.random_range(0..self.streams);
        let op = if ctx.rng.random_range(0..100) < self.read_percent {
            Invocation::new("read", Value::Null)
        } else {
            self.next_event += 1;
            Invocation::new(
                "append",
                json!({ "expected": self.known[s], "event": self.next_event }),
            )
        };
        generator::Next::Op(generator::Planned {
            thread,
            at_ns: ctx.time_ns,
            op: op.with_key(format!("stream-{s}")),
        })
    }

    fn update(&mut self, done: &generator::Completed<'_>) {
        if done.completion.kind != checkers::EventType::Ok {
            return;
        }
        let Some(s) = done
            .op
            .key
            .as_deref()
            .and_then(|k| k.strip_prefix("stream-"))
            .and_then(|i| i.parse::<usize>().ok())
            .filter(|i| *i < self.streams)
        else {
            return;
        };
        let seen = match done.op.f.as_str() {
            "append" => done
                .op
                .value
                .get("expected")
                .and_then(Value::as_u64)
                .map(|v| v + 1),
            "read" => done.completion.value.as_array().map(|a| a.len() as u64),
            _ => None,
        };
        if let Some(v) = seen {
            self.known[s] = self.known[s].max(v);
        }
    }
}

/// Writers append events at the version they believe current; checked by `versioned-append`
/// (one winner per version, gap-free streams, nothing acknowledged lost).
pub fn versioned_append(opts: &VersionedAppendOptions) -> Workload {
    assert!(opts.streams > 0 && opts.read_percent <= 100);
    let gen = Box::new(VersionedAppendGen {
        streams: opts.streams,
        read_percent: opts.read_percent,
        known: vec![0; opts.streams],
        next_event: 0,
    });
    let final_gen = generator::seq(
        (0..opts.streams)
            .map(|s| {
                let read = Invocation::new("read", Value::Null).with_key(format!("stream-{s}"));
                generator::until_ok(FINAL_ATTEMPTS_MAX, generator::repeat(read))
            })
            .collect(),
    );
    Workload {
        name: "versioned-append".into(),
        guarantee: "optimistic concurrency: exactly one append wins each version, streams stay gap-free, acknowledged appends stay".into(),
        checkers: vec![CheckerSpec {
            name: "versioned-append".into(),
            options: CheckOptions::default(),
        }],
        generator: gen,
        final_generator: Some(final_gen),
    }
}

/// Adds of unique elements with some reads, then a final read; checked by `set`.
pub fn set() -> Workload {
    let mut next = 0u64;
    let adds = generator::from_fn(move |_| {
        next += 1;
        Invocation::new("add", json!(next)).with_key("set")
    });
    let read = Invocation::new("read", Value::Null).with_key("set");
    let gen = generator::mix_weighted(vec![(9, adds), (1, generator::repeat(read.clone()))]);
    let final_gen = generator::until_ok(FINAL_ATTEMPTS_MAX, generator::repeat(read));
    Workload {
        name: "set".into(),
        guarantee: "no acknowledged add is lost; every element read was added".into(),
        checkers: vec![CheckerSpec {
            name: "set".into(),
            options: CheckOptions::default(),
        }],
        generator: gen,
        final_generator: Some(final_gen),
    }
}

/// Options for [`build`], from the command line or a plan.
#[derive(Debug, Clone)]
pub struct WorkloadOptions {
    /// etcd: how reads are served.
    pub read_mode: ReadMode,
    pub register: RegisterOptions,
    pub queue: QueueOptions,
    pub idempotency: IdempotencyOptions,
    pub versioned_append: VersionedAppendOptions,
    /// NATS: how long the server waits for an ack before redelivering.
    pub nats_ack_wait: Duration,
    /// NATS: the delivery guarantee checked (redelivery after the ack wait makes duplicates
    /// legitimate, so the default is `at-least-once`).
    pub nats_guarantee: String,
    /// Seeds the bugs of the in-memory systems.
    pub seed: u64,
    /// Workload tuning by name (a plan's `[client]` table): the testbed's workloads
    /// (`clients::testbed::TestbedOptions::apply`), the register workloads
    /// ([`RegisterOptions::with_table`]) and the broker queues with acks
    /// ([`AckedQueueOptions`]) read it; any other workload refuses it.
    pub client: std::collections::BTreeMap<String, serde_json::Value>,
}

impl Default for WorkloadOptions {
    fn default() -> Self {
        WorkloadOptions {
            read_mode: ReadMode::Linearizable,
            register: RegisterOptions::default(),
            queue: QueueOptions::default(),
            idempotency: IdempotencyOptions::default(),
            versioned_append: VersionedAppendOptions::default(),
            nats_ack_wait: Duration::from_secs(5),
            nats_guarantee: "at-least-once".into(),
            seed: 0,
            client: Default::default(),
        }
    }
}

/// Client options of the broker workloads with acks (NATS JetStream queue, RabbitMQ queue,
/// Redis stream), from a plan's `[client]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct AckedQueueOptions {
    /// Acks that wait first (docs/scenarios.md B1: a consumer held past the broker's ack wait).
    pub ack_stall: Stall,
    /// NATS only: the consumer's ack wait (default 5 s).
    pub ack_wait: Option<Duration>,
    /// The guarantee the delivery checker judges against (default per system).
    pub guarantee: Option<String>,
    /// RabbitMQ only: quorum (default) or classic mirrored.
    pub queue_type: QueueType,
}

/// The `[client]` options of [`AckedQueueOptions`], per (system, workload).
pub const ACKED_QUEUE_OPTIONS: &[(Builtin, &str, &[&str])] = &[
    (
        Builtin::Nats,
        "queue",
        &[
            "ack-stall-probability",
            "ack-stall",
            "ack-wait",
            "guarantee",
        ],
    ),
    (
        Builtin::RabbitMq,
        "queue",
        &[
            "ack-stall-probability",
            "ack-stall",
            "guarantee",
            "queue-type",
        ],
    ),
    (
        Builtin::Redis,
        "stream",
        &["ack-stall-probability", "ack-stall", "guarantee"],
    ),
];

impl AckedQueueOptions {
    /// No stalls, the system's ack wait and guarantee.
    pub const NONE: AckedQueueOptions = AckedQueueOptions {
        ack_stall: Stall::NONE,
        ack_wait: None,
        guarantee: None,
        queue_type: QueueType::Quorum,
    };

    /// Reads a `[client]` table; an error names the option and what the workload accepts.
    pub fn from_table(
        system: Builtin,
        workload: &str,
        table: &std::collections::BTreeMap<String, Value>,
    ) -> Result<AckedQueueOptions, String> {
        let mut o = AckedQueueOptions::NONE;
        let Some((key, _)) = table.iter().next() else {
            return Ok(o);
        };
        let listed = ACKED_QUEUE_OPTIONS
            .iter()
            .find(|(s, w, _)| *s == system && *w == workload);
        let system = system.name();
        let Some((_, _, known)) = listed else {
            return Err(format!(
                "client.{key}: {system:?}'s {workload:?} workload takes no client options (the testbed's workloads, the register workloads, NATS and RabbitMQ queues and the Redis stream do)"
            ));
        };
        for (key, v) in table {
            let set = match key.as_str() {
                k if !known.contains(&k) => Err(format!(
                    "unknown option for {system:?}'s {workload:?} workload; known: {}",
                    known.join(", ")
                )),
                "ack-stall-probability" => {
                    option_probability(v).map(|p| o.ack_stall.probability = p)
                }
                "ack-stall" => option_duration(v).map(|d| o.ack_stall.duration = d),
                "ack-wait" => option_duration(v).map(|d| o.ack_wait = Some(d)),
                "guarantee" => option_guarantee(v).map(|g| o.guarantee = Some(g)),
                "queue-type" => v
                    .as_str()
                    .ok_or_else(|| {
                        format!("expected a string, one of {}", QueueType::NAMES.join(", "))
                    })
                    .and_then(QueueType::parse)
                    .map(|t| o.queue_type = t),
                // A listed option without a reader is a faultline bug, said as such rather than
                // a panic (the tests set every listed option).
                other => Err(format!(
                    "faultline lists {other:?} for {system:?}'s {workload:?} workload but does not read it"
                )),
            };
            set.map_err(|e| format!("client.{key}: {e}"))?;
        }
        if o.ack_stall.probability > 0.0 && o.ack_stall.duration.is_zero() {
            return Err("client.ack-stall-probability: set client.ack-stall too (how long a stalled ack waits)".into());
        }
        Ok(o)
    }

    fn guarantee_or(&self, default: &str) -> String {
        self.guarantee
            .clone()
            .unwrap_or_else(|| default.to_string())
    }
}

/// RabbitMQ has no ack wait of its own; its client requeues deliveries held unacked this long
/// (see `clients::rabbitmq`), and the final drain waits as long first.
const RABBITMQ_REQUEUE_WAIT: Duration = Duration::from_secs(2);

/// Redis streams: a pending entry idle this long may be claimed by another consumer; the final
/// drain waits as long first.
const REDIS_CLAIM_IDLE: Duration = Duration::from_secs(2);

/// Redis's `[client] routing` (`follow-primary` or `node-bound`, every Redis workload; see
/// `clients::redis`), and the rest of the table for the workload's own options.
fn redis_routing(
    system: Builtin,
    table: &std::collections::BTreeMap<String, Value>,
) -> Result<(Routing, std::collections::BTreeMap<String, Value>), String> {
    let mut rest = table.clone();
    let Some(v) = rest.remove("routing") else {
        return Ok((Routing::default(), rest));
    };
    if system != Builtin::Redis {
        return Err(format!(
            "client.routing: only Redis clients take it ({:?} does not)",
            system.name()
        ));
    }
    let routing = v
        .as_str()
        .ok_or_else(|| format!("expected a string, one of {}", Routing::NAMES.join(", ")))
        .and_then(Routing::parse)
        .map_err(|e| format!("client.routing: {e}"))?;
    Ok((routing, rest))
}

/// The workload `workload` against the built-in system named `system`, with its client factory;
/// an error names what exists.
pub fn build(
    system: &str,
    workload: &str,
    opts: &WorkloadOptions,
) -> Result<(Workload, Arc<dyn ClientFactory>), String> {
    let Some(system) = Builtin::parse(system) else {
        return Err(format!(
            "unknown system {system:?}; expected one of: {}",
            Builtin::NAMES.join(", ")
        ));
    };
    build_builtin(system, workload, opts)
}

/// What a shipped system's client factory is made from: the `[client]` options its workloads
/// share, read once for every system but the testbed (which reads its own).
struct ClientParts {
    routing: Routing,
    acked: AckedQueueOptions,
    register: RegisterOptions,
    txn: crate::txn::TxnOptions,
}

impl ClientParts {
    fn read(system: Builtin, workload: &str, opts: &WorkloadOptions) -> Result<Self, String> {
        let (routing, client) = redis_routing(system, &opts.client)?;
        let mut txn = crate::txn::TxnOptions::default();
        let (acked, register) = match workload {
            "register" | "cas-register" => {
                (AckedQueueOptions::NONE, opts.register.with_table(&client)?)
            }
            "list-append" | "rw-register" => {
                txn = crate::txn::TxnOptions::with_table(&client)?;
                (AckedQueueOptions::NONE, opts.register.clone())
            }
            _ => (
                AckedQueueOptions::from_table(system, workload, &client)?,
                opts.register.clone(),
            ),
        };
        Ok(ClientParts {
            routing,
            acked,
            register,
            txn,
        })
    }
}

/// Makes a shipped system's client factory for a workload it runs.
type MakeFactory = fn(&ClientParts, &str, &WorkloadOptions) -> Arc<dyn ClientFactory>;

/// The workload `workload` against `system`, with its client factory; an error names what
/// exists.
pub fn build_builtin(
    system: Builtin,
    workload: &str,
    opts: &WorkloadOptions,
) -> Result<(Workload, Arc<dyn ClientFactory>), String> {
    if !system.workloads().contains(&workload) {
        return Err(system.no_workload(workload));
    }
    let make: MakeFactory = match system {
        Builtin::Testbed => return crate::clients::testbed::build(workload, opts),
        Builtin::Etcd => |_, _, opts| Arc::new(EtcdFactory::new(opts.read_mode)),
        Builtin::Redis => |p, workload, opts| match workload {
            "stream" => Arc::new(RedisStreamFactory {
                claim_idle: REDIS_CLAIM_IDLE,
                ack_stall: p.acked.ack_stall,
                seed: opts.seed,
                routing: p.routing,
                ..RedisStreamFactory::new()
            }),
            "queue" => Arc::new(RedisFactory::new(RedisWorkload::Queue).with_routing(p.routing)),
            _ => Arc::new(RedisFactory::new(RedisWorkload::Register).with_routing(p.routing)),
        },
        Builtin::ZooKeeper => |_, _, _| Arc::new(ZooKeeperFactory::new()),
        Builtin::RabbitMq => |p, _, opts| {
            Arc::new(
                RabbitMqFactory {
                    requeue_after: RABBITMQ_REQUEUE_WAIT,
                    ack_stall: p.acked.ack_stall,
                    seed: opts.seed,
                    ..RabbitMqFactory::new()
                }
                .with_queue_type(p.acked.queue_type),
            )
        },
        Builtin::Nats => |p, _, opts| {
            Arc::new(NatsFactory {
                ack_wait: p.acked.ack_wait.unwrap_or(opts.nats_ack_wait),
                ack_stall: p.acked.ack_stall,
                seed: opts.seed,
                ..NatsFactory::new()
            })
        },
        Builtin::Postgres => |p, workload, _| {
            Arc::new(PostgresFactory::new(match workload {
                "idempotency" => PostgresWorkload::Idempotency(IdempotencyMode::UniqueConstraint),
                "versioned-append" => PostgresWorkload::VersionedAppend,
                "list-append" => PostgresWorkload::ListAppend(p.txn.isolation),
                "rw-register" => PostgresWorkload::RwRegister(p.txn.isolation),
                _ => PostgresWorkload::Set,
            }))
        },
        Builtin::PostgresCheckThenInsert => |_, _, _| {
            Arc::new(PostgresFactory::new(PostgresWorkload::Idempotency(
                IdempotencyMode::CheckThenInsert,
            )))
        },
        Builtin::Memory => |_, workload, _| match workload {
            "queue" => Arc::new(MemoryQueueFactory::new()),
            _ => Arc::new(MemoryRegisterFactory::new()),
        },
        Builtin::MemoryStale => |_, _, opts| {
            Arc::new(MemoryRegisterFactory::with_bug(
                RegisterBug::StaleReads { probability: 0.2 },
                opts.seed,
            ))
        },
        Builtin::MemoryLossy => |_, _, opts| {
            Arc::new(MemoryQueueFactory::with_bug(
                QueueBug::LoseProduced { probability: 0.01 },
                opts.seed,
            ))
        },
    };
    let p = ClientParts::read(system, workload, opts)?;
    let acked = &p.acked;
    let w = match workload {
        "register" => register(&RegisterOptions {
            cas: false,
            ..p.register.clone()
        }),
        "cas-register" => register(&RegisterOptions {
            cas: true,
            ..p.register.clone()
        }),
        "queue" if system == Builtin::Nats => queue_with_acks(
            &QueueOptions {
                guarantee: acked.guarantee_or(&opts.nats_guarantee),
                ..opts.queue.clone()
            },
            acked.ack_wait.unwrap_or(opts.nats_ack_wait),
        ),
        // RabbitMQ redelivers what a closed channel held unacked: duplicates are legitimate.
        "queue" if system == Builtin::RabbitMq => queue_with_acks(
            &QueueOptions {
                guarantee: acked.guarantee_or("at-least-once"),
                ..opts.queue.clone()
            },
            RABBITMQ_REQUEUE_WAIT,
        ),
        "queue" => queue(&opts.queue),
        // Claims redeliver what a stalled consumer held: duplicates are legitimate.
        "stream" => {
            let mut w = queue_with_acks(
                &QueueOptions {
                    guarantee: acked.guarantee_or("at-least-once"),
                    ..opts.queue.clone()
                },
                REDIS_CLAIM_IDLE,
            );
            w.name = "stream".into();
            w
        }
        "idempotency" => idempotency(&opts.idempotency),
        "versioned-append" => versioned_append(&opts.versioned_append),
        "set" => set(),
        "list-append" => crate::txn::list_append(&p.txn),
        "rw-register" => crate::txn::rw_register(&p.txn),
        // Listed for the system but built by nobody: said as a missing workload, and
        // `every_listed_workload_builds` fails on it.
        other => return Err(system.no_workload(other)),
    };
    let factory = make(&p, workload, opts);
    Ok((w, factory))
}

/// The workloads a client in any language (`clients::external`) can drive: the operation
/// vocabulary of each is in `docs/history.md`, and `docs/your-system.md` shows the messages.
pub const EXTERNAL_WORKLOADS: &[&str] = &[
    "register",
    "cas-register",
    "queue",
    "set",
    "idempotency",
    "versioned-append",
];

/// The `[client]` options of the queue workload for a client in any language: `ack-wait`
/// turns acks on (the system redelivers what was not acked within it; the final drain waits as
/// long first), `guarantee` says what the delivery checker holds the system to.
pub const EXTERNAL_QUEUE_OPTIONS: &[&str] = &["ack-wait", "guarantee"];

/// The workload `workload` for a client in any language, with a plan's `[client]` options; an
/// error names what exists.
pub fn external_workload(workload: &str, opts: &WorkloadOptions) -> Result<Workload, String> {
    let no_options = || match opts.client.keys().next() {
        Some(k) => Err(format!(
            "client.{k}: the {workload:?} workload takes no client options"
        )),
        None => Ok(()),
    };
    Ok(match workload {
        "register" | "cas-register" => register(&RegisterOptions {
            cas: workload == "cas-register",
            ..opts.register.with_table(&opts.client)?
        }),
        "queue" => {
            let mut ack_wait = None;
            let mut guarantee = None;
            for (key, v) in &opts.client {
                let set = match key.as_str() {
                    "ack-wait" => option_duration(v).map(|d| ack_wait = Some(d)),
                    "guarantee" => option_guarantee(v).map(|g| guarantee = Some(g)),
                    _ => Err(format!(
                        "unknown option for the queue workload; known: {}",
                        EXTERNAL_QUEUE_OPTIONS.join(", ")
                    )),
                };
                set.map_err(|e| format!("client.{key}: {e}"))?;
            }
            match ack_wait {
                Some(wait) => queue_with_acks(
                    &QueueOptions {
                        guarantee: guarantee.unwrap_or_else(|| "at-least-once".into()),
                        ..opts.queue.clone()
                    },
                    wait,
                ),
                None => queue(&QueueOptions {
                    guarantee: guarantee.unwrap_or_else(|| opts.queue.guarantee.clone()),
                    ..opts.queue.clone()
                }),
            }
        }
        "set" => no_options().map(|_| set())?,
        "idempotency" => no_options().map(|_| idempotency(&opts.idempotency))?,
        "versioned-append" => no_options().map(|_| versioned_append(&opts.versioned_append))?,
        other => {
            return Err(format!(
                "a client in any language has no workload {other:?}; it has: {}",
                EXTERNAL_WORKLOADS.join(", ")
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_workload_builds() {
        for system in Builtin::ALL {
            for workload in system.workloads() {
                let built = build_builtin(system, workload, &WorkloadOptions::default());
                let (w, _) = built.unwrap_or_else(|e| panic!("{system:?} {workload}: {e}"));
                assert!(!w.checkers.is_empty(), "{system:?} {workload}");
            }
        }
    }

    #[test]
    fn unknown_systems_and_workloads_are_errors_naming_what_exists() {
        let e = build("cassandra", "register", &WorkloadOptions::default()).err();
        assert_eq!(
            e.as_deref(),
            Some("unknown system \"cassandra\"; expected one of: etcd, redis, nats, rabbitmq, zookeeper, postgres, postgres-check-then-insert, testbed, memory, memory-stale, memory-lossy")
        );
        let e = build("memory-lossy", "register", &WorkloadOptions::default()).err();
        assert_eq!(
            e.as_deref(),
            Some("system \"memory-lossy\" has no workload \"register\"; it has: queue")
        );
        let e = build("testbed", "stream", &WorkloadOptions::default()).err();
        assert!(e
            .unwrap()
            .starts_with("system \"testbed\" has no workload \"stream\""));
    }

    #[test]
    fn the_testbed_reads_its_own_client_options_not_redis_routing() {
        let opts = WorkloadOptions {
            client: [("routing".to_string(), json!("node-bound"))].into(),
            ..WorkloadOptions::default()
        };
        let e = build("testbed", "register", &opts).err().unwrap();
        assert!(!e.contains("only Redis") && e.contains("routing"), "{e}");
    }
}
