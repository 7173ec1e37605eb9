//! Linearizability checker figures: per-file and total check times over Porcupine's 70 etcd
//! histories and its kv histories, then synthetic histories of 1,700-2,000 ops over 10 keys.
//!
//! `cargo bench -p checkers --bench linear` (add `-- --runs N` for more repetitions), then
//! issue 16's slow shapes once each (`-- --slow-shapes` runs only those; `--only TEXT` those whose
//! name contains TEXT, `--time-limit-s N` per run, `--export DIR` writes each as JSONL, `--seed N`
//! generates them from another seed than 16).
//! Times are the median of the runs of the check alone (the history is parsed beforehand);
//! "memo bytes" is the peak size of the largest partition's memo table (what the memory cap
//! counts); the last line is the peak resident memory of the whole bench process.

use checkers::linear::synth::{register_history, SynthParams};
use checkers::linear::Linearizable;
use checkers::{formats, Budget, CheckResult, Checker, History};
use std::path::PathBuf;
use std::time::Instant;

fn corpus() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/porcupine");
    assert!(
        dir.is_dir(),
        "the Porcupine corpus is missing: expected {}",
        dir.display()
    );
    dir
}

/// Peak resident memory of this process, from /proc (Linux), in bytes.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

struct Figure {
    median_ms: f64,
    min_ms: f64,
    result: CheckResult,
}

fn measure(checker: &Linearizable, history: &History, runs: usize) -> Figure {
    measure_within(checker, history, runs, &Budget::default())
}

fn measure_within(
    checker: &Linearizable,
    history: &History,
    runs: usize,
    budget: &Budget,
) -> Figure {
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let started = Instant::now();
        let result = checker.check(history, budget).expect("well-formed");
        times.push(started.elapsed().as_secs_f64() * 1e3);
        last = Some(result);
    }
    times.sort_by(f64::total_cmp);
    Figure {
        median_ms: times[times.len() / 2],
        min_ms: times[0],
        result: last.expect("at least one run"),
    }
}

fn row(name: &str, ops: usize, f: &Figure) {
    let d = &f.result.details;
    println!(
        "{name:<28} {ops:>6} {:>9} {:>10.3} {:>10.3} {:>10} {:>12}",
        f.result.verdict.as_str(),
        f.median_ms,
        f.min_ms,
        d["states_explored"].as_u64().unwrap_or(0),
        d["peak_cache_bytes"].as_u64().unwrap_or(0),
    );
}

fn header() {
    println!(
        "{:<28} {:>6} {:>9} {:>10} {:>10} {:>10} {:>12}",
        "history", "ops", "verdict", "median ms", "min ms", "states", "memo bytes"
    );
}

/// The history shapes of issue 16, where faultline was slower than Porcupine or gave up:
/// (name, ops, keys, client workers, per mille timed out, values written). Seeded (16);
/// linearizable by construction. Values 0..5 make the search hardest (every value is written
/// and read many times); with 0..100 or 0..100,000 Porcupine decides what faultline did not.
const SLOW_SHAPES: &[(&str, usize, usize, usize, u32, u64)] = &[
    ("20k ops 3 keys 20% info", 20_000, 3, 10, 200, 5),
    ("20k ops 3 keys v100", 20_000, 3, 10, 200, 100),
    ("20k ops 3 keys v100000", 20_000, 3, 10, 200, 100_000),
    ("2k ops 1 key 20 clients", 2_000, 1, 20, 200, 5),
    ("2k ops 1 key 20 clients v100", 2_000, 1, 20, 200, 100),
    ("5k ops 1 key 50 clients", 5_000, 1, 50, 200, 5),
    ("200k ops 100 keys 5% info", 200_000, 100, 20, 50, 5),
    ("200k ops 100 keys v100", 200_000, 100, 20, 50, 100),
    ("1k ops 1 key 50 clients", 1_000, 1, 50, 200, 5),
    ("1k ops 1 key 50 clients v100", 1_000, 1, 50, 200, 100),
];

/// Each slow shape gets at most this long per run (`--time-limit-s` changes it): an `unknown`
/// row says it ran out.
const SLOW_SHAPE_TIME_LIMIT_S: u64 = 60;

/// Options of the slow shapes.
struct ShapeOptions {
    runs: usize,
    time_limit_s: u64,
    /// Only the shapes whose name contains this.
    only: Option<String>,
    /// Write each shape's history here as faultline JSONL (`<name>.jsonl`), for other tools.
    export: Option<PathBuf>,
    /// The generator's seed (16, issue 16's, unless `--seed N`).
    seed: u64,
}

fn slow_shapes(cas: &Linearizable, o: &ShapeOptions) {
    let runs = o.runs;
    println!(
        "\n== Issue 16's shapes (cas-register, values 0..5 unless named, seed {}), {runs} runs each, {} s and 4 GiB per run",
        o.seed, o.time_limit_s
    );
    header();
    let budget = Budget {
        time_limit: Some(std::time::Duration::from_secs(o.time_limit_s)),
        ..Budget::default()
    };
    for &(name, ops, keys, workers, info, values) in SLOW_SHAPES {
        if o.only
            .as_ref()
            .is_some_and(|only| !name.contains(only.as_str()))
        {
            continue;
        }
        let history = register_history(&SynthParams {
            seed: o.seed,
            ops,
            keys,
            processes: workers,
            values,
            info_per_mille: info,
            cas: true,
        });
        if let Some(dir) = &o.export {
            let file = dir.join(format!("{}.jsonl", name.replace([' ', '%'], "-")));
            let mut out =
                std::io::BufWriter::new(std::fs::File::create(&file).expect("export file"));
            formats::write_jsonl(&history, &mut out).expect("export");
        }
        let cpu_before = cpu_ms();
        let f = measure_within(cas, &history, runs, &budget);
        row(name, ops, &f);
        if let Some(before) = cpu_before {
            let cpu = cpu_ms().unwrap_or(before) - before;
            println!(
                "{:<28} CPU time of the process over the runs: {cpu:.1} ms",
                ""
            );
        }
    }
}

/// CPU time of this process (user and system, all threads, finished ones included), in
/// milliseconds: on a shared machine the wall time says more about the other processes than
/// about the check. Linux's process CPU clock, to the microsecond; elsewhere `None`.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn cpu_ms() -> Option<f64> {
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, now: *mut Timespec) -> i32;
    }
    /// CLOCK_PROCESS_CPUTIME_ID in Linux's <time.h>.
    const PROCESS_CPU_CLOCK: i32 = 2;
    let mut now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime (in the C library std links) writes one timespec, which on 64-bit
    // Linux is two 64-bit integers, to the valid pointer it is given, and nothing else.
    let rc = unsafe { clock_gettime(PROCESS_CPU_CLOCK, &mut now) };
    (rc == 0).then(|| now.tv_sec as f64 * 1e3 + now.tv_nsec as f64 / 1e6)
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn cpu_ms() -> Option<f64> {
    None
}

fn main() {
    let mut runs = 5usize;
    let mut only_slow_shapes = false;
    let mut shapes = ShapeOptions {
        runs: 1,
        time_limit_s: SLOW_SHAPE_TIME_LIMIT_S,
        only: None,
        export: None,
        seed: 16,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--runs" {
            runs = args
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(runs)
                .max(1);
        } else if a == "--slow-shapes" {
            only_slow_shapes = true;
        } else if a == "--time-limit-s" {
            let n = args.next().and_then(|n| n.parse().ok());
            shapes.time_limit_s = n.expect("--time-limit-s takes a number of seconds");
        } else if a == "--only" {
            shapes.only = args.next();
        } else if a == "--export" {
            shapes.export = args.next().map(PathBuf::from);
        } else if a == "--seed" {
            let n = args.next().and_then(|n| n.parse().ok());
            shapes.seed = n.expect("--seed takes a number");
        }
    }
    let cas = Linearizable::new(Some("cas-register"), None).expect("model");
    let kv = Linearizable::new(Some("kv"), None).expect("model");
    if only_slow_shapes {
        shapes.runs = runs;
        slow_shapes(&cas, &shapes);
        return;
    }

    println!("== Porcupine etcd histories (cas-register), {runs} runs each");
    header();
    let mut etcd: Vec<PathBuf> = std::fs::read_dir(corpus().join("etcd"))
        .expect("etcd folder")
        .map(|e| e.expect("entry").path())
        .collect();
    etcd.sort();
    let (mut total_median, mut total_min, mut slowest) = (0.0, 0.0, (0.0f64, String::new()));
    let mut cache_max = 0u64;
    for path in &etcd {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let history = formats::read_path(path, None).expect("reads");
        let f = measure(&cas, &history, runs);
        row(&name, history.ops().expect("pairs").len(), &f);
        total_median += f.median_ms;
        total_min += f.min_ms;
        if f.median_ms > slowest.0 {
            slowest = (f.median_ms, name);
        }
        cache_max = cache_max.max(f.result.details["peak_cache_bytes"].as_u64().unwrap_or(0));
    }
    println!(
        "etcd total over {} files: {total_median:.3} ms (sum of medians), {total_min:.3} ms (sum of minima); slowest {} at {:.3} ms; largest memo {} bytes",
        etcd.len(),
        slowest.1,
        slowest.0,
        cache_max
    );

    println!("\n== Porcupine kv histories (kv), {runs} runs each");
    header();
    for name in ["c01-ok.txt", "c01-bad.txt", "c10-ok.txt", "c10-bad.txt"] {
        let history = formats::read_path(&corpus().join("kv").join(name), None).expect("reads");
        let f = measure(&kv, &history, runs);
        row(name, history.ops().expect("pairs").len(), &f);
    }

    println!("\n== Synthetic cas-register histories over 10 keys (values 0..5), {runs} runs each");
    println!(
        "   (\"bad\": the last ok read changed to a value never written, which makes the search"
    );
    println!("   rule out every order of the pending timed-out ops)");
    header();
    let cases = [
        (1, 1700, 10, 20, false),
        (2, 2000, 10, 40, false),
        (3, 2000, 10, 60, false),
        (4, 2000, 50, 100, false),
        (4, 2000, 50, 100, true),
        (5, 2000, 100, 100, false),
        (5, 2000, 100, 100, true),
    ];
    for (seed, ops, workers, info, bad) in cases {
        let mut history = register_history(&SynthParams {
            seed,
            ops,
            keys: 10,
            processes: workers,
            values: 5,
            info_per_mille: info,
            cas: true,
        });
        if bad {
            let last_read = history
                .events
                .iter()
                .rposition(|e| e.f == "read" && e.kind == checkers::EventType::Ok)
                .expect("a read");
            history.events[last_read].value = serde_json::json!(1_000_000);
        }
        let infos = history
            .ops()
            .expect("pairs")
            .iter()
            .filter(|o| o.is_info())
            .count();
        let f = measure(&cas, &history, runs);
        let bad = if bad { " bad" } else { "" };
        row(&format!("{workers} workers {infos} info{bad}"), ops, &f);
    }
    slow_shapes(&cas, &shapes);
    if let Some(rss) = peak_rss_bytes() {
        println!(
            "\npeak resident memory of the whole bench process: {:.1} MiB",
            rss as f64 / (1u64 << 20) as f64
        );
    }
}
