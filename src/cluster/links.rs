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
//! Systems whose peers are a plain list of addresses dial through the proxy by configuration
//! (the testbed, ZooKeeper, NATS; a system that also gossips addresses must be kept from
//! gossiping direct ones, see systems::nats). etcd cannot: its members must agree on one set of
//! peer URLs (each derives the cluster id from `--initial-cluster`), and per-node proxy ports
//! would make every node's list different. Its links are redirected instead, and so are
//! RabbitMQ's (Erlang finds peers' distribution ports through epmd) and Redis's (Sentinel hands
//! out the addresses nodes announce, and reconfigures replicas after a failover): see
//! [`system_with_proxy_links`].

use anyhow::{bail, Result};
use nemeses::partition::LinkPlan;
use workloads::BuiltinCluster;

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

/// How a system's servers are made to reach their peers through the proxy.
enum LinkStyle {
    /// Each server's configuration dials these peer ports of its peers at the proxy.
    Configured(Vec<u16>),
    /// Each server listens for peers on a port of its own, and its outgoing peer connections
    /// are redirected to the proxy inside its container.
    Redirected,
}

fn link_style(system: &str) -> Option<LinkStyle> {
    use super::systems::{nats, testbed, zookeeper};
    match BuiltinCluster::parse(system)? {
        BuiltinCluster::Testbed => Some(LinkStyle::Configured(vec![testbed::CLIENT_PORT])),
        // Each node's zoo.cfg lists its peers as it dials them; servers know each other by id.
        BuiltinCluster::ZooKeeper => Some(LinkStyle::Configured(vec![
            zookeeper::QUORUM_PORT,
            zookeeper::ELECTION_PORT,
        ])),
        // Each server lists its routes as it dials them (see systems::nats on gossip).
        BuiltinCluster::Nats => Some(LinkStyle::Configured(vec![nats::ROUTE_PORT])),
        // Members must agree on one list of peer URLs; Erlang finds peers through epmd;
        // Sentinel tells nodes whom to dial, long after their configuration was written.
        BuiltinCluster::Etcd | BuiltinCluster::RabbitMq | BuiltinCluster::Redis => {
            Some(LinkStyle::Redirected)
        }
        // One server: no node-to-node links.
        BuiltinCluster::Postgres => None,
    }
}

/// Whether `system` supports `--links proxy`.
pub fn supports_proxy_links(system: &str) -> bool {
    link_style(system).is_some()
}

/// The systems that support `--links proxy`, for messages.
pub fn proxy_link_systems() -> Vec<&'static str> {
    super::system::SYSTEM_NAMES
        .iter()
        .copied()
        .filter(|s| supports_proxy_links(s))
        .collect()
}

/// Why `system` cannot run with `--links proxy`, when it cannot (for messages that start
/// with the option's name).
pub fn no_proxy_links_reason(system: &str) -> Option<String> {
    if supports_proxy_links(system) {
        return None;
    }
    let one_server =
        System::by_name(system, &SystemParams::default()).is_ok_and(|s| s.nodes.len() == 1);
    let why = match one_server {
        true => format!("{system} runs one server, so it has no node-to-node links to proxy"),
        false => format!("{system}'s peers cannot be sent through a proxy yet"),
    };
    Some(format!(
        "{why}; systems whose links can: {}",
        proxy_link_systems().join(", ")
    ))
}

/// `system` with its peers dialing each other through a proxy container, which it includes,
/// and the links the nemesis cuts (one per ordered pair of servers and peer port).
pub fn system_with_proxy_links(system: &str, params: SystemParams) -> Result<(System, LinkPlan)> {
    match link_style(system) {
        Some(LinkStyle::Configured(ports)) => {
            system_with_configured_links(&|p| System::by_name(system, p), params, &ports)
        }
        Some(LinkStyle::Redirected) => system_with_redirected_links(system, params),
        None => bail!(
            "--links proxy: {}",
            no_proxy_links_reason(system).unwrap_or_default()
        ),
    }
}

/// Links for a system whose configuration dials its peers: built twice, once to learn the
/// server names, then with every peer dialed at the proxy's listener for the link.
fn system_with_configured_links(
    build: &dyn Fn(&SystemParams) -> Result<System>,
    mut params: SystemParams,
    peer_ports: &[u16],
) -> Result<(System, LinkPlan)> {
    let direct = build(&params)?;
    let servers: Vec<String> = direct.nodes.iter().map(|n| n.name.clone()).collect();
    let plan = LinkPlan::new(&servers, peer_ports, PROXY_NODE, FIRST_LISTEN_PORT)?;
    let dial = plan.clone();
    params.dial = Some(std::sync::Arc::new(
        move |from: &str, to: &str, port: u16| dial.dial(from, to, port),
    ));
    let mut linked = build(&params)?;
    linked.nodes.push(proxy_node(&plan)?);
    Ok((linked, plan))
}

/// A user's system (`[system]` with `peer_port`) with its peer port dialed through the proxy:
/// its command lists peers with `{addrs:P}`, `{peers:P}` or `{members:P}`, which render as each
/// node dials them, so its links are configured like the testbed's.
pub fn user_system_with_proxy_links(
    resolved: &super::user::Resolved,
    image: &str,
    params: SystemParams,
) -> Result<(System, LinkPlan)> {
    let Some(port) = resolved.peer_port() else {
        bail!("--links proxy: system.peer_port is not set: name the port (of system.ports) the nodes dial each other on");
    };
    system_with_configured_links(&|p| resolved.system(image, p), params, &[port])
}

/// Links for a system whose members must agree on one set of peer addresses (etcd), find them
/// through a lookup service (RabbitMQ's epmd) or are told them at run time (Redis Sentinel):
/// every server listens for peers on a port of its own, and inside each server's container an
/// iptables DNAT rule per peer port sends the server's connections to that port to the proxy
/// listener of the link, before the server starts. The server dials its peers by their real
/// names and never sees the proxy; the proxy, which has no such rules, dials them for real.
/// Matching on ports rather than addresses keeps working when a restarted peer comes back with
/// another address.
fn system_with_redirected_links(
    system: &str,
    mut params: SystemParams,
) -> Result<(System, LinkPlan)> {
    params.distinct_peer_ports = true;
    let mut linked = System::by_name(system, &params)?;
    let peer_port = |node: &NodeSpec| {
        node.ports
            .iter()
            .find(|p| p.name == "peer")
            .map(|p| p.container_port)
    };
    let mut ports = Vec::new();
    for node in &linked.nodes {
        let Some(port) = peer_port(node) else {
            bail!(
                "--links proxy: {system}'s node {} has no peer port",
                node.name
            );
        };
        ports.push((node.name.clone(), port));
    }
    let plan = LinkPlan::to_own_ports(&ports, PROXY_NODE, FIRST_LISTEN_PORT)?;
    for node in &mut linked.nodes {
        let rules: Vec<(u16, u16)> = plan
            .links
            .iter()
            .filter(|l| l.from == node.name)
            .map(|l| (l.port, l.listen_port))
            .collect();
        node.cmd = redirect_command(&rules, &node.cmd);
    }
    linked.nodes.push(proxy_node(&plan)?);
    Ok((linked, plan))
}

/// Bound on waiting for the proxy's name to resolve before a server starts, in tenths of a
/// second.
const PROXY_RESOLVE_TRIES_MAX: u32 = 600;

/// `cmd` run after installing one DNAT rule per `(peer port, proxy listen port)`: a shell
/// prelude that waits (bounded) for the proxy's address, adds the rules to the container's nat
/// table (a fresh network namespace at every start, so a restart installs them again), then
/// execs the server as the container's main process.
fn redirect_command(rules: &[(u16, u16)], cmd: &[String]) -> Vec<String> {
    let mut script = format!(
        "i=0; until getent hosts {PROXY_NODE} >/dev/null; do i=$((i+1)); \
         if [ $i -gt {PROXY_RESOLVE_TRIES_MAX} ]; then echo 'faultline links: {PROXY_NODE} does not resolve' >&2; exit 1; fi; sleep 0.1; done; \
         proxy=$(getent hosts {PROXY_NODE} | cut -d' ' -f1); "
    );
    for (port, listen) in rules {
        script.push_str(&format!(
            "iptables -t nat -A OUTPUT -p tcp --dport {port} -j DNAT --to-destination \"$proxy:{listen}\" || exit 1; "
        ));
    }
    script.push_str("exec \"$@\"");
    let mut wrapped = vec![
        "sh".to_string(),
        "-c".to_string(),
        script,
        "faultline-links".to_string(),
    ];
    wrapped.extend(cmd.iter().cloned());
    wrapped
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
        let links = |system: &str| system_with_proxy_links(system, SystemParams::default());
        let (system, plan) = links("testbed").unwrap();
        assert_eq!(plan.links.len(), 6, "one link per ordered pair");
        let (host, port) = plan.dial("n1", "n2", 7000);
        assert_eq!(host, "proxy");
        assert!(port >= FIRST_LISTEN_PORT);
        assert_eq!(plan.dial("n1", "n1", 7000), ("n1".to_string(), 7000));
        assert!(system.node(PROXY_NODE).is_some());
        assert_eq!(links("zookeeper").unwrap().1.links.len(), 12);
        assert_eq!(links("nats").unwrap().1.links.len(), 6);
        let e = links("postgres").unwrap_err().to_string();
        assert!(e.contains("postgres runs one server"), "{e}");
        assert!(e.contains("redis") && e.contains("testbed"), "{e}");
        assert!(e.starts_with("--links proxy: "), "{e}");
        assert_eq!(
            proxy_link_systems(),
            ["etcd", "redis", "nats", "rabbitmq", "zookeeper", "testbed"]
        );
    }

    #[test]
    fn etcd_links_are_redirected_by_destination_port() {
        let (system, plan) = system_with_proxy_links("etcd", SystemParams::default()).unwrap();
        assert_eq!(plan.links.len(), 6, "one link per ordered pair");
        let n1_to_n2 = plan
            .links
            .iter()
            .find(|l| l.from == "n1" && l.to == "n2")
            .unwrap();
        assert_eq!(n1_to_n2.port, 2382, "n2's own peer port");
        let n1 = system.node("n1").unwrap();
        assert_eq!(n1.cmd[..2], ["sh", "-c"]);
        let rule = format!(
            "--dport 2382 -j DNAT --to-destination \"$proxy:{}\"",
            n1_to_n2.listen_port
        );
        assert!(n1.cmd[2].contains(&rule), "{}", n1.cmd[2]);
        assert!(
            !n1.cmd[2].contains("--dport 2381 "),
            "no rule for its own port"
        );
        // The server's own command follows, unchanged, as the script's arguments.
        assert_eq!(n1.cmd[4], "etcd");
        assert!(n1.cmd.contains(
            &"--initial-cluster=n1=http://n1:2381,n2=http://n2:2382,n3=http://n3:2383".to_string()
        ));
        assert!(system.node(PROXY_NODE).is_some());
    }

    #[test]
    fn redis_links_cover_replication_and_every_sentinel() {
        let (system, plan) = system_with_proxy_links("redis", SystemParams::default()).unwrap();
        assert_eq!(
            plan.links.len(),
            30,
            "one link per ordered pair of six nodes"
        );
        let s1_to_n2 = plan
            .links
            .iter()
            .find(|l| l.from == "s1" && l.to == "n2")
            .unwrap();
        assert_eq!(s1_to_n2.port, 6381, "n2's announced peer port");
        let s1 = system.node("s1").unwrap();
        let rule = format!(
            "--dport 6381 -j DNAT --to-destination \"$proxy:{}\"",
            s1_to_n2.listen_port
        );
        assert!(s1.cmd[2].contains(&rule), "{}", s1.cmd[2]);
        let to_s2 = plan.links.iter().find(|l| l.from == "s1" && l.to == "s2");
        assert_eq!(to_s2.unwrap().port, 26381, "sentinels reach each other too");
        // The node's own rule (its peer port to its real one) runs after the links' rules.
        assert!(s1.cmd[4..].join(" ").contains("--dport 26380 -j REDIRECT"));
    }
}
