//! Redis 7 with Sentinel: `n1` starts as primary, `n2..nN` as its replicas, and `s1..s3` are
//! sentinels that watch the primary under the name `mymaster` and fail over with a quorum of 2.
//! Data nodes use AOF (fsync every second, Redis's default trade-off), replicas announce their
//! names so sentinels report names, not addresses. Ready means: data nodes answer, replicas have
//! an up link to the primary, and each sentinel sees a usable quorum (`SENTINEL CKQUORUM`) and
//! knows every replica (else the first failover may abort for want of one).

use std::time::Duration;

use super::{data_dir, node_names};
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
        let mut conf = format!(
            "bind 0.0.0.0\nprotected-mode no\nport {PORT}\ndir {dir}\nlogfile \"\"\ndaemonize no\n\
             appendonly yes\nappendfsync everysec\nreplica-announce-ip {name}\n"
        );
        let replica = *name != primary;
        if replica {
            let (host, port) = params.dial(name, &primary, PORT);
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
            cmd: vec!["redis-server".into(), "/etc/faultline/redis.conf".into()],
            env: vec![],
            data_dir: dir,
            files: vec![NodeFile::text("/etc/faultline/redis.conf", conf)],
            ports: vec![PortSpec {
                name: "client".into(),
                container_port: PORT,
            }],
            probe,
            log_files: vec![],
        });
    }
    for i in 1..=SENTINELS {
        let name = format!("s{i}");
        let dir = data_dir(&name);
        let (host, port) = params.dial(&name, &primary, PORT);
        let conf = format!(
            "port {SENTINEL_PORT}\nbind 0.0.0.0\nprotected-mode no\ndir {dir}\nlogfile \"\"\n\
             sentinel resolve-hostnames yes\nsentinel announce-hostnames yes\n\
             sentinel announce-ip {name}\n\
             sentinel monitor {MASTER_NAME} {host} {port} 2\n\
             sentinel down-after-milliseconds {MASTER_NAME} 5000\n\
             sentinel failover-timeout {MASTER_NAME} 10000\n\
             sentinel parallel-syncs {MASTER_NAME} 1\n"
        );
        nodes.push(NodeSpec {
            name: name.clone(),
            role: "sentinel".into(),
            cmd: vec![
                "redis-sentinel".into(),
                "/etc/faultline/sentinel.conf".into(),
            ],
            env: vec![],
            data_dir: dir,
            // Sentinel rewrites its config file as it learns; it lives in the container.
            files: vec![NodeFile::text("/etc/faultline/sentinel.conf", conf)],
            ports: vec![PortSpec {
                name: "sentinel".into(),
                container_port: SENTINEL_PORT,
            }],
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
        name: "redis".into(),
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
    }
}
