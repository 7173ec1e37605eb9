//! The `delivery` checker: queues, logs and streams with consumer groups, judged against the
//! guarantee the user states (at-most-once, at-least-once, exactly-once).
//!
//! One pass, one record per distinct message. Each message gets a dense number (see
//! [`Interner`]) and a fixed-size [`Msg`] holding the first event index of each thing that can
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
//! What counts toward the verdict is a table of (kind, guarantee), in [`counts`]; the summary
//! names the guarantee, the kinds that counted and those only reported.

use crate::formats::stream::fast::Scan;
use crate::stream::{
    bad_value, plural, AnomalyKind, EventRef, FaultTracker, Findings, Id, Interner, Step,
    StreamChecker, StreamPairer, ValueRef,
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
    Lost,
    Duplicated,
    DoubleCommitted,
    Stranded,
    Unexpected,
    FailedButDelivered,
    Reordered,
    MaybeReordered,
    OffsetConflict,
    OffsetOrder,
    OffsetGap,
    OffsetRegression,
    RetriesExceeded,
    Recovered,
}

impl Kind {
    pub const ALL: [Kind; 14] = [
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

    /// Whether an anomaly of this kind makes the verdict invalid under `g`.
    pub fn counts(self, g: Guarantee) -> bool {
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

impl crate::stream::AnomalyKind for Kind {
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
}

// ---------------------------------------------------------------------------------------------
// Value shapes

/// A message as a history names it: a bare id, or an object with some of these fields.
#[derive(Debug, Default)]
struct MsgRef<'a> {
    id: Option<Id<'a>>,
    partition: Option<Id<'a>>,
    offset: Option<u64>,
    delivery: Option<u64>,
    group: Option<Id<'a>>,
}

struct MsgRefVisitor;

impl<'de> Visitor<'de> for MsgRefVisitor {
    type Value = MsgRef<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a message id or an object like {\"id\": ..., \"partition\": ..., \"offset\": ...}",
        )
    }
    fn visit_unit<E: de::Error>(self) -> Result<MsgRef<'de>, E> {
        Ok(MsgRef::default())
    }
    fn visit_none<E: de::Error>(self) -> Result<MsgRef<'de>, E> {
        Ok(MsgRef::default())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<MsgRef<'de>, E> {
        Ok(MsgRef {
            id: Some(Id::Int(v)),
            ..MsgRef::default()
        })
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<MsgRef<'de>, E> {
        Ok(MsgRef {
            id: Some(Id::deserialize(de::value::I64Deserializer::new(v))?),
            ..MsgRef::default()
        })
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<MsgRef<'de>, E> {
        Ok(MsgRef {
            id: Some(Id::deserialize(de::value::BorrowedStrDeserializer::new(v))?),
            ..MsgRef::default()
        })
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<MsgRef<'de>, E> {
        Ok(MsgRef {
            id: Some(Id::deserialize(de::value::StringDeserializer::new(
                v.to_string(),
            ))?),
            ..MsgRef::default()
        })
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut m: A) -> Result<MsgRef<'de>, A::Error> {
        let mut r = MsgRef::default();
        while let Some(k) = m.next_key::<Cow<'de, str>>()? {
            match &*k {
                "id" => r.id = Some(m.next_value()?),
                "partition" => r.partition = m.next_value()?,
                "offset" => r.offset = m.next_value()?,
                "delivery" => r.delivery = m.next_value()?,
                "group" => r.group = m.next_value()?,
                _ => {
                    m.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        Ok(r)
    }
}

impl<'de> Deserialize<'de> for MsgRef<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MsgRefVisitor)
    }
}

/// A consume's deliveries: a list, one message alone, or nothing (`null`).
struct Deliveries<'a>(Vec<MsgRef<'a>>);

impl<'de> Deserialize<'de> for Deliveries<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Deliveries<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of messages, one message, or null")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Deliveries<'de>, E> {
                Ok(Deliveries(Vec::new()))
            }
            fn visit_none<E: de::Error>(self) -> Result<Deliveries<'de>, E> {
                Ok(Deliveries(Vec::new()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(
                self,
                mut s: A,
            ) -> Result<Deliveries<'de>, A::Error> {
                let mut v = Vec::with_capacity(s.size_hint().unwrap_or(8).min(1024));
                while let Some(m) = s.next_element::<MsgRef<'de>>()? {
                    v.push(m);
                }
                Ok(Deliveries(v))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, m: A) -> Result<Deliveries<'de>, A::Error> {
                Ok(Deliveries(vec![MsgRefVisitor.visit_map(m)?]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Deliveries<'de>, E> {
                Ok(Deliveries(vec![MsgRefVisitor.visit_u64(v)?]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Deliveries<'de>, E> {
                Ok(Deliveries(vec![MsgRefVisitor.visit_i64(v)?]))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Deliveries<'de>, E> {
                Ok(Deliveries(vec![MsgRefVisitor.visit_borrowed_str(v)?]))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Deliveries<'de>, E> {
                Ok(Deliveries(vec![MsgRefVisitor.visit_str(v)?]))
            }
        }
        d.deserialize_any(V)
    }
}

/// The value as a message, or as a list of messages: a hand scan for the plain shapes workloads
/// write (integer or escape-free string ids, integer offsets), serde for everything else, so
/// both always agree.
fn parse_msg<'a>(v: ValueRef<'a>) -> Result<MsgRef<'a>, serde_json::Error> {
    if let ValueRef::Json(text) = v {
        let mut sc = Scan::new(text);
        if let Some(m) = scan_msg(&mut sc) {
            if sc.at_end() {
                return Ok(m);
            }
        }
    }
    v.parse()
}

fn parse_deliveries<'a>(v: ValueRef<'a>) -> Result<Deliveries<'a>, serde_json::Error> {
    if let ValueRef::Json(text) = v {
        let mut sc = Scan::new(text);
        if sc.peek() == Some(b'[') {
            let mut list = Vec::new();
            let scanned = (|| {
                sc.eat(b'[')?;
                if sc.peek() == Some(b']') {
                    sc.eat(b']')?;
                } else {
                    loop {
                        list.push(scan_msg(&mut sc)?);
                        match sc.peek()? {
                            b',' => sc.eat(b',')?,
                            b']' => {
                                sc.eat(b']')?;
                                break;
                            }
                            _ => return None,
                        }
                    }
                }
                sc.at_end().then_some(())
            })();
            if scanned.is_some() {
                return Ok(Deliveries(list));
            }
        }
    }
    v.parse()
}

/// An id the hand scan accepts: a plain non-negative integer or an escape-free string.
fn scan_id<'a>(sc: &mut Scan<'a>) -> Option<Id<'a>> {
    if sc.peek()? == b'"' {
        Some(Id::from_key(sc.plain_str()?))
    } else {
        Some(Id::Int(sc.uint()?))
    }
}

fn scan_msg<'a>(sc: &mut Scan<'a>) -> Option<MsgRef<'a>> {
    let mut m = MsgRef::default();
    match sc.peek()? {
        b'{' => {}
        b'n' => {
            sc.literal("null")?;
            return Some(m);
        }
        _ => {
            m.id = Some(scan_id(sc)?);
            return Some(m);
        }
    }
    sc.eat(b'{')?;
    if sc.peek()? == b'}' {
        sc.eat(b'}')?;
        return Some(m);
    }
    loop {
        let key = sc.plain_str()?;
        sc.eat(b':')?;
        let is_null = sc.peek()? == b'n';
        if is_null && key != "id" {
            sc.literal("null")?;
            match key {
                "partition" => m.partition = None,
                "offset" => m.offset = None,
                "delivery" => m.delivery = None,
                "group" => m.group = None,
                _ => {}
            }
        } else {
            match key {
                "id" => m.id = Some(scan_id(sc)?),
                "partition" => m.partition = Some(scan_id(sc)?),
                "offset" => m.offset = Some(sc.uint()?),
                "delivery" => m.delivery = Some(sc.uint()?),
                "group" => m.group = Some(scan_id(sc)?),
                _ => {
                    sc.value(1)?;
                }
            }
        }
        match sc.peek()? {
            b',' => sc.eat(b',')?,
            b'}' => {
                sc.eat(b'}')?;
                return Some(m);
            }
            _ => return None,
        }
    }
}

const PRODUCE_SHAPE: &str = "{\"id\": ID, \"partition\"?: P, \"offset\"?: O} or a bare ID";
const CONSUME_SHAPE: &str =
    "a list of {\"id\": ID, \"partition\"?: P, \"offset\"?: O, \"delivery\"?: N} or bare IDs";
const ACK_SHAPE: &str = "{\"id\": ID} or a bare ID";
const OFFSET_SHAPE: &str = "{\"group\": G, \"partition\": P, \"offset\": O}";

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

impl StreamChecker for Delivery {
    fn name(&self) -> &str {
        "delivery"
    }

    fn event(&mut self, line: usize, e: &EventRef<'_>) -> Result<(), HistoryError> {
        let st = &mut self.st;
        match self.pairer.push(line, e, || st.invoke(line, e))? {
            Step::Nemesis => self.st.faults.push(e),
            Step::Invoked => {}
            Step::Completed(open) => self.st.complete(line, e, open)?,
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> CheckResult {
        for open in self.pairer.take_open() {
            match open.payload {
                Pending::Produce { msg } => self.st.produce_info(msg, open.invoke_index),
                Pending::Consume { .. } => {
                    self.st.first_uncertain_consume =
                        self.st.first_uncertain_consume.min(open.invoke_index);
                }
                _ => {}
            }
        }
        let reorders = std::mem::take(&mut self.st.reorders);
        for r in &reorders {
            self.st.reorder_finding(r, self.st.first_uncertain_consume);
        }
        let g = self.guarantee;
        let max_retries = self.max_retries;
        let mut st = self.st;

        let parts_in_use = st.parts.len();
        let drain_complete = st.drain_empty_all.is_some()
            || (parts_in_use > 0
                && (0..parts_in_use as u32).all(|p| st.drain_empty_parts.contains(&p)));
        let drain_at = st.drain_empty_all.unwrap_or(st.last_drain_empty);

        let mut lost_by_phase: BTreeMap<String, u64> = BTreeMap::new();
        let mut undecided_lost = 0u64;
        let mut undecided_stranded = 0u64;
        let (mut produced_ok, mut delivered, mut dead_lettered, mut never_produced) =
            (0u64, 0u64, 0u64, 0u64);
        let mut offsets: Vec<(u32, u64, u32)> = Vec::new();

        for (i, m) in st.msgs.iter().enumerate() {
            let msg = i as u32;
            let key = st.ids.key(msg);
            let is_ok = m.flags & PRODUCED_OK != 0;
            let is_delivered = m.deliveries > 0;
            produced_ok += u64::from(is_ok);
            delivered += u64::from(is_delivered);
            dead_lettered += u64::from(m.dead_letter != NONE);
            if m.offset != NONE {
                offsets.push((m.partition, m.offset, msg));
            }
            // Never produced, yet seen.
            if !m.produced() {
                never_produced += 1;
                let (at, what) = if is_delivered {
                    (m.first_delivery, "delivered")
                } else if m.ack_ok != NONE {
                    (m.ack_ok, "acknowledged")
                } else if m.dead_letter != NONE {
                    (m.dead_letter, "dead-lettered")
                } else {
                    (NONE, "")
                };
                if at != NONE {
                    st.findings.add(Kind::Unexpected, || {
                        (
                            vec![at],
                            format!("Message {key} was {what} (event {at}) but never produced."),
                            json!({ "id": key.to_json() }),
                        )
                    });
                }
            }
            // Lost: acknowledged, never delivered nor dead-lettered.
            if is_ok && !is_delivered && m.dead_letter == NONE {
                if drain_complete {
                    let (phase, fault) = st.faults.phase(m.produce_invoke, m.produce_ok);
                    let phase_key = if fault.is_empty() {
                        phase.to_string()
                    } else {
                        format!("{phase} {fault}")
                    };
                    *lost_by_phase.entry(phase_key).or_default() += 1;
                    let when = match phase {
                        "during" => format!(" during a {fault} fault"),
                        "after" => format!(" after a {fault} fault"),
                        "before" => " before any fault".to_string(),
                        _ => String::new(),
                    };
                    let (pi, po) = (m.produce_invoke, m.produce_ok);
                    st.findings.add(Kind::Lost, || {
                        (
                            vec![pi, po, drain_at],
                            format!("Message {key} was produced{when} and acknowledged (events {pi}-{po}), but never delivered by the end of the final drain (event {drain_at}) and never dead-lettered."),
                            json!({ "id": key.to_json(), "phase": phase, "fault": fault }),
                        )
                    });
                } else {
                    undecided_lost += 1;
                }
            }
            // Delivered though the produce definitely failed, or only timed out.
            if !is_ok && is_delivered {
                let (po, fd) = (m.produce_other, m.first_delivery);
                if m.flags & PRODUCED_INFO == 0 && m.flags & PRODUCED_FAIL != 0 {
                    st.findings.add(Kind::FailedButDelivered, || {
                        (
                            vec![po, fd],
                            format!("Every produce of message {key} failed (event {po}), yet it was delivered (event {fd})."),
                            json!({ "id": key.to_json() }),
                        )
                    });
                } else if m.flags & PRODUCED_INFO != 0 {
                    st.findings.add(Kind::Recovered, || {
                        (
                            vec![po, fd],
                            format!("The produce of message {key} was indeterminate (event {po}), and it was delivered (event {fd}): it did happen."),
                            json!({ "id": key.to_json() }),
                        )
                    });
                }
            }
            // Duplicates: any redelivery without acks; with acks, a redelivery after a commit.
            let dups = if st.uses_acks {
                u32::from(m.after_commit)
            } else {
                m.deliveries.saturating_sub(1)
            };
            if dups > 0 && m.flags & STORED_TWICE == 0 {
                let re = st.redeliveries.get(&msg).map(Vec::as_slice).unwrap_or(&[]);
                let mut ops = vec![m.first_delivery];
                let mut consumers = vec![m.first_consumer];
                let mut when = vec![m.first_delivery];
                let mut after = vec![false];
                for r in re {
                    ops.push(r.at);
                    consumers.push(r.consumer);
                    when.push(r.at);
                    after.push(r.after_commit);
                }
                let mut why = format!(
                    "Message {key} was delivered {} (first to consumer {} at event {}",
                    plural(u64::from(m.deliveries), "time"),
                    m.first_consumer,
                    m.first_delivery
                );
                for r in re.iter().take(3) {
                    why.push_str(&format!(
                        ", then to consumer {} at event {}",
                        r.consumer, r.at
                    ));
                }
                if re.len() > 3 || m.deliveries as usize > re.len() + 1 {
                    why.push_str(", ...");
                }
                why.push(')');
                if st.uses_acks {
                    ops.push(m.ack_ok);
                    why.push_str(&format!(
                        ", {} of them after its ack succeeded at event {}.",
                        m.after_commit, m.ack_ok
                    ));
                } else {
                    why.push('.');
                }
                let deliveries = m.deliveries;
                st.findings.add(Kind::Duplicated, || {
                    (
                        ops,
                        why,
                        json!({ "id": key.to_json(), "deliveries": deliveries, "duplicates": dups, "consumers": consumers, "delivered_at": when, "after_ack": after }),
                    )
                });
            }
            if m.acks_ok >= 2 {
                let extra = st.extra_acks.get(&msg).cloned().unwrap_or_default();
                let mut ops = vec![m.ack_ok];
                ops.extend(&extra);
                let (first, n) = (m.ack_ok, m.acks_ok);
                st.findings.add(Kind::DoubleCommitted, || {
                    (
                        ops,
                        format!("Message {key} was acknowledged successfully {n} times (events {first} and {}): two consumers completed it.", extra.first().copied().unwrap_or(NONE)),
                        json!({ "id": key.to_json(), "acks": n }),
                    )
                });
            }
            if st.uses_acks
                && is_delivered
                && m.acks_ok == 0
                && m.flags & ACK_INFO == 0
                && m.dead_letter == NONE
            {
                if drain_complete {
                    let (fd, n) = (m.first_delivery, m.deliveries);
                    st.findings.add(Kind::Stranded, || {
                        (
                            vec![fd, drain_at],
                            format!("Message {key} was delivered {} (first at event {fd}) but never acknowledged nor dead-lettered by the end of the final drain (event {drain_at}).", plural(u64::from(n), "time")),
                            json!({ "id": key.to_json(), "deliveries": n }),
                        )
                    });
                } else {
                    undecided_stranded += 1;
                }
            }
            if let Some(n) = max_retries {
                let total = m.deliveries.max(m.broker_deliveries);
                if u64::from(total) > u64::from(n) + 1 {
                    let re = st.redeliveries.get(&msg).map(Vec::as_slice).unwrap_or(&[]);
                    let mut ops = vec![m.first_delivery];
                    ops.extend(re.iter().map(|r| r.at));
                    let last = ops.last().copied().unwrap_or(NONE);
                    let dead = if m.dead_letter == NONE {
                        "it was never dead-lettered".to_string()
                    } else {
                        format!("it was dead-lettered only at event {}", m.dead_letter)
                    };
                    st.findings.add(Kind::RetriesExceeded, || {
                        (
                            ops,
                            format!("Message {key} was delivered {total} times (last seen at event {last}), more than the {} allowed by --max-retries {n}; {dead}.", u64::from(n) + 1),
                            json!({ "id": key.to_json(), "deliveries": total, "max_retries": n }),
                        )
                    });
                }
            }
        }

        // Offsets: conflicts always, gaps after a complete drain.
        offsets.extend(st.extra_offsets.iter().copied());
        offsets.retain(|&(p, _, _)| p != NO_PART);
        offsets.sort_unstable();
        let mut gaps_checked = false;
        if !offsets.is_empty() {
            gaps_checked = drain_complete;
            for w in offsets.windows(2) {
                let ((p1, o1, m1), (p2, o2, m2)) = (w[0], w[1]);
                if p1 != p2 {
                    continue;
                }
                if o1 == o2 && m1 != m2 {
                    let part = st.part_name(p1);
                    let (a, b) = (st.ids.key(m1), st.ids.key(m2));
                    let ops = vec![
                        evidence_at(&st.msgs[m1 as usize]),
                        evidence_at(&st.msgs[m2 as usize]),
                    ];
                    st.findings.add(Kind::OffsetConflict, || {
                        (
                            ops,
                            format!("Messages {a} and {b} both sit at offset {o1} of {part}."),
                            json!({ "offset": o1, "ids": [a.to_json(), b.to_json()] }),
                        )
                    });
                } else if drain_complete && o2 > o1 + 1 {
                    let part = st.part_name(p1);
                    let (a, b) = (st.ids.key(m1), st.ids.key(m2));
                    let ops = vec![
                        evidence_at(&st.msgs[m1 as usize]),
                        evidence_at(&st.msgs[m2 as usize]),
                    ];
                    let (from, to) = (o1 + 1, o2 - 1);
                    st.findings.add(Kind::OffsetGap, || {
                        (
                            ops,
                            if from == to {
                                format!("Offset {from} of {part} holds no message: message {a} sits at {o1} and {b} at {o2}, and the drain read nothing between.")
                            } else {
                                format!("Offsets {from}-{to} of {part} hold no message: message {a} sits at {o1} and {b} at {o2}, and the drain read nothing between.")
                            },
                            json!({ "missing_from": from, "missing_to": to }),
                        )
                    });
                }
            }
        }

        let findings = std::mem::take(&mut st.findings);
        let summary_parts = findings.finish(|k| k.counts(g));
        let names = |counted: bool| -> Vec<&str> {
            Kind::ALL
                .iter()
                .filter(|k| k.counts(g) == counted)
                .map(|k| k.name())
                .collect()
        };
        let (counted_kinds, reported_kinds) = (names(true), names(false));

        let no_ops =
            st.figures.produce_ops == 0 && st.figures.consume_ops == 0 && st.figures.drain_ops == 0;
        let mut unknown = Vec::new();
        if no_ops {
            unknown.push("the history has no produce, consume or drain operations: is it a delivery history?".to_string());
        }
        if undecided_lost > 0 && Kind::Lost.counts(g) {
            unknown.push(format!(
                "{} acknowledged but never delivered, and {}: lost cannot be told from not yet consumed",
                plural(undecided_lost, "message was"),
                if st.drain_seen { "the final drain never came back empty" } else { "the history has no final drain" }
            ));
        }
        if undecided_stranded > 0 && Kind::Stranded.counts(g) {
            unknown.push(format!(
                "{} delivered but never acknowledged, with no complete final drain to show whether it was redelivered",
                plural(undecided_stranded, "message was")
            ));
        }
        let unknown_reason = (!unknown.is_empty()).then(|| unknown.join("; "));

        let f = &st.figures;
        let drain_text = if drain_complete {
            "final drain complete"
        } else if st.drain_seen {
            "final drain incomplete (no empty drain)"
        } else {
            "no final drain"
        };
        let mut summary = format!(
            "delivery under {}: {} ({} acknowledged), {} delivered ({}), {} dead-lettered; {drain_text}; {}. Counted under {}: {}; reported only: {}.",
            g.name(),
            plural(st.msgs.len() as u64, "message"),
            produced_ok,
            delivered,
            if f.deliveries == 1 { "1 delivery".to_string() } else { format!("{} deliveries", f.deliveries) },
            dead_lettered,
            summary_parts.sentence(),
            g.name(),
            counted_kinds.join(", "),
            reported_kinds.join(", "),
        );
        if !lost_by_phase.is_empty() {
            let phases: Vec<String> = lost_by_phase
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect();
            summary.push_str(&format!(" Lost by produce time: {}.", phases.join(", ")));
        }
        if !st.uses_acks && st.first_uncertain_consume != NONE && !lost_by_phase.is_empty() {
            let at = st.first_uncertain_consume;
            summary.push_str(&format!(
                " Some consumes had unknown outcomes (the first began at event {at}); without acks, a message handed to one of them is gone with it and counts as lost."
            ));
        }
        if !offsets.is_empty() && !gaps_checked {
            summary.push_str(" Offset gaps not checked: no complete final drain.");
        }
        if max_retries.is_none() {
            summary.push_str(" Retries not checked (no --max-retries).");
        }
        if !st.ignored.is_empty() {
            let names: Vec<String> = st
                .ignored
                .iter()
                .map(|(k, v)| format!("{k} ({v})"))
                .collect();
            summary.push_str(&format!(" Ignored ops: {}.", names.join(", ")));
        }
        if let Some(r) = &unknown_reason {
            summary.push_str(&format!(" Unknown: {r}."));
        }
        let details = json!({
            "guarantee": g.name(),
            "max_retries": max_retries,
            "counted_kinds": counted_kinds,
            "reported_kinds": reported_kinds,
            "messages": {
                "distinct": st.msgs.len(),
                "produced_ok": produced_ok,
                "delivered": delivered,
                "dead_lettered": dead_lettered,
                "never_produced": never_produced,
                "undecided_lost": undecided_lost,
            },
            "ops": f,
            "uses_acks": st.uses_acks,
            "drain": { "present": st.drain_seen, "complete": drain_complete },
            "lost_by_phase": lost_by_phase,
            "fault_windows": st.faults.windows.len(),
            "ignored_ops": st.ignored,
        });
        summary_parts.into_result("delivery", summary, unknown_reason, details)
    }
}

/// The event that taught the checker a message's offset.
fn evidence_at(m: &Msg) -> u64 {
    if m.flags & OFFSET_FROM_ACK != 0 {
        m.produce_ok
    } else {
        m.first_delivery
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand scan of message values agrees with serde, or leaves the value to serde.
    #[test]
    fn message_scan_agrees_with_serde() {
        let cases = [
            "7",
            "\"m-1\"",
            "\"7\"",
            "null",
            "{}",
            "{\"id\":1,\"partition\":\"p0\",\"offset\":3,\"delivery\":2,\"x\":[1,{\"y\":null}]}",
            "{\"id\":1,\"partition\":null,\"offset\":null}",
            "{\"group\":\"g\",\"partition\":0,\"offset\":5}",
            "{\"id\":1,\"id\":2}",
            "{\"id\":null}",
            "{\"id\":-1}",
            "{\"id\":1,\"offset\":1.5}",
            "{\"id\":\"a\\\"b\"}",
            "[1,2]",
            "true",
        ];
        for text in cases {
            let scanned = {
                let mut sc = Scan::new(text);
                scan_msg(&mut sc).filter(|_| sc.at_end())
            };
            let slow: Result<MsgRef, _> = serde_json::from_str(text);
            match (scanned, slow) {
                (Some(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "{text}"),
                (Some(a), Err(e)) => panic!("{text}: scanned {a:?}, serde says {e}"),
                (None, _) => {}
            }
            let v = ValueRef::Json(text);
            assert_eq!(
                format!("{:?}", parse_msg(v).map_err(|e| e.to_string())),
                format!("{:?}", v.parse::<MsgRef>().map_err(|e| e.to_string())),
                "{text}"
            );
        }
        for text in [
            "[]",
            "[1,\"a\",{\"id\":3}]",
            "[1,]",
            "[{\"id\":1.5}]",
            "{\"id\":1}",
            "null",
        ] {
            let v = ValueRef::Json(text);
            let fast = parse_deliveries(v)
                .map(|d| format!("{:?}", d.0))
                .map_err(|e| e.to_string());
            let slow = v
                .parse::<Deliveries>()
                .map(|d| format!("{:?}", d.0))
                .map_err(|e| e.to_string());
            assert_eq!(fast, slow, "{text}");
        }
    }
}
