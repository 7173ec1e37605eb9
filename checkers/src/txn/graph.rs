//! The dependency graph and its cycle search.
//!
//! Nodes are transactions (dense ids); an edge carries a byte of kinds (`WW | WR | RW | RT`), so
//! two transactions related in several ways share one edge. The graph is an adjacency array
//! (offsets, targets, kinds), built once from an edge list sorted and merged: no per-node
//! allocation, a few bytes per edge.
//!
//! [`search`] splits the graph into strongly connected components (Tarjan, iterative, so a
//! million-node component cannot overflow the stack) and asks each component with a cycle for
//! its worst anomaly, in the order of [`search_component`]. Every search is a breadth-first
//! search restricted to one component, so a cycle found is a shortest one through its start, and
//! every search spends from one budget of edge visits ([`SearchLimits`]).

use super::Kind;
use std::time::{Duration, Instant};

/// Write-write: `b` installed the version right after (or known to follow) `a`'s.
pub const WW: u8 = 1;
/// Write-read: `b` read what `a` wrote.
pub const WR: u8 = 2;
/// Read-write (anti-dependency): `a` read a version that `b` overwrote.
pub const RW: u8 = 4;
/// Real time: `a` completed before `b` was invoked.
pub const RT: u8 = 8;
const DATA: u8 = WW | WR | RW;
const NONE: u32 = u32::MAX;

pub fn kind_name(k: u8) -> &'static str {
    match k {
        WW => "ww",
        WR => "wr",
        RW => "rw",
        RT => "realtime",
        _ => "?",
    }
}

/// Edges as they are inferred, before the graph is built.
#[derive(Debug, Default)]
pub struct EdgeList(Vec<(u32, u32, u8)>);

impl EdgeList {
    /// Adds `a -> b` of `kind`; an edge from a transaction to itself is no dependency.
    pub fn add(&mut self, a: u32, b: u32, kind: u8) {
        if a != b {
            self.0.push((a, b, kind));
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The edges as (from, to, kinds).
    #[cfg(test)]
    pub fn into_inner(self) -> Vec<(u32, u32, u8)> {
        self.0
    }
}

/// A directed graph over `0..n` in adjacency-array form; each node's targets are sorted.
#[derive(Debug)]
pub struct Graph {
    offsets: Vec<usize>,
    targets: Vec<u32>,
    kinds: Vec<u8>,
}

impl Graph {
    pub fn new(n: usize, edges: EdgeList) -> Graph {
        let mut edges = edges.0;
        edges.sort_unstable_by_key(|&(a, b, _)| (a, b));
        let mut offsets = vec![0usize; n + 1];
        let mut targets = Vec::with_capacity(edges.len());
        let mut kinds: Vec<u8> = Vec::with_capacity(edges.len());
        let mut last: Option<(u32, u32)> = None;
        for (a, b, k) in edges {
            assert!(
                (a as usize) < n && (b as usize) < n,
                "an edge outside the graph"
            );
            if last == Some((a, b)) {
                *kinds.last_mut().expect("a previous edge") |= k;
                continue;
            }
            last = Some((a, b));
            offsets[a as usize + 1] += 1;
            targets.push(b);
            kinds.push(k);
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        Graph {
            offsets,
            targets,
            kinds,
        }
    }

    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// The edges again, to build a larger graph from this one.
    pub fn to_edges(&self) -> EdgeList {
        let mut out = Vec::with_capacity(self.targets.len());
        for a in 0..self.len() {
            for e in self.offsets[a]..self.offsets[a + 1] {
                out.push((a as u32, self.targets[e], self.kinds[e]));
            }
        }
        EdgeList(out)
    }

    fn edges(&self, a: u32) -> std::ops::Range<usize> {
        self.offsets[a as usize]..self.offsets[a as usize + 1]
    }
}

/// The search budget: edge visits, and optionally wall time.
#[derive(Debug)]
pub struct SearchLimits {
    steps_max: u64,
    steps: u64,
    time_limit: Option<Duration>,
    started: Instant,
    exhausted: bool,
    /// While set, visits are counted but never refused (the one search that must finish).
    free: bool,
}

impl SearchLimits {
    pub fn new(steps_max: u64, time_limit: Option<Duration>, started: Instant) -> Self {
        SearchLimits {
            steps_max,
            steps: 0,
            time_limit,
            started,
            exhausted: false,
            free: false,
        }
    }

    pub fn steps_taken(&self) -> u64 {
        self.steps
    }

    /// Spends one edge visit; false once the budget is gone (and from then on).
    fn spend(&mut self) -> bool {
        self.steps += 1;
        if self.steps >= self.steps_max {
            self.exhausted = true;
        }
        if self.steps.is_multiple_of(1 << 20) {
            if let Some(limit) = self.time_limit {
                if self.started.elapsed() > limit {
                    self.exhausted = true;
                }
            }
        }
        self.free || !self.exhausted
    }
}

/// A cycle: each transaction with the kind of the edge to the next (the last to the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    pub steps: Vec<(u32, u8)>,
}

impl Cycle {
    /// Rotates the cycle to start at its lowest node (the earliest transaction), so evidence
    /// reads in history order and a cycle has one form.
    pub fn start_at_min(&mut self) {
        if let Some(i) = (0..self.steps.len()).min_by_key(|&i| self.steps[i].0) {
            self.steps.rotate_left(i);
        }
    }

    /// The anomaly this cycle proves: G0 (ww only), G1c (ww and wr), G-single (one rw),
    /// G-nonadjacent (several rw, none adjacent), else G2-item; `-realtime` when it needs a
    /// real-time edge.
    pub fn classify(&self) -> Kind {
        let kinds: Vec<u8> = self.steps.iter().map(|s| s.1).collect();
        let rw = kinds.iter().filter(|&&k| k == RW).count();
        let n = kinds.len();
        let adjacent = (0..n).any(|i| kinds[i] == RW && kinds[(i + 1) % n] == RW);
        let realtime = kinds.contains(&RT);
        let base = if rw == 0 && !kinds.contains(&WR) {
            0
        } else if rw == 0 {
            1
        } else if rw == 1 {
            2
        } else if !adjacent {
            3
        } else {
            4
        };
        const PLAIN: [Kind; 5] = [
            Kind::G0,
            Kind::G1c,
            Kind::GSingle,
            Kind::GNonadjacent,
            Kind::G2Item,
        ];
        const REALTIME: [Kind; 5] = [
            Kind::G0Realtime,
            Kind::G1cRealtime,
            Kind::GSingleRealtime,
            Kind::GNonadjacentRealtime,
            Kind::G2ItemRealtime,
        ];
        if realtime {
            REALTIME[base]
        } else {
            PLAIN[base]
        }
    }
}

/// What [`search`] found.
#[derive(Debug, Default)]
pub struct Found {
    /// One cycle per component with a cycle: its worst anomaly.
    pub found: Vec<Cycle>,
    /// Components with a cycle.
    pub components: usize,
    /// True when some component's G-single or G-nonadjacent search stopped for the budget.
    pub incomplete_single: bool,
}

/// Finds the worst anomaly of every strongly connected component of `g` over data edges plus
/// the `order` edges (`0` or `RT`). With `RT`, only cycles that use a real-time edge are kept
/// (the caller runs it when the data edges alone have no cycle).
pub fn search(g: &Graph, order: u8, limits: &mut SearchLimits) -> Found {
    let n = g.len();
    let all: Vec<u32> = (0..n as u32).collect();
    let mut scratch = Scratch::new(n);
    scratch.enter(&all);
    let comps = components(g, &all, &scratch.local, DATA | order);
    scratch.leave(&all);
    let mut found = Found::default();
    for comp in comps.nontrivial() {
        found.components += 1;
        scratch.enter(&comp);
        let outcome = search_component(g, &comp, &mut scratch, order, limits);
        scratch.leave(&comp);
        found.incomplete_single |= outcome.incomplete_single;
        if let Some(mut c) = outcome.cycle {
            c.start_at_min();
            if order == 0 || c.steps.iter().any(|s| s.1 == RT) {
                found.found.push(c);
            }
        }
    }
    found
}

struct ComponentOutcome {
    cycle: Option<Cycle>,
    incomplete_single: bool,
}

/// Rw edges tried per component in the G-nonadjacent search, whose breadth-first searches cost
/// the most (four states per node).
const NONADJACENT_TRIES_MAX: usize = 256;

/// The worst anomaly of one strongly connected component (its nodes entered in `s`):
/// 1. G0: a cycle of ww (and order) edges;
/// 2. G1c: a cycle of ww and wr (and order) edges; without one the ww/wr subgraph is acyclic,
///    and Tarjan's completion order is a topological rank that prunes step 3;
/// 3. G-single: an rw edge `a -> b` and a path `b -> a` without rw;
/// 4. G-nonadjacent: an rw edge `a -> b` and a path `b -> a` in which no two rw edges touch;
/// 5. G2-item: any cycle (one always exists in a component).
fn search_component(
    g: &Graph,
    comp: &[u32],
    s: &mut Scratch,
    order: u8,
    limits: &mut SearchLimits,
) -> ComponentOutcome {
    let done = |cycle| ComponentOutcome {
        cycle: Some(cycle),
        incomplete_single: false,
    };
    for filter in [WW | order, WW | WR | order] {
        let sub = components(g, comp, &s.local, filter);
        if let Some(inner) = sub.nontrivial().into_iter().next() {
            // Restrict the search to the inner component: a cycle through its first node exists.
            let start = inner[0];
            let keep: Vec<bool> = {
                let mut k = vec![false; comp.len()];
                for &v in &inner {
                    k[s.local[v as usize] as usize] = true;
                }
                k
            };
            let path = s.bfs(
                g,
                start,
                0,
                start,
                filter,
                |_, m| plain_step(m, filter),
                |st| st == 0,
                |l| keep[l as usize],
                limits,
            );
            if let Some(steps) = path {
                return done(Cycle { steps });
            }
            // Budget gone: fall through to the general cycle below, which is cheap.
            break;
        }
        if filter == WW | WR | order {
            // Acyclic: keep the topological rank for the G-single pruning.
            s.rank = sub.comp;
        }
    }
    let no_rw = WW | WR | order;
    let mut incomplete_single = false;
    // 3. G-single.
    let rank = std::mem::take(&mut s.rank);
    let mut rw_edges: Vec<(u32, u32)> = Vec::new();
    for &a in comp {
        for e in g.edges(a) {
            let b = g.targets[e];
            if g.kinds[e] & RW != 0 && s.local[b as usize] != NONE {
                rw_edges.push((a, b));
            }
        }
    }
    if rank.len() == comp.len() {
        for &(a, b) in &rw_edges {
            if limits.exhausted {
                incomplete_single = true;
                break;
            }
            let (ra, rb) = (
                rank[s.local[a as usize] as usize],
                rank[s.local[b as usize] as usize],
            );
            // Along ww/wr edges the rank strictly falls (sinks complete first).
            if rb <= ra {
                continue;
            }
            let path = s.bfs(
                g,
                b,
                0,
                a,
                no_rw,
                |_, m| plain_step(m, no_rw),
                |st| st == 0,
                |l| rank[l as usize] >= ra,
                limits,
            );
            if let Some(mut steps) = path {
                steps.insert(0, (a, RW));
                return done(Cycle { steps });
            }
        }
    } else {
        incomplete_single = true;
    }
    // 4. G-nonadjacent. States: bit 0 = the last edge was rw, bit 1 = an rw edge was taken.
    let all = DATA | order;
    for &(a, b) in rw_edges.iter().take(NONADJACENT_TRIES_MAX) {
        if limits.exhausted {
            incomplete_single = true;
            break;
        }
        let path = s.bfs(
            g,
            b,
            1,
            a,
            all,
            nonadjacent_step(order),
            |st| st == 2,
            |_| true,
            limits,
        );
        if let Some(mut steps) = path {
            steps.insert(0, (a, RW));
            return done(Cycle { steps });
        }
    }
    if rw_edges.len() > NONADJACENT_TRIES_MAX {
        incomplete_single = true;
    }
    // 5. Any cycle: a breadth-first search back to the first node. It needs at most one visit
    // of every edge of the component, so it runs even when the budget is gone.
    limits.free = true;
    let start = comp[0];
    let cycle = s
        .bfs(
            g,
            start,
            0,
            start,
            all,
            |_, m| plain_step(m, all),
            |st| st == 0,
            |_| true,
            limits,
        )
        .map(|steps| Cycle { steps });
    limits.free = false;
    debug_assert!(
        cycle.is_some(),
        "a strongly connected component without a cycle"
    );
    ComponentOutcome {
        cycle,
        incomplete_single,
    }
}

/// One transition for searches that do not count rw edges: the mildest kind the filter allows.
fn plain_step(mask: u8, filter: u8) -> [(u8, u8); 2] {
    let m = mask & filter;
    let kind = [WW, WR, RT, RW]
        .into_iter()
        .find(|k| m & k != 0)
        .unwrap_or(0);
    [(0, kind), (0, 0)]
}

/// Transitions of the G-nonadjacent search: an edge may be taken as rw (never right after
/// another rw) or, when it has another kind, as that kind.
fn nonadjacent_step(order: u8) -> impl Fn(u8, u8) -> [(u8, u8); 2] {
    move |state: u8, mask: u8| {
        let mut out = [(0, 0), (0, 0)];
        let other = mask & (WW | WR | order);
        if other != 0 {
            let kind = [WW, WR, RT]
                .into_iter()
                .find(|k| other & k != 0)
                .unwrap_or(0);
            out[0] = (state & 2, kind);
        }
        if mask & RW != 0 && state & 1 == 0 {
            out[1] = (3, RW);
        }
        out
    }
}

/// Strongly connected components of the subgraph on `nodes` (entered in `local`) over edges of
/// `filter`: for each node (by local index) its component, numbered in completion order, which
/// is a reverse topological order of the components.
struct Components {
    comp: Vec<u32>,
    count: u32,
    nodes: Vec<u32>,
}

impl Components {
    /// Components of two or more nodes, as global node lists.
    fn nontrivial(&self) -> Vec<Vec<u32>> {
        let mut sizes = vec![0u32; self.count as usize];
        for &c in &self.comp {
            sizes[c as usize] += 1;
        }
        let mut slot = vec![NONE; self.count as usize];
        let mut out: Vec<Vec<u32>> = Vec::new();
        for (l, &c) in self.comp.iter().enumerate() {
            if sizes[c as usize] < 2 {
                continue;
            }
            if slot[c as usize] == NONE {
                slot[c as usize] = out.len() as u32;
                out.push(Vec::with_capacity(sizes[c as usize] as usize));
            }
            out[slot[c as usize] as usize].push(self.nodes[l]);
        }
        out
    }
}

/// Tarjan's algorithm with an explicit stack of frames (node, next edge).
fn components(g: &Graph, nodes: &[u32], local: &[u32], filter: u8) -> Components {
    let m = nodes.len();
    let mut index = vec![NONE; m];
    let mut low = vec![0u32; m];
    let mut on_stack = vec![false; m];
    let mut comp = vec![NONE; m];
    let mut stack: Vec<u32> = Vec::new();
    let mut frames: Vec<(u32, usize)> = Vec::new();
    let mut next = 0u32;
    let mut count = 0u32;
    for root in 0..m as u32 {
        if index[root as usize] != NONE {
            continue;
        }
        index[root as usize] = next;
        low[root as usize] = next;
        next += 1;
        stack.push(root);
        on_stack[root as usize] = true;
        frames.push((root, g.offsets[nodes[root as usize] as usize]));
        while let Some(&(v, pos)) = frames.last() {
            let end = g.offsets[nodes[v as usize] as usize + 1];
            if pos < end {
                frames.last_mut().expect("a frame").1 += 1;
                if g.kinds[pos] & filter == 0 {
                    continue;
                }
                let w = local[g.targets[pos] as usize];
                if w == NONE {
                    continue;
                }
                if index[w as usize] == NONE {
                    index[w as usize] = next;
                    low[w as usize] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w as usize] = true;
                    frames.push((w, g.offsets[nodes[w as usize] as usize]));
                } else if on_stack[w as usize] {
                    low[v as usize] = low[v as usize].min(index[w as usize]);
                }
                continue;
            }
            frames.pop();
            if let Some(&(p, _)) = frames.last() {
                low[p as usize] = low[p as usize].min(low[v as usize]);
            }
            if low[v as usize] == index[v as usize] {
                loop {
                    let w = stack.pop().expect("the component's nodes are on the stack");
                    on_stack[w as usize] = false;
                    comp[w as usize] = count;
                    if w == v {
                        break;
                    }
                }
                count += 1;
            }
        }
    }
    Components {
        comp,
        count,
        nodes: nodes.to_vec(),
    }
}

/// Reusable arrays: global node -> local index for the component being searched, and the
/// breadth-first search's parents (four states per local node), reset through a touched list.
struct Scratch {
    local: Vec<u32>,
    parent: Vec<u32>,
    parent_kind: Vec<u8>,
    touched: Vec<u32>,
    rank: Vec<u32>,
    /// Local index -> global node, for the nodes entered.
    globals: Vec<u32>,
}

impl Scratch {
    fn new(n: usize) -> Self {
        Scratch {
            local: vec![NONE; n],
            parent: Vec::new(),
            parent_kind: Vec::new(),
            touched: Vec::new(),
            rank: Vec::new(),
            globals: Vec::new(),
        }
    }

    fn enter(&mut self, nodes: &[u32]) {
        self.globals.clear();
        self.globals.extend_from_slice(nodes);
        for (i, &v) in nodes.iter().enumerate() {
            self.local[v as usize] = i as u32;
        }
        if self.parent.len() < nodes.len() * 4 {
            self.parent.resize(nodes.len() * 4, NONE);
            self.parent_kind.resize(nodes.len() * 4, 0);
        }
    }

    fn leave(&mut self, nodes: &[u32]) {
        for &v in nodes {
            self.local[v as usize] = NONE;
        }
        self.rank.clear();
    }

    /// The shortest path from `from` (in state `from_state`) to `to` (in a state `accept`s), of
    /// at least one edge, over edges of `filter` between local nodes `allowed` admits; `step`
    /// gives the transitions (state, kind; kind 0 = none) for an edge's kinds. The path is each
    /// node with the kind of the edge leaving it, `to` excluded.
    #[allow(clippy::too_many_arguments)]
    fn bfs(
        &mut self,
        g: &Graph,
        from: u32,
        from_state: u8,
        to: u32,
        filter: u8,
        step: impl Fn(u8, u8) -> [(u8, u8); 2],
        accept: impl Fn(u8) -> bool,
        allowed: impl Fn(u32) -> bool,
        limits: &mut SearchLimits,
    ) -> Option<Vec<(u32, u8)>> {
        let code = |l: u32, st: u8| l * 4 + st as u32;
        let start = code(self.local[from as usize], from_state);
        let to_local = self.local[to as usize];
        let mut queue = std::collections::VecDeque::new();
        self.parent[start as usize] = start;
        self.touched.push(start);
        queue.push_back(start);
        let mut hit: Option<(u32, u8, u8)> = None; // (from code, to state, kind)
        'outer: while let Some(c) = queue.pop_front() {
            let (l, st) = (c / 4, (c % 4) as u8);
            let v = self.global_of(l);
            for e in g.edges(v) {
                if !limits.spend() {
                    break 'outer;
                }
                let mask = g.kinds[e] & filter;
                if mask == 0 {
                    continue;
                }
                let w = self.local[g.targets[e] as usize];
                if w == NONE || !allowed(w) {
                    continue;
                }
                for (nst, kind) in step(st, mask) {
                    if kind == 0 {
                        continue;
                    }
                    if w == to_local && accept(nst) {
                        hit = Some((c, nst, kind));
                        break 'outer;
                    }
                    let wc = code(w, nst);
                    if self.parent[wc as usize] == NONE {
                        self.parent[wc as usize] = c;
                        self.parent_kind[wc as usize] = kind;
                        self.touched.push(wc);
                        queue.push_back(wc);
                    }
                }
            }
        }
        let result = hit.map(|(mut c, _, kind)| {
            let mut rev = vec![(self.global_of(c / 4), kind)];
            while c != start {
                let p = self.parent[c as usize];
                rev.push((self.global_of(p / 4), self.parent_kind[c as usize]));
                c = p;
            }
            rev.reverse();
            rev
        });
        for &t in &self.touched {
            self.parent[t as usize] = NONE;
        }
        self.touched.clear();
        result
    }

    fn global_of(&self, l: u32) -> u32 {
        self.globals[l as usize]
    }
}
