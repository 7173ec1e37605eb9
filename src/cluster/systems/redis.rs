//! Redis 7 with Sentinel: `n1` starts as primary, `n2..nN` as its replicas, and `s1..s3` are
//! sentinels that watch the primary under the name `mymaster` and fail over with a quorum of 2.
//! Data nodes use AOF (fsync every second, Redis's default trade-off), replicas announce their
//! names so sentinels report names, not addresses. Ready means: data nodes answer, replicas have
//! an up link to the primary, and each sentinel sees a usable quorum (`SENTINEL CKQUORUM`) and
//! knows every replica (else the first failover may abort for want of one).
//!
//! With `SystemParams::distinct_peer_ports` (redirected proxy links, see `cluster::links`),
//! every node, data or sentinel, also answers on a peer port of its own (`6379 + k` for `nk`,
//! `26379 + k` for `sk`): an iptables REDIRECT in its container sends that port to the real one,
//! and the node announces it (`replica-announce-port`, `sentinel announce-port`, the monitored
//! primary's address), so every node-to-node connection, including those Sentinel opens after a
//! failover, is dialed at a port that names its target. Clients, probes and `redis-cli` inside
//! the containers keep using the real ports.

use std::time::Duration;

use super::{data_dir, node_names, peer_port};
use crate::cluster::system::{
    LeaderQuery, NodeFile, NodeSpec, PortSpec, Probe, System, SystemParams, DEFAULT_PROBE_INTERVAL,
};

pub const PORT: u16 = 6379;
pub const SENTINEL_PORT: u16 = 26379;
pub const MASTER_NAME: &str = "mymaster";
pub const SENTINELS: usize = 3;

pub fn system(params: &SystemParams) -> System {
    let names = node_names(params.nodes.unwrap_or(3));
    let primary = names[0].clone();
    let mut nodes = vec![];
    for name in &names {
        let dir = data_dir(name);
        let own_peer_port = peer_port(params, name, PORT);
        let mut conf = format!(
            "bind 0.0.0.0\nprotected-mode no\nport {PORT}\ndir {dir}\nlogfile \"\"\ndaemonize no\n\
             appendonly yes\nappendfsync everysec\nreplica-announce-ip {name}\n\
             replica-announce-port {own_peer_port}\n"
        );
        let replica = *name != primary;
        if replica {
            let (host, port) = params.dial(name, &primary, peer_port(params, &primary, PORT));
            conf.push_str(&format!("replicaof {host} {port}\n"));
        }
        // A replica is ready when its link to a primary is up, or when Sentinel promoted it
        // (after a failover the roles differ from the start, and a heal waits for this probe).
        let probe = if replica {
            Probe::exec(&[
                "sh",
                "-c",
                "redis-cli -p 6379 info replication | grep -qE 'role:master|master_link_status:up'",
            ])
        } else {
            Probe::exec_expect(&["redis-cli", "-p", "6379", "ping"], "PONG")
        };
        nodes.push(NodeSpec {
            name: name.clone(),
            role: if replica { "replica" } else { "primary" }.into(),
            cmd: with_peer_port(
                own_peer_port,
                PORT,
                &["redis-server", "/etc/faultline/redis.conf"],
            ),
            env: vec![],
            data_dir: dir,
            files: vec![NodeFile::text("/etc/faultline/redis.conf", conf)],
            ports: ports("client", PORT, own_peer_port),
            probe,
            log_files: vec![],
        });
    }
    for i in 1..=SENTINELS {
        let name = format!("s{i}");
        let dir = data_dir(&name);
        let (host, port) = params.dial(&name, &primary, peer_port(params, &primary, PORT));
        let own_peer_port = peer_port(params, &name, SENTINEL_PORT);
        let conf = format!(
            "port {SENTINEL_PORT}\nbind 0.0.0.0\nprotected-mode no\ndir {dir}\nlogfile \"\"\n\
             sentinel resolve-hostnames yes\nsentinel announce-hostnames yes\n\
             sentinel announce-ip {name}\nsentinel announce-port {own_peer_port}\n\
             sentinel monitor {MASTER_NAME} {host} {port} 2\n\
             sentinel down-after-milliseconds {MASTER_NAME} 5000\n\
             sentinel failover-timeout {MASTER_NAME} 10000\n\
             sentinel parallel-syncs {MASTER_NAME} 1\n"
        );
        nodes.push(NodeSpec {
            name: name.clone(),
            role: "sentinel".into(),
            cmd: with_peer_port(
                own_peer_port,
                SENTINEL_PORT,
                &["redis-sentinel", "/etc/faultline/sentinel.conf"],
            ),
            env: vec![],
            data_dir: dir,
            // Sentinel rewrites its config file as it learns; it lives in the container.
            files: vec![NodeFile::text("/etc/faultline/sentinel.conf", conf)],
            ports: ports("sentinel", SENTINEL_PORT, own_peer_port),
            // A quorum is not enough: a sentinel learns the replicas from the primary's INFO,
            // which it asks for every 10 s, and one that won an election without knowing them
            // aborts the failover ("no good slave") and waits 20 s to try again.
            probe: Probe::exec(&[
                "sh",
                "-c",
                &format!(
                    "redis-cli -p {SENTINEL_PORT} sentinel ckquorum {MASTER_NAME} | grep -q '^OK' && \
                     redis-cli -p {SENTINEL_PORT} sentinel master {MASTER_NAME} | grep -x -A1 num-slaves | tail -n1 | grep -qx {}",
                    names.len() - 1
                ),
            ]),
            log_files: vec![],
        });
    }
    System {
        name: workloads::BuiltinCluster::Redis.name().into(),
        image: params.image(),
        nodes,
        ready_timeout: Duration::from_secs(40),
        probe_interval: DEFAULT_PROBE_INTERVAL,
        leader: LeaderQuery::RedisSentinel {
            master: MASTER_NAME.into(),
            sentinel_port: SENTINEL_PORT,
        },
    }
}

/// The node's ports: its real one under `name`, and its own peer port (see the module docs)
/// when it has one.
fn ports(name: &str, port: u16, peer_port: u16) -> Vec<PortSpec> {
    let mut out = vec![PortSpec {
        name: name.into(),
        container_port: port,
    }];
    if peer_port != port {
        out.push(PortSpec {
            name: "peer".into(),
            container_port: peer_port,
        });
    }
    out
}

/// `cmd`, preceded when the node has a peer port of its own by the iptables rule that sends
/// connections to that port to `port` (the container's network namespace is new at every
/// start, so the rule is installed again at every start).
fn with_peer_port(peer_port: u16, port: u16, cmd: &[&str]) -> Vec<String> {
    if peer_port == port {
        return cmd.iter().map(|s| s.to_string()).collect();
    }
    let mut out = super::shell(&format!(
        "iptables -t nat -A PREROUTING -p tcp --dport {peer_port} -j REDIRECT --to-ports {port} \
         || exit 1; exec \"$@\""
    ));
    out.push("redis".into());
    out.extend(cmd.iter().map(|s| s.to_string()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_primary_two_replicas_three_sentinels() {
        let s = system(&SystemParams::default());
        let roles: Vec<(&str, &str)> = s
            .nodes
            .iter()
            .map(|n| (n.name.as_str(), n.role.as_str()))
            .collect();
        assert_eq!(
            roles,
            [
                ("n1", "primary"),
                ("n2", "replica"),
                ("n3", "replica"),
                ("s1", "sentinel"),
                ("s2", "sentinel"),
                ("s3", "sentinel")
            ]
        );
        let conf = String::from_utf8(s.nodes[2].files[0].contents.clone()).unwrap();
        assert!(conf.contains("replicaof n1 6379\n"), "{conf}");
        let sentinel = String::from_utf8(s.nodes[3].files[0].contents.clone()).unwrap();
        assert!(
            sentinel.contains("sentinel monitor mymaster n1 6379 2\n"),
            "{sentinel}"
        );
        assert_eq!(
            s.nodes[0].cmd,
            ["redis-server", "/etc/faultline/redis.conf"]
        );
        assert_eq!(s.nodes[0].ports.len(), 1);
    }

    #[test]
    fn with_distinct_peer_ports_every_node_announces_a_port_of_its_own() {
        let s = system(&SystemParams {
            distinct_peer_ports: true,
            ..SystemParams::default()
        });
        let n3 = String::from_utf8(s.nodes[2].files[0].contents.clone()).unwrap();
        assert!(n3.contains("port 6379\n"), "{n3}");
        assert!(n3.contains("replica-announce-port 6382\n"), "{n3}");
        assert!(n3.contains("replicaof n1 6380\n"), "{n3}");
        assert!(s.nodes[2].cmd[2].contains("--dport 6382 -j REDIRECT --to-ports 6379"));
        assert_eq!(
            &s.nodes[2].cmd[4..],
            ["redis-server", "/etc/faultline/redis.conf"]
        );
        assert_eq!(s.nodes[2].ports[1].name, "peer");
        assert_eq!(s.nodes[2].ports[1].container_port, 6382);
        let s2 = String::from_utf8(s.nodes[4].files[0].contents.clone()).unwrap();
        assert!(s2.contains("sentinel announce-port 26381\n"), "{s2}");
        assert!(s2.contains("sentinel monitor mymaster n1 6380 2\n"), "{s2}");
        assert!(s.nodes[4].cmd[2].contains("--dport 26381 -j REDIRECT --to-ports 26379"));
    }
}
