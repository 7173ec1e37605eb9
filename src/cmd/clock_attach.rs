//! `faultline clock-attach` (hidden): the vDSO clock patch (`nemeses::vdso_clock`) applied to
//! one process. faultline runs it inside a node's container, next to the server it targets,
//! because ptrace works only within the container's PID namespace; people may run it by hand
//! on a test process of their own. It changes nothing but the target process's view of the
//! wall clock, and never the host clock.
//!
//! Prints one line, `ok <what was done>`, or fails with exit code 3 and one line of error.
//! `--status` prints `status pid P go BOOL patched [..] gen G ack A offset_ns O ...`, where `go`
//! says whether the process is a Go program and `ack` is the last generation under which it read
//! the clock through the patch.

use anyhow::{bail, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The process to patch (all its threads).
    #[arg(long)]
    pub pid: i32,

    /// Wall-clock offset in nanoseconds (negative: behind).
    #[arg(long, value_name = "NS", allow_hyphen_values = true)]
    pub offset_ns: Option<i64>,

    /// With --strobe-period-ns: added on top of the offset during every other period.
    #[arg(
        long,
        value_name = "NS",
        default_value_t = 0,
        allow_hyphen_values = true
    )]
    pub strobe_amplitude_ns: i64,

    /// Strobe period in nanoseconds (0: no strobe).
    #[arg(long, value_name = "NS", default_value_t = 0)]
    pub strobe_period_ns: u64,

    /// Generation of this change (default: now in milliseconds since the epoch).
    #[arg(long)]
    pub gen: Option<u64>,

    /// Put the process back on the real clock and restore its vDSO.
    #[arg(long, conflicts_with_all = ["offset_ns", "status"])]
    pub reset: bool,

    /// Print the patch state of the process, change nothing.
    #[arg(long, conflicts_with = "offset_ns")]
    pub status: bool,
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub fn run(args: Args) -> Result<i32> {
    use nemeses::clock::ClockSetting;
    use nemeses::vdso_clock;
    let gen = args.gen.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(1)
    });
    if args.status {
        let s = vdso_clock::status(args.pid)?;
        let go = vdso_clock::is_go_binary(args.pid)?;
        println!(
            "status pid {} go {go} patched [{}] gen {} ack {} offset_ns {} strobe_amplitude_ns {} strobe_period_ns {}",
            args.pid,
            s.patched.join(","),
            s.gen,
            s.ack,
            s.setting.offset_ns,
            s.setting.strobe_amplitude_ns,
            s.setting.strobe_period_ns
        );
        return Ok(0);
    }
    // Ctrl-C must not end this process half-way through a patch: block the usual signals.
    vdso_clock::block_termination_signals();
    let report = if args.reset {
        vdso_clock::reset(args.pid, gen)?
    } else {
        let Some(offset_ns) = args.offset_ns else {
            bail!("--offset-ns, --reset or --status is required");
        };
        let setting = ClockSetting {
            offset_ns,
            strobe_amplitude_ns: args.strobe_amplitude_ns,
            strobe_period_ns: args.strobe_period_ns,
        };
        vdso_clock::apply(args.pid, &setting, gen)?
    };
    println!("ok {report}");
    Ok(0)
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
pub fn run(_args: Args) -> Result<i32> {
    bail!("clock-attach works on x86_64 Linux only")
}
