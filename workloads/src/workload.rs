//! Workloads: what a test does to a system, which guarantee that tests, and which checkers judge
//! the history.
//!
//! A [`Workload`] bundles an endless main generator (the controller bounds it with a rate and a
//! time limit), an optional final generator (run after the faults are healed: final reads,
//! drains) and the checkers with their options. [`build`] pairs a workload with a system's
//! client factory; [`CATALOG`] lists the pairs that exist, for `--help` and plan validation.
//!
//! Register workloads rotate keys the way Jepsen's independent generator does: a few keys are in
//! use at once, each gets a bounded number of operations and is then replaced by a fresh key.
//! That keeps each key's history small enough for the linearizability search while the run as a
//! whole stays long, and the checker checks keys independently (P-compositionality).

use crate::client::ClientFactory;
use crate::clients::etcd::{EtcdFactory, ReadMode};
use crate::clients::memory::{MemoryQueueFactory, MemoryRegisterFactory, QueueBug, RegisterBug};
use crate::generator::{self, Gen, Rng};
use crate::op::Invocation;
use checkers::CheckOptions;
use rand::RngExt;
use serde_json::{json, Value};
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

/// Options for [`build`], from the command line or a plan.
#[derive(Debug, Clone)]
pub struct WorkloadOptions {
    /// etcd: how reads are served.
    pub read_mode: ReadMode,
    pub register: RegisterOptions,
    pub queue: QueueOptions,
    /// Seeds the bugs of the in-memory systems.
    pub seed: u64,
}

impl Default for WorkloadOptions {
    fn default() -> Self {
        WorkloadOptions {
            read_mode: ReadMode::Linearizable,
            register: RegisterOptions::default(),
            queue: QueueOptions::default(),
            seed: 0,
        }
    }
}

/// Systems and the workloads each supports. `memory*` systems run in-process (no cluster) and
/// exist to test the harness: `memory-stale` serves stale reads, `memory-lossy` loses messages.
pub const CATALOG: &[(&str, &[&str])] = &[
    ("etcd", &["register", "cas-register"]),
    ("memory", &["register", "cas-register", "queue"]),
    ("memory-stale", &["register", "cas-register"]),
    ("memory-lossy", &["queue"]),
];

/// The workload `workload` against `system`, with its client factory; an error names what exists.
pub fn build(
    system: &str,
    workload: &str,
    opts: &WorkloadOptions,
) -> Result<(Workload, Arc<dyn ClientFactory>), String> {
    let Some((_, workloads)) = CATALOG.iter().find(|(s, _)| *s == system) else {
        let names: Vec<&str> = CATALOG.iter().map(|(s, _)| *s).collect();
        return Err(format!(
            "unknown system {system:?}; expected one of: {}",
            names.join(", ")
        ));
    };
    if !workloads.contains(&workload) {
        return Err(format!(
            "system {system:?} has no workload {workload:?}; it has: {}",
            workloads.join(", ")
        ));
    }
    let w = match workload {
        "register" => register(&RegisterOptions {
            cas: false,
            ..opts.register.clone()
        }),
        "cas-register" => register(&RegisterOptions {
            cas: true,
            ..opts.register.clone()
        }),
        "queue" => queue(&opts.queue),
        other => unreachable!("catalog lists workload {other:?} without a builder"),
    };
    let factory: Arc<dyn ClientFactory> = match system {
        "etcd" => Arc::new(EtcdFactory::new(opts.read_mode)),
        "memory" if workload == "queue" => Arc::new(MemoryQueueFactory::new()),
        "memory" => Arc::new(MemoryRegisterFactory::new()),
        "memory-stale" => Arc::new(MemoryRegisterFactory::with_bug(
            RegisterBug::StaleReads { probability: 0.2 },
            opts.seed,
        )),
        "memory-lossy" => Arc::new(MemoryQueueFactory::with_bug(
            QueueBug::LoseProduced { probability: 0.01 },
            opts.seed,
        )),
        other => unreachable!("catalog lists system {other:?} without a factory"),
    };
    Ok((w, factory))
}
