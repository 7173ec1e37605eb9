//! Durability: one write-ahead log per node, JSON Lines, replayed at start.
//!
//! Every change a node acknowledges is first a [`Record`] appended here (and fsynced), so that a
//! `kill -9` and restart loses nothing the correct code acknowledged; the crash bugs are exactly
//! the places where the code acknowledges or acts before the record is written. Without a data
//! directory the log is skipped and the node is memory-only (a restart starts empty).
//!
//! Every append first waits the configured storage latency, with or without a data directory.
//! That wait is the window every check-then-act bug needs: the correct code holds its lock across
//! it, the buggy code lets go, so the races are reproducible rather than left to scheduling luck.
//!
//! A torn last line (a crash mid-write) is ignored at replay; a corrupt line elsewhere is an
//! error naming the file and line.

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// One durable change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "r", rename_all = "kebab-case")]
pub enum Record {
    /// The replica's promise: highest epoch seen and whom it voted for in it.
    KvEpoch {
        epoch: u64,
        voted_for: Option<String>,
    },
    KvPut {
        key: String,
        value: Value,
        epoch: u64,
        seq: u64,
    },
    /// A key the primary's catch-up says was never committed (see `kv::on_catch_up`).
    KvDelete {
        key: String,
    },
    /// A message appended to a partition; `outbox_seq` marks the outbox row it came from as
    /// dispatched in the same record (publish and mark are atomic).
    Produce {
        topic: String,
        partition: u32,
        offset: u64,
        id: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outbox_seq: Option<u64>,
    },
    Ack {
        topic: String,
        group: String,
        partition: u32,
        offset: u64,
    },
    DeadLetter {
        topic: String,
        group: String,
        partition: u32,
        offset: u64,
    },
    CommitOffset {
        topic: String,
        group: String,
        partition: u32,
        offset: u64,
    },
    OutboxRow {
        seq: u64,
        id: Value,
    },
    /// Outbox rows removed without a publish in the same record.
    OutboxMarked {
        seqs: Vec<u64>,
    },
    Idempotent {
        key: String,
        response: Value,
    },
    MemberAdded {
        group: String,
        member: Value,
    },
    MemberLeft {
        group: String,
        member: Value,
    },
    Created {
        id: String,
    },
    Appended {
        stream: String,
        event: Value,
    },
    TaskCompleted {
        task: String,
    },
}

/// The write-ahead log (or its absence) plus the simulated storage latency.
pub struct Store {
    file: Option<Mutex<std::fs::File>>,
    path: Option<PathBuf>,
    latency: Duration,
}

impl Store {
    /// A store that keeps nothing (memory-only node).
    pub fn memory(latency: Duration) -> Store {
        Store {
            file: None,
            path: None,
            latency,
        }
    }

    /// Opens (creating) `dir/wal.jsonl` and returns the records it holds, in order.
    pub fn open(dir: &Path, latency: Duration) -> anyhow::Result<(Store, Vec<Record>)> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create data dir {}", dir.display()))?;
        let path = dir.join("wal.jsonl");
        let records = if path.exists() {
            read_records(&path)?
        } else {
            Vec::new()
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok((
            Store {
                file: Some(Mutex::new(file)),
                path: Some(path),
                latency,
            },
            records,
        ))
    }

    /// Waits the storage latency, then appends and syncs `rec`. Once this returns `Ok` the
    /// change survives a crash.
    pub async fn persist(&self, rec: &Record) -> anyhow::Result<()> {
        self.persist_all(std::slice::from_ref(rec)).await
    }

    /// [`Store::persist`] for several records, written together.
    pub async fn persist_all(&self, recs: &[Record]) -> anyhow::Result<()> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let Some(file) = &self.file else {
            return Ok(());
        };
        let mut buf = Vec::new();
        for r in recs {
            serde_json::to_writer(&mut buf, r).expect("records serialize");
            buf.push(b'\n');
        }
        let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
        f.write_all(&buf)
            .and_then(|_| f.sync_data())
            .with_context(|| format!("cannot write {}", self.path_text()))
    }

    fn path_text(&self) -> String {
        self.path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }
}

fn read_records(path: &Path) -> anyhow::Result<Vec<Record>> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let lines: Vec<String> = std::io::BufReader::new(f)
        .lines()
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(line) {
            Ok(r) => out.push(r),
            // A crash mid-append leaves a torn last line: it was never acknowledged.
            Err(_) if i + 1 == lines.len() => break,
            Err(e) => anyhow::bail!("{}: line {}: corrupt record: {e}", path.display(), i + 1),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn records_survive_a_reopen_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (s, recs) = Store::open(dir.path(), Duration::ZERO).unwrap();
        assert!(recs.is_empty());
        let a = Record::Created { id: "a".into() };
        let b = Record::OutboxRow {
            seq: 1,
            id: json!(7),
        };
        s.persist(&a).await.unwrap();
        s.persist(&b).await.unwrap();
        drop(s);
        let path = dir.path().join("wal.jsonl");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"r\":\"created\",\"i");
        std::fs::write(&path, &text).unwrap();
        let (_, recs) = Store::open(dir.path(), Duration::ZERO).unwrap();
        assert_eq!(recs, vec![a, b]);
    }

    #[test]
    fn a_corrupt_middle_line_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("wal.jsonl"),
            "garbage\n{\"r\":\"created\",\"id\":\"a\"}\n",
        )
        .unwrap();
        let err = Store::open(dir.path(), Duration::ZERO)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("line 1"), "{err}");
    }
}
