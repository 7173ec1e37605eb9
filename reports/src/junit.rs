//! JUnit XML, written in one place: the elements (`<testsuites>`, `<testsuite>`, `<testcase>`
//! and its children) and what a checker's verdict becomes in them. [`crate::ci`] (one run or
//! `faultline check`) and [`crate::matrix::junit`] (a matrix of runs) only decide which cases
//! exist and what they are named.
//!
//! JUnit has no "unknown": a checker that could not decide is an `<error>` (the test produced no
//! result), never a pass and never a skip, so a dashboard shows it red or orange as the exit
//! code 2 does. An invalid checker is a `<failure>` whose message is its first anomaly and whose
//! text is the anomaly summary. Every attribute and text goes through [`xml`].

use crate::ci::{anomaly_summary, JUNIT_ANOMALIES_MAX};
use crate::escape::{truncate, xml};
use checkers::{CheckResult, Verdict};
use std::fmt::Write as _;

/// Characters kept of a failure or error message attribute (the full text is the element's).
pub(crate) const MESSAGE_MAX: usize = 300;

/// Test case counts of a suite or of the whole document.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counts {
    pub tests: usize,
    pub failures: usize,
    pub errors: usize,
    pub skipped: usize,
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        self.tests += o.tests;
        self.failures += o.failures;
        self.errors += o.errors;
        self.skipped += o.skipped;
    }
}

/// What a test case holds besides its `<system-out>`.
pub(crate) enum Outcome<'a> {
    Passed,
    Failure {
        kind: &'a str,
        message: String,
        text: String,
    },
    Error {
        kind: &'a str,
        message: String,
        text: String,
    },
    Skipped {
        message: String,
    },
}

impl Outcome<'_> {
    /// Counts this outcome as one test case.
    pub fn count(&self, counts: &mut Counts) {
        counts.tests += 1;
        match self {
            Outcome::Passed => {}
            Outcome::Failure { .. } => counts.failures += 1,
            Outcome::Error { .. } => counts.errors += 1,
            Outcome::Skipped { .. } => counts.skipped += 1,
        }
    }
}

/// A checker's verdict as a test case outcome: valid passes, invalid is a failure (message: the
/// first anomaly; text: the anomaly summary), unknown is an error (message: the reason).
pub(crate) fn checker_outcome(r: &CheckResult) -> Outcome<'static> {
    match r.verdict {
        Verdict::Valid => Outcome::Passed,
        Verdict::Invalid => {
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
            Outcome::Failure {
                kind: "invalid",
                message: truncate(&first, MESSAGE_MAX).into_owned(),
                text: anomaly_summary(r, JUNIT_ANOMALIES_MAX),
            }
        }
        Verdict::Unknown => {
            let reason = r.unknown_reason.as_deref().unwrap_or(&r.summary);
            Outcome::Error {
                kind: "unknown",
                message: format!("unknown: {}", truncate(reason, MESSAGE_MAX)),
                text: r.summary.clone(),
            }
        }
    }
}

/// One `<testcase>`, each child element on its own line.
pub(crate) fn testcase(
    out: &mut String,
    name: &str,
    classname: &str,
    time_s: f64,
    outcome: &Outcome<'_>,
    system_out: Option<&str>,
) {
    let _ = write!(
        out,
        "    <testcase name=\"{}\" classname=\"{}\" time=\"{time_s:.3}\">",
        xml(name),
        xml(classname)
    );
    match outcome {
        Outcome::Passed => {}
        Outcome::Failure {
            kind,
            message,
            text,
        } => {
            let _ = write!(
                out,
                "\n      <failure type=\"{kind}\" message=\"{}\">{}</failure>",
                xml(message),
                xml(text)
            );
        }
        Outcome::Error {
            kind,
            message,
            text,
        } => {
            let _ = write!(
                out,
                "\n      <error type=\"{kind}\" message=\"{}\">{}</error>",
                xml(message),
                xml(text)
            );
        }
        Outcome::Skipped { message } => {
            let _ = write!(out, "\n      <skipped message=\"{}\"/>", xml(message));
        }
    }
    if let Some(text) = system_out {
        let _ = write!(out, "\n      <system-out>{}</system-out>", xml(text));
    }
    out.push_str("\n    </testcase>\n");
}

/// One `<testsuite>` around already written `cases`.
pub(crate) fn testsuite(out: &mut String, name: &str, counts: &Counts, time_s: f64, cases: &str) {
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{time_s:.3}\">",
        xml(name),
        counts.tests,
        counts.failures,
        counts.errors,
        counts.skipped
    );
    out.push_str(cases);
    out.push_str("  </testsuite>\n");
}

/// The document: `<testsuites>` around already written `suites`. `with_skipped` adds the
/// `skipped` count to the root (a matrix has skipped runs; a single run never does).
pub(crate) fn document(
    name: &str,
    counts: &Counts,
    with_skipped: bool,
    time_s: f64,
    suites: &str,
) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let skipped = if with_skipped {
        format!(" skipped=\"{}\"", counts.skipped)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\"{skipped} time=\"{time_s:.3}\">",
        xml(name),
        counts.tests,
        counts.failures,
        counts.errors
    );
    out.push_str(suites);
    out.push_str("</testsuites>\n");
    out
}
