//! What a generator asks a client to do, and what the client answers.
//!
//! These are the two halves of a history operation before the recorder stamps them: an
//! [`Invocation`] becomes the `invoke` event and a [`Completion`] the `ok` / `fail` / `info` event
//! of the same process. Keeping them apart from `checkers::Event` lets clients and generators
//! ignore indices, times and process ids, which only the runner and the recorder own.

use checkers::EventType;
use serde_json::Value;

/// The error of a `cas` that failed because the register did not hold the expected value: the
/// only failed CAS the linearizability checker may read as an observation.
pub const CAS_MISMATCH: &str = "cas-mismatch";

/// An operation to perform: the function, the key it touches (if the workload has several) and
/// the argument, in the vocabulary of `docs/history.md`.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub f: String,
    pub key: Option<String>,
    pub value: Value,
}

impl Invocation {
    pub fn new(f: impl Into<String>, value: Value) -> Self {
        Invocation {
            f: f.into(),
            key: None,
            value,
        }
    }

    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }
}

/// How an operation ended. Only three kinds exist, as in the history contract: `Ok` (it
/// happened), `Fail` (it definitely did not happen) and `Info` (it may or may not have happened).
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// `Ok`, `Fail` or `Info`; never `Invoke`.
    pub kind: EventType,
    /// The result, e.g. the value read. `Null` when there is none.
    pub value: Value,
    /// Why it failed or is indeterminate, e.g. `timed-out`, `connection-refused`.
    pub error: Option<String>,
}

impl Completion {
    pub fn ok(value: Value) -> Self {
        Completion {
            kind: EventType::Ok,
            value,
            error: None,
        }
    }

    /// The operation definitely did not take effect (e.g. a CAS whose comparison failed, or a
    /// request that never left the client).
    pub fn fail(error: impl Into<String>) -> Self {
        Completion {
            kind: EventType::Fail,
            value: Value::Null,
            error: Some(error.into()),
        }
    }

    /// The operation may or may not have taken effect (timeout, connection lost mid-request,
    /// a server error after the request was sent).
    pub fn info(error: impl Into<String>) -> Self {
        Completion {
            kind: EventType::Info,
            value: Value::Null,
            error: Some(error.into()),
        }
    }

    /// The operation definitely did not take effect, for a reason other than its own semantics
    /// (the request was never sent, the server refused it before acting). `fail` for every
    /// operation except `cas`, which becomes `info`: to the linearizability checker a failed CAS
    /// is an observation ("the register did not hold `old`"), which a refused request is not.
    /// `info` is always sound (the checker may leave the operation out); a CAS that really saw
    /// another value answers `fail` with [`CAS_MISMATCH`] instead.
    pub fn not_applied(op: &Invocation, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        if op.f == "cas" {
            Completion::info(format!("not-applied: {reason}"))
        } else {
            Completion::fail(reason)
        }
    }

    pub fn with_value(mut self, value: Value) -> Self {
        self.value = value;
        self
    }

    pub fn is_info(&self) -> bool {
        self.kind == EventType::Info
    }
}
