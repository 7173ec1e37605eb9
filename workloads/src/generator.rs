//! Generators: what operations to run, on which worker thread, and when.
//!
//! The design follows Jepsen's generators, adapted to a mutable Rust trait. A [`Generator`] is
//! asked for the next operation with a [`Ctx`]: the time since the run started, the worker
//! threads that are free, and the run's single seeded RNG. It answers [`Next::Op`] (an operation
//! for one of the free threads, to start at a given time), [`Next::Pending`] (nothing yet: ask again
//! after a completion, or at the given time) or [`Next::Done`]. Every completion is shown to the
//! generator through [`Generator::update`], which is how `until_ok` and `synchronize` work.
//!
//! Jepsen's generators are pure values that may be asked and the answer thrown away; ours are
//! mutable, so an answer is a commitment: the scheduler (see [`crate::schedule`]) keeps an
//! operation planned for the future and dispatches it when its time comes, while it goes on asking
//! for operations for the other free threads.
//!
//! Determinism: every random choice (which free thread, which operation, how long a stagger
//! gap) is drawn from the one RNG in the context, in the order the scheduler asks. So the same
//! seed and the same order of completions (relative to the scheduler's questions) yield the same
//! operations on the same threads. Wall-clock time only decides when planned operations are
//! dispatched and where a time limit cuts the sequence; it never changes what is drawn.

use crate::op::{Completion, Invocation};
use rand::{RngExt, SeedableRng};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// The run's random number generator: ChaCha8, portable and reproducible from a `u64` seed.
pub type Rng = rand::rngs::ChaCha8Rng;

/// The RNG a run derives everything from.
pub fn rng_from_seed(seed: u64) -> Rng {
    Rng::seed_from_u64(seed)
}

/// What a generator sees when asked for an operation.
pub struct Ctx<'a> {
    /// Nanoseconds since the run started.
    pub time_ns: u64,
    /// Free worker threads this generator may use (no operation running or planned on them).
    pub free: &'a [usize],
    /// All worker threads this generator is responsible for (a superset of `free`).
    pub all: &'a [usize],
    /// The run's RNG: the only source of randomness a generator may use.
    pub rng: &'a mut Rng,
}

impl<'a> Ctx<'a> {
    /// A random free thread, or `None` when every thread is busy.
    pub fn some_free_thread(&mut self) -> Option<usize> {
        match self.free.len() {
            0 => None,
            1 => Some(self.free[0]),
            n => Some(self.free[self.rng.random_range(0..n)]),
        }
    }

    /// The same context seen by a sub-generator that owns only `all` (and of those, `free`).
    pub fn restrict<'b>(&'b mut self, free: &'b [usize], all: &'b [usize]) -> Ctx<'b> {
        Ctx {
            time_ns: self.time_ns,
            free,
            all,
            rng: &mut *self.rng,
        }
    }
}

/// An operation a generator committed to: run `op` on worker `thread`, not before `at_ns`.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub thread: usize,
    pub at_ns: u64,
    pub op: Invocation,
}

/// A generator's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    Op(Planned),
    /// Nothing now. Ask again after the next completion, or at `wake_ns` if given.
    Pending {
        wake_ns: Option<u64>,
    },
    /// No more operations, ever.
    Done,
}

impl Next {
    const WAIT: Next = Next::Pending { wake_ns: None };
}

/// A completed operation, as shown to [`Generator::update`].
#[derive(Debug, Clone, Copy)]
pub struct Completed<'a> {
    pub thread: usize,
    pub process: u64,
    pub time_ns: u64,
    pub op: &'a Invocation,
    pub completion: &'a Completion,
}

/// The generator role. See the module documentation for the protocol.
pub trait Generator: Send {
    /// The next operation for one of `ctx.free`, or why there is none.
    fn next(&mut self, ctx: &mut Ctx<'_>) -> Next;
    /// Sees every completion of an operation this generator (or a sibling) produced.
    fn update(&mut self, _done: &Completed<'_>) {}
}

/// A boxed generator, the currency of the combinators below.
pub type Gen = Box<dyn Generator>;

impl Generator for Gen {
    fn next(&mut self, ctx: &mut Ctx<'_>) -> Next {
        (**self).next(ctx)
    }
    fn update(&mut self, done: &Completed<'_>) {
        (**self).update(done)
    }
}

fn min_wake(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn op_now(ctx: &mut Ctx<'_>, op: Invocation) -> Next {
    match ctx.some_free_thread() {
        Some(thread) => Next::Op(Planned {
            thread,
            at_ns: ctx.time_ns,
            op,
        }),
        None => Next::WAIT,
    }
}

// ------------------------------------------------------------------------------------------
// Leaves

struct FromFn<F>(F);

impl<F: FnMut(&mut Rng) -> Invocation + Send> Generator for FromFn<F> {
    fn next(&mut self, ctx: &mut Ctx<'_>) -> Next {
        if ctx.free.is_empty() {
            return Next::WAIT;
        }
        let op = (self.0)(ctx.rng);
        op_now(ctx, op)
    }
}

/// An endless generator: each operation is made by `f` from the run's RNG, on a random free
/// thread. Bound it with [`limit`] or [`time_limit`].
pub fn from_fn(f: impl FnMut(&mut Rng) -> Invocation + Send + 'static) -> Gen {
    Box::new(FromFn(f))
}

/// The same operation, forever.
pub fn repeat(op: Invocation) -> Gen {
    from_fn(move |_| op.clone())
}

struct Ops(std::vec::IntoIter<Invocation>, Option<Invocation>);

impl Generator for Ops {
    fn next(&mut self, ctx: &mut Ctx<'_>) -> Next {
        if self.1.is_none() {
            self.1 = self.0.next();
        }
        match self.1.take() {
            None => Next::Done,
            Some(op) if ctx.free.is_empty() => {
                self.1 = Some(op);
                Next::WAIT
            }
            Some(op) => op_now(ctx, op),
        }
    }
}

/// These operations, in order, each once, each on a random free thread.
pub fn ops(ops: Vec<Invocation>) -> Gen {
    Box::new(Ops(ops.into_iter(), None))
}

/// One operation, once.
pub fn once(op: Invocation) -> Gen {
    ops(vec![op])
}

struct Nothing;
impl Generator for Nothing {
    fn next(&mut self, _ctx: &mut Ctx<'_>) -> Next {
        Next::Done
    }
}

/// A generator that is done at once.
pub fn nothing() -> Gen {
    Box::new(Nothing)
}

// ------------------------------------------------------------------------------------------
// Choice

struct Mix {
    gens: Vec<(u32, Gen)>,
}

impl Generator for Mix {
    fn next(&mut self, ctx: &mut Ctx<'_>) -> Next {
        // Bounded: each round either answers or removes an exhausted generator.
        while !self.gens.is_empty() {
            let total: u64 = self.gens.iter().map(|(w, _)| u64::from(*w)).sum();
            let mut pick = ctx.rng.random_range(0..total);
            let mut i = 0;
            while pick >= u64::from(self.gens[i].0) {
                pick -= u64::from(self.gens[i].0);
                i += 1;
            }
            match self.gens[i].1.next(ctx) {
                Next::Done => {
                    self.gens.remove(i);
                }
                other => return other,
            }
        }
        Next::Done
    }
    fn update(&mut self, done: &Completed<'_>) {
        for (_, g) in &mut self.gens {
            g.update(done);
        }
    }
}

/// Each operation comes from one of `gens`, chosen at random in proportion to its weight.
/// An exhausted generator drops out; the mix is done when all are.
pub fn mix_weighted(gens: Vec<(u32, Gen)>) -> Gen {
    assert!(
        gens.iter().all(|(w, _)| *w > 0),
        "mix_weighted: every weight must be positive"
    );
    Box::new(Mix { gens })
}

/// [`mix_weighted`] with equal weights.
pub fn mix(gens: Vec<Gen>) -> Gen {
    mix_weighted(gens.into_iter().map(|g| (1, g)).collect())
}

// ------------------------------------------------------------------------------------------
// Bounds

struct Limit {
    left: u64,
    gen: Gen,
}

impl Generator for Limit {
    fn next(&mut self, ctx: &mut Ctx<'_>) -> Next {
        if self.left == 0 {
            return Next::Done;
        }
        let next = self.gen.next(ctx);
        if matches!(next, Next::Op(_)) {
            self.left -= 1;
        }
        next
    }
    fn update(&mut self, done: &Completed<'_>) {
        self.gen.update(done)
    }
}

/// At most `n` operations from `gen`.
pub fn limit(n: u64, gen: Gen) -> Gen {
    Box::new(Limit { left: n, gen })
}

struct TimeLimit {
    limit_ns: u64,
    deadline_ns: Option<u64>,
    done: bool,
    gen: Gen,
}

impl Generator for TimeLimit {
    fn next(&mut self, ctx: &mut Ctx<'_>) -> Next {
        let deadline = *self
            .deadline_ns
            .get_or_insert(ctx.time_ns.saturating_add(self.limit_ns));
        if self.done || ctx.time_ns >= deadline {
            self.done = true;
            return Next::Done;
        }
        match self.gen.next(ctx) {
            Next::Op(p) if p.at_ns >= deadline => {
                // Planned past the deadline: it will never run, and neither will anything after.
                self.done = true;
                Next::Done
            }
            Next::Pending { wake_ns } => Next::Pending {
                wake_ns: min_wake(wake_ns, Some(deadline)),
            },
            Next::Done => {
                self.done = true;
                Next::Done
            }
            op => op,
        }
    }
    fn update(&mut self, done: &Completed<'_>) {
        self.gen.update(done)
    }
}

/// Operations from `gen` for `limit` from the first time it is asked; none planned at or past
/// that deadline.
pub fn time_limit(limit: Duration, gen: Gen) -> Gen {
    Box::new(TimeLimit {
        limit_ns: duration_ns(limit),
        deadline_ns: None,
        done: false,
        gen,
    })
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

// ------------------------------------------------------------------------------------------
// Pacing

struct Stagger {
    /// Gaps are drawn uniformly from [0, max_gap_ns], so their mean is half of it.
    max_gap_ns: u64,
    fixed: bool,
    next_ns: Option<u64>,
    gen: Gen,
}

impl Generator for Stagger {
    fn next(&mut self, ctx: &mut Ctx<'_>) -> Next {
        match self.gen.next(ctx) {
            Next::Op(mut p) => {
                // Never in the past: a run that fell behind does not burst to catch up, so the
                // rate is an upper bound.
                let earliest = self.next_ns.unwrap_or(ctx.time_ns).max(ctx.time_ns);
                p.at_ns = p.at_ns.max(earliest);
                let gap = if self.fixed || self.max_gap_ns == 0 {
                    self.max_gap_ns
                } else {
                    ctx.rng.random_range(0..=self.max_gap_ns)
                };
                self.next_ns = Some(p.at_ns.saturating_add(gap));
                Next::Op(p)
            }
            other => other,
        }
    }
    fn update(&mut self, done: &Completed<'_>) {
        self.gen.update(done)
    }
}

/// Operations from `gen` spaced by random gaps, uniform in [0, 2 * `mean_gap`], over all
/// threads together (Jepsen's `stagger`).
pub fn stagger(mean_gap: Duration, gen: Gen) -> Gen {
    Box::new(Stagger {
        max_gap_ns: duration_ns(mean_gap).saturating_mul(2),
        fixed: false,
        next_ns: None,
        gen,
    })
}

/// At most `ops_per_s` operations per second overall, with random (staggered) spacing; the
/// long-run rate is `ops_per_s` when the threads keep up.
pub fn rate(ops_per_s: f64, gen: Gen) -> Gen {
    assert!(
        ops_per_s.is_finite() && ops_per_s > 0.0,
        "rate: ops_per_s must be positive, got {ops_per_s}"
    );
    stagger(Duration::from_secs_f64(1.0 / ops_per_s), gen)
}

/// Operations from `gen` exactly `gap` apart (or later, when no thread is free).
pub fn delay(gap: Duration, gen: Gen) -> Gen {
    Box::new(Stagger {
        max_gap_ns: duration_ns(gap),
        fixed: true,
        next_ns: None,
        gen,
    })
}

struct Sleep {
    for_ns: u64,
    until_ns: Option<u64>,
}

impl Generator for Sleep {
    fn next(&mut self, ctx: &mut Ctx<'_>) -> Next {
        let until = *self
            .until_ns
            .get_or_insert(ctx.time_ns.saturating_add(self.for_ns));
        if ctx.time_ns >= until {
            Next::Done
        } else {
            Next::Pending {
                wake_ns: Some(until),
            }
        }
    }
}

/// No operations for `d` (from the first time it is asked), then done. In [`phases`], a pause.
pub fn sleep(d: Duration) -> Gen {
    Box::new(Sleep {
        for_ns: duration_ns(d),
        until_ns: None,
    })
}

// ------------------------------------------------------------------------------------------
// Sequence

struct Seq {
    gens: std::collections::VecDeque<Gen>,
}

impl Generator for Seq {
    fn next(&mut self, ctx: &mut Ctx<'_>) -> Next {
        while let Some(g) = self.gens.front_mut() {
            match g.next(ctx) {
                Next::Done => {
                    self.gens.pop_front();
                }
                other => return other,
            }
        }
        Next::Done
    }
    fn update(&mut self, done: &Completed<'_>) {
        for g in &mut self.gens {
            g.update(done);
        }
    }
}

/// All of the first generator's operations, then the second's, and so on. A later generator may
/// start while the earlier one's last operations are still running; see [`phases`].
pub fn seq(gens: Vec<Gen>) -> Gen {
    Box::new(Seq { gens: gens.into() })
}

struct Synchronize {
    ready: bool,
    gen: Gen,
}

impl Generator for Synchronize {
    fn next(&mut self, ctx: &mut Ctx<'_>) -> Next {
        if !self.ready {
            if ctx.free.len() < ctx.all.len() {
                return Next::WAIT;
            }
            self.ready = true;
        }
        self.gen.next(ctx)
    }
    fn update(&mut self, done: &Completed<'_>) {
        self.gen.update(done)
    }
}

/// `gen`, but only once every thread it owns is free (all earlier operations completed).
pub fn synchronize(gen: Gen) -> Gen {
    Box::new(Synchronize { ready: false, gen })
}

/// Phases run one after the other, each starting only when every operation of the previous one
/// has completed (Jepsen's `phases`).
pub fn phases(gens: Vec<Gen>) -> Gen {
    seq(gens.into_iter().map(synchronize).collect())
}

// ------------------------------------------------------------------------------------------
// Threads

struct EachThread {
    make: Box<dyn FnMut() -> Gen + Send>,
    gens: BTreeMap<usize, Option<Gen>>,
}

impl Generator for EachThread {
    fn next(&mut self, ctx: &mut Ctx<'_>) -> Next {
        for &t in ctx.all {
            if !self.gens.contains_key(&t) {
                let g = (self.make)();
                self.gens.insert(t, Some(g));
            }
        }
        let mut free: Vec<usize> = ctx.free.to_vec();
        free.sort_unstable();
        let mut wake = None;
        for t in free {
            let Some(Some(g)) = self.gens.get_mut(&t) else {
                continue;
            };
            let one = [t];
            match g.next(&mut ctx.restrict(&one, &one)) {
                Next::Op(p) => return Next::Op(p),
                Next::Pending { wake_ns } => wake = min_wake(wake, wake_ns),
                Next::Done => {
                    self.gens.insert(t, None);
                }
            }
        }
        let live = ctx
            .all
            .iter()
            .any(|t| matches!(self.gens.get(t), Some(Some(_))));
        if live {
            Next::Pending { wake_ns: wake }
        } else {
            Next::Done
        }
    }
    fn update(&mut self, done: &Completed<'_>) {
        if let Some(Some(g)) = self.gens.get_mut(&done.thread) {
            g.update(done);
        }
    }
}

/// An independent copy of the generator `make` builds, for every thread (Jepsen's
/// `each-thread`): e.g. `each_thread(|| once(read))` makes every thread read once. A thread keeps
/// its generator when its process id is retired after `info`, so this is also "each process".
pub fn each_thread(make: impl FnMut() -> Gen + Send + 'static) -> Gen {
    Box::new(EachThread {
        make: Box::new(make),
        gens: BTreeMap::new(),
    })
}

struct Reserve {
    /// Thread count for each group; the last group takes the rest.
    counts: Vec<usize>,
    gens: Vec<Option<Gen>>,
    owner: BTreeMap<usize, usize>,
}

impl Reserve {
    fn assign(&mut self, all: &[usize]) {
        let mut sorted = all.to_vec();
        sorted.sort_unstable();
        let mut i = 0;
        for (g, &n) in self.counts.iter().enumerate() {
            for &t in sorted.iter().skip(i).take(n) {
                self.owner.insert(t, g);
            }
            i += n;
        }
        for &t in sorted.iter().skip(i) {
            self.owner.insert(t, self.counts.len());
        }
    }
}

impl Generator for Reserve {
    fn next(&mut self, ctx: &mut Ctx<'_>) -> Next {
        if self.owner.is_empty() {
            self.assign(ctx.all);
        }
        let mut wake = None;
        for g in 0..self.gens.len() {
            let Some(gen) = self.gens[g].as_mut() else {
                continue;
            };
            let all: Vec<usize> = ctx
                .all
                .iter()
                .copied()
                .filter(|t| self.owner.get(t) == Some(&g))
                .collect();
            let free: Vec<usize> = ctx
                .free
                .iter()
                .copied()
                .filter(|t| self.owner.get(t) == Some(&g))
                .collect();
            if all.is_empty() {
                // No thread to run it on: it can never make progress.
                self.gens[g] = None;
                continue;
            }
            match gen.next(&mut ctx.restrict(&free, &all)) {
                Next::Op(p) => return Next::Op(p),
                Next::Pending { wake_ns } => wake = min_wake(wake, wake_ns),
                Next::Done => self.gens[g] = None,
            }
        }
        if self.gens.iter().any(Option::is_some) {
            Next::Pending { wake_ns: wake }
        } else {
            Next::Done
        }
    }
    fn update(&mut self, done: &Completed<'_>) {
        if let Some(&g) = self.owner.get(&done.thread) {
            if let Some(gen) = self.gens[g].as_mut() {
                gen.update(done);
            }
        }
    }
}

/// Splits the threads (lowest numbers first): the first `n` run the first generator, the next
/// `m` the second, ..., and the remaining threads run `rest` (Jepsen's `reserve`), e.g. writers
/// and readers of a queue. A group with no thread left is dropped.
pub fn reserve(groups: Vec<(usize, Gen)>, rest: Gen) -> Gen {
    let counts = groups.iter().map(|(n, _)| *n).collect();
    let mut gens: Vec<Option<Gen>> = groups.into_iter().map(|(_, g)| Some(g)).collect();
    gens.push(Some(rest));
    Box::new(Reserve {
        counts,
        gens,
        owner: BTreeMap::new(),
    })
}

// ------------------------------------------------------------------------------------------
// Feedback

struct Until<P> {
    gen: Gen,
    attempts_left: u64,
    in_flight: HashSet<usize>,
    satisfied: bool,
    pred: P,
}

impl<P: FnMut(&Completion) -> bool + Send> Generator for Until<P> {
    fn next(&mut self, ctx: &mut Ctx<'_>) -> Next {
        if self.satisfied {
            return Next::Done;
        }
        if self.attempts_left == 0 {
            // Out of attempts: done once the last ones have answered (one may still succeed).
            return if self.in_flight.is_empty() {
                Next::Done
            } else {
                Next::WAIT
            };
        }
        match self.gen.next(ctx) {
            Next::Op(p) => {
                self.attempts_left -= 1;
                self.in_flight.insert(p.thread);
                Next::Op(p)
            }
            other => other,
        }
    }
    fn update(&mut self, done: &Completed<'_>) {
        if self.in_flight.remove(&done.thread) && (self.pred)(done.completion) {
            self.satisfied = true;
        }
        self.gen.update(done);
    }
}

/// Operations from `gen` until one of them completes in a way `pred` accepts, at most
/// `max_attempts` of them; e.g. drain a queue until a drain comes back empty.
pub fn until(
    max_attempts: u64,
    gen: Gen,
    pred: impl FnMut(&Completion) -> bool + Send + 'static,
) -> Gen {
    Box::new(Until {
        gen,
        attempts_left: max_attempts,
        in_flight: HashSet::new(),
        satisfied: false,
        pred,
    })
}

/// Operations from `gen` until one of them completes `ok`, at most `max_attempts` of them
/// (Jepsen's `until-ok`, bounded). With [`each_thread`], "final reads until ok" is
/// `each_thread(|| until_ok(10, repeat(read)))`.
pub fn until_ok(max_attempts: u64, gen: Gen) -> Gen {
    until(max_attempts, gen, |c| c.kind == checkers::EventType::Ok)
}

struct Map<F> {
    gen: Gen,
    f: F,
}

impl<F: FnMut(Invocation, &mut Rng) -> Invocation + Send> Generator for Map<F> {
    fn next(&mut self, ctx: &mut Ctx<'_>) -> Next {
        match self.gen.next(ctx) {
            Next::Op(mut p) => {
                p.op = (self.f)(p.op, ctx.rng);
                Next::Op(p)
            }
            other => other,
        }
    }
    fn update(&mut self, done: &Completed<'_>) {
        self.gen.update(done)
    }
}

/// `gen` with every operation rewritten by `f` (which may draw from the RNG), e.g. to pick a key.
pub fn map(gen: Gen, f: impl FnMut(Invocation, &mut Rng) -> Invocation + Send + 'static) -> Gen {
    Box::new(Map { gen, f })
}

struct Deferred {
    make: Option<Box<dyn FnOnce() -> Gen + Send>>,
    gen: Option<Gen>,
}

impl Generator for Deferred {
    fn next(&mut self, ctx: &mut Ctx<'_>) -> Next {
        if let Some(make) = self.make.take() {
            self.gen = Some(make());
        }
        self.gen.as_mut().map_or(Next::Done, |g| g.next(ctx))
    }
    fn update(&mut self, done: &Completed<'_>) {
        if let Some(g) = self.gen.as_mut() {
            g.update(done);
        }
    }
}

/// The generator `make` builds when first asked, e.g. final reads of every key the main phase
/// used, which are known only once it has run.
pub fn deferred(make: impl FnOnce() -> Gen + Send + 'static) -> Gen {
    Box::new(Deferred {
        make: Some(Box::new(make)),
        gen: None,
    })
}
