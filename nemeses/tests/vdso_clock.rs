//! The vDSO clock patch on the host, without Docker: two long-lived targets that no preload can
//! reach (a statically linked C program, tests/clockprobe.c, and a Go program,
//! tests/goclock/main.go) are patched while they run, and each reports what its own clock calls
//! return against the kernel's real clock read by raw system call. The host clock is never
//! changed: the offset exists only inside the target.
//!
//! Prerequisites: a C compiler with a static libc, and Go for the Go target. Without Go the Go
//! test is skipped, except under CI=true, where it fails.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

use nemeses::clock::ClockSetting;
use nemeses::vdso_clock::{apply, is_go_binary, reset, status};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// A running target answering commands on stdin (`once`, `watch MS`).
struct Target {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Target {
    fn start(program: &Path, args: &[&str]) -> Target {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Target {
            child,
            stdin,
            stdout,
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends one command, returns its answer lines (up to "end") as `first word -> rest`.
    fn ask(&mut self, command: &str) -> BTreeMap<String, String> {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
        let mut out = BTreeMap::new();
        for _ in 0..100 {
            let mut line = String::new();
            let n = self.stdout.read_line(&mut line).unwrap();
            assert!(n > 0, "the target exited during {command:?}");
            let line = line.trim();
            if line == "end" {
                return out;
            }
            let (k, v) = line.split_once(' ').unwrap_or((line, ""));
            out.insert(k.to_string(), v.to_string());
        }
        panic!("no end of answer to {command:?}");
    }

    fn offset_ms(&mut self, key: &str) -> i64 {
        self.ask("once")[key].parse().unwrap()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faultline-vdso-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Built once per test binary (tests run in parallel and must not rewrite a running file).
fn static_probe() -> PathBuf {
    static PROBE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PROBE.get_or_init(build_static_probe).clone()
}

fn build_static_probe() -> PathBuf {
    let out = scratch("c").join("clockprobe-static");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clockprobe.c");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let st = Command::new(&cc)
        .args(["-O2", "-static", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cc} to build the clock probe: {e}"));
    assert!(st.success(), "compiling {} statically", src.display());
    out
}

/// Builds the Go target; `None` (skip) when Go is missing, a failure under CI=true.
fn go_probe() -> Option<PathBuf> {
    let have_go = Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_go {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "Go is required for the vDSO clock test under CI (apt-get install golang-go)"
        );
        eprintln!("skipped: no `go` on PATH (apt-get install golang-go)");
        return None;
    }
    let dir = scratch("go");
    let out = dir.join("goclock");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/goclock/main.go");
    let st = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(&src)
        .env("GO111MODULE", "off")
        .env("GOCACHE", dir.join("cache"))
        .env("GOPATH", dir.join("gopath"))
        .env("HOME", &dir)
        .status()
        .expect("running go build");
    assert!(st.success(), "go build {}", src.display());
    Some(out)
}

const HOUR_MS: i64 = 3_600_000;

fn offset(ms: i64) -> ClockSetting {
    ClockSetting::offset_ms(ms)
}

#[test]
fn a_static_binary_follows_bumps_and_returns_to_real_time_on_reset() {
    let mut t = Target::start(&static_probe(), &["serve"]);
    assert_eq!(t.offset_ms("clock_gettime"), 0);
    assert!(!is_go_binary(t.pid()).unwrap());

    let r = apply(t.pid(), &offset(HOUR_MS), 1).unwrap();
    assert!(r.injected && r.threads == 1, "{r}");
    assert_eq!(r.changed, vec!["clock_gettime", "gettimeofday", "time"]);
    let once = t.ask("once");
    assert_eq!(once["clock_gettime"], "3600000");
    assert_eq!(once["gettimeofday"], "3600000");
    assert_eq!(once["time_s"], "3600");
    assert_eq!(once["timespec_get"], "3600000");
    assert_eq!(once["realtime_coarse"], "3600000");
    assert_eq!(once["monotonic"], "0", "only the wall clock moves");
    assert_eq!(once["bad_clock"], "-1 EINVAL", "errors pass through");
    let s = status(t.pid()).unwrap();
    assert_eq!(
        (s.gen, s.ack),
        (1, 1),
        "the process read the clock under gen 1"
    );
    assert_eq!(s.setting, offset(HOUR_MS));

    // A bump changes only the data page: no thread is stopped.
    let r = apply(t.pid(), &offset(-5_000), 2).unwrap();
    assert_eq!((r.threads, r.injected), (0, false), "{r}");
    assert_eq!(t.offset_ms("clock_gettime"), -5_000);

    let r = reset(t.pid(), 3).unwrap();
    assert_eq!(r.changed.len(), 3, "{r}");
    assert_eq!(t.offset_ms("clock_gettime"), 0);
    let s = status(t.pid()).unwrap();
    assert!(s.patched.is_empty(), "{s:?}");
    assert_eq!(s.ack, 2, "the restored vDSO no longer runs the patch");

    // A second fault reuses the pages mapped by the first.
    let r = apply(t.pid(), &offset(1_000), 4).unwrap();
    assert!(!r.injected && r.threads == 1, "{r}");
    assert_eq!(t.offset_ms("clock_gettime"), 1_000);
    reset(t.pid(), 5).unwrap();
    assert_eq!(t.offset_ms("gettimeofday"), 0);
    // Resetting a process that is not patched changes nothing.
    assert!(reset(t.pid(), 6).unwrap().changed.is_empty());
}

#[test]
fn a_strobe_shows_both_phases_and_nothing_else() {
    let mut t = Target::start(&static_probe(), &["serve"]);
    // Answered once, the target is past exec (the kernel maps the vDSO late in exec, after
    // the point where spawn returns).
    assert_eq!(t.offset_ms("clock_gettime"), 0);
    apply(t.pid(), &ClockSetting::strobe_ms(0, 2_000, 20), 1).unwrap();
    let seen: Vec<i64> = t
        .ask("watch 300")
        .keys()
        .map(|k| k.parse().unwrap())
        .collect();
    assert_eq!(seen, vec![0, 2_000]);
    reset(t.pid(), 2).unwrap();
    let seen: Vec<String> = t.ask("watch 100").into_keys().collect();
    assert_eq!(seen, vec!["0".to_string()]);
}

#[test]
fn a_go_program_with_busy_threads_follows_bumps_and_reset() {
    let Some(go) = go_probe() else { return };
    let mut t = Target::start(&go, &[]);
    assert_eq!(t.offset_ms("time_now"), 0);
    assert!(is_go_binary(t.pid()).unwrap());
    let r = apply(t.pid(), &offset(HOUR_MS), 10).unwrap();
    assert!(
        r.threads > 1,
        "every thread of the Go runtime is stopped: {r}"
    );
    assert_eq!(t.offset_ms("time_now"), HOUR_MS);
    apply(t.pid(), &offset(-HOUR_MS), 11).unwrap();
    assert_eq!(t.offset_ms("time_now"), -HOUR_MS);
    // Several cycles while four goroutines keep reading the clock: none may crash.
    for gen in 0..5u64 {
        reset(t.pid(), 20 + 2 * gen).unwrap();
        assert_eq!(t.offset_ms("time_now"), 0);
        apply(t.pid(), &offset(7_000), 21 + 2 * gen).unwrap();
        assert_eq!(t.offset_ms("time_now"), 7_000);
    }
    reset(t.pid(), 40).unwrap();
    assert_eq!(t.offset_ms("time_now"), 0);
    assert!(
        t.child.try_wait().unwrap().is_none(),
        "the target still runs"
    );
}

#[test]
fn a_missing_process_is_a_clear_error() {
    let e = apply(i32::MAX, &offset(1), 1).unwrap_err();
    assert!(format!("{e:#}").contains(&i32::MAX.to_string()), "{e:#}");
}
