//! etcd 3.4 (Debian's etcd-server): every node is a voting member from the start
//! (`--initial-cluster`), clients talk to port 2379, peers to 2380. Ready means
//! `etcdctl endpoint health` passes on each node, which needs an elected leader.

use std::time::Duration;

use super::{data_dir, node_names};
use crate::cluster::system::{
    LeaderQuery, NodeSpec, PortSpec, Probe, System, SystemParams, DEFAULT_PROBE_INTERVAL,
};

pub const CLIENT_PORT: u16 = 2379;
pub const PEER_PORT: u16 = 2380;

pub fn system(params: &SystemParams) -> System {
    let names = node_names(params.nodes.unwrap_or(3));
    let nodes = names
        .iter()
        .map(|name| {
            let initial_cluster = names
                .iter()
                .map(|peer| {
                    let addr =
                        params.dial_addr(name, peer, super::peer_port(params, peer, PEER_PORT));
                    format!("{peer}=http://{addr}")
                })
                .collect::<Vec<_>>()
                .join(",");
            let own_peer_port = super::peer_port(params, name, PEER_PORT);
            let dir = data_dir(name);
            let cmd = [
                "etcd".to_string(),
                format!("--name={name}"),
                format!("--data-dir={dir}/etcd"),
                format!("--listen-client-urls=http://0.0.0.0:{CLIENT_PORT}"),
                format!("--advertise-client-urls=http://{name}:{CLIENT_PORT}"),
                format!("--listen-peer-urls=http://0.0.0.0:{own_peer_port}"),
                format!("--initial-advertise-peer-urls=http://{name}:{own_peer_port}"),
                format!("--initial-cluster={initial_cluster}"),
                "--initial-cluster-state=new".to_string(),
                "--initial-cluster-token=faultline".to_string(),
            ]
            .to_vec();
            NodeSpec {
                name: name.clone(),
                role: "server".into(),
                cmd,
                env: vec![],
                data_dir: dir,
                files: vec![],
                ports: vec![
                    PortSpec {
                        name: "client".into(),
                        container_port: CLIENT_PORT,
                    },
                    PortSpec {
                        name: "peer".into(),
                        container_port: own_peer_port,
                    },
                ],
                probe: Probe::exec(&[
                    "etcdctl",
                    "--endpoints=http://127.0.0.1:2379",
                    "--command-timeout=2s",
                    "endpoint",
                    "health",
                ]),
                log_files: vec![],
            }
        })
        .collect();
    System {
        name: workloads::BuiltinCluster::Etcd.name().into(),
        image: params.image(),
        nodes,
        ready_timeout: Duration::from_secs(30),
        probe_interval: DEFAULT_PROBE_INTERVAL,
        leader: LeaderQuery::EtcdStatus,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_member_knows_the_whole_initial_cluster() {
        let s = system(&SystemParams::default());
        assert_eq!(s.nodes.len(), 3);
        let n2 = &s.nodes[1];
        assert!(n2.cmd.contains(&"--name=n2".to_string()));
        assert!(n2.cmd.contains(
            &"--initial-cluster=n1=http://n1:2380,n2=http://n2:2380,n3=http://n3:2380".to_string()
        ));
        assert!(n2.cmd.contains(&"--data-dir=/data/n2/etcd".to_string()));
    }

    #[test]
    fn with_distinct_peer_ports_each_member_listens_on_its_own() {
        let s = system(&SystemParams {
            distinct_peer_ports: true,
            ..SystemParams::default()
        });
        let n2 = &s.nodes[1];
        assert!(n2.cmd.contains(
            &"--initial-cluster=n1=http://n1:2381,n2=http://n2:2382,n3=http://n3:2383".to_string()
        ));
        assert!(n2
            .cmd
            .contains(&"--listen-peer-urls=http://0.0.0.0:2382".to_string()));
        assert!(n2
            .cmd
            .contains(&"--initial-advertise-peer-urls=http://n2:2382".to_string()));
        assert_eq!(n2.ports[1].container_port, 2382);
    }
}
