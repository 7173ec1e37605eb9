//! Workloads: what clients do to a system under test.
//!
//! This crate will hold the generator combinators (mix, rate, phases, time limits, final reads),
//! the `Client` trait that every system's client implements, the worker that runs one logical
//! process and retires its id after an indeterminate (`info`) completion, and the clients for each
//! supported system. Generators are driven by the run's single seeded RNG so that a seed replays
//! the same schedule of operations. Workloads emit exactly the operation vocabulary documented in
//! `docs/history.md`, so that the checkers crate can judge them without knowing the system.
