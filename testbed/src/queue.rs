//! The partitioned queue: topics of dense-offset partitions, consumer groups with leases, acks,
//! retries, a dead-letter queue and committed offsets.
//!
//! Model (a blend of Kafka's groups and a work queue's per-message acks, because the scenarios
//! need both): a group's members are assigned partitions; a consume by a member delivers the
//! lowest available messages of its partitions and leases each to it for `message_lease`; an ack
//! by the lease holder while the lease runs marks the message done; after the lease a message is
//! available again (a redelivery); after `max_retries + 1` deliveries it goes to the dead-letter
//! queue instead. Members that stop consuming for a session are removed and their partitions
//! reassigned. Committed offsets are per group and partition, accepted from the partition's
//! owner and never below the current one.
//!
//! Appends to one partition are serialised (the append lock is held across the durable write),
//! so offsets are dense and the visible log is always a prefix of the durable one.
//!
//! Bugs: `double-delivery-on-timeout` accepts an ack from anyone the message was ever delivered
//! to; `retry-budget-ignored` never dead-letters; `orphan-partition` rebalances incrementally and
//! drops partitions revoked on a join; `offset-regression` accepts any commit;
//! `concurrent-producer-gap` skips an offset when another producer is queued behind an append.

use crate::config::{Bug, Settings};
use crate::http::{field, Reply};
use crate::node::Node;
use crate::store::Record;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The topic the outbox dispatcher publishes to.
pub const OUTBOX_TOPIC: &str = "outbox";
/// Bound on the number of topics.
const TOPICS_MAX: usize = 64;
/// Bound on the consumers remembered per message (for the late-ack bug).
const SEEN_BY_MAX: usize = 16;
/// Bound on the members of one group.
const MEMBERS_MAX: usize = 256;

#[derive(Default)]
pub struct Broker {
    topics: Mutex<BTreeMap<String, Arc<Topic>>>,
}

struct Topic {
    appenders: Vec<Appender>,
    state: tokio::sync::Mutex<TopicState>,
}

struct Appender {
    next: tokio::sync::Mutex<u64>,
    waiting: AtomicUsize,
}

struct TopicState {
    logs: Vec<Vec<Msg>>,
    groups: BTreeMap<String, Group>,
}

struct Msg {
    id: Value,
    offset: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Done {
    Acked,
    Dead,
}

#[derive(Default)]
struct MsgState {
    deliveries: u32,
    lease: Option<(String, Instant)>,
    done: Option<Done>,
    seen_by: Vec<String>,
}

struct Group {
    members: BTreeMap<String, Instant>,
    owner: Vec<Option<String>>,
    generation: u64,
    msgs: HashMap<(u32, u64), MsgState>,
    /// Per partition: index into the log below which every message is done.
    floor: Vec<usize>,
    committed: Vec<Option<u64>>,
}

impl Group {
    fn new(partitions: u32) -> Group {
        Group {
            members: BTreeMap::new(),
            owner: vec![None; partitions as usize],
            generation: 0,
            msgs: HashMap::new(),
            floor: vec![0; partitions as usize],
            committed: vec![None; partitions as usize],
        }
    }

    fn owned(&self, c: &str) -> Vec<u32> {
        (0..self.owner.len() as u32)
            .filter(|p| self.owner[*p as usize].as_deref() == Some(c))
            .collect()
    }

    /// Round-robin over the sorted members: every partition has an owner while anyone is in.
    fn recompute(&mut self) {
        let members: Vec<&String> = self.members.keys().collect();
        for (p, o) in self.owner.iter_mut().enumerate() {
            *o = (!members.is_empty()).then(|| members[p % members.len()].clone());
        }
    }

    fn join(&mut self, c: &str, now: Instant, incremental_bug: bool) {
        let existing: Vec<String> = self.members.keys().cloned().collect();
        self.members.insert(c.to_string(), now);
        self.generation += 1;
        if !incremental_bug || existing.is_empty() {
            self.recompute();
            return;
        }
        // The bug: each existing member gives up what exceeds the new fair share, the joiner
        // takes a fair share of that, and the rest is forgotten.
        let target = (self.owner.len() / self.members.len()).max(1);
        let mut released = Vec::new();
        for m in &existing {
            let owned = self.owned(m);
            for p in owned.iter().skip(target) {
                self.owner[*p as usize] = None;
                released.push(*p);
            }
        }
        for p in released.into_iter().take(target) {
            self.owner[p as usize] = Some(c.to_string());
        }
    }

    fn leave(&mut self, c: &str, incremental_bug: bool) {
        if self.members.remove(c).is_none() {
            return;
        }
        self.generation += 1;
        for s in self.msgs.values_mut() {
            if s.done.is_none() && s.lease.as_ref().is_some_and(|(h, _)| h == c) {
                s.lease = None;
            }
        }
        if !incremental_bug {
            self.recompute();
            return;
        }
        // The bug's leave only hands on the leaver's partitions; orphans stay orphans.
        let rest: Vec<String> = self.members.keys().cloned().collect();
        for (i, p) in self.owned(c).into_iter().enumerate() {
            self.owner[p as usize] = (!rest.is_empty()).then(|| rest[i % rest.len()].clone());
        }
    }

    fn expire(&mut self, now: Instant, settings: &Settings, incremental_bug: bool) {
        let gone: Vec<String> = self
            .members
            .iter()
            .filter(|(_, seen)| now.duration_since(**seen) > settings.session)
            .map(|(c, _)| c.clone())
            .collect();
        for c in gone {
            self.leave(&c, incremental_bug);
        }
    }
}

impl Broker {
    fn topic(&self, name: &str, partitions: u32) -> Result<Arc<Topic>, Reply> {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = topics.get(name) {
            return Ok(Arc::clone(t));
        }
        if topics.len() >= TOPICS_MAX {
            return Err(Reply::refused(
                "full",
                format!("at most {TOPICS_MAX} topics"),
            ));
        }
        let t = Arc::new(Topic {
            appenders: (0..partitions)
                .map(|_| Appender {
                    next: tokio::sync::Mutex::new(0),
                    waiting: AtomicUsize::new(0),
                })
                .collect(),
            state: tokio::sync::Mutex::new(TopicState {
                logs: (0..partitions).map(|_| Vec::new()).collect(),
                groups: BTreeMap::new(),
            }),
        });
        topics.insert(name.to_string(), Arc::clone(&t));
        Ok(t)
    }

    pub fn replay(&mut self, r: &Record, settings: &Settings) {
        let (topic, group) = match r {
            Record::Produce { topic, .. } => (topic, None),
            Record::Ack { topic, group, .. }
            | Record::DeadLetter { topic, group, .. }
            | Record::CommitOffset { topic, group, .. } => (topic, Some(group)),
            _ => return,
        };
        let Ok(t) = self.topic(topic, settings.partitions) else {
            return;
        };
        let Ok(mut st) = t.state.try_lock() else {
            unreachable!("nothing else runs during replay")
        };
        let group = group.map(|g| {
            st.groups
                .entry(g.clone())
                .or_insert_with(|| Group::new(settings.partitions))
        });
        match (r, group) {
            (
                Record::Produce {
                    partition,
                    offset,
                    id,
                    ..
                },
                _,
            ) => {
                let p = *partition as usize;
                if p < st.logs.len() {
                    st.logs[p].push(Msg {
                        id: id.clone(),
                        offset: *offset,
                    });
                    let Ok(mut next) = t.appenders[p].next.try_lock() else {
                        unreachable!("nothing else runs during replay")
                    };
                    *next = (*next).max(offset + 1);
                }
            }
            (
                Record::Ack {
                    partition, offset, ..
                },
                Some(g),
            ) => {
                g.msgs.entry((*partition, *offset)).or_default().done = Some(Done::Acked);
            }
            (
                Record::DeadLetter {
                    partition, offset, ..
                },
                Some(g),
            ) => {
                g.msgs.entry((*partition, *offset)).or_default().done = Some(Done::Dead);
            }
            (
                Record::CommitOffset {
                    partition, offset, ..
                },
                Some(g),
            ) => {
                if let Some(c) = g.committed.get_mut(*partition as usize) {
                    *c = Some(*offset);
                }
            }
            _ => {}
        }
    }

    /// Appends `id` to `partition` (or the id's hash partition) of `topic`; returns the
    /// partition and offset. `outbox_seq` marks an outbox row dispatched in the same record.
    pub async fn produce(
        &self,
        node: &Node,
        topic: &str,
        id: Value,
        partition: Option<u64>,
        outbox_seq: Option<u64>,
    ) -> Result<(u32, u64), Reply> {
        let s = &node.cfg.settings;
        let t = self.topic(topic, s.partitions)?;
        let p = match partition {
            Some(p) if p < u64::from(s.partitions) => p as u32,
            Some(p) => {
                return Err(Reply::bad(format!(
                    "partition {p} does not exist; topics have {} partitions",
                    s.partitions
                )))
            }
            None => hash_partition(&id, s.partitions),
        };
        let ap = &t.appenders[p as usize];
        ap.waiting.fetch_add(1, Ordering::SeqCst);
        let mut next = ap.next.lock().await;
        ap.waiting.fetch_sub(1, Ordering::SeqCst);
        let offset = *next;
        if t.state.lock().await.logs[p as usize].len() >= s.entries_max {
            return Err(Reply::refused("full", "the partition is full"));
        }
        let rec = Record::Produce {
            topic: topic.to_string(),
            partition: p,
            offset,
            id: id.clone(),
            outbox_seq,
        };
        node.store
            .persist(&rec)
            .await
            .map_err(|e| Reply::unavailable("storage", false, e.to_string()))?;
        *next = offset + 1;
        if node.cfg.has(Bug::ConcurrentProducerGap) && ap.waiting.load(Ordering::SeqCst) > 0 {
            // The bug: the contended path advances the counter a second time.
            *next += 1;
        }
        t.state.lock().await.logs[p as usize].push(Msg { id, offset });
        Ok((p, offset))
    }
}

fn hash_partition(id: &Value, partitions: u32) -> u32 {
    match id {
        Value::Number(n) if n.is_u64() => (n.as_u64().unwrap_or(0) % u64::from(partitions)) as u32,
        other => {
            // FNV-1a over the JSON text: stable across runs and builds.
            let mut h: u64 = 0xcbf29ce484222325;
            for b in other.to_string().bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x100000001b3);
            }
            (h % u64::from(partitions)) as u32
        }
    }
}

fn delivery_json(id: &Value, p: u32, offset: u64, delivery: Option<u32>) -> Value {
    let mut v = json!({ "id": id, "partition": p, "offset": offset });
    if let Some(d) = delivery {
        v["delivery"] = json!(d);
    }
    v
}

/// `/queue/<op>` endpoints; every body names a `topic` (default `queue`).
pub async fn handle(node: &Arc<Node>, op: &str, body: &Value) -> Result<Reply, Reply> {
    let s = &node.cfg.settings;
    let topic_name = body
        .get("topic")
        .and_then(Value::as_str)
        .unwrap_or("queue")
        .to_string();
    if op == "produce" {
        let id = field::id(body, "id")?;
        let partition = field::opt_u64(body, "partition")?;
        let (p, offset) = node
            .broker
            .produce(node, &topic_name, id.clone(), partition, None)
            .await?;
        return Ok(Reply::ok(delivery_json(&id, p, offset, None)));
    }
    let t = node.broker.topic(&topic_name, s.partitions)?;
    let group_name = field::string(body, "group")?;
    let orphan_bug = node.cfg.has(Bug::OrphanPartition);
    let now = Instant::now();
    let mut st = t.state.lock().await;
    let st = &mut *st;
    if !st.groups.contains_key(&group_name) && st.groups.len() >= TOPICS_MAX {
        return Err(Reply::refused("full", "too many groups"));
    }
    let g = st
        .groups
        .entry(group_name.clone())
        .or_insert_with(|| Group::new(s.partitions));
    g.expire(now, s, orphan_bug);
    let rec = |p: u32, offset: u64, dead: bool| {
        let (topic, group) = (topic_name.clone(), group_name.clone());
        if dead {
            Record::DeadLetter {
                topic,
                group,
                partition: p,
                offset,
            }
        } else {
            Record::Ack {
                topic,
                group,
                partition: p,
                offset,
            }
        }
    };
    match op {
        "consume" => {
            let consumer = field::string(body, "consumer")?;
            let max = field::opt_u64(body, "max")?
                .map(|m| (m as usize).clamp(1, s.consume_max))
                .unwrap_or(s.consume_max);
            if !g.members.contains_key(&consumer) {
                if g.members.len() >= MEMBERS_MAX {
                    return Err(Reply::refused("full", "too many members"));
                }
                g.join(&consumer, now, orphan_bug);
            }
            g.members.insert(consumer.clone(), now);
            let assigned = g.owned(&consumer);
            let mut out = Vec::new();
            let mut pending = 0u64;
            let mut dead = Vec::new();
            let retry_bug = node.cfg.has(Bug::RetryBudgetIgnored);
            for &p in &assigned {
                let log = &st.logs[p as usize];
                let mut all_done = true;
                for (i, m) in log.iter().enumerate().skip(g.floor[p as usize]) {
                    let ms = g.msgs.entry((p, m.offset)).or_default();
                    if ms.done.is_some() {
                        if all_done {
                            g.floor[p as usize] = i + 1;
                        }
                        continue;
                    }
                    all_done = false;
                    if let Some((_, until)) = &ms.lease {
                        if *until > now {
                            pending += 1;
                            continue;
                        }
                        ms.lease = None;
                    }
                    if !retry_bug && ms.deliveries > s.max_retries {
                        ms.done = Some(Done::Dead);
                        dead.push(rec(p, m.offset, true));
                        continue;
                    }
                    if out.len() >= max {
                        pending += 1;
                        continue;
                    }
                    ms.deliveries += 1;
                    ms.lease = Some((consumer.clone(), now + s.message_lease));
                    if !ms.seen_by.contains(&consumer) && ms.seen_by.len() < SEEN_BY_MAX {
                        ms.seen_by.push(consumer.clone());
                    }
                    out.push(delivery_json(&m.id, p, m.offset, Some(ms.deliveries)));
                }
            }
            if !dead.is_empty() {
                node.store
                    .persist_all(&dead)
                    .await
                    .map_err(|e| Reply::unavailable("storage", false, e.to_string()))?;
            }
            Ok(Reply::ok(json!({
                "messages": out,
                "assigned": assigned,
                "partitions": s.partitions,
                "pending": pending,
                "members": g.members.len(),
                "generation": g.generation,
            })))
        }
        "ack" | "nack" => {
            let consumer = field::string(body, "consumer")?;
            let p = field::u64(body, "partition")? as u32;
            let offset = field::u64(body, "offset")?;
            let Some(ms) = g.msgs.get_mut(&(p, offset)) else {
                return Err(Reply::refused(
                    "not-delivered",
                    format!("partition {p} offset {offset} was never delivered in this group"),
                ));
            };
            let holds = ms.done.is_none()
                && ms
                    .lease
                    .as_ref()
                    .is_some_and(|(h, until)| *h == consumer && *until > now);
            if op == "nack" {
                if !holds {
                    return Err(Reply::refused("lease-expired", "the lease is not yours"));
                }
                ms.lease = None;
                if !node.cfg.has(Bug::RetryBudgetIgnored) && ms.deliveries > s.max_retries {
                    node.store
                        .persist(&rec(p, offset, true))
                        .await
                        .map_err(|e| Reply::unavailable("storage", false, e.to_string()))?;
                    ms.done = Some(Done::Dead);
                    return Ok(Reply::ok(json!({ "dead-lettered": true })));
                }
                return Ok(Reply::ok(json!({ "dead-lettered": false })));
            }
            // The bug: any consumer the message was ever delivered to may ack it, late or twice.
            let accepted = if node.cfg.has(Bug::DoubleDeliveryOnTimeout) {
                ms.seen_by.contains(&consumer)
            } else {
                holds
            };
            if !accepted {
                let why = if ms.done == Some(Done::Acked) {
                    "already acknowledged"
                } else {
                    "the lease expired or belongs to another consumer"
                };
                return Err(Reply::refused("lease-expired", why));
            }
            node.store
                .persist(&rec(p, offset, false))
                .await
                .map_err(|e| Reply::unavailable("storage", false, e.to_string()))?;
            ms.done = Some(Done::Acked);
            ms.lease = None;
            Ok(Reply::ok(json!({})))
        }
        "leave" => {
            let consumer = field::string(body, "consumer")?;
            g.leave(&consumer, orphan_bug);
            Ok(Reply::ok(json!({})))
        }
        "dead-letters" => {
            let mut out = Vec::new();
            for (p, log) in st.logs.iter().enumerate() {
                for m in log {
                    let dead = g
                        .msgs
                        .get(&(p as u32, m.offset))
                        .is_some_and(|ms| ms.done == Some(Done::Dead));
                    if dead {
                        out.push(delivery_json(&m.id, p as u32, m.offset, None));
                    }
                }
            }
            Ok(Reply::ok(json!({ "messages": out })))
        }
        "commit-offset" => {
            let consumer = field::string(body, "consumer")?;
            let p = field::u64(body, "partition")?;
            let offset = field::u64(body, "offset")?;
            let Some(cur) = g.committed.get(p as usize).copied() else {
                return Err(Reply::bad(format!("partition {p} does not exist")));
            };
            if !node.cfg.has(Bug::OffsetRegression) {
                if g.owner[p as usize].as_deref() != Some(consumer.as_str()) {
                    return Err(Reply::refused(
                        "not-owner",
                        format!("{consumer} does not own partition {p}"),
                    ));
                }
                if cur.is_some_and(|c| offset < c) {
                    return Err(Reply::refused(
                        "offset-behind",
                        format!("committed offset is {}, above {offset}", cur.unwrap_or(0)),
                    ));
                }
            }
            node.store
                .persist(&Record::CommitOffset {
                    topic: topic_name.clone(),
                    group: group_name.clone(),
                    partition: p as u32,
                    offset,
                })
                .await
                .map_err(|e| Reply::unavailable("storage", false, e.to_string()))?;
            g.committed[p as usize] = Some(offset);
            Ok(Reply::ok(json!({})))
        }
        "fetch-offset" => {
            let p = field::u64(body, "partition")?;
            let Some(cur) = g.committed.get(p as usize).copied() else {
                return Err(Reply::bad(format!("partition {p} does not exist")));
            };
            // Nothing committed yet: the group starts at the beginning of the partition.
            Ok(Reply::ok(
                json!({ "group": group_name, "partition": p, "offset": cur.unwrap_or(0) }),
            ))
        }
        _ => Err(Reply::error(
            404,
            "not-found",
            true,
            format!("no endpoint /queue/{op}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(members: &[&str], bug: bool) -> Group {
        let mut g = Group::new(4);
        for m in members {
            g.join(m, Instant::now(), bug);
        }
        g
    }

    #[test]
    fn correct_rebalance_always_assigns_every_partition() {
        let mut g = group(&["a", "b", "c"], false);
        assert!(g.owner.iter().all(Option::is_some));
        g.leave("b", false);
        assert!(g.owner.iter().all(Option::is_some));
    }

    #[test]
    fn incremental_rebalance_orphans_a_partition_on_the_third_join() {
        let mut g = group(&["a", "b"], true);
        assert!(g.owner.iter().all(Option::is_some));
        g.join("c", Instant::now(), true);
        assert_eq!(g.owner.iter().filter(|o| o.is_none()).count(), 1);
        g.leave("a", true);
        g.leave("b", true);
        assert_eq!(g.owner.iter().filter(|o| o.is_none()).count(), 1);
    }

    #[test]
    fn hash_partition_is_stable() {
        assert_eq!(hash_partition(&json!(6), 4), 2);
        assert_eq!(
            hash_partition(&json!("x"), 4),
            hash_partition(&json!("x"), 4)
        );
    }
}
