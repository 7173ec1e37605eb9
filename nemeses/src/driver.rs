//! The nemesis: executes faults against a cluster, records them, and always heals.
//!
//! [`Nemesis`] ties the fault packages together (partitions, processes, clocks, proxy latency),
//! each of which carries its own undo. It can be driven step by step ([`Nemesis::start`],
//! [`Nemesis::stop`]) or by a [`Schedule`] ([`Nemesis::run`], which waits for each step's time,
//! stops early on cancellation, and heals before returning).
//!
//! Healing is the part that must never be skipped. [`Nemesis::heal_all`] undoes everything,
//! not just what the bookkeeping says is active: it resumes and starts every node, flushes the
//! partition rules on every node, resets every clock it changed and removes proxy toxics. It is
//! idempotent and safe to call from several places, which is how every exit path is covered:
//! - normal end: `run` heals before it returns;
//! - Ctrl-C: the controller's signal handler resolves the `cancel` future given to `run` (which
//!   then heals), or calls `heal_all` itself;
//! - panic: the controller runs the nemesis in a task and calls `heal_all` when the task ends in
//!   any way; as a last resort [`HealGuard`] heals from `Drop` during unwinding.
//! - the controller killed with SIGKILL: every fault lives inside the run's containers (rules in
//!   their network namespaces, offsets in their files, frozen cgroups), so removing the
//!   containers (`faultline clean`) removes the faults; the host is never changed.
//!
//! Recording follows [`crate::record`]: `start-X` after the fault took effect, naming exactly the
//! nodes it took effect on; `stop-X` after it was undone; `fault-error` for what failed;
//! `clock-unverified` for a clock change the target ignored (that node's clock is put back at
//! once, so nothing unrecorded stays skewed); one `heal` entry at the end of every heal.

use anyhow::{bail, Result};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clock::{Clocks, Verification};
use crate::control::NodeControl;
use crate::partition::{Iptables, Partitioner, ProxyLinks};
use crate::process::{bounded, Outcome, Processes};
use crate::record::{NemesisEvent, Recorder};
use crate::schedule::{Action, Fault, FaultKind, Schedule, Targets};

/// Pause between leader queries while waiting for a leader.
const LEADER_POLL: Duration = Duration::from_millis(250);

/// Settings of a [`Nemesis`].
#[derive(Debug, Clone)]
pub struct NemesisConfig {
    /// Bound on each single node operation (exec, kill, start, pause, ...).
    pub op_timeout: Duration,
    /// Bound on waiting for a restarted node to serve again.
    pub ready_timeout: Duration,
    /// Before clock faults: restart nodes whose (dynamically linked) server started before the
    /// clock shim was installed, so that it loads the shim.
    pub clock_restart_to_load: bool,
    /// How long a clock change may take to show in the server before it counts as ignored
    /// (see [`Clocks::with_settle`]); zero for systems that read the OS clock on every call.
    pub clock_settle: Duration,
    /// faultline's binary inside the nodes: clock faults then reach Go and static servers by
    /// patching their vDSO (`faultline clock-attach`; the nodes need CAP_SYS_PTRACE).
    pub clock_vdso_helper: Option<String>,
    /// A fault aimed at the leader waits this long for one (an election after the previous
    /// fault may still be running) before it is recorded as a `fault-error`.
    pub leader_wait: Duration,
}

impl Default for NemesisConfig {
    fn default() -> Self {
        NemesisConfig {
            op_timeout: Duration::from_secs(30),
            ready_timeout: Duration::from_secs(60),
            clock_restart_to_load: true,
            clock_settle: Duration::ZERO,
            clock_vdso_helper: None,
            leader_wait: Duration::from_secs(10),
        }
    }
}

/// What a run of a schedule did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    /// Steps executed (start and stop).
    pub steps_run: usize,
    /// Faults that took effect on at least one node.
    pub faults_started: usize,
    /// Faults that failed outright or in part (`fault-error` entries, the heal's included).
    pub fault_errors: usize,
    /// Clock changes that did not verifiably reach their target.
    pub clock_unverified: usize,
    /// The run stopped because `cancel` resolved.
    pub cancelled: bool,
    pub heal: HealReport,
}

/// What the final heal did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealReport {
    pub errors: Vec<String>,
}

impl HealReport {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// A fault in force, with what its stop needs.
#[derive(Debug, Clone)]
struct Active {
    kind: FaultKind,
    /// Whether a `start-X` was recorded (so a `stop-X` is owed).
    recorded: bool,
    /// Nodes whose clock was changed (clock faults).
    clock_nodes: Vec<String>,
}

/// Fault injection for one cluster. See the module docs.
pub struct Nemesis {
    ctl: Arc<dyn NodeControl>,
    rec: Arc<dyn Recorder>,
    config: NemesisConfig,
    processes: Processes,
    clocks: Clocks,
    partitioner: Arc<dyn Partitioner>,
    links: Option<Arc<ProxyLinks>>,
    active: Mutex<Vec<Active>>,
    /// Fault kinds prepared or started at least once (what heal must cover).
    touched: Mutex<BTreeSet<FaultKind>>,
    /// A fault may be in force (set by any start, cleared by a successful heal).
    dirty: AtomicBool,
    /// `fault-error` entries recorded so far.
    errors_recorded: AtomicUsize,
    /// `clock-unverified` entries recorded so far.
    unverified_recorded: AtomicUsize,
    heal_lock: tokio::sync::Mutex<()>,
}

impl Nemesis {
    /// A nemesis partitioning with iptables, without proxy links.
    pub fn new(
        ctl: Arc<dyn NodeControl>,
        rec: Arc<dyn Recorder>,
        config: NemesisConfig,
    ) -> Nemesis {
        let partitioner: Arc<dyn Partitioner> = Arc::new(Iptables::new(ctl.clone()));
        Nemesis {
            processes: Processes::new(ctl.clone(), config.op_timeout, config.ready_timeout),
            clocks: {
                let c =
                    Clocks::new(ctl.clone(), config.op_timeout).with_settle(config.clock_settle);
                match &config.clock_vdso_helper {
                    Some(h) => c.with_vdso_helper(h),
                    None => c,
                }
            },
            partitioner,
            links: None,
            active: Mutex::new(Vec::new()),
            touched: Mutex::new(BTreeSet::new()),
            dirty: AtomicBool::new(false),
            errors_recorded: AtomicUsize::new(0),
            unverified_recorded: AtomicUsize::new(0),
            heal_lock: tokio::sync::Mutex::new(()),
            ctl,
            rec,
            config,
        }
    }

    /// Uses proxy links for latency faults and, with `for_partitions`, for partitions too.
    pub fn with_proxy_links(mut self, links: ProxyLinks, for_partitions: bool) -> Nemesis {
        let links = Arc::new(links);
        if for_partitions {
            self.partitioner = links.clone();
        }
        self.links = Some(links);
        self
    }

    /// Partitions with another mechanism (a custom one, or a fake in tests).
    pub fn with_partitioner(mut self, partitioner: Arc<dyn Partitioner>) -> Nemesis {
        self.partitioner = partitioner;
        self
    }

    /// Replaces the clock package (e.g. with a different acknowledgement wait).
    pub fn with_clocks(mut self, clocks: Clocks) -> Nemesis {
        self.clocks = clocks;
        self
    }

    /// The partition mechanism in use (`iptables` or `proxy`).
    pub fn partition_mechanism(&self) -> &'static str {
        self.partitioner.mechanism()
    }

    /// The clock package, for direct use (verification, setup reports).
    pub fn clocks(&self) -> &Clocks {
        &self.clocks
    }

    fn record(&self, f: &str, value: Value) {
        if f == "clock-unverified" {
            self.unverified_recorded.fetch_add(1, Ordering::SeqCst);
        }
        self.rec.record(NemesisEvent::new(f, value));
    }

    fn record_error(&self, fault: &str, value: Value, errors: &[String]) {
        self.errors_recorded.fetch_add(1, Ordering::SeqCst);
        self.rec.record(
            NemesisEvent::new("fault-error", json!({"fault": fault, "detail": value}))
                .with_error(errors.join("; ")),
        );
    }

    fn touch(&self, kind: FaultKind) {
        self.touched.lock().expect("lock").insert(kind);
    }

    /// Checks and sets up what `kinds` need before the run: that iptables works in the nodes,
    /// that the proxy has every link, that the clock shim is installed and loaded (restarting
    /// nodes for it when configured to). Fails with a clear message when a kind cannot work here
    /// (latency without proxy links). Returns a per-kind report; a clock setup is also recorded
    /// as a `clock-setup` entry because it may have restarted nodes.
    pub async fn prepare(&self, kinds: &[FaultKind]) -> Result<Value> {
        let mut report = serde_json::Map::new();
        for kind in kinds {
            self.touch(*kind);
            match kind {
                FaultKind::Partition => {
                    self.partitioner.prepare().await?;
                    report.insert("partition".into(), json!({"mechanism": self.partitioner.mechanism()}));
                }
                FaultKind::Latency => match &self.links {
                    Some(l) => {
                        l.prepare().await?;
                        report.insert("latency".into(), json!({"mechanism": "proxy"}));
                    }
                    None => bail!(
                        "--nemesis latency needs node-to-node proxy links, which this system's configuration does not use yet (the kernel here has no netem for in-container latency)"
                    ),
                },
                FaultKind::Clock => {
                    let r = self
                        .clocks
                        .prepare(self.config.clock_restart_to_load, self.config.ready_timeout)
                        .await?;
                    self.record("clock-setup", r.clone());
                    report.insert("clock".into(), r);
                }
                FaultKind::Kill | FaultKind::Pause | FaultKind::Restart => {
                    report.insert(kind.name().into(), json!({"mechanism": "container"}));
                }
            }
        }
        Ok(Value::Object(report))
    }

    async fn resolve(&self, targets: &Targets) -> Result<Vec<String>> {
        match targets {
            Targets::Nodes(n) => Ok(n.clone()),
            Targets::Leader => match self.find_leader().await? {
                Some(l) => Ok(vec![l]),
                None => bail!(
                    "the system reports no leader (waited {} ms)",
                    self.config.leader_wait.as_millis()
                ),
            },
        }
    }

    /// The current leader, asking again every [`LEADER_POLL`] until one is reported or
    /// `leader_wait` has passed; `None` when none was.
    async fn find_leader(&self) -> Result<Option<String>> {
        let deadline = tokio::time::Instant::now() + self.config.leader_wait;
        loop {
            let l = bounded(
                self.config.op_timeout,
                "asking for the leader",
                self.ctl.leader(),
            )
            .await?;
            if l.is_some() || tokio::time::Instant::now() >= deadline {
                return Ok(l);
            }
            tokio::time::sleep(LEADER_POLL).await;
        }
    }

    fn push_active(&self, a: Active) {
        self.active.lock().expect("lock").push(a);
    }

    fn take_active(&self, kind: FaultKind) -> Option<Active> {
        let mut act = self.active.lock().expect("lock");
        let i = act.iter().position(|a| a.kind == kind)?;
        Some(act.remove(i))
    }

    /// Starts one fault and records what happened. Returns whether it took effect anywhere.
    pub async fn start(&self, fault: &Fault) -> bool {
        self.touch(fault.kind());
        self.dirty.store(true, Ordering::SeqCst);
        let kind = fault.kind();
        match fault {
            Fault::Partition(spec) => {
                let nodes = self.ctl.nodes();
                let leader = if matches!(spec, crate::schedule::PartitionSpec::IsolateLeader) {
                    match self.find_leader().await {
                        Ok(l) => l,
                        Err(e) => {
                            self.record_error("partition", fault.to_json(), &[format!("{e:#}")]);
                            return false;
                        }
                    }
                } else {
                    None
                };
                let grudge = match spec.grudge(&nodes, leader.as_deref()) {
                    Ok(g) => g,
                    Err(e) => {
                        self.record_error("partition", fault.to_json(), &[format!("{e:#}")]);
                        return false;
                    }
                };
                match self.partitioner.apply(&grudge).await {
                    Ok(mut v) => {
                        v["shape"] = json!(spec.name());
                        if let Some(l) = &leader {
                            v["leader"] = json!(l);
                        }
                        self.record("start-partition", v);
                        self.push_active(Active {
                            kind,
                            recorded: true,
                            clock_nodes: vec![],
                        });
                        true
                    }
                    Err(e) => {
                        // Leave nothing half-installed without a window.
                        let mut errs = vec![format!("{e:#}")];
                        if let Err(h) = self.partitioner.heal().await {
                            errs.push(format!("undoing the partial partition: {h:#}"));
                        }
                        self.record_error("partition", fault.to_json(), &errs);
                        false
                    }
                }
            }
            Fault::Kill(t) | Fault::Pause(t) => {
                let nodes = match self.resolve(t).await {
                    Ok(n) => n,
                    Err(e) => {
                        self.record_error(kind.name(), fault.to_json(), &[format!("{e:#}")]);
                        return false;
                    }
                };
                let out = if kind == FaultKind::Kill {
                    self.processes.kill(&nodes).await
                } else {
                    self.processes.pause(&nodes).await
                };
                self.finish_start(kind, fault, &out, json!({"nodes": out.done}))
            }
            Fault::Clock { nodes, setting } => {
                let mut verified = serde_json::Map::new();
                let mut changed = Vec::new();
                let mut errors = Vec::new();
                for n in nodes {
                    changed.push(n.clone());
                    match self.clocks.set(n, *setting).await {
                        Ok(Verification::Verified {
                            method,
                            observed_offset_ms,
                        }) => {
                            let mut v = setting.to_json();
                            v["verified_by"] = json!(method);
                            if let Some(o) = observed_offset_ms {
                                v["observed_offset_ms"] = json!(o);
                            }
                            verified.insert(n.clone(), v);
                        }
                        Ok(Verification::Unverified { reason }) => {
                            let mut v =
                                json!({"node": n, "setting": setting.to_json(), "reason": reason});
                            // Put it back at once: nothing unrecorded may stay skewed.
                            match self.clocks.reset(n).await {
                                Ok(_) => {
                                    changed.pop();
                                }
                                Err(e) => v["reset_error"] = json!(format!("{e:#}")),
                            }
                            self.record("clock-unverified", v);
                        }
                        Err(e) => errors.push(format!("{n}: {e:#}")),
                    }
                }
                if !errors.is_empty() {
                    self.record_error("clock", fault.to_json(), &errors);
                }
                let recorded = !verified.is_empty();
                if recorded {
                    self.record("start-clock", json!({"nodes": verified}));
                }
                if !changed.is_empty() {
                    self.push_active(Active {
                        kind,
                        recorded,
                        clock_nodes: changed,
                    });
                }
                recorded
            }
            Fault::Latency {
                latency_ms,
                jitter_ms,
            } => {
                let Some(links) = &self.links else {
                    self.record_error(
                        "latency",
                        fault.to_json(),
                        &["no proxy links: latency needs node-to-node proxies".to_string()],
                    );
                    return false;
                };
                match links.add_latency(*latency_ms, *jitter_ms).await {
                    Ok(v) => {
                        self.record("start-latency", v);
                        self.push_active(Active {
                            kind,
                            recorded: true,
                            clock_nodes: vec![],
                        });
                        true
                    }
                    Err(e) => {
                        let mut errs = vec![format!("{e:#}")];
                        if let Err(h) = links.remove_latency().await {
                            errs.push(format!("removing partial latency: {h:#}"));
                        }
                        self.record_error("latency", fault.to_json(), &errs);
                        false
                    }
                }
            }
            Fault::Restart { order } => {
                self.record("start-restart", json!({"order": order}));
                let out = self.processes.rolling_restart(order).await;
                self.reapply_clocks(&out.done).await;
                let mut v = json!({"restarted": out.done});
                if !out.is_ok() {
                    v["errors"] = json!(out.errors);
                }
                self.record("stop-restart", v);
                if !out.is_ok() {
                    self.record_error("restart", fault.to_json(), &out.errors);
                }
                !out.done.is_empty()
            }
        }
    }

    /// Restarted servers come back with the clock fault they had, if it is still active (the
    /// vDSO patch lives in a process; see [`Clocks::reapply`]). Recorded as `clock-reapplied`,
    /// or `clock-unverified` when the restarted server does not show it.
    async fn reapply_clocks(&self, nodes: &[String]) {
        for n in nodes {
            match self.clocks.reapply(n).await {
                None => {}
                Some(Ok(Verification::Verified {
                    method,
                    observed_offset_ms,
                })) => self.record(
                    "clock-reapplied",
                    json!({"node": n, "verified_by": method, "observed_offset_ms": observed_offset_ms}),
                ),
                Some(Ok(Verification::Unverified { reason })) => self.record(
                    "clock-unverified",
                    json!({"node": n, "after": "restart", "reason": reason}),
                ),
                Some(Err(e)) => self.record_error(
                    "clock",
                    json!({"node": n, "after": "restart"}),
                    &[format!("{e:#}")],
                ),
            }
        }
    }

    fn finish_start(&self, kind: FaultKind, fault: &Fault, out: &Outcome, value: Value) -> bool {
        let recorded = !out.done.is_empty();
        if recorded {
            self.record(&format!("start-{kind}"), value);
        }
        if !out.is_ok() {
            self.record_error(kind.name(), fault.to_json(), &out.errors);
        }
        // Tracked even when nothing was recorded: a failed kill may still have half-happened.
        self.push_active(Active {
            kind,
            recorded,
            clock_nodes: vec![],
        });
        recorded
    }

    /// Stops the oldest active fault of `kind` (nothing if none is active) and records it.
    pub async fn stop(&self, kind: FaultKind) {
        let Some(active) = self.take_active(kind) else {
            return;
        };
        let (value, errors) = self.undo(&active).await;
        if active.recorded {
            self.record(&format!("stop-{kind}"), value.clone());
        }
        if !errors.is_empty() {
            self.record_error(kind.name(), json!({"stop": value}), &errors);
        }
    }

    async fn undo(&self, a: &Active) -> (Value, Vec<String>) {
        match a.kind {
            FaultKind::Partition => match self.partitioner.heal().await {
                Ok(()) => (json!({"mechanism": self.partitioner.mechanism()}), vec![]),
                Err(e) => (json!({}), vec![format!("{e:#}")]),
            },
            FaultKind::Kill => {
                let out = self.processes.restart_killed().await;
                self.reapply_clocks(&out.done).await;
                (json!({"nodes": out.done}), out.errors)
            }
            FaultKind::Pause => {
                let out = self.processes.resume_paused().await;
                (json!({"nodes": out.done}), out.errors)
            }
            FaultKind::Clock => {
                let mut nodes = serde_json::Map::new();
                let mut errors = Vec::new();
                for n in &a.clock_nodes {
                    match self.clocks.reset(n).await {
                        Ok(Verification::Verified { method, .. }) => {
                            nodes.insert(n.clone(), json!({"offset_ms": 0, "verified_by": method}));
                        }
                        Ok(Verification::Unverified { reason }) => {
                            nodes.insert(n.clone(), json!({"offset_ms": 0, "unverified": reason}));
                        }
                        Err(e) => errors.push(format!("{n}: {e:#}")),
                    }
                }
                (json!({"nodes": nodes}), errors)
            }
            FaultKind::Latency => match &self.links {
                Some(l) => match l.remove_latency().await {
                    Ok(()) => (json!({"mechanism": "proxy"}), vec![]),
                    Err(e) => (json!({}), vec![format!("{e:#}")]),
                },
                None => (json!({}), vec![]),
            },
            FaultKind::Restart => (json!({}), vec![]),
        }
    }

    /// Executes `schedule` from now: each step at its time, until the schedule ends or `cancel`
    /// resolves (pass the run's deadline and Ctrl-C here). Always heals before returning.
    pub async fn run(&self, schedule: &Schedule, cancel: impl Future<Output = ()>) -> RunSummary {
        let origin = tokio::time::Instant::now();
        let mut summary = RunSummary::default();
        let errors_before = self.errors_recorded.load(Ordering::SeqCst);
        let unverified_before = self.unverified_recorded.load(Ordering::SeqCst);
        tokio::pin!(cancel);
        for step in &schedule.steps {
            tokio::select! {
                biased;
                _ = &mut cancel => { summary.cancelled = true; break; }
                _ = tokio::time::sleep_until(origin + step.at) => {}
            }
            let done = async {
                match &step.action {
                    Action::Start(f) => {
                        if self.start(f).await {
                            1
                        } else {
                            0
                        }
                    }
                    Action::Stop(k) => {
                        self.stop(*k).await;
                        0
                    }
                }
            };
            tokio::select! {
                biased;
                _ = &mut cancel => { summary.cancelled = true; break; }
                started = done => { summary.faults_started += started; summary.steps_run += 1; }
            }
        }
        summary.heal = self.heal_all().await;
        summary.fault_errors = self.errors_recorded.load(Ordering::SeqCst) - errors_before;
        summary.clock_unverified =
            self.unverified_recorded.load(Ordering::SeqCst) - unverified_before;
        summary
    }

    /// Undoes every fault on every node (see the module docs). Idempotent; concurrent callers
    /// wait for each other. Records `stop-X` for each fault still in force and one `heal` entry.
    pub async fn heal_all(&self) -> HealReport {
        let _one_at_a_time = self.heal_lock.lock().await;
        let touched = self.touched.lock().expect("lock").clone();
        let active: Vec<Active> = std::mem::take(&mut *self.active.lock().expect("lock"));
        let mut errors = Vec::new();
        let mut stops: BTreeMap<FaultKind, Value> = BTreeMap::new();

        // Processes first: a paused or stopped node cannot run the commands that undo the rest.
        errors.extend(self.processes.resume_all().await);
        stops.insert(
            FaultKind::Kill,
            json!({"by": "heal", "nodes": self.ctl.nodes()}),
        );
        stops.insert(
            FaultKind::Pause,
            json!({"by": "heal", "nodes": self.ctl.nodes()}),
        );

        if touched.contains(&FaultKind::Partition) {
            match self.partitioner.heal().await {
                Ok(()) => {}
                Err(e) => errors.push(format!("{e:#}")),
            }
            stops.insert(
                FaultKind::Partition,
                json!({"by": "heal", "mechanism": self.partitioner.mechanism()}),
            );
        }
        if touched.contains(&FaultKind::Latency) {
            if let Some(l) = &self.links {
                if let Err(e) = l.remove_latency().await {
                    errors.push(format!("{e:#}"));
                }
            }
            stops.insert(FaultKind::Latency, json!({"by": "heal"}));
        }
        let mut clock_nodes = serde_json::Map::new();
        for (node, r) in self.clocks.heal().await {
            match r {
                Ok(v) => {
                    clock_nodes.insert(node, json!({"offset_ms": 0, "verified": v.is_verified()}));
                }
                Err(e) => errors.push(format!("resetting the clock on {node}: {e:#}")),
            }
        }
        stops.insert(
            FaultKind::Clock,
            json!({"by": "heal", "nodes": clock_nodes}),
        );
        // Readiness last: a node is ready only once its network and clock are back.
        errors.extend(self.processes.wait_all_ready().await);

        for a in active.iter().filter(|a| a.recorded) {
            let v = stops
                .get(&a.kind)
                .cloned()
                .unwrap_or_else(|| json!({"by": "heal"}));
            self.record(&format!("stop-{}", a.kind), v);
        }
        self.record(
            "heal",
            json!({"ok": errors.is_empty(), "errors": errors, "nodes": self.ctl.nodes()}),
        );
        if errors.is_empty() {
            self.dirty.store(false, Ordering::SeqCst);
        }
        HealReport { errors }
    }

    /// Whether a fault may be in force (something started since the last successful heal).
    pub fn needs_heal(&self) -> bool {
        self.dirty.load(Ordering::SeqCst)
    }
}

/// Heals a [`Nemesis`] when dropped, unless disarmed or nothing needs healing: the last line of
/// defence for a panic that unwinds past the controller's own heal call.
pub struct HealGuard {
    nemesis: Arc<Nemesis>,
    armed: bool,
}

impl HealGuard {
    pub fn new(nemesis: Arc<Nemesis>) -> HealGuard {
        HealGuard {
            nemesis,
            armed: true,
        }
    }

    /// The controller healed on its own path; dropping the guard does nothing.
    pub fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for HealGuard {
    fn drop(&mut self) {
        if !self.armed || !self.nemesis.needs_heal() {
            return;
        }
        let n = self.nemesis.clone();
        // Heal on a helper thread: Drop may run inside an async task, where blocking on a future
        // is not allowed. A multi-threaded runtime's other workers keep its connections alive,
        // so its handle can drive the heal; otherwise a small runtime of our own does.
        let handle = tokio::runtime::Handle::try_current()
            .ok()
            .filter(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let joined = std::thread::spawn(move || match handle {
            Some(h) => {
                h.block_on(n.heal_all());
            }
            None => {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(n.heal_all());
                }
            }
        })
        .join();
        if joined.is_err() {
            eprintln!("faultline: the final heal panicked; run `faultline clean` to remove the run's containers");
        }
    }
}
