//! Without a font, plots are drawn without text and the page says so (its own test binary: the
//! font is chosen once per process).

use checkers::formats::read_str;
use checkers::CheckResult;

#[test]
fn without_a_font_the_plots_have_no_text_and_the_page_says_why() {
    std::env::set_var(reports::plots::FONT_ENV, "/nonexistent/font.ttf");
    let history = read_str(
        "{\"index\":0,\"time\":0,\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":1}\n\
         {\"index\":1,\"time\":2000000,\"process\":0,\"type\":\"ok\",\"f\":\"write\",\"value\":1}\n",
        None,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = reports::render_check_report(
        dir.path(),
        &history,
        &[CheckResult::valid("stats", "1 op")],
        "h.jsonl",
    )
    .unwrap();
    assert_eq!(out.notes.len(), 1);
    assert!(
        out.notes[0].starts_with("no font for plot labels: tried /nonexistent/font.ttf ("),
        "{}",
        out.notes[0]
    );
    let svg = std::fs::read_to_string(dir.path().join("latency.svg")).unwrap();
    assert!(!svg.contains("<text"), "no text without a font");
    assert!(svg.contains("<circle"), "the point is still drawn");
    let page = std::fs::read_to_string(&out.index).unwrap();
    assert!(page.contains("The plots have no tick labels or legends: no font for plot labels"));
    assert!(
        page.contains("y: 1 to 10 ms on a log scale"),
        "ranges in the caption instead"
    );
}
