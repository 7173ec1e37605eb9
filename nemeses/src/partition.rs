//! Partition mechanisms: how a [`Grudge`] becomes dropped packets, and how it is undone.
//!
//! Two mechanisms implement [`Partitioner`]:
//!
//! - [`Iptables`] (the default): DROP rules inside the node containers (they run with NET_ADMIN),
//!   made through [`NodeControl::net_exec`]: in the node itself, or in a helper container that
//!   shares the node's network namespace when the node's image has no iptables (a user's own
//!   image; the controller decides, see `src/cluster/net_helper.rs`). The rules are the same.
//!   A directed cut `a -> b` becomes `INPUT -s a -j DROP` on b *and* `OUTPUT -d b -j DROP` on a,
//!   so the packet dies at both ends and the cut holds even if one rule set is lost. Rules live
//!   only in two chains of our own (`FAULTLINE-IN`, `FAULTLINE-OUT`, jumped to from the top of
//!   INPUT / OUTPUT), so applying a partition rewrites just those chains and healing flushes just
//!   those chains: rules the image or Docker installed are never touched. It cuts every protocol
//!   (TCP, UDP, ICMP), including traffic a proxy never sees. A container that is restarted gets a
//!   fresh network namespace, so a kill during a partition also heals that node's rules.
//! - [`ProxyLinks`]: node-to-node links through Toxiproxy-compatible proxies (ours or a real
//!   Toxiproxy), driven through [`crate::toxiproxy::Client`]. Node `a` reaches node `b` through
//!   the proxy named [`link_name`]`(a, b)`; a TCP connection through it carries `a -> b` data
//!   upstream and `b -> a` data downstream. A directed cut therefore black-holes one stream of two
//!   links ([`CutMode::BlackHole`], a `timeout` toxic with timeout 0), or disables both links
//!   outright ([`CutMode::Disable`]: new connections are refused, a coarser cut that makes any
//!   grudge symmetric). This needs each system's configuration to make peers dial the proxies;
//!   the mapping here is complete and tested, the wiring per system is the controller's.

use anyhow::{bail, Context, Result};
use async_trait::async_trait;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use crate::control::{net_sh_ok, NodeControl};
use crate::grudge::{Cut, Grudge};
use crate::toxiproxy::{self, Stream, Toxic, ToxicKind};

/// Installs and removes partitions.
#[async_trait]
pub trait Partitioner: Send + Sync {
    /// `iptables` or `proxy`, for the record.
    fn mechanism(&self) -> &'static str;

    /// Checks that the mechanism works on every node before the run relies on it.
    async fn prepare(&self) -> Result<()>;

    /// Replaces whatever partition is in force with `grudge`. Returns a description of what was
    /// installed, for the history.
    async fn apply(&self, grudge: &Grudge) -> Result<Value>;

    /// Removes every cut this mechanism installed, on every node. Idempotent.
    async fn heal(&self) -> Result<()>;
}

/// Our chains. Heal flushes these and nothing else.
pub const CHAIN_IN: &str = "FAULTLINE-IN";
pub const CHAIN_OUT: &str = "FAULTLINE-OUT";

/// iptables DROP rules inside the node containers.
pub struct Iptables {
    ctl: Arc<dyn NodeControl>,
}

impl Iptables {
    pub fn new(ctl: Arc<dyn NodeControl>) -> Iptables {
        Iptables { ctl }
    }
}

/// The rules one node needs for a grudge: sources to drop on input, destinations on output.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NodeRules {
    pub drop_input_from: BTreeSet<IpAddr>,
    pub drop_output_to: BTreeSet<IpAddr>,
}

/// Per node, the rules that implement `grudge` (pure; `ips` maps every node to its address).
pub fn iptables_rules(
    grudge: &Grudge,
    ips: &BTreeMap<String, IpAddr>,
) -> Result<BTreeMap<String, NodeRules>> {
    let mut rules: BTreeMap<String, NodeRules> = grudge
        .nodes()
        .map(|n| (n.clone(), NodeRules::default()))
        .collect();
    let ip = |n: &str| {
        ips.get(n)
            .copied()
            .with_context(|| format!("no address known for node {n}"))
    };
    for Cut { from, to } in grudge.cuts() {
        let (from_ip, to_ip) = (ip(&from)?, ip(&to)?);
        rules
            .entry(to.clone())
            .or_default()
            .drop_input_from
            .insert(from_ip);
        rules
            .entry(from.clone())
            .or_default()
            .drop_output_to
            .insert(to_ip);
    }
    Ok(rules)
}

fn iptables_bin(ip: &IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "iptables",
        IpAddr::V6(_) => "ip6tables",
    }
}

/// The shell script that makes a node's chains hold exactly `rules` (addresses are formatted
/// from parsed `IpAddr`s, so nothing in the script comes from unchecked text).
pub fn iptables_script(rules: &NodeRules) -> String {
    let mut s = String::from("set -e\n");
    for bin in ["iptables", "ip6tables"] {
        let needed = rules
            .drop_input_from
            .iter()
            .chain(&rules.drop_output_to)
            .any(|ip| iptables_bin(ip) == bin);
        if bin == "ip6tables" && !needed {
            continue;
        }
        for (chain, parent) in [(CHAIN_IN, "INPUT"), (CHAIN_OUT, "OUTPUT")] {
            s.push_str(&format!(
                "{bin} -w 5 -n -L {chain} >/dev/null 2>&1 || {bin} -w 5 -N {chain}\n\
                 {bin} -w 5 -C {parent} -j {chain} 2>/dev/null || {bin} -w 5 -I {parent} 1 -j {chain}\n\
                 {bin} -w 5 -F {chain}\n"
            ));
        }
    }
    for ip in &rules.drop_input_from {
        s.push_str(&format!(
            "{} -w 5 -A {CHAIN_IN} -s {ip} -j DROP\n",
            iptables_bin(ip)
        ));
    }
    for ip in &rules.drop_output_to {
        s.push_str(&format!(
            "{} -w 5 -A {CHAIN_OUT} -d {ip} -j DROP\n",
            iptables_bin(ip)
        ));
    }
    s
}

/// Flushes our chains where they exist; leaves every other rule alone.
pub const IPTABLES_HEAL_SCRIPT: &str = "set -e\n\
for bin in iptables ip6tables; do\n\
  command -v $bin >/dev/null 2>&1 || continue\n\
  for chain in FAULTLINE-IN FAULTLINE-OUT; do\n\
    if $bin -w 5 -n -L $chain >/dev/null 2>&1; then $bin -w 5 -F $chain; fi\n\
  done\n\
done\n";

#[async_trait]
impl Partitioner for Iptables {
    fn mechanism(&self) -> &'static str {
        "iptables"
    }

    async fn prepare(&self) -> Result<()> {
        for node in self.ctl.nodes() {
            net_sh_ok(
                &*self.ctl,
                &node,
                "set -e; command -v iptables >/dev/null || { echo 'iptables is not installed in the image'; exit 1; }; iptables -w 5 -n -L INPUT >/dev/null",
            )
            .await
            .with_context(|| {
                format!("iptables does not work on {node} (the container needs NET_ADMIN)")
            })?;
        }
        Ok(())
    }

    async fn apply(&self, grudge: &Grudge) -> Result<Value> {
        let mut ips = BTreeMap::new();
        for n in grudge.nodes() {
            ips.insert(n.clone(), self.ctl.ip(n).await?);
        }
        let rules = iptables_rules(grudge, &ips)?;
        for (node, r) in &rules {
            net_sh_ok(&*self.ctl, node, &iptables_script(r))
                .await
                .with_context(|| format!("installing partition rules on {node}"))?;
        }
        Ok(json!({"mechanism": "iptables", "grudge": grudge.to_json()}))
    }

    async fn heal(&self) -> Result<()> {
        let mut errors = Vec::new();
        for node in self.ctl.nodes() {
            if let Err(e) = net_sh_ok(&*self.ctl, &node, IPTABLES_HEAL_SCRIPT).await {
                errors.push(format!("{node}: {e:#}"));
            }
        }
        if !errors.is_empty() {
            bail!("flushing partition rules failed: {}", errors.join("; "));
        }
        Ok(())
    }
}

/// One node-to-node link through a proxy: `from` dials `to`'s `port` via the proxy's listener.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Link {
    pub from: String,
    pub to: String,
    /// The peer port on `to` this link reaches.
    pub port: u16,
    /// The port the proxy listens on for this link.
    pub listen_port: u16,
}

impl Link {
    /// The proxy's name: `<from>_to_<to>_<port>`.
    pub fn proxy_name(&self) -> String {
        format!("{}_to_{}_{}", self.from, self.to, self.port)
    }
}

/// Every node-to-node link of a cluster, with a listen port each, and the proxy host the nodes
/// dial. This is what wires a system through proxies: its configuration dials peers through
/// [`LinkPlan::dial`], and the proxy is populated with [`LinkPlan::proxy_configs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkPlan {
    /// Host name or address of the proxy, as the nodes reach it.
    pub proxy_host: String,
    pub links: Vec<Link>,
}

impl LinkPlan {
    /// A link for every ordered pair of distinct nodes and every peer port, listen ports
    /// numbered from `first_listen_port` in a stable order.
    pub fn new(
        nodes: &[String],
        peer_ports: &[u16],
        proxy_host: &str,
        first_listen_port: u16,
    ) -> Result<LinkPlan> {
        Self::build(
            nodes,
            |_| peer_ports.to_vec(),
            proxy_host,
            first_listen_port,
        )
    }

    /// A link for every ordered pair of distinct nodes, to the target's own peer port (`nodes`
    /// are `(name, peer port)`): for systems whose servers each listen for peers on a port of
    /// their own, so that the port alone tells which peer a connection is for.
    pub fn to_own_ports(
        nodes: &[(String, u16)],
        proxy_host: &str,
        first_listen_port: u16,
    ) -> Result<LinkPlan> {
        let names: Vec<String> = nodes.iter().map(|(n, _)| n.clone()).collect();
        let port_of = |to: &str| {
            let own = nodes.iter().find(|(n, _)| n == to).map(|(_, p)| *p);
            own.into_iter().collect()
        };
        Self::build(&names, port_of, proxy_host, first_listen_port)
    }

    /// A link from every node to every other node's `ports_of(to)`, listen ports numbered from
    /// `first_listen_port` in node order.
    fn build(
        nodes: &[String],
        ports_of: impl Fn(&str) -> Vec<u16>,
        proxy_host: &str,
        first_listen_port: u16,
    ) -> Result<LinkPlan> {
        let mut links = Vec::new();
        let mut next = u32::from(first_listen_port);
        for from in nodes {
            for to in nodes {
                if from == to {
                    continue;
                }
                for port in ports_of(to) {
                    let listen_port = u16::try_from(next).map_err(|_| {
                        anyhow::anyhow!(
                            "proxy listen ports run past 65535 from {first_listen_port}"
                        )
                    })?;
                    links.push(Link {
                        from: from.clone(),
                        to: to.clone(),
                        port,
                        listen_port,
                    });
                    next += 1;
                }
            }
        }
        Ok(LinkPlan {
            proxy_host: proxy_host.to_string(),
            links,
        })
    }

    /// `(host, port)` node `from` dials to reach `to`'s `port`: the proxy when a link exists,
    /// else the peer directly (a node dialing itself, or a port that is not proxied).
    pub fn dial(&self, from: &str, to: &str, port: u16) -> (String, u16) {
        match self
            .links
            .iter()
            .find(|l| l.from == from && l.to == to && l.port == port)
        {
            Some(l) => (self.proxy_host.clone(), l.listen_port),
            None => (to.to_string(), port),
        }
    }

    /// The proxies to create: each listens on all addresses at its port and forwards to
    /// `upstream(link)`, usually `"<to>:<port>"` (the peer's name on the run network).
    pub fn proxy_configs(&self, upstream: impl Fn(&Link) -> String) -> Vec<toxiproxy::ProxyConfig> {
        self.links
            .iter()
            .map(|l| {
                toxiproxy::ProxyConfig::new(
                    l.proxy_name(),
                    format!("0.0.0.0:{}", l.listen_port),
                    upstream(l),
                )
            })
            .collect()
    }

    /// The links between `a` and `b` that `a` dials.
    fn dialed_by<'a>(&'a self, a: &'a str, b: &'a str) -> impl Iterator<Item = &'a Link> + 'a {
        self.links.iter().filter(move |l| l.from == a && l.to == b)
    }
}

/// How the proxy mechanism cuts a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutMode {
    /// A `timeout` toxic (timeout 0) on the one stream that carries the cut direction: exact
    /// directed cuts; connections open but data vanishes, as in a real partition.
    BlackHole,
    /// Disable every link between the two nodes: connections are refused or closed (coarser:
    /// any grudge becomes symmetric).
    Disable,
}

/// What the proxy mechanism does to one proxy.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum LinkAction {
    BlackHole { proxy: String, stream: Stream },
    Disable { proxy: String },
}

/// Name of the toxic the black-hole cut installs on one stream.
pub fn partition_toxic_name(stream: Stream) -> String {
    format!("faultline_partition_{stream}")
}

/// Name of the latency toxic on each stream.
pub fn latency_toxic_name(stream: Stream) -> String {
    format!("faultline_latency_{stream}")
}

/// The proxy actions that implement `grudge` on `plan` (pure). A directed cut `a -> b` must stop
/// a's data on every connection between them: upstream on the links a dials, downstream on the
/// links b dials.
pub fn link_actions(grudge: &Grudge, plan: &LinkPlan, mode: CutMode) -> BTreeSet<LinkAction> {
    let mut out = BTreeSet::new();
    for Cut { from, to } in grudge.cuts() {
        for l in plan.dialed_by(&from, &to) {
            out.insert(match mode {
                CutMode::BlackHole => LinkAction::BlackHole {
                    proxy: l.proxy_name(),
                    stream: Stream::Upstream,
                },
                CutMode::Disable => LinkAction::Disable {
                    proxy: l.proxy_name(),
                },
            });
        }
        for l in plan.dialed_by(&to, &from) {
            out.insert(match mode {
                CutMode::BlackHole => LinkAction::BlackHole {
                    proxy: l.proxy_name(),
                    stream: Stream::Downstream,
                },
                CutMode::Disable => LinkAction::Disable {
                    proxy: l.proxy_name(),
                },
            });
        }
    }
    out
}

/// Partitions (and latency) through proxies on node-to-node links.
pub struct ProxyLinks {
    client: toxiproxy::Client,
    plan: LinkPlan,
    mode: CutMode,
}

/// Removes a toxic, treating "not there" as done.
async fn remove_toxic_if_present(
    client: &toxiproxy::Client,
    proxy: &str,
    toxic: &str,
) -> Result<()> {
    match client.remove_toxic(proxy, toxic).await {
        Ok(()) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {toxic} from proxy {proxy}")),
    }
}

impl ProxyLinks {
    pub fn new(client: toxiproxy::Client, plan: LinkPlan, mode: CutMode) -> ProxyLinks {
        ProxyLinks { client, plan, mode }
    }

    pub fn plan(&self) -> &LinkPlan {
        &self.plan
    }

    /// Adds latency (both streams) to every link.
    pub async fn add_latency(&self, latency_ms: u64, jitter_ms: u64) -> Result<Value> {
        for l in &self.plan.links {
            let proxy = l.proxy_name();
            for stream in [Stream::Upstream, Stream::Downstream] {
                let toxic = Toxic::new(
                    ToxicKind::Latency {
                        latency_ms,
                        jitter_ms,
                    },
                    stream,
                )
                .named(latency_toxic_name(stream));
                self.client
                    .add_toxic(&proxy, &toxic)
                    .await
                    .with_context(|| format!("adding latency to proxy {proxy}"))?;
            }
        }
        Ok(
            json!({"mechanism": "proxy", "latency_ms": latency_ms, "jitter_ms": jitter_ms,
                  "links": self.plan.links.len()}),
        )
    }

    /// Removes the latency toxics (missing ones are fine).
    pub async fn remove_latency(&self) -> Result<()> {
        for l in &self.plan.links {
            for stream in [Stream::Upstream, Stream::Downstream] {
                remove_toxic_if_present(&self.client, &l.proxy_name(), &latency_toxic_name(stream))
                    .await?;
            }
        }
        Ok(())
    }

    async fn heal_partition(&self) -> Result<()> {
        for l in &self.plan.links {
            let proxy = l.proxy_name();
            for stream in [Stream::Upstream, Stream::Downstream] {
                remove_toxic_if_present(&self.client, &proxy, &partition_toxic_name(stream))
                    .await?;
            }
            self.client
                .set_enabled(&proxy, true)
                .await
                .with_context(|| format!("enabling proxy {proxy}"))?;
        }
        Ok(())
    }
}

#[async_trait]
impl Partitioner for ProxyLinks {
    fn mechanism(&self) -> &'static str {
        "proxy"
    }

    async fn prepare(&self) -> Result<()> {
        let proxies = self.client.proxies().await.context("listing proxies")?;
        let missing: Vec<String> = self
            .plan
            .links
            .iter()
            .map(Link::proxy_name)
            .filter(|n| !proxies.contains_key(n))
            .collect();
        if !missing.is_empty() {
            bail!(
                "the proxy at {} lacks the node-to-node links {}",
                self.client.base_url(),
                missing.join(", ")
            );
        }
        Ok(())
    }

    async fn apply(&self, grudge: &Grudge) -> Result<Value> {
        self.heal_partition().await?;
        let actions = link_actions(grudge, &self.plan, self.mode);
        for action in &actions {
            match action {
                LinkAction::BlackHole { proxy, stream } => {
                    let toxic = Toxic::new(ToxicKind::Timeout { timeout_ms: 0 }, *stream)
                        .named(partition_toxic_name(*stream));
                    self.client
                        .add_toxic(proxy, &toxic)
                        .await
                        .with_context(|| format!("cutting proxy {proxy} {stream}"))?;
                }
                LinkAction::Disable { proxy } => {
                    self.client
                        .set_enabled(proxy, false)
                        .await
                        .with_context(|| format!("disabling proxy {proxy}"))?;
                }
            }
        }
        Ok(json!({"mechanism": "proxy", "grudge": grudge.to_json(), "links_cut": actions.len()}))
    }

    async fn heal(&self) -> Result<()> {
        self.heal_partition().await?;
        self.remove_latency().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    fn ips(n: usize) -> BTreeMap<String, IpAddr> {
        (1..=n)
            .map(|i| {
                (
                    format!("n{i}"),
                    format!("10.9.0.{}", i + 1).parse().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn isolating_a_node_drops_both_ways_at_both_ends() {
        let g = Grudge::isolate(&nodes(3), "n1").unwrap();
        let r = iptables_rules(&g, &ips(3)).unwrap();
        let show = |ips: &BTreeSet<IpAddr>| {
            ips.iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(show(&r["n1"].drop_input_from), "10.9.0.3,10.9.0.4");
        assert_eq!(show(&r["n1"].drop_output_to), "10.9.0.3,10.9.0.4");
        assert_eq!(show(&r["n2"].drop_input_from), "10.9.0.2");
        assert_eq!(show(&r["n2"].drop_output_to), "10.9.0.2");
    }

    #[test]
    fn a_directed_cut_drops_input_at_the_target_and_output_at_the_source() {
        let g = Grudge::none(&nodes(2)).with_cut("n1", "n2");
        let r = iptables_rules(&g, &ips(2)).unwrap();
        assert_eq!(
            r["n2"].drop_input_from,
            BTreeSet::from(["10.9.0.2".parse().unwrap()])
        );
        assert_eq!(
            r["n1"].drop_output_to,
            BTreeSet::from(["10.9.0.3".parse().unwrap()])
        );
        assert!(r["n1"].drop_input_from.is_empty(), "n2 -> n1 still flows");
        assert!(r["n2"].drop_output_to.is_empty());
    }

    #[test]
    fn the_script_only_touches_our_chains() {
        let g = Grudge::isolate(&nodes(2), "n1").unwrap();
        let r = iptables_rules(&g, &ips(2)).unwrap();
        let script = iptables_script(&r["n1"]);
        assert!(script.contains("-A FAULTLINE-IN -s 10.9.0.3 -j DROP"));
        assert!(script.contains("-A FAULTLINE-OUT -d 10.9.0.3 -j DROP"));
        assert!(script.contains("-F FAULTLINE-IN"));
        for line in script
            .lines()
            .filter(|l| l.contains(" -F ") || l.contains(" -A "))
        {
            assert!(line.contains("FAULTLINE-"), "touches another chain: {line}");
        }
        assert!(
            !script.contains("ip6tables"),
            "no IPv6 rules for IPv4 peers"
        );
        assert!(!IPTABLES_HEAL_SCRIPT.contains("-F INPUT"));
        assert!(!IPTABLES_HEAL_SCRIPT.contains("-F\n"));
    }

    #[test]
    fn missing_addresses_are_an_error() {
        let g = Grudge::isolate(&nodes(3), "n1").unwrap();
        let mut partial = ips(3);
        partial.remove("n3");
        let err = iptables_rules(&g, &partial).unwrap_err().to_string();
        assert!(err.contains("n3"), "{err}");
    }

    fn plan(n: usize, ports: &[u16]) -> LinkPlan {
        LinkPlan::new(&nodes(n), ports, "proxy", 20000).unwrap()
    }

    #[test]
    fn a_plan_to_own_ports_has_one_link_per_ordered_pair_at_the_targets_port() {
        let nodes = [("n1", 2381), ("n2", 2382), ("n3", 2383)].map(|(n, p)| (n.to_string(), p));
        let p = LinkPlan::to_own_ports(&nodes, "proxy", 20000).unwrap();
        assert_eq!(p.links.len(), 6);
        let to: Vec<(&str, &str, u16, u16)> = p
            .links
            .iter()
            .map(|l| (l.from.as_str(), l.to.as_str(), l.port, l.listen_port))
            .collect();
        assert_eq!(to[0], ("n1", "n2", 2382, 20000));
        assert_eq!(to[1], ("n1", "n3", 2383, 20001));
        assert_eq!(to[2], ("n2", "n1", 2381, 20002));
        assert_eq!(
            to[5],
            ("n3", "n2", 2382, 20005),
            "listen ports without gaps"
        );
    }

    #[test]
    fn a_plan_has_a_proxy_per_ordered_pair_and_port_and_dials_through_it() {
        let p = plan(3, &[2888, 3888]);
        assert_eq!(p.links.len(), 12);
        assert_eq!(p.links[0].proxy_name(), "n1_to_n2_2888");
        assert_eq!(p.dial("n1", "n2", 2888), ("proxy".to_string(), 20000));
        assert_eq!(p.dial("n1", "n2", 3888), ("proxy".to_string(), 20001));
        assert_eq!(p.dial("n2", "n1", 2888), ("proxy".to_string(), 20004));
        assert_eq!(
            p.dial("n1", "n1", 2888),
            ("n1".to_string(), 2888),
            "self: direct"
        );
        assert_eq!(
            p.dial("n1", "n2", 2181),
            ("n2".to_string(), 2181),
            "unproxied port"
        );
        let ports: BTreeSet<u16> = p.links.iter().map(|l| l.listen_port).collect();
        assert_eq!(ports.len(), 12, "listen ports are distinct");
        let cfg = p.proxy_configs(|l| format!("{}:{}", l.to, l.port));
        assert_eq!(cfg[0].name, "n1_to_n2_2888");
        assert_eq!(cfg[0].listen, "0.0.0.0:20000");
        assert_eq!(cfg[0].upstream, "n2:2888");
        assert!(
            LinkPlan::new(&nodes(3), &[1], "p", 65531).is_err(),
            "ports past 65535"
        );
    }

    #[test]
    fn black_hole_cuts_exactly_the_streams_carrying_the_cut_direction() {
        // n2 drops traffic from n1; n2 -> n1 flows.
        let g = Grudge::none(&nodes(2)).with_cut("n1", "n2");
        let p = plan(2, &[2380]);
        let actions: Vec<LinkAction> = link_actions(&g, &p, CutMode::BlackHole)
            .into_iter()
            .collect();
        assert_eq!(
            actions,
            vec![
                LinkAction::BlackHole {
                    proxy: "n1_to_n2_2380".into(),
                    stream: Stream::Upstream
                },
                LinkAction::BlackHole {
                    proxy: "n2_to_n1_2380".into(),
                    stream: Stream::Downstream
                },
            ]
        );
        let disabled: Vec<LinkAction> =
            link_actions(&g, &p, CutMode::Disable).into_iter().collect();
        assert_eq!(
            disabled,
            vec![
                LinkAction::Disable {
                    proxy: "n1_to_n2_2380".into()
                },
                LinkAction::Disable {
                    proxy: "n2_to_n1_2380".into()
                },
            ]
        );
    }

    #[test]
    fn halves_of_three_cut_every_link_across_and_none_within() {
        let g = Grudge::halves(&nodes(3)).unwrap();
        let p = plan(3, &[2888, 3888]);
        let actions = link_actions(&g, &p, CutMode::BlackHole);
        // n1 | n2 n3: 4 links across per port, each cut on both streams.
        assert_eq!(actions.len(), 16);
        assert!(!actions.iter().any(|a| matches!(a,
            LinkAction::BlackHole { proxy, .. } if proxy.starts_with("n2_to_n3") || proxy.starts_with("n3_to_n2"))));
        assert_eq!(link_actions(&g, &p, CutMode::Disable).len(), 8);
        assert!(link_actions(&Grudge::none(&nodes(3)), &p, CutMode::Disable).is_empty());
    }
}
