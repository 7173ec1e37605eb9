//! faultline's history model, history formats and checkers.
//!
//! A checker is a pure function of a history: a history in, a [`CheckResult`] out. Nothing in
//! this crate touches Docker, the network or the clock of the system under test, so it is usable
//! on its own inside any Rust test suite, on histories recorded by faultline or imported from
//! Jepsen and Porcupine.
//!
//! The pieces:
//! - [`history`]: events, operations (an invocation paired with its completion), fault windows.
//! - [`formats`]: readers for faultline JSONL, Jepsen EDN and Jepsen log lines; a JSONL writer.
//! - [`Checker`]: the role every checker plays; [`registry`] builds one from a name and options.
//! - [`kind_meaning`]: what an anomaly kind of a named checker means, from its kind enum.

pub mod bank;
pub mod convergence;
pub mod counter;
pub mod delivery;
pub mod formats;
pub mod history;
pub mod idempotency;
pub mod linear;
pub mod registry;
pub mod set;
pub mod stats;
pub mod stream;
pub mod txn;
pub mod unique;
pub mod verdict;
pub mod versioned_append;

pub use history::{Event, EventType, FaultWindow, History, HistoryError, Op, Pairer, Process};
pub use registry::{by_name, CheckOptions, CHECKER_NAMES};
pub use verdict::{Anomaly, Budget, CheckResult, OpTally, Verdict, NOTHING_CHECKED};

/// The role of a checker: judge a whole history within a budget.
///
/// Implementations must never guess: when the budget runs out or the history holds operations
/// the checker does not understand, the answer is [`Verdict::Unknown`] with the reason.
pub trait Checker: Send + Sync {
    /// The name used on the command line and in results, e.g. `linearizable`.
    fn name(&self) -> &str;
    /// Checks `history`. A malformed history (unpaired completion, ...) is an `Err`.
    fn check(&self, history: &History, budget: &Budget) -> Result<CheckResult, HistoryError>;
}

/// Runs a checker and stamps the wall time it took into the result.
pub fn run_checker(
    checker: &dyn Checker,
    history: &History,
    budget: &Budget,
) -> Result<CheckResult, HistoryError> {
    let started = std::time::Instant::now();
    let mut result = checker.check(history, budget)?;
    result.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    Ok(result)
}

/// What an anomaly of `kind` in a result of `checker` means, in one short sentence: the
/// [`meaning`](stream::AnomalyKind::meaning) of the variant of that checker's kind enum named
/// `kind`. `checker` is the name results carry ([`CheckResult::checker`]): one of
/// [`CHECKER_NAMES`] or [`convergence::CHECKER`]. The checker matters: `lost` means one thing
/// to `delivery` and another to `set`. `None` for a checker without kinds (`stats`), a name no
/// checker has, or a kind the checker does not report.
pub fn kind_meaning(checker: &str, kind: &str) -> Option<&'static str> {
    use stream::AnomalyKind;
    fn find<K: AnomalyKind>(kind: &str) -> Option<&'static str> {
        K::ALL
            .iter()
            .find(|k| k.name() == kind)
            .map(|k| k.meaning())
    }
    match checker {
        "delivery" => find::<delivery::Kind>(kind),
        "set" => find::<set::Kind>(kind),
        "unique" => find::<unique::Kind>(kind),
        "idempotency" => find::<idempotency::Kind>(kind),
        "versioned-append" => find::<versioned_append::Kind>(kind),
        "counter" => find::<counter::Kind>(kind),
        "bank" => find::<bank::Kind>(kind),
        "list-append" | "rw-register" => find::<txn::Kind>(kind),
        "linearizable" => find::<linear::Kind>(kind),
        convergence::CHECKER => find::<convergence::Kind>(kind),
        _ => None,
    }
}
