//! Inference for lists: `append` unique elements, `r` the whole list.
//!
//! Every committed read of a key is a prefix of the list's one history, so the longest read of
//! a key orders every element it shows (the version order, known exactly up to there), and every
//! other read must be a prefix of it (else `incompatible-order`). An append of a committed
//! transaction (`ok`, or `info` with some append a read shows) that no read shows was made after
//! the longest read's last element (had it come earlier, that read would show it); Elle infers
//! the same for `ok` ones. From the order:
//! - `ww`: the appender of each element precedes the appender of the next, and the appender of
//!   the last element read precedes every `ok` transaction whose append was never read;
//! - `wr`: the appender of a read's last element precedes the reader;
//! - `rw`: a reader precedes the appender of the element right after what it read (all unread
//!   appends, when it read the longest list).
//!
//! Only a transaction's first micro-op on a key, when it is a read, is an external read (what it
//! saw of others); later reads are checked against its own appends (`internal`). Unread appends
//! give at most [`UNREAD_EDGES_MAX`] edges per reader and key, which can only hide anomalies.

use super::graph::{EdgeList, RW, WR, WW};
use super::{txn_events, txn_label, Direct, Inference, Kind, MopKind, Txns, WriteIndex, Writer};
use crate::history::EventType;
use rustc_hash::FxHashMap;
use serde_json::json;

/// Edges to unread appends per key, from the last appender and from each reader of the
/// longest list.
const UNREAD_EDGES_MAX: usize = 64;

pub(crate) struct Analysis<'a> {
    t: &'a Txns,
    appends: FxHashMap<(u32, u64), Writer>,
    failed: FxHashMap<(u32, u64), u32>,
    /// Per key: the longest external read, and the transaction that read it.
    order: Vec<Vec<u64>>,
    order_reader: Vec<u32>,
    /// Per key: committed transactions (`ok`, or `info` with an append some read shows) with an
    /// append nobody read (their last such append).
    unread: Vec<Vec<(u32, u64)>>,
    /// Elements appended twice: the history cannot be judged.
    duplicate_appends: Vec<String>,
}

/// A transaction's external reads of keys: (key, elements).
fn external_reads(t: &Txns, txn: u32) -> Vec<(u32, &[u64])> {
    super::external_reads(t, txn, |m| t.list(m))
}

impl<'a> Analysis<'a> {
    pub fn new(t: &'a Txns) -> Self {
        let keys = t.key_count();
        let index = WriteIndex::new(
            t,
            MopKind::Append,
            "appended",
            "list-append needs every element of a key to be unique",
        );
        let mut a = Analysis {
            t,
            appends: index.writes,
            failed: index.failed,
            order: vec![Vec::new(); keys],
            order_reader: vec![u32::MAX; keys],
            unread: vec![Vec::new(); keys],
            duplicate_appends: index.duplicates,
        };
        for (i, txn) in t.txns.iter().enumerate() {
            let i = i as u32;
            if txn.outcome == EventType::Ok {
                for (k, list) in external_reads(t, i) {
                    if list.len() > a.order[k as usize].len()
                        || a.order_reader[k as usize] == u32::MAX
                    {
                        a.order[k as usize] = list.to_vec();
                        a.order_reader[k as usize] = i;
                    }
                }
            }
        }
        let mut observed: rustc_hash::FxHashSet<(u32, u64)> = Default::default();
        for (k, list) in a.order.iter().enumerate() {
            observed.extend(list.iter().map(|&e| (k as u32, e)));
        }
        // An info transaction some read shows is committed, like an ok one.
        let committed = |i: usize| {
            let txn = &t.txns[i];
            txn.outcome == EventType::Ok
                || (txn.outcome != EventType::Fail
                    && t.mops(i as u32)
                        .iter()
                        .any(|m| m.kind == MopKind::Append && observed.contains(&(m.key, m.value))))
        };
        for i in 0..t.txns.len() {
            if !committed(i) {
                continue;
            }
            for m in t.mops(i as u32) {
                if m.kind == MopKind::Append && !observed.contains(&(m.key, m.value)) {
                    let list = &mut a.unread[m.key as usize];
                    match list.iter_mut().find(|(u, _)| *u == i as u32) {
                        Some(entry) => entry.1 = m.value,
                        None => list.push((i as u32, m.value)),
                    }
                }
            }
        }
        a
    }

    fn is_prefix(&self, k: u32, list: &[u64]) -> bool {
        let order = &self.order[k as usize];
        list.len() <= order.len() && order[..list.len()] == *list
    }

    fn appender(&self, k: u32, e: u64) -> Option<Writer> {
        self.appends.get(&(k, e)).copied()
    }

    /// Every edge, and the anomalies seen without a cycle.
    pub fn infer(&self, edges: &mut EdgeList) -> Direct {
        let t = self.t;
        let mut d = Direct::default();
        d.unknown.extend(self.duplicate_appends.iter().cloned());
        // ww from the version order of each key.
        for (k, order) in self.order.iter().enumerate() {
            let k = k as u32;
            for pair in order.windows(2) {
                if let (Some(a), Some(b)) = (self.appender(k, pair[0]), self.appender(k, pair[1])) {
                    edges.add(a.txn, b.txn, WW);
                }
            }
            if let Some(last) = order.last().and_then(|&e| self.appender(k, e)) {
                for &(u, _) in self.unread[k as usize].iter().take(UNREAD_EDGES_MAX) {
                    edges.add(last.txn, u, WW);
                }
            }
        }
        let mut lost: FxHashMap<(u32, usize), Vec<u32>> = FxHashMap::default();
        for (i, txn) in t.txns.iter().enumerate() {
            if txn.outcome != EventType::Ok {
                continue;
            }
            let r = i as u32;
            self.check_internal(r, &mut d);
            for (k, list) in external_reads(t, r) {
                self.check_read(r, k, list, edges, &mut d);
                let appends_too = t
                    .mops(r)
                    .iter()
                    .any(|m| m.kind == MopKind::Append && m.key == k);
                if appends_too && self.is_prefix(k, list) {
                    lost.entry((k, list.len())).or_default().push(r);
                }
            }
        }
        let mut lost: Vec<((u32, usize), Vec<u32>)> =
            lost.into_iter().filter(|(_, v)| v.len() > 1).collect();
        lost.sort_unstable();
        for ((k, len), readers) in lost {
            d.add(Kind::LostUpdate, || {
                let names: Vec<String> = readers.iter().map(|&r| txn_label(t, r)).collect();
                let read = t.show_list(&self.order[k as usize][..len]);
                (
                    readers.iter().flat_map(|&r| txn_events(t, r)).collect(),
                    format!(
                        "lost update: {} transactions read key {} as {read} and each appended to it: {}; each wrote over a state in which the other's append was missing",
                        readers.len(),
                        t.show_key(k),
                        names.join("; ")
                    ),
                    json!({"key": t.show_key(k), "read": read, "count": readers.len()}),
                )
            });
        }
        d
    }

    fn check_read(&self, r: u32, k: u32, list: &[u64], edges: &mut EdgeList, d: &mut Direct) {
        let t = self.t;
        let events = || txn_events(t, r);
        let who = || txn_label(t, r);
        let key = || t.show_key(k);
        if let Some(dup) = list
            .iter()
            .enumerate()
            .find(|(i, e)| list[..*i].contains(e))
            .map(|(_, &e)| e)
        {
            d.add(Kind::DuplicateElements, || {
                (
                    events(),
                    format!(
                        "{} read key {} as {} with {} more than once: an element was appended twice",
                        who(),
                        key(),
                        t.show_list(list),
                        t.show(dup)
                    ),
                    json!({"key": key(), "element": t.show(dup)}),
                )
            });
        }
        if !self.is_prefix(k, list) {
            let other = self.order_reader[k as usize];
            d.add(Kind::IncompatibleOrder, || {
                let mut ops = events();
                ops.extend(txn_events(t, other));
                (
                    ops,
                    format!(
                        "{} read key {} as {}, which is not a prefix of {} read by {}: the two reads cannot both be states of one list",
                        who(),
                        key(),
                        t.show_list(list),
                        t.show_list(&self.order[k as usize]),
                        txn_label(t, other)
                    ),
                    json!({"key": key()}),
                )
            });
            return;
        }
        for &e in list {
            if self.appender(k, e).is_some() {
                continue;
            }
            if let Some(&f) = self.failed.get(&(k, e)) {
                d.add(Kind::G1a, || {
                    let mut ops = events();
                    ops.extend(txn_events(t, f));
                    (
                        ops,
                        format!(
                            "aborted read: {} read key {} as {}, with {} appended only by {}, which failed",
                            who(),
                            key(),
                            t.show_list(list),
                            t.show(e),
                            txn_label(t, f)
                        ),
                        json!({"key": key(), "element": t.show(e)}),
                    )
                });
            } else {
                d.add(Kind::GarbageRead, || {
                    (
                        events(),
                        format!(
                            "{} read key {} as {}, with {}, which no transaction appended",
                            who(),
                            key(),
                            t.show_list(list),
                            t.show(e)
                        ),
                        json!({"key": key(), "element": t.show(e)}),
                    )
                });
            }
            break;
        }
        if let Some(a) = list.last().and_then(|&e| self.appender(k, e)) {
            edges.add(a.txn, r, WR);
            if !a.last_in_txn && a.txn != r {
                d.add(Kind::G1b, || {
                    let mut ops = events();
                    ops.extend(txn_events(t, a.txn));
                    (
                        ops,
                        format!(
                            "intermediate read: {} read key {} as {}, ending in an append that {} followed with another append to the same key",
                            who(),
                            key(),
                            t.show_list(list),
                            txn_label(t, a.txn)
                        ),
                        json!({"key": key()}),
                    )
                });
            }
        }
        let order = &self.order[k as usize];
        if list.len() < order.len() {
            if let Some(b) = self.appender(k, order[list.len()]) {
                edges.add(r, b.txn, RW);
            }
        } else {
            for &(u, _) in self.unread[k as usize].iter().take(UNREAD_EDGES_MAX) {
                edges.add(r, u, RW);
            }
        }
    }

    /// A transaction's reads after its own micro-ops on a key must end with its own appends
    /// since (`internal` otherwise); before those, a read after an earlier read must show what
    /// that one showed, or under read committed a longer list (`nonrepeatable-read`: others'
    /// appends committed in between, which read committed allows and the stronger models do
    /// not); anything else is `internal`.
    fn check_internal(&self, r: u32, d: &mut Direct) {
        let t = self.t;
        // key -> (last read, if any; own appends since)
        let mut state: Vec<(u32, Option<Vec<u64>>, Vec<u64>)> = Vec::new();
        for m in t.mops(r) {
            let slot = state.iter().position(|s| s.0 == m.key);
            match m.kind {
                MopKind::Append => match slot {
                    Some(i) => state[i].2.push(m.value),
                    None => state.push((m.key, None, vec![m.value])),
                },
                MopKind::Read if m.known => {
                    let read = t.list(m);
                    if let Some(i) = slot {
                        let (_, base, own) = &state[i];
                        let expected = match base {
                            Some(b) => [b.as_slice(), own.as_slice()].concat(),
                            None => own.clone(),
                        };
                        let kind = if !read.ends_with(own) {
                            Some(Kind::Internal)
                        } else {
                            let before = &read[..read.len() - own.len()];
                            match base {
                                Some(b) if before == b.as_slice() => None,
                                Some(b) if before.starts_with(b) => Some(Kind::NonrepeatableRead),
                                Some(_) => Some(Kind::Internal),
                                None => None,
                            }
                        };
                        if let Some(kind) = kind {
                            let expected = if base.is_some() {
                                t.show_list(&expected)
                            } else {
                                format!("a list ending in {}", t.show_list(&expected))
                            };
                            d.add(kind, || {
                                (
                                    txn_events(t, r),
                                    format!(
                                        "{}: {} read key {} as {} where its own earlier micro-ops imply {expected}",
                                        if kind == Kind::Internal { "internal inconsistency" } else { "non-repeatable read" },
                                        txn_label(t, r),
                                        t.show_key(m.key),
                                        t.show_list(read)
                                    ),
                                    json!({"key": t.show_key(m.key)}),
                                )
                            });
                            return;
                        }
                        state[i] = (m.key, Some(read.to_vec()), Vec::new());
                    } else {
                        state.push((m.key, Some(read.to_vec()), Vec::new()));
                    }
                }
                _ => {}
            }
        }
    }
}

impl Inference for Analysis<'_> {
    fn explain(&self, a: u32, b: u32, kind: u8, name: &dyn Fn(u32) -> String) -> Option<String> {
        let t = self.t;
        match kind {
            WW => {
                for m in t.mops(a).iter().filter(|m| m.kind == MopKind::Append) {
                    let order = &self.order[m.key as usize];
                    let Some(p) = order.iter().position(|&e| e == m.value) else {
                        continue;
                    };
                    if let Some(&next) = order.get(p + 1) {
                        if self.appender(m.key, next).is_some_and(|x| x.txn == b) {
                            return Some(format!(
                                "{} appended {} to key {} and {} appended {} right after it",
                                name(a),
                                t.show(m.value),
                                t.show_key(m.key),
                                name(b),
                                t.show(next)
                            ));
                        }
                    } else if let Some(&(_, e)) =
                        self.unread[m.key as usize].iter().find(|(u, _)| *u == b)
                    {
                        return Some(format!(
                            "{} appended {} to key {}, the last element any read shows, and {}'s append of {} was never read, so it came later",
                            name(a),
                            t.show(m.value),
                            t.show_key(m.key),
                            name(b),
                            t.show(e)
                        ));
                    }
                }
                None
            }
            WR => external_reads(t, b).into_iter().find_map(|(k, list)| {
                let &e = list.last()?;
                (self.appender(k, e)?.txn == a).then(|| {
                    format!(
                        "{} read key {} as {}, which ends in {}'s append of {}",
                        name(b),
                        t.show_key(k),
                        t.show_list(list),
                        name(a),
                        t.show(e)
                    )
                })
            }),
            RW => external_reads(t, a).into_iter().find_map(|(k, list)| {
                if !self.is_prefix(k, list) {
                    return None;
                }
                let order = &self.order[k as usize];
                let next = match order.get(list.len()) {
                    Some(&e) => (self.appender(k, e)?.txn == b).then_some((e, "next"))?,
                    None => self.unread[k as usize]
                        .iter()
                        .find(|(u, _)| *u == b)
                        .map(|&(_, e)| (e, "later (no read shows it)"))?,
                };
                let read = if list.is_empty() {
                    "empty".to_string()
                } else {
                    format!("as {}", t.show_list(list))
                };
                Some(format!(
                    "{} read key {} {read}, without {}, which {} appended {}",
                    name(a),
                    t.show_key(k),
                    t.show(next.0),
                    name(b),
                    next.1
                ))
            }),
            _ => None,
        }
    }
}
