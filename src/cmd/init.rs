//! `faultline init NAME`: writes NAME/plan.toml, NAME/client.py and NAME/store.py, a starting
//! point for testing one's own system (see `faultline::init`).

use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Then: faultline run --plan NAME/plan.toml (valid as written), and make it yours: docs/your-system.md."
)]
pub struct Args {
    /// Your system's name: the folder and the system's name in the plan.
    pub name: String,
    /// Where the folder goes.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
}

pub fn run(args: Args) -> Result<i32> {
    let plan = faultline::init::write_skeleton(&args.dir, &args.name)?;
    let dir = plan
        .parent()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    println!("wrote {dir}/plan.toml, {dir}/client.py and {dir}/store.py");
    println!("run it: faultline run --plan {}", plan.display());
    println!("then put your system in [system] and your calls in client.py: docs/your-system.md");
    Ok(0)
}
