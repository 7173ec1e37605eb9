//! ZooKeeper 3.8 (Debian's jars): a static ensemble `server.<i>=n<i>:2888:3888`, `myid` per
//! node, QuorumPeerMain run directly by java (no init scripts) with log4j on the console.
//! Ready means the `srvr` four-letter word reports a mode (leader or follower), which a node only
//! does while it is part of a quorum.

use std::time::Duration;

use super::{data_dir, node_names, shell};
use crate::cluster::system::{
    LeaderQuery, NodeFile, NodeSpec, PortSpec, Probe, System, SystemParams, DEFAULT_PROBE_INTERVAL,
};

pub const CLIENT_PORT: u16 = 2181;
pub const QUORUM_PORT: u16 = 2888;
pub const ELECTION_PORT: u16 = 3888;

pub fn system(params: &SystemParams) -> System {
    let names = node_names(params.nodes.unwrap_or(3));
    let nodes = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let dir = data_dir(name);
            let mut cfg = format!(
                "tickTime=1000\ninitLimit=10\nsyncLimit=5\ndataDir={dir}/zk\n\
                 clientPort={CLIENT_PORT}\nquorumListenOnAllIPs=true\nadmin.enableServer=false\n\
                 4lw.commands.whitelist=srvr,ruok,mntr,stat\nstandaloneEnabled=false\n"
            );
            for (j, peer) in names.iter().enumerate() {
                // A node binds its own entry (on all addresses); peers may be dialed through
                // whatever `dial` says (the proxy nemesis).
                let (host, qp, ep) = if peer == name {
                    (name.clone(), QUORUM_PORT, ELECTION_PORT)
                } else {
                    let (h, q) = params.dial(name, peer, QUORUM_PORT);
                    (h, q, params.dial(name, peer, ELECTION_PORT).1)
                };
                cfg.push_str(&format!("server.{}={host}:{qp}:{ep}\n", j + 1));
            }
            let script = "exec java -Xmx256m -Dzookeeper.root.logger=INFO,CONSOLE \
                -Dzookeeper.log.dir=/tmp -cp /etc/zookeeper/conf:/usr/share/java/zookeeper.jar \
                org.apache.zookeeper.server.quorum.QuorumPeerMain /etc/faultline/zoo.cfg";
            NodeSpec {
                name: name.clone(),
                role: "server".into(),
                cmd: shell(script),
                env: vec![],
                data_dir: dir.clone(),
                files: vec![
                    NodeFile::text("/etc/faultline/zoo.cfg", cfg),
                    NodeFile::text(&format!("{dir}/zk/myid"), format!("{}\n", i + 1)),
                ],
                ports: vec![PortSpec {
                    name: "client".into(),
                    container_port: CLIENT_PORT,
                }],
                probe: Probe::exec_expect(
                    &[
                        "bash",
                        "-c",
                        "exec 3<>/dev/tcp/127.0.0.1/2181 && echo srvr >&3 && cat <&3",
                    ],
                    "Mode: ",
                ),
                log_files: vec![],
            }
        })
        .collect();
    System {
        name: workloads::BuiltinCluster::ZooKeeper.name().into(),
        image: params.image(),
        nodes,
        ready_timeout: Duration::from_secs(60),
        probe_interval: DEFAULT_PROBE_INTERVAL,
        leader: LeaderQuery::ZooKeeperSrvr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ensemble_is_static_and_each_node_has_its_id() {
        let s = system(&SystemParams::default());
        let n3 = &s.nodes[2];
        let cfg = String::from_utf8(n3.files[0].contents.clone()).unwrap();
        assert!(
            cfg.contains("server.1=n1:2888:3888\nserver.2=n2:2888:3888\nserver.3=n3:2888:3888\n")
        );
        assert_eq!(n3.files[1].path, "/data/n3/zk/myid");
        assert_eq!(n3.files[1].contents, b"3\n");
    }
}
