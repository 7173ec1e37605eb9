//! The node's command line, shared by the `faultline-testbed` binary and `faultline testbed-node`
//! (the same node inside faultline's own binary, which is what runs put into containers: one
//! binary to ship, always the same version as the controller that drives it).
//!
//! ```text
//! faultline-testbed --node n1 --listen 0.0.0.0:7000 --peers n2=n2:7000,n3=n3:7000 \
//!     --data-dir /var/lib/testbed --bug double-delivery-on-timeout
//! ```

use crate::config::{parse_peers, Bug, NodeConfig, Settings, BUGS};
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "faultline-testbed",
    version,
    about = "A small replicated server with switchable bugs: faultline's calibrated target"
)]
struct Cli {
    /// This node's name (unique in the cluster), e.g. n1.
    #[arg(long, required_unless_present = "list_bugs")]
    node: Option<String>,
    /// Address to listen on, e.g. 0.0.0.0:7000.
    #[arg(long, required_unless_present = "list_bugs")]
    listen: Option<SocketAddr>,
    /// The other nodes: NAME=HOST:PORT,... (empty for a single node).
    #[arg(long, default_value = "")]
    peers: String,
    /// Switch on a bug (repeatable, or comma-separated); see --list-bugs.
    #[arg(long = "bug", value_delimiter = ',')]
    bugs: Vec<String>,
    /// Print the bugs, their scenarios and the checkers that flag them, then exit.
    #[arg(long)]
    list_bugs: bool,
    /// Write-ahead log directory; without it the node keeps everything in memory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Node that owns the queue, outbox and request services (default: the lowest name).
    #[arg(long)]
    home: Option<String>,
    /// Primary lease: elections start after this long without a heartbeat.
    #[arg(long, default_value_t = 1000)]
    lease_ms: u64,
    /// A write not on a majority within this is answered as indeterminate.
    #[arg(long, default_value_t = 2000)]
    write_timeout_ms: u64,
    /// Bound on one node-to-node call.
    #[arg(long, default_value_t = 500)]
    peer_timeout_ms: u64,
    /// With lost-acked-write: delay between the ack and the background persist + replicate.
    #[arg(long, default_value_t = 300)]
    async_replication_delay_ms: u64,
    /// Consumer-group session: a member silent this long is removed.
    #[arg(long, default_value_t = 1500)]
    session_ms: u64,
    /// How long a delivered message stays leased to its consumer.
    #[arg(long, default_value_t = 1000)]
    message_lease_ms: u64,
    /// Redeliveries allowed before a message is dead-lettered.
    #[arg(long, default_value_t = 3)]
    max_retries: u32,
    /// Partitions per topic.
    #[arg(long, default_value_t = 4)]
    partitions: u32,
    /// Most messages one consume returns.
    #[arg(long, default_value_t = 10)]
    consume_max: usize,
    /// Task lease of the fencing endpoint.
    #[arg(long, default_value_t = 1000)]
    task_lease_ms: u64,
    /// Simulated latency of every durable write.
    #[arg(long, default_value_t = 2)]
    storage_latency_ms: u64,
    /// Outbox dispatcher: pause between polls.
    #[arg(long, default_value_t = 20)]
    dispatch_interval_ms: u64,
    /// Outbox dispatcher: time between taking a batch and publishing it.
    #[arg(long, default_value_t = 50)]
    dispatch_step_ms: u64,
    /// Outbox dispatcher: rows per batch.
    #[arg(long, default_value_t = 5)]
    dispatch_batch: usize,
    /// Failpoint: every Nth publish attempt of the dispatcher fails (0 = never).
    #[arg(long, default_value_t = 0)]
    dispatch_fail_every: u64,
    /// Bound on every growing table (messages per partition, keys, rows, members ...).
    #[arg(long, default_value_t = 1_000_000)]
    entries_max: usize,
}

fn config(cli: Cli) -> Result<NodeConfig, String> {
    let name = cli.node.ok_or("--node is required")?;
    let listen = cli.listen.ok_or("--listen is required")?;
    let mut c = NodeConfig::new(name, listen);
    c.peers = parse_peers(&cli.peers)?;
    for b in cli.bugs.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        c.bugs
            .insert(b.parse::<Bug>().map_err(|e| format!("--bug: {e}"))?);
    }
    c.data_dir = cli.data_dir;
    c.home = cli.home;
    let ms = Duration::from_millis;
    c.settings = Settings {
        lease: ms(cli.lease_ms),
        write_timeout: ms(cli.write_timeout_ms),
        retry_interval: Settings::default().retry_interval,
        peer_timeout: ms(cli.peer_timeout_ms),
        async_replication_delay: ms(cli.async_replication_delay_ms),
        session: ms(cli.session_ms),
        message_lease: ms(cli.message_lease_ms),
        max_retries: cli.max_retries,
        partitions: cli.partitions,
        consume_max: cli.consume_max,
        task_lease: ms(cli.task_lease_ms),
        storage_latency: ms(cli.storage_latency_ms),
        dispatch_interval: ms(cli.dispatch_interval_ms),
        dispatch_step: ms(cli.dispatch_step_ms),
        dispatch_batch: cli.dispatch_batch,
        dispatch_fail_every: cli.dispatch_fail_every,
        entries_max: cli.entries_max,
    };
    c.validate()?;
    Ok(c)
}

fn list_bugs() {
    println!(
        "{:<28} {:<8} {:<26} {:<18} what",
        "bug", "ids", "checker", "anomaly"
    );
    for b in BUGS {
        println!(
            "{:<28} {:<8} {:<26} {:<18} {}",
            b.name, b.scenarios, b.checker, b.anomaly, b.what
        );
    }
}

async fn run(cfg: NodeConfig) -> anyhow::Result<()> {
    let handle = crate::start(cfg).await?;
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    handle.kill();
    Ok(())
}

/// Runs a node from command-line arguments (the first is the program name) until SIGTERM or
/// Ctrl-C, and returns the process exit code: 0 after a signal, 3 on a start-up error (printed
/// as one line), and clap's own codes for `--help` and bad flags.
pub fn main_with_args<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 3 } else { 0 };
        }
    };
    if cli.list_bugs {
        list_bugs();
        return 0;
    }
    let cfg = match config(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("faultline-testbed: {e}");
            return 3;
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("faultline-testbed: cannot start the runtime: {e}");
            return 3;
        }
    };
    if let Err(e) = rt.block_on(run(cfg)) {
        eprintln!("faultline-testbed: {e:#}");
        return 3;
    }
    0
}

/// Checks node flags (everything but `--node` and `--listen`) the way a node would at start-up,
/// so that a plan with a bad testbed flag fails before any container exists.
pub fn check_node_args(args: &[String]) -> Result<(), String> {
    let argv = [
        "faultline-testbed",
        "--node",
        "n1",
        "--listen",
        "127.0.0.1:7000",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(args.iter().cloned());
    let cli = Cli::try_parse_from(argv).map_err(|e| {
        e.render()
            .to_string()
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("bad flag")
            .trim_start_matches("error: ")
            .to_string()
    })?;
    config(cli).map(|_| ())
}
