//! What the vDSO clock patch costs a process: nanoseconds per `clock_gettime(CLOCK_REALTIME)`
//! call in a statically linked program (tests/clockprobe.c), with its vDSO untouched, patched
//! with an offset, patched with a strobe, and restored. The patched path reads the real time by
//! system call (see clockshim/vdsopatch.c), so the figures are one kernel entry per call while a
//! fault is in force. Prints figures; asserts nothing.
//!
//! `cargo bench -p nemeses --bench vdso_clock`

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn main() {
    use nemeses::clock::ClockSetting;
    use nemeses::vdso_clock::{apply, reset};
    use std::io::{BufRead, BufReader, Write};
    use std::path::Path;
    use std::process::{Command, Stdio};

    const CALLS: &str = "2000000";
    const RUNS: usize = 5;

    let dir = std::env::temp_dir().join(format!("faultline-vdso-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let probe = dir.join("clockprobe-static");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clockprobe.c");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let ok = Command::new(&cc)
        .args(["-O2", "-static", "-o"])
        .arg(&probe)
        .arg(&src)
        .status()
        .unwrap();
    assert!(ok.success(), "compiling the clock probe");
    let mut child = Command::new(&probe)
        .arg("serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    // The best of a few runs: the machine is shared, the minimum is the least disturbed.
    let mut run = || -> f64 {
        (0..RUNS)
            .map(|_| {
                writeln!(stdin, "bench {CALLS}").unwrap();
                let mut figure = String::new();
                stdout.read_line(&mut figure).unwrap();
                let mut end = String::new();
                stdout.read_line(&mut end).unwrap();
                assert_eq!(end.trim(), "end");
                figure.trim().parse::<f64>().unwrap()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let direct = run();
    apply(pid, &ClockSetting::offset_ms(5_000), 1).unwrap();
    let shifted = run();
    apply(pid, &ClockSetting::strobe_ms(0, 5_000, 10), 2).unwrap();
    let strobe = run();
    reset(pid, 3).unwrap();
    let restored = run();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);

    println!("clock_gettime(CLOCK_REALTIME), ns per call (best of {RUNS} x {CALLS} calls):");
    println!("  vDSO, untouched           {direct:7.1}");
    println!(
        "  patched, offset +5 s      {shifted:7.1}   ({:.1}x)",
        shifted / direct
    );
    println!(
        "  patched, strobe 0/+5 s    {strobe:7.1}   ({:.1}x)",
        strobe / direct
    );
    println!(
        "  restored after reset      {restored:7.1}   ({:.1}x)",
        restored / direct
    );
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn main() {
    println!("the vDSO clock patch is x86_64 Linux only");
}
