//! Asking a running system who leads, each in its own words. Every query is bounded and treats a
//! node that does not answer as "not the leader": during an election or a partition the answer
//! is `None`, never a guess.

use std::time::Duration;

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{http_client, Cluster, LeaderQuery};

/// Longest one node may take to answer a leader query.
const QUERY_TIMEOUT_MS: u64 = 2_000;

pub(super) async fn find(c: &Cluster) -> Result<Option<String>> {
    match &c.system.leader {
        LeaderQuery::None => Ok(None),
        LeaderQuery::Fixed(n) => Ok(Some(n.clone())),
        LeaderQuery::EtcdStatus => etcd(c).await,
        LeaderQuery::RedisSentinel {
            master,
            sentinel_port,
        } => redis_sentinel(c, master, *sentinel_port).await,
        LeaderQuery::NatsJsz => nats(c).await,
        LeaderQuery::ZooKeeperSrvr => zookeeper(c).await,
        LeaderQuery::TestbedStatus => testbed(c).await,
        LeaderQuery::Http { port, path } => user_http(c, port, path).await,
        LeaderQuery::Command(cmd) => user_command(c, cmd).await,
    }
}

/// A user's HTTP leader query, asked of every node: the first line of each 2xx body.
async fn user_http(c: &Cluster, port: &str, path: &str) -> Result<Option<String>> {
    let mut answers = Vec::new();
    for n in c.node_names() {
        let Ok(addr) = c.host_addr(&n, port) else {
            continue;
        };
        let resp = http_client()
            .get(format!("http://{addr}{path}"))
            .timeout(Duration::from_millis(QUERY_TIMEOUT_MS))
            .send()
            .await;
        let Ok(resp) = resp else { continue };
        if !resp.status().is_success() {
            continue;
        }
        if let Ok(body) = resp.text().await {
            answers.push(body);
        }
    }
    Ok(majority_leader(&c.node_names(), &answers))
}

/// A user's command leader query, run in every node: the first line of each exit-0 output.
async fn user_command(c: &Cluster, cmd: &[String]) -> Result<Option<String>> {
    let argv: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let mut answers = Vec::new();
    for n in c.node_names() {
        let out = c
            .exec_timeout(&n, &argv, Duration::from_millis(QUERY_TIMEOUT_MS))
            .await;
        if let Ok(out) = out {
            if out.exit_code == 0 {
                answers.push(out.output);
            }
        }
    }
    Ok(majority_leader(&c.node_names(), &answers))
}

/// The node named by more than half of the answers that name a node (first line, trimmed);
/// `None` when they disagree or none names one: during an election that is the truth.
pub(super) fn majority_leader(nodes: &[String], answers: &[String]) -> Option<String> {
    let named: Vec<&str> = answers
        .iter()
        .filter_map(|a| a.lines().next().map(str::trim))
        .filter(|a| nodes.iter().any(|n| n == a))
        .collect();
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for a in &named {
        *counts.entry(a).or_default() += 1;
    }
    counts
        .into_iter()
        .find(|(_, k)| 2 * k > named.len())
        .map(|(n, _)| n.to_string())
}

/// The node whose own status says `leader == member_id` (ids are decimal strings in etcd's JSON).
async fn etcd(c: &Cluster) -> Result<Option<String>> {
    for n in c.node_names() {
        let status = node_json(c, &n, "client", "/v3/maintenance/status", Some("{}"));
        let Some(v) = status.await else {
            continue;
        };
        if etcd_status_is_leader(&v) {
            return Ok(Some(n));
        }
    }
    Ok(None)
}

pub(super) fn etcd_status_is_leader(v: &serde_json::Value) -> bool {
    let id = v["header"]["member_id"].as_str();
    let leader = v["leader"].as_str();
    id.is_some() && id == leader
}

/// Asks each sentinel in turn for the primary's address and maps it to a node (by name, or by
/// address on the run network).
async fn redis_sentinel(c: &Cluster, master: &str, port: u16) -> Result<Option<String>> {
    let port = port.to_string();
    for s in c.nodes_with_role("sentinel") {
        let Ok(out) = c
            .exec_timeout(
                &s,
                &[
                    "redis-cli",
                    "-p",
                    &port,
                    "sentinel",
                    "get-master-addr-by-name",
                    master,
                ],
                Duration::from_millis(QUERY_TIMEOUT_MS),
            )
            .await
        else {
            continue;
        };
        let Some(host) = out.output.lines().next().map(str::trim) else {
            continue;
        };
        if out.exit_code != 0 || host.is_empty() {
            continue;
        }
        if let Some(n) = node_by_host(c, host).await {
            return Ok(Some(n));
        }
    }
    Ok(None)
}

async fn node_by_host(c: &Cluster, host: &str) -> Option<String> {
    if c.node(host).is_ok() {
        return Some(host.to_string());
    }
    let ip: std::net::IpAddr = host.parse().ok()?;
    for n in c.node_names() {
        if c.ip(&n).await.ok() == Some(ip) {
            return Some(n);
        }
    }
    None
}

/// A node's JSON answer to `GET path` (or `POST` of `post_body`) on its published `port`,
/// within the query timeout; `None` when the node does not answer (it may be down or cut off:
/// ask the next one).
async fn node_json(
    c: &Cluster,
    node: &str,
    port: &str,
    path: &str,
    post_body: Option<&str>,
) -> Option<serde_json::Value> {
    let addr = c.host_addr(node, port).ok()?;
    let url = format!("http://{addr}{path}");
    let request = match post_body {
        Some(body) => http_client().post(url).body(body.to_string()),
        None => http_client().get(url),
    };
    let resp = request
        .timeout(Duration::from_millis(QUERY_TIMEOUT_MS))
        .send()
        .await
        .ok()?;
    resp.json().await.ok()
}

/// The JetStream meta leader as any server reports it in `/jsz`.
async fn nats(c: &Cluster) -> Result<Option<String>> {
    for n in c.node_names() {
        let Some(v) = node_json(c, &n, "monitor", "/jsz", None).await else {
            continue;
        };
        if let Some(leader) = v["meta_cluster"]["leader"].as_str() {
            if c.node(leader).is_ok() {
                return Ok(Some(leader.to_string()));
            }
        }
    }
    Ok(None)
}

/// The testbed node that says it is primary; after a partition a deposed primary may still say
/// so for a moment, so the highest epoch wins.
async fn testbed(c: &Cluster) -> Result<Option<String>> {
    let mut best: Option<(u64, String)> = None;
    for n in c.node_names() {
        let Some(v) = node_json(c, &n, "client", "/status", None).await else {
            continue;
        };
        if v["kv"]["role"] != "primary" {
            continue;
        }
        let epoch = v["kv"]["epoch"].as_u64().unwrap_or(0);
        if best.as_ref().is_none_or(|(e, _)| epoch > *e) {
            best = Some((epoch, n));
        }
    }
    Ok(best.map(|(_, n)| n))
}

/// The node whose `srvr` answer says `Mode: leader`.
async fn zookeeper(c: &Cluster) -> Result<Option<String>> {
    for n in c.node_names() {
        let Ok(addr) = c.host_addr(&n, "client") else {
            continue;
        };
        let ask = async {
            let mut s = tokio::net::TcpStream::connect(addr).await?;
            s.write_all(b"srvr").await?;
            let mut out = String::new();
            s.take(64 * 1024).read_to_string(&mut out).await?;
            Ok::<String, std::io::Error>(out)
        };
        if let Ok(Ok(out)) =
            tokio::time::timeout(Duration::from_millis(QUERY_TIMEOUT_MS), ask).await
        {
            if out.lines().any(|l| l.trim() == "Mode: leader") {
                return Ok(Some(n));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_leader_query_needs_a_majority_of_the_answers_naming_a_node() {
        let nodes: Vec<String> = ["n1", "n2", "n3"].iter().map(|s| s.to_string()).collect();
        let answers = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            majority_leader(&nodes, &answers(&["n2\n", "n2", "n1"])),
            Some("n2".into())
        );
        assert_eq!(majority_leader(&nodes, &answers(&["n2", "n1"])), None);
        assert_eq!(
            majority_leader(&nodes, &answers(&["n3", "unknown", ""])),
            Some("n3".into())
        );
        assert_eq!(majority_leader(&nodes, &answers(&[])), None);
    }

    #[test]
    fn an_etcd_member_leads_when_its_id_is_the_leader_id() {
        let leader: serde_json::Value = serde_json::from_str(
            r#"{"header":{"member_id":"123","raft_term":"2"},"leader":"123"}"#,
        )
        .unwrap();
        let follower: serde_json::Value =
            serde_json::from_str(r#"{"header":{"member_id":"456"},"leader":"123"}"#).unwrap();
        let no_leader: serde_json::Value =
            serde_json::from_str(r#"{"header":{"member_id":"456"}}"#).unwrap();
        assert!(etcd_status_is_leader(&leader));
        assert!(!etcd_status_is_leader(&follower));
        assert!(!etcd_status_is_leader(&no_leader));
    }
}
