//! Every history of Porcupine's test corpus gets the verdict Porcupine's own suite asserts
//! (listed in testdata/porcupine/EXPECTED.md).

use checkers::linear::Linearizable;
use checkers::{formats, Budget, Checker, Verdict};
use std::path::PathBuf;

fn corpus() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/porcupine");
    assert!(
        dir.join("EXPECTED.md").is_file(),
        "the Porcupine corpus is missing: expected {} (testdata/ at the repository root)",
        dir.display()
    );
    dir
}

/// (file, expected verdict) rows of EXPECTED.md's table.
fn expected() -> Vec<(String, Verdict)> {
    let text = std::fs::read_to_string(corpus().join("EXPECTED.md")).expect("EXPECTED.md reads");
    let rows: Vec<(String, Verdict)> = text
        .lines()
        .filter(|l| l.ends_with("| linearizable") || l.ends_with("| not-linearizable"))
        .map(|l| {
            let file = l.split('|').next().unwrap().trim().to_string();
            let verdict = if l.ends_with("| not-linearizable") {
                Verdict::Invalid
            } else {
                Verdict::Valid
            };
            (file, verdict)
        })
        .collect();
    assert_eq!(
        rows.len(),
        74,
        "EXPECTED.md lists 70 etcd and 4 kv histories"
    );
    rows
}

fn check(file: &str) -> checkers::CheckResult {
    let path = corpus().join(file);
    let history = formats::read_path(&path, None).unwrap_or_else(|e| panic!("{e}"));
    let model = if file.starts_with("etcd/") {
        "cas-register"
    } else {
        "kv"
    };
    Linearizable::new(Some(model), None)
        .unwrap()
        .check(&history, &Budget::default())
        .unwrap()
}

#[test]
fn every_corpus_history_gets_porcupines_verdict() {
    let mut wrong = Vec::new();
    for (file, verdict) in expected() {
        let result = check(&file);
        if result.verdict != verdict {
            wrong.push(format!(
                "{file}: expected {verdict}, got {} ({})",
                result.verdict, result.summary
            ));
        }
        if verdict == Verdict::Invalid {
            let a = &result.anomalies[0];
            assert_eq!(a.kind, "nonlinearizable");
            assert!(
                !a.data["unplaceable"].as_array().unwrap().is_empty(),
                "{file}"
            );
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_history_in_the_corpus_folder_is_listed() {
    let listed: Vec<String> = expected().into_iter().map(|(f, _)| f).collect();
    for sub in ["etcd", "kv"] {
        for entry in std::fs::read_dir(corpus().join(sub)).unwrap() {
            let name = format!("{sub}/{}", entry.unwrap().file_name().to_string_lossy());
            assert!(
                listed.contains(&name),
                "{name} has no verdict in EXPECTED.md"
            );
        }
    }
}

#[test]
fn the_evidence_of_a_corpus_history_reads_as_lines() {
    // Jepsen logs have no timestamps: the explanation names lines, not seconds.
    let result = check("etcd/etcd_000.log");
    let a = &result.anomalies[0];
    assert!(a.explanation.contains("between lines"), "{}", a.explanation);
    assert!(!a.explanation.contains(" s and "), "{}", a.explanation);
    assert_eq!(a.data["model"], "cas-register");
    assert!(a.data["key"].is_null());
}
