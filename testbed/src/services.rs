//! Request services on the home node: idempotent requests, group members, unique creates,
//! versioned append streams and task leases with fencing tokens.
//!
//! Each is a check followed by a durable change. The correct code holds the service's lock from
//! the check through the durable write to the change; each bug lets go of the lock across the
//! write and acts on the stale check, which is the check-then-act race its scenario describes.
//! The write's latency (`--storage-latency-ms`) makes the race window real, so concurrent
//! identical requests hit it every time, while sequential requests never do.

use crate::config::Bug;
use crate::http::{field, Reply};
use crate::node::Node;
use crate::store::Record;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

#[derive(Default)]
pub struct Services {
    idem: tokio::sync::Mutex<Idem>,
    members: tokio::sync::Mutex<Members>,
    unique: tokio::sync::Mutex<BTreeSet<String>>,
    streams: tokio::sync::Mutex<BTreeMap<String, Vec<Value>>>,
    tasks: tokio::sync::Mutex<BTreeMap<String, Task>>,
}

#[derive(Default)]
struct Idem {
    responses: BTreeMap<String, Value>,
    effects: BTreeMap<String, u64>,
    payments: u64,
}

#[derive(Default)]
struct Members {
    groups: BTreeMap<String, Vec<Value>>,
    /// (group, member as JSON text) -> state changes made by leaves.
    leaves: BTreeMap<(String, String), u64>,
}

struct Task {
    token: u64,
    holder: Option<String>,
    until: Instant,
    done: bool,
    completions: u64,
}

impl Services {
    pub fn replay(&mut self, r: &Record) {
        match r {
            Record::Idempotent { key, response } => {
                let idem = self.idem.get_mut();
                idem.responses.insert(key.clone(), response.clone());
                *idem.effects.entry(key.clone()).or_default() += 1;
                idem.payments += 1;
            }
            Record::MemberAdded { group, member } => {
                self.members
                    .get_mut()
                    .groups
                    .entry(group.clone())
                    .or_default()
                    .push(member.clone());
            }
            Record::MemberLeft { group, member } => {
                let m = self.members.get_mut();
                if let Some(list) = m.groups.get_mut(group) {
                    list.retain(|x| x != member);
                }
                *m.leaves
                    .entry((group.clone(), member.to_string()))
                    .or_default() += 1;
            }
            Record::Created { id } => {
                self.unique.get_mut().insert(id.clone());
            }
            Record::Appended { stream, event } => {
                self.streams
                    .get_mut()
                    .entry(stream.clone())
                    .or_default()
                    .push(event.clone());
            }
            Record::TaskCompleted { task } => {
                let t = self.tasks.get_mut().entry(task.clone()).or_insert(Task {
                    token: 0,
                    holder: None,
                    until: Instant::now(),
                    done: false,
                    completions: 0,
                });
                t.done = true;
                t.completions += 1;
            }
            _ => {}
        }
    }
}

fn storage(e: anyhow::Error) -> Reply {
    Reply::unavailable("storage", false, e.to_string())
}

fn full() -> Reply {
    Reply::refused("full", "too many entries")
}

/// `/idem/*`, `/members/*`, `/unique/*`, `/stream/*`, `/lease/*`.
pub async fn handle(
    node: &Arc<Node>,
    service: &str,
    op: &str,
    body: &Value,
) -> Result<Reply, Reply> {
    match (service, op) {
        ("idem", "request") => idem_request(node, body).await,
        ("idem", "effects") => {
            let key = field::string(body, "key")?;
            let n = node.services.idem.lock().await.effects.get(&key).copied();
            Ok(Reply::ok(json!({ "effects": n.unwrap_or(0) })))
        }
        ("members", "add") => member_add(node, body).await,
        ("members", "list") => {
            let group = field::string(body, "group")?;
            let m = node.services.members.lock().await;
            Ok(Reply::ok(
                json!({ "members": m.groups.get(&group).cloned().unwrap_or_default() }),
            ))
        }
        ("members", "leave") => member_leave(node, body).await,
        ("members", "leave-effects") => {
            let group = field::string(body, "group")?;
            let member = field::id(body, "member")?;
            let m = node.services.members.lock().await;
            let n = m.leaves.get(&(group, member.to_string())).copied();
            Ok(Reply::ok(json!({ "effects": n.unwrap_or(0) })))
        }
        ("unique", "create") => unique_create(node, body).await,
        ("stream", "append") => stream_append(node, body).await,
        ("stream", "read") => {
            let stream = field::string(body, "stream")?;
            let s = node.services.streams.lock().await;
            Ok(Reply::ok(
                json!({ "events": s.get(&stream).cloned().unwrap_or_default() }),
            ))
        }
        ("lease", "acquire") => lease_acquire(node, body).await,
        ("lease", "complete") => lease_complete(node, body).await,
        ("lease", "effects") => {
            let task = field::string(body, "task")?;
            let t = node.services.tasks.lock().await;
            Ok(Reply::ok(
                json!({ "effects": t.get(&task).map(|t| t.completions).unwrap_or(0) }),
            ))
        }
        _ => Err(Reply::error(
            404,
            "not-found",
            true,
            format!("no endpoint /{service}/{op}"),
        )),
    }
}

/// One effect per idempotency key; every response to the key is the first one's.
async fn idem_request(node: &Arc<Node>, body: &Value) -> Result<Reply, Reply> {
    let key = field::string(body, "key")?;
    let request = field::value(body, "request");
    let svc = &node.services.idem;
    let mut st = svc.lock().await;
    if let Some(r) = st.responses.get(&key) {
        return Ok(Reply::ok(r.clone()));
    }
    if st.responses.len() >= node.cfg.settings.entries_max {
        return Err(full());
    }
    let response = json!({ "payment": format!("p{}", st.payments + 1), "request": request });
    st.payments += 1;
    let rec = Record::Idempotent {
        key: key.clone(),
        response: response.clone(),
    };
    if node.cfg.has(Bug::IdempotencyRace) {
        // The bug: the key is stored only after the effect's durable write, unlocked.
        drop(st);
        node.store.persist(&rec).await.map_err(storage)?;
        st = svc.lock().await;
    } else {
        node.store.persist(&rec).await.map_err(storage)?;
    }
    st.responses.insert(key.clone(), response.clone());
    *st.effects.entry(key).or_default() += 1;
    Ok(Reply::ok(response))
}

async fn member_add(node: &Arc<Node>, body: &Value) -> Result<Reply, Reply> {
    let group = field::string(body, "group")?;
    let member = field::id(body, "member")?;
    let svc = &node.services.members;
    let mut st = svc.lock().await;
    let list = st.groups.get(&group);
    if list.is_some_and(|l| l.contains(&member)) {
        return Ok(Reply::ok(json!({ "added": false })));
    }
    let max = node.cfg.settings.entries_max;
    if list.map_or(0, Vec::len) >= max || (list.is_none() && st.groups.len() >= max) {
        return Err(full());
    }
    let rec = Record::MemberAdded {
        group: group.clone(),
        member: member.clone(),
    };
    if node.cfg.has(Bug::DuplicateMember) {
        drop(st);
        node.store.persist(&rec).await.map_err(storage)?;
        st = svc.lock().await;
    } else {
        node.store.persist(&rec).await.map_err(storage)?;
    }
    st.groups.entry(group).or_default().push(member);
    Ok(Reply::ok(json!({ "added": true })))
}

async fn member_leave(node: &Arc<Node>, body: &Value) -> Result<Reply, Reply> {
    let group = field::string(body, "group")?;
    let member = field::id(body, "member")?;
    let svc = &node.services.members;
    let mut st = svc.lock().await;
    if !st.groups.get(&group).is_some_and(|l| l.contains(&member)) {
        return Ok(Reply::ok(json!({ "left": false })));
    }
    let rec = Record::MemberLeft {
        group: group.clone(),
        member: member.clone(),
    };
    if node.cfg.has(Bug::DoubleLeave) {
        drop(st);
        node.store.persist(&rec).await.map_err(storage)?;
        st = svc.lock().await;
    } else {
        node.store.persist(&rec).await.map_err(storage)?;
    }
    if let Some(list) = st.groups.get_mut(&group) {
        list.retain(|x| *x != member);
    }
    *st.leaves.entry((group, member.to_string())).or_default() += 1;
    Ok(Reply::ok(json!({ "left": true })))
}

async fn unique_create(node: &Arc<Node>, body: &Value) -> Result<Reply, Reply> {
    let id = match field::id(body, "id")? {
        Value::String(s) => s,
        other => other.to_string(),
    };
    let svc = &node.services.unique;
    let mut st = svc.lock().await;
    if st.contains(&id) {
        return Err(Reply::refused("exists", format!("{id} exists")));
    }
    if st.len() >= node.cfg.settings.entries_max {
        return Err(full());
    }
    let rec = Record::Created { id: id.clone() };
    if node.cfg.has(Bug::DoubleCreate) {
        drop(st);
        node.store.persist(&rec).await.map_err(storage)?;
        st = svc.lock().await;
    } else {
        node.store.persist(&rec).await.map_err(storage)?;
    }
    st.insert(id);
    Ok(Reply::ok(json!({})))
}

async fn stream_append(node: &Arc<Node>, body: &Value) -> Result<Reply, Reply> {
    let stream = field::string(body, "stream")?;
    let expected = field::u64(body, "expected")?;
    let event = field::id(body, "event")?;
    let svc = &node.services.streams;
    let mut st = svc.lock().await;
    let len = st.get(&stream).map_or(0, Vec::len) as u64;
    if len != expected {
        return Err(Reply::refused(
            "wrong-expected-version",
            format!("{stream} is at version {len}, not {expected}"),
        ));
    }
    let max = node.cfg.settings.entries_max;
    if len as usize >= max || (!st.contains_key(&stream) && st.len() >= max) {
        return Err(full());
    }
    let rec = Record::Appended {
        stream: stream.clone(),
        event: event.clone(),
    };
    if node.cfg.has(Bug::VersionRace) {
        drop(st);
        node.store.persist(&rec).await.map_err(storage)?;
        st = svc.lock().await;
    } else {
        node.store.persist(&rec).await.map_err(storage)?;
    }
    let events = st.entry(stream).or_default();
    events.push(event);
    Ok(Reply::ok(json!({ "version": events.len() })))
}

async fn lease_acquire(node: &Arc<Node>, body: &Value) -> Result<Reply, Reply> {
    let task = field::string(body, "task")?;
    let worker = field::string(body, "worker")?;
    let mut st = node.services.tasks.lock().await;
    let now = Instant::now();
    if !st.contains_key(&task) && st.len() >= node.cfg.settings.entries_max {
        return Err(full());
    }
    let t = st.entry(task.clone()).or_insert(Task {
        token: 0,
        holder: None,
        until: now,
        done: false,
        completions: 0,
    });
    if t.done {
        return Err(Reply::refused("done", format!("{task} is complete")));
    }
    if t.holder.as_ref().is_some_and(|h| *h != worker) && t.until > now {
        return Err(Reply::refused(
            "held",
            format!("{task} is leased to another worker"),
        ));
    }
    t.token += 1;
    t.holder = Some(worker);
    t.until = now + node.cfg.settings.task_lease;
    Ok(Reply::ok(json!({
        "token": t.token,
        "lease_ms": node.cfg.settings.task_lease.as_millis() as u64,
    })))
}

/// Completes a task: fenced by the lease token unless `no-fencing` is on.
async fn lease_complete(node: &Arc<Node>, body: &Value) -> Result<Reply, Reply> {
    let task = field::string(body, "task")?;
    let worker = field::string(body, "worker")?;
    let token = field::u64(body, "token")?;
    let mut st = node.services.tasks.lock().await;
    let Some(t) = st.get(&task) else {
        return Err(Reply::refused("fenced", format!("{task} was never leased")));
    };
    if !node.cfg.has(Bug::NoFencing) {
        if t.done {
            return Err(Reply::refused(
                "done",
                format!("{task} is already complete"),
            ));
        }
        if t.token != token || t.holder.as_deref() != Some(worker.as_str()) {
            return Err(Reply::refused(
                "fenced",
                format!("token {token} is stale; the lease is at {}", t.token),
            ));
        }
    }
    node.store
        .persist(&Record::TaskCompleted { task: task.clone() })
        .await
        .map_err(storage)?;
    if let Some(t) = st.get_mut(&task) {
        t.done = true;
        t.completions += 1;
    }
    Ok(Reply::ok(json!({})))
}
