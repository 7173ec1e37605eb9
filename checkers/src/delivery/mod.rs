//! The `delivery` checker: queues, logs and streams with consumer groups, judged against the
//! guarantee the user states (at-most-once, at-least-once, exactly-once).
//!
//! One pass, one record per distinct message. Each message gets a dense number (see
//! [`Interner`]) and a fixed-size `Msg` holding the first event index of each thing that can
//! prove an anomaly (its produce, its acknowledged produce, its first delivery, its first ack, its
//! dead-lettering) plus counters. Evidence that can repeat (the second and later deliveries, the
//! second ack) goes to side tables bounded per message, so memory follows the number of messages
//! and of anomalous messages, never the number of events. Whatever depends on the end of the
//! history (lost, stranded, unexpected, offset gaps) is decided in [`StreamChecker::finish`].
//!
//! Real-time order is judged with event indices, not clocks: event i happened before event j
//! when i < j, which is the one order a history guarantees. Two order rules follow:
//! - a consumer's *first* deliveries on one partition must go forward: by offset where the
//!   history gives offsets, else in produce order (a message whose produce was acknowledged
//!   before another's produce began comes first); redeliveries are duplicates or retries, never
//!   order violations;
//! - offsets must respect produce order too: for each partition the checker keeps the running
//!   maximum of acknowledged offsets, pruned to what still-open produces may ask about.
//!
//! What counts toward the verdict is a table of (kind, guarantee), in [`Kind::counts`] (an
//! exhaustive match: a new kind must say whether it counts); the summary names the guarantee,
//! the kinds that counted and those only reported.
//!
//! The module by job: `shapes.rs` reads the ops' values, this file keeps the state and judges
//! each event as it comes, `judge.rs` decides what depends on the whole history and builds the
//! verdict.

use crate::formats::stream::fast::Scan;
use crate::stream::{
    bad_value, end_summary, plural, AnomalyKind, EventRef, FaultTracker, Findings, Id, Interner,
    Step, StreamChecker, StreamPairer, ValueRef,
};
use crate::{CheckOptions, CheckResult, EventType, HistoryError};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::{json, Value};
use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;

const NONE: u64 = u64::MAX;
const NO_PART: u32 = u32::MAX;
/// Deliveries (after the first) and acks (after the first) kept as evidence per message.
const EVIDENCE_PER_MESSAGE_MAX: usize = 8;

/// The guarantee a user says the system gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarantee {
    AtMostOnce,
    AtLeastOnce,
    ExactlyOnce,
}

impl Guarantee {
    pub const NAMES: &'static [&'static str] = &["at-most-once", "at-least-once", "exactly-once"];

    pub fn parse(s: &str) -> Option<Guarantee> {
        match s {
            "at-most-once" => Some(Guarantee::AtMostOnce),
            "at-least-once" => Some(Guarantee::AtLeastOnce),
            "exactly-once" => Some(Guarantee::ExactlyOnce),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Guarantee::AtMostOnce => "at-most-once",
            Guarantee::AtLeastOnce => "at-least-once",
            Guarantee::ExactlyOnce => "exactly-once",
        }
    }
}

/// Every kind the delivery checker reports (docs/history.md), in the order the summary lists
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An `ok` produce never delivered by the end of the drain, never dead-lettered.
    Lost,
    /// Delivered again after an ack succeeded (or without acks, at all), or stored twice.
    Duplicated,
    /// Two successful acks of one message.
    DoubleCommitted,
    /// Delivered, never acked nor dead-lettered by the end of the drain.
    Stranded,
    /// Delivered or acked but never produced, or delivered before its produce began.
    Unexpected,
    /// Every produce of it failed, yet it was delivered.
    FailedButDelivered,
    /// On one partition, a consumer's first deliveries went backwards.
    Reordered,
    /// Out of order, but a redelivery or an unknown consume could explain it.
    MaybeReordered,
    /// Two messages at one offset of a partition.
    OffsetConflict,
    /// A produce acknowledged before another began got a higher or equal offset.
    OffsetOrder,
    /// Offsets missing between the lowest and highest known offset of a partition.
    OffsetGap,
    /// A consumer group's committed offset went backwards.
    OffsetRegression,
    /// Delivered more times than `--max-retries` allows.
    RetriesExceeded,
    /// No produce got `ok` (some `info`), yet it was delivered: fine, listed.
    Recovered,
}

impl crate::stream::AnomalyKind for Kind {
    type Rule = Guarantee;

    const ALL: &'static [Kind] = &[
        Kind::Lost,
        Kind::Duplicated,
        Kind::DoubleCommitted,
        Kind::Stranded,
        Kind::Unexpected,
        Kind::FailedButDelivered,
        Kind::Reordered,
        Kind::MaybeReordered,
        Kind::OffsetConflict,
        Kind::OffsetOrder,
        Kind::OffsetGap,
        Kind::OffsetRegression,
        Kind::RetriesExceeded,
        Kind::Recovered,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Lost => "lost",
            Kind::Duplicated => "duplicated",
            Kind::DoubleCommitted => "double-committed",
            Kind::Stranded => "stranded",
            Kind::Unexpected => "unexpected",
            Kind::FailedButDelivered => "failed-but-delivered",
            Kind::Reordered => "reordered",
            Kind::MaybeReordered => "maybe-reordered",
            Kind::OffsetConflict => "offset-conflict",
            Kind::OffsetOrder => "offset-order",
            Kind::OffsetGap => "offset-gap",
            Kind::OffsetRegression => "offset-regression",
            Kind::RetriesExceeded => "retries-exceeded",
            Kind::Recovered => "recovered",
        }
    }

    fn meaning(self) -> &'static str {
        match self {
            Kind::Lost => "acknowledged as produced, yet never delivered by the end of the drain nor dead-lettered",
            Kind::Duplicated => "delivered again after an ack of it succeeded (without acks: at all), or stored twice",
            Kind::DoubleCommitted => "two acks of one message both succeeded: it was processed twice",
            Kind::Stranded => "delivered but never acked nor dead-lettered by the end of the drain",
            Kind::Unexpected => "delivered or acked but never produced, or delivered before its produce began",
            Kind::FailedButDelivered => "every produce of it failed, yet it was delivered",
            Kind::Reordered => "on one partition, a consumer's first deliveries went backwards",
            Kind::MaybeReordered => "out of order, but a redelivery or a consume of unknown outcome could explain it",
            Kind::OffsetConflict => "two messages at one offset of a partition",
            Kind::OffsetOrder => "a produce acknowledged before another began got a higher or equal offset",
            Kind::OffsetGap => "offsets missing between the lowest and highest known offset of a partition",
            Kind::OffsetRegression => "a consumer group's committed offset went backwards",
            Kind::RetriesExceeded => "delivered more times than the retry limit (--max-retries) allows",
            Kind::Recovered => "no produce of it got ok (some were indeterminate), yet it was delivered: fine, listed",
        }
    }

    /// Whether an anomaly of this kind makes the verdict invalid under `g`.
    fn counts(self, g: Guarantee) -> bool {
        match self {
            Kind::Lost | Kind::Stranded => g != Guarantee::AtMostOnce,
            Kind::Duplicated | Kind::DoubleCommitted => g != Guarantee::AtLeastOnce,
            Kind::Recovered | Kind::MaybeReordered => false,
            Kind::Unexpected
            | Kind::FailedButDelivered
            | Kind::Reordered
            | Kind::OffsetConflict
            | Kind::OffsetOrder
            | Kind::OffsetGap
            | Kind::OffsetRegression
            | Kind::RetriesExceeded => true,
        }
    }
}

mod judge;
mod shapes;

use shapes::*;

// ---------------------------------------------------------------------------------------------
// State

/// What the checker remembers about one message: first event indices (NONE when not seen) and
/// counters. Fixed size: about 110 bytes with its id.
#[derive(Debug, Clone)]
struct Msg {
    /// Invocation of its first produce.
    produce_invoke: u64,
    /// Completion of its first `ok` produce.
    produce_ok: u64,
    /// Completion (or invocation, if never completed) of a `fail` or `info` produce.
    produce_other: u64,
    /// Completion of the first consume that delivered it, and that consume's process.
    first_delivery: u64,
    first_consumer: u64,
    /// Completion of its first `ok` ack.
    ack_ok: u64,
    /// Completion of the first dead-letter read listing it.
    dead_letter: u64,
    /// Its offset, as first learnt (from the produce's ack or a delivery).
    offset: u64,
    partition: u32,
    deliveries: u32,
    /// Highest delivery count the broker reported.
    broker_deliveries: u32,
    /// Deliveries whose consume began after an `ok` ack of the message had completed.
    after_commit: u16,
    acks_ok: u16,
    flags: u8,
}

const PRODUCED_OK: u8 = 1;
const PRODUCED_INFO: u8 = 2;
const PRODUCED_FAIL: u8 = 4;
const ACK_INFO: u8 = 8;
const OFFSET_FROM_ACK: u8 = 16;
/// Seen at two offsets: reported as duplicated when first seen, not again for its deliveries.
const STORED_TWICE: u8 = 32;

impl Msg {
    fn new() -> Self {
        Msg {
            produce_invoke: NONE,
            produce_ok: NONE,
            produce_other: NONE,
            first_delivery: NONE,
            first_consumer: NONE,
            ack_ok: NONE,
            dead_letter: NONE,
            offset: NONE,
            partition: NO_PART,
            deliveries: 0,
            broker_deliveries: 0,
            after_commit: 0,
            acks_ok: 0,
            flags: 0,
        }
    }

    fn produced(&self) -> bool {
        self.flags & (PRODUCED_OK | PRODUCED_INFO | PRODUCED_FAIL) != 0
    }
}

/// A delivery after the first: consume completion, consumer, and whether it came after a commit.
#[derive(Debug, Clone, Copy)]
struct Redelivery {
    at: u64,
    consumer: u64,
    after_commit: bool,
}

/// A consumer's position on one partition, for the order rules (first deliveries only).
#[derive(Debug, Clone, Copy)]
struct OrderState {
    last_offset: u64,
    last_offset_msg: u32,
    last_offset_at: u64,
    /// The latest produce invocation among the messages delivered so far.
    max_invoke: u64,
    max_invoke_msg: u32,
    max_invoke_at: u64,
}

/// Running maximum of acknowledged offsets of one partition: (ack completion, max, message),
/// one entry per increase, pruned to what open produces may still ask about.
#[derive(Debug, Default)]
struct AckedOffsets {
    entries: VecDeque<(u64, u64, u32)>,
}

/// An order violation seen on a first delivery, judged at the end (see `reorder_finding`).
#[derive(Debug, Clone, Copy)]
struct Reorder {
    /// The message that arrived late, and the one it arrived after.
    msg: u32,
    other: u32,
    consumer: u64,
    part: u32,
    by_offset: bool,
    /// By offset: the other's delivery, this delivery. By produce order: this produce's ack,
    /// the other's produce invocation, the other's delivery, this delivery.
    ops: [u64; 4],
    /// By offset: (this offset, the other's).
    offsets: (u64, u64),
    /// The broker's delivery count on the late delivery itself (0: not given).
    broker_delivery: u32,
}

/// The highest committed offset of one (group, partition) and the commit that set it.
#[derive(Debug, Clone, Copy)]
struct GroupOffset {
    max: u64,
    at: u64,
}

/// What an open invocation will need at its completion.
#[derive(Debug)]
enum Pending {
    Produce {
        msg: u32,
    },
    Consume {
        drain: bool,
        partition: u32,
    },
    Ack {
        msg: u32,
    },
    Nack,
    DeadLetter,
    CommitOffset {
        slot: (u32, u32),
        offset: u64,
        floor: GroupOffset,
    },
    FetchOffset {
        slot: (u32, u32),
        floor: GroupOffset,
    },
    Ignored,
}

/// The delivery checker; see the module docs.
pub struct Delivery {
    guarantee: Guarantee,
    max_retries: Option<u32>,
    pairer: StreamPairer<Pending>,
    st: State,
}

#[derive(Default)]
struct State {
    ids: Interner,
    msgs: Vec<Msg>,
    parts: Interner,
    groups: Interner,
    group_offsets: FxHashMap<(u32, u32), GroupOffset>,
    redeliveries: FxHashMap<u32, Vec<Redelivery>>,
    extra_acks: FxHashMap<u32, Vec<u64>>,
    order: FxHashMap<(u64, u32), OrderState>,
    /// Order violations, at most one per message (only first deliveries are judged).
    reorders: Vec<Reorder>,
    /// Invocation of the first consume whose outcome is unknown (info, or never completed).
    first_uncertain_consume: u64,
    acked_offsets: Vec<AckedOffsets>,
    /// Invocation indices of produces since the oldest still open, in order, with whether each
    /// is still open: the front is the bound for pruning `acked_offsets`.
    open_produces: VecDeque<(u64, bool)>,
    /// (partition, offset, message) seen besides a message's first offset.
    extra_offsets: Vec<(u32, u64, u32)>,
    faults: FaultTracker,
    findings: Findings<Kind>,
    uses_acks: bool,
    drain_seen: bool,
    drain_empty_all: Option<u64>,
    drain_empty_parts: FxHashSet<u32>,
    last_drain_empty: u64,
    figures: Figures,
    ignored: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
struct Figures {
    produce_ops: u64,
    produce_ok: u64,
    produce_fail: u64,
    produce_info: u64,
    consume_ops: u64,
    consume_ok: u64,
    drain_ops: u64,
    deliveries: u64,
    ack_ok: u64,
    ack_fail: u64,
    ack_info: u64,
    nack_ok: u64,
    dead_letter_reads: u64,
    offset_commits_ok: u64,
    offset_fetches_ok: u64,
}

impl Delivery {
    pub fn new(options: &CheckOptions) -> Result<Self, String> {
        let guarantee = match options.guarantee.as_deref() {
            None => Guarantee::ExactlyOnce,
            Some(g) => Guarantee::parse(g).ok_or_else(|| {
                format!(
                    "--guarantee {g:?} does not apply to the delivery checker; expected one of: {}",
                    Guarantee::NAMES.join(", ")
                )
            })?,
        };
        Ok(Delivery {
            guarantee,
            max_retries: options.max_retries,
            pairer: StreamPairer::default(),
            st: State {
                first_uncertain_consume: NONE,
                ..State::default()
            },
        })
    }
}

impl State {
    fn msg(&mut self, id: &Id<'_>) -> u32 {
        let (n, new) = self.ids.intern(id);
        if new {
            self.msgs.push(Msg::new());
        }
        n
    }

    fn part(&mut self, p: &Option<Id<'_>>) -> u32 {
        match p {
            None => NO_PART,
            Some(id) => {
                let (n, new) = self.parts.intern(id);
                if new {
                    self.acked_offsets.push(AckedOffsets::default());
                }
                n
            }
        }
    }

    fn part_name(&self, p: u32) -> String {
        if p == NO_PART {
            "the queue".to_string()
        } else {
            format!("partition {}", self.parts.key(p))
        }
    }

    fn id(&self, m: u32) -> String {
        self.ids.key(m).to_string()
    }

    fn invoke(&mut self, line: usize, e: &EventRef<'_>) -> Result<Pending, HistoryError> {
        let v = e.value;
        Ok(match e.f {
            "produce" | "send" | "enqueue" | "publish" => {
                let r = parse_msg(v).map_err(|err| bad_value(line, e, err, PRODUCE_SHAPE))?;
                let Some(id) = r.id.as_ref() else {
                    return Err(bad_value(line, e, "no id", PRODUCE_SHAPE));
                };
                let msg = self.msg(id);
                let part = self.part(&r.partition);
                self.figures.produce_ops += 1;
                let m = &mut self.msgs[msg as usize];
                if m.partition == NO_PART {
                    m.partition = part;
                }
                if m.produce_invoke == NONE {
                    m.produce_invoke = e.index;
                    if m.first_delivery != NONE {
                        let at = m.first_delivery;
                        let id = self.id(msg);
                        self.findings.add(Kind::Unexpected, || {
                            (
                                vec![at, e.index],
                                format!("Message {id} was delivered at event {at}, before its first produce began at event {}.", e.index),
                                json!({ "id": self.ids.key(msg).to_json() }),
                            )
                        });
                    }
                }
                self.open_produces.push_back((e.index, true));
                Pending::Produce { msg }
            }
            "consume" | "poll" | "dequeue" | "drain" => {
                let drain = e.f == "drain";
                let partition = if v.is_null() {
                    NO_PART
                } else {
                    let r = parse_msg(v)
                        .map_err(|err| bad_value(line, e, err, "null or {\"partition\": P}"))?;
                    self.part(&r.partition)
                };
                if drain {
                    self.drain_seen = true;
                    self.figures.drain_ops += 1;
                } else {
                    self.figures.consume_ops += 1;
                }
                Pending::Consume { drain, partition }
            }
            "ack" | "commit" | "nack" => {
                let r = parse_msg(v).map_err(|err| bad_value(line, e, err, ACK_SHAPE))?;
                let Some(id) = r.id.as_ref() else {
                    return Err(bad_value(line, e, "no id", ACK_SHAPE));
                };
                let msg = self.msg(id);
                self.uses_acks = true;
                if e.f == "nack" {
                    Pending::Nack
                } else {
                    Pending::Ack { msg }
                }
            }
            "dead-letter" => Pending::DeadLetter,
            "commit-offset" | "fetch-offset" => {
                let commit = e.f == "commit-offset";
                let shape = if commit {
                    OFFSET_SHAPE
                } else {
                    "{\"group\": G, \"partition\": P}"
                };
                let r = parse_msg(v).map_err(|err| bad_value(line, e, err, shape))?;
                let (Some(group), Some(_)) = (r.group.as_ref(), r.partition.as_ref()) else {
                    return Err(bad_value(line, e, "no group or no partition", shape));
                };
                let slot = (self.groups.intern(group).0, self.part(&r.partition));
                let floor = self
                    .group_offsets
                    .get(&slot)
                    .copied()
                    .unwrap_or(GroupOffset {
                        max: NONE,
                        at: NONE,
                    });
                if commit {
                    let Some(offset) = r.offset else {
                        return Err(bad_value(line, e, "no offset", shape));
                    };
                    Pending::CommitOffset {
                        slot,
                        offset,
                        floor,
                    }
                } else {
                    Pending::FetchOffset { slot, floor }
                }
            }
            other => {
                *self.ignored.entry(other.to_string()).or_default() += 1;
                Pending::Ignored
            }
        })
    }

    fn complete(
        &mut self,
        line: usize,
        e: &EventRef<'_>,
        open: crate::stream::Open<Pending>,
    ) -> Result<(), HistoryError> {
        match open.payload {
            Pending::Produce { msg } => {
                self.close_produce(open.invoke_index);
                match e.kind {
                    EventType::Ok => self.produce_ok(line, e, msg, open.invoke_index)?,
                    EventType::Fail => {
                        self.figures.produce_fail += 1;
                        let m = &mut self.msgs[msg as usize];
                        m.flags |= PRODUCED_FAIL;
                        if m.produce_other == NONE {
                            m.produce_other = e.index;
                        }
                    }
                    _ => self.produce_info(msg, e.index),
                }
            }
            Pending::Consume { drain, partition } => {
                if e.kind == EventType::Info {
                    self.first_uncertain_consume =
                        self.first_uncertain_consume.min(open.invoke_index);
                }
                if e.kind != EventType::Ok {
                    return Ok(());
                }
                self.figures.consume_ok += 1;
                let Deliveries(list) = parse_deliveries(e.value)
                    .map_err(|err| bad_value(line, e, err, CONSUME_SHAPE))?;
                if drain && list.is_empty() {
                    self.last_drain_empty = e.index;
                    if partition == NO_PART {
                        self.drain_empty_all.get_or_insert(e.index);
                    } else {
                        self.drain_empty_parts.insert(partition);
                    }
                }
                for r in &list {
                    let Some(id) = r.id.as_ref() else {
                        return Err(bad_value(
                            line,
                            e,
                            "a delivery without an id",
                            CONSUME_SHAPE,
                        ));
                    };
                    let msg = self.msg(id);
                    let mut part = self.part(&r.partition);
                    if part == NO_PART {
                        part = partition;
                    }
                    self.deliver(msg, part, r, open.process, open.invoke_index, e.index);
                }
            }
            Pending::Ack { msg } => match e.kind {
                EventType::Ok => {
                    self.figures.ack_ok += 1;
                    let m = &mut self.msgs[msg as usize];
                    m.acks_ok = m.acks_ok.saturating_add(1);
                    if m.ack_ok == NONE {
                        m.ack_ok = e.index;
                    } else {
                        let v = self.extra_acks.entry(msg).or_default();
                        if v.len() < EVIDENCE_PER_MESSAGE_MAX {
                            v.push(e.index);
                        }
                    }
                }
                EventType::Fail => self.figures.ack_fail += 1,
                _ => {
                    self.figures.ack_info += 1;
                    self.msgs[msg as usize].flags |= ACK_INFO;
                }
            },
            Pending::Nack => {
                if e.kind == EventType::Ok {
                    self.figures.nack_ok += 1;
                }
            }
            Pending::DeadLetter => {
                if e.kind != EventType::Ok {
                    return Ok(());
                }
                self.figures.dead_letter_reads += 1;
                let Deliveries(list) = parse_deliveries(e.value)
                    .map_err(|err| bad_value(line, e, err, CONSUME_SHAPE))?;
                for r in &list {
                    let Some(id) = r.id.as_ref() else {
                        return Err(bad_value(line, e, "a message without an id", CONSUME_SHAPE));
                    };
                    let msg = self.msg(id);
                    let m = &mut self.msgs[msg as usize];
                    if m.dead_letter == NONE {
                        m.dead_letter = e.index;
                    }
                }
            }
            Pending::CommitOffset {
                slot,
                offset,
                floor,
            } => {
                if e.kind != EventType::Ok {
                    return Ok(());
                }
                self.figures.offset_commits_ok += 1;
                self.check_group_offset(slot, offset, floor, open.invoke_index, e.index, true);
                let entry = self.group_offsets.entry(slot).or_insert(GroupOffset {
                    max: offset,
                    at: e.index,
                });
                if offset > entry.max {
                    *entry = GroupOffset {
                        max: offset,
                        at: e.index,
                    };
                }
            }
            Pending::FetchOffset { slot, floor } => {
                if e.kind != EventType::Ok {
                    return Ok(());
                }
                self.figures.offset_fetches_ok += 1;
                let offset = match e.value.to_value() {
                    Value::Number(n) => n.as_u64(),
                    Value::Object(m) => m.get("offset").and_then(Value::as_u64),
                    _ => None,
                };
                let Some(offset) = offset else {
                    return Err(bad_value(
                        line,
                        e,
                        "no offset",
                        "{\"group\": G, \"partition\": P, \"offset\": O} or an offset",
                    ));
                };
                self.check_group_offset(slot, offset, floor, open.invoke_index, e.index, false);
            }
            Pending::Ignored => {}
        }
        Ok(())
    }

    fn close_produce(&mut self, invoke_index: u64) {
        if let Ok(i) = self
            .open_produces
            .binary_search_by_key(&invoke_index, |&(at, _)| at)
        {
            self.open_produces[i].1 = false;
        }
        while let Some(&(_, false)) = self.open_produces.front() {
            self.open_produces.pop_front();
        }
    }

    fn produce_info(&mut self, msg: u32, at: u64) {
        self.figures.produce_info += 1;
        let m = &mut self.msgs[msg as usize];
        m.flags |= PRODUCED_INFO;
        if m.produce_other == NONE {
            m.produce_other = at;
        }
    }

    fn produce_ok(
        &mut self,
        line: usize,
        e: &EventRef<'_>,
        msg: u32,
        invoke_index: u64,
    ) -> Result<(), HistoryError> {
        self.figures.produce_ok += 1;
        let r = parse_msg(e.value).map_err(|err| bad_value(line, e, err, PRODUCE_SHAPE))?;
        if let Some(id) = r.id.as_ref() {
            if self.ids.get(id) != Some(msg) {
                return Err(HistoryError {
                    line,
                    message: format!(
                        "ok {:?} acknowledges message {} but its invocation produced {}; expected the same id (or a null value)",
                        e.f,
                        id.to_key(),
                        self.id(msg)
                    ),
                });
            }
        }
        let part = self.part(&r.partition);
        {
            let m = &mut self.msgs[msg as usize];
            m.flags |= PRODUCED_OK;
            if m.produce_ok == NONE {
                m.produce_ok = e.index;
            }
            if part != NO_PART && m.partition == NO_PART {
                m.partition = part;
            }
        }
        let part = self.msgs[msg as usize].partition;
        let Some(offset) = r.offset else {
            return Ok(());
        };
        if self.msgs[msg as usize].offset == NONE {
            self.msgs[msg as usize].flags |= OFFSET_FROM_ACK;
        }
        self.record_offset(msg, part, offset, e.index);
        if part == NO_PART {
            return Ok(());
        }
        // Offsets follow produce order: compare with the acks completed before this one began.
        let acked = &self.acked_offsets[part as usize];
        let before = acked
            .entries
            .partition_point(|&(at, _, _)| at < invoke_index);
        if before > 0 {
            let (at, max, other) = acked.entries[before - 1];
            if max >= offset && other != msg {
                let part_name = self.part_name(part);
                let (id, other_id) = (self.id(msg), self.id(other));
                self.findings.add(Kind::OffsetOrder, || {
                    (
                        vec![at, invoke_index, e.index],
                        format!("On {part_name}, message {other_id} was acknowledged at offset {max} (event {at}) before the produce of message {id} began (event {invoke_index}), yet {id} got the lower or equal offset {offset}."),
                        json!({ "id": self.ids.key(msg).to_json(), "offset": offset, "earlier": self.ids.key(other).to_json(), "earlier_offset": max }),
                    )
                });
            }
        }
        let acked = &mut self.acked_offsets[part as usize];
        let prev_max = acked.entries.back().map(|&(_, m, _)| m);
        if prev_max.is_none_or(|m| offset > m) {
            acked.entries.push_back((e.index, offset, msg));
        }
        let min_open = self.open_produces.front().map_or(NONE, |&(at, _)| at);
        while acked.entries.len() >= 2 && acked.entries[1].0 < min_open {
            acked.entries.pop_front();
        }
        Ok(())
    }

    fn record_offset(&mut self, msg: u32, part: u32, offset: u64, at: u64) {
        let m = &mut self.msgs[msg as usize];
        if m.offset == NONE {
            m.offset = offset;
            if m.partition == NO_PART {
                m.partition = part;
            }
            return;
        }
        if m.offset == offset && (part == m.partition || part == NO_PART) {
            return;
        }
        let (first, first_part) = (m.offset, m.partition);
        let first_at = if m.flags & OFFSET_FROM_ACK != 0 {
            m.produce_ok
        } else {
            m.first_delivery
        };
        let part = if part == NO_PART { first_part } else { part };
        if self
            .extra_offsets
            .iter()
            .rev()
            .take(64)
            .any(|&(p, o, x)| p == part && o == offset && x == msg)
        {
            return;
        }
        self.extra_offsets.push((part, offset, msg));
        if m.flags & STORED_TWICE != 0 {
            return;
        }
        m.flags |= STORED_TWICE;
        let id = self.id(msg);
        let (p1, p2) = (self.part_name(first_part), self.part_name(part));
        self.findings.add(Kind::Duplicated, || {
            (
                vec![first_at, at],
                format!("Message {id} is stored twice: at offset {first} of {p1} (event {first_at}) and at offset {offset} of {p2} (event {at})."),
                json!({ "id": self.ids.key(msg).to_json(), "offsets": [first, offset], "in_log": true }),
            )
        });
    }

    fn deliver(
        &mut self,
        msg: u32,
        part: u32,
        r: &MsgRef<'_>,
        consumer: u64,
        consume_invoke: u64,
        at: u64,
    ) {
        self.figures.deliveries += 1;
        let part = if part == NO_PART {
            self.msgs[msg as usize].partition
        } else {
            part
        };
        if let Some(offset) = r.offset {
            self.record_offset(msg, part, offset, at);
        }
        let m = &mut self.msgs[msg as usize];
        if m.partition == NO_PART {
            m.partition = part;
        }
        if let Some(n) = r.delivery {
            m.broker_deliveries = m
                .broker_deliveries
                .max(u32::try_from(n).unwrap_or(u32::MAX));
        }
        m.deliveries = m.deliveries.saturating_add(1);
        let after_commit = m.ack_ok != NONE && m.ack_ok < consume_invoke;
        if after_commit {
            m.after_commit = m.after_commit.saturating_add(1);
        }
        if m.deliveries > 1 {
            let v = self.redeliveries.entry(msg).or_default();
            if v.len() < EVIDENCE_PER_MESSAGE_MAX {
                v.push(Redelivery {
                    at,
                    consumer,
                    after_commit,
                });
            }
            return;
        }
        m.first_delivery = at;
        m.first_consumer = consumer;
        let produce_ok = m.produce_ok;
        let produce_invoke = m.produce_invoke;
        let offset = r.offset.unwrap_or(NONE);
        let broker_delivery = r
            .delivery
            .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX));
        // Order of first deliveries, per consumer and partition.
        let st = self.order.entry((consumer, part)).or_insert(OrderState {
            last_offset: NONE,
            last_offset_msg: msg,
            last_offset_at: NONE,
            max_invoke: NONE,
            max_invoke_msg: msg,
            max_invoke_at: NONE,
        });
        let mut violation: Option<Reorder> = None;
        if offset != NONE && st.last_offset != NONE && offset < st.last_offset {
            violation = Some(Reorder {
                msg,
                other: st.last_offset_msg,
                consumer,
                part,
                by_offset: true,
                ops: [st.last_offset_at, at, NONE, NONE],
                offsets: (offset, st.last_offset),
                broker_delivery,
            });
        } else if offset == NONE
            && produce_ok != NONE
            && st.max_invoke != NONE
            && produce_ok < st.max_invoke
        {
            violation = Some(Reorder {
                msg,
                other: st.max_invoke_msg,
                consumer,
                part,
                by_offset: false,
                ops: [produce_ok, st.max_invoke, st.max_invoke_at, at],
                offsets: (NONE, NONE),
                broker_delivery,
            });
        }
        if offset != NONE && (st.last_offset == NONE || offset > st.last_offset) {
            st.last_offset = offset;
            st.last_offset_msg = msg;
            st.last_offset_at = at;
        }
        if produce_invoke != NONE && (st.max_invoke == NONE || produce_invoke > st.max_invoke) {
            st.max_invoke = produce_invoke;
            st.max_invoke_msg = msg;
            st.max_invoke_at = at;
        }
        // Judged at the end, once every consume whose outcome is unknown is known: one begun
        // earlier may have delivered the message first, unseen.
        if let Some(v) = violation {
            self.reorders.push(v);
        }
    }

    /// Turns an order violation into an anomaly: `reordered` when nothing explains it,
    /// `maybe-reordered` (reported only) when the late delivery is itself a redelivery by the
    /// broker's own count on it, or a consume that may have delivered the message unseen (it
    /// got info, or never completed) began first. Deliveries after the late one never explain
    /// it: a redelivery later cannot excuse an earlier reorder.
    fn reorder_finding(&mut self, r: &Reorder, first_uncertain_consume: u64) {
        let m = &self.msgs[r.msg as usize];
        let redelivered = r.broker_delivery > 1;
        let hidden = first_uncertain_consume < m.first_delivery;
        let (id, other) = (self.ids.key(r.msg), self.ids.key(r.other));
        let part = if r.part == NO_PART {
            "the queue".to_string()
        } else {
            format!("partition {}", self.parts.key(r.part))
        };
        let c = r.consumer;
        let mut why = if r.by_offset {
            let [prev_at, at, _, _] = r.ops;
            let (offset, prev) = r.offsets;
            format!("Consumer {c} first received message {other} at offset {prev} of {part} (event {prev_at}), then message {id} at the lower offset {offset} (event {at}).")
        } else {
            let [ok, other_invoke, other_at, at] = r.ops;
            format!("Message {id} was acknowledged (event {ok}) before message {other} was produced (event {other_invoke}) on {part}, yet consumer {c} received {other} first (event {other_at}) and {id} later (event {at}).")
        };
        let kind = if redelivered {
            why.push_str(&format!(
                " But the broker counted this delivery of {id} as its delivery number {}, so an earlier delivery the history does not show may have come in order.",
                r.broker_delivery
            ));
            Kind::MaybeReordered
        } else if hidden {
            why.push_str(&format!(" But a consume begun at event {first_uncertain_consume} had an unknown outcome and may have delivered {id} first, unseen."));
            Kind::MaybeReordered
        } else {
            Kind::Reordered
        };
        let ops: Vec<u64> = r.ops.iter().copied().filter(|&o| o != NONE).collect();
        let data = if r.by_offset {
            json!({ "id": id.to_json(), "consumer": c, "offset": r.offsets.0, "after": other.to_json(), "after_offset": r.offsets.1 })
        } else {
            json!({ "id": id.to_json(), "consumer": c, "after": other.to_json() })
        };
        self.findings.add(kind, || (ops, why, data));
    }

    fn check_group_offset(
        &mut self,
        slot: (u32, u32),
        offset: u64,
        floor: GroupOffset,
        invoke: u64,
        at: u64,
        commit: bool,
    ) {
        if floor.max == NONE || offset >= floor.max {
            return;
        }
        let (group, part) = (self.groups.key(slot.0).to_string(), self.part_name(slot.1));
        self.findings.add(Kind::OffsetRegression, || {
            (
                vec![floor.at, invoke, at],
                if commit {
                    format!("Group {group} committed offset {offset} on {part} (event {at}), below offset {} committed at event {}, before this commit began.", floor.max, floor.at)
                } else {
                    format!("Group {group}'s committed offset on {part} read as {offset} (event {at}), below offset {} committed at event {}, before this read began.", floor.max, floor.at)
                },
                json!({ "group": group, "offset": offset, "committed_before": floor.max }),
            )
        });
    }
}
