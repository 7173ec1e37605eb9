//! `faultline test-all` over short in-memory plans (no Docker): the table, the files it leaves
//! (store runs, JUnit, Markdown, the plan-grouped store page) and the exit code.
//!
//! The known-bad plan is the in-memory register with seeded stale reads (`memory-stale`): at
//! 500 ops/s for a second it serves dozens of stale reads, each one a linearizability
//! violation, so "invalid" is what the checker must say, not a hope.

use faultline::test_all::{load_plans, run_matrix, TestAllOptions};
use reports::matrix::RunClass;
use std::path::{Path, PathBuf};
use std::process::Command;
use tokio_util::sync::CancellationToken;

const GOOD: &str = "name = \"mem-good\"\nsystem = \"memory\"\nworkload = \"register\"\nnemesis = []\ntime_limit = \"1s\"\nrate = 500\n";
const STALE: &str = "name = \"mem-stale\"\nsystem = \"memory-stale\"\nworkload = \"register\"\nnemesis = []\ntime_limit = \"1s\"\nrate = 500\n";

/// A fresh folder holding the given plan files.
fn plans(test: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("test-all-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("plans")).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join("plans").join(name), text).unwrap();
    }
    dir
}

fn options(dir: &Path, count: u32) -> TestAllOptions {
    TestAllOptions {
        patterns: vec![format!("{}/plans/*.toml", dir.display())],
        test_count: count,
        seed: 9,
        store: Some(dir.join("store").display().to_string()),
        quiet: true,
        ..TestAllOptions::default()
    }
}

/// Runs the matrix in-process; returns (class per run as "plan run N: class", exit code, table).
async fn matrix(opts: &TestAllOptions) -> (Vec<String>, i32, String) {
    let files = faultline::test_all::expand_patterns(&opts.patterns).unwrap();
    let entries = load_plans(&files, opts);
    let out = run_matrix(&entries, opts, &CancellationToken::new())
        .await
        .unwrap();
    let classes = out
        .runs
        .iter()
        .map(|r| format!("{} run {}: {}", r.plan, r.attempt, r.class()))
        .collect();
    (classes, out.exit_code, out.table)
}

fn cells(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

#[test]
fn a_valid_and_a_stale_plan_give_one_table_the_files_and_exit_1() {
    let dir = plans("cli", &[("good.toml", GOOD), ("stale.toml", STALE)]);
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["test-all", "--plans"])
        .arg(format!("{}/plans/*.toml", dir.display()))
        .args(["--test-count", "2", "--seed", "9", "--quiet", "--store"])
        .arg(dir.join("store"))
        .arg("--junit")
        .arg(dir.join("junit.xml"))
        .arg("--summary-md")
        .arg(dir.join("summary.md"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");

    // Every run's seed is printed before it starts; four runs, four distinct seeds.
    let started: Vec<(String, u64)> = stderr
        .lines()
        .filter_map(|l| {
            let rest = l.split("] ").nth(1)?;
            let (plan, tail) = rest.split_once(" run ")?;
            let seed = tail.split(", seed ").nth(1)?.split(':').next()?;
            Some((plan.to_string(), seed.parse().ok()?))
        })
        .collect();
    assert_eq!(started.len(), 4, "{stderr}");
    let mut seeds: Vec<u64> = started.iter().map(|(_, s)| *s).collect();
    seeds.sort_unstable();
    seeds.dedup();
    assert_eq!(seeds.len(), 4, "seeds must be distinct: {started:?}");
    let stale_seeds: Vec<u64> = started
        .iter()
        .filter(|(p, _)| p == "mem-stale")
        .map(|(_, s)| *s)
        .collect();

    // The table: one row per plan, the failing seeds, and a rerun command for each.
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        cells(lines[0]),
        ["plan", "runs", "valid", "invalid", "unknown", "error", "skipped", "failing", "seeds"]
    );
    assert_eq!(
        cells(lines[1]),
        ["mem-good", "2", "2", "0", "0", "0", "0", "-"]
    );
    let expected_stale = format!(
        "mem-stale 2 0 2 0 0 0 {} (invalid), {} (invalid)",
        stale_seeds[0], stale_seeds[1]
    );
    assert_eq!(cells(lines[2]).join(" "), expected_stale);
    for s in &stale_seeds {
        // The rerun command names the plan file (its tables have no flags) and every value.
        let plan_file = format!(
            "rerun: faultline run --plan {}",
            dir.join("plans/stale.toml").display()
        );
        let rerun = "--name mem-stale --system memory-stale --workload register --nemesis none";
        assert!(
            stdout.lines().any(|l| l.contains(&plan_file)
                && l.contains(rerun)
                && l.ends_with(&format!("--seed {s}"))),
            "no rerun command for seed {s}:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("rerun the matrix: faultline test-all --plans"),
        "{stdout}"
    );
    assert!(stdout.contains("--test-count 2") && stdout.contains("--seed 9"));
    assert!(stdout.contains("exit 1: an anomaly was found"), "{stdout}");

    // The store keeps every run, each with the seed it was announced with.
    for (plan, seed) in &started {
        let runs: Vec<PathBuf> = std::fs::read_dir(dir.join("store").join(plan))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        let found = runs.iter().any(|r| {
            let results = reports::RunResults::read(&r.join("results.json")).unwrap();
            r.join("history.jsonl").is_file() && results.seed == Some(*seed)
        });
        assert!(found, "no run of {plan} with seed {seed} in {runs:?}");
    }
    let page = std::fs::read_to_string(dir.join("store/plans.html")).unwrap();
    assert!(page.contains("mem-good") && page.contains("mem-stale"));
    assert!(stdout.contains("runs by plan:") && stdout.contains("plans.html"));

    // JUnit: one suite per plan, one case per run and checker, failures for the stale runs.
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    let doc = roxml(&junit);
    assert_eq!(
        doc,
        vec![
            ("mem-good".to_string(), 2, 0),
            ("mem-stale".to_string(), 2, 2)
        ],
        "{junit}"
    );
    for s in &stale_seeds {
        assert!(
            junit.contains(&format!("run 1 (seed {s}): linearizable"))
                || junit.contains(&format!("run 2 (seed {s}): linearizable"))
        );
    }

    // Markdown: the verdict, the same table, and how to rerun.
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(md.contains("❌ invalid"), "{md}");
    assert!(
        md.contains("| mem-good | 2 | 2 | 0 | 0 | 0 | 0 | – |"),
        "{md}"
    );
    assert!(
        md.contains(&format!("`{}` (invalid)", stale_seeds[0])),
        "{md}"
    );
    assert!(md.contains("Master seed: `9`"));
}

/// (suite name, test cases, failures) of a JUnit file; a tiny reader, enough for our own output.
fn roxml(xml: &str) -> Vec<(String, usize, usize)> {
    xml.lines()
        .filter(|l| l.trim_start().starts_with("<testsuite "))
        .map(|l| {
            let attr = |name: &str| {
                let key = format!("{name}=\"");
                let start = l.find(&key).unwrap() + key.len();
                l[start..].split('"').next().unwrap().to_string()
            };
            (
                attr("name"),
                attr("tests").parse().unwrap(),
                attr("failures").parse().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_valid_runs_exit_0() {
    let dir = plans("valid", &[("good.toml", GOOD)]);
    let (classes, code, _) = matrix(&options(&dir, 1)).await;
    assert_eq!(classes, ["mem-good run 1: valid"]);
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_plan_file_is_an_error_row_and_the_other_plans_still_run() {
    let dir = plans(
        "bad-plan",
        &[
            ("a-bad.toml", "sytem = \"etcd\"\n"),
            (
                "b-no-such-workload.toml",
                "name = \"x\"\nsystem = \"memory\"\nworkload = \"bank\"\nnemesis = []\n",
            ),
            ("c-good.toml", GOOD),
            ("d-same-name.toml", GOOD),
        ],
    );
    let (classes, code, table) = matrix(&options(&dir, 1)).await;
    assert_eq!(code, 3, "{table}");
    assert_eq!(classes.len(), 4, "{classes:?}");
    assert!(
        classes[0].ends_with("a-bad.toml run 1: error"),
        "{classes:?}"
    );
    assert!(classes[1].ends_with("b-no-such-workload.toml run 1: error"));
    assert!(classes[2].ends_with("d-same-name.toml run 1: error"));
    assert_eq!(classes[3], "mem-good run 1: valid");
    assert!(
        table.contains("a-bad.toml: line 1: unknown field `sytem`"),
        "{table}"
    );
    assert!(
        table.contains("system \"memory\" has no workload \"bank\""),
        "{table}"
    );
    assert!(table.contains("is also the name of"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_fast_stops_after_the_first_failing_run_and_reports_the_rest_skipped() {
    let dir = plans(
        "fail-fast",
        &[("a-stale.toml", STALE), ("b-good.toml", GOOD)],
    );
    let opts = TestAllOptions {
        fail_fast: true,
        ..options(&dir, 2)
    };
    let (classes, code, table) = matrix(&opts).await;
    assert_eq!(
        classes,
        [
            "mem-stale run 1: invalid",
            "mem-good run 1: skipped",
            "mem-stale run 2: skipped",
            "mem-good run 2: skipped"
        ]
    );
    assert_eq!(code, 1);
    assert!(table.contains("mem-good run 1 (seed "), "{table}");
    assert!(
        table.contains("--fail-fast: stopped after mem-stale run 1"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_total_time_limit_skips_what_cannot_fit_and_says_so() {
    let long = GOOD
        .replace("mem-good", "mem-long")
        .replace("\"1s\"", "\"30s\"");
    let dir = plans("total", &[("a-good.toml", GOOD), ("b-long.toml", &long)]);
    let opts = TestAllOptions {
        time_limit_total: Some(std::time::Duration::from_secs(6)),
        ..options(&dir, 1)
    };
    let (classes, code, table) = matrix(&opts).await;
    assert_eq!(
        classes,
        ["mem-good run 1: valid", "mem-long run 1: skipped"]
    );
    // A plan that never ran leaves the matrix unknown, not valid.
    assert_eq!(code, 2);
    assert!(
        table.contains("--time-limit-total 6s:") && table.contains("30s time limit"),
        "{table}"
    );
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("mem-long"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(row, ["mem-long", "0", "0", "0", "0", "0", "1", "-"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_matrix_reports_the_runs_it_did_not_start() {
    let dir = plans("interrupted", &[("good.toml", GOOD)]);
    let cancel = CancellationToken::new();
    cancel.cancel();
    let opts = options(&dir, 2);
    let files = faultline::test_all::expand_patterns(&opts.patterns).unwrap();
    let out = run_matrix(&load_plans(&files, &opts), &opts, &cancel)
        .await
        .unwrap();
    let classes: Vec<RunClass> = out.runs.iter().map(|r| r.class()).collect();
    assert_eq!(classes, [RunClass::Skipped, RunClass::Skipped]);
    assert_eq!(out.exit_code, 2);
    assert!(out.table.contains("interrupted"), "{}", out.table);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_the_harness_cannot_complete_is_an_error_and_the_next_plans_still_run() {
    let dir = plans("harness-error", &[]);
    let unwritable = GOOD.replace("mem-good", "mem-nowhere")
        + "store = \"/proc/faultline-cannot-create-this\"\n";
    let good = format!("{GOOD}store = \"{}\"\n", dir.join("store").display());
    std::fs::write(dir.join("plans/a.toml"), unwritable).unwrap();
    std::fs::write(dir.join("plans/b.toml"), good).unwrap();
    let opts = TestAllOptions {
        store: None,
        ..options(&dir, 1)
    };
    let (classes, code, table) = matrix(&opts).await;
    assert_eq!(
        classes,
        ["mem-nowhere run 1: error", "mem-good run 1: valid"],
        "{table}"
    );
    assert_eq!(code, 3);
    assert!(
        table.contains("harness error: /proc/faultline-cannot-create-this"),
        "{table}"
    );
}
