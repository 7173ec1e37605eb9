//! Safety: nothing the system under test says can become markup or script in a report.
//!
//! Every field that can come from a history, a results file or a plan carries a payload that
//! would inject an element, a handler and a script if any escape were missing. The page must
//! parse to exactly the elements we write, with the payload visible as text.

use checkers::{Anomaly, CheckResult, Event, EventType, History, Process};
use reports::{render_run, CiContext, RunResults};
use scraper::{Html, Selector};
use serde_json::json;

/// Closes a script, opens an element with a handler, breaks attribute quotes, opens a comment.
const PAYLOAD: &str = "</script></SCRIPT><x-pwn onmouseover=\"document.body.setAttribute('data-pwned','1')\">\"'&<!--<script>document.body.setAttribute('data-pwned','1')</script>\u{2028}";

fn ev(
    index: u64,
    process: Process,
    kind: EventType,
    f: &str,
    value: serde_json::Value,
    error: Option<&str>,
) -> Event {
    Event {
        index,
        time: index * 1_000_000,
        process,
        kind,
        f: f.to_string(),
        key: Some(PAYLOAD.to_string()),
        value,
        error: error.map(str::to_string),
    }
}

/// A history, results and plan with the payload in every field a person or a system can set.
pub fn hostile_run() -> (History, RunResults, serde_json::Value) {
    let start = format!("start-{PAYLOAD}");
    let stop = format!("stop-{PAYLOAD}");
    let history = History::new(vec![
        ev(
            0,
            Process::Client(0),
            EventType::Invoke,
            PAYLOAD,
            json!(PAYLOAD),
            None,
        ),
        ev(
            1,
            Process::Nemesis,
            EventType::Info,
            &start,
            json!({PAYLOAD: [PAYLOAD]}),
            None,
        ),
        ev(
            2,
            Process::Client(0),
            EventType::Ok,
            PAYLOAD,
            json!([PAYLOAD, 1]),
            None,
        ),
        ev(
            3,
            Process::Client(1),
            EventType::Invoke,
            PAYLOAD,
            json!(PAYLOAD),
            None,
        ),
        ev(
            4,
            Process::Client(1),
            EventType::Info,
            PAYLOAD,
            json!(null),
            Some(PAYLOAD),
        ),
        ev(
            5,
            Process::Nemesis,
            EventType::Info,
            &stop,
            json!(PAYLOAD),
            None,
        ),
    ]);
    let lin = Anomaly {
        kind: "nonlinearizable".into(),
        ops: vec![3],
        explanation: PAYLOAD.into(),
        data: json!({"key": PAYLOAD, "model": PAYLOAD, "prefix": [0], "unplaceable": [3],
                     "states": [PAYLOAD]}),
    };
    let other = Anomaly {
        kind: PAYLOAD.into(),
        ops: vec![0, 2],
        explanation: PAYLOAD.into(),
        data: json!({PAYLOAD: PAYLOAD}),
    };
    let mut unknown = CheckResult::unknown(PAYLOAD, PAYLOAD);
    unknown.details = json!({PAYLOAD: PAYLOAD});
    let mut results = RunResults::new(
        PAYLOAD,
        vec![
            CheckResult::invalid(PAYLOAD, PAYLOAD, vec![lin, other]),
            unknown,
        ],
    );
    results.command = Some(PAYLOAD.into());
    results.started_at = Some(PAYLOAD.into());
    let plan = json!({PAYLOAD: PAYLOAD, "nodes": [PAYLOAD], "system": {PAYLOAD: [PAYLOAD]}});
    (history, results, plan)
}

fn select<'a>(page: &'a Html, css: &str) -> Vec<scraper::ElementRef<'a>> {
    let sel = Selector::parse(css).unwrap();
    page.select(&sel).collect()
}

#[test]
fn the_run_page_has_no_injected_element_and_shows_the_payload_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let (history, results, plan) = hostile_run();
    let out = render_run(dir.path(), &history, &results, &plan).unwrap();
    let text = std::fs::read_to_string(&out.index).unwrap();
    let page = Html::parse_document(&text);

    assert!(select(&page, "x-pwn").is_empty(), "an injected element");
    for e in select(&page, "*") {
        for (name, _) in e.value().attrs() {
            assert!(
                !name.starts_with("on"),
                "an injected handler {name} on <{}>",
                e.value().name()
            );
        }
    }
    let scripts = select(&page, "script");
    assert_eq!(scripts.len(), 2, "only the data block and our script");
    assert_eq!(scripts[0].value().attr("type"), Some("application/json"));
    assert_eq!(
        scripts[1].text().collect::<String>(),
        include_str!("../src/assets/timeline.js")
    );

    // The data block is intact JSON that holds the payload verbatim.
    let data: String = scripts[0].text().collect();
    assert!(
        !data.contains('<') && !data.contains('>'),
        "raw angle brackets in the data block"
    );
    let data: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert!(data["s"].as_array().unwrap().iter().any(|s| s == PAYLOAD));

    // The payload is shown as text, whole, where a person reads it.
    let shown: String = page.root_element().text().collect();
    for place in [
        "h1",
        "#rerun",
        ".anomaly .kind",
        "#plan-table th",
        ".linearization code",
    ] {
        let texts: Vec<String> = select(&page, place)
            .iter()
            .map(|e| e.text().collect())
            .collect();
        assert!(
            texts
                .iter()
                .any(|t| t.contains(PAYLOAD.trim_end_matches('\u{2028}'))),
            "{place}: {texts:?}"
        );
    }
    assert!(shown.contains("<x-pwn onmouseover="));
}

#[test]
fn the_plots_stay_well_formed_svg() {
    let dir = tempfile::tempdir().unwrap();
    let (history, results, plan) = hostile_run();
    render_run(dir.path(), &history, &results, &plan).unwrap();
    for stem in ["latency", "throughput"] {
        let svg = std::fs::read_to_string(dir.path().join(format!("{stem}.svg"))).unwrap();
        let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{stem}.svg: {e}"));
        assert!(doc.descendants().all(|n| n.tag_name().name() != "x-pwn"));
        assert!(doc.descendants().all(|n| n.tag_name().name() != "script"));
    }
}

#[test]
fn the_store_index_has_no_injected_element() {
    let store = tempfile::tempdir().unwrap();
    let run = store.path().join("t").join("1");
    std::fs::create_dir_all(&run).unwrap();
    let (_, results, _) = hostile_run();
    results.write(&run.join("results.json")).unwrap();
    let out = reports::render_store_index(store.path()).unwrap();
    let page = Html::parse_document(&std::fs::read_to_string(out.index).unwrap());
    assert!(select(&page, "x-pwn").is_empty());
    assert!(select(&page, "script").is_empty());
}

#[test]
fn junit_stays_well_formed_xml_and_markdown_carries_no_markup() {
    let (_, results, _) = hostile_run();
    let xml = reports::junit(PAYLOAD, &results.results);
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let failure = doc
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .unwrap();
    assert!(failure.text().unwrap().contains(PAYLOAD));

    let md = reports::markdown_summary(
        &CiContext {
            title: PAYLOAD,
            command: Some(PAYLOAD),
            ..Default::default()
        },
        &results.results,
    );
    let outside_fence: String = md.split("```").step_by(2).collect();
    assert!(
        !outside_fence.contains('<'),
        "raw markup in the summary: {md}"
    );
}
