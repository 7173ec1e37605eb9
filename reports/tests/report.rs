//! The run report: what `render_run` writes and what the page says.

mod common;

use checkers::formats::{read_str, write_jsonl};
use checkers::{Anomaly, CheckResult, History};
use reports::{render_run, RunResults};
use scraper::{Html, Selector};
use serde_json::json;
use std::path::Path;

/// A register history: two writers, a partition around the middle, one read that timed out.
const HISTORY: &str = r#"{"index":0,"time":0,"process":0,"type":"invoke","f":"write","key":"x","value":1}
{"index":1,"time":1000000,"process":1,"type":"invoke","f":"read","key":"x","value":null}
{"index":2,"time":2000000,"process":0,"type":"ok","f":"write","key":"x","value":1}
{"index":3,"time":3000000,"process":"nemesis","type":"info","f":"start-partition","value":{"n1":["n2","n3"]}}
{"index":4,"time":4000000,"process":1,"type":"ok","f":"read","key":"x","value":0}
{"index":5,"time":5000000,"process":0,"type":"invoke","f":"read","key":"x","value":null}
{"index":6,"time":6000000,"process":"nemesis","type":"info","f":"stop-partition","value":null}
{"index":7,"time":9000000,"process":0,"type":"info","f":"read","key":"x","value":null,"error":"timed-out"}
"#;

fn history() -> History {
    read_str(HISTORY, None).unwrap()
}

fn nonlinearizable() -> Anomaly {
    Anomaly {
        kind: "nonlinearizable".into(),
        ops: vec![1],
        explanation: "read of 0 after write of 1 completed".into(),
        data: json!({"key": "x", "model": "register", "prefix": [0], "unplaceable": [1],
                     "states": ["1"]}),
    }
}

fn results() -> RunResults {
    let mut r = RunResults::new(
        "etcd-register",
        vec![
            CheckResult::valid("stats", "4 ops"),
            CheckResult::invalid(
                "linearizable",
                "key x is not linearizable",
                vec![nonlinearizable()],
            ),
        ],
    );
    r.seed = Some(1234);
    r.command = Some("faultline run --test etcd-register --seed 1234".into());
    r.started_at = Some("2024-05-01T12:00:00Z".into());
    r
}

/// Renders `results` for HISTORY into a fresh directory; returns it and the parsed page.
fn render(results: &RunResults) -> (tempfile::TempDir, Html) {
    let dir = tempfile::tempdir().unwrap();
    let plan = json!({"system": "etcd", "nodes": ["n1", "n2", "n3"], "concurrency": 2});
    let out = render_run(dir.path(), &history(), results, &plan).unwrap();
    assert_eq!(out.index, dir.path().join("index.html"));
    let page = std::fs::read_to_string(&out.index).unwrap();
    (dir, Html::parse_document(&page))
}

fn texts(page: &Html, css: &str) -> Vec<String> {
    let sel = Selector::parse(css).unwrap();
    page.select(&sel)
        .map(|e| e.text().collect::<String>().trim().to_string())
        .collect()
}

#[test]
fn the_page_leads_with_the_run_verdict_and_how_to_rerun() {
    let (_dir, page) = render(&results());
    assert_eq!(texts(&page, "h1 .verdict"), ["invalid"]);
    assert_eq!(texts(&page, "#seed"), ["1234"]);
    assert_eq!(
        texts(&page, "#rerun"),
        ["faultline run --test etcd-register --seed 1234"]
    );
    assert_eq!(
        texts(&page, "#verdicts td .verdict"),
        ["valid", "invalid"],
        "one verdict per checker, in order"
    );
}

#[test]
fn anomalies_link_their_ops_into_the_timeline() {
    let (_dir, page) = render(&results());
    let sel = Selector::parse(".anomaly a.ev").unwrap();
    let hrefs: Vec<&str> = page
        .select(&sel)
        .filter_map(|a| a.value().attr("href"))
        .collect();
    assert!(hrefs.contains(&"#ev-1"), "{hrefs:?}");
    // The timeline data outlines the ops anomalies name: events 0 and 1 (positions).
    let data = timeline_data(&page);
    assert_eq!(data["flag"], json!([0, 1]));
}

#[test]
fn a_linearizability_failure_shows_the_prefix_and_the_op_that_cannot_be_placed() {
    let (_dir, page) = render(&results());
    let prefix = texts(&page, ".linearization table.prefix tr td");
    assert_eq!(prefix[..4], ["1", "#0", "0", "write"], "{prefix:?}");
    assert!(
        prefix.contains(&"1".to_string()),
        "state after the write: {prefix:?}"
    );
    let bad = texts(&page, ".linearization tr.unplaceable td");
    assert_eq!(bad[..5], ["#1", "1", "read", "null", "0"], "{bad:?}");
    let bars = texts(&page, ".lin-diagram .lin-op");
    assert_eq!(bars, ["1. write 1", "✗ read null → 0"]);
    assert_eq!(
        texts(&page, ".lin-diagram .lin-op.bad"),
        ["✗ read null → 0"]
    );
}

#[test]
fn plots_are_written_as_png_and_svg_and_shown() {
    let (dir, page) = render(&results());
    for stem in ["latency", "throughput"] {
        let png = std::fs::read(dir.path().join(format!("{stem}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{stem}.png is a PNG");
        let svg = std::fs::read_to_string(dir.path().join(format!("{stem}.svg"))).unwrap();
        assert!(svg.starts_with("<svg"), "{stem}.svg is an SVG");
        let img = Selector::parse(&format!("img#plot-{stem}")).unwrap();
        assert_eq!(
            page.select(&img).next().unwrap().value().attr("src"),
            Some(format!("{stem}.svg").as_str())
        );
    }
    // The partition is shaded (a legend entry) in both plots.
    let svg = std::fs::read_to_string(dir.path().join("latency.svg")).unwrap();
    if reports::plots::font().is_ok() {
        assert!(svg.contains("\npartition\n"), "legend names the fault kind");
        assert!(svg.contains("latency of read"), "one panel per f");
    }
    assert!(texts(&page, ".legend").concat().contains("partition"));
}

#[test]
fn the_plan_and_the_cluster_are_a_table() {
    let (_dir, page) = render(&results());
    assert_eq!(
        texts(&page, "#plan-table th"),
        ["system", "nodes", "concurrency"]
    );
    assert_eq!(texts(&page, "#plan-table td"), ["etcd", "n1, n2, n3", "2"]);
}

#[test]
fn the_timeline_data_holds_every_op_and_fault() {
    let (_dir, page) = render(&results());
    let data = timeline_data(&page);
    assert_eq!(data["events"], 8);
    assert_eq!(data["ops"]["p"], json!([0, 1, 0]));
    assert_eq!(data["ops"]["o"], json!([0, 0, 2]), "ok, ok, info");
    assert_eq!(data["faults"], json!([[0, 3, 6]]));
    assert_eq!(data["nem"]["i"], json!([3, 6]));
}

fn timeline_data(page: &Html) -> serde_json::Value {
    let sel = Selector::parse("script#fl-data").unwrap();
    let text: String = page.select(&sel).next().unwrap().text().collect();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn a_page_never_loads_anything_from_the_network() {
    let (_dir, page) = render(&results());
    let csp = Selector::parse("meta[http-equiv=Content-Security-Policy]").unwrap();
    let policy = page
        .select(&csp)
        .next()
        .unwrap()
        .value()
        .attr("content")
        .unwrap();
    assert!(policy.starts_with("default-src 'none'"), "{policy}");
    for (css, attr) in [
        ("script[src]", "src"),
        ("link[href]", "href"),
        ("img[src]", "src"),
    ] {
        let sel = Selector::parse(css).unwrap();
        for e in page.select(&sel) {
            let url = e.value().attr(attr).unwrap();
            assert!(!url.contains(':'), "{css} loads {url}");
        }
    }
}

fn write_run(dir: &Path, results: &RunResults) {
    let mut f = std::fs::File::create(dir.join("history.jsonl")).unwrap();
    write_jsonl(&history(), &mut f).unwrap();
    results.write(&dir.join("results.json")).unwrap();
    std::fs::write(dir.join("plan.json"), r#"{"system": "etcd"}"#).unwrap();
}

#[test]
fn a_run_directory_regenerates_its_report() {
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path(), &results());
    let out = reports::regenerate(dir.path()).unwrap();
    let page = std::fs::read_to_string(out.index).unwrap();
    assert!(page.contains("key x is not linearizable"));
    assert!(dir.path().join("latency.png").is_file());
}

#[test]
fn regenerating_names_the_missing_or_broken_file() {
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path(), &results());
    std::fs::write(dir.path().join("history.jsonl"), "{\"index\": 0,\n").unwrap();
    let err = format!("{:#}", reports::regenerate(dir.path()).unwrap_err());
    assert!(err.contains("history.jsonl: line 1"), "{err}");
    assert!(!err.contains('\n'), "one line: {err}");

    std::fs::remove_file(dir.path().join("plan.json")).unwrap();
    let err = format!("{:#}", reports::regenerate(dir.path()).unwrap_err());
    assert!(err.contains("plan.json: missing"), "{err}");
}

#[test]
fn a_check_report_names_its_source_and_has_no_run_details() {
    let dir = tempfile::tempdir().unwrap();
    let results = vec![CheckResult::unknown(
        "linearizable",
        "search budget ran out",
    )];
    let out =
        reports::render_check_report(dir.path(), &history(), &results, "etcd-001.jsonl").unwrap();
    let page = Html::parse_document(&std::fs::read_to_string(out.index).unwrap());
    assert_eq!(texts(&page, "h1"), ["etcd-001.jsonl unknown"]);
    assert_eq!(
        texts(&page, ".checker .warn"),
        ["Unknown because: search budget ran out"]
    );
    assert!(texts(&page, "#run")
        .concat()
        .contains("no rerun command recorded"));
}

#[test]
fn a_history_without_timestamps_is_plotted_by_line() {
    let jepsen = "{:type :invoke, :f :write, :value 1, :process 0}\n{:type :ok, :f :write, :value 1, :process 0}\n";
    let h = read_str(jepsen, None).unwrap();
    assert!(h.synthetic_time);
    let dir = tempfile::tempdir().unwrap();
    reports::render_check_report(
        dir.path(),
        &h,
        &[CheckResult::valid("stats", "1 op")],
        "h.edn",
    )
    .unwrap();
    let page = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
    assert!(page.contains("lines (no timestamps)"));
}

#[test]
fn a_large_history_renders_with_thinned_plots() {
    let h = common::register_history(50_000, 10, 3);
    let dir = tempfile::tempdir().unwrap();
    let out = render_run(dir.path(), &h, &common::run_results(&h), &common::plan()).unwrap();
    let svg_len = std::fs::metadata(dir.path().join("latency.svg"))
        .unwrap()
        .len();
    assert!(svg_len < 8_000_000, "latency.svg is {svg_len} bytes");
    assert!(
        out.index_bytes < 50 * 50_000,
        "about 35 bytes an op: {}",
        out.index_bytes
    );
}

#[test]
fn an_empty_history_still_gets_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let out =
        reports::render_check_report(dir.path(), &History::default(), &[], "empty.jsonl").unwrap();
    let page = Html::parse_document(&std::fs::read_to_string(out.index).unwrap());
    assert_eq!(
        texts(&page, "h1 .verdict"),
        ["unknown"],
        "nothing checked is not valid"
    );
    assert_eq!(
        texts(&page, "#checkers + p"),
        ["No checker ran: the verdict cannot be valid."]
    );
    assert!(dir.path().join("latency.png").is_file());
}

/// A queue history in which a client held one ack past its lease: no nemesis events at all.
const STALLED: &str = r#"{"index":0,"time":0,"process":0,"type":"invoke","f":"consume","value":null}
{"index":1,"time":1000000,"process":0,"type":"ok","f":"consume","value":{"id":"m1"}}
{"index":2,"time":2000000,"process":0,"type":"invoke","f":"ack","value":{"id":"m1"}}
{"index":3,"time":5000000,"process":1,"type":"invoke","f":"consume","value":null}
{"index":4,"time":6000000,"process":1,"type":"ok","f":"consume","value":{"id":"m1"}}
{"index":5,"time":9000000,"process":0,"type":"ok","f":"ack","value":{"stalled_ms":6500}}
"#;

#[test]
fn client_stalls_are_shaded_and_listed_with_the_faults() {
    let dir = tempfile::tempdir().unwrap();
    let history = read_str(STALLED, None).unwrap();
    let results = RunResults::new("q", vec![CheckResult::valid("stats", "3 ops")]);
    let out = render_run(dir.path(), &history, &results, &json!({})).unwrap();
    let page = Html::parse_document(&std::fs::read_to_string(&out.index).unwrap());
    let cells = texts(&page, "table td");
    let at = cells.iter().position(|c| c == "client-stall");
    let row = &cells[at.expect("a client-stall row in the Faults table")..];
    assert!(row[5].contains("\"stalled_acks\":1"), "{row:?}");
    assert!(row[5].contains("\"held_ms_max\":6500"), "{row:?}");
    assert!(texts(&page, "p.note")
        .iter()
        .any(|n| n.contains("client-stall windows are not nemesis events")));
    let data = timeline_data(&page);
    assert_eq!(
        data["faults"],
        json!([[0, 2, 5]]),
        "from the ack's invocation to its completion"
    );
}

fn delivery_anomaly(kind: &str, n: usize) -> Anomaly {
    Anomaly {
        kind: kind.into(),
        ops: vec![1],
        explanation: format!("{kind} number {n}"),
        data: serde_json::Value::Null,
    }
}

#[test]
fn many_anomalies_are_grouped_by_kind_a_few_in_full_the_rest_behind_show_all_in_pages() {
    let mut anomalies: Vec<Anomaly> = (0..254)
        .map(|n| delivery_anomaly("double-committed", n))
        .collect();
    anomalies.insert(10, delivery_anomaly("lost", 0));
    anomalies.push(delivery_anomaly("lost", 1));
    let results = RunResults::new(
        "nats-ack-stall",
        vec![CheckResult::invalid("delivery", "256 anomalies", anomalies)],
    );
    let (_dir, page) = render(&results);
    // One heading per kind, in order of first appearance, with its count and meaning.
    let headings = texts(&page, ".kind-group > h4");
    assert_eq!(headings.len(), 2, "{headings:?}");
    assert!(
        headings[0].starts_with("double-committed × 254 — two acks"),
        "{headings:?}"
    );
    assert_eq!(
        headings[1],
        format!(
            "lost × 2 — {}",
            checkers::kind_meaning("delivery", "lost").unwrap()
        )
    );
    // The first three in full, the rest behind "show all", 100 a page.
    let first = texts(&page, ".kind-group > .anomaly");
    assert_eq!(first.len(), 3 + 2, "{first:?}");
    assert!(first[0].contains("double-committed number 0"));
    let show_all = texts(&page, ".kind-group > details.show-all > summary");
    assert_eq!(show_all, ["show all 254 (double-committed: 251 more)"]);
    let pages = texts(&page, "details.show-all > details.page > summary");
    assert_eq!(pages, ["4–103", "104–203", "204–254"]);
    let behind = texts(&page, "details.show-all .anomaly");
    assert_eq!(behind.len(), 251);
    assert!(behind[250].contains("double-committed number 253"));
}

#[test]
fn every_checkers_kind_heading_gives_the_meaning_that_checker_gives_it() {
    let results = RunResults::new(
        "kinds",
        vec![
            CheckResult::invalid("set", "1 lost", vec![delivery_anomaly("lost", 0)]),
            CheckResult::invalid(
                "list-append",
                "1 G2-item",
                vec![delivery_anomaly("G2-item", 0)],
            ),
            CheckResult::invalid(
                "bank",
                "1 wrong total",
                vec![delivery_anomaly("wrong-total", 0)],
            ),
            CheckResult::invalid(
                "convergence",
                "1 diverged",
                vec![delivery_anomaly("diverged", 0)],
            ),
            CheckResult::invalid(
                "delivery",
                "1 made up",
                vec![delivery_anomaly("made-up", 0)],
            ),
        ],
    );
    let (_dir, page) = render(&results);
    let headings = texts(&page, ".kind-group > h4");
    let expected: Vec<String> = [
        ("set", "lost"),
        ("list-append", "G2-item"),
        ("bank", "wrong-total"),
        ("convergence", "diverged"),
    ]
    .iter()
    .map(|(checker, kind)| {
        let meaning = checkers::kind_meaning(checker, kind).expect("a kind of that checker");
        format!("{kind} × 1 — {meaning}")
    })
    .chain(["made-up × 1".to_string()])
    .collect();
    assert_eq!(
        headings, expected,
        "a kind no checker reports has no meaning"
    );
    assert_ne!(
        checkers::kind_meaning("set", "lost"),
        checkers::kind_meaning("delivery", "lost"),
        "the set's `lost` is its own"
    );
}
