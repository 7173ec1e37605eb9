//! The clock shim on the host, without Docker: a small C program (tests/clockprobe.c) compares
//! the libc clock functions, preloaded with the embedded shim, against the kernel's clocks read
//! by raw system call. The host clock is never changed: the offset exists only in the child.

use nemeses::clock::{control_file, ClockSetting, LINE_LEN, SHIM_SO};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Rig {
    dir: PathBuf,
    probe: PathBuf,
    shim: PathBuf,
}

/// A temporary directory holding the shim, the compiled probe and the control directory.
fn rig(name: &str) -> Rig {
    let dir =
        std::env::temp_dir().join(format!("faultline-clockshim-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("clock")).unwrap();
    let shim = dir.join("libfaultline_clock.so");
    fs::write(&shim, SHIM_SO).unwrap();
    let probe = dir.join("clockprobe");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clockprobe.c");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let st = Command::new(&cc)
        .args(["-O2", "-o"])
        .arg(&probe)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cc} to build the clock probe: {e}"));
    assert!(st.success(), "compiling {}", src.display());
    Rig { dir, probe, shim }
}

impl Rig {
    fn set(&self, gen: u64, setting: ClockSetting) {
        let path = self.dir.join("clock/offset");
        let content = control_file(gen, &setting);
        if path.exists() {
            // In place, as the controller does: the file is mapped by running processes.
            let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.write_all_at(content.as_bytes(), 0).unwrap();
        } else {
            fs::write(&path, content).unwrap();
        }
    }

    fn probe(&self, args: &[&str]) -> String {
        let child = Command::new(&self.probe)
            .args(args)
            .env("LD_PRELOAD", &self.shim)
            .env("FAULTLINE_CLOCK_DIR", self.dir.join("clock"))
            .output()
            .unwrap();
        assert!(
            child.status.success(),
            "{}",
            String::from_utf8_lossy(&child.stderr)
        );
        String::from_utf8(child.stdout).unwrap()
    }

    /// `name -> value` from `clockprobe once`.
    fn once(&self) -> BTreeMap<String, String> {
        self.probe(&["once"])
            .lines()
            .map(|l| {
                let (k, v) = l.split_once(' ').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    /// offset_ms -> samples, from `clockprobe watch MS`.
    fn watch(&self, ms: u64) -> BTreeMap<i64, u64> {
        self.probe(&["watch", &ms.to_string()])
            .lines()
            .map(|l| {
                let (k, v) = l.split_once(' ').unwrap();
                (k.parse().unwrap(), v.parse().unwrap())
            })
            .collect()
    }

    fn acks(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.dir.join("clock"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("ack."))
            .map(|n| {
                fs::read_to_string(self.dir.join("clock").join(n))
                    .unwrap()
                    .trim()
                    .to_string()
            })
            .collect();
        v.sort();
        v
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn expect(once: &BTreeMap<String, String>, spec: &str) {
    let want: BTreeMap<String, String> = spec
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    assert_eq!(once, &want);
}

#[test]
fn every_realtime_function_is_shifted_and_monotonic_is_not() {
    let r = rig("once");
    r.set(42, ClockSetting::offset_ms(3_600_000));
    expect(
        &r.once(),
        "clock_gettime 3600000
         realtime_coarse 3600000
         gettimeofday 3600000
         time_s 3600
         timespec_get 3600000
         monotonic 0
         bad_clock -1 EINVAL",
    );
    assert_eq!(
        r.acks(),
        vec!["42"],
        "the process acknowledged generation 42"
    );

    r.set(43, ClockSetting::offset_ms(-90_000));
    assert_eq!(r.once()["clock_gettime"], "-90000");
}

#[test]
fn without_a_control_file_the_clock_is_real_and_nothing_is_acknowledged() {
    let r = rig("absent");
    expect(
        &r.once(),
        "clock_gettime 0
         realtime_coarse 0
         gettimeofday 0
         time_s 0
         timespec_get 0
         monotonic 0
         bad_clock -1 EINVAL",
    );
    assert!(r.acks().is_empty());
}

#[test]
fn a_malformed_control_file_is_ignored() {
    let r = rig("malformed");
    let mut bad = control_file(5, &ClockSetting::offset_ms(7_000)).into_bytes();
    bad[40] = b'1'; // a digit of the offset changed: the hash no longer matches
    assert_eq!(bad.len(), LINE_LEN);
    fs::write(r.dir.join("clock/offset"), &bad).unwrap();
    assert_eq!(r.once()["clock_gettime"], "0");
    fs::write(r.dir.join("clock/offset"), b"FLCLK1 short").unwrap();
    assert_eq!(r.once()["clock_gettime"], "0");
}

#[test]
fn rewrites_in_place_are_seen_live_and_never_torn() {
    let r = rig("live");
    r.set(1, ClockSetting::offset_ms(5_000));
    let dir = r.dir.clone();
    let writer = std::thread::spawn(move || {
        let f = fs::OpenOptions::new()
            .write(true)
            .open(dir.join("clock/offset"))
            .unwrap();
        let start = std::time::Instant::now();
        let mut gen = 2;
        // Alternate two offsets as fast as possible for a while, in place.
        while start.elapsed() < std::time::Duration::from_millis(800) {
            let off = if gen % 2 == 0 { -7_000 } else { 5_000 };
            f.write_all_at(
                control_file(gen, &ClockSetting::offset_ms(off)).as_bytes(),
                0,
            )
            .unwrap();
            gen += 1;
        }
    });
    let seen = r.watch(1_000);
    writer.join().unwrap();
    let offsets: Vec<i64> = seen.keys().copied().collect();
    assert_eq!(
        offsets,
        vec![-7_000, 5_000],
        "only whole values are ever used: {seen:?}"
    );
}

#[test]
fn a_strobe_alternates_between_two_offsets() {
    let r = rig("strobe");
    r.set(9, ClockSetting::strobe_ms(1_000, 2_000, 20));
    let seen = r.watch(400);
    let offsets: Vec<i64> = seen.keys().copied().collect();
    assert_eq!(offsets, vec![1_000, 3_000], "{seen:?}");
    let (a, b) = (seen[&1_000] as f64, seen[&3_000] as f64);
    assert!(
        a / (a + b) > 0.25 && a / (a + b) < 0.75,
        "about half each: {seen:?}"
    );
}
