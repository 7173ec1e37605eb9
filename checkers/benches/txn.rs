//! `cargo bench -p checkers --bench txn`: the list-append checker on generated histories of 10k,
//! 100k and 1M transactions of 4 micro-ops; prints read time, check time and peak memory.
//!
//! The histories come from a simulated database with 10 client processes over a rotating set of
//! 10 keys (a key is retired after 64 appends and a fresh one takes its place), half appends and
//! half reads, 0.5% of transactions failing and 0.2% indeterminate (half of those applied). Two
//! flavours: `serializable` runs each transaction atomically at its completion (strict
//! serializable by construction; the bench insists the checker says valid), `snapshot` reads
//! from the state at invocation and applies appends at completion with no conflict check
//! (snapshot isolation without first-committer-wins: lost updates and write skew, so the bench
//! insists on invalid and exercises the cycle search). `FAULTLINE_BENCH_TXNS` (a comma-separated
//! list) overrides the sizes; files are cached under the target dir.

use checkers::formats::read_path;
use checkers::stream::check_jsonl;
use checkers::{by_name, run_checker, Budget, CheckOptions, Verdict};
use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Bumped whenever the generator changes, so a cached file is never stale.
const GENERATOR_VERSION: u32 = 1;
const PROCESSES: usize = 10;
const ACTIVE_KEYS: usize = 10;
const APPENDS_PER_KEY: u64 = 64;
const MOPS_PER_TXN: usize = 4;

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Flavour {
    Serializable,
    Snapshot,
}

/// An open transaction: its micro-ops (key, Some(value) = append, None = read) and, for the
/// snapshot flavour, the length of each key's list when it began.
struct Open {
    mops: Vec<(u64, Option<u64>)>,
    snapshot: Vec<(u64, usize)>,
}

struct Gen<W: Write> {
    out: W,
    line: String,
    index: u64,
    rng: Rng,
    lists: Vec<Vec<u64>>,
    appended: Vec<u64>,
    active: Vec<u64>,
}

impl<W: Write> Gen<W> {
    fn emit(&mut self, process: u64, kind: &str, value: &str) {
        self.line.clear();
        writeln!(
            self.line,
            "{{\"index\":{},\"time\":{},\"process\":{process},\"type\":\"{kind}\",\"f\":\"txn\",\"value\":{value}}}",
            self.index,
            self.index * 1000
        )
        .unwrap();
        self.out.write_all(self.line.as_bytes()).unwrap();
        self.index += 1;
    }

    fn key(&mut self) -> u64 {
        let slot = self.rng.below(ACTIVE_KEYS as u64) as usize;
        let k = self.active[slot];
        if self.appended[k as usize] >= APPENDS_PER_KEY {
            // Retire the key: a fresh one takes its slot.
            let fresh = self.lists.len() as u64;
            self.lists.push(Vec::new());
            self.appended.push(0);
            self.active[slot] = fresh;
            return fresh;
        }
        k
    }

    fn begin(&mut self) -> Open {
        let mut mops = Vec::with_capacity(MOPS_PER_TXN);
        for _ in 0..MOPS_PER_TXN {
            let k = self.key();
            if self.rng.below(2) == 0 {
                self.appended[k as usize] += 1;
                mops.push((k, Some(self.appended[k as usize])));
            } else {
                mops.push((k, None));
            }
        }
        let snapshot = mops
            .iter()
            .map(|&(k, _)| (k, self.lists[k as usize].len()))
            .collect();
        Open { mops, snapshot }
    }

    /// Runs the transaction (when `apply`) and renders its micro-ops with what reads returned.
    fn run(&mut self, t: &Open, flavour: Flavour, apply: bool) -> String {
        let mut s = String::from("[");
        let mut own: Vec<(u64, u64)> = Vec::new();
        for (i, &(k, v)) in t.mops.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            match v {
                Some(v) => {
                    write!(s, "[\"append\",{k},{v}]").unwrap();
                    if apply && flavour == Flavour::Serializable {
                        self.lists[k as usize].push(v);
                    }
                    own.push((k, v));
                }
                None => {
                    let list = &self.lists[k as usize];
                    let seen: Vec<u64> = match flavour {
                        Flavour::Serializable => list.clone(),
                        Flavour::Snapshot => {
                            let len = t.snapshot.iter().find(|s| s.0 == k).map_or(0, |s| s.1);
                            let mut seen = list[..len].to_vec();
                            seen.extend(own.iter().filter(|o| o.0 == k).map(|o| o.1));
                            seen
                        }
                    };
                    let items: Vec<String> = seen.iter().map(u64::to_string).collect();
                    write!(s, "[\"r\",{k},[{}]]", items.join(",")).unwrap();
                }
            }
        }
        if apply && flavour == Flavour::Snapshot {
            for &(k, v) in &own {
                self.lists[k as usize].push(v);
            }
        }
        s.push(']');
        s
    }
}

fn invocation(t: &Open) -> String {
    let parts: Vec<String> = t
        .mops
        .iter()
        .map(|&(k, v)| match v {
            Some(v) => format!("[\"append\",{k},{v}]"),
            None => format!("[\"r\",{k},null]"),
        })
        .collect();
    format!("[{}]", parts.join(","))
}

fn generate(path: &Path, txns: u64, flavour: Flavour) -> std::io::Result<()> {
    let file = std::fs::File::create(path)?;
    let mut g = Gen {
        out: BufWriter::with_capacity(1 << 20, file),
        line: String::new(),
        index: 0,
        rng: Rng(0x9E37_79B9_7F4A_7C15 ^ txns),
        lists: (0..ACTIVE_KEYS).map(|_| Vec::new()).collect(),
        appended: vec![0; ACTIVE_KEYS],
        active: (0..ACTIVE_KEYS as u64).collect(),
    };
    let mut open: Vec<Option<Open>> = (0..PROCESSES).map(|_| None).collect();
    let mut process_ids: Vec<u64> = (0..PROCESSES as u64).collect();
    let mut started = 0u64;
    let mut done = 0u64;
    // Each step either starts or completes one transaction: at most two steps per transaction.
    for _ in 0..txns * 4 + 100 {
        if done == txns {
            break;
        }
        let slot = g.rng.below(PROCESSES as u64) as usize;
        let p = process_ids[slot];
        match open[slot].take() {
            None if started < txns => {
                let t = g.begin();
                g.emit(p, "invoke", &invocation(&t));
                open[slot] = Some(t);
                started += 1;
            }
            None => {}
            Some(t) => {
                let roll = g.rng.below(1000);
                if roll < 5 {
                    g.emit(p, "fail", &invocation(&t));
                } else if roll < 7 {
                    let apply = roll == 5;
                    g.run(&t, flavour, apply);
                    g.emit(p, "info", "null");
                    process_ids[slot] += PROCESSES as u64;
                } else {
                    let value = g.run(&t, flavour, true);
                    g.emit(p, "ok", &value);
                }
                done += 1;
            }
        }
    }
    assert_eq!(done, txns, "the generator's step bound is too small");
    g.out.flush()
}

/// CPU time (user + system) of this process so far, in seconds, from /proc (Linux; ticks of
/// 10 ms). On a loaded machine it says what the work cost when wall time says little.
fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat; after the ")" they are the 12th and 13th.
    (ticks(11) + ticks(12)) / 100.0
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Checks one generated history in this process and prints its cells: streamed from the JSONL
/// file as `faultline check` does (time to read and check, peak memory), or, with `memory`,
/// read whole into a `History` first and the check alone timed.
fn run_one(flavour: Flavour, txns: u64, memory: bool, dir: &Path) {
    let name = match flavour {
        Flavour::Serializable => "serializable",
        Flavour::Snapshot => "snapshot",
    };
    let path = dir.join(format!("txn-{name}-{txns}-v{GENERATOR_VERSION}.jsonl"));
    if !path.exists() {
        generate(&path, txns, flavour).expect("generate the history");
    }
    // Peak memory from here: a fresh process, so the generator's memory is not counted.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let options = CheckOptions {
        consistency_model: Some("serializable".into()),
        ..CheckOptions::default()
    };
    let started = Instant::now();
    let cpu_started = cpu_s();
    let r = if memory {
        let history = read_path(&path, None).expect("read the history");
        let checker = by_name("list-append", &options).expect("checker");
        let check_started = Instant::now();
        let cpu_check_started = cpu_s();
        let r = run_checker(checker.as_ref(), &history, &Budget::default()).expect("check");
        println!(
            "{name:<14} {txns:>10} {:>8} {:>8} {:>9} {:>10} {:>9.2} {:>8.2}",
            "",
            "",
            "",
            "",
            check_started.elapsed().as_secs_f64(),
            cpu_s() - cpu_check_started
        );
        r
    } else {
        let file = std::fs::File::open(&path).expect("open the history");
        let r = check_jsonl(
            std::io::BufReader::with_capacity(1 << 20, file),
            "list-append",
            &options,
        )
        .expect("a streaming checker")
        .expect("check");
        let secs = started.elapsed().as_secs_f64();
        let cpu = cpu_s() - cpu_started;
        let peak = peak_rss_mib().map_or("?".to_string(), |m| format!("{m:.0}"));
        println!(
            "{name:<14} {txns:>10} {secs:>8.2} {cpu:>8.2} {peak:>9} {:>10.0} {:>9} {:>8}  {} ({})",
            txns as f64 / secs,
            "",
            "",
            r.verdict,
            r.details["counts"]
        );
        r
    };
    let expected = match flavour {
        Flavour::Serializable => Verdict::Valid,
        Flavour::Snapshot => Verdict::Invalid,
    };
    assert_eq!(r.verdict, expected, "{}", r.summary);
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
}

/// Histories above this size are not read whole (the in-memory `History` of a million
/// transactions takes several GB); only the streamed check runs.
const IN_MEMORY_TXNS_MAX: u64 = 100_000;

fn main() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-data");
    std::fs::create_dir_all(&dir).expect("bench data dir");
    // A child run: FLAVOUR:TXNS:stream|memory.
    if let Ok(one) = std::env::var("FAULTLINE_BENCH_ONE") {
        let parts: Vec<&str> = one.split(':').collect();
        let flavour = match parts[0] {
            "serializable" => Flavour::Serializable,
            _ => Flavour::Snapshot,
        };
        run_one(
            flavour,
            parts[1].parse().expect("a count"),
            parts[2] == "memory",
            &dir,
        );
        return;
    }
    let sizes: Vec<u64> = std::env::var("FAULTLINE_BENCH_TXNS")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000]);
    println!("list-append, {MOPS_PER_TXN} micro-ops per transaction, {PROCESSES} processes, {ACTIVE_KEYS} active keys; judged as serializable");
    println!("stream s: read the JSONL file and check (what `faultline check` does), wall and CPU time, peak memory of that; check s: the check alone on a History in memory, wall and CPU time");
    println!(
        "{:<14} {:>10} {:>8} {:>8} {:>9} {:>10} {:>9} {:>8}  verdict (anomalies)",
        "flavour", "txns", "stream s", "cpu s", "peak MiB", "txns/s", "check s", "cpu s"
    );
    let me = std::env::current_exe().expect("the bench's own path");
    for flavour in ["serializable", "snapshot"] {
        for &txns in &sizes {
            // Each run in a process of its own, so peak memory is its own.
            let modes: &[&str] = if txns <= IN_MEMORY_TXNS_MAX {
                &["stream", "memory"]
            } else {
                &["stream"]
            };
            for mode in modes {
                let status = std::process::Command::new(&me)
                    .env("FAULTLINE_BENCH_ONE", format!("{flavour}:{txns}:{mode}"))
                    .status()
                    .expect("run the bench child");
                assert!(status.success(), "{flavour} {txns} {mode}: {status}");
            }
        }
    }
}
