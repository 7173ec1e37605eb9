//! The built-in models, and how the checker picks one by name.
//!
//! Every model interns the history's values into small integers while decoding, so that states
//! are a few machine words and compare and hash in nanoseconds. Id 0 is always JSON `null`
//! (nil: for a register, never written).
//!
//! Conventions shared by the models: an `info` op whose answer would be an observation (a read,
//! a get) tells nothing and is dropped; an `info` op with an effect (a write, an enqueue) may
//! take effect or not; a `fail` op did not happen, except a failed `cas`, which is an observed
//! compare failure (see [`Register`]).

mod kv;
mod multi;
mod queue;
mod register;
mod set;

pub use kv::{Kv, KvOp};
pub use multi::{MultiOp, MultiRegister};
pub use queue::{FifoQueue, QueueOp, UnorderedQueue};
pub use register::{Register, RegisterOp, CAS_MISMATCH};
pub use set::{Set, SetOp};

use super::check_model;
use crate::{Budget, CheckResult, EventType, History, HistoryError, Op, Process};
use rustc_hash::FxHashMap;
use serde_json::Value;
use std::collections::BTreeSet;

/// Names accepted by `--model`, in the order `--help` lists them.
pub const MODEL_NAMES: &[&str] = &[
    "register",
    "cas-register",
    "kv",
    "multi-register",
    "fifo-queue",
    "unordered-queue",
    "set",
];

/// Values seen in a history, as dense ids. Id 0 is `null`.
#[derive(Debug, Clone)]
pub struct Interner {
    /// Integers, the common case, without rendering them.
    ints: FxHashMap<i64, u32>,
    /// Every other value, by its JSON text.
    texts: FxHashMap<String, u32>,
    values: Vec<Value>,
}

impl Default for Interner {
    fn default() -> Self {
        Interner {
            ints: FxHashMap::default(),
            texts: FxHashMap::default(),
            values: vec![Value::Null],
        }
    }
}

impl Interner {
    /// The id of `v`; equal JSON values (same text) get the same id.
    pub fn id(&mut self, v: &Value) -> u32 {
        let next = u32::try_from(self.values.len()).expect("fewer than 2^32 distinct values");
        let id = match v {
            Value::Null => return 0,
            Value::Number(n) if n.is_i64() => {
                *self.ints.entry(n.as_i64().unwrap_or(0)).or_insert(next)
            }
            other => *self.texts.entry(other.to_string()).or_insert(next),
        };
        if id == next {
            self.values.push(v.clone());
        }
        id
    }

    pub fn value(&self, id: u32) -> &Value {
        &self.values[id as usize]
    }

    /// A value as a person reads it: `nil`, `3`, `"abc"`, `[1,2]`; [`UNOBSERVED`] as
    /// `a value no op reads`.
    pub fn show(&self, id: u32) -> String {
        if id == UNOBSERVED {
            return "a value no op reads".to_string();
        }
        show_value(self.value(id))
    }
}

/// The id that stands for every value no op of a partition reads or compares (see
/// [`Model::simplify_partition`](crate::linear::Model::simplify_partition)); never an interned
/// value's id.
pub const UNOBSERVED: u32 = u32::MAX;

/// Replaces, in `values`, every id that `observed` does not hold by [`UNOBSERVED`].
fn merge_unobserved<'a>(
    observed: &rustc_hash::FxHashSet<u32>,
    values: impl Iterator<Item = &'a mut u32>,
) {
    for v in values {
        if !observed.contains(v) {
            *v = UNOBSERVED;
        }
    }
}

/// A JSON value as a person reads it, Jepsen style (`nil` for null).
pub fn show_value(v: &Value) -> String {
    match v {
        Value::Null => "nil".to_string(),
        other => other.to_string(),
    }
}

/// Long texts in explanations keep this many characters of their start and of their end (values
/// built by appends differ at the end).
const SHOWN_HEAD_CHARS: usize = 20;
const SHOWN_TAIL_CHARS: usize = 60;
/// Collections in explanations show at most this many elements.
const SHOWN_ELEMENTS_MAX: usize = 20;

fn shorten(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= SHOWN_HEAD_CHARS + SHOWN_TAIL_CHARS + 1 {
        return text.to_string();
    }
    let head: String = chars[..SHOWN_HEAD_CHARS].iter().collect();
    let tail: String = chars[chars.len() - SHOWN_TAIL_CHARS..].iter().collect();
    format!("{head}…{tail}")
}

fn show_list(items: impl Iterator<Item = String>, open: &str, close: &str) -> String {
    let items: Vec<String> = items.collect();
    let shown = items.len().min(SHOWN_ELEMENTS_MAX);
    let mut text = items[..shown].join(", ");
    if items.len() > shown {
        text.push_str(&format!(", … ({} in all)", items.len()));
    }
    format!("{open}{text}{close}")
}

/// The value an op carries in: the invocation's, or the completion's when the invocation has
/// none (some recorders only log the completion).
fn input_value(op: &Op) -> &Value {
    if op.invoke_value.is_null() {
        &op.complete_value
    } else {
        &op.invoke_value
    }
}

fn unknown_f(op: &Op, model: &str, expected: &str) -> String {
    format!(
        "f {:?} is not an operation of the {model} model; expected {expected}",
        op.f
    )
}

/// One of the built-in models, ready to check a history.
#[derive(Debug, Clone)]
pub enum BuiltinModel {
    Register(Register),
    Kv(Kv),
    MultiRegister(MultiRegister),
    FifoQueue(FifoQueue),
    UnorderedQueue(UnorderedQueue),
    Set(Set),
}

/// Whose conventions a history is read with, for the conventions that differ between tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compat {
    /// faultline's: a failed cas with error `cas-mismatch` is an observation, other failed ops
    /// are dropped; a read of nil saw nil.
    #[default]
    Faultline,
    /// Knossos's: every failed op is dropped and a read of nil means "value unknown", so that
    /// verdicts on Jepsen's EDN histories equal Knossos's.
    Knossos,
}

impl Compat {
    pub const NAMES: &'static [&'static str] = &["faultline", "knossos"];

    pub fn parse(name: &str) -> Result<Compat, String> {
        match name {
            "faultline" => Ok(Compat::Faultline),
            "knossos" => Ok(Compat::Knossos),
            other => Err(format!(
                "unknown compat {other:?}; expected one of: {}",
                Compat::NAMES.join(", ")
            )),
        }
    }
}

impl BuiltinModel {
    /// The same model reading ops with `compat`'s conventions (only the register models have
    /// conventions that differ).
    pub fn with_compat(self, compat: Compat) -> Self {
        match (self, compat) {
            (BuiltinModel::Register(m), Compat::Knossos) => BuiltinModel::Register(m.knossos()),
            (BuiltinModel::MultiRegister(m), Compat::Knossos) => {
                BuiltinModel::MultiRegister(m.knossos())
            }
            (model, _) => model,
        }
    }

    /// The model called `name`, starting from `initial` (the model's default when `None`).
    pub fn build(name: &str, initial: Option<&Value>) -> Result<Self, String> {
        let model = match name {
            "register" => BuiltinModel::Register(Register::new(false, initial)),
            "cas-register" => BuiltinModel::Register(Register::new(true, initial)),
            "kv" => BuiltinModel::Kv(Kv::new(initial)?),
            "multi-register" => BuiltinModel::MultiRegister(MultiRegister::new(initial)?),
            "fifo-queue" | "queue" => BuiltinModel::FifoQueue(FifoQueue::new(initial)?),
            "unordered-queue" => BuiltinModel::UnorderedQueue(UnorderedQueue::new(initial)?),
            "set" => BuiltinModel::Set(Set::new(initial)?),
            other => {
                return Err(format!(
                    "unknown model {other:?}; expected one of: {}",
                    MODEL_NAMES.join(", ")
                ))
            }
        };
        Ok(model)
    }

    /// Picks a model from the operations' names when the user gave none.
    pub fn detect(history: &History) -> Result<Self, String> {
        let fs: BTreeSet<&str> = history
            .events
            .iter()
            .filter(|e| e.process != Process::Nemesis && e.kind == EventType::Invoke)
            .map(|e| e.f.as_str())
            .collect();
        let within = |allowed: &[&str]| fs.iter().all(|f| allowed.contains(f));
        let name = if within(&["read", "write"]) {
            "register"
        } else if within(&["read", "write", "cas"]) {
            "cas-register"
        } else if within(&["get", "put", "append"]) {
            "kv"
        } else if within(&["txn", "read", "write"]) {
            "multi-register"
        } else if within(&["add", "read"]) {
            "set"
        } else {
            let shown: Vec<&str> = fs.into_iter().collect();
            return Err(format!(
                "no --model given and the ops ({}) do not tell which model to use; choose one of: {}",
                shown.join(", "),
                MODEL_NAMES.join(", ")
            ));
        };
        BuiltinModel::build(name, None)
    }

    pub fn name(&self) -> &str {
        use super::Model;
        match self {
            BuiltinModel::Register(m) => m.name(),
            BuiltinModel::Kv(m) => m.name(),
            BuiltinModel::MultiRegister(m) => m.name(),
            BuiltinModel::FifoQueue(m) => m.name(),
            BuiltinModel::UnorderedQueue(m) => m.name(),
            BuiltinModel::Set(m) => m.name(),
        }
    }

    /// Checks `history` against this model.
    pub fn check(self, history: &History, budget: &Budget) -> Result<CheckResult, HistoryError> {
        match self {
            BuiltinModel::Register(m) => check_model(m, history, budget),
            BuiltinModel::Kv(m) => check_model(m, history, budget),
            BuiltinModel::MultiRegister(m) => check_model(m, history, budget),
            BuiltinModel::FifoQueue(m) => check_model(m, history, budget),
            BuiltinModel::UnorderedQueue(m) => check_model(m, history, budget),
            BuiltinModel::Set(m) => check_model(m, history, budget),
        }
    }
}
