//! `faultline proxy`: a standalone Toxiproxy-compatible proxy server, a drop-in for anyone.
//!
//! The server itself lives in `nemeses::proxy`; this command only runs it until Ctrl-C or
//! SIGTERM, optionally creating proxies from a JSON file first (Toxiproxy's `-config`).

use std::path::PathBuf;

use anyhow::Result;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
  faultline proxy\n  \
  faultline proxy --listen 0.0.0.0:8474 --config proxies.json\n\n\
Then drive it with any Toxiproxy client, e.g.:\n  \
  curl -s -XPOST localhost:8474/proxies -d '{\"name\":\"redis\",\"listen\":\"127.0.0.1:26379\",\"upstream\":\"127.0.0.1:6379\"}'\n  \
  curl -s -XPOST localhost:8474/proxies/redis/toxics -d '{\"type\":\"latency\",\"attributes\":{\"latency\":100}}'")]
pub struct Args {
    /// Address of the HTTP API (Toxiproxy's default is 127.0.0.1:8474).
    #[arg(long, value_name = "ADDR", default_value = nemeses::proxy::DEFAULT_API_ADDR)]
    pub listen: String,

    /// JSON file listing proxies to create at start: [{"name", "listen", "upstream"}, ...].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<i32> {
    nemeses::proxy::run_standalone(&args.listen, args.config.as_deref())?;
    Ok(0)
}
