//! Nemeses: faults and their schedules.
//!
//! This crate will hold the Toxiproxy-compatible TCP proxy (server and async client), network
//! partitions expressed as a grudge (proxy links and iptables rules), process faults (kill,
//! pause, restart), clock faults through a clock shim (LD_PRELOAD) or a patched vDSO (ptrace, any process), and the seeded schedule that
//! starts and stops them. Every fault package carries its own heal step, and the schedule always
//! ends with a final heal, also on Ctrl-C and on panic.

pub mod clock;
pub mod control;
pub mod driver;
pub mod grudge;
pub mod partition;
pub mod process;
pub mod proxy;
pub mod record;
pub mod rng;
pub mod schedule;
pub mod toxiproxy;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub mod vdso_clock;
