//! `faultline check` and `faultline convert` as a user runs them: real files, real exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn faultline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .output()
        .expect("the faultline binary runs")
}

fn shared() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/porcupine");
    assert!(
        p.join("EXPECTED.md").exists(),
        "missing {}: the Porcupine histories ship in testdata/",
        p.display()
    );
    p
}

/// Rows of EXPECTED.md: (file, ops, ok, fail, info, verdict).
fn expected() -> Vec<(String, u64, u64, u64, u64, String)> {
    let text = std::fs::read_to_string(shared().join("EXPECTED.md")).unwrap();
    text.lines()
        .filter(|l| l.contains(".log |") || l.contains(".txt |"))
        .map(|l| {
            let c: Vec<&str> = l.split('|').map(str::trim).collect();
            let n = |i: usize| c[i].parse::<u64>().unwrap();
            (c[0].to_string(), n(1), n(2), n(3), n(4), c[5].to_string())
        })
        .collect()
}

fn scratch(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli_check");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Runs `check --checker stats` on bad input and returns the one stderr line.
fn bad_input(name: &str, bytes: &[u8]) -> String {
    let p = scratch(name, bytes);
    let out = faultline(&["check", "--checker", "stats", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "bad input exits 3");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "one line, got: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    assert!(err.contains(name), "names the file: {err}");
    err
}

#[test]
fn stats_counts_match_expected_for_every_shared_history() {
    let rows = expected();
    assert_eq!(rows.len(), 74, "EXPECTED.md rows");
    for (file, ops, ok, fail, info, _) in rows {
        let path = shared().join(&file);
        let out = faultline(&[
            "check",
            "--checker",
            "stats",
            "--json",
            path.to_str().unwrap(),
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let d = &v["result"]["details"];
        let got = (
            d["ops"].as_u64(),
            d["ok"].as_u64(),
            d["fail"].as_u64(),
            d["info"].as_u64(),
        );
        assert_eq!(got, (Some(ops), Some(ok), Some(fail), Some(info)), "{file}");
    }
}

#[test]
fn several_files_print_one_line_each_and_a_summary() {
    let dir = shared().join("kv");
    let files: Vec<String> = ["c01-ok.txt", "c01-bad.txt"]
        .iter()
        .map(|f| dir.join(f).to_string_lossy().into_owned())
        .collect();
    let mut args = vec!["check", "--checker", "stats"];
    args.extend(files.iter().map(String::as_str));
    let out = faultline(&args);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].contains("c01-ok.txt") && lines[0].contains("valid"));
    assert!(lines[2].starts_with("2 files: 2 valid"), "{text}");
}

#[test]
fn a_bad_file_among_good_ones_is_reported_and_exits_3() {
    let bad = scratch(
        "among.jsonl",
        b"{\"index\":0,\"process\":0,\"type\":\"ok\",\"f\":\"read\"}\n",
    );
    let good = shared().join("kv/c01-ok.txt");
    let out = faultline(&[
        "check",
        "--checker",
        "stats",
        good.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("among.jsonl") && text.contains("error") && text.contains("line 1"),
        "{text}"
    );
    assert!(
        text.contains("1 valid") && text.contains("1 errors"),
        "{text}"
    );
}

#[test]
fn an_empty_file_is_a_verdict_unknown_not_a_read_error() {
    for (name, bytes) in [
        ("empty.jsonl", &b""[..]),
        ("blank.edn", b"\n  \n; nothing here\n"),
        (
            "only-nemesis.jsonl",
            b"{\"index\":0,\"process\":\"nemesis\",\"type\":\"info\",\"f\":\"start-partition\"}\n",
        ),
    ] {
        let p = scratch(name, bytes);
        for checker in ["linearizable", "stats", "delivery"] {
            let out = faultline(&["check", "--checker", checker, p.to_str().unwrap()]);
            let text = String::from_utf8(out.stdout).unwrap();
            assert_eq!(out.status.code(), Some(2), "{name} {checker}: {text}");
            assert!(
                text.contains("unknown") && text.contains("no completed operations to check"),
                "{name} {checker}: {text}"
            );
        }
    }
}

#[test]
fn bad_input_a_json_array_says_what_it_is() {
    let e = bad_input(
        "array.json",
        b"[{\"index\":0,\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}]\n",
    );
    assert!(e.contains("JSON array") && e.contains("--format"), "{e}");
}

#[test]
fn a_zero_op_timeout_is_a_one_line_error() {
    let out = faultline(&[
        "run",
        "--system",
        "memory",
        "--workload",
        "register",
        "--nemesis",
        "none",
        "--op-timeout",
        "0s",
        "--time-limit",
        "1s",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--op-timeout"), "{err}");
}

#[test]
fn bad_input_truncated_mid_line() {
    let e = bad_input(
        "truncated.jsonl",
        b"{\"index\":0,\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n{\"index\":1,\"proc",
    );
    assert!(
        e.contains("line 2, column") && e.contains("truncated"),
        "{e}"
    );
}

#[test]
fn bad_input_binary() {
    let e = bad_input("binary.bin", &[0x7f, b'E', b'L', b'F', 0, 1, 2, 3]);
    assert!(
        e.contains("line 1, column 5") && e.contains("binary"),
        "{e}"
    );
}

#[test]
fn bad_input_ten_megabyte_line() {
    let mut line =
        b"{\"index\":0,\"process\":0,\"type\":\"invoke\",\"f\":\"w\",\"value\":\"".to_vec();
    line.extend(std::iter::repeat_n(b'x', 10 << 20));
    let e = bad_input("huge.jsonl", &line);
    assert!(
        e.contains("line 1, column") && e.len() < 400,
        "{}",
        &e[..e.len().min(400)]
    );
}

#[test]
fn bad_input_invalid_utf8() {
    let e = bad_input(
        "latin1.log",
        b"0 :invoke :write 1\n0 :ok :write \"caf\xe9\"\n",
    );
    assert!(
        e.contains("line 2, column 18") && e.contains("UTF-8"),
        "{e}"
    );
}

#[test]
fn bad_input_completion_without_invocation() {
    let e = bad_input(
        "orphan.jsonl",
        b"{\"index\":0,\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n{\"index\":1,\"process\":0,\"type\":\"ok\",\"f\":\"read\"}\n{\"index\":2,\"process\":5,\"type\":\"ok\",\"f\":\"read\"}\n",
    );
    assert!(
        e.contains("line 3") && e.contains("no open invocation"),
        "{e}"
    );
}

#[test]
fn missing_file_and_unknown_checker_are_one_line_errors() {
    let out = faultline(&["check", "--checker", "stats", "/nonexistent/history.jsonl"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("/nonexistent/history.jsonl") && err.lines().count() == 1,
        "{err}"
    );

    let out = faultline(&["check", "--checker", "nope", "x"]);
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("unknown checker"), "{err}");
}

#[test]
fn convert_turns_a_jepsen_log_into_jsonl_that_checks_the_same() {
    let src = shared().join("etcd/etcd_000.log");
    let dst = Path::new(env!("CARGO_TARGET_TMPDIR")).join("etcd_000.jsonl");
    let out = faultline(&["convert", src.to_str().unwrap(), dst.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = std::fs::read_to_string(&dst).unwrap();
    assert!(first.starts_with("{\"index\":0,"), "{}", &first[..80]);
    let stats = |p: &Path| {
        let out = faultline(&["check", "--checker", "stats", "--json", p.to_str().unwrap()]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["result"]["details"].clone()
    };
    assert_eq!(stats(&src)["ops"], stats(&dst)["ops"]);
    assert_eq!(stats(&src)["info"], stats(&dst)["info"]);
}

#[test]
fn a_bad_client_option_in_a_plan_is_one_line_before_anything_starts() {
    let plan = scratch(
        "bad-client.toml",
        b"system = \"etcd\"\nworkload = \"register\"\n[client]\nops-per-key = 0\n",
    );
    let out = faultline(&["run", "--plan", plan.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("client.ops-per-key: expected 1 to 100000, not 0"),
        "{err}"
    );
    assert!(
        out.stdout.is_empty(),
        "no run started: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn each_kind_heading_carries_the_meaning_its_own_checker_gives_it() {
    // A set history whose final read lacks an acknowledged add: `lost`, as the set means it.
    let set = scratch(
        "set-lost.jsonl",
        br#"{"index":0,"time":10,"process":0,"type":"invoke","f":"add","value":1}
{"index":1,"time":20,"process":0,"type":"ok","f":"add","value":null}
{"index":2,"time":30,"process":0,"type":"invoke","f":"read"}
{"index":3,"time":40,"process":0,"type":"ok","f":"read","value":[]}
"#,
    );
    // The write skew of docs/history.md: `G2-item`, a kind the delivery and set checkers lack.
    let txn = scratch(
        "list-append-write-skew.jsonl",
        br#"{"index":0,"time":10,"process":0,"type":"invoke","f":"txn","value":[["r","x",null],["append","y",1]]}
{"index":1,"time":11,"process":1,"type":"invoke","f":"txn","value":[["r","y",null],["append","x",1]]}
{"index":2,"time":20,"process":0,"type":"ok","f":"txn","value":[["r","x",[]],["append","y",1]]}
{"index":3,"time":21,"process":1,"type":"ok","f":"txn","value":[["r","y",[]],["append","x",1]]}
{"index":4,"time":30,"process":0,"type":"invoke","f":"txn","value":[["r","x",null],["r","y",null]]}
{"index":5,"time":40,"process":0,"type":"ok","f":"txn","value":[["r","x",[1]],["r","y",[1]]]}
"#,
    );
    for (checker, path, heading) in [
        ("set", &set, "lost × 1"),
        ("list-append", &txn, "G2-item × 1"),
    ] {
        let out = faultline(&["check", "--checker", checker, path.to_str().unwrap()]);
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(out.status.code(), Some(1), "{checker}: {text}");
        let kind = heading.split(' ').next().unwrap();
        let meaning = checkers::kind_meaning(checker, kind).expect("a known kind");
        let line = text.lines().find(|l| l.trim_start().starts_with(heading));
        assert_eq!(
            line.map(str::trim),
            Some(format!("{heading}: {meaning}").as_str()),
            "{checker}: {text}"
        );
    }
    assert_ne!(
        checkers::kind_meaning("set", "lost"),
        checkers::kind_meaning("delivery", "lost"),
        "the set's `lost` is not the delivery checker's"
    );
}
