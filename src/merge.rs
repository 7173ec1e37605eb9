//! `faultline merge STORE... --into DIR`: the stores of a sharded `test-all` (CI artifacts,
//! one per shard job) become one store with one index page, one plans page, one JUnit file, one
//! Markdown summary and one exit code, as if the matrix had run on one machine.
//!
//! Design decisions:
//! - Manifest-driven: a shard's store holds `faultline-shard-K-of-N.json`
//!   ([`reports::matrix::shard`]) with the whole matrix's plan and its own runs as judged. The
//!   merge walks the plan in the unsharded order and takes each run from the shard that owned
//!   it, so the merged table, JUnit and summary list the same runs, seeds and verdicts in the
//!   same order as an unsharded `test-all --seed S`. Nothing is re-checked; only the run folders
//!   the manifests list are copied, so older runs in a reused store stay out.
//! - Shards that do not belong together are refused: a different master seed, faultline
//!   version or base image, a different number of shards or a different plan of the matrix
//!   (other plan files). `--allow-mixed` merges them anyway, each matrix checked for its own
//!   missing shards. The same shard twice is always refused: its runs would count twice.
//! - A missing shard (its job died, its artifact was not downloaded) is named, and each run it
//!   owned is an `error` row: the matrix learned nothing about those runs, and a CI job must not
//!   go green because an artifact went missing. The exit code is then test-all's rule applied to
//!   the merged rows (1 if anything is invalid, else 3).
//! - The target may already be a store (e.g. the store of earlier nights restored from a cache):
//!   run folders are added beside the old ones (a name taken gets a `-N` suffix) and the pages
//!   are rendered from the whole store, so the plans page keeps its history.

use anyhow::{bail, Context, Result};
use reports::matrix::shard::{PlannedRun, ShardManifest};
use reports::matrix::{self, MatrixContext, MatrixRun, MatrixStatus};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// The JUnit file the merge writes into the target store.
pub const MERGED_JUNIT: &str = "junit.xml";
/// The Markdown summary the merge writes into the target store.
pub const MERGED_SUMMARY: &str = "summary.md";
/// Deepest folder nesting copied from a run folder (a run folder is two levels deep).
const COPY_DEPTH_MAX: usize = 16;
/// Name suffixes tried when a run folder's name is taken in the target.
const RENAME_ATTEMPTS_MAX: u32 = 100;

/// What `faultline merge` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct MergeOptions {
    pub stores: Vec<PathBuf>,
    pub into: PathBuf,
    /// Merge stores of different master seeds, versions or matrices.
    pub allow_mixed: bool,
    /// Also write the JUnit file here.
    pub junit: Option<PathBuf>,
    /// Also append the Markdown summary here (e.g. `$GITHUB_STEP_SUMMARY`).
    pub summary_md: Option<PathBuf>,
}

/// What a merge produced.
#[derive(Debug, Clone)]
pub struct MergeOutcome {
    /// The merged runs, in the unsharded order.
    pub runs: Vec<MatrixRun>,
    pub exit_code: i32,
    pub table: String,
    /// `K/N` of each shard that no store held.
    pub missing: Vec<String>,
    pub notes: Vec<String>,
    /// `DIR/index.html`, `DIR/plans.html`, `DIR/junit.xml`, `DIR/summary.md`.
    pub files: Vec<PathBuf>,
    /// The longest shard's time (the matrix's wall time when the shards ran in parallel).
    pub longest_shard_s: f64,
}

/// One manifest and the store it came from.
#[derive(Debug, Clone)]
struct Loaded {
    store: PathBuf,
    path: PathBuf,
    manifest: ShardManifest,
}

/// Merges the stores (see the module documentation). Errors (exit 3) for a store without a
/// manifest, shards that do not belong together, the same shard twice, or a copy that fails.
pub fn merge(opts: &MergeOptions) -> Result<MergeOutcome> {
    if opts.stores.is_empty() {
        bail!("merge: no store given; e.g. faultline merge shard-*/ --into merged");
    }
    let loaded = load(&opts.stores)?;
    check_compatible(&loaded, opts.allow_mixed)?;
    let groups = group(&loaded)?;
    let mut runs = Vec::new();
    let mut missing = Vec::new();
    let mut notes = Vec::new();
    for members in &groups {
        let (group_runs, group_missing) = join(members);
        runs.extend(group_runs);
        missing.extend(group_missing);
        for m in members {
            for n in &m.manifest.notes {
                if !notes.contains(n) {
                    notes.push(n.clone());
                }
            }
        }
    }
    for m in &missing {
        notes.push(format!(
            "shard {m} is missing (no store of it was given): its runs are error rows"
        ));
    }
    std::fs::create_dir_all(&opts.into)
        .with_context(|| format!("--into {}: cannot create", opts.into.display()))?;
    copy_runs(&mut runs, &opts.into)?;

    let mut files = Vec::new();
    let index = reports::render_store_index(&opts.into)?;
    files.push(index.index);
    let plans_page = opts.into.join(matrix::PLANS_PAGE);
    files.push(plans_page.clone());
    let first = &groups[0][0].manifest;
    let ctx = MatrixContext {
        title: first.title.clone(),
        master_seed: (groups.len() == 1).then_some(first.master_seed),
        command: (groups.len() == 1).then(|| first.matrix_command.clone()),
        pages: vec![plans_page.display().to_string()],
        notes: notes.clone(),
    };
    let junit = opts.into.join(MERGED_JUNIT);
    matrix::write_junit_matrix(&junit, &runs)?;
    files.push(junit);
    let summary = opts.into.join(MERGED_SUMMARY);
    let _ = std::fs::remove_file(&summary);
    matrix::write_markdown_matrix(&summary, &ctx, &runs)?;
    files.push(summary);

    let mut exit_code = matrix::exit_code(&runs);
    let mut write_errors = Vec::new();
    if let Some(path) = &opts.junit {
        if let Err(e) = matrix::write_junit_matrix(path, &runs) {
            write_errors.push(format!("--junit: {e:#}"));
        }
    }
    if let Some(path) = &opts.summary_md {
        if let Err(e) = matrix::write_markdown_matrix(path, &ctx, &runs) {
            write_errors.push(format!("--summary-md: {e:#}"));
        }
    }
    if !write_errors.is_empty() {
        notes.extend(write_errors);
        if exit_code != 1 {
            exit_code = 3;
        }
    }
    let longest_shard_s = loaded
        .iter()
        .map(|l| l.manifest.elapsed_s)
        .fold(0.0, f64::max);
    Ok(MergeOutcome {
        table: matrix::text_table(&runs),
        runs,
        exit_code,
        missing,
        notes,
        files,
        longest_shard_s,
    })
}

/// Every manifest of every store; a store without one is an error naming it.
fn load(stores: &[PathBuf]) -> Result<Vec<Loaded>> {
    let mut loaded = Vec::new();
    for store in stores {
        let found = ShardManifest::find(store)?;
        if found.is_empty() {
            bail!(
                "{}: no shard manifest (faultline-shard-K-of-N.json); a shard's store is written by `faultline test-all --shard K/N --store DIR`",
                store.display()
            );
        }
        for path in found {
            let manifest = ShardManifest::read(&path)?;
            loaded.push(Loaded {
                store: store.clone(),
                path,
                manifest,
            });
        }
    }
    Ok(loaded)
}

/// Refuses manifests that do not come from one matrix, unless `allow_mixed`.
fn check_compatible(loaded: &[Loaded], allow_mixed: bool) -> Result<()> {
    if allow_mixed {
        return Ok(());
    }
    let first = &loaded[0];
    let a = &first.manifest;
    for other in &loaded[1..] {
        let b = &other.manifest;
        let differs = if a.master_seed != b.master_seed {
            Some(format!(
                "master seed {} vs {}",
                b.master_seed, a.master_seed
            ))
        } else if a.faultline_version != b.faultline_version {
            Some(format!(
                "faultline version {} vs {}",
                b.faultline_version, a.faultline_version
            ))
        } else if a.image != b.image {
            Some(format!("base image {} vs {}", b.image, a.image))
        } else if a.shards != b.shards {
            Some(format!("split into {} shards vs {}", b.shards, a.shards))
        } else if a.test_count != b.test_count || a.planned != b.planned {
            Some("a different matrix (other plan files, --test-count or --time-limit-each)".into())
        } else {
            None
        };
        if let Some(what) = differs {
            bail!(
                "merge: {} and {} are not shards of one matrix: {what}; pass --allow-mixed to merge them anyway",
                other.path.display(),
                first.path.display()
            );
        }
    }
    Ok(())
}

/// Manifests grouped by matrix (first appearance order); the same shard twice is an error.
fn group(loaded: &[Loaded]) -> Result<Vec<Vec<&Loaded>>> {
    let mut groups: Vec<(String, Vec<&Loaded>)> = Vec::new();
    for l in loaded {
        let m = &l.manifest;
        let key = serde_json::to_string(&(
            m.master_seed,
            &m.faultline_version,
            &m.image,
            m.shards,
            m.test_count,
            &m.planned,
        ))
        .context("serialising a matrix key")?;
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => {
                if let Some(twin) = members.iter().find(|o| o.manifest.shard == m.shard) {
                    bail!(
                        "merge: shard {} is given twice ({} and {}); its runs would count twice",
                        m.label(),
                        twin.path.display(),
                        l.path.display()
                    );
                }
                members.push(l);
            }
            None => groups.push((key, vec![l])),
        }
    }
    Ok(groups.into_iter().map(|(_, g)| g).collect())
}

/// One matrix's runs in the planned order, each from the shard that owned it (its run folder
/// resolved against that shard's store), and the shards that are missing.
fn join(members: &[&Loaded]) -> (Vec<MatrixRun>, Vec<String>) {
    let m0 = &members[0].manifest;
    let by_shard: BTreeMap<u32, &Loaded> = members.iter().map(|l| (l.manifest.shard, *l)).collect();
    let missing: Vec<String> = (1..=m0.shards)
        .filter(|k| !by_shard.contains_key(k))
        .map(|k| format!("{k}/{}", m0.shards))
        .collect();
    let mut used: HashSet<(u32, usize)> = HashSet::new();
    let mut runs = Vec::new();
    for p in &m0.planned {
        runs.push(match by_shard.get(&p.shard) {
            Some(l) => {
                let found = l
                    .manifest
                    .runs
                    .iter()
                    .enumerate()
                    .find(|(i, r)| {
                        r.plan == p.plan && r.attempt == p.attempt && !used.contains(&(p.shard, *i))
                    });
                match found {
                    Some((i, r)) => {
                        used.insert((p.shard, i));
                        resolved(r, &l.store)
                    }
                    None => error_row(
                        p,
                        format!(
                            "shard {}/{}: its manifest {} does not list this run",
                            p.shard,
                            m0.shards,
                            l.path.display()
                        ),
                    ),
                }
            }
            None => error_row(
                p,
                format!(
                    "shard {}/{} is missing from the merge (its job failed, or its store was not given): this run's result is unknown",
                    p.shard, m0.shards
                ),
            ),
        });
    }
    (runs, missing)
}

fn error_row(p: &PlannedRun, message: String) -> MatrixRun {
    MatrixRun {
        plan: p.plan.clone(),
        attempt: p.attempt,
        seed: p.seed,
        command: None,
        status: MatrixStatus::Error { message },
        elapsed_s: 0.0,
        run_dir: None,
        report: None,
    }
}

/// A manifest's run with its paths resolved against its store.
fn resolved(run: &MatrixRun, store: &Path) -> MatrixRun {
    let mut run = run.clone();
    let abs = |p: PathBuf| if p.is_relative() { store.join(p) } else { p };
    run.run_dir = run.run_dir.take().map(abs);
    run.report = run.report.take().map(abs);
    run
}

/// Copies every run folder into `into` (keeping `<test>/<timestamp>`, renaming on a clash) and
/// points the runs at their copies. A run folder already inside `into` stays where it is.
fn copy_runs(runs: &mut [MatrixRun], into: &Path) -> Result<()> {
    let into_real = into
        .canonicalize()
        .with_context(|| format!("{}: cannot resolve", into.display()))?;
    for run in runs.iter_mut() {
        let Some(src) = run.run_dir.clone() else {
            continue;
        };
        if !src.is_dir() {
            bail!(
                "{}: the run folder of {} {} is not there (was the store copied whole?)",
                src.display(),
                run.plan,
                run.label()
            );
        }
        let src_real = src
            .canonicalize()
            .with_context(|| format!("{}: cannot resolve", src.display()))?;
        if src_real.starts_with(&into_real) {
            continue;
        }
        let test = src_real
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| run.plan.clone());
        let stamp = src_real
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "run".into());
        let dst = free_name(&into.join(&test), &stamp)?;
        copy_tree(&src, &dst, 0)?;
        if let Some(report) = &run.report {
            if let Some(name) = report.file_name() {
                run.report = Some(dst.join(name));
            }
        }
        run.run_dir = Some(dst);
    }
    Ok(())
}

/// `dir/name`, or `dir/name-N` when that is taken.
fn free_name(dir: &Path, name: &str) -> Result<PathBuf> {
    for n in 0..RENAME_ATTEMPTS_MAX {
        let candidate = if n == 0 {
            dir.join(name)
        } else {
            dir.join(format!("{name}-{}", n + 1))
        };
        if !candidate.exists() {
            return Ok(candidate);
        }
    }
    bail!(
        "{}: {RENAME_ATTEMPTS_MAX} run folders named {name}; refusing to make another",
        dir.display()
    )
}

/// Copies a folder (files, folders, symlinks as symlinks), at most [`COPY_DEPTH_MAX`] deep.
fn copy_tree(src: &Path, dst: &Path, depth: usize) -> Result<()> {
    if depth > COPY_DEPTH_MAX {
        bail!(
            "{}: nested deeper than {COPY_DEPTH_MAX} folders; not a run folder",
            src.display()
        );
    }
    std::fs::create_dir_all(dst).with_context(|| format!("{}: cannot create", dst.display()))?;
    for entry in
        std::fs::read_dir(src).with_context(|| format!("{}: cannot list", src.display()))?
    {
        let entry = entry.with_context(|| format!("{}: cannot list", src.display()))?;
        let kind = entry
            .file_type()
            .with_context(|| format!("{}: cannot stat", entry.path().display()))?;
        let to = dst.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &to, depth + 1)?;
        } else if kind.is_symlink() {
            copy_symlink(&entry.path(), &to)?;
        } else {
            std::fs::copy(entry.path(), &to).with_context(|| {
                format!(
                    "{}: cannot copy to {}",
                    entry.path().display(),
                    to.display()
                )
            })?;
        }
    }
    Ok(())
}

#[cfg(unix)]
fn copy_symlink(src: &Path, dst: &Path) -> Result<()> {
    let target =
        std::fs::read_link(src).with_context(|| format!("{}: cannot read", src.display()))?;
    std::os::unix::fs::symlink(&target, dst)
        .with_context(|| format!("{}: cannot create symlink", dst.display()))
}

#[cfg(not(unix))]
fn copy_symlink(_src: &Path, _dst: &Path) -> Result<()> {
    Ok(())
}
