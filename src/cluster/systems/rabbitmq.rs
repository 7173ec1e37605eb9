//! RabbitMQ 3.10: nodes `rabbit@n1..nN` share one Erlang cookie and form one cluster at first
//! boot through classic_config peer discovery. The first node, the seed, lists only itself, so
//! it starts as a blank standalone node at once instead of spending ten discovery retries (5 s)
//! on peers that are not up yet. On their first boot the other nodes wait (bounded) until the
//! seed serves AMQP, then boot and join it (they list only the seed). They cannot boot alongside
//! it: a node that connects to the seed while the seed holds its peer-discovery lock left the
//! seed stuck in that lock for minutes (seen with two clusters starting at once).
//! The VMs do not busy-wait for work (`+sbwt none`): three brokers share a few cores with the
//! controller and the workload, and spinning schedulers take CPU from the nodes still booting.
//! The server runs as the `rabbitmq` user as the container's main process and logs to stdout.
//! Ready means `rabbitmqctl await_online_nodes N` passes on each node (all N are clustered and
//! running), not merely that one broker accepts connections, and the first node has set the
//! `ha-faultline` policy: the classic queue `faultline-mirrored` (the workload's
//! `queue-type = "classic-mirrored"`) is mirrored on every node, synchronised automatically, and
//! an unsynchronised mirror is promoted when the leader fails or shuts down
//! (`ha-promote-on-failure` / `ha-promote-on-shutdown = always`: availability over safety).
//! Setting a policy is idempotent, so the probe that sets it may run again after a heal. The
//! policy matches only that queue; the default quorum queue ignores it.

use std::time::Duration;

use super::{data_dir, node_names};
use crate::cluster::system::{
    LeaderQuery, NodeFile, NodeSpec, PortSpec, Probe, System, SystemParams,
};

pub const AMQP_PORT: u16 = 5672;
pub const DIST_PORT: u16 = 25672;
/// Half-second waits for the seed on a first boot (two minutes).
const SEED_WAIT_TRIES: u32 = 240;
/// Erlang emulator flags: no scheduler busy-waiting.
const ERL_ARGS: &str = "+sbwt none +sbwtdcpu none +sbwtdio none";
/// Shared by every node of every run: the cluster is private to its Docker network.
const COOKIE: &str = "FAULTLINEFAULTLINECOOKIE";
/// The mirroring policy (module doc), as `rabbitmqctl set_policy` arguments.
const MIRROR_POLICY: &[&str] = &[
    "rabbitmqctl",
    "-q",
    "set_policy",
    "--apply-to",
    "queues",
    "ha-faultline",
    "^faultline-mirrored$",
    r#"{"ha-mode":"all","ha-sync-mode":"automatic","ha-promote-on-shutdown":"always","ha-promote-on-failure":"always"}"#,
];

pub fn system(params: &SystemParams) -> System {
    let names = node_names(params.nodes.unwrap_or(3));
    let n = names.len();
    let nodes = names
        .iter()
        .map(|name| {
            let dir = data_dir(name);
            let seed = &names[0];
            let mut conf = String::from(
                "loopback_users = none\nlisteners.tcp.default = 5672\n\
                 cluster_formation.peer_discovery_backend = classic_config\n\
                 cluster_partition_handling = ignore\n",
            );
            conf.push_str(&format!(
                "cluster_formation.classic_config.nodes.1 = rabbit@{seed}\n"
            ));
            let dist_port = super::peer_port(params, name, DIST_PORT);
            let env_conf = format!(
                "NODENAME=rabbit@{name}\nMNESIA_BASE={dir}/mnesia\nLOGS=-\nDIST_PORT={dist_port}\n\
                 SERVER_ADDITIONAL_ERL_ARGS=\"{ERL_ARGS}\"\n"
            );
            let wait_for_seed = if name == seed {
                String::new()
            } else {
                format!(
                    "if [ ! -d {dir}/mnesia/rabbit@{name} ]; then \
                       for i in $(seq 1 {SEED_WAIT_TRIES}); do \
                         (echo > /dev/tcp/{seed}/{AMQP_PORT}) 2>/dev/null && break; sleep 0.5; \
                       done; \
                     fi; "
                )
            };
            let script = format!(
                "{wait_for_seed}chown -R rabbitmq:rabbitmq {dir} /var/lib/rabbitmq && \
                 chmod 400 /var/lib/rabbitmq/.erlang.cookie && \
                 cd /var/lib/rabbitmq && \
                 exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups \
                 env HOME=/var/lib/rabbitmq /usr/lib/rabbitmq/bin/rabbitmq-server"
            );
            NodeSpec {
                name: name.clone(),
                role: "server".into(),
                cmd: vec!["/bin/bash".into(), "-c".into(), script],
                env: vec![],
                data_dir: dir,
                files: vec![
                    NodeFile::text("/etc/rabbitmq/rabbitmq.conf", conf),
                    NodeFile::text("/etc/rabbitmq/rabbitmq-env.conf", env_conf),
                    NodeFile {
                        path: "/var/lib/rabbitmq/.erlang.cookie".into(),
                        contents: COOKIE.as_bytes().to_vec(),
                        mode: 0o400,
                    },
                ],
                ports: vec![
                    PortSpec {
                        name: "amqp".into(),
                        container_port: AMQP_PORT,
                    },
                    // Erlang distribution between the nodes (peers find it through epmd).
                    PortSpec {
                        name: "peer".into(),
                        container_port: dist_port,
                    },
                ],
                // The log line first (cheap), then the cluster view (an Erlang VM per call).
                probe: Probe::All(
                    [
                        Probe::Log("Server startup complete".into()),
                        Probe::exec(&[
                            "rabbitmqctl",
                            "-q",
                            "await_online_nodes",
                            &n.to_string(),
                            "--timeout",
                            "5",
                        ]),
                    ]
                    .into_iter()
                    .chain((name == seed).then(|| Probe::exec(MIRROR_POLICY)))
                    .collect(),
                ),
                log_files: vec![],
            }
        })
        .collect();
    System {
        name: "rabbitmq".into(),
        image: params.image(),
        nodes,
        ready_timeout: Duration::from_secs(180),
        // Every rabbitmqctl call boots an Erlang VM: probing often would slow the boot down.
        probe_interval: Duration::from_secs(2),
        leader: LeaderQuery::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_node_sets_the_mirroring_policy_of_the_mirrored_queue() {
        let s = system(&SystemParams::default());
        let sets_policy = |n: &NodeSpec| match &n.probe {
            Probe::All(ps) => ps.iter().any(
                |p| matches!(p, Probe::Exec { cmd, .. } if cmd.iter().any(|a| a == "set_policy")),
            ),
            _ => false,
        };
        let setters: Vec<&str> = s
            .nodes
            .iter()
            .filter(|n| sets_policy(n))
            .map(|n| n.name.as_str())
            .collect();
        assert_eq!(setters, ["n1"]);
        assert!(MIRROR_POLICY[7].contains(r#""ha-promote-on-failure":"always""#));
    }

    #[test]
    fn every_node_discovers_only_the_seed_and_shares_the_cookie() {
        let s = system(&SystemParams::default());
        for node in &s.nodes {
            let conf = String::from_utf8(node.files[0].contents.clone()).unwrap();
            assert!(conf.contains("nodes.1 = rabbit@n1\n"), "{conf}");
            assert!(!conf.contains("nodes.2"), "{conf}");
            assert_eq!(node.files[2].contents, COOKIE.as_bytes());
            assert_eq!(node.files[2].mode, 0o400);
        }
    }

    #[test]
    fn with_distinct_peer_ports_each_node_has_its_own_distribution_port() {
        let s = system(&SystemParams {
            distinct_peer_ports: true,
            ..SystemParams::default()
        });
        let env = String::from_utf8(s.nodes[1].files[1].contents.clone()).unwrap();
        assert!(env.contains("DIST_PORT=25674\n"), "{env}");
        assert_eq!(s.nodes[1].ports[1].container_port, 25674);
        let plain = system(&SystemParams::default());
        let env = String::from_utf8(plain.nodes[1].files[1].contents.clone()).unwrap();
        assert!(env.contains("DIST_PORT=25672\n"), "{env}");
    }
}
