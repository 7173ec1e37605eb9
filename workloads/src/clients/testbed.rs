//! The calibrated testbed (`faultline-testbed`, the `testbed` crate): its client and one
//! workload per scenario family.
//!
//! The testbed speaks JSON over HTTP: `POST /path` with a JSON object, `200` with the result, or
//! an error object whose `definite` flag says whether the request certainly had no effect. That
//! flag is the whole mapping onto the history: `200` is `ok`, an error with `definite: true` (or
//! a connection that was never made) is `fail`, anything else is `info`. Reads (`read`,
//! `effects`, `fetch-offset`, `dead-letter`) are `fail` on any error, since a read has no effect.
//! One exception: the cas-register model reads a failed `cas` as "the register held another
//! value", so a CAS is `fail` only when its comparison failed, and `info` when it was refused
//! for another reason.
//!
//! Which endpoint an operation goes to follows from its `f` and, where `f` is shared between
//! checkers' vocabularies (`read`, `effects`, `command`, `produce`), from the [`Family`] the
//! factory was built for. Every workload emits exactly `docs/history.md`'s vocabulary:
//!
//! | workload | ops | checker | scenarios |
//! |---|---|---|---|
//! | `register`, `cas-register` | write, cas on the thread's own key; read any key | linearizable | B2, L4, L7 |
//! | `queue` | produce, consume, ack, commit-offset, fetch-offset; drain | delivery | B1, B6, L2, L9 |
//! | `retry` | produce, consume, nack (always); drain, dead-letter | delivery `--max-retries` | B3 |
//! | `outbox` | produce (= outbox commit), consume, ack; drain | delivery | B4, B7, I8 |
//! | `idempotency` | request, effects | idempotency | I1 |
//! | `members` | add (a small pool of members, concurrently), read | set | I2 |
//! | `leave` | command (`leave:M`, concurrently), effects | idempotency | I4 |
//! | `unique` | create (each id several times, concurrently) | unique | B5 |
//! | `versioned-append` | append at an expected version, read | versioned-append | I6 |
//! | `lease` | command (acquire + complete a task), effects | idempotency | I7 |
//!
//! Client-side faults live here too, as the scenarios need them: a consumer *stall* (sleep
//! between receiving a message and acknowledging it, and between acquiring a task lease and
//! completing it), decided by a pure function of (seed, process, operation number) so that a
//! rerun stalls the same operations; and consumer-group *churn* (a consumer leaves and rejoins
//! under a new name every few consumes), which exercises rebalancing.

use crate::client::{Client, ClientFactory};
use crate::generator::{self, Completed, Ctx, Gen, Generator, Next, Planned};
use crate::op::{Completion, Invocation};
use crate::workload::{self, CheckerSpec, Workload, WorkloadOptions};
use anyhow::Context as _;
use async_trait::async_trait;
use checkers::{CheckOptions, EventType};
use rand::RngExt;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The system's name in the catalog.
pub const SYSTEM: &str = "testbed";

/// Workloads the testbed supports, in the order `--help` lists them.
pub const WORKLOADS: &[&str] = &[
    "register",
    "cas-register",
    "queue",
    "retry",
    "outbox",
    "idempotency",
    "members",
    "leave",
    "unique",
    "versioned-append",
    "lease",
];

/// Bound on deliveries a client remembers for acks that name only an id.
const REMEMBERED_DELIVERIES_MAX: usize = 10_000;
/// Bound on a drain's wait for the group to settle (others expired, leases run out).
const DRAIN_POLL: Duration = Duration::from_millis(100);
/// Bound on final reads of one key (each retried until ok).
const FINAL_ATTEMPTS_MAX: u64 = 10;

/// Which part of the testbed a client talks to, where the op name alone does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Register,
    Queue,
    Outbox,
    Idempotency,
    Members,
    Leave,
    Unique,
    Stream,
    Lease,
}

pub use crate::stall::Stall;
use crate::stall::{option_count, option_duration, option_guarantee, option_probability};

/// Options of the testbed workloads; they must agree with the testbed's own flags where both
/// have one (`--partitions`, `--max-retries`).
#[derive(Debug, Clone)]
pub struct TestbedOptions {
    /// Seeds the stall decisions.
    pub seed: u64,
    /// `queue` workload's topic (the `outbox` workload always uses `outbox`).
    pub topic: String,
    /// Consumer group of the queue workloads.
    pub group: String,
    /// The testbed's `--partitions`.
    pub partitions: u32,
    /// The testbed's `--max-retries`; the `retry` workload's checker uses it.
    pub max_retries: u32,
    /// Delivery guarantee the queue workloads are judged against.
    pub guarantee: String,
    /// Most messages one consume asks for.
    pub consume_max: u64,
    /// Stall of acknowledgements (queue, outbox).
    pub ack_stall: Stall,
    /// Stall between acquiring and completing a task (lease).
    pub lease_stall: Stall,
    /// A consumer leaves and rejoins under a new name every this many consumes (0 = never).
    pub churn_every: u64,
    /// Include `commit-offset` / `fetch-offset` in the queue workload.
    pub commit_offsets: bool,
    /// How long one drain waits for the group to settle before answering.
    pub drain_wait: Duration,
    /// Bound on drains of the final phase that deliver nothing.
    pub drains_max: u64,
    /// Bound on all drains of the final phase.
    pub drain_ops_max: u64,
    /// members: distinct members added to each group, adds per group.
    pub members_pool: u64,
    pub adds_per_group: u64,
    /// leave: the group members are added to at setup, how many, and leaves per member.
    pub leave_group: String,
    pub leave_members: u64,
    pub leaves_per_member: u64,
    /// unique: creates per id.
    pub creates_per_id: u64,
    /// lease: tasks in use at once, and commands per task.
    pub tasks_in_flight: usize,
    pub commands_per_task: u64,
    pub register: workload::RegisterOptions,
    pub idempotency: workload::IdempotencyOptions,
    pub versioned_append: workload::VersionedAppendOptions,
    /// Bound on connecting to a node.
    pub connect_timeout: Duration,
}

impl Default for TestbedOptions {
    fn default() -> Self {
        TestbedOptions {
            seed: 0,
            topic: "queue".into(),
            group: "g".into(),
            partitions: 4,
            max_retries: 3,
            guarantee: "exactly-once".into(),
            consume_max: 5,
            ack_stall: Stall {
                probability: 0.05,
                duration: Duration::from_millis(3000),
            },
            lease_stall: Stall {
                probability: 0.2,
                duration: Duration::from_millis(2500),
            },
            churn_every: 5,
            commit_offsets: true,
            drain_wait: Duration::from_millis(4000),
            drains_max: 200,
            drain_ops_max: 20_000,
            members_pool: 10,
            adds_per_group: 50,
            leave_group: "leavers".into(),
            leave_members: 200,
            leaves_per_member: 10,
            creates_per_id: 5,
            tasks_in_flight: 3,
            commands_per_task: 10,
            register: workload::RegisterOptions::default(),
            idempotency: workload::IdempotencyOptions::default(),
            versioned_append: workload::VersionedAppendOptions::default(),
            connect_timeout: Duration::from_secs(2),
        }
    }
}

/// Names [`TestbedOptions::apply`] accepts, for error messages and docs.
pub const OPTION_NAMES: &[&str] = &[
    "partitions",
    "max-retries",
    "guarantee",
    "consume-max",
    "ack-stall-probability",
    "ack-stall",
    "lease-stall-probability",
    "lease-stall",
    "churn-every",
    "commit-offsets",
    "drain-wait",
    "drains-max",
    "drain-ops-max",
    "members-pool",
    "adds-per-group",
    "leave-members",
    "leaves-per-member",
    "creates-per-id",
    "tasks-in-flight",
    "commands-per-task",
    "keys-in-flight",
    "ops-per-key",
    "value-count",
];

impl TestbedOptions {
    /// Sets one option from a plan's `[client]` table: counts are integers, probabilities
    /// numbers in 0..=1, durations strings such as `"1300ms"` or integers of milliseconds.
    pub fn apply(&mut self, key: &str, v: &Value) -> Result<(), String> {
        let count = || option_count(v);
        let probability = || option_probability(v);
        let duration = || option_duration(v);
        match key {
            "partitions" => self.partitions = count()? as u32,
            "max-retries" => self.max_retries = count()? as u32,
            "guarantee" => self.guarantee = option_guarantee(v)?,
            "consume-max" => self.consume_max = count()?,
            "ack-stall-probability" => self.ack_stall.probability = probability()?,
            "ack-stall" => self.ack_stall.duration = duration()?,
            "lease-stall-probability" => self.lease_stall.probability = probability()?,
            "lease-stall" => self.lease_stall.duration = duration()?,
            "churn-every" => self.churn_every = count()?,
            "commit-offsets" => {
                self.commit_offsets = v.as_bool().ok_or("expected true or false")?
            }
            "drain-wait" => self.drain_wait = duration()?,
            "drains-max" => self.drains_max = count()?.max(1),
            "drain-ops-max" => self.drain_ops_max = count()?.max(1),
            "members-pool" => self.members_pool = count()?.max(1),
            "adds-per-group" => self.adds_per_group = count()?.max(1),
            "leave-members" => self.leave_members = count()?.max(1),
            "leaves-per-member" => self.leaves_per_member = count()?.max(1),
            "creates-per-id" => self.creates_per_id = count()?.max(1),
            "tasks-in-flight" => self.tasks_in_flight = count()?.max(1) as usize,
            "commands-per-task" => self.commands_per_task = count()?.max(1),
            "keys-in-flight" => self.register.keys_in_flight = count()?.max(1) as usize,
            "ops-per-key" => self.register.ops_per_key = count()?.max(1),
            "value-count" => self.register.value_count = count()?.max(1) as i64,
            other => {
                return Err(format!(
                    "unknown testbed client option {other:?}; known: {}",
                    OPTION_NAMES.join(", ")
                ))
            }
        }
        Ok(())
    }

    /// Defaults, with what the generic workload options say (seed, guarantee, register,
    /// idempotency and versioned-append options).
    pub fn from_workload_options(opts: &WorkloadOptions) -> TestbedOptions {
        TestbedOptions {
            seed: opts.seed,
            guarantee: opts.queue.guarantee.clone(),
            drains_max: opts.queue.drain_attempts_max.max(1),
            register: opts.register.clone(),
            idempotency: opts.idempotency.clone(),
            versioned_append: opts.versioned_append.clone(),
            ..TestbedOptions::default()
        }
    }
}

/// The testbed workload `name` with its client factory, from the generic options.
pub fn build(
    name: &str,
    opts: &WorkloadOptions,
) -> Result<(Workload, Arc<dyn ClientFactory>), String> {
    let mut o = TestbedOptions::from_workload_options(opts);
    for (k, v) in &opts.client {
        o.apply(k, v).map_err(|e| format!("client.{k}: {e}"))?;
    }
    build_with(name, &o)
}

/// The testbed workload `name` with its client factory.
pub fn build_with(
    name: &str,
    o: &TestbedOptions,
) -> Result<(Workload, Arc<dyn ClientFactory>), String> {
    let delivery = |max_retries: Option<u32>| CheckerSpec {
        name: "delivery".into(),
        options: CheckOptions {
            guarantee: Some(o.guarantee.clone()),
            max_retries,
            ..CheckOptions::default()
        },
    };
    let (w, family) = match name {
        "register" | "cas-register" => (register(o, name == "cas-register"), Family::Register),
        "queue" | "outbox" | "retry" => {
            let family = if name == "outbox" {
                Family::Outbox
            } else {
                Family::Queue
            };
            let nack = name == "retry";
            let main = QueueGen::new(o, nack, name == "queue" && o.commit_offsets);
            let fin = DrainGen::new(o.drains_max, o.drain_ops_max, nack);
            let guarantee = match name {
                "outbox" => "outbox: every committed event is published and consumed exactly once, none lost when the dispatcher crashes or publishing fails",
                "retry" => "retries: a message whose processing keeps failing is delivered at most max-retries + 1 times, then dead-lettered",
                _ => "consumer groups: every acknowledged message consumed and committed exactly once, offsets dense and commits monotonic, every partition owned while members exist",
            };
            (
                Workload {
                    name: name.into(),
                    guarantee: format!("{} ({})", guarantee, o.guarantee),
                    checkers: vec![delivery(nack.then_some(o.max_retries))],
                    generator: Box::new(main),
                    final_generator: Some(Box::new(fin)),
                },
                family,
            )
        }
        "idempotency" => (workload::idempotency(&o.idempotency), Family::Idempotency),
        "versioned-append" => (
            workload::versioned_append(&o.versioned_append),
            Family::Stream,
        ),
        "members" => (members(o), Family::Members),
        "leave" => (leave(o), Family::Leave),
        "unique" => (unique(o), Family::Unique),
        "lease" => (lease(o), Family::Lease),
        other => {
            return Err(format!(
                "system {SYSTEM:?} has no workload {other:?}; it has: {}",
                WORKLOADS.join(", ")
            ))
        }
    };
    Ok((w, Arc::new(TestbedFactory::new(family, o.clone()))))
}

// ------------------------------------------------------------------------------------------
// Workloads without a generic counterpart

fn checker(name: &str) -> CheckerSpec {
    CheckerSpec {
        name: name.into(),
        options: CheckOptions::default(),
    }
}

/// Keys used by a main generator, shared with its deferred final reads.
#[derive(Default, Clone)]
struct Used(Arc<AtomicU64>);

impl Used {
    fn saw(&self, n: u64) {
        self.0.fetch_max(n + 1, Ordering::Relaxed);
    }
    fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

fn final_reads(used: Used, f: &'static str, key: impl Fn(u64) -> String + Send + 'static) -> Gen {
    generator::deferred(move || {
        generator::seq(
            (0..used.count())
                .map(|k| {
                    let op = Invocation::new(f, Value::Null).with_key(key(k));
                    generator::until_ok(FINAL_ATTEMPTS_MAX, generator::repeat(op))
                })
                .collect(),
        )
    })
}

/// Registers with one writer each: every worker thread writes (and CASes) only its own key, and
/// reads every thread's key; a key is retired after `ops_per_key` of its writer's operations and
/// replaced by a fresh one; the final phase reads every key used.
///
/// Why one writer per key: a write acknowledged and then lost, or a deposed primary's write
/// acknowledged after a new primary took over, can always be explained away by linearizing it
/// before some other client's concurrent write to the same key. With a sole writer there is no
/// such write, so any later read that misses an acknowledged write proves it lost.
struct SoleWriterGen {
    ops_per_key: u64,
    values: i64,
    cas: bool,
    /// thread -> (key generation, operations left on it)
    keys: BTreeMap<usize, (u64, u64)>,
    used: Arc<std::sync::Mutex<Vec<String>>>,
}

impl SoleWriterGen {
    fn key(thread: usize, generation: u64) -> String {
        format!("t{thread}k{generation}")
    }
}

impl Generator for SoleWriterGen {
    fn next(&mut self, ctx: &mut Ctx<'_>) -> Next {
        for &t in ctx.all {
            if !self.keys.contains_key(&t) {
                self.keys.insert(t, (0, self.ops_per_key));
                if let Ok(mut u) = self.used.lock() {
                    u.push(Self::key(t, 0));
                }
            }
        }
        let Some(thread) = ctx.some_free_thread() else {
            return Next::Pending { wake_ns: None };
        };
        let kinds = if self.cas { 3 } else { 2 };
        let op = match ctx.rng.random_range(0..kinds) {
            0 => {
                let threads: Vec<usize> = self.keys.keys().copied().collect();
                let t = threads[ctx.rng.random_range(0..threads.len())];
                Invocation::new("read", Value::Null).with_key(Self::key(t, self.keys[&t].0))
            }
            kind => {
                let (generation, left) =
                    self.keys.get_mut(&thread).expect("every thread has a key");
                let key = Self::key(thread, *generation);
                *left -= 1;
                if *left == 0 {
                    *generation += 1;
                    *left = self.ops_per_key;
                    if let Ok(mut u) = self.used.lock() {
                        u.push(Self::key(thread, *generation));
                    }
                }
                let v = ctx.rng.random_range(0..self.values);
                let op = if kind == 1 {
                    Invocation::new("write", json!(v))
                } else {
                    Invocation::new("cas", json!([ctx.rng.random_range(0..self.values), v]))
                };
                op.with_key(key)
            }
        };
        Next::Op(Planned {
            thread,
            at_ns: ctx.time_ns,
            op,
        })
    }
}

/// See [`SoleWriterGen`]; checked for linearizability with the cas-register model.
fn register(o: &TestbedOptions, cas: bool) -> Workload {
    let ro = &o.register;
    assert!(ro.ops_per_key > 0 && ro.value_count > 0);
    let used: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let gen = SoleWriterGen {
        ops_per_key: ro.ops_per_key,
        values: ro.value_count,
        cas,
        keys: BTreeMap::new(),
        used: Arc::clone(&used),
    };
    let final_gen = generator::deferred(move || {
        let keys = used.lock().map(|u| u.clone()).unwrap_or_default();
        generator::seq(
            keys.into_iter()
                .map(|k| {
                    let op = Invocation::new("read", Value::Null).with_key(k);
                    generator::until_ok(FINAL_ATTEMPTS_MAX, generator::repeat(op))
                })
                .collect(),
        )
    });
    Workload {
        name: if cas { "cas-register" } else { "register" }.into(),
        guarantee: "linearizability of a primary-backup register across failovers: no acknowledged write lost, no deposed primary's write surfacing (one writer per key, every thread reads)".into(),
        checkers: vec![CheckerSpec {
            name: "linearizable".into(),
            options: CheckOptions {
                model: Some("cas-register".into()),
                ..CheckOptions::default()
            },
        }],
        generator: Box::new(gen),
        final_generator: Some(final_gen),
    }
}

/// Concurrent adds of a small pool of members to one group at a time, then a read of each group:
/// a duplicate member in a read is what the set checker flags.
fn members(o: &TestbedOptions) -> Workload {
    assert!(o.members_pool > 0 && o.adds_per_group > 0);
    let used = Used::default();
    let u = used.clone();
    let (pool, per) = (o.members_pool, o.adds_per_group);
    let mut n = 0u64;
    let gen = generator::from_fn(move |rng| {
        let g = n / per;
        n += 1;
        u.saw(g);
        let m = rng.random_range(0..pool);
        Invocation::new("add", json!(m)).with_key(format!("members-{g}"))
    });
    Workload {
        name: "members".into(),
        guarantee: "membership: concurrent adds of one member leave it in the group once; no acknowledged add is lost".into(),
        checkers: vec![checker("set")],
        generator: gen,
        final_generator: Some(final_reads(used, "read", |g| format!("members-{g}"))),
    }
}

/// Concurrent leaves of one member (added at setup), then the number of state changes each made.
fn leave(o: &TestbedOptions) -> Workload {
    assert!(o.leaves_per_member > 0 && o.leave_members > 0);
    let used = Used::default();
    let u = used.clone();
    let (per, max) = (o.leaves_per_member, o.leave_members);
    let mut n = 0u64;
    let gen = generator::from_fn(move |_| {
        // Past the members added at setup, leaves find nobody: bound the run by them instead.
        let m = (n / per).min(max - 1);
        n += 1;
        u.saw(m);
        Invocation::new("command", json!({ "leave": format!("m-{m}") }))
            .with_key(format!("leave:m-{m}"))
    });
    let gen = generator::limit(per * max, gen);
    Workload {
        name: "leave".into(),
        guarantee: "concurrent leave requests of one member make exactly one state change".into(),
        checkers: vec![checker("idempotency")],
        generator: gen,
        final_generator: Some(final_reads(used, "effects", |m| format!("leave:m-{m}"))),
    }
}

/// Each id created several times, concurrently: one success per id.
fn unique(o: &TestbedOptions) -> Workload {
    assert!(o.creates_per_id > 0);
    let per = o.creates_per_id;
    let mut n = 0u64;
    let gen = generator::from_fn(move |_| {
        let id = n / per;
        n += 1;
        Invocation::new("create", Value::Null).with_key(format!("id-{id}"))
    });
    Workload {
        name: "unique".into(),
        guarantee: "a create of an existing id fails: at most one successful create per id".into(),
        checkers: vec![checker("unique")],
        generator: gen,
        final_generator: None,
    }
}

/// Workers race for task leases: each command acquires `task-K`, maybe stalls past the lease,
/// and completes; then the number of completions each task took.
fn lease(o: &TestbedOptions) -> Workload {
    assert!(o.tasks_in_flight > 0 && o.commands_per_task > 0);
    let used = Used::default();
    let u = used.clone();
    let mut slots: Vec<(u64, u64)> = (0..o.tasks_in_flight as u64)
        .map(|k| (k, o.commands_per_task))
        .collect();
    let mut next_task = o.tasks_in_flight as u64;
    let per = o.commands_per_task;
    let gen = generator::from_fn(move |rng| {
        let i = rng.random_range(0..slots.len());
        let (task, left) = &mut slots[i];
        let t = *task;
        u.saw(t);
        *left -= 1;
        if *left == 0 {
            slots[i] = (next_task, per);
            next_task += 1;
        }
        Invocation::new("command", json!({ "complete": format!("task-{t}") }))
            .with_key(format!("task-{t}"))
    });
    Workload {
        name: "lease".into(),
        guarantee: "fencing: a task completes once; a worker whose lease expired cannot complete it after another took it over".into(),
        checkers: vec![checker("idempotency")],
        generator: gen,
        final_generator: Some(final_reads(used, "effects", |t| format!("task-{t}"))),
    }
}

// ------------------------------------------------------------------------------------------
// Queue generators

/// Work a thread owes after a consume: acks (or nacks) of what it received, then offset commits.
#[derive(Default)]
struct Owed {
    acks: VecDeque<Value>,
    commits: BTreeMap<u64, u64>,
}

/// Produce unique ids and consume them; a thread that received messages acknowledges each (or,
/// in the retry workload, rejects each: processing always fails), then commits the offsets past
/// them, before it does anything else. Offsets are committed even when an ack failed, as a real
/// consumer whose lease silently expired would.
struct QueueGen {
    group: String,
    partitions: u32,
    nack: bool,
    commit_offsets: bool,
    next_id: u64,
    owed: BTreeMap<usize, Owed>,
}

impl QueueGen {
    fn new(o: &TestbedOptions, nack: bool, commit_offsets: bool) -> QueueGen {
        QueueGen {
            group: o.group.clone(),
            partitions: o.partitions.max(1),
            nack,
            commit_offsets,
            next_id: 0,
            owed: BTreeMap::new(),
        }
    }
}

/// The ack (or nack) of a delivery: its id plus where it was, so the client can name it.
fn ack_of(f: &str, delivery: &Value) -> Invocation {
    let mut v = json!({ "id": delivery.get("id").cloned().unwrap_or(Value::Null) });
    for k in ["partition", "offset"] {
        if let Some(x) = delivery.get(k) {
            v[k] = x.clone();
        }
    }
    Invocation::new(f, v)
}

fn owed_after(done: &Completed<'_>, owed: &mut BTreeMap<usize, Owed>, commit: bool) {
    if done.completion.kind == EventType::Info {
        // The process is replaced: its leases and membership are gone with it.
        owed.remove(&done.thread);
        return;
    }
    if !matches!(done.op.f.as_str(), "consume" | "drain") || done.completion.kind != EventType::Ok {
        return;
    }
    let Some(list) = done.completion.value.as_array() else {
        return;
    };
    let w = owed.entry(done.thread).or_default();
    for d in list {
        w.acks.push_back(json!(d));
        if commit {
            if let (Some(p), Some(o)) = (
                d.get("partition").and_then(Value::as_u64),
                d.get("offset").and_then(Value::as_u64),
            ) {
                let e = w.commits.entry(p).or_insert(0);
                *e = (*e).max(o + 1);
            }
        }
    }
}

impl Generator for QueueGen {
    fn next(&mut self, ctx: &mut Ctx<'_>) -> Next {
        if ctx.free.is_empty() {
            return Next::Pending { wake_ns: None };
        }
        let ack_f = if self.nack { "nack" } else { "ack" };
        for &t in ctx.free {
            let Some(w) = self.owed.get_mut(&t) else {
                continue;
            };
            let op = if let Some(d) = w.acks.pop_front() {
                ack_of(ack_f, &d)
            } else if let Some((p, o)) = w.commits.pop_first() {
                Invocation::new(
                    "commit-offset",
                    json!({ "group": self.group, "partition": p, "offset": o }),
                )
            } else {
                continue;
            };
            return Next::Op(Planned {
                thread: t,
                at_ns: ctx.time_ns,
                op,
            });
        }
        let Some(thread) = ctx.some_free_thread() else {
            return Next::Pending { wake_ns: None };
        };
        let roll = ctx.rng.random_range(0..10);
        let op = if roll < 5 {
            self.next_id += 1;
            Invocation::new("produce", json!({ "id": self.next_id }))
        } else if roll == 9 && self.commit_offsets {
            let p = ctx.rng.random_range(0..self.partitions);
            Invocation::new(
                "fetch-offset",
                json!({ "group": self.group, "partition": p }),
            )
        } else {
            Invocation::new("consume", Value::Null)
        };
        Next::Op(Planned {
            thread,
            at_ns: ctx.time_ns,
            op,
        })
    }

    fn update(&mut self, done: &Completed<'_>) {
        owed_after(done, &mut self.owed, self.commit_offsets);
    }
}

/// The final phase on one thread: drain, acknowledge (or reject) what came, and again, until a
/// drain comes back empty; then read the dead-letter queue. Drains that deliver nothing are
/// bounded by `drains_max` (a drain that delivers is progress; the phase's time limit bounds
/// those).
struct DrainGen {
    thread: Option<usize>,
    busy: bool,
    nack: bool,
    /// Drains left that may come back with nothing.
    drains_left: u64,
    /// Drains left in all (a bug that redelivers forever never drains empty).
    total_left: u64,
    owed: BTreeMap<usize, Owed>,
    stage: DrainStage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DrainStage {
    Draining,
    DeadLetters,
    Done,
}

impl DrainGen {
    fn new(drains_max: u64, drain_ops_max: u64, nack: bool) -> DrainGen {
        DrainGen {
            thread: None,
            busy: false,
            nack,
            drains_left: drains_max,
            total_left: drain_ops_max.max(1),
            owed: BTreeMap::new(),
            stage: DrainStage::Draining,
        }
    }
}

impl Generator for DrainGen {
    fn next(&mut self, ctx: &mut Ctx<'_>) -> Next {
        if self.stage == DrainStage::Done {
            return Next::Done;
        }
        let t = *self
            .thread
            .get_or_insert_with(|| ctx.all.iter().copied().min().expect("a phase has threads"));
        if self.busy || !ctx.free.contains(&t) {
            return Next::Pending { wake_ns: None };
        }
        let f = if self.nack { "nack" } else { "ack" };
        let op = match self.owed.get_mut(&t).and_then(|w| w.acks.pop_front()) {
            Some(d) => ack_of(f, &d),
            None if self.stage == DrainStage::DeadLetters => {
                self.stage = DrainStage::Done;
                Invocation::new("dead-letter", Value::Null)
            }
            None if self.drains_left == 0 || self.total_left == 0 => {
                self.stage = DrainStage::Done;
                Invocation::new("dead-letter", Value::Null)
            }
            None => Invocation::new("drain", Value::Null),
        };
        self.busy = true;
        Next::Op(Planned {
            thread: t,
            at_ns: ctx.time_ns,
            op,
        })
    }

    fn update(&mut self, done: &Completed<'_>) {
        if Some(done.thread) != self.thread {
            return;
        }
        self.busy = false;
        let empty_drain = done.op.f == "drain"
            && done.completion.kind == EventType::Ok
            && done.completion.value.as_array().is_some_and(Vec::is_empty);
        if empty_drain && self.stage == DrainStage::Draining {
            self.stage = DrainStage::DeadLetters;
        }
        let delivered = done.op.f == "drain"
            && done.completion.kind == EventType::Ok
            && done
                .completion
                .value
                .as_array()
                .is_some_and(|l| !l.is_empty());
        if done.op.f == "drain" && !delivered {
            self.drains_left = self.drains_left.saturating_sub(1);
        }
        if done.op.f == "drain" {
            self.total_left = self.total_left.saturating_sub(1);
        }
        owed_after(done, &mut self.owed, false);
    }
}

// ------------------------------------------------------------------------------------------
// Client

/// Opens testbed clients of one family.
pub struct TestbedFactory {
    family: Family,
    opts: Arc<TestbedOptions>,
}

impl TestbedFactory {
    pub fn new(family: Family, opts: TestbedOptions) -> TestbedFactory {
        TestbedFactory {
            family,
            opts: Arc::new(opts),
        }
    }
}

#[async_trait]
impl ClientFactory for TestbedFactory {
    fn name(&self) -> String {
        format!("testbed ({:?})", self.family).to_lowercase()
    }

    async fn open(&self, process: u64, node: &str) -> anyhow::Result<Box<dyn Client>> {
        Ok(Box::new(TestbedClient::new(
            self.family,
            Arc::clone(&self.opts),
            process,
            node,
        )?))
    }

    /// The register families: the node's own map (`/kv/local`, never forwarded).
    async fn replica_snapshot(
        &self,
        node: &str,
    ) -> anyhow::Result<Option<crate::client::ReplicaSnapshot>> {
        if self.family != Family::Register {
            return Ok(None);
        }
        let client = TestbedClient::new(self.family, Arc::clone(&self.opts), 0, node)?;
        match client.call("/kv/local", json!({})).await {
            Answer::Ok(v) => {
                let data = serde_json::from_value(v["data"].clone())
                    .with_context(|| format!("{node}: /kv/local answered without a data map"))?;
                Ok(Some(data))
            }
            Answer::Definite(e) | Answer::Unknown(e) => {
                anyhow::bail!("{node}: /kv/local: {e}")
            }
        }
    }
}

/// One process's connection to one testbed node.
pub struct TestbedClient {
    http: reqwest::Client,
    base: String,
    family: Family,
    opts: Arc<TestbedOptions>,
    process: u64,
    incarnation: u64,
    joined: bool,
    consumes: u64,
    staller: crate::stall::Staller,
    /// id (JSON text) -> (partition, offset) of deliveries this client received.
    deliveries: HashMap<String, (u64, u64)>,
}

/// What the testbed answered.
enum Answer {
    Ok(Value),
    /// Certainly no effect: refused, or never sent.
    Definite(String),
    /// May have had an effect.
    Unknown(String),
}

impl TestbedClient {
    pub fn new(
        family: Family,
        opts: Arc<TestbedOptions>,
        process: u64,
        node: &str,
    ) -> anyhow::Result<TestbedClient> {
        let base = if node.starts_with("http://") {
            node.trim_end_matches('/').to_string()
        } else {
            format!("http://{node}")
        };
        let http = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .pool_max_idle_per_host(2)
            .build()
            .context("cannot build an HTTP client")?;
        let staller = crate::stall::Staller::new(Stall::NONE, opts.seed, process);
        Ok(TestbedClient {
            http,
            base,
            family,
            opts,
            process,
            incarnation: 0,
            joined: false,
            consumes: 0,
            staller,
            deliveries: HashMap::new(),
        })
    }

    /// The consumer (and task worker) name: process and incarnation.
    pub fn consumer(&self) -> String {
        format!("c{}.{}", self.process, self.incarnation)
    }

    fn topic(&self) -> &str {
        if self.family == Family::Outbox {
            "outbox"
        } else {
            &self.opts.topic
        }
    }

    async fn call(&self, path: &str, body: Value) -> Answer {
        let resp = match self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) if e.is_connect() => {
                return Answer::Definite(format!("connection-refused: {e}"))
            }
            Err(e) => return Answer::Unknown(e.to_string()),
        };
        let status = resp.status();
        let body: Value = match resp.json().await {
            Ok(v) => v,
            Err(e) => return Answer::Unknown(format!("HTTP {status}: unreadable answer: {e}")),
        };
        if status.is_success() {
            return Answer::Ok(body);
        }
        let code = body
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("error")
            .to_string();
        if body.get("definite").and_then(Value::as_bool) == Some(true) {
            Answer::Definite(code)
        } else {
            Answer::Unknown(code)
        }
    }

    /// A change: ok / fail / info as the testbed said.
    async fn change(&self, path: &str, body: Value, ok: impl FnOnce(Value) -> Value) -> Completion {
        match self.call(path, body).await {
            Answer::Ok(v) => Completion::ok(ok(v)),
            Answer::Definite(e) => Completion::fail(e),
            Answer::Unknown(e) => Completion::info(e),
        }
    }

    /// A read: any error is `fail`, since a read changes nothing.
    async fn read(&self, path: &str, body: Value, ok: impl FnOnce(Value) -> Value) -> Completion {
        match self.call(path, body).await {
            Answer::Ok(v) => Completion::ok(ok(v)),
            Answer::Definite(e) | Answer::Unknown(e) => Completion::fail(e),
        }
    }

    async fn stall(&mut self, stall: Stall) -> Option<Duration> {
        self.staller.hold_with(stall).await
    }

    async fn leave_group(&mut self) {
        if !self.joined {
            return;
        }
        let body =
            json!({ "topic": self.topic(), "group": self.opts.group, "consumer": self.consumer() });
        let _ = tokio::time::timeout(Duration::from_secs(1), self.call("/queue/leave", body)).await;
        self.joined = false;
    }

    /// One consume; remembers the deliveries. Returns the messages and the group's view.
    async fn consume_once(&mut self) -> Result<(Vec<Value>, Value), Completion> {
        let body = json!({
            "topic": self.topic(),
            "group": self.opts.group,
            "consumer": self.consumer(),
            "max": self.opts.consume_max,
        });
        self.joined = true;
        match self.call("/queue/consume", body).await {
            Answer::Ok(v) => {
                let msgs = v
                    .get("messages")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                if self.deliveries.len() + msgs.len() > REMEMBERED_DELIVERIES_MAX {
                    self.deliveries.clear();
                }
                for m in &msgs {
                    if let (Some(id), Some(p), Some(o)) = (
                        m.get("id"),
                        m.get("partition").and_then(Value::as_u64),
                        m.get("offset").and_then(Value::as_u64),
                    ) {
                        self.deliveries.insert(id.to_string(), (p, o));
                    }
                }
                Ok((msgs, v))
            }
            Answer::Definite(e) => Err(Completion::fail(e)),
            Answer::Unknown(e) => Err(Completion::info(e)),
        }
    }

    async fn consume(&mut self) -> Completion {
        let churn = self.opts.churn_every;
        if churn > 0 && self.consumes > 0 && self.consumes.is_multiple_of(churn) {
            self.leave_group().await;
            self.incarnation += 1;
        }
        self.consumes += 1;
        match self.consume_once().await {
            Ok((msgs, _)) => Completion::ok(Value::Array(msgs)),
            Err(c) => c,
        }
    }

    /// Consumes until something comes, or until the group has settled on nothing: this
    /// consumer owns every partition (or is the group's only member), no message is leased to
    /// anyone and, for the outbox, nothing waits to be dispatched. Waits at most `drain_wait`;
    /// an unsettled empty answer is `fail`.
    async fn drain(&mut self) -> Completion {
        let deadline = Instant::now() + self.opts.drain_wait;
        loop {
            let (msgs, view) = match self.consume_once().await {
                Ok(x) => x,
                Err(c) => return c,
            };
            if !msgs.is_empty() {
                return Completion::ok(Value::Array(msgs));
            }
            let n = |k: &str| view.get(k).and_then(Value::as_u64);
            let assigned = view.get("assigned").and_then(Value::as_array).map(Vec::len);
            let owns_all = assigned.map(|a| a as u64) == n("partitions");
            let alone = n("members") == Some(1);
            if (owns_all || alone) && n("pending") == Some(0) && self.outbox_idle().await {
                return Completion::ok(json!([]));
            }
            if Instant::now() >= deadline {
                return Completion::fail("drain-unsettled");
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }

    /// For the outbox: no row waits for the dispatcher and no batch is in flight, so an empty
    /// topic is the end. Always true for plain queues.
    async fn outbox_idle(&self) -> bool {
        if self.family != Family::Outbox {
            return true;
        }
        match self.call("/outbox/pending", json!({})).await {
            Answer::Ok(v) => {
                v.get("rows").and_then(Value::as_u64) == Some(0)
                    && v.get("in_flight").and_then(Value::as_bool) == Some(false)
            }
            _ => false,
        }
    }

    async fn ack(&mut self, op: &Invocation) -> Completion {
        let id = match &op.value {
            Value::Object(m) => m.get("id").cloned().unwrap_or(Value::Null),
            other => other.clone(),
        };
        let at = match (
            op.value.get("partition").and_then(Value::as_u64),
            op.value.get("offset").and_then(Value::as_u64),
        ) {
            (Some(p), Some(o)) => Some((p, o)),
            _ => self.deliveries.get(&id.to_string()).copied(),
        };
        let Some((p, o)) = at else {
            return Completion::fail("unknown-delivery");
        };
        let stalled = match op.f.as_str() {
            "nack" => None,
            _ => self.stall(self.opts.ack_stall).await,
        };
        let path = if op.f == "nack" {
            "/queue/nack"
        } else {
            "/queue/ack"
        };
        let body = json!({
            "topic": self.topic(), "group": self.opts.group, "consumer": self.consumer(),
            "partition": p, "offset": o,
        });
        crate::stall::note(self.change(path, body, |_| Value::Null).await, stalled)
    }

    async fn lease_command(&mut self, op: &Invocation) -> Completion {
        let Some(task) = op.key.clone() else {
            return Completion::fail("lease: a command needs a key (the task)");
        };
        let worker = self.consumer();
        let acquired = self
            .call("/lease/acquire", json!({ "task": task, "worker": worker }))
            .await;
        let token = match acquired {
            Answer::Ok(v) => v.get("token").cloned().unwrap_or(Value::Null),
            Answer::Definite(e) => return Completion::fail(e),
            // A lease may have been taken, but a lease alone is no effect.
            Answer::Unknown(e) => return Completion::fail(format!("acquire: {e}")),
        };
        self.stall(self.opts.lease_stall).await;
        let body = json!({ "task": task, "worker": worker, "token": token });
        self.change("/lease/complete", body, |_| json!({ "token": token }))
            .await
    }
}

fn key_of(op: &Invocation) -> Result<String, Completion> {
    op.key
        .clone()
        .ok_or_else(|| Completion::fail(format!("testbed: {} needs a key", op.f)))
}

#[async_trait]
impl Client for TestbedClient {
    async fn setup(&mut self) -> anyhow::Result<()> {
        if self.family != Family::Leave {
            return Ok(());
        }
        for m in 0..self.opts.leave_members {
            let body = json!({ "group": self.opts.leave_group, "member": format!("m-{m}") });
            match self.call("/members/add", body).await {
                Answer::Ok(_) => {}
                Answer::Definite(e) | Answer::Unknown(e) => {
                    anyhow::bail!("adding member m-{m} at {} failed: {e}", self.base)
                }
            }
        }
        Ok(())
    }

    async fn invoke(&mut self, op: &Invocation) -> Completion {
        let key = || key_of(op);
        match (op.f.as_str(), self.family) {
            ("read", Family::Register) => match key() {
                Ok(k) => {
                    self.read("/kv/read", json!({ "key": k }), |v| v["value"].clone())
                        .await
                }
                Err(c) => c,
            },
            ("write", Family::Register) => match key() {
                Ok(k) => {
                    let v = op.value.clone();
                    self.change("/kv/write", json!({ "key": k, "value": v }), |_| v.clone())
                        .await
                }
                Err(c) => c,
            },
            ("cas", Family::Register) => {
                let (Ok(k), Some([from, to])) = (key(), op.value.as_array().map(Vec::as_slice))
                else {
                    return Completion::fail("cas needs a key and the value [old, new]");
                };
                let body = json!({ "key": k, "from": from, "to": to });
                // The cas-register model reads a failed CAS as an observation ("the register
                // held something else"), so only a comparison that failed may be `fail`; a CAS
                // refused for any other reason (no primary, unreachable) observed nothing, and
                // `info` is the sound answer for it.
                match self.call("/kv/cas", body).await {
                    Answer::Ok(_) => Completion::ok(op.value.clone()),
                    Answer::Definite(e) if e == "cas-mismatch" => Completion::fail(e),
                    Answer::Definite(e) => Completion::info(format!("refused: {e}")),
                    Answer::Unknown(e) => Completion::info(e),
                }
            }
            ("produce" | "send" | "enqueue" | "publish", Family::Queue | Family::Outbox) => {
                let id = match &op.value {
                    Value::Object(m) => m.get("id").cloned().unwrap_or(Value::Null),
                    other => other.clone(),
                };
                if self.family == Family::Outbox {
                    return self
                        .change("/outbox/commit", json!({ "id": id }), |_| Value::Null)
                        .await;
                }
                let mut body = json!({ "topic": self.topic(), "id": id });
                if let Some(p) = op.value.get("partition") {
                    body["partition"] = p.clone();
                }
                self.change("/queue/produce", body, |v| v).await
            }
            ("consume" | "poll" | "dequeue", Family::Queue | Family::Outbox) => {
                self.consume().await
            }
            ("drain", Family::Queue | Family::Outbox) => self.drain().await,
            ("ack" | "commit" | "nack", Family::Queue | Family::Outbox) => self.ack(op).await,
            ("dead-letter", Family::Queue | Family::Outbox) => {
                let body = json!({ "topic": self.topic(), "group": self.opts.group });
                self.read("/queue/dead-letters", body, |v| v["messages"].clone())
                    .await
            }
            ("commit-offset", Family::Queue | Family::Outbox) => {
                let body = json!({
                    "topic": self.topic(),
                    "group": op.value.get("group").cloned().unwrap_or(json!(self.opts.group)),
                    "consumer": self.consumer(),
                    "partition": op.value.get("partition").cloned().unwrap_or(Value::Null),
                    "offset": op.value.get("offset").cloned().unwrap_or(Value::Null),
                });
                self.change("/queue/commit-offset", body, |_| Value::Null)
                    .await
            }
            ("fetch-offset", Family::Queue | Family::Outbox) => {
                let body = json!({
                    "topic": self.topic(),
                    "group": op.value.get("group").cloned().unwrap_or(json!(self.opts.group)),
                    "partition": op.value.get("partition").cloned().unwrap_or(Value::Null),
                });
                self.read("/queue/fetch-offset", body, |v| v).await
            }
            ("request", Family::Idempotency) => match key() {
                Ok(k) => {
                    let body = json!({ "key": k, "request": op.value });
                    self.change("/idem/request", body, |v| v).await
                }
                Err(c) => c,
            },
            ("effects", Family::Idempotency) => match key() {
                Ok(k) => {
                    self.read("/idem/effects", json!({ "key": k }), |v| {
                        v["effects"].clone()
                    })
                    .await
                }
                Err(c) => c,
            },
            ("add", Family::Members) => match key() {
                Ok(g) => {
                    let body = json!({ "group": g, "member": op.value });
                    self.change("/members/add", body, |_| Value::Null).await
                }
                Err(c) => c,
            },
            ("read", Family::Members) => match key() {
                Ok(g) => {
                    self.read("/members/list", json!({ "group": g }), |v| {
                        v["members"].clone()
                    })
                    .await
                }
                Err(c) => c,
            },
            ("command" | "effects", Family::Leave) => {
                let member = match key() {
                    Ok(k) => match k.strip_prefix("leave:") {
                        Some(m) => m.to_string(),
                        None => return Completion::fail("leave: the key must be leave:MEMBER"),
                    },
                    Err(c) => return c,
                };
                let body = json!({ "group": self.opts.leave_group, "member": member });
                if op.f == "command" {
                    self.change("/members/leave", body, |v| v).await
                } else {
                    self.read("/members/leave-effects", body, |v| v["effects"].clone())
                        .await
                }
            }
            ("create", Family::Unique) => {
                let id = match (&op.key, &op.value) {
                    (Some(k), _) => json!(k),
                    (None, Value::Object(m)) => m.get("id").cloned().unwrap_or(Value::Null),
                    (None, v) => v.clone(),
                };
                self.change("/unique/create", json!({ "id": id }), |_| Value::Null)
                    .await
            }
            ("append", Family::Stream) => match key() {
                Ok(s) => {
                    let body = json!({
                        "stream": s,
                        "expected": op.value.get("expected").cloned().unwrap_or(Value::Null),
                        "event": op.value.get("event").cloned().unwrap_or(Value::Null),
                    });
                    self.change("/stream/append", body, |_| Value::Null).await
                }
                Err(c) => c,
            },
            ("read", Family::Stream) => match key() {
                Ok(s) => {
                    self.read("/stream/read", json!({ "stream": s }), |v| {
                        v["events"].clone()
                    })
                    .await
                }
                Err(c) => c,
            },
            ("command", Family::Lease) => self.lease_command(op).await,
            ("effects", Family::Lease) => match key() {
                Ok(t) => {
                    self.read("/lease/effects", json!({ "task": t }), |v| {
                        v["effects"].clone()
                    })
                    .await
                }
                Err(c) => c,
            },
            (f, family) => Completion::fail(format!(
                "testbed ({family:?}): no operation {f:?}; see docs/history.md for the vocabulary"
            )),
        }
    }

    async fn close(&mut self) {
        self.leave_group().await;
    }
}
