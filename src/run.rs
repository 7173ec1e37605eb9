//! `faultline run`: plan -> cluster -> (generator + nemesis) -> clients -> history -> checkers ->
//! results -> report -> exit code.
//!
//! The order of the phases is the contract with the user:
//! 1. the store folder and `plan.json` first, so a run that dies in set-up still says what it
//!    tried, and the seed and rerun command are printed before anything can fail;
//! 2. the cluster (images built on first use), the recorder streaming `history.jsonl`;
//! 3. the main phase: workers and the nemesis side by side until the time limit or Ctrl-C;
//! 4. the final heal (always, whatever ended the main phase), a bounded wait for recovery, the
//!    final phase (final reads, drains), also after a first Ctrl-C; a second Ctrl-C skips it;
//!    then the convergence reads of every node where the workload has a per-node read
//!    (`convergence.rs`), also after a first Ctrl-C, not after a second;
//! 5. node logs, teardown (always), then the checkers on whatever history was recorded, results,
//!    the report, and the exit code (0 valid, 1 invalid, 2 unknown, 3 harness error).
//!
//! A panic inside the workload or nemesis tasks surfaces as an error of that phase; the run still
//! heals, tears down, checks the partial history and reports, with the verdict at best `unknown`.

use crate::cluster::{self, Cluster, ClusterOptions, System, SystemParams};
use crate::plan::Plan;
use crate::store::RunDir;
use anyhow::{Context, Result};
use checkers::{Budget, CheckResult, EventType, Verdict};
use indicatif::{ProgressBar, ProgressStyle};
use nemeses::driver::{HealGuard, Nemesis, NemesisConfig};
use nemeses::schedule::{FaultKind, Schedule, ScheduleOptions};
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use workloads::{PhaseLimits, Recorder, Runner, RunnerConfig, WorkloadOptions};

/// Options of a run that are about output, not about the test itself.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub junit: Option<PathBuf>,
    pub summary_md: Option<PathBuf>,
    pub quiet: bool,
}

/// What a finished run produced.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub verdict: Verdict,
    pub run_dir: PathBuf,
    pub report: Option<PathBuf>,
    /// Problems of the harness (not of the system under test) met on the way.
    pub harness_errors: Vec<String>,
}

impl RunOutcome {
    /// 0 valid, 1 invalid, 2 unknown, 3 when the harness failed and nothing proves an anomaly.
    pub fn exit_code(&self) -> i32 {
        match self.verdict {
            Verdict::Invalid => 1,
            _ if !self.harness_errors.is_empty() => 3,
            v => v.exit_code(),
        }
    }
}

/// Bound on waiting for a cluster to serve again after the final heal.
const RECOVERY_WAIT_S: u64 = 60;
/// Bound on the final phase (final reads, drains).
const FINAL_PHASE_S: u64 = 60;
/// Bound on the grace given to in-flight operations when a phase ends.
const GRACE_S: u64 = 5;
/// How often the progress line refreshes.
const PROGRESS_TICK_MS: u64 = 250;
/// How often a plain progress line is printed when stderr is not a terminal (a CI log).
const PLAIN_PROGRESS_INTERVAL_S: u64 = 10;

/// The faultline.log of a run: timestamped lines, also echoed to stderr when not quiet.
#[derive(Clone)]
pub struct RunLog {
    file: Arc<Mutex<std::fs::File>>,
    started: Instant,
    echo: bool,
}

impl RunLog {
    fn create(path: &std::path::Path, echo: bool) -> Result<RunLog> {
        let file = std::fs::File::create(path)
            .with_context(|| format!("{}: cannot create the run log", path.display()))?;
        Ok(RunLog {
            file: Arc::new(Mutex::new(file)),
            started: Instant::now(),
            echo,
        })
    }

    /// A log that appends to an existing run's log (for `faultline report` on a killed run).
    fn append(path: &std::path::Path, echo: bool) -> Result<RunLog> {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .with_context(|| format!("{}: cannot open the run log", path.display()))?;
        Ok(RunLog {
            file: Arc::new(Mutex::new(file)),
            started: Instant::now(),
            echo,
        })
    }

    pub fn line(&self, msg: impl AsRef<str>) {
        let msg = msg.as_ref();
        let t = self.started.elapsed().as_secs_f64();
        if let Ok(mut f) = self.file.lock() {
            let _ = writeln!(f, "[{t:8.3}s] {msg}");
        }
        if self.echo {
            eprintln!("faultline: {msg}");
        }
    }
}

/// Runs `plan` to the end and returns the exit code. Blocks on its own tokio runtime.
pub fn execute(plan: Plan, opts: RunOptions) -> Result<i32> {
    execute_with_client(plan, opts, None)
}

/// A client written in Rust, for faultline used as a library: it replaces the plan's client
/// (the shipped one of a built-in system, or `system.client` of a user's system). Its `open`
/// is given the node's client address as this machine reaches it (`127.0.0.1:PORT`, the
/// published port named `client`). See examples/pykv_rust_client.rs.
pub type OwnClient = Arc<dyn workloads::ClientFactory>;

/// [`execute`] with the caller's own client factory, if any.
pub fn execute_with_client(plan: Plan, opts: RunOptions, client: Option<OwnClient>) -> Result<i32> {
    require_client(&plan, client.is_some())?;
    eprintln!(
        "faultline: test {} (system {}, workload {}, nemesis {}, {} s), seed {}",
        plan.name,
        plan.system,
        plan.workload,
        if plan.nemesis.is_empty() {
            "none".to_string()
        } else {
            plan.nemesis.join(",")
        },
        plan.time_limit_ms as f64 / 1e3,
        plan.seed
    );
    eprintln!("faultline: rerun with: {}", plan.rerun_command());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let outcome = runtime.block_on(run_plan_with_client(plan.clone(), opts, client))?;
    for e in &outcome.harness_errors {
        eprintln!("faultline: harness problem: {e}");
    }
    eprintln!(
        "faultline: verdict {} — {}",
        outcome.verdict,
        outcome
            .report
            .as_ref()
            .map(|p| format!("report {}", p.display()))
            .unwrap_or_else(|| format!("run folder {}", outcome.run_dir.display()))
    );
    eprintln!("faultline: rerun with: {}", plan.rerun_command());
    Ok(outcome.exit_code())
}

/// The whole run, on the caller's runtime (integration tests call this directly).
pub async fn run_plan(plan: Plan, opts: RunOptions) -> Result<RunOutcome> {
    run_plan_with_client(plan, opts, None).await
}

/// A user's system needs a client: its `system.client` program, or a Rust one ([`OwnClient`],
/// `own`). Checked before anything starts.
pub fn require_client(plan: &Plan, own: bool) -> Result<()> {
    match &plan.system_def {
        Some(def) if def.client.is_empty() && !own => anyhow::bail!(
            "{}: system.client: give the client program, e.g. [\"python3\", \"client.py\"]",
            plan.plan_file.as_deref().unwrap_or("the plan")
        ),
        _ => Ok(()),
    }
}

/// [`run_plan`] with the caller's own client factory, if any ([`OwnClient`]).
pub async fn run_plan_with_client(
    plan: Plan,
    opts: RunOptions,
    client: Option<OwnClient>,
) -> Result<RunOutcome> {
    require_client(&plan, client.is_some())?;
    let store = PathBuf::from(&plan.store);
    let dir = RunDir::create(&store, &plan.name)?;
    let log = RunLog::create(&dir.log(), !opts.quiet)?;
    log.line(format!("run folder {}", dir.path.display()));
    let started_at = crate::store::utc_rfc3339();
    let mut plan_json = plan_json(&plan, &started_at);
    dir.write_json("plan.json", &plan_json)?;

    // Ctrl-C / SIGTERM, the usual convention: the first stops the workload and the nemesis
    // (which heals) and lets the final phase run; a second skips the final phase; teardown,
    // checks and the report always follow.
    let cancel = CancellationToken::new();
    let hurry = CancellationToken::new();
    // Answered until the run returns (teardown and checks included), however it returns.
    let _signals = AbortOnDrop(tokio::spawn(answer_signals(
        cancel.clone(),
        hurry.clone(),
        log.clone(),
    )));

    let mut harness_errors = Vec::new();
    let mut interrupted = false;
    let recorded = drive(&plan, &dir, &log, &cancel, &hurry, &mut plan_json, client).await;
    match &recorded {
        Ok(r) => interrupted = r.interrupted,
        Err(e) if e.downcast_ref::<Interrupted>().is_some() => {
            log.line(format!("run stopped: {e}"));
            interrupted = true;
        }
        Err(e) => {
            let msg = one_line(e);
            log.line(format!("run failed: {msg}"));
            harness_errors.push(msg);
        }
    }
    interrupted |= cancel.is_cancelled();
    dir.write_json("plan.json", &plan_json)?;

    // Check whatever was recorded, even after a failure or an interruption.
    let checker_specs = recorded
        .as_ref()
        .map(|r| r.checkers.clone())
        .unwrap_or_else(|_| default_checkers(&plan));
    let (history, results) = check_history(&dir, &checker_specs, &log);
    let mut results = results;
    results.extend(crate::convergence::result(&dir.path));
    match history.as_ref() {
        // Stopped before the first operation: nothing to check, and nothing went wrong.
        Err(_) if interrupted && !dir.history().exists() => results.clear(),
        Err(e) => harness_errors.push(e.clone()),
        Ok(_) => {}
    }
    if interrupted {
        results.push(CheckResult::unknown(
            "run",
            if history.is_ok() {
                "the run was interrupted (Ctrl-C or SIGTERM) before its time limit; the partial history was checked, so anomalies found are real but their absence proves less"
            } else {
                "the run was interrupted (Ctrl-C or SIGTERM) before any operation was recorded"
            },
        ));
    }
    if let Some(e) = harness_errors.first() {
        if !results
            .iter()
            .any(|r| r.verdict == Verdict::Unknown && r.checker == "run")
        {
            results.push(CheckResult::unknown(
                "run",
                format!("the harness failed: {e}"),
            ));
        }
    }
    let mut run_results = reports::RunResults::new(plan.name.clone(), results);
    run_results.seed = Some(plan.seed);
    run_results.command = Some(plan.rerun_command());
    run_results.started_at = Some(started_at);
    dir.write_json("results.json", &run_results)?;
    for r in &run_results.results {
        log.line(format!("{}: {} — {}", r.checker, r.verdict, r.summary));
    }

    let mut report = None;
    if let Ok(h) = &history {
        match reports::render_run(&dir.path, h, &run_results, &plan_json) {
            Ok(r) => report = Some(r.index),
            Err(e) => harness_errors.push(format!("report: {}", one_line(&e))),
        }
    }
    if let Err(e) = reports::render_store_index(&store) {
        harness_errors.push(format!("store index: {}", one_line(&e)));
    }
    let report_str = report.as_ref().map(|p| p.display().to_string());
    let ctx = reports::CiContext {
        title: &plan.name,
        seed: Some(plan.seed),
        command: run_results.command.as_deref(),
        report: report_str.as_deref(),
    };
    if let Some(path) = &opts.junit {
        reports::write_junit(path, &plan.name, &run_results.results)?;
    }
    if let Some(path) = &opts.summary_md {
        reports::write_markdown_summary(path, &ctx, &run_results.results)?;
    }
    Ok(RunOutcome {
        verdict: run_results.verdict,
        run_dir: dir.path.clone(),
        report,
        harness_errors,
    })
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Signals bounded in number (a held-down Ctrl-C repeats): enough to say each time what happens.
const SIGNALS_ANSWERED_MAX: u32 = 100;

/// Answers Ctrl-C / SIGTERM: the first cancels `cancel` (stop gracefully), the second `hurry`
/// (skip the final phase), every later one says that cleanup is in progress.
async fn answer_signals(cancel: CancellationToken, hurry: CancellationToken, log: RunLog) {
    for count in 1..=SIGNALS_ANSWERED_MAX {
        let Ok(sig) = cluster::shutdown_signal().await else {
            return;
        };
        log.line(signal_message(sig, count));
        match count {
            1 => cancel.cancel(),
            2 => hurry.cancel(),
            _ => {}
        }
    }
}

/// What the `count`th signal does, in one line.
fn signal_message(sig: &str, count: u32) -> String {
    match count {
        1 => format!(
            "{sig}: stopping gracefully: the workload stops, faults are healed, the final phase runs, then teardown and the checks of the partial history; press Ctrl-C again to skip the final phase (teardown still happens)"
        ),
        2 => format!(
            "{sig} again: skipping the final phase; cleanup is in progress (teardown, then the checks); it is not skipped, so the cluster is never left behind"
        ),
        _ => format!(
            "{sig}: cleanup is in progress (teardown, then the checks); waiting for it to finish"
        ),
    }
}

/// The user stopped the run (Ctrl-C or SIGTERM) before it could record anything: not a harness
/// failure, so it never counts as one.
#[derive(Debug)]
struct Interrupted(&'static str);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "interrupted {}", self.0)
    }
}

impl std::error::Error for Interrupted {}

/// What the cluster-and-workload part of a run left for the checkers.
struct Recorded {
    checkers: Vec<workloads::workload::CheckerSpec>,
    interrupted: bool,
}

/// Whether the plan's system has its workload and takes its `[client]` options: the checks a
/// run makes before it starts anything, for commands that load many plans first.
pub fn check_workload(plan: &Plan) -> Result<(), String> {
    build_workload(plan)
        .map(|_| ())
        .map_err(|e| match e.starts_with("client.") {
            true => e,
            false => format!("workload: {e}"),
        })
}

fn default_checkers(plan: &Plan) -> Vec<workloads::workload::CheckerSpec> {
    build_workload(plan)
        .map(|(w, _)| w.checkers)
        .unwrap_or_default()
}

/// The plan's workload, with its client factory for a shipped system; a user's system gets its
/// factory once its nodes' addresses are known ([`external_factory`]).
fn build_workload(
    plan: &Plan,
) -> Result<
    (
        workloads::Workload,
        Option<Arc<dyn workloads::ClientFactory>>,
    ),
    String,
> {
    match &plan.system_def {
        Some(_) => workloads::workload::external_workload(&plan.workload, &workload_options(plan))
            .map(|w| (w, None)),
        None => workloads::build(&plan.system, &plan.workload, &workload_options(plan))
            .map(|(w, f)| (w, Some(f))),
    }
}

/// Bound on a user's client program's start and its answer to `init` (a JVM takes a while).
const EXTERNAL_INIT_TIMEOUT_S: u64 = 10;

/// The client factory of a user's system: its client program, told every server node and its
/// published addresses; its stderr goes to `client-stderr.log` in the run folder.
fn external_factory(
    plan: &Plan,
    dir: &RunDir,
    cluster: &Cluster,
) -> Result<Arc<dyn workloads::ClientFactory>> {
    use workloads::clients::external::{ExternalFactory, ExternalNode};
    let nodes = cluster
        .nodes()
        .iter()
        .filter(|n| n.role == "server")
        .map(|n| ExternalNode {
            name: n.name.clone(),
            addresses: n
                .ports
                .iter()
                .map(|(name, (_, host))| (name.clone(), format!("127.0.0.1:{host}")))
                .collect(),
        })
        .collect();
    let config = external_config(plan, nodes, Some(dir.path.join(CLIENT_STDERR_FILE)))?;
    Ok(Arc::new(ExternalFactory::new(config)?))
}

/// How a user's client program is started and what `init` tells it.
fn external_config(
    plan: &Plan,
    nodes: Vec<workloads::clients::external::ExternalNode>,
    stderr_file: Option<PathBuf>,
) -> Result<workloads::clients::external::ExternalClientConfig> {
    let def = plan
        .system_def
        .as_ref()
        .context("a client program needs a user's system")?;
    Ok(workloads::clients::external::ExternalClientConfig {
        command: def.client.clone(),
        cwd: Some(plan.base_dir()),
        env: def
            .client_env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        workload: plan.workload.clone(),
        nodes,
        stderr_file,
        init_timeout: Duration::from_secs(EXTERNAL_INIT_TIMEOUT_S),
    })
}

/// Starts a user's client program once before any node exists
/// (`ExternalFactory::check_starts`): a client that cannot start fails here, in a second,
/// rather than after a cluster was booted for it. `init` names the nodes the plan will start,
/// every address at port 0 (nothing listens yet). The error is one line naming the plan file
/// and `system.client`. Nothing to do for shipped systems.
pub async fn check_client_starts(plan: &Plan, stderr_file: Option<PathBuf>) -> Result<()> {
    let Some(def) = &plan.system_def else {
        return Ok(());
    };
    let nodes = def
        .node_names()
        .into_iter()
        .map(|name| workloads::clients::external::ExternalNode {
            name,
            addresses: def
                .ports
                .keys()
                .map(|p| (p.clone(), "127.0.0.1:0".to_string()))
                .collect(),
        })
        .collect();
    let config = external_config(plan, nodes, stderr_file)?;
    let factory = workloads::clients::external::ExternalFactory::new(config)?;
    factory.check_starts().await.map_err(|e| {
        anyhow::anyhow!(
            "{}: system.client `{}` fails at start: {}",
            plan.plan_file.as_deref().unwrap_or("plan"),
            def.client.join(" "),
            one_line(&e)
        )
    })
}

/// [`check_client_starts`] on a runtime of its own, for `faultline run` before the run folder
/// exists (so a client that cannot start is bad input: exit 3, nothing started).
pub fn check_client(plan: &Plan) -> Result<()> {
    if plan.system_def.is_none() {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(check_client_starts(plan, None))
}

/// Where a user's client programs' stderr goes, in the run folder.
pub const CLIENT_STDERR_FILE: &str = "client-stderr.log";

/// What a run adds beside the nodes of a user's own image (`system.image`): faultline's image
/// for the link proxy, and network helpers for iptables partitions (see
/// `cluster::net_helper` for why every user image gets them, whether or not it has iptables).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Helpers {
    /// faultline's base image is needed beside the system's image.
    pub helper_image: bool,
    /// Partitions go through a helper container per node.
    pub net_helpers: bool,
}

/// [`Helpers`] for a plan: only for a user's own image, and only when the run partitions with
/// iptables or proxies its links.
pub fn helpers_needed(plan: &Plan, kinds: &[FaultKind], proxy_links: bool) -> Helpers {
    let own_image = plan
        .system_def
        .as_ref()
        .is_some_and(|d| matches!(d.image_source(), cluster::user::ImageSource::Local(_)));
    let net_helpers = own_image && !proxy_links && kinds.contains(&FaultKind::Partition);
    Helpers {
        helper_image: own_image && (net_helpers || proxy_links),
        net_helpers,
    }
}

/// Makes sure the image of a user's system exists before a run starts anything: a local image
/// must be there, the base image plus packages is built (once). A one-line error otherwise,
/// with apt's own line for a package that cannot be installed. Nothing to do for shipped
/// systems (their image is built on first use inside the run). A user's own image that needs
/// faultline's image beside it (network helpers, the link proxy) gets that built here too.
pub fn prepare_image(plan: &Plan) -> Result<()> {
    let Some(def) = &plan.system_def else {
        return Ok(());
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        cluster::docker::available().context("Docker")?;
        let docker = cluster::docker::connect()?;
        crate::images::ensure_system_image(&docker, &def.image_source()).await?;
        let (kinds, _) = fault_kinds(plan)?;
        if helpers_needed(plan, &kinds, plan.uses_proxy_links()).helper_image {
            crate::images::ensure_base(&docker).await?;
        }
        Ok(())
    })
}

fn workload_options(plan: &Plan) -> WorkloadOptions {
    let mut o = WorkloadOptions {
        seed: plan.seed,
        ..WorkloadOptions::default()
    };
    if let Ok(m) = plan.read_mode.parse() {
        o.read_mode = m;
    }
    o.register.keys_in_flight = plan.keys as usize;
    o.client = plan.client.clone();
    // The testbed client must agree with the nodes on these; the node flags win unless the
    // plan's [client] table says otherwise.
    for key in ["partitions", "max-retries", "consume-max"] {
        if let Some(v) = plan.testbed.get(key) {
            let v = match v {
                Value::String(s) => s.parse::<u64>().map(Value::from).unwrap_or(v.clone()),
                other => other.clone(),
            };
            o.client.entry(key.to_string()).or_insert(v);
        }
    }
    o
}

/// Fault kinds may be restricted to shapes (`partition:isolate-leader`).
type Shapes = Vec<(FaultKind, String)>;

/// The plan's fault kinds (each once, in order) and the shapes some are restricted to.
fn fault_kinds(plan: &Plan) -> Result<(Vec<FaultKind>, Shapes)> {
    let mut kinds = Vec::new();
    let mut shapes = Vec::new();
    for n in &plan.nemesis {
        let (k, shape) =
            nemeses::schedule::parse_fault(n).with_context(|| format!("--nemesis {n:?}"))?;
        if !kinds.contains(&k) {
            kinds.push(k);
        }
        if let Some(sh) = shape {
            shapes.push((k, sh));
        }
    }
    Ok((kinds, shapes))
}

/// Cluster, workload and nemesis: everything that touches Docker. Always heals and tears down.
async fn drive(
    plan: &Plan,
    dir: &RunDir,
    log: &RunLog,
    cancel: &CancellationToken,
    hurry: &CancellationToken,
    plan_json: &mut Value,
    own_client: Option<OwnClient>,
) -> Result<Recorded> {
    let (workload, factory) = build_workload(plan)
        .map_err(anyhow::Error::msg)
        .context("--workload")?;
    let own = own_client.is_some();
    let factory = own_client.or(factory);
    log.line(format!(
        "workload {}: {}; checkers: {}",
        workload.name,
        workload.guarantee,
        workload
            .checkers
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let checkers = workload.checkers.clone();
    let (kinds, shapes) = fault_kinds(plan)?;

    if crate::plan::is_in_memory(&plan.system) {
        log.line("in-memory system: no cluster, no faults");
        plan_json["cluster"] = json!({"in_memory": plan.system});
        let factory = factory.context("an in-memory system has its client factory")?;
        let interrupted = drive_in_memory(plan, dir, log, cancel, hurry, workload, factory).await?;
        return Ok(Recorded {
            checkers,
            interrupted,
        });
    }
    cluster::docker::available().context("Docker")?;
    let docker = cluster::docker::connect()?;
    let image = match &plan.system_def {
        Some(def) => crate::images::ensure_system_image(&docker, &def.image_source()).await?,
        None => crate::images::ensure_base(&docker).await?,
    };
    log.line(format!("image {image}"));

    let system_name = crate::plan::cluster_system(&plan.system);
    let params = SystemParams {
        node_args: if plan.builtin() == Some(workloads::Builtin::Testbed) {
            plan.testbed_node_args()
        } else {
            vec![]
        },
        ..SystemParams::default()
    };
    let (system, link_plan) = if let Some(def) = &plan.system_def {
        let resolved = def.check(&plan.base_dir()).map_err(anyhow::Error::msg)?;
        if plan.uses_proxy_links() {
            let (linked, lp) =
                cluster::links::user_system_with_proxy_links(&resolved, &image, params)?;
            log.line(format!(
                "links: {} node-to-node links through the proxy container",
                lp.links.len()
            ));
            (linked, Some(lp))
        } else {
            (resolved.system(&image, &params)?, None)
        }
    } else if plan.uses_proxy_links() {
        let (linked, lp) = cluster::links::system_with_proxy_links(system_name, params)?;
        log.line(format!(
            "links: {} node-to-node links through the proxy container",
            lp.links.len()
        ));
        (linked, Some(lp))
    } else {
        (System::by_name(system_name, &params)?, None)
    };
    let mut cluster_opts = ClusterOptions {
        logs_dir: Some(dir.nodes()),
        ..ClusterOptions::default()
    };
    let needs = helpers_needed(plan, &kinds, link_plan.is_some());
    if needs.helper_image {
        let base = crate::images::ensure_base(&docker).await?;
        if needs.net_helpers {
            log.line(format!(
                "partitions through a network helper per node (image {base}): system.image is your own"
            ));
        }
        cluster_opts.helper_image = Some(base);
        cluster_opts.net_helpers = needs.net_helpers;
    }
    if kinds.contains(&FaultKind::Clock) {
        crate::nemesis::add_clock_fault_options(&mut cluster_opts, &system)?;
    }
    // Run folder or not (test-all and calibrate come here directly), a client that cannot
    // start is found before a cluster is booted for it.
    if !own {
        check_client_starts(plan, Some(dir.path.join(CLIENT_STDERR_FILE))).await?;
    }
    log.line(format!("starting {} cluster", plan.system));
    let cluster = tokio::select! {
        c = Cluster::up(system, cluster_opts) => c?,
        _ = cancel.cancelled() => return Err(Interrupted("while the cluster was starting").into()),
    };
    let cluster = Arc::new(cluster);
    log.line(format!(
        "cluster {} ready in {:.1} s: {}",
        cluster.run_id(),
        cluster.ready_in().as_secs_f64(),
        cluster.node_names().join(", ")
    ));
    plan_json["cluster"] = json!({
        "run_id": cluster.run_id(),
        "network": cluster.network(),
        "image": image,
        "ready_in_s": cluster.ready_in().as_secs_f64(),
        "nodes": cluster.nodes().iter().map(|n| json!({
            "name": n.name, "role": n.role, "container": n.container_name,
            "ports": n.ports,
        })).collect::<Vec<_>>(),
    });

    let factory = match factory {
        Some(f) => Ok(f),
        None => external_factory(plan, dir, &cluster),
    };
    let result = match factory {
        Ok(factory) => {
            drive_on_cluster(
                plan, dir, log, cancel, hurry, &cluster, workload, factory, own, &kinds, shapes,
                link_plan,
            )
            .await
        }
        Err(e) => Err(e),
    };

    // Teardown always: collect node logs, then remove containers and network.
    if let Err(e) = cluster.collect_logs(&dir.nodes()).await {
        log.line(format!("collecting node logs: {}", one_line(&e)));
    }
    match Arc::try_unwrap(cluster) {
        Ok(c) => match c.teardown().await {
            Ok(_) => log.line("cluster removed"),
            Err(e) => log.line(format!("teardown: {}", one_line(&e))),
        },
        Err(_) => log.line("cluster still referenced; it is removed when the last handle drops"),
    }
    result.map(|interrupted| Recorded {
        checkers,
        interrupted,
    })
}

/// Returns whether the run was interrupted.
#[allow(clippy::too_many_arguments)]
async fn drive_on_cluster(
    plan: &Plan,
    dir: &RunDir,
    log: &RunLog,
    cancel: &CancellationToken,
    hurry: &CancellationToken,
    cluster: &Arc<Cluster>,
    workload: workloads::Workload,
    factory: Arc<dyn workloads::ClientFactory>,
    own_client: bool,
    kinds: &[FaultKind],
    shapes: Shapes,
    link_plan: Option<nemeses::partition::LinkPlan>,
) -> Result<bool> {
    let recorder = Recorder::create(dir.history())?;
    point_latest(dir, log);
    // A user's client program is told every address in `init`, so the runner only names its
    // node; a Rust client ([`OwnClient`]) gets the node's client address.
    let external = plan.system_def.is_some() && !own_client;
    let nodes = match external {
        true => cluster.nodes_with_role("server"),
        false => client_addresses(cluster),
    };
    anyhow::ensure!(
        !nodes.is_empty(),
        "the {} cluster exposes no client port",
        plan.system
    );
    let mut config = RunnerConfig::new(plan.concurrency as usize, nodes, plan.seed);
    config.op_timeout = Duration::from_millis(plan.op_timeout_ms);
    if external {
        // Above the client's init bound, so its own error (with its stderr) is the one seen.
        config.connect_timeout = Duration::from_secs(EXTERNAL_INIT_TIMEOUT_S + 5);
    }
    let convergence_factory = factory.clone();
    let mut runner = Runner::start(config, factory, recorder.clone()).await?;

    // The nemesis writes into the same history as the clients.
    let nem_rec = {
        let recorder = recorder.clone();
        move |e: nemeses::record::NemesisEvent| {
            // Nemesis events are never client operations: always `info`.
            let kind = EventType::Info;
            let r = recorder.clone();
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async move {
                    let _ = r
                        .record(
                            checkers::Process::Nemesis,
                            kind,
                            &e.f,
                            None,
                            e.value,
                            e.error.as_deref(),
                        )
                        .await;
                })
            })
        }
    };
    let ctl = Arc::new(crate::nemesis::ClusterControl::new(cluster.clone()));
    let nemesis_config = NemesisConfig {
        clock_vdso_helper: kinds
            .contains(&FaultKind::Clock)
            .then(|| crate::nemesis::CLOCK_VDSO_HELPER.to_string()),
        ..NemesisConfig::default()
    };
    let mut nemesis = Nemesis::new(ctl, Arc::new(nem_rec), nemesis_config);
    if let Some(lp) = link_plan {
        let api = cluster.host_addr(cluster::links::PROXY_NODE, "api")?;
        let client = nemeses::toxiproxy::Client::new(&api.to_string())
            .map_err(|e| anyhow::anyhow!("the link proxy's API at {api}: {e}"))?;
        let links =
            nemeses::partition::ProxyLinks::new(client, lp, nemeses::partition::CutMode::BlackHole);
        nemesis = nemesis.with_proxy_links(links, true);
    }
    let nemesis = Arc::new(nemesis);
    let mut guard = HealGuard::new(nemesis.clone());
    let schedule = Schedule::generate(
        plan.seed,
        kinds,
        &cluster.fault_targets(),
        &ScheduleOptions {
            interval: Duration::from_millis(plan.nemesis_interval_ms),
            time_limit: plan.time_limit(),
            shapes,
            leader_known: cluster.system().leader != cluster::LeaderQuery::None,
            ..ScheduleOptions::default()
        },
    )?;
    if !kinds.is_empty() {
        let prepared = nemesis.prepare(kinds).await?;
        log.line(format!("nemesis prepared: {prepared}"));
    }
    let count = schedule.faults().count();
    log.line(format!(
        "schedule: {count} faults over {} s{}{}",
        plan.time_limit_ms / 1000,
        if count > 0 { ": " } else { "" },
        schedule.brief()
    ));
    if !kinds.is_empty() && schedule.faults().count() == 0 {
        log.line(format!(
            "warning: no fault fits: a fault starts one --nemesis-interval ({} ms) in and lasts one more, which needs a --time-limit of at least {} ms",
            plan.nemesis_interval_ms,
            2 * plan.nemesis_interval_ms
        ));
    }

    let progress = progress_bar(plan, &recorder, log);
    let main_gen = workloads::workload::paced(
        workload.generator,
        Some(plan.rate_ops_per_s),
        plan.time_limit(),
    );
    let nemesis_task = {
        let nemesis = nemesis.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let c = cancel.clone();
            nemesis
                .run(&schedule, async move { c.cancelled().await })
                .await
        })
    };
    let limits = PhaseLimits {
        time_limit: plan.time_limit(),
        grace: Duration::from_secs(GRACE_S),
    };
    let main = runner.run_phase(main_gen, limits, cancel).await;
    // The nemesis stops at its own deadline (the same time limit); wait for it, bounded.
    let summary =
        match tokio::time::timeout(Duration::from_secs(RECOVERY_WAIT_S), nemesis_task).await {
            Ok(Ok(s)) => Some(s),
            Ok(Err(join)) => {
                log.line(format!("nemesis task failed: {join}"));
                None
            }
            Err(_) => {
                log.line("nemesis did not finish in time; healing now");
                None
            }
        };
    // The nemesis heals at the end of its schedule; heal again only when that did not happen
    // or did not succeed (a second heal would wait for readiness again and record twice).
    if summary.is_none() || nemesis.needs_heal() {
        let heal = nemesis.heal_all().await;
        if !heal.is_ok() {
            log.line(format!("heal problems: {}", heal.errors.join("; ")));
        }
    }
    guard.disarm();
    if let Some(s) = &summary {
        log.line(format!(
            "nemesis: {} faults started, {} errors, {} clock changes unverified",
            s.faults_started, s.fault_errors, s.clock_unverified
        ));
    }
    let main = main?;
    log.line(format!(
        "main phase: {} ops ({} ok, {} fail, {} info) in {:.1} s, ended by {:?}",
        main.invoked,
        main.ok,
        main.fail,
        main.info,
        main.elapsed_ms / 1e3,
        main.ended
    ));
    warn_if_slow(plan, main.invoked, main.elapsed_ms, log);

    let interrupted = cancel.is_cancelled();
    // A first Ctrl-C still runs the final phase (it is what tells lost from late) and the
    // convergence reads; a second one (`hurry`) skips both. The recovery wait serves the two;
    // a workload with neither does not wait for a node the nemesis left down.
    let converges = crate::convergence::supported(convergence_factory.as_ref(), cluster).await;
    if !hurry.is_cancelled() && (workload.final_generator.is_some() || converges) {
        log.line("waiting for the cluster to recover");
        let recovery = cluster.wait_ready(Duration::from_secs(RECOVERY_WAIT_S));
        tokio::select! {
            r = recovery => if let Err(e) = r {
                log.line(format!("recovery: {}", one_line(&e)));
            },
            _ = hurry.cancelled() => log.line("recovery wait cut short"),
        }
        if let (Some(final_gen), false) = (workload.final_generator, hurry.is_cancelled()) {
            log.line("final phase");
            let fin = runner
                .run_phase(
                    final_gen,
                    PhaseLimits {
                        time_limit: Duration::from_secs(FINAL_PHASE_S),
                        grace: Duration::from_secs(GRACE_S),
                    },
                    hurry,
                )
                .await?;
            log.line(format!(
                "final phase: {} ops ({} ok, {} fail, {} info)",
                fin.invoked, fin.ok, fin.fail, fin.info
            ));
        }
        if converges && !hurry.is_cancelled() {
            match crate::convergence::record(convergence_factory.as_ref(), cluster, &dir.path).await
            {
                Ok(Some(r)) => log.line(format!(
                    "convergence: read {} nodes ({} unreadable) in {} rounds",
                    r.nodes.len(),
                    r.unreadable.len(),
                    r.rounds
                )),
                Ok(None) => {}
                Err(e) => log.line(format!("convergence: {}", one_line(&e))),
            }
        }
    }
    progress.finish_and_clear();
    if let Err(e) = runner.close().await {
        log.line(format!("closing clients: {}", one_line(&e)));
    }
    let rec = recorder.finish().await?;
    log.line(format!(
        "history: {} events in {}",
        rec.events,
        rec.path.display()
    ));
    Ok(interrupted)
}

/// The workload against an in-memory system: the same runner, recorder and phases, no Docker.
async fn drive_in_memory(
    plan: &Plan,
    dir: &RunDir,
    log: &RunLog,
    cancel: &CancellationToken,
    hurry: &CancellationToken,
    workload: workloads::Workload,
    factory: Arc<dyn workloads::ClientFactory>,
) -> Result<bool> {
    let recorder = Recorder::create(dir.history())?;
    point_latest(dir, log);
    let mut config = RunnerConfig::new(
        plan.concurrency as usize,
        vec!["memory".to_string()],
        plan.seed,
    );
    config.op_timeout = Duration::from_millis(plan.op_timeout_ms);
    let mut runner = Runner::start(config, factory, recorder.clone()).await?;
    let progress = progress_bar(plan, &recorder, log);
    let limits = PhaseLimits {
        time_limit: plan.time_limit(),
        grace: Duration::from_secs(GRACE_S),
    };
    let main_gen = workloads::workload::paced(
        workload.generator,
        Some(plan.rate_ops_per_s),
        plan.time_limit(),
    );
    let main = runner.run_phase(main_gen, limits, cancel).await?;
    log.line(format!(
        "main phase: {} ops ({} ok, {} fail, {} info) in {:.1} s",
        main.invoked,
        main.ok,
        main.fail,
        main.info,
        main.elapsed_ms / 1e3
    ));
    if let (Some(final_gen), false) = (workload.final_generator, hurry.is_cancelled()) {
        let limits = PhaseLimits {
            time_limit: Duration::from_secs(FINAL_PHASE_S),
            grace: Duration::from_secs(GRACE_S),
        };
        runner.run_phase(final_gen, limits, hurry).await?;
    }
    progress.finish_and_clear();
    if let Err(e) = runner.close().await {
        log.line(format!("closing clients: {}", one_line(&e)));
    }
    let rec = recorder.finish().await?;
    log.line(format!(
        "history: {} events in {}",
        rec.events,
        rec.path.display()
    ));
    Ok(cancel.is_cancelled())
}

/// Says so when the workload ran at less than half the asked rate: the numbers of the run are
/// then the system's (or the client's) limit, not the plan's.
fn warn_if_slow(plan: &Plan, invoked: u64, elapsed_ms: f64, log: &RunLog) {
    if elapsed_ms < 1_000.0 {
        return;
    }
    let ops_per_s = invoked as f64 / (elapsed_ms / 1e3);
    if ops_per_s < plan.rate_ops_per_s / 2.0 {
        log.line(format!(
            "warning: {ops_per_s:.0} ops/s is under half of --rate {}: the system or the client could not keep up (or --concurrency {} is too low for the op latency)",
            plan.rate_ops_per_s, plan.concurrency
        ));
    }
}

/// Each node's client address on the host, in node order.
fn client_addresses(cluster: &Cluster) -> Vec<String> {
    cluster
        .nodes()
        .iter()
        .filter_map(|n| {
            ["client", "amqp"]
                .iter()
                .find_map(|p| n.ports.get(*p))
                .map(|(_, host)| format!("127.0.0.1:{host}"))
        })
        .collect()
}

/// A live progress line (ops/s, ok / fail / info, current faults) on a terminal; when stderr
/// is not a terminal (a CI log), a plain line every [`PLAIN_PROGRESS_INTERVAL_S`] instead; a
/// no-op when quiet. Finishing the returned bar stops either.
fn progress_bar(plan: &Plan, recorder: &Recorder, log: &RunLog) -> ProgressBar {
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let bar = if log.echo && tty {
        ProgressBar::new(plan.time_limit_ms / 1000)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} s  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let plain = log.echo && !tty;
    let recorder = recorder.clone();
    let ticker = bar.clone();
    let started = Instant::now();
    tokio::spawn(async move {
        let mut printed_s = 0;
        // Bounded: the bar stops ticking when it is finished (or after a day, whichever first).
        for _ in 0..(24 * 3600 * 1000 / PROGRESS_TICK_MS) {
            if ticker.is_finished() {
                break;
            }
            let s = recorder.stats();
            let elapsed_s = started.elapsed().as_secs();
            if plain && elapsed_s >= printed_s + PLAIN_PROGRESS_INTERVAL_S {
                printed_s = elapsed_s - elapsed_s % PLAIN_PROGRESS_INTERVAL_S;
                eprintln!("faultline: {}", plain_progress_line(elapsed_s, &s));
            }
            ticker.set_position(elapsed_s);
            ticker.set_message(format!(
                "{:.0} ops/s  ok {}  fail {}  info {}  [{}]",
                s.ops_per_s,
                s.total.ok,
                s.total.fail,
                s.total.info,
                active_faults(&s)
            ));
            tokio::time::sleep(Duration::from_millis(PROGRESS_TICK_MS)).await;
        }
    });
    bar
}

/// The faults on right now, joined with '+', or "no fault".
fn active_faults(s: &workloads::LiveStats) -> String {
    if s.active_faults.is_empty() {
        return "no fault".to_string();
    }
    s.active_faults
        .keys()
        .cloned()
        .collect::<Vec<_>>()
        .join("+")
}

/// One self-contained progress line for a log: elapsed time, ops, outcomes, active fault.
fn plain_progress_line(elapsed_s: u64, s: &workloads::LiveStats) -> String {
    format!(
        "progress: {elapsed_s} s, {} ops ({} ok, {} fail, {} info), {:.0} ops/s, fault: {}",
        s.invoked,
        s.total.ok,
        s.total.fail,
        s.total.info,
        s.ops_per_s,
        active_faults(s)
    )
}

/// Reads the recorded history back and runs the workload's checkers on it.
fn check_history(
    dir: &RunDir,
    specs: &[workloads::workload::CheckerSpec],
    log: &RunLog,
) -> (Result<checkers::History, String>, Vec<CheckResult>) {
    let path = dir.history();
    if !path.exists() {
        return (
            Err("no history was recorded".to_string()),
            vec![CheckResult::unknown("run", "no history was recorded")],
        );
    }
    let history = match checkers::formats::read_path(&path, Some(checkers::formats::Format::Jsonl))
    {
        Ok(h) => h,
        Err(e) => {
            return (
                Err(e.clone()),
                vec![CheckResult::unknown(
                    "run",
                    format!("the recorded history cannot be read: {e}"),
                )],
            )
        }
    };
    let results = run_checkers(&history, specs, log);
    (Ok(history), results)
}

/// The workload's checkers on a history, one result each (a checker that fails is `unknown`).
fn run_checkers(
    history: &checkers::History,
    specs: &[workloads::workload::CheckerSpec],
    log: &RunLog,
) -> Vec<CheckResult> {
    let budget = Budget {
        time_limit: Some(Duration::from_secs(300)),
        ..Budget::default()
    };
    let mut results = Vec::new();
    for spec in specs {
        log.line(format!("checking with {}", spec.name));
        let r = checkers::by_name(&spec.name, &spec.options)
            .map_err(|e| e.to_string())
            .and_then(|c| {
                checkers::run_checker(c.as_ref(), history, &budget).map_err(|e| e.to_string())
            });
        results.push(match r {
            Ok(r) => r,
            Err(e) => CheckResult::unknown(&spec.name, format!("checker failed: {e}")),
        });
    }
    results
}

/// Points `store/latest` at this run as soon as it has a history, so that a controller killed
/// from here on leaves the link on its run.
fn point_latest(dir: &RunDir, log: &RunLog) {
    if let Err(e) = reports::store::point_latest(&dir.store, &dir.test, &dir.timestamp) {
        log.line(format!("store/latest: {}", one_line(&e)));
    }
}

/// The summary of the `run` result of a run that never wrote its results.
const UNFINISHED: &str = "the run did not finish: its controller stopped before writing results.json (killed, e.g. kill -9); `faultline report` checked the history it had recorded, so anomalies found are real but their absence proves less";

/// A run folder whose controller died (kill -9) has `plan.json` and `history.jsonl` but no
/// `results.json`. This checks the history with the plan's workload checkers, as the run would
/// have, adds an `unknown` result saying the run did not finish, and writes `results.json`.
/// `None` when the folder already has results. A last line cut short by the kill (no newline
/// at its end) was never completely written, so it is left out, and the `run` result says so.
pub fn finish_unfinished(run_dir: &std::path::Path) -> Result<Option<reports::RunResults>> {
    let dir = run_dir_of(run_dir)?;
    if dir.results().exists() {
        return Ok(None);
    }
    for needed in [dir.plan(), dir.history()] {
        anyhow::ensure!(
            needed.is_file(),
            "{}: missing; a run folder without results.json needs plan.json and history.jsonl to be checked",
            needed.display()
        );
    }
    let plan_json = reports::results::read_plan(&dir.plan())?;
    let plan = plan_of(&plan_json).with_context(|| format!("{}", dir.plan().display()))?;
    let bytes = std::fs::read(dir.history())
        .with_context(|| format!("{}: cannot read", dir.history().display()))?;
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let history =
        checkers::formats::read_bytes(&bytes[..complete], Some(checkers::formats::Format::Jsonl))
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.history().display()))?;
    let log = RunLog::append(&dir.log(), false)?;
    log.line("faultline report: the run did not finish; checking its history");
    let mut results = run_checkers(&history, &default_checkers(&plan), &log);
    let cut = if complete < bytes.len() {
        format!(
            " (its last line, cut short by the kill, was left out: {} bytes)",
            bytes.len() - complete
        )
    } else {
        String::new()
    };
    results.push(CheckResult::unknown("run", format!("{UNFINISHED}{cut}")));
    let mut run_results = reports::RunResults::new(plan.name.clone(), results);
    run_results.seed = Some(plan.seed);
    run_results.command = plan_json["command"].as_str().map(str::to_string);
    run_results.started_at = plan_json["started_at"].as_str().map(str::to_string);
    dir.write_json("results.json", &run_results)?;
    for r in &run_results.results {
        log.line(format!("{}: {} — {}", r.checker, r.verdict, r.summary));
    }
    Ok(Some(run_results))
}

/// A run folder `store/<test>/<timestamp>` as a [`RunDir`].
fn run_dir_of(path: &std::path::Path) -> Result<RunDir> {
    let name = |p: Option<&std::path::Path>| {
        p.and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let test_dir = path.parent();
    Ok(RunDir {
        path: path.to_path_buf(),
        store: test_dir
            .and_then(|t| t.parent())
            .map(PathBuf::from)
            .unwrap_or_default(),
        test: name(test_dir),
        timestamp: name(Some(path)),
    })
}

/// The plan a `plan.json` was written from: its plan keys, without what the run added (seed
/// and rerun command, start time, versions, cluster).
fn plan_of(plan_json: &Value) -> Result<Plan> {
    let keys = serde_json::to_value(Plan::default()).context("serialising a plan")?;
    let keys = keys.as_object().expect("a plan serialises to an object");
    let mut v = plan_json.clone();
    v.as_object_mut()
        .context("expected a JSON object")?
        .retain(|k, _| keys.contains_key(k));
    serde_json::from_value(v).context("not the plan of a faultline run")
}

fn plan_json(plan: &Plan, started_at: &str) -> Value {
    let mut v = serde_json::to_value(plan).unwrap_or(Value::Null);
    v["seed"] = json!(plan.seed);
    v["command"] = json!(plan.rerun_command());
    v["started_at"] = json!(started_at);
    v["versions"] = json!({
        "faultline": env!("CARGO_PKG_VERSION"),
        "image_recipe": crate::images::base_image_ref(),
    });
    v
}

fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
        .replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(table: &str) -> Plan {
        let def = cluster::user::UserSystem::from_toml(
            toml::from_str(&format!(
                "name = \"kv\"\ncommand = [\"kv\"]\nports = {{ client = 8000 }}\nready = {{ tcp = \"client\" }}\nclient = [\"kv-client\"]\n{table}"
            ))
            .unwrap(),
        )
        .unwrap();
        Plan {
            system_def: Some(def),
            ..Plan::default()
        }
    }

    #[test]
    fn only_a_users_own_image_gets_helpers_and_only_for_what_needs_them() {
        let own = plan("image = \"mycorp/kv:dev\"");
        let part = [FaultKind::Partition];
        let kill = [FaultKind::Kill];
        let helpers = |p: &Plan, kinds: &[FaultKind], proxy: bool| {
            let h = helpers_needed(p, kinds, proxy);
            (h.helper_image, h.net_helpers)
        };
        assert_eq!(helpers(&own, &part, false), (true, true));
        assert_eq!(
            helpers(&own, &part, true),
            (true, false),
            "partitions by the proxy"
        );
        assert_eq!(helpers(&own, &kill, false), (false, false));
        assert_eq!(helpers(&own, &kill, true), (true, false));
        for other in [plan(""), plan("packages = [\"python3\"]"), Plan::default()] {
            assert_eq!(helpers(&other, &part, false), (false, false));
            assert_eq!(helpers(&other, &part, true), (false, false));
        }
    }
}
