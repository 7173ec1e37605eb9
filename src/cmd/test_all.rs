//! `faultline test-all`: flags to [`faultline::test_all::TestAllOptions`], then the table on
//! stdout and the matrix's exit code. The work is in the controller (`faultline::test_all`).

use anyhow::{Context, Result};
use faultline::test_all::{self, TestAllOptions};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Each plan runs --test-count times, in rounds (every plan once, then \
again), one run at a time, every run kept in the store. Seeds derive from --seed (random and \
printed when absent), so `--seed N` reruns the same matrix; each failing run's own rerun command \
is printed too.\n\nExamples:\n  \
faultline test-all --plans 'plans/*.toml' --test-count 3 --time-limit-each 60s \\\n    \
--time-limit-total 30m --junit junit.xml --summary-md \"$GITHUB_STEP_SUMMARY\"\n  \
faultline test-all --plans 'plans/**/*.toml' --seed 12345\n  \
faultline test-all --plans 'plans/*.toml' --seed 12345 --shard 2/4 --store shard-2\n\n\
With --shard K/N, this job runs its part of the matrix (balanced by expected run time; the \
seeds are those of the unsharded matrix) and lists it in its store; `faultline merge` joins the \
shards' stores.\n\n\
Exit codes: 0 every run valid; 1 some run found an anomaly (invalid); 3 a harness error (and \
nothing invalid); 2 some run unknown, or some plan never ran (out of time, --fail-fast, Ctrl-C)."
)]
pub struct Args {
    /// Plan files, as glob patterns (quote them); may be repeated.
    #[arg(long, value_name = "GLOB", default_value = "plans/**/*.toml")]
    pub plans: Vec<String>,
    /// Runs per plan, each with its own seed.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub test_count: u32,
    /// Master seed: every run's seed derives from it (default: random; always printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Workload time limit of every run, replacing each plan's time_limit (e.g. 60s).
    #[arg(long, value_name = "DURATION")]
    pub time_limit_each: Option<String>,
    /// Bound on the whole matrix (e.g. 30m): runs that would not fit are skipped and reported.
    #[arg(long, value_name = "DURATION")]
    pub time_limit_total: Option<String>,
    /// Stop after the first run that is not valid; the rest are reported skipped.
    #[arg(long)]
    pub fail_fast: bool,
    /// Store folder for every run, replacing each plan's store.
    #[arg(long, value_name = "DIR")]
    pub store: Option<String>,
    /// Write JUnit XML: one test suite per plan, one test case per run and checker.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Append a Markdown summary (e.g. to $GITHUB_STEP_SUMMARY).
    #[arg(long, value_name = "FILE")]
    pub summary_md: Option<PathBuf>,
    /// Do not echo each run's log (the per-run lines and the table are still printed).
    #[arg(long)]
    pub quiet: bool,
    /// Run only part K of N of the matrix (same seeds as unsharded; needs --store); join the
    /// shards' stores with `faultline merge`.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
}

impl Args {
    pub fn options(&self) -> Result<TestAllOptions, String> {
        let dur = |flag: &str, v: &Option<String>| -> Result<Option<std::time::Duration>, String> {
            v.as_deref()
                .map(|s| faultline::units::duration(s).map_err(|e| format!("{flag}: {e}")))
                .transpose()
        };
        let each = dur("--time-limit-each", &self.time_limit_each)?;
        if each.is_some_and(|d| d.is_zero()) {
            return Err("--time-limit-each: expected more than 0".into());
        }
        let total = dur("--time-limit-total", &self.time_limit_total)?;
        if total.is_some_and(|d| d.is_zero()) {
            return Err("--time-limit-total: expected more than 0".into());
        }
        if self.test_count == 0 || self.test_count > test_all::TEST_COUNT_MAX {
            return Err(format!(
                "--test-count: expected 1 to {} runs per plan",
                test_all::TEST_COUNT_MAX
            ));
        }
        let shard = self
            .shard
            .as_deref()
            .map(faultline::shard::Shard::parse)
            .transpose()?;
        if shard.is_some() && self.store.is_none() {
            return Err(
                "--shard: needs --store DIR (a shard's store is what `faultline merge` reads)"
                    .into(),
            );
        }
        Ok(TestAllOptions {
            patterns: self.plans.clone(),
            test_count: self.test_count,
            seed: self.seed.unwrap_or_else(test_all::random_seed),
            time_limit_each_ms: each.map(|d| d.as_millis() as u64),
            time_limit_total: total,
            fail_fast: self.fail_fast,
            store: self.store.clone(),
            junit: self.junit.clone(),
            summary_md: self.summary_md.clone(),
            quiet: self.quiet,
            shard,
        })
    }
}

pub fn run(args: Args) -> Result<i32> {
    let opts = args.options().map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let outcome = runtime.block_on(test_all::test_all(&opts))?;
    println!("{}", outcome.table);
    for note in &outcome.notes {
        println!("note: {note}");
    }
    for page in &outcome.pages {
        println!("runs by plan: {}", page.display());
    }
    println!("rerun the matrix: {}", opts.rerun_command());
    println!(
        "exit {}: {} in {:.0} s",
        outcome.exit_code,
        match outcome.exit_code {
            0 => "every run valid",
            1 => "an anomaly was found (invalid)",
            3 => "a harness error",
            _ => "unknown: a run could not decide, or a plan never ran",
        },
        outcome.elapsed.as_secs_f64()
    );
    Ok(outcome.exit_code)
}
