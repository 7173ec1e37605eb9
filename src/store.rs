//! The store: where every run leaves everything it learned.
//!
//! Layout (DESIGN.md): `store/<test>/<timestamp>/` with `history.jsonl` (streamed during the
//! run), `plan.json` (seed, plan, versions: enough to rerun), `results.json`, `faultline.log`,
//! `nodes/<node>.log` and the report. The folder is created before anything starts, so that even
//! a run that dies in set-up leaves a trace of what it tried.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// One run's folder in the store.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub path: PathBuf,
    pub store: PathBuf,
    pub test: String,
    pub timestamp: String,
}

impl RunDir {
    /// Creates `store/<test>/<timestamp>/`; the timestamp is UTC, sortable, and made unique with
    /// a suffix when two runs start in the same second.
    pub fn create(store: &Path, test: &str) -> Result<RunDir> {
        let base = utc_timestamp();
        for attempt in 0..100u32 {
            let timestamp = if attempt == 0 {
                base.clone()
            } else {
                format!("{base}-{attempt}")
            };
            let parent = store.join(test);
            std::fs::create_dir_all(&parent)
                .with_context(|| format!("{}: cannot create the test folder", parent.display()))?;
            let path = parent.join(&timestamp);
            // `create_dir` fails if the folder exists: of two processes that pick one name in
            // the same second, exactly one gets it and the other tries the next suffix.
            match std::fs::create_dir(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("{}: cannot create the run folder", path.display())
                    })
                }
            }
            std::fs::create_dir(path.join("nodes"))
                .with_context(|| format!("{}: cannot create the run folder", path.display()))?;
            return Ok(RunDir {
                path,
                store: store.to_path_buf(),
                test: test.to_string(),
                timestamp,
            });
        }
        anyhow::bail!(
            "{}: 100 runs started in the same second; refusing to make another folder",
            store.join(test).display()
        )
    }

    pub fn history(&self) -> PathBuf {
        self.path.join("history.jsonl")
    }
    pub fn plan(&self) -> PathBuf {
        self.path.join("plan.json")
    }
    pub fn results(&self) -> PathBuf {
        self.path.join("results.json")
    }
    pub fn log(&self) -> PathBuf {
        self.path.join("faultline.log")
    }
    pub fn nodes(&self) -> PathBuf {
        self.path.join("nodes")
    }

    /// Writes `value` as pretty JSON to `name` in the run folder, atomically (temp + rename).
    pub fn write_json(&self, name: &str, value: &impl serde::Serialize) -> Result<PathBuf> {
        let path = self.path.join(name);
        let tmp = self.path.join(format!(".{name}.partial"));
        let text = serde_json::to_vec_pretty(value).context("serialising")?;
        std::fs::write(&tmp, text).with_context(|| format!("{}: cannot write", tmp.display()))?;
        std::fs::rename(&tmp, &path)
            .with_context(|| format!("{}: cannot move into place", path.display()))?;
        Ok(path)
    }
}

/// `YYYYMMDDTHHMMSSZ` in UTC, from the system clock (names only; never used for measurements).
pub fn utc_timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}{mo:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// RFC 3339 UTC time of now, for results.json.
pub fn utc_rfc3339() -> String {
    let t = utc_timestamp();
    format!(
        "{}-{}-{}T{}:{}:{}Z",
        &t[0..4],
        &t[4..6],
        &t[6..8],
        &t[9..11],
        &t[11..13],
        &t[13..15]
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's method).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(20_513), (2026, 3, 1));
    }

    #[test]
    fn run_folders_are_unique_within_a_second() {
        let store = std::env::temp_dir().join(format!("faultline-store-{}", std::process::id()));
        let a = RunDir::create(&store, "t").unwrap();
        let b = RunDir::create(&store, "t").unwrap();
        assert_ne!(a.path, b.path);
        assert!(a.nodes().is_dir());
        a.write_json("x.json", &serde_json::json!({"k": 1}))
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(a.path.join("x.json")).unwrap(),
            "{\n  \"k\": 1\n}"
        );
        std::fs::remove_dir_all(&store).unwrap();
    }

    #[test]
    fn runs_started_at_once_never_share_a_folder() {
        let store = std::env::temp_dir().join(format!("faultline-race-{}", std::process::id()));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || RunDir::create(&store, "t").unwrap().path)
            })
            .collect();
        let paths: std::collections::HashSet<PathBuf> =
            threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(paths.len(), 8);
        std::fs::remove_dir_all(&store).unwrap();
    }
}
