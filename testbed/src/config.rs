//! What a node is told at start: who it is, who its peers are, which bugs are on, and the
//! timings every bounded wait derives from.
//!
//! Bugs are a closed enum rather than free-form strings so that a plan naming a bug that does
//! not exist fails at start with the list of names, and so that each bug carries the scenario it
//! reproduces (docs/scenarios.md id) and the checker that must flag it: the calibration table and the
//! docs are generated from this one list.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// A switchable bug. With none switched on the server is correct.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bug {
    StaleEpochWrite,
    LostAckedWrite,
    ReplicaDivergence,
    DoubleDeliveryOnTimeout,
    RetryBudgetIgnored,
    OrphanPartition,
    OffsetRegression,
    ConcurrentProducerGap,
    OutboxLoseOnCrash,
    OutboxRedeliverBatch,
    OutboxDropAfterCommit,
    IdempotencyRace,
    DuplicateMember,
    DoubleLeave,
    DoubleCreate,
    VersionRace,
    NoFencing,
}

/// One row of the bug table: the switch, the scenario ids it reproduces, the checker (and the
/// anomaly kind) that flags it, and what the code does wrong.
#[derive(Debug, Clone, Copy)]
pub struct BugInfo {
    pub bug: Bug,
    pub name: &'static str,
    pub scenarios: &'static str,
    pub checker: &'static str,
    pub anomaly: &'static str,
    pub what: &'static str,
}

/// Every bug, in the order `--list-bugs` prints them.
pub const BUGS: &[BugInfo] = &[
    BugInfo {
        bug: Bug::DoubleDeliveryOnTimeout,
        name: "double-delivery-on-timeout",
        scenarios: "B1",
        checker: "delivery",
        anomaly: "double-committed",
        what: "an ack is accepted from any consumer the message was ever delivered to, even after its lease expired and another consumer took it",
    },
    BugInfo {
        bug: Bug::StaleEpochWrite,
        name: "stale-epoch-write",
        scenarios: "B2",
        checker: "linearizable",
        anomaly: "nonlinearizable",
        what: "backups accept replication from any epoch and a deposed primary keeps retrying the write it started, so it completes after a new primary took over",
    },
    BugInfo {
        bug: Bug::RetryBudgetIgnored,
        name: "retry-budget-ignored",
        scenarios: "B3",
        checker: "delivery --max-retries N",
        anomaly: "retries-exceeded",
        what: "a message that exhausted its delivery budget is redelivered instead of dead-lettered",
    },
    BugInfo {
        bug: Bug::OutboxLoseOnCrash,
        name: "outbox-lose-on-crash",
        scenarios: "B4",
        checker: "delivery",
        anomaly: "lost",
        what: "the dispatcher marks a batch dispatched before publishing it; a crash in between loses the batch",
    },
    BugInfo {
        bug: Bug::DoubleCreate,
        name: "double-create",
        scenarios: "B5",
        checker: "unique",
        anomaly: "duplicate-create",
        what: "create checks for the id, writes, then inserts without re-checking: concurrent creates both succeed",
    },
    BugInfo {
        bug: Bug::OrphanPartition,
        name: "orphan-partition",
        scenarios: "B6",
        checker: "delivery",
        anomaly: "lost",
        what: "incremental rebalancing on join drops partitions revoked from existing members; nobody owns them again",
    },
    BugInfo {
        bug: Bug::OutboxRedeliverBatch,
        name: "outbox-redeliver-batch",
        scenarios: "B7",
        checker: "delivery",
        anomaly: "duplicated",
        what: "the dispatcher marks rows only after a whole batch publishes; a failure midway makes the retry re-send the events that had succeeded",
    },
    BugInfo {
        bug: Bug::ConcurrentProducerGap,
        name: "concurrent-producer-gap",
        scenarios: "L2",
        checker: "delivery",
        anomaly: "offset-gap",
        what: "an append that finds another producer queued behind it advances the offset counter twice",
    },
    BugInfo {
        bug: Bug::LostAckedWrite,
        name: "lost-acked-write",
        scenarios: "L4, L7",
        checker: "linearizable",
        anomaly: "nonlinearizable",
        what: "the primary acknowledges a write when it applied it locally, then persists and replicates it later in the background",
    },
    BugInfo {
        bug: Bug::ReplicaDivergence,
        name: "replica-divergence",
        scenarios: "L5, L12",
        checker: "convergence",
        anomaly: "diverged",
        what: "the last node by name acknowledges every third replicated write and every catch-up without applying them, so its replica keeps older values for good",
    },
    BugInfo {
        bug: Bug::OffsetRegression,
        name: "offset-regression",
        scenarios: "L9",
        checker: "delivery",
        anomaly: "offset-regression",
        what: "offset commits are accepted from any consumer at any offset: a zombie consumer's late commit moves the group's offset back",
    },
    BugInfo {
        bug: Bug::IdempotencyRace,
        name: "idempotency-race",
        scenarios: "I1",
        checker: "idempotency",
        anomaly: "multiple-effects",
        what: "the idempotency key is checked, the effect performed, and only then the key stored: concurrent identical requests each take effect",
    },
    BugInfo {
        bug: Bug::DuplicateMember,
        name: "duplicate-member",
        scenarios: "I2",
        checker: "set",
        anomaly: "duplicate",
        what: "adding a member checks membership, writes, then appends without re-checking: the list holds the member twice",
    },
    BugInfo {
        bug: Bug::DoubleLeave,
        name: "double-leave",
        scenarios: "I4",
        checker: "idempotency",
        anomaly: "multiple-effects",
        what: "a leave checks membership, writes, then records a state change without re-checking: concurrent leaves each change state",
    },
    BugInfo {
        bug: Bug::VersionRace,
        name: "version-race",
        scenarios: "I6",
        checker: "versioned-append",
        anomaly: "multiple-winners",
        what: "an append checks the expected version, writes, then appends without re-checking: racing appends at one version all win",
    },
    BugInfo {
        bug: Bug::NoFencing,
        name: "no-fencing",
        scenarios: "I7",
        checker: "idempotency",
        anomaly: "multiple-effects",
        what: "a task completion is accepted whatever its lease token: an expired holder's late completion takes effect after the new holder's",
    },
    BugInfo {
        bug: Bug::OutboxDropAfterCommit,
        name: "outbox-drop-after-commit",
        scenarios: "I8",
        checker: "delivery",
        anomaly: "lost",
        what: "when publishing an outbox row fails, the row is deleted instead of kept for the next attempt",
    },
];

impl Bug {
    pub fn info(self) -> &'static BugInfo {
        BUGS.iter()
            .find(|b| b.bug == self)
            .expect("every bug has a row in BUGS")
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Every bug name, for error messages and `--help`.
    pub fn names() -> Vec<&'static str> {
        BUGS.iter().map(|b| b.name).collect()
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Bug {
    type Err = String;
    fn from_str(s: &str) -> Result<Bug, String> {
        BUGS.iter()
            .find(|b| b.name == s)
            .map(|b| b.bug)
            .ok_or_else(|| {
                format!(
                    "unknown bug {s:?}; expected one of: {}",
                    Bug::names().join(", ")
                )
            })
    }
}

/// Timings and sizes. Every wait, retry loop and queue in the server is bounded by one of these.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Primary lease: a backup that has not heard from the primary for this long starts an
    /// election (after a delay that grows with its rank, so the lowest name usually wins).
    pub lease: Duration,
    /// A write not replicated to a majority within this is answered as indeterminate.
    pub write_timeout: Duration,
    /// Pause between replication attempts to peers that did not answer.
    pub retry_interval: Duration,
    /// Bound on one peer call.
    pub peer_timeout: Duration,
    /// With `lost-acked-write`: how long after the ack the write is persisted and replicated.
    pub async_replication_delay: Duration,
    /// A consumer-group member that has not consumed for this long is removed.
    pub session: Duration,
    /// How long a delivered message stays leased to its consumer.
    pub message_lease: Duration,
    /// Deliveries allowed after the first before a message is dead-lettered.
    pub max_retries: u32,
    /// Partitions per topic.
    pub partitions: u32,
    /// Most messages one consume returns.
    pub consume_max: usize,
    /// How long a task lease (fencing endpoint) lasts.
    pub task_lease: Duration,
    /// Simulated storage latency of every persisted change (the window every check-then-act
    /// race needs; also paid by the correct code, which holds its lock across it).
    pub storage_latency: Duration,
    /// Outbox dispatcher: pause between polls of the outbox.
    pub dispatch_interval: Duration,
    /// Outbox dispatcher: time between taking a batch and publishing it.
    pub dispatch_step: Duration,
    /// Outbox dispatcher: rows per batch.
    pub dispatch_batch: usize,
    /// Failpoint: every Nth publish attempt of the dispatcher fails (0 = never).
    pub dispatch_fail_every: u64,
    /// Bound on the entries kept by every growing table (messages, keys, rows, members ...):
    /// a request that would exceed it is refused with `full`.
    pub entries_max: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            lease: Duration::from_millis(1000),
            write_timeout: Duration::from_millis(2000),
            retry_interval: Duration::from_millis(50),
            peer_timeout: Duration::from_millis(500),
            async_replication_delay: Duration::from_millis(300),
            session: Duration::from_millis(1500),
            message_lease: Duration::from_millis(1000),
            max_retries: 3,
            partitions: 4,
            consume_max: 10,
            task_lease: Duration::from_millis(1000),
            storage_latency: Duration::from_millis(2),
            dispatch_interval: Duration::from_millis(20),
            dispatch_step: Duration::from_millis(50),
            dispatch_batch: 5,
            dispatch_fail_every: 0,
            entries_max: 1_000_000,
        }
    }
}

impl Settings {
    /// Heartbeats go out four times per lease.
    pub fn heartbeat_interval(&self) -> Duration {
        (self.lease / 4).max(Duration::from_millis(5))
    }
}

/// Everything one node needs.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub name: String,
    pub listen: SocketAddr,
    /// Other nodes: name and address (`host:port`).
    pub peers: Vec<(String, String)>,
    pub bugs: BTreeSet<Bug>,
    /// Where the write-ahead log lives; `None` keeps everything in memory only.
    pub data_dir: Option<PathBuf>,
    /// The node that owns the queue, outbox and request services; `None` = the lowest name.
    pub home: Option<String>,
    pub settings: Settings,
}

impl NodeConfig {
    pub fn new(name: impl Into<String>, listen: SocketAddr) -> NodeConfig {
        NodeConfig {
            name: name.into(),
            listen,
            peers: Vec::new(),
            bugs: BTreeSet::new(),
            data_dir: None,
            home: None,
            settings: Settings::default(),
        }
    }

    pub fn has(&self, bug: Bug) -> bool {
        self.bugs.contains(&bug)
    }

    /// Every node's name, sorted.
    pub fn cluster_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.peers.iter().map(|(n, _)| n.clone()).collect();
        names.push(self.name.clone());
        names.sort();
        names
    }

    /// The home node of the single-owner services.
    pub fn home_name(&self) -> String {
        self.home
            .clone()
            .unwrap_or_else(|| self.cluster_names().into_iter().next().expect("self"))
    }

    /// Votes or acknowledgements needed out of the whole cluster.
    pub fn majority(&self) -> usize {
        let nodes = self.peers.len() + 1;
        nodes / 2 + 1
    }

    /// Checks what the command line cannot: names unique, self not among the peers, home known.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() {
            return Err("--node must not be empty".into());
        }
        let names = self.cluster_names();
        let mut dedup = names.clone();
        dedup.dedup();
        if dedup.len() != names.len() {
            return Err(format!(
                "--peers: node names must be unique and must not include this node ({}); got {}",
                self.name,
                names.join(", ")
            ));
        }
        if let Some(h) = &self.home {
            if !names.contains(h) {
                return Err(format!(
                    "--home {h:?} is not a node of the cluster ({})",
                    names.join(", ")
                ));
            }
        }
        let s = &self.settings;
        if s.partitions == 0 || s.consume_max == 0 || s.dispatch_batch == 0 || s.entries_max == 0 {
            return Err(
                "--partitions, --consume-max, --dispatch-batch and --entries-max must be at least 1"
                    .into(),
            );
        }
        if s.lease.is_zero() || s.session.is_zero() || s.message_lease.is_zero() {
            return Err("--lease-ms, --session-ms and --message-lease-ms must be positive".into());
        }
        Ok(())
    }
}

/// Parses `--peers n2=10.0.0.2:7000,n3=n3:7000` (an empty string means no peers).
pub fn parse_peers(s: &str) -> Result<Vec<(String, String)>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, addr) = p
                .split_once('=')
                .ok_or_else(|| format!("--peers: {p:?} is not NAME=HOST:PORT (e.g. n2=n2:7000)"))?;
            if name.is_empty() || !addr.contains(':') {
                return Err(format!(
                    "--peers: {p:?} is not NAME=HOST:PORT (e.g. n2=n2:7000)"
                ));
            }
            Ok((name.to_string(), addr.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bug_has_one_row_and_parses_back() {
        for b in BUGS {
            assert_eq!(b.name.parse::<Bug>(), Ok(b.bug));
            assert_eq!(b.bug.info().name, b.name);
        }
        let err = "no-such-bug".parse::<Bug>().unwrap_err();
        assert!(err.contains("double-create"), "{err}");
    }

    #[test]
    fn peers_parse_and_bad_entries_name_themselves() {
        assert_eq!(
            parse_peers("n2=a:1, n3=b:2").unwrap(),
            vec![("n2".into(), "a:1".into()), ("n3".into(), "b:2".into())]
        );
        assert_eq!(parse_peers("").unwrap(), vec![]);
        assert!(parse_peers("n2").unwrap_err().contains("\"n2\""));
    }

    #[test]
    fn majority_and_home() {
        let mut c = NodeConfig::new("n2", "127.0.0.1:1".parse().unwrap());
        c.peers = parse_peers("n1=a:1,n3=b:1").unwrap();
        assert_eq!(c.majority(), 2);
        assert_eq!(c.home_name(), "n1");
        c.peers.push(("n2".into(), "c:1".into()));
        assert!(c.validate().is_err());
    }
}
