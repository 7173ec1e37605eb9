//! The report in a real browser: Debian's chromium, headless, loads a generated page from disk
//! (no server, no network) and we read the DOM after the page's script ran.
//!
//! On CI (`CI=true`) a missing chromium fails the test; elsewhere the test is skipped with the
//! reason printed. The screenshot is kept under `target/test-artifacts/reports/` for a person to
//! look at.

mod common;
#[path = "../../testsupport/prereq.rs"]
mod prereq;

use scraper::{Html, Selector};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one chromium invocation may take before it is killed.
const CHROMIUM_TIMEOUT_S: u64 = 120;
/// Virtual time the page gets to run its script before the DOM is dumped.
const VIRTUAL_TIME_BUDGET_MS: u32 = 10_000;

fn artifacts(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("test-artifacts/reports").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The chromium binary, or `None` (after saying why) when the test should be skipped.
fn chromium() -> Option<PathBuf> {
    let names = ["chromium", "chromium-browser", "google-chrome"];
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file());
    found.or_else(|| {
        prereq::skip(
            "chromium not installed",
            "no chromium on PATH; apt-get install chromium",
        )
    })
}

/// Runs headless chromium on `url` with `args`, killed after CHROMIUM_TIMEOUT_S; returns stdout.
fn run_chromium(chromium: &Path, url: &str, args: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out_file = profile.path().join("stdout");
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}"))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_file).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(CHROMIUM_TIMEOUT_S);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium exited with {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {CHROMIUM_TIMEOUT_S} s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::read_to_string(out_file).unwrap()
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.canonicalize().unwrap().display())
}

/// The DOM of `page` (with `fragment`) after its script ran.
fn dom(chromium: &Path, page: &Path, fragment: &str) -> Html {
    let text = run_chromium(
        chromium,
        &format!("{}{fragment}", file_url(page)),
        &["--dump-dom".to_string()],
    );
    assert!(text.contains("</html>"), "no DOM dumped: {text:.200}");
    Html::parse_document(&text)
}

fn attr(page: &Html, css: &str, name: &str) -> Option<String> {
    let sel = Selector::parse(css).unwrap();
    page.select(&sel)
        .next()
        .and_then(|e| e.value().attr(name).map(str::to_string))
}

fn texts(page: &Html, css: &str) -> Vec<String> {
    let sel = Selector::parse(css).unwrap();
    page.select(&sel).map(|e| e.text().collect()).collect()
}

fn render_fixture(dir: &Path) -> (PathBuf, checkers::History) {
    let history = common::register_history(20_000, 10, 7);
    let out = reports::render_run(
        dir,
        &history,
        &common::run_results(&history),
        &common::plan(),
    )
    .unwrap();
    (out.index, history)
}

#[test]
fn the_verdict_plots_and_timeline_render_in_chromium() {
    let Some(chromium) = chromium() else { return };
    let dir = artifacts("browser");
    let (index, _) = render_fixture(&dir);

    let page = dom(&chromium, &index, "");
    assert_eq!(texts(&page, "h1 .verdict"), ["invalid"]);
    for plot in ["latency", "throughput"] {
        assert_eq!(
            attr(&page, &format!("img#plot-{plot}"), "data-loaded").as_deref(),
            Some("yes"),
            "{plot} plot decoded by the browser"
        );
    }
    assert_eq!(
        attr(&page, "body", "data-timeline").as_deref(),
        Some("ready")
    );
    let status = texts(&page, "#tl-status").concat();
    assert!(
        status.starts_with("page 1 of 101 · events #0–#199 of 20004"),
        "{status}"
    );
    let boxes = texts(&page, "#tl-view .tl-op");
    assert!(
        boxes.len() > 50,
        "ops drawn on the first page: {}",
        boxes.len()
    );
    assert!(
        boxes.iter().any(|b| b.starts_with("ok write k")),
        "{boxes:?}"
    );

    let shot = dir.join("report.png");
    run_chromium(
        &chromium,
        &file_url(&index),
        &[
            "--window-size=1300,3800".to_string(),
            format!("--screenshot={}", shot.display()),
        ],
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    println!("screenshot: {}", shot.display());
}

#[test]
fn an_event_link_opens_its_page_of_the_timeline_with_the_op_selected() {
    let Some(chromium) = chromium() else { return };
    let dir = artifacts("browser-link");
    let (index, history) = render_fixture(&dir);
    // The first invocation from event 5000 on (5000 itself is a nemesis event).
    let target = history.events[5000..]
        .iter()
        .find(|e| e.kind == checkers::EventType::Invoke)
        .unwrap()
        .index;
    let page = dom(&chromium, &index, &format!("#ev-{target}"));
    let expected_page = (target / 200 + 1).to_string();
    assert_eq!(
        attr(&page, "body", "data-timeline-page").as_deref(),
        Some(expected_page.as_str())
    );
    let detail = texts(&page, "#tl-detail dd");
    assert!(
        detail
            .iter()
            .any(|d| d.starts_with(&format!("#{target} at "))),
        "{detail:?}"
    );
    assert_eq!(texts(&page, "#tl-view .tl-op.target").len(), 1);

    // A nemesis event is not an op: its row is marked instead.
    let page = dom(&chromium, &index, "#ev-5000");
    assert_eq!(
        attr(&page, "body", "data-timeline-page").as_deref(),
        Some("26")
    );
    assert_eq!(
        attr(&page, ".tl-row.target", "id").as_deref(),
        Some("tl-row-5000")
    );
}

#[test]
fn hostile_values_inject_nothing_once_the_script_ran() {
    let Some(chromium) = chromium() else { return };
    let dir = artifacts("browser-hostile");
    let payload = "</script><img src=x onerror=\"document.body.setAttribute('data-pwned','1')\"><script>document.body.setAttribute('data-pwned','1')</script>";
    let jsonl = format!(
        "{{\"index\":0,\"time\":0,\"process\":0,\"type\":\"invoke\",\"f\":{p},\"key\":{p},\"value\":{p}}}\n\
         {{\"index\":1,\"time\":5,\"process\":0,\"type\":\"info\",\"f\":{p},\"key\":{p},\"value\":{p},\"error\":{p}}}\n",
        p = serde_json::to_string(payload).unwrap()
    );
    let history = checkers::formats::read_str(&jsonl, None).unwrap();
    let results = vec![checkers::CheckResult::invalid(
        payload,
        payload,
        vec![checkers::Anomaly {
            kind: payload.into(),
            ops: vec![0],
            explanation: payload.into(),
            data: serde_json::json!({"v": payload}),
        }],
    )];
    let out = reports::render_check_report(&dir, &history, &results, payload).unwrap();
    let page = dom(&chromium, &out.index, "#ev-0");
    assert_eq!(
        attr(&page, "body", "data-pwned"),
        None,
        "an injected script or handler ran"
    );
    assert_eq!(
        attr(&page, "body", "data-timeline").as_deref(),
        Some("ready")
    );
    let sel = Selector::parse("img").unwrap();
    let images: Vec<String> = page
        .select(&sel)
        .filter_map(|i| i.value().attr("src").map(str::to_string))
        .collect();
    assert_eq!(
        images,
        ["latency.svg", "throughput.svg"],
        "no injected image"
    );
    let boxes = texts(&page, "#tl-view .tl-op");
    assert_eq!(boxes.len(), 1);
    assert!(
        boxes[0].contains(payload),
        "the payload is text in the timeline: {boxes:?}"
    );
    let detail = texts(&page, "#tl-detail dd");
    assert!(detail.iter().any(|d| d == payload), "{detail:?}");
}
