//! The plan-grouped store page (`store/plans.html`).
//!
//! It is rendered from the store itself, not from a matrix, so it shows the history of every
//! night kept in the store, not just this one. Pass rate = valid runs / runs with results;
//! unknown and invalid both count as not passing, runs without results (killed) are shown but
//! not counted.

use crate::escape::push_html;
use crate::html::{head, verdict_badge};
use crate::results::{write_atomic, RunResults, INDEX_FILE};
use crate::store::{scan_store, StoreRun};
use anyhow::{bail, Result};
use checkers::Verdict;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The file name of the plan-grouped store page, beside `store/index.html`.
pub const PLANS_PAGE: &str = "plans.html";
/// Runs shown in a plan's strip on the store page (newest; the counts cover all).
pub const PLANS_PAGE_STRIP_MAX: usize = 60;
/// Days shown per plan in the pass-rate table of the store page (newest).
pub const PLANS_PAGE_DAYS_MAX: usize = 30;

/// One day of a plan on the store page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DayCounts {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub runs: usize,
    pub valid: usize,
    pub invalid: usize,
    pub unknown: usize,
    /// Runs without results (killed, or still going).
    pub no_results: usize,
}

impl DayCounts {
    /// Valid runs among runs with results, in percent; `None` when no run has results.
    pub fn pass_rate_percent(&self) -> Option<f64> {
        let judged = self.valid + self.invalid + self.unknown;
        (judged > 0).then(|| 100.0 * self.valid as f64 / judged as f64)
    }

    fn add(&mut self, v: Option<Verdict>) {
        self.runs += 1;
        match v {
            Some(Verdict::Valid) => self.valid += 1,
            Some(Verdict::Invalid) => self.invalid += 1,
            Some(Verdict::Unknown) => self.unknown += 1,
            None => self.no_results += 1,
        }
    }
}

/// A plan's runs in a store: totals and per-day counts, newest day first.
#[derive(Debug, Clone)]
pub struct PlanHistory {
    pub plan: String,
    pub total: DayCounts,
    pub days: Vec<DayCounts>,
    /// The plan's runs, newest first.
    pub runs: Vec<StoreRun>,
}

/// Groups a store's runs (newest first, as [`scan_store`] returns them) by plan, plans sorted
/// by name.
pub fn plan_histories(runs: Vec<StoreRun>) -> Vec<PlanHistory> {
    let mut by_plan: BTreeMap<String, PlanHistory> = BTreeMap::new();
    for run in runs {
        let h = by_plan
            .entry(run.test.clone())
            .or_insert_with(|| PlanHistory {
                plan: run.test.clone(),
                total: DayCounts {
                    day: "all".into(),
                    ..DayCounts::default()
                },
                days: Vec::new(),
                runs: Vec::new(),
            });
        let v = run.results.as_ref().ok().map(|r| r.verdict);
        h.total.add(v);
        let day = utc_day(run.sort_key_ns);
        match h.days.iter_mut().find(|d| d.day == day) {
            Some(d) => d.add(v),
            None => {
                let mut d = DayCounts {
                    day,
                    ..DayCounts::default()
                };
                d.add(v);
                h.days.push(d);
            }
        }
        h.runs.push(run);
    }
    let mut out: Vec<PlanHistory> = by_plan.into_values().collect();
    for h in &mut out {
        h.days.sort_by(|a, b| b.day.cmp(&a.day));
    }
    out
}

fn utc_day(ns: i128) -> String {
    match time::OffsetDateTime::from_unix_timestamp_nanos(ns) {
        Ok(t) => {
            let d = t.date();
            format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
        }
        Err(_) => "unknown day".into(),
    }
}

/// Writes `store/plans.html`: the store's runs grouped by plan, each with its pass rate, a strip
/// of its newest runs (oldest left, each linked to its report) and pass rates per day.
pub fn render_plans_page(store: &Path) -> Result<PathBuf> {
    if !store.is_dir() {
        bail!(
            "{}: not a directory (expected a faultline store)",
            store.display()
        );
    }
    let histories = plan_histories(scan_store(store)?);
    let page = plans_page(store, &histories);
    let path = store.join(PLANS_PAGE);
    write_atomic(&path, page.as_bytes())?;
    Ok(path)
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), |p| format!("{p:.0}%"))
}

fn url_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn run_href(run: &StoreRun) -> String {
    let mut href = format!(
        "{}/{}/",
        url_segment(&run.test),
        url_segment(&run.timestamp)
    );
    if run.dir.join(INDEX_FILE).is_file() {
        href.push_str(INDEX_FILE);
    }
    href
}

fn plans_page(store: &Path, histories: &[PlanHistory]) -> String {
    let mut out = String::with_capacity(4096 + histories.len() * 4096);
    head(
        &mut out,
        "faultline runs by plan",
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; form-action 'none'",
    );
    out.push_str("<body>\n<main>\n<h1>faultline runs by plan</h1>\n<p class=\"note\">Store ");
    push_html(&mut out, &store.display().to_string());
    let _ = writeln!(
        out,
        ": {} plans. Pass rate = valid runs among runs with results (unknown and invalid do not pass; runs without results are listed, not counted). <a href=\"{INDEX_FILE}\">All runs, newest first</a>.</p>",
        histories.len()
    );
    if histories.is_empty() {
        out.push_str("<p>No runs yet.</p>\n");
    } else {
        out.push_str("<table id=\"plans\">\n<tr><th>plan</th><th>runs</th><th>valid</th><th>invalid</th><th>unknown</th><th>no results</th><th>pass rate</th><th>latest</th></tr>\n");
        for h in histories {
            out.push_str("<tr class=\"plan\"><td><a href=\"#plan-");
            push_html(&mut out, &url_segment(&h.plan));
            out.push_str("\">");
            push_html(&mut out, &h.plan);
            let t = &h.total;
            let _ = write!(
                out,
                "</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>",
                t.runs,
                t.valid,
                t.invalid,
                t.unknown,
                t.no_results,
                pct(t.pass_rate_percent())
            );
            match h
                .runs
                .first()
                .map(|r| r.results.as_ref().map(|r| r.verdict))
            {
                Some(Ok(v)) => verdict_badge(&mut out, v),
                _ => out.push_str("<span class=\"verdict v-none\">no results</span>"),
            }
            out.push_str("</td></tr>\n");
        }
        out.push_str("</table>\n");
    }
    for h in histories {
        out.push_str("<section class=\"plan\" id=\"plan-");
        push_html(&mut out, &url_segment(&h.plan));
        out.push_str("\">\n<h2>");
        push_html(&mut out, &h.plan);
        let _ = writeln!(
            out,
            "</h2>\n<p>{} runs, pass rate {}. Newest {} runs, oldest left:</p>\n<p class=\"strip\">",
            h.total.runs,
            pct(h.total.pass_rate_percent()),
            h.runs.len().min(PLANS_PAGE_STRIP_MAX)
        );
        for run in h.runs.iter().take(PLANS_PAGE_STRIP_MAX).rev() {
            let (class, word) = match &run.results {
                Ok(r) => (format!("v-{}", r.verdict), r.verdict.as_str().to_string()),
                Err(_) => ("v-none".to_string(), "no results".to_string()),
            };
            let seed = run
                .results
                .as_ref()
                .ok()
                .and_then(|r: &RunResults| r.seed)
                .map(|s| format!(", seed {s}"))
                .unwrap_or_default();
            out.push_str("<a class=\"verdict ");
            out.push_str(&class);
            out.push_str("\" href=\"");
            push_html(&mut out, &run_href(run));
            out.push_str("\" title=\"");
            push_html(&mut out, &format!("{}: {word}{seed}", run.timestamp));
            out.push_str("\">");
            out.push_str(match word.as_str() {
                "valid" => "✓",
                "invalid" => "✗",
                "unknown" => "?",
                _ => "·",
            });
            out.push_str("</a> ");
        }
        out.push_str("</p>\n<table class=\"days\">\n<tr><th>day (UTC)</th><th>runs</th><th>valid</th><th>invalid</th><th>unknown</th><th>no results</th><th>pass rate</th></tr>\n");
        for d in h.days.iter().take(PLANS_PAGE_DAYS_MAX) {
            out.push_str("<tr class=\"day\"><td>");
            push_html(&mut out, &d.day);
            let rate = d.pass_rate_percent();
            let _ = write!(
                out,
                "</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>",
                d.runs, d.valid, d.invalid, d.unknown, d.no_results
            );
            if let Some(p) = rate {
                let _ = write!(
                    out,
                    "<span style=\"display:inline-block;width:{:.0}px;height:10px;background:#2e7d32\"></span><span style=\"display:inline-block;width:{:.0}px;height:10px;background:#c62828\"></span> ",
                    p,
                    100.0 - p
                );
            }
            out.push_str(&pct(rate));
            out.push_str("</td></tr>\n");
        }
        if h.days.len() > PLANS_PAGE_DAYS_MAX {
            let _ = writeln!(
                out,
                "<tr><td colspan=\"7\" class=\"note\">… {} older days</td></tr>",
                h.days.len() - PLANS_PAGE_DAYS_MAX
            );
        }
        out.push_str("</table>\n</section>\n");
    }
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::RunResults;
    use checkers::CheckResult;

    fn write_run(store: &Path, test: &str, ts: &str, verdict: Option<Verdict>, started: &str) {
        let dir = store.join(test).join(ts);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(crate::HISTORY_FILE), "").unwrap();
        if let Some(v) = verdict {
            let result = match v {
                Verdict::Valid => CheckResult::valid("c", "ok"),
                Verdict::Invalid => CheckResult::invalid("c", "bad", vec![]),
                Verdict::Unknown => CheckResult::unknown("c", "budget"),
            };
            let mut r = RunResults::new(test, vec![result]);
            r.started_at = Some(started.into());
            r.seed = Some(5);
            r.write(&dir.join(crate::RESULTS_FILE)).unwrap();
        }
    }

    #[test]
    fn the_plans_page_groups_runs_by_plan_with_pass_rates_per_day() {
        let store = tempfile::tempdir().unwrap();
        let s = store.path();
        write_run(s, "etcd", "a", Some(Verdict::Valid), "2024-05-01T01:00:00Z");
        write_run(
            s,
            "etcd",
            "b",
            Some(Verdict::Invalid),
            "2024-05-01T02:00:00Z",
        );
        write_run(s, "etcd", "c", Some(Verdict::Valid), "2024-05-02T01:00:00Z");
        write_run(s, "etcd", "d", None, "");
        write_run(
            s,
            "<memory>",
            "a",
            Some(Verdict::Unknown),
            "2024-05-02T01:00:00Z",
        );
        let h = plan_histories(scan_store(s).unwrap());
        assert_eq!(h.len(), 2);
        let etcd = h.iter().find(|p| p.plan == "etcd").unwrap();
        assert_eq!(
            (etcd.total.runs, etcd.total.valid, etcd.total.no_results),
            (4, 2, 1)
        );
        assert_eq!(
            etcd.total.pass_rate_percent().map(|p| p.round()),
            Some(67.0)
        );
        let days: Vec<(&str, usize, Option<f64>)> = etcd
            .days
            .iter()
            .filter(|d| d.day.starts_with("2024"))
            .map(|d| (d.day.as_str(), d.runs, d.pass_rate_percent()))
            .collect();
        assert_eq!(
            days,
            [
                ("2024-05-02", 1, Some(100.0)),
                ("2024-05-01", 2, Some(50.0))
            ]
        );

        let page_path = render_plans_page(s).unwrap();
        let page = std::fs::read_to_string(page_path).unwrap();
        let html = scraper::Html::parse_document(&page);
        let sel = |q: &str| scraper::Selector::parse(q).unwrap();
        assert_eq!(html.select(&sel("tr.plan")).count(), 2);
        assert_eq!(html.select(&sel("section.plan")).count(), 2);
        assert!(page.contains("&lt;memory&gt;") && !page.contains("<memory>"));
        let strip: Vec<String> = html
            .select(&sel("section#plan-etcd p.strip a"))
            .map(|a| a.value().attr("title").unwrap().to_string())
            .collect();
        assert_eq!(strip.len(), 4);
        assert_eq!(strip[0], "a: valid, seed 5");
        assert!(strip[3].starts_with("d: no results"), "{strip:?}");
    }
}
