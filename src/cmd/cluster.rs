//! `faultline cluster up`: starts a cluster of one system, prints its nodes and addresses and
//! how long it took to be ready, holds it (for a time or until Ctrl-C), and tears it down.
//! Ctrl-C or SIGTERM at any moment, also during start, removes everything the run created.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use faultline::cluster::{self, docker, Cluster, ClusterOptions, System, SystemParams};

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
  faultline cluster up --system etcd              # hold until Ctrl-C\n  \
  faultline cluster up --system redis --hold 30s\n  \
  faultline cluster up --system nats --nodes 5 --logs /tmp/nats-logs\n  \
  faultline cluster bench --repeat 3        # time to a ready cluster, every system")]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Start a cluster, print its nodes, hold it, tear it down.
    Up(UpArgs),
    /// Time from start to a ready cluster, per system (each started, timed, torn down).
    Bench(BenchArgs),
}

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Systems to time (default: all).
    #[arg(long = "system", value_name = "S")]
    pub systems: Vec<String>,
    /// Starts per system; the table shows the median and the slowest.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub repeat: usize,
}

#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// etcd, redis, nats, rabbitmq, zookeeper or postgres.
    #[arg(long, value_name = "S")]
    pub system: String,
    /// Number of server nodes (default: the system's, usually 3).
    #[arg(long, value_name = "N")]
    pub nodes: Option<usize>,
    /// How long to hold the cluster once ready (e.g. 30s, 5m); default: until Ctrl-C.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true, value_parser = faultline::units::duration)]
    pub hold: Option<Duration>,
    /// Collect node logs into this folder at teardown.
    #[arg(long, value_name = "DIR")]
    pub logs: Option<PathBuf>,
    /// Longest wait for the cluster to be ready (default: the system's).
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true, value_parser = faultline::units::duration)]
    pub ready_timeout: Option<Duration>,
}

/// What `faultline cluster up` exits with after a signal: 128 + the signal number.
const EXIT_SIGINT: i32 = 130;
const EXIT_SIGTERM: i32 = 143;
/// A Docker request cut short by a signal may still complete on the daemon's side; the final
/// sweep by label waits this long for such stragglers.
const SETTLE_MS: u64 = 500;

pub fn run(args: Args) -> Result<i32> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    match args.action {
        Action::Up(up) => rt.block_on(cluster_up(up)),
        Action::Bench(b) => rt.block_on(async {
            tokio::select! {
                r = bench(b) => r,
                sig = cluster::shutdown_signal() => {
                    // The bench future is dropped: a started cluster's Drop removes its run.
                    eprintln!("faultline: {}: stopped", sig?);
                    Ok(EXIT_SIGINT)
                }
            }
        }),
    }
}

async fn cluster_up(args: UpArgs) -> Result<i32> {
    let params = SystemParams {
        nodes: args.nodes,
        ..Default::default()
    };
    if args.nodes == Some(0) {
        anyhow::bail!("--nodes 0: a cluster needs at least one node");
    }
    let system = System::by_name(&args.system, &params)?;
    let run_id = cluster::new_run_id(&system.name);
    let opts = ClusterOptions {
        run_id: Some(run_id.clone()),
        logs_dir: args.logs.clone(),
        ready_timeout: args.ready_timeout,
        ..Default::default()
    };
    println!(
        "starting {} ({} nodes) as run {run_id} from {}",
        system.name,
        system.nodes.len(),
        system.image
    );
    let work = async {
        let c = Cluster::up(system, opts).await?;
        print_cluster(&c).await?;
        match args.hold {
            Some(d) => {
                println!(
                    "holding for {:.0} s (Ctrl-C ends it early)",
                    d.as_secs_f64()
                );
                tokio::time::sleep(d).await;
            }
            None => {
                println!("holding until Ctrl-C");
                std::future::pending::<()>().await;
            }
        }
        Ok::<Cluster, anyhow::Error>(c)
    };
    tokio::select! {
        done = work => {
            let c = done?;
            let removed = c.teardown().await?;
            println!(
                "removed {} container(s) and {} network(s)",
                removed.containers.len(),
                removed.networks.len()
            );
            Ok(0)
        }
        sig = cluster::shutdown_signal() => {
            let sig = sig?;
            // The work future is dropped here: a started cluster's Drop removes the run.
            tokio::time::sleep(Duration::from_millis(SETTLE_MS)).await;
            let d = docker::connect()?;
            let removed = docker::remove_run(&d, &run_id).await?;
            eprintln!(
                "faultline: {sig}: stopped; run {run_id} removed ({} container(s), {} network(s) left over by cancelled requests)",
                removed.containers.len(),
                removed.networks.len()
            );
            Ok(if sig == "SIGTERM" { EXIT_SIGTERM } else { EXIT_SIGINT })
        }
    }
}

async fn bench(args: BenchArgs) -> Result<i32> {
    if args.repeat == 0 {
        anyhow::bail!("--repeat 0: nothing to time");
    }
    let systems: Vec<String> = if args.systems.is_empty() {
        cluster::SYSTEM_NAMES
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        args.systems.clone()
    };
    let mut table = vec![];
    for name in &systems {
        let system = System::by_name(name, &SystemParams::default())?;
        let nodes = system.nodes.len();
        let mut times = vec![];
        for _ in 0..args.repeat {
            let c = Cluster::up(system.clone(), ClusterOptions::default()).await?;
            let t = c.ready_in().as_secs_f64();
            eprintln!("{name}: ready in {t:.1} s");
            times.push(t);
            c.teardown().await?;
        }
        times.sort_by(f64::total_cmp);
        table.push((
            name.clone(),
            nodes,
            times[times.len() / 2],
            times[times.len() - 1],
        ));
    }
    println!(
        "{:<10} {:>5} {:>10} {:>10}",
        "system", "nodes", "median_s", "max_s"
    );
    for (name, nodes, median, max) in table {
        println!("{name:<10} {nodes:>5} {median:>10.1} {max:>10.1}");
    }
    Ok(0)
}

async fn print_cluster(c: &Cluster) -> Result<()> {
    let ips = c.ips().await?;
    println!("network {}", c.network());
    for n in c.nodes() {
        let ports: Vec<String> = n
            .ports
            .iter()
            .map(|(name, (cport, hport))| format!("{name} {cport} -> 127.0.0.1:{hport}"))
            .collect();
        println!(
            "  {:<4} {:<9} {:<15} {}",
            n.name,
            n.role,
            ips.get(&n.name)
                .map(|ip| ip.to_string())
                .unwrap_or_default(),
            ports.join(", ")
        );
    }
    println!("ready in {:.1} s", c.ready_in().as_secs_f64());
    if let Some(leader) = c.leader().await? {
        println!("leader: {leader}");
    }
    Ok(())
}
