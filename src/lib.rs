//! The faultline controller: everything the binary does, as a library the binary wires together.
//!
//! The binary (`src/main.rs`, `src/cmd/`) only parses flags and maps results to exit codes; the
//! controller's work (cluster lifecycle, runs, the store layout) lives in the modules below so
//! that integration tests can drive it directly.
//!
//! A Rust program may use it the same way, with its own client: [`run::execute_with_client`]
//! takes a [`workloads::ClientFactory`] (see examples/pykv_rust_client.rs). The crates a client
//! needs are re-exported, so that such a program depends on faultline alone.

pub mod calibrate;
pub mod cluster;
pub mod convergence;
pub mod images;
pub mod init;
pub mod merge;
pub mod nemesis;
pub mod plan;
pub mod run;
pub mod shard;
pub mod store;
pub mod test_all;
pub mod units;

pub use async_trait::async_trait;
pub use checkers;
pub use workloads;
