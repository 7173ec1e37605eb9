//! Linearizability: could every operation have taken effect atomically at one instant between
//! its invocation and its completion, in an order a sequential model accepts?
//!
//! # The search
//!
//! The checker is the Wing–Gong search with Lowe's memoisation, as Porcupine does it: the calls
//! and returns of a partition sit in a doubly linked list in history order; the search linearizes
//! one pending call at a time (any call that comes before the first remaining return), lifts it
//! and its return out of the list, and backtracks when it meets a return whose call it could not
//! place. A memo table of every (set of linearized ops, model state) already explored cuts the
//! exponential search down to the number of distinct configurations.
//!
//! What this implementation adds, and why each step is sound:
//! - **P-compositionality.** Linearizability is local: a history is linearizable iff each
//!   independent part is ([`Model::partition`], by key for the built-in models). Partitions are
//!   checked largest first; the calling thread starts alone and, once it has worked for a
//!   millisecond with partitions still waiting, brings in one helper thread per core (small
//!   histories never pay for threads). The first invalid partition stops the others.
//! - **Indeterminate ops never return.** An `info` op (a timeout) may take effect at any point
//!   after its invocation or never: it gets no return entry, and the search succeeds as soon as
//!   every definite op is placed. Pending info ops are tried after the pending definite ones,
//!   so the search reaches for an optional op only where a definite one cannot go on. Failed
//!   ops did not happen and are dropped (a model may keep them as observations, see
//!   [`Model::decode_failed`]).
//! - **Read-only ops are placed greedily.** An op that never changes the state
//!   ([`Model::is_read_only`]) and is possible now can be moved to the front of any solution, so
//!   the search places it without branching.
//! - **Interchangeable info ops are tried once.** Two info ops with equal inputs can swap places
//!   in any solution, so the later-invoked one is only tried once the earlier one is placed; an
//!   info op that would not change the state is never placed.
//! - **Dominance.** A configuration with the same definite ops and state as one that failed,
//!   and a superset of its info ops, fails too (the extra info ops were optional). The memo
//!   keeps, per (definite ops, state), the minimal failed sets of info ops in one list and
//!   skips any configuration they dominate (a lookup compares the definite ops and state
//!   once, then only info bits). This is what keeps histories with many timeouts tractable.
//! - **Unread values are one value** ([`Model::simplify_partition`]). In a partition with
//!   info ops, the registers merge every value that no op reads or compares into one: no op
//!   can tell them apart, so every order is accepted or refused alike, and the timed-out
//!   writes of such values become equal inputs, tried once (histories that write fresh
//!   values, as most real ones do, have hundreds of them). Evidence replays its prefix on the
//!   history's own values.
//! - **No blind info op right after an info op** ([`Model::is_blind`]). A write placed right
//!   after an optional op makes that op pointless: dropping it leaves a linearization just as
//!   valid. So the search never places a blind info op right after an info op (whether the last
//!   op placed was an info op is part of the configuration, so the memo stays exact). This
//!   stops the search from wandering through chains of timed-out writes.
//! - **Two orders, with restarts.** Trying definite ops first is fast when many ops overlap
//!   (many clients per key); trying info ops first, when few do: each timed-out op is placed
//!   soon after its invocation, where definite first leaves every unplaced one pending and
//!   backtracks through them all. No one order wins everywhere, so a partition with info ops
//!   alternates complete searches in both orders, each bounded by a number of configurations
//!   that doubles after every pair of attempts (the last one runs to the budget). The first
//!   attempt takes the order the partition suggests: info first when it has at least 1,024
//!   ops, at least one in 16 of them an info op, and at most 8 definite ops pending, on
//!   average, at a definite op's invocation (shorter partitions are quick either way, and
//!   when invalid, definite first rules out every order sooner). Whichever attempt finishes
//!   decides; each is a complete search, so the verdict is exact whatever the guess.
//! - **Fast memo.** Sets of placed ops are bitsets whose hash is kept incrementally (Zobrist:
//!   one random word per op, XORed in and out), model states are small (interned values)
//!   hashed with FxHash, and the tables hold `u32` indices into flat arenas.
//!
//! # Budget
//!
//! The search looks at its [`Budget`] every few thousand steps: past the time
//! limit every search stops. Memory is counted before it is allocated: every growth of a memo
//! table is priced and reserved against the cap, shared by the partitions running at once; a
//! partition whose table would pass the cap stops (the others go on once its memory is back).
//! Either way the verdict is `unknown` with the reason, unless another partition is invalid.
//!
//! # Evidence
//!
//! For an invalid partition the result carries the longest linearizable prefix the search found,
//! the op that cannot be placed after it (the op whose completion closes the window: it must
//! take effect before anything invoked after that completion, and no order of the pending ops
//! lets it), and the model states the prefix can leave (one per order of its ops that the search
//! met), as data and as a sentence. The sentence says whether the op is impossible in those
//! states, which is the usual case, or possible but leading nowhere.
//!
//! # Your own model
//!
//! A model is a small trait: decode an op, the initial state, one sequential step, and how to
//! describe ops and states to a person. A counter that only goes up, as an example:
//!
//! ```
//! use checkers::linear::{check_model, Model};
//! use checkers::{formats, Budget, Op, Verdict};
//!
//! /// A counter: `add` N, `read` returns the total.
//! struct Counter;
//!
//! #[derive(Clone, PartialEq)]
//! enum CounterOp { Add(i64), Read(i64) }
//!
//! impl Model for Counter {
//!     type State = i64;
//!     type Input = CounterOp;
//!     fn name(&self) -> &str { "counter" }
//!     fn decode(&mut self, op: &Op) -> Result<Option<CounterOp>, String> {
//!         let n = || op.value().as_i64().ok_or("expected an integer value");
//!         match op.f.as_str() {
//!             "add" => Ok(Some(CounterOp::Add(n()?))),
//!             "read" if op.is_info() => Ok(None), // an unanswered read tells nothing
//!             "read" => Ok(Some(CounterOp::Read(n()?))),
//!             other => Err(format!("unknown f {other:?}; expected add or read")),
//!         }
//!     }
//!     fn init(&self, _partition: Option<&str>) -> i64 { 0 }
//!     fn step(&self, total: &i64, op: &CounterOp) -> Option<i64> {
//!         match op {
//!             CounterOp::Add(n) => Some(total + n),
//!             CounterOp::Read(n) => (n == total).then_some(*total),
//!         }
//!     }
//!     fn is_read_only(&self, op: &CounterOp) -> bool { matches!(op, CounterOp::Read(_)) }
//!     fn describe_op(&self, op: &CounterOp) -> String {
//!         match op {
//!             CounterOp::Add(n) => format!("add {n}"),
//!             CounterOp::Read(n) => format!("read {n}"),
//!         }
//!     }
//!     fn describe_state(&self, total: &i64) -> String { format!("the counter is {total}") }
//! }
//!
//! // Process 1 reads 2 although only 1 was ever added.
//! let history = formats::read_str(
//!     r#"{"index":0,"time":10,"process":0,"type":"invoke","f":"add","value":1}
//! {"index":1,"time":20,"process":0,"type":"ok","f":"add","value":1}
//! {"index":2,"time":30,"process":1,"type":"invoke","f":"read","value":null}
//! {"index":3,"time":40,"process":1,"type":"ok","f":"read","value":2}
//! "#,
//!     None,
//! ).unwrap();
//! let result = check_model(Counter, &history, &Budget::default()).unwrap();
//! assert_eq!(result.verdict, Verdict::Invalid);
//! assert!(result.anomalies[0].explanation.contains("read 2"));
//! ```

pub mod cause;
mod memo;
pub mod models;
mod run;
mod search;
pub mod synth;

use crate::{Budget, CheckResult, Checker, History, HistoryError, Op};
use std::hash::Hash;

pub use models::{BuiltinModel, Compat, MODEL_NAMES};
pub use run::{check_model, check_model_threads, check_model_tuned};

/// Every kind the linearizability checker reports (docs/history.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A key (partition) no order of its operations that respects real time explains.
    Nonlinearizable,
}

impl crate::stream::AnomalyKind for Kind {
    type Rule = ();

    const ALL: &'static [Kind] = &[Kind::Nonlinearizable];

    fn name(self) -> &'static str {
        match self {
            Kind::Nonlinearizable => "nonlinearizable",
        }
    }

    fn meaning(self) -> &'static str {
        match self {
            Kind::Nonlinearizable => "no order of the key's operations that respects real time explains what the clients saw",
        }
    }

    fn counts(self, _: ()) -> bool {
        match self {
            Kind::Nonlinearizable => true,
        }
    }
}

/// A sequential specification the history is checked against.
///
/// The checker calls [`decode`](Model::decode) once per operation (single-threaded, so a model
/// may intern values there), then [`init`](Model::init) per partition and
/// [`step`](Model::step) many times from several threads.
pub trait Model: Send + Sync {
    /// The state of one partition. Keep it small: the memo table stores one per configuration.
    type State: Clone + Eq + Hash + Send + Sync;
    /// An operation as the model understands it: what was asked and what was observed.
    /// Equal inputs must behave the same in every state (the search treats two unanswered ops
    /// with equal inputs as interchangeable).
    type Input: Clone + PartialEq + Send + Sync;

    /// The model's name, for results and messages.
    fn name(&self) -> &str;

    /// Decodes an `ok` or `info` op (`info` includes invocations never completed). `Ok(None)`
    /// drops an op that constrains nothing, such as a read that got no answer; `Err` says why
    /// the model cannot understand it (the verdict becomes `unknown`).
    fn decode(&mut self, op: &Op) -> Result<Option<Self::Input>, String>;

    /// Decodes a `fail` op. Failed ops did not happen, so the default drops them; a model whose
    /// failures are observations (a compare-and-set that saw another value) returns an input
    /// that does not change the state.
    fn decode_failed(&mut self, op: &Op) -> Result<Option<Self::Input>, String> {
        let _ = op;
        Ok(None)
    }

    /// The independent part of the model an op touches; ops of different partitions never
    /// constrain each other. The default partitions by the op's key.
    fn partition(&self, op: &Op) -> Option<String> {
        op.key.clone()
    }

    /// The state a partition starts in.
    fn init(&self, partition: Option<&str>) -> Self::State;

    /// Applies `input` to `state`: the next state, or `None` when the op is impossible there
    /// (a read that returned another value).
    fn step(&self, state: &Self::State, input: &Self::Input) -> Option<Self::State>;

    /// For an input whose effect the history does not determine (an unanswered dequeue from an
    /// unordered queue may have removed any element), every state it may lead to. `None`, the
    /// default, means [`step`](Model::step) decides.
    fn branches(&self, state: &Self::State, input: &Self::Input) -> Option<Vec<Self::State>> {
        let _ = (state, input);
        None
    }

    /// True when `input` never changes a state (a read): `step` returns either `None` or the
    /// same state. The search places such ops greedily. Saying `false` is always safe.
    fn is_read_only(&self, input: &Self::Input) -> bool {
        let _ = input;
        false
    }

    /// True when `input` is possible in every state and leads to one same state from all of
    /// them (a plain write). The search then never places an unanswered blind op right after
    /// another unanswered op: the earlier one would be overwritten at once, and a
    /// linearization without it is just as valid. Saying `false` is always safe.
    fn is_blind(&self, input: &Self::Input) -> bool {
        let _ = input;
        false
    }

    /// An op as a person reads it, e.g. `read 4`, `cas [1 2]`.
    fn describe_op(&self, input: &Self::Input) -> String;

    /// A state as a person reads it, e.g. `the register holds 3`.
    fn describe_state(&self, state: &Self::State) -> String;

    /// How an op reads as a register op, for naming a likely cause when a partition is not
    /// linearizable (see [`cause`]): states are values, the initial state the initial value.
    /// `None`, the default, means the model is not a register (or this op is not a register
    /// op), and no cause is named for its partition.
    fn register_view(&self, input: &Self::Input) -> Option<cause::RegisterView<Self::State>> {
        let _ = input;
        None
    }

    /// Approximate bytes one state occupies, counted against the memory cap. The default is
    /// its inline size; add heap bytes for states that own allocations.
    fn state_bytes(&self, state: &Self::State) -> usize {
        let _ = state;
        std::mem::size_of::<Self::State>()
    }

    /// Rewrites one partition's inputs and initial state into an equivalent problem that is
    /// cheaper to search, or leaves them alone (the default). Equivalent means: for every
    /// sequence of the partition's ops, the model accepts the rewritten inputs from the
    /// rewritten initial state exactly when it accepts the originals from the original one.
    /// The search runs on the rewrite, so its verdict is the same; evidence names the original
    /// ops, and [`describe_state`](Model::describe_state) must also describe rewritten states.
    ///
    /// The registers merge every value that no op of the partition reads or compares into one
    /// "unobserved" value: no op can tell those values apart, and writes of them become equal
    /// inputs, which the search tries once.
    fn simplify_partition(&self, init: &mut Self::State, inputs: &mut [Self::Input]) {
        let _ = (init, inputs);
    }
}

/// The `linearizable` checker with a built-in model chosen by name (or guessed from the ops).
#[derive(Debug, Clone)]
pub struct Linearizable {
    model: Option<String>,
    initial: Option<serde_json::Value>,
    compat: Compat,
}

impl Linearizable {
    /// Validates the model name and the initial value now, so that a bad option is reported
    /// before any history is read. `model: None` picks the model from the ops' `f`s.
    pub fn new(model: Option<&str>, initial: Option<serde_json::Value>) -> Result<Self, String> {
        if let Some(name) = model {
            BuiltinModel::build(name, initial.as_ref())?;
        } else if initial.is_some() {
            return Err(
                "--initial needs --model (the initial value's meaning depends on the model)"
                    .to_string(),
            );
        }
        Ok(Linearizable {
            model: model.map(str::to_string),
            initial,
            compat: Compat::default(),
        })
    }

    /// Reads ops with `compat`'s conventions (e.g. Knossos's for Jepsen EDN histories).
    pub fn with_compat(mut self, compat: Compat) -> Self {
        self.compat = compat;
        self
    }
}

impl Checker for Linearizable {
    fn name(&self) -> &str {
        "linearizable"
    }

    fn check(&self, history: &History, budget: &Budget) -> Result<CheckResult, HistoryError> {
        let model = match &self.model {
            Some(name) => BuiltinModel::build(name, self.initial.as_ref()),
            None => BuiltinModel::detect(history),
        };
        match model {
            Ok(model) => model.with_compat(self.compat).check(history, budget),
            Err(reason) => Ok(CheckResult::unknown("linearizable", reason)),
        }
    }
}

/// A [`Checker`] for a user's own [`Model`]; the model is cloned for every history.
#[derive(Debug, Clone)]
pub struct ModelChecker<M>(pub M);

impl<M: Model + Clone> Checker for ModelChecker<M> {
    fn name(&self) -> &str {
        "linearizable"
    }

    fn check(&self, history: &History, budget: &Budget) -> Result<CheckResult, HistoryError> {
        check_model(self.0.clone(), history, budget)
    }
}
