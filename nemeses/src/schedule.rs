//! The fault schedule: which fault starts when, against which nodes, drawn from the run's seed.
//!
//! A schedule is computed in full before the run (pure, so it is unit-tested and can be printed
//! or stored), then executed by [`crate::driver::Nemesis::run`]. Faults alternate with quiet
//! periods of the same length: a fault starts at `interval`, stops at `2 × interval`, the next
//! starts at `3 × interval`, and so on; a fault whose stop would fall after the time limit is not
//! scheduled, so every start has its stop inside the run and the count is bounded by
//! `time_limit / (2 × interval)` (and by [`ScheduleOptions::faults_max`]). One fault at a time
//! keeps every history window attributable to a single cause.
//!
//! Every random choice (which kind, which nodes, which offset) comes from a [`SplitMix64`]
//! derived from the run seed, so the same seed, kinds and node names give the same schedule.
//! Choices that depend on the cluster's state at that moment (who is leader) are kept symbolic
//! ([`Targets::Leader`], [`PartitionSpec::IsolateLeader`]) and resolved when the step runs.

use anyhow::{bail, ensure, Result};
use serde_json::{json, Value};
use std::fmt;
use std::time::Duration;

use crate::clock::ClockSetting;
use crate::grudge::Grudge;
use crate::rng::SplitMix64;

/// A kind of fault, as named on the command line (`--nemesis partition,kill`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    Partition,
    Kill,
    Pause,
    Clock,
    Latency,
    /// Rolling restart: every node killed and restarted in turn.
    Restart,
}

/// Every accepted name, in the order of the enum.
pub const FAULT_NAMES: &[&str] = &["partition", "kill", "pause", "clock", "latency", "restart"];

impl FaultKind {
    pub const ALL: [FaultKind; 6] = [
        FaultKind::Partition,
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Clock,
        FaultKind::Latency,
        FaultKind::Restart,
    ];

    pub fn name(self) -> &'static str {
        FAULT_NAMES[FaultKind::ALL
            .iter()
            .position(|k| *k == self)
            .expect("listed")]
    }

    pub fn parse(s: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.name() == s)
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Partition shapes a plan may restrict `partition` to (`partition:isolate-leader`).
pub const PARTITION_SHAPES: &[&str] = &[
    "halves",
    "random-halves",
    "isolate",
    "isolate-leader",
    "bridge",
    "majorities-ring",
];

/// Target shapes a plan may restrict `kill` and `pause` to (`kill:leader`): the leader or
/// primary, one node, a minority, a majority (never every node).
pub const TARGET_SHAPES: &[&str] = &["leader", "one", "minority", "majority"];

/// Parses one fault name with an optional shape, `kind` or `kind:shape` (`partition:bridge`,
/// `kill:leader`).
pub fn parse_fault(s: &str) -> Result<(FaultKind, Option<String>)> {
    let (kind, shape) = match s.trim().split_once(':') {
        Some((k, sh)) => (k.trim(), Some(sh.trim().to_string())),
        None => (s.trim(), None),
    };
    let Some(k) = FaultKind::parse(kind) else {
        bail!(
            "unknown fault {kind:?} (expected one of {}, or none)",
            FAULT_NAMES.join(", ")
        );
    };
    if let Some(sh) = &shape {
        let shapes = match k {
            FaultKind::Partition => PARTITION_SHAPES,
            FaultKind::Kill | FaultKind::Pause => TARGET_SHAPES,
            _ => bail!("{kind}: takes no shape (got {sh:?})"),
        };
        ensure!(
            shapes.contains(&sh.as_str()),
            "{kind}: unknown shape {sh:?} (expected one of {})",
            shapes.join(", ")
        );
    }
    Ok((k, shape))
}

/// Parses `--nemesis`: comma-separated kinds, or `none` / empty for no faults. Duplicates are
/// dropped; the order given is kept.
pub fn parse_nemesis_list(s: &str) -> Result<Vec<FaultKind>> {
    let s = s.trim();
    if s.is_empty() || s == "none" {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        match FaultKind::parse(part) {
            Some(k) if !out.contains(&k) => out.push(k),
            Some(_) => {}
            None => bail!(
                "--nemesis: unknown fault {part:?} (expected a comma-separated list of {}, or none)",
                FAULT_NAMES.join(", ")
            ),
        }
    }
    Ok(out)
}

/// Parses a duration such as `10s`, `500ms`, `2m`, `1h` or `1m30s`, for `--nemesis-interval`.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let t = s.trim();
    ensure!(!t.is_empty(), "empty duration");
    let mut total_ms: u128 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        ensure!(digits > 0, "duration {s:?}: expected a number at {rest:?}");
        let n: u128 = rest[..digits].parse()?;
        rest = &rest[digits..];
        let unit_len = rest.chars().take_while(|c| c.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let ms = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "" => bail!("duration {s:?}: missing unit (ms, s, m or h)"),
            other => bail!("duration {s:?}: unknown unit {other:?} (ms, s, m or h)"),
        };
        total_ms += n * ms;
        ensure!(
            total_ms <= u128::from(u64::MAX),
            "duration {s:?} is too long"
        );
    }
    Ok(Duration::from_millis(total_ms as u64))
}

/// Which nodes a process fault hits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    Nodes(Vec<String>),
    /// The leader or primary at the time the step runs.
    Leader,
}

impl Targets {
    /// `n1 n3`, or `leader`.
    fn brief(&self) -> String {
        match self {
            Targets::Nodes(n) => n.join(" "),
            Targets::Leader => "leader".to_string(),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Targets::Nodes(n) => json!(n),
            Targets::Leader => json!("leader"),
        }
    }
}

/// A partition shape with its random choices made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionSpec {
    /// Halves of the node list in the given order (the order carries the random-halves shuffle).
    Halves {
        order: Vec<String>,
    },
    Isolate {
        node: String,
    },
    /// Isolate whichever node leads when the step runs.
    IsolateLeader,
    Bridge {
        order: Vec<String>,
    },
    MajoritiesRing {
        order: Vec<String>,
    },
}

impl PartitionSpec {
    /// The grudge, given the current leader for [`PartitionSpec::IsolateLeader`].
    pub fn grudge(&self, nodes: &[String], leader: Option<&str>) -> Result<Grudge> {
        match self {
            PartitionSpec::Halves { order } => Grudge::halves(order),
            PartitionSpec::Isolate { node } => Grudge::isolate(nodes, node),
            PartitionSpec::IsolateLeader => match leader {
                Some(l) => Grudge::isolate(nodes, l),
                None => bail!("isolate-leader: the system reports no leader"),
            },
            PartitionSpec::Bridge { order } => Grudge::bridge(order),
            PartitionSpec::MajoritiesRing { order } => Grudge::majorities_ring(order),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            PartitionSpec::Halves { .. } => "halves",
            PartitionSpec::Isolate { .. } => "isolate",
            PartitionSpec::IsolateLeader => "isolate-leader",
            PartitionSpec::Bridge { .. } => "bridge",
            PartitionSpec::MajoritiesRing { .. } => "majorities-ring",
        }
    }
}

/// One fault with every choice made.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    Partition(PartitionSpec),
    Kill(Targets),
    Pause(Targets),
    Clock {
        nodes: Vec<String>,
        setting: ClockSetting,
    },
    Latency {
        latency_ms: u64,
        jitter_ms: u64,
    },
    Restart {
        order: Vec<String>,
    },
}

impl Fault {
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::Partition(_) => FaultKind::Partition,
            Fault::Kill(_) => FaultKind::Kill,
            Fault::Pause(_) => FaultKind::Pause,
            Fault::Clock { .. } => FaultKind::Clock,
            Fault::Latency { .. } => FaultKind::Latency,
            Fault::Restart { .. } => FaultKind::Restart,
        }
    }

    /// A description for logs and plans.
    pub fn to_json(&self) -> Value {
        match self {
            Fault::Partition(p) => {
                let order = match p {
                    PartitionSpec::Halves { order }
                    | PartitionSpec::Bridge { order }
                    | PartitionSpec::MajoritiesRing { order } => json!(order),
                    PartitionSpec::Isolate { node } => json!([node]),
                    PartitionSpec::IsolateLeader => json!("leader"),
                };
                json!({"fault": "partition", "shape": p.name(), "nodes": order})
            }
            Fault::Kill(t) => json!({"fault": "kill", "nodes": t.to_json()}),
            Fault::Pause(t) => json!({"fault": "pause", "nodes": t.to_json()}),
            Fault::Clock { nodes, setting } => {
                json!({"fault": "clock", "nodes": nodes, "setting": setting.to_json()})
            }
            Fault::Latency {
                latency_ms,
                jitter_ms,
            } => json!({"fault": "latency", "latency_ms": latency_ms, "jitter_ms": jitter_ms}),
            Fault::Restart { order } => json!({"fault": "restart", "order": order}),
        }
    }
}

/// What a step does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Start(Fault),
    Stop(FaultKind),
}

/// One step, `at` after the nemesis starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub at: Duration,
    pub action: Action,
}

/// Knobs for [`Schedule::generate`], with the defaults `faultline run` uses.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleOptions {
    /// Time from one step to the next (fault on, fault off, next fault on, ...).
    pub interval: Duration,
    /// Length of the workload phase; no fault is scheduled to end after it.
    pub time_limit: Duration,
    /// Upper bound on faults started.
    pub faults_max: usize,
    /// Clock bumps are at least this far from real time (larger than the probes' tolerance, so
    /// verification can tell a bump from no bump).
    pub clock_offset_min_ms: u64,
    /// ... and at most this far.
    pub clock_offset_max_ms: u64,
    /// Strobe periods are drawn from this range.
    pub strobe_period_ms: (u64, u64),
    /// Latency toxics are drawn from this range; jitter is a quarter of the latency.
    pub latency_ms: (u64, u64),
    /// Shapes a kind is restricted to (see [`parse_fault`]); a kind not listed takes any.
    pub shapes: Vec<(FaultKind, String)>,
    /// Whether the system can name its leader. When it cannot, a kind left free never draws a
    /// leader-aimed shape (`isolate-leader`, a kill or pause of `leader`): it could only end as a
    /// `fault-error`, a fault slot spent on nothing (RabbitMQ runs drew `isolate-leader` in
    /// 2 of 10 seeds this way and ran without any partition).
    pub leader_known: bool,
}

impl Default for ScheduleOptions {
    fn default() -> Self {
        ScheduleOptions {
            interval: Duration::from_secs(10),
            time_limit: Duration::from_secs(60),
            faults_max: 1_000,
            clock_offset_min_ms: 2_000,
            clock_offset_max_ms: 60_000,
            strobe_period_ms: (10, 500),
            latency_ms: (50, 500),
            shapes: vec![],
            leader_known: true,
        }
    }
}

/// A computed schedule, steps in time order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Schedule {
    pub steps: Vec<Step>,
}

impl Schedule {
    /// Draws a schedule from `seed` for `kinds` against `nodes`.
    pub fn generate(
        seed: u64,
        kinds: &[FaultKind],
        nodes: &[String],
        opts: &ScheduleOptions,
    ) -> Result<Schedule> {
        ensure!(
            !nodes.is_empty(),
            "a fault schedule needs at least one node"
        );
        ensure!(
            opts.interval >= Duration::from_millis(100),
            "--nemesis-interval must be at least 100ms, got {} ms",
            opts.interval.as_millis()
        );
        ensure!(
            opts.clock_offset_min_ms <= opts.clock_offset_max_ms,
            "clock offset range is empty"
        );
        if kinds.contains(&FaultKind::Partition) {
            ensure!(nodes.len() >= 2, "partitions need at least 2 nodes");
        }
        let mut rng = SplitMix64::derive(seed, "nemesis-schedule");
        let mut steps = Vec::new();
        if kinds.is_empty() {
            return Ok(Schedule { steps });
        }
        let mut k: u32 = 1;
        let mut started = 0usize;
        while started < opts.faults_max {
            let start_at = opts.interval * k;
            let stop_at = opts.interval * (k + 1);
            if stop_at > opts.time_limit {
                break;
            }
            let kind = *rng.pick(kinds);
            let fault = draw_fault(kind, nodes, opts, &mut rng);
            steps.push(Step {
                at: start_at,
                action: Action::Start(fault),
            });
            steps.push(Step {
                at: stop_at,
                action: Action::Stop(kind),
            });
            started += 1;
            k += 2;
        }
        Ok(Schedule { steps })
    }

    /// Faults started by this schedule.
    pub fn faults(&self) -> impl Iterator<Item = &Fault> {
        self.steps.iter().filter_map(|s| match &s.action {
            Action::Start(f) => Some(f),
            Action::Stop(_) => None,
        })
    }

    /// One line for the run log: each fault with its shape or targets and its start and end,
    /// e.g. `partition isolate n2 at 5-10 s, kill n3 at 15-20 s`.
    pub fn brief(&self) -> String {
        let mut out = Vec::new();
        for (i, step) in self.steps.iter().enumerate() {
            let Action::Start(fault) = &step.action else {
                continue;
            };
            let end = self.steps[i + 1..]
                .iter()
                .find(|s| matches!(&s.action, Action::Stop(k) if *k == fault.kind()))
                .map(|s| s.at);
            let what = match fault {
                Fault::Partition(PartitionSpec::Isolate { node }) => {
                    format!("partition isolate {node}")
                }
                Fault::Partition(p) => format!("partition {}", p.name()),
                Fault::Kill(t) | Fault::Pause(t) => format!("{} {}", fault.kind(), t.brief()),
                Fault::Clock { nodes, .. } => format!("clock {}", nodes.join(" ")),
                Fault::Latency { latency_ms, .. } => format!("latency {latency_ms} ms"),
                Fault::Restart { .. } => "restart".to_string(),
            };
            let secs = |d: Duration| {
                format!("{:.3}", d.as_secs_f64())
                    .trim_end_matches('0')
                    .trim_end_matches('.')
                    .to_string()
            };
            out.push(match end {
                Some(e) => format!("{what} at {}-{} s", secs(step.at), secs(e)),
                None => format!("{what} at {} s", secs(step.at)),
            });
        }
        out.join(", ")
    }

    /// The schedule as JSON lines (`{"at_ms": .., "start": {..}}` / `{"at_ms": .., "stop": ..}`).
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.steps
                .iter()
                .map(|s| match &s.action {
                    Action::Start(f) => {
                        json!({"at_ms": s.at.as_millis() as u64, "start": f.to_json()})
                    }
                    Action::Stop(k) => json!({"at_ms": s.at.as_millis() as u64, "stop": k.name()}),
                })
                .collect(),
        )
    }
}

fn shuffled(nodes: &[String], rng: &mut SplitMix64) -> Vec<String> {
    let mut v = nodes.to_vec();
    rng.shuffle(&mut v);
    v
}

/// One node, a minority or a majority (never all: someone must stay up to serve and to elect).
fn draw_subset(nodes: &[String], rng: &mut SplitMix64) -> Vec<String> {
    let n = nodes.len();
    let size = match rng.below(3) {
        0 => 1,
        1 => (n.saturating_sub(1) / 2).max(1),
        _ => (n / 2 + 1).min(n.saturating_sub(1)).max(1),
    };
    let mut v = shuffled(nodes, rng);
    v.truncate(size);
    v.sort();
    v
}

fn draw_targets(nodes: &[String], leader_known: bool, rng: &mut SplitMix64) -> Targets {
    if leader_known && rng.chance(0.25) {
        Targets::Leader
    } else {
        Targets::Nodes(draw_subset(nodes, rng))
    }
}

/// The shapes `kind` is restricted to (empty: any).
fn allowed(o: &ScheduleOptions, kind: FaultKind) -> Vec<&str> {
    o.shapes
        .iter()
        .filter(|(k, _)| *k == kind)
        .map(|(_, s)| s.as_str())
        .collect()
}

/// Targets of a kill or pause, from one of the allowed shapes (any when none is given).
fn draw_shaped_targets(
    nodes: &[String],
    only: &[&str],
    leader_known: bool,
    rng: &mut SplitMix64,
) -> Targets {
    if only.is_empty() {
        return draw_targets(nodes, leader_known, rng);
    }
    let n = nodes.len();
    let size = match *rng.pick(only) {
        "leader" => return Targets::Leader,
        "one" => 1,
        "minority" => (n.saturating_sub(1) / 2).max(1),
        _ => (n / 2 + 1).min(n.saturating_sub(1)).max(1),
    };
    let mut v = shuffled(nodes, rng);
    v.truncate(size);
    v.sort();
    Targets::Nodes(v)
}

fn draw_fault(
    kind: FaultKind,
    nodes: &[String],
    o: &ScheduleOptions,
    rng: &mut SplitMix64,
) -> Fault {
    match kind {
        FaultKind::Partition => {
            let n = nodes.len();
            let mut shapes = vec!["halves", "random-halves", "isolate"];
            if o.leader_known {
                shapes.push("isolate-leader");
            }
            if n >= 3 {
                shapes.push("bridge");
            }
            if n >= 4 {
                shapes.push("majorities-ring");
            }
            let only = allowed(o, kind);
            if !only.is_empty() {
                shapes = PARTITION_SHAPES
                    .iter()
                    .copied()
                    .filter(|s| only.contains(s))
                    .collect();
            }
            let spec = match *rng.pick(&shapes) {
                "halves" => PartitionSpec::Halves {
                    order: nodes.to_vec(),
                },
                "random-halves" => PartitionSpec::Halves {
                    order: shuffled(nodes, rng),
                },
                "isolate" => PartitionSpec::Isolate {
                    node: rng.pick(nodes).clone(),
                },
                "isolate-leader" => PartitionSpec::IsolateLeader,
                "bridge" => PartitionSpec::Bridge {
                    order: shuffled(nodes, rng),
                },
                _ => PartitionSpec::MajoritiesRing {
                    order: shuffled(nodes, rng),
                },
            };
            Fault::Partition(spec)
        }
        FaultKind::Kill => Fault::Kill(draw_shaped_targets(
            nodes,
            &allowed(o, kind),
            o.leader_known,
            rng,
        )),
        FaultKind::Pause => Fault::Pause(draw_shaped_targets(
            nodes,
            &allowed(o, kind),
            o.leader_known,
            rng,
        )),
        FaultKind::Clock => {
            let magnitude = rng.range(o.clock_offset_min_ms, o.clock_offset_max_ms) as i64;
            let signed = if rng.chance(0.5) {
                magnitude
            } else {
                -magnitude
            };
            let setting = if rng.chance(0.25) {
                ClockSetting::strobe_ms(
                    0,
                    signed,
                    rng.range(o.strobe_period_ms.0, o.strobe_period_ms.1),
                )
            } else {
                ClockSetting::offset_ms(signed)
            };
            Fault::Clock {
                nodes: draw_subset(nodes, rng),
                setting,
            }
        }
        FaultKind::Latency => {
            let latency_ms = rng.range(o.latency_ms.0, o.latency_ms.1);
            Fault::Latency {
                latency_ms,
                jitter_ms: latency_ms / 4,
            }
        }
        FaultKind::Restart => Fault::Restart {
            order: shuffled(nodes, rng),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    fn opts(interval_s: u64, limit_s: u64) -> ScheduleOptions {
        ScheduleOptions {
            interval: Duration::from_secs(interval_s),
            time_limit: Duration::from_secs(limit_s),
            ..ScheduleOptions::default()
        }
    }

    /// `at_s:start-kind` / `at_s:stop-kind` per step.
    fn outline(s: &Schedule) -> String {
        s.steps
            .iter()
            .map(|st| match &st.action {
                Action::Start(f) => format!("{}:start-{}", st.at.as_secs(), f.kind()),
                Action::Stop(k) => format!("{}:stop-{}", st.at.as_secs(), k),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn without_a_known_leader_no_fault_is_aimed_at_one() {
        let aimed = |s: &Schedule| {
            s.faults()
                .filter(|f| {
                    matches!(
                        f,
                        Fault::Partition(PartitionSpec::IsolateLeader)
                            | Fault::Kill(Targets::Leader)
                            | Fault::Pause(Targets::Leader)
                    )
                })
                .count()
        };
        let kinds = [FaultKind::Partition, FaultKind::Kill, FaultKind::Pause];
        let (mut with, mut without, mut faults) = (0, 0, 0);
        for seed in 0..40 {
            let known = Schedule::generate(seed, &kinds, &nodes(3), &opts(1, 60)).unwrap();
            with += aimed(&known);
            let o = ScheduleOptions {
                leader_known: false,
                ..opts(1, 60)
            };
            let unknown = Schedule::generate(seed, &kinds, &nodes(3), &o).unwrap();
            without += aimed(&unknown);
            faults += unknown.faults().count();
        }
        assert!(with > 0, "the default draw does aim at leaders");
        assert_eq!(without, 0);
        assert!(faults > 0);
    }

    #[test]
    fn the_brief_names_each_fault_with_its_targets_and_times() {
        let s = Schedule {
            steps: vec![
                Step {
                    at: Duration::from_millis(2_500),
                    action: Action::Start(Fault::Partition(PartitionSpec::Isolate {
                        node: "n2".into(),
                    })),
                },
                Step {
                    at: Duration::from_secs(5),
                    action: Action::Stop(FaultKind::Partition),
                },
                Step {
                    at: Duration::from_secs(10),
                    action: Action::Start(Fault::Kill(Targets::Leader)),
                },
                Step {
                    at: Duration::from_secs(15),
                    action: Action::Stop(FaultKind::Kill),
                },
                Step {
                    at: Duration::from_secs(20),
                    action: Action::Start(Fault::Pause(Targets::Nodes(vec![
                        "n1".into(),
                        "n3".into(),
                    ]))),
                },
            ],
        };
        assert_eq!(
            s.brief(),
            "partition isolate n2 at 2.5-5 s, kill leader at 10-15 s, pause n1 n3 at 20 s"
        );
        let g = Schedule::generate(42, &[FaultKind::Kill], &nodes(3), &opts(5, 30)).unwrap();
        assert_eq!(
            g.brief().matches("kill ").count(),
            g.faults().count(),
            "{}",
            g.brief()
        );
    }

    #[test]
    fn nemesis_lists_parse_and_reject_unknown_names() {
        assert_eq!(
            parse_nemesis_list("partition,kill, clock,kill").unwrap(),
            vec![FaultKind::Partition, FaultKind::Kill, FaultKind::Clock]
        );
        assert!(parse_nemesis_list("none").unwrap().is_empty());
        assert!(parse_nemesis_list("").unwrap().is_empty());
        let err = parse_nemesis_list("partition,bogus")
            .unwrap_err()
            .to_string();
        assert!(err.contains("--nemesis") && err.contains("bogus"), "{err}");
    }

    #[test]
    fn shaped_faults_parse_and_restrict_the_draw() {
        assert_eq!(
            parse_fault("partition:isolate-leader").unwrap(),
            (FaultKind::Partition, Some("isolate-leader".into()))
        );
        assert_eq!(parse_fault("kill").unwrap(), (FaultKind::Kill, None));
        for bad in ["partition:sideways", "clock:leader", "bogus:one"] {
            assert!(parse_fault(bad).is_err(), "{bad}");
        }
        let o = ScheduleOptions {
            interval: Duration::from_secs(1),
            time_limit: Duration::from_secs(60),
            shapes: vec![
                (FaultKind::Partition, "isolate-leader".into()),
                (FaultKind::Kill, "leader".into()),
            ],
            ..ScheduleOptions::default()
        };
        let s =
            Schedule::generate(3, &[FaultKind::Partition, FaultKind::Kill], &nodes(3), &o).unwrap();
        assert!(s.faults().count() > 20);
        for f in s.faults() {
            match f {
                Fault::Partition(p) => assert_eq!(p, &PartitionSpec::IsolateLeader),
                Fault::Kill(t) => assert_eq!(t, &Targets::Leader),
                other => panic!("unexpected fault {other:?}"),
            }
        }
    }

    #[test]
    fn durations_parse_with_units_only() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert!(parse_duration("10")
            .unwrap_err()
            .to_string()
            .contains("missing unit"));
        assert!(parse_duration("5d")
            .unwrap_err()
            .to_string()
            .contains("unknown unit"));
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn faults_alternate_with_quiet_periods_and_end_inside_the_time_limit() {
        let s = Schedule::generate(1, &[FaultKind::Kill], &nodes(3), &opts(10, 60)).unwrap();
        assert_eq!(
            outline(&s),
            "10:start-kill 20:stop-kill 30:start-kill 40:stop-kill 50:start-kill 60:stop-kill"
        );
        let s = Schedule::generate(1, &[FaultKind::Kill], &nodes(3), &opts(10, 59)).unwrap();
        assert_eq!(
            s.faults().count(),
            2,
            "a fault that would end after 59 s is not started"
        );
        let s = Schedule::generate(1, &[FaultKind::Kill], &nodes(3), &opts(10, 15)).unwrap();
        assert!(s.steps.is_empty());
    }

    #[test]
    fn the_count_is_bounded() {
        let mut o = opts(1, 100_000);
        o.faults_max = 7;
        let s = Schedule::generate(3, &[FaultKind::Pause], &nodes(3), &o).unwrap();
        assert_eq!(s.faults().count(), 7);
        assert_eq!(s.steps.len(), 14);
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule_and_another_seed_another() {
        let kinds = parse_nemesis_list("partition,kill,pause,clock,latency,restart").unwrap();
        let a = Schedule::generate(42, &kinds, &nodes(5), &opts(5, 600)).unwrap();
        let b = Schedule::generate(42, &kinds, &nodes(5), &opts(5, 600)).unwrap();
        let c = Schedule::generate(43, &kinds, &nodes(5), &opts(5, 600)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let used: std::collections::BTreeSet<FaultKind> = a.faults().map(Fault::kind).collect();
        assert_eq!(used.len(), kinds.len(), "60 draws use every kind: {used:?}");
    }

    #[test]
    fn drawn_faults_respect_the_cluster_and_the_options() {
        let kinds = parse_nemesis_list("partition,kill,pause,clock").unwrap();
        let o = opts(1, 2_000);
        let s = Schedule::generate(7, &kinds, &nodes(3), &o).unwrap();
        for f in s.faults() {
            match f {
                Fault::Partition(p) => {
                    assert!(
                        !matches!(p, PartitionSpec::MajoritiesRing { .. }),
                        "3 nodes: no ring"
                    );
                    if let PartitionSpec::IsolateLeader = p {
                        continue;
                    }
                    let g = p.grudge(&nodes(3), None).unwrap();
                    assert!(!g.is_empty() && g.is_symmetric(), "{p:?}");
                }
                Fault::Kill(Targets::Nodes(ns)) | Fault::Pause(Targets::Nodes(ns)) => {
                    assert!(!ns.is_empty() && ns.len() < 3, "never all nodes: {ns:?}");
                }
                Fault::Clock { nodes: ns, setting } => {
                    assert!(!ns.is_empty() && ns.len() < 3);
                    let off = setting
                        .possible_offsets_ns()
                        .into_iter()
                        .map(|o| o.abs() / 1_000_000)
                        .max()
                        .unwrap();
                    assert!((2_000..=60_000).contains(&off), "offset {off} ms");
                }
                _ => {}
            }
        }
    }

    #[test]
    fn a_partition_schedule_needs_two_nodes_and_no_kinds_means_no_steps() {
        assert!(Schedule::generate(1, &[FaultKind::Partition], &nodes(1), &opts(1, 10)).is_err());
        assert!(Schedule::generate(1, &[], &nodes(3), &opts(1, 10))
            .unwrap()
            .steps
            .is_empty());
        assert!(Schedule::generate(
            1,
            &[FaultKind::Kill],
            &nodes(3),
            &ScheduleOptions {
                interval: Duration::from_millis(10),
                ..ScheduleOptions::default()
            }
        )
        .is_err());
    }

    #[test]
    fn isolate_leader_needs_a_leader() {
        let err = PartitionSpec::IsolateLeader
            .grudge(&nodes(3), None)
            .unwrap_err();
        assert!(err.to_string().contains("no leader"));
        let g = PartitionSpec::IsolateLeader
            .grudge(&nodes(3), Some("n2"))
            .unwrap();
        assert_eq!(g.sees("n2").len(), 1);
    }
}
