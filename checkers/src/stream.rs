//! Checkers that run in one pass over a history, in memory proportional to what they track.
//!
//! The delivery, set, unique, idempotency, versioned-append, counter and bank checkers are all
//! linear: each is a [`StreamChecker`], a state machine fed one [`EventRef`] at a time and asked
//! for its verdict at the end. The same code serves both entry points, so they cannot disagree:
//! [`check_jsonl`] feeds events straight from a JSONL file (ten million events never sit in
//! memory), and [`Streamed`] implements [`Checker`] by feeding the events of an in-memory
//! [`History`]. The transactional checkers (`crate::txn`) use the JSONL entry point too, so the
//! history is never held, but keep every transaction: their graph needs them all.
//!
//! Streaming must not weaken validation. [`StreamPairer`] enforces the same pairing contract as
//! [`crate::Pairer`] but keeps only open invocations (one per process) and the set of processes
//! retired by an `info`, never the operations themselves.
//!
//! The helpers every such checker needs live here too: [`Id`] and [`Interner`] (message ids,
//! elements and keys as dense `u32`s, without allocating on lookup), and [`Findings`] (anomalies
//! per kind, with exact counts and a bounded list of evidence).

use crate::formats::stream::for_each_event;
pub use crate::formats::stream::{EventRef, ValueRef};
use crate::formats::ReadError;
use crate::history::{EventType, FaultWindow, History, HistoryError, Process};
use crate::verdict::{Anomaly, Budget, CheckResult, OpTally};
use crate::{CheckOptions, Checker};
use hashbrown::HashTable;
use rustc_hash::{FxHashMap, FxHashSet, FxHasher};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::fmt;
use std::hash::Hasher;
use std::io::BufRead;
use std::path::Path;

/// A checker that judges a history fed to it one event at a time.
pub trait StreamChecker: Send {
    fn name(&self) -> &str;
    /// Feeds the next event. `line` is 1-based, for error messages. A history that breaks the
    /// contract (bad pairing, a value of the wrong shape for this checker) is an error.
    fn event(&mut self, line: usize, e: &EventRef<'_>) -> Result<(), HistoryError>;
    /// The verdict on everything fed so far.
    fn finish(self: Box<Self>) -> CheckResult;
}

/// Names of the checkers that have a streaming form, in `--help` order.
pub const STREAMING_CHECKERS: &[&str] = &[
    "delivery",
    "set",
    "unique",
    "idempotency",
    "versioned-append",
    "counter",
    "bank",
    "list-append",
    "rw-register",
];

/// Builds the streaming checker called `name`; `None` when it has no streaming form, `Err` when
/// the options do not suit it.
pub fn streaming_by_name(
    name: &str,
    options: &CheckOptions,
) -> Option<Result<Box<dyn StreamChecker>, String>> {
    fn boxed<C: StreamChecker + 'static>(
        c: Result<C, String>,
    ) -> Result<Box<dyn StreamChecker>, String> {
        c.map(|c| Box::new(c) as Box<dyn StreamChecker>)
    }
    Some(match name {
        "delivery" => boxed(crate::delivery::Delivery::new(options)),
        "set" => boxed(crate::set::SetChecker::new(options)),
        "unique" => boxed(crate::unique::Unique::new(options)),
        "idempotency" => boxed(crate::idempotency::Idempotency::new(options)),
        "versioned-append" => boxed(crate::versioned_append::VersionedAppend::new(options)),
        "counter" => boxed(crate::counter::Counter::new(options)),
        "bank" => boxed(crate::bank::Bank::new(options)),
        "list-append" => boxed(crate::txn::TxnStream::new(
            crate::txn::Family::ListAppend,
            options,
        )),
        "rw-register" => boxed(crate::txn::TxnStream::new(
            crate::txn::Family::RwRegister,
            options,
        )),
        _ => return None,
    })
}

/// A streaming checker as a [`Checker`] over a whole history.
pub struct Streamed {
    name: String,
    options: CheckOptions,
}

/// The [`Checker`] for a streaming checker's name, with its options validated now; `None` when
/// `name` has no streaming form.
pub fn checker(name: &str, options: &CheckOptions) -> Option<Result<Box<dyn Checker>, String>> {
    let built = streaming_by_name(name, options)?;
    Some(built.map(|_| {
        Box::new(Streamed {
            name: name.to_string(),
            options: options.clone(),
        }) as Box<dyn Checker>
    }))
}

impl Checker for Streamed {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, history: &History, _budget: &Budget) -> Result<CheckResult, HistoryError> {
        let checker = match streaming_by_name(&self.name, &self.options) {
            Some(Ok(c)) => c,
            Some(Err(e)) => return Ok(CheckResult::unknown(&self.name, e)),
            None => unreachable!("Streamed is only built for streaming checker names"),
        };
        check_events(checker, history)
    }
}

/// A streaming checker that counts what it is fed, so that one that saw no `ok` completion
/// answers `unknown` ("no completed operations to check") instead of `valid`: a check of
/// nothing passes nothing. An anomaly proved anyway (from `fail` or `info` ops alone) stands.
struct Guarded {
    inner: Box<dyn StreamChecker>,
    tally: OpTally,
}

impl StreamChecker for Guarded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn event(&mut self, line: usize, e: &EventRef<'_>) -> Result<(), HistoryError> {
        self.tally.push(e.process, e.kind);
        self.inner.event(line, e)
    }

    fn finish(self: Box<Self>) -> CheckResult {
        let name = self.inner.name().to_string();
        let result = self.inner.finish();
        if self.tally.ok == 0 && result.verdict != crate::Verdict::Invalid {
            return CheckResult::nothing_checked(&name, &self.tally);
        }
        result
    }
}

fn guarded(inner: Box<dyn StreamChecker>) -> Box<dyn StreamChecker> {
    Box::new(Guarded {
        inner,
        tally: OpTally::default(),
    })
}

/// Feeds every event of `history` to `checker` and returns its verdict.
pub fn check_events(
    checker: Box<dyn StreamChecker>,
    history: &History,
) -> Result<CheckResult, HistoryError> {
    let mut checker = guarded(checker);
    for (pos, e) in history.events.iter().enumerate() {
        checker.event(pos + 1, &EventRef::of(e))?;
    }
    Ok(checker.finish())
}

/// Checks a faultline JSONL history read from `reader` with the streaming checker `checker_name`,
/// holding only the checker's state in memory. `None` when the checker has no streaming form
/// (read the whole history and use [`crate::by_name`] instead). Options that do not suit the
/// checker are an error with line 0 (its `Display` is just the message). The result's
/// `elapsed_ms` includes the reading and parsing.
pub fn check_jsonl(
    reader: impl BufRead,
    checker_name: &str,
    options: &CheckOptions,
) -> Option<Result<CheckResult, ReadError>> {
    let started = std::time::Instant::now();
    let checker = streaming_by_name(checker_name, options)?;
    Some((|| {
        let mut checker = guarded(checker.map_err(|message| ReadError {
            line: 0,
            column: None,
            message,
        })?);
        for_each_event(reader, |line, e| checker.event(line, e))?;
        let mut result = checker.finish();
        result.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(result)
    })())
}

/// [`check_jsonl`] on a file, for the CLI: `None` when the checker has no streaming form or the
/// file does not start like JSONL (the caller then reads it whole, detecting EDN or Jepsen logs).
/// Errors are one line prefixed with the path.
pub fn check_jsonl_path(
    path: &Path,
    checker_name: &str,
    options: &CheckOptions,
) -> Option<Result<CheckResult, String>> {
    if !STREAMING_CHECKERS.contains(&checker_name) {
        return None;
    }
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return Some(Err(format!("{}: cannot read: {e}", path.display()))),
    };
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    match reader.fill_buf() {
        Ok(head) if starts_like_jsonl(head) => {}
        Ok(_) => return None,
        Err(e) => return Some(Err(format!("{}: cannot read: {e}", path.display()))),
    }
    check_jsonl(reader, checker_name, options)
        .map(|r| r.map_err(|e| format!("{}: {e}", path.display())))
}

/// True when the first meaningful characters of `head` are a JSON object's (`{"`), as
/// [`crate::formats::detect`] would decide.
pub fn starts_like_jsonl(head: &[u8]) -> bool {
    let mut rest = head.iter().skip_while(|b| b.is_ascii_whitespace());
    rest.next() == Some(&b'{')
        && matches!(
            rest.find(|b| !b.is_ascii_whitespace()),
            Some(b'"') | Some(b'}') | None
        )
}

// ---------------------------------------------------------------------------------------------
// Pairing in bounded memory

/// An invocation waiting for its completion, with what the checker parsed from it.
#[derive(Debug)]
pub struct Open<T> {
    /// The operation's `f`, interned by the pairer (see [`StreamPairer::f_name`]).
    pub f: u32,
    pub process: u64,
    pub invoke_index: u64,
    pub invoke_time: u64,
    pub invoke_line: usize,
    pub payload: T,
}

/// What one event was, to the pairer.
#[derive(Debug)]
pub enum Step<T> {
    /// A nemesis event: not an operation.
    Nemesis,
    /// An invocation, now open.
    Invoked,
    /// A completion, with its invocation.
    Completed(Open<T>),
}

/// Processes numbered below this are tracked in plain vectors rather than hash tables.
const SMALL_PROCESSES: u64 = 1 << 16;

/// Pairs invocations with completions like [`crate::Pairer`], keeping only the open invocations
/// (at most one per process) and the processes retired by an `info`.
#[derive(Debug)]
pub struct StreamPairer<T> {
    /// Open invocations of processes below [`SMALL_PROCESSES`], by process.
    open_small: Vec<Option<Open<T>>>,
    open: FxHashMap<u64, Open<T>>,
    /// Retired processes below [`SMALL_PROCESSES`], as a bit set.
    retired_small: Vec<u64>,
    retired: FxHashSet<u64>,
    fs: Vec<Box<str>>,
}

impl<T> Default for StreamPairer<T> {
    fn default() -> Self {
        StreamPairer {
            open_small: Vec::new(),
            open: FxHashMap::default(),
            retired_small: Vec::new(),
            retired: FxHashSet::default(),
            fs: Vec::new(),
        }
    }
}

impl<T> StreamPairer<T> {
    /// Feeds one event; `payload` is called for invocations only.
    pub fn push(
        &mut self,
        line: usize,
        e: &EventRef<'_>,
        payload: impl FnOnce() -> Result<T, HistoryError>,
    ) -> Result<Step<T>, HistoryError> {
        let p = match e.process {
            Process::Nemesis => return Ok(Step::Nemesis),
            Process::Client(p) => p,
        };
        if e.kind == EventType::Invoke {
            if self.is_retired(p) {
                return Err(HistoryError {
                    line,
                    message: format!(
                        "process {p} invokes again after an info completion; a process that got info must never invoke again (its worker continues under a new process id)"
                    ),
                });
            }
            if let Some(open) = self.get_open(p) {
                return Err(HistoryError {
                    line,
                    message: format!(
                        "process {p} invokes {:?} while its invocation at line {} is still open; expected a completion first",
                        e.f, open.invoke_line
                    ),
                });
            }
            let f = self.intern_f(e.f);
            let payload = payload()?;
            let open = Open {
                f,
                process: p,
                invoke_index: e.index,
                invoke_time: e.time,
                invoke_line: line,
                payload,
            };
            if p < SMALL_PROCESSES {
                let i = p as usize;
                if i >= self.open_small.len() {
                    self.open_small.resize_with(i + 1, || None);
                }
                self.open_small[i] = Some(open);
            } else {
                self.open.insert(p, open);
            }
            return Ok(Step::Invoked);
        }
        let taken = if p < SMALL_PROCESSES {
            self.open_small.get_mut(p as usize).and_then(Option::take)
        } else {
            self.open.remove(&p)
        };
        let Some(open) = taken else {
            return Err(HistoryError {
                line,
                message: format!(
                    "{} completion of {:?} on process {p} has no open invocation; expected an invoke on process {p} before it",
                    e.kind, e.f
                ),
            });
        };
        if *self.fs[open.f as usize] != *e.f {
            return Err(HistoryError {
                line,
                message: format!(
                    "{} completion of {:?} on process {p} does not match its invocation of {:?} at line {}",
                    e.kind, e.f, self.fs[open.f as usize], open.invoke_line
                ),
            });
        }
        if e.kind == EventType::Info {
            if p < SMALL_PROCESSES {
                let (word, bit) = ((p / 64) as usize, p % 64);
                if word >= self.retired_small.len() {
                    self.retired_small.resize(word + 1, 0);
                }
                self.retired_small[word] |= 1 << bit;
            } else {
                self.retired.insert(p);
            }
        }
        Ok(Step::Completed(open))
    }

    fn is_retired(&self, p: u64) -> bool {
        if p < SMALL_PROCESSES {
            self.retired_small
                .get((p / 64) as usize)
                .is_some_and(|w| w & (1 << (p % 64)) != 0)
        } else {
            self.retired.contains(&p)
        }
    }

    fn get_open(&self, p: u64) -> Option<&Open<T>> {
        if p < SMALL_PROCESSES {
            self.open_small.get(p as usize).and_then(Option::as_ref)
        } else {
            self.open.get(&p)
        }
    }

    fn intern_f(&mut self, f: &str) -> u32 {
        match self.fs.iter().position(|x| **x == *f) {
            Some(i) => i as u32,
            None => {
                self.fs.push(f.into());
                (self.fs.len() - 1) as u32
            }
        }
    }

    pub fn f_name(&self, f: u32) -> &str {
        &self.fs[f as usize]
    }

    /// Invocations still open (the history ended first): they count as `info`.
    pub fn take_open(&mut self) -> Vec<Open<T>> {
        let mut open: Vec<Open<T>> = self.open.drain().map(|(_, o)| o).collect();
        open.extend(self.open_small.iter_mut().filter_map(Option::take));
        open.sort_by_key(|o| o.invoke_index);
        open
    }
}

// ---------------------------------------------------------------------------------------------
// Fault windows, streamed

/// Builds [`FaultWindow`]s from nemesis events as they stream by, with the same rules as
/// [`History::fault_windows`].
#[derive(Debug, Default)]
pub struct FaultTracker {
    pub windows: Vec<FaultWindow>,
}

impl FaultTracker {
    pub fn push(&mut self, e: &EventRef<'_>) {
        if e.process != Process::Nemesis {
            return;
        }
        if let Some(kind) = e.f.strip_prefix("start-") {
            self.windows.push(FaultWindow {
                kind: kind.to_string(),
                start_index: e.index,
                start_time: e.time,
                end_index: None,
                end_time: None,
                value: e.value.to_value(),
            });
        } else if let Some(kind) = e.f.strip_prefix("stop-") {
            if let Some(w) = self
                .windows
                .iter_mut()
                .find(|w| w.kind == kind && w.end_index.is_none())
            {
                w.end_index = Some(e.index);
                w.end_time = Some(e.time);
            }
        } else if e.kind != EventType::Invoke {
            self.windows.push(FaultWindow {
                kind: e.f.to_string(),
                start_index: e.index,
                start_time: e.time,
                end_index: Some(e.index),
                end_time: Some(e.time),
                value: e.value.to_value(),
            });
        }
    }

    /// Where the interval of event indices `[from, to]` lies relative to the fault windows:
    /// `("during", kind)` when it overlaps one, else `("after", kind of the last window that
    /// ended before it)`, else `("before", "")`; `("no-faults", "")` when there were none.
    pub fn phase(&self, from: u64, to: u64) -> (&'static str, &str) {
        if self.windows.is_empty() {
            return ("no-faults", "");
        }
        let mut after: Option<&FaultWindow> = None;
        for w in &self.windows {
            let end = w.end_index.unwrap_or(u64::MAX);
            if w.start_index <= to && end >= from {
                return ("during", &w.kind);
            }
            if end < from && after.is_none_or(|a| a.end_index < w.end_index) {
                after = Some(w);
            }
        }
        match after {
            Some(w) => ("after", &w.kind),
            None => ("before", ""),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Ids

/// An id as written in a history: a non-negative integer or a string. A string holding a
/// canonical decimal integer is the same id as that integer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Id<'a> {
    Int(u64),
    Str(Cow<'a, str>),
}

impl<'a> Id<'a> {
    fn from_str_cow(s: Cow<'a, str>) -> Self {
        let canonical = !s.is_empty()
            && s.len() <= 20
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s.len() == 1 || !s.starts_with('0'));
        match canonical.then(|| s.parse::<u64>().ok()).flatten() {
            Some(n) => Id::Int(n),
            None => Id::Str(s),
        }
    }

    /// An id from a key string (keys are strings in the model).
    pub fn from_key(key: &'a str) -> Self {
        Id::from_str_cow(Cow::Borrowed(key))
    }

    fn hash(&self) -> u64 {
        let mut h = FxHasher::default();
        match self {
            Id::Int(n) => {
                h.write_u8(0);
                h.write_u64(*n);
            }
            Id::Str(s) => {
                h.write_u8(1);
                h.write(s.as_bytes());
            }
        }
        h.finish()
    }

    fn matches(&self, key: &IdKey) -> bool {
        match (self, key) {
            (Id::Int(a), IdKey::Int(b)) => a == b,
            (Id::Str(a), IdKey::Str(b)) => **a == **b,
            _ => false,
        }
    }

    pub fn to_key(&self) -> IdKey {
        match self {
            Id::Int(n) => IdKey::Int(*n),
            Id::Str(s) => IdKey::Str(s.as_ref().into()),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Id<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct IdVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for IdVisitor<'a> {
            type Value = Id<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an id (a string or a non-negative integer)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Id<'a>, E> {
                Ok(Id::Int(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Id<'a>, E> {
                match u64::try_from(v) {
                    Ok(n) => Ok(Id::Int(n)),
                    Err(_) => Ok(Id::Str(Cow::Owned(v.to_string()))),
                }
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Id<'a>, E> {
                Ok(Id::from_str_cow(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Id<'a>, E> {
                Ok(Id::from_str_cow(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Id<'a>, E> {
                Ok(Id::from_str_cow(Cow::Owned(v)))
            }
        }
        d.deserialize_any(IdVisitor(std::marker::PhantomData))
    }
}

/// An owned id, as stored by an [`Interner`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdKey {
    Int(u64),
    Str(Box<str>),
}

impl IdKey {
    pub fn to_json(&self) -> Value {
        match self {
            IdKey::Int(n) => json!(n),
            IdKey::Str(s) => json!(s),
        }
    }

    fn hash(&self) -> u64 {
        match self {
            IdKey::Int(n) => Id::Int(*n).hash(),
            IdKey::Str(s) => Id::Str(Cow::Borrowed(s)).hash(),
        }
    }
}

impl fmt::Display for IdKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdKey::Int(n) => write!(f, "{n}"),
            IdKey::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// Integer ids below this bound (or twice the number of ids, if more) are looked up by direct
/// indexing; workloads that number their messages 0, 1, 2, ... never pay for hashing.
const DIRECT_IDS_MIN: u64 = 1 << 16;

/// Dense numbering of ids: each distinct id gets the next `u32`. Lookups never allocate.
///
/// Small integer ids (the common case: workloads count) go through a direct table, `direct[id]`
/// = number + 1, kept at most about twice the number of ids long; everything else goes through a
/// hash table. An id lands in the hash table when it was beyond the direct table's bound at the
/// time, so a miss in the direct table falls back to the hash table.
#[derive(Debug, Default)]
pub struct Interner {
    table: HashTable<u32>,
    direct: Vec<u32>,
    keys: Vec<IdKey>,
}

impl Interner {
    fn direct_bound(&self) -> u64 {
        DIRECT_IDS_MIN.max(2 * self.keys.len() as u64)
    }

    pub fn get(&self, id: &Id<'_>) -> Option<u32> {
        if let Id::Int(n) = id {
            if let Some(&d) = self.direct.get(*n as usize) {
                if d != 0 {
                    return Some(d - 1);
                }
            }
            if self.table.is_empty() {
                return None;
            }
        }
        let keys = &self.keys;
        self.table
            .find(id.hash(), |&i| id.matches(&keys[i as usize]))
            .copied()
    }

    /// The number of `id`, and whether it is new.
    pub fn intern(&mut self, id: &Id<'_>) -> (u32, bool) {
        if let Id::Int(n) = *id {
            if let Some(found) = self.get(id) {
                return (found, false);
            }
            if n < self.direct_bound() {
                let n = n as usize;
                if n >= self.direct.len() {
                    let len = (n + 1)
                        .max(2 * self.direct.len())
                        .min(self.direct_bound() as usize);
                    self.direct.resize(len.max(n + 1), 0);
                }
                let number = u32::try_from(self.keys.len()).expect("fewer than 2^32 distinct ids");
                self.keys.push(IdKey::Int(n as u64));
                self.direct[n] = number + 1;
                return (number, true);
            }
        }
        let hash = id.hash();
        let keys = &mut self.keys;
        match self.table.entry(
            hash,
            |&i| id.matches(&keys[i as usize]),
            |&i| keys[i as usize].hash(),
        ) {
            hashbrown::hash_table::Entry::Occupied(o) => (*o.get(), false),
            hashbrown::hash_table::Entry::Vacant(v) => {
                let n = u32::try_from(keys.len()).expect("fewer than 2^32 distinct ids");
                keys.push(id.to_key());
                v.insert(n);
                (n, true)
            }
        }
    }

    pub fn key(&self, n: u32) -> &IdKey {
        &self.keys[n as usize]
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

// ---------------------------------------------------------------------------------------------
// Findings

/// How many anomalies of one kind a result lists; the counts stay exact beyond it.
pub const ANOMALIES_PER_KIND_MAX: usize = 1000;

/// A kind of anomaly: one variant of a checker's enum of kinds. The kinds are a closed set, so
/// whether a kind counts toward the verdict is an exhaustive match ([`AnomalyKind::counts`]),
/// never a default arm that silently counts (or excuses) a kind added later.
pub trait AnomalyKind: Copy + Eq + 'static {
    /// What decides whether a kind counts: a guarantee, a consistency model; `()` when every
    /// kind always counts.
    type Rule: Copy;
    /// Every kind, in the order the checker's documentation lists them.
    const ALL: &'static [Self];
    /// The kind as results and documents name it, e.g. `lost`.
    fn name(self) -> &'static str;
    /// What an anomaly of this kind means, in one short plain sentence (the vocabulary of
    /// docs/history.md), as the report's and the terminal's heading of each kind shows it.
    /// Implement it as an exhaustive `match` with no `_` arm.
    fn meaning(self) -> &'static str;
    /// Whether an anomaly of this kind makes the verdict invalid under `rule` (else it is
    /// reported only). Implement it as an exhaustive `match` with no `_` arm.
    fn counts(self, rule: Self::Rule) -> bool;
}

/// Anomalies found so far: exact counts per kind, evidence for the first
/// [`ANOMALIES_PER_KIND_MAX`] of each.
#[derive(Debug)]
pub struct Findings<K: AnomalyKind> {
    kinds: Vec<(K, u64, Vec<Anomaly>)>,
}

impl<K: AnomalyKind> Default for Findings<K> {
    fn default() -> Self {
        Findings { kinds: Vec::new() }
    }
}

impl<K: AnomalyKind> Findings<K> {
    /// Records one anomaly of `kind`; `make` (ops, explanation, data) runs only while the kind's
    /// list has room, so a flood of anomalies costs a counter increment each.
    pub fn add(&mut self, kind: K, make: impl FnOnce() -> (Vec<u64>, String, Value)) {
        let slot = match self.kinds.iter().position(|(k, _, _)| *k == kind) {
            Some(i) => i,
            None => {
                self.kinds.push((kind, 0, Vec::new()));
                self.kinds.len() - 1
            }
        };
        let (_, count, list) = &mut self.kinds[slot];
        *count += 1;
        if list.len() < ANOMALIES_PER_KIND_MAX {
            let (mut ops, explanation, data) = make();
            ops.sort_unstable();
            ops.dedup();
            list.push(Anomaly {
                kind: kind.name().to_string(),
                ops,
                explanation,
                data,
            });
        }
    }

    pub fn count(&self, kind: K) -> u64 {
        self.kinds
            .iter()
            .find(|(k, _, _)| *k == kind)
            .map_or(0, |(_, c, _)| *c)
    }

    /// The anomalies (each marked `"counted": true|false` in its data), the counts per kind, and
    /// a sentence naming the counted and the reported-only kinds found; a kind makes the verdict
    /// invalid when it [counts](AnomalyKind::counts) under `rule`.
    pub fn finish(self, rule: K::Rule) -> FindingsSummary {
        let counted = |k: K| k.counts(rule);
        let mut anomalies = Vec::new();
        let mut counts = Map::new();
        let mut truncated = Vec::new();
        let mut counted_parts = Vec::new();
        let mut reported_parts = Vec::new();
        let mut kinds = self.kinds;
        kinds.sort_by_key(|(k, _, _)| !counted(*k));
        for (kind, count, list) in kinds {
            let is_counted = counted(kind);
            let name = kind.name();
            counts.insert(name.to_string(), json!(count));
            if count > list.len() as u64 {
                truncated.push(name);
            }
            if is_counted {
                counted_parts.push(format!("{name} {count}"));
            } else {
                reported_parts.push(format!("{name} {count}"));
            }
            for mut a in list {
                a.data = match a.data {
                    Value::Object(mut m) => {
                        m.insert("counted".into(), json!(is_counted));
                        Value::Object(m)
                    }
                    Value::Null => json!({ "counted": is_counted }),
                    other => json!({ "counted": is_counted, "evidence": other }),
                };
                anomalies.push(a);
            }
        }
        FindingsSummary {
            invalid: !counted_parts.is_empty(),
            anomalies,
            counts: Value::Object(counts),
            counted: counted_parts,
            reported: reported_parts,
            truncated,
        }
    }
}

/// What [`Findings::finish`] gives back.
#[derive(Debug)]
pub struct FindingsSummary {
    /// True when some counted kind was found.
    pub invalid: bool,
    pub anomalies: Vec<Anomaly>,
    /// `{kind: count}` for every kind found.
    pub counts: Value,
    /// "kind count" for the counted kinds found.
    pub counted: Vec<String>,
    /// "kind count" for the reported-only kinds found.
    pub reported: Vec<String>,
    /// Kinds whose list was cut at [`ANOMALIES_PER_KIND_MAX`].
    pub truncated: Vec<&'static str>,
}

impl FindingsSummary {
    /// "found lost 2, duplicated 1 (invalid); reported only: recovered 3", or "no anomalies".
    pub fn sentence(&self) -> String {
        let mut s = if self.counted.is_empty() {
            "no anomalies that count".to_string()
        } else {
            format!("found {}", self.counted.join(", "))
        };
        if !self.reported.is_empty() {
            s.push_str(&format!("; reported only: {}", self.reported.join(", ")));
        }
        if !self.truncated.is_empty() {
            s.push_str(&format!(
                "; the lists of {} are cut at {ANOMALIES_PER_KIND_MAX} (counts are exact)",
                self.truncated.join(", ")
            ));
        }
        s
    }

    /// Builds the result: invalid when a counted kind was found, else `unknown` when
    /// `unknown_reason` is given, else valid. `details` gets `counts` and `truncated` added.
    pub fn into_result(
        self,
        checker: &str,
        summary: String,
        unknown_reason: Option<String>,
        details: Value,
    ) -> CheckResult {
        let mut details = match details {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        details.insert("counts".into(), self.counts.clone());
        if !self.truncated.is_empty() {
            details.insert("truncated_kinds".into(), json!(self.truncated));
        }
        let details = Value::Object(details);
        let result = if self.invalid {
            CheckResult::invalid(checker, summary, self.anomalies)
        } else if let Some(reason) = unknown_reason {
            let mut r = CheckResult::unknown(checker, reason);
            r.summary = summary;
            r.anomalies = self.anomalies;
            r
        } else {
            let mut r = CheckResult::valid(checker, summary);
            r.anomalies = self.anomalies;
            r
        };
        result.with_details(details)
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers for value shapes

/// The error for a value that does not have the shape a checker expects.
pub fn bad_value(
    line: usize,
    e: &EventRef<'_>,
    err: impl fmt::Display,
    expected: &str,
) -> HistoryError {
    let err = err.to_string();
    let err = err.split(" at line ").next().unwrap_or(&err).to_string();
    HistoryError {
        line,
        message: format!(
            "{} {:?} has a value of the wrong shape ({err}); expected {expected} (see docs/history.md)",
            e.kind, e.f
        ),
    }
}

/// An id given either alone or as `{"id": ID, ...}` (other fields ignored).
#[derive(Debug)]
pub struct IdField<'a>(pub Id<'a>);

impl<'de: 'a, 'a> Deserialize<'de> for IdField<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = IdField<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an id or an object with an \"id\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(IdField(Id::Int(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(IdField(match u64::try_from(v) {
                    Ok(n) => Id::Int(n),
                    Err(_) => Id::Str(Cow::Owned(v.to_string())),
                }))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(IdField(Id::from_str_cow(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(IdField(Id::from_str_cow(Cow::Owned(v.to_string()))))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut id = None;
                while let Some(k) = m.next_key::<Cow<'de, str>>()? {
                    if k == "id" {
                        id = Some(m.next_value::<Id<'a>>()?);
                    } else {
                        m.next_value::<de::IgnoredAny>()?;
                    }
                }
                id.map(IdField)
                    .ok_or_else(|| de::Error::missing_field("id"))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Ends a streaming checker's summary the way every one of them does: the ops it ignored (by
/// `f`, with their counts), then why the verdict is unknown, when it is.
pub fn end_summary(
    summary: &mut String,
    ignored: &std::collections::BTreeMap<String, u64>,
    unknown_reason: Option<&str>,
) {
    if !ignored.is_empty() {
        let names: Vec<String> = ignored.iter().map(|(k, v)| format!("{k} ({v})")).collect();
        summary.push_str(&format!(" Ignored ops: {}.", names.join(", ")));
    }
    if let Some(r) = unknown_reason {
        summary.push_str(&format!(" Unknown: {r}."));
    }
}

/// Marks a verdict sentence.
pub fn verdict_word(invalid: bool, unknown: bool) -> &'static str {
    if invalid {
        "invalid"
    } else if unknown {
        "unknown"
    } else {
        "valid"
    }
}

/// `n` with a noun, pluralized with an `s`.
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_canonicalize_decimal_strings() {
        let mut ids = Interner::default();
        let a = ids.intern(&Id::Int(7));
        assert_eq!(a, (0, true));
        assert_eq!(ids.intern(&Id::from_key("7")), (0, false));
        assert!(ids.intern(&Id::from_key("07")).1);
        assert_eq!(ids.intern(&Id::from_key("m-7")).0, 2);
        assert_eq!(ids.get(&Id::Str("m-7".into())), Some(2));
        assert_eq!(ids.get(&Id::Str("m-8".into())), None);
        assert_eq!(ids.key(2).to_string(), "\"m-7\"");
    }

    #[test]
    fn pairer_rejects_what_the_contract_forbids() {
        let ev = |index, process, kind, f| EventRef {
            index,
            time: index,
            process: Process::Client(process),
            kind,
            f,
            key: None,
            value: ValueRef::Null,
            error: None,
        };
        let mut p: StreamPairer<()> = StreamPairer::default();
        p.push(1, &ev(0, 1, EventType::Invoke, "a"), || Ok(()))
            .unwrap();
        let e = p
            .push(2, &ev(1, 1, EventType::Invoke, "a"), || Ok(()))
            .unwrap_err();
        assert!(e.message.contains("still open"), "{e}");
        let e = p
            .push(3, &ev(2, 1, EventType::Ok, "b"), || Ok(()))
            .unwrap_err();
        assert!(e.message.contains("does not match"), "{e}");
        let e = p
            .push(4, &ev(3, 2, EventType::Ok, "a"), || Ok(()))
            .unwrap_err();
        assert!(e.message.contains("no open invocation"), "{e}");
        p.push(5, &ev(4, 3, EventType::Invoke, "a"), || Ok(()))
            .unwrap();
        p.push(6, &ev(5, 3, EventType::Info, "a"), || Ok(()))
            .unwrap();
        let e = p
            .push(7, &ev(6, 3, EventType::Invoke, "a"), || Ok(()))
            .unwrap_err();
        assert!(e.message.contains("after an info"), "{e}");
        assert_eq!(
            p.take_open().len(),
            0,
            "process 1's open op was consumed by the mismatch"
        );
    }

    #[test]
    fn jsonl_sniffing() {
        assert!(starts_like_jsonl(b"  {\"index\":0}"));
        assert!(!starts_like_jsonl(b"{:type :invoke}"));
        assert!(!starts_like_jsonl(b"[{:type :invoke}]"));
        assert!(!starts_like_jsonl(
            b"INFO jepsen.util - 1 :invoke :read nil"
        ));
    }
}
