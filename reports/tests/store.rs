//! The store's front page and `store/latest`.

use checkers::CheckResult;
use reports::{render_store_index, RunResults};
use scraper::{Html, Selector};
use std::path::Path;

/// Writes a run directory `store/<test>/<ts>` whose results say `verdict` and `started_at`.
fn run(store: &Path, test: &str, ts: &str, started_at: Option<&str>, result: Option<CheckResult>) {
    let dir = store.join(test).join(ts);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("history.jsonl"), "").unwrap();
    if let Some(result) = result {
        let mut r = RunResults::new(test, vec![result]);
        r.started_at = started_at.map(str::to_string);
        r.seed = Some(7);
        r.write(&dir.join("results.json")).unwrap();
    }
}

/// Renders the index; returns its rows as "test verdict" and where latest points.
fn index(store: &Path) -> (Vec<String>, String) {
    let out = render_store_index(store).unwrap();
    let page = Html::parse_document(&std::fs::read_to_string(&out.index).unwrap());
    let tr = Selector::parse("#runs tr.run").unwrap();
    let td = Selector::parse("td").unwrap();
    let rows = page
        .select(&tr)
        .map(|row| {
            let cells: Vec<String> = row.select(&td).map(|c| c.text().collect()).collect();
            format!("{} {}", cells[1], cells[2])
        })
        .collect();
    let latest = std::fs::read_link(store.join("latest")).unwrap();
    (rows, latest.display().to_string())
}

#[test]
fn runs_are_listed_newest_first_with_their_verdicts_and_latest_points_at_the_newest() {
    let store = tempfile::tempdir().unwrap();
    let s = store.path();
    // Directory names deliberately sort the other way round from the start times.
    run(
        s,
        "etcd",
        "a",
        Some("2024-05-03T10:00:00Z"),
        Some(CheckResult::invalid(
            "lin",
            "",
            vec![checkers::Anomaly {
                kind: "x".into(),
                ops: vec![0],
                explanation: "x".into(),
                data: serde_json::Value::Null,
            }],
        )),
    );
    run(
        s,
        "etcd",
        "b",
        Some("2024-05-01T10:00:00Z"),
        Some(CheckResult::valid("lin", "")),
    );
    run(
        s,
        "redis",
        "c",
        Some("2024-05-02T12:00:00+02:00"),
        Some(CheckResult::unknown("lin", "budget")),
    );
    let (rows, latest) = index(s);
    assert_eq!(rows, ["etcd invalid", "redis unknown", "etcd valid"]);
    assert_eq!(latest, "etcd/a");
    assert!(s.join("latest").join("results.json").is_file());

    run(
        s,
        "redis",
        "d",
        Some("2024-06-01T00:00:00Z"),
        Some(CheckResult::valid("lin", "")),
    );
    let (rows, latest) = index(s);
    assert_eq!(rows[0], "redis valid");
    assert_eq!(latest, "redis/d", "latest moves to the newer run");
}

#[test]
fn a_run_without_results_is_listed_as_such() {
    let store = tempfile::tempdir().unwrap();
    run(store.path(), "etcd", "killed", None, None);
    let (rows, latest) = index(store.path());
    assert_eq!(rows, ["etcd no results"]);
    assert_eq!(latest, "etcd/killed");
}

#[test]
fn an_empty_store_has_an_index_and_no_latest() {
    let store = tempfile::tempdir().unwrap();
    let out = render_store_index(store.path()).unwrap();
    assert_eq!(out.runs, 0);
    assert!(out.latest.is_none());
    assert!(std::fs::read_to_string(out.index)
        .unwrap()
        .contains("No runs yet."));
}

#[test]
fn a_latest_that_is_not_a_link_is_left_alone() {
    let store = tempfile::tempdir().unwrap();
    run(
        store.path(),
        "etcd",
        "a",
        None,
        Some(CheckResult::valid("lin", "")),
    );
    std::fs::create_dir(store.path().join("latest")).unwrap();
    let err = render_store_index(store.path()).unwrap_err().to_string();
    assert!(
        err.ends_with("latest: exists and is not a symlink; not replacing it"),
        "{err}"
    );
}

#[test]
fn latest_skips_a_newer_run_that_recorded_no_history() {
    let store = tempfile::tempdir().unwrap();
    let s = store.path();
    let valid = Some(CheckResult::valid("lin", ""));
    run(s, "etcd", "old", Some("2024-05-01T10:00:00Z"), valid);
    // Stopped while its cluster started: results (unknown), no history.
    let unknown = Some(CheckResult::unknown("run", "interrupted"));
    run(s, "etcd", "new", Some("2024-05-02T10:00:00Z"), unknown);
    std::fs::remove_file(s.join("etcd/new/history.jsonl")).unwrap();
    let (rows, latest) = index(s);
    assert_eq!(rows, ["etcd unknown", "etcd valid"], "both listed");
    assert_eq!(latest, "etcd/old");
}

#[test]
fn point_latest_moves_the_link_to_the_named_run() {
    let store = tempfile::tempdir().unwrap();
    let s = store.path();
    run(s, "etcd", "a", Some("2024-05-01T10:00:00Z"), None);
    reports::store::point_latest(s, "etcd", "a").unwrap();
    assert_eq!(
        std::fs::read_link(s.join("latest")).unwrap(),
        Path::new("etcd/a")
    );
}
