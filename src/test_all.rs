//! `faultline test-all`: a matrix of plans, each run N times, for a nightly CI job.
//!
//! Design decisions:
//! - Runs go one after another (a run owns the machine's cores and Docker), in rounds: round 1
//!   runs every plan once, round 2 again, and so on. Under a total time limit that spends the
//!   time on breadth first: every plan gets a run before any plan gets its second.
//! - Seeds: every run's seed is derived from one master seed (`--seed`, random and printed when
//!   absent), the plan's name and the run's number, so one number reruns the whole matrix and a
//!   plan's seeds do not change when other plans are added. A seed written in a plan file is
//!   ignored here (the matrix needs distinct seeds); `faultline run --plan FILE` still uses it.
//! - The total time limit is enforced before a run starts: a run starts only when its time
//!   limit plus the set-up, final phase and checking time measured so far for its system (a
//!   guess until one run of that system finished) fits in what is left; a run that does not fit
//!   is skipped and reported, and smaller runs later in the round may still fit. A started run
//!   is never cut short by the total limit (its own phases are bounded), so the total can be
//!   overrun by at most one run's overhead; the summary says when that happened.
//! - One broken plan file, or one run the harness could not complete, is an `error` row; the
//!   other plans still run. Only a pattern error or a pattern that matches nothing stops
//!   test-all before it starts.
//! - Ctrl-C (SIGINT) or SIGTERM: the run in progress stops the way `faultline run` does (heal,
//!   tear down, check the partial history); the runs that did not start are reported skipped.
//!
//! - `--shard K/N` runs one part of the matrix (the split is [`crate::shard`]'s) with the seeds
//!   the whole matrix would have, and records the whole plan and its own runs in its store
//!   ([`reports::matrix::shard`]) for `faultline merge` ([`crate::merge`]). A shard that owns no
//!   run (more shards than runs) exits 0: it was asked for nothing.
//!
//! The table, the exit code, JUnit and Markdown come from [`reports::matrix`].

use crate::plan::{Plan, PlanFile};
use crate::run::{run_plan, RunOptions};
use crate::shard::Shard;
use anyhow::{bail, Context, Result};
use reports::matrix::shard::{PlannedRun, ShardManifest};
use reports::matrix::{self, MatrixContext, MatrixRun, MatrixStatus, RunClass};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use workloads::{Builtin, BuiltinCluster};

/// Most runs of one plan.
pub const TEST_COUNT_MAX: u32 = 10_000;
/// Set-up, final phase and checking time assumed for a containerised run of a system without a
/// start figure, before one of its runs has been measured (cluster start, recovery wait, final
/// reads, checkers).
const CLUSTER_OVERHEAD_S_GUESS: f64 = 45.0;
/// The same for an in-memory run (no cluster: checking only).
const IN_MEMORY_OVERHEAD_S_GUESS: f64 = 2.0;

/// Final phase, teardown and checks of a containerised run, on top of its cluster's start (2 to
/// 9 s measured for testbed runs of 4 s on the development machine).
const CLUSTER_TAIL_S_GUESS: f64 = 10.0;

/// Start to ready of each known system's cluster, median seconds of
/// `faultline cluster bench --system S --repeat 3` (README "Figures"; the testbed's measured the
/// same way with a debug build on a loaded machine).
fn cluster_ready_s(cluster: BuiltinCluster) -> f64 {
    match cluster {
        BuiltinCluster::Etcd => 4.2,
        BuiltinCluster::Redis => 7.9,
        BuiltinCluster::Nats => 2.8,
        BuiltinCluster::RabbitMq => 41.8,
        BuiltinCluster::ZooKeeper => 5.1,
        BuiltinCluster::Postgres => 8.8,
        BuiltinCluster::Testbed => 7.6,
    }
}

/// The set-up, final phase and checking time a run of `system` typically adds to its time limit:
/// its cluster's measured start plus [`CLUSTER_TAIL_S_GUESS`], 2 s in memory, 45 s for a system
/// without a figure. What `--time-limit-total` assumes before a run of the system was measured,
/// and what `--shard` balances on.
pub fn typical_overhead_s(system: &str) -> f64 {
    let Some(builtin) = Builtin::parse(system) else {
        return CLUSTER_OVERHEAD_S_GUESS;
    };
    match builtin.cluster() {
        Some(cluster) => cluster_ready_s(cluster) + CLUSTER_TAIL_S_GUESS,
        None => IN_MEMORY_OVERHEAD_S_GUESS,
    }
}

/// How long a run of `plan` is expected to take, in whole milliseconds (the unit `--shard`
/// balances in).
pub fn expected_run_ms(plan: &Plan) -> u64 {
    plan.time_limit_ms + (typical_overhead_s(&plan.system) * 1e3).round() as u64
}
/// Seeds are kept below this so that people can read and type them.
const SEED_MODULUS: u64 = 1_000_000_000;

/// Everything `faultline test-all` is asked to do.
#[derive(Debug, Clone)]
pub struct TestAllOptions {
    /// Glob patterns of plan files (`plans/**/*.toml`).
    pub patterns: Vec<String>,
    /// Runs per plan.
    pub test_count: u32,
    /// The master seed every run's seed is derived from.
    pub seed: u64,
    /// Replaces every plan's `time_limit` (the workload phase of each run).
    pub time_limit_each_ms: Option<u64>,
    /// Bound on the whole matrix; runs that do not fit are skipped.
    pub time_limit_total: Option<Duration>,
    /// Stop after the first run that is not valid; the rest is reported skipped.
    pub fail_fast: bool,
    /// Replaces every plan's store folder.
    pub store: Option<String>,
    pub junit: Option<PathBuf>,
    pub summary_md: Option<PathBuf>,
    /// Do not echo each run's log lines (the per-run lines and the table are still printed).
    pub quiet: bool,
    /// Run only this part of the matrix (needs `store`, where its manifest goes).
    pub shard: Option<Shard>,
}

impl Default for TestAllOptions {
    fn default() -> Self {
        TestAllOptions {
            patterns: vec!["plans/**/*.toml".into()],
            test_count: 1,
            seed: 1,
            time_limit_each_ms: None,
            time_limit_total: None,
            fail_fast: false,
            store: None,
            junit: None,
            summary_md: None,
            quiet: false,
            shard: None,
        }
    }
}

impl TestAllOptions {
    /// The command that reruns what these options run (one shard, with `--shard`) with the
    /// same seeds.
    pub fn rerun_command(&self) -> String {
        let mut cmd = self.matrix_command();
        if let Some(shard) = self.shard {
            cmd.push_str(&format!(" --shard {shard}"));
        }
        cmd
    }

    /// The command that reruns the whole matrix, unsharded, with the same seeds.
    pub fn matrix_command(&self) -> String {
        let mut cmd = String::from("faultline test-all");
        for p in &self.patterns {
            cmd.push_str(" --plans ");
            cmd.push_str(&shell_quote(p));
        }
        cmd.push_str(&format!(" --test-count {}", self.test_count));
        if let Some(ms) = self.time_limit_each_ms {
            cmd.push_str(&format!(" --time-limit-each {}", format_ms(ms)));
        }
        if let Some(d) = self.time_limit_total {
            cmd.push_str(&format!(
                " --time-limit-total {}",
                format_ms(d.as_millis() as u64)
            ));
        }
        if self.fail_fast {
            cmd.push_str(" --fail-fast");
        }
        if let Some(s) = &self.store {
            cmd.push_str(" --store ");
            cmd.push_str(&shell_quote(s));
        }
        cmd.push_str(&format!(" --seed {}", self.seed));
        cmd
    }
}

/// What a matrix produced.
#[derive(Debug, Clone)]
pub struct TestAllOutcome {
    /// Every planned run, in the order they were (or would have been) run, bad plan files first.
    pub runs: Vec<MatrixRun>,
    /// 0 valid, 1 invalid, 2 unknown, 3 harness error ([`reports::matrix::exit_code`]).
    pub exit_code: i32,
    /// The table printed at the end.
    pub table: String,
    /// `plans.html` of every store the runs went to.
    pub pages: Vec<PathBuf>,
    /// Warnings about plans, an interruption, an overrun of the total time.
    pub notes: Vec<String>,
    pub elapsed: Duration,
}

/// The plan files the patterns match, sorted and without duplicates. A bad pattern, or one that
/// matches no file, is an error naming it.
pub fn expand_patterns(patterns: &[String]) -> Result<Vec<PathBuf>> {
    if patterns.is_empty() {
        bail!("--plans: no pattern given; e.g. --plans 'plans/**/*.toml'");
    }
    let mut files = Vec::new();
    for p in patterns {
        let paths = glob::glob(p).with_context(|| format!("--plans {p:?}: not a glob pattern"))?;
        let mut matched = 0;
        for entry in paths {
            let path = entry.with_context(|| format!("--plans {p:?}: cannot read a match"))?;
            if path.is_file() {
                files.push(path);
                matched += 1;
            }
        }
        if matched == 0 {
            bail!(
                "--plans {p:?}: matches no file (relative patterns start at the current directory)"
            );
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// A plan file, loaded and resolved for the matrix, or why it cannot run.
#[derive(Debug, Clone)]
pub struct PlanEntry {
    pub file: PathBuf,
    pub plan: std::result::Result<Plan, String>,
    /// Things worth saying about a plan that runs (e.g. no fault fits in its time limit).
    pub notes: Vec<String>,
}

/// Loads one plan file the way `faultline run --plan FILE` does, applies a matrix's overrides
/// (a time limit for each run, a store), names it, and checks it as a run would before it
/// starts anything (values, system, workload, client options). Shared by test-all and
/// calibrate; errors name the file.
pub fn load_for_matrix(
    file: &Path,
    time_limit_ms: Option<u64>,
    store: Option<&str>,
) -> std::result::Result<(Plan, PlanFile), String> {
    Plan::from_file_with(file, |plan| {
        if let Some(ms) = time_limit_ms {
            plan.time_limit_ms = ms;
        }
        if let Some(s) = store {
            plan.store = s.to_string();
        }
    })
}

/// Loads one plan file the way `faultline run --plan FILE` does, then applies the matrix's
/// overrides (`--time-limit-each`, `--store`) and checks that its system has its workload.
pub fn load_plan(file: &Path, opts: &TestAllOptions) -> PlanEntry {
    let mut notes = Vec::new();
    let origin = file.display().to_string();
    let plan = (|| -> std::result::Result<Plan, String> {
        let (plan, pf) = load_for_matrix(file, opts.time_limit_each_ms, opts.store.as_deref())?;
        if pf.seed.is_some() {
            notes.push(format!(
                "{origin}: its seed is ignored by test-all (each run's seed derives from --seed)"
            ));
        }
        if !plan.nemesis.is_empty() && plan.time_limit_ms < 2 * plan.nemesis_interval_ms {
            notes.push(format!(
                "{origin}: no fault fits: a fault starts after nemesis_interval ({} ms) and stops one interval later, past the time limit ({} ms)",
                plan.nemesis_interval_ms, plan.time_limit_ms
            ));
        }
        Ok(plan)
    })();
    PlanEntry {
        file: file.to_path_buf(),
        plan,
        notes,
    }
}

/// Loads every file; a plan whose name another file already took is an error (names are store
/// folders and JUnit suites).
pub fn load_plans(files: &[PathBuf], opts: &TestAllOptions) -> Vec<PlanEntry> {
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    files
        .iter()
        .map(|f| {
            let mut e = load_plan(f, opts);
            if let Ok(p) = &e.plan {
                if let Some(first) = seen.get(&p.name) {
                    e.plan = Err(format!(
                        "{}: name: {:?} is also the name of {}; plan names must be unique (they name store folders and JUnit suites)",
                        f.display(),
                        p.name,
                        first.display()
                    ));
                } else {
                    seen.insert(p.name.clone(), f.clone());
                }
            }
            e
        })
        .collect()
}

fn splitmix64(z: u64) -> u64 {
    let mut z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The seed of run `attempt` (1-based) of plan `name` under master seed `master`: in
/// 1..1_000_000_000, a pure function of the three.
pub fn run_seed(master: u64, name: &str, attempt: u32) -> u64 {
    let base = splitmix64(master ^ fnv1a(name));
    (splitmix64(base.wrapping_add(attempt as u64)) % SEED_MODULUS).max(1)
}

/// Seeds for `count` runs of each plan, distinct over the whole matrix: a collision (rare
/// below 10^9) moves the later run to the next derivation.
pub fn matrix_seeds(master: u64, names: &[&str], count: u32) -> Vec<Vec<u64>> {
    let mut used = HashSet::new();
    names
        .iter()
        .map(|name| {
            (1..=count)
                .map(|attempt| {
                    let mut bump = 0u32;
                    loop {
                        let s = run_seed(
                            master,
                            name,
                            attempt.wrapping_add(bump.wrapping_mul(TEST_COUNT_MAX + 1)),
                        );
                        if used.insert(s) {
                            return s;
                        }
                        bump += 1;
                        assert!(bump < 1000, "a thousand seed collisions cannot happen");
                    }
                })
                .collect()
        })
        .collect()
}

/// A random master seed (never zero): the same draw as a run's ([`crate::plan::random_seed`]).
pub fn random_seed() -> u64 {
    crate::plan::random_seed()
}

/// Runs the matrix (see the module documentation), writes JUnit, the Markdown summary and the
/// plan-grouped store pages, and returns the table and exit code. Errors only for bad patterns
/// or options; every per-plan problem is a row of the table.
pub async fn test_all(opts: &TestAllOptions) -> Result<TestAllOutcome> {
    if opts.test_count == 0 || opts.test_count > TEST_COUNT_MAX {
        bail!("--test-count: expected 1 to {TEST_COUNT_MAX} runs per plan");
    }
    let files = expand_patterns(&opts.patterns)?;
    let entries = load_plans(&files, opts);

    let cancel = CancellationToken::new();
    let signal_task = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if let Ok(sig) = crate::cluster::shutdown_signal().await {
                eprintln!("faultline: {sig}: the run in progress stops and is checked; the runs not started are skipped");
                cancel.cancel();
            }
        })
    };
    let outcome = run_matrix(&entries, opts, &cancel).await;
    signal_task.abort();
    outcome
}

/// The matrix over already loaded plans, stopping early when `cancel` fires.
pub async fn run_matrix(
    entries: &[PlanEntry],
    opts: &TestAllOptions,
    cancel: &CancellationToken,
) -> Result<TestAllOutcome> {
    if opts.shard.is_some() && opts.store.is_none() {
        bail!("--shard: needs --store DIR (a shard's store is what `faultline merge` reads)");
    }
    let started = Instant::now();
    let mut runs: Vec<MatrixRun> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    // Bad plan files are rows of the first shard only (crate::shard).
    let owns_errors = opts.shard.is_none_or(|s| s.index == 1);
    for e in entries {
        notes.extend(e.notes.iter().cloned());
        if let (Err(msg), true) = (&e.plan, owns_errors) {
            eprintln!("faultline: plan error: {msg}");
            runs.push(MatrixRun {
                plan: e.file.display().to_string(),
                attempt: 1,
                seed: None,
                command: None,
                status: MatrixStatus::Error {
                    message: msg.clone(),
                },
                elapsed_s: 0.0,
                run_dir: None,
                report: None,
            });
        }
    }
    let plans: Vec<&Plan> = entries
        .iter()
        .filter_map(|e| e.plan.as_ref().ok())
        .collect();
    let names: Vec<&str> = plans.iter().map(|p| p.name.as_str()).collect();
    let seeds = matrix_seeds(opts.seed, &names, opts.test_count);
    let expected_ms: Vec<u64> = plans.iter().map(|p| expected_run_ms(p)).collect();
    let owners = match opts.shard {
        Some(shard) => crate::shard::assign(&expected_ms, opts.test_count, shard.count),
        None => vec![vec![1; opts.test_count as usize]; plans.len()],
    };
    let own_index = opts.shard.map_or(1, |s| s.index);
    let owns = |pi: usize, attempt: u32| owners[pi][(attempt - 1) as usize] == own_index;
    let matrix_runs = plans.len() * opts.test_count as usize;
    let total_runs = owners.iter().flatten().filter(|&&o| o == own_index).count();
    eprintln!(
        "faultline: test-all: {} plans × {} runs = {matrix_runs} runs, master seed {}",
        plans.len(),
        opts.test_count,
        opts.seed
    );
    if let Some(shard) = opts.shard {
        eprint!(
            "{}",
            ownership(shard, &plans, &seeds, &owners, &expected_ms)
        );
    }
    eprintln!("faultline: rerun the matrix with: {}", opts.rerun_command());
    for note in &notes {
        eprintln!("faultline: note: {note}");
    }

    let mut overhead_s: HashMap<String, f64> = HashMap::new();
    let mut stop: Option<String> = None;
    let mut stores: BTreeMap<PathBuf, ()> = BTreeMap::new();
    let mut ordinal = 0usize;
    for attempt in 1..=opts.test_count {
        for (pi, plan) in plans.iter().enumerate() {
            if !owns(pi, attempt) {
                continue;
            }
            ordinal += 1;
            let seed = seeds[pi][(attempt - 1) as usize];
            let mut plan = (*plan).clone();
            plan.seed = seed;
            let mut run = MatrixRun {
                plan: plan.name.clone(),
                attempt,
                seed: Some(seed),
                command: Some(plan.rerun_command()),
                status: MatrixStatus::Skipped {
                    reason: String::new(),
                },
                elapsed_s: 0.0,
                run_dir: None,
                report: None,
            };
            if stop.is_none() && cancel.is_cancelled() {
                stop = Some("interrupted (SIGINT or SIGTERM) before this run started".into());
            }
            if let Some(reason) = &stop {
                run.status = MatrixStatus::Skipped {
                    reason: reason.clone(),
                };
                runs.push(run);
                continue;
            }
            if let Some(total) = opts.time_limit_total {
                let left_s = total.as_secs_f64() - started.elapsed().as_secs_f64();
                let extra_s = overhead_s
                    .get(&plan.system)
                    .copied()
                    .unwrap_or_else(|| typical_overhead_s(&plan.system));
                let need_s = plan.time_limit_ms as f64 / 1e3 + extra_s;
                if need_s > left_s {
                    let reason = format!(
                        "--time-limit-total {}: {:.0} s left, this run needs about {:.0} s ({} time limit + {:.0} s set-up, final phase and checks)",
                        format_ms(total.as_millis() as u64),
                        left_s.max(0.0),
                        need_s,
                        format_ms(plan.time_limit_ms),
                        extra_s
                    );
                    eprintln!(
                        "faultline: [{ordinal}/{total_runs}] {} {}: skipped: {reason}",
                        plan.name,
                        run.label()
                    );
                    run.status = MatrixStatus::Skipped { reason };
                    runs.push(run);
                    continue;
                }
            }
            eprintln!(
                "faultline: [{ordinal}/{total_runs}] {} run {attempt}/{}, seed {seed}: {}",
                plan.name,
                opts.test_count,
                if plan.nemesis.is_empty() {
                    format!("{} {}, no faults", plan.system, plan.workload)
                } else {
                    format!(
                        "{} {}, faults {}",
                        plan.system,
                        plan.workload,
                        plan.nemesis.join(",")
                    )
                }
            );
            stores.insert(PathBuf::from(&plan.store), ());
            let t0 = Instant::now();
            let result = run_plan(
                plan.clone(),
                RunOptions {
                    junit: None,
                    summary_md: None,
                    quiet: opts.quiet,
                },
            )
            .await;
            run.elapsed_s = t0.elapsed().as_secs_f64();
            run.status = match result {
                Ok(outcome) => {
                    let results_path = outcome.run_dir.join(reports::RESULTS_FILE);
                    let mut harness_errors = outcome.harness_errors.clone();
                    let results = match reports::RunResults::read(&results_path) {
                        Ok(r) => r.results,
                        Err(e) => {
                            harness_errors.push(format!("{e:#}"));
                            Vec::new()
                        }
                    };
                    run.run_dir = Some(outcome.run_dir.clone());
                    run.report = outcome.report.clone();
                    MatrixStatus::Checked {
                        verdict: outcome.verdict,
                        results,
                        harness_errors,
                    }
                }
                Err(e) => MatrixStatus::Error {
                    message: one_line(&e),
                },
            };
            let measured = (run.elapsed_s - plan.time_limit_ms as f64 / 1e3).max(0.0);
            let o = overhead_s.entry(plan.system.clone()).or_insert(0.0);
            *o = o.max(measured);
            let class = run.class();
            eprintln!(
                "faultline: [{ordinal}/{total_runs}] {} run {attempt} (seed {seed}): {class} in {:.1} s{}",
                plan.name,
                run.elapsed_s,
                if class == RunClass::Valid {
                    String::new()
                } else {
                    format!(" — {}", reports::escape::truncate(&run.finding(), 300))
                }
            );
            if class != RunClass::Valid {
                eprintln!("faultline:   rerun with: {}", plan.rerun_command());
            }
            if let Some(dir) = &run.run_dir {
                render_pages(dir, &plan);
            }
            if opts.fail_fast && class != RunClass::Valid && stop.is_none() {
                stop = Some(format!(
                    "--fail-fast: stopped after {} run {attempt} (seed {seed}) was {class}",
                    plan.name
                ));
            }
            if cancel.is_cancelled() && stop.is_none() {
                stop = Some("interrupted (SIGINT or SIGTERM) before this run started".into());
                notes.push(format!(
                    "interrupted during {} run {attempt}: that run was checked on its partial history, the runs after it were skipped",
                    plan.name
                ));
            }
            runs.push(run);
        }
    }
    let elapsed = started.elapsed();
    if let Some(total) = opts.time_limit_total {
        if elapsed > total {
            notes.push(format!(
                "the matrix took {:.0} s, {:.0} s over --time-limit-total: a run that started in time is never cut short",
                elapsed.as_secs_f64(),
                (elapsed - total).as_secs_f64()
            ));
        }
    }
    let mut pages = Vec::new();
    for store in stores.keys() {
        match reports::render_plans_page(store) {
            Ok(p) => pages.push(p),
            Err(e) => notes.push(format!("store page of {}: {e:#}", store.display())),
        }
    }
    let table = matrix::text_table(&runs);
    let mut exit_code = matrix::exit_code(&runs);
    if opts.shard.is_some() && runs.is_empty() {
        // Asked for nothing (more shards than runs): nothing failed.
        exit_code = 0;
    }
    let title = match opts.shard {
        Some(shard) => format!("{} (shard {shard})", opts.patterns.join(" ")),
        None => opts.patterns.join(" "),
    };
    let ctx = MatrixContext {
        title,
        master_seed: Some(opts.seed),
        command: Some(opts.rerun_command()),
        pages: pages.iter().map(|p| p.display().to_string()).collect(),
        notes: notes.clone(),
    };
    let mut write_errors = Vec::new();
    if let Some(path) = &opts.junit {
        if let Err(e) = matrix::write_junit_matrix(path, &runs) {
            write_errors.push(format!("--junit: {e:#}"));
        }
    }
    if let Some(path) = &opts.summary_md {
        if let Err(e) = matrix::write_markdown_matrix(path, &ctx, &runs) {
            write_errors.push(format!("--summary-md: {e:#}"));
        }
    }
    if let (Some(shard), Some(store)) = (opts.shard, &opts.store) {
        let manifest = ShardManifest {
            format: reports::matrix::shard::SHARD_FORMAT,
            faultline_version: env!("CARGO_PKG_VERSION").to_string(),
            image: crate::images::base_image_ref(),
            master_seed: opts.seed,
            shard: shard.index,
            shards: shard.count,
            test_count: opts.test_count,
            title: opts.patterns.join(" "),
            matrix_command: opts.matrix_command(),
            planned: planned_runs(entries, &plans, &seeds, &owners, &expected_ms),
            runs: runs.clone(),
            notes: notes.clone(),
            elapsed_s: elapsed.as_secs_f64(),
        };
        let written = std::fs::create_dir_all(store)
            .with_context(|| format!("{store}: cannot create the store"))
            .and_then(|()| manifest.write(Path::new(store)));
        match written {
            Ok(path) => eprintln!(
                "faultline: shard {shard}: its runs are listed in {}",
                path.display()
            ),
            Err(e) => write_errors.push(format!("--shard: {e:#}")),
        }
    }
    if !write_errors.is_empty() {
        notes.extend(write_errors);
        if exit_code != 1 {
            exit_code = 3;
        }
    }
    Ok(TestAllOutcome {
        runs,
        exit_code,
        table,
        pages,
        notes,
        elapsed,
    })
}

/// What a shard prints before it starts: how many runs it owns of the matrix, their expected
/// time, and each owned run with its seed, plan by plan.
fn ownership(
    shard: Shard,
    plans: &[&Plan],
    seeds: &[Vec<u64>],
    owners: &[Vec<u32>],
    expected_ms: &[u64],
) -> String {
    let mut out = String::new();
    let mut owned = 0usize;
    let (mut own_ms, mut all_ms) = (0u64, 0u64);
    let mut lines = Vec::new();
    for (pi, plan) in plans.iter().enumerate() {
        let mine: Vec<String> = owners[pi]
            .iter()
            .enumerate()
            .filter(|(_, &o)| o == shard.index)
            .map(|(a, _)| format!("run {} (seed {})", a + 1, seeds[pi][a]))
            .collect();
        all_ms += expected_ms[pi] * owners[pi].len() as u64;
        own_ms += expected_ms[pi] * mine.len() as u64;
        owned += mine.len();
        if !mine.is_empty() {
            lines.push(format!("faultline:   {}: {}\n", plan.name, mine.join(", ")));
        }
    }
    let all: usize = owners.iter().map(Vec::len).sum();
    out.push_str(&format!(
        "faultline: shard {shard} owns {owned} of {all} runs (expected {:.0} s of {:.0} s){}\n",
        own_ms as f64 / 1e3,
        all_ms as f64 / 1e3,
        if owned == 0 {
            ": nothing to run (more shards than runs)"
        } else {
            ":"
        }
    ));
    for l in lines {
        out.push_str(&l);
    }
    out
}

/// The whole matrix for a shard manifest, in the unsharded order: bad plan files (shard 1),
/// then rounds of plans.
fn planned_runs(
    entries: &[PlanEntry],
    plans: &[&Plan],
    seeds: &[Vec<u64>],
    owners: &[Vec<u32>],
    expected_ms: &[u64],
) -> Vec<PlannedRun> {
    let mut planned: Vec<PlannedRun> = entries
        .iter()
        .filter(|e| e.plan.is_err())
        .map(|e| PlannedRun {
            plan: e.file.display().to_string(),
            attempt: 1,
            seed: None,
            shard: 1,
            expected_s: 0.0,
        })
        .collect();
    let test_count = owners.first().map_or(0, Vec::len);
    for a in 0..test_count {
        for (pi, plan) in plans.iter().enumerate() {
            planned.push(PlannedRun {
                plan: plan.name.clone(),
                attempt: a as u32 + 1,
                seed: Some(seeds[pi][a]),
                shard: owners[pi][a],
                expected_s: expected_ms[pi] as f64 / 1e3,
            });
        }
    }
    planned
}

/// Refreshes the store's plan-grouped page after a run; a failure is only worth a line here
/// (the page is rendered again at the end, where a failure becomes a note).
fn render_pages(run_dir: &Path, plan: &Plan) {
    let store = Path::new(&plan.store);
    if run_dir.starts_with(store) {
        if let Err(e) = reports::render_plans_page(store) {
            eprintln!("faultline: store page: {e:#}");
        }
    }
}

/// `'...'` for a shell, unless the text needs no quoting.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn format_ms(ms: u64) -> String {
    if ms.is_multiple_of(60_000) && ms >= 60_000 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
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

    #[test]
    fn a_run_is_expected_to_take_its_time_limit_plus_its_systems_start_and_tail() {
        assert_eq!(typical_overhead_s("memory-stale"), 2.0);
        assert_eq!(typical_overhead_s("rabbitmq"), 51.8);
        assert_eq!(typical_overhead_s("postgres-check-then-insert"), 18.8);
        assert_eq!(typical_overhead_s("my-own-system"), 45.0);
        let plan = Plan {
            system: "nats".into(),
            time_limit_ms: 60_000,
            ..Plan::default()
        };
        assert_eq!(expected_run_ms(&plan), 72_800);
    }

    #[test]
    fn seeds_are_distinct_stable_and_depend_on_the_master_seed() {
        let a = matrix_seeds(7, &["etcd-register", "memory-register"], 5);
        assert_eq!(a, matrix_seeds(7, &["etcd-register", "memory-register"], 5));
        let all: HashSet<u64> = a.iter().flatten().copied().collect();
        assert_eq!(all.len(), 10);
        assert!(all.iter().all(|s| (1..SEED_MODULUS).contains(s)));
        // A plan's seeds do not depend on the other plans.
        assert_eq!(matrix_seeds(7, &["memory-register"], 5)[0], a[1]);
        assert_ne!(matrix_seeds(8, &["etcd-register"], 5)[0], a[0]);
    }

    #[test]
    fn the_matrix_rerun_command_repeats_every_option() {
        let opts = TestAllOptions {
            patterns: vec!["plans/**/*.toml".into(), "my plans/x.toml".into()],
            test_count: 3,
            seed: 42,
            time_limit_each_ms: Some(60_000),
            time_limit_total: Some(Duration::from_secs(1800)),
            fail_fast: true,
            store: Some("nightly".into()),
            ..TestAllOptions::default()
        };
        assert_eq!(
            opts.rerun_command(),
            "faultline test-all --plans 'plans/**/*.toml' --plans 'my plans/x.toml' --test-count 3 --time-limit-each 1m --time-limit-total 30m --fail-fast --store nightly --seed 42"
        );
    }

    #[test]
    fn patterns_that_match_nothing_or_do_not_parse_are_errors() {
        let e = expand_patterns(&["/nonexistent-faultline/*.toml".into()]).unwrap_err();
        assert!(e.to_string().contains("matches no file"), "{e}");
        let e = expand_patterns(&["plans/***x[".into()]).unwrap_err();
        assert!(e.to_string().contains("not a glob pattern"), "{e:#}");
    }
}
