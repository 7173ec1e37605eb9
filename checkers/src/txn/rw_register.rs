//! Inference for registers: `w` a unique value, `r` one value (null when never written).
//!
//! A register read shows one version and nothing of the order of the others, so, as the Elle
//! paper says, far less can be inferred than for lists. What is sound for every database:
//! - `wr`: the writer of a value read precedes the reader (values are unique per key);
//! - `rw`: a read of null saw the initial version, which precedes every committed write, so the
//!   reader precedes every writer of the key (up to [`WRITERS_MAX`] per key; fewer edges can
//!   only hide anomalies). A writer is committed when its transaction is `ok` or a read saw one of
//!   its writes.
//!
//! No `ww` edge is inferred: that a transaction's write follows the version it read, or that
//! process or real-time order orders versions, holds for some databases and not others (Elle
//! offers them as options; we do not assume them). So G0 cannot be seen here, and cycles are
//! mostly G1c, G-single and G2-item made of `wr` and `rw` edges, which is what write skew
//! (G2-item) under snapshot isolation looks like: two transactions read null on each other's key
//! and each wrote the key the other read.

use super::graph::{EdgeList, RW, WR};
use super::{
    txn_events, txn_label, Direct, Inference, Kind, MopKind, Txns, WriteIndex, Writer, NIL,
};
use crate::history::EventType;
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::json;

/// Writers of one key that each null read of it is linked to.
const WRITERS_MAX: usize = 64;

pub(crate) struct Analysis<'a> {
    t: &'a Txns,
    writes: FxHashMap<(u32, u64), Writer>,
    failed: FxHashMap<(u32, u64), u32>,
    /// Per key: committed writers (ok, or seen by a read), each once.
    writers: Vec<Vec<u32>>,
    duplicate_writes: Vec<String>,
}

/// A transaction's external reads: (key, value) of its first micro-op on each key when a read.
fn external_reads(t: &Txns, txn: u32) -> Vec<(u32, u64)> {
    super::external_reads(t, txn, |m| m.value)
}

impl<'a> Analysis<'a> {
    pub fn new(t: &'a Txns) -> Self {
        let index = WriteIndex::new(
            t,
            MopKind::Write,
            "wrote",
            "rw-register needs every value written to a key to be unique",
        );
        let mut a = Analysis {
            t,
            writes: index.writes,
            failed: index.failed,
            writers: vec![Vec::new(); t.key_count()],
            duplicate_writes: index.duplicates,
        };
        let mut seen: FxHashSet<(u32, u64)> = FxHashSet::default();
        for (i, txn) in t.txns.iter().enumerate() {
            if txn.outcome == EventType::Ok {
                seen.extend(
                    external_reads(t, i as u32)
                        .into_iter()
                        .filter(|r| r.1 != NIL),
                );
            }
        }
        for (i, txn) in t.txns.iter().enumerate() {
            let i = i as u32;
            if txn.outcome == EventType::Fail {
                continue;
            }
            let mops = t.mops(i);
            let committed = txn.outcome == EventType::Ok
                || mops
                    .iter()
                    .any(|m| m.kind == MopKind::Write && seen.contains(&(m.key, m.value)));
            for m in mops {
                if m.kind == MopKind::Write && committed {
                    let list = &mut a.writers[m.key as usize];
                    if list.last() != Some(&i) && !list.contains(&i) {
                        list.push(i);
                    }
                }
            }
        }
        a
    }

    pub fn infer(&self, edges: &mut EdgeList) -> Direct {
        let t = self.t;
        let mut d = Direct::default();
        d.unknown.extend(self.duplicate_writes.iter().cloned());
        let mut lost: FxHashMap<(u32, u64), Vec<u32>> = FxHashMap::default();
        for (i, txn) in t.txns.iter().enumerate() {
            if txn.outcome != EventType::Ok {
                continue;
            }
            let r = i as u32;
            self.check_internal(r, &mut d);
            for (k, v) in external_reads(t, r) {
                self.check_read(r, k, v, edges, &mut d);
                let writes_too = t
                    .mops(r)
                    .iter()
                    .any(|m| m.kind == MopKind::Write && m.key == k);
                if writes_too {
                    lost.entry((k, v)).or_default().push(r);
                }
            }
        }
        let mut lost: Vec<((u32, u64), Vec<u32>)> =
            lost.into_iter().filter(|(_, v)| v.len() > 1).collect();
        lost.sort_unstable();
        for ((k, v), readers) in lost {
            d.add(Kind::LostUpdate, || {
                let names: Vec<String> = readers.iter().map(|&r| txn_label(t, r)).collect();
                (
                    readers.iter().flat_map(|&r| txn_events(t, r)).collect(),
                    format!(
                        "lost update: {} transactions read key {} as {} and each wrote it: {}; each overwrote a version without the other's write",
                        readers.len(),
                        t.show_key(k),
                        t.show(v),
                        names.join("; ")
                    ),
                    json!({"key": t.show_key(k), "read": t.show(v), "count": readers.len()}),
                )
            });
        }
        d
    }

    fn check_read(&self, r: u32, k: u32, v: u64, edges: &mut EdgeList, d: &mut Direct) {
        let t = self.t;
        if v == NIL {
            for &w in self.writers[k as usize].iter().take(WRITERS_MAX) {
                edges.add(r, w, RW);
            }
            return;
        }
        match self.writes.get(&(k, v)) {
            Some(w) => {
                edges.add(w.txn, r, WR);
                if !w.last_in_txn && w.txn != r {
                    d.add(Kind::G1b, || {
                        let mut ops = txn_events(t, r);
                        ops.extend(txn_events(t, w.txn));
                        (
                            ops,
                            format!(
                                "intermediate read: {} read key {} = {}, which {} overwrote within the same transaction",
                                txn_label(t, r),
                                t.show_key(k),
                                t.show(v),
                                txn_label(t, w.txn)
                            ),
                            json!({"key": t.show_key(k), "value": t.show(v)}),
                        )
                    });
                }
            }
            None => {
                let failed = self.failed.get(&(k, v)).copied();
                let kind = if failed.is_some() {
                    Kind::G1a
                } else {
                    Kind::GarbageRead
                };
                d.add(kind, || {
                    let mut ops = txn_events(t, r);
                    let what = match failed {
                        Some(f) => {
                            ops.extend(txn_events(t, f));
                            format!(
                                "aborted read: written only by {}, which failed",
                                txn_label(t, f)
                            )
                        }
                        None => "which no transaction wrote".to_string(),
                    };
                    (
                        ops,
                        format!(
                            "{} read key {} = {}, {what}",
                            txn_label(t, r),
                            t.show_key(k),
                            t.show(v)
                        ),
                        json!({"key": t.show_key(k), "value": t.show(v)}),
                    )
                });
            }
        }
    }

    /// After a transaction wrote a key, its next read of the key must show that value
    /// (`internal` otherwise); a read after a read must show the same value, unless under read
    /// committed (`nonrepeatable-read`).
    fn check_internal(&self, r: u32, d: &mut Direct) {
        let t = self.t;
        // key -> (value, set by a write of its own)
        let mut state: Vec<(u32, u64, bool)> = Vec::new();
        for m in t.mops(r) {
            if m.kind == MopKind::Read && !m.known {
                continue;
            }
            let slot = state.iter().position(|s| s.0 == m.key);
            if let (MopKind::Read, Some(i)) = (m.kind, slot) {
                let (_, expected, own) = state[i];
                if m.value != expected {
                    let kind = if own {
                        Kind::Internal
                    } else {
                        Kind::NonrepeatableRead
                    };
                    d.add(kind, || {
                        (
                            txn_events(t, r),
                            format!(
                                "{}: {} read key {} = {} where its own earlier micro-ops imply {}",
                                if own {
                                    "internal inconsistency"
                                } else {
                                    "non-repeatable read"
                                },
                                txn_label(t, r),
                                t.show_key(m.key),
                                t.show(m.value),
                                t.show(expected)
                            ),
                            json!({"key": t.show_key(m.key)}),
                        )
                    });
                    return;
                }
            }
            let own = m.kind == MopKind::Write;
            match slot {
                Some(i) => state[i] = (m.key, m.value, own),
                None => state.push((m.key, m.value, own)),
            }
        }
    }
}

impl Inference for Analysis<'_> {
    fn explain(&self, a: u32, b: u32, kind: u8, name: &dyn Fn(u32) -> String) -> Option<String> {
        let t = self.t;
        match kind {
            WR => external_reads(t, b).into_iter().find_map(|(k, v)| {
                (v != NIL && self.writes.get(&(k, v))?.txn == a).then(|| {
                    format!(
                        "{} read key {} = {}, which {} wrote",
                        name(b),
                        t.show_key(k),
                        t.show(v),
                        name(a)
                    )
                })
            }),
            RW => external_reads(t, a).into_iter().find_map(|(k, v)| {
                if v != NIL || !self.writers[k as usize].contains(&b) {
                    return None;
                }
                let written = t
                    .mops(b)
                    .iter()
                    .rev()
                    .find(|m| m.kind == MopKind::Write && m.key == k)?
                    .value;
                Some(format!(
                    "{} read key {} as nil (its initial state), without {}, which {} wrote",
                    name(a),
                    t.show_key(k),
                    t.show(written),
                    name(b)
                ))
            }),
            _ => None,
        }
    }
}
