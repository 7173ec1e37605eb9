//! NATS 2.9 with JetStream: every node runs `-js` in one cluster (`fl`) with routes to all
//! nodes (a route to itself is ignored), clients on 4222, routes on 6222, monitoring on 8222.
//! Ready means the monitoring endpoint's `/healthz` says ok, which in 2.9 includes "this server
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
                    format!("--cluster_advertise={name}:{ROUTE_PORT}"),
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
        name: "nats".into(),
        image: params.image(),
        nodes,
        ready_timeout: Duration::from_secs(30),
        probe_interval: DEFAULT_PROBE_INTERVAL,
        leader: LeaderQuery::NatsJsz,
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
    }
}
