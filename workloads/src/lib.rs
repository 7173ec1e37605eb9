//! Workloads: what clients do to a system under test, and the machinery that does it.
//!
//! The pieces, in the order data flows:
//! - [`generator`]: Jepsen-style combinators (mix, rate / stagger, phases, time limit, each
//!   thread, until ok, ...) that decide which operation runs on which worker thread and when,
//!   all drawing from the run's one seeded RNG.
//! - [`schedule`]: the I/O-free scheduler that asks the generator and applies Jepsen's process
//!   rule (a process that got `info` never invokes again); [`schedule::simulate`] runs it on a
//!   virtual clock.
//! - [`client`]: the [`Client`] role every system's client plays, and [`ClientFactory`].
//! - [`runner`]: one worker task per thread, the per-operation timeout that yields `info`,
//!   phases (main, then final after the controller heals), cancellation.
//! - [`recorder`]: the one writer that numbers, stamps and streams every event to
//!   `history.jsonl`, and keeps live counters for a progress bar.
//! - [`builtin`]: the one registry of the systems faultline ships ([`Builtin`]) and their
//!   clusters ([`BuiltinCluster`]).
//! - [`clients`] and [`workload`]: systems (etcd, in-memory references) and workloads naming the
//!   guarantee they test and the checkers that judge them.
//!
//! Workloads emit exactly the operation vocabulary documented in `docs/history.md`, so the
//! checkers crate judges them without knowing the system.

pub mod builtin;
pub mod client;
pub mod clients;
pub mod generator;
pub mod op;
pub mod recorder;
pub mod runner;
pub mod schedule;
pub mod stall;
pub mod txn;
pub mod workload;

pub use builtin::{Builtin, BuiltinCluster};
pub use client::{Client, ClientFactory};
pub use generator::{Gen, Generator};
pub use op::{Completion, Invocation};
pub use recorder::{LiveStats, Recorder};
pub use runner::{PhaseEnd, PhaseLimits, PhaseSummary, Runner, RunnerConfig};
pub use workload::{build, build_builtin, Workload, WorkloadOptions};
