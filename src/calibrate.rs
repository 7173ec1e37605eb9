//! `faultline calibrate`: how often does faultline catch each bug it claims to catch?
//!
//! Three kinds of plan ([`PlanKind`]), each run across a number of seeds, one run at a time:
//! - a *scenario* (`plans/scenarios/*.toml`: system `testbed`, one `bug`, the faults and the
//!   workload that provoke it) runs with its bug on and with it off;
//! - a *known-anomaly* plan of a real system (a plan in a folder named `known-anomalies`, e.g.
//!   `plans/known-anomalies/`) runs as it is, and must be flagged;
//! - a *control* (any other plan of a real system, e.g. `plans/*.toml`: a correct configuration)
//!   runs as it is, and must pass.
//!
//! A run that must be flagged (bug on, known anomaly) and ends `invalid` is a detection; a run
//! that must pass (bug off, control) and ends `invalid` is a false alarm. Runs that end
//! `unknown` or in a harness error are counted apart (inconclusive), never as either. The kind
//! comes from the folder so that a plan is a plain plan, runnable alone, and moving a plan
//! between the folders is the whole of changing what is expected of it.
//!
//! Design decisions:
//! - The same seed drives the bug-on and the bug-off run of a pair, so the two differ only in
//!   the bug (same schedule, same stalls, same operation mix).
//! - Seeds derive from one base seed (`--seed`), the plan's name and the seed's number, like
//!   test-all's, so adding a scenario does not change the others' seeds.
//! - Time to detection is read from the history, not the clock: for each anomaly the time of
//!   the last operation it names (the moment the evidence was complete), and for a run the
//!   earliest such time. It says how long a run must be to catch the bug.
//! - The exit code is for CI: 1 when any bug-off run was flagged (a false alarm is a checker or
//!   harness bug, always worth a red build) or when a scenario was detected in fewer than
//!   `--min-detected` of its bug-on runs; 3 when runs could not complete; else 0.
//! - A short calibration cannot demand a detection from every run of a bug caught in 9 of 10
//!   seeds without failing one build in ten. `--retry-misses N` reruns a missed run with up to
//!   N fresh seeds (derived past the `--seeds` range) and counts the miss as recovered when one
//!   of them detects; `--min-detected` compares against detections plus recovered misses. A
//!   bug that is no longer caught fails every retry, so it still fails the build, while one
//!   caught with probability p fails it with probability (1 - p)^(N+1). The table keeps
//!   first-try detections and retries apart, so the rate it shows is never inflated.

use crate::plan::Plan;
use crate::run::{run_plan, RunOptions};
use anyhow::{bail, Result};
use checkers::Verdict;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Most seeds per scenario.
pub const SEEDS_MAX: u32 = 1_000;
/// Most retries of one missed run.
pub const RETRIES_MAX: u32 = 10;

/// What `faultline calibrate` is asked to do.
#[derive(Debug, Clone)]
pub struct CalibrateOptions {
    /// Glob patterns of scenario plans.
    pub patterns: Vec<String>,
    /// Seeds per scenario (each runs bug on and bug off).
    pub seeds: u32,
    /// Base seed every run's seed derives from.
    pub seed: u64,
    /// Replaces every plan's store folder.
    pub store: Option<String>,
    /// Replaces every plan's time limit.
    pub time_limit_each_ms: Option<u64>,
    /// Detections (out of `seeds`) below which a scenario fails the exit code; 0 = never.
    pub min_detected: u32,
    /// Missed runs that must be flagged rerun with up to this many fresh seeds (module doc).
    pub retry_misses: u32,
    /// Only the scenarios whose plan name contains one of these (empty: all).
    pub only: Vec<String>,
    pub quiet: bool,
}

/// What is expected of a plan (module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlanKind {
    /// A testbed plan with one bug: run with it on (must be flagged) and off (must pass).
    Scenario,
    /// A real system's plan in a `known-anomalies` folder: must be flagged.
    KnownAnomaly,
    /// Any other real system's plan: must pass.
    Control,
}

impl PlanKind {
    /// The kind of a loaded plan found at `file`.
    pub fn of(file: &Path, plan: &Plan) -> PlanKind {
        if plan.builtin() == Some(workloads::Builtin::Testbed) {
            return PlanKind::Scenario;
        }
        let in_known_anomalies = file
            .parent()
            .and_then(|d| d.file_name())
            .is_some_and(|d| d == "known-anomalies");
        if in_known_anomalies {
            PlanKind::KnownAnomaly
        } else {
            PlanKind::Control
        }
    }

    /// Whether each run must be flagged: both answers for a scenario (bug on, bug off).
    fn must_flag(self) -> &'static [bool] {
        match self {
            PlanKind::Scenario => &[true, false],
            PlanKind::KnownAnomaly => &[true],
            PlanKind::Control => &[false],
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            PlanKind::Scenario => "scenario",
            PlanKind::KnownAnomaly => "known anomaly",
            PlanKind::Control => "control",
        }
    }
}

/// One run of a scenario.
#[derive(Debug, Clone, Serialize)]
pub struct CalibrationRun {
    pub seed: u64,
    /// The run must be flagged: a scenario with its bug on, or a known-anomaly plan.
    pub bug_on: bool,
    /// A rerun of a missed run with a fresh seed (`--retry-misses`), counted apart.
    pub retry: bool,
    /// `valid`, `invalid`, `unknown`, or `error`.
    pub outcome: String,
    /// Seconds from the history's first event to the first complete evidence (bug-on, invalid).
    pub detected_after_s: Option<f64>,
    /// Anomaly kinds of the invalid checkers.
    pub anomalies: Vec<String>,
    /// Why a run ended in `error`: the first harness problem, in one line.
    pub error: Option<String>,
    pub run_dir: Option<PathBuf>,
    pub elapsed_s: f64,
    pub command: String,
}

/// A scenario's row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioRow {
    pub plan: String,
    pub file: String,
    pub kind: PlanKind,
    /// The system under test (`testbed` for scenarios).
    pub system: String,
    /// docs/scenarios.md ids, e.g. `B1` or `L4, L7`.
    pub scenarios: String,
    pub bug: String,
    pub checker: String,
    pub runs: Vec<CalibrationRun>,
}

impl ScenarioRow {
    fn count(&self, bug_on: bool, outcome: &str) -> usize {
        self.runs
            .iter()
            .filter(|r| !r.retry && r.bug_on == bug_on && r.outcome == outcome)
            .count()
    }
    fn total(&self, bug_on: bool) -> usize {
        self.runs
            .iter()
            .filter(|r| !r.retry && r.bug_on == bug_on)
            .count()
    }
    /// Runs that must be flagged (retries aside).
    pub fn must_flag_runs(&self) -> usize {
        self.total(true)
    }
    /// Runs that must pass.
    pub fn must_pass_runs(&self) -> usize {
        self.total(false)
    }
    /// Misses that a retry with a fresh seed detected (`--retry-misses`).
    pub fn recovered(&self) -> usize {
        let mut recovered = 0;
        let mut missed_open = false;
        for r in self.runs.iter().filter(|r| r.bug_on) {
            if !r.retry {
                missed_open = r.outcome != "invalid";
            } else if missed_open && r.outcome == "invalid" {
                recovered += 1;
                missed_open = false;
            }
        }
        recovered
    }
    /// Retries of runs that must be flagged (`--retry-misses`).
    pub fn retries(&self) -> usize {
        self.runs.iter().filter(|r| r.retry && r.bug_on).count()
    }
    pub fn detected(&self) -> usize {
        self.count(true, "invalid")
    }
    /// Bug-off runs flagged, retries included: a false alarm on any seed is one.
    pub fn false_alarms(&self) -> usize {
        self.runs.iter().filter(|r| r.is_false_alarm()).count()
    }
    /// Runs that could not complete and that no retry after them completed (`--retry-misses`
    /// retries an error with a fresh seed; a retry that completes answers the question the
    /// errored run could not, and the error stays on the log and in the inconclusive column).
    pub fn unrecovered_errors(&self) -> usize {
        let mut unrecovered = 0;
        let mut open = false;
        for r in &self.runs {
            if !r.retry {
                unrecovered += usize::from(open);
                open = r.outcome == "error";
            } else if open && r.outcome != "error" {
                open = false;
            }
        }
        unrecovered + usize::from(open)
    }
    pub fn inconclusive(&self) -> usize {
        self.runs
            .iter()
            .filter(|r| !r.retry && (r.outcome == "unknown" || r.outcome == "error"))
            .count()
    }
    /// Median time to detection over the detecting runs.
    pub fn median_detection_s(&self) -> Option<f64> {
        let mut t: Vec<f64> = self
            .runs
            .iter()
            .filter(|r| !r.retry)
            .filter_map(|r| r.detected_after_s)
            .collect();
        if t.is_empty() {
            return None;
        }
        t.sort_by(f64::total_cmp);
        let n = t.len();
        Some(if n % 2 == 1 {
            t[n / 2]
        } else {
            (t[n / 2 - 1] + t[n / 2]) / 2.0
        })
    }
}

/// A plan to calibrate: for a scenario its plan (bug on) and the bug it switches (else empty).
pub struct Scenario {
    pub file: PathBuf,
    pub plan: Plan,
    pub kind: PlanKind,
    pub bug: String,
}

/// Loads the plans the patterns match, sorted by file name, each with its [`PlanKind`].
pub fn load_scenarios(opts: &CalibrateOptions) -> Result<Vec<Scenario>> {
    let files = crate::test_all::expand_patterns(&opts.patterns)?;
    let mut out = Vec::new();
    for file in files {
        let origin = file.display().to_string();
        let (plan, _) =
            crate::test_all::load_for_matrix(&file, opts.time_limit_each_ms, opts.store.as_deref())
                .map_err(anyhow::Error::msg)?;
        if !opts.only.is_empty() && !opts.only.iter().any(|o| plan.name.contains(o.as_str())) {
            continue;
        }
        let kind = PlanKind::of(&file, &plan);
        if kind == PlanKind::Scenario && plan.bugs.len() != 1 {
            bail!("{origin}: a scenario plan runs the testbed with exactly one bug (system = \"testbed\", bug = [\"NAME\"])");
        }
        let bug = plan.bugs.first().cloned().unwrap_or_default();
        out.push(Scenario {
            file,
            plan,
            kind,
            bug,
        });
    }
    if out.is_empty() {
        bail!("--only {}: no plan matches", opts.only.join(","));
    }
    Ok(out)
}

/// The seed of run `i` of `plan` (stable when other plans come and go).
pub fn scenario_seed(base: u64, plan: &str, i: u32) -> u64 {
    let mut x = base ^ 0x5EED_CA1B;
    for b in plan.bytes().chain(i.to_le_bytes()) {
        x = (x ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3);
    }
    x ^= x >> 29;
    (x % 1_000_000_000).max(1)
}

/// What a calibration did: a row per scenario, and how many runs never started because it was
/// interrupted (SIGINT or SIGTERM).
pub struct Calibration {
    pub rows: Vec<ScenarioRow>,
    pub not_started: usize,
}

/// Runs every plan for each seed (a scenario with its bug on and off); prints progress on stderr. The
/// first SIGINT or SIGTERM stops the run in progress the way `faultline run` does (heal, tear
/// down, check what it recorded) and starts no further run.
pub async fn calibrate(opts: &CalibrateOptions) -> Result<Calibration> {
    let cancel = tokio_util::sync::CancellationToken::new();
    let signal_task = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if let Ok(sig) = crate::cluster::shutdown_signal().await {
                eprintln!("faultline: {sig}: the run in progress stops and is checked; no further run starts");
                cancel.cancel();
            }
        })
    };
    let out = calibrate_until(opts, &cancel).await;
    signal_task.abort();
    out
}

/// [`calibrate`], stopping before the next run once `cancel` fired.
pub async fn calibrate_until(
    opts: &CalibrateOptions,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<Calibration> {
    anyhow::ensure!(
        (1..=SEEDS_MAX).contains(&opts.seeds),
        "--seeds: expected 1 to {SEEDS_MAX}"
    );
    let scenarios = load_scenarios(opts)?;
    let total: usize = scenarios
        .iter()
        .map(|s| s.kind.must_flag().len() * opts.seeds as usize)
        .sum();
    eprintln!(
        "faultline: calibrate: {} plans × {} seeds (scenarios bug on and off) = {total} runs, base seed {}",
        scenarios.len(),
        opts.seeds,
        opts.seed
    );
    let mut rows = Vec::new();
    let mut n = 0usize;
    let mut not_started = 0usize;
    for sc in &scenarios {
        let info = testbed::BUGS.iter().find(|b| b.name == sc.bug);
        let mut row = ScenarioRow {
            plan: sc.plan.name.clone(),
            file: sc.file.display().to_string(),
            kind: sc.kind,
            system: sc.plan.system.clone(),
            scenarios: info.map(|b| b.scenarios.to_string()).unwrap_or_default(),
            bug: sc.bug.clone(),
            checker: info.map(|b| b.checker.to_string()).unwrap_or_default(),
            runs: vec![],
        };
        let mut retry_index = opts.seeds;
        for i in 0..opts.seeds {
            let seed = scenario_seed(opts.seed, &sc.plan.name, i);
            for &bug_on in sc.kind.must_flag() {
                n += 1;
                if cancel.is_cancelled() {
                    not_started += 1;
                    continue;
                }
                let label = format!("[{n}/{total}]");
                let run = logged_run(sc, seed, bug_on, false, &label, opts.quiet).await;
                let mut settled = run.is_settled();
                row.runs.push(run);
                for k in 0..opts.retry_misses {
                    if settled || cancel.is_cancelled() {
                        break;
                    }
                    let seed = scenario_seed(opts.seed, &sc.plan.name, retry_index);
                    retry_index += 1;
                    let label = format!("[{n}/{total} retry {}/{}]", k + 1, opts.retry_misses);
                    let retry = logged_run(sc, seed, bug_on, true, &label, opts.quiet).await;
                    settled = retry.is_settled();
                    row.runs.push(retry);
                }
            }
        }
        if !row.runs.is_empty() {
            rows.push(row);
        }
    }
    Ok(Calibration { rows, not_started })
}

/// One run of `sc` with `seed` (its bug off when `bug_on` is false), logged on stderr with the
/// rerun command of anything but the expected outcome.
async fn logged_run(
    sc: &Scenario,
    seed: u64,
    bug_on: bool,
    retry: bool,
    label: &str,
    quiet: bool,
) -> CalibrationRun {
    let mut plan = sc.plan.clone();
    plan.seed = seed;
    if sc.kind == PlanKind::Scenario && !bug_on {
        plan.bugs.clear();
        plan.name = format!("{}-bug-off", plan.name);
    }
    let mut run = one_run(plan, bug_on, quiet).await;
    run.retry = retry;
    let what = match sc.kind {
        PlanKind::Scenario if bug_on => " bug on",
        PlanKind::Scenario => " bug off",
        PlanKind::KnownAnomaly => " (known anomaly)",
        PlanKind::Control => " (control)",
    };
    eprintln!(
        "faultline: {label} {} seed {seed}{what}: {}{} in {:.1} s",
        sc.plan.name,
        run.outcome,
        run.detected_after_s
            .map(|t| format!(" (evidence complete after {t:.1} s)"))
            .unwrap_or_default(),
        run.elapsed_s
    );
    if let Some(e) = &run.error {
        eprintln!("faultline:   harness problem: {e}");
    }
    if run.outcome != if bug_on { "invalid" } else { "valid" } {
        eprintln!("faultline:   rerun with: {}", run.command);
    }
    run
}

impl CalibrationRun {
    /// A run that had to be flagged and was not.
    pub fn is_miss(&self) -> bool {
        self.bug_on && self.outcome != "invalid"
    }
    /// A run that had to pass and was flagged.
    pub fn is_false_alarm(&self) -> bool {
        !self.bug_on && self.outcome == "invalid"
    }
    /// Needs no retry: a detection, or a bug-off run that completed (a false alarm is final
    /// too: a fresh seed cannot take it back). A miss and a run that could not complete are
    /// retried under `--retry-misses`.
    pub fn is_settled(&self) -> bool {
        self.outcome != "error" && !self.is_miss()
    }
}

async fn one_run(plan: Plan, bug_on: bool, quiet: bool) -> CalibrationRun {
    let command = plan.rerun_command();
    let seed = plan.seed;
    let t0 = Instant::now();
    let outcome = run_plan(
        plan,
        RunOptions {
            junit: None,
            summary_md: None,
            quiet,
        },
    )
    .await;
    let mut run = CalibrationRun {
        seed,
        bug_on,
        retry: false,
        outcome: "error".into(),
        detected_after_s: None,
        anomalies: vec![],
        error: None,
        run_dir: None,
        elapsed_s: 0.0,
        command,
    };
    match outcome {
        Ok(o) => {
            run.outcome = if o.harness_errors.is_empty() || o.verdict == Verdict::Invalid {
                o.verdict.to_string()
            } else {
                run.error = o.harness_errors.first().cloned();
                "error".into()
            };
            if o.verdict == Verdict::Invalid {
                if let Ok((kinds, t)) = detection(&o.run_dir) {
                    run.anomalies = kinds;
                    run.detected_after_s = if bug_on { t } else { None };
                }
            }
            run.run_dir = Some(o.run_dir);
        }
        Err(e) => run.error = Some(format!("{e:#}")),
    }
    run.elapsed_s = t0.elapsed().as_secs_f64();
    run
}

/// Anomaly kinds of the invalid checkers of a run, and when the first evidence was complete.
fn detection(run_dir: &Path) -> Result<(Vec<String>, Option<f64>)> {
    let results = reports::RunResults::read(&run_dir.join(reports::RESULTS_FILE))?;
    let history = checkers::formats::read_path(&run_dir.join("history.jsonl"), None)
        .map_err(anyhow::Error::msg)?;
    let time: HashMap<u64, u64> = history.events.iter().map(|e| (e.index, e.time)).collect();
    let t0 = history.events.first().map(|e| e.time).unwrap_or(0);
    let mut kinds = Vec::new();
    let mut first: Option<u64> = None;
    for r in results
        .results
        .iter()
        .filter(|r| r.verdict == Verdict::Invalid)
    {
        // Reported-only anomalies (`data.counted: false`, e.g. maybe-reordered) did not make
        // the run invalid, so they neither name its kinds nor time its detection.
        let counted = r
            .anomalies
            .iter()
            .filter(|a| a.data.get("counted").and_then(|c| c.as_bool()) != Some(false));
        for a in counted {
            if !kinds.contains(&a.kind) {
                kinds.push(a.kind.clone());
            }
            let complete = a.ops.iter().filter_map(|i| time.get(i)).max().copied();
            if let Some(t) = complete {
                first = Some(first.map_or(t, |f| f.min(t)));
            }
        }
    }
    Ok((kinds, first.map(|t| t.saturating_sub(t0) as f64 / 1e9)))
}

/// `n/total`, or `-` when there is nothing to count.
fn ratio(n: usize, total: usize) -> String {
    if total == 0 {
        "-".into()
    } else {
        format!("{n}/{total}")
    }
}

impl ScenarioRow {
    /// `detected/runs`, with the misses a retry recovered.
    fn detected_text(&self) -> String {
        let base = ratio(self.detected(), self.total(true));
        match (self.retries(), self.recovered()) {
            (0, _) => base,
            (n, r) => format!("{base} (+{r} of {n} retries)"),
        }
    }
}

/// The table: one row per plan. Scenarios show their scenario ids and bug; real systems their
/// system and kind.
pub fn text_table(rows: &[ScenarioRow]) -> String {
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            let (ids, bug) = match r.kind {
                PlanKind::Scenario => (r.scenarios.as_str(), r.bug.as_str()),
                kind => (r.system.as_str(), kind.label()),
            };
            [
                r.plan.clone(),
                ids.to_string(),
                bug.to_string(),
                r.detected_text(),
                ratio(r.false_alarms(), r.total(false)),
                r.inconclusive().to_string(),
                r.median_detection_s()
                    .map(|t| format!("{t:.1}"))
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let header = [
        "plan",
        "ids/system",
        "bug/kind",
        "detected",
        "false alarms",
        "inconclusive",
        "median t(s)",
    ];
    // Each column as wide as its widest cell, so long plan and system names stay aligned.
    let mut width = header.map(str::len);
    for row in &cells {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |row: [&str; 7]| {
        let mut l = String::new();
        for (i, (c, w)) in row.iter().zip(width).enumerate() {
            if i > 0 {
                l.push(' ');
            }
            // Names left-aligned, figures right-aligned.
            if i < 3 {
                l.push_str(&format!("{c:<w$}"));
            } else {
                l.push_str(&format!("{c:>w$}"));
            }
        }
        l.trim_end().to_string() + "\n"
    };
    let mut out = line(header);
    for row in &cells {
        out.push_str(&line(row.each_ref().map(String::as_str)));
    }
    out
}

/// The same table in Markdown (README, CI step summary): the scenarios, then the real systems'
/// plans.
pub fn markdown_table(rows: &[ScenarioRow]) -> String {
    let (scenarios, real): (Vec<&ScenarioRow>, Vec<&ScenarioRow>) =
        rows.iter().partition(|r| r.kind == PlanKind::Scenario);
    let mut out = String::new();
    if !scenarios.is_empty() {
        out.push_str(&markdown_scenarios(&scenarios));
    }
    if !real.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&markdown_real(&real));
    }
    out
}

fn markdown_real(rows: &[&ScenarioRow]) -> String {
    let mut out = String::from(
        "| plan | system | kind | detected / seeds | false alarms / seeds | inconclusive | median time to detection |\n|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.plan,
            r.system,
            r.kind.label(),
            r.detected_text(),
            ratio(r.false_alarms(), r.total(false)),
            r.inconclusive(),
            r.median_detection_s()
                .map(|t| format!("{t:.1} s"))
                .unwrap_or_else(|| "-".into())
        ));
    }
    out
}

fn markdown_scenarios(rows: &[&ScenarioRow]) -> String {
    let mut out = String::from(
        "| scenario | bug | checker | detected / seeds (bug on) | false alarms / seeds (bug off) | median time to detection |\n|---|---|---|---|---|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | `{}` | {} | {} | {}/{} | {} |\n",
            r.scenarios,
            r.bug,
            r.checker,
            r.detected_text(),
            r.false_alarms(),
            r.total(false),
            r.median_detection_s()
                .map(|t| format!("{t:.1} s"))
                .unwrap_or_else(|| "-".into())
        ));
    }
    out
}

/// Exit code: 1 on any false alarm or a plan that must be flagged detected (first try or
/// recovered by a retry) fewer than `min_detected` times, else 3 when a run could not
/// complete and no retry of it did, else 0.
pub fn exit_code(rows: &[ScenarioRow], min_detected: u32) -> i32 {
    let failed = rows.iter().any(|r| {
        let too_rare = r.total(true) > 0 && r.detected() + r.recovered() < min_detected as usize;
        r.false_alarms() > 0 || too_rare
    });
    if failed {
        1
    } else if rows.iter().any(|r| r.unrecovered_errors() > 0) {
        3
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(bug_on: bool, outcome: &str, t: Option<f64>) -> CalibrationRun {
        CalibrationRun {
            seed: 1,
            bug_on,
            retry: false,
            outcome: outcome.into(),
            detected_after_s: t,
            anomalies: vec![],
            error: None,
            run_dir: None,
            elapsed_s: 1.0,
            command: String::new(),
        }
    }

    fn row(runs: Vec<CalibrationRun>) -> ScenarioRow {
        ScenarioRow {
            plan: "b1".into(),
            file: "b1.toml".into(),
            kind: PlanKind::Scenario,
            system: "testbed".into(),
            scenarios: "B1".into(),
            bug: "double-delivery-on-timeout".into(),
            checker: "delivery".into(),
            runs,
        }
    }

    #[test]
    fn counts_detections_false_alarms_and_the_median() {
        let r = row(vec![
            run(true, "invalid", Some(3.0)),
            run(false, "valid", None),
            run(true, "invalid", Some(1.0)),
            run(false, "invalid", None),
            run(true, "valid", None),
            run(false, "unknown", None),
        ]);
        assert_eq!(
            (r.detected(), r.false_alarms(), r.inconclusive()),
            (2, 1, 1)
        );
        assert_eq!(r.median_detection_s(), Some(2.0));
        let table = text_table(std::slice::from_ref(&r));
        assert!(table.contains("2/3") && table.contains("1/3"), "{table}");
        assert_eq!(exit_code(&[r], 0), 1, "a false alarm fails calibration");
    }

    #[test]
    fn misses_fail_only_under_the_minimum_and_errors_exit_3() {
        let r = row(vec![run(true, "valid", None), run(false, "valid", None)]);
        assert_eq!(exit_code(std::slice::from_ref(&r), 0), 0);
        assert_eq!(exit_code(&[r], 1), 1);
        let e = row(vec![
            run(true, "invalid", Some(1.0)),
            run(false, "error", None),
        ]);
        assert_eq!(exit_code(&[e], 1), 3);
    }

    #[test]
    fn an_error_that_a_retry_completed_exits_0_but_stays_inconclusive() {
        let retried_off = |outcome: &str| CalibrationRun {
            retry: true,
            ..run(false, outcome, None)
        };
        let r = row(vec![
            run(true, "error", None),
            retried("invalid"),
            run(false, "error", None),
            retried_off("valid"),
        ]);
        assert_eq!((r.unrecovered_errors(), r.inconclusive()), (0, 2));
        assert_eq!(exit_code(std::slice::from_ref(&r), 1), 0);
        let still = row(vec![
            run(true, "invalid", Some(1.0)),
            run(false, "error", None),
            retried_off("error"),
        ]);
        assert_eq!(still.unrecovered_errors(), 1);
        assert_eq!(exit_code(&[still], 1), 3);
        let alarm = row(vec![
            run(true, "invalid", Some(1.0)),
            run(false, "error", None),
            retried_off("invalid"),
        ]);
        assert_eq!(alarm.false_alarms(), 1, "a retry's false alarm counts");
        assert_eq!(exit_code(&[alarm], 1), 1);
    }

    #[test]
    fn detection_is_timed_by_counted_anomalies_only() {
        use checkers::{Anomaly, CheckResult};
        let dir = tempfile::tempdir().unwrap();
        let line = |i: u64, t_s: u64, ty: &str| {
            format!(
                "{{\"index\":{i},\"time\":{},\"type\":\"{ty}\",\"process\":0,\"f\":\"write\",\"value\":{i}}}\n",
                t_s * 1_000_000_000
            )
        };
        let history: String = (0..6)
            .map(|i| line(i, 10 + i, if i % 2 == 0 { "invoke" } else { "ok" }))
            .collect();
        std::fs::write(dir.path().join("history.jsonl"), history).unwrap();
        let anomaly = |kind: &str, ops: Vec<u64>, counted: bool| Anomaly {
            kind: kind.into(),
            ops,
            explanation: String::new(),
            data: serde_json::json!({ "counted": counted }),
        };
        let results = reports::RunResults::new(
            "t",
            vec![CheckResult::invalid(
                "delivery",
                "s",
                vec![
                    anomaly("maybe-reordered", vec![0, 1], false),
                    anomaly("lost", vec![2, 5], true),
                ],
            )],
        );
        results
            .write(&dir.path().join(reports::RESULTS_FILE))
            .unwrap();
        let (kinds, t) = detection(dir.path()).unwrap();
        assert_eq!(kinds, vec!["lost".to_string()]);
        assert_eq!(
            t,
            Some(5.0),
            "complete when op 5 (at 15 s, first event at 10 s) was seen"
        );
    }

    #[test]
    fn the_text_table_stays_aligned_with_long_names() {
        let mut long = row(vec![run(true, "invalid", Some(0.5))]);
        long.plan = "postgres-list-append-repeatable-read".into();
        long.kind = PlanKind::KnownAnomaly;
        long.system = "postgres-check-then-insert".into();
        let short = row(vec![
            run(true, "invalid", Some(1.0)),
            run(false, "valid", None),
        ]);
        let table = text_table(&[long, short]);
        let lines: Vec<&str> = table.lines().collect();
        let col = |l: &str, cell: &str| l.find(cell).unwrap();
        // The "detected" figures end in one column.
        let end = |l: &str, cell: &str| col(l, cell) + cell.len();
        assert_eq!(end(lines[1], "1/1"), end(lines[0], "detected"), "{table}");
        assert_eq!(end(lines[2], "1/1"), end(lines[0], "detected"), "{table}");
        assert_eq!(
            col(lines[1], "postgres-check"),
            col(lines[0], "ids/system"),
            "{table}"
        );
    }

    #[test]
    fn seeds_are_stable_distinct_and_readable() {
        let a = scenario_seed(7, "b1", 0);
        assert_eq!(a, scenario_seed(7, "b1", 0));
        assert_ne!(a, scenario_seed(7, "b1", 1));
        assert_ne!(a, scenario_seed(7, "b2", 0));
        assert!((1..1_000_000_000).contains(&a));
    }

    #[test]
    fn every_shipped_scenario_plan_loads_with_one_known_bug() {
        let opts = CalibrateOptions {
            patterns: vec![concat!(env!("CARGO_MANIFEST_DIR"), "/plans/scenarios/*.toml").into()],
            seeds: 1,
            seed: 1,
            store: None,
            time_limit_each_ms: None,
            min_detected: 0,
            retry_misses: 0,
            only: vec![],
            quiet: true,
        };
        let scenarios = load_scenarios(&opts).unwrap();
        let mut bugs: Vec<&str> = scenarios.iter().map(|s| s.bug.as_str()).collect();
        bugs.sort();
        let mut all: Vec<&str> = testbed::BUGS.iter().map(|b| b.name).collect();
        all.sort();
        assert_eq!(bugs, all, "one scenario plan per testbed bug");
    }

    fn retried(outcome: &str) -> CalibrationRun {
        CalibrationRun {
            retry: true,
            ..run(true, outcome, Some(9.0))
        }
    }

    #[test]
    fn a_miss_recovered_by_a_retry_meets_the_minimum_but_is_not_a_detection() {
        let r = row(vec![
            run(true, "valid", None),
            retried("valid"),
            retried("invalid"),
            run(false, "valid", None),
        ]);
        assert_eq!((r.detected(), r.recovered(), r.retries()), (0, 1, 2));
        assert_eq!(
            r.median_detection_s(),
            None,
            "retries never enter the median"
        );
        assert_eq!(exit_code(std::slice::from_ref(&r), 1), 0);
        assert!(text_table(std::slice::from_ref(&r)).contains("0/1 (+1 of 2 retries)"));
        let never = row(vec![
            run(true, "valid", None),
            retried("valid"),
            retried("valid"),
        ]);
        assert_eq!(exit_code(&[never], 1), 1, "a bug no retry catches fails");
    }

    #[test]
    fn real_plans_take_their_kind_from_the_folder_and_controls_need_no_detection() {
        let plan = |system: &str| Plan {
            system: system.into(),
            ..Plan::default()
        };
        let kind = |f: &str, s: &str| PlanKind::of(Path::new(f), &plan(s));
        assert_eq!(
            kind("plans/known-anomalies/redis.toml", "redis"),
            PlanKind::KnownAnomaly
        );
        assert_eq!(kind("plans/etcd-register.toml", "etcd"), PlanKind::Control);
        assert_eq!(
            kind("plans/scenarios/b1.toml", "testbed"),
            PlanKind::Scenario
        );
        let control = ScenarioRow {
            kind: PlanKind::Control,
            system: "etcd".into(),
            ..row(vec![run(false, "valid", None), run(false, "valid", None)])
        };
        assert_eq!(exit_code(std::slice::from_ref(&control), 1), 0);
        let table = text_table(std::slice::from_ref(&control));
        assert!(
            table.contains("control") && table.contains("0/2"),
            "{table}"
        );
        let md = markdown_table(&[control]);
        assert!(md.contains("| etcd | control | - | 0/2 |"), "{md}");
    }

    #[test]
    fn every_shipped_real_plan_loads_as_a_known_anomaly_or_a_control() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/plans");
        let opts = CalibrateOptions {
            patterns: vec![
                format!("{dir}/known-anomalies/*.toml"),
                format!("{dir}/*.toml"),
            ],
            seeds: 1,
            seed: 1,
            store: None,
            time_limit_each_ms: None,
            min_detected: 0,
            retry_misses: 0,
            only: vec![],
            quiet: true,
        };
        let plans = load_scenarios(&opts).unwrap();
        let kind = |name: &str| plans.iter().find(|p| p.plan.name == name).map(|p| p.kind);
        assert_eq!(kind("redis-register"), Some(PlanKind::KnownAnomaly));
        assert_eq!(
            kind("rabbitmq-mirrored-queue"),
            Some(PlanKind::KnownAnomaly)
        );
        assert_eq!(kind("etcd-register"), Some(PlanKind::Control));
        assert_eq!(kind("zookeeper-cas-register"), Some(PlanKind::Control));
        assert!(plans.iter().all(|p| p.kind != PlanKind::Scenario));
    }
}
