//! `faultline check`: judge history files from anywhere with one checker.
//!
//! One file prints the verdict, the checker's explanation and the time taken; several files print
//! one line each and a summary. The exit code composes the verdicts (invalid 1, then a file that
//! could not be read 3, then unknown 2, else 0), so a CI job can run it over a folder.

use anyhow::{bail, Context, Result};
use checkers::formats::{self, Format};
use checkers::{Budget, CheckOptions, CheckResult, History, Verdict};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What each checker of `CHECKER_NAMES` catches, one line each, for `check --help`.
const CHECKER_HELP: &[(&str, &str)] = &[
    (
        "stats",
        "counts ops by function and outcome; never invalid (a first look)",
    ),
    (
        "linearizable",
        "stale reads, lost writes: no real-time order of the ops explains them",
    ),
    (
        "delivery",
        "lost, duplicated, reordered, double-committed messages; offset errors",
    ),
    (
        "set",
        "lost, stale, unexpected and duplicate elements of a grow-only set",
    ),
    ("unique", "an id created or handed out twice"),
    (
        "idempotency",
        "a key with more than one effect, or differing responses to one request",
    ),
    (
        "versioned-append",
        "two appends accepted at one version; reads that disagree on a stream",
    ),
    ("counter", "a read outside the bounds the increments allow"),
    (
        "bank",
        "a read whose balances do not sum to the conserved total",
    ),
    (
        "list-append",
        "G0, G1, G-single, G2-item cycles among list-append txns",
    ),
    (
        "rw-register",
        "G1, G-single, G2-item cycles among read-write register txns",
    ),
];

/// The text after the options: the checkers, examples (each fits a line), exit codes.
fn after_help() -> String {
    let mut text = String::from("Checkers:\n");
    for name in checkers::CHECKER_NAMES {
        let what = CHECKER_HELP
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, w)| *w);
        text.push_str(&format!("  {name:<17} {what}\n"));
    }
    text.push_str(
        "\nExamples:\n  \
faultline check testdata/porcupine/etcd/etcd_000.log \\\n      \
--checker linearizable --model cas-register\n  \
faultline check histories/*.log --checker stats\n  \
faultline check run/history.jsonl --checker delivery \\\n      \
--guarantee at-least-once --json\n  \
faultline check txns.edn --checker list-append \\\n      \
--consistency-model snapshot-isolation\n\n\
Exit codes: 0 valid, 1 invalid, 2 unknown, 3 bad input or harness error.",
    );
    text
}

#[derive(clap::Args, Debug)]
#[command(after_help = after_help())]
pub struct Args {
    /// History files: faultline JSONL, Jepsen EDN, or Jepsen log lines (detected from content).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// The checker to run (the list below says what each one catches).
    #[arg(long, short = 'c', default_value = "linearizable", value_parser = checker_name)]
    pub checker: String,

    /// Force the input format instead of detecting it: jsonl, edn, jepsen-log.
    #[arg(long, value_parser = format_name)]
    pub format: Option<Format>,

    /// Linearizability model: register, cas-register, kv, multi-register, fifo-queue,
    /// unordered-queue, set. Default: cas-register (kv when ops carry keys and use get/put).
    #[arg(long)]
    pub model: Option<String>,

    /// Initial state of the model, as JSON (e.g. 0, "", null). Registers default to null
    /// (never written).
    #[arg(long, value_name = "JSON", value_parser = json_value)]
    pub initial: Option<Value>,

    /// Read the history with another tool's conventions (linearizable only): `knossos` drops
    /// every failed op and reads a nil read as "value unknown", as Knossos does, so verdicts on
    /// Jepsen EDN histories equal Knossos's. Default: faultline's (docs/history.md).
    #[arg(long, value_name = "TOOL", value_parser = compat_name)]
    pub compat: Option<String>,

    /// Delivery guarantee to check against: at-most-once, at-least-once, exactly-once.
    #[arg(long)]
    pub guarantee: Option<String>,

    /// Redeliveries allowed before a message must be dead-lettered.
    #[arg(long, value_name = "N")]
    pub max_retries: Option<u32>,

    /// Isolation level the list-append and rw-register checkers judge against: read-committed,
    /// repeatable-read, snapshot-isolation, serializable (default), strict-serializable.
    #[arg(long, value_name = "MODEL", value_parser = consistency_model_name)]
    pub consistency_model: Option<String>,

    /// Give up with `unknown` after this long per file (e.g. 30s, 500ms, 2m).
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true, value_parser = faultline::units::duration)]
    pub time_limit: Option<Duration>,

    /// Give up with `unknown` when a checker's search state would exceed this (e.g. 512MiB, 4GiB).
    #[arg(long, value_name = "SIZE", value_parser = faultline::units::bytes, default_value = "4GiB")]
    pub memory_limit: u64,

    /// Print the result as JSON (one object per file, one per line).
    #[arg(long)]
    pub json: bool,

    /// Print per-file read and check time and peak memory, and the totals.
    #[arg(long)]
    pub timing: bool,

    /// Render an HTML report of each history into DIR (DIR/<file name>/ for several files).
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,

    /// Write JUnit XML for CI: one test suite per file, one test case per checker.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,

    /// Append a Markdown summary (e.g. to $GITHUB_STEP_SUMMARY).
    #[arg(long, value_name = "FILE")]
    pub summary_md: Option<PathBuf>,
}

fn checker_name(s: &str) -> Result<String, String> {
    if checkers::CHECKER_NAMES.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "unknown checker; expected one of: {}",
            checkers::CHECKER_NAMES.join(", ")
        ))
    }
}

fn consistency_model_name(s: &str) -> Result<String, String> {
    checkers::txn::Model::parse(s)
        .map(|m| m.name().to_string())
        .ok_or_else(|| {
            format!(
                "expected one of: {}",
                checkers::txn::Model::NAMES.join(", ")
            )
        })
}

fn compat_name(s: &str) -> Result<String, String> {
    checkers::linear::Compat::parse(s).map(|_| s.to_string())
}

fn format_name(s: &str) -> Result<Format, String> {
    Format::parse(s).ok_or_else(|| format!("expected one of: {}", Format::NAMES.join(", ")))
}

fn json_value(s: &str) -> Result<Value, String> {
    serde_json::from_str(s).map_err(|e| format!("not JSON ({e}); e.g. 0, \"\", null"))
}

/// What happened to one file.
struct FileOutcome {
    path: PathBuf,
    read_ms: f64,
    peak_rss_bytes: Option<u64>,
    result: Result<CheckResult, String>,
}

impl FileOutcome {
    /// Exit-code rank: invalid 1 beats error 3 beats unknown 2 beats valid 0.
    fn rank(&self) -> (u8, i32) {
        match &self.result {
            Ok(r) if r.verdict == Verdict::Invalid => (3, 1),
            Err(_) => (2, crate::EXIT_ERROR),
            Ok(r) if r.verdict == Verdict::Unknown => (1, 2),
            Ok(_) => (0, 0),
        }
    }
}

pub fn run(args: Args) -> Result<i32> {
    let options = CheckOptions {
        model: args.model.clone(),
        initial: args.initial.clone(),
        guarantee: args.guarantee.clone(),
        max_retries: args.max_retries,
        consistency_model: args.consistency_model.clone(),
        compat: args.compat.clone(),
    };
    // Build once up front so that a bad option is one error, not one per file.
    let checker = checkers::by_name(&args.checker, &options)
        .map_err(anyhow::Error::msg)
        .context("--checker")?;
    let budget = Budget {
        time_limit: args.time_limit,
        memory_bytes_max: Some(args.memory_limit),
    };
    let started = Instant::now();
    let mut outcomes = Vec::with_capacity(args.files.len());
    for path in &args.files {
        reset_peak_rss();
        let read_started = Instant::now();
        // Linear checkers stream JSONL straight from the file: memory grows with distinct
        // messages, not events. Everything else reads the whole history first.
        let streamed = match args.format {
            None | Some(Format::Jsonl) => {
                checkers::stream::check_jsonl_path(path, &args.checker, &options)
            }
            _ => None,
        };
        let (read_ms, result) = match streamed {
            Some(result) => (0.0, result),
            None => {
                let read = formats::read_path(path, args.format);
                let read_ms = read_started.elapsed().as_secs_f64() * 1e3;
                let result = read.and_then(|history: History| {
                    checkers::run_checker(checker.as_ref(), &history, &budget)
                        .map_err(|e| format!("{}: {e}", path.display()))
                });
                (read_ms, result)
            }
        };
        outcomes.push(FileOutcome {
            path: path.clone(),
            read_ms,
            peak_rss_bytes: peak_rss_bytes(),
            result,
        });
    }
    let total = started.elapsed();
    write_ci_outputs(&args, &outcomes, format_for_report(&args))?;
    if args.json {
        print_json(&outcomes, args.timing)?;
    } else if outcomes.len() == 1 {
        print_one(&outcomes[0], args.timing);
    } else {
        print_many(&outcomes, total, args.timing);
    }
    let code = outcomes
        .iter()
        .map(FileOutcome::rank)
        .max()
        .map_or(0, |(_, c)| c);
    if outcomes.len() == 1 {
        if let Err(e) = &outcomes[0].result {
            if !args.json {
                bail!("{e}");
            }
        }
    }
    Ok(code)
}

fn format_for_report(args: &Args) -> Option<Format> {
    args.format
}

/// JUnit, Markdown and HTML reports for the files that were checked.
fn write_ci_outputs(args: &Args, outcomes: &[FileOutcome], format: Option<Format>) -> Result<()> {
    let name = |o: &FileOutcome| {
        o.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| o.path.display().to_string())
    };
    let checked: Vec<(String, Vec<CheckResult>)> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().ok().map(|r| (name(o), vec![r.clone()])))
        .collect();
    if let Some(path) = &args.junit {
        let suites: Vec<(&str, &[CheckResult])> = checked
            .iter()
            .map(|(n, r)| (n.as_str(), r.as_slice()))
            .collect();
        reports::write_junit_suites(path, &suites)?;
    }
    if let Some(dir) = &args.report {
        for o in outcomes {
            let Ok(result) = &o.result else { continue };
            let target = if outcomes.len() == 1 {
                dir.clone()
            } else {
                dir.join(name(o))
            };
            let history = formats::read_path(&o.path, format).map_err(anyhow::Error::msg)?;
            let rendered = reports::render_check_report(
                &target,
                &history,
                std::slice::from_ref(result),
                &name(o),
            )?;
            eprintln!("report: {}", rendered.index.display());
        }
    }
    if let Some(path) = &args.summary_md {
        for (title, results) in &checked {
            let ctx = reports::CiContext {
                title,
                ..Default::default()
            };
            reports::write_markdown_summary(path, &ctx, results)?;
        }
    }
    Ok(())
}

fn print_one(o: &FileOutcome, timing: bool) {
    let r = match &o.result {
        Ok(r) => r,
        Err(_) => return, // reported by the caller as the one-line error
    };
    println!(
        "{}: {} ({}, checked in {})",
        o.path.display(),
        r.verdict,
        r.checker,
        ms(r.elapsed_ms)
    );
    println!("  {}", r.summary);
    print_anomalies(&r.checker, &r.anomalies);
    if timing {
        println!(
            "  timing: read {}, check {}, peak memory {}",
            ms(o.read_ms),
            ms(r.elapsed_ms),
            mib(o.peak_rss_bytes)
        );
    }
}

/// Anomalies listed per kind in the terminal before the rest are only counted.
const ANOMALIES_PER_KIND_SHOWN: usize = 3;

/// One line per kind (count and meaning), its first few anomalies, and a count of the rest
/// with a pointer to `--json`, so a history with thousands of anomalies stays readable.
fn print_anomalies(checker: &str, anomalies: &[checkers::Anomaly]) {
    let mut hidden = 0;
    for (kind, group) in reports::by_kind(anomalies) {
        match checkers::kind_meaning(checker, kind) {
            Some(meaning) => println!("  {kind} × {}: {meaning}", group.len()),
            None => println!("  {kind} × {}", group.len()),
        }
        for a in group.iter().take(ANOMALIES_PER_KIND_SHOWN) {
            println!("    - {}", a.explanation);
        }
        let rest = group.len().saturating_sub(ANOMALIES_PER_KIND_SHOWN);
        if rest > 0 {
            println!("    ... and {rest} more {kind}");
        }
        hidden += rest;
    }
    if hidden > 0 {
        println!("  ({hidden} anomalies not listed here: --json lists every one)");
    }
}

fn print_many(outcomes: &[FileOutcome], total: Duration, timing: bool) {
    let width = outcomes
        .iter()
        .map(|o| o.path.display().to_string().len())
        .max()
        .unwrap_or(0);
    let (mut valid, mut invalid, mut unknown, mut errors) = (0, 0, 0, 0);
    let mut check_ms_total = 0.0;
    let mut peak_max = 0u64;
    for o in outcomes {
        let path = o.path.display().to_string();
        match &o.result {
            Ok(r) => {
                match r.verdict {
                    Verdict::Valid => valid += 1,
                    Verdict::Invalid => invalid += 1,
                    Verdict::Unknown => unknown += 1,
                }
                check_ms_total += r.elapsed_ms;
                let first = r.summary.split(". ").next().unwrap_or("");
                let mut line = format!("{path:width$}  {:<7}  {:>9}", r.verdict, ms(r.elapsed_ms));
                if timing {
                    line.push_str(&format!(
                        "  read {:>9}  peak {:>9}",
                        ms(o.read_ms),
                        mib(o.peak_rss_bytes)
                    ));
                }
                println!("{line}  {}", truncate(first, 100));
            }
            Err(e) => {
                errors += 1;
                println!("{path:width$}  error    {e}");
            }
        }
        peak_max = peak_max.max(o.peak_rss_bytes.unwrap_or(0));
    }
    println!(
        "{} files: {valid} valid, {invalid} invalid, {unknown} unknown, {errors} errors; checking took {} ({} wall)",
        outcomes.len(),
        ms(check_ms_total),
        ms(total.as_secs_f64() * 1e3)
    );
    if timing {
        println!("peak memory over all files: {}", mib(Some(peak_max)));
    }
}

fn print_json(outcomes: &[FileOutcome], timing: bool) -> Result<()> {
    for o in outcomes {
        let mut v = match &o.result {
            Ok(r) => json!({"file": o.path, "result": r}),
            Err(e) => json!({"file": o.path, "error": e}),
        };
        if timing {
            v["timing"] = json!({"read_ms": o.read_ms, "peak_rss_bytes": o.peak_rss_bytes});
        }
        println!("{}", serde_json::to_string(&v)?);
    }
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(n).collect::<String>())
    }
}

fn ms(v: f64) -> String {
    if v < 1.0 {
        format!("{:.0} us", v * 1e3)
    } else if v < 1000.0 {
        format!("{v:.1} ms")
    } else {
        format!("{:.2} s", v / 1e3)
    }
}

fn mib(b: Option<u64>) -> String {
    match b {
        Some(b) => format!("{:.1} MiB", b as f64 / (1 << 20) as f64),
        None => "n/a".to_string(),
    }
}

/// Resets the kernel's peak-RSS mark so that the next reading is per file (Linux only).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident memory of this process since the last reset, from /proc (Linux only).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
