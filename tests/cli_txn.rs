//! `faultline check --checker list-append|rw-register --consistency-model M` on EDN and JSONL
//! files: the verdict and its exit code follow the model asked for, and a bad model is a
//! one-line error with exit code 3.

use std::path::PathBuf;
use std::process::{Command, Output};

fn faultline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .output()
        .expect("run faultline")
}

fn scratch(name: &str, text: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli_txn");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the history");
    path
}

/// Write skew: each transaction misses the other's append (G2-item).
const WRITE_SKEW_EDN: &str = r#"{:type :invoke, :f :txn, :process 0, :value [[:r :x nil] [:append :y 1]]}
{:type :invoke, :f :txn, :process 1, :value [[:r :y nil] [:append :x 1]]}
{:type :ok, :f :txn, :process 0, :value [[:r :x nil] [:append :y 1]]}
{:type :ok, :f :txn, :process 1, :value [[:r :y nil] [:append :x 1]]}
{:type :invoke, :f :txn, :process 0, :value [[:r :x nil] [:r :y nil]]}
{:type :ok, :f :txn, :process 0, :value [[:r :x [1]] [:r :y [1]]]}
"#;

const WRITE_SKEW_JSONL: &str = r#"{"index":0,"process":0,"type":"invoke","f":"txn","value":[["r","x",null],["w","y",1]]}
{"index":1,"process":1,"type":"invoke","f":"txn","value":[["r","y",null],["w","x",1]]}
{"index":2,"process":0,"type":"ok","f":"txn","value":[["r","x",null],["w","y",1]]}
{"index":3,"process":1,"type":"ok","f":"txn","value":[["r","y",null],["w","x",1]]}
"#;

#[test]
fn write_skew_is_invalid_as_serializable_and_valid_as_snapshot_isolation() {
    let edn = scratch("write-skew.edn", WRITE_SKEW_EDN);
    let jsonl = scratch("write-skew.jsonl", WRITE_SKEW_JSONL);
    for (file, checker) in [(&edn, "list-append"), (&jsonl, "rw-register")] {
        let file = file.to_str().unwrap();
        let out = faultline(&[
            "check",
            file,
            "--checker",
            checker,
            "--consistency-model",
            "serializable",
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{checker}: {text}");
        assert!(
            text.contains("G2-item")
                && text.contains("Strongest model satisfied: snapshot-isolation"),
            "{text}"
        );
        let out = faultline(&[
            "check",
            file,
            "--checker",
            checker,
            "--consistency-model",
            "snapshot-isolation",
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn an_unknown_consistency_model_is_one_line_and_exit_3() {
    let edn = scratch("model.edn", WRITE_SKEW_EDN);
    let out = faultline(&[
        "check",
        edn.to_str().unwrap(),
        "--checker",
        "list-append",
        "--consistency-model",
        "linearizable",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("--consistency-model") && err.contains("strict-serializable"),
        "{err}"
    );
}
