//! The history model: what happened during a run, one event at a time.
//!
//! A history is a sequence of [`Event`]s in the order they happened. A client operation is two
//! events on one process: an `invoke` and its completion (`ok`, `fail` or `info`). Checkers work
//! on [`Op`]s, the pairing of both, which [`History::ops`] computes once and validates: a
//! malformed history is rejected with the line that broke the contract, never guessed at.
//!
//! Values are kept as `serde_json::Value` so that any workload's payload fits, whatever format the
//! history came from (EDN keywords become strings, EDN sets become arrays).

use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// Who produced an event: a numbered client process or the nemesis (fault injector).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Process {
    Client(u64),
    Nemesis,
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Client(n) => write!(f, "{n}"),
            Process::Nemesis => f.write_str("nemesis"),
        }
    }
}

impl Serialize for Process {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Process::Client(n) => s.serialize_u64(*n),
            Process::Nemesis => s.serialize_str("nemesis"),
        }
    }
}

impl<'de> Deserialize<'de> for Process {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ProcessVisitor;
        impl Visitor<'_> for ProcessVisitor {
            type Value = Process;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative integer or \"nemesis\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Process, E> {
                Ok(Process::Client(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Process, E> {
                u64::try_from(v)
                    .map(Process::Client)
                    .map_err(|_| E::custom(format!("process {v} is negative")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Process, E> {
                if v == "nemesis" {
                    Ok(Process::Nemesis)
                } else {
                    Err(E::custom(format!(
                        "process {v:?} is neither a number nor \"nemesis\""
                    )))
                }
            }
        }
        d.deserialize_any(ProcessVisitor)
    }
}

/// The type of an event. An invocation is followed on its process by exactly one completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// The operation started.
    Invoke,
    /// The operation happened.
    Ok,
    /// The operation definitely did not happen.
    Fail,
    /// Indeterminate: the operation may or may not have happened (a timeout, a lost connection).
    Info,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Invoke => "invoke",
            EventType::Ok => "ok",
            EventType::Fail => "fail",
            EventType::Info => "info",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of a history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the history, from 0, strictly increasing.
    pub index: u64,
    /// Nanoseconds since the run started (monotonic). Formats without timestamps use the
    /// 1-based line number in the file, which keeps the order but not durations; see
    /// [`History::synthetic_time`].
    #[serde(default)]
    pub time: u64,
    pub process: Process,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub f: String,
    /// The key (or partition) the operation touches, when the workload has several.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "key_from_json"
    )]
    pub key: Option<String>,
    #[serde(default)]
    pub value: Value,
    /// Why an operation failed or is indeterminate, e.g. `timed-out`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Keys are strings in the model; a JSON number or other value keeps its JSON text.
fn key_from_json<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

/// A whole history, in memory, as read from a file or recorded by a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub events: Vec<Event>,
    /// True when `time` is the event's 1-based line number in its file (formats without
    /// timestamps), not nanoseconds.
    pub synthetic_time: bool,
}

/// A client operation: an invocation paired with its completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    /// Dense id of the operation, in invocation order (0, 1, 2, ...).
    pub id: usize,
    pub process: u64,
    pub f: String,
    pub key: Option<String>,
    /// Index (in `History::events`) of the invocation event.
    pub invoke_index: u64,
    /// Index of the completion event; `None` when the history ends before it completes.
    pub complete_index: Option<u64>,
    /// `Ok`, `Fail` or `Info`; an invocation never completed counts as `Info`.
    pub outcome: EventType,
    pub invoke_time: u64,
    /// Completion time; `None` when never completed (it may take effect at any later time).
    pub complete_time: Option<u64>,
    /// The value given at invocation (e.g. the value to write).
    pub invoke_value: Value,
    /// The value of the completion (e.g. the value read). `Null` when never completed.
    pub complete_value: Value,
    pub error: Option<String>,
}

impl Op {
    /// The value a checker should read as the operation's result: the completion's value when it
    /// has one, else the invocation's.
    pub fn value(&self) -> &Value {
        if self.complete_value.is_null() {
            &self.invoke_value
        } else {
            &self.complete_value
        }
    }

    pub fn is_ok(&self) -> bool {
        self.outcome == EventType::Ok
    }
    pub fn is_fail(&self) -> bool {
        self.outcome == EventType::Fail
    }
    pub fn is_info(&self) -> bool {
        self.outcome == EventType::Info
    }

    /// How long the client held this operation on purpose before completing it (a client-side
    /// stall, see [`STALLED_MS_KEY`]), when its completion says so.
    pub fn stalled_ms(&self) -> Option<u64> {
        if let Some(ms) = self
            .complete_value
            .get(STALLED_MS_KEY)
            .and_then(Value::as_u64)
        {
            return Some(ms);
        }
        let error = self.error.as_deref()?;
        let rest = &error[error.find(STALL_ERROR_MARK)? + STALL_ERROR_MARK.len()..];
        rest.split(" ms").next()?.parse().ok()
    }
}

/// How a client marks an operation it held on purpose (an ack stalled past its lease,
/// docs/scenarios.md B1): an `ok` with no value of its own completes with `{"stalled_ms": N}`, a `fail`
/// or `info` carries `after holding the message N ms` in its error. Written by the workloads'
/// stall, read by [`Op::stalled_ms`].
pub const STALLED_MS_KEY: &str = "stalled_ms";
/// See [`STALLED_MS_KEY`]: the error text before the milliseconds.
pub const STALL_ERROR_MARK: &str = "after holding the message ";

/// A fault window: a nemesis start event and the matching stop (or the end of the history).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultWindow {
    /// The fault's name with its `start-` prefix removed, e.g. `partition`.
    pub kind: String,
    pub start_index: u64,
    pub start_time: u64,
    pub end_index: Option<u64>,
    /// `None` when the fault was still active when the history ended.
    pub end_time: Option<u64>,
    pub value: Value,
}

/// A history that breaks the contract. `line` is 1-based, as an editor shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for HistoryError {}

impl History {
    pub fn new(events: Vec<Event>) -> Self {
        History {
            events,
            synthetic_time: false,
        }
    }

    /// Pairs invocations with completions and checks the contract: every completion follows an
    /// open invocation on its process with the same `f`, a process has at most one open
    /// invocation, and a process that got `info` never invokes again. Nemesis events are not
    /// operations and are skipped. Errors name the line (event position + 1).
    pub fn ops(&self) -> Result<Vec<Op>, HistoryError> {
        let mut pairer = Pairer::default();
        for (pos, e) in self.events.iter().enumerate() {
            pairer.push(pos, e)?;
        }
        Ok(pairer.finish())
    }

    /// Nemesis events grouped into windows: `start-X` opens a window of kind `X`, `stop-X` closes
    /// the oldest open one of that kind. Other nemesis events become zero-length windows.
    pub fn fault_windows(&self) -> Vec<FaultWindow> {
        let mut windows: Vec<FaultWindow> = Vec::new();
        for e in self.events.iter().filter(|e| e.process == Process::Nemesis) {
            if let Some(kind) = e.f.strip_prefix("start-") {
                windows.push(FaultWindow {
                    kind: kind.to_string(),
                    start_index: e.index,
                    start_time: e.time,
                    end_index: None,
                    end_time: None,
                    value: e.value.clone(),
                });
            } else if let Some(kind) = e.f.strip_prefix("stop-") {
                if let Some(w) = windows
                    .iter_mut()
                    .find(|w| w.kind == kind && w.end_index.is_none())
                {
                    w.end_index = Some(e.index);
                    w.end_time = Some(e.time);
                }
            } else if e.kind != EventType::Invoke {
                windows.push(FaultWindow {
                    kind: e.f.clone(),
                    start_index: e.index,
                    start_time: e.time,
                    end_index: Some(e.index),
                    end_time: Some(e.time),
                    value: e.value.clone(),
                });
            }
        }
        windows
    }
}

/// Incremental pairing of invocations and completions, for checkers that stream a history
/// without holding it in memory. Memory is proportional to the number of processes and ops.
#[derive(Debug, Default)]
pub struct Pairer {
    /// process -> position in `ops` of its open invocation.
    open: std::collections::HashMap<u64, usize>,
    /// processes that completed with info and so may never invoke again.
    retired: std::collections::HashSet<u64>,
    ops: Vec<Op>,
}

impl Pairer {
    /// Feeds the event at position `pos` (0-based) of the history.
    pub fn push(&mut self, pos: usize, e: &Event) -> Result<(), HistoryError> {
        let line = pos + 1;
        let p = match e.process {
            Process::Nemesis => return Ok(()),
            Process::Client(p) => p,
        };
        match e.kind {
            EventType::Invoke => {
                if self.retired.contains(&p) {
                    return Err(HistoryError {
                        line,
                        message: format!(
                            "process {p} invokes again after an info completion; a process that got info must never invoke again (its worker continues under a new process id)"
                        ),
                    });
                }
                if let Some(&open) = self.open.get(&p) {
                    return Err(HistoryError {
                        line,
                        message: format!(
                            "process {p} invokes {:?} while its invocation at line {} is still open; expected a completion first",
                            e.f,
                            self.ops[open].invoke_index + 1
                        ),
                    });
                }
                self.open.insert(p, self.ops.len());
                self.ops.push(Op {
                    id: self.ops.len(),
                    process: p,
                    f: e.f.clone(),
                    key: e.key.clone(),
                    invoke_index: e.index,
                    complete_index: None,
                    outcome: EventType::Info,
                    invoke_time: e.time,
                    complete_time: None,
                    invoke_value: e.value.clone(),
                    complete_value: Value::Null,
                    error: None,
                });
            }
            kind => {
                let Some(open) = self.open.remove(&p) else {
                    return Err(HistoryError {
                        line,
                        message: format!(
                            "{kind} completion of {:?} on process {p} has no open invocation; expected an invoke on process {p} before it",
                            e.f
                        ),
                    });
                };
                let op = &mut self.ops[open];
                if op.f != e.f {
                    return Err(HistoryError {
                        line,
                        message: format!(
                            "{kind} completion of {:?} on process {p} does not match its invocation of {:?} at line {}",
                            e.f,
                            op.f,
                            op.invoke_index + 1
                        ),
                    });
                }
                op.complete_index = Some(e.index);
                op.complete_time = Some(e.time);
                op.outcome = kind;
                op.complete_value = e.value.clone();
                op.error = e.error.clone();
                if op.key.is_none() {
                    op.key = e.key.clone();
                }
                if kind == EventType::Info {
                    self.retired.insert(p);
                }
            }
        }
        Ok(())
    }

    /// The operations, in invocation order. Open invocations stay `Info` with no completion.
    pub fn finish(self) -> Vec<Op> {
        self.ops
    }
}
