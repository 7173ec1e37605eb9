//! The faultline controller: everything the binary does, as a library the binary wires together.
//!
//! The binary (`src/main.rs`, `src/cmd/`) only parses flags and maps results to exit codes; the
//! controller's work (cluster lifecycle, runs, the store layout) lives in the modules below so
//! that integration tests can drive it directly.

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
