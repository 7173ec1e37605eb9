//! JUnit XML and the Markdown step summary.

use checkers::{Anomaly, CheckResult};
use reports::{junit, markdown_summary, CiContext};

fn anomaly(n: u64) -> Anomaly {
    Anomaly {
        kind: "lost".into(),
        ops: vec![n, n + 1],
        explanation: format!("message {n} was acknowledged and never consumed"),
        data: serde_json::Value::Null,
    }
}

fn results() -> Vec<CheckResult> {
    let mut valid = CheckResult::valid("stats", "12 ops");
    valid.elapsed_ms = 1500.0;
    vec![
        valid,
        CheckResult::invalid(
            "delivery",
            "2 of 10 messages lost",
            (0..12).map(anomaly).collect(),
        ),
        CheckResult::unknown("linearizable", "search budget of 10 s ran out"),
    ]
}

/// (name, outcome element, its message, its text) per test case.
fn cases(xml: &str) -> Vec<(String, String, String, String)> {
    let doc = roxmltree::Document::parse(xml).unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|c| {
            let outcome = c
                .children()
                .find(|n| n.has_tag_name("failure") || n.has_tag_name("error"));
            (
                c.attribute("name").unwrap().to_string(),
                outcome.map_or("pass".into(), |n| n.tag_name().name().to_string()),
                outcome
                    .and_then(|n| n.attribute("message"))
                    .unwrap_or("")
                    .to_string(),
                outcome.and_then(|n| n.text()).unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn junit_has_one_case_per_checker_and_never_passes_an_unknown() {
    let xml = junit("etcd-register", &results());
    let cases = cases(&xml);
    let outcomes: Vec<(&str, &str)> = cases.iter().map(|c| (c.0.as_str(), c.1.as_str())).collect();
    assert_eq!(
        outcomes,
        [
            ("stats", "pass"),
            ("delivery", "failure"),
            ("linearizable", "error")
        ]
    );
    assert_eq!(cases[2].2, "unknown: search budget of 10 s ran out");
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(suite.attribute("name"), Some("etcd-register"));
    assert_eq!(suite.attribute("tests"), Some("3"));
    assert_eq!(suite.attribute("failures"), Some("1"));
    assert_eq!(suite.attribute("errors"), Some("1"));
}

#[test]
fn a_junit_failure_text_is_the_anomaly_summary() {
    let cases = cases(&junit("t", &results()));
    let (_, _, message, text) = &cases[1];
    assert_eq!(
        message,
        "12 anomalies, first: lost: message 0 was acknowledged and never consumed"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "2 of 10 messages lost");
    assert_eq!(
        lines[1],
        "- lost: message 0 was acknowledged and never consumed (ops #0, #1)"
    );
    assert_eq!(lines.len(), 13, "the summary and one line per anomaly");
}

#[test]
fn the_markdown_summary_leads_with_the_verdict_and_caps_the_anomalies() {
    let ctx = CiContext {
        title: "etcd-register",
        seed: Some(42),
        command: Some("faultline run --test etcd-register --seed 42"),
        report: Some("store/etcd-register/20240501T120000Z/index.html"),
    };
    let md = markdown_summary(&ctx, &results());
    let lines: Vec<&str> = md.lines().collect();
    assert_eq!(lines[0], "### faultline: etcd-register — ❌ invalid");
    assert!(
        md.contains("| delivery | ❌ invalid | 12 | 2 of 10 messages lost |"),
        "{md}"
    );
    assert!(md.contains("| linearizable | ⚠️ unknown | 0 |"), "{md}");
    assert_eq!(
        md.matches("- **lost**").count(),
        10,
        "capped at 10 per checker"
    );
    assert!(md.contains("- … and 2 more (see the report)"));
    assert!(md.contains("**linearizable** is unknown: search budget of 10 s ran out"));
    assert!(md.contains("Seed: `42`"));
    assert!(md.contains("```sh\nfaultline run --test etcd-register --seed 42\n```"));
    assert!(md.contains("Report: store/etcd-register/20240501T120000Z/index.html"));
}

#[test]
fn the_markdown_summary_is_appended_to_a_step_summary_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("summary.md");
    std::fs::write(&path, "earlier step output\n").unwrap();
    let ctx = CiContext {
        title: "a",
        ..Default::default()
    };
    reports::write_markdown_summary(&path, &ctx, &results()).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("earlier step output\n### faultline: a"));
}

#[test]
fn no_checker_is_not_a_pass() {
    let md = markdown_summary(
        &CiContext {
            title: "t",
            ..Default::default()
        },
        &[],
    );
    assert!(md.starts_with("### faultline: t — ⚠️ unknown"));
}

#[test]
fn several_histories_make_several_suites() {
    let r = results();
    let xml = reports::junit_suites(&[("a.jsonl", &r[..1]), ("b.jsonl", &r[1..])]);
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let suites: Vec<(&str, &str)> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testsuite"))
        .map(|n| (n.attribute("name").unwrap(), n.attribute("tests").unwrap()))
        .collect();
    assert_eq!(suites, [("a.jsonl", "1"), ("b.jsonl", "2")]);
    let root = doc.root_element();
    assert_eq!(root.attribute("tests"), Some("3"));
    assert_eq!(root.attribute("failures"), Some("1"));
}
