//! The `faultline` binary: parses flags, wires the crates together, maps results to exit codes.
//!
//! Exit codes are part of the interface a CI job relies on: 0 valid, 1 an anomaly (invalid),
//! 2 unknown, 3 bad input or a harness error. Every error reaches the user as one line on stderr,
//! never as a panic or a backtrace.

use clap::{Parser, Subcommand};

mod cmd;

/// Black-box chaos testing for distributed systems: run a real cluster in Docker, inject faults,
/// record a history, and check it for linearizability and delivery anomalies.
#[derive(Parser)]
#[command(name = "faultline", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a chaos test: start a cluster, drive a workload, inject faults, check, report.
    Run(Box<cmd::run::Args>),
    /// Run a matrix of plans, each several times with derived seeds: one table, one exit code.
    TestAll(cmd::test_all::Args),
    /// Merge the stores of `test-all --shard K/N` jobs into one store, JUnit file and summary.
    Merge(cmd::merge::Args),
    /// Measure detection: every testbed scenario with its bug on and off, over several seeds.
    Calibrate(cmd::calibrate::Args),
    /// Check history files (faultline JSONL, Jepsen EDN, Jepsen logs) with a checker.
    Check(cmd::check::Args),
    /// Convert a history in any supported format to faultline JSONL.
    Convert(cmd::convert::Args),
    /// Regenerate a run's HTML report (index.html and plots) from its run directory.
    Report(cmd::report::Args),
    /// Run a Toxiproxy-compatible TCP proxy server (its HTTP API) until Ctrl-C.
    Proxy(cmd::proxy::Args),
    /// Build the container images (from Debian packages, nothing pulled) or list them.
    Images(cmd::images::Args),
    /// Start a cluster of a system, print its nodes and addresses, hold it, tear it down.
    Cluster(cmd::cluster::Args),
    /// Remove containers and networks that killed faultline runs left behind.
    Clean(cmd::clean::Args),
    /// Start testing your own system: write NAME/plan.toml and a client skeleton to edit.
    Init(cmd::init::Args),
    /// Hidden: shift the wall clock of one running process by patching its vDSO (run inside a
    /// node by the clock nemesis; see `nemeses::vdso_clock`).
    #[command(hide = true)]
    ClockAttach(cmd::clock_attach::Args),
}

/// Exit code for bad input or a harness error.
pub const EXIT_ERROR: i32 = 3;

fn main() {
    // Hidden: one testbed node (see `testbed::cli`), the role faultline's binary plays inside
    // the testbed's containers. Not a clap subcommand, so its flags are the testbed's own.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "testbed-node")
    {
        std::process::exit(testbed::cli::main_with_args(std::env::args_os().skip(1)));
    }
    faultline::cluster::systems::testbed::running_as_faultline();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => exit_on_bad_flags(e),
    };
    let result = match cli.command {
        Command::Run(args) => cmd::run::run(*args),
        Command::TestAll(args) => cmd::test_all::run(args),
        Command::Merge(args) => cmd::merge::run(args),
        Command::Calibrate(args) => cmd::calibrate::run(args),
        Command::Check(args) => cmd::check::run(args),
        Command::Convert(args) => cmd::convert::run(args),
        Command::Report(args) => cmd::report::run(args),
        Command::Proxy(args) => cmd::proxy::run(args),
        Command::Images(args) => cmd::images::run(args),
        Command::Cluster(args) => cmd::cluster::run(args),
        Command::Clean(args) => cmd::clean::run(args),
        Command::Init(args) => cmd::init::run(args),
        Command::ClockAttach(args) => cmd::clock_attach::run(args),
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("faultline: error: {}", one_line(&e));
            EXIT_ERROR
        }
    };
    std::process::exit(code);
}

/// `--help` and `--version` print and exit 0; a bad flag is one line on stderr and exit 3 (exit 2
/// would read as an `unknown` verdict).
fn exit_on_bad_flags(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        std::process::exit(
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                EXIT_ERROR
            } else {
                0
            },
        );
    }
    let text = e.render().to_string();
    let line = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more"))
        .collect::<Vec<_>>()
        .join(" ");
    let line = line.strip_prefix("error: ").unwrap_or(&line);
    eprintln!("faultline: error: {line} (see faultline --help)");
    std::process::exit(EXIT_ERROR);
}

/// Flattens an error and its causes into one line: "outer: cause: root cause".
fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
        .replace('\n', " ")
}
