//! The scheduler: the one place that asks the generator for operations and hands them to
//! worker threads, written without I/O so that the real runner and a simulated clock share it.
//!
//! The runner owns one [`Scheduler`] in a single task, so the generator and the run's RNG are
//! never touched concurrently: determinism needs nothing more than a fixed order of questions and
//! completions. The scheduler also owns the thread -> process table and applies Jepsen's rule:
//! when an operation completes with `info`, its thread continues under process
//! `process + threads`, so a process id that got `info` never invokes again.
//!
//! [`simulate`] drives a scheduler on a virtual clock with a scripted client. It is how the
//! generators are tested (rates, phases, time limits, determinism) without waiting in real time.

use crate::generator::{rng_from_seed, Completed, Ctx, Gen, Next, Planned, Rng};
use crate::op::{Completion, Invocation};
use checkers::EventType;
use std::collections::BTreeMap;

/// An operation to start now on a worker thread, under a process id.
#[derive(Debug, Clone, PartialEq)]
pub struct Dispatch {
    pub thread: usize,
    pub process: u64,
    pub op: Invocation,
}

/// What the scheduler wants after a [`Scheduler::poll`].
#[derive(Debug, Default, PartialEq)]
pub struct Step {
    /// Operations to start now.
    pub dispatch: Vec<Dispatch>,
    /// Poll again at this time at the latest (a planned operation or a generator's wake-up);
    /// in any case poll again after every completion.
    pub wake_ns: Option<u64>,
    /// The generator is done (or stopped) and nothing is planned or running.
    pub finished: bool,
    /// The generator waits for a completion but nothing is running: it can only be woken by the
    /// clock, if ever. The runner re-polls at a bounded interval until its time limit.
    pub stalled: bool,
}

/// See the module documentation.
pub struct Scheduler {
    threads: usize,
    rng: Rng,
    gen: Option<Gen>,
    gen_done: bool,
    processes: Vec<u64>,
    busy: Vec<bool>,
    held: Vec<Planned>,
    all: Vec<usize>,
}

impl Scheduler {
    /// `threads` workers (the concurrency), numbered 0.., initially processes 0..threads.
    pub fn new(threads: usize, seed: u64) -> Self {
        assert!(threads > 0, "a run needs at least one worker thread");
        Scheduler {
            threads,
            rng: rng_from_seed(seed),
            gen: None,
            gen_done: true,
            processes: (0..threads as u64).collect(),
            busy: vec![false; threads],
            held: Vec::new(),
            all: (0..threads).collect(),
        }
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The process id each thread currently runs as.
    pub fn processes(&self) -> &[u64] {
        &self.processes
    }

    /// Operations dispatched and not yet completed.
    pub fn in_flight(&self) -> usize {
        self.busy.iter().filter(|b| **b).count()
    }

    /// Starts a phase: from now on operations come from `gen`. The RNG, the process table and
    /// any operations still running carry over.
    pub fn set_generator(&mut self, gen: Gen) {
        self.gen = Some(gen);
        self.gen_done = false;
        self.held.clear();
    }

    /// Stops generating: planned operations are dropped (they never started), running ones may
    /// still complete.
    pub fn stop(&mut self) {
        self.gen_done = true;
        self.held.clear();
    }

    /// Dispatches what is due at `now_ns` and asks the generator for more while threads are free.
    pub fn poll(&mut self, now_ns: u64) -> Step {
        let mut step = Step::default();
        let mut i = 0;
        while i < self.held.len() {
            if self.held[i].at_ns <= now_ns {
                let p = self.held.remove(i);
                step.dispatch.push(self.start(p));
            } else {
                i += 1;
            }
        }
        let mut pending_for_completion = false;
        if !self.gen_done {
            // Bounded: every answered operation takes one free thread.
            for _ in 0..=self.threads {
                let free: Vec<usize> = (0..self.threads)
                    .filter(|&t| !self.busy[t] && !self.held.iter().any(|p| p.thread == t))
                    .collect();
                if free.is_empty() {
                    break;
                }
                let gen = self.gen.as_mut().expect("a phase has a generator");
                let mut ctx = Ctx {
                    time_ns: now_ns,
                    free: &free,
                    all: &self.all,
                    rng: &mut self.rng,
                };
                match gen.next(&mut ctx) {
                    Next::Op(p) => {
                        assert!(
                            free.contains(&p.thread),
                            "generator planned {:?} on thread {}, which is not free",
                            p.op,
                            p.thread
                        );
                        if p.at_ns <= now_ns {
                            step.dispatch.push(self.start(p));
                        } else {
                            self.held.push(p);
                        }
                    }
                    Next::Pending { wake_ns } => {
                        step.wake_ns = wake_ns;
                        pending_for_completion = wake_ns.is_none();
                        break;
                    }
                    Next::Done => {
                        self.gen_done = true;
                        break;
                    }
                }
            }
        }
        if let Some(at) = self.held.iter().map(|p| p.at_ns).min() {
            step.wake_ns = Some(step.wake_ns.map_or(at, |w| w.min(at)));
        }
        let idle = self.held.is_empty() && self.in_flight() == 0;
        step.finished = self.gen_done && idle;
        step.stalled = !self.gen_done && idle && pending_for_completion;
        step
    }

    fn start(&mut self, p: Planned) -> Dispatch {
        assert!(!self.busy[p.thread], "thread {} is already busy", p.thread);
        self.busy[p.thread] = true;
        Dispatch {
            thread: p.thread,
            process: self.processes[p.thread],
            op: p.op,
        }
    }

    /// Records that the operation running on `thread` completed; shows it to the generator and
    /// retires the process id after `info`.
    pub fn complete(
        &mut self,
        thread: usize,
        op: &Invocation,
        completion: &Completion,
        now_ns: u64,
    ) {
        assert!(self.busy[thread], "completion on idle thread {thread}");
        assert!(
            completion.kind != EventType::Invoke,
            "a completion is ok, fail or info"
        );
        self.busy[thread] = false;
        let process = self.processes[thread];
        if let Some(gen) = self.gen.as_mut() {
            gen.update(&Completed {
                thread,
                process,
                time_ns: now_ns,
                op,
                completion,
            });
        }
        if completion.kind == EventType::Info {
            self.processes[thread] += self.threads as u64;
        }
    }
}

/// One operation of a simulated run.
#[derive(Debug, Clone, PartialEq)]
pub struct SimOp {
    pub thread: usize,
    pub process: u64,
    /// Virtual time the operation started.
    pub start_ns: u64,
    pub op: Invocation,
    pub completion: Completion,
}

/// Runs `gen` on a virtual clock: `threads` workers, every operation taking `latency_ns`,
/// answered by `respond`, at most `max_ops` operations. Completions are delivered in the order of
/// their virtual completion time (ties in dispatch order), so the result is a pure function of
/// the arguments.
pub fn simulate(
    gen: Gen,
    threads: usize,
    seed: u64,
    latency_ns: u64,
    max_ops: usize,
    mut respond: impl FnMut(&Invocation) -> Completion,
) -> Vec<SimOp> {
    let mut sched = Scheduler::new(threads, seed);
    sched.set_generator(gen);
    let mut now = 0u64;
    let mut seq = 0u64;
    // (completion time, dispatch sequence) -> (index into out)
    let mut running: BTreeMap<(u64, u64), usize> = BTreeMap::new();
    let mut out: Vec<SimOp> = Vec::new();
    loop {
        let step = sched.poll(now);
        for d in step.dispatch {
            let completion = respond(&d.op);
            running.insert((now + latency_ns, seq), out.len());
            seq += 1;
            out.push(SimOp {
                thread: d.thread,
                process: d.process,
                start_ns: now,
                op: d.op,
                completion,
            });
        }
        if step.finished || out.len() >= max_ops {
            break;
        }
        let next_done = running.keys().next().map(|k| k.0);
        let next = match (next_done, step.wake_ns) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => break, // stalled: nothing can ever happen again
        };
        now = now.max(next);
        while let Some((&(at, s), &i)) = running.iter().next() {
            if at > now {
                break;
            }
            running.remove(&(at, s));
            let o = &out[i];
            sched.complete(o.thread, &o.op, &o.completion, now);
        }
    }
    out.truncate(max_ops);
    out
}
