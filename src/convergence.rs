//! The convergence check (docs/scenarios.md L5, L12): once the final heal is done and the
//! workload has stopped, every node's own copy of the data is read directly, and a replica that
//! disagrees with the others is an anomaly naming the node, the key and both values.
//!
//! Design decisions:
//! - The reads go through the workload's client factory
//!   ([`workloads::ClientFactory::replica_snapshot`]): only the client knows how to ask one node
//!   for its own data without being forwarded to a leader. A system without such a read is not
//!   checked (no result at all, rather than a `valid` that proves nothing).
//! - "Once quiescent" is a bounded wait, not a single read: replicas catch up after the heal at
//!   their own pace, so the nodes are read again every [`POLL_MS`] until they agree or
//!   [`WAIT_MS_MAX`] passed; only the last reading is judged. A replica that still disagrees
//!   then is not converging.
//! - The readings are written to the run folder (`convergence.json`) before they are judged,
//!   and the verdict is computed from that file: like the history, the evidence can be judged
//!   again later, and nothing downstream of it talks to the cluster.
//! - The reference value of a key is the one most nodes hold (the first node's on a tie); each
//!   node holding something else is one anomaly. A key one node lacks is a disagreement too
//!   (`null` against the value).
//! - A node that cannot be read makes the verdict `unknown` unless the nodes that were read
//!   already disagree (then `invalid`): agreement among some nodes proves nothing about the
//!   others.

use crate::cluster::Cluster;
use anyhow::{Context, Result};
use checkers::stream::AnomalyKind;
use checkers::{Anomaly, CheckResult};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use workloads::ClientFactory;

// The checker's name and its anomaly kinds live in `checkers`, so that reports find each kind's
// meaning with every other checker's (`checkers::kind_meaning`).
pub use checkers::convergence::{Kind, CHECKER};

/// The file in the run folder.
pub const FILE: &str = "convergence.json";
/// Pause between two readings of every node.
pub const POLL_MS: u64 = 500;
/// How long the nodes may take to agree after the final phase.
pub const WAIT_MS_MAX: u64 = 15_000;
/// Anomalies listed at most (the summary counts all).
pub const ANOMALIES_MAX: usize = 50;

/// The last reading of every node.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Readings {
    /// Node name -> key -> value.
    pub nodes: BTreeMap<String, BTreeMap<String, Value>>,
    /// Node name -> why it could not be read.
    #[serde(default)]
    pub unreadable: BTreeMap<String, String>,
    /// Rounds of reads done, and the time they took.
    pub rounds: u32,
    pub waited_ms: u64,
}

/// Reads every node with a client port until they agree or [`WAIT_MS_MAX`] passed, and writes
/// the last reading to `run_dir/convergence.json`. `Ok(None)`: the workload has no per-node
/// read.
pub async fn record(
    factory: &dyn ClientFactory,
    cluster: &Cluster,
    run_dir: &Path,
) -> Result<Option<Readings>> {
    record_nodes(factory, &client_nodes(cluster), run_dir).await
}

/// Whether the workload has a per-node read on this cluster: asks the first node once. A node
/// that cannot be read right now (killed by the nemesis) counts as yes: only the client's
/// "no such read" (`Ok(None)`) is a no.
pub async fn supported(factory: &dyn ClientFactory, cluster: &Cluster) -> bool {
    match client_nodes(cluster).first() {
        Some((_, addr)) => !matches!(factory.replica_snapshot(addr).await, Ok(None)),
        None => false,
    }
}

/// [`record`] for `nodes` given as (name, client address).
pub async fn record_nodes(
    factory: &dyn ClientFactory,
    nodes: &[(String, String)],
    run_dir: &Path,
) -> Result<Option<Readings>> {
    let Some((_, addr)) = nodes.first() else {
        return Ok(None);
    };
    if let Ok(None) = factory.replica_snapshot(addr).await {
        return Ok(None);
    }
    let started = Instant::now();
    let rounds_max = (WAIT_MS_MAX / POLL_MS) as u32 + 1;
    let mut readings = Readings::default();
    for round in 1..=rounds_max {
        readings = read_all(factory, nodes).await;
        readings.rounds = round;
        if readings.unreadable.is_empty() && diverged(&readings).is_empty() {
            break;
        }
        if round < rounds_max {
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
    }
    readings.waited_ms = started.elapsed().as_millis() as u64;
    let text = serde_json::to_string_pretty(&readings)?;
    std::fs::write(run_dir.join(FILE), text)
        .with_context(|| format!("writing {}", run_dir.join(FILE).display()))?;
    Ok(Some(readings))
}

/// (node name, client address) of every node with a client port.
fn client_nodes(cluster: &Cluster) -> Vec<(String, String)> {
    cluster
        .nodes()
        .iter()
        .filter_map(|n| {
            n.ports
                .get("client")
                .map(|(_, host)| (n.name.clone(), format!("127.0.0.1:{host}")))
        })
        .collect()
}

async fn read_all(factory: &dyn ClientFactory, nodes: &[(String, String)]) -> Readings {
    let mut r = Readings::default();
    for (name, addr) in nodes {
        match factory.replica_snapshot(addr).await {
            Ok(Some(data)) => {
                r.nodes.insert(name.clone(), data);
            }
            Ok(None) => {
                r.unreadable
                    .insert(name.clone(), "no per-node read".to_string());
            }
            Err(e) => {
                r.unreadable.insert(name.clone(), format!("{e:#}"));
            }
        }
    }
    r
}

/// The check of a run folder's `convergence.json`; `None` when the run has none.
pub fn result(run_dir: &Path) -> Option<CheckResult> {
    let path = run_dir.join(FILE);
    let text = std::fs::read_to_string(&path).ok()?;
    Some(match serde_json::from_str::<Readings>(&text) {
        Ok(r) => check(&r),
        Err(e) => CheckResult::unknown(CHECKER, format!("{}: {e}", path.display())),
    })
}

/// One disagreement: `node` holds `value` for `key` where the others hold `reference`.
#[derive(Debug, Clone, PartialEq)]
struct Divergence {
    node: String,
    key: String,
    value: Value,
    reference: Value,
    agreeing: Vec<String>,
}

fn diverged(r: &Readings) -> Vec<Divergence> {
    let mut keys: Vec<&String> = r.nodes.values().flat_map(|m| m.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = Vec::new();
    for key in keys {
        let held: Vec<(&String, &Value)> = r
            .nodes
            .iter()
            .map(|(n, m)| (n, m.get(key).unwrap_or(&Value::Null)))
            .collect();
        // The value most nodes hold; the first node's on a tie (nodes are in name order).
        let reference = held
            .iter()
            .map(|(_, v)| *v)
            .max_by_key(|v| {
                let count = held.iter().filter(|(_, w)| w == v).count();
                let first = held.iter().position(|(_, w)| w == v).unwrap_or(0);
                (count, std::cmp::Reverse(first))
            })
            .expect("at least one node was read");
        let agreeing: Vec<String> = held
            .iter()
            .filter(|(_, v)| *v == reference)
            .map(|(n, _)| (*n).clone())
            .collect();
        for (node, value) in &held {
            if *value != reference {
                out.push(Divergence {
                    node: (*node).clone(),
                    key: key.clone(),
                    value: (*value).clone(),
                    reference: reference.clone(),
                    agreeing: agreeing.clone(),
                });
            }
        }
    }
    out
}

/// The verdict on one reading (module doc).
pub fn check(r: &Readings) -> CheckResult {
    let found = diverged(r);
    let read = r.nodes.len();
    let keys: usize = {
        let mut k: Vec<&String> = r.nodes.values().flat_map(|m| m.keys()).collect();
        k.sort();
        k.dedup();
        k.len()
    };
    let after = format!(
        "after the final heal, {} rounds of reads over {:.1} s",
        r.rounds,
        r.waited_ms as f64 / 1e3
    );
    let mut result = if !found.is_empty() {
        let anomalies = found
            .iter()
            .take(ANOMALIES_MAX)
            .map(|d| Anomaly {
                kind: Kind::Diverged.name().into(),
                ops: vec![],
                explanation: format!(
                    "once quiescent, {} holds {} = {} while {} hold{} {}",
                    d.node,
                    d.key,
                    d.value,
                    d.agreeing.join(", "),
                    if d.agreeing.len() == 1 { "s" } else { "" },
                    d.reference
                ),
                data: json!({
                    "node": d.node, "key": d.key, "value": d.value,
                    "others_value": d.reference, "others": d.agreeing,
                }),
            })
            .collect();
        CheckResult::invalid(
            CHECKER,
            format!(
                "replicas did not converge: {} disagreements over {keys} keys on {read} nodes ({after})",
                found.len()
            ),
            anomalies,
        )
    } else if !r.unreadable.is_empty() || read < 2 {
        let why: Vec<String> = r
            .unreadable
            .iter()
            .map(|(n, e)| format!("{n}: {e}"))
            .collect();
        CheckResult::unknown(
            CHECKER,
            format!(
                "{read} nodes read, which agree, but convergence needs every node and at least two ({after}); not read: {}",
                if why.is_empty() { "-".to_string() } else { why.join("; ") }
            ),
        )
    } else {
        CheckResult::valid(
            CHECKER,
            format!(
                "every replica holds the same values for {keys} keys on {read} nodes ({after})"
            ),
        )
    };
    result.details = json!({
        "nodes_read": read, "keys": keys, "rounds": r.rounds, "waited_ms": r.waited_ms,
        "unreadable": r.unreadable,
    });
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use checkers::Verdict;

    /// Readings from `(node, [(key, value)])`.
    fn readings(nodes: &[(&str, &[(&str, Value)])]) -> Readings {
        Readings {
            nodes: nodes
                .iter()
                .map(|(n, kv)| {
                    let m = kv.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
                    (n.to_string(), m)
                })
                .collect(),
            rounds: 1,
            ..Readings::default()
        }
    }

    #[test]
    fn replicas_that_agree_are_valid() {
        let kv: &[(&str, Value)] = &[("r1", json!(3)), ("r2", json!(null))];
        let r = check(&readings(&[("n1", kv), ("n2", kv), ("n3", kv)]));
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.summary);
        assert!(r.summary.contains("2 keys on 3 nodes"), "{}", r.summary);
    }

    #[test]
    fn a_replica_with_another_value_is_named_with_the_key_and_both_values() {
        let good: &[(&str, Value)] = &[("r1", json!(3)), ("r2", json!(5))];
        let bad: &[(&str, Value)] = &[("r1", json!(3)), ("r2", json!(4))];
        let r = check(&readings(&[("n1", good), ("n2", good), ("n3", bad)]));
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(r.anomalies.len(), 1);
        let a = &r.anomalies[0];
        assert_eq!(a.kind, "diverged");
        assert_eq!(
            a.explanation,
            "once quiescent, n3 holds r2 = 4 while n1, n2 hold 5"
        );
        assert_eq!(a.data["others_value"], json!(5));
    }

    #[test]
    fn a_key_one_replica_lacks_is_a_divergence() {
        let full: &[(&str, Value)] = &[("r1", json!(1))];
        let r = check(&readings(&[("n1", full), ("n2", &[]), ("n3", full)]));
        assert_eq!(r.verdict, Verdict::Invalid);
        assert!(r.anomalies[0].explanation.contains("n2 holds r1 = null"));
    }

    #[test]
    fn an_unread_node_makes_agreement_unknown_but_not_a_divergence() {
        let kv: &[(&str, Value)] = &[("r1", json!(1))];
        let mut rd = readings(&[("n1", kv), ("n2", kv)]);
        rd.unreadable
            .insert("n3".into(), "connection refused".into());
        let r = check(&rd);
        assert_eq!(r.verdict, Verdict::Unknown);
        assert!(
            r.summary.contains("n3: connection refused"),
            "{}",
            r.summary
        );
        let other: &[(&str, Value)] = &[("r1", json!(2))];
        let mut rd = readings(&[("n1", kv), ("n2", other)]);
        rd.unreadable.insert("n3".into(), "refused".into());
        assert_eq!(check(&rd).verdict, Verdict::Invalid);
    }

    #[test]
    fn the_file_round_trips_and_a_bad_one_is_unknown_naming_it() {
        let dir =
            std::env::temp_dir().join(format!("faultline-convergence-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let dir = Dir(dir);
        assert!(result(dir.path()).is_none(), "no file, no result");
        let kv: &[(&str, Value)] = &[("r1", json!(1))];
        let rd = readings(&[("n1", kv), ("n2", kv)]);
        std::fs::write(dir.path().join(FILE), serde_json::to_string(&rd).unwrap()).unwrap();
        assert_eq!(result(dir.path()).unwrap().verdict, Verdict::Valid);
        std::fs::write(dir.path().join(FILE), "{").unwrap();
        let r = result(dir.path()).unwrap();
        assert_eq!(r.verdict, Verdict::Unknown);
        assert!(r.summary.contains(FILE), "{}", r.summary);
    }

    /// A folder removed when the test ends.
    struct Dir(std::path::PathBuf);
    impl Dir {
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
