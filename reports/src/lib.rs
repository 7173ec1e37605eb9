//! Reports: what a person or a CI job reads after a run.
//!
//! A run directory (`store/<test>/<ts>/`) becomes one `index.html` that opens offline (inline CSS
//! and script, plots as PNG and SVG files beside it, a Content-Security-Policy that forbids any
//! network), with the verdict of every checker and its evidence linked into a timeline of the
//! history, latency and throughput plots with fault windows shaded, the linearizability
//! counterexample view, the plan, the seed and the rerun command. The store gets a front page
//! listing every run and a `latest` link. For CI there is JUnit XML and a Markdown summary.
//!
//! Design decisions, each explained in its module:
//! - Reports are a pure function of files (history, results, plan): they never talk to Docker or
//!   to the system under test, so a report can be regenerated from a copied run directory.
//! - Everything from the system under test is escaped at the one place it is written
//!   ([`escape`]); the page's script only ever uses `textContent`.
//! - A million-event history stays usable: the timeline data is columnar JSON and the page
//!   renders one page of events at a time ([`timeline`]); plot points are thinned per pixel cell
//!   ([`plots`]).
//! - Client-side stalls, marked on the operations that held a message, are shaded and listed
//!   like the nemesis's faults ([`stalls`]).
//! - Plot text needs a font, found at run time; without one the plots are drawn without text and
//!   the page says so ([`plots::font`]).

pub mod ci;
mod cycle;
pub mod escape;
mod html;
mod junit;
pub mod matrix;
pub mod plots;
pub mod results;
pub mod stalls;
pub mod store;
pub mod timeline;

pub use ci::{
    junit, junit_suites, markdown_summary, write_junit, write_junit_suites, write_markdown_summary,
    CiContext,
};
pub use html::by_kind;
pub use matrix::{render_plans_page, MatrixRun, MatrixStatus, PLANS_PAGE};
pub use results::{
    combined_verdict, load_run, LoadedRun, RunResults, HISTORY_FILE, INDEX_FILE, PLAN_FILE,
    RESULTS_FILE,
};
pub use store::{render_store_index, scan_store, StoreIndex, StoreRun, LATEST_LINK};

use anyhow::{Context, Result};
use checkers::{Anomaly, CheckResult, History};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// What a report render wrote.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The page: `<dir>/index.html`.
    pub index: PathBuf,
    /// Every file written, the page included.
    pub files: Vec<PathBuf>,
    /// Size of the page in bytes.
    pub index_bytes: u64,
    /// Things a person should know about this render (e.g. plots without text: no font).
    pub notes: Vec<String>,
}

/// Renders the report of a run into `run_dir`: `index.html`, `latency.{png,svg}`,
/// `throughput.{png,svg}`. `plan` is the run's plan (a JSON object, shown as a table).
pub fn render_run(
    run_dir: &Path,
    history: &History,
    results: &RunResults,
    plan: &Value,
) -> Result<Rendered> {
    std::fs::create_dir_all(run_dir)
        .with_context(|| format!("{}: cannot create the report directory", run_dir.display()))?;
    let ops = history
        .ops()
        .map_err(|e| anyhow::anyhow!("history: {e}"))
        .context("cannot render a report of a malformed history")?;
    // The nemesis's faults and the clients' own stalls, in time order.
    let mut windows = history.fault_windows();
    windows.extend(stalls::windows(&ops));
    windows.sort_by_key(|w| (w.start_time, w.start_index));
    let origin = history.events.iter().map(|e| e.time).min().unwrap_or(0);
    let last = history
        .events
        .iter()
        .map(|e| e.time)
        .max()
        .unwrap_or(origin);
    let mut axis = plots::Axis {
        origin,
        per_unit: if history.synthetic_time { 1.0 } else { 1e9 },
        synthetic: history.synthetic_time,
        end: 0.0,
    };
    axis.end = axis.x(last);

    let plot_out = plots::draw(run_dir, &ops, &windows, &axis)?;
    let positions = timeline::Positions::of(history);
    let op_index = timeline::OpIndex::of(history.events.len(), &ops, &positions);
    let flagged: Vec<u64> = results
        .results
        .iter()
        .flat_map(|r| r.anomalies.iter())
        .flat_map(anomaly_events)
        .collect();
    let timeline_json = timeline::data_json(
        history,
        &ops,
        &windows,
        &flagged,
        &positions,
        &axis,
        &plot_out.fault_kinds,
    );
    let page = html::run_page(&html::PageInput {
        history,
        ops: &ops,
        results,
        plan,
        plots: &plot_out,
        windows: &windows,
        axis,
        positions: &positions,
        op_index: &op_index,
        timeline_json: &timeline_json,
    });
    let index = run_dir.join(INDEX_FILE);
    results::write_atomic(&index, page.as_bytes())?;
    let mut files = vec![index.clone()];
    files.extend(plot_out.files.iter().cloned());
    Ok(Rendered {
        index,
        files,
        index_bytes: page.len() as u64,
        notes: plot_out.no_text_reason.into_iter().collect(),
    })
}

/// Every event index an anomaly names: its ops, and for a linearizability failure the prefix
/// and the unplaceable ops.
fn anomaly_events(a: &Anomaly) -> Vec<u64> {
    let mut v = a.ops.clone();
    for key in ["prefix", "unplaceable"] {
        if let Some(items) = a.data.get(key).and_then(Value::as_array) {
            v.extend(items.iter().filter_map(Value::as_u64));
        }
    }
    v
}

/// Renders a report for a history checked outside a run (`faultline check FILE --report DIR`):
/// no plan, seed or rerun command, the test named after `source_name`.
pub fn render_check_report(
    dir: &Path,
    history: &History,
    results: &[CheckResult],
    source_name: &str,
) -> Result<Rendered> {
    let run = RunResults::new(source_name, results.to_vec());
    let plan = serde_json::json!({
        "source": source_name,
        "note": "checked with faultline check: no run, so no cluster, plan or seed",
    });
    render_run(dir, history, &run, &plan)
}

/// Regenerates the report of a run directory from its files (`faultline report RUN_DIR`).
pub fn regenerate(run_dir: &Path) -> Result<Rendered> {
    let run = load_run(run_dir)?;
    render_run(run_dir, &run.history, &run.results, &run.plan)
}
