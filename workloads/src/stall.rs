//! Client-side stalls: a consumer that holds a message past its lease or ack wait, then
//! completes it (docs/scenarios.md B1, "double delivery on consumer timeout").
//!
//! The fault lives in the client, not in the cluster, so it is a hook each client with acks
//! calls between receiving a message and acknowledging it (the testbed, NATS JetStream,
//! RabbitMQ, Redis streams). Whether one acknowledgement stalls is a pure function of
//! (seed, process, the client's operation count), never of timing or of how workers
//! interleave, so a rerun with the same seed stalls the same operations.
//!
//! A plan turns stalls on in its `[client]` table (`ack-stall-probability`, `ack-stall`); the
//! parsers here are the ones every client-option table shares, so a probability or a duration
//! means the same thing for every system.

use crate::op::Completion;
use checkers::history::{STALLED_MS_KEY, STALL_ERROR_MARK};
use checkers::EventType;
use serde_json::{json, Value};
use std::time::Duration;

/// A fraction `probability` of operations wait `duration` first. Zero probability or zero
/// duration never stalls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stall {
    pub probability: f64,
    pub duration: Duration,
}

impl Stall {
    pub const NONE: Stall = Stall {
        probability: 0.0,
        duration: Duration::ZERO,
    };

    /// How long operation `op_seq` of `process` stalls, if at all (pure: same inputs, same
    /// answer).
    pub fn decide(&self, seed: u64, process: u64, op_seq: u64) -> Option<Duration> {
        if self.probability <= 0.0 || self.duration.is_zero() {
            return None;
        }
        let mut x = seed ^ process.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ op_seq.rotate_left(29);
        // splitmix64's finaliser: every input bit reaches every output bit.
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        let unit = (x >> 11) as f64 / (1u64 << 53) as f64;
        (unit < self.probability).then_some(self.duration)
    }
}

/// One client's stall state: the decision inputs and its operation count.
#[derive(Debug, Clone)]
pub struct Staller {
    stall: Stall,
    seed: u64,
    process: u64,
    op_seq: u64,
}

impl Staller {
    pub fn new(stall: Stall, seed: u64, process: u64) -> Staller {
        Staller {
            stall,
            seed,
            process,
            op_seq: 0,
        }
    }

    /// Counts one operation and sleeps if it stalls; returns how long it slept.
    pub async fn hold(&mut self) -> Option<Duration> {
        self.hold_with(self.stall).await
    }

    /// [`Staller::hold`] with another stall's odds and length (a client with two kinds).
    pub async fn hold_with(&mut self, stall: Stall) -> Option<Duration> {
        self.op_seq += 1;
        let d = stall.decide(self.seed, self.process, self.op_seq)?;
        tokio::time::sleep(d).await;
        Some(d)
    }
}

/// Marks an acknowledgement that stalled, so the history shows which acks were held and for how
/// long (the history's stall mark, `checkers::history::STALLED_MS_KEY`): an `ok` with no value
/// gets `{"stalled_ms": N}`, a `fail` or `info` gets the stall in its error text. Unchanged when
/// nothing stalled.
pub fn note(mut c: Completion, stalled: Option<Duration>) -> Completion {
    let Some(d) = stalled else {
        return c;
    };
    let ms = d.as_millis() as u64;
    let mark = format!("{STALL_ERROR_MARK}{ms} ms");
    match (c.kind, &mut c.error) {
        (EventType::Ok, _) if c.value.is_null() => c.value = json!({ (STALLED_MS_KEY): ms }),
        (EventType::Ok, _) => {}
        (_, Some(e)) => e.push_str(&format!(" ({mark})")),
        (_, None) => c.error = Some(mark),
    }
    c
}

/// A whole number from a client-option table.
pub fn option_count(v: &Value) -> Result<u64, String> {
    v.as_u64()
        .ok_or_else(|| format!("expected a whole number, not {v}"))
}

/// A probability from 0 to 1.
pub fn option_probability(v: &Value) -> Result<f64, String> {
    v.as_f64()
        .filter(|p| (0.0..=1.0).contains(p))
        .ok_or_else(|| format!("expected a probability from 0 to 1, not {v}"))
}

/// A duration: a string such as `"1300ms"` / `"7s"`, or an integer of milliseconds.
pub fn option_duration(v: &Value) -> Result<Duration, String> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .map(Duration::from_millis)
            .ok_or_else(|| format!("expected milliseconds, not {v}")),
        Value::String(s) => parse_duration(s),
        _ => Err(format!("expected a duration such as \"500ms\", not {v}")),
    }
}

/// A delivery guarantee the delivery checker knows.
pub fn option_guarantee(v: &Value) -> Result<String, String> {
    v.as_str()
        .filter(|g| ["at-most-once", "at-least-once", "exactly-once"].contains(g))
        .map(str::to_string)
        .ok_or_else(|| format!("expected at-most-once, at-least-once or exactly-once, not {v}"))
}

/// `"250ms"`, `"1.5s"`, `"2m"`; a bare number is milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let units: [(&str, f64); 4] = [("ms", 1.0), ("s", 1e3), ("m", 6e4), ("", 1.0)];
    let (number, ms_per_unit) = units
        .iter()
        .find_map(|(suffix, ms)| s.strip_suffix(suffix).map(|n| (n, *ms)))
        .expect("the empty suffix always matches");
    number
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && *x >= 0.0)
        .map(|x| Duration::from_millis((x * ms_per_unit) as u64))
        .ok_or_else(|| format!("expected a duration such as \"500ms\" or \"2s\", not {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_depend_only_on_seed_process_and_op() {
        let s = Stall {
            probability: 0.3,
            duration: Duration::from_secs(5),
        };
        let a: Vec<bool> = (0..400).map(|op| s.decide(11, 2, op).is_some()).collect();
        let b: Vec<bool> = (0..400).map(|op| s.decide(11, 2, op).is_some()).collect();
        assert_eq!(a, b);
        let other: Vec<bool> = (0..400).map(|op| s.decide(11, 3, op).is_some()).collect();
        assert_ne!(a, other);
        let stalled = a.iter().filter(|x| **x).count();
        assert!((80..=160).contains(&stalled), "about 30% of 400: {stalled}");
    }

    #[test]
    fn zero_never_stalls_and_one_always_does() {
        let never = Stall {
            probability: 0.0,
            duration: Duration::from_secs(1),
        };
        assert!((0..100).all(|op| never.decide(1, 0, op).is_none()));
        assert!((0..100).all(|op| Stall::NONE.decide(1, 0, op).is_none()));
        let always = Stall {
            probability: 1.0,
            duration: Duration::from_millis(7),
        };
        assert!((0..100).all(|op| always.decide(1, 0, op) == Some(Duration::from_millis(7))));
    }

    #[tokio::test(start_paused = true)]
    async fn a_staller_sleeps_on_the_operations_that_stall() {
        let stall = Stall {
            probability: 1.0,
            duration: Duration::from_secs(30),
        };
        let mut s = Staller::new(stall, 1, 4);
        let t0 = tokio::time::Instant::now();
        assert_eq!(s.hold().await, Some(Duration::from_secs(30)));
        assert!(t0.elapsed() >= Duration::from_secs(30));
        let mut never = Staller::new(Stall::NONE, 1, 4);
        assert_eq!(never.hold().await, None);
    }

    #[test]
    fn a_stalled_ack_says_so_in_the_history() {
        let held = Some(Duration::from_millis(3000));
        assert_eq!(
            note(Completion::ok(Value::Null), held).value,
            json!({"stalled_ms": 3000})
        );
        assert_eq!(note(Completion::ok(Value::Null), None).value, Value::Null);
        let failed = note(Completion::fail("not-held"), held);
        assert_eq!(failed.kind, EventType::Fail);
        assert_eq!(
            failed.error.as_deref(),
            Some("not-held (after holding the message 3000 ms)")
        );
    }

    #[test]
    fn option_values_parse_or_say_what_was_expected() {
        assert_eq!(
            option_duration(&json!("1300ms")),
            Ok(Duration::from_millis(1300))
        );
        assert_eq!(option_duration(&json!("7s")), Ok(Duration::from_secs(7)));
        assert_eq!(
            option_duration(&json!("1.5s")),
            Ok(Duration::from_millis(1500))
        );
        assert_eq!(option_duration(&json!("2m")), Ok(Duration::from_secs(120)));
        assert_eq!(option_duration(&json!(250)), Ok(Duration::from_millis(250)));
        assert!(option_duration(&json!("soon"))
            .unwrap_err()
            .contains("500ms"));
        assert!(option_duration(&json!(true)).is_err());
        assert_eq!(option_probability(&json!(0.25)), Ok(0.25));
        assert!(option_probability(&json!(1.5))
            .unwrap_err()
            .contains("0 to 1"));
        assert_eq!(option_count(&json!(3)), Ok(3));
        assert!(option_count(&json!(-1)).is_err());
        assert_eq!(
            option_guarantee(&json!("exactly-once")).unwrap(),
            "exactly-once"
        );
        assert!(option_guarantee(&json!("twice")).is_err());
    }
}
