//! `faultline clean`: removes the containers and networks of faultline runs whose controller is
//! gone (killed with SIGKILL, a crashed machine), found by the `faultline=1` label. Runs whose
//! controller still runs, and things labeled `faultline=1` without a controller's owner label,
//! are left alone unless `--all`, so a clean never breaks a live test.

use anyhow::{Context, Result};
use faultline::cluster::docker;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
  faultline clean            # what killed runs left\n  \
  faultline clean --dry-run  # only show it\n  \
  faultline clean --all      # also runs whose controller still runs")]
pub struct Args {
    /// Also remove runs whose controller process is still alive.
    #[arg(long)]
    pub all: bool,
    /// Show what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: Args) -> Result<i32> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(clean(args))
}

async fn clean(args: Args) -> Result<i32> {
    let d = docker::connect()?;
    let runs = docker::list_runs(&d).await?;
    let (mut removed_c, mut removed_n, mut kept) = (0, 0, 0);
    for run in runs {
        if run.owner_alive && !args.all {
            kept += 1;
            println!(
                "kept    run {} (its controller {} still runs)",
                run.run_id,
                run.owner.split(':').next().unwrap_or("?")
            );
            continue;
        }
        if run.owner.is_empty() && !args.all {
            // Labeled faultline=1 but not by a run's controller (e.g. made by hand or by a
            // test of its own): whose it is cannot be told, so only --all removes it.
            kept += 1;
            println!(
                "kept    {} container(s) [{}] and {} network(s) [{}] without an owner label (use --all)",
                run.containers.len(),
                run.containers.join(", "),
                run.networks.len(),
                run.networks.join(", ")
            );
            continue;
        }
        let verb = if args.dry_run {
            "would remove"
        } else {
            "removed"
        };
        if !args.dry_run {
            docker::remove_run_resources(&d, &run).await?;
        }
        removed_c += run.containers.len();
        removed_n += run.networks.len();
        println!(
            "{verb} run {}: {} container(s) [{}], {} network(s) [{}]",
            if run.run_id.is_empty() {
                "<none>"
            } else {
                &run.run_id
            },
            run.containers.len(),
            run.containers.join(", "),
            run.networks.len(),
            run.networks.join(", ")
        );
    }
    println!(
        "{} {removed_c} container(s) and {removed_n} network(s); kept {kept} live or unowned group(s)",
        if args.dry_run {
            "would remove"
        } else {
            "removed"
        }
    );
    Ok(0)
}
