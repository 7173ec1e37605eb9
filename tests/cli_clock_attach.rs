//! `faultline clock-attach` (hidden) as the clock nemesis runs it inside a node: a statically
//! linked program (nemeses/tests/clockprobe.c, which no preload reaches) is shifted, inspected
//! and put back while it runs; bad flags are one line and exit 3. The host clock is untouched.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn faultline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .output()
        .expect("the faultline binary runs")
}

fn static_probe() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli_clock_attach");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("clockprobe-static");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("nemeses/tests/clockprobe.c");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let st = Command::new(&cc)
        .args(["-O2", "-static", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cc}: {e}"));
    assert!(st.success(), "compiling {} statically", src.display());
    out
}

fn ok_line(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success(),
        "exit {:?}: {text} {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn clock_attach_shifts_a_static_binary_reports_it_and_resets_it() {
    let mut child = Command::new(static_probe())
        .arg("serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut clock_gettime_ms = || -> i64 {
        writeln!(stdin, "once").unwrap();
        let mut found = None;
        for _ in 0..20 {
            let mut line = String::new();
            assert!(stdout.read_line(&mut line).unwrap() > 0, "the probe exited");
            if line.trim() == "end" {
                break;
            }
            if let Some(v) = line.trim().strip_prefix("clock_gettime ") {
                found = Some(v.parse().unwrap());
            }
        }
        found.expect("a clock_gettime line")
    };
    assert_eq!(clock_gettime_ms(), 0);
    let pid = child.id().to_string();

    let line = ok_line(&faultline(&[
        "clock-attach",
        "--pid",
        &pid,
        "--offset-ns",
        "-90000000000",
        "--gen",
        "7",
    ]));
    assert!(line.starts_with(&format!("ok pid {pid} ")), "{line}");
    assert!(
        line.contains("changed [clock_gettime,gettimeofday,time]"),
        "{line}"
    );
    assert_eq!(clock_gettime_ms(), -90_000);
    let line = ok_line(&faultline(&["clock-attach", "--pid", &pid, "--status"]));
    assert!(
        line.contains("gen 7 ack 7 offset_ns -90000000000"),
        "the probe read the clock through the patch: {line}"
    );

    ok_line(&faultline(&["clock-attach", "--pid", &pid, "--reset"]));
    assert_eq!(clock_gettime_ms(), 0);
    let line = ok_line(&faultline(&["clock-attach", "--pid", &pid, "--status"]));
    assert!(line.contains(" go false patched []"), "{line}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn clock_attach_rejects_bad_input_with_one_line_and_exit_3() {
    for args in [
        vec!["clock-attach", "--pid", "1", "--reset", "--offset-ns", "5"],
        vec!["clock-attach", "--pid", "1"],
        vec!["clock-attach", "--pid", "2147483647", "--offset-ns", "5"],
    ] {
        let out = faultline(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("faultline: error: "), "{err}");
    }
}
