//! The one rule for a test whose prerequisite may be missing on this machine (Docker, the base
//! image, a server binary such as etcd or redis-server, Chromium), shared by every crate's tests
//! (each includes this file with `#[path]`).
//!
//! - Under CI (the `CI` variable set to anything but empty, `0` or `false`: GitHub Actions and
//!   most CI services set `CI=true`) a missing prerequisite fails the test: CI installs
//!   everything, so a missing piece is a broken pipeline, never a reason to pass.
//! - Elsewhere the test is skipped: it prints `SKIPPED <test>: <reason>` and, when
//!   `FAULTLINE_SKIP_LOG` names a file, appends `<reason>\t<test>` to it, so `scripts/test.sh`
//!   ends with one line counting the skipped tests by reason (nextest hides a passing test's
//!   output, so the file, not stderr, is what gets counted).
//!
//! A skipping test calls [`skip`] and returns; nothing else may return early for a missing
//! prerequisite.

#![allow(dead_code)] // each test file uses what it needs

use std::io::Write as _;

/// Whether this is a CI run.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| {
        let v = v.trim().to_ascii_lowercase();
        !v.is_empty() && v != "0" && v != "false"
    })
}

/// Skips the calling test because `reason` (a short phrase the summary groups by, e.g.
/// "no Docker daemon"; `detail` says more): a panic under CI, else `None` after saying so.
pub fn skip<T>(reason: &str, detail: &str) -> Option<T> {
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    let detail = if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    };
    if in_ci() {
        panic!("{test}: CI is set but {reason}{detail}: CI must provide it");
    }
    eprintln!("SKIPPED {test}: {reason}{detail}");
    if let Some(path) = std::env::var_os("FAULTLINE_SKIP_LOG") {
        let line = format!("{}\t{test}\n", reason.replace(['\t', '\n'], " "));
        // One short write with O_APPEND: concurrent test processes do not interleave lines.
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            eprintln!("cannot record the skip in {}: {e}", path.to_string_lossy());
        }
    }
    None
}
