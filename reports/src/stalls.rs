//! Client-side stalls as fault windows, so the plots shade them and the Faults table lists them
//! like the nemesis's faults.
//!
//! A stall (a client holding an acknowledgement past its lease, docs/scenarios.md B1) is not a
//! nemesis event: the client decides it inside one operation, and marks that operation's
//! completion (`checkers::history::STALLED_MS_KEY`, read by `Op::stalled_ms`). The report finds
//! those marks and turns each run of overlapping stalled operations into one window of kind
//! [`STALL_KIND`] from the first invocation to the last completion, so a stall that explains a
//! double commit is in view next to it. The history itself is not changed.

use checkers::{FaultWindow, Op};
use serde_json::json;

/// The kind of the windows made here.
pub const STALL_KIND: &str = "client-stall";

/// Stalled operations that overlap in time, on their way to becoming one window.
struct Run {
    start_index: u64,
    start_time: u64,
    end_index: Option<u64>,
    end_time: u64,
    acks: u64,
    held_ms_max: u64,
}

/// One window per run of overlapping stalled operations, in time order.
pub fn windows(ops: &[Op]) -> Vec<FaultWindow> {
    // A mark is in a completion, so every stalled operation has completed.
    let mut stalled: Vec<(&Op, u64, u64)> = ops
        .iter()
        .filter_map(|op| Some((op, op.complete_time?, op.stalled_ms()?)))
        .collect();
    stalled.sort_by_key(|(op, _, _)| (op.invoke_time, op.invoke_index));
    let mut runs: Vec<Run> = Vec::new();
    for (op, complete_time, held_ms) in stalled {
        match runs.last_mut() {
            Some(run) if op.invoke_time <= run.end_time => {
                if complete_time > run.end_time {
                    (run.end_time, run.end_index) = (complete_time, op.complete_index);
                }
                run.acks += 1;
                run.held_ms_max = run.held_ms_max.max(held_ms);
            }
            _ => runs.push(Run {
                start_index: op.invoke_index,
                start_time: op.invoke_time,
                end_index: op.complete_index,
                end_time: complete_time,
                acks: 1,
                held_ms_max: held_ms,
            }),
        }
    }
    runs.into_iter()
        .map(|r| FaultWindow {
            kind: STALL_KIND.to_string(),
            start_index: r.start_index,
            start_time: r.start_time,
            end_index: r.end_index,
            end_time: Some(r.end_time),
            value: json!({ "stalled_acks": r.acks, "held_ms_max": r.held_ms_max }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use checkers::formats::read_str;
    use serde_json::Value;

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
