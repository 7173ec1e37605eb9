//! The runner: worker threads, one per logical process slot, fed by one scheduler task.
//!
//! Shape: [`Runner::run_phase`] is the scheduler loop. It owns the [`Scheduler`] (and so the
//! generator and the RNG), hands each operation to the worker of its thread over a channel, and
//! waits for completions. A worker owns its client: it records the invocation, calls the client
//! under the per-operation timeout, records the completion, and only then reports back, so the
//! next operation of a thread is always recorded after the previous one completed.
//!
//! A worker whose operation ends with `info` closes its client and opens a new one for its next
//! operation, which the scheduler numbers `process + concurrency` (Jepsen's rule).
//!
//! A phase ends when its generator is exhausted, when its time limit passes or when the caller
//! cancels. In the last two cases generation stops at once, running operations get `grace` to
//! finish, and any still running after that are interrupted and recorded as `info`
//! (`interrupted`): they may or may not have happened. Phases are separate calls so that the
//! controller can heal faults between the main phase and the final one (final reads, drains);
//! the RNG and process numbering carry over, so a whole run is one deterministic schedule.

use crate::client::{Client, ClientFactory};
use crate::generator::Gen;
use crate::op::{Completion, Invocation};
use crate::recorder::Recorder;
use crate::schedule::{Dispatch, Scheduler};
use anyhow::Context as _;
use checkers::{EventType, Process};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often a stalled generator (waiting for a completion while nothing runs) is asked again.
const STALL_REPOLL_MS: u64 = 100;
/// The process id given to the client used for setup and teardown (never in the history).
pub const SETUP_PROCESS: u64 = u64::MAX;
/// A worker that cannot open a client (the server is down or restarting) waits before its
/// thread takes the next operation: this long after the first failure, doubling with each
/// failure in a row up to [`OPEN_BACKOFF_MS_MAX`], and back to none once a client opens. Without
/// it, a thread records thousands of `no-client` failures a second while a server restarts.
const OPEN_BACKOFF_MS_MIN: u64 = 10;
const OPEN_BACKOFF_MS_MAX: u64 = 1_000;

/// The wait after `failures` failed opens in a row (0: none).
fn open_backoff(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let doublings = (failures - 1).min(16);
    Duration::from_millis((OPEN_BACKOFF_MS_MIN << doublings).min(OPEN_BACKOFF_MS_MAX))
}

/// What the runner needs besides the generator.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Worker threads (logical processes running at once).
    pub concurrency: usize,
    /// Node addresses; thread `t` talks to `nodes[t % nodes.len()]`.
    pub nodes: Vec<String>,
    /// The run's seed: the scheduler's RNG starts from it.
    pub seed: u64,
    /// An operation that has not answered after this is `info` (`timed-out`).
    pub op_timeout: Duration,
    /// Bound on opening, setting up, tearing down and closing a client.
    pub connect_timeout: Duration,
}

impl RunnerConfig {
    pub fn new(concurrency: usize, nodes: Vec<String>, seed: u64) -> Self {
        RunnerConfig {
            concurrency,
            nodes,
            seed,
            op_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Bounds of one phase.
#[derive(Debug, Clone, Copy)]
pub struct PhaseLimits {
    /// Generation stops this long after the phase starts.
    pub time_limit: Duration,
    /// After generation stops (time limit or cancellation), running operations get this long to
    /// finish before they are interrupted and recorded as `info`.
    pub grace: Duration,
}

/// Why a phase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PhaseEnd {
    /// The generator had no more operations.
    Exhausted,
    /// The phase's time limit passed.
    TimeLimit,
    /// The caller cancelled (Ctrl-C).
    Cancelled,
}

/// What a phase did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PhaseSummary {
    pub ended: PhaseEnd,
    pub invoked: u64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
    /// Operations still running at the end of the grace period, recorded as `info`.
    pub interrupted: u64,
    pub elapsed_ms: f64,
}

struct Job {
    dispatch: Dispatch,
    interrupt: CancellationToken,
}

struct Done {
    thread: usize,
    op: Invocation,
    completion: Completion,
}

struct Worker {
    tx: mpsc::Sender<Job>,
    join: JoinHandle<()>,
}

/// A set of workers and the scheduler that feeds them; see the module documentation.
pub struct Runner {
    config: RunnerConfig,
    factory: Arc<dyn ClientFactory>,
    recorder: Recorder,
    sched: Scheduler,
    workers: Vec<Worker>,
    done_rx: mpsc::Receiver<Done>,
}

impl Runner {
    /// Runs the workload's setup once (on a client of its own, on the first node), then opens one
    /// client per worker thread. A thread whose client cannot be opened retries at its first
    /// operation; setup failing is an error.
    pub async fn start(
        config: RunnerConfig,
        factory: Arc<dyn ClientFactory>,
        recorder: Recorder,
    ) -> anyhow::Result<Runner> {
        anyhow::ensure!(config.concurrency > 0, "--concurrency must be at least 1");
        anyhow::ensure!(
            !config.nodes.is_empty(),
            "the runner needs at least one node address"
        );
        let node0 = config.nodes[0].clone();
        let bound = config.connect_timeout;
        let mut setup = tokio::time::timeout(
            bound,
            factory.open_among(SETUP_PROCESS, &node0, &config.nodes),
        )
        .await
        .with_context(|| format!("opening a {} client to {node0} timed out", factory.name()))?
        .with_context(|| format!("cannot open a {} client to {node0}", factory.name()))?;
        tokio::time::timeout(bound.saturating_mul(2), setup.setup())
            .await
            .with_context(|| format!("{} setup on {node0} timed out", factory.name()))?
            .with_context(|| format!("{} setup on {node0} failed", factory.name()))?;
        let _ = tokio::time::timeout(bound, setup.close()).await;

        let (done_tx, done_rx) = mpsc::channel(config.concurrency);
        let all_nodes = Arc::new(config.nodes.clone());
        let workers = (0..config.concurrency)
            .map(|thread| {
                let (tx, rx) = mpsc::channel(1);
                let ctx = WorkerCtx {
                    thread,
                    node: config.nodes[thread % config.nodes.len()].clone(),
                    nodes: all_nodes.clone(),
                    factory: Arc::clone(&factory),
                    recorder: recorder.clone(),
                    op_timeout: config.op_timeout,
                    connect_timeout: config.connect_timeout,
                };
                let join = tokio::spawn(ctx.run(thread as u64, rx, done_tx.clone()));
                Worker { tx, join }
            })
            .collect();
        Ok(Runner {
            sched: Scheduler::new(config.concurrency, config.seed),
            config,
            factory,
            recorder,
            workers,
            done_rx,
        })
    }

    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    pub fn config(&self) -> &RunnerConfig {
        &self.config
    }

    /// The process id each worker thread currently runs as.
    pub fn processes(&self) -> &[u64] {
        self.sched.processes()
    }

    /// Runs `gen` until it is exhausted, `limits.time_limit` passes or `cancel` fires; see the
    /// module documentation. Returns when no operation of the phase is running.
    pub async fn run_phase(
        &mut self,
        gen: Gen,
        limits: PhaseLimits,
        cancel: &CancellationToken,
    ) -> anyhow::Result<PhaseSummary> {
        let started = std::time::Instant::now();
        let clock = self.recorder.start_instant();
        let at = |ns: u64| tokio::time::Instant::from_std(clock + Duration::from_nanos(ns));
        let phase_start = self.recorder.now_ns();
        let deadline = phase_start.saturating_add(duration_ns(limits.time_limit));
        let interrupt = CancellationToken::new();
        let mut summary = PhaseSummary {
            ended: PhaseEnd::Exhausted,
            invoked: 0,
            ok: 0,
            fail: 0,
            info: 0,
            interrupted: 0,
            elapsed_ms: 0.0,
        };
        // None while generating; then the time at which running ops get interrupted.
        let mut draining_until: Option<u64> = None;
        // Set once running ops were interrupted: the time by which workers must have answered.
        let mut give_up_at: Option<u64> = None;
        self.sched.set_generator(gen);
        loop {
            while let Ok(done) = self.done_rx.try_recv() {
                self.complete(done, &mut summary);
            }
            let now = self.recorder.now_ns();
            if draining_until.is_none() {
                let end = if cancel.is_cancelled() {
                    Some(PhaseEnd::Cancelled)
                } else if now >= deadline {
                    Some(PhaseEnd::TimeLimit)
                } else {
                    None
                };
                if let Some(end) = end {
                    summary.ended = end;
                    self.sched.stop();
                    draining_until = Some(now.saturating_add(duration_ns(limits.grace)));
                }
            }
            let step = self.sched.poll(now);
            for d in step.dispatch {
                summary.invoked += 1;
                let worker = &self.workers[d.thread];
                let job = Job {
                    dispatch: d,
                    interrupt: interrupt.clone(),
                };
                // The worker is idle (the scheduler said so), so its one-slot channel is empty.
                worker
                    .tx
                    .send(job)
                    .await
                    .map_err(|_| anyhow::anyhow!("a worker thread stopped unexpectedly"))?;
            }
            if step.finished {
                break;
            }
            if let Some(until) = draining_until {
                if give_up_at.is_none() && now >= until {
                    summary.interrupted = self.sched.in_flight() as u64;
                    interrupt.cancel();
                    give_up_at = Some(
                        now.saturating_add(duration_ns(self.config.connect_timeout + limits.grace)),
                    );
                }
                if let Some(limit) = give_up_at {
                    if now >= limit {
                        anyhow::bail!(
                            "{} worker(s) did not stop after being interrupted; their last operations stay open (indeterminate) in the history",
                            self.sched.in_flight()
                        );
                    }
                }
            }
            let mut wake = step.wake_ns;
            if step.stalled {
                wake = min_opt(wake, Some(now + STALL_REPOLL_MS * 1_000_000));
            }
            wake = min_opt(
                wake,
                match (draining_until, give_up_at) {
                    (None, _) => Some(deadline),
                    (Some(u), None) => Some(u),
                    (Some(_), Some(g)) => Some(g),
                },
            );
            let sleep = tokio::time::sleep_until(at(wake.unwrap_or(deadline)));
            tokio::select! {
                biased;
                done = self.done_rx.recv() => {
                    let done = done.context("every worker thread stopped unexpectedly")?;
                    self.complete(done, &mut summary);
                }
                _ = cancel.cancelled(), if draining_until.is_none() => {}
                _ = sleep => {}
            }
        }
        summary.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(summary)
    }

    fn complete(&mut self, done: Done, summary: &mut PhaseSummary) {
        match done.completion.kind {
            EventType::Ok => summary.ok += 1,
            EventType::Fail => summary.fail += 1,
            _ => summary.info += 1,
        }
        let now = self.recorder.now_ns();
        self.sched
            .complete(done.thread, &done.op, &done.completion, now);
    }

    /// Runs the workload's teardown once and closes every worker's client. Bounded by the
    /// connect timeout per step.
    pub async fn close(self) -> anyhow::Result<()> {
        let bound = self.config.connect_timeout;
        let node0 = self.config.nodes[0].clone();
        let mut result = Ok(());
        match tokio::time::timeout(
            bound,
            self.factory
                .open_among(SETUP_PROCESS, &node0, &self.config.nodes),
        )
        .await
        {
            Ok(Ok(mut c)) => {
                match tokio::time::timeout(bound.saturating_mul(2), c.teardown()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => result = Err(e.context("teardown failed")),
                    Err(_) => result = Err(anyhow::anyhow!("teardown timed out")),
                }
                let _ = tokio::time::timeout(bound, c.close()).await;
            }
            Ok(Err(e)) => result = Err(e.context("cannot open a client for teardown")),
            Err(_) => result = Err(anyhow::anyhow!("opening a client for teardown timed out")),
        }
        for w in self.workers {
            drop(w.tx);
            // Each worker closes its client (bounded) and exits when its channel closes.
            if tokio::time::timeout(bound.saturating_mul(2), w.join)
                .await
                .is_err()
            {
                result = result.and(Err(anyhow::anyhow!(
                    "a worker did not close its client in time"
                )));
            }
        }
        result
    }
}

/// A token cancelled by the first Ctrl-C (SIGINT), for [`Runner::run_phase`]: generation stops,
/// running operations get the phase's grace, and the caller goes on to heal, tear down and check
/// the partial history. Must be called inside a tokio runtime.
pub fn cancel_on_ctrl_c() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            t.cancel();
        }
    });
    token
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

struct WorkerCtx {
    thread: usize,
    node: String,
    /// Every node the runner was given.
    nodes: Arc<Vec<String>>,
    factory: Arc<dyn ClientFactory>,
    recorder: Recorder,
    op_timeout: Duration,
    connect_timeout: Duration,
}

impl WorkerCtx {
    async fn open(&self, process: u64) -> Result<Box<dyn Client>, String> {
        match tokio::time::timeout(
            self.connect_timeout,
            self.factory.open_among(process, &self.node, &self.nodes),
        )
        .await
        {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(_) => Err(format!(
                "opening a client to {} timed out after {:?}",
                self.node, self.connect_timeout
            )),
        }
    }

    async fn run(self, first_process: u64, mut rx: mpsc::Receiver<Job>, done: mpsc::Sender<Done>) {
        let mut client = self.open(first_process).await.ok();
        let mut open_failures: u32 = 0;
        while let Some(job) = rx.recv().await {
            let Dispatch {
                thread,
                process,
                op,
            } = job.dispatch;
            debug_assert_eq!(thread, self.thread);
            let mut open_error = None;
            if client.is_none() {
                match self.open(process).await {
                    Ok(c) => {
                        client = Some(c);
                        open_failures = 0;
                    }
                    Err(e) => {
                        open_error = Some(e);
                        open_failures = open_failures.saturating_add(1);
                    }
                }
            }
            let p = Process::Client(process);
            let key = op.key.as_deref();
            if self
                .recorder
                .record(p, EventType::Invoke, &op.f, key, op.value.clone(), None)
                .await
                .is_err()
            {
                return; // the recorder is gone: the run is over
            }
            let backoff = open_error.is_some();
            let mut completion = match client.as_mut() {
                None => Completion::not_applied(
                    &op,
                    format!(
                        "no-client: {}",
                        open_error.unwrap_or_else(|| "no client".into())
                    ),
                ),
                Some(c) => {
                    tokio::select! {
                        biased;
                        r = tokio::time::timeout(self.op_timeout, c.invoke(&op)) => match r {
                            Ok(c) => c,
                            Err(_) => Completion::info("timed-out"),
                        },
                        _ = job.interrupt.cancelled() => Completion::info("interrupted"),
                    }
                }
            };
            if completion.kind == EventType::Invoke {
                debug_assert!(false, "a client completed {op:?} with kind invoke");
                completion = Completion::info("client returned an invoke as completion");
            }
            if completion.kind != EventType::Ok && completion.value.is_null() {
                // Jepsen's convention: a failed or indeterminate op carries its argument.
                completion.value = op.value.clone();
            }
            if self
                .recorder
                .record(
                    p,
                    completion.kind,
                    &op.f,
                    key,
                    completion.value.clone(),
                    completion.error.as_deref(),
                )
                .await
                .is_err()
            {
                return;
            }
            if completion.is_info() {
                // The connection may be in any state: replace it before the next operation.
                if let Some(mut c) = client.take() {
                    let _ = tokio::time::timeout(self.connect_timeout, c.close()).await;
                }
            }
            if backoff {
                tokio::select! {
                    _ = tokio::time::sleep(open_backoff(open_failures)) => {}
                    _ = job.interrupt.cancelled() => {}
                }
            }
            let thread = self.thread;
            if done
                .send(Done {
                    thread,
                    op,
                    completion,
                })
                .await
                .is_err()
            {
                break;
            }
        }
        if let Some(mut c) = client {
            let _ = tokio::time::timeout(self.connect_timeout, c.close()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_backoff_doubles_from_10_ms_to_a_second() {
        let ms = |n| open_backoff(n).as_millis();
        assert_eq!(
            (ms(0), ms(1), ms(2), ms(3), ms(7), ms(8), ms(1000)),
            (0, 10, 20, 40, 640, 1000, 1000)
        );
    }
}
