//! Network partitions as a grudge: for each node, the set of nodes it drops traffic from.
//!
//! A grudge is pure data, computed before any packet is touched, so every partition shape is
//! unit-tested here and the mechanisms (iptables rules, proxy links) only translate it. The
//! directed form matters: a grudge `{b: {a}}` cuts traffic *from a to b* only, which is what an
//! asymmetric shape needs; the shapes built from components (halves, isolation, bridge) are
//! symmetric. [`Grudge::cuts`] lists the directed cuts a mechanism must install.
//!
//! Shapes (after Jepsen's `jepsen.nemesis`):
//! - halves: the node list in order, split into a smaller first half and a larger second half;
//! - random halves: the same after a seeded shuffle;
//! - isolate one node from all others (the leader / primary is resolved by the caller);
//! - bridge: two halves that cannot talk to each other, and one node in the middle that talks to
//!   both (each side still reaches a majority through it, so two leaders can claim one);
//! - majorities ring: every node sees a majority, but no two nodes see the same majority. Built
//!   as symmetric windows on a ring, which needs at least four nodes (with three, every majority
//!   of two shared by a symmetric link is the same majority seen from both ends).

use anyhow::{bail, ensure, Result};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

use crate::rng::SplitMix64;

/// node -> nodes it drops traffic from. Nodes with nothing to drop are present with an empty set,
/// so a grudge also names every node it was built for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grudge {
    drops: BTreeMap<String, BTreeSet<String>>,
}

/// One directed cut: traffic from `from` to `to` is dropped.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cut {
    pub from: String,
    pub to: String,
}

impl Grudge {
    /// A grudge over `nodes` with nothing dropped.
    pub fn none(nodes: &[String]) -> Grudge {
        Grudge {
            drops: nodes.iter().map(|n| (n.clone(), BTreeSet::new())).collect(),
        }
    }

    /// Every component drops traffic from every node outside it. Components must be disjoint.
    pub fn from_components(components: &[Vec<String>]) -> Grudge {
        let all: Vec<&String> = components.iter().flatten().collect();
        let distinct: BTreeSet<&String> = all.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            all.len(),
            "components overlap: {components:?}"
        );
        let mut drops = BTreeMap::new();
        for (i, comp) in components.iter().enumerate() {
            let outside: BTreeSet<String> = components
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .flat_map(|(_, c)| c.iter().cloned())
                .collect();
            for n in comp {
                drops.insert(n.clone(), outside.clone());
            }
        }
        Grudge { drops }
    }

    /// The node list split in order: the first `n/2` nodes against the rest.
    pub fn halves(nodes: &[String]) -> Result<Grudge> {
        ensure!(
            nodes.len() >= 2,
            "halves needs at least 2 nodes, got {}",
            nodes.len()
        );
        let (a, b) = nodes.split_at(nodes.len() / 2);
        Ok(Grudge::from_components(&[a.to_vec(), b.to_vec()]))
    }

    /// Halves after a seeded shuffle.
    pub fn random_halves(nodes: &[String], rng: &mut SplitMix64) -> Result<Grudge> {
        let mut shuffled = nodes.to_vec();
        rng.shuffle(&mut shuffled);
        Grudge::halves(&shuffled)
    }

    /// `node` against everyone else.
    pub fn isolate(nodes: &[String], node: &str) -> Result<Grudge> {
        ensure!(
            nodes.iter().any(|n| n == node),
            "cannot isolate {node}: not one of {nodes:?}"
        );
        ensure!(nodes.len() >= 2, "isolating needs at least 2 nodes");
        let rest: Vec<String> = nodes.iter().filter(|n| *n != node).cloned().collect();
        Ok(Grudge::from_components(&[vec![node.to_string()], rest]))
    }

    /// Two halves joined only through the middle node of `nodes` (in the order given).
    pub fn bridge(nodes: &[String]) -> Result<Grudge> {
        ensure!(
            nodes.len() >= 3,
            "bridge needs at least 3 nodes, got {}",
            nodes.len()
        );
        let mid = nodes.len() / 2;
        let left = &nodes[..mid];
        let right = &nodes[mid + 1..];
        let mut g = Grudge::none(nodes);
        for l in left {
            for r in right {
                g.drop_both(l, r);
            }
        }
        Ok(g)
    }

    /// Nodes on a ring (in the order given) each see the `d` nearest nodes on either side, with
    /// the smallest `d` for which `2d + 1` is a majority.
    pub fn majorities_ring(nodes: &[String]) -> Result<Grudge> {
        let n = nodes.len();
        if n < 4 {
            bail!("majorities ring needs at least 4 nodes, got {n}");
        }
        let majority = n / 2 + 1;
        let d = majority / 2; // 2d + 1 >= majority, and 2d + 1 < n for n >= 4
        let mut g = Grudge::none(nodes);
        for i in 0..n {
            for j in 0..n {
                let dist = (i as isize - j as isize).unsigned_abs();
                let ring_dist = dist.min(n - dist);
                if ring_dist > d {
                    g.drops
                        .get_mut(&nodes[i])
                        .expect("node")
                        .insert(nodes[j].clone());
                }
            }
        }
        Ok(g)
    }

    /// The same grudge with one more directed cut: `to` also drops traffic from `from`.
    pub fn with_cut(mut self, from: &str, to: &str) -> Grudge {
        assert_ne!(from, to, "a node cannot drop its own traffic");
        self.drops.entry(from.to_string()).or_default();
        self.drops
            .entry(to.to_string())
            .or_default()
            .insert(from.to_string());
        self
    }

    fn drop_both(&mut self, a: &str, b: &str) {
        self.drops
            .entry(a.to_string())
            .or_default()
            .insert(b.to_string());
        self.drops
            .entry(b.to_string())
            .or_default()
            .insert(a.to_string());
    }

    /// The nodes this grudge was built for.
    pub fn nodes(&self) -> impl Iterator<Item = &String> {
        self.drops.keys()
    }

    /// The nodes `node` drops traffic from.
    pub fn drops_from(&self, node: &str) -> Option<&BTreeSet<String>> {
        self.drops.get(node)
    }

    /// Every directed cut, ordered.
    pub fn cuts(&self) -> BTreeSet<Cut> {
        self.drops
            .iter()
            .flat_map(|(to, froms)| {
                froms.iter().map(move |from| Cut {
                    from: from.clone(),
                    to: to.clone(),
                })
            })
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.drops.values().all(|s| s.is_empty())
    }

    pub fn is_symmetric(&self) -> bool {
        self.cuts()
            .iter()
            .all(|c| self.drops.get(&c.from).is_some_and(|s| s.contains(&c.to)))
    }

    /// Whether `a` can send to `b` directly.
    pub fn allows(&self, from: &str, to: &str) -> bool {
        !self.drops.get(to).is_some_and(|s| s.contains(from))
    }

    /// The nodes `node` exchanges traffic with in both directions, itself included.
    pub fn sees(&self, node: &str) -> BTreeSet<String> {
        self.drops
            .keys()
            .filter(|o| *o == node || (self.allows(node, o) && self.allows(o, node)))
            .cloned()
            .collect()
    }

    /// `{"n1": ["n2", "n3"], ...}` with only the nodes that drop something, as in the history.
    pub fn to_json(&self) -> Value {
        let m: serde_json::Map<String, Value> = self
            .drops
            .iter()
            .filter(|(_, s)| !s.is_empty())
            .map(|(k, s)| (k.clone(), json!(s)))
            .collect();
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    /// Renders a grudge as `to<-from,from ...` lines, one per node, empty sets shown as `-`.
    fn show(g: &Grudge) -> String {
        g.nodes()
            .map(|n| {
                let froms: Vec<&str> = g
                    .drops_from(n)
                    .unwrap()
                    .iter()
                    .map(String::as_str)
                    .collect();
                if froms.is_empty() {
                    format!("{n}<-")
                } else {
                    format!("{n}<-{}", froms.join(","))
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn halves_put_the_smaller_half_first() {
        assert_eq!(
            show(&Grudge::halves(&nodes(5)).unwrap()),
            "n1<-n3,n4,n5 n2<-n3,n4,n5 n3<-n1,n2 n4<-n1,n2 n5<-n1,n2"
        );
        assert_eq!(
            show(&Grudge::halves(&nodes(3)).unwrap()),
            "n1<-n2,n3 n2<-n1 n3<-n1"
        );
        assert!(Grudge::halves(&nodes(1)).is_err());
    }

    #[test]
    fn random_halves_depend_only_on_the_seed() {
        let a = Grudge::random_halves(&nodes(5), &mut SplitMix64::new(9)).unwrap();
        let b = Grudge::random_halves(&nodes(5), &mut SplitMix64::new(9)).unwrap();
        assert_eq!(a, b);
        assert!(a.is_symmetric());
        let sizes: BTreeSet<usize> = a.nodes().map(|n| a.sees(n).len()).collect();
        assert_eq!(sizes, BTreeSet::from([2, 3]), "a 2/3 split");
        let differs = (0..20)
            .any(|s| Grudge::random_halves(&nodes(5), &mut SplitMix64::new(s)).unwrap() != a);
        assert!(differs, "other seeds give other splits");
    }

    #[test]
    fn isolate_cuts_one_node_from_all_others() {
        let g = Grudge::isolate(&nodes(3), "n2").unwrap();
        assert_eq!(show(&g), "n1<-n2 n2<-n1,n3 n3<-n2");
        assert_eq!(g.sees("n2"), BTreeSet::from(["n2".to_string()]));
        assert!(g.allows("n1", "n3"));
        assert!(Grudge::isolate(&nodes(3), "n9").is_err());
    }

    #[test]
    fn bridge_keeps_the_middle_node_talking_to_both_sides() {
        let g = Grudge::bridge(&nodes(5)).unwrap();
        assert_eq!(show(&g), "n1<-n4,n5 n2<-n4,n5 n3<- n4<-n1,n2 n5<-n1,n2");
        assert_eq!(g.sees("n3").len(), 5);
        assert_eq!(
            show(&Grudge::bridge(&nodes(3)).unwrap()),
            "n1<-n3 n2<- n3<-n1"
        );
        assert!(Grudge::bridge(&nodes(2)).is_err());
    }

    #[test]
    fn majorities_ring_gives_every_node_a_different_majority() {
        for n in 4..=9 {
            let ns = nodes(n);
            let g = Grudge::majorities_ring(&ns).unwrap();
            assert!(g.is_symmetric());
            let majorities: BTreeSet<BTreeSet<String>> = ns.iter().map(|x| g.sees(x)).collect();
            assert_eq!(majorities.len(), n, "{n} nodes: all majorities differ");
            for x in &ns {
                let seen = g.sees(x).len();
                assert!(seen > n / 2 && seen < n, "{n} nodes: {x} sees {seen}");
            }
        }
        assert_eq!(
            show(&Grudge::majorities_ring(&nodes(5)).unwrap()),
            "n1<-n3,n4 n2<-n4,n5 n3<-n1,n5 n4<-n1,n2 n5<-n2,n3"
        );
        assert!(Grudge::majorities_ring(&nodes(3)).is_err());
    }

    #[test]
    fn cuts_are_directed_and_json_lists_only_droppers() {
        let g = Grudge::none(&nodes(3)).with_cut("n1", "n2");
        assert!(!g.is_symmetric());
        assert_eq!(
            g.cuts().into_iter().collect::<Vec<_>>(),
            vec![Cut {
                from: "n1".into(),
                to: "n2".into()
            }]
        );
        assert!(!g.allows("n1", "n2"));
        assert!(g.allows("n2", "n1"));
        assert_eq!(g.to_json(), json!({"n2": ["n1"]}));
        assert!(Grudge::none(&nodes(3)).is_empty());
    }
}
