//! What the clock shim costs a process: nanoseconds per `clock_gettime(CLOCK_REALTIME)` call,
//! without the shim, with it at offset zero (how every node runs when clock faults are enabled),
//! and with an offset in force. Prints figures; asserts nothing.
//!
//! `cargo bench -p nemeses --bench clockshim`

use nemeses::clock::{control_file, ClockSetting, SHIM_SO};
use std::path::Path;
use std::process::Command;

const CALLS: &str = "20000000";
const RUNS: usize = 5;

fn main() {
    let dir =
        std::env::temp_dir().join(format!("faultline-clockshim-bench-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("clock")).unwrap();
    let shim = dir.join("libfaultline_clock.so");
    std::fs::write(&shim, SHIM_SO).unwrap();
    let probe = dir.join("clockprobe");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clockprobe.c");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let ok = Command::new(&cc)
        .args(["-O2", "-o"])
        .arg(&probe)
        .arg(&src)
        .status()
        .unwrap();
    assert!(ok.success(), "compiling the clock probe");

    // The best of a few runs: the machine is shared, the minimum is the least disturbed.
    let run = |preload: bool| -> f64 {
        (0..RUNS)
            .map(|_| {
                let mut cmd = Command::new(&probe);
                cmd.args(["bench", CALLS]);
                if preload {
                    cmd.env("LD_PRELOAD", &shim)
                        .env("FAULTLINE_CLOCK_DIR", dir.join("clock"));
                }
                let out = cmd.output().unwrap();
                String::from_utf8(out.stdout)
                    .unwrap()
                    .trim()
                    .parse::<f64>()
                    .unwrap()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let direct = run(false);
    std::fs::write(
        dir.join("clock/offset"),
        control_file(1, &ClockSetting::real()),
    )
    .unwrap();
    let zero = run(true);
    std::fs::write(
        dir.join("clock/offset"),
        control_file(2, &ClockSetting::offset_ms(5_000)),
    )
    .unwrap();
    let shifted = run(true);
    std::fs::write(
        dir.join("clock/offset"),
        control_file(3, &ClockSetting::strobe_ms(0, 5_000, 10)),
    )
    .unwrap();
    let strobe = run(true);
    let _ = std::fs::remove_dir_all(&dir);

    println!("clock_gettime(CLOCK_REALTIME), ns per call (best of {RUNS} x {CALLS} calls):");
    println!("  libc (vDSO), no shim      {direct:7.1}");
    println!(
        "  shim, offset zero         {zero:7.1}   ({:.2}x)",
        zero / direct
    );
    println!(
        "  shim, offset +5 s         {shifted:7.1}   ({:.2}x)",
        shifted / direct
    );
    println!(
        "  shim, strobe 0/+5 s 10 ms {strobe:7.1}   ({:.2}x)",
        strobe / direct
    );
}
