//! The nemesis driver against a scripted cluster: what it records, and that it always heals.
//!
//! The fake cluster keeps each node's state (running / killed / paused) and a log of calls; a
//! fake partitioner keeps the grudge in force. No Docker needed: these pin the driver's
//! bookkeeping, the real mechanisms are tested against containers in tests/containers.rs.

use anyhow::{bail, Result};
use async_trait::async_trait;
use nemeses::clock::ClockSetting;
use nemeses::control::{ClockReading, ExecOutput, NodeControl};
use nemeses::driver::{HealGuard, Nemesis, NemesisConfig};
use nemeses::grudge::Grudge;
use nemeses::partition::Partitioner;
use nemeses::record::MemoryRecorder;
use nemeses::schedule::{
    parse_nemesis_list, Fault, FaultKind, PartitionSpec, Schedule, ScheduleOptions, Targets,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    Killed,
    Paused,
}

#[derive(Default)]
struct FakeCluster {
    state: Mutex<BTreeMap<String, State>>,
    log: Mutex<Vec<String>>,
    /// Nodes whose kill fails.
    kill_fails: BTreeSet<String>,
    leader: Option<String>,
    /// With a server process (pid 7, shim loaded): whether its clock follows the control file.
    clock_follows: Option<bool>,
    /// The offset last written to the control file, in nanoseconds.
    offset_ns: Mutex<i64>,
    /// The partition in force (shared with the fake partitioner): a node that drops traffic
    /// from someone is cut off from its quorum, so it is not ready.
    grudge: Arc<Mutex<Option<Grudge>>>,
}

impl FakeCluster {
    fn new(n: usize) -> FakeCluster {
        FakeCluster {
            state: Mutex::new((1..=n).map(|i| (format!("n{i}"), State::Running)).collect()),
            leader: Some("n2".into()),
            ..FakeCluster::default()
        }
    }

    fn states(&self) -> String {
        self.state
            .lock()
            .unwrap()
            .iter()
            .map(|(n, s)| format!("{n}={s:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn set(&self, node: &str, from: &[State], to: State) -> Result<()> {
        let mut st = self.state.lock().unwrap();
        let s = st
            .get_mut(node)
            .ok_or_else(|| anyhow::anyhow!("no node {node}"))?;
        if !from.contains(s) {
            bail!("{node} is {s:?}");
        }
        *s = to;
        Ok(())
    }
}

#[async_trait]
impl NodeControl for FakeCluster {
    fn nodes(&self) -> Vec<String> {
        self.state.lock().unwrap().keys().cloned().collect()
    }
    async fn ip(&self, node: &str) -> Result<IpAddr> {
        Ok(format!("10.1.0.{}", &node[1..]).parse()?)
    }
    async fn exec(&self, node: &str, argv: &[&str]) -> Result<ExecOutput> {
        if self.state.lock().unwrap()[node] != State::Running {
            bail!("exec on {node}: not running");
        }
        self.log
            .lock()
            .unwrap()
            .push(format!("exec {node} {}", argv[0]));
        let script = argv.get(2).copied().unwrap_or("");
        let output = if script.contains("/proc/$p/maps") {
            "ok 1 1 fakeserver".to_string()
        } else {
            if script.contains("dd of=") {
                // The control line: "FLCLK2 G<19> O<+20> ..." (the offset at bytes 29..49).
                let line = argv[4];
                *self.offset_ns.lock().unwrap() = line[29..49].parse().unwrap();
            }
            String::new()
        };
        Ok(ExecOutput { code: 0, output })
    }
    async fn kill(&self, node: &str) -> Result<()> {
        if self.kill_fails.contains(node) {
            bail!("docker said no to killing {node}");
        }
        self.set(node, &[State::Running], State::Killed)
    }
    async fn start(&self, node: &str) -> Result<()> {
        self.set(node, &[State::Running, State::Killed], State::Running)
    }
    async fn pause(&self, node: &str) -> Result<()> {
        self.set(node, &[State::Running], State::Paused)
    }
    async fn unpause(&self, node: &str) -> Result<()> {
        // Idempotent, as the trait requires: only a paused node changes.
        let mut st = self.state.lock().unwrap();
        if st.get(node) == Some(&State::Paused) {
            st.insert(node.into(), State::Running);
        }
        Ok(())
    }
    async fn wait_ready(&self, node: &str, _timeout: Duration) -> Result<()> {
        if let Some(g) = &*self.grudge.lock().unwrap() {
            if g.drops_from(node).is_some_and(|s| !s.is_empty()) {
                bail!("{node} is partitioned from its peers");
            }
        }
        match self.state.lock().unwrap()[node] {
            State::Running => Ok(()),
            s => bail!("{node} is {s:?}"),
        }
    }
    async fn leader(&self) -> Result<Option<String>> {
        Ok(self.leader.clone())
    }
    async fn server_pid(&self, _node: &str) -> Result<Option<u32>> {
        Ok(self.clock_follows.map(|_| 7))
    }
    async fn clock_probe(&self, _node: &str) -> Result<Option<ClockReading>> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i128;
        let offset = match self.clock_follows {
            Some(true) => i128::from(*self.offset_ns.lock().unwrap()),
            _ => 0,
        };
        Ok(Some(ClockReading {
            unix_ns: now + offset,
            resolution_ns: 1_000,
            source: "fake TIME".into(),
        }))
    }
}

/// A partitioner that keeps the grudge in force.
#[derive(Default)]
struct FakeNet {
    grudge: Arc<Mutex<Option<Grudge>>>,
}

#[async_trait]
impl Partitioner for FakeNet {
    fn mechanism(&self) -> &'static str {
        "fake"
    }
    async fn prepare(&self) -> Result<()> {
        Ok(())
    }
    async fn apply(&self, grudge: &Grudge) -> Result<Value> {
        *self.grudge.lock().unwrap() = Some(grudge.clone());
        Ok(json!({"mechanism": "fake", "grudge": grudge.to_json()}))
    }
    async fn heal(&self) -> Result<()> {
        *self.grudge.lock().unwrap() = None;
        Ok(())
    }
}

struct Rig {
    cluster: Arc<FakeCluster>,
    net: Arc<FakeNet>,
    rec: Arc<MemoryRecorder>,
    nemesis: Arc<Nemesis>,
}

fn rig(cluster: FakeCluster) -> Rig {
    let net = Arc::new(FakeNet {
        grudge: cluster.grudge.clone(),
    });
    let cluster = Arc::new(cluster);
    let rec = Arc::new(MemoryRecorder::new());
    let config = NemesisConfig {
        op_timeout: Duration::from_secs(5),
        ready_timeout: Duration::from_secs(5),
        clock_restart_to_load: false,
        leader_wait: Duration::from_millis(300),
        ..NemesisConfig::default()
    };
    let nemesis = Nemesis::new(cluster.clone(), rec.clone(), config).with_partitioner(net.clone());
    Rig {
        cluster,
        net,
        rec,
        nemesis: Arc::new(nemesis),
    }
}

fn nodes(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("n{i}")).collect()
}

#[tokio::test(start_paused = true)]
async fn a_schedule_runs_start_stop_pairs_and_ends_with_a_heal() {
    let r = rig(FakeCluster::new(3));
    let kinds = parse_nemesis_list("kill,pause,partition").unwrap();
    let opts = ScheduleOptions {
        interval: Duration::from_secs(1),
        time_limit: Duration::from_secs(12),
        ..ScheduleOptions::default()
    };
    let schedule = Schedule::generate(5, &kinds, &nodes(3), &opts).unwrap();
    let summary = r.nemesis.run(&schedule, std::future::pending()).await;

    assert_eq!(summary.steps_run, 12);
    assert_eq!((summary.fault_errors, summary.clock_unverified), (0, 0));
    assert!(!summary.cancelled);
    assert!(summary.heal.is_ok(), "{:?}", summary.heal);
    let fs = r.rec.fs();
    assert_eq!(fs.last().map(String::as_str), Some("heal"));
    // Every start has its stop right after it (one fault at a time).
    let pairs: Vec<&[String]> = fs[..fs.len() - 1].chunks(2).collect();
    assert_eq!(pairs.len(), 6, "{fs:?}");
    for p in pairs {
        let kind = p[0].strip_prefix("start-").expect("a start");
        assert_eq!(p[1], format!("stop-{kind}"));
    }
    assert_eq!(r.cluster.states(), "n1=Running n2=Running n3=Running");
    assert!(r.net.grudge.lock().unwrap().is_none());
}

#[tokio::test(start_paused = true)]
async fn cancelling_mid_fault_still_heals_and_closes_the_window() {
    let r = rig(FakeCluster::new(3));
    let schedule = Schedule::generate(
        1,
        &[FaultKind::Pause],
        &nodes(3),
        &ScheduleOptions {
            interval: Duration::from_secs(10),
            time_limit: Duration::from_secs(60),
            ..ScheduleOptions::default()
        },
    )
    .unwrap();
    // Cancel at 15 s: the first pause (10 s .. 20 s) is in force.
    let summary = r
        .nemesis
        .run(&schedule, tokio::time::sleep(Duration::from_secs(15)))
        .await;
    assert!(summary.cancelled);
    assert_eq!(r.rec.fs(), vec!["start-pause", "stop-pause", "heal"]);
    assert_eq!(r.rec.events()[1].value["by"], "heal");
    assert_eq!(r.cluster.states(), "n1=Running n2=Running n3=Running");
}

#[tokio::test]
async fn a_partly_failed_kill_records_only_the_nodes_it_killed() {
    let mut c = FakeCluster::new(3);
    c.kill_fails.insert("n3".into());
    let r = rig(c);
    let fault = Fault::Kill(Targets::Nodes(vec!["n1".into(), "n3".into()]));
    assert!(r.nemesis.start(&fault).await);
    let ev = r.rec.events();
    assert_eq!(ev[0].f, "start-kill");
    assert_eq!(ev[0].value, json!({"nodes": ["n1"]}));
    assert_eq!(ev[1].f, "fault-error");
    assert!(ev[1].error.as_deref().unwrap().contains("killing n3"));
    assert_eq!(r.cluster.states(), "n1=Killed n2=Running n3=Running");
    r.nemesis.stop(FaultKind::Kill).await;
    assert_eq!(r.rec.events()[2].value, json!({"nodes": ["n1"]}));
    assert_eq!(r.cluster.states(), "n1=Running n2=Running n3=Running");
}

#[tokio::test]
async fn isolating_the_leader_asks_the_system_and_fails_honestly_without_one() {
    let r = rig(FakeCluster::new(3));
    assert!(
        r.nemesis
            .start(&Fault::Partition(PartitionSpec::IsolateLeader))
            .await
    );
    let g = r.net.grudge.lock().unwrap().clone().unwrap();
    assert_eq!(g.sees("n2"), BTreeSet::from(["n2".to_string()]));
    assert_eq!(r.rec.events()[0].value["leader"], "n2");

    let mut c = FakeCluster::new(3);
    c.leader = None;
    let r = rig(c);
    assert!(
        !r.nemesis
            .start(&Fault::Partition(PartitionSpec::IsolateLeader))
            .await
    );
    assert_eq!(r.rec.fs(), vec!["fault-error"]);
    assert!(r.net.grudge.lock().unwrap().is_none());
    r.nemesis.stop(FaultKind::Partition).await;
    assert_eq!(
        r.rec.fs(),
        vec!["fault-error"],
        "no stop for a fault that never started"
    );
}

#[tokio::test]
async fn a_clock_change_that_cannot_be_verified_is_recorded_as_such_and_undone() {
    // The fake names no server process, so no change can be shown to take effect.
    let r = rig(FakeCluster::new(3));
    let fault = Fault::Clock {
        nodes: vec!["n1".into()],
        setting: ClockSetting::offset_ms(5_000),
    };
    assert!(!r.nemesis.start(&fault).await);
    let ev = r.rec.events();
    assert_eq!(r.rec.fs(), vec!["clock-unverified"]);
    assert!(ev[0].value["reason"]
        .as_str()
        .unwrap()
        .contains("no server process"));
    assert!(r.nemesis.clocks().skewed().is_empty(), "put back at once");
    r.nemesis.stop(FaultKind::Clock).await;
    assert_eq!(r.rec.fs(), vec!["clock-unverified"]);
}

#[tokio::test]
async fn latency_without_proxy_links_is_refused_before_the_run() {
    let r = rig(FakeCluster::new(3));
    let err = r
        .nemesis
        .prepare(&[FaultKind::Latency])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("latency") && err.contains("proxy"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_after_a_fault_is_healed_by_the_guard() {
    let r = rig(FakeCluster::new(3));
    let n = r.nemesis.clone();
    let task = tokio::spawn(async move {
        let _guard = HealGuard::new(n.clone());
        n.start(&Fault::Pause(Targets::Nodes(vec![
            "n1".into(),
            "n2".into(),
        ])))
        .await;
        panic!("workload bug");
    });
    assert!(task.await.unwrap_err().is_panic());
    assert_eq!(r.cluster.states(), "n1=Running n2=Running n3=Running");
    assert_eq!(r.rec.fs(), vec!["start-pause", "stop-pause", "heal"]);
    assert!(!r.nemesis.needs_heal());
}

#[tokio::test(flavor = "current_thread")]
async fn the_guard_also_heals_from_a_current_thread_runtime_and_stays_quiet_when_clean() {
    let r = rig(FakeCluster::new(3));
    {
        let _guard = HealGuard::new(r.nemesis.clone());
        r.nemesis
            .start(&Fault::Kill(Targets::Nodes(vec!["n3".into()])))
            .await;
    }
    assert_eq!(r.cluster.states(), "n1=Running n2=Running n3=Running");
    let healed = r.rec.fs().len();
    {
        let _guard = HealGuard::new(r.nemesis.clone());
    }
    assert_eq!(
        r.rec.fs().len(),
        healed,
        "nothing to heal, nothing recorded"
    );
}

#[tokio::test]
async fn a_clock_bump_the_server_follows_is_recorded_with_its_proof_and_undone() {
    let mut c = FakeCluster::new(3);
    c.clock_follows = Some(true);
    let r = rig(c);
    let fault = Fault::Clock {
        nodes: vec!["n2".into()],
        setting: ClockSetting::offset_ms(-20_000),
    };
    assert!(r.nemesis.start(&fault).await);
    let ev = r.rec.events();
    assert_eq!(r.rec.fs(), vec!["start-clock"]);
    let n2 = &ev[0].value["nodes"]["n2"];
    assert_eq!(n2["offset_ms"], -20_000);
    assert_eq!(n2["verified_by"], "probe: fake TIME");
    assert!((n2["observed_offset_ms"].as_i64().unwrap() + 20_000).abs() < 100);
    assert_eq!(
        r.nemesis.clocks().skewed(),
        BTreeSet::from(["n2".to_string()])
    );

    r.nemesis.stop(FaultKind::Clock).await;
    assert_eq!(r.rec.fs(), vec!["start-clock", "stop-clock"]);
    assert_eq!(
        r.rec.events()[1].value["nodes"]["n2"]["verified_by"],
        "probe: fake TIME"
    );
    assert_eq!(*r.cluster.offset_ns.lock().unwrap(), 0);
    assert!(r.nemesis.clocks().skewed().is_empty());
}

#[tokio::test]
async fn a_strobe_the_server_ignores_is_sampled_then_reported_unverified() {
    let mut c = FakeCluster::new(3);
    c.clock_follows = Some(false);
    let r = rig(c);
    let fault = Fault::Clock {
        nodes: vec!["n1".into()],
        setting: ClockSetting::strobe_ms(0, 4_000, 20),
    };
    assert!(!r.nemesis.start(&fault).await);
    assert_eq!(r.rec.fs(), vec!["clock-unverified"]);
    let reason = r.rec.events()[0].value["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.contains("fake TIME")
            && reason.contains("8 readings")
            && reason.contains("does not follow"),
        "{reason}"
    );
    assert_eq!(*r.cluster.offset_ns.lock().unwrap(), 0, "put back at once");
}

#[tokio::test(start_paused = true)]
async fn the_summary_counts_failed_faults_and_unverified_clock_changes() {
    let mut c = FakeCluster::new(3);
    c.leader = None; // every isolate-leader partition fails
    c.clock_follows = Some(false); // every clock change is unverified
    let r = rig(c);
    let kinds = parse_nemesis_list("partition,clock").unwrap();
    let opts = ScheduleOptions {
        interval: Duration::from_secs(1),
        time_limit: Duration::from_secs(40),
        ..ScheduleOptions::default()
    };
    let schedule = Schedule::generate(3, &kinds, &nodes(3), &opts).unwrap();
    let summary = r.nemesis.run(&schedule, std::future::pending()).await;
    let fs = r.rec.fs();
    let count = |f: &str| fs.iter().filter(|x| *x == f).count();
    assert!(
        count("fault-error") > 0 && count("clock-unverified") > 0,
        "{fs:?}"
    );
    assert_eq!(summary.fault_errors, count("fault-error"));
    assert_eq!(summary.clock_unverified, count("clock-unverified"));
    assert_eq!(count("start-clock"), 0, "no skew claimed");
    assert_eq!(
        summary.faults_started,
        count("start-partition"),
        "only partitions took effect"
    );
}

#[tokio::test]
async fn the_heal_waits_for_readiness_only_after_the_network_is_back() {
    let r = rig(FakeCluster::new(3));
    let halves = Fault::Partition(PartitionSpec::Halves { order: nodes(3) });
    assert!(r.nemesis.start(&halves).await);
    assert!(r.cluster.wait_ready("n1", Duration::ZERO).await.is_err());
    let heal = r.nemesis.heal_all().await;
    assert!(heal.is_ok(), "{heal:?}");
    assert_eq!(
        r.rec.fs(),
        vec!["start-partition", "stop-partition", "heal"]
    );
}
