//! A Markdown summary of a matrix for a CI step summary (GitHub's is rendered Markdown with
//! inline HTML, 1 MiB per step): text from runs is escaped for both, and failing and skipped
//! runs are capped so that the summary stays far below the limit however large the matrix.

use super::{matrix_class, rows, MatrixRun, RunClass, TEXT_MAX};
use crate::escape::{markdown_inline, truncate};
use anyhow::Result;
use std::fmt::Write as _;
use std::path::Path;

/// Failing runs listed per plan in the Markdown summary (the rest are counted).
pub const MARKDOWN_FAILING_RUNS_MAX: usize = 10;

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

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

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
}
