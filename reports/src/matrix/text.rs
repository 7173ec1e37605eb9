//! The matrix as a plain-text table for a terminal or a CI log.

use super::{rows, MatrixRun, RunClass, TEXT_MAX};
use crate::escape::truncate;
use std::fmt::Write as _;

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

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::matrix::exit_code;

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
}
