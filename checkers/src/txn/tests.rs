//! The pieces under the checkers: the model lattice, cycle classification, the component
//! search and the real-time edges. Whole histories are tested in checkers/tests/txn_*.rs.

use super::graph::{search, Cycle, EdgeList, Graph, SearchLimits, RT, RW, WR, WW};
use super::{realtime, Kind, Model, Txns};
use crate::formats::{read_str, Format};
use crate::stream::AnomalyKind;
use std::time::Instant;

fn graph(n: usize, edges: &[(u32, u32, u8)]) -> Graph {
    let mut list = EdgeList::default();
    for &(a, b, k) in edges {
        list.add(a, b, k);
    }
    Graph::new(n, list)
}

fn found(g: &Graph, order: u8) -> Vec<(&'static str, Vec<u32>)> {
    let mut limits = SearchLimits::new(1_000_000, None, Instant::now());
    search(g, order, &mut limits)
        .found
        .iter()
        .map(|c| (c.classify().name(), c.steps.iter().map(|s| s.0).collect()))
        .collect()
}

#[test]
fn models_are_ordered_as_the_literature_says() {
    use Model::*;
    assert!(StrictSerializable.implies(SnapshotIsolation));
    assert!(Serializable.implies(RepeatableRead));
    assert!(!RepeatableRead.implies(SnapshotIsolation));
    assert!(!SnapshotIsolation.implies(RepeatableRead));
    assert!(SnapshotIsolation.implies(ReadCommitted));
    assert_eq!(Model::parse("Repeatable Read"), Some(RepeatableRead));
    assert_eq!(
        Model::prohibiting(Kind::G2Item),
        [RepeatableRead, Serializable, StrictSerializable]
    );
    assert_eq!(
        Model::prohibiting(Kind::GSingleRealtime),
        [StrictSerializable]
    );
    assert_eq!(Model::prohibiting(Kind::G1a).len(), 5);
}

#[test]
fn cycles_are_classified_by_their_edges() {
    let c = |kinds: &[u8]| Cycle {
        steps: kinds
            .iter()
            .enumerate()
            .map(|(i, &k)| (i as u32, k))
            .collect(),
    };
    assert_eq!(c(&[WW, WW]).classify(), Kind::G0);
    assert_eq!(c(&[WW, WR]).classify(), Kind::G1c);
    assert_eq!(c(&[RW, WR]).classify(), Kind::GSingle);
    assert_eq!(c(&[RW, WR, RW, WR]).classify(), Kind::GNonadjacent);
    // The last edge and the first are adjacent too.
    assert_eq!(c(&[RW, WR, RW]).classify(), Kind::G2Item);
    assert_eq!(c(&[RW, RW]).classify(), Kind::G2Item);
    assert_eq!(c(&[RW, RT]).classify(), Kind::GSingleRealtime);
}

#[test]
fn each_component_yields_its_worst_anomaly_with_a_shortest_cycle() {
    // Component {0,1,2}: a ww cycle 0->1->0 and a longer rw one; component {3,4}: write skew.
    let g = graph(
        6,
        &[
            (0, 1, WW),
            (1, 0, WW),
            (1, 2, RW),
            (2, 0, WR),
            (3, 4, RW),
            (4, 3, RW),
            (4, 5, WR),
        ],
    );
    assert_eq!(found(&g, 0), [("G0", vec![0, 1]), ("G2-item", vec![3, 4])]);
}

#[test]
fn g_single_is_preferred_over_a_shorter_g2_item() {
    // 0 -rw-> 1 -rw-> 0 is G2-item; 0 -rw-> 1 -wr-> 2 -ww-> 0 is G-single, worse.
    let g = graph(3, &[(0, 1, RW), (1, 0, RW), (1, 2, WR), (2, 0, WW)]);
    assert_eq!(found(&g, 0), [("G-single", vec![0, 1, 2])]);
}

#[test]
fn an_edge_of_two_kinds_is_read_as_the_milder() {
    let g = graph(2, &[(0, 1, RW | WW), (1, 0, WW)]);
    assert_eq!(found(&g, 0), [("G0", vec![0, 1])]);
}

#[test]
fn a_realtime_search_keeps_only_cycles_that_need_real_time() {
    let g = graph(2, &[(0, 1, RT), (1, 0, RW)]);
    assert_eq!(found(&g, RT), [("G-single-realtime", vec![0, 1])]);
    assert!(found(&g, 0).is_empty());
}

#[test]
fn realtime_edges_are_transitively_reduced() {
    // Three sequential transactions on one process, then one concurrent with the last.
    let h = read_str(
        "0 :invoke :txn [[:r :x nil]]\n0 :ok :txn [[:r :x nil]]\n\
         0 :invoke :txn [[:r :x nil]]\n0 :ok :txn [[:r :x nil]]\n\
         0 :invoke :txn [[:r :x nil]]\n1 :invoke :txn [[:r :x nil]]\n\
         0 :ok :txn [[:r :x nil]]\n1 :ok :txn [[:r :x nil]]",
        Some(Format::JepsenLog),
    )
    .unwrap();
    let txns = Txns::read(&h, super::Family::ListAppend).unwrap();
    let mut edges = EdgeList::default();
    realtime(&txns, &mut edges);
    let g = Graph::new(txns.txns.len(), edges);
    let mut got: Vec<(u32, u32)> = Vec::new();
    for (a, b, _) in g.to_edges().into_inner() {
        got.push((a, b));
    }
    // 0 -> 1 -> 2 and 1 -> 3; no 0 -> 2, no 0 -> 3.
    assert_eq!(got, [(0, 1), (1, 2), (1, 3)]);
}
