//! Renders the test fixture's report into a directory, to look at:
//! `cargo run -p reports --example fixture_report -- DIR [EVENTS]`.

#[path = "../tests/common/mod.rs"]
mod common;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(
        args.next()
            .unwrap_or_else(|| "target/fixture-report".into()),
    );
    let events: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let history = common::register_history(events, 10, 7);
    let out = reports::render_run(
        &dir,
        &history,
        &common::run_results(&history),
        &common::plan(),
    )?;
    println!("{}", out.index.display());
    for note in out.notes {
        println!("note: {note}");
    }
    Ok(())
}
