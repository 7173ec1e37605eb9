//! The data behind the page's timeline: every operation and fault, embedded compactly.
//!
//! A million-event history must fit in a page a browser opens quickly, so the data is columnar
//! JSON: one array per field, numbers delta-encoded where they grow (positions, times), and every
//! string (f, key, value, error) interned once in a table and referred to by its number. Values
//! longer than [`VALUE_CHARS_MAX`] are cut (the history file keeps them whole). About 35 bytes per
//! operation; the page's script decodes the columns into typed arrays and renders one page of
//! events at a time, so the DOM never holds more than a page.
//!
//! Rows of the timeline are history positions (0-based line numbers), not event `index` values,
//! which may have gaps; `idx` maps positions back to indices when they differ.

use crate::escape::push_json_str;
use crate::plots::Axis;
use checkers::{EventType, FaultWindow, History, Op, Process};
use serde_json::Value;
use std::collections::HashMap;

/// Longest value text kept in the page, in characters.
pub const VALUE_CHARS_MAX: usize = 300;

/// History event index -> position in `History::events`.
pub(crate) struct Positions {
    /// `None` when every event's index equals its position.
    indices: Option<Vec<u64>>,
    len: usize,
}

impl Positions {
    pub fn of(history: &History) -> Self {
        let dense = history
            .events
            .iter()
            .enumerate()
            .all(|(i, e)| e.index == i as u64);
        Positions {
            indices: (!dense).then(|| history.events.iter().map(|e| e.index).collect()),
            len: history.events.len(),
        }
    }

    /// The position of the event with this index, if the history has it.
    pub fn pos(&self, index: u64) -> Option<usize> {
        match &self.indices {
            None => (index < self.len as u64).then_some(index as usize),
            Some(v) => v.binary_search(&index).ok(),
        }
    }
}

/// Position -> operation id, for every invocation and completion.
pub(crate) struct OpIndex {
    by_pos: Vec<u32>,
}

impl OpIndex {
    pub fn of(len: usize, ops: &[Op], positions: &Positions) -> Self {
        let mut by_pos = vec![u32::MAX; len];
        for op in ops {
            for idx in std::iter::once(op.invoke_index).chain(op.complete_index) {
                if let Some(p) = positions.pos(idx) {
                    by_pos[p] = op.id as u32;
                }
            }
        }
        OpIndex { by_pos }
    }

    /// The operation an event index belongs to (its invocation or completion).
    pub fn op<'a>(&self, ops: &'a [Op], positions: &Positions, index: u64) -> Option<&'a Op> {
        let p = positions.pos(index)?;
        match self.by_pos[p] {
            u32::MAX => None,
            id => ops.get(id as usize),
        }
    }
}

#[derive(Default)]
struct Strings {
    ids: HashMap<String, u32>,
    list: Vec<String>,
}

impl Strings {
    fn id(&mut self, s: &str) -> i64 {
        if let Some(&id) = self.ids.get(s) {
            return id as i64;
        }
        let id = self.list.len() as u32;
        self.ids.insert(s.to_string(), id);
        self.list.push(s.to_string());
        id as i64
    }

    fn value(&mut self, v: &Value) -> i64 {
        match v {
            Value::Null => -1,
            Value::String(s) if s.len() <= VALUE_CHARS_MAX => {
                // Quoted, as JSON shows it, so "1" and 1 stay distinct.
                let mut q = String::with_capacity(s.len() + 2);
                q.push('"');
                q.push_str(s);
                q.push('"');
                self.id(&q)
            }
            other => {
                let text = other.to_string();
                self.id(&crate::escape::truncate(&text, VALUE_CHARS_MAX))
            }
        }
    }
}

/// One integer column, written as a JSON array as values arrive.
struct Col {
    buf: String,
    first: bool,
}

impl Col {
    fn new(name: &str, capacity: usize) -> Self {
        let mut buf = String::with_capacity(capacity);
        buf.push('"');
        buf.push_str(name);
        buf.push_str("\":[");
        Col { buf, first: true }
    }
    fn push(&mut self, v: i64) {
        if !self.first {
            self.buf.push(',');
        }
        self.first = false;
        self.buf.push_str(itoa::Buffer::new().format(v));
    }
    fn finish(mut self) -> String {
        self.buf.push(']');
        self.buf
    }
}

fn columns(out: &mut String, cols: Vec<Col>) {
    out.push('{');
    for (i, c) in cols.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&c.finish());
    }
    out.push('}');
}

/// Builds the timeline's JSON (safe to embed in a `<script>` element as is).
///
/// `flagged` are event indices named by anomalies: their operations are outlined.
pub(crate) fn data_json(
    history: &History,
    ops: &[Op],
    windows: &[FaultWindow],
    flagged: &[u64],
    positions: &Positions,
    axis: &Axis,
    fault_colors: &[(String, (u8, u8, u8))],
) -> String {
    let tick = |t: u64| -> i64 {
        let rel = t.saturating_sub(axis.origin);
        if axis.synthetic {
            rel as i64
        } else {
            ((rel + 500) / 1000) as i64
        }
    };
    let pos = |index: u64| positions.pos(index).map_or(-1, |p| p as i64);
    let mut strings = Strings::default();
    let n = ops.len();
    let mut cols: Vec<Col> = ["p", "i", "c", "t", "d", "o", "f", "k", "v", "r", "e"]
        .iter()
        .map(|name| Col::new(name, n * 3 + 16))
        .collect();
    let (mut last_pos, mut last_tick) = (0i64, 0i64);
    for op in ops {
        let ip = pos(op.invoke_index);
        let it = tick(op.invoke_time);
        let cp = op.complete_index.map_or(-1, pos);
        cols[0].push(op.process as i64);
        cols[1].push(ip - last_pos);
        cols[2].push(if cp < 0 { -1 } else { cp - ip });
        cols[3].push(it - last_tick);
        cols[4].push(op.complete_time.map_or(-1, |c| (tick(c) - it).max(0)));
        cols[5].push(match op.outcome {
            EventType::Ok => 0,
            EventType::Fail => 1,
            _ => 2,
        });
        let f = strings.id(&op.f);
        cols[6].push(f);
        let k = op.key.as_deref().map_or(-1, |k| strings.id(k));
        cols[7].push(k);
        let v = strings.value(&op.invoke_value);
        cols[8].push(v);
        let r = if op.complete_index.is_some() {
            strings.value(&op.complete_value)
        } else {
            -1
        };
        cols[9].push(r);
        let e = op.error.as_deref().map_or(-1, |e| strings.id(e));
        cols[10].push(e);
        (last_pos, last_tick) = (ip, it);
    }

    let mut nem: Vec<Col> = ["i", "t", "f", "y", "v"]
        .iter()
        .map(|name| Col::new(name, 64))
        .collect();
    for (p, e) in history.events.iter().enumerate() {
        if e.process != Process::Nemesis {
            continue;
        }
        nem[0].push(p as i64);
        nem[1].push(tick(e.time));
        let f = strings.id(&e.f);
        nem[2].push(f);
        nem[3].push(match e.kind {
            EventType::Invoke => 0,
            EventType::Ok => 1,
            EventType::Fail => 2,
            EventType::Info => 3,
        });
        let v = strings.value(&e.value);
        nem[4].push(v);
    }

    let mut out = String::with_capacity(n * 40 + 4096);
    out.push_str("{\"events\":");
    out.push_str(itoa::Buffer::new().format(history.events.len()));
    out.push_str(",\"tick_ns\":");
    out.push_str(if axis.synthetic { "0" } else { "1000" });
    out.push_str(",\"ops\":");
    columns(&mut out, cols);
    out.push_str(",\"nem\":");
    columns(&mut out, nem);

    out.push_str(",\"kinds\":[");
    for (i, (kind, (r, g, b))) in fault_colors.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        push_json_str(&mut out, kind);
        out.push_str(&format!(",\"rgba({r},{g},{b},0.16)\"]"));
    }
    out.push_str("],\"faults\":[");
    for (i, w) in windows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let k = fault_colors
            .iter()
            .position(|(k, _)| *k == w.kind)
            .unwrap_or(0);
        let end = w.end_index.map_or(-1, pos);
        out.push_str(&format!("[{k},{},{end}]", pos(w.start_index)));
    }
    out.push_str("],\"flag\":[");
    let mut flagged_pos: Vec<i64> = flagged
        .iter()
        .map(|&i| pos(i))
        .filter(|&p| p >= 0)
        .collect();
    flagged_pos.sort_unstable();
    flagged_pos.dedup();
    for (i, p) in flagged_pos.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(itoa::Buffer::new().format(*p));
    }
    out.push_str("],\"idx\":");
    if let Some(indices) = &positions.indices {
        let mut col = Col::new("", indices.len() * 2);
        let mut last = 0i64;
        for &i in indices {
            col.push(i as i64 - last);
            last = i as i64;
        }
        // Col writes `"":[...]`; keep only the array.
        let s = col.finish();
        out.push_str(&s[3..]);
    } else {
        out.push_str("null");
    }
    out.push_str(",\"s\":[");
    for (i, s) in strings.list.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_str(&mut out, s);
    }
    out.push_str("]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use checkers::formats::read_str;

    fn data(jsonl: &str) -> Value {
        let h = read_str(jsonl, None).unwrap();
        let ops = h.ops().unwrap();
        let positions = Positions::of(&h);
        let windows = h.fault_windows();
        let kinds = crate::plots::fault_kinds(&windows);
        let axis = Axis {
            origin: 0,
            per_unit: 1e9,
            synthetic: false,
            end: 1.0,
        };
        let json = data_json(&h, &ops, &windows, &[1], &positions, &axis, &kinds);
        assert!(!json.contains('<'), "unsafe for a script element: {json}");
        serde_json::from_str(&json).unwrap()
    }

    #[test]
    fn columns_are_delta_encoded_and_strings_interned() {
        let d = data(
            r#"{"index":0,"time":1000,"process":1,"type":"invoke","f":"write","key":"x","value":1}
{"index":1,"time":2000,"process":2,"type":"invoke","f":"read","key":"x","value":null}
{"index":2,"time":5000,"process":1,"type":"ok","f":"write","key":"x","value":1}
{"index":3,"time":6000,"process":"nemesis","type":"info","f":"start-partition","value":"</script>"}
{"index":4,"time":9000,"process":2,"type":"info","f":"read","key":"x","value":null,"error":"timeout"}
"#,
        );
        let ops = &d["ops"];
        assert_eq!(ops["p"], serde_json::json!([1, 2]));
        assert_eq!(
            ops["i"],
            serde_json::json!([0, 1]),
            "invoke positions, delta"
        );
        assert_eq!(
            ops["c"],
            serde_json::json!([2, 3]),
            "completion minus invocation"
        );
        assert_eq!(ops["t"], serde_json::json!([1, 1]), "µs, delta");
        assert_eq!(ops["d"], serde_json::json!([4, 7]));
        assert_eq!(ops["o"], serde_json::json!([0, 2]));
        let s = d["s"].as_array().unwrap();
        let text = |col: &str, i: usize| s[ops[col][i].as_u64().unwrap() as usize].clone();
        assert_eq!(text("f", 0), "write");
        assert_eq!(text("k", 1), "x");
        assert_eq!(text("v", 0), "1");
        assert_eq!(text("e", 1), "timeout");
        assert_eq!(ops["k"][0], ops["k"][1], "one entry per distinct string");
        assert_eq!(d["nem"]["i"], serde_json::json!([3]));
        assert_eq!(
            s[d["nem"]["v"][0].as_u64().unwrap() as usize],
            "\"</script>\""
        );
        assert_eq!(d["faults"], serde_json::json!([[0, 3, -1]]));
        assert_eq!(d["flag"], serde_json::json!([1]));
        assert_eq!(d["idx"], Value::Null);
    }

    #[test]
    fn sparse_indices_are_mapped_to_positions() {
        let d = data(
            r#"{"index":10,"time":0,"process":1,"type":"invoke","f":"w","value":1}
{"index":12,"time":0,"process":1,"type":"ok","f":"w","value":1}
"#,
        );
        assert_eq!(d["idx"], serde_json::json!([10, 2]));
        assert_eq!(d["ops"]["c"], serde_json::json!([1]));
        assert_eq!(
            d["flag"],
            serde_json::json!([]),
            "index 1 is not in this history"
        );
    }
}
