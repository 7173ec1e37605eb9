//! `cargo bench -p checkers --bench delivery`: a generated ten-million-event delivery history,
//! written as JSONL and checked streaming from the file; prints events/s and peak memory.
//!
//! The history is a queue with acknowledgements: 16 producers over 4 partitions (broker-assigned
//! offsets), 8 consumers polling batches of up to 10 and acking each message, 0.1% of produces
//! timing out (half of those still enqueued), a partition fault every million events, and a final
//! drain per partition. It is valid by construction, and the bench insists the checker says so.
//! `FAULTLINE_BENCH_EVENTS` overrides the size; the file is cached by size under the target dir.

use checkers::formats::stream::for_each_event;
use checkers::stream::check_jsonl;
use checkers::{CheckOptions, Verdict};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Bumped whenever the generator changes, so a cached file is never stale.
const GENERATOR_VERSION: u32 = 3;
const PRODUCERS: u64 = 16;
const CONSUMERS: u64 = 8;
const PARTITIONS: usize = 4;
const BATCH_MAX: usize = 10;

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

enum Producer {
    Idle,
    Producing { id: u64, partition: usize },
}

enum Consumer {
    Idle,
    Polling { partition: usize },
    Acking { pending: Vec<u64>, invoked: bool },
}

struct Gen<W: Write> {
    out: W,
    line: String,
    index: u64,
    rng: Rng,
    queues: Vec<VecDeque<(u64, u64)>>,
    next_offset: Vec<u64>,
}

impl<W: Write> Gen<W> {
    fn emit(&mut self, process: &str, kind: &str, f: &str, value: &str, error: Option<&str>) {
        self.line.clear();
        let time = self.index * 1000 + self.rng.below(1000);
        write!(
            self.line,
            "{{\"index\":{},\"time\":{time},\"process\":{process},\"type\":\"{kind}\",\"f\":\"{f}\"",
            self.index
        )
        .unwrap();
        if !value.is_empty() {
            write!(self.line, ",\"value\":{value}").unwrap();
        }
        if let Some(e) = error {
            write!(self.line, ",\"error\":\"{e}\"").unwrap();
        }
        self.line.push_str("}\n");
        self.out.write_all(self.line.as_bytes()).unwrap();
        self.index += 1;
    }

    /// Takes up to a batch from a partition and returns the deliveries' JSON and ids.
    fn take_batch(&mut self, partition: usize) -> (String, Vec<u64>) {
        let mut json = String::from("[");
        let mut ids = Vec::new();
        for _ in 0..BATCH_MAX {
            let Some((id, offset)) = self.queues[partition].pop_front() else {
                break;
            };
            if !ids.is_empty() {
                json.push(',');
            }
            write!(
                json,
                "{{\"id\":{id},\"partition\":{partition},\"offset\":{offset}}}"
            )
            .unwrap();
            ids.push(id);
        }
        json.push(']');
        (json, ids)
    }
}

fn generate(path: &Path, events: u64) -> std::io::Result<()> {
    let tmp = path.with_extension("partial");
    let mut g = Gen {
        out: BufWriter::with_capacity(1 << 20, File::create(&tmp)?),
        line: String::with_capacity(1024),
        index: 0,
        rng: Rng(0x9E37_79B9_7F4A_7C15),
        queues: vec![VecDeque::new(); PARTITIONS],
        next_offset: vec![0; PARTITIONS],
    };
    let mut producers: Vec<(u64, Producer)> = (0..PRODUCERS).map(|p| (p, Producer::Idle)).collect();
    let mut consumers: Vec<(u64, Consumer)> =
        (0..CONSUMERS).map(|c| (1000 + c, Consumer::Idle)).collect();
    let mut next_process = 2000u64;
    let mut next_id = 0u64;
    let mut fault_open = false;
    // Leave room for the wind-down: about four events per message still queued.
    while g.index + 100 + 4 * g.queues.iter().map(|q| q.len() as u64).sum::<u64>() < events {
        if g.index % 1_000_000 < 2 && g.index > 2 {
            let f = if fault_open {
                "stop-partition"
            } else {
                "start-partition"
            };
            g.emit("\"nemesis\"", "info", f, "{\"n1\":[\"n2\",\"n3\"]}", None);
            fault_open = !fault_open;
            continue;
        }
        let produce = g.rng.below(100) < 48 || g.queues.iter().all(VecDeque::is_empty);
        if produce {
            let slot = g.rng.below(PRODUCERS) as usize;
            let (process, state) = &mut producers[slot];
            let p = process.to_string();
            match std::mem::replace(state, Producer::Idle) {
                Producer::Idle => {
                    let (id, partition) = (next_id, g.rng.below(PARTITIONS as u64) as usize);
                    next_id += 1;
                    g.emit(
                        &p,
                        "invoke",
                        "produce",
                        &format!("{{\"id\":{id},\"partition\":{partition}}}"),
                        None,
                    );
                    *state = Producer::Producing { id, partition };
                }
                Producer::Producing { id, partition } => {
                    let roll = g.rng.below(2000);
                    if roll < 2 {
                        // Timed out; enqueued anyway half the time. The process retires.
                        if roll == 0 {
                            let offset = g.next_offset[partition];
                            g.next_offset[partition] += 1;
                            g.queues[partition].push_back((id, offset));
                        }
                        g.emit(&p, "info", "produce", "", Some("timed-out"));
                        *process = next_process;
                        next_process += 1;
                    } else {
                        let offset = g.next_offset[partition];
                        g.next_offset[partition] += 1;
                        g.queues[partition].push_back((id, offset));
                        g.emit(
                            &p,
                            "ok",
                            "produce",
                            &format!(
                                "{{\"id\":{id},\"partition\":{partition},\"offset\":{offset}}}"
                            ),
                            None,
                        );
                    }
                }
            }
        } else {
            let slot = g.rng.below(CONSUMERS) as usize;
            let (process, state) = &mut consumers[slot];
            let p = process.to_string();
            match std::mem::replace(state, Consumer::Idle) {
                Consumer::Idle => {
                    let partition = slot % PARTITIONS;
                    g.emit(
                        &p,
                        "invoke",
                        "consume",
                        &format!("{{\"partition\":{partition}}}"),
                        None,
                    );
                    *state = Consumer::Polling { partition };
                }
                Consumer::Polling { partition } => {
                    let (json, ids) = g.take_batch(partition);
                    g.emit(&p, "ok", "consume", &json, None);
                    if !ids.is_empty() {
                        *state = Consumer::Acking {
                            pending: ids,
                            invoked: false,
                        };
                    }
                }
                Consumer::Acking {
                    mut pending,
                    invoked,
                } => {
                    if invoked {
                        g.emit(&p, "ok", "ack", "", None);
                        pending.pop();
                        if !pending.is_empty() {
                            *state = Consumer::Acking {
                                pending,
                                invoked: false,
                            };
                        }
                    } else {
                        let id = *pending.last().unwrap();
                        g.emit(&p, "invoke", "ack", &id.to_string(), None);
                        *state = Consumer::Acking {
                            pending,
                            invoked: true,
                        };
                    }
                }
            }
        }
    }
    // Wind down: complete what is open (consumed batches are acked), heal, drain.
    for (process, state) in &mut producers {
        if let Producer::Producing { id, partition } = std::mem::replace(state, Producer::Idle) {
            let offset = g.next_offset[partition];
            g.next_offset[partition] += 1;
            g.queues[partition].push_back((id, offset));
            g.emit(
                &process.to_string(),
                "ok",
                "produce",
                &format!("{{\"id\":{id},\"partition\":{partition},\"offset\":{offset}}}"),
                None,
            );
        }
    }
    for (process, state) in &mut consumers {
        let p = process.to_string();
        let pending = match std::mem::replace(state, Consumer::Idle) {
            Consumer::Idle => Vec::new(),
            Consumer::Polling { partition } => {
                let (json, ids) = g.take_batch(partition);
                g.emit(&p, "ok", "consume", &json, None);
                ids
            }
            Consumer::Acking {
                mut pending,
                invoked,
            } => {
                if invoked {
                    g.emit(&p, "ok", "ack", "", None);
                    pending.pop();
                }
                pending
            }
        };
        for id in pending.into_iter().rev() {
            g.emit(&p, "invoke", "ack", &id.to_string(), None);
            g.emit(&p, "ok", "ack", "", None);
        }
    }
    if fault_open {
        g.emit("\"nemesis\"", "info", "stop-partition", "", None);
    }
    let drainer = "9999";
    for partition in 0..PARTITIONS {
        loop {
            g.emit(
                drainer,
                "invoke",
                "drain",
                &format!("{{\"partition\":{partition}}}"),
                None,
            );
            let (json, ids) = g.take_batch(partition);
            g.emit(drainer, "ok", "drain", &json, None);
            if ids.is_empty() {
                break;
            }
            for id in ids.into_iter().rev() {
                g.emit(drainer, "invoke", "ack", &id.to_string(), None);
                g.emit(drainer, "ok", "ack", "", None);
            }
        }
    }
    g.out.flush()?;
    drop(g);
    std::fs::rename(&tmp, path)
}

/// CPU time this thread has run, in seconds (schedstat, ns precision): unlike wall time it does
/// not count the time other processes on a busy machine took the core away.
fn cpu_s() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns / 1e9)
}

/// Peak resident memory of this process so far, in MiB (VmHWM).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Resets VmHWM to the current RSS (Linux: writing 5 to clear_refs); false if not allowed.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn main() {
    // `cargo bench` passes `--bench`; a plain `cargo test` of benches passes nothing useful.
    let events: u64 = std::env::var("FAULTLINE_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-data");
    std::fs::create_dir_all(&dir).expect("bench data dir");
    let path = dir.join(format!("delivery-{events}-v{GENERATOR_VERSION}.jsonl"));
    if !path.exists() {
        let started = Instant::now();
        generate(&path, events).expect("generate the history");
        println!(
            "generated {} in {:.1} s",
            path.display(),
            started.elapsed().as_secs_f64()
        );
    }
    let bytes = std::fs::metadata(&path).expect("history file").len();
    let open = || BufReader::with_capacity(1 << 20, File::open(&path).expect("open history"));

    // Parsing alone, for context.
    let (started, cpu) = (Instant::now(), cpu_s());
    let n = for_each_event(open(), |_, _| Ok(())).expect("parse");
    let (parse_s, parse_cpu) = (started.elapsed().as_secs_f64(), cpu_s() - cpu);

    let reset = reset_peak_rss();
    let rss_before = peak_rss_mib();
    let (started, cpu) = (Instant::now(), cpu_s());
    let result = check_jsonl(open(), "delivery", &CheckOptions::default())
        .expect("delivery streams")
        .expect("a well-formed history");
    let (check_s, check_cpu) = (started.elapsed().as_secs_f64(), cpu_s() - cpu);
    let rss_after = peak_rss_mib();
    assert_eq!(result.verdict, Verdict::Valid, "{}", result.summary);

    let messages = result.details["messages"]["distinct"].as_u64().unwrap_or(0);
    println!(
        "delivery bench: {n} events, {:.0} MiB of JSONL, {messages} distinct messages",
        bytes as f64 / (1 << 20) as f64
    );
    let rate = |what: &str, wall: f64, cpu: f64| {
        println!(
            "  {what:<22} wall {wall:>6.2} s {:>6.2} M events/s {:>5.0} MiB/s | cpu {cpu:>6.2} s {:>6.2} M events/s",
            n as f64 / wall / 1e6,
            bytes as f64 / wall / (1 << 20) as f64,
            n as f64 / cpu / 1e6,
        )
    };
    rate("parse only:", parse_s, parse_cpu);
    rate("check (incl. parsing):", check_s, check_cpu);
    println!("  (target: at least 2 M events/s on one core; cpu figures exclude time the core was taken by other work)");
    match (rss_before, rss_after) {
        (Some(b), Some(a)) if reset => println!(
            "  peak RSS during check: {a:.0} MiB (baseline {b:.0} MiB): {:.0} bytes per distinct message",
            (a - b) * (1 << 20) as f64 / messages.max(1) as f64
        ),
        (_, Some(a)) => println!("  peak RSS of the process: {a:.0} MiB (could not reset VmHWM before the check)"),
        _ => println!("  peak RSS: unavailable (no /proc/self/status)"),
    }
    println!("  verdict: {} ({})", result.verdict, result.summary);
}
