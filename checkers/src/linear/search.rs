//! The search of one partition: Wing–Gong with Lowe's memo, and the prunings listed in the
//! module docs of [`crate::linear`].
//!
//! Layout: op `i` has a call entry `i` and, unless it is indeterminate, a return entry `n + i`.
//! Calls and returns of definite ops form the main list, in history order; calls of info ops
//! form a second list (they have no return: it lies at +infinity). Both lists are threaded
//! through one pair of `next`/`prev` arrays and lifted and restored dancing-links style, so a
//! step and its undo are O(1).
//!
//! A configuration's candidates are the definite calls before the first return of the main
//! list, then the info calls invoked before that return. The search tries them in that order,
//! descends on the first that the model accepts in a configuration not seen before, and on
//! meeting the return backtracks to the last choice and tries the next candidate there.

use super::memo::{Control, Memo, StopReason, Visit};
use super::Model;
use rustc_hash::FxHasher;
use std::hash::{Hash, Hasher};

/// One operation of a partition, decoded.
pub(crate) struct PartOp<I> {
    pub input: I,
    /// Position of the invocation in history order.
    pub call: u64,
    /// Position of the completion; `u64::MAX` for an indeterminate op.
    pub ret: u64,
    pub info: bool,
    /// Index of the op in the history's op list.
    pub src: usize,
}

/// Why a partition is not linearizable: the deepest configuration the search reached.
pub(crate) struct Failure<S> {
    /// Ops (partition indices) of the longest linearizable prefix, in linearization order.
    pub prefix: Vec<usize>,
    /// Distinct states reachable by linearizing exactly the prefix's ops (in some order).
    pub states: Vec<S>,
    /// The op whose completion closes the window after the prefix: no order of the pending
    /// ops lets it take effect (in the usual case, it is impossible in every state listed).
    pub unplaceable: usize,
}

pub(crate) enum Outcome<S> {
    Valid,
    Invalid(Failure<S>),
    Stopped(StopReason),
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SearchStats {
    /// Configurations explored (memo entries made).
    pub configurations: u64,
    /// Model steps taken.
    pub steps: u64,
    pub cache_entries: u64,
    pub peak_cache_bytes: u64,
    /// Searches run: more than one when the search restarted with the other order.
    pub attempts: u64,
}

const NIL: u32 = u32::MAX;
/// States kept as evidence for the deepest prefix.
const EVIDENCE_STATES_MAX: usize = 8;
/// Search iterations between two looks at the clock and the stop flag.
const POLL_EVERY: u64 = 4096;
/// The Zobrist word of the "last op placed is info" bit.
const AFTER_INFO_ZOBRIST: u64 = 0x2545_f491_4f6c_dd1d;

struct Frame<S> {
    op: u32,
    /// The memo entry of the configuration the op led to (marked failed when popped).
    entry: u32,
    /// The state before the op; `None` for a read-only op (the state did not change).
    prev: Option<S>,
    /// The position of the first return when the op was placed.
    bound: u64,
    /// Placed without branching: backtracking past it backtracks the configuration before it.
    greedy: bool,
    /// Further states a nondeterministic op may lead to, still to try.
    alts: Vec<S>,
}

enum At {
    /// A configuration just reached: check for success, place reads, find the window.
    Fresh,
    Main(u32),
    /// An info call; true when the info ops are tried before the definite ones.
    Info(u32, bool),
    Backtrack,
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Whether `input` can take effect in `state`.
pub(crate) fn possible<M: Model>(model: &M, state: &M::State, input: &M::Input) -> bool {
    model
        .branches(state, input)
        .map_or_else(|| model.step(state, input).is_some(), |b| !b.is_empty())
}

fn state_hash<S: Hash>(s: &S) -> u64 {
    let mut h = FxHasher::default();
    s.hash(&mut h);
    // Spread FxHash's low-entropy high bits before mixing with the Zobrist key.
    splitmix64(h.finish())
}

struct Search<'a, M: Model> {
    model: &'a M,
    ops: &'a [PartOp<M::Input>],
    n: usize,
    next: Vec<u32>,
    prev: Vec<u32>,
    /// Placed definite ops, by rank among the definite ops.
    ok_bits: Vec<u64>,
    /// Placed info ops, by rank among the info ops.
    info_bits: Vec<u64>,
    /// Per op: its rank among the definite or among the info ops.
    rank: Vec<u32>,
    /// Per op: its random word. The XOR of the placed definite ones is `zob_ok`, of the
    /// placed info ones `zob_info` (Zobrist hashing: a placement updates the hash in O(1)).
    zobrist: Vec<u64>,
    zob_ok: u64,
    zob_info: u64,
    state: M::State,
    stack: Vec<Frame<M::State>>,
    remaining_ok: usize,
    read_only: Vec<bool>,
    /// For an info op: the earlier-invoked info op with an equal input, or NIL.
    twin: Vec<u32>,
    /// Per op: an info op the model calls blind ([`Model::is_blind`]).
    blind: Vec<bool>,
    /// Where `after_info` is kept in `ok_bits` (part of the configuration), when some info op
    /// is blind.
    after_info_bit: Option<usize>,
    /// Whether the last op placed is an info op: then no blind info op may follow it.
    after_info: bool,
    /// Try the pending info ops before the definite ones.
    info_first: bool,
    /// Configurations after which this attempt gives up for the next one.
    restart_at: u64,
    memo: Memo<'a, M::State>,
    stats: SearchStats,
    // Evidence: the deepest configuration.
    /// The deepest configuration abandoned so far.
    deepest: Option<Evidence<M::State>>,
    /// The deepest abandoned configuration whose window-closing op is impossible in its state:
    /// the clearest story for a person, preferred when there is one.
    blocked: Option<Evidence<M::State>>,
}

/// A failed configuration kept as evidence.
#[derive(Clone)]
struct Evidence<S> {
    depth: usize,
    prefix: Vec<usize>,
    bits: (Vec<u64>, Vec<u64>),
    /// Its state, then the states of other configurations with the same placed ops.
    states: Vec<S>,
    /// The op of the first return in the window (`usize::MAX`: none).
    unplaceable: usize,
}

impl<S: PartialEq + Clone> Evidence<S> {
    /// Adds `state` when the configuration has the same placed ops as this one.
    fn another_order(&mut self, depth: usize, ok: &[u64], info: &[u64], state: &S) {
        if depth == self.depth
            && self.states.len() < EVIDENCE_STATES_MAX
            && self.bits.0 == ok
            && self.bits.1 == info
            && !self.states.contains(state)
        {
            self.states.push(state.clone());
        }
    }
}

/// Configurations the first attempt of a partition with info ops may explore before the search
/// restarts with the other order; each later pair of attempts may explore twice as many.
pub(crate) const RESTART_FIRST_STATES: u64 = 1 << 15;

/// The search of a partition of at least [`INFO_FIRST_OPS_MIN`] ops whose definite ops overlap
/// at most this much ([`overlap`]), and whose ops are at least one in [`INFO_FIRST_SHARE_MIN`]
/// info ops, tries info ops first.
/// Measured on issue 16's shapes: with about 3 ops overlapping and 10% info ops, info first
/// decided in as many configurations as definite first or, with values 0..100, in under a
/// tenth of them (definite first left every unplaced timed-out op pending and backtracked
/// through them all); with 14 to 34 overlapping (one key, 20 or 50 clients), definite first
/// took from 1/8 to under 1/60 of the configurations.
const INFO_FIRST_OVERLAP_MAX: f64 = 8.0;

/// See [`INFO_FIRST_OVERLAP_MAX`]. Shorter partitions keep definite first: both orders decide
/// them quickly, and where they are not linearizable (so that the search must rule out every
/// order), definite first's search was the smaller one: up to 14 times fewer configurations on
/// Porcupine's etcd histories (81 to 87 ops), 5 times fewer on generated 200-op partitions with
/// 10% info ops; a wasted first attempt costs most on long partitions, where the guess pays.
const INFO_FIRST_OPS_MIN: usize = 1024;

/// See [`INFO_FIRST_OVERLAP_MAX`]. With few info ops (2.5% of the 200,000-op shapes'), both
/// orders explore as many configurations, and definite first takes fewer steps: info first
/// tries the pending info ops at every configuration, definite first only when it backtracks.
const INFO_FIRST_SHARE_MIN: usize = 16;

/// How many definite ops are pending, on average, when a definite op is invoked (itself
/// included): 1 for a sequential history, about the number of clients of the partition when
/// they keep it busy.
fn overlap<I>(ops: &[PartOp<I>]) -> f64 {
    let mut events: Vec<(u64, bool)> = Vec::with_capacity(2 * ops.len());
    for o in ops.iter().filter(|o| !o.info) {
        events.push((o.call, true));
        events.push((o.ret, false));
    }
    events.sort_unstable();
    let (mut pending, mut sum, mut calls) = (0u64, 0u64, 0u64);
    for (_, call) in events {
        if call {
            pending += 1;
            sum += pending;
            calls += 1;
        } else {
            pending -= 1;
        }
    }
    sum as f64 / calls.max(1) as f64
}

/// Checks one partition. `ops` are in invocation order.
///
/// With info ops, the order in which the candidates are tried matters a great deal, and no
/// one order wins on every history: placing definite ops first is fast when many ops overlap,
/// placing info ops first when few do (each timed-out op is placed soon after its invocation
/// instead of staying pending while the search backtracks). So the search starts with the
/// order the partition's length, [`overlap`] and share of info ops suggest, then alternates, each attempt with a bound on
/// the configurations it may explore that doubles every second attempt (the last attempt runs
/// until the budget says stop). Every attempt is a complete search, so whichever finishes
/// decides; the attempts cost at most a few times the one that finishes, and the first guess
/// only decides which order gets the head start.
pub(crate) fn search<M: Model>(
    model: &M,
    init: M::State,
    ops: &[PartOp<M::Input>],
    control: &Control,
    poll: &dyn Fn(),
) -> (Outcome<M::State>, SearchStats) {
    assert!(
        ops.len() < (u32::MAX / 2 - 2) as usize,
        "a partition holds fewer than 2^31 ops"
    );
    let restarts = ops.iter().any(|o| o.info);
    let mut total = SearchStats::default();
    let mut limit = control.restart_first_states.max(1);
    let info_ops = ops.iter().filter(|o| o.info).count();
    let first_order = ops.len() >= INFO_FIRST_OPS_MIN
        && info_ops >= ops.len() / INFO_FIRST_SHARE_MIN
        && overlap(ops) <= INFO_FIRST_OVERLAP_MAX;
    let mut info_first = first_order;
    loop {
        let restart_at = if restarts { limit } else { u64::MAX };
        let mut s = Search::new(model, init.clone(), ops, control, info_first, restart_at);
        let outcome = s.run(control, poll);
        total.configurations += s.stats.configurations;
        total.steps += s.stats.steps;
        total.cache_entries = total.cache_entries.max(s.memo.len() as u64);
        total.peak_cache_bytes = total.peak_cache_bytes.max(s.memo.peak_bytes());
        total.attempts += 1;
        match outcome {
            Outcome::Stopped(StopReason::Restart) => {
                if info_first != first_order {
                    // Both orders had this bound: the next pair gets twice as many.
                    limit = limit.saturating_mul(2);
                }
                info_first = !info_first;
            }
            outcome => return (outcome, total),
        }
    }
}

impl<'a, M: Model> Search<'a, M> {
    fn new(
        model: &'a M,
        init: M::State,
        ops: &'a [PartOp<M::Input>],
        control: &'a Control,
        info_first: bool,
        restart_at: u64,
    ) -> Self {
        let n = ops.len();
        let head_main = 2 * n;
        let head_info = 2 * n + 1;
        let mut next = vec![NIL; 2 * n + 2];
        let mut prev = vec![NIL; 2 * n + 2];
        // Main list: definite calls and returns in history order.
        let mut entries: Vec<(u64, u32)> = Vec::with_capacity(2 * n);
        for (i, op) in ops.iter().enumerate() {
            if !op.info {
                entries.push((op.call, i as u32));
                entries.push((op.ret, (n + i) as u32));
            }
        }
        entries.sort_unstable();
        let mut link = |list: &mut dyn Iterator<Item = u32>, head: usize| {
            let mut last = head as u32;
            for e in list {
                next[last as usize] = e;
                prev[e as usize] = last;
                last = e;
            }
        };
        link(&mut entries.iter().map(|&(_, e)| e), head_main);
        let mut infos: Vec<u32> = (0..n as u32).filter(|&i| ops[i as usize].info).collect();
        infos.sort_unstable_by_key(|&i| ops[i as usize].call);
        link(&mut infos.iter().copied(), head_info);

        let mut twin = vec![NIL; n];
        for (k, &i) in infos.iter().enumerate() {
            if let Some(&j) = infos[..k]
                .iter()
                .rev()
                .find(|&&j| ops[j as usize].input == ops[i as usize].input)
            {
                twin[i as usize] = j;
            }
        }
        let mut rank = vec![0u32; n];
        let (mut definite, mut indeterminate) = (0u32, 0u32);
        for (i, op) in ops.iter().enumerate() {
            let counter = if op.info {
                &mut indeterminate
            } else {
                &mut definite
            };
            rank[i] = *counter;
            *counter += 1;
        }
        let blind: Vec<bool> = ops
            .iter()
            .map(|o| o.info && model.is_blind(&o.input))
            .collect();
        // The "last op placed is info" bit follows the definite ops' bits.
        let after_info_bit = blind.contains(&true).then_some(definite as usize);
        let ok_width = (definite as usize + usize::from(after_info_bit.is_some())).div_ceil(64);
        let info_width = (indeterminate as usize).div_ceil(64);
        Search {
            model,
            ops,
            n,
            next,
            prev,
            ok_bits: vec![0; ok_width],
            info_bits: vec![0; info_width],
            rank,
            zobrist: (0..n as u64).map(|i| splitmix64(i ^ 0x5eed)).collect(),
            zob_ok: 0,
            zob_info: 0,
            state: init,
            stack: Vec::with_capacity(n),
            remaining_ok: ops.iter().filter(|o| !o.info).count(),
            read_only: ops.iter().map(|o| model.is_read_only(&o.input)).collect(),
            twin,
            blind,
            after_info_bit,
            after_info: false,
            info_first,
            restart_at,
            memo: Memo::new(ok_width, info_width, control),
            stats: SearchStats::default(),
            deepest: None,
            blocked: None,
        }
    }

    /// Places `op` (sets its bit) or takes it back (clears it). Called before the op's frame
    /// is pushed and after it is popped, so the stack's top is the op placed before it.
    #[inline]
    fn toggle(&mut self, op: usize) {
        let r = self.rank[op] as usize;
        let placed = if self.ops[op].info {
            self.info_bits[r / 64] ^= 1 << (r % 64);
            self.zob_info ^= self.zobrist[op];
            self.info_bits[r / 64] & (1 << (r % 64)) != 0
        } else {
            self.ok_bits[r / 64] ^= 1 << (r % 64);
            self.zob_ok ^= self.zobrist[op];
            self.ok_bits[r / 64] & (1 << (r % 64)) != 0
        };
        if let Some(bit) = self.after_info_bit {
            let last = if placed {
                Some(op)
            } else {
                self.stack.last().map(|f| f.op as usize)
            };
            let after_info = last.is_some_and(|i| self.ops[i].info);
            if after_info != self.after_info {
                self.after_info = after_info;
                self.ok_bits[bit / 64] ^= 1 << (bit % 64);
                self.zob_ok ^= AFTER_INFO_ZOBRIST;
            }
        }
    }

    /// Whether info op `op` is placed.
    #[inline]
    fn info_placed(&self, op: usize) -> bool {
        let r = self.rank[op] as usize;
        self.info_bits[r / 64] & (1 << (r % 64)) != 0
    }

    #[inline]
    fn unlink(&mut self, e: usize) {
        let (p, nx) = (self.prev[e], self.next[e]);
        self.next[p as usize] = nx;
        if nx != NIL {
            self.prev[nx as usize] = p;
        }
    }

    #[inline]
    fn relink(&mut self, e: usize) {
        let (p, nx) = (self.prev[e], self.next[e]);
        self.next[p as usize] = e as u32;
        if nx != NIL {
            self.prev[nx as usize] = e as u32;
        }
    }

    fn lift(&mut self, op: usize) {
        self.unlink(op);
        if !self.ops[op].info {
            self.unlink(self.n + op);
            self.remaining_ok -= 1;
        }
    }

    fn unlift(&mut self, op: usize) {
        if !self.ops[op].info {
            self.relink(self.n + op);
            self.remaining_ok += 1;
        }
        self.relink(op);
    }

    /// Memo lookup of the current bits with `state`: the new entry, or `None` when the
    /// configuration is known (seen, or dominated by one that failed).
    fn remember(&mut self, state: &M::State) -> Result<Option<u32>, StopReason> {
        let partial = self.zob_ok ^ state_hash(state);
        let hash = partial ^ self.zob_info;
        let heap = self
            .model
            .state_bytes(state)
            .saturating_sub(std::mem::size_of::<M::State>());
        match self
            .memo
            .visit((hash, partial), &self.ok_bits, &self.info_bits, state, heap)
        {
            Ok(Visit::New(entry)) => Ok(Some(entry)),
            Ok(Visit::Known) => Ok(None),
            Err(()) => Err(StopReason::MemoryCap),
        }
    }

    /// Descends into the configuration with `op` placed and `state` as the new state.
    fn push(
        &mut self,
        op: usize,
        entry: u32,
        new_state: Option<M::State>,
        bound: u64,
        alts: Vec<M::State>,
    ) {
        let prev = new_state.map(|s| std::mem::replace(&mut self.state, s));
        let greedy = prev.is_none();
        self.stack.push(Frame {
            op: op as u32,
            entry,
            prev,
            bound,
            greedy,
            alts,
        });
        self.lift(op);
        self.stats.configurations += 1;
        let depth = self.stack.len();
        for e in [&mut self.deepest, &mut self.blocked].into_iter().flatten() {
            e.another_order(depth, &self.ok_bits, &self.info_bits, &self.state);
        }
    }

    /// Called when the current configuration is about to be abandoned (it failed): keep it as
    /// evidence when it is the deepest so far, or the deepest whose window-closing op is
    /// impossible.
    fn note_abandoned(&mut self) {
        let depth = self.stack.len();
        let deeper = self.deepest.as_ref().is_none_or(|e| depth > e.depth);
        let deeper_blocked = self.blocked.as_ref().is_none_or(|e| depth > e.depth);
        if !deeper && !deeper_blocked {
            return;
        }
        let mut e = self.next[2 * self.n];
        while e != NIL && (e as usize) < self.n {
            e = self.next[e as usize];
        }
        let unplaceable = if e == NIL {
            usize::MAX
        } else {
            e as usize - self.n
        };
        let record = || Evidence {
            depth,
            prefix: self.stack.iter().map(|f| f.op as usize).collect(),
            bits: (self.ok_bits.clone(), self.info_bits.clone()),
            states: vec![self.state.clone()],
            unplaceable,
        };
        let blocked = deeper_blocked
            && unplaceable != usize::MAX
            && !possible(self.model, &self.state, &self.ops[unplaceable].input);
        let evidence = (deeper || blocked).then(record);
        if blocked {
            self.blocked.clone_from(&evidence);
        }
        if deeper {
            self.deepest = evidence;
        }
    }

    /// The `Model` contract: an op the model calls read-only leaves the state as it was (the
    /// search places such ops greedily and keeps no undo state for them). A model that breaks
    /// it would make the search unsound, so debug builds check every step of one.
    #[inline]
    fn assert_read_only(&self, op: usize, next: &M::State) {
        if cfg!(debug_assertions) && self.read_only[op] {
            assert!(
                *next == self.state,
                "the {} model broke its contract: {} is read-only (is_read_only) but changed {} into {}",
                self.model.name(),
                self.model.describe_op(&self.ops[op].input),
                self.model.describe_state(&self.state),
                self.model.describe_state(next),
            );
        }
    }

    /// Tries `op` in the current configuration; true when the search descended.
    fn try_op(&mut self, op: usize, bound: u64) -> Result<bool, StopReason> {
        let ops = self.ops;
        let o = &ops[op];
        self.stats.steps += 1;
        if let Some(mut alts) = self.model.branches(&self.state, &o.input) {
            for alt in &alts {
                self.assert_read_only(op, alt);
            }
            if o.info {
                let current = &self.state;
                alts.retain(|s| s != current);
            }
            self.toggle(op);
            while let Some(s) = alts.pop() {
                if let Some(entry) = self.remember(&s)? {
                    self.push(op, entry, Some(s), bound, alts);
                    return Ok(true);
                }
            }
            self.toggle(op);
            return Ok(false);
        }
        let Some(s) = self.model.step(&self.state, &o.input) else {
            return Ok(false);
        };
        self.assert_read_only(op, &s);
        if o.info && s == self.state {
            // An optional op that changes nothing is never needed.
            return Ok(false);
        }
        self.toggle(op);
        if let Some(entry) = self.remember(&s)? {
            self.push(op, entry, Some(s), bound, Vec::new());
            Ok(true)
        } else {
            self.toggle(op);
            Ok(false)
        }
    }

    fn run(&mut self, control: &Control, poll: &dyn Fn()) -> Outcome<M::State> {
        match self.run_inner(control, poll) {
            Ok(true) => Outcome::Valid,
            Ok(false) => {
                let e = self
                    .blocked
                    .take()
                    .or_else(|| self.deepest.take())
                    .expect("a failed search abandoned the initial configuration at least");
                Outcome::Invalid(Failure {
                    prefix: e.prefix,
                    states: e.states,
                    unplaceable: e.unplaceable,
                })
            }
            Err(reason) => Outcome::Stopped(reason),
        }
    }

    /// `Ok(true)`: linearizable; `Ok(false)`: not; `Err`: stopped.
    fn run_inner(&mut self, control: &Control, poll: &dyn Fn()) -> Result<bool, StopReason> {
        let n = self.n;
        let head_main = 2 * n;
        let head_info = 2 * n + 1;
        let mut at = At::Fresh;
        let mut bound = 0u64;
        let mut iterations = 0u64;
        loop {
            iterations += 1;
            if iterations.is_multiple_of(POLL_EVERY) {
                if control.should_stop() {
                    return Err(control.reason().unwrap_or(StopReason::Cancelled));
                }

                poll();
            }
            match at {
                At::Fresh => {
                    if self.remaining_ok == 0 {
                        return Ok(true);
                    }
                    if self.stats.configurations >= self.restart_at {
                        return Err(StopReason::Restart);
                    }
                    // Place a possible read-only op at once; find the window's end meanwhile.
                    let mut e = self.next[head_main];
                    let mut greedy = None;
                    while (e as usize) < n {
                        let i = e as usize;
                        if self.read_only[i] {
                            self.stats.steps += 1;
                            if let Some(next) = self.model.step(&self.state, &self.ops[i].input) {
                                self.assert_read_only(i, &next);
                                greedy = Some(i);
                                break;
                            }
                        }
                        e = self.next[i];
                    }
                    if let Some(i) = greedy {
                        self.toggle(i);
                        let state = self.state.clone();
                        if let Some(entry) = self.remember(&state)? {
                            self.push(i, entry, None, bound, Vec::new());
                        } else {
                            // Explored before, and it failed: so does this configuration.
                            self.toggle(i);
                            at = At::Backtrack;
                        }
                        continue;
                    }
                    debug_assert!(e != NIL, "a definite op is pending, so is its return");
                    bound = self.ops[e as usize - n].ret;
                    at = if self.info_first {
                        At::Info(self.next[head_info], true)
                    } else {
                        At::Main(self.next[head_main])
                    };
                }
                At::Main(e) => {
                    if (e as usize) < n {
                        let i = e as usize;
                        if !self.read_only[i] && self.try_op(i, bound)? {
                            at = At::Fresh;
                        } else {
                            at = At::Main(self.next[i]);
                        }
                    } else {
                        at = if self.info_first {
                            At::Backtrack
                        } else {
                            At::Info(self.next[head_info], false)
                        };
                    }
                }
                At::Info(e, first) => {
                    if e != NIL && self.ops[e as usize].call < bound {
                        let i = e as usize;
                        let twin = self.twin[i];
                        let allowed = (twin == NIL || self.info_placed(twin as usize))
                            && !(self.after_info && self.blind[i]);
                        if allowed && self.try_op(i, bound)? {
                            at = At::Fresh;
                        } else {
                            at = At::Info(self.next[i], first);
                        }
                    } else if first {
                        at = At::Main(self.next[head_main]);
                    } else {
                        at = At::Backtrack;
                    }
                }
                At::Backtrack => {
                    self.note_abandoned();
                    loop {
                        let Some(mut frame) = self.stack.pop() else {
                            return Ok(false);
                        };
                        let op = frame.op as usize;
                        self.memo
                            .fail(frame.entry)
                            .map_err(|()| StopReason::MemoryCap)?;
                        if let Some(p) = frame.prev.take() {
                            self.state = p;
                        }
                        if !frame.alts.is_empty() {
                            // The op stays placed; try the other states it may lead to. The
                            // op is lifted and its bit set, as when it was first placed.
                            self.unlift(op);
                            let mut alts = std::mem::take(&mut frame.alts);
                            let mut descended = false;
                            while let Some(s) = alts.pop() {
                                if let Some(entry) = self.remember(&s)? {
                                    self.push(op, entry, Some(s), frame.bound, alts);
                                    descended = true;
                                    break;
                                }
                            }
                            if descended {
                                at = At::Fresh;
                                break;
                            }
                            self.toggle(op);
                            bound = frame.bound;
                            at = if self.ops[op].info {
                                At::Info(self.next[op], self.info_first)
                            } else {
                                At::Main(self.next[op])
                            };
                            break;
                        }
                        self.toggle(op);
                        self.unlift(op);
                        if frame.greedy {
                            continue;
                        }
                        bound = frame.bound;
                        at = if self.ops[op].info {
                            At::Info(self.next[op], self.info_first)
                        } else {
                            At::Main(self.next[op])
                        };
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(call: u64, ret: u64) -> PartOp<()> {
        let info = ret == u64::MAX;
        PartOp {
            input: (),
            call,
            ret,
            info,
            src: 0,
        }
    }

    #[test]
    fn overlap_counts_the_definite_ops_pending_at_each_invocation() {
        // One after the other: each is alone.
        assert_eq!(overlap(&[op(0, 1), op(2, 3), op(4, 5)]), 1.0);
        // The second is invoked while the first is pending, the third while both are; the
        // info op, pending forever, does not count.
        let ops = [op(0, 10), op(1, 11), op(2, 12), op(3, u64::MAX)];
        assert_eq!(overlap(&ops), 2.0);
        assert_eq!(overlap::<()>(&[]), 0.0);
    }
}
