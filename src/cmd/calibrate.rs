//! `faultline calibrate`: flags to [`faultline::calibrate::CalibrateOptions`], then the table on
//! stdout, optional Markdown and JSON, and the exit code.

use anyhow::{Context, Result};
use faultline::calibrate::{self, CalibrateOptions};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Each scenario plan (system testbed, one bug) runs once per seed with its bug \
on and once with it off, one run at a time, every run kept in the store. A bug-on run that ends \
invalid is a detection; a bug-off run that ends invalid is a false alarm. A real system's plan \
in a folder named known-anomalies must be flagged (a detection); any other real system's plan \
is a control and must pass (invalid is a false alarm).\n\nExamples:\n  \
faultline calibrate                       # every scenario, 10 seeds (about 1.5 h)\n  \
faultline calibrate --seeds 1 --min-detected 1 --retry-misses 2   # the CI calibration\n  \
faultline calibrate --only b2,l4 --seeds 3\n  \
faultline calibrate --real --seeds 3      # real clusters: known anomalies and controls\n\n\
Ctrl-C (or SIGTERM) stops the run in progress (healed, torn down, checked) and starts no \
other; the table then holds what ran.\n\n\
Exit codes: 0 no false alarm and every scenario detected at least --min-detected times; 1 a \
false alarm or a scenario detected too rarely; 2 interrupted; 3 runs that could not complete."
)]
pub struct Args {
    /// Plan files, as glob patterns (quote them); may be repeated.
    #[arg(long, value_name = "GLOB", default_value = "plans/scenarios/*.toml")]
    pub plans: Vec<String>,
    /// The real systems' plans instead of the scenarios: plans/known-anomalies/*.toml (must be
    /// flagged) and plans/*.toml (controls, must pass).
    #[arg(long, conflicts_with = "plans")]
    pub real: bool,
    /// Seeds per scenario; each seed runs the scenario with its bug on and off.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub seeds: u32,
    /// Base seed every run's seed derives from.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Only scenarios whose plan name contains one of these (comma-separated), e.g. b2,l4.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Workload time limit of every run, replacing each plan's (e.g. 10s).
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub time_limit_each: Option<String>,
    /// Exit 1 when a scenario is detected in fewer of its bug-on runs than this (0: never).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub min_detected: u32,
    /// Rerun a missed run with up to N fresh seeds; a miss a retry detects counts toward
    /// --min-detected (the table shows retries apart). A bug caught with probability p then
    /// fails the build with probability (1 - p)^(N+1). A run that could not complete (bug on or
    /// off) is retried the same way, and exits 3 only when no retry of it completes.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub retry_misses: u32,
    /// Store folder for every run, replacing each plan's store.
    #[arg(long, value_name = "DIR")]
    pub store: Option<String>,
    /// Write the table as Markdown (e.g. to $GITHUB_STEP_SUMMARY; appended).
    #[arg(long, value_name = "FILE")]
    pub summary_md: Option<PathBuf>,
    /// Write every run's outcome as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Do not echo each run's log.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(args: Args) -> Result<i32> {
    let time_limit_each_ms = args
        .time_limit_each
        .as_deref()
        .map(|s| faultline::units::duration(s).map(|d| d.as_millis() as u64))
        .transpose()
        .map_err(|e| anyhow::anyhow!("--time-limit-each: {e}"))?;
    let patterns = if args.real {
        vec![
            "plans/known-anomalies/*.toml".to_string(),
            "plans/*.toml".to_string(),
        ]
    } else {
        args.plans.clone()
    };
    anyhow::ensure!(
        args.retry_misses <= calibrate::RETRIES_MAX,
        "--retry-misses: expected 0 to {}",
        calibrate::RETRIES_MAX
    );
    let opts = CalibrateOptions {
        patterns,
        seeds: args.seeds,
        seed: args.seed,
        store: args.store.clone(),
        time_limit_each_ms,
        min_detected: args.min_detected,
        retry_misses: args.retry_misses,
        only: args.only.clone(),
        quiet: args.quiet,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let started = std::time::Instant::now();
    let done = runtime.block_on(calibrate::calibrate(&opts))?;
    let rows = done.rows;
    let table = calibrate::text_table(&rows);
    println!("{table}");
    let odd: Vec<&calibrate::CalibrationRun> = rows
        .iter()
        .flat_map(|r| r.runs.iter())
        .filter(|x| x.outcome == "error" || x.is_miss() || x.is_false_alarm())
        .collect();
    for x in &odd {
        let what = match &x.error {
            Some(e) if x.outcome == "error" => format!("could not complete ({e})"),
            _ if x.outcome == "error" => "could not complete".to_string(),
            _ if x.is_miss() => "miss".to_string(),
            _ => "false alarm".to_string(),
        };
        let retry = if x.retry { " (retry)" } else { "" };
        println!("{what}{retry}: {}", x.command);
    }
    if done.not_started > 0 {
        println!(
            "note: interrupted: {} runs never started; the table holds the runs that did",
            done.not_started
        );
    }
    if let Some(path) = &args.summary_md {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("--summary-md {}", path.display()))?;
        writeln!(
            f,
            "## faultline calibrate ({} seeds, base seed {})\n\n{}",
            opts.seeds,
            opts.seed,
            calibrate::markdown_table(&rows)
        )
        .with_context(|| format!("--summary-md {}", path.display()))?;
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&rows)?;
        std::fs::write(path, text).with_context(|| format!("--json {}", path.display()))?;
    }
    let mut code = calibrate::exit_code(&rows, opts.min_detected);
    let missed: usize = rows.iter().map(|r| r.must_flag_runs() - r.detected()).sum();
    let errors: usize = rows
        .iter()
        .flat_map(|r| r.runs.iter())
        .filter(|x| x.outcome == "error")
        .count();
    if done.not_started > 0 && code == 0 {
        code = 2;
    }
    println!(
        "exit {code}: {} in {:.0} s",
        match code {
            0 if errors > 0 => format!(
                "no false alarm; {errors} runs could not complete (listed above) and a retry with a fresh seed completed each"
            ),
            0 if missed == 0 => "no false alarm, every bug-on run detected".to_string(),
            0 => format!(
                "no false alarm; {missed} runs that must be flagged not detected (under --min-detected {} with --retry-misses {} that passes)",
                opts.min_detected, opts.retry_misses
            ),
            1 => "a false alarm, or a plan detected too rarely".to_string(),
            2 => "interrupted before every run started".to_string(),
            _ => "runs that could not complete".to_string(),
        },
        started.elapsed().as_secs_f64()
    );
    Ok(code)
}
