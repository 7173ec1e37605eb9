//! Node-to-node calls: JSON over HTTP to a peer, with a blocklist that simulates a partition.
//!
//! Real runs partition nodes with iptables from outside; in-process tests (and anyone without
//! root) use the blocklist instead: a node refuses to send to a blocked peer (the call fails as
//! never sent) and rejects requests from one (the sender sees a definite refusal, nothing was
//! done). Both sides of a partition must be blocked for it to be symmetric, which is what
//! [`crate::cluster::Cluster::partition`] does.
//!
//! What a failed call means is kept exact, because the replication code decides between a
//! definite failure and an indeterminate answer on it: [`PeerError::NotSent`] (nothing reached
//! the peer), [`PeerError::Refused`] (the peer answered with an error: it did nothing) and
//! [`PeerError::Ambiguous`] (it may have been applied).

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;
use std::time::Duration;

/// Header naming the sending node on peer calls and forwarded requests.
pub const FROM_HEADER: &str = "x-testbed-from";
/// Header marking a forwarded client request (it is never forwarded again).
pub const FORWARDED_HEADER: &str = "x-testbed-forwarded";

/// Why a peer call produced no answer.
#[derive(Debug, Clone)]
pub enum PeerError {
    /// Nothing reached the peer (blocked, unknown peer, connection refused).
    NotSent(String),
    /// The peer answered with an error status: it did nothing.
    Refused { status: u16, body: Value },
    /// The request may have been applied (timeout, connection lost mid-request).
    Ambiguous(String),
}

impl std::fmt::Display for PeerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerError::NotSent(e) => write!(f, "not sent: {e}"),
            PeerError::Refused { status, body } => write!(f, "refused ({status}): {body}"),
            PeerError::Ambiguous(e) => write!(f, "ambiguous: {e}"),
        }
    }
}

/// Peers of one node.
pub struct Net {
    me: String,
    peers: BTreeMap<String, String>,
    http: reqwest::Client,
    blocked: RwLock<BTreeSet<String>>,
}

impl Net {
    pub fn new(me: &str, peers: &[(String, String)]) -> anyhow::Result<Net> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(500))
            .pool_max_idle_per_host(8)
            .build()?;
        Ok(Net {
            me: me.to_string(),
            peers: peers
                .iter()
                .map(|(n, a)| {
                    let base = if a.starts_with("http://") {
                        a.trim_end_matches('/').to_string()
                    } else {
                        format!("http://{a}")
                    };
                    (n.clone(), base)
                })
                .collect(),
            http,
            blocked: RwLock::new(BTreeSet::new()),
        })
    }

    pub fn peer_names(&self) -> Vec<String> {
        self.peers.keys().cloned().collect()
    }

    /// Replaces the set of peers this node cannot talk to.
    pub fn set_blocked(&self, peers: BTreeSet<String>) {
        *self.blocked.write().unwrap_or_else(|e| e.into_inner()) = peers;
    }

    pub fn blocked(&self) -> BTreeSet<String> {
        self.blocked
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn is_blocked(&self, peer: &str) -> bool {
        self.blocked
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(peer)
    }

    /// POSTs `body` to `path` on `peer`, bounded by `timeout`.
    pub async fn call(
        &self,
        peer: &str,
        path: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, PeerError> {
        self.send(peer, path, body, timeout, false).await
    }

    /// Forwards a client request to `peer` (marked so that it is not forwarded again).
    pub async fn forward(
        &self,
        peer: &str,
        path: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, PeerError> {
        self.send(peer, path, body, timeout, true).await
    }

    async fn send(
        &self,
        peer: &str,
        path: &str,
        body: &Value,
        timeout: Duration,
        forwarded: bool,
    ) -> Result<Value, PeerError> {
        let Some(base) = self.peers.get(peer) else {
            return Err(PeerError::NotSent(format!("unknown peer {peer:?}")));
        };
        if self.is_blocked(peer) {
            return Err(PeerError::NotSent(format!("{peer} is partitioned away")));
        }
        let mut req = self
            .http
            .post(format!("{base}{path}"))
            .header(FROM_HEADER, &self.me)
            .timeout(timeout)
            .json(body);
        if forwarded {
            req = req.header(FORWARDED_HEADER, "1");
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Err(PeerError::NotSent(e.to_string())),
            Err(e) => return Err(PeerError::Ambiguous(e.to_string())),
        };
        let status = resp.status().as_u16();
        let body: Value = match resp.json().await {
            Ok(v) => v,
            Err(e) => return Err(PeerError::Ambiguous(format!("unreadable answer: {e}"))),
        };
        if status == 200 {
            Ok(body)
        } else {
            Err(PeerError::Refused { status, body })
        }
    }
}
