//! The recorder: every event of a run, clients' and nemesis', goes through one channel to one
//! writer task that numbers it and streams it to `history.jsonl`.
//!
//! Why one writer: the history's order must be an order in which events really happened. A
//! handle stamps the event's time when it is recorded and sends it; the channel keeps the order
//! in which sends happened, so an event recorded after another completed (in real time) gets a
//! larger index. The writer numbers events in arrival order and keeps times monotonic by raising
//! a time that lost a race to the previous event's time (the two happened within that window).
//!
//! Durability: the writer flushes to the file at least every [`FLUSH_INTERVAL_MS`] ms while
//! events arrive, and when the run finishes, so a killed run keeps its history up to the last
//! flush. The channel is bounded ([`CHANNEL_CAPACITY`]): if the disk cannot keep up, recording
//! waits instead of growing memory without bound.
//!
//! Live counters (ok / fail / info by `f`, ops/s over the last second, active faults) are kept by
//! the writer, which sees every event anyway, and read by the progress bar with
//! [`Recorder::stats`].

use anyhow::Context as _;
use checkers::{Event, EventType, Process};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// The writer flushes at least this often while events arrive.
pub const FLUSH_INTERVAL_MS: u64 = 100;
/// Events in flight between the handles and the writer, at most.
pub const CHANNEL_CAPACITY: usize = 65_536;
/// Events the writer takes from the channel at once.
const BATCH_MAX: usize = 4_096;
/// The window of [`LiveStats::ops_per_s`], in 100 ms buckets.
const RATE_BUCKETS: usize = 10;

/// The recorder is gone (finished, or its writer failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecorderClosed;

impl std::fmt::Display for RecorderClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the history recorder is closed")
    }
}

impl std::error::Error for RecorderClosed {}

/// Completions of one `f`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
}

/// A snapshot of the live counters, for a progress bar.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct LiveStats {
    /// Events written (client and nemesis).
    pub events: u64,
    /// Client invocations.
    pub invoked: u64,
    /// Client completions by `f`.
    pub by_f: BTreeMap<String, Counts>,
    /// All client completions.
    pub total: Counts,
    /// Client completions per second over the last second.
    pub ops_per_s: f64,
    /// Faults started (`start-X`) and not yet stopped, by kind, with how many are open.
    pub active_faults: BTreeMap<String, u64>,
    /// Time of the last event, ns since the run started.
    pub last_time_ns: u64,
}

/// What the writer wrote, returned by [`Recorder::finish`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RecordSummary {
    pub path: PathBuf,
    pub events: u64,
    pub stats: LiveStats,
}

enum Msg {
    Event(Event),
    Finish(oneshot::Sender<Result<RecordSummary, String>>),
}

/// A cloneable handle to the run's recorder. See the module documentation.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Msg>,
    start: Instant,
    stats: Arc<Mutex<Shared>>,
}

/// What the writer publishes for [`Recorder::stats`].
#[derive(Default)]
struct Shared {
    stats: LiveStats,
    buckets: Buckets,
}

/// Completions per 100 ms bucket: (bucket number, count), a ring indexed by bucket % len.
type Buckets = [(u64, u64); RATE_BUCKETS];

impl Recorder {
    /// Creates (truncates) `path` and starts the writer task on the current tokio runtime. Time
    /// zero of the run is now.
    pub fn create(path: impl AsRef<Path>) -> anyhow::Result<Recorder> {
        let path = path.as_ref().to_path_buf();
        let file = File::create(&path)
            .with_context(|| format!("cannot create history file {}", path.display()))?;
        Ok(Self::start(path, file, Instant::now()))
    }

    /// Like [`Recorder::create`] with an explicit time zero, so the controller can share one
    /// clock between the recorder and its own log.
    pub fn create_at(path: impl AsRef<Path>, start: Instant) -> anyhow::Result<Recorder> {
        let path = path.as_ref().to_path_buf();
        let file = File::create(&path)
            .with_context(|| format!("cannot create history file {}", path.display()))?;
        Ok(Self::start(path, file, start))
    }

    fn start(path: PathBuf, out: File, start: Instant) -> Recorder {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let stats = Arc::new(Mutex::new(Shared::default()));
        let writer = Writer {
            path,
            out: BufWriter::with_capacity(1 << 16, out),
            stats: Arc::clone(&stats),
            next_index: 0,
            last_time_ns: 0,
            local: LiveStats::default(),
            buckets: [(u64::MAX, 0); RATE_BUCKETS],
        };
        tokio::spawn(writer.run(rx));
        Recorder { tx, start, stats }
    }

    /// Nanoseconds since the run started (monotonic).
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The instant that is time zero of the history.
    pub fn start_instant(&self) -> Instant {
        self.start
    }

    /// Records one event, stamped with the current time. Waits only when the writer is
    /// [`CHANNEL_CAPACITY`] events behind.
    pub async fn record(
        &self,
        process: Process,
        kind: EventType,
        f: &str,
        key: Option<&str>,
        value: Value,
        error: Option<&str>,
    ) -> Result<(), RecorderClosed> {
        let event = Event {
            index: 0,
            time: self.now_ns(),
            process,
            kind,
            f: f.to_string(),
            key: key.map(str::to_string),
            value,
            error: error.map(str::to_string),
        };
        self.tx
            .send(Msg::Event(event))
            .await
            .map_err(|_| RecorderClosed)
    }

    /// Records a nemesis event (a fault starting, stopping, or a one-off like `kill`), e.g.
    /// `record_nemesis(EventType::Info, "start-partition", json!({"n1": ["n2", "n3"]}))`.
    pub async fn record_nemesis(
        &self,
        kind: EventType,
        f: &str,
        value: Value,
    ) -> Result<(), RecorderClosed> {
        self.record(Process::Nemesis, kind, f, None, value, None)
            .await
    }

    /// A snapshot of the live counters.
    pub fn stats(&self) -> LiveStats {
        let shared = self.stats.lock().expect("stats lock");
        let mut stats = shared.stats.clone();
        let now_bucket = self.now_ns() / 100_000_000;
        // Completions in the last RATE_BUCKETS buckets (the current one included).
        let recent: u64 = shared
            .buckets
            .iter()
            .filter(|(b, _)| *b != u64::MAX && *b + (RATE_BUCKETS as u64) > now_bucket)
            .map(|(_, n)| n)
            .sum();
        stats.ops_per_s = recent as f64 * 10.0 / RATE_BUCKETS as f64;
        stats
    }

    /// Writes everything recorded so far, syncs the file and stops the writer. Events recorded
    /// after this fail with [`RecorderClosed`]. Calling it twice fails the second time.
    pub async fn finish(&self) -> anyhow::Result<RecordSummary> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Msg::Finish(tx))
            .await
            .map_err(|_| anyhow::anyhow!("the history recorder was already finished"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the history writer stopped before finishing"))?
            .map_err(|e| anyhow::anyhow!(e))
    }
}

struct Writer {
    path: PathBuf,
    out: BufWriter<File>,
    stats: Arc<Mutex<Shared>>,
    next_index: u64,
    last_time_ns: u64,
    local: LiveStats,
    buckets: Buckets,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut batch: Vec<Msg> = Vec::with_capacity(BATCH_MAX);
        let mut last_flush = Instant::now();
        let mut dirty = false;
        let mut error: Option<String> = None;
        let interval = Duration::from_millis(FLUSH_INTERVAL_MS);
        loop {
            let received = if dirty {
                let deadline = last_flush + interval;
                match tokio::time::timeout_at(deadline.into(), rx.recv_many(&mut batch, BATCH_MAX))
                    .await
                {
                    Ok(n) => n,
                    Err(_) => {
                        // Quiet for a while with unflushed events: flush now.
                        if let Err(e) = self.flush() {
                            error.get_or_insert(e);
                        }
                        dirty = false;
                        last_flush = Instant::now();
                        continue;
                    }
                }
            } else {
                rx.recv_many(&mut batch, BATCH_MAX).await
            };
            if received == 0 {
                // Every handle dropped without finish(): write what we have.
                if let Err(e) = self.flush() {
                    error.get_or_insert(e);
                }
                return;
            }
            let mut finish: Option<oneshot::Sender<Result<RecordSummary, String>>> = None;
            for msg in batch.drain(..) {
                match msg {
                    Msg::Event(e) if error.is_none() && finish.is_none() => {
                        if let Err(e) = self.write(e) {
                            error = Some(e);
                        }
                        dirty = true;
                    }
                    Msg::Event(_) => {}
                    Msg::Finish(reply) => {
                        finish.get_or_insert(reply);
                    }
                }
            }
            self.publish();
            if let Some(reply) = finish {
                let result = match error.take() {
                    Some(e) => Err(e),
                    None => self
                        .flush()
                        .and_then(|()| self.sync())
                        .map(|()| RecordSummary {
                            path: self.path.clone(),
                            events: self.next_index,
                            stats: self.local.clone(),
                        }),
                };
                // Close before replying, so that anything recorded after finish() returns fails.
                rx.close();
                let _ = reply.send(result);
                return;
            }
            if dirty && last_flush.elapsed() >= interval {
                if let Err(e) = self.flush() {
                    error.get_or_insert(e);
                }
                dirty = false;
                last_flush = Instant::now();
            }
        }
    }

    fn write(&mut self, mut e: Event) -> Result<(), String> {
        e.index = self.next_index;
        self.next_index += 1;
        e.time = e.time.max(self.last_time_ns);
        self.last_time_ns = e.time;
        self.count(&e);
        serde_json::to_writer(&mut self.out, &e)
            .map_err(|err| format!("cannot write {}: {err}", self.path.display()))?;
        self.out
            .write_all(b"\n")
            .map_err(|err| format!("cannot write {}: {err}", self.path.display()))
    }

    fn count(&mut self, e: &Event) {
        let s = &mut self.local;
        s.events += 1;
        s.last_time_ns = e.time;
        match e.process {
            Process::Nemesis => {
                if let Some(kind) = e.f.strip_prefix("start-") {
                    *s.active_faults.entry(kind.to_string()).or_default() += 1;
                } else if let Some(kind) = e.f.strip_prefix("stop-") {
                    if let Some(n) = s.active_faults.get_mut(kind) {
                        *n -= 1;
                        if *n == 0 {
                            s.active_faults.remove(kind);
                        }
                    }
                }
            }
            Process::Client(_) => {
                let slot = |c: &mut Counts| match e.kind {
                    EventType::Ok => c.ok += 1,
                    EventType::Fail => c.fail += 1,
                    EventType::Info => c.info += 1,
                    EventType::Invoke => {}
                };
                if e.kind == EventType::Invoke {
                    s.invoked += 1;
                    return;
                }
                slot(&mut s.total);
                if let Some(c) = s.by_f.get_mut(&e.f) {
                    slot(c);
                } else {
                    let mut c = Counts::default();
                    slot(&mut c);
                    s.by_f.insert(e.f.clone(), c);
                }
                let bucket = e.time / 100_000_000;
                let b = &mut self.buckets[(bucket % RATE_BUCKETS as u64) as usize];
                if b.0 != bucket {
                    *b = (bucket, 0);
                }
                b.1 += 1;
            }
        }
    }

    /// Makes the counters visible to [`Recorder::stats`]; once per batch, not per event.
    fn publish(&mut self) {
        let mut shared = self.stats.lock().expect("stats lock");
        shared.stats.clone_from(&self.local);
        shared.buckets = self.buckets;
    }

    fn flush(&mut self) -> Result<(), String> {
        self.out
            .flush()
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }

    fn sync(&mut self) -> Result<(), String> {
        self.out
            .get_ref()
            .sync_all()
            .map_err(|e| format!("cannot sync {}: {e}", self.path.display()))
    }
}
