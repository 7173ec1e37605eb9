//! In-memory systems under test: a register that is linearizable by construction, the same
//! register with a seeded bug switch (stale reads), and a FIFO queue with an optional loss bug.
//!
//! They exist to test the harness itself: a known-good system must yield histories the checkers
//! pass, and a known-bad one histories they flag. Each operation takes effect atomically, under
//! one lock, between the runner recording its invocation and its completion, which is exactly
//! what linearizability asks. A `yield_now` before the lock lets other workers interleave, so
//! histories have real concurrency even on one core.
//!
//! Bugs draw from an RNG seeded by the factory's seed and the client's process id, so a buggy run
//! is as reproducible as the schedule that drives it.

use crate::client::{Client, ClientFactory};
use crate::generator::{rng_from_seed, Rng};
use crate::op::{Completion, Invocation, CAS_MISMATCH};
use async_trait::async_trait;
use rand::RngExt;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// How many past values per key the stale-read bug remembers.
const STALE_HISTORY_MAX: usize = 16;

fn client_rng(seed: u64, process: u64) -> Rng {
    rng_from_seed(seed ^ process.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// A bug the in-memory register can have.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RegisterBug {
    /// With this probability, a read returns an older value of the key instead of the current
    /// one (when the key had one): what a replica that lags behind serves.
    StaleReads { probability: f64 },
}

#[derive(Default)]
struct RegisterState {
    /// key -> current value, then older values (most recent first), at most STALE_HISTORY_MAX.
    keys: HashMap<Option<String>, VecDeque<Value>>,
}

/// Opens clients of one shared in-memory register (one register per key).
pub struct MemoryRegisterFactory {
    state: Arc<Mutex<RegisterState>>,
    bug: Option<RegisterBug>,
    seed: u64,
}

impl MemoryRegisterFactory {
    /// A linearizable register.
    pub fn new() -> Self {
        MemoryRegisterFactory {
            state: Arc::default(),
            bug: None,
            seed: 0,
        }
    }

    /// A register with `bug`, its random choices seeded by `seed`.
    pub fn with_bug(bug: RegisterBug, seed: u64) -> Self {
        let RegisterBug::StaleReads { probability } = bug;
        assert!(
            (0.0..=1.0).contains(&probability),
            "stale-read probability must be in [0, 1], got {probability}"
        );
        MemoryRegisterFactory {
            state: Arc::default(),
            bug: Some(bug),
            seed,
        }
    }
}

impl Default for MemoryRegisterFactory {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl ClientFactory for MemoryRegisterFactory {
    fn name(&self) -> String {
        match self.bug {
            None => "memory-register".into(),
            Some(RegisterBug::StaleReads { .. }) => "memory-register-stale".into(),
        }
    }

    async fn open(&self, process: u64, _node: &str) -> anyhow::Result<Box<dyn Client>> {
        Ok(Box::new(MemoryRegister {
            state: Arc::clone(&self.state),
            bug: self.bug,
            rng: client_rng(self.seed, process),
        }))
    }
}

struct MemoryRegister {
    state: Arc<Mutex<RegisterState>>,
    bug: Option<RegisterBug>,
    rng: Rng,
}

#[async_trait]
impl Client for MemoryRegister {
    async fn invoke(&mut self, op: &Invocation) -> Completion {
        tokio::task::yield_now().await;
        let mut state = self.state.lock().expect("register lock");
        let values = state.keys.entry(op.key.clone()).or_default();
        let current = values.front().cloned().unwrap_or(Value::Null);
        match op.f.as_str() {
            "read" => {
                if let Some(RegisterBug::StaleReads { probability }) = self.bug {
                    if values.len() > 1 && self.rng.random_bool(probability) {
                        let i = self.rng.random_range(1..values.len());
                        return Completion::ok(values[i].clone());
                    }
                }
                Completion::ok(current)
            }
            "write" => {
                push_value(values, op.value.clone());
                Completion::ok(op.value.clone())
            }
            "cas" => match op.value.as_array().map(Vec::as_slice) {
                Some([old, new]) => {
                    if current == *old {
                        push_value(values, new.clone());
                        Completion::ok(op.value.clone())
                    } else {
                        Completion::fail(CAS_MISMATCH)
                    }
                }
                _ => Completion::fail("cas value must be [old, new]"),
            },
            other => Completion::fail(format!("unknown operation {other:?}")),
        }
    }
}

fn push_value(values: &mut VecDeque<Value>, v: Value) {
    values.push_front(v);
    values.truncate(STALE_HISTORY_MAX);
}

/// A bug the in-memory queue can have.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum QueueBug {
    /// With this probability, an acknowledged produce is silently dropped.
    LoseProduced { probability: f64 },
}

/// Opens clients of one shared in-memory FIFO queue (auto-acknowledging: a message is gone once
/// consumed), speaking the `delivery` vocabulary of `docs/history.md`: `produce {"id": N}`,
/// `consume` and `drain` answering lists of `{"id": N}`.
pub struct MemoryQueueFactory {
    state: Arc<Mutex<VecDeque<Value>>>,
    bug: Option<QueueBug>,
    seed: u64,
}

impl MemoryQueueFactory {
    pub fn new() -> Self {
        MemoryQueueFactory {
            state: Arc::default(),
            bug: None,
            seed: 0,
        }
    }

    pub fn with_bug(bug: QueueBug, seed: u64) -> Self {
        MemoryQueueFactory {
            state: Arc::default(),
            bug: Some(bug),
            seed,
        }
    }
}

impl Default for MemoryQueueFactory {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl ClientFactory for MemoryQueueFactory {
    fn name(&self) -> String {
        match self.bug {
            None => "memory-queue".into(),
            Some(QueueBug::LoseProduced { .. }) => "memory-queue-lossy".into(),
        }
    }

    async fn open(&self, process: u64, _node: &str) -> anyhow::Result<Box<dyn Client>> {
        Ok(Box::new(MemoryQueue {
            state: Arc::clone(&self.state),
            bug: self.bug,
            rng: client_rng(self.seed, process),
        }))
    }
}

struct MemoryQueue {
    state: Arc<Mutex<VecDeque<Value>>>,
    bug: Option<QueueBug>,
    rng: Rng,
}

#[async_trait]
impl Client for MemoryQueue {
    async fn invoke(&mut self, op: &Invocation) -> Completion {
        tokio::task::yield_now().await;
        let mut queue = self.state.lock().expect("queue lock");
        match op.f.as_str() {
            "produce" | "enqueue" => {
                let id = match &op.value {
                    Value::Object(m) => m.get("id").cloned().unwrap_or(Value::Null),
                    v => v.clone(),
                };
                if id.is_null() {
                    return Completion::fail("produce needs an id");
                }
                let lose = match self.bug {
                    Some(QueueBug::LoseProduced { probability }) => {
                        self.rng.random_bool(probability)
                    }
                    None => false,
                };
                if !lose {
                    queue.push_back(id.clone());
                }
                Completion::ok(json!({ "id": id }))
            }
            "consume" | "dequeue" => {
                let got: Vec<Value> = queue
                    .pop_front()
                    .map(|id| json!({ "id": id }))
                    .into_iter()
                    .collect();
                Completion::ok(Value::Array(got))
            }
            "drain" => {
                let got: Vec<Value> = queue.drain(..).map(|id| json!({ "id": id })).collect();
                Completion::ok(Value::Array(got))
            }
            other => Completion::fail(format!("unknown operation {other:?}")),
        }
    }
}
