//! The replicated register: primary-backup with epochs, majority writes and quorum reads.
//!
//! The design is the smallest one that is correct under partitions and crashes, so that its two
//! bugs are the only way it loses or resurrects writes:
//!
//! - **Election.** A backup that has not heard the primary for a lease (plus half a lease per
//!   rank, so the lowest name usually goes first) asks for a pre-vote, and only if a majority
//!   would vote does it take a new epoch and ask for real votes; a partitioned node thus never
//!   inflates epochs and never disrupts the majority when it returns. A voter grants at most one
//!   vote per epoch, never while it hears a live primary, and sends its whole map with the vote.
//!   The winner merges the majority's maps (highest version per key), pushes the merge to a
//!   majority (`sync`), and only then serves: every write acknowledged by a majority in any
//!   earlier epoch is in every later primary's map.
//! - **Writes** are serialised on the primary, versioned `(epoch, seq)`, written to the local
//!   log, and replicated; a backup accepts only its current epoch or a newer one. The write is
//!   acknowledged once a majority holds it, and only then visible on the primary. Without a
//!   majority within the write timeout, or when a peer reveals a newer epoch, the answer is
//!   *indeterminate* (the value may surface later through a merge), never a definite failure.
//! - **Reads** are served by the primary after a heartbeat round confirms that a majority still
//!   follows its epoch, so a deposed primary cannot serve a stale value.
//! - **Catch-up.** Replication stops at a majority, so a backup may miss writes (the slowest
//!   peer's call is dropped, a partitioned or killed node misses them all). Once no write has
//!   started for two leases, the primary sends every peer its whole map with the highest
//!   sequence number it has issued; a backup replaces what it holds from earlier epochs, or
//!   from this epoch up to that number, with the primary's entries, and keeps what is newer.
//!   Catching up only when idle leaves the replication the scenarios exercise untouched, and
//!   makes replicas converge once quiescent (docs/scenarios.md L5, L12), which `/kv/local`
//!   (one node's own map, never forwarded) lets a checker see.
//!
//! Bugs: `stale-epoch-write` drops the epoch check on backups and lets a deposed primary keep
//! retrying the write it started, so it completes after a new primary took over, behind its
//! back. `lost-acked-write` acknowledges on local apply and persists and replicates later in the
//! background: a crash or partition in between loses an acknowledged write.
//! `replica-divergence` makes the last node by name acknowledge every third replicated write
//! and every catch-up without applying them: that replica never converges, and a write whose
//! majority was the primary and that node alone can even be lost in a later failover.

use crate::config::Bug;
use crate::http::{field, Reply, Req};
use crate::net::PeerError;
use crate::node::Node;
use crate::store::Record;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Backup,
    Candidate,
    Primary,
}

/// A value with the version that wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Versioned {
    pub value: Value,
    pub epoch: u64,
    pub seq: u64,
}

impl Versioned {
    fn version(&self) -> (u64, u64) {
        (self.epoch, self.seq)
    }
}

struct KvState {
    epoch: u64,
    voted_for: Option<String>,
    role: Role,
    primary: Option<String>,
    last_heard: Instant,
    last_majority: Instant,
    seq: u64,
    data: BTreeMap<String, Versioned>,
    /// When this node last started a write as primary, and last sent a catch-up.
    last_write: Instant,
    last_catch_up: Instant,
}

/// One node's replica.
pub struct Replica {
    st: Mutex<KvState>,
    write_lock: tokio::sync::Mutex<()>,
}

impl Default for Replica {
    fn default() -> Self {
        Replica::new()
    }
}

impl Replica {
    pub fn new() -> Replica {
        Replica {
            st: Mutex::new(KvState {
                epoch: 0,
                voted_for: None,
                role: Role::Backup,
                primary: None,
                last_heard: Instant::now(),
                last_majority: Instant::now(),
                seq: 0,
                data: BTreeMap::new(),
                last_write: Instant::now(),
                last_catch_up: Instant::now(),
            }),
            write_lock: tokio::sync::Mutex::new(()),
        }
    }

    fn st(&self) -> std::sync::MutexGuard<'_, KvState> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn replay(&mut self, r: &Record) {
        let st = self.st.get_mut().unwrap_or_else(|e| e.into_inner());
        match r {
            Record::KvEpoch { epoch, voted_for } => {
                st.epoch = *epoch;
                st.voted_for = voted_for.clone();
            }
            Record::KvPut {
                key,
                value,
                epoch,
                seq,
            } => {
                st.data.insert(
                    key.clone(),
                    Versioned {
                        value: value.clone(),
                        epoch: *epoch,
                        seq: *seq,
                    },
                );
            }
            Record::KvDelete { key } => {
                st.data.remove(key);
            }
            _ => {}
        }
    }

    pub fn status(&self) -> Value {
        let st = self.st();
        json!({
            "role": st.role,
            "epoch": st.epoch,
            "primary": st.primary,
            "keys": st.data.len(),
        })
    }

    /// This node's role and the primary it follows.
    pub fn role(&self) -> (Role, Option<String>, u64) {
        let st = self.st();
        (st.role, st.primary.clone(), st.epoch)
    }
}

/// Sends `body` to every peer at once and collects the answers as they come, until every peer
/// answered (or timed out) or `enough` of them granted: a round needs a majority, not the
/// slowest peer, so one partitioned peer never slows heartbeats, reads or writes. Dropping the
/// future (a crash, or returning early) aborts the calls still running.
async fn broadcast(
    node: &Arc<Node>,
    peers: Vec<String>,
    path: &'static str,
    body: Value,
    enough: usize,
) -> Vec<(String, Result<Value, PeerError>)> {
    let mut set = JoinSet::new();
    let timeout = node.cfg.settings.peer_timeout;
    let body = Arc::new(body);
    for p in peers {
        let node = Arc::clone(node);
        let body = Arc::clone(&body);
        set.spawn(async move {
            let r = node.net.call(&p, path, &body, timeout).await;
            (p, r)
        });
    }
    let mut out = Vec::new();
    let mut grants = 0;
    while grants < enough {
        let Some(r) = set.join_next().await else {
            break;
        };
        if let Ok(x) = r {
            if matches!(&x.1, Ok(v) if granted(v)) {
                grants += 1;
            }
            out.push(x);
        }
    }
    out
}

/// Grants needed from peers for a majority (this node counts itself).
fn peer_majority(node: &Node) -> usize {
    node.cfg.majority().saturating_sub(1)
}

fn reply_epoch(v: &Value) -> u64 {
    v.get("epoch").and_then(Value::as_u64).unwrap_or(0)
}

fn granted(v: &Value) -> bool {
    v.get("ok").and_then(Value::as_bool) == Some(true)
}

/// The background loop: heartbeats while primary, elections while not hearing one.
pub async fn run(node: Arc<Node>) {
    let names = node.cfg.cluster_names();
    let rank = names.iter().position(|n| *n == node.cfg.name).unwrap_or(0) as u32;
    let lease = node.cfg.settings.lease;
    let election_after = lease + lease * rank / 2;
    loop {
        tokio::time::sleep(node.cfg.settings.heartbeat_interval()).await;
        let (role, quiet) = {
            let st = node.kv.st();
            (st.role, st.last_heard.elapsed())
        };
        match role {
            Role::Primary if heartbeat_round(&node).await => catch_up_if_idle(&node),
            Role::Primary => {}
            _ if quiet >= election_after => elect(&node).await,
            _ => {}
        }
    }
}

/// The catch-up (module doc): once no write started for two leases and none is in flight, at
/// most once a lease, the whole map to every peer, each call on its own so a dead peer delays
/// nobody.
fn catch_up_if_idle(node: &Arc<Node>) {
    let lease = node.cfg.settings.lease;
    // Writes are serialised under this lock through their replication: holding it, no write is
    // in flight, and every later one gets a sequence number above `upto`.
    let Ok(_serial) = node.kv.write_lock.try_lock() else {
        return;
    };
    let body = {
        let mut st = node.kv.st();
        let idle = st.last_write.elapsed() >= 2 * lease;
        if st.role != Role::Primary || !idle || st.last_catch_up.elapsed() < lease {
            return;
        }
        st.last_catch_up = Instant::now();
        json!({
            "epoch": st.epoch, "from": node.cfg.name, "upto": st.seq, "data": st.data,
        })
    };
    let timeout = node.cfg.settings.peer_timeout;
    let body = Arc::new(body);
    for p in node.net.peer_names() {
        let n = Arc::clone(node);
        let body = Arc::clone(&body);
        node.spawn(async move {
            let _ = n.net.call(&p, "/peer/catch-up", &body, timeout).await;
        });
    }
}

/// Sends a heartbeat to every peer; true when a majority still follows this primary's epoch.
/// Steps down on seeing a newer epoch, or after a lease without a majority.
async fn heartbeat_round(node: &Arc<Node>) -> bool {
    let epoch = {
        let st = node.kv.st();
        if st.role != Role::Primary {
            return false;
        }
        st.epoch
    };
    let replies = broadcast(
        node,
        node.net.peer_names(),
        "/peer/heartbeat",
        json!({ "epoch": epoch, "from": node.cfg.name }),
        peer_majority(node),
    )
    .await;
    let mut acks = 1;
    let mut newer = None;
    for (_, r) in &replies {
        if let Ok(v) = r {
            if granted(v) {
                acks += 1;
            } else if reply_epoch(v) > epoch {
                newer = Some(reply_epoch(v));
            }
        }
    }
    if let Some(e) = newer {
        if node.kv.st().epoch == epoch {
            step_down(node, e, "a peer follows a newer epoch").await;
        }
        return false;
    }
    let mut st = node.kv.st();
    if st.role != Role::Primary || st.epoch != epoch {
        return false;
    }
    if acks >= node.cfg.majority() {
        st.last_majority = Instant::now();
        return true;
    }
    if st.last_majority.elapsed() > node.cfg.settings.lease {
        st.role = Role::Backup;
        st.primary = None;
        st.last_heard = Instant::now();
        drop(st);
        node.log(format!(
            "stepping down from epoch {epoch}: no majority for a lease"
        ));
    }
    false
}

async fn step_down(node: &Arc<Node>, epoch: u64, why: &str) {
    let rec = {
        let mut st = node.kv.st();
        let was_primary = st.role == Role::Primary;
        st.role = Role::Backup;
        st.primary = None;
        st.last_heard = Instant::now();
        if was_primary {
            node.log(format!("stepping down from epoch {}: {why}", st.epoch));
        }
        if epoch > st.epoch {
            st.epoch = epoch;
            st.voted_for = None;
            Some(Record::KvEpoch {
                epoch,
                voted_for: None,
            })
        } else {
            None
        }
    };
    if let Some(r) = rec {
        let _ = node.store.persist(&r).await;
    }
}

async fn elect(node: &Arc<Node>) {
    let majority = node.cfg.majority();
    let me = node.cfg.name.clone();
    let next = node.kv.st().epoch + 1;
    // Pre-vote: would a majority vote for us? Changes no one's state.
    let pre = broadcast(
        node,
        node.net.peer_names(),
        "/peer/vote",
        json!({ "epoch": next, "candidate": me, "pre": true }),
        peer_majority(node),
    )
    .await;
    let would = 1 + pre
        .iter()
        .filter(|(_, r)| matches!(r, Ok(v) if granted(v)))
        .count();
    if would < majority {
        node.kv.st().last_heard = Instant::now();
        return;
    }
    let (epoch, mut merged) = {
        let mut st = node.kv.st();
        if st.role == Role::Primary || st.last_heard.elapsed() < node.cfg.settings.lease {
            return; // a primary appeared meanwhile
        }
        st.epoch = st.epoch.max(next - 1) + 1;
        st.voted_for = Some(me.clone());
        st.role = Role::Candidate;
        st.last_heard = Instant::now();
        (st.epoch, st.data.clone())
    };
    if node
        .store
        .persist(&Record::KvEpoch {
            epoch,
            voted_for: Some(me.clone()),
        })
        .await
        .is_err()
    {
        node.kv.st().role = Role::Backup;
        return;
    }
    let votes = broadcast(
        node,
        node.net.peer_names(),
        "/peer/vote",
        json!({ "epoch": epoch, "candidate": me, "pre": false }),
        peer_majority(node),
    )
    .await;
    let mut count = 1;
    for (_, r) in &votes {
        let Ok(v) = r else { continue };
        if !granted(v) {
            continue;
        }
        count += 1;
        if let Ok(data) = serde_json::from_value::<BTreeMap<String, Versioned>>(v["data"].clone()) {
            for (k, val) in data {
                match merged.get(&k) {
                    Some(cur) if cur.version() >= val.version() => {}
                    _ => {
                        merged.insert(k, val);
                    }
                }
            }
        }
    }
    let still = |node: &Arc<Node>| {
        let st = node.kv.st();
        st.epoch == epoch && st.role == Role::Candidate
    };
    if count < majority || !still(node) {
        let mut st = node.kv.st();
        if st.epoch == epoch && st.role == Role::Candidate {
            st.role = Role::Backup;
        }
        return;
    }
    // Adopt the merge locally, durably, then on a majority, before serving anything.
    let recs = {
        let mut st = node.kv.st();
        let mut recs = Vec::new();
        for (k, v) in &merged {
            if st.data.get(k).map(Versioned::version) != Some(v.version()) {
                st.data.insert(k.clone(), v.clone());
                recs.push(Record::KvPut {
                    key: k.clone(),
                    value: v.value.clone(),
                    epoch: v.epoch,
                    seq: v.seq,
                });
            }
        }
        recs
    };
    if !recs.is_empty() && node.store.persist_all(&recs).await.is_err() {
        node.kv.st().role = Role::Backup;
        return;
    }
    let synced = broadcast(
        node,
        node.net.peer_names(),
        "/peer/sync",
        json!({ "epoch": epoch, "from": me, "data": merged }),
        peer_majority(node),
    )
    .await;
    let acks = 1 + synced
        .iter()
        .filter(|(_, r)| matches!(r, Ok(v) if granted(v)))
        .count();
    let mut st = node.kv.st();
    if st.epoch != epoch || st.role != Role::Candidate {
        return;
    }
    if acks >= majority {
        st.role = Role::Primary;
        st.primary = Some(me);
        st.seq = 0;
        st.last_majority = Instant::now();
        drop(st);
        node.log(format!("primary for epoch {epoch}"));
    } else {
        st.role = Role::Backup;
    }
}

/// Peer endpoints: `/peer/heartbeat`, `/peer/vote`, `/peer/sync`, `/peer/replicate`,
/// `/peer/catch-up`.
pub async fn peer(node: &Arc<Node>, op: &str, body: &Value) -> Reply {
    let r = match op {
        "heartbeat" => on_heartbeat(node, body).await,
        "vote" => on_vote(node, body).await,
        "sync" => on_sync(node, body).await,
        "replicate" => on_replicate(node, body).await,
        "catch-up" => on_catch_up(node, body).await,
        _ => return Reply::error(404, "not-found", true, format!("no endpoint /peer/{op}")),
    };
    r.unwrap_or_else(|e| e)
}

async fn on_heartbeat(node: &Arc<Node>, body: &Value) -> Result<Reply, Reply> {
    let epoch = field::u64(body, "epoch")?;
    let from = field::string(body, "from")?;
    let rec = {
        let mut st = node.kv.st();
        if epoch < st.epoch {
            return Ok(Reply::ok(json!({ "ok": false, "epoch": st.epoch })));
        }
        let rec = (epoch > st.epoch).then(|| {
            st.epoch = epoch;
            st.voted_for = None;
            Record::KvEpoch {
                epoch,
                voted_for: None,
            }
        });
        if st.role != Role::Backup || st.primary.as_deref() != Some(&from) {
            st.role = Role::Backup;
            st.primary = Some(from);
        }
        st.last_heard = Instant::now();
        rec
    };
    if let Some(r) = rec {
        persist_or_unavailable(node, &[r]).await?;
    }
    Ok(Reply::ok(json!({ "ok": true, "epoch": epoch })))
}

async fn on_vote(node: &Arc<Node>, body: &Value) -> Result<Reply, Reply> {
    let epoch = field::u64(body, "epoch")?;
    let candidate = field::string(body, "candidate")?;
    let pre = body.get("pre").and_then(Value::as_bool).unwrap_or(false);
    let lease = node.cfg.settings.lease;
    let (rec, data) = {
        let mut st = node.kv.st();
        let deny = |st: &KvState| Ok(Reply::ok(json!({ "ok": false, "epoch": st.epoch })));
        if st.role == Role::Primary {
            return deny(&st);
        }
        let hears_primary = st.primary.is_some() && st.last_heard.elapsed() < lease;
        if hears_primary && st.primary.as_deref() != Some(&candidate) {
            return deny(&st);
        }
        let voted_other =
            epoch == st.epoch && st.voted_for.as_ref().is_some_and(|v| *v != candidate);
        if epoch < st.epoch || voted_other {
            return deny(&st);
        }
        if pre {
            return Ok(Reply::ok(json!({ "ok": true, "epoch": st.epoch })));
        }
        st.epoch = epoch;
        st.voted_for = Some(candidate.clone());
        st.role = Role::Backup;
        st.primary = None;
        st.last_heard = Instant::now();
        (
            Record::KvEpoch {
                epoch,
                voted_for: Some(candidate),
            },
            serde_json::to_value(&st.data).expect("maps serialize"),
        )
    };
    persist_or_unavailable(node, &[rec]).await?;
    Ok(Reply::ok(
        json!({ "ok": true, "epoch": epoch, "data": data }),
    ))
}

async fn on_sync(node: &Arc<Node>, body: &Value) -> Result<Reply, Reply> {
    let epoch = field::u64(body, "epoch")?;
    let from = field::string(body, "from")?;
    let data: BTreeMap<String, Versioned> = serde_json::from_value(field::value(body, "data"))
        .map_err(|e| Reply::bad(format!("field \"data\": {e}")))?;
    let recs = {
        let mut st = node.kv.st();
        if epoch < st.epoch || st.role == Role::Primary {
            return Ok(Reply::ok(json!({ "ok": false, "epoch": st.epoch })));
        }
        let mut recs = Vec::new();
        if epoch > st.epoch {
            st.epoch = epoch;
            st.voted_for = None;
            recs.push(Record::KvEpoch {
                epoch,
                voted_for: None,
            });
        }
        st.role = Role::Backup;
        st.primary = Some(from);
        st.last_heard = Instant::now();
        for (k, v) in data {
            if st
                .data
                .get(&k)
                .is_none_or(|cur| cur.version() < v.version())
            {
                recs.push(Record::KvPut {
                    key: k.clone(),
                    value: v.value.clone(),
                    epoch: v.epoch,
                    seq: v.seq,
                });
                st.data.insert(k, v);
            }
        }
        recs
    };
    persist_or_unavailable(node, &recs).await?;
    Ok(Reply::ok(json!({ "ok": true, "epoch": epoch })))
}

/// Whether this node is the one `replica-divergence` makes skip writes: the last by name.
fn diverges(node: &Node) -> bool {
    node.cfg.has(Bug::ReplicaDivergence)
        && node.cfg.cluster_names().last().map(String::as_str) == Some(node.cfg.name.as_str())
}

/// The primary's whole map (module doc, Catch-up): entries this replica holds from an earlier
/// epoch, or from this one up to `upto`, give way to the primary's (or go when it has none);
/// newer ones stay.
async fn on_catch_up(node: &Arc<Node>, body: &Value) -> Result<Reply, Reply> {
    let epoch = field::u64(body, "epoch")?;
    let upto = field::u64(body, "upto")?;
    let data: BTreeMap<String, Versioned> = serde_json::from_value(field::value(body, "data"))
        .map_err(|e| Reply::bad(format!("field \"data\": {e}")))?;
    if diverges(node) {
        // The bug: acknowledged, not applied.
        return Ok(Reply::ok(json!({ "ok": true, "epoch": epoch })));
    }
    let recs = {
        let mut st = node.kv.st();
        if epoch != st.epoch || st.role != Role::Backup {
            return Ok(Reply::ok(json!({ "ok": false, "epoch": st.epoch })));
        }
        let covered = |v: &Versioned| v.epoch < epoch || v.seq <= upto;
        let mut recs = Vec::new();
        let gone: Vec<String> = st
            .data
            .iter()
            .filter(|(k, v)| !data.contains_key(*k) && covered(v))
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            st.data.remove(&key);
            recs.push(Record::KvDelete { key });
        }
        for (k, v) in data {
            let replace = match st.data.get(&k) {
                None => true,
                Some(cur) => cur.version() != v.version() && covered(cur),
            };
            if replace {
                recs.push(Record::KvPut {
                    key: k.clone(),
                    value: v.value.clone(),
                    epoch: v.epoch,
                    seq: v.seq,
                });
                st.data.insert(k, v);
            }
        }
        recs
    };
    persist_or_unavailable(node, &recs).await?;
    Ok(Reply::ok(json!({ "ok": true, "epoch": epoch })))
}

async fn on_replicate(node: &Arc<Node>, body: &Value) -> Result<Reply, Reply> {
    let epoch = field::u64(body, "epoch")?;
    let from = field::string(body, "from")?;
    let key = field::string(body, "key")?;
    let seq = field::u64(body, "seq")?;
    let value = field::value(body, "value");
    let stale_bug = node.cfg.has(Bug::StaleEpochWrite);
    if diverges(node) && seq % 3 == 0 {
        // The bug: acknowledged, not applied.
        return Ok(Reply::ok(json!({ "ok": true, "epoch": epoch })));
    }
    let mut already_held = false;
    let recs = {
        let mut st = node.kv.st();
        if st.role == Role::Primary && epoch <= st.epoch {
            return Ok(Reply::ok(json!({ "ok": false, "epoch": st.epoch })));
        }
        let mut recs = Vec::new();
        let v = Versioned {
            value: value.clone(),
            epoch,
            seq,
        };
        if stale_bug {
            // The bug: a backup trusts whoever claims to be primary, whatever its epoch.
            st.data.insert(key.clone(), v);
        } else {
            if epoch < st.epoch {
                return Ok(Reply::ok(json!({ "ok": false, "epoch": st.epoch })));
            }
            if epoch > st.epoch {
                st.epoch = epoch;
                st.voted_for = None;
                recs.push(Record::KvEpoch {
                    epoch,
                    voted_for: None,
                });
            }
            st.role = Role::Backup;
            st.primary = Some(from);
            st.last_heard = Instant::now();
            if st
                .data
                .get(&key)
                .is_some_and(|cur| cur.version() >= v.version())
            {
                // A retry of what this replica already holds (or something newer).
                already_held = true;
            } else {
                st.data.insert(key.clone(), v);
            }
        }
        if !already_held {
            recs.push(Record::KvPut {
                key,
                value,
                epoch,
                seq,
            });
        }
        recs
    };
    persist_or_unavailable(node, &recs).await?;
    Ok(Reply::ok(json!({ "ok": true, "epoch": epoch })))
}

async fn persist_or_unavailable(node: &Node, recs: &[Record]) -> Result<(), Reply> {
    if recs.is_empty() {
        return Ok(());
    }
    node.store
        .persist_all(recs)
        .await
        .map_err(|e| Reply::unavailable("storage", false, e.to_string()))
}

/// Client endpoints: `/kv/read {key}`, `/kv/write {key, value}`, `/kv/cas {key, from, to}`,
/// and `/kv/local {}`: this node's own map (`{node, role, data: {key: value}}`), never
/// forwarded, for the convergence check after the final heal.
pub async fn client(node: &Arc<Node>, op: &str, req: &Req) -> Reply {
    let r = match op {
        "read" => read(node, req).await,
        "local" => Ok(local(node)),
        "write" | "cas" => write(node, op == "cas", req).await,
        _ => return Reply::error(404, "not-found", true, format!("no endpoint /kv/{op}")),
    };
    r.unwrap_or_else(|e| e)
}

/// Serves here when primary; else forwards to the primary this node follows.
async fn route(node: &Arc<Node>, req: &Req) -> Option<Reply> {
    let (role, primary, _) = node.kv.role();
    if role == Role::Primary {
        return None;
    }
    Some(match primary {
        Some(p) if p != node.cfg.name => node.forward(&p, req, "not-primary").await,
        _ => Reply::unavailable(
            "no-primary",
            true,
            format!("{} knows no primary", node.cfg.name),
        ),
    })
}

fn local(node: &Node) -> Reply {
    let st = node.kv.st();
    let data: BTreeMap<&String, &Value> = st.data.iter().map(|(k, v)| (k, &v.value)).collect();
    Reply::ok(json!({ "node": node.cfg.name, "role": st.role, "data": data }))
}

async fn read(node: &Arc<Node>, req: &Req) -> Result<Reply, Reply> {
    let key = field::string(&req.body, "key")?;
    if let Some(r) = route(node, req).await {
        return Ok(r);
    }
    if !heartbeat_round(node).await {
        return Err(Reply::unavailable(
            "not-primary",
            true,
            "no majority confirms this primary",
        ));
    }
    let st = node.kv.st();
    Ok(Reply::ok(json!({
        "value": st.data.get(&key).map(|v| v.value.clone()).unwrap_or(Value::Null)
    })))
}

async fn write(node: &Arc<Node>, cas: bool, req: &Req) -> Result<Reply, Reply> {
    let key = field::string(&req.body, "key")?;
    let (expect, value) = if cas {
        (
            Some(field::value(&req.body, "from")),
            field::value(&req.body, "to"),
        )
    } else {
        (None, field::value(&req.body, "value"))
    };
    if let Some(r) = route(node, req).await {
        return Ok(r);
    }
    let _serial = node.kv.write_lock.lock().await;
    let (epoch, seq) = {
        let mut st = node.kv.st();
        if st.role != Role::Primary {
            return Err(Reply::unavailable(
                "not-primary",
                true,
                format!("{} is no longer primary", node.cfg.name),
            ));
        }
        if let Some(expect) = &expect {
            let cur = st.data.get(&key).map(|v| &v.value).unwrap_or(&Value::Null);
            if cur != expect {
                return Err(Reply::refused(
                    "cas-mismatch",
                    format!("{key} holds {cur}, not {expect}"),
                ));
            }
        }
        if !st.data.contains_key(&key) && st.data.len() >= node.cfg.settings.entries_max {
            return Err(Reply::refused("full", "too many keys"));
        }
        st.seq += 1;
        st.last_write = Instant::now();
        (st.epoch, st.seq)
    };
    let v = Versioned {
        value: value.clone(),
        epoch,
        seq,
    };
    let rec = Record::KvPut {
        key: key.clone(),
        value: value.clone(),
        epoch,
        seq,
    };
    let replicate = json!({
        "epoch": epoch, "from": node.cfg.name, "key": key, "value": value, "seq": seq,
    });
    if node.cfg.has(Bug::LostAckedWrite) {
        // The bug: visible and acknowledged now, durable and replicated later.
        node.kv.st().data.insert(key, v);
        let n = Arc::clone(node);
        node.spawn(async move {
            tokio::time::sleep(n.cfg.settings.async_replication_delay).await;
            let _ = n.store.persist(&rec).await;
            let all = n.net.peer_names();
            let count = all.len();
            broadcast(&n, all, "/peer/replicate", replicate, count).await;
        });
        return Ok(Reply::ok(json!({})));
    }
    persist_or_unavailable(node, &[rec]).await?;
    replicate_to_majority(node, key, v, replicate).await
}

async fn replicate_to_majority(
    node: &Arc<Node>,
    key: String,
    v: Versioned,
    body: Value,
) -> Result<Reply, Reply> {
    let stale_bug = node.cfg.has(Bug::StaleEpochWrite);
    let deadline = Instant::now() + node.cfg.settings.write_timeout;
    let mut acked: BTreeSet<String> = BTreeSet::new();
    loop {
        let pending: Vec<String> = node
            .net
            .peer_names()
            .into_iter()
            .filter(|p| !acked.contains(p))
            .collect();
        let mut newer = None;
        let enough = peer_majority(node).saturating_sub(acked.len());
        for (p, r) in broadcast(node, pending, "/peer/replicate", body.clone(), enough).await {
            match r {
                Ok(reply) if granted(&reply) => {
                    acked.insert(p);
                }
                Ok(reply) if reply_epoch(&reply) > v.epoch => newer = Some(reply_epoch(&reply)),
                _ => {}
            }
        }
        if acked.len() + 1 >= node.cfg.majority() {
            let mut st = node.kv.st();
            if st
                .data
                .get(&key)
                .is_none_or(|cur| cur.version() < v.version())
            {
                st.data.insert(key, v);
            }
            return Ok(Reply::ok(json!({})));
        }
        let deposed = {
            let st = node.kv.st();
            newer.is_some() || st.epoch != v.epoch || st.role != Role::Primary
        };
        // The bug: a deposed primary keeps going with the write it started.
        if deposed && !stale_bug {
            if let Some(e) = newer {
                step_down(node, e, "a backup follows a newer epoch").await;
            }
            return Err(Reply::unavailable(
                "deposed",
                false,
                "deposed before the write reached a majority; it may still surface",
            ));
        }
        if Instant::now() >= deadline {
            return Err(Reply::unavailable(
                "timed-out",
                false,
                "the write did not reach a majority in time; it may still surface",
            ));
        }
        tokio::time::sleep(
            node.cfg
                .settings
                .retry_interval
                .min(deadline.saturating_duration_since(Instant::now()) + Duration::from_millis(1)),
        )
        .await;
    }
}
