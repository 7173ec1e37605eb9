//! Partition mechanisms: how a [`Grudge`] becomes dropped packets, and how it is undone.
//!
//! Two mechanisms implement [`Partitioner`]:
//!
//! - [`Iptables`] (the default): DROP rules inside the node containers (they run with NET_ADMIN).
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

use crate::control::{sh_ok, NodeControl};
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
            sh_ok(
                &*self.ctl,
                &node,
                "set -e; command -v iptables >/dev/null || { echo 'iptables is not installed in the image'; exit 1; }; iptables -w 5 -n -L INPUT >/dev/null",
                &[],
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
            sh_ok(&*self.ctl, node, &iptables_script(r), &[])
                .await
                .with_context(|| format!("installing partition rules on {node}"))?;
        }
        Ok(json!({"mechanism": "iptables", "grudge": grudge.to_json()}))
    }

    async fn heal(&self) -> Result<()> {
        let mut errors = Vec::new();
        for node in self.ctl.nodes() {
            if let Err(e) = sh_ok(&*self.ctl, &node, IPTABLES_HEAL_SCRIPT, &[]).await {
                errors.push(format!("{node}: {e:#}"));
            }
        }
        if !errors.is_empty() {
            bail!("flushing partition rules failed: {}", errors.join("; "));
        }
        Ok(())
    }
}

/// Name of the proxy through which `from` dials `to`.
pub fn link_name(from: &str, to: &str) -> String {
    format!("{from}_to_{to}")
}

/// How the proxy mechanism cuts a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutMode {
    /// A `timeout` toxic (timeout 0) on the one stream that carries the cut direction: exact
    /// directed cuts; connections open but data vanishes, as in a real partition.
    BlackHole,
    /// Disable both links between the two nodes: connections are refused or closed.
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

/// The proxy actions that implement `grudge` (pure).
pub fn link_actions(grudge: &Grudge, mode: CutMode) -> BTreeSet<LinkAction> {
    let mut out = BTreeSet::new();
    for Cut { from, to } in grudge.cuts() {
        match mode {
            CutMode::BlackHole => {
                // from dials to: from's data goes upstream. to dials from: from's data comes back
                // downstream.
                out.insert(LinkAction::BlackHole {
                    proxy: link_name(&from, &to),
                    stream: Stream::Upstream,
                });
                out.insert(LinkAction::BlackHole {
                    proxy: link_name(&to, &from),
                    stream: Stream::Downstream,
                });
            }
            CutMode::Disable => {
                out.insert(LinkAction::Disable {
                    proxy: link_name(&from, &to),
                });
                out.insert(LinkAction::Disable {
                    proxy: link_name(&to, &from),
                });
            }
        }
    }
    out
}

/// Every directed link between `nodes` (the proxies a fully wired cluster has).
pub fn all_links(nodes: &[String]) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for a in nodes {
        for b in nodes {
            if a != b {
                v.push((a.clone(), b.clone()));
            }
        }
    }
    v
}

/// Partitions (and latency) through proxies on node-to-node links.
pub struct ProxyLinks {
    client: toxiproxy::Client,
    nodes: Vec<String>,
    mode: CutMode,
}

/// Name of the latency toxic on each stream.
pub fn latency_toxic_name(stream: Stream) -> String {
    format!("faultline_latency_{stream}")
}

impl ProxyLinks {
    pub fn new(client: toxiproxy::Client, nodes: Vec<String>, mode: CutMode) -> ProxyLinks {
        ProxyLinks {
            client,
            nodes,
            mode,
        }
    }

    /// Adds latency (both streams) to every link.
    pub async fn add_latency(&self, latency_ms: u64, jitter_ms: u64) -> Result<Value> {
        for (a, b) in all_links(&self.nodes) {
            let proxy = link_name(&a, &b);
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
                  "links": all_links(&self.nodes).len()}),
        )
    }

    /// Removes the latency toxics (missing ones are fine).
    pub async fn remove_latency(&self) -> Result<()> {
        for (a, b) in all_links(&self.nodes) {
            let proxy = link_name(&a, &b);
            for stream in [Stream::Upstream, Stream::Downstream] {
                match self
                    .client
                    .remove_toxic(&proxy, &latency_toxic_name(stream))
                    .await
                {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e).with_context(|| format!("proxy {proxy}")),
                }
            }
        }
        Ok(())
    }

    async fn heal_partition(&self) -> Result<()> {
        for (a, b) in all_links(&self.nodes) {
            let proxy = link_name(&a, &b);
            for stream in [Stream::Upstream, Stream::Downstream] {
                match self
                    .client
                    .remove_toxic(&proxy, &partition_toxic_name(stream))
                    .await
                {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e).with_context(|| format!("proxy {proxy}")),
                }
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
        let missing: Vec<String> = all_links(&self.nodes)
            .iter()
            .map(|(a, b)| link_name(a, b))
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
        let actions = link_actions(grudge, self.mode);
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

    #[test]
    fn black_hole_cuts_exactly_the_streams_carrying_the_cut_direction() {
        // n2 drops traffic from n1; n2 -> n1 flows.
        let g = Grudge::none(&nodes(2)).with_cut("n1", "n2");
        let actions: Vec<LinkAction> = link_actions(&g, CutMode::BlackHole).into_iter().collect();
        assert_eq!(
            actions,
            vec![
                LinkAction::BlackHole {
                    proxy: "n1_to_n2".into(),
                    stream: Stream::Upstream
                },
                LinkAction::BlackHole {
                    proxy: "n2_to_n1".into(),
                    stream: Stream::Downstream
                },
            ]
        );
        let disabled: Vec<LinkAction> = link_actions(&g, CutMode::Disable).into_iter().collect();
        assert_eq!(
            disabled,
            vec![
                LinkAction::Disable {
                    proxy: "n1_to_n2".into()
                },
                LinkAction::Disable {
                    proxy: "n2_to_n1".into()
                },
            ]
        );
    }

    #[test]
    fn halves_of_three_cut_four_links_both_streams() {
        let g = Grudge::halves(&nodes(3)).unwrap();
        let actions = link_actions(&g, CutMode::BlackHole);
        // n1 | n2 n3: links n1<->n2 and n1<->n3, each direction of each link's two streams.
        assert_eq!(actions.len(), 8);
        assert!(!actions.iter().any(|a| matches!(a,
            LinkAction::BlackHole { proxy, .. } if proxy == "n2_to_n3" || proxy == "n3_to_n2")));
        assert_eq!(link_actions(&g, CutMode::Disable).len(), 4);
        assert_eq!(all_links(&nodes(3)).len(), 6);
    }
}
