//! `faultline run`: one chaos test, from flags and/or a plan file, to a verdict and an exit code.
//!
//! This module only resolves the plan (defaults, then the plan file, then flags) and hands it to
//! the controller (`faultline::run`); it prints the seed and the rerun command first, so that even
//! a run that dies can be repeated.

use anyhow::Result;
use faultline::plan::{Plan, PlanFile, SYSTEMS};
use std::path::PathBuf;

#[derive(clap::Args, Debug, Default)]
#[command(
    after_help = "With no options: the default plan, a 3-node etcd cluster, the register \
workload, partitions and kills every 10 s, for 60 s.\n\nExamples:\n  \
faultline run\n  \
faultline run --system etcd --workload register --nemesis partition,kill \\\n      \
--time-limit 60s --concurrency 10 --rate 500 --seed 7\n  \
faultline run --plan plans/etcd-register.toml --seed 7\n\n\
Exit codes: 0 valid, 1 an anomaly was found (invalid), 2 unknown, 3 harness error."
)]
pub struct Args {
    /// A TOML test plan; flags given here override its values.
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// Test name (the store folder); default: <system>-<workload>.
    #[arg(long)]
    pub name: Option<String>,
    /// System under test.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(SYSTEMS))]
    pub system: Option<String>,
    /// Workload to drive (e.g. register, cas-register for etcd).
    #[arg(long)]
    pub workload: Option<String>,
    /// Faults, comma-separated: partition, kill, pause, restart (rolling), clock, latency; or none.
    /// A fault may name a shape: partition:isolate-leader (or halves, random-halves, isolate,
    /// bridge, majorities-ring), kill:leader (or one, minority, majority), pause:leader ...
    #[arg(long, value_delimiter = ',')]
    pub nemesis: Option<Vec<String>>,
    /// Time between fault changes (e.g. 10s).
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub nemesis_interval: Option<String>,
    /// How long the workload runs before the final heal and checks (e.g. 60s).
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub time_limit: Option<String>,
    /// Concurrent client processes.
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// Target operations per second, over all processes.
    #[arg(long, value_name = "OPS_PER_S")]
    pub rate: Option<f64>,
    /// Seed for every random choice (default: random; always printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// etcd reads: linearizable (quorum) or serializable (local, may be stale).
    #[arg(long, value_name = "MODE")]
    pub read_mode: Option<String>,
    /// Number of keys the register workloads use.
    #[arg(long)]
    pub keys: Option<u32>,
    /// Per-operation timeout; slower operations are recorded as indeterminate (info).
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub op_timeout: Option<String>,
    /// Store folder for runs.
    #[arg(long, value_name = "DIR")]
    pub store: Option<String>,
    /// How nodes reach their peers: direct, or proxy (a Toxiproxy-compatible proxy container:
    /// partitions by toxics, and latency faults; testbed, zookeeper, nats, etcd, rabbitmq and
    /// redis; postgres runs one server). Latency implies proxy.
    #[arg(long, value_name = "MODE")]
    pub links: Option<String>,
    /// Testbed only: switch on a bug in every node (repeatable; `faultline testbed-node
    /// --list-bugs` lists them). Replaces the plan file's `bug` list; `--bug none` clears it.
    #[arg(long = "bug", value_name = "NAME", value_delimiter = ',')]
    pub bugs: Vec<String>,
    /// Write JUnit XML for CI (one test case per checker).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write a Markdown summary (e.g. for a CI job's step summary).
    #[arg(long, value_name = "FILE")]
    pub summary_md: Option<PathBuf>,
    /// No progress bar (also off when stderr is not a terminal).
    #[arg(long)]
    pub quiet: bool,
}

impl Args {
    /// Defaults, then the plan file, then flags.
    pub fn resolve(&self) -> Result<Plan, String> {
        let mut plan = Plan::default();
        if let Some(path) = &self.plan {
            let file = PlanFile::load(path)?;
            file.apply(&mut plan, &path.display().to_string())?;
            plan.plan_file = Some(path.display().to_string());
        }
        let flags = PlanFile {
            name: self.name.clone(),
            system: self.system.clone().map(faultline::plan::SystemChoice::Name),
            workload: self.workload.clone(),
            nemesis: self.nemesis.clone().map(|v| {
                v.into_iter()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty() && s != "none")
                    .collect()
            }),
            nemesis_interval: self.nemesis_interval.clone(),
            time_limit: self.time_limit.clone(),
            concurrency: self.concurrency,
            rate: self.rate,
            seed: self.seed,
            read_mode: self.read_mode.clone(),
            keys: self.keys,
            op_timeout: self.op_timeout.clone(),
            store: self.store.clone(),
            bug: (!self.bugs.is_empty()).then(|| {
                self.bugs
                    .iter()
                    .filter(|b| !b.is_empty() && *b != "none")
                    .cloned()
                    .collect()
            }),
            testbed: None,
            client: None,
            links: self.links.clone(),
        };
        let plan_had_seed = plan.seed != 0;
        flags.apply(&mut plan, "flags")?;
        if self.seed.is_none() && !plan_had_seed {
            plan.seed = faultline::plan::random_seed();
        }
        if plan.name.is_empty() {
            plan.name = plan.default_name();
        }
        plan.validate()?;
        // Workload and [client] options too, before a run folder or a cluster exists.
        faultline::run::check_workload(&plan)?;
        Ok(plan)
    }
}

pub fn run(args: Args) -> Result<i32> {
    let plan = args.resolve().map_err(anyhow::Error::msg)?;
    faultline::run::require_client(&plan, false)?;
    // A user's client and image before the run folder: a client that exits at start, a
    // missing image or a package apt cannot install is bad input, and nothing has started yet.
    // The client first: it takes a second, an image build minutes.
    faultline::run::check_client(&plan)?;
    faultline::run::prepare_image(&plan)?;
    let opts = faultline::run::RunOptions {
        junit: args.junit.clone(),
        summary_md: args.summary_md.clone(),
        quiet: args.quiet,
    };
    faultline::run::execute(plan, opts)
}
