//! The rough edges a new user hits first, through the real binary: `--help` examples that paste,
//! the checker list, bad flag values named as typed, and a CI log that hears from a run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn faultline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .output()
        .expect("the faultline binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("cli_new_user")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The example commands of a help text: each a `faultline ...` line and its continuations.
fn examples(help: &str) -> Vec<Vec<String>> {
    let section = help.split("Examples:").nth(1).expect("an Examples section");
    let mut out: Vec<Vec<String>> = vec![];
    let mut continued = false;
    for line in section.lines().take_while(|l| !l.starts_with("Exit codes")) {
        let t = line.trim();
        if t.is_empty() {
            continued = false;
            continue;
        }
        if continued {
            out.last_mut().unwrap().push(line.to_string());
        } else {
            assert!(
                t.starts_with("faultline "),
                "not a command or a continuation: {line:?}"
            );
            out.push(vec![line.to_string()]);
        }
        continued = t.ends_with('\\');
    }
    out
}

/// Every example line fits 80 columns, so no terminal wraps it; a command spread over lines
/// ends each line but the last with a backslash, so it pastes as one command.
fn assert_examples_paste(subcommand: &str) {
    let help = stdout(&faultline(&[subcommand, "--help"]));
    let commands = examples(&help);
    assert!(!commands.is_empty(), "{help}");
    for lines in &commands {
        for (i, line) in lines.iter().enumerate() {
            assert!(line.chars().count() <= 80, "wraps in a terminal: {line:?}");
            let last = i + 1 == lines.len();
            assert_eq!(!last, line.trim_end().ends_with('\\'), "{lines:?}");
        }
    }
    assert!(
        commands.iter().any(|c| c.len() > 1),
        "a long example is split: {help}"
    );
}

#[test]
fn run_help_examples_paste_as_printed() {
    assert_examples_paste("run");
}

#[test]
fn check_help_examples_paste_as_printed() {
    assert_examples_paste("check");
}

#[test]
fn check_help_lists_every_checker_with_what_it_catches() {
    let help = stdout(&faultline(&["check", "--help"]));
    let list = help.split("Checkers:").nth(1).expect("a Checkers section");
    let rows: Vec<&str> = list
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect();
    for name in checkers::CHECKER_NAMES {
        let row = rows
            .iter()
            .find(|r| r.split_whitespace().next() == Some(*name))
            .unwrap_or_else(|| panic!("{name} is not listed: {list}"));
        assert!(
            row.split_whitespace().count() > 3,
            "says what {name} catches: {row}"
        );
    }
    assert_eq!(rows.len(), checkers::CHECKER_NAMES.len(), "{list}");
}

/// A bad `--time-limit` is one line on stderr naming the flag as typed, exit 3, no panic.
fn bad_time_limit(subcommand: &[&str], value: &str) -> String {
    let mut args = subcommand.to_vec();
    args.extend(["--time-limit", value]);
    let out = faultline(&args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("--time-limit"), "names the flag: {err}");
    assert!(
        !err.contains("time_limit"),
        "no internal field names: {err}"
    );
    err
}

#[test]
fn a_bad_duration_names_the_flag_and_says_what_is_wrong() {
    let run = ["run", "--system", "memory"];
    let check = ["check", "no-such-history.jsonl"];
    for cmd in [&run[..], &check[..]] {
        assert!(bad_time_limit(cmd, "abc").contains("not a duration"));
        assert!(bad_time_limit(cmd, "-5s").contains("durations are positive"));
        assert!(bad_time_limit(cmd, "99999999999999999999h").contains("too long"));
    }
}

#[test]
fn a_run_whose_stderr_is_not_a_terminal_prints_a_progress_line_every_10_s() {
    let store = scratch("progress");
    let out = faultline(&[
        "run",
        "--system",
        "memory",
        "--nemesis",
        "none",
        "--time-limit",
        "12s",
        "--rate",
        "50",
        "--seed",
        "7",
        "--store",
        store.to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let progress: Vec<&str> = err.lines().filter(|l| l.contains("progress:")).collect();
    assert_eq!(progress.len(), 1, "one line at 10 s of a 12 s run: {err}");
    let line = progress[0];
    for part in [
        "10 s",
        " ops (",
        " ok, ",
        " fail, ",
        " info)",
        "fault: no fault",
    ] {
        assert!(line.contains(part), "{part:?} in {line}");
    }
}

fn signal(child: &std::process::Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

#[test]
fn a_second_ctrl_c_says_cleanup_is_in_progress_and_skips_the_final_phase() {
    let store = scratch("ctrl-c");
    let log = store.join("stderr.txt");
    let mut child = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "run",
            "--system",
            "memory",
            "--nemesis",
            "none",
            "--time-limit",
            "60s",
        ])
        .args(["--name", "twice", "--seed", "3", "--store"])
        .arg(&store)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("faultline run starts");
    // Bounded: the run records within seconds; the interrupted run exits within 60 s.
    let t0 = std::time::Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("main phase")
    {
        let history = std::fs::read_dir(store.join("twice"))
            .ok()
            .and_then(|mut d| d.next())
            .map(|e| e.unwrap().path().join("history.jsonl"));
        if history.is_some_and(|h| h.exists()) || t0.elapsed().as_secs() > 30 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    signal(&child, "INT");
    std::thread::sleep(std::time::Duration::from_millis(50));
    signal(&child, "INT");
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed().as_secs() > 90 {
            let _ = child.kill();
            panic!("no exit within 90 s of start");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let err = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(2), "interrupted: unknown\n{err}");
    let first = err
        .lines()
        .find(|l| l.contains("SIGINT: stopping gracefully"));
    assert!(
        first.is_some_and(|l| l.contains("press Ctrl-C again to skip the final phase")),
        "{err}"
    );
    let second = err.lines().find(|l| l.contains("SIGINT again"));
    assert!(
        second.is_some_and(
            |l| l.contains("skipping the final phase") && l.contains("cleanup is in progress")
        ),
        "{err}"
    );
}

/// The one run folder under `store/<test>/`, once it exists.
fn only_run_folder(store: &Path, test: &str) -> Option<PathBuf> {
    let mut runs = std::fs::read_dir(store.join(test)).ok()?;
    runs.next().map(|e| e.unwrap().path())
}

#[test]
fn a_run_killed_with_sigkill_can_still_be_checked_and_reported_and_is_latest() {
    let store = scratch("kill-9");
    let mut child = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "run",
            "--system",
            "memory",
            "--nemesis",
            "none",
            "--time-limit",
            "60s",
        ])
        .args(["--name", "killed", "--seed", "5", "--quiet", "--store"])
        .arg(&store)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("faultline run starts");
    // Bounded: kill -9 once the history holds some operations (or after 30 s).
    let t0 = std::time::Instant::now();
    let mut dir = None;
    while t0.elapsed().as_secs() < 30 {
        dir = only_run_folder(&store, "killed");
        let lines = dir
            .as_ref()
            .and_then(|d| std::fs::read_to_string(d.join("history.jsonl")).ok())
            .map_or(0, |h| h.lines().count());
        if lines > 50 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    signal(&child, "KILL");
    child.wait().unwrap();
    let dir = dir.expect("a run folder");
    assert!(
        !dir.join("results.json").exists(),
        "killed before its results"
    );
    let latest = std::fs::read_link(store.join("latest")).expect("store/latest");
    assert_eq!(
        store.join(latest),
        dir,
        "latest is the killed run: it has a history"
    );

    let out = faultline(&["report", dir.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("the run did not finish"), "{err}");
    assert!(dir.join("index.html").is_file(), "the report is written");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["verdict"], "unknown", "{results}");
    let checkers: Vec<&str> = results["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["checker"].as_str().unwrap())
        .collect();
    assert!(
        checkers.len() >= 2,
        "the workload's checkers ran, then `run`: {checkers:?}"
    );
    let run = &results["results"].as_array().unwrap().last().unwrap()["summary"];
    assert!(run.as_str().unwrap().contains("did not finish"), "{run}");
    // A second report finds the results and just renders.
    let again = faultline(&["report", dir.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(0));
    assert!(!stderr(&again).contains("did not finish"));
}

#[test]
fn check_groups_many_anomalies_by_kind_and_points_to_json_for_the_rest() {
    // One consume delivers 30 messages nobody produced: 30 `unexpected`.
    let dir = scratch("many-anomalies");
    let mut lines = vec![
        r#"{"index":0,"time":0,"process":0,"type":"invoke","f":"consume","value":null}"#
            .to_string(),
    ];
    let ids: Vec<String> = (0..30).map(|i| i.to_string()).collect();
    lines.push(format!(
        r#"{{"index":1,"time":1000,"process":0,"type":"ok","f":"consume","value":[{}]}}"#,
        ids.join(",")
    ));
    let path = dir.join("history.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let out = faultline(&["check", "--checker", "delivery", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    let heading = text
        .lines()
        .find(|l| l.trim_start().starts_with("unexpected × 30"));
    assert!(
        heading.is_some_and(|h| h.contains("never produced")),
        "{text}"
    );
    let listed = text
        .lines()
        .filter(|l| l.trim_start().starts_with("- "))
        .count();
    assert_eq!(listed, 3, "{text}");
    assert!(text.contains("... and 27 more unexpected"), "{text}");
    assert!(text.contains("--json lists every one"), "{text}");
    let json = faultline(&[
        "check",
        "--checker",
        "delivery",
        "--json",
        path.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let all = v["result"]["anomalies"].as_array().map(Vec::len);
    assert_eq!(all, Some(30), "--json lists all");
}
