//! What one shard of a matrix records in its store, so that `faultline merge` can put the
//! shards back together: `<store>/faultline-shard-K-of-N.json`.
//!
//! Design decisions:
//! - The manifest holds the whole matrix's plan (every run, its seed and the shard that owns
//!   it), not just this shard's part. Any one shard therefore tells the merge what the others
//!   should have run, so a shard whose store never arrived is named with the runs it owned.
//! - The shard's runs are stored as judged ([`MatrixRun`], results included), with their run
//!   folders relative to the store: a store travels between machines as a CI artifact, and a
//!   merge must reach the same verdicts without re-reading or re-checking anything.
//! - A top-level file, not a hidden one: CI artifact uploads commonly drop hidden files, and the
//!   store's scanners only look at folders, so the file never looks like a run.

use super::MatrixRun;
use crate::results::write_atomic;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The manifest format this build writes and reads.
pub const SHARD_FORMAT: u32 = 1;
/// Manifests read from one store (a store normally holds one).
pub const SHARD_MANIFESTS_PER_STORE_MAX: usize = 1000;

/// One planned run of the whole matrix and the shard that owns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedRun {
    /// The plan's name, or the plan file when it does not load (an `error` row).
    pub plan: String,
    pub attempt: u32,
    pub seed: Option<u64>,
    /// 1-based.
    pub shard: u32,
    /// What the split balanced on: time limit plus the system's typical start and check time.
    pub expected_s: f64,
}

/// `faultline-shard-K-of-N.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardManifest {
    pub format: u32,
    /// The faultline that ran the shard (`CARGO_PKG_VERSION`).
    pub faultline_version: String,
    /// The base image the runs' containers came from (its recipe hash).
    pub image: String,
    pub master_seed: u64,
    /// 1-based index of this shard.
    pub shard: u32,
    /// How many shards the matrix was split into.
    pub shards: u32,
    pub test_count: u32,
    /// The plan patterns, as given (the Markdown summary's title).
    pub title: String,
    /// The command that reruns the whole matrix unsharded, with the same seeds.
    pub matrix_command: String,
    /// The whole matrix, in the order an unsharded run goes (bad plan files first, then rounds).
    pub planned: Vec<PlannedRun>,
    /// This shard's runs in the order they ran; run folders relative to the store.
    pub runs: Vec<MatrixRun>,
    pub notes: Vec<String>,
    pub elapsed_s: f64,
}

impl ShardManifest {
    /// `faultline-shard-K-of-N.json`.
    pub fn file_name(shard: u32, shards: u32) -> String {
        format!("faultline-shard-{shard}-of-{shards}.json")
    }

    /// `K/N`.
    pub fn label(&self) -> String {
        format!("{}/{}", self.shard, self.shards)
    }

    /// Writes the manifest into `store`, with every run folder and report path made relative to
    /// it (a path outside the store is kept as it is).
    pub fn write(&self, store: &Path) -> Result<PathBuf> {
        let mut m = self.clone();
        for run in &mut m.runs {
            run.run_dir = run.run_dir.take().map(|p| relative_to(&p, store));
            run.report = run.report.take().map(|p| relative_to(&p, store));
        }
        let path = store.join(Self::file_name(self.shard, self.shards));
        let mut text = serde_json::to_string_pretty(&m).context("serialising")?;
        text.push('\n');
        write_atomic(&path, text.as_bytes())?;
        Ok(path)
    }

    /// Reads one manifest; errors name the file.
    pub fn read(path: &Path) -> Result<ShardManifest> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        let m: ShardManifest = serde_json::from_str(&text).with_context(|| {
            format!(
                "{}: not a faultline shard manifest (written by `faultline test-all --shard K/N --store DIR`)",
                path.display()
            )
        })?;
        if m.format != SHARD_FORMAT {
            bail!(
                "{}: manifest format {} (this faultline reads format {SHARD_FORMAT})",
                path.display(),
                m.format
            );
        }
        if m.shard == 0 || m.shard > m.shards {
            bail!(
                "{}: shard {}/{} is not a shard (expected 1 <= K <= N)",
                path.display(),
                m.shard,
                m.shards
            );
        }
        Ok(m)
    }

    /// Every manifest at the top of `store`, sorted by file name.
    pub fn find(store: &Path) -> Result<Vec<PathBuf>> {
        if !store.is_dir() {
            bail!(
                "{}: not a directory (expected the store of a test-all shard)",
                store.display()
            );
        }
        let mut found = Vec::new();
        for entry in
            std::fs::read_dir(store).with_context(|| format!("{}: cannot list", store.display()))?
        {
            let entry = entry.with_context(|| format!("{}: cannot list", store.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("faultline-shard-") && name.ends_with(".json") {
                found.push(entry.path());
                if found.len() > SHARD_MANIFESTS_PER_STORE_MAX {
                    bail!(
                        "{}: more than {SHARD_MANIFESTS_PER_STORE_MAX} shard manifests",
                        store.display()
                    );
                }
            }
        }
        found.sort();
        Ok(found)
    }
}

fn relative_to(path: &Path, store: &Path) -> PathBuf {
    path.strip_prefix(store)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    fn manifest(shard: u32, shards: u32) -> ShardManifest {
        ShardManifest {
            format: SHARD_FORMAT,
            faultline_version: "0.1.0".into(),
            image: "faultline/base:x".into(),
            master_seed: 7,
            shard,
            shards,
            test_count: 2,
            title: "plans/*.toml".into(),
            matrix_command: "faultline test-all --seed 7".into(),
            planned: vec![],
            runs: matrix(),
            notes: vec![],
            elapsed_s: 1.0,
        }
    }

    #[test]
    fn a_manifest_round_trips_with_run_folders_relative_to_the_store() {
        let store = tempfile::tempdir().unwrap();
        let mut m = manifest(2, 3);
        m.runs[0].run_dir = Some(store.path().join("good/t1"));
        let path = m.write(store.path()).unwrap();
        assert!(path.ends_with("faultline-shard-2-of-3.json"));
        assert_eq!(
            ShardManifest::find(store.path()).unwrap(),
            vec![path.clone()]
        );
        let back = ShardManifest::read(&path).unwrap();
        assert_eq!(back.runs[0].run_dir, Some(PathBuf::from("good/t1")));
        assert_eq!(back.runs[1..], m.runs[1..]);
        assert_eq!(back.label(), "2/3");
    }

    #[test]
    fn a_malformed_manifest_another_format_or_an_impossible_shard_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let refusal = |m: Option<ShardManifest>| {
            let path = dir.path().join("faultline-shard-x.json");
            match m {
                Some(m) => std::fs::write(&path, serde_json::to_string(&m).unwrap()).unwrap(),
                None => std::fs::write(&path, "{\"format\": 1}").unwrap(),
            }
            format!("{:#}", ShardManifest::read(&path).unwrap_err())
        };
        assert!(refusal(None).contains("not a faultline shard manifest"));
        let mut other = manifest(1, 2);
        other.format = 2;
        assert!(refusal(Some(other)).contains("manifest format 2"));
        assert!(refusal(Some(manifest(4, 3))).contains("shard 4/3 is not a shard"));
    }
}
