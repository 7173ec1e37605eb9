//! What a CI job keeps: JUnit XML (one test case per checker) and a Markdown step summary.
//!
//! JUnit XML is written by [`crate::junit`] (what each verdict becomes there is explained in
//! that module); here a suite is a run or a history file and a case is a checker.
//!
//! The Markdown fits GitHub's step summary (rendered Markdown with inline HTML, 1 MiB per step):
//! text from the history is escaped for both, and anomalies are capped per checker so that the
//! summary stays far below the limit however many anomalies a run finds.

use crate::escape::{markdown_inline, truncate};
use crate::junit as xml_junit;
use crate::results::combined_verdict;
use anyhow::{Context, Result};
use checkers::{CheckResult, Verdict};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

/// Anomalies listed per checker in a JUnit failure text.
pub const JUNIT_ANOMALIES_MAX: usize = 100;
/// Anomalies listed per checker in the Markdown summary.
pub const MARKDOWN_ANOMALIES_MAX: usize = 10;
/// Characters kept of one explanation or summary in the Markdown summary.
const MARKDOWN_TEXT_MAX: usize = 500;
const OPS_LISTED_MAX: usize = 20;

/// What a CI summary says besides the checker results.
#[derive(Debug, Clone, Copy, Default)]
pub struct CiContext<'a> {
    /// The test or history name: the JUnit suite name and the summary's heading.
    pub title: &'a str,
    pub seed: Option<u64>,
    /// The command that reruns the test.
    pub command: Option<&'a str>,
    /// Where the HTML report is (a path or URL), if one was written.
    pub report: Option<&'a str>,
}

fn ops_list(ops: &[u64]) -> String {
    let mut s = String::new();
    for (i, o) in ops.iter().take(OPS_LISTED_MAX).enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "#{o}");
    }
    if ops.len() > OPS_LISTED_MAX {
        let _ = write!(s, " and {} more", ops.len() - OPS_LISTED_MAX);
    }
    s
}

/// The anomaly summary of one checker: its summary, then one line per anomaly.
pub fn anomaly_summary(result: &CheckResult, max: usize) -> String {
    let mut s = result.summary.clone();
    for a in result.anomalies.iter().take(max) {
        let _ = write!(s, "\n- {}: {}", a.kind, a.explanation);
        if !a.ops.is_empty() {
            let _ = write!(s, " (ops {})", ops_list(&a.ops));
        }
    }
    if result.anomalies.len() > max {
        let _ = write!(
            s,
            "\n- ... and {} more anomalies",
            result.anomalies.len() - max
        );
    }
    s
}

/// JUnit XML: one `<testsuite>` named `suite`, one `<testcase>` per checker.
pub fn junit(suite: &str, results: &[CheckResult]) -> String {
    junit_suites(&[(suite, results)])
}

/// JUnit XML with one `<testsuite>` per (name, results) pair, e.g. one per history file that
/// `faultline check` judged; the elements come from [`crate::junit`].
pub fn junit_suites(suites: &[(&str, &[CheckResult])]) -> String {
    let mut body = String::new();
    let mut total = xml_junit::Counts::default();
    let mut total_s = 0.0;
    for (suite, results) in suites {
        let mut cases = String::new();
        let mut counts = xml_junit::Counts::default();
        for r in results.iter() {
            let outcome = xml_junit::checker_outcome(r);
            outcome.count(&mut counts);
            // A passing case says what was checked; a failing one says it in its element.
            let system_out = (r.verdict == Verdict::Valid).then_some(r.summary.as_str());
            xml_junit::testcase(
                &mut cases,
                &r.checker,
                suite,
                r.elapsed_ms / 1e3,
                &outcome,
                system_out,
            );
        }
        let suite_s: f64 = results.iter().map(|r| r.elapsed_ms).sum::<f64>() / 1e3;
        xml_junit::testsuite(&mut body, suite, &counts, suite_s, &cases);
        total.add(&counts);
        total_s += results.iter().map(|r| r.elapsed_ms).sum::<f64>();
    }
    xml_junit::document("faultline", &total, false, total_s / 1e3, &body)
}

/// Writes [`junit`] to `path`, replacing it.
pub fn write_junit(path: &Path, suite: &str, results: &[CheckResult]) -> Result<()> {
    write_junit_suites(path, &[(suite, results)])
}

/// Writes [`junit_suites`] to `path`, replacing it.
pub fn write_junit_suites(path: &Path, suites: &[(&str, &[CheckResult])]) -> Result<()> {
    std::fs::write(path, junit_suites(suites))
        .with_context(|| format!("{}: cannot write JUnit XML", path.display()))
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Valid => "✅ valid",
        Verdict::Invalid => "❌ invalid",
        Verdict::Unknown => "⚠️ unknown",
    }
}

/// A Markdown summary for a CI job: overall verdict, a table of checkers, the anomalies (capped),
/// and how to rerun.
pub fn markdown_summary(ctx: &CiContext<'_>, results: &[CheckResult]) -> String {
    let verdict = combined_verdict(results);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### faultline: {} — {}\n",
        markdown_inline(ctx.title),
        verdict_word(verdict)
    );
    if results.is_empty() {
        out.push_str("No checker ran, so nothing can be called valid.\n\n");
    } else {
        out.push_str("| checker | verdict | anomalies | summary |\n|---|---|---|---|\n");
        for r in results {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                markdown_inline(&r.checker),
                verdict_word(r.verdict),
                r.anomalies.len(),
                markdown_inline(&truncate(&r.summary, MARKDOWN_TEXT_MAX))
            );
        }
        out.push('\n');
    }
    for r in results {
        if let (Verdict::Unknown, Some(reason)) = (r.verdict, &r.unknown_reason) {
            let _ = writeln!(
                out,
                "**{}** is unknown: {}\n",
                markdown_inline(&r.checker),
                markdown_inline(&truncate(reason, MARKDOWN_TEXT_MAX))
            );
        }
        if r.anomalies.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "**{}** found {} anomalies:\n",
            markdown_inline(&r.checker),
            r.anomalies.len()
        );
        for a in r.anomalies.iter().take(MARKDOWN_ANOMALIES_MAX) {
            let _ = write!(
                out,
                "- **{}**: {}",
                markdown_inline(&a.kind),
                markdown_inline(&truncate(&a.explanation, MARKDOWN_TEXT_MAX))
            );
            if !a.ops.is_empty() {
                let _ = write!(out, " (ops {})", ops_list(&a.ops));
            }
            out.push('\n');
        }
        if r.anomalies.len() > MARKDOWN_ANOMALIES_MAX {
            let _ = writeln!(
                out,
                "- … and {} more (see the report)",
                r.anomalies.len() - MARKDOWN_ANOMALIES_MAX
            );
        }
        out.push('\n');
    }
    if let Some(seed) = ctx.seed {
        let _ = writeln!(out, "Seed: `{seed}`\n");
    }
    if let Some(cmd) = ctx.command {
        // A fenced block shows the command verbatim; a fence longer than any backtick run in
        // the command cannot be closed by it.
        let longest = longest_run(cmd, '`');
        let fence = "`".repeat(longest.max(2) + 1);
        let _ = writeln!(
            out,
            "Rerun:\n\n{fence}sh\n{}\n{fence}\n",
            cmd.replace('\n', " ")
        );
    }
    if let Some(report) = ctx.report {
        let _ = writeln!(out, "Report: {}\n", markdown_inline(report));
    }
    out
}

fn longest_run(s: &str, c: char) -> usize {
    let (mut best, mut cur) = (0, 0);
    for ch in s.chars() {
        if ch == c {
            cur += 1;
            best = best.max(cur);
        } else {
            cur = 0;
        }
    }
    best
}

/// Appends [`markdown_summary`] to `path`, creating it: a CI step summary file (such as
/// `$GITHUB_STEP_SUMMARY`) collects the summaries of every command in the step.
pub fn write_markdown_summary(
    path: &Path,
    ctx: &CiContext<'_>,
    results: &[CheckResult],
) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("{}: cannot open for the Markdown summary", path.display()))?;
    f.write_all(markdown_summary(ctx, results).as_bytes())
        .with_context(|| format!("{}: cannot write the Markdown summary", path.display()))
}
