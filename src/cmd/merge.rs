//! `faultline merge`: flags to [`faultline::merge::MergeOptions`], then the merged table on
//! stdout and the matrix's exit code. The work is in the controller (`faultline::merge`).

use anyhow::Result;
use faultline::merge::{self, MergeOptions};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Joins the stores of `faultline test-all --shard K/N --store DIR` (e.g. the \
artifacts of N CI jobs) into one store: every run folder, index.html, plans.html, junit.xml and \
summary.md, with the runs, seeds and verdicts of an unsharded `test-all --seed S`. A shard \
whose store is missing is named and its runs are error rows.\n\nExamples:\n  \
faultline merge shards/*/ --into merged --summary-md \"$GITHUB_STEP_SUMMARY\"\n  \
faultline merge shard-1 shard-2 shard-3 --into store\n\n\
Exit codes: test-all's rule over the merged runs: 0 every run valid; 1 some run invalid; 3 a \
harness error or a missing shard (and nothing invalid), or stores that cannot be merged; 2 some \
run unknown or a plan never ran."
)]
pub struct Args {
    /// The shards' stores (each holds faultline-shard-K-of-N.json).
    #[arg(value_name = "STORE", required = true)]
    pub stores: Vec<PathBuf>,
    /// The store to merge into (created; may already hold earlier runs).
    #[arg(long, value_name = "DIR")]
    pub into: PathBuf,
    /// Merge stores of different master seeds, faultline versions, base images or matrices.
    #[arg(long)]
    pub allow_mixed: bool,
    /// Also write the merged JUnit XML here (it is always written to DIR/junit.xml).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Also append the Markdown summary here, e.g. "$GITHUB_STEP_SUMMARY" (always DIR/summary.md).
    #[arg(long, value_name = "FILE")]
    pub summary_md: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<i32> {
    let outcome = merge::merge(&MergeOptions {
        stores: args.stores,
        into: args.into,
        allow_mixed: args.allow_mixed,
        junit: args.junit,
        summary_md: args.summary_md,
    })?;
    for m in &outcome.missing {
        eprintln!("faultline: merge: shard {m} is missing: its runs are error rows");
    }
    println!("{}", outcome.table);
    for note in &outcome.notes {
        println!("note: {note}");
    }
    for f in &outcome.files {
        println!("wrote: {}", f.display());
    }
    println!(
        "exit {}: {} ({} runs; the longest shard took {:.0} s)",
        outcome.exit_code,
        match outcome.exit_code {
            0 => "every run valid",
            1 => "an anomaly was found (invalid)",
            3 => "a harness error or a missing shard",
            _ => "unknown: a run could not decide, or a plan never ran",
        },
        outcome.runs.len(),
        outcome.longest_shard_s
    );
    Ok(outcome.exit_code)
}
