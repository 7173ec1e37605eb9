//! The store's front page (`store/index.html`) and the `store/latest` link.
//!
//! A store is `store/<test>/<timestamp>/`; a run directory is any such directory holding a
//! `results.json` or a `history.jsonl` (a killed run keeps its history but has no results, and
//! is listed as incomplete rather than hidden). Runs are ordered newest first by `started_at`
//! from `results.json` when it parses as RFC 3339, else by the modification time of the run's
//! files: directory names are not trusted to sort. `latest` is a relative symlink, replaced
//! atomically (a new link renamed over the old), so a reader never finds it missing.

use crate::escape::{push_html, url_segment};
use crate::html::{head, verdict_badge};
use crate::results::{write_atomic, RunResults, HISTORY_FILE, INDEX_FILE, RESULTS_FILE};
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// Name of the link to the newest run, inside the store.
pub const LATEST_LINK: &str = "latest";

/// One run found in a store.
#[derive(Debug, Clone)]
pub struct StoreRun {
    pub test: String,
    pub timestamp: String,
    pub dir: PathBuf,
    /// The run's results, or why they could not be read (e.g. a run still going or killed).
    pub results: std::result::Result<RunResults, String>,
    /// Nanoseconds since the Unix epoch: when the run started (or its files last changed).
    pub sort_key_ns: i128,
}

/// What [`render_store_index`] wrote.
#[derive(Debug, Clone)]
pub struct StoreIndex {
    pub index: PathBuf,
    /// The run `latest` now points to; `None` for an empty store.
    pub latest: Option<PathBuf>,
    pub runs: usize,
}

/// All runs of a store, newest first.
pub fn scan_store(store: &Path) -> Result<Vec<StoreRun>> {
    let mut runs = Vec::new();
    for test in read_dirs(store)? {
        let test_name = file_name(&test);
        if test_name == LATEST_LINK || test_name.starts_with('.') {
            continue;
        }
        for run in read_dirs(&test)? {
            let results_path = run.join(RESULTS_FILE);
            let history_path = run.join(HISTORY_FILE);
            if !results_path.is_file() && !history_path.is_file() {
                continue;
            }
            let results = if results_path.is_file() {
                RunResults::read(&results_path).map_err(|e| format!("{e:#}"))
            } else {
                Err(format!("no {RESULTS_FILE}: the run is still going, or was stopped before its checkers ran"))
            };
            let started = results
                .as_ref()
                .ok()
                .and_then(|r| r.started_at.as_deref())
                .and_then(parse_rfc3339_ns);
            let sort_key_ns = match started {
                Some(ns) => ns,
                None => newest_mtime_ns(&[&results_path, &history_path, &run]),
            };
            runs.push(StoreRun {
                test: test_name.clone(),
                timestamp: file_name(&run),
                dir: run,
                results,
                sort_key_ns,
            });
        }
    }
    runs.sort_by(|a, b| {
        b.sort_key_ns
            .cmp(&a.sort_key_ns)
            .then_with(|| b.dir.cmp(&a.dir))
    });
    Ok(runs)
}

/// Real directories in `dir` (symlinks are not followed), sorted by name.
fn read_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("{}: cannot list", dir.display()))?
    {
        let entry = entry.with_context(|| format!("{}: cannot list", dir.display()))?;
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn parse_rfc3339_ns(s: &str) -> Option<i128> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp_nanos())
}

fn newest_mtime_ns(paths: &[&Path]) -> i128 {
    paths
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok()?.modified().ok())
        .filter_map(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i128)
        .max()
        .unwrap_or(0)
}

/// Writes `store/index.html` listing every run, newest first, and points `store/latest` at the
/// newest run that has a history (a run stopped while its cluster started has none, and is
/// listed but never `latest`).
pub fn render_store_index(store: &Path) -> Result<StoreIndex> {
    if !store.is_dir() {
        bail!(
            "{}: not a directory (expected a faultline store)",
            store.display()
        );
    }
    let runs = scan_store(store)?;
    let page = store_page(store, &runs);
    let index = store.join(INDEX_FILE);
    write_atomic(&index, page.as_bytes())?;
    // The page the index links to, kept current with every run (test-all renders it too).
    crate::matrix::render_plans_page(store)?;
    let latest = match runs.iter().find(|r| r.dir.join(HISTORY_FILE).is_file()) {
        Some(newest) => {
            point_latest(store, &newest.test, &newest.timestamp)?;
            Some(newest.dir.clone())
        }
        None => None,
    };
    Ok(StoreIndex {
        index,
        latest,
        runs: runs.len(),
    })
}

/// Points `store/latest` at `store/<test>/<timestamp>` (a run calls this as soon as its history
/// exists, so the link is right even if the controller is then killed).
#[cfg(unix)]
pub fn point_latest(store: &Path, test: &str, timestamp: &str) -> Result<()> {
    let link = store.join(LATEST_LINK);
    if let Ok(meta) = std::fs::symlink_metadata(&link) {
        if !meta.file_type().is_symlink() {
            bail!(
                "{}: exists and is not a symlink; not replacing it",
                link.display()
            );
        }
    }
    let target = Path::new(test).join(timestamp);
    // A temporary name of this process's own: two runs moving the link at once never collide.
    let tmp = store.join(format!(".{LATEST_LINK}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&target, &tmp)
        .with_context(|| format!("{}: cannot create symlink", tmp.display()))?;
    std::fs::rename(&tmp, &link)
        .with_context(|| format!("{}: cannot replace with {}", link.display(), tmp.display()))
}

#[cfg(not(unix))]
pub fn point_latest(store: &Path, test: &str, timestamp: &str) -> Result<()> {
    // No portable atomic symlink: write the newest run's relative path into a file instead.
    let target = format!("{test}/{timestamp}\n");
    write_atomic(&store.join(LATEST_LINK), target.as_bytes())
}

fn store_page(store: &Path, runs: &[StoreRun]) -> String {
    let mut out = String::with_capacity(4096 + runs.len() * 600);
    head(
        &mut out,
        "faultline runs",
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; form-action 'none'",
    );
    out.push_str("<body>\n<main>\n<h1>faultline runs</h1>\n<p class=\"note\">Store ");
    push_html(&mut out, &store.display().to_string());
    let count = |v: Option<checkers::Verdict>| {
        runs.iter()
            .filter(|r| r.results.as_ref().ok().map(|r| r.verdict) == v)
            .count()
    };
    let _ = writeln!(
        out,
        ": {} runs, newest first ({} valid, {} invalid, {} unknown, {} without results).</p>",
        runs.len(),
        count(Some(checkers::Verdict::Valid)),
        count(Some(checkers::Verdict::Invalid)),
        count(Some(checkers::Verdict::Unknown)),
        count(None),
    );
    let _ = writeln!(
        out,
        "<p><a href=\"{}\">Runs grouped by plan, with pass rates over time</a></p>",
        crate::matrix::PLANS_PAGE
    );
    if runs.is_empty() {
        out.push_str("<p>No runs yet.</p>\n");
    } else {
        out.push_str("<table id=\"runs\">\n<tr><th>started</th><th>test</th><th>verdict</th><th>checkers</th><th>seed</th><th>run</th></tr>\n");
        for run in runs {
            out.push_str("<tr class=\"run\"><td>");
            match run
                .results
                .as_ref()
                .ok()
                .and_then(|r| r.started_at.as_deref())
            {
                Some(s) => push_html(&mut out, s),
                None => out.push_str("<span class=\"note\">not recorded</span>"),
            }
            out.push_str("</td><td>");
            push_html(&mut out, &run.test);
            out.push_str("</td><td>");
            match &run.results {
                Ok(r) => verdict_badge(&mut out, r.verdict),
                Err(_) => out.push_str("<span class=\"verdict v-none\">no results</span>"),
            }
            out.push_str("</td><td class=\"wrap\">");
            match &run.results {
                Ok(r) => {
                    for (i, c) in r.results.iter().enumerate() {
                        if i > 0 {
                            out.push_str(", ");
                        }
                        push_html(&mut out, &c.checker);
                        let _ = write!(out, " {}", c.verdict);
                        match c.anomalies.len() {
                            0 => {}
                            1 => out.push_str(" (1 anomaly)"),
                            n => {
                                let _ = write!(out, " ({n} anomalies)");
                            }
                        }
                    }
                }
                Err(why) => {
                    out.push_str("<span class=\"note\">");
                    push_html(&mut out, why);
                    out.push_str("</span>");
                }
            }
            out.push_str("</td><td>");
            if let Some(seed) = run.results.as_ref().ok().and_then(|r| r.seed) {
                let _ = write!(out, "<code>{seed}</code>");
            }
            out.push_str("</td><td>");
            let href = format!(
                "{}/{}/",
                url_segment(&run.test),
                url_segment(&run.timestamp)
            );
            let has_report = run.dir.join(INDEX_FILE).is_file();
            out.push_str("<a href=\"");
            push_html(&mut out, &href);
            if has_report {
                out.push_str(INDEX_FILE);
            }
            out.push_str("\">");
            push_html(&mut out, &run.timestamp);
            out.push_str("</a>");
            if !has_report {
                out.push_str(" <span class=\"note\">(no report)</span>");
            }
            out.push_str("</td></tr>\n");
        }
        out.push_str("</table>\n");
    }
    out.push_str("</main>\n</body>\n</html>\n");
    out
}
