//! A matrix of runs (`faultline test-all`): one table, one exit code, aggregated JUnit and
//! Markdown, and a store page that groups runs by plan with pass rates over time.
//!
//! Design decisions:
//! - A run of the matrix is in exactly one class: valid, invalid, unknown, error (the harness
//!   failed and nothing proves an anomaly) or skipped (it never started: out of total time,
//!   `--fail-fast`, interrupted). Skipped runs are data like the others, so every output (table,
//!   JUnit `<skipped>`, Markdown) lists them; nothing planned is silently dropped.
//! - One exit code for the matrix, by severity: any invalid 1, else any harness error 3, else
//!   any unknown 2, else 0. A plan none of whose runs ran (all skipped) counts as unknown: the
//!   matrix learned nothing about it, so it cannot be called valid.
//! - JUnit: one `<testsuite>` per plan and one `<testcase>` per run and checker, named
//!   `run N (seed S): checker`, so a dashboard's test history follows each checker of a plan
//!   across nights while the seed that reruns a failure stays in the name.
//! - The plan-grouped store page is a separate file (`store/plans.html`) rendered from the store
//!   itself, not from the matrix, so it shows the history of every night kept in the store, not
//!   just this one. Pass rate = valid runs / runs with results; unknown and invalid both count
//!   as not passing, runs without results (killed) are shown but not counted.

use crate::ci::anomaly_summary;
use crate::escape::{markdown_inline, push_html, truncate, url_segment, xml};
use crate::html::{head, verdict_badge};
use crate::results::{write_atomic, RunResults, INDEX_FILE};
use crate::store::{scan_store, StoreRun};
use anyhow::{bail, Result};
use checkers::{CheckResult, Verdict};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The file name of the plan-grouped store page, beside `store/index.html`.
pub const PLANS_PAGE: &str = "plans.html";
/// Failing runs listed per plan in the Markdown summary (the rest are counted).
pub const MARKDOWN_FAILING_RUNS_MAX: usize = 10;
/// Runs shown in a plan's strip on the store page (newest; the counts cover all).
pub const PLANS_PAGE_STRIP_MAX: usize = 60;
/// Days shown per plan in the pass-rate table of the store page (newest).
pub const PLANS_PAGE_DAYS_MAX: usize = 30;
const TEXT_MAX: usize = 300;

/// What happened to one planned run of a matrix.
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, PartialEq)]
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

/// The matrix as a plain-text table for a terminal or a CI log, followed by one block per
/// failing run (seed, finding, rerun command, run folder) and the skipped runs.
pub fn text_table(runs: &[MatrixRun]) -> String {
    let rows = rows(runs);
    let header = [
        "plan",
        "runs",
        "valid",
        "invalid",
        "unknown",
        "error",
        "skipped",
        "failing seeds",
    ];
    let mut table: Vec<[String; 8]> = vec![header.map(String::from)];
    for r in &rows {
        let seeds: Vec<String> = r
            .failing
            .iter()
            .map(|f| match f.seed {
                Some(s) => format!("{s} ({})", f.class()),
                None => format!("- ({})", f.class()),
            })
            .collect();
        table.push([
            r.plan.to_string(),
            r.runs.to_string(),
            r.valid.to_string(),
            r.invalid.to_string(),
            r.unknown.to_string(),
            r.error.to_string(),
            r.skipped.to_string(),
            if seeds.is_empty() {
                "-".to_string()
            } else {
                seeds.join(", ")
            },
        ]);
    }
    let mut widths = [0usize; 8];
    for line in &table {
        for (w, cell) in widths.iter_mut().zip(line.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in &table {
        let mut s = String::new();
        for (i, (cell, w)) in line.iter().zip(widths.iter()).enumerate() {
            if i == 0 || i == 7 {
                let _ = write!(s, "{cell:<w$}  ");
            } else {
                let _ = write!(s, "{cell:>w$}  ");
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    }
    let failing: Vec<&MatrixRun> = rows.iter().flat_map(|r| r.failing.clone()).collect();
    if !failing.is_empty() {
        out.push_str("\nfailing runs:\n");
        for f in failing {
            let _ = writeln!(
                out,
                "  {} {}: {}",
                f.plan,
                f.label(),
                truncate(&f.finding().replace('\n', " "), TEXT_MAX)
            );
            if let Some(cmd) = &f.command {
                let _ = writeln!(out, "    rerun: {cmd}");
            }
            if let Some(dir) = &f.run_dir {
                let _ = writeln!(out, "    run folder: {}", dir.display());
            }
        }
    }
    let skipped: Vec<&MatrixRun> = runs
        .iter()
        .filter(|r| r.class() == RunClass::Skipped)
        .collect();
    if !skipped.is_empty() {
        out.push_str("\nskipped runs:\n");
        for s in skipped {
            let _ = writeln!(out, "  {} {}: {}", s.plan, s.label(), s.finding());
        }
    }
    out
}

/// JUnit XML of a matrix: one `<testsuite>` per plan, one `<testcase>` per run and checker (see
/// the module documentation). Invalid checkers are failures, unknown ones and harness errors
/// are errors, runs that never started are `<skipped>`.
pub fn junit_matrix(runs: &[MatrixRun]) -> String {
    let mut suites: Vec<(String, Vec<&MatrixRun>)> = Vec::new();
    for run in runs {
        match suites.iter_mut().find(|(p, _)| *p == run.plan) {
            Some((_, v)) => v.push(run),
            None => suites.push((run.plan.clone(), vec![run])),
        }
    }
    let mut body = String::new();
    let mut total = Counts::default();
    for (plan, plan_runs) in &suites {
        let mut cases = String::new();
        let mut counts = Counts::default();
        for run in plan_runs {
            testcases(&mut cases, plan, run, &mut counts);
        }
        let time_s: f64 = plan_runs.iter().map(|r| r.elapsed_s).sum();
        let _ = writeln!(
            body,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{time_s:.3}\">",
            xml(plan),
            counts.tests,
            counts.failures,
            counts.errors,
            counts.skipped
        );
        body.push_str(&cases);
        body.push_str("  </testsuite>\n");
        total.add(&counts);
    }
    let time_s: f64 = runs.iter().map(|r| r.elapsed_s).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"faultline test-all\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{time_s:.3}\">",
        total.tests, total.failures, total.errors, total.skipped
    );
    out.push_str(&body);
    out.push_str("</testsuites>\n");
    out
}

#[derive(Default)]
struct Counts {
    tests: usize,
    failures: usize,
    errors: usize,
    skipped: usize,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.tests += o.tests;
        self.failures += o.failures;
        self.errors += o.errors;
        self.skipped += o.skipped;
    }
}

fn run_out(run: &MatrixRun) -> String {
    let mut s = String::new();
    if let Some(seed) = run.seed {
        let _ = writeln!(s, "seed: {seed}");
    }
    if let Some(cmd) = &run.command {
        let _ = writeln!(s, "rerun: {cmd}");
    }
    if let Some(dir) = &run.run_dir {
        let _ = writeln!(s, "run folder: {}", dir.display());
    }
    if let Some(r) = &run.report {
        let _ = writeln!(s, "report: {}", r.display());
    }
    s
}

fn testcases(out: &mut String, plan: &str, run: &MatrixRun, counts: &mut Counts) {
    let case = |out: &mut String, name: &str, time_s: f64| {
        let _ = write!(
            out,
            "    <testcase name=\"{}\" classname=\"{}\" time=\"{time_s:.3}\">",
            xml(&format!("{}: {name}", run.label())),
            xml(plan)
        );
    };
    let system_out = xml(&run_out(run));
    match &run.status {
        MatrixStatus::Skipped { reason } => {
            counts.tests += 1;
            counts.skipped += 1;
            case(out, "not run", 0.0);
            let _ = write!(
                out,
                "\n      <skipped message=\"{}\"/>\n    </testcase>\n",
                xml(&truncate(reason, TEXT_MAX))
            );
        }
        MatrixStatus::Error { message } => {
            counts.tests += 1;
            counts.errors += 1;
            case(out, "harness", run.elapsed_s);
            let _ = write!(
                out,
                "\n      <error type=\"harness\" message=\"{}\">{}</error>\n      <system-out>{system_out}</system-out>\n    </testcase>\n",
                xml(&truncate(message, TEXT_MAX)),
                xml(message)
            );
        }
        MatrixStatus::Checked {
            results,
            harness_errors,
            ..
        } => {
            let mut listed_harness = false;
            for r in results {
                counts.tests += 1;
                case(out, &r.checker, r.elapsed_ms / 1e3);
                out.push('\n');
                match r.verdict {
                    Verdict::Valid => {}
                    Verdict::Invalid => {
                        counts.failures += 1;
                        let first = r.anomalies.first().map_or_else(
                            || r.summary.clone(),
                            |a| {
                                format!(
                                    "{} anomalies, first: {}: {}",
                                    r.anomalies.len(),
                                    a.kind,
                                    a.explanation
                                )
                            },
                        );
                        let _ = writeln!(
                            out,
                            "      <failure type=\"invalid\" message=\"{}\">{}</failure>",
                            xml(&truncate(&first, TEXT_MAX)),
                            xml(&anomaly_summary(r, crate::ci::JUNIT_ANOMALIES_MAX))
                        );
                    }
                    Verdict::Unknown => {
                        counts.errors += 1;
                        let reason = r.unknown_reason.as_deref().unwrap_or(&r.summary);
                        let _ = writeln!(
                            out,
                            "      <error type=\"unknown\" message=\"{}\">{}</error>",
                            xml(&format!("unknown: {}", truncate(reason, TEXT_MAX))),
                            xml(&r.summary)
                        );
                        listed_harness |= r.checker == "run";
                    }
                }
                let _ = write!(
                    out,
                    "      <system-out>{}{system_out}</system-out>\n    </testcase>\n",
                    xml(&format!("{}\n", r.summary))
                );
            }
            if !harness_errors.is_empty() && !listed_harness {
                counts.tests += 1;
                counts.errors += 1;
                case(out, "harness", 0.0);
                let all = harness_errors.join("\n");
                let _ = write!(
                    out,
                    "\n      <error type=\"harness\" message=\"{}\">{}</error>\n      <system-out>{system_out}</system-out>\n    </testcase>\n",
                    xml(&truncate(&harness_errors[0], TEXT_MAX)),
                    xml(&all)
                );
            }
        }
    }
}

/// Writes [`junit_matrix`] to `path`, replacing it.
pub fn write_junit_matrix(path: &Path, runs: &[MatrixRun]) -> Result<()> {
    write_atomic(path, junit_matrix(runs).as_bytes())
}

/// What the Markdown summary says besides the runs.
#[derive(Debug, Clone, Default)]
pub struct MatrixContext {
    /// The heading, e.g. `nightly`.
    pub title: String,
    /// The seed every run's seed was derived from.
    pub master_seed: Option<u64>,
    /// The command that reruns the whole matrix.
    pub command: Option<String>,
    /// Pages worth opening, e.g. `store/plans.html`.
    pub pages: Vec<String>,
    /// Things a reader should know (warnings about plans, an overrun of the total time).
    pub notes: Vec<String>,
}

fn class_word(c: RunClass) -> &'static str {
    match c {
        RunClass::Valid => "✅ valid",
        RunClass::Invalid => "❌ invalid",
        RunClass::Unknown => "⚠️ unknown",
        RunClass::Error => "🛑 harness error",
        RunClass::Skipped => "⏭️ skipped",
    }
}

fn fence_for(s: &str) -> String {
    let (mut best, mut cur) = (0, 0);
    for ch in s.chars() {
        if ch == '`' {
            cur += 1;
            best = best.max(cur);
        } else {
            cur = 0;
        }
    }
    "`".repeat(best.max(2) + 1)
}

/// A Markdown summary of a matrix for a CI step summary: the verdict, the table, each failing
/// run (capped per plan) with its finding and rerun command, the skipped runs, and the seed.
pub fn markdown_matrix(ctx: &MatrixContext, runs: &[MatrixRun]) -> String {
    let rows = rows(runs);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### faultline test-all: {} — {}\n",
        markdown_inline(&ctx.title),
        class_word(matrix_class(runs))
    );
    if rows.is_empty() {
        out.push_str("No plan ran, so nothing can be called valid.\n\n");
    } else {
        out.push_str(
            "| plan | runs | valid | invalid | unknown | error | skipped | failing seeds |\n|---|---:|---:|---:|---:|---:|---:|---|\n",
        );
        for r in &rows {
            let seeds: Vec<String> = r
                .failing
                .iter()
                .map(|f| match f.seed {
                    Some(s) => format!("`{s}` ({})", f.class()),
                    None => format!("({})", f.class()),
                })
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                markdown_inline(r.plan),
                r.runs,
                r.valid,
                r.invalid,
                r.unknown,
                r.error,
                r.skipped,
                if seeds.is_empty() {
                    "–".to_string()
                } else {
                    seeds.join(", ")
                }
            );
        }
        out.push('\n');
    }
    for r in &rows {
        if r.failing.is_empty() {
            continue;
        }
        let _ = writeln!(out, "**{}**:\n", markdown_inline(r.plan));
        for f in r.failing.iter().take(MARKDOWN_FAILING_RUNS_MAX) {
            let _ = writeln!(
                out,
                "- {} {}: {}",
                markdown_inline(&f.label()),
                class_word(f.class()),
                markdown_inline(&truncate(&f.finding(), TEXT_MAX))
            );
            if let Some(cmd) = &f.command {
                let cmd = cmd.replace('\n', " ");
                let fence = fence_for(&cmd);
                let _ = writeln!(out, "\n  {fence}sh\n  {cmd}\n  {fence}\n");
            }
            if let Some(rep) = f.report.as_ref().or(f.run_dir.as_ref()) {
                let _ = writeln!(
                    out,
                    "  report: {}\n",
                    markdown_inline(&rep.display().to_string())
                );
            }
        }
        if r.failing.len() > MARKDOWN_FAILING_RUNS_MAX {
            let _ = writeln!(
                out,
                "- … and {} more failing runs (see the JUnit file or the store)\n",
                r.failing.len() - MARKDOWN_FAILING_RUNS_MAX
            );
        }
    }
    let skipped: Vec<&MatrixRun> = runs
        .iter()
        .filter(|r| r.class() == RunClass::Skipped)
        .collect();
    if !skipped.is_empty() {
        let _ = writeln!(out, "**Skipped** ({} runs):\n", skipped.len());
        for s in skipped.iter().take(MARKDOWN_FAILING_RUNS_MAX * 5) {
            let _ = writeln!(
                out,
                "- {} {}: {}",
                markdown_inline(&s.plan),
                markdown_inline(&s.label()),
                markdown_inline(&truncate(&s.finding(), TEXT_MAX))
            );
        }
        if skipped.len() > MARKDOWN_FAILING_RUNS_MAX * 5 {
            let _ = writeln!(
                out,
                "- … and {} more",
                skipped.len() - MARKDOWN_FAILING_RUNS_MAX * 5
            );
        }
        out.push('\n');
    }
    for n in &ctx.notes {
        let _ = writeln!(out, "> {}\n", markdown_inline(n));
    }
    if let Some(seed) = ctx.master_seed {
        let _ = writeln!(out, "Master seed: `{seed}`\n");
    }
    if let Some(cmd) = &ctx.command {
        let cmd = cmd.replace('\n', " ");
        let fence = fence_for(&cmd);
        let _ = writeln!(out, "Rerun the matrix:\n\n{fence}sh\n{cmd}\n{fence}\n");
    }
    for p in &ctx.pages {
        let _ = writeln!(out, "Runs by plan: {}\n", markdown_inline(p));
    }
    out
}

/// Appends [`markdown_matrix`] to `path`, creating it (a CI step summary file collects every
/// command's summary).
pub fn write_markdown_matrix(path: &Path, ctx: &MatrixContext, runs: &[MatrixRun]) -> Result<()> {
    use anyhow::Context as _;
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("{}: cannot open for the Markdown summary", path.display()))?;
    f.write_all(markdown_matrix(ctx, runs).as_bytes())
        .with_context(|| format!("{}: cannot write the Markdown summary", path.display()))
}

/// One day of a plan on the store page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DayCounts {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub runs: usize,
    pub valid: usize,
    pub invalid: usize,
    pub unknown: usize,
    /// Runs without results (killed, or still going).
    pub no_results: usize,
}

impl DayCounts {
    /// Valid runs among runs with results, in percent; `None` when no run has results.
    pub fn pass_rate_percent(&self) -> Option<f64> {
        let judged = self.valid + self.invalid + self.unknown;
        (judged > 0).then(|| 100.0 * self.valid as f64 / judged as f64)
    }

    fn add(&mut self, v: Option<Verdict>) {
        self.runs += 1;
        match v {
            Some(Verdict::Valid) => self.valid += 1,
            Some(Verdict::Invalid) => self.invalid += 1,
            Some(Verdict::Unknown) => self.unknown += 1,
            None => self.no_results += 1,
        }
    }
}

/// A plan's runs in a store: totals and per-day counts, newest day first.
#[derive(Debug, Clone)]
pub struct PlanHistory {
    pub plan: String,
    pub total: DayCounts,
    pub days: Vec<DayCounts>,
    /// The plan's runs, newest first.
    pub runs: Vec<StoreRun>,
}

/// Groups a store's runs (newest first, as [`scan_store`] returns them) by plan, plans sorted
/// by name.
pub fn plan_histories(runs: Vec<StoreRun>) -> Vec<PlanHistory> {
    let mut by_plan: BTreeMap<String, PlanHistory> = BTreeMap::new();
    for run in runs {
        let h = by_plan
            .entry(run.test.clone())
            .or_insert_with(|| PlanHistory {
                plan: run.test.clone(),
                total: DayCounts {
                    day: "all".into(),
                    ..DayCounts::default()
                },
                days: Vec::new(),
                runs: Vec::new(),
            });
        let v = run.results.as_ref().ok().map(|r| r.verdict);
        h.total.add(v);
        let day = utc_day(run.sort_key_ns);
        match h.days.iter_mut().find(|d| d.day == day) {
            Some(d) => d.add(v),
            None => {
                let mut d = DayCounts {
                    day,
                    ..DayCounts::default()
                };
                d.add(v);
                h.days.push(d);
            }
        }
        h.runs.push(run);
    }
    let mut out: Vec<PlanHistory> = by_plan.into_values().collect();
    for h in &mut out {
        h.days.sort_by(|a, b| b.day.cmp(&a.day));
    }
    out
}

fn utc_day(ns: i128) -> String {
    match time::OffsetDateTime::from_unix_timestamp_nanos(ns) {
        Ok(t) => {
            let d = t.date();
            format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
        }
        Err(_) => "unknown day".into(),
    }
}

/// Writes `store/plans.html`: the store's runs grouped by plan, each with its pass rate, a strip
/// of its newest runs (oldest left, each linked to its report) and pass rates per day.
pub fn render_plans_page(store: &Path) -> Result<PathBuf> {
    if !store.is_dir() {
        bail!(
            "{}: not a directory (expected a faultline store)",
            store.display()
        );
    }
    let histories = plan_histories(scan_store(store)?);
    let page = plans_page(store, &histories);
    let path = store.join(PLANS_PAGE);
    write_atomic(&path, page.as_bytes())?;
    Ok(path)
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), |p| format!("{p:.0}%"))
}

fn run_href(run: &StoreRun) -> String {
    let mut href = format!(
        "{}/{}/",
        url_segment(&run.test),
        url_segment(&run.timestamp)
    );
    if run.dir.join(INDEX_FILE).is_file() {
        href.push_str(INDEX_FILE);
    }
    href
}

fn plans_page(store: &Path, histories: &[PlanHistory]) -> String {
    let mut out = String::with_capacity(4096 + histories.len() * 4096);
    head(
        &mut out,
        "faultline runs by plan",
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; form-action 'none'",
    );
    out.push_str("<body>\n<main>\n<h1>faultline runs by plan</h1>\n<p class=\"note\">Store ");
    push_html(&mut out, &store.display().to_string());
    let _ = writeln!(
        out,
        ": {} plans. Pass rate = valid runs among runs with results (unknown and invalid do not pass; runs without results are listed, not counted). <a href=\"{INDEX_FILE}\">All runs, newest first</a>.</p>",
        histories.len()
    );
    if histories.is_empty() {
        out.push_str("<p>No runs yet.</p>\n");
    } else {
        out.push_str("<table id=\"plans\">\n<tr><th>plan</th><th>runs</th><th>valid</th><th>invalid</th><th>unknown</th><th>no results</th><th>pass rate</th><th>latest</th></tr>\n");
        for h in histories {
            out.push_str("<tr class=\"plan\"><td><a href=\"#plan-");
            push_html(&mut out, &url_segment(&h.plan));
            out.push_str("\">");
            push_html(&mut out, &h.plan);
            let t = &h.total;
            let _ = write!(
                out,
                "</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>",
                t.runs,
                t.valid,
                t.invalid,
                t.unknown,
                t.no_results,
                pct(t.pass_rate_percent())
            );
            match h
                .runs
                .first()
                .map(|r| r.results.as_ref().map(|r| r.verdict))
            {
                Some(Ok(v)) => verdict_badge(&mut out, v),
                _ => out.push_str("<span class=\"verdict v-none\">no results</span>"),
            }
            out.push_str("</td></tr>\n");
        }
        out.push_str("</table>\n");
    }
    for h in histories {
        out.push_str("<section class=\"plan\" id=\"plan-");
        push_html(&mut out, &url_segment(&h.plan));
        out.push_str("\">\n<h2>");
        push_html(&mut out, &h.plan);
        let _ = writeln!(
            out,
            "</h2>\n<p>{} runs, pass rate {}. Newest {} runs, oldest left:</p>\n<p class=\"strip\">",
            h.total.runs,
            pct(h.total.pass_rate_percent()),
            h.runs.len().min(PLANS_PAGE_STRIP_MAX)
        );
        for run in h.runs.iter().take(PLANS_PAGE_STRIP_MAX).rev() {
            let (class, word) = match &run.results {
                Ok(r) => (format!("v-{}", r.verdict), r.verdict.as_str().to_string()),
                Err(_) => ("v-none".to_string(), "no results".to_string()),
            };
            let seed = run
                .results
                .as_ref()
                .ok()
                .and_then(|r: &RunResults| r.seed)
                .map(|s| format!(", seed {s}"))
                .unwrap_or_default();
            out.push_str("<a class=\"verdict ");
            out.push_str(&class);
            out.push_str("\" href=\"");
            push_html(&mut out, &run_href(run));
            out.push_str("\" title=\"");
            push_html(&mut out, &format!("{}: {word}{seed}", run.timestamp));
            out.push_str("\">");
            out.push_str(match word.as_str() {
                "valid" => "✓",
                "invalid" => "✗",
                "unknown" => "?",
                _ => "·",
            });
            out.push_str("</a> ");
        }
        out.push_str("</p>\n<table class=\"days\">\n<tr><th>day (UTC)</th><th>runs</th><th>valid</th><th>invalid</th><th>unknown</th><th>no results</th><th>pass rate</th></tr>\n");
        for d in h.days.iter().take(PLANS_PAGE_DAYS_MAX) {
            out.push_str("<tr class=\"day\"><td>");
            push_html(&mut out, &d.day);
            let rate = d.pass_rate_percent();
            let _ = write!(
                out,
                "</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>",
                d.runs, d.valid, d.invalid, d.unknown, d.no_results
            );
            if let Some(p) = rate {
                let _ = write!(
                    out,
                    "<span style=\"display:inline-block;width:{:.0}px;height:10px;background:#2e7d32\"></span><span style=\"display:inline-block;width:{:.0}px;height:10px;background:#c62828\"></span> ",
                    p,
                    100.0 - p
                );
            }
            out.push_str(&pct(rate));
            out.push_str("</td></tr>\n");
        }
        if h.days.len() > PLANS_PAGE_DAYS_MAX {
            let _ = writeln!(
                out,
                "<tr><td colspan=\"7\" class=\"note\">… {} older days</td></tr>",
                h.days.len() - PLANS_PAGE_DAYS_MAX
            );
        }
        out.push_str("</table>\n</section>\n");
    }
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use checkers::Anomaly;

    fn checked(plan: &str, attempt: u32, seed: u64, results: Vec<CheckResult>) -> MatrixRun {
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

    fn skipped(plan: &str, attempt: u32, seed: u64, why: &str) -> MatrixRun {
        MatrixRun {
            status: MatrixStatus::Skipped { reason: why.into() },
            command: None,
            run_dir: None,
            elapsed_s: 0.0,
            ..checked(plan, attempt, seed, vec![])
        }
    }

    fn stale_read() -> CheckResult {
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
    fn matrix() -> Vec<MatrixRun> {
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

    #[test]
    fn the_table_counts_each_class_and_names_failing_seeds_and_commands() {
        let runs = matrix();
        let text = text_table(&runs);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("plan") && lines[0].ends_with("failing seeds"));
        let cells = |l: &str| l.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert_eq!(cells(lines[1]), ["good", "2", "2", "0", "0", "0", "0", "-"]);
        assert_eq!(
            cells(lines[2]),
            ["bad", "1", "0", "1", "0", "0", "1", "22", "(invalid)"]
        );
        assert!(
            text.contains("rerun: faultline run --name bad --seed 22"),
            "{text}"
        );
        assert!(text.contains("bad run 2 (seed 44): skipped: --time-limit-total 1s reached"));
        assert_eq!(exit_code(&runs), 1);
    }

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

    #[test]
    fn junit_has_one_suite_per_plan_and_one_case_per_run_and_checker() {
        let runs = matrix();
        let xml_text = junit_matrix(&runs);
        let doc = roxmltree::Document::parse(&xml_text).unwrap();
        let root = doc.root_element();
        assert_eq!(root.attribute("tests"), Some("4"));
        assert_eq!(root.attribute("failures"), Some("1"));
        assert_eq!(root.attribute("skipped"), Some("1"));
        let suites: Vec<_> = root
            .children()
            .filter(|n| n.has_tag_name("testsuite"))
            .collect();
        let names: Vec<_> = suites
            .iter()
            .map(|s| s.attribute("name").unwrap())
            .collect();
        assert_eq!(names, ["good", "bad"]);
        let cases: Vec<(String, Vec<String>)> = suites[1]
            .children()
            .filter(|n| n.has_tag_name("testcase"))
            .map(|c| {
                (
                    c.attribute("name").unwrap().to_string(),
                    c.children()
                        .filter(|n| n.is_element())
                        .map(|n| n.tag_name().name().to_string())
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            cases,
            [
                (
                    "run 1 (seed 22): linearizable".to_string(),
                    vec!["failure".to_string(), "system-out".to_string()]
                ),
                (
                    "run 2 (seed 44): not run".to_string(),
                    vec!["skipped".to_string()]
                ),
            ]
        );
        assert!(xml_text.contains("op 44 read 0 &lt;stale&gt;"));
    }

    #[test]
    fn a_harness_error_without_a_run_result_gets_its_own_error_case() {
        let mut run = checked("p", 1, 9, vec![CheckResult::valid("linearizable", "ok")]);
        if let MatrixStatus::Checked { harness_errors, .. } = &mut run.status {
            harness_errors.push("report: disk full".into());
        }
        let failed = MatrixRun {
            status: MatrixStatus::Error {
                message: "plans/x.toml: line 1: unknown field `sytem`".into(),
            },
            ..checked("plans/x.toml", 1, 1, vec![])
        };
        let text = junit_matrix(&[run.clone(), failed]);
        let doc = roxmltree::Document::parse(&text).unwrap();
        let errors: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("error"))
            .map(|n| n.attribute("message").unwrap().to_string())
            .collect();
        assert_eq!(
            errors,
            [
                "report: disk full",
                "plans/x.toml: line 1: unknown field `sytem`"
            ]
        );
        assert_eq!(run.class(), RunClass::Error);
    }

    #[test]
    fn markdown_lists_the_table_failing_runs_skips_and_the_master_seed() {
        let ctx = MatrixContext {
            title: "nightly".into(),
            master_seed: Some(7),
            command: Some("faultline test-all --seed 7".into()),
            pages: vec!["store/plans.html".into()],
            notes: vec![],
        };
        let md = markdown_matrix(&ctx, &matrix());
        assert!(
            md.starts_with("### faultline test-all: nightly — ❌ invalid"),
            "{md}"
        );
        assert!(md.contains("| good | 2 | 2 | 0 | 0 | 0 | 0 | – |"), "{md}");
        assert!(
            md.contains("| bad | 1 | 0 | 1 | 0 | 0 | 1 | `22` (invalid) |"),
            "{md}"
        );
        assert!(
            md.contains("```sh\n  faultline run --name bad --seed 22\n  ```"),
            "{md}"
        );
        assert!(md.contains("op 44 read 0 &lt;stale&gt;"), "{md}");
        assert!(md.contains("**Skipped** (1 runs)"), "{md}");
        assert!(md.contains("Master seed: `7`"));
        assert!(md.contains("Runs by plan: store/plans.html"));
    }

    fn write_run(store: &Path, test: &str, ts: &str, verdict: Option<Verdict>, started: &str) {
        let dir = store.join(test).join(ts);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(crate::HISTORY_FILE), "").unwrap();
        if let Some(v) = verdict {
            let result = match v {
                Verdict::Valid => CheckResult::valid("c", "ok"),
                Verdict::Invalid => CheckResult::invalid("c", "bad", vec![]),
                Verdict::Unknown => CheckResult::unknown("c", "budget"),
            };
            let mut r = RunResults::new(test, vec![result]);
            r.started_at = Some(started.into());
            r.seed = Some(5);
            r.write(&dir.join(crate::RESULTS_FILE)).unwrap();
        }
    }

    #[test]
    fn the_plans_page_groups_runs_by_plan_with_pass_rates_per_day() {
        let store = tempfile::tempdir().unwrap();
        let s = store.path();
        write_run(s, "etcd", "a", Some(Verdict::Valid), "2024-05-01T01:00:00Z");
        write_run(
            s,
            "etcd",
            "b",
            Some(Verdict::Invalid),
            "2024-05-01T02:00:00Z",
        );
        write_run(s, "etcd", "c", Some(Verdict::Valid), "2024-05-02T01:00:00Z");
        write_run(s, "etcd", "d", None, "");
        write_run(
            s,
            "<memory>",
            "a",
            Some(Verdict::Unknown),
            "2024-05-02T01:00:00Z",
        );
        let h = plan_histories(scan_store(s).unwrap());
        assert_eq!(h.len(), 2);
        let etcd = h.iter().find(|p| p.plan == "etcd").unwrap();
        assert_eq!(
            (etcd.total.runs, etcd.total.valid, etcd.total.no_results),
            (4, 2, 1)
        );
        assert_eq!(
            etcd.total.pass_rate_percent().map(|p| p.round()),
            Some(67.0)
        );
        let days: Vec<(&str, usize, Option<f64>)> = etcd
            .days
            .iter()
            .filter(|d| d.day.starts_with("2024"))
            .map(|d| (d.day.as_str(), d.runs, d.pass_rate_percent()))
            .collect();
        assert_eq!(
            days,
            [
                ("2024-05-02", 1, Some(100.0)),
                ("2024-05-01", 2, Some(50.0))
            ]
        );

        let page_path = render_plans_page(s).unwrap();
        let page = std::fs::read_to_string(page_path).unwrap();
        let html = scraper::Html::parse_document(&page);
        let sel = |q: &str| scraper::Selector::parse(q).unwrap();
        assert_eq!(html.select(&sel("tr.plan")).count(), 2);
        assert_eq!(html.select(&sel("section.plan")).count(), 2);
        assert!(page.contains("&lt;memory&gt;") && !page.contains("<memory>"));
        let strip: Vec<String> = html
            .select(&sel("section#plan-etcd p.strip a"))
            .map(|a| a.value().attr("title").unwrap().to_string())
            .collect();
        assert_eq!(strip.len(), 4);
        assert_eq!(strip[0], "a: valid, seed 5");
        assert!(strip[3].starts_with("d: no results"), "{strip:?}");
    }
}
