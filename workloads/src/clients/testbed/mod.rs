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

mod client;
mod queue;
mod scenarios;

pub use client::{TestbedClient, TestbedFactory};
use queue::*;
use scenarios::*;

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
