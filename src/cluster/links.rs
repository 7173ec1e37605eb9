//! Node-to-node links through a proxy: the second partition mechanism, and the only way to add
//! latency here (the kernel has no netem, so `tc` cannot delay packets inside containers).
//!
//! A run with `--links proxy` adds one more container to the cluster, `proxy`, running
//! `faultline proxy` (faultline's own binary, copied in) with one proxy per ordered pair of
//! server nodes and peer port, created from a config file at start so the links exist before
//! the nodes first dial each other. Each node's config dials its peers at `proxy:<listen port>`
//! ([`LinkPlan::dial`] through `SystemParams::dial`). The nemesis then cuts links with toxics
//! (`CutMode::BlackHole`: exact directed cuts, connections stay open and data vanishes) and adds
//! latency to every link, all over the Toxiproxy HTTP API, so a real Toxiproxy would do too.
//!
//! Only systems whose peers are a plain list of addresses can dial through the proxy (the
//! testbed, ZooKeeper, NATS; a system that also gossips addresses must be kept from gossiping
//! direct ones, see systems::nats). etcd cannot: its members must agree on one set of peer URLs
//! (each derives the cluster id from `--initial-cluster`), and per-node proxy ports make every
//! node's list different.

use anyhow::{bail, Result};
use nemeses::partition::LinkPlan;

use super::system::{NodeFile, NodeSpec, PortSpec, Probe, System, SystemParams};
use super::systems::testbed::{binary_file, BINARY_PATH};

/// The proxy container's name on the run network.
pub const PROXY_NODE: &str = "proxy";
/// Its role, which faults never target.
pub const PROXY_ROLE: &str = "proxy";
/// Toxiproxy's API port, inside the proxy container.
pub const PROXY_API_PORT: u16 = 8474;
/// First listen port of the links.
pub const FIRST_LISTEN_PORT: u16 = 20_000;
/// Where the proxy's config goes.
const CONFIG_PATH: &str = "/etc/faultline/proxies.json";

/// The peer ports of a system whose configuration can dial peers through the proxy.
pub fn peer_ports(system: &str) -> Option<Vec<u16>> {
    match system {
        "testbed" => Some(vec![super::systems::testbed::CLIENT_PORT]),
        // Each node's zoo.cfg lists its peers as it dials them; servers know each other by id.
        "zookeeper" => Some(vec![
            super::systems::zookeeper::QUORUM_PORT,
            super::systems::zookeeper::ELECTION_PORT,
        ]),
        // Each server lists its routes as it dials them (see systems::nats on gossip).
        "nats" => Some(vec![super::systems::nats::ROUTE_PORT]),
        _ => None,
    }
}

/// Systems that support `--links proxy`.
pub const PROXY_LINK_SYSTEMS: &[&str] = &["testbed", "zookeeper", "nats"];

/// Every link between `servers` of `system`.
pub fn link_plan(system: &str, servers: &[String]) -> Result<LinkPlan> {
    let Some(ports) = peer_ports(system) else {
        bail!(
            "--links proxy: {system}'s configuration cannot dial its peers through a proxy; systems that can: {}",
            PROXY_LINK_SYSTEMS.join(", ")
        );
    };
    LinkPlan::new(servers, &ports, PROXY_NODE, FIRST_LISTEN_PORT)
}

/// `system` with its peers dialing each other through a proxy container, which it includes,
/// and the links the nemesis cuts (one per ordered pair of servers and peer port).
pub fn system_with_proxy_links(
    system: &str,
    mut params: SystemParams,
) -> Result<(System, LinkPlan)> {
    let direct = System::by_name(system, &params)?;
    let servers: Vec<String> = direct.nodes.iter().map(|n| n.name.clone()).collect();
    let plan = link_plan(system, &servers)?;
    let dial = plan.clone();
    params.dial = Some(std::sync::Arc::new(
        move |from: &str, to: &str, port: u16| dial.dial(from, to, port),
    ));
    let mut linked = System::by_name(system, &params)?;
    linked.nodes.push(proxy_node(&plan)?);
    Ok((linked, plan))
}

/// The proxy container: faultline's binary, the links as a config file, the API published.
pub fn proxy_node(plan: &LinkPlan) -> Result<NodeSpec> {
    let configs = plan.proxy_configs(|l| format!("{}:{}", l.to, l.port));
    let config = serde_json::to_string_pretty(&configs)?;
    Ok(NodeSpec {
        name: PROXY_NODE.into(),
        role: PROXY_ROLE.into(),
        cmd: vec![
            BINARY_PATH.into(),
            "proxy".into(),
            format!("--listen=0.0.0.0:{PROXY_API_PORT}"),
            format!("--config={CONFIG_PATH}"),
        ],
        env: vec![],
        data_dir: "/data/proxy".into(),
        files: vec![binary_file()?, NodeFile::text(CONFIG_PATH, config)],
        ports: vec![PortSpec {
            name: "api".into(),
            container_port: PROXY_API_PORT,
        }],
        probe: Probe::Http {
            port: "api".into(),
            path: "/version".into(),
            body_contains: None,
        },
        log_files: vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_testbed_dials_its_peers_through_the_proxy() {
        let servers: Vec<String> = ["n1", "n2", "n3"].iter().map(|s| s.to_string()).collect();
        let plan = link_plan("testbed", &servers).unwrap();
        assert_eq!(plan.links.len(), 6, "one link per ordered pair");
        let (host, port) = plan.dial("n1", "n2", 7000);
        assert_eq!(host, "proxy");
        assert!(port >= FIRST_LISTEN_PORT);
        assert_eq!(plan.dial("n1", "n1", 7000), ("n1".to_string(), 7000));
        assert_eq!(link_plan("zookeeper", &servers).unwrap().links.len(), 12);
        assert_eq!(link_plan("nats", &servers).unwrap().links.len(), 6);
        let e = link_plan("etcd", &servers).unwrap_err().to_string();
        assert!(e.contains("etcd") && e.contains("testbed"), "{e}");
    }
}
