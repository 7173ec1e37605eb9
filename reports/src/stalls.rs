//! Client-side stalls as fault windows, so the plots shade them and the Faults table lists them
//! like the nemesis's faults.
//!
//! A stall (a client holding an acknowledgement past its lease, SCENARIOS.md B1) is not a
//! nemesis event: the client decides it inside one operation, and marks that operation's
//! completion (`{"stalled_ms": N}` on an `ok`, "after holding the message N ms" in the error of a
//! `fail` or `info`; `workloads::stall::note`). The report finds those marks and turns each run
//! of overlapping stalled operations into one window of kind [`STALL_KIND`] from the first
//! invocation to the last completion, so a stall that explains a double commit is in view
//! next to it. The history itself is not changed.

use checkers::{FaultWindow, Op};
use serde_json::{json, Value};

/// The kind of the windows made here.
pub const STALL_KIND: &str = "client-stall";

/// The text a stalled `fail` or `info` carries in its error, before the milliseconds.
const STALL_ERROR_MARK: &str = "after holding the message ";

/// How long `op` was held on purpose, when its completion says so.
pub fn stalled_ms(op: &Op) -> Option<u64> {
    if let Some(ms) = op.complete_value.get("stalled_ms").and_then(Value::as_u64) {
        return Some(ms);
    }
    let error = op.error.as_deref()?;
    let rest = &error[error.find(STALL_ERROR_MARK)? + STALL_ERROR_MARK.len()..];
    let digits = rest.split(" ms").next()?;
    digits.parse().ok()
}

/// One window per run of overlapping stalled operations, in time order.
pub fn windows(ops: &[Op]) -> Vec<FaultWindow> {
    // A mark is in a completion, so every stalled operation has completed.
    let mut stalled: Vec<(&Op, u64, u64)> = ops
        .iter()
        .filter_map(|op| Some((op, op.complete_time?, stalled_ms(op)?)))
        .collect();
    stalled.sort_by_key(|(op, _, _)| (op.invoke_time, op.invoke_index));
    let mut out: Vec<FaultWindow> = Vec::new();
    let mut acks = 0u64;
    let mut held_ms_max = 0u64;
    for (op, complete_time, ms) in stalled {
        let overlaps = out
            .last()
            .is_some_and(|w| w.end_time.is_some_and(|end| op.invoke_time <= end));
        if !overlaps {
            close(out.last_mut(), acks, held_ms_max);
            out.push(FaultWindow {
                kind: STALL_KIND.to_string(),
                start_index: op.invoke_index,
                start_time: op.invoke_time,
                end_index: op.complete_index,
                end_time: op.complete_time,
                value: Value::Null,
            });
            (acks, held_ms_max) = (0, 0);
        }
        let w = out.last_mut().expect("a window is open");
        if w.end_time.is_some_and(|end| complete_time > end) {
            (w.end_time, w.end_index) = (Some(complete_time), op.complete_index);
        }
        acks += 1;
        held_ms_max = held_ms_max.max(ms);
    }
    close(out.last_mut(), acks, held_ms_max);
    out
}

fn close(w: Option<&mut FaultWindow>, acks: u64, held_ms_max: u64) {
    if let Some(w) = w {
        w.value = json!({ "stalled_acks": acks, "held_ms_max": held_ms_max });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use checkers::formats::read_str;

    /// The stall windows of a history given as JSON lines.
    fn stall_windows(jsonl: &str) -> Vec<(u64, Option<u64>, Value)> {
        let h = read_str(jsonl, None).unwrap();
        windows(&h.ops().unwrap())
            .into_iter()
            .map(|w| (w.start_index, w.end_index, w.value))
            .collect()
    }

    #[test]
    fn overlapping_stalls_make_one_window_and_apart_ones_two() {
        let h = r#"
{"index":0,"time":0,"process":0,"type":"invoke","f":"ack","value":{"id":"m1"}}
{"index":1,"time":10,"process":1,"type":"invoke","f":"ack","value":{"id":"m2"}}
{"index":2,"time":3000,"process":0,"type":"ok","f":"ack","value":{"stalled_ms":3000}}
{"index":3,"time":3500,"process":1,"type":"info","f":"ack","value":{"id":"m2"},"error":"timeout (after holding the message 3400 ms)"}
{"index":4,"time":4000,"process":0,"type":"invoke","f":"ack","value":{"id":"m3"}}
{"index":5,"time":4100,"process":0,"type":"ok","f":"ack","value":null}
{"index":6,"time":9000,"process":2,"type":"invoke","f":"ack","value":{"id":"m4"}}
{"index":7,"time":9500,"process":2,"type":"fail","f":"ack","value":{"id":"m4"},"error":"after holding the message 450 ms"}
"#;
        assert_eq!(
            stall_windows(h),
            [
                (0, Some(3), json!({"stalled_acks": 2, "held_ms_max": 3400})),
                (6, Some(7), json!({"stalled_acks": 1, "held_ms_max": 450})),
            ]
        );
    }

    #[test]
    fn unmarked_operations_make_no_window() {
        let h = r#"
{"index":0,"time":0,"process":0,"type":"invoke","f":"ack","value":{"id":"m1"}}
{"index":1,"time":5,"process":0,"type":"ok","f":"ack","value":{"held":"not a stall mark"}}
{"index":2,"time":6,"process":0,"type":"invoke","f":"ack","value":{"id":"m2"}}
{"index":3,"time":9,"process":0,"type":"fail","f":"ack","value":{"id":"m2"},"error":"after holding the message soon"}
"#;
        assert!(stall_windows(h).is_empty());
    }

    #[test]
    fn an_operation_still_running_at_the_end_is_no_stall() {
        let h = r#"
{"index":0,"time":0,"process":0,"type":"invoke","f":"ack","value":{"id":"m1"}}
{"index":1,"time":2,"process":1,"type":"invoke","f":"ack","value":{"id":"m2"}}
{"index":2,"time":3000,"process":0,"type":"ok","f":"ack","value":{"stalled_ms":2900}}
"#;
        // m2 never completed, so it carries no mark: the window is m1's alone, and closed.
        assert_eq!(
            stall_windows(h),
            [(0, Some(2), json!({"stalled_acks": 1, "held_ms_max": 2900}))]
        );
    }
}
