//! Reports: what a person or a CI job reads after a run.
//!
//! This crate will render a run's history and checker results into a self-contained HTML report
//! (plots drawn with plotters, a timeline of operations, the evidence of every anomaly), and into
//! JUnit XML and a Markdown summary for CI. It reads histories and results only: it never talks to
//! Docker or to the system under test.
