//! `faultline report`: regenerate a run's HTML report from its files.
//!
//! The report is a pure function of the run directory (`history.jsonl`, `results.json`,
//! `plan.json`), so it can be rebuilt after an upgrade, on another machine, or from a copied
//! run. A missing or malformed file is a one-line error naming it (exit 3). A run whose
//! controller was killed (no `results.json`) is checked first, its results written saying that
//! the run did not finish.

use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
  faultline report store/etcd-register/20240501T120000Z\n  \
  faultline report store/latest --store store\n\n\
Exit codes: 0 written, 3 a missing or malformed file.")]
pub struct Args {
    /// The run directory: holds history.jsonl, results.json and plan.json (without results.json,
    /// the history is checked first and results.json written).
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,

    /// Also rewrite this store's index.html (all runs, newest first) and its `latest` link.
    #[arg(long, value_name = "STORE_DIR")]
    pub store: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<i32> {
    if let Some(r) = faultline::run::finish_unfinished(&args.run_dir)? {
        eprintln!(
            "faultline: the run did not finish (no results.json: its controller was stopped, e.g. kill -9); checked its history: verdict {}; wrote results.json",
            r.verdict
        );
    }
    let rendered = reports::regenerate(&args.run_dir)?;
    for note in &rendered.notes {
        eprintln!("faultline: note: {note}");
    }
    println!("report: {}", rendered.index.display());
    if let Some(store) = &args.store {
        let index = reports::render_store_index(store)?;
        println!(
            "store index: {} ({} runs)",
            index.index.display(),
            index.runs
        );
    }
    Ok(0)
}
