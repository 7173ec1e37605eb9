//! `faultline convert`: any supported history format in, faultline JSONL out.
//!
//! The output is written to a temporary file beside the target and renamed into place, so a
//! failed conversion never leaves a half-written history behind.

use anyhow::{Context, Result};
use checkers::formats::{self, Format};
use std::io::BufWriter;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example:\n  faultline convert testdata/porcupine/kv/c01-ok.txt c01-ok.jsonl\n\n\
Use - as OUT to write to standard output. Formats without timestamps (Jepsen logs, EDN without \
:time) get the line number as time."
)]
pub struct Args {
    /// The history to convert: faultline JSONL, Jepsen EDN or Jepsen log lines.
    #[arg(value_name = "IN")]
    pub input: PathBuf,
    /// Where to write faultline JSONL (`-` for standard output).
    #[arg(value_name = "OUT")]
    pub output: PathBuf,
    /// Force the input format instead of detecting it: jsonl, edn, jepsen-log.
    #[arg(long, value_parser = |s: &str| Format::parse(s).ok_or_else(|| format!("expected one of: {}", Format::NAMES.join(", "))))]
    pub format: Option<Format>,
}

pub fn run(args: Args) -> Result<i32> {
    let history = formats::read_path(&args.input, args.format).map_err(anyhow::Error::msg)?;
    if args.output.as_os_str() == "-" {
        formats::write_jsonl(&history, std::io::stdout().lock()).context("writing to stdout")?;
        return Ok(0);
    }
    let tmp = args.output.with_extension("jsonl.partial");
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("{}: cannot create", tmp.display()))?;
    formats::write_jsonl(&history, BufWriter::new(file))
        .with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, &args.output)
        .with_context(|| format!("{}: cannot move into place", args.output.display()))?;
    eprintln!(
        "wrote {} events to {}",
        history.events.len(),
        args.output.display()
    );
    Ok(0)
}
