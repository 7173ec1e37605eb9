//! The `set` checker: elements added, then read back whole.
//!
//! An element becomes *known* when an add of it completes `ok`; every read that begins after
//! that must contain it (under linearizable reads), and the final read (the last `ok` read to
//! complete) must contain it whatever the consistency model. Checking every read against every
//! known element would be quadratic, so the checker counts instead: reads are numbered as they
//! are invoked, each element remembers the read number at which it became known and how many
//! later reads contained it, and at the end the number of `ok` reads invoked after it became
//! known (one binary search) minus those that contained it is the number that missed it. Work
//! is linear in the total size of the reads; memory is one small record per element and one
//! per read.

use crate::stream::{
    bad_value, end_summary, plural, EventRef, Findings, Id, IdField, Interner, Step, StreamChecker,
    StreamPairer,
};
use crate::{CheckOptions, CheckResult, EventType, HistoryError};
use serde_json::json;

const NONE: u64 = u64::MAX;

#[derive(Debug, Clone)]
struct Elem {
    /// Invocation of its first add.
    add_invoke: u64,
    /// Completion of its first `ok` add: when it became known.
    known_at: u64,
    /// Number of read invocations before it became known: reads numbered from here on began
    /// after it was known.
    known_seq: u64,
    /// A `fail` or `info` add's completion, for evidence.
    other_add: u64,
    /// `ok` reads invoked after it became known that contained it.
    present_after: u64,
    /// Lowest read number (>= known_seq) that contained it.
    first_present_after_seq: u64,
    /// Completion of the first read that contained it.
    first_read_at: u64,
    /// Completion ordinal (1-based) of the last `ok` read that contained it.
    last_present_ord: u64,
    flags: u8,
}

const ADD_OK: u8 = 1;
const ADD_INFO: u8 = 2;
const ADD_FAIL: u8 = 4;

impl Elem {
    fn new() -> Self {
        Elem {
            add_invoke: NONE,
            known_at: NONE,
            known_seq: NONE,
            other_add: NONE,
            present_after: 0,
            first_present_after_seq: NONE,
            first_read_at: NONE,
            last_present_ord: 0,
            flags: 0,
        }
    }
}

/// An `ok` read: its number (invocation order), invocation and completion.
#[derive(Debug, Clone, Copy)]
struct Read {
    seq: u64,
    invoke: u64,
    complete: u64,
}

#[derive(Debug, Default)]
struct SetState {
    elems: Interner,
    state: Vec<Elem>,
    read_invocations: u64,
    ok_reads: Vec<Read>,
}

#[derive(Debug)]
enum Pending {
    Add { set: u32, elem: u32 },
    Read { set: u32, seq: u64 },
    Ignored,
}

/// Every kind the set checker reports (docs/history.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// One read lists an element twice.
    Duplicate,
    /// Read but never added.
    Unexpected,
    /// An `info` add that was read: fine, listed.
    Recovered,
    /// Read, though every add of it failed.
    FailedButRead,
    /// An `ok` add that completed before the final read began, missing from the final read.
    Lost,
    /// An `ok` add that completed after the final read began: no read could show it.
    NeverRead,
    /// An `ok` add missing from a read that began after it completed, yet in the final read.
    Stale,
}

impl crate::stream::AnomalyKind for Kind {
    /// True under `--guarantee linearizable` (stale reads count), false under `eventual`.
    type Rule = bool;

    const ALL: &'static [Kind] = &[
        Kind::Lost,
        Kind::Stale,
        Kind::Unexpected,
        Kind::FailedButRead,
        Kind::Duplicate,
        Kind::NeverRead,
        Kind::Recovered,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Duplicate => "duplicate",
            Kind::Unexpected => "unexpected",
            Kind::Recovered => "recovered",
            Kind::FailedButRead => "failed-but-read",
            Kind::Lost => "lost",
            Kind::NeverRead => "never-read",
            Kind::Stale => "stale",
        }
    }

    fn meaning(self) -> &'static str {
        match self {
            Kind::Duplicate => "one read lists an element twice",
            Kind::Unexpected => "read but never added",
            Kind::Recovered => {
                "no add of it got ok (some were indeterminate), yet it was read: fine, listed"
            }
            Kind::FailedButRead => "every add of it failed, yet it was read",
            Kind::Lost => {
                "an ok add completed before the final read began, yet the final read lacks it"
            }
            Kind::NeverRead => {
                "its ok add completed after the final read began, so no read could show it"
            }
            Kind::Stale => {
                "missing from a read that began after its ok add completed, yet in the final read"
            }
        }
    }

    fn counts(self, linearizable: bool) -> bool {
        match self {
            Kind::Stale => linearizable,
            Kind::NeverRead | Kind::Recovered => false,
            Kind::Duplicate | Kind::Unexpected | Kind::FailedButRead | Kind::Lost => true,
        }
    }
}

/// The set checker; see the module docs.
pub struct SetChecker {
    linearizable: bool,
    pairer: StreamPairer<Pending>,
    sets: Interner,
    state: Vec<SetState>,
    findings: Findings<Kind>,
    adds: u64,
    ignored: std::collections::BTreeMap<String, u64>,
}

impl SetChecker {
    pub fn new(options: &CheckOptions) -> Result<Self, String> {
        let linearizable = match options.guarantee.as_deref() {
            None | Some("eventual") => false,
            Some("linearizable") => true,
            Some(other) => {
                return Err(format!(
                    "--guarantee {other:?} does not apply to the set checker; expected eventual (stale reads reported) or linearizable (stale reads count)"
                ))
            }
        };
        Ok(SetChecker {
            linearizable,
            pairer: StreamPairer::default(),
            sets: Interner::default(),
            state: Vec::new(),
            findings: Findings::default(),
            adds: 0,
            ignored: Default::default(),
        })
    }
}

fn set_of(sets: &mut Interner, state: &mut Vec<SetState>, key: Option<&str>) -> u32 {
    let (n, new) = sets.intern(&Id::from_key(key.unwrap_or("")));
    if new {
        state.push(SetState::default());
    }
    n
}

impl StreamChecker for SetChecker {
    fn name(&self) -> &str {
        "set"
    }

    fn event(&mut self, line: usize, e: &EventRef<'_>) -> Result<(), HistoryError> {
        let (sets, state, ignored, adds) = (
            &mut self.sets,
            &mut self.state,
            &mut self.ignored,
            &mut self.adds,
        );
        let step = self.pairer.push(line, e, || {
            Ok(match e.f {
                "add" => {
                    let IdField(id) = e
                        .value
                        .parse()
                        .map_err(|err| bad_value(line, e, err, "an element (an id)"))?;
                    let set = set_of(sets, state, e.key);
                    let s = &mut state[set as usize];
                    let (elem, new) = s.elems.intern(&id);
                    if new {
                        s.state.push(Elem::new());
                    }
                    let el = &mut s.state[elem as usize];
                    if el.add_invoke == NONE {
                        el.add_invoke = e.index;
                    }
                    *adds += 1;
                    Pending::Add { set, elem }
                }
                "read" => {
                    let set = set_of(sets, state, e.key);
                    let s = &mut state[set as usize];
                    let seq = s.read_invocations;
                    s.read_invocations += 1;
                    Pending::Read { set, seq }
                }
                other => {
                    *ignored.entry(other.to_string()).or_default() += 1;
                    Pending::Ignored
                }
            })
        })?;
        let Step::Completed(open) = step else {
            return Ok(());
        };
        match open.payload {
            Pending::Add { set, elem } => {
                let s = &mut self.state[set as usize];
                let read_invocations = s.read_invocations;
                let el = &mut s.state[elem as usize];
                match e.kind {
                    EventType::Ok => {
                        if el.known_at == NONE {
                            el.known_at = e.index;
                            el.known_seq = read_invocations;
                        }
                        el.flags |= ADD_OK;
                    }
                    EventType::Fail => {
                        el.flags |= ADD_FAIL;
                        if el.other_add == NONE {
                            el.other_add = e.index;
                        }
                    }
                    _ => {
                        el.flags |= ADD_INFO;
                        if el.other_add == NONE {
                            el.other_add = e.index;
                        }
                    }
                }
            }
            Pending::Read { set, seq } => {
                if e.kind != EventType::Ok {
                    return Ok(());
                }
                let list: Vec<IdField> = e
                    .value
                    .parse()
                    .map_err(|err| bad_value(line, e, err, "a list of elements"))?;
                let s = &mut self.state[set as usize];
                s.ok_reads.push(Read {
                    seq,
                    invoke: open.invoke_index,
                    complete: e.index,
                });
                let ord = s.ok_reads.len() as u64;
                for IdField(id) in &list {
                    let (elem, new) = s.elems.intern(id);
                    if new {
                        s.state.push(Elem::new());
                    }
                    let el = &mut s.state[elem as usize];
                    if el.last_present_ord == ord {
                        let key = s.elems.key(elem);
                        let set_name = self.sets.key(set);
                        self.findings.add(Kind::Duplicate, || {
                            (
                                vec![open.invoke_index, e.index],
                                format!("The read of set {set_name} at event {} lists element {key} more than once.", e.index),
                                json!({ "element": key.to_json() }),
                            )
                        });
                        continue;
                    }
                    el.last_present_ord = ord;
                    if el.first_read_at == NONE {
                        el.first_read_at = e.index;
                    }
                    if el.known_seq != NONE && seq >= el.known_seq {
                        el.present_after += 1;
                        el.first_present_after_seq = el.first_present_after_seq.min(seq);
                    }
                }
            }
            Pending::Ignored => {}
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> CheckResult {
        for open in self.pairer.take_open() {
            if let Pending::Add { set, elem } = open.payload {
                let el = &mut self.state[set as usize].state[elem as usize];
                el.flags |= ADD_INFO;
                if el.other_add == NONE {
                    el.other_add = open.invoke_index;
                }
            }
        }
        let linearizable = self.linearizable;
        let mut findings = std::mem::take(&mut self.findings);
        let mut unread_sets = Vec::new();
        let mut elements = 0u64;
        let mut reads = 0u64;
        for (si, s) in self.state.iter_mut().enumerate() {
            let set_name = self.sets.key(si as u32);
            elements += s.state.len() as u64;
            reads += s.ok_reads.len() as u64;
            let Some(final_read) = s.ok_reads.last().copied() else {
                if s.state.iter().any(|el| el.flags & ADD_OK != 0) {
                    unread_sets.push(set_name.to_string());
                }
                continue;
            };
            let final_ord = s.ok_reads.len() as u64;
            let mut by_seq = s.ok_reads.clone();
            by_seq.sort_unstable_by_key(|r| r.seq);
            for (ei, el) in s.state.iter().enumerate() {
                let key = s.elems.key(ei as u32);
                let in_final = el.last_present_ord == final_ord;
                if el.flags & (ADD_OK | ADD_INFO | ADD_FAIL) == 0
                    || el.first_read_at < el.add_invoke
                {
                    let at = el.first_read_at;
                    findings.add(Kind::Unexpected, || {
                        (
                            vec![at],
                            if el.add_invoke == NONE {
                                format!("The read of set {set_name} at event {at} contains {key}, which was never added.")
                            } else {
                                format!("The read of set {set_name} at event {at} contains {key} before its add began (event {}).", el.add_invoke)
                            },
                            json!({ "element": key.to_json() }),
                        )
                    });
                    continue;
                }
                if el.flags & ADD_OK == 0 {
                    if el.first_read_at != NONE {
                        let (other, at) = (el.other_add, el.first_read_at);
                        if el.flags & ADD_INFO != 0 {
                            findings.add(Kind::Recovered, || {
                                (
                                    vec![other, at],
                                    format!("The add of {key} to set {set_name} was indeterminate (event {other}); the read at event {at} shows it happened."),
                                    json!({ "element": key.to_json() }),
                                )
                            });
                        } else {
                            findings.add(Kind::FailedButRead, || {
                                (
                                    vec![other, at],
                                    format!("Every add of {key} to set {set_name} failed (event {other}), yet the read at event {at} contains it."),
                                    json!({ "element": key.to_json() }),
                                )
                            });
                        }
                    }
                    continue;
                }
                // An acknowledged add.
                let after = by_seq.partition_point(|r| r.seq < el.known_seq);
                let reads_after = (by_seq.len() - after) as u64;
                let missed = reads_after.saturating_sub(el.present_after);
                let (ai, ko) = (el.add_invoke, el.known_at);
                if !in_final {
                    if final_read.seq >= el.known_seq {
                        findings.add(Kind::Lost, || {
                            (
                                vec![ai, ko, final_read.invoke, final_read.complete],
                                format!("The add of {key} to set {set_name} was acknowledged (event {ko}), but the final read, begun later (event {}), lacks it.", final_read.invoke),
                                json!({ "element": key.to_json() }),
                            )
                        });
                    } else if el.first_read_at == NONE {
                        findings.add(Kind::NeverRead, || {
                            (
                                vec![ai, ko],
                                format!("The add of {key} to set {set_name} was acknowledged (event {ko}) after the final read began: no read could be expected to see it."),
                                json!({ "element": key.to_json() }),
                            )
                        });
                    }
                    continue;
                }
                if missed > 0 {
                    // Name a read that missed it: the first after it became known, if that one did.
                    let first_after = by_seq.get(after).copied();
                    let (ops, which) = match first_after {
                        Some(r) if r.seq < el.first_present_after_seq => (
                            vec![ai, ko, r.invoke, r.complete],
                            format!("the read begun at event {} lacks it", r.invoke),
                        ),
                        _ => (
                            vec![ai, ko, final_read.complete],
                            format!("{} begun after that lacked it", plural(missed, "read")),
                        ),
                    };
                    findings.add(Kind::Stale, || {
                        (
                            ops,
                            format!("The add of {key} to set {set_name} was acknowledged (event {ko}), yet {which}; the final read (event {}) has it.", final_read.complete),
                            json!({ "element": key.to_json(), "reads_missing_it": missed }),
                        )
                    });
                }
            }
        }
        let parts = findings.finish(linearizable);
        let mut unknown = Vec::new();
        if self.adds == 0 && reads == 0 {
            unknown.push(
                "the history has no add or read operations: is it a set history?".to_string(),
            );
        }
        if !unread_sets.is_empty() {
            unknown.push(format!(
                "set(s) {} had acknowledged adds but no ok read",
                unread_sets.join(", ")
            ));
        }
        let unknown_reason = (!unknown.is_empty()).then(|| unknown.join("; "));
        let mut summary = format!(
            "set ({} reads): {} in {}, {} ok reads; {}.",
            if linearizable {
                "linearizable"
            } else {
                "eventual"
            },
            plural(elements, "element"),
            plural(self.sets.len() as u64, "set"),
            reads,
            parts.sentence()
        );
        if !linearizable {
            summary.push_str(
                " Stale reads are reported only (use --guarantee linearizable to count them).",
            );
        }
        end_summary(&mut summary, &self.ignored, unknown_reason.as_deref());
        let details = json!({
            "guarantee": if linearizable { "linearizable" } else { "eventual" },
            "elements": elements,
            "ok_reads": reads,
            "ignored_ops": self.ignored,
        });
        parts.into_result("set", summary, unknown_reason, details)
    }
}
