//! The `stats` checker: counts, not judgement.
//!
//! It proves the plumbing end to end (read, pair, report) and gives a person the shape of a
//! history at a glance. Its verdict is `valid` for any well-formed history with at least one
//! completed (`ok`) operation and `unknown` for one without (counts of nothing vouch for
//! nothing); a malformed one is rejected before it gets here.

use crate::{CheckResult, Checker, EventType, History, HistoryError, Process};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

pub struct Stats;

/// Figures about one history, as `stats` reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatsFigures {
    pub events: u64,
    /// Client operations (invocations).
    pub ops: u64,
    pub ok: u64,
    pub fail: u64,
    /// Indeterminate completions plus invocations never completed.
    pub info: u64,
    /// Invocations with no completion at all (counted in `info` too).
    pub never_completed: u64,
    pub nemesis_events: u64,
    pub processes: u64,
    /// Time from the first to the last event, in nanoseconds (line numbers if synthetic).
    pub duration_ns: u64,
    /// Events by f, then by type.
    pub by_f: BTreeMap<String, BTreeMap<String, u64>>,
}

impl StatsFigures {
    pub fn of(history: &History) -> Result<Self, HistoryError> {
        let ops = history.ops()?;
        let mut s = StatsFigures {
            events: history.events.len() as u64,
            ops: ops.len() as u64,
            ..Default::default()
        };
        for op in &ops {
            match op.outcome {
                EventType::Ok => s.ok += 1,
                EventType::Fail => s.fail += 1,
                _ => s.info += 1,
            }
            if op.complete_index.is_none() {
                s.never_completed += 1;
            }
        }
        let mut processes = BTreeSet::new();
        for e in &history.events {
            match e.process {
                Process::Nemesis => s.nemesis_events += 1,
                Process::Client(p) => {
                    processes.insert(p);
                }
            }
            *s.by_f
                .entry(e.f.clone())
                .or_default()
                .entry(e.kind.as_str().to_string())
                .or_default() += 1;
        }
        s.processes = processes.len() as u64;
        if let (Some(first), Some(last)) = (history.events.first(), history.events.last()) {
            s.duration_ns = last.time.saturating_sub(first.time);
        }
        Ok(s)
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

impl Checker for Stats {
    fn name(&self) -> &str {
        "stats"
    }

    fn check(&self, history: &History, _: &crate::Budget) -> Result<CheckResult, HistoryError> {
        let s = StatsFigures::of(history)?;
        let duration = if history.synthetic_time {
            format!("{} lines (no timestamps)", history.events.len())
        } else {
            format!("{:.3} s", s.duration_ns as f64 / 1e9)
        };
        let summary = format!(
            "{} events, {} ops by {} processes: {} ok ({:.1}%), {} fail ({:.1}%), {} info ({:.1}%); {} nemesis events; duration {}",
            s.events,
            s.ops,
            s.processes,
            s.ok,
            percent(s.ok, s.ops),
            s.fail,
            percent(s.fail, s.ops),
            s.info,
            percent(s.info, s.ops),
            s.nemesis_events,
            duration
        );
        if s.ok == 0 {
            // Counts of nothing vouch for nothing: say so rather than pass.
            let mut result = CheckResult::nothing_checked("stats", &crate::OpTally::of(history));
            result.summary = format!("{}: {summary}", crate::NOTHING_CHECKED);
            return Ok(result.with_details(json!(s)));
        }
        Ok(CheckResult::valid("stats", summary).with_details(json!(s)))
    }
}
