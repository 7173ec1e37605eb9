//! Client-side stalls: a consumer that holds a message past its lease, then completes it
//! (SCENARIOS.md B1, "double delivery on consumer timeout").
//!
//! The fault lives in the client, not the cluster, so it is a hook the workload calls between
//! receiving a message and acknowledging it:
//!
//! ```ignore
//! let msg = consumer.receive().await?;
//! stall.hold(process, op_seq).await;   // may sleep past the broker's ack-wait / lease
//! consumer.ack(&msg).await?;           // the ack the checker will see as a double commit
//! ```
//!
//! Whether a given operation stalls is a pure function of (seed, process, op sequence number),
//! not of timing or of how workers interleave, so a rerun with the same seed stalls the same
//! operations. Each stall is recorded as a `start-stall` / `stop-stall` pair naming the process,
//! so a report shades the window and a double delivery can be traced to it. A hook with
//! probability 0 never stalls and records nothing.

use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

use crate::record::{NemesisEvent, Recorder};
use crate::rng::SplitMix64;

/// Decides and performs client-side stalls. Cheap to clone (share one per run).
#[derive(Clone)]
pub struct StallHook {
    seed: u64,
    probability: f64,
    duration: Duration,
    recorder: Option<Arc<dyn Recorder>>,
}

impl std::fmt::Debug for StallHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StallHook")
            .field("seed", &self.seed)
            .field("probability", &self.probability)
            .field("duration", &self.duration)
            .finish()
    }
}

impl StallHook {
    /// Stalls a fraction `probability` (0..=1) of operations for `duration` each. The duration
    /// should exceed the system's lease / ack-wait (NATS `ack_wait`, a RabbitMQ consumer timeout)
    /// for the scenario to bite.
    pub fn new(seed: u64, probability: f64, duration: Duration) -> StallHook {
        assert!(
            (0.0..=1.0).contains(&probability),
            "stall probability {probability} is not in [0, 1]"
        );
        StallHook {
            seed,
            probability,
            duration,
            recorder: None,
        }
    }

    /// A hook that never stalls.
    pub fn disabled() -> StallHook {
        StallHook::new(0, 0.0, Duration::ZERO)
    }

    /// Records each stall as `start-stall` / `stop-stall`.
    pub fn with_recorder(mut self, recorder: Arc<dyn Recorder>) -> StallHook {
        self.recorder = Some(recorder);
        self
    }

    /// How long operation `op_seq` of `process` stalls, if at all (pure).
    pub fn decide(&self, process: u64, op_seq: u64) -> Option<Duration> {
        if self.probability <= 0.0 || self.duration.is_zero() {
            return None;
        }
        let mut g = SplitMix64::derive(self.seed ^ process.rotate_left(32) ^ op_seq, "stall");
        g.chance(self.probability).then_some(self.duration)
    }

    /// Sleeps if this operation stalls; returns how long it stalled.
    pub async fn hold(&self, process: u64, op_seq: u64) -> Option<Duration> {
        let d = self.decide(process, op_seq)?;
        let value = json!({"process": process, "op": op_seq, "duration_ms": d.as_millis() as u64});
        if let Some(r) = &self.recorder {
            r.record(NemesisEvent::new("start-stall", value.clone()));
        }
        tokio::time::sleep(d).await;
        if let Some(r) = &self.recorder {
            r.record(NemesisEvent::new("stop-stall", value));
        }
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::MemoryRecorder;

    #[test]
    fn decisions_depend_only_on_seed_process_and_op() {
        let h = StallHook::new(11, 0.3, Duration::from_secs(5));
        let a: Vec<bool> = (0..200).map(|op| h.decide(2, op).is_some()).collect();
        let b: Vec<bool> = (0..200).map(|op| h.decide(2, op).is_some()).collect();
        assert_eq!(a, b);
        let other_process: Vec<bool> = (0..200).map(|op| h.decide(3, op).is_some()).collect();
        assert_ne!(a, other_process);
        let stalled = a.iter().filter(|x| **x).count();
        assert!(
            (30..=90).contains(&stalled),
            "about 30% of 200, got {stalled}"
        );
    }

    #[test]
    fn zero_probability_never_stalls_and_one_always_does() {
        let never = StallHook::new(1, 0.0, Duration::from_secs(1));
        assert!((0..100).all(|op| never.decide(0, op).is_none()));
        assert!((0..100).all(|op| StallHook::disabled().decide(0, op).is_none()));
        let always = StallHook::new(1, 1.0, Duration::from_millis(7));
        assert!((0..100).all(|op| always.decide(0, op) == Some(Duration::from_millis(7))));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stall_sleeps_and_is_recorded_as_a_window() {
        let rec = Arc::new(MemoryRecorder::new());
        let h = StallHook::new(1, 1.0, Duration::from_secs(30)).with_recorder(rec.clone());
        let t0 = tokio::time::Instant::now();
        assert_eq!(h.hold(4, 9).await, Some(Duration::from_secs(30)));
        assert!(t0.elapsed() >= Duration::from_secs(30));
        assert_eq!(rec.fs(), vec!["start-stall", "stop-stall"]);
        assert_eq!(rec.events()[0].value["process"], 4);
    }
}
