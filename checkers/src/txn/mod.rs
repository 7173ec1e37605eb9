//! Transactional isolation: the `list-append` and `rw-register` checkers, after Elle
//! (Kingsbury & Alvaro, "Elle: Inferring Isolation Anomalies from Experimental Observations",
//! VLDB 2020).
//!
//! A transaction is an operation `f: "txn"` whose value is a list of micro-ops, as Jepsen writes
//! them: `["append", k, v]` and `["r", k, [v...]]` over lists, or `["w", k, v]` and `["r", k, v]`
//! over registers (docs/history.md). From what the transactions read, each checker infers which
//! transaction must have come before which (Adya's dependencies: `ww` a write overwrote another,
//! `wr` a read saw a write, `rw` a read missed a write), builds the dependency graph and looks for
//! cycles: a cycle is a story that cannot have happened in any order, and its edge types say
//! which isolation level it breaks.
//!
//! Design decisions:
//! - **Version orders come only from what is sound.** A list read back is a prefix of the list's
//!   history, so every read orders the elements it shows (`list_append`). A register read shows
//!   one value and orders nothing; we use only that the initial (null) state precedes every
//!   write (`rw_register`; Elle's optional writes-follow-reads and per-key order assumptions are
//!   not made: they hold for some databases only).
//! - **Indeterminate transactions prove nothing by themselves.** An `info` transaction is in the
//!   graph only through what others observed of it: a read that saw its append or write proves
//!   it committed. Its own reads are unknown, it never completed (so it precedes nothing in real
//!   time), and unobserved writes of it give no edge. A `fail` transaction is not in the graph;
//!   seeing its writes is G1a.
//! - **Search by strongly connected components, cycles by breadth-first search.** The graph is
//!   stored as a compact adjacency array (one byte of edge kinds per edge). Tarjan's algorithm
//!   (iterative) splits it into components; each component with a cycle is searched for the
//!   worst anomaly first, each search a breadth-first search restricted to the component and to
//!   the edge kinds the anomaly allows, so the cycle shown is the shortest through its start.
//!   In order: G0 (ww only), G1c (ww and wr), G-single (exactly one rw), G-nonadjacent (rw edges
//!   never adjacent), G2-item (any). One anomaly per component: the worst one found. A search
//!   budget (edge visits) bounds the whole; running out only makes a model's answer `unknown`.
//! - **Real time only when needed.** Real-time edges (`T1` completed before `T2` was invoked)
//!   are built as Elle does, from a frontier of recently completed transactions, so their number
//!   stays near transactions × concurrency. They only matter for strict serializability, so the
//!   real-time pass runs only when the data dependencies alone show no anomaly.
//! - **Every consistency model is judged at once.** Each anomaly rules out a set of models
//!   (`Model::prohibiting`); the result names the strongest models the history still satisfies,
//!   what rules out each stronger one, and judges the verdict against `--consistency-model`.
//!   Deliberate difference from Elle: Elle's one `internal` anomaly is split in two. A
//!   transaction not seeing its own writes (`internal`) rules out every model here, read
//!   committed included (Elle counts it only from snapshot isolation and read atomic up; every
//!   SQL database reads its own writes at every level). A second read showing others' writes
//!   committed since the first (`nonrepeatable-read`, Adya's P2) is allowed by read committed
//!   only.

mod graph;
mod list_append;
mod rw_register;

use crate::history::{EventType, History, HistoryError, Process};
use crate::stream::{AnomalyKind, EventRef, Findings, StreamChecker, ValueRef};
use crate::verdict::{Budget, CheckResult};
use crate::{CheckOptions, Checker};
use graph::{Cycle, EdgeList, Graph, SearchLimits, RT};
use rustc_hash::FxHashMap;
use serde_json::{json, Map, Value};
use std::fmt::Write as _;
use std::time::Instant;

/// Which of the two transactional workloads a checker reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Lists: `append` and `r` returning the whole list.
    ListAppend,
    /// Registers: `w` and `r` returning one value.
    RwRegister,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::ListAppend => "list-append",
            Family::RwRegister => "rw-register",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Consistency models

/// The isolation levels these checkers judge, weakest first. `repeatable-read` and
/// `snapshot-isolation` are incomparable; every other pair is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Model {
    ReadCommitted,
    RepeatableRead,
    SnapshotIsolation,
    Serializable,
    StrictSerializable,
}

impl Model {
    pub const ALL: [Model; 5] = [
        Model::ReadCommitted,
        Model::RepeatableRead,
        Model::SnapshotIsolation,
        Model::Serializable,
        Model::StrictSerializable,
    ];
    pub const NAMES: &'static [&'static str] = &[
        "read-committed",
        "repeatable-read",
        "snapshot-isolation",
        "serializable",
        "strict-serializable",
    ];

    pub fn name(self) -> &'static str {
        Model::NAMES[self as usize]
    }

    pub fn parse(name: &str) -> Option<Model> {
        let name = name.to_ascii_lowercase().replace([' ', '_'], "-");
        Model::NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| Model::ALL[i])
    }

    /// True when every history satisfying `self` also satisfies `weaker`.
    pub fn implies(self, weaker: Model) -> bool {
        use Model::*;
        self == weaker
            || match self {
                ReadCommitted => false,
                RepeatableRead | SnapshotIsolation => weaker == ReadCommitted,
                Serializable => weaker != StrictSerializable,
                StrictSerializable => true,
            }
    }

    /// The models an anomaly kind rules out (those that prohibit it, and so every stronger one).
    pub fn prohibiting(kind: Kind) -> &'static [Model] {
        use Model::*;
        const ALL: &[Model] = &Model::ALL;
        const ITEM: &[Model] = &[
            RepeatableRead,
            SnapshotIsolation,
            Serializable,
            StrictSerializable,
        ];
        const G2: &[Model] = &[RepeatableRead, Serializable, StrictSerializable];
        const REALTIME: &[Model] = &[StrictSerializable];
        match kind {
            Kind::G0
            | Kind::G1a
            | Kind::G1b
            | Kind::G1c
            | Kind::Internal
            | Kind::GarbageRead
            | Kind::DuplicateElements
            | Kind::IncompatibleOrder => ALL,
            Kind::NonrepeatableRead | Kind::GSingle | Kind::GNonadjacent | Kind::LostUpdate => ITEM,
            Kind::G2Item => G2,
            Kind::G0Realtime
            | Kind::G1cRealtime
            | Kind::GSingleRealtime
            | Kind::GNonadjacentRealtime
            | Kind::G2ItemRealtime => REALTIME,
        }
    }
}

/// Every kind the transactional checkers report (docs/history.md), in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A cycle of `ww` edges (write cycle).
    G0,
    /// An `ok` read shows a value only a failed transaction wrote (aborted read).
    G1a,
    /// A read shows a value its writer overwrote within the same transaction (intermediate read).
    G1b,
    /// A cycle of `ww` and `wr` edges (cyclic information flow).
    G1c,
    /// A transaction's read misses its own earlier writes of the key, or a list read shrinks.
    Internal,
    /// A transaction's second read of a key shows writes others committed since its first.
    NonrepeatableRead,
    /// A read of a value never written.
    GarbageRead,
    /// A list read shows an element twice.
    DuplicateElements,
    /// Two reads of a list that cannot both be prefixes of one list.
    IncompatibleOrder,
    /// A cycle with exactly one `rw` edge (read skew).
    GSingle,
    /// A cycle with several `rw` edges, no two adjacent.
    GNonadjacent,
    /// Two committed transactions read the same version of a key and both wrote it.
    LostUpdate,
    /// A cycle with adjacent `rw` edges (write skew).
    G2Item,
    /// A G0 cycle that needs a real-time edge.
    G0Realtime,
    /// A G1c cycle that needs a real-time edge.
    G1cRealtime,
    /// A G-single cycle that needs a real-time edge.
    GSingleRealtime,
    /// A G-nonadjacent cycle that needs a real-time edge.
    GNonadjacentRealtime,
    /// A G2-item cycle that needs a real-time edge.
    G2ItemRealtime,
}

impl AnomalyKind for Kind {
    /// The consistency model the verdict judges (`--consistency-model`).
    type Rule = Model;

    const ALL: &'static [Kind] = &[
        Kind::G0,
        Kind::G1a,
        Kind::G1b,
        Kind::G1c,
        Kind::Internal,
        Kind::NonrepeatableRead,
        Kind::GarbageRead,
        Kind::DuplicateElements,
        Kind::IncompatibleOrder,
        Kind::GSingle,
        Kind::GNonadjacent,
        Kind::LostUpdate,
        Kind::G2Item,
        Kind::G0Realtime,
        Kind::G1cRealtime,
        Kind::GSingleRealtime,
        Kind::GNonadjacentRealtime,
        Kind::G2ItemRealtime,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::G0 => "G0",
            Kind::G1a => "G1a",
            Kind::G1b => "G1b",
            Kind::G1c => "G1c",
            Kind::Internal => "internal",
            Kind::NonrepeatableRead => "nonrepeatable-read",
            Kind::GarbageRead => "garbage-read",
            Kind::DuplicateElements => "duplicate-elements",
            Kind::IncompatibleOrder => "incompatible-order",
            Kind::GSingle => "G-single",
            Kind::GNonadjacent => "G-nonadjacent",
            Kind::LostUpdate => "lost-update",
            Kind::G2Item => "G2-item",
            Kind::G0Realtime => "G0-realtime",
            Kind::G1cRealtime => "G1c-realtime",
            Kind::GSingleRealtime => "G-single-realtime",
            Kind::GNonadjacentRealtime => "G-nonadjacent-realtime",
            Kind::G2ItemRealtime => "G2-item-realtime",
        }
    }

    fn meaning(self) -> &'static str {
        match self {
            Kind::G0 => "a cycle of ww (write-write) dependencies: a write cycle",
            Kind::G1a => "an ok read shows a value only a failed transaction wrote (aborted read)",
            Kind::G1b => "a read shows a value its writer overwrote within the same transaction (intermediate read)",
            Kind::G1c => "a cycle of ww and wr dependencies (cyclic information flow)",
            Kind::Internal => "a transaction's read misses its own earlier writes of the key, or a list read shrinks",
            Kind::NonrepeatableRead => "a transaction's second read of a key shows writes others committed since its first",
            Kind::GarbageRead => "a read of a value that was never written",
            Kind::DuplicateElements => "a list read shows one element twice",
            Kind::IncompatibleOrder => "two reads of a list that cannot both be prefixes of one list",
            Kind::GSingle => "a dependency cycle with exactly one rw (anti-dependency) edge (read skew)",
            Kind::GNonadjacent => "a dependency cycle with several rw edges, no two adjacent",
            Kind::LostUpdate => "two committed transactions read the same version of a key and both wrote it",
            Kind::G2Item => "a dependency cycle with adjacent rw edges (write skew)",
            Kind::G0Realtime => "a G0 cycle that needs a real-time edge (one transaction ended before another began)",
            Kind::G1cRealtime => "a G1c cycle that needs a real-time edge (one transaction ended before another began)",
            Kind::GSingleRealtime => "a G-single cycle that needs a real-time edge (one transaction ended before another began)",
            Kind::GNonadjacentRealtime => "a G-nonadjacent cycle that needs a real-time edge (one transaction ended before another began)",
            Kind::G2ItemRealtime => "a G2-item cycle that needs a real-time edge (one transaction ended before another began)",
        }
    }

    /// A kind counts when `model` is among the models it rules out ([`Model::prohibiting`]).
    fn counts(self, model: Model) -> bool {
        Model::prohibiting(self).contains(&model)
    }
}

// ---------------------------------------------------------------------------------------------
// The vocabulary: transactions read from a history

/// Null: a register never written, or a value absent.
pub(crate) const NIL: u64 = u64::MAX;
/// Values with this bit set are interned texts (strings, negative or fractional numbers).
const TEXT_BIT: u64 = 1 << 63;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MopKind {
    Append,
    Write,
    Read,
}

/// One micro-operation. Keys are dense ids; values are non-negative integers or interned texts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mop {
    pub kind: MopKind,
    pub key: u32,
    /// The value appended or written; for a register read, the value read (`NIL` for null).
    pub value: u64,
    /// For a list read: the elements read, a range of `Txns::elems`.
    pub list_start: u32,
    pub list_len: u32,
    /// False for a read whose result is unknown (an `info` or `fail` transaction's reads).
    pub known: bool,
}

/// One transaction.
#[derive(Debug, Clone)]
pub(crate) struct Txn {
    pub process: u64,
    pub invoke_index: u64,
    pub complete_index: Option<u64>,
    pub outcome: EventType,
    pub mop_start: u32,
    pub mop_len: u32,
}

/// Every transaction of a history, flattened: micro-ops and list elements in shared arrays.
#[derive(Debug, Default)]
pub(crate) struct Txns {
    pub txns: Vec<Txn>,
    pub mops: Vec<Mop>,
    pub elems: Vec<u64>,
    /// Key id -> the key's value code (for display).
    key_codes: Vec<u64>,
    key_ids: FxHashMap<u64, u32>,
    texts: Vec<String>,
    text_ids: FxHashMap<String, u64>,
    /// Operations that are not transactions, by `f`.
    pub ignored: Vec<(String, u64)>,
}

impl Txns {
    pub fn mops(&self, t: u32) -> &[Mop] {
        let txn = &self.txns[t as usize];
        &self.mops[txn.mop_start as usize..(txn.mop_start + txn.mop_len) as usize]
    }

    pub fn list(&self, m: &Mop) -> &[u64] {
        &self.elems[m.list_start as usize..(m.list_start + m.list_len) as usize]
    }

    pub fn key_count(&self) -> usize {
        self.key_codes.len()
    }

    /// A value as a person reads it: the integer, the text, or `nil`.
    pub fn show(&self, v: u64) -> String {
        if v == NIL {
            "nil".to_string()
        } else if v & TEXT_BIT != 0 {
            self.texts[(v & !TEXT_BIT) as usize].clone()
        } else {
            v.to_string()
        }
    }

    pub fn show_key(&self, k: u32) -> String {
        self.show(self.key_codes[k as usize])
    }

    /// A list as a person reads it, shortened to its last elements when long.
    pub fn show_list(&self, list: &[u64]) -> String {
        const SHOWN_MAX: usize = 6;
        let shown: Vec<String> = list
            .iter()
            .skip(list.len().saturating_sub(SHOWN_MAX))
            .map(|&v| self.show(v))
            .collect();
        if list.len() > SHOWN_MAX {
            format!("[... {}]", shown.join(" "))
        } else {
            format!("[{}]", shown.join(" "))
        }
    }

    fn code(&mut self, v: &Value) -> Result<u64, String> {
        match v {
            Value::Number(n) if n.as_u64().is_some_and(|n| n < TEXT_BIT) => {
                Ok(n.as_u64().unwrap_or(0))
            }
            Value::Null => Err("null".to_string()),
            Value::Array(_) | Value::Object(_) => Err(format!("{v}")),
            Value::String(s) => Ok(self.text(s)),
            other => Ok(self.text(&other.to_string())),
        }
    }

    fn text(&mut self, s: &str) -> u64 {
        if let Some(&id) = self.text_ids.get(s) {
            return id;
        }
        let id = TEXT_BIT | self.texts.len() as u64;
        self.texts.push(s.to_string());
        self.text_ids.insert(s.to_string(), id);
        id
    }

    fn key(&mut self, v: &Value) -> Result<u32, String> {
        // A key written as a number and as its decimal text is one key, as everywhere else.
        let code = match v {
            Value::String(s) => match s.parse::<u64>() {
                Ok(n) if n < TEXT_BIT && n.to_string() == *s => n,
                _ => self.text(s),
            },
            other => self.code(other)?,
        };
        let next = self.key_codes.len() as u32;
        let id = *self.key_ids.entry(code).or_insert(next);
        if id == next {
            self.key_codes.push(code);
        }
        Ok(id)
    }

    /// Reads every `txn` operation of `history`. A micro-op of the wrong shape, or of the other
    /// family, is an error naming its line.
    pub fn read(history: &History, family: Family) -> Result<Txns, HistoryError> {
        let mut b = TxnBuilder::new(family);
        for (pos, e) in history.events.iter().enumerate() {
            b.push(pos + 1, &EventRef::of(e))?;
        }
        Ok(b.finish())
    }

    /// Parses micro-ops from `value` (of the event on `line`) onto the end of `mops`.
    fn parse_mops(
        &mut self,
        value: &Value,
        reads_known: bool,
        family: Family,
        line: usize,
    ) -> Result<(), HistoryError> {
        let err = |message: String| HistoryError { line, message };
        let Value::Array(list) = value else {
            return Err(err(format!(
                "txn has value {}; expected a list of micro-ops like [[\"append\", 1, 2], [\"r\", 1, null]] (see docs/history.md)",
                short(value)
            )));
        };
        for mop in list {
            self.push_mop(mop, family, reads_known)
                .map_err(|message| err(format!("micro-op {}: {message}", short(mop))))?;
        }
        Ok(())
    }

    fn push_mop(&mut self, mop: &Value, family: Family, reads_known: bool) -> Result<(), String> {
        let expected = match family {
            Family::ListAppend => "[\"append\", KEY, VALUE] or [\"r\", KEY, [VALUE...]]",
            Family::RwRegister => "[\"w\", KEY, VALUE] or [\"r\", KEY, VALUE]",
        };
        let Some(parts) = mop.as_array().filter(|p| p.len() == 2 || p.len() == 3) else {
            return Err(format!("expected {expected}"));
        };
        let f = parts[0].as_str().unwrap_or("");
        let key = self
            .key(&parts[1])
            .map_err(|v| format!("key {v}; expected a number or a string"))?;
        let arg = parts.get(2).unwrap_or(&Value::Null);
        let kind = match (f, family) {
            ("r" | "read", _) => MopKind::Read,
            ("append", Family::ListAppend) => MopKind::Append,
            ("w" | "write", Family::RwRegister) => MopKind::Write,
            ("w" | "write", Family::ListAppend) => {
                return Err(format!("a register write in a list-append history; expected {expected} (use --checker rw-register)"))
            }
            ("append", Family::RwRegister) => {
                return Err(format!("an append in an rw-register history; expected {expected} (use --checker list-append)"))
            }
            _ => return Err(format!("unknown micro-op {f:?}; expected {expected}")),
        };
        let mut m = Mop {
            kind,
            key,
            value: NIL,
            list_start: self.elems.len() as u32,
            list_len: 0,
            known: true,
        };
        match kind {
            MopKind::Append | MopKind::Write => {
                m.value = self
                    .code(arg)
                    .map_err(|v| format!("value {v}; expected a number or a string to {f}"))?;
            }
            MopKind::Read if !reads_known => m.known = false,
            MopKind::Read => match (family, arg) {
                (_, Value::Null) => {}
                (Family::ListAppend, Value::Array(items)) => {
                    for item in items {
                        let v = self
                            .code(item)
                            .map_err(|v| format!("element {v}; expected numbers or strings"))?;
                        self.elems.push(v);
                    }
                    m.list_len = items.len() as u32;
                }
                (Family::ListAppend, other) => {
                    return Err(format!("read {}; expected a list or null", short(other)))
                }
                (Family::RwRegister, other) => {
                    m.value = self
                        .code(other)
                        .map_err(|v| format!("read {v}; expected a number, a string or null"))?;
                }
            },
        }
        self.mops.push(m);
        Ok(())
    }
}

/// An invocation waiting for its completion.
struct OpenOp {
    /// The transaction's slot; `None` for an operation that is not a transaction.
    slot: Option<usize>,
    f: Box<str>,
    line: usize,
    /// The invocation's micro-ops (reads unknown), used unless an `ok` completion says more.
    mops: Vec<Mop>,
}

/// Builds [`Txns`] one event at a time, pairing invocations and completions by the rules of
/// [`crate::Pairer`] without keeping any event: the JSONL path never holds the history.
pub(crate) struct TxnBuilder {
    family: Family,
    txns: Txns,
    open: FxHashMap<u64, OpenOp>,
    retired: rustc_hash::FxHashSet<u64>,
    ignored: FxHashMap<String, u64>,
}

impl TxnBuilder {
    pub fn new(family: Family) -> Self {
        TxnBuilder {
            family,
            txns: Txns::default(),
            open: FxHashMap::default(),
            retired: Default::default(),
            ignored: FxHashMap::default(),
        }
    }

    /// Feeds the event on `line` (1-based).
    pub fn push(&mut self, line: usize, e: &EventRef<'_>) -> Result<(), HistoryError> {
        let Process::Client(p) = e.process else {
            return Ok(());
        };
        let err = |message: String| HistoryError { line, message };
        if e.kind == EventType::Invoke {
            if self.retired.contains(&p) {
                return Err(err(format!("process {p} invokes again after an info completion; a process that got info must never invoke again (its worker continues under a new process id)")));
            }
            if let Some(o) = self.open.get(&p) {
                return Err(err(format!("process {p} invokes {:?} while its invocation at line {} is still open; expected a completion first", e.f, o.line)));
            }
            let mut open = OpenOp {
                slot: None,
                f: e.f.into(),
                line,
                mops: Vec::new(),
            };
            if e.f == "txn" {
                let start = self.txns.mops.len();
                with_value(e.value, |v| {
                    self.txns.parse_mops(v, false, self.family, line)
                })?;
                open.mops = self.txns.mops.split_off(start);
                self.txns.txns.push(Txn {
                    process: p,
                    invoke_index: e.index,
                    complete_index: None,
                    outcome: EventType::Info,
                    mop_start: 0,
                    mop_len: 0,
                });
                open.slot = Some(self.txns.txns.len() - 1);
            } else {
                *self.ignored.entry(e.f.to_string()).or_default() += 1;
            }
            self.open.insert(p, open);
            return Ok(());
        }
        let Some(open) = self.open.remove(&p) else {
            return Err(err(format!("{} completion of {:?} on process {p} has no open invocation; expected an invoke on process {p} before it", e.kind, e.f)));
        };
        if *open.f != *e.f {
            return Err(err(format!("{} completion of {:?} on process {p} does not match its invocation of {:?} at line {}", e.kind, e.f, open.f, open.line)));
        }
        if e.kind == EventType::Info {
            self.retired.insert(p);
        }
        let Some(slot) = open.slot else {
            return Ok(());
        };
        let start = self.txns.mops.len() as u32;
        // An ok transaction's completion carries what it read; otherwise only the invocation
        // says what it meant to do, and its reads are unknown.
        if e.kind == EventType::Ok && !e.value.is_null() {
            with_value(e.value, |v| {
                self.txns.parse_mops(v, true, self.family, line)
            })?;
        } else {
            self.txns.mops.extend(open.mops);
        }
        let t = &mut self.txns.txns[slot];
        t.complete_index = Some(e.index);
        t.outcome = e.kind;
        t.mop_start = start;
        t.mop_len = self.txns.mops.len() as u32 - start;
        Ok(())
    }

    /// The transactions; those never completed are `info` with their invocation's micro-ops.
    pub fn finish(mut self) -> Txns {
        let mut open: Vec<OpenOp> = self
            .open
            .into_values()
            .filter(|o| o.slot.is_some())
            .collect();
        open.sort_unstable_by_key(|o| o.slot);
        for o in open {
            let start = self.txns.mops.len() as u32;
            self.txns.mops.extend(o.mops);
            let t = &mut self.txns.txns[o.slot.expect("a transaction")];
            t.mop_start = start;
            t.mop_len = self.txns.mops.len() as u32 - start;
        }
        let mut ignored: Vec<(String, u64)> = self.ignored.into_iter().collect();
        ignored.sort();
        self.txns.ignored = ignored;
        self.txns
    }
}

/// Calls `f` with the value as a tree, parsing it first when it is JSON text.
fn with_value<R>(
    v: ValueRef<'_>,
    f: impl FnOnce(&Value) -> Result<R, HistoryError>,
) -> Result<R, HistoryError> {
    match v {
        ValueRef::Null => f(&Value::Null),
        ValueRef::Tree(v) => f(v),
        ValueRef::Json(text) => {
            let parsed: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            f(&parsed)
        }
    }
}

/// The JSONL streaming form of the checkers: transactions are built as the file is read, the
/// history is never held.
pub struct TxnStream {
    builder: TxnBuilder,
    family: Family,
    model: Model,
}

impl TxnStream {
    pub fn new(family: Family, options: &CheckOptions) -> Result<Self, String> {
        let checker = TxnChecker::new(family, options)?;
        Ok(TxnStream {
            builder: TxnBuilder::new(family),
            family,
            model: checker.model,
        })
    }
}

impl StreamChecker for TxnStream {
    fn name(&self) -> &str {
        self.family.name()
    }

    fn event(&mut self, line: usize, e: &EventRef<'_>) -> Result<(), HistoryError> {
        self.builder.push(line, e)
    }

    fn finish(self: Box<Self>) -> CheckResult {
        let txns = self.builder.finish();
        check_txns(&txns, self.family, self.model, &Budget::default())
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}...", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

// ---------------------------------------------------------------------------------------------
// What an inference gives the search

/// The facts one family infers: dependency edges, anomalies seen without a cycle, and how to
/// put an edge into words.
pub(crate) trait Inference {
    /// Why `a` precedes `b` by an edge of `kind` (one of `WW`, `WR`, `RW`), as a clause such as
    /// "T1 appended 3 to key 5 and T2 appended 4 right after it". `None` if no reason is found
    /// (a programmer error: edges come from the same facts).
    fn explain(&self, a: u32, b: u32, kind: u8, name: &dyn Fn(u32) -> String) -> Option<String>;
}

/// Anomalies found (G1a, G1b, internal, ..., then the cycles), and reasons the answer is
/// unknown.
#[derive(Default)]
pub(crate) struct Direct {
    pub findings: Findings<Kind>,
    /// The kinds found, in the order first found.
    pub kinds: Vec<Kind>,
    pub unknown: Vec<String>,
}

impl Direct {
    pub fn add(&mut self, kind: Kind, make: impl FnOnce() -> (Vec<u64>, String, Value)) {
        if !self.kinds.contains(&kind) {
            self.kinds.push(kind);
        }
        self.findings.add(kind, make);
    }

    fn findings_empty(&self) -> bool {
        self.kinds.is_empty()
    }
}

// ---------------------------------------------------------------------------------------------
// The checker

/// The `list-append` or `rw-register` checker.
pub struct TxnChecker {
    family: Family,
    model: Model,
}

impl TxnChecker {
    /// `options.consistency_model` (default `serializable`) is the model the verdict judges.
    pub fn new(family: Family, options: &CheckOptions) -> Result<Self, String> {
        let model = match options.consistency_model.as_deref() {
            None => Model::Serializable,
            Some(name) => Model::parse(name).ok_or_else(|| {
                format!(
                    "unknown consistency model {name:?}; expected one of: {}",
                    Model::NAMES.join(", ")
                )
            })?,
        };
        Ok(TxnChecker { family, model })
    }
}

impl Checker for TxnChecker {
    fn name(&self) -> &str {
        self.family.name()
    }

    fn check(&self, history: &History, budget: &Budget) -> Result<CheckResult, HistoryError> {
        let txns = Txns::read(history, self.family)?;
        Ok(check_txns(&txns, self.family, self.model, budget))
    }
}

/// Edge visits the cycle search may make before it stops with `unknown` for the models it could
/// not settle. About a second of work on one core.
const SEARCH_STEPS_MAX: u64 = 200_000_000;

fn check_txns(txns: &Txns, family: Family, model: Model, budget: &Budget) -> CheckResult {
    let checker = family.name();
    let started = Instant::now();
    let mut counts = [0u64; 3];
    for t in &txns.txns {
        counts[match t.outcome {
            EventType::Ok => 0,
            EventType::Info | EventType::Invoke => 1,
            EventType::Fail => 2,
        }] += 1;
    }
    if counts[0] == 0 {
        return CheckResult::unknown(
            checker,
            format!(
                "no completed operations to check: no ok transactions (f \"txn\"){}",
                ignored_note(&txns.ignored)
            ),
        );
    }
    let mut edges = EdgeList::default();
    let (mut direct, inference): (Direct, Box<dyn Inference + '_>) = match family {
        Family::ListAppend => {
            let a = list_append::Analysis::new(txns);
            (a.infer(&mut edges), Box::new(a))
        }
        Family::RwRegister => {
            let a = rw_register::Analysis::new(txns);
            (a.infer(&mut edges), Box::new(a))
        }
    };
    let data_edges = edges.len();
    let n = txns.txns.len();
    let data_graph = Graph::new(n, edges);
    let mut limits = SearchLimits::new(SEARCH_STEPS_MAX, budget.time_limit, started);
    let mut cycles = graph::search(&data_graph, 0, &mut limits);
    let mut realtime_edges = 0;
    let mut realtime_searched = false;
    if cycles.found.is_empty() && direct.findings_empty() {
        // Real time matters only for strict serializability, and only when nothing weaker is
        // already broken: every anomaly found so far rules strict serializability out.
        let mut edges = data_graph.to_edges();
        realtime(txns, &mut edges);
        realtime_edges = edges.len() - data_edges;
        let g = Graph::new(n, edges);
        cycles = graph::search(&g, RT, &mut limits);
        realtime_searched = true;
    }
    let label_of = |t: u32| -> String { txn_label(txns, t) };
    for c in &cycles.found {
        let kind = c.classify();
        direct.add(kind, || {
            explain_cycle(txns, c, inference.as_ref(), &label_of)
        });
    }
    let mut incomplete: Vec<Model> = Vec::new();
    if cycles.incomplete_single {
        incomplete.push(Model::SnapshotIsolation);
    }
    if cycles.incomplete_single && realtime_searched {
        incomplete.push(Model::StrictSerializable);
    }
    let found_kinds = direct.kinds.clone();
    let mut ruled_out: Vec<(Model, Vec<&'static str>)> = Vec::new();
    for m in Model::ALL {
        let by: Vec<&'static str> = found_kinds
            .iter()
            .filter(|k| Model::prohibiting(**k).contains(&m))
            .map(|k| k.name())
            .collect();
        if !by.is_empty() {
            ruled_out.push((m, by));
        }
    }
    let is_out = |m: Model| ruled_out.iter().any(|(o, _)| *o == m);
    // A model is unsettled when an anomaly it prohibits may have been missed.
    let unsettled = |m: Model| {
        !is_out(m) && (incomplete.iter().any(|&i| m.implies(i)) || !direct.unknown.is_empty())
    };
    let satisfied: Vec<Model> = Model::ALL
        .into_iter()
        .filter(|&m| !is_out(m) && !unsettled(m))
        .collect();
    let strongest: Vec<&'static str> = satisfied
        .iter()
        .filter(|&&m| !satisfied.iter().any(|&s| s != m && s.implies(m)))
        .map(|m| m.name())
        .collect();
    let summary_findings = direct.findings.finish(model);
    let mut summary = format!(
        "{} transactions ({} ok, {} info, {} fail) over {} keys, judged as {}: {}",
        n,
        counts[0],
        counts[1],
        counts[2],
        txns.key_count(),
        model.name(),
        summary_findings.sentence()
    );
    let _ = write!(
        summary,
        ". Strongest model satisfied: {}",
        if strongest.is_empty() {
            "none of read-committed and above".to_string()
        } else {
            strongest.join(" and ")
        }
    );
    for (m, by) in &ruled_out {
        // Name only the weakest models ruled out; every stronger one is out too.
        if !ruled_out.iter().any(|(o, _)| o != m && m.implies(*o)) {
            let _ = write!(
                summary,
                "; {} and every stronger model ruled out by {}",
                m.name(),
                by.join(", ")
            );
        }
    }
    summary.push_str(&ignored_note(&txns.ignored));
    summary.push('.');
    let mut unknown_reason: Option<String> = None;
    if !direct.unknown.is_empty() {
        unknown_reason = Some(direct.unknown.join("; "));
    } else if incomplete.iter().any(|&i| model.implies(i)) && !is_out(model) {
        unknown_reason = Some(format!(
            "the cycle search stopped after {} edge visits (its budget) before it could rule out every anomaly {} prohibits",
            limits.steps_taken(),
            model.name()
        ));
    }
    let mut ruled = Map::new();
    for (m, by) in &ruled_out {
        ruled.insert(m.name().to_string(), json!(by));
    }
    let details = json!({
        "consistency_model": model.name(),
        "strongest_satisfied": strongest,
        "ruled_out": ruled,
        "unsettled": Model::ALL.into_iter().filter(|&m| unsettled(m)).map(Model::name).collect::<Vec<_>>(),
        "transactions": {"ok": counts[0], "info": counts[1], "fail": counts[2]},
        "graph": {
            "dependency_edges": data_edges,
            "realtime_edges": realtime_edges,
            "realtime_searched": realtime_searched,
            "search_steps": limits.steps_taken(),
            "components_with_cycles": cycles.components,
        },
        "ignored": txns.ignored.iter().map(|(f, n)| json!({"f": f, "count": n})).collect::<Vec<_>>(),
    });
    summary_findings.into_result(checker, summary, unknown_reason, details)
}

fn ignored_note(ignored: &[(String, u64)]) -> String {
    if ignored.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = ignored.iter().map(|(f, n)| format!("{f} {n}")).collect();
    format!(
        "; ignored operations that are not transactions: {}",
        parts.join(", ")
    )
}

/// The event indices of a transaction (invocation, and completion when it has one).
/// The transaction that wrote one (key, value): an `append` for lists, a `w` for registers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Writer {
    pub txn: u32,
    /// False when the same transaction wrote the key again later.
    pub last_in_txn: bool,
}

/// Every write of one kind in a history, by (key, value). Values are unique per key in these
/// workloads, so a value names its writer; a value written twice makes the history unjudgeable
/// (kept as at most three sentences for `unknown`).
pub(crate) struct WriteIndex {
    /// Writes of transactions that did not fail.
    pub writes: FxHashMap<(u32, u64), Writer>,
    /// Writes of failed transactions: the first one of each value.
    pub failed: FxHashMap<(u32, u64), u32>,
    pub duplicates: Vec<String>,
}

impl WriteIndex {
    /// `kind` is `Append` or `Write`; `verb` and `rule` word the duplicate sentence ("appended",
    /// "list-append needs every element of a key to be unique").
    pub(crate) fn new(t: &Txns, kind: MopKind, verb: &str, rule: &str) -> WriteIndex {
        let mut index = WriteIndex {
            writes: FxHashMap::default(),
            failed: FxHashMap::default(),
            duplicates: Vec::new(),
        };
        for (i, txn) in t.txns.iter().enumerate() {
            let i = i as u32;
            let mops = t.mops(i);
            for (j, m) in mops.iter().enumerate() {
                if m.kind != kind {
                    continue;
                }
                if txn.outcome == EventType::Fail {
                    index.failed.entry((m.key, m.value)).or_insert(i);
                    continue;
                }
                if let Some(first) = index.writes.get(&(m.key, m.value)) {
                    if index.duplicates.len() < 3 {
                        index.duplicates.push(format!(
                            "{} {verb} {} to key {} again after {}; {rule}",
                            txn_label(t, i),
                            t.show(m.value),
                            t.show_key(m.key),
                            txn_label(t, first.txn)
                        ));
                    }
                    continue;
                }
                let last_in_txn = !mops[j + 1..]
                    .iter()
                    .any(|n| n.kind == kind && n.key == m.key);
                index.writes.insert(
                    (m.key, m.value),
                    Writer {
                        txn: i,
                        last_in_txn,
                    },
                );
            }
        }
        index
    }
}

/// A transaction's external reads: its first micro-op on each key, when that is a read of a
/// known value (what it saw of others), as `(key, what)`.
pub(crate) fn external_reads<'t, R>(
    t: &'t Txns,
    txn: u32,
    what: impl Fn(&'t Mop) -> R,
) -> Vec<(u32, R)> {
    let mut seen: Vec<u32> = Vec::new();
    let mut out = Vec::new();
    for m in t.mops(txn) {
        if seen.contains(&m.key) {
            continue;
        }
        seen.push(m.key);
        if m.kind == MopKind::Read && m.known {
            out.push((m.key, what(m)));
        }
    }
    out
}

pub(crate) fn txn_events(txns: &Txns, t: u32) -> Vec<u64> {
    let txn = &txns.txns[t as usize];
    let mut out = vec![txn.invoke_index];
    out.extend(txn.complete_index);
    out
}

/// How a transaction is named in evidence: its events and process.
pub(crate) fn txn_label(txns: &Txns, t: u32) -> String {
    let txn = &txns.txns[t as usize];
    match txn.complete_index {
        Some(c) => format!(
            "the {} txn of process {} at events {}-{}",
            txn.outcome, txn.process, txn.invoke_index, c
        ),
        None => format!(
            "the never-completed txn of process {} invoked at event {}",
            txn.process, txn.invoke_index
        ),
    }
}

/// The words and data of one cycle: "Let T1 = ...; then T1 < T2 because ...; ...".
fn explain_cycle(
    txns: &Txns,
    c: &Cycle,
    inference: &dyn Inference,
    label: &dyn Fn(u32) -> String,
) -> (Vec<u64>, String, Value) {
    let names: Vec<u32> = c.steps.iter().map(|s| s.0).collect();
    let name = |t: u32| -> String {
        match names.iter().position(|&x| x == t) {
            Some(i) => format!("T{}", i + 1),
            None => format!("T?{t}"),
        }
    };
    let mut ops = Vec::new();
    let mut lets = Vec::new();
    let mut txn_data = Vec::new();
    for (i, &t) in names.iter().enumerate() {
        let txn = &txns.txns[t as usize];
        ops.push(txn.invoke_index);
        ops.extend(txn.complete_index);
        lets.push(format!("T{} = {}", i + 1, label(t)));
        txn_data.push(json!({
            "name": format!("T{}", i + 1),
            "process": txn.process,
            "invoke_index": txn.invoke_index,
            "complete_index": txn.complete_index,
            "type": txn.outcome.as_str(),
        }));
    }
    let mut steps_text = Vec::new();
    let mut steps_data = Vec::new();
    for (i, &(a, k)) in c.steps.iter().enumerate() {
        let b = c.steps[(i + 1) % c.steps.len()].0;
        let reason = if k == RT {
            let (ta, tb) = (&txns.txns[a as usize], &txns.txns[b as usize]);
            Some(format!(
                "{} completed (event {}) before {} was invoked (event {})",
                name(a),
                ta.complete_index.unwrap_or(0),
                name(b),
                tb.invoke_index
            ))
        } else {
            inference.explain(a, b, k, &name)
        };
        debug_assert!(reason.is_some(), "an edge without a reason");
        let reason = reason.unwrap_or_else(|| format!("{} precedes {}", name(a), name(b)));
        let edge = graph::kind_name(k);
        steps_text.push(format!(
            "{reason}, so {} precedes {} ({edge})",
            name(a),
            name(b)
        ));
        steps_data.push(json!({"from": name(a), "to": name(b), "type": edge, "text": reason}));
    }
    let explanation = format!(
        "a cycle of {} transactions. Let {}. Then: {}; so T1 precedes itself.",
        names.len(),
        lets.join(", "),
        steps_text.join("; ")
    );
    let data = json!({"cycle": txn_data, "steps": steps_data});
    (ops, explanation, data)
}

/// Real-time edges: `a` completed before `b` was invoked. Transitively reduced as Elle does: a
/// frontier of completed transactions not yet covered by a later completion, each invocation
/// linked from the whole frontier.
fn realtime(txns: &Txns, edges: &mut EdgeList) {
    // (event index, txn, is completion), for transactions that may have committed.
    let mut events: Vec<(u64, u32, bool)> = Vec::with_capacity(txns.txns.len() * 2);
    for (t, txn) in txns.txns.iter().enumerate() {
        if txn.outcome == EventType::Fail {
            continue;
        }
        events.push((txn.invoke_index, t as u32, false));
        if let (EventType::Ok, Some(c)) = (txn.outcome, txn.complete_index) {
            events.push((c, t as u32, true));
        }
    }
    events.sort_unstable();
    let mut frontier: Vec<u32> = Vec::new();
    // Open transaction -> the frontier it saw at its invocation.
    let mut seen_at_invoke: FxHashMap<u32, Vec<u32>> = FxHashMap::default();
    for (_, t, completion) in events {
        if completion {
            let before = seen_at_invoke.remove(&t).unwrap_or_default();
            frontier.retain(|f| !before.contains(f));
            frontier.push(t);
        } else {
            for &f in &frontier {
                edges.add(f, t, RT);
            }
            if txns.txns[t as usize].outcome == EventType::Ok {
                seen_at_invoke.insert(t, frontier.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests;
