//! A matrix of runs (`faultline test-all`, `faultline merge`): the runs as data, their classes
//! and one exit code. Each output has its module: [`text`] (the terminal table), [`junit`],
//! [`markdown`] (a CI step summary), [`plans_page`] (the store page grouping runs by plan) and
//! [`shard`] (what a shard of the matrix records in its store so that shards can be merged).
//!
//! Design decisions:
//! - A run of the matrix is in exactly one class: valid, invalid, unknown, error (the harness
//!   failed and nothing proves an anomaly) or skipped (it never started: out of total time,
//!   `--fail-fast`, interrupted). Skipped runs are data like the others, so every output (table,
//!   JUnit `<skipped>`, Markdown) lists them; nothing planned is silently dropped.
//! - One exit code for the matrix, by severity: any invalid 1, else any harness error 3, else
//!   any unknown 2, else 0. A plan none of whose runs ran (all skipped) counts as unknown: the
//!   matrix learned nothing about it, so it cannot be called valid.
//! - Runs are plain serialisable data, so a shard can write its runs into its store and a merge
//!   can read them back exactly as they were judged.

pub mod junit;
pub mod markdown;
pub mod plans_page;
pub mod shard;
pub mod text;

pub use junit::{junit_matrix, write_junit_matrix};
pub use markdown::{
    markdown_matrix, write_markdown_matrix, MatrixContext, MARKDOWN_FAILING_RUNS_MAX,
};
pub use plans_page::{
    plan_histories, render_plans_page, DayCounts, PlanHistory, PLANS_PAGE, PLANS_PAGE_DAYS_MAX,
    PLANS_PAGE_STRIP_MAX,
};
pub use text::text_table;

use checkers::{CheckResult, Verdict};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

/// Characters kept of one finding or reason in the table, JUnit and Markdown.
pub(crate) const TEXT_MAX: usize = 300;

/// What happened to one planned run of a matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum MatrixStatus {
    /// The run happened and its checkers ran (on a partial history, if it was cut short).
    Checked {
        verdict: Verdict,
        results: Vec<CheckResult>,
        /// Problems of the harness met on the way; with a verdict other than invalid they make
        /// the run an error.
        harness_errors: Vec<String>,
    },
    /// The harness failed before any checker could run (or the plan file itself is bad).
    Error { message: String },
    /// The run never started.
    Skipped { reason: String },
}

/// One planned run of a matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatrixRun {
    /// The plan's name (its store folder), or the plan file when the file could not be loaded.
    pub plan: String,
    /// 1-based number of this run among the plan's runs.
    pub attempt: u32,
    pub seed: Option<u64>,
    /// The command that reruns exactly this run.
    pub command: Option<String>,
    pub status: MatrixStatus,
    /// Wall time of the run, set-up and checks included.
    pub elapsed_s: f64,
    pub run_dir: Option<PathBuf>,
    pub report: Option<PathBuf>,
}

/// The class a run counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunClass {
    Valid,
    Invalid,
    Unknown,
    Error,
    Skipped,
}

impl RunClass {
    pub fn as_str(self) -> &'static str {
        match self {
            RunClass::Valid => "valid",
            RunClass::Invalid => "invalid",
            RunClass::Unknown => "unknown",
            RunClass::Error => "error",
            RunClass::Skipped => "skipped",
        }
    }
}

impl std::fmt::Display for RunClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl MatrixRun {
    pub fn class(&self) -> RunClass {
        match &self.status {
            MatrixStatus::Checked {
                verdict: Verdict::Invalid,
                ..
            } => RunClass::Invalid,
            MatrixStatus::Checked { harness_errors, .. } if !harness_errors.is_empty() => {
                RunClass::Error
            }
            MatrixStatus::Checked {
                verdict: Verdict::Valid,
                ..
            } => RunClass::Valid,
            MatrixStatus::Checked { .. } => RunClass::Unknown,
            MatrixStatus::Error { .. } => RunClass::Error,
            MatrixStatus::Skipped { .. } => RunClass::Skipped,
        }
    }

    /// `run 2 (seed 123)`, or `run 2` without a seed.
    pub fn label(&self) -> String {
        match self.seed {
            Some(s) => format!("run {} (seed {s})", self.attempt),
            None => format!("run {}", self.attempt),
        }
    }

    /// One line on what the run found: the first non-valid checker's summary, the harness
    /// error, or the skip reason.
    pub fn finding(&self) -> String {
        match &self.status {
            MatrixStatus::Checked {
                results,
                harness_errors,
                verdict,
            } => {
                let worst = results
                    .iter()
                    .find(|r| r.verdict == Verdict::Invalid)
                    .or_else(|| results.iter().find(|r| r.verdict == *verdict))
                    .or_else(|| results.first());
                let mut s = match worst {
                    Some(r) => match (r.verdict, r.anomalies.first()) {
                        (Verdict::Invalid, Some(a)) => format!(
                            "{}: invalid — {} anomalies, first: {}: {}",
                            r.checker,
                            r.anomalies.len(),
                            a.kind,
                            a.explanation
                        ),
                        _ => {
                            let why = r.unknown_reason.as_deref().unwrap_or(&r.summary);
                            format!("{}: {} — {}", r.checker, r.verdict, why)
                        }
                    },
                    None => "no checker ran".to_string(),
                };
                if let Some(e) = harness_errors.first() {
                    let _ = write!(s, "; harness: {e}");
                }
                s
            }
            MatrixStatus::Error { message } => format!("harness error: {message}"),
            MatrixStatus::Skipped { reason } => format!("skipped: {reason}"),
        }
    }
}

/// One plan's line of the matrix table.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRow<'a> {
    pub plan: &'a str,
    /// Runs that started (skipped ones excluded).
    pub runs: usize,
    pub valid: usize,
    pub invalid: usize,
    pub unknown: usize,
    pub error: usize,
    pub skipped: usize,
    /// Runs that started and were not valid, in run order.
    pub failing: Vec<&'a MatrixRun>,
    pub elapsed_s: f64,
}

/// The table rows, one per plan, in the order plans first appear in `runs`.
pub fn rows(runs: &[MatrixRun]) -> Vec<PlanRow<'_>> {
    let mut order: Vec<&str> = Vec::new();
    let mut by_plan: BTreeMap<&str, PlanRow<'_>> = BTreeMap::new();
    for run in runs {
        let row = by_plan.entry(run.plan.as_str()).or_insert_with(|| {
            order.push(run.plan.as_str());
            PlanRow {
                plan: run.plan.as_str(),
                runs: 0,
                valid: 0,
                invalid: 0,
                unknown: 0,
                error: 0,
                skipped: 0,
                failing: Vec::new(),
                elapsed_s: 0.0,
            }
        });
        row.elapsed_s += run.elapsed_s;
        let class = run.class();
        if class != RunClass::Skipped {
            row.runs += 1;
        }
        match class {
            RunClass::Valid => row.valid += 1,
            RunClass::Invalid => row.invalid += 1,
            RunClass::Unknown => row.unknown += 1,
            RunClass::Error => row.error += 1,
            RunClass::Skipped => row.skipped += 1,
        }
        if !matches!(class, RunClass::Valid | RunClass::Skipped) {
            row.failing.push(run);
        }
    }
    order
        .into_iter()
        .filter_map(|p| by_plan.remove(p))
        .collect()
}

/// The matrix's class: invalid, else error, else unknown (including a plan that never ran),
/// else valid. An empty matrix is unknown: nothing was tested.
pub fn matrix_class(runs: &[MatrixRun]) -> RunClass {
    let rows = rows(runs);
    let any = |c: RunClass| runs.iter().any(|r| r.class() == c);
    if any(RunClass::Invalid) {
        RunClass::Invalid
    } else if any(RunClass::Error) {
        RunClass::Error
    } else if rows.is_empty() || any(RunClass::Unknown) || rows.iter().any(|r| r.runs == 0) {
        RunClass::Unknown
    } else {
        RunClass::Valid
    }
}

/// The exit code of the matrix: 0 valid, 1 invalid, 2 unknown, 3 harness error.
pub fn exit_code(runs: &[MatrixRun]) -> i32 {
    match matrix_class(runs) {
        RunClass::Valid => 0,
        RunClass::Invalid => 1,
        RunClass::Error => 3,
        RunClass::Unknown | RunClass::Skipped => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use checkers::CheckResult;

    #[test]
    fn the_exit_code_ranks_invalid_then_error_then_unknown() {
        let valid = checked("a", 1, 1, vec![CheckResult::valid("c", "")]);
        let unknown = checked("b", 1, 2, vec![CheckResult::unknown("c", "budget")]);
        let mut error = checked("c", 1, 3, vec![CheckResult::unknown("run", "no docker")]);
        if let MatrixStatus::Checked { harness_errors, .. } = &mut error.status {
            harness_errors.push("Docker: no daemon".into());
        }
        let invalid = checked("d", 1, 4, vec![stale_read()]);
        assert_eq!(exit_code(std::slice::from_ref(&valid)), 0);
        assert_eq!(exit_code(&[valid.clone(), unknown.clone()]), 2);
        assert_eq!(
            exit_code(&[valid.clone(), unknown.clone(), error.clone()]),
            3
        );
        assert_eq!(exit_code(&[error, invalid, unknown]), 1);
        // A plan that never ran makes the matrix unknown; an empty matrix too.
        assert_eq!(exit_code(&[valid.clone(), skipped("e", 1, 5, "time")]), 2);
        assert_eq!(exit_code(&[]), 2);
    }
}

/// Compact fixtures for the tests of every matrix module.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use checkers::{Anomaly, CheckResult};

    pub fn checked(plan: &str, attempt: u32, seed: u64, results: Vec<CheckResult>) -> MatrixRun {
        MatrixRun {
            plan: plan.into(),
            attempt,
            seed: Some(seed),
            command: Some(format!("faultline run --name {plan} --seed {seed}")),
            status: MatrixStatus::Checked {
                verdict: crate::combined_verdict(&results),
                results,
                harness_errors: vec![],
            },
            elapsed_s: 1.5,
            run_dir: Some(PathBuf::from(format!("store/{plan}/t{attempt}"))),
            report: None,
        }
    }

    pub fn skipped(plan: &str, attempt: u32, seed: u64, why: &str) -> MatrixRun {
        MatrixRun {
            status: MatrixStatus::Skipped { reason: why.into() },
            command: None,
            run_dir: None,
            elapsed_s: 0.0,
            ..checked(plan, attempt, seed, vec![])
        }
    }

    pub fn stale_read() -> CheckResult {
        CheckResult::invalid(
            "linearizable",
            "not linearizable",
            vec![Anomaly {
                kind: "nonlinearizable".into(),
                ops: vec![44],
                explanation: "op 44 read 0 <stale>".into(),
                data: serde_json::Value::Null,
            }],
        )
    }

    /// Two plans: `good` valid twice, `bad` invalid once and skipped once.
    pub fn matrix() -> Vec<MatrixRun> {
        vec![
            checked(
                "good",
                1,
                11,
                vec![CheckResult::valid("linearizable", "ok")],
            ),
            checked("bad", 1, 22, vec![stale_read()]),
            checked(
                "good",
                2,
                33,
                vec![CheckResult::valid("linearizable", "ok")],
            ),
            skipped("bad", 2, 44, "--time-limit-total 1s reached"),
        ]
    }
}
