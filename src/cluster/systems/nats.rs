//! NATS 2.9 with JetStream: every node runs `-js` in one cluster (`fl`) with routes to all
//! nodes (a route to itself is ignored), clients on 4222, routes on 6222, monitoring on 8222.
//! With proxy links (`--links proxy`) the routes go through the proxy and no server gossips a
//! direct address. Ready means the monitoring endpoint's `/healthz` says ok, which in 2.9 includes "this server
//! is in contact with a JetStream meta leader".

use std::time::Duration;

use super::{data_dir, node_names};
use crate::cluster::system::{
    LeaderQuery, NodeSpec, PortSpec, Probe, System, SystemParams, DEFAULT_PROBE_INTERVAL,
};

pub const CLIENT_PORT: u16 = 4222;
pub const ROUTE_PORT: u16 = 6222;
pub const MONITOR_PORT: u16 = 8222;
pub const CLUSTER_NAME: &str = "fl";

pub fn system(params: &SystemParams) -> System {
    let names = node_names(params.nodes.unwrap_or(3));
    let nodes = names
        .iter()
        .map(|name| {
            let routes = names
                .iter()
                .filter(|p| *p != name)
                .map(|p| format!("nats://{}", params.dial_addr(name, p, ROUTE_PORT)))
                .collect::<Vec<_>>()
                .join(",");
            let dir = data_dir(name);
            let advertise = cluster_advertise(params, name, &names);
            NodeSpec {
                name: name.clone(),
                role: "server".into(),
                cmd: vec![
                    "nats-server".into(),
                    "--jetstream".into(),
                    format!("--store_dir={dir}/jetstream"),
                    format!("--server_name={name}"),
                    format!("--cluster_name={CLUSTER_NAME}"),
                    format!("--cluster=nats://0.0.0.0:{ROUTE_PORT}"),
                    format!("--cluster_advertise={advertise}"),
                    format!("--routes={routes}"),
                    format!("--port={CLIENT_PORT}"),
                    format!("--http_port={MONITOR_PORT}"),
                ],
                env: vec![],
                data_dir: dir,
                files: vec![],
                ports: vec![
                    PortSpec {
                        name: "client".into(),
                        container_port: CLIENT_PORT,
                    },
                    PortSpec {
                        name: "monitor".into(),
                        container_port: MONITOR_PORT,
                    },
                ],
                probe: Probe::Http {
                    port: "monitor".into(),
                    path: "/healthz".into(),
                    body_contains: Some("ok".into()),
                },
                log_files: vec![],
            }
        })
        .collect();
    System {
        name: workloads::BuiltinCluster::Nats.name().into(),
        image: params.image(),
        nodes,
        ready_timeout: Duration::from_secs(30),
        probe_interval: DEFAULT_PROBE_INTERVAL,
        leader: LeaderQuery::NatsJsz,
    }
}

/// The route address a server gossips. Servers connect to every address they learn by gossip
/// that they have no route to yet (implicit routes), which would go around a link proxy: so
/// when peers are dialed through one, a server advertises the proxy's port 1, where nothing
/// listens. A gossiped route then fails at once and is not retried (implicit routes have no
/// retries by default), and only the configured routes, each through its own proxy link,
/// carry traffic.
fn cluster_advertise(params: &SystemParams, name: &str, names: &[String]) -> String {
    let proxied = names
        .iter()
        .filter(|p| *p != name)
        .map(|p| (p, params.dial(name, p, ROUTE_PORT)))
        .find(|(p, (host, _))| host != *p);
    match proxied {
        Some((_, (proxy_host, _))) => format!("{proxy_host}:1"),
        None => format!("{name}:{ROUTE_PORT}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_server_routes_to_the_others() {
        let s = system(&SystemParams::default());
        let n1 = &s.nodes[0];
        assert!(n1
            .cmd
            .contains(&"--routes=nats://n2:6222,nats://n3:6222".to_string()));
        assert!(n1.cmd.contains(&"--server_name=n1".to_string()));
        assert!(n1.cmd.contains(&"--cluster_advertise=n1:6222".to_string()));
    }

    #[test]
    fn through_a_link_proxy_no_server_gossips_a_direct_address() {
        let params = SystemParams {
            dial: Some(std::sync::Arc::new(|from: &str, to: &str, port: u16| {
                let pair = if (from, to) == ("n1", "n2") { 1 } else { 2 };
                ("proxy".to_string(), 20_000 + pair + port % 10)
            })),
            ..SystemParams::default()
        };
        let s = system(&params);
        let n1 = &s.nodes[0];
        assert!(
            n1.cmd
                .contains(&"--routes=nats://proxy:20003,nats://proxy:20004".to_string()),
            "{:?}",
            n1.cmd
        );
        assert!(n1.cmd.contains(&"--cluster_advertise=proxy:1".to_string()));
    }
}
