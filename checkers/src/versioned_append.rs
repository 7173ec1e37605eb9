//! The `versioned-append` checker: optimistic concurrency on event streams.
//!
//! Writers append an event at an expected version; the store must let exactly one writer win
//! each version and refuse the others, and the stream read back at the end must hold every
//! acknowledged event at the version it was acknowledged at, once, with no holes. Two `ok`
//! appends of different events at one expected version prove a violation the moment the second
//! completes; everything about the stream's contents is judged at the end against the last `ok`
//! read of each stream, which is the only read kept.
//!
//! An append of the same event that succeeds twice at one version is not two winners: stores
//! that deduplicate by event id (idempotent appends) answer a retry that way. Whether the stream
//! then holds the event once is what the final read shows.

use crate::stream::{
    bad_value, end_summary, plural, AnomalyKind, EventRef, Findings, Id, IdField, Interner, Step,
    StreamChecker, StreamPairer,
};
use crate::{CheckOptions, CheckResult, EventType, HistoryError};
use rustc_hash::FxHashMap;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::json;
use std::borrow::Cow;
use std::fmt;

const NONE: u64 = u64::MAX;

#[derive(Debug, Clone, Copy)]
struct Ev {
    /// Expected version of its first `ok` append, that append's invocation and completion.
    ok_expected: u64,
    ok_invoke: u64,
    ok_at: u64,
    /// A `fail` or `info` append's completion, for evidence.
    other_at: u64,
    flags: u8,
}

const OK: u8 = 1;
const INFO: u8 = 2;
const FAIL: u8 = 4;

impl Ev {
    fn new() -> Self {
        Ev {
            ok_expected: NONE,
            ok_invoke: NONE,
            ok_at: NONE,
            other_at: NONE,
            flags: 0,
        }
    }
}

/// The last `ok` read of a stream: (version, event) in stream order, invocation, completion.
#[derive(Debug)]
struct FinalRead {
    entries: Vec<(u64, u32)>,
    invoke: u64,
    complete: u64,
}

#[derive(Debug, Default)]
struct Stream {
    events: Interner,
    ev: Vec<Ev>,
    /// expected version -> (event, completion) of its first winner.
    winners: FxHashMap<u64, (u32, u64)>,
    final_read: Option<FinalRead>,
    explicit_versions: bool,
}

impl Stream {
    fn event(&mut self, id: &Id<'_>) -> u32 {
        let (n, new) = self.events.intern(id);
        if new {
            self.ev.push(Ev::new());
        }
        n
    }
}

/// One entry of a read: an event id, or `{"version": N, "event": ID}`.
struct Entry<'a> {
    version: Option<u64>,
    event: Id<'a>,
}

impl<'de> Deserialize<'de> for Entry<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entry<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event id or {\"version\": N, \"event\": ID}")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut m: A) -> Result<Entry<'de>, A::Error> {
                let (mut version, mut event) = (None, None);
                while let Some(k) = m.next_key::<Cow<'de, str>>()? {
                    match &*k {
                        "version" => version = Some(m.next_value()?),
                        "event" | "id" => event = Some(m.next_value()?),
                        _ => {
                            m.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                let event = event.ok_or_else(|| de::Error::missing_field("event"))?;
                Ok(Entry { version, event })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Entry<'de>, E> {
                Ok(Entry {
                    version: None,
                    event: Id::Int(v),
                })
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Entry<'de>, E> {
                Ok(Entry {
                    version: None,
                    event: Id::deserialize(de::value::BorrowedStrDeserializer::new(v))?,
                })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Entry<'de>, E> {
                Ok(Entry {
                    version: None,
                    event: Id::deserialize(de::value::StringDeserializer::new(v.to_string()))?,
                })
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
struct AppendValue<'a> {
    expected: u64,
    #[serde(borrow)]
    event: IdField<'a>,
}

#[derive(Debug)]
enum Pending {
    Append {
        stream: u32,
        event: u32,
        expected: u64,
    },
    Read {
        stream: u32,
    },
    Ignored,
}

/// Every kind the versioned-append checker reports (docs/history.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Two `ok` appends of different events at one expected version.
    MultipleWinners,
    /// An `ok` append, acknowledged before the final read began, missing from it.
    LostAppend,
    /// An `ok` append at another version than it was acknowledged at.
    Misplaced,
    /// The final read holds one event twice.
    DuplicateInStream,
    /// The final read's versions do not run 1, 2, 3, ... without holes.
    Gap,
    /// The final read holds an event never appended.
    Unexpected,
    /// The final read holds an event every append of which failed.
    FailedButAppended,
}

impl AnomalyKind for Kind {
    type Rule = ();

    const ALL: &'static [Kind] = &[
        Kind::MultipleWinners,
        Kind::LostAppend,
        Kind::Misplaced,
        Kind::DuplicateInStream,
        Kind::Gap,
        Kind::Unexpected,
        Kind::FailedButAppended,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::MultipleWinners => "multiple-winners",
            Kind::LostAppend => "lost-append",
            Kind::Misplaced => "misplaced",
            Kind::DuplicateInStream => "duplicate-in-stream",
            Kind::Gap => "gap",
            Kind::Unexpected => "unexpected",
            Kind::FailedButAppended => "failed-but-appended",
        }
    }

    fn meaning(self) -> &'static str {
        match self {
            Kind::MultipleWinners => {
                "two appends of different events at one expected version both succeeded"
            }
            Kind::LostAppend => {
                "an ok append, acknowledged before the final read began, is missing from it"
            }
            Kind::Misplaced => {
                "the final read holds an ok append at another version than it was acknowledged at"
            }
            Kind::DuplicateInStream => "the final read holds one event twice",
            Kind::Gap => "the final read's versions do not run 1, 2, 3, ... without holes",
            Kind::Unexpected => "the final read holds an event never appended",
            Kind::FailedButAppended => {
                "every append of the event failed, yet the final read holds it"
            }
        }
    }

    fn counts(self, _: ()) -> bool {
        match self {
            Kind::MultipleWinners
            | Kind::LostAppend
            | Kind::Misplaced
            | Kind::DuplicateInStream
            | Kind::Gap
            | Kind::Unexpected
            | Kind::FailedButAppended => true,
        }
    }
}

/// The versioned-append checker; see the module docs.
pub struct VersionedAppend {
    pairer: StreamPairer<Pending>,
    names: Interner,
    streams: Vec<Stream>,
    findings: Findings<Kind>,
    appends: u64,
    ignored: std::collections::BTreeMap<String, u64>,
}

impl VersionedAppend {
    pub fn new(_options: &CheckOptions) -> Result<Self, String> {
        Ok(VersionedAppend {
            pairer: StreamPairer::default(),
            names: Interner::default(),
            streams: Vec::new(),
            findings: Findings::default(),
            appends: 0,
            ignored: Default::default(),
        })
    }
}

const APPEND_SHAPE: &str = "{\"expected\": V, \"event\": ID}";
const READ_SHAPE: &str = "a list of event ids, or of {\"version\": N, \"event\": ID}";

impl StreamChecker for VersionedAppend {
    fn name(&self) -> &str {
        "versioned-append"
    }

    fn event(&mut self, line: usize, e: &EventRef<'_>) -> Result<(), HistoryError> {
        let (names, streams, ignored, appends) = (
            &mut self.names,
            &mut self.streams,
            &mut self.ignored,
            &mut self.appends,
        );
        let step = self.pairer.push(line, e, || {
            let mut stream_of = || {
                let (n, new) = names.intern(&Id::from_key(e.key.unwrap_or("")));
                if new {
                    streams.push(Stream::default());
                }
                n
            };
            Ok(match e.f {
                "append" => {
                    let v: AppendValue = e
                        .value
                        .parse()
                        .map_err(|err| bad_value(line, e, err, APPEND_SHAPE))?;
                    let stream = stream_of();
                    let event = streams[stream as usize].event(&v.event.0);
                    *appends += 1;
                    Pending::Append {
                        stream,
                        event,
                        expected: v.expected,
                    }
                }
                "read" => Pending::Read {
                    stream: stream_of(),
                },
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
            Pending::Append {
                stream,
                event,
                expected,
            } => {
                let s = &mut self.streams[stream as usize];
                let ev = &mut s.ev[event as usize];
                match e.kind {
                    EventType::Ok => {
                        ev.flags |= OK;
                        if ev.ok_at == NONE {
                            (ev.ok_expected, ev.ok_invoke, ev.ok_at) =
                                (expected, open.invoke_index, e.index);
                        }
                        match s.winners.get(&expected) {
                            None => {
                                s.winners.insert(expected, (event, e.index));
                            }
                            Some(&(winner, winner_at)) if winner != event => {
                                let (name, a, b) = (
                                    self.names.key(stream),
                                    s.events.key(winner),
                                    s.events.key(event),
                                );
                                self.findings.add(Kind::MultipleWinners, || {
                                    (
                                        vec![winner_at, open.invoke_index, e.index],
                                        format!("Two appends at expected version {expected} of stream {name} both succeeded: event {a} (event {winner_at}) and event {b} (event {}).", e.index),
                                        json!({ "stream": name.to_json(), "expected": expected, "events": [a.to_json(), b.to_json()] }),
                                    )
                                });
                            }
                            Some(_) => {}
                        }
                    }
                    kind => {
                        ev.flags |= if kind == EventType::Fail { FAIL } else { INFO };
                        if ev.other_at == NONE {
                            ev.other_at = e.index;
                        }
                    }
                }
            }
            Pending::Read { stream } => {
                if e.kind != EventType::Ok {
                    return Ok(());
                }
                let entries: Vec<Entry> = e
                    .value
                    .parse()
                    .map_err(|err| bad_value(line, e, err, READ_SHAPE))?;
                let s = &mut self.streams[stream as usize];
                let mut read = Vec::with_capacity(entries.len());
                let mut explicit = false;
                for (i, en) in entries.iter().enumerate() {
                    explicit |= en.version.is_some();
                    read.push((en.version.unwrap_or(i as u64 + 1), s.event(&en.event)));
                }
                s.explicit_versions = explicit;
                s.final_read = Some(FinalRead {
                    entries: read,
                    invoke: open.invoke_index,
                    complete: e.index,
                });
            }
            Pending::Ignored => {}
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> CheckResult {
        for open in self.pairer.take_open() {
            if let Pending::Append { stream, event, .. } = open.payload {
                let ev = &mut self.streams[stream as usize].ev[event as usize];
                ev.flags |= INFO;
                if ev.other_at == NONE {
                    ev.other_at = open.invoke_index;
                }
            }
        }
        let mut findings = std::mem::take(&mut self.findings);
        let mut unread = Vec::new();
        let mut checked = 0u64;
        let mut not_checked = 0u64;
        for (si, s) in self.streams.iter().enumerate() {
            let name = self.names.key(si as u32);
            let Some(FinalRead {
                entries: read,
                invoke: read_invoke,
                complete: read_at,
            }) = &s.final_read
            else {
                if s.ev.iter().any(|ev| ev.flags & OK != 0) {
                    unread.push(name.to_string());
                }
                continue;
            };
            let (read_invoke, read_at) = (*read_invoke, *read_at);
            // Where each event sits in the final read (first occurrence).
            let mut at_version = vec![NONE; s.ev.len()];
            for (pos, &(version, event)) in read.iter().enumerate() {
                let key = s.events.key(event);
                if at_version[event as usize] != NONE {
                    let first = at_version[event as usize];
                    findings.add(Kind::DuplicateInStream, || {
                        (
                            vec![read_at],
                            format!("The final read of stream {name} (event {read_at}) holds event {key} twice, at versions {first} and {version}."),
                            json!({ "stream": name.to_json(), "event": key.to_json(), "versions": [first, version] }),
                        )
                    });
                } else {
                    at_version[event as usize] = version;
                }
                let want = pos as u64 + 1;
                if s.explicit_versions && version != want {
                    findings.add(Kind::Gap, || {
                        (
                            vec![read_at],
                            format!("The final read of stream {name} (event {read_at}) has version {version} at position {want}: versions must run 1, 2, 3, ... without holes."),
                            json!({ "stream": name.to_json(), "position": want, "version": version }),
                        )
                    });
                }
                let ev = s.ev[event as usize];
                if ev.flags == 0 {
                    findings.add(Kind::Unexpected, || {
                        (
                            vec![read_at],
                            format!("The final read of stream {name} (event {read_at}) holds event {key}, which was never appended."),
                            json!({ "stream": name.to_json(), "event": key.to_json() }),
                        )
                    });
                } else if ev.flags == FAIL {
                    let other = ev.other_at;
                    findings.add(Kind::FailedButAppended, || {
                        (
                            vec![other, read_at],
                            format!("Every append of event {key} to stream {name} failed (event {other}), yet the final read (event {read_at}) holds it."),
                            json!({ "stream": name.to_json(), "event": key.to_json() }),
                        )
                    });
                }
            }
            for (ei, ev) in s.ev.iter().enumerate() {
                if ev.flags & OK == 0 {
                    continue;
                }
                if ev.ok_at > read_invoke {
                    not_checked += 1;
                    continue;
                }
                checked += 1;
                let key = s.events.key(ei as u32);
                let want = ev.ok_expected + 1;
                let got = at_version[ei];
                if got == NONE {
                    findings.add(Kind::LostAppend, || {
                        (
                            vec![ev.ok_invoke, ev.ok_at, read_invoke, read_at],
                            format!("Event {key} was appended to stream {name} as version {want} (acknowledged at event {}), but the final read, begun later (event {read_invoke}), lacks it.", ev.ok_at),
                            json!({ "stream": name.to_json(), "event": key.to_json(), "version": want }),
                        )
                    });
                } else if got != want {
                    findings.add(Kind::Misplaced, || {
                        (
                            vec![ev.ok_invoke, ev.ok_at, read_at],
                            format!("Event {key} was acknowledged as version {want} of stream {name} (event {}), but the final read (event {read_at}) has it at version {got}.", ev.ok_at),
                            json!({ "stream": name.to_json(), "event": key.to_json(), "acknowledged": want, "read": got }),
                        )
                    });
                }
            }
        }
        let parts = findings.finish(());
        let mut unknown = Vec::new();
        if self.appends == 0 && self.streams.iter().all(|s| s.final_read.is_none()) {
            unknown.push(
                "the history has no append or read operations: is it a versioned-append history?"
                    .to_string(),
            );
        }
        if !unread.is_empty() {
            unknown.push(format!(
                "stream(s) {} had acknowledged appends but no ok read: gap- and duplicate-freedom unchecked",
                unread.join(", ")
            ));
        }
        let unknown_reason = (!unknown.is_empty()).then(|| unknown.join("; "));
        let mut summary = format!(
            "versioned-append: {} in {}, {} acknowledged appends checked against final reads ({} completed after their stream's final read began, not checked); {}.",
            plural(self.appends, "append"),
            plural(self.streams.len() as u64, "stream"),
            checked,
            not_checked,
            parts.sentence()
        );
        end_summary(&mut summary, &self.ignored, unknown_reason.as_deref());
        let details = json!({
            "streams": self.streams.len(),
            "appends": self.appends,
            "checked": checked,
            "not_checked": not_checked,
            "ignored_ops": self.ignored,
        });
        parts.into_result("versioned-append", summary, unknown_reason, details)
    }
}
