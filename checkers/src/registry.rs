//! Building checkers by name, for the command line and for test plans.
//!
//! Options are one plain struct shared by every checker: each checker reads the fields it needs
//! and rejects, with a clear message, a combination it cannot honour.

use crate::{stats::Stats, Checker};
use serde_json::Value;

/// Names accepted by [`by_name`], in the order `--help` lists them.
pub const CHECKER_NAMES: &[&str] = &[
    "stats",
    "linearizable",
    "delivery",
    "set",
    "unique",
    "idempotency",
    "versioned-append",
    "counter",
    "bank",
    "list-append",
    "rw-register",
];

/// Options for building a checker; `None` means the checker's default.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Linearizability model, e.g. `register`, `cas-register`, `kv`.
    pub model: Option<String>,
    /// Initial state of the model, as JSON (registers default to nil); the counter's starting
    /// value; the bank's total or opening balances.
    pub initial: Option<Value>,
    /// Delivery guarantee: `at-most-once`, `at-least-once` or `exactly-once` (delivery); for the
    /// set checker, `eventual` or `linearizable` (whether stale reads count).
    pub guarantee: Option<String>,
    /// Maximum redeliveries before a message must be dead-lettered.
    pub max_retries: Option<u32>,
    /// Isolation level the transactional checkers (list-append, rw-register) judge against:
    /// read-committed, repeatable-read, snapshot-isolation, serializable (default),
    /// strict-serializable.
    pub consistency_model: Option<String>,
    /// Whose conventions to read the history with: `faultline` (default) or `knossos`
    /// (linearizable only; see [`crate::linear::Compat`]).
    pub compat: Option<String>,
}

/// Builds the checker called `name`, or says which names exist.
pub fn by_name(name: &str, _options: &CheckOptions) -> Result<Box<dyn Checker>, String> {
    match name {
        "stats" => Ok(Box::new(Stats)),
        "linearizable" => {
            let compat = _options.compat.as_deref().map_or(
                Ok(crate::linear::Compat::default()),
                crate::linear::Compat::parse,
            )?;
            Ok(Box::new(
                crate::linear::Linearizable::new(
                    _options.model.as_deref(),
                    _options.initial.clone(),
                )?
                .with_compat(compat),
            ))
        }
        _ if _options.compat.is_some() => Err(format!(
            "--compat applies to the linearizable checker only, not {name:?}"
        )),
        "delivery" | "set" | "unique" | "idempotency" | "versioned-append" | "counter" | "bank" => {
            crate::stream::checker(name, _options).expect("a streaming checker's name")
        }
        "list-append" => Ok(Box::new(crate::txn::TxnChecker::new(
            crate::txn::Family::ListAppend,
            _options,
        )?)),
        "rw-register" => Ok(Box::new(crate::txn::TxnChecker::new(
            crate::txn::Family::RwRegister,
            _options,
        )?)),
        other => Err(format!(
            "unknown checker {other:?}; expected one of: {}",
            CHECKER_NAMES.join(", ")
        )),
    }
}
