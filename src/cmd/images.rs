//! `faultline images build | list`: the container images faultline runs, built here from
//! Debian packages (see `faultline::images` for how and why).

use std::path::PathBuf;

use anyhow::{Context, Result};
use faultline::cluster::{System, SystemParams};
use faultline::images::{self, BuildOptions};

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
  faultline images build                 # builds faultline/base:<recipe hash> unless it exists\n  \
  faultline images build --system etcd   # the image etcd runs (the same base image)\n  \
  faultline images list")]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Build what is missing (skipped when the image of this recipe exists).
    Build(BuildArgs),
    /// List the images faultline built.
    List,
}

#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// Build the image this system runs (etcd, redis, nats, rabbitmq, zookeeper, postgres).
    #[arg(long, value_name = "S")]
    pub system: Option<String>,
    /// Build even if the image exists.
    #[arg(long)]
    pub force: bool,
    /// An apt sources file (sources.list or deb822) to build from instead of the machine's own.
    #[arg(long, value_name = "FILE")]
    pub sources: Vec<PathBuf>,
    /// Never install mmdebstrap, even as root.
    #[arg(long)]
    pub no_install: bool,
}

pub fn run(args: Args) -> Result<i32> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        match args.action {
            Action::Build(b) => build(b).await,
            Action::List => list().await,
        }
    })
}

async fn build(b: BuildArgs) -> Result<i32> {
    let image = match &b.system {
        Some(s) => System::by_name(s, &SystemParams::default())?.image,
        None => images::base_image_ref(),
    };
    for s in &b.sources {
        if !s.is_file() {
            anyhow::bail!("--sources {}: no such file", s.display());
        }
    }
    let docker = faultline::cluster::docker::connect()?;
    let out = images::build_base(
        &docker,
        &BuildOptions {
            force: b.force,
            sources: b.sources.clone(),
            install_missing: !b.no_install,
        },
    )
    .await?;
    debug_assert_eq!(out.image, image, "every system runs the base image");
    if out.built {
        println!(
            "built {} in {:.1} s ({})",
            out.image,
            out.build_seconds,
            images::human_size(out.size_bytes)
        );
    } else {
        println!(
            "{} is up to date ({}); use --force to rebuild",
            out.image,
            images::human_size(out.size_bytes)
        );
    }
    Ok(0)
}

async fn list() -> Result<i32> {
    let docker = faultline::cluster::docker::connect()?;
    let rows = images::list(&docker).await?;
    if rows.is_empty() {
        println!("no faultline images yet: run `faultline images build`");
        return Ok(0);
    }
    println!(
        "{:<32} {:<12} {:>8}  {:<20} recipe",
        "IMAGE", "ID", "SIZE", "CREATED"
    );
    for r in rows {
        println!(
            "{:<32} {:<12} {:>8}  {:<20} {}",
            r.reference,
            r.id,
            images::human_size(r.size_bytes),
            utc(r.created_unix),
            if r.current { "current" } else { "other" }
        );
    }
    Ok(0)
}

/// `YYYY-MM-DD HH:MM UTC` from Unix seconds (civil-from-days, no time crate needed).
fn utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn unix_seconds_print_as_utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::utc(1_709_210_096), "2024-02-29 12:34 UTC");
    }
}
