//! The run page: one HTML file, its CSS and script inline, that opens offline.
//!
//! The page is written as a string by hand rather than with a template engine: it has one shape,
//! and writing it directly keeps every interpolation visible next to its escape call (see
//! [`crate::escape`]). Only numbers and our own constants are written unescaped.
//!
//! What does not fit a static page (a timeline of a million events) is data for the inline
//! script; everything else (verdicts, evidence, plots, plan) is plain HTML that reads without
//! JavaScript. A Content-Security-Policy allows no network at all, and only our own script (by
//! its hash): even if an escape were missed, an injected script or handler would not run.

use crate::escape::{push_html, truncate};
use crate::plots::{fmt_num, Axis, PlotOutput, LATENCY_STEM, THROUGHPUT_STEM};
use crate::results::RunResults;
use crate::timeline::{OpIndex, Positions};
use checkers::stream::AnomalyKind;
use checkers::{Anomaly, CheckResult, EventType, FaultWindow, History, Op, Verdict};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::OnceLock;

pub(crate) const CSS: &str = include_str!("assets/report.css");
pub(crate) const SCRIPT: &str = include_str!("assets/timeline.js");

/// Anomalies of one kind shown in full under its heading; the rest are behind "show all".
pub const ANOMALIES_FIRST_SHOWN: usize = 3;
/// Anomalies per page behind "show all" (each page its own collapsed block).
pub const ANOMALIES_PAGE_SIZE: usize = 100;
/// Anomalies of one kind rendered in the page at all; the rest are counted (results.json has
/// them all), which keeps a page with a million anomalies openable.
pub const ANOMALIES_SHOWN_MAX: usize = 2_000;
/// Event links shown per anomaly.
const OPS_SHOWN_MAX: usize = 60;
/// Characters of an anomaly's data shown.
const DATA_CHARS_MAX: usize = 20_000;
/// Ops of a partial linearization shown (the last ones, nearest the failure).
pub const PREFIX_SHOWN_MAX: usize = 30;
const UNPLACEABLE_SHOWN_MAX: usize = 20;

/// The Content-Security-Policy of report pages: no network, no plugins, our script only.
pub(crate) fn csp() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        use base64::Engine as _;
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(SCRIPT.as_bytes());
        let hash = base64::engine::general_purpose::STANDARD.encode(digest.as_slice());
        format!(
            "default-src 'none'; img-src 'self' file: data:; style-src 'unsafe-inline'; script-src 'sha256-{hash}'; base-uri 'none'; form-action 'none'"
        )
    })
}

/// The page head shared by run pages and the store index.
pub(crate) fn head(out: &mut String, title: &str, csp: &str) {
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"");
    push_html(out, csp);
    out.push_str("\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<meta name=\"generator\" content=\"faultline ");
    out.push_str(env!("CARGO_PKG_VERSION"));
    out.push_str("\">\n<title>");
    push_html(out, title);
    out.push_str("</title>\n<style>\n");
    out.push_str(CSS);
    out.push_str("</style>\n</head>\n");
}

pub(crate) fn verdict_badge(out: &mut String, v: Verdict) {
    let _ = write!(out, "<span class=\"verdict v-{v}\">{v}</span>");
}

/// Everything the run page is made from.
pub(crate) struct PageInput<'a> {
    pub history: &'a History,
    pub ops: &'a [Op],
    pub results: &'a RunResults,
    pub plan: &'a Value,
    pub plots: &'a PlotOutput,
    pub windows: &'a [FaultWindow],
    pub axis: Axis,
    pub positions: &'a Positions,
    pub op_index: &'a OpIndex,
    /// The timeline's JSON, already safe for a script element.
    pub timeline_json: &'a str,
}

impl PageInput<'_> {
    fn op_at(&self, index: u64) -> Option<&Op> {
        self.op_index.op(self.ops, self.positions, index)
    }

    fn time(&self, t: u64) -> String {
        if self.axis.synthetic {
            format!("line {}", t.saturating_sub(self.axis.origin))
        } else {
            format!("{:.6} s", self.axis.x(t))
        }
    }
}

/// Renders the whole run page.
pub(crate) fn run_page(p: &PageInput<'_>) -> String {
    let r = p.results;
    let mut out = String::with_capacity(p.timeline_json.len() + 256 * 1024);
    head(&mut out, &format!("{} — {}", r.test, r.verdict), csp());
    out.push_str("<body>\n<main>\n");

    // Header: what ran, the verdict, how to rerun.
    out.push_str("<h1>");
    push_html(&mut out, &r.test);
    out.push(' ');
    verdict_badge(&mut out, r.verdict);
    out.push_str("</h1>\n<nav class=\"toc\"><a href=\"#checkers\">checkers</a><a href=\"#plots\">plots</a><a href=\"#faults\">faults</a><a href=\"#timeline\">timeline</a><a href=\"#plan\">cluster &amp; plan</a><a href=\"#ops\">ops</a></nav>\n");
    out.push_str("<table id=\"run\">\n");
    row(&mut out, "verdict", |o| verdict_badge(o, r.verdict));
    row(&mut out, "started at", |o| {
        push_html(o, r.started_at.as_deref().unwrap_or("not recorded"))
    });
    row(&mut out, "seed", |o| match r.seed {
        Some(s) => {
            let _ = write!(o, "<code id=\"seed\">{s}</code>");
        }
        None => o.push_str("none recorded"),
    });
    row(&mut out, "rerun", |o| match &r.command {
        Some(c) => {
            o.push_str("<code id=\"rerun\">");
            push_html(o, c);
            o.push_str("</code> <button id=\"copy-cmd\" type=\"button\">select</button>");
        }
        None => o.push_str("no rerun command recorded"),
    });
    let stats = OpStats::of(p.ops);
    row(&mut out, "history", |o| {
        let _ = write!(
            o,
            "{} events, {} ops ({} ok, {} fail, {} info, of which {} never completed), {} fault windows, duration {}",
            p.history.events.len(),
            p.ops.len(),
            stats.ok,
            stats.fail,
            stats.info,
            stats.never_completed,
            p.windows.len(),
            if p.axis.synthetic {
                format!("{} lines (no timestamps)", fmt_num(p.axis.end))
            } else {
                format!("{} s", fmt_num(p.axis.end))
            }
        );
    });
    out.push_str("</table>\n");

    checkers_section(&mut out, p);
    plots_section(&mut out, p);
    faults_section(&mut out, p);
    timeline_section(&mut out, p);
    plan_section(&mut out, p.plan);
    ops_section(&mut out, &stats);

    out.push_str("</main>\n<script type=\"application/json\" id=\"fl-data\">");
    out.push_str(p.timeline_json);
    out.push_str("</script>\n<script>");
    out.push_str(SCRIPT);
    out.push_str("</script>\n</body>\n</html>\n");
    out
}

fn row(out: &mut String, name: &str, value: impl FnOnce(&mut String)) {
    out.push_str("<tr><th>");
    push_html(out, name);
    out.push_str("</th><td class=\"wrap\">");
    value(out);
    out.push_str("</td></tr>\n");
}

fn ev_link(out: &mut String, index: u64) {
    let _ = write!(out, "<a class=\"ev\" href=\"#ev-{index}\">#{index}</a>");
}

fn checker_anchor(i: usize) -> String {
    format!("checker-{i}")
}

fn checkers_section(out: &mut String, p: &PageInput<'_>) {
    let results = &p.results.results;
    out.push_str("<h2 id=\"checkers\">Checkers</h2>\n");
    if results.is_empty() {
        out.push_str("<p class=\"warn\">No checker ran: the verdict cannot be valid.</p>\n");
        return;
    }
    out.push_str("<table id=\"verdicts\"><tr><th>checker</th><th>verdict</th><th>anomalies</th><th>time</th><th>summary</th></tr>\n");
    for (i, c) in results.iter().enumerate() {
        let _ = write!(out, "<tr><td><a href=\"#{}\">", checker_anchor(i));
        push_html(out, &c.checker);
        out.push_str("</a></td><td>");
        verdict_badge(out, c.verdict);
        let _ = write!(
            out,
            "</td><td>{}</td><td>{:.1} ms</td><td class=\"wrap\">",
            c.anomalies.len(),
            c.elapsed_ms
        );
        push_html(out, &truncate(&c.summary, 600));
        out.push_str("</td></tr>\n");
    }
    out.push_str("</table>\n");
    for (i, c) in results.iter().enumerate() {
        checker_block(out, p, i, c);
    }
}

fn checker_block(out: &mut String, p: &PageInput<'_>, i: usize, c: &CheckResult) {
    let _ = write!(
        out,
        "<section class=\"checker\" id=\"{}\">\n<h3>",
        checker_anchor(i)
    );
    push_html(out, &c.checker);
    out.push(' ');
    verdict_badge(out, c.verdict);
    out.push_str("</h3>\n<p class=\"summary\">");
    push_html(out, &c.summary);
    out.push_str("</p>\n");
    if let Some(reason) = &c.unknown_reason {
        out.push_str("<p class=\"warn\">Unknown because: ");
        push_html(out, reason);
        out.push_str("</p>\n");
    }
    for (kind, group) in by_kind(&c.anomalies) {
        kind_group(out, p, &c.checker, kind, &group);
    }
    if !c.details.is_null() {
        out.push_str("<details><summary>details</summary><pre>");
        let text = serde_json::to_string_pretty(&c.details).unwrap_or_default();
        push_html(out, &truncate(&text, DATA_CHARS_MAX));
        out.push_str("</pre></details>\n");
    }
    out.push_str("</section>\n");
}

/// Anomalies grouped by kind, kinds in order of first appearance, each group in history order.
pub fn by_kind(anomalies: &[Anomaly]) -> Vec<(&str, Vec<&Anomaly>)> {
    let mut groups: Vec<(&str, Vec<&Anomaly>)> = vec![];
    for a in anomalies {
        match groups.iter_mut().find(|(k, _)| *k == a.kind) {
            Some((_, g)) => g.push(a),
            None => groups.push((&a.kind, vec![a])),
        }
    }
    groups
}

/// One kind of `checker`'s anomalies: a heading with the count and the meaning
/// ([`checkers::kind_meaning`]), the first few in full, the rest behind "show all" in pages
/// (each a collapsed block, so thousands stay usable).
fn kind_group(out: &mut String, p: &PageInput<'_>, checker: &str, kind: &str, group: &[&Anomaly]) {
    out.push_str("<div class=\"kind-group\"><h4><span class=\"kind\">");
    push_html(out, kind);
    let _ = write!(
        out,
        "</span> <span class=\"count\">× {}</span>",
        group.len()
    );
    if let Some(meaning) = checkers::kind_meaning(checker, kind) {
        out.push_str(" <span class=\"meaning\">— ");
        push_html(out, meaning);
        out.push_str("</span>");
    }
    out.push_str("</h4>\n");
    for a in group.iter().take(ANOMALIES_FIRST_SHOWN) {
        anomaly(out, p, a);
    }
    let shown = group.len().min(ANOMALIES_SHOWN_MAX);
    if shown > ANOMALIES_FIRST_SHOWN {
        let _ = write!(
            out,
            "<details class=\"show-all\"><summary>show all {} (",
            group.len()
        );
        push_html(out, kind);
        let _ = writeln!(
            out,
            ": {} more)</summary>",
            group.len() - ANOMALIES_FIRST_SHOWN
        );
        let rest = &group[ANOMALIES_FIRST_SHOWN..shown];
        let paged = rest.len() > ANOMALIES_PAGE_SIZE;
        for (i, page) in rest.chunks(ANOMALIES_PAGE_SIZE).enumerate() {
            let first = ANOMALIES_FIRST_SHOWN + i * ANOMALIES_PAGE_SIZE + 1;
            if paged {
                let _ = writeln!(
                    out,
                    "<details class=\"page\"><summary>{first}–{}</summary>",
                    first + page.len() - 1
                );
            }
            for a in page {
                anomaly(out, p, a);
            }
            if paged {
                out.push_str("</details>\n");
            }
        }
        out.push_str("</details>\n");
    }
    if group.len() > shown {
        let _ = writeln!(
            out,
            "<p class=\"note\">{} more are not shown here; results.json lists them all.</p>",
            group.len() - shown
        );
    }
    out.push_str("</div>\n");
}

fn anomaly(out: &mut String, p: &PageInput<'_>, a: &Anomaly) {
    out.push_str("<div class=\"anomaly\"><p><span class=\"kind\">");
    push_html(out, &a.kind);
    out.push_str("</span>: ");
    push_html(out, &a.explanation);
    out.push_str("</p>\n");
    if !a.ops.is_empty() {
        out.push_str("<p class=\"ops\">ops: ");
        for &i in a.ops.iter().take(OPS_SHOWN_MAX) {
            ev_link(out, i);
        }
        if a.ops.len() > OPS_SHOWN_MAX {
            let _ = write!(out, " and {} more", a.ops.len() - OPS_SHOWN_MAX);
        }
        out.push_str("</p>\n");
    }
    let nonlinearizable = a.kind == checkers::linear::Kind::Nonlinearizable.name();
    let lin = nonlinearizable
        .then(|| Linearization::of(&a.data))
        .flatten();
    crate::cycle::push_cycle_svg(out, &a.data);
    match lin {
        Some(lin) => linearization(out, p, &lin),
        None if nonlinearizable => {
            out.push_str("<p class=\"note\">This anomaly's data does not have the expected shape {key, prefix, unplaceable, states, model}; shown as is.</p>\n");
        }
        None => {}
    }
    if !a.data.is_null() {
        out.push_str("<details><summary>data</summary><pre class=\"data\">");
        let text = serde_json::to_string_pretty(&a.data).unwrap_or_default();
        push_html(out, &truncate(&text, DATA_CHARS_MAX));
        out.push_str("</pre></details>\n");
    }
    out.push_str("</div>\n");
}

/// The evidence of a linearizability failure, as the checker reports it.
struct Linearization {
    key: Option<String>,
    model: Option<String>,
    /// Invoke event indices, in linearization order.
    prefix: Vec<u64>,
    /// Invoke event indices of the ops that could not be placed next.
    unplaceable: Vec<u64>,
    states: Vec<String>,
}

impl Linearization {
    fn of(data: &Value) -> Option<Self> {
        let indices =
            |v: &Value| -> Option<Vec<u64>> { v.as_array()?.iter().map(Value::as_u64).collect() };
        let text = |v: &Value| match v {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        };
        Some(Linearization {
            key: text(data.get("key").unwrap_or(&Value::Null)),
            model: text(data.get("model").unwrap_or(&Value::Null)),
            prefix: indices(data.get("prefix")?)?,
            unplaceable: indices(data.get("unplaceable")?)?,
            states: data
                .get("states")
                .and_then(Value::as_array)
                .map(|s| s.iter().filter_map(text).collect())
                .unwrap_or_default(),
        })
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        other => truncate(&other.to_string(), 200).into_owned(),
    }
}

fn op_cells(out: &mut String, p: &PageInput<'_>, index: u64) {
    out.push_str("<td>");
    ev_link(out, index);
    out.push_str("</td>");
    match p.op_at(index) {
        Some(op) => {
            let _ = write!(out, "<td>{}</td><td>", op.process);
            push_html(out, &op.f);
            out.push_str("</td><td class=\"wrap\"><code>");
            push_html(out, &value_text(&op.invoke_value));
            out.push_str("</code></td><td class=\"wrap\"><code>");
            if op.complete_index.is_some() {
                push_html(out, &value_text(&op.complete_value));
            }
            out.push_str("</code></td><td>");
            out.push_str(op.outcome.as_str());
            if op.complete_index.is_none() {
                out.push_str(" (never completed)");
            }
            out.push_str("</td><td>");
            out.push_str(&p.time(op.invoke_time));
            out.push_str("</td><td>");
            match op.complete_time {
                Some(t) => out.push_str(&p.time(t)),
                None => out.push_str("never"),
            }
            out.push_str("</td>");
        }
        None => out.push_str(
            "<td colspan=\"7\" class=\"note\">no operation in this history starts or ends at this event</td>",
        ),
    }
}

const OP_HEADERS: &str = "<th>op</th><th>process</th><th>f</th><th>value</th><th>result</th><th>outcome</th><th>invoked</th><th>completed</th>";

fn linearization(out: &mut String, p: &PageInput<'_>, lin: &Linearization) {
    out.push_str("<div class=\"linearization\">\n<p>");
    match &lin.key {
        Some(k) => {
            out.push_str("On key <code>");
            push_html(out, k);
            out.push_str("</code>");
        }
        None => out.push_str("On this history"),
    }
    if let Some(m) = &lin.model {
        out.push_str(", with model <code>");
        push_html(out, m);
        out.push_str("</code>");
    }
    let _ = writeln!(
        out,
        ", the longest linearization the checker found places {} ops; after them, {} op(s) cannot be placed: no order of them is consistent with the model from the state(s) the prefix reaches.</p>",
        lin.prefix.len(),
        lin.unplaceable.len()
    );
    let per_op_states = !lin.states.is_empty() && lin.states.len() == lin.prefix.len();
    let shown_from = lin.prefix.len().saturating_sub(PREFIX_SHOWN_MAX);
    let _ = write!(
        out,
        "<h4>Partial linearization{}</h4>\n<table class=\"prefix\"><tr><th>order</th>{OP_HEADERS}{}</tr>\n",
        if shown_from > 0 {
            format!(" (the last {PREFIX_SHOWN_MAX} of {})", lin.prefix.len())
        } else {
            String::new()
        },
        if per_op_states { "<th>state after</th>" } else { "" }
    );
    for (order, &index) in lin.prefix.iter().enumerate().skip(shown_from) {
        let _ = write!(out, "<tr><td>{}</td>", order + 1);
        op_cells(out, p, index);
        if per_op_states {
            out.push_str("<td><code>");
            push_html(out, &truncate(&lin.states[order], 200));
            out.push_str("</code></td>");
        }
        out.push_str("</tr>\n");
    }
    if lin.prefix.is_empty() {
        out.push_str("<tr><td colspan=\"9\" class=\"note\">empty: not even the first op could be placed</td></tr>\n");
    }
    out.push_str("</table>\n");
    if !per_op_states && !lin.states.is_empty() {
        out.push_str("<p>States the model can be in after this prefix: ");
        for (i, s) in lin.states.iter().take(20).enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str("<code>");
            push_html(out, &truncate(s, 200));
            out.push_str("</code>");
        }
        if lin.states.len() > 20 {
            let _ = write!(out, " and {} more", lin.states.len() - 20);
        }
        out.push_str("</p>\n");
    }
    let _ = write!(
        out,
        "<h4>Could not be placed</h4>\n<table class=\"unplaceable\"><tr>{OP_HEADERS}</tr>\n"
    );
    for &index in lin.unplaceable.iter().take(UNPLACEABLE_SHOWN_MAX) {
        out.push_str("<tr class=\"unplaceable\">");
        op_cells(out, p, index);
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    if lin.unplaceable.len() > UNPLACEABLE_SHOWN_MAX {
        let _ = writeln!(
            out,
            "<p class=\"note\">{} more ops could not be placed.</p>",
            lin.unplaceable.len() - UNPLACEABLE_SHOWN_MAX
        );
    }
    lin_diagram(out, p, lin, shown_from);
    out.push_str("</div>\n");
}

/// Bars in real time, one lane per process: the shown prefix numbered in linearization order,
/// the unplaceable ops in red. Widths are percentages, so the diagram needs no script.
fn lin_diagram(out: &mut String, p: &PageInput<'_>, lin: &Linearization, shown_from: usize) {
    let mut bars: Vec<(&Op, Option<usize>)> = Vec::new();
    for (order, &i) in lin.prefix.iter().enumerate().skip(shown_from) {
        if let Some(op) = p.op_at(i) {
            bars.push((op, Some(order + 1)));
        }
    }
    for &i in lin.unplaceable.iter().take(UNPLACEABLE_SHOWN_MAX) {
        if let Some(op) = p.op_at(i) {
            bars.push((op, None));
        }
    }
    if bars.is_empty() {
        return;
    }
    let t_lo = bars.iter().map(|(o, _)| o.invoke_time).min().unwrap_or(0);
    let t_hi = bars
        .iter()
        .map(|(o, _)| o.complete_time.unwrap_or(o.invoke_time))
        .max()
        .unwrap_or(t_lo);
    let span = (t_hi.saturating_sub(t_lo)).max(1) as f64;
    let mut lanes: Vec<u64> = bars.iter().map(|(o, _)| o.process).collect();
    lanes.sort_unstable();
    lanes.dedup();
    const LANE_PX: usize = 28;
    const LABEL_PCT: f64 = 9.0;
    let _ = write!(
        out,
        "<p class=\"note\">In real time, one lane per process: bars numbered in linearization order; red bars could not be placed; a dashed end never completed.</p>\n<div class=\"lin-diagram\" style=\"height:{}px\">\n",
        lanes.len() * LANE_PX + 6
    );
    for (l, proc_) in lanes.iter().enumerate() {
        let _ = writeln!(
            out,
            "<div class=\"lin-lane\" style=\"top:{}px\"><span class=\"lane-name\">process {proc_}</span></div>",
            l * LANE_PX
        );
    }
    let pct =
        |t: u64| LABEL_PCT + (100.0 - LABEL_PCT - 1.0) * (t.saturating_sub(t_lo) as f64 / span);
    for (op, order) in bars {
        let lane = lanes.binary_search(&op.process).unwrap_or(0);
        let left = pct(op.invoke_time);
        let right = match op.complete_time {
            Some(t) => pct(t),
            None => 99.0,
        };
        let width = (right - left).max(1.5);
        let mut label = String::new();
        match order {
            Some(n) => {
                let _ = write!(label, "{n}. ");
            }
            None => label.push_str("✗ "),
        }
        label.push_str(&op.f);
        label.push(' ');
        label.push_str(&value_text(&op.invoke_value));
        if op.complete_index.is_some() && op.complete_value != op.invoke_value {
            label.push_str(" → ");
            label.push_str(&value_text(&op.complete_value));
        }
        let class = match (order, op.complete_time) {
            (None, None) => "lin-op bad open",
            (None, Some(_)) => "lin-op bad",
            (Some(_), None) => "lin-op open",
            _ => "lin-op",
        };
        let _ = write!(
            out,
            "<div class=\"{class}\" style=\"top:{}px;left:{left:.3}%;width:{width:.3}%\" title=\"",
            lane * LANE_PX + 4
        );
        push_html(out, &label);
        out.push_str("\">");
        push_html(out, &label);
        out.push_str("</div>\n");
    }
    out.push_str("</div>\n");
}

fn plots_section(out: &mut String, p: &PageInput<'_>) {
    out.push_str("<h2 id=\"plots\">Plots</h2>\n<div class=\"plots\">\n");
    if let Some(why) = &p.plots.no_text_reason {
        out.push_str("<p class=\"warn\">The plots have no tick labels or legends: ");
        push_html(out, why);
        out.push_str(". Their ranges and gridlines are given under each plot.</p>\n");
    }
    legend(out, p);
    for (stem, title, caption) in [
        (
            LATENCY_STEM,
            "Latency per f (log scale): ok ●, fail ✕, info ▲",
            &p.plots.latency_caption,
        ),
        (
            THROUGHPUT_STEM,
            "Throughput: completions by outcome",
            &p.plots.throughput_caption,
        ),
    ] {
        let _ = write!(
            out,
            "<h3>{title}</h3>\n<img class=\"plot\" id=\"plot-{stem}\" src=\"{stem}.svg\" alt=\"{title}\">\n<p class=\"note\">"
        );
        push_html(out, caption);
        let _ = writeln!(
            out,
            ". Files: <a href=\"{stem}.svg\">{stem}.svg</a>, <a href=\"{stem}.png\">{stem}.png</a>.</p>"
        );
    }
    out.push_str("</div>\n");
}

fn legend(out: &mut String, p: &PageInput<'_>) {
    out.push_str("<p class=\"legend\">Outcomes:");
    for (name, (r, g, b)) in [
        ("ok", crate::plots::OK_RGB),
        ("fail", crate::plots::FAIL_RGB),
        ("info (indeterminate)", crate::plots::INFO_RGB),
    ] {
        let _ = write!(
            out,
            "<span class=\"swatch\" style=\"background:rgb({r},{g},{b})\"></span>{name}"
        );
    }
    if !p.plots.fault_kinds.is_empty() {
        out.push_str(" &nbsp; Fault windows (shaded):");
        for (kind, (r, g, b)) in &p.plots.fault_kinds {
            let _ = write!(
                out,
                "<span class=\"swatch\" style=\"background:rgba({r},{g},{b},0.35)\"></span>"
            );
            push_html(out, kind);
        }
    } else {
        out.push_str(" &nbsp; No fault windows in this history.");
    }
    out.push_str("</p>\n");
}

fn faults_section(out: &mut String, p: &PageInput<'_>) {
    out.push_str("<h2 id=\"faults\">Faults</h2>\n");
    if p.windows.is_empty() {
        out.push_str("<p>No nemesis events: no faults were injected.</p>\n");
        return;
    }
    if p.windows
        .iter()
        .any(|w| w.kind == crate::stalls::STALL_KIND)
    {
        out.push_str(
            "<p class=\"note\"><code>client-stall</code> windows are not nemesis events: each \
             spans acknowledgements the clients held on purpose (the plan's <code>[client]</code> \
             ack stalls), from the first one's invocation to the last one's completion.</p>\n",
        );
    }
    const FAULTS_SHOWN_MAX: usize = 500;
    out.push_str("<table><tr><th>kind</th><th>start</th><th>end</th><th>from</th><th>duration</th><th>value</th></tr>\n");
    for w in p.windows.iter().take(FAULTS_SHOWN_MAX) {
        out.push_str("<tr><td>");
        push_html(out, &w.kind);
        out.push_str("</td><td>");
        ev_link(out, w.start_index);
        out.push_str("</td><td>");
        match w.end_index {
            Some(i) => ev_link(out, i),
            None => out.push_str("still active at the end"),
        }
        out.push_str("</td><td>");
        out.push_str(&p.time(w.start_time));
        out.push_str("</td><td>");
        let end = w
            .end_time
            .unwrap_or_else(|| p.history.events.last().map_or(w.start_time, |e| e.time));
        let d = end.saturating_sub(w.start_time);
        if p.axis.synthetic {
            let _ = write!(out, "{d} lines");
        } else {
            let _ = write!(out, "{:.3} s", d as f64 / 1e9);
        }
        out.push_str("</td><td class=\"wrap\"><code>");
        push_html(out, &value_text(&w.value));
        out.push_str("</code></td></tr>\n");
    }
    out.push_str("</table>\n");
    if p.windows.len() > FAULTS_SHOWN_MAX {
        let _ = writeln!(
            out,
            "<p class=\"note\">{} more fault windows; the timeline shows them all.</p>",
            p.windows.len() - FAULTS_SHOWN_MAX
        );
    }
}

fn timeline_section(out: &mut String, _p: &PageInput<'_>) {
    out.push_str(
        "<h2 id=\"timeline\">Timeline</h2>\n\
<p class=\"note\">One column per process, one row per history event, 200 events a page; an op spans from its invocation to its completion row. Blue ok, red fail, orange info; a red ring marks ops named by an anomaly; shaded rows are fault windows. Click an op for its details; event links elsewhere on the page jump here.</p>\n\
<div class=\"tl-controls\"><button id=\"tl-first\" type=\"button\">first</button><button id=\"tl-prev\" type=\"button\">previous</button><span id=\"tl-status\">the timeline needs JavaScript</span><button id=\"tl-next\" type=\"button\">next</button><button id=\"tl-last\" type=\"button\">last</button><label>page <input id=\"tl-page\" type=\"number\" min=\"1\" value=\"1\"></label><label>event # <input id=\"tl-goto\" type=\"number\" min=\"0\"></label><button id=\"tl-go\" type=\"button\">go</button></div>\n\
<div id=\"tl-view\" class=\"tl-view\"></div>\n<div id=\"tl-detail\" class=\"tl-detail\" hidden></div>\n",
    );
}

/// Plan keys shown first, in this order, when present: they say what ran on what.
const PLAN_KEYS_FIRST: &[&str] = &[
    "system",
    "cluster",
    "nodes",
    "versions",
    "workload",
    "nemesis",
    "seed",
    "time_limit",
    "concurrency",
];

fn plan_section(out: &mut String, plan: &Value) {
    out.push_str("<h2 id=\"plan\">Cluster &amp; plan</h2>\n");
    let Some(obj) = plan.as_object() else {
        out.push_str("<p>No plan recorded.</p>\n");
        return;
    };
    if obj.is_empty() {
        out.push_str("<p>The plan is empty.</p>\n");
        return;
    }
    let mut keys: Vec<&String> = Vec::new();
    for k in PLAN_KEYS_FIRST {
        if let Some((key, _)) = obj.get_key_value(*k) {
            keys.push(key);
        }
    }
    for k in obj.keys() {
        if !PLAN_KEYS_FIRST.contains(&k.as_str()) {
            keys.push(k);
        }
    }
    out.push_str("<table id=\"plan-table\">\n");
    for k in keys {
        out.push_str("<tr><th>");
        push_html(out, k);
        out.push_str("</th><td class=\"wrap\">");
        plan_value(out, &obj[k.as_str()]);
        out.push_str("</td></tr>\n");
    }
    out.push_str("</table>\n");
}

fn plan_value(out: &mut String, v: &Value) {
    match v {
        Value::String(s) => push_html(out, &truncate(s, DATA_CHARS_MAX)),
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
            let parts: Vec<String> = items
                .iter()
                .map(|i| match i {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            push_html(out, &truncate(&parts.join(", "), DATA_CHARS_MAX));
        }
        Value::Object(_) | Value::Array(_) => {
            out.push_str("<pre>");
            let text = serde_json::to_string_pretty(v).unwrap_or_default();
            push_html(out, &truncate(&text, DATA_CHARS_MAX));
            out.push_str("</pre>");
        }
        other => push_html(out, &other.to_string()),
    }
}

#[derive(Default)]
struct OpStats {
    ok: usize,
    fail: usize,
    info: usize,
    never_completed: usize,
    /// f -> [ok, fail, info]
    by_f: BTreeMap<String, [usize; 3]>,
}

impl OpStats {
    fn of(ops: &[Op]) -> Self {
        let mut s = OpStats::default();
        for op in ops {
            let i = match op.outcome {
                EventType::Ok => {
                    s.ok += 1;
                    0
                }
                EventType::Fail => {
                    s.fail += 1;
                    1
                }
                _ => {
                    s.info += 1;
                    2
                }
            };
            if op.complete_index.is_none() {
                s.never_completed += 1;
            }
            match s.by_f.get_mut(op.f.as_str()) {
                Some(c) => c[i] += 1,
                None => {
                    let mut c = [0; 3];
                    c[i] = 1;
                    s.by_f.insert(op.f.clone(), c);
                }
            }
        }
        s
    }
}

fn ops_section(out: &mut String, stats: &OpStats) {
    out.push_str("<h2 id=\"ops\">Operations by f</h2>\n<table><tr><th>f</th><th>ok</th><th>fail</th><th>info</th></tr>\n");
    for (f, [ok, fail, info]) in &stats.by_f {
        out.push_str("<tr><td>");
        push_html(out, f);
        let _ = writeln!(out, "</td><td>{ok}</td><td>{fail}</td><td>{info}</td></tr>");
    }
    out.push_str("</table>\n");
}
