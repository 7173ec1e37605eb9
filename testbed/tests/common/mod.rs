//! What every scenario test shares: a cluster with fast timings, actors that run operations
//! through the real testbed client and record them into an in-memory history, and the one
//! helper that judges a history with the checker the scenario names.
//!
//! The testbed client lives in `workloads/src/clients/testbed/` and names its siblings as
//! `crate::client`, `crate::op`, ...; each test file re-exports those workloads modules at its
//! root and includes the client's source as the module `tb` (see the top of each test file), so
//! the tests exercise exactly the code a run uses.

#![allow(dead_code)]

use checkers::{Budget, CheckOptions, CheckResult, Event, EventType, History, Process, Verdict};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use testbed::config::Settings;
use workloads::{Client, ClientFactory, Completion, Invocation};

/// Bound on one operation in the tests; longer is `info`, as in a run.
pub const OP_TIMEOUT: Duration = Duration::from_secs(8);

/// Timings short enough for tests, long enough for a loaded 2-core machine.
pub fn fast() -> Settings {
    Settings {
        lease: Duration::from_millis(300),
        write_timeout: Duration::from_millis(4000),
        retry_interval: Duration::from_millis(30),
        peer_timeout: Duration::from_millis(250),
        async_replication_delay: Duration::from_millis(400),
        session: Duration::from_millis(500),
        message_lease: Duration::from_millis(300),
        max_retries: 2,
        partitions: 4,
        consume_max: 10,
        task_lease: Duration::from_millis(300),
        storage_latency: Duration::from_millis(20),
        dispatch_interval: Duration::from_millis(10),
        dispatch_step: Duration::from_millis(100),
        dispatch_batch: 5,
        dispatch_fail_every: 0,
        entries_max: 100_000,
    }
}

/// The time a stalled consumer needs to lose its lease and its membership, with margin.
pub fn past_session(s: &Settings) -> Duration {
    s.session + s.message_lease + Duration::from_millis(300)
}

/// An in-memory history, recorded in the order events happen.
pub struct Hist {
    start: Instant,
    events: Mutex<Vec<Event>>,
    next_process: AtomicU64,
}

impl Hist {
    pub fn new() -> Arc<Hist> {
        Arc::new(Hist {
            start: Instant::now(),
            events: Mutex::new(Vec::new()),
            next_process: AtomicU64::new(0),
        })
    }

    fn push(
        &self,
        process: Process,
        kind: EventType,
        f: &str,
        key: Option<String>,
        value: Value,
        error: Option<String>,
    ) {
        let mut ev = self.events.lock().unwrap();
        let index = ev.len() as u64;
        ev.push(Event {
            index,
            time: self.start.elapsed().as_nanos() as u64,
            process,
            kind,
            f: f.to_string(),
            key,
            value,
            error,
        });
    }

    /// A fault event (`start-partition`, `kill`, ...), so the history shows the windows.
    pub fn nemesis(&self, f: &str, value: Value) {
        self.push(Process::Nemesis, EventType::Info, f, None, value, None);
    }

    pub fn history(&self) -> History {
        History::new(self.events.lock().unwrap().clone())
    }

    /// The history as JSON Lines, for failure messages.
    pub fn text(&self) -> String {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// One logical client: a process id and a testbed client bound to one node. After an `info` it
/// continues under a new process id with a new client, as the runner does.
pub struct Actor {
    hist: Arc<Hist>,
    factory: Arc<dyn ClientFactory>,
    node: String,
    pub process: u64,
    client: Box<dyn Client>,
}

impl Actor {
    pub async fn open(hist: &Arc<Hist>, factory: &Arc<dyn ClientFactory>, node: &str) -> Actor {
        let process = hist.next_process.fetch_add(1, Ordering::SeqCst);
        let client = factory.open(process, node).await.expect("open a client");
        Actor {
            hist: Arc::clone(hist),
            factory: Arc::clone(factory),
            node: node.to_string(),
            process,
            client,
        }
    }

    /// Runs the client's setup (not recorded, as in a run).
    pub async fn setup(&mut self) {
        self.client.setup().await.expect("client setup");
    }

    /// Records the invocation, runs it (bounded), records the completion.
    pub async fn run(&mut self, op: Invocation) -> Completion {
        self.hist.push(
            Process::Client(self.process),
            EventType::Invoke,
            &op.f,
            op.key.clone(),
            op.value.clone(),
            None,
        );
        let c = match tokio::time::timeout(OP_TIMEOUT, self.client.invoke(&op)).await {
            Ok(c) => c,
            Err(_) => Completion::info("timed-out"),
        };
        self.hist.push(
            Process::Client(self.process),
            c.kind,
            &op.f,
            op.key.clone(),
            c.value.clone(),
            c.error.clone(),
        );
        if c.is_info() {
            self.client.close().await;
            self.process = self.hist.next_process.fetch_add(1, Ordering::SeqCst);
            self.client = self
                .factory
                .open(self.process, &self.node)
                .await
                .expect("reopen a client");
        }
        c
    }

    /// Closes the client (a consumer leaves its group).
    pub async fn close(mut self) {
        self.client.close().await;
    }

    /// Drains until a drain comes back empty (at most `max` drains), acknowledging (or, with
    /// `nack`, rejecting) every message it gets.
    pub async fn drain(&mut self, max: usize, nack: bool) -> bool {
        for _ in 0..max {
            let c = self.run(Invocation::new("drain", Value::Null)).await;
            if c.kind != EventType::Ok {
                continue;
            }
            let msgs = c.value.as_array().cloned().unwrap_or_default();
            if msgs.is_empty() {
                return true;
            }
            for m in msgs {
                self.run(Invocation::new(if nack { "nack" } else { "ack" }, m))
                    .await;
            }
        }
        false
    }
}

/// Runs `checker` on the history.
pub fn check(hist: &Hist, checker: &str, opts: &CheckOptions) -> CheckResult {
    let c = checkers::by_name(checker, opts).expect("a known checker");
    checkers::run_checker(&*c, &hist.history(), &Budget::default())
        .unwrap_or_else(|e| panic!("the history is malformed: {e}\n{}", hist.text()))
}

/// The scenario's bug must be flagged: invalid, with an anomaly of `kind` that counted.
pub fn expect_flagged(hist: &Hist, checker: &str, opts: &CheckOptions, kind: &str) {
    let r = check(hist, checker, opts);
    let counted = r
        .anomalies
        .iter()
        .any(|a| a.kind == kind && a.data.get("counted").and_then(Value::as_bool) != Some(false));
    assert!(
        r.verdict == Verdict::Invalid && counted,
        "expected {checker} to flag {kind}; got {} ({}) with kinds {:?}\n{}",
        r.verdict,
        r.summary,
        r.anomalies
            .iter()
            .map(|a| a.kind.as_str())
            .collect::<Vec<_>>(),
        hist.text()
    );
}

/// Without the bug the same scenario must pass.
pub fn expect_valid(hist: &Hist, checker: &str, opts: &CheckOptions) {
    let r = check(hist, checker, opts);
    assert!(
        r.verdict == Verdict::Valid,
        "expected {checker} to pass; got {} ({}) {:?}\n{}",
        r.verdict,
        r.summary,
        r.anomalies
            .iter()
            .map(|a| format!("{}: {}", a.kind, a.explanation))
            .collect::<Vec<_>>(),
        hist.text()
    );
}

/// Runs `n` copies of an operation at once, one actor each; returns the completions.
pub async fn concurrently(actors: Vec<Actor>, op: impl Fn(usize) -> Invocation) -> Vec<Actor> {
    let mut handles = Vec::new();
    for (i, mut a) in actors.into_iter().enumerate() {
        let inv = op(i);
        handles.push(tokio::spawn(async move {
            a.run(inv).await;
            a
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("an actor task"));
    }
    out
}
