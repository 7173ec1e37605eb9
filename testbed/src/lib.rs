//! faultline's calibrated testbed: a small multi-node server whose bugs are switches.
//!
//! faultline must prove that it finds what its users fear (docs/scenarios.md). Real systems have
//! bugs we cannot turn on and off, so this crate is a target whose bugs we control: with no
//! `--bug` it is correct, and each `--bug NAME` re-introduces exactly one scenario's mistake
//! ([`config::BUGS`] maps each to its scenario id and the checker that must flag it). A
//! calibration runs every scenario with its bug on (must be flagged) and off (must pass).
//!
//! What a node offers (HTTP + JSON, see [`http`] for the conventions):
//! - [`kv`]: a register replicated primary-backup with epochs, majority writes, quorum reads;
//! - [`queue`]: a partitioned queue with consumer groups, leases, acks, retries, dead letters
//!   and committed offsets;
//! - [`outbox`]: an outbox whose dispatcher publishes to the queue;
//! - [`services`]: idempotent requests, group members, unique creates, versioned append
//!   streams, task leases with fencing tokens.
//!
//! Durability is a per-node write-ahead log ([`store`]) so that kill -9 and restart lose only
//! what the bugs fail to persist. [`cluster`] runs nodes in-process for tests, with simulated
//! crashes and partitions.

pub mod cli;
pub mod cluster;
pub mod config;
pub mod http;
pub mod kv;
pub mod net;
pub mod node;
pub mod outbox;
pub mod queue;
pub mod services;
pub mod store;

pub use cluster::{Cluster, ClusterSpec};
pub use config::{Bug, NodeConfig, Settings, BUGS};
pub use node::{start, start_on, NodeHandle};
