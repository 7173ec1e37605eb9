//! `faultline calibrate` end to end on one real scenario: the testbed in containers, the I6
//! version race with its bug on (must be detected) and off (must pass), the table, the JSON and
//! the exit code.

#[path = "../testsupport/prereq.rs"]
mod prereq;

use serde_json::Value;
use std::path::Path;
use std::process::Command;

#[test]
fn one_scenario_is_detected_with_its_bug_and_passes_without() {
    if let Err(e) = faultline::cluster::docker::available() {
        return prereq::skip("no Docker daemon", &format!("{e:#}")).unwrap_or(());
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("calibrate-i6");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let plan = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/plans/scenarios/i6-version-race.toml"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["calibrate", "--plans", plan, "--seeds", "1", "--seed", "3"])
        .args(["--time-limit-each", "4s", "--min-detected", "1", "--quiet"])
        .arg("--store")
        .arg(dir.join("store"))
        .arg("--json")
        .arg(dir.join("calibration.json"))
        .arg("--summary-md")
        .arg(dir.join("summary.md"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");

    let row = stdout
        .lines()
        .find(|l| l.starts_with("i6-version-race"))
        .unwrap_or_else(|| panic!("a row for the scenario: {stdout}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[1], "I6", "{row}");
    assert_eq!(cells[2], "version-race", "{row}");
    assert_eq!(cells[3], "1/1", "detected: {row}");
    assert_eq!(cells[4], "0/1", "false alarms: {row}");

    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("calibration.json")).unwrap())
            .unwrap();
    let runs = json[0]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    let on = runs.iter().find(|r| r["bug_on"] == true).unwrap();
    let off = runs.iter().find(|r| r["bug_on"] == false).unwrap();
    assert_eq!(on["seed"], off["seed"], "a pair shares its seed");
    assert_eq!(on["outcome"], "invalid");
    assert!(
        on["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "multiple-winners"),
        "{on}"
    );
    let t = on["detected_after_s"].as_f64().expect("a detection time");
    assert!(t > 0.0 && t < 60.0, "{t}");
    assert_eq!(off["outcome"], "valid");
    for r in runs {
        let run_dir = Path::new(r["run_dir"].as_str().unwrap());
        assert!(
            run_dir.join("index.html").is_file(),
            "{}",
            run_dir.display()
        );
    }
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(md.contains("| I6 | `version-race` |"), "{md}");
}

#[test]
fn a_testbed_plan_without_exactly_one_bug_is_one_clear_error() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("calibrate-no-bug");
    std::fs::create_dir_all(&dir).unwrap();
    let plan = dir.join("no-bug.toml");
    std::fs::write(
        &plan,
        "name = \"no-bug\"\nsystem = \"testbed\"\nworkload = \"cas-register\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "calibrate",
            "--plans",
            plan.to_str().unwrap(),
            "--seeds",
            "1",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("no-bug.toml") && stderr.contains("exactly one bug"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

/// Real systems' plans (here the in-process ones, no Docker): a plan under `known-anomalies/`
/// must be flagged, any other is a control that must pass; the table says which is which.
#[test]
fn a_known_anomaly_is_detected_and_a_control_passes() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("calibrate-real");
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "calibrate",
            "--plans",
            "plans/known-anomalies/memory-stale-register.toml",
            "--plans",
            "plans/memory-register.toml",
            "--seeds",
            "1",
            "--time-limit-each",
            "3s",
            "--quiet",
            "--store",
            dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let row = |name: &str| -> Vec<String> {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row {name}: {stdout}"));
        line.split_whitespace().map(str::to_string).collect()
    };
    assert_eq!(
        row("memory-stale-register")[1..6],
        ["memory-stale", "known", "anomaly", "1/1", "-"],
        "{stdout}"
    );
    assert_eq!(
        row("memory-register")[1..5],
        ["memory", "control", "-", "0/1"],
        "{stdout}"
    );
}

/// Ctrl-C stops a calibration: the run in progress is healed, torn down and checked, no other
/// run starts, the table holds what ran, and the exit code says it was interrupted.
#[test]
fn sigint_stops_the_calibration_after_the_run_in_progress() {
    if let Err(e) = faultline::cluster::docker::available() {
        return prereq::skip("no Docker daemon", &format!("{e:#}")).unwrap_or(());
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("calibrate-sigint");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let plan = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/plans/scenarios/i6-version-race.toml"
    );
    let child = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["calibrate", "--plans", plan, "--seeds", "5", "--seed", "4"])
        .args(["--time-limit-each", "20s", "--quiet"])
        .arg("--store")
        .arg(dir.join("store"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Well inside the first run (cluster start plus a 20 s workload).
    std::thread::sleep(std::time::Duration::from_secs(8));
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(90),
        "calibrate took {:?} to stop",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stdout.contains("runs never started"), "{stdout}");
    let started_runs = stderr.matches("] i6-version-race seed").count();
    assert_eq!(
        started_runs, 1,
        "only the run in progress finishes: {stderr}"
    );
    let clean = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["clean", "--dry-run"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&clean.stdout);
    assert!(text.contains("would remove 0 container(s)"), "{text}");
}
