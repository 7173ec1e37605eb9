//! How faults reach the history: one [`NemesisEvent`] per thing done, handed to a [`Recorder`].
//!
//! The controller owns the history (indices, timestamps, the file); nemeses only say what
//! happened. A recorder is any `Fn(NemesisEvent)` that is `Send + Sync`, typically a closure
//! around the controller's recorder handle or a channel sender, so this crate needs nothing from
//! the workloads or controller crates. [`NemesisEvent::to_event`] builds the history line.
//!
//! Naming: a fault is a window opened by `start-<kind>` and closed by `stop-<kind>`, recorded
//! *after* the action took effect, with the value saying what was done to which node. Something
//! that did not take effect is never recorded as a start: a failed action becomes `fault-error`,
//! a clock change the target ignored becomes `clock-unverified`, each with the reason.

use checkers::history::{Event, EventType, Process};
use serde_json::Value;
use std::sync::Mutex;

/// One nemesis entry for the history (process `nemesis`, type `info`).
#[derive(Debug, Clone, PartialEq)]
pub struct NemesisEvent {
    /// `start-partition`, `stop-kill`, `clock-unverified`, `fault-error`, `heal`, ...
    pub f: String,
    /// What was done to which node, as JSON.
    pub value: Value,
    /// Set when the entry reports a failure.
    pub error: Option<String>,
}

impl NemesisEvent {
    pub fn new(f: impl Into<String>, value: Value) -> NemesisEvent {
        NemesisEvent {
            f: f.into(),
            value,
            error: None,
        }
    }

    pub fn with_error(mut self, error: impl Into<String>) -> NemesisEvent {
        self.error = Some(error.into());
        self
    }

    /// The history line for this entry, at the index and time the controller assigns.
    pub fn to_event(&self, index: u64, time_ns: u64) -> Event {
        Event {
            index,
            time: time_ns,
            process: Process::Nemesis,
            kind: EventType::Info,
            f: self.f.clone(),
            key: None,
            value: self.value.clone(),
            error: self.error.clone(),
        }
    }
}

/// Receives nemesis entries in the order they happen.
pub trait Recorder: Send + Sync {
    fn record(&self, event: NemesisEvent);
}

impl<F> Recorder for F
where
    F: Fn(NemesisEvent) + Send + Sync,
{
    fn record(&self, event: NemesisEvent) {
        self(event)
    }
}

/// A recorder that keeps entries in memory: for tests and for callers that write them later.
#[derive(Debug, Default)]
pub struct MemoryRecorder {
    events: Mutex<Vec<NemesisEvent>>,
}

impl MemoryRecorder {
    pub fn new() -> MemoryRecorder {
        MemoryRecorder::default()
    }

    /// A copy of everything recorded so far.
    pub fn events(&self) -> Vec<NemesisEvent> {
        self.events.lock().expect("recorder lock").clone()
    }

    /// The `f` of every entry so far, in order.
    pub fn fs(&self) -> Vec<String> {
        self.events().into_iter().map(|e| e.f).collect()
    }
}

impl Recorder for MemoryRecorder {
    fn record(&self, event: NemesisEvent) {
        self.events.lock().expect("recorder lock").push(event);
    }
}
