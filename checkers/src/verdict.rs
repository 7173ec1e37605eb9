//! Checker results are data: a verdict, a one-paragraph explanation and the evidence.
//!
//! Every checker answers `valid`, `invalid` or `unknown`; `unknown` always carries the reason
//! (a budget ran out, an op the model does not support), and `invalid` always carries the
//! anomalies that prove it ([`CheckResult::invalid`] refuses none). Results compose with
//! [`Verdict::combine`]: invalid beats unknown beats valid.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Valid,
    Invalid,
    Unknown,
}

impl Verdict {
    /// Composition of two verdicts: invalid beats unknown beats valid.
    pub fn combine(self, other: Verdict) -> Verdict {
        use Verdict::*;
        match (self, other) {
            (Invalid, _) | (_, Invalid) => Invalid,
            (Unknown, _) | (_, Unknown) => Unknown,
            _ => Valid,
        }
    }

    /// The process exit code a CLI run maps this verdict to: 0 valid, 1 invalid, 2 unknown.
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Valid => 0,
            Verdict::Invalid => 1,
            Verdict::Unknown => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Invalid => "invalid",
            Verdict::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One anomaly found by a checker, with the operations that prove it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// Short machine-readable kind, e.g. `lost`, `duplicated`, `nonlinearizable`.
    pub kind: String,
    /// History event indices of the operations involved (invocations and/or completions).
    pub ops: Vec<u64>,
    /// One sentence a person can follow.
    pub explanation: String,
    /// Extra structured evidence for reports (checker-specific).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub data: Value,
}

/// What one checker concluded about one history.
///
/// Built only through [`CheckResult::valid`], [`CheckResult::invalid`] (which refuses an
/// `invalid` without anomalies) and [`CheckResult::unknown`]: a private field keeps a struct
/// literal from making an unproven `invalid` anywhere outside this module.
///
/// ```compile_fail
/// let r = checkers::CheckResult {
///     checker: "mine".into(),
///     verdict: checkers::Verdict::Invalid,
///     summary: "trust me".into(),
///     unknown_reason: None,
///     anomalies: vec![],
///     details: serde_json::Value::Null,
///     elapsed_ms: 0.0,
/// };
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub checker: String,
    pub verdict: Verdict,
    /// One paragraph: what was checked, against which guarantee, and what was found.
    pub summary: String,
    /// Why the verdict is unknown; `None` unless `verdict` is `Unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_reason: Option<String>,
    #[serde(default)]
    pub anomalies: Vec<Anomaly>,
    /// Checker-specific figures and evidence (counts, partial linearizations, ...).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub details: Value,
    /// Wall time the check took, in milliseconds.
    #[serde(default)]
    pub elapsed_ms: f64,
    /// Makes a struct literal impossible outside this module (see the type's docs).
    #[serde(skip)]
    sealed: Sealed,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Sealed;

impl CheckResult {
    pub fn valid(checker: &str, summary: impl Into<String>) -> Self {
        CheckResult {
            checker: checker.to_string(),
            verdict: Verdict::Valid,
            summary: summary.into(),
            unknown_reason: None,
            anomalies: Vec::new(),
            details: Value::Null,
            elapsed_ms: 0.0,
            sealed: Sealed,
        }
    }

    /// An `invalid` result. It must carry the anomalies that prove it: an invalid verdict
    /// without evidence is a programmer error, and panics.
    pub fn invalid(checker: &str, summary: impl Into<String>, anomalies: Vec<Anomaly>) -> Self {
        assert!(
            !anomalies.is_empty(),
            "an invalid result carries the anomalies that prove it (checker {checker})"
        );
        CheckResult {
            verdict: Verdict::Invalid,
            anomalies,
            ..CheckResult::valid(checker, summary)
        }
    }

    pub fn unknown(checker: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        CheckResult {
            verdict: Verdict::Unknown,
            unknown_reason: Some(reason.clone()),
            ..CheckResult::valid(checker, reason)
        }
    }

    /// `unknown` for a history that gave the checker nothing to judge: no events, only nemesis
    /// events, or no operation that completed `ok`. A check of nothing passes nothing.
    pub fn nothing_checked(checker: &str, tally: &OpTally) -> Self {
        CheckResult::unknown(checker, format!("{NOTHING_CHECKED} ({})", tally.describe()))
            .with_details(serde_json::json!({ "tally": tally }))
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

/// The reason every checker gives when it had nothing to judge.
pub const NOTHING_CHECKED: &str = "no completed operations to check";

/// Counts of a history's events by what they were, for deciding (and saying) that a checker
/// had nothing to judge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OpTally {
    pub events: u64,
    pub nemesis: u64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
}

impl OpTally {
    /// Counts one event; only completions count as operations.
    pub fn push(&mut self, process: crate::Process, kind: crate::EventType) {
        use crate::EventType;
        self.events += 1;
        match (process, kind) {
            (crate::Process::Nemesis, _) => self.nemesis += 1,
            (_, EventType::Invoke) => {}
            (_, EventType::Ok) => self.ok += 1,
            (_, EventType::Fail) => self.fail += 1,
            (_, EventType::Info) => self.info += 1,
        }
    }

    pub fn of(history: &crate::History) -> Self {
        let mut t = OpTally::default();
        for e in &history.events {
            t.push(e.process, e.kind);
        }
        t
    }

    /// "an empty history", or "12 events: 0 ok, 3 failed, 4 indeterminate; 2 nemesis events".
    pub fn describe(&self) -> String {
        if self.events == 0 {
            return "an empty history".to_string();
        }
        format!(
            "{} events: {} ok, {} failed, {} indeterminate completions; {} nemesis events",
            self.events, self.ok, self.fail, self.info, self.nemesis
        )
    }
}

/// Limits a checker must respect; hitting one yields `unknown`, never a guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub time_limit: Option<Duration>,
    /// Approximate cap on the memory a checker's search state may hold, in bytes.
    pub memory_bytes_max: Option<u64>,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            time_limit: None,
            memory_bytes_max: Some(4 << 30),
        }
    }
}
