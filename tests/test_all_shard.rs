//! `faultline test-all --shard K/N` and `faultline merge`, as CI would use them: each shard a
//! separate process with its own store, then one merge. The merged matrix must be the unsharded
//! one: the same runs, with the same seeds, in the same order, with the same verdicts.
//!
//! The plans are the repository's in-memory plans (no Docker): the register and the queue, which
//! must be valid, and the seeded-bug stale register, which must be invalid (it serves dozens of
//! stale reads a second), so the comparison covers both verdicts and the exit code 1. The lossy
//! queue is left out: it drops 1% of messages, so whether a one-second run loses one depends on
//! how many messages it got through, and "the same verdict" would hold only most of the time.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SEED: &str = "9";
const TEST_COUNT: &str = "2";
/// Runs in the matrix: three in-memory plans, two runs each.
const RUNS: usize = 6;

/// A fresh folder for one test.
fn workdir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("shard-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn faultline() -> Command {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
}

/// `faultline test-all` over the in-memory plans, with extra arguments.
fn test_all(store: &Path, seed: &str, extra: &[&str]) -> Command {
    let mut cmd = faultline();
    cmd.arg("test-all")
        .arg("--plans")
        .arg(format!(
            "{}/plans/memory-*.toml",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg("--plans")
        .arg(format!(
            "{}/plans/known-anomalies/memory-stale-register.toml",
            env!("CARGO_MANIFEST_DIR")
        ))
        .args(["--test-count", TEST_COUNT, "--time-limit-each", "1s"])
        .args(["--seed", seed, "--quiet", "--store"])
        .arg(store)
        .args(extra);
    cmd
}

/// Runs shards `ks` of `n` as concurrent processes; returns each one's output.
fn shards(dir: &Path, ks: &[u32], n: u32, seed: &str) -> Vec<Output> {
    let children: Vec<_> = ks
        .iter()
        .map(|k| {
            let store = dir.join(format!("shard-{k}"));
            let mut cmd = test_all(&store, seed, &["--shard", &format!("{k}/{n}")]);
            cmd.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

fn merge(dir: &Path, stores: &[&str], extra: &[&str]) -> Output {
    faultline()
        .arg("merge")
        .args(stores.iter().map(|s| dir.join(s)))
        .arg("--into")
        .arg(dir.join("merged"))
        .args(extra)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every test case of our own JUnit output, in order: `suite | case | outcome`.
fn junit_cases(path: &Path) -> Vec<String> {
    let xml = std::fs::read_to_string(path).unwrap();
    let attr = |line: &str, name: &str| {
        let key = format!(" {name}=\"");
        let start = line.find(&key).unwrap() + key.len();
        line[start..].split('"').next().unwrap().to_string()
    };
    let mut cases: Vec<String> = Vec::new();
    for line in xml.lines().map(str::trim_start) {
        if line.starts_with("<testcase ") {
            cases.push(format!(
                "{} | {} | passed",
                attr(line, "classname"),
                attr(line, "name")
            ));
        } else if let Some(tag) = ["<failure", "<error", "<skipped"]
            .iter()
            .find(|t| line.starts_with(**t))
        {
            let last = cases.last_mut().unwrap();
            *last = last.replace("| passed", &format!("| {}", &tag[1..]));
        }
    }
    cases
}

/// The table's rows (counts and failing seeds per plan) and every failing run's rerun command.
/// Not the findings' wording: which stale read a run met first depends on timing.
fn table(stdout: &str) -> Vec<String> {
    let rows = stdout.lines().take_while(|l| !l.is_empty());
    let reruns = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("rerun: faultline run "));
    rows.chain(reruns).map(String::from).collect()
}

/// Run folders (holding results.json) in a store.
fn run_folders(store: &Path) -> usize {
    let mut n = 0;
    for test in std::fs::read_dir(store).unwrap() {
        let test = test.unwrap().path();
        if test.is_dir() && !test.is_symlink() {
            for run in std::fs::read_dir(&test).unwrap() {
                n += usize::from(run.unwrap().path().join("results.json").is_file());
            }
        }
    }
    n
}

#[test]
fn three_shards_merged_equal_the_unsharded_matrix() {
    let dir = workdir("equal");
    let whole = test_all(&dir.join("whole"), SEED, &["--junit"])
        .arg(dir.join("whole.xml"))
        .output()
        .unwrap();
    assert_eq!(whole.status.code(), Some(1), "{}", text(&whole));

    let outs = shards(&dir, &[1, 2, 3], 3, SEED);
    let mut owned = 0;
    for (k, out) in outs.iter().enumerate() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = stderr
            .lines()
            .find(|l| l.contains(&format!("shard {}/3 owns ", k + 1)))
            .unwrap_or_else(|| panic!("shard {} did not say what it owns:\n{stderr}", k + 1));
        owned += line
            .split(" owns ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap();
        assert!(line.contains(&format!("of {RUNS} runs")), "{line}");
        assert!(dir
            .join(format!(
                "shard-{}/faultline-shard-{}-of-3.json",
                k + 1,
                k + 1
            ))
            .is_file());
    }
    assert_eq!(owned, RUNS, "the shards together own every run once");

    let merged = merge(&dir, &["shard-1", "shard-2", "shard-3"], &[]);
    assert_eq!(
        merged.status.code(),
        whole.status.code(),
        "{}",
        text(&merged)
    );
    // Same runs, same seeds, same order, same verdict of every checker.
    let want = junit_cases(&dir.join("whole.xml"));
    assert_eq!(want.len(), RUNS, "one checker per in-memory run: {want:?}");
    assert_eq!(junit_cases(&dir.join("merged/junit.xml")), want);
    assert!(want.iter().any(|c| c.ends_with("| failure")));
    assert!(want.iter().any(|c| c.ends_with("| passed")));
    // The same table (failing seeds and rerun commands included).
    let whole_table = table(&String::from_utf8_lossy(&whole.stdout));
    assert_eq!(
        whole_table.len(),
        1 + 3 + 2,
        "header, 3 plans, 2 reruns: {whole_table:?}"
    );
    assert_eq!(table(&String::from_utf8_lossy(&merged.stdout)), whole_table);
    // One store with every run, its pages and the summary.
    let m = dir.join("merged");
    assert_eq!(run_folders(&m), RUNS);
    for f in ["index.html", "plans.html", "summary.md"] {
        assert!(m.join(f).is_file(), "{f}");
    }
    let md = std::fs::read_to_string(m.join("summary.md")).unwrap();
    assert!(
        md.contains("❌ invalid") && md.contains("Master seed: `9`"),
        "{md}"
    );
    let index = std::fs::read_to_string(m.join("index.html")).unwrap();
    assert!(
        index.contains(&format!(": {RUNS} runs, newest first")),
        "{index}"
    );
}

#[test]
fn a_missing_shard_is_named_and_its_runs_are_errors() {
    let dir = workdir("missing");
    let outs = shards(&dir, &[1, 3], 3, SEED);
    assert!(outs.iter().all(|o| o.status.code().is_some()));
    let merged = merge(&dir, &["shard-1", "shard-3"], &[]);
    let all = text(&merged);
    assert!(all.contains("shard 2/3 is missing"), "{all}");
    let cases = junit_cases(&dir.join("merged/junit.xml"));
    let lost: Vec<&String> = cases
        .iter()
        .filter(|c| c.contains(": harness |") && c.ends_with("| error"))
        .collect();
    assert!(!lost.is_empty(), "{cases:?}");
    let xml = std::fs::read_to_string(dir.join("merged/junit.xml")).unwrap();
    assert!(xml.contains("shard 2/3 is missing from the merge"));
    // Every planned run is still a row: the ones that ran plus the lost ones.
    assert_eq!(cases.len(), RUNS, "{cases:?}");
    // Never green: invalid if a present shard found an anomaly, else a harness error.
    assert!(matches!(merged.status.code(), Some(1) | Some(3)), "{all}");
}

#[test]
fn stores_of_different_seeds_or_versions_or_the_same_shard_twice_are_refused() {
    let dir = workdir("refused");
    shards(&dir, &[1], 2, SEED);
    // Shard 2 of another night (another master seed).
    let other = dir.join("other");
    let out = test_all(&other, "10", &["--shard", "2/2"])
        .output()
        .unwrap();
    assert!(out.status.code().is_some());

    let refused = merge(&dir, &["shard-1", "other"], &[]);
    assert_eq!(refused.status.code(), Some(3));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("master seed 10 vs 9") && err.contains("--allow-mixed"),
        "{err}"
    );
    assert!(!dir.join("merged/junit.xml").exists());

    // Told otherwise, it merges both, each matrix missing the shard it did not get.
    let mixed = merge(&dir, &["shard-1", "other"], &["--allow-mixed"]);
    let all = text(&mixed);
    assert!(
        all.contains("shard 2/2 is missing") && all.contains("shard 1/2 is missing"),
        "{all}"
    );
    assert_eq!(junit_cases(&dir.join("merged/junit.xml")).len(), 2 * RUNS);

    // Another faultline version.
    let manifest = other.join("faultline-shard-2-of-2.json");
    let text_of = std::fs::read_to_string(&manifest).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text_of).unwrap();
    v["master_seed"] = serde_json::json!(9);
    v["faultline_version"] = serde_json::json!("0.0.0-other");
    std::fs::write(&manifest, v.to_string()).unwrap();
    let err = text(&merge(&dir, &["shard-1", "other"], &[]));
    assert!(err.contains("faultline version 0.0.0-other vs"), "{err}");

    // The same shard twice.
    let err = text(&merge(&dir, &["shard-1", "shard-1"], &[]));
    assert!(err.contains("shard 1/2 is given twice"), "{err}");

    // A folder that is not a shard's store.
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    let out = merge(&dir, &["empty"], &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out).contains("no shard manifest"));
}

#[test]
fn bad_shard_flags_are_one_line_errors_naming_the_flag() {
    let dir = workdir("flags");
    for bad in ["0/3", "4/3", "junk", "1/0", "2"] {
        let out = test_all(&dir.join("s"), SEED, &["--shard", bad])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{bad}: {err}");
        assert_eq!(err.lines().count(), 1, "{bad}: {err}");
        assert!(err.contains("--shard"), "{bad}: {err}");
    }
    // A shard needs a store: that is what the merge reads.
    let out = faultline()
        .args([
            "test-all",
            "--plans",
            "plans/memory-*.toml",
            "--shard",
            "1/2",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--shard: needs --store"));
    assert!(!dir.join("s").exists(), "nothing ran");
}

#[test]
fn a_shard_that_owns_nothing_exits_0_and_still_counts_as_present() {
    let dir = workdir("empty-shard");
    let plan = format!("{}/plans/memory-register.toml", env!("CARGO_MANIFEST_DIR"));
    let run = |k: u32| {
        faultline()
            .args(["test-all", "--plans", &plan, "--time-limit-each", "1s"])
            .args(["--seed", SEED, "--quiet", "--shard", &format!("{k}/2")])
            .arg("--store")
            .arg(dir.join(format!("shard-{k}")))
            .output()
            .unwrap()
    };
    let (one, two) = (run(1), run(2));
    assert_eq!(one.status.code(), Some(0), "{}", text(&one));
    assert_eq!(two.status.code(), Some(0), "{}", text(&two));
    assert!(
        text(&two).contains("shard 2/2 owns 0 of 1 runs"),
        "{}",
        text(&two)
    );
    let merged = merge(&dir, &["shard-1", "shard-2"], &[]);
    assert_eq!(merged.status.code(), Some(0), "{}", text(&merged));
    assert!(!text(&merged).contains("missing"));
    // Merging into a store that already has runs (earlier nights) adds beside them.
    let again = merge(&dir, &["shard-1", "shard-2"], &[]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(run_folders(&dir.join("merged")), 2);
    let cases = junit_cases(&dir.join("merged/junit.xml"));
    assert_eq!(cases.len(), 1, "the JUnit file is this merge's: {cases:?}");
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// `false` (after printing why) without Docker or the base image; a panic under `CI=true`.
fn docker_and_image_or_skip(test: &str) -> bool {
    let missing = match faultline::cluster::docker::available() {
        Err(e) => Some(format!("no Docker daemon ({e:#})")),
        Ok(()) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let image = faultline::images::base_image_ref();
            let exists = runtime.block_on(async {
                let docker = faultline::cluster::docker::connect()?;
                faultline::images::image_exists(&docker, &image).await
            });
            match exists {
                Ok(true) => None,
                Ok(false) => Some(format!(
                    "the base image {image} does not exist; build it with `faultline images build`"
                )),
                Err(e) => Some(format!("cannot ask Docker for {image}: {e:#}")),
            }
        }
    };
    match missing {
        None => true,
        Some(why) if in_ci() => panic!("{test}: CI=true but {why}"),
        Some(why) => {
            eprintln!("SKIPPED {test}: {why}");
            false
        }
    }
}

/// The testbed in Docker: two scenario plans with their bug on (found 10/10 in calibration,
/// within a second) and one with it off (never flagged), as two shard processes, each starting
/// its own clusters, against the same plans unsharded.
#[test]
fn testbed_shards_merged_equal_the_unsharded_matrix() {
    if !docker_and_image_or_skip("testbed_shards_merged_equal_the_unsharded_matrix") {
        return;
    }
    let dir = workdir("testbed");
    let plans = dir.join("plans");
    std::fs::create_dir_all(&plans).unwrap();
    let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/scenarios");
    for name in ["b5-double-create", "i1-idempotency-race"] {
        std::fs::copy(
            scenarios.join(format!("{name}.toml")),
            plans.join(format!("{name}.toml")),
        )
        .unwrap();
    }
    let b5 = std::fs::read_to_string(scenarios.join("b5-double-create.toml")).unwrap();
    let off = b5
        .replace("name = \"b5-double-create\"", "name = \"b5-bug-off\"")
        .replace("bug = [\"double-create\"]", "bug = []");
    assert_ne!(off, b5);
    std::fs::write(plans.join("b5-bug-off.toml"), off).unwrap();

    let run = |store: &str, extra: &[&str]| {
        let mut cmd = faultline();
        cmd.arg("test-all")
            .arg("--plans")
            .arg(plans.join("*.toml"))
            .args(["--time-limit-each", "4s", "--seed", SEED, "--quiet"])
            .arg("--store")
            .arg(dir.join(store))
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd.spawn().unwrap()
    };
    let whole = run(
        "whole",
        &["--junit", dir.join("whole.xml").to_str().unwrap()],
    )
    .wait_with_output()
    .unwrap();
    assert_eq!(whole.status.code(), Some(1), "{}", text(&whole));
    let one = run("shard-1", &["--shard", "1/2"]);
    let two = run("shard-2", &["--shard", "2/2"]);
    for out in [
        one.wait_with_output().unwrap(),
        two.wait_with_output().unwrap(),
    ] {
        assert!(
            matches!(out.status.code(), Some(0) | Some(1)),
            "{}",
            text(&out)
        );
    }
    let merged = merge(&dir, &["shard-1", "shard-2"], &[]);
    assert_eq!(merged.status.code(), Some(1), "{}", text(&merged));
    let want = junit_cases(&dir.join("whole.xml"));
    assert_eq!(junit_cases(&dir.join("merged/junit.xml")), want);
    let verdicts: Vec<&str> = want
        .iter()
        .map(|c| c.rsplit(" | ").next().unwrap())
        .collect();
    assert!(
        verdicts.contains(&"failure") && verdicts.contains(&"passed"),
        "{want:?}"
    );
    assert_eq!(run_folders(&dir.join("merged")), 3);
}
