//! Shared by the tests of the streaming checkers: a compact fixture language, and one helper
//! that checks a fixture both ways (streamed from JSONL, and as an in-memory `History` through
//! the registry) and insists the two answers are the same.
//!
//! A fixture line is `PROCESS TYPE F [k=KEY] [e=ERROR] [VALUE]`: PROCESS is a number or `n`
//! (the nemesis), VALUE is any JSON (the rest of the line). Index and time come from the line's
//! position (time = index * 1000 ns). Blank lines and `#` comments are skipped.
#![allow(dead_code)]

use checkers::formats::read_str;
use checkers::stream::check_jsonl;
use checkers::{by_name, Anomaly, Budget, CheckOptions, CheckResult};
use serde_json::{json, Map, Value};

/// The fixture as faultline JSONL.
pub fn jsonl(fixture: &str) -> String {
    let mut out = String::new();
    let mut index = 0u64;
    for line in fixture.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut rest = line;
        let mut word = || {
            let end = rest.find(' ').unwrap_or(rest.len());
            let (w, tail) = rest.split_at(end);
            rest = tail.trim_start();
            w.to_string()
        };
        let process = word();
        let kind = word();
        let f = word();
        let mut event = Map::new();
        event.insert("index".into(), json!(index));
        event.insert("time".into(), json!(index * 1000));
        event.insert(
            "process".into(),
            if process == "n" {
                json!("nemesis")
            } else {
                json!(process.parse::<u64>().expect("process number"))
            },
        );
        event.insert("type".into(), json!(kind));
        event.insert("f".into(), json!(f));
        loop {
            if let Some(k) = rest.strip_prefix("k=") {
                let end = k.find(' ').unwrap_or(k.len());
                event.insert("key".into(), json!(&k[..end]));
                rest = k[end..].trim_start();
            } else if let Some(k) = rest.strip_prefix("e=") {
                let end = k.find(' ').unwrap_or(k.len());
                event.insert("error".into(), json!(&k[..end]));
                rest = k[end..].trim_start();
            } else {
                break;
            }
        }
        if !rest.is_empty() {
            let value: Value = serde_json::from_str(rest)
                .unwrap_or_else(|e| panic!("fixture value {rest:?}: {e}"));
            event.insert("value".into(), value);
        }
        out.push_str(&Value::Object(event).to_string());
        out.push('\n');
        index += 1;
    }
    out
}

/// Options from `name=value` pairs: guarantee, max-retries, initial (JSON).
pub fn options(pairs: &[(&str, &str)]) -> CheckOptions {
    let mut o = CheckOptions::default();
    for (k, v) in pairs {
        match *k {
            "guarantee" => o.guarantee = Some(v.to_string()),
            "max-retries" => o.max_retries = Some(v.parse().unwrap()),
            "initial" => o.initial = Some(serde_json::from_str(v).unwrap()),
            other => panic!("unknown option {other}"),
        }
    }
    o
}

/// Checks the fixture with `checker` both ways and returns the (identical) result.
pub fn check(checker: &str, opts: &[(&str, &str)], fixture: &str) -> CheckResult {
    let text = jsonl(fixture);
    let options = options(opts);
    let mut streamed = check_jsonl(text.as_bytes(), checker, &options)
        .expect("a streaming checker")
        .unwrap_or_else(|e| panic!("streamed: {e}\n{text}"));
    let history = read_str(&text, None).unwrap_or_else(|e| panic!("read: {e}\n{text}"));
    let mut whole = by_name(checker, &options)
        .unwrap()
        .check(&history, &Budget::default())
        .unwrap_or_else(|e| panic!("whole: {e}"));
    streamed.elapsed_ms = 0.0;
    whole.elapsed_ms = 0.0;
    assert_eq!(streamed, whole, "streamed and in-memory results differ");
    streamed
}

/// The error a bad fixture gets, streamed (the in-memory path must fail too).
pub fn check_err(checker: &str, opts: &[(&str, &str)], fixture: &str) -> String {
    let text = jsonl(fixture);
    let options = options(opts);
    let err = check_jsonl(text.as_bytes(), checker, &options)
        .expect("a streaming checker")
        .expect_err("a bad history")
        .to_string();
    // The in-memory path rejects it too: when reading (pairing) or when checking (shapes).
    if let Ok(history) = read_str(&text, None) {
        let whole = by_name(checker, &options)
            .unwrap()
            .check(&history, &Budget::default());
        assert!(
            whole.is_err(),
            "the in-memory path accepted what streaming rejected: {err}"
        );
    }
    err
}

/// "VERDICT kind,kind | reported kind,kind": the verdict, the kinds that counted and the kinds
/// only reported, each sorted and deduplicated.
pub fn outcome(r: &CheckResult) -> String {
    let mut counted: Vec<&str> = Vec::new();
    let mut reported: Vec<&str> = Vec::new();
    for a in &r.anomalies {
        if a.data["counted"] == json!(true) {
            counted.push(&a.kind);
        } else {
            reported.push(&a.kind);
        }
    }
    for v in [&mut counted, &mut reported] {
        v.sort_unstable();
        v.dedup();
    }
    let mut s = format!("{} {}", r.verdict, counted.join(","));
    s.truncate(s.trim_end().len());
    if !reported.is_empty() {
        s.push_str(&format!(" | reported {}", reported.join(",")));
    }
    s
}

/// The first anomaly of `kind`.
pub fn anomaly<'r>(r: &'r CheckResult, kind: &str) -> &'r Anomaly {
    r.anomalies
        .iter()
        .find(|a| a.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} anomaly in {:#?}", r.anomalies))
}
