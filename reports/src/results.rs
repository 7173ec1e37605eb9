//! The run's machine-readable result (`results.json`) and the files of a run directory.
//!
//! [`RunResults`] is the single definition of `results.json`: the run code writes it with
//! [`RunResults::write`], reports read it back with [`RunResults::read`]. Keeping one struct for
//! both sides means a field cannot be written under one name and read under another.

use anyhow::{bail, Context, Result};
use checkers::{CheckResult, History, Verdict};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The history of a run, streamed while the run goes (faultline JSONL).
pub const HISTORY_FILE: &str = "history.jsonl";
/// The verdicts of a run: [`RunResults`] as JSON.
pub const RESULTS_FILE: &str = "results.json";
/// Everything needed to rerun: a free-form JSON object (system, workload, nemesis, seed, ...).
pub const PLAN_FILE: &str = "plan.json";
/// The HTML report of a run, or of a store.
pub const INDEX_FILE: &str = "index.html";

/// `results.json`: what a run concluded, and how to run it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResults {
    /// The test's name (the `<test>` of `store/<test>/<ts>/`).
    pub test: String,
    /// The run's verdict: normally [`combined_verdict`] of `results`; a run cut short may say
    /// `unknown` even when every checker that ran said `valid`.
    pub verdict: Verdict,
    /// One result per checker, in the order they ran.
    pub results: Vec<CheckResult>,
    /// The seed every random choice of the run came from, when it had one.
    #[serde(default)]
    pub seed: Option<u64>,
    /// The exact command that reruns this test with the same seed and plan.
    #[serde(default)]
    pub command: Option<String>,
    /// When the run started, RFC 3339 (e.g. `2024-05-01T12:00:00Z`).
    #[serde(default)]
    pub started_at: Option<String>,
}

impl RunResults {
    /// Results of `test` whose verdict is the composition of the checkers' verdicts.
    pub fn new(test: impl Into<String>, results: Vec<CheckResult>) -> Self {
        RunResults {
            test: test.into(),
            verdict: combined_verdict(&results),
            results,
            seed: None,
            command: None,
            started_at: None,
        }
    }

    /// Reads `results.json`; errors name the file and what is wrong with it.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{}: not a faultline results file (expected {{\"test\", \"verdict\", \"results\", ...}})",
                path.display()
            )
        })
    }

    /// Writes `results.json` (pretty JSON), replacing the file atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        write_atomic(path, text.as_bytes())
    }
}

/// The composition of the checkers' verdicts: invalid beats unknown beats valid. No checker at
/// all is `unknown`: nothing was checked, so nothing can be called valid.
pub fn combined_verdict(results: &[CheckResult]) -> Verdict {
    results
        .iter()
        .map(|r| r.verdict)
        .reduce(Verdict::combine)
        .unwrap_or(Verdict::Unknown)
}

/// Reads `plan.json`, which must be a JSON object.
pub fn read_plan(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let plan: Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid JSON", path.display()))?;
    if !plan.is_object() {
        bail!(
            "{}: expected a JSON object (the run's plan), found {}",
            path.display(),
            json_kind(&plan)
        );
    }
    Ok(plan)
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Everything a run directory holds that a report is made from.
#[derive(Debug, Clone)]
pub struct LoadedRun {
    pub history: History,
    pub results: RunResults,
    pub plan: Value,
}

/// Reads a run directory: `history.jsonl`, `results.json` and `plan.json`. A missing or
/// malformed file is an error naming it.
pub fn load_run(run_dir: &Path) -> Result<LoadedRun> {
    if !run_dir.is_dir() {
        bail!(
            "{}: not a directory (expected a run directory such as store/<test>/<timestamp>)",
            run_dir.display()
        );
    }
    let path = |name: &str| -> Result<PathBuf> {
        let p = run_dir.join(name);
        if !p.is_file() {
            bail!(
                "{}: missing; a run directory holds {HISTORY_FILE}, {RESULTS_FILE} and {PLAN_FILE}",
                p.display()
            );
        }
        Ok(p)
    };
    let (history_path, results_path, plan_path) =
        (path(HISTORY_FILE)?, path(RESULTS_FILE)?, path(PLAN_FILE)?);
    let results = RunResults::read(&results_path)?;
    let plan = read_plan(&plan_path)?;
    let history =
        checkers::formats::read_path(&history_path, Some(checkers::formats::Format::Jsonl))
            .map_err(anyhow::Error::msg)?;
    Ok(LoadedRun {
        history,
        results,
        plan,
    })
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so a
/// reader never sees half a file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{}: not a file path", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, bytes).with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("{}: cannot replace with {}", path.display(), tmp.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_file_round_trips_with_the_documented_field_names() {
        let mut r = RunResults::new(
            "etcd-register",
            vec![checkers::CheckResult::valid("stats", "10 ops")],
        );
        r.seed = Some(42);
        let json: Value = serde_json::to_value(&r).unwrap();
        for field in [
            "test",
            "verdict",
            "results",
            "seed",
            "command",
            "started_at",
        ] {
            assert!(json.get(field).is_some(), "missing {field} in {json}");
        }
        assert_eq!(json["verdict"], "valid");
        assert_eq!(json["command"], Value::Null);
        let back: RunResults = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn no_checker_is_unknown_and_invalid_beats_unknown() {
        assert_eq!(combined_verdict(&[]), Verdict::Unknown);
        let results = vec![
            CheckResult::valid("a", ""),
            CheckResult::unknown("b", "budget"),
            CheckResult::invalid(
                "c",
                "",
                vec![checkers::Anomaly {
                    kind: "x".into(),
                    ops: vec![0],
                    explanation: "x".into(),
                    data: serde_json::Value::Null,
                }],
            ),
        ];
        assert_eq!(combined_verdict(&results), Verdict::Invalid);
        assert_eq!(combined_verdict(&results[..2]), Verdict::Unknown);
    }

    #[test]
    fn load_run_names_the_missing_or_malformed_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_run(dir.path()).unwrap_err().to_string();
        assert!(err.contains("history.jsonl: missing"), "{err}");

        std::fs::write(dir.path().join(HISTORY_FILE), "").unwrap();
        std::fs::write(dir.path().join(RESULTS_FILE), "{\"test\": 1}").unwrap();
        std::fs::write(dir.path().join(PLAN_FILE), "{}").unwrap();
        let err = format!("{:#}", load_run(dir.path()).unwrap_err());
        assert!(
            err.contains("results.json: not a faultline results file"),
            "{err}"
        );

        RunResults::new("t", vec![])
            .write(&dir.path().join(RESULTS_FILE))
            .unwrap();
        std::fs::write(dir.path().join(PLAN_FILE), "[1]").unwrap();
        let err = format!("{:#}", load_run(dir.path()).unwrap_err());
        assert!(err.contains("plan.json: expected a JSON object"), "{err}");
    }
}
