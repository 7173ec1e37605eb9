//! Benchmark: render the report of a one-million-event history and print the time it took and
//! the size of the page (targets: at most 10 s, at most 30 MB).
//!
//! `cargo bench -p reports` (optionally `-- EVENTS` to choose the size). The history is built in
//! memory first (not timed); the timed part is `reports::render_run`: pairing, plots (PNG and
//! SVG), the timeline data and the page, written to a temporary directory.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

fn main() {
    let events: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let history = common::register_history(events, 10, 7);
    let results = common::run_results(&history);
    let plan = common::plan();
    let dir = tempfile::tempdir().expect("temporary directory");

    let mut best_s = f64::INFINITY;
    let mut rendered = None;
    const RUNS: usize = 3;
    for _ in 0..RUNS {
        let started = Instant::now();
        let r = reports::render_run(dir.path(), &history, &results, &plan).expect("render");
        best_s = best_s.min(started.elapsed().as_secs_f64());
        rendered = Some(r);
    }
    let r = rendered.expect("rendered at least once");
    let mb = |b: u64| b as f64 / 1e6;
    let total: u64 = r
        .files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    println!(
        "report of {} events ({} ops): render {:.2} s (best of {RUNS}; target <= 10 s), index.html {:.1} MB (target <= 30 MB), all files {:.1} MB",
        history.events.len(),
        history.ops().map(|o| o.len()).unwrap_or(0),
        best_s,
        mb(r.index_bytes),
        mb(total)
    );
    for f in &r.files {
        let len = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        println!(
            "  {:>10} bytes  {}",
            len,
            f.file_name().unwrap_or_default().to_string_lossy()
        );
    }
    for note in &r.notes {
        println!("  note: {note}");
    }
}
