//! The outbox: a business transaction commits an event as an outbox row, and a dispatcher on the
//! home node publishes rows, in order, to the `outbox` topic of the queue.
//!
//! Correct dispatch publishes each row and marks it dispatched in one durable record, so a crash
//! at any point either leaves the row (it is published again after restart, exactly once) or
//! has published and marked it; a failed publish leaves the row and its successors for the next
//! round. Publishing can be made to fail with the `--dispatch-fail-every N` failpoint (every Nth
//! publish attempt fails), which is how a plan provokes "publish fails" deterministically.
//!
//! Bugs: `outbox-lose-on-crash` marks a batch dispatched before publishing it (after a pause of
//! `dispatch_step`), so a crash in between loses it; `outbox-redeliver-batch` marks only after a
//! whole batch published, so a failure midway re-sends the events that had succeeded;
//! `outbox-drop-after-commit` deletes a row whose publish failed.

use crate::config::Bug;
use crate::http::{field, Reply};
use crate::node::Node;
use crate::queue::OUTBOX_TOPIC;
use crate::store::Record;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Bound on publish attempts for one row of a batch already marked (lose-on-crash bug path).
const PUBLISH_ATTEMPTS_MAX: u32 = 20;

#[derive(Default)]
pub struct Outbox {
    state: tokio::sync::Mutex<OutboxState>,
    in_flight: AtomicBool,
    attempts: AtomicU64,
    /// Rows marked dispatched but not yet published (only the lose-on-crash bug has any).
    unpublished: AtomicU64,
}

#[derive(Default)]
struct OutboxState {
    next_seq: u64,
    rows: BTreeMap<u64, Value>,
}

impl Outbox {
    pub fn replay(&mut self, r: &Record) {
        let st = self.state.get_mut();
        match r {
            Record::OutboxRow { seq, id } => {
                st.rows.insert(*seq, id.clone());
                st.next_seq = st.next_seq.max(seq + 1);
            }
            Record::OutboxMarked { seqs } => {
                for s in seqs {
                    st.rows.remove(s);
                }
            }
            Record::Produce {
                outbox_seq: Some(s),
                ..
            } => {
                st.rows.remove(s);
            }
            _ => {}
        }
    }

    pub async fn status(&self) -> Value {
        json!({
            "rows": self.state.lock().await.rows.len(),
            "in_flight": self.in_flight.load(Ordering::SeqCst),
            "unpublished": self.unpublished.load(Ordering::SeqCst),
            "publish_attempts": self.attempts.load(Ordering::SeqCst),
        })
    }

    /// The failpoint: true when this publish attempt must fail.
    fn publish_fails(&self, every: u64) -> bool {
        let n = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
        every > 0 && n.is_multiple_of(every)
    }

    async fn remove(&self, seqs: &[u64]) {
        let mut st = self.state.lock().await;
        for s in seqs {
            st.rows.remove(s);
        }
    }
}

/// `/outbox/commit {id}`: the transaction that writes an outbox row; `/outbox/pending {}`: rows
/// not yet dispatched and whether a batch is in flight (a drain waits for both to be zero).
pub async fn handle(node: &Arc<Node>, op: &str, body: &Value) -> Result<Reply, Reply> {
    match op {
        "commit" => {
            let id = field::id(body, "id")?;
            let mut st = node.outbox.state.lock().await;
            if st.rows.len() >= node.cfg.settings.entries_max {
                return Err(Reply::refused("full", "the outbox is full"));
            }
            let seq = st.next_seq;
            node.store
                .persist(&Record::OutboxRow {
                    seq,
                    id: id.clone(),
                })
                .await
                .map_err(|e| Reply::unavailable("storage", false, e.to_string()))?;
            st.next_seq += 1;
            st.rows.insert(seq, id);
            Ok(Reply::ok(json!({ "seq": seq })))
        }
        "pending" => Ok(Reply::ok(node.outbox.status().await)),
        _ => Err(Reply::error(
            404,
            "not-found",
            true,
            format!("no endpoint /outbox/{op}"),
        )),
    }
}

/// The dispatcher loop (home node only).
pub async fn run(node: Arc<Node>) {
    let s = node.cfg.settings.clone();
    loop {
        tokio::time::sleep(s.dispatch_interval).await;
        let batch: Vec<(u64, Value)> = {
            let st = node.outbox.state.lock().await;
            st.rows
                .iter()
                .take(s.dispatch_batch)
                .map(|(k, v)| (*k, v.clone()))
                .collect()
        };
        if batch.is_empty() {
            continue;
        }
        node.outbox.in_flight.store(true, Ordering::SeqCst);
        dispatch(&node, batch).await;
        node.outbox.in_flight.store(false, Ordering::SeqCst);
    }
}

async fn dispatch(node: &Arc<Node>, batch: Vec<(u64, Value)>) {
    let s = &node.cfg.settings;
    let ob = &node.outbox;
    if node.cfg.has(Bug::OutboxLoseOnCrash) {
        // The bug: marked first, published after a pause.
        let seqs: Vec<u64> = batch.iter().map(|(k, _)| *k).collect();
        if node
            .store
            .persist(&Record::OutboxMarked { seqs: seqs.clone() })
            .await
            .is_err()
        {
            return;
        }
        ob.remove(&seqs).await;
        ob.unpublished
            .fetch_add(batch.len() as u64, Ordering::SeqCst);
        tokio::time::sleep(s.dispatch_step).await;
        for (_, id) in batch {
            for _ in 0..PUBLISH_ATTEMPTS_MAX {
                if ob.publish_fails(s.dispatch_fail_every) {
                    continue;
                }
                if node
                    .broker
                    .produce(node, OUTBOX_TOPIC, id.clone(), None, None)
                    .await
                    .is_ok()
                {
                    break;
                }
            }
            ob.unpublished.fetch_sub(1, Ordering::SeqCst);
        }
        return;
    }
    tokio::time::sleep(s.dispatch_step).await;
    let redeliver_bug = node.cfg.has(Bug::OutboxRedeliverBatch);
    let mut published = Vec::new();
    for (seq, id) in &batch {
        if ob.publish_fails(s.dispatch_fail_every) {
            if node.cfg.has(Bug::OutboxDropAfterCommit) {
                // The bug: a failed publish deletes the row.
                if node
                    .store
                    .persist(&Record::OutboxMarked { seqs: vec![*seq] })
                    .await
                    .is_ok()
                {
                    ob.remove(&[*seq]).await;
                }
                continue;
            }
            return; // keep this row and the rest for the next round
        }
        if redeliver_bug {
            if node
                .broker
                .produce(node, OUTBOX_TOPIC, id.clone(), None, None)
                .await
                .is_err()
            {
                return;
            }
            published.push(*seq);
        } else {
            match node
                .broker
                .produce(node, OUTBOX_TOPIC, id.clone(), None, Some(*seq))
                .await
            {
                Ok(_) => ob.remove(&[*seq]).await,
                Err(_) => return,
            }
        }
    }
    if redeliver_bug
        && node
            .store
            .persist(&Record::OutboxMarked {
                seqs: published.clone(),
            })
            .await
            .is_ok()
    {
        ob.remove(&published).await;
    }
}
