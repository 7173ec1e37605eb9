//! JUnit XML of a matrix: one `<testsuite>` per plan and one `<testcase>` per run and checker,
//! named `run N (seed S): checker`, so a dashboard's test history follows each checker of a plan
//! across nights while the seed that reruns a failure stays in the name. A run that never
//! started is one `<skipped>` case, a harness failure one `<error>` case; every case's
//! `<system-out>` holds the seed, the rerun command and the run folder. The elements are
//! written by [`crate::junit`], as for a single run.

use super::{MatrixRun, MatrixStatus, TEXT_MAX};
use crate::escape::truncate;
use crate::junit::{self, Counts, Outcome};
use crate::results::write_atomic;
use anyhow::Result;
use std::fmt::Write as _;
use std::path::Path;

/// JUnit XML of a matrix (see the module documentation). Invalid checkers are failures, unknown
/// ones and harness errors are errors, runs that never started are `<skipped>`.
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
        junit::testsuite(&mut body, plan, &counts, time_s, &cases);
        total.add(&counts);
    }
    let time_s: f64 = runs.iter().map(|r| r.elapsed_s).sum();
    junit::document("faultline test-all", &total, true, time_s, &body)
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

/// The cases of one run: one per checker, plus one for harness errors no checker reported.
fn testcases(out: &mut String, plan: &str, run: &MatrixRun, counts: &mut Counts) {
    let name = |case: &str| format!("{}: {case}", run.label());
    let mut case = |out: &mut String,
                    case_name: &str,
                    time_s: f64,
                    outcome: Outcome<'_>,
                    system_out: Option<&str>| {
        outcome.count(counts);
        junit::testcase(out, &name(case_name), plan, time_s, &outcome, system_out);
    };
    let system_out = run_out(run);
    match &run.status {
        MatrixStatus::Skipped { reason } => {
            let outcome = Outcome::Skipped {
                message: truncate(reason, TEXT_MAX).into_owned(),
            };
            case(out, "not run", 0.0, outcome, None);
        }
        MatrixStatus::Error { message } => {
            let outcome = Outcome::Error {
                kind: "harness",
                message: truncate(message, TEXT_MAX).into_owned(),
                text: message.clone(),
            };
            case(out, "harness", run.elapsed_s, outcome, Some(&system_out));
        }
        MatrixStatus::Checked {
            results,
            harness_errors,
            ..
        } => {
            let mut listed_harness = false;
            for r in results {
                let outcome = junit::checker_outcome(r);
                listed_harness |= matches!(outcome, Outcome::Error { .. }) && r.checker == "run";
                let text = format!("{}\n{system_out}", r.summary);
                case(out, &r.checker, r.elapsed_ms / 1e3, outcome, Some(&text));
            }
            if !harness_errors.is_empty() && !listed_harness {
                let outcome = Outcome::Error {
                    kind: "harness",
                    message: truncate(&harness_errors[0], TEXT_MAX).into_owned(),
                    text: harness_errors.join("\n"),
                };
                case(out, "harness", 0.0, outcome, Some(&system_out));
            }
        }
    }
}

/// Writes [`junit_matrix`] to `path`, replacing it.
pub fn write_junit_matrix(path: &Path, runs: &[MatrixRun]) -> Result<()> {
    write_atomic(path, junit_matrix(runs).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::matrix::RunClass;
    use checkers::CheckResult;

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
}
