//! Latency and throughput plots, drawn with plotters into PNG and SVG files beside the report.
//!
//! Text in plotters needs a font: with the `ab_glyph` feature plotters measures and draws text
//! from a font registered at run time, and so no system library (fontconfig, freetype) is linked.
//! We register DejaVu Sans (Debian's `fonts-dejavu-core`, or the file named by `FAULTLINE_FONT`)
//! once per process. When no font can be found the plots are still drawn, without any text:
//! gridlines at the same positions, and the page (which always carries titles, axis ranges and
//! legends in HTML) says that tick labels are missing and why. A report never fails for want of
//! a font, and never pretends to have labels it could not draw.
//!
//! A million-event history has about half a million latency points: drawn one by one they would
//! make a 40 MB SVG and a slow PNG, yet most of them land on the same pixels. Points are
//! therefore thinned per series on a grid of [`CELL_PX`]-pixel cells: the plot looks the same at
//! its resolution, and its size is bounded by the number of cells, not of operations.

use anyhow::{anyhow, Context, Result};
use checkers::{EventType, FaultWindow, Op};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Environment variable naming a TrueType font file for plot text.
pub const FONT_ENV: &str = "FAULTLINE_FONT";

/// Where plot fonts are looked for, in order, after [`FONT_ENV`].
pub const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
];

/// Side of the grid cell, in pixels, on which latency points are thinned.
pub const CELL_PX: u32 = 4;
/// Latency panels drawn one per `f`; the rarest `f`s beyond this share one "other" panel.
pub const LATENCY_PANELS_MAX: usize = 6;

const WIDTH_PX: u32 = 1100;
const PANEL_HEIGHT_PX: u32 = 230;
const THROUGHPUT_HEIGHT_PX: u32 = 320;
const THROUGHPUT_BUCKETS_TARGET: f64 = 200.0;

/// Colours of outcomes, shared with the page's CSS.
pub const OK_RGB: (u8, u8, u8) = (31, 119, 180);
pub const FAIL_RGB: (u8, u8, u8) = (214, 39, 40);
pub const INFO_RGB: (u8, u8, u8) = (255, 127, 14);
/// Colours of fault kinds, in the order kinds are first seen (then reused).
pub const FAULT_RGB: &[(u8, u8, u8)] = &[
    (148, 103, 189),
    (44, 160, 44),
    (140, 86, 75),
    (227, 119, 194),
    (23, 190, 207),
    (188, 189, 34),
    (127, 127, 127),
];
const FAULT_ALPHA: f64 = 0.2;

static FONT: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// The font plots use: `Ok(path)` once registered, or `Err(why)` when plots go without text.
pub fn font() -> Result<&'static Path, &'static str> {
    match FONT.get_or_init(load_font) {
        Ok(p) => Ok(p.as_path()),
        Err(e) => Err(e.as_str()),
    }
}

fn load_font() -> Result<PathBuf, String> {
    let candidates: Vec<PathBuf> = match std::env::var_os(FONT_ENV) {
        Some(p) if !p.is_empty() => vec![PathBuf::from(p)],
        _ => FONT_PATHS.iter().map(PathBuf::from).collect(),
    };
    let mut tried = Vec::new();
    for path in candidates {
        match std::fs::read(&path) {
            Ok(bytes) => {
                // plotters keeps registered fonts for the life of the process and wants them
                // 'static; this runs once per process (OnceLock), so the leak is bounded.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return Ok(path);
                }
                tried.push(format!("{} (not a TrueType font)", path.display()));
            }
            Err(e) => tried.push(format!("{} ({e})", path.display())),
        }
    }
    Err(format!(
        "no font for plot labels: tried {}; install Debian's fonts-dejavu-core or set {FONT_ENV} to a .ttf file",
        tried.join(", ")
    ))
}

/// How history times map to the plots' x axis.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Axis {
    /// History time shown as x = 0.
    pub origin: u64,
    /// History time units per plotted unit: 1e9 (ns to s), or 1 for synthetic (line) time.
    pub per_unit: f64,
    pub synthetic: bool,
    /// x of the last event.
    pub end: f64,
}

impl Axis {
    pub fn x(&self, t: u64) -> f64 {
        t.saturating_sub(self.origin) as f64 / self.per_unit
    }
    fn x_desc(&self) -> &'static str {
        if self.synthetic {
            "history line (no timestamps)"
        } else {
            "time since start (s)"
        }
    }
    fn latency_desc(&self) -> &'static str {
        if self.synthetic {
            "latency (lines)"
        } else {
            "latency (ms)"
        }
    }
    /// A latency in the plotted unit: milliseconds, or lines for synthetic time.
    fn latency(&self, ns_or_lines: u64) -> f64 {
        if self.synthetic {
            ns_or_lines as f64
        } else {
            ns_or_lines as f64 / 1e6
        }
    }
}

/// What [`draw`] wrote and what the page should say about it.
#[derive(Debug, Clone, Default)]
pub struct PlotOutput {
    /// The files written, PNG and SVG.
    pub files: Vec<PathBuf>,
    /// Why the plots carry no text, when no font could be found.
    pub no_text_reason: Option<String>,
    /// Fault kinds and their shading colour, in legend order.
    pub fault_kinds: Vec<(String, (u8, u8, u8))>,
    /// One line per plot saying what its axes span (the page prints it under the image).
    pub latency_caption: String,
    pub throughput_caption: String,
    /// Points drawn / ops with a latency, and ops never completed (not plotted).
    pub latency_points_drawn: usize,
    pub latency_ops: usize,
    pub never_completed: usize,
}

pub(crate) const LATENCY_STEM: &str = "latency";
pub(crate) const THROUGHPUT_STEM: &str = "throughput";

/// Draws `latency.{png,svg}` and `throughput.{png,svg}` into `dir`.
pub(crate) fn draw(
    dir: &Path,
    ops: &[Op],
    windows: &[FaultWindow],
    axis: &Axis,
) -> Result<PlotOutput> {
    let text = font().is_ok();
    let mut out = PlotOutput {
        no_text_reason: font().err().map(str::to_string),
        ..Default::default()
    };
    let kinds = fault_kinds(windows);
    let shades = shades(windows, &kinds, axis);
    out.fault_kinds = kinds;

    let lat = LatencyData::of(ops, axis);
    out.latency_points_drawn = lat.points_drawn();
    out.latency_ops = lat.ops;
    out.never_completed = lat.never_completed;
    out.latency_caption = format!(
        "{} ops with a completion, {} points after thinning to {CELL_PX}-pixel cells, {} never completed (not plotted); x: 0 to {} {}, y: {} to {} {} on a log scale, gridlines at each power of ten",
        lat.ops,
        out.latency_points_drawn,
        lat.never_completed,
        fmt_num(axis.end),
        if axis.synthetic { "lines" } else { "s" },
        fmt_num(lat.y_lo),
        fmt_num(lat.y_hi),
        if axis.synthetic { "lines" } else { "ms" },
    );
    let lat_size = (WIDTH_PX, PANEL_HEIGHT_PX * lat.panels.len().max(1) as u32);
    let png = dir.join(format!("{LATENCY_STEM}.png"));
    draw_latency(
        BitMapBackend::new(&png, lat_size).into_drawing_area(),
        &lat,
        &shades,
        axis,
        text,
    )
    .with_context(|| format!("{}: cannot draw", png.display()))?;
    out.files.push(png);
    let svg = dir.join(format!("{LATENCY_STEM}.svg"));
    let mut buf = String::new();
    draw_latency(
        SVGBackend::with_string(&mut buf, lat_size).into_drawing_area(),
        &lat,
        &shades,
        axis,
        text,
    )
    .with_context(|| format!("{}: cannot draw", svg.display()))?;
    crate::results::write_atomic(&svg, buf.as_bytes())?;
    out.files.push(svg);

    let tp = Throughput::of(ops, axis);
    out.throughput_caption = format!(
        "completions per {} in buckets of {} {}; x: 0 to {} {}, y: 0 to {}",
        if axis.synthetic { "line" } else { "second" },
        fmt_num(tp.bucket),
        if axis.synthetic { "lines" } else { "s" },
        fmt_num(axis.end),
        if axis.synthetic { "lines" } else { "s" },
        fmt_num(tp.y_hi),
    );
    let tp_size = (WIDTH_PX, THROUGHPUT_HEIGHT_PX);
    let png = dir.join(format!("{THROUGHPUT_STEM}.png"));
    draw_throughput(
        BitMapBackend::new(&png, tp_size).into_drawing_area(),
        &tp,
        &shades,
        axis,
        text,
    )
    .with_context(|| format!("{}: cannot draw", png.display()))?;
    out.files.push(png);
    let svg = dir.join(format!("{THROUGHPUT_STEM}.svg"));
    let mut buf = String::new();
    draw_throughput(
        SVGBackend::with_string(&mut buf, tp_size).into_drawing_area(),
        &tp,
        &shades,
        axis,
        text,
    )
    .with_context(|| format!("{}: cannot draw", svg.display()))?;
    crate::results::write_atomic(&svg, buf.as_bytes())?;
    out.files.push(svg);
    Ok(out)
}

/// Fault kinds in order of first appearance, each with its colour.
pub(crate) fn fault_kinds(windows: &[FaultWindow]) -> Vec<(String, (u8, u8, u8))> {
    let mut kinds: Vec<(String, (u8, u8, u8))> = Vec::new();
    for w in windows {
        if !kinds.iter().any(|(k, _)| *k == w.kind) {
            let rgb = FAULT_RGB[kinds.len() % FAULT_RGB.len()];
            kinds.push((w.kind.clone(), rgb));
        }
    }
    kinds
}

/// A shaded x range: which kind (index into the kinds) and where.
struct Shade {
    kind: usize,
    x0: f64,
    x1: f64,
}

struct Shades {
    kinds: Vec<(String, RGBColor)>,
    spans: Vec<Shade>,
}

fn shades(windows: &[FaultWindow], kinds: &[(String, (u8, u8, u8))], axis: &Axis) -> Shades {
    // A zero-length window (an instant fault such as a kill) still gets a visible sliver.
    let min_width = axis.end * 0.002;
    let spans = windows
        .iter()
        .map(|w| {
            let x0 = axis.x(w.start_time);
            let x1 = w.end_time.map_or(axis.end, |t| axis.x(t));
            Shade {
                kind: kinds.iter().position(|(k, _)| *k == w.kind).unwrap_or(0),
                x0,
                x1: x1.max(x0 + min_width),
            }
        })
        .collect();
    Shades {
        kinds: kinds
            .iter()
            .map(|(k, (r, g, b))| (k.clone(), RGBColor(*r, *g, *b)))
            .collect(),
        spans,
    }
}

const OUTCOMES: [(EventType, &str); 3] = [
    (EventType::Ok, "ok"),
    (EventType::Fail, "fail"),
    (EventType::Info, "info"),
];

fn outcome_color(i: usize) -> RGBColor {
    let (r, g, b) = [OK_RGB, FAIL_RGB, INFO_RGB][i];
    RGBColor(r, g, b)
}

struct Panel {
    name: String,
    /// Thinned points per outcome (ok, fail, info).
    series: [Vec<(f64, f64)>; 3],
    /// Ops per outcome, before thinning.
    counts: [usize; 3],
}

struct LatencyData {
    panels: Vec<Panel>,
    y_lo: f64,
    y_hi: f64,
    ops: usize,
    never_completed: usize,
}

impl LatencyData {
    fn of(ops: &[Op], axis: &Axis) -> Self {
        // Panels: the most frequent fs, the rest together.
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for op in ops {
            *counts.entry(op.f.as_str()).or_default() += 1;
        }
        let mut by_count: Vec<(&str, usize)> = counts.into_iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let overflow = by_count.len() > LATENCY_PANELS_MAX;
        let named = if overflow {
            LATENCY_PANELS_MAX - 1
        } else {
            by_count.len()
        };
        let mut names: Vec<String> = by_count[..named]
            .iter()
            .map(|(f, _)| f.to_string())
            .collect();
        if overflow {
            names.push(format!("{} other fs", by_count.len() - named));
        }
        let panel_of: BTreeMap<&str, usize> = by_count
            .iter()
            .enumerate()
            .map(|(i, (f, _))| (*f, i.min(names.len().saturating_sub(1))))
            .collect();

        // Range of latencies, for the log scale and the thinning grid.
        let (mut lo, mut hi) = (f64::INFINITY, 0f64);
        let mut never_completed = 0;
        let mut with_latency = 0;
        for op in ops {
            match op.complete_time {
                Some(c) => {
                    let l = axis.latency(c.saturating_sub(op.invoke_time));
                    with_latency += 1;
                    if l > 0.0 {
                        lo = lo.min(l);
                    }
                    hi = hi.max(l);
                }
                None => never_completed += 1,
            }
        }
        let (y_lo, y_hi) = decade_range(lo, hi, axis.synthetic);

        let cells_x = (WIDTH_PX / CELL_PX) as usize;
        let cells_y = (PANEL_HEIGHT_PX / CELL_PX) as usize;
        let mut seen: Vec<Vec<bool>> = vec![vec![false; cells_x * cells_y]; names.len() * 3];
        let mut panels: Vec<Panel> = names
            .into_iter()
            .map(|name| Panel {
                name,
                series: Default::default(),
                counts: [0; 3],
            })
            .collect();
        let (log_lo, log_span) = (y_lo.log10(), (y_hi.log10() - y_lo.log10()).max(1e-9));
        let x_span = axis.end.max(1e-9);
        for op in ops {
            let Some(c) = op.complete_time else { continue };
            let x = axis.x(op.invoke_time);
            let y = axis.latency(c.saturating_sub(op.invoke_time)).max(y_lo);
            let p = panel_of[op.f.as_str()];
            let s = OUTCOMES
                .iter()
                .position(|(t, _)| *t == op.outcome)
                .unwrap_or(2);
            let cx = ((x / x_span) * (cells_x - 1) as f64) as usize;
            let cy = (((y.log10() - log_lo) / log_span) * (cells_y - 1) as f64) as usize;
            let cell = cx.min(cells_x - 1) * cells_y + cy.min(cells_y - 1);
            panels[p].counts[s] += 1;
            let seen = &mut seen[p * 3 + s];
            if !seen[cell] {
                seen[cell] = true;
                panels[p].series[s].push((x, y));
            }
        }
        LatencyData {
            panels,
            y_lo,
            y_hi,
            ops: with_latency,
            never_completed,
        }
    }

    fn points_drawn(&self) -> usize {
        self.panels
            .iter()
            .flat_map(|p| p.series.iter())
            .map(Vec::len)
            .sum()
    }
}

/// Powers of ten around [lo, hi] (a log axis needs a positive lower bound).
fn decade_range(lo: f64, hi: f64, synthetic: bool) -> (f64, f64) {
    let floor = if synthetic { 1.0 } else { 1e-3 };
    if !lo.is_finite() || hi <= 0.0 {
        return (floor, floor * 1000.0);
    }
    let lo = 10f64.powf(lo.max(floor).log10().floor());
    let mut hi = 10f64.powf(hi.max(lo).log10().ceil());
    if hi <= lo {
        hi = lo * 10.0;
    }
    (lo, hi)
}

struct Throughput {
    bucket: f64,
    /// Per outcome: (bucket centre, completions per unit).
    lines: [Vec<(f64, f64)>; 3],
    y_hi: f64,
}

impl Throughput {
    fn of(ops: &[Op], axis: &Axis) -> Self {
        let bucket = nice_step(axis.end / THROUGHPUT_BUCKETS_TARGET, axis.synthetic);
        let n = ((axis.end / bucket).floor() as usize + 1).max(1);
        let mut counts = [vec![0u64; n], vec![0u64; n], vec![0u64; n]];
        for op in ops {
            let Some(c) = op.complete_time else { continue };
            let s = OUTCOMES
                .iter()
                .position(|(t, _)| *t == op.outcome)
                .unwrap_or(2);
            let b = ((axis.x(c) / bucket) as usize).min(n - 1);
            counts[s][b] += 1;
        }
        let mut y_hi: f64 = 0.0;
        let lines = counts.map(|c| {
            c.iter()
                .enumerate()
                .map(|(i, &k)| {
                    let rate = k as f64 / bucket;
                    y_hi = y_hi.max(rate);
                    ((i as f64 + 0.5) * bucket, rate)
                })
                .collect()
        });
        Throughput {
            bucket,
            lines,
            y_hi: if y_hi > 0.0 { y_hi * 1.1 } else { 1.0 },
        }
    }
}

/// The smallest 1, 2 or 5 times a power of ten that is at least `raw` (whole lines for
/// synthetic time).
pub(crate) fn nice_step(raw: f64, synthetic: bool) -> f64 {
    let floor = if synthetic { 1.0 } else { 1e-6 };
    let raw = raw.max(floor);
    let exp = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * exp >= raw * (1.0 - 1e-9) {
            return m * exp;
        }
    }
    10.0 * exp
}

/// A short human form of a figure for captions.
pub(crate) fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        trim_zeros(format!("{v:.3}"))
    } else if v.abs() >= 1e-4 {
        trim_zeros(format!("{v:.6}"))
    } else {
        format!("{v:.3e}")
    }
}

fn trim_zeros(s: String) -> String {
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("{e}")
}

/// Gridlines drawn by hand when the mesh cannot draw labels (no font): vertical lines at nice
/// x steps, horizontal lines at the given y values.
fn manual_grid<DB: DrawingBackend, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    x_end: f64,
    y_lines: &[f64],
    y_range: (f64, f64),
    synthetic: bool,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let grid = RGBColor(200, 200, 200);
    let step = nice_step(x_end / 10.0, synthetic);
    let xs: Vec<f64> = (0..=((x_end / step) as usize).min(100))
        .map(|i| i as f64 * step)
        .collect();
    chart
        .draw_series(
            xs.into_iter()
                .map(|x| PathElement::new(vec![(x, y_range.0), (x, y_range.1)], grid)),
        )
        .map_err(err)?;
    chart
        .draw_series(
            y_lines
                .iter()
                .map(|&y| PathElement::new(vec![(0.0, y), (x_end, y)], grid)),
        )
        .map_err(err)?;
    Ok(())
}

fn draw_latency<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    data: &LatencyData,
    shades: &Shades,
    axis: &Axis,
    text: bool,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(err)?;
    let x_end = axis.end.max(1e-9);
    let decades: Vec<f64> = {
        let mut v = Vec::new();
        let mut y = data.y_lo;
        while y <= data.y_hi * 1.0001 && v.len() < 40 {
            v.push(y);
            y *= 10.0;
        }
        v
    };
    let n = data.panels.len().max(1);
    let areas = root.split_evenly((n, 1));
    let empty = Panel {
        name: "no operations".into(),
        series: Default::default(),
        counts: [0; 3],
    };
    let panels: Vec<&Panel> = if data.panels.is_empty() {
        vec![&empty]
    } else {
        data.panels.iter().collect()
    };
    for (panel, area) in panels.into_iter().zip(areas) {
        let mut builder = ChartBuilder::on(&area);
        builder.margin(6).margin_right(16);
        if text {
            let name: String = crate::escape::truncate(&panel.name, 60).into_owned();
            builder
                .caption(format!("latency of {name}"), ("sans-serif", 16))
                .x_label_area_size(34)
                .y_label_area_size(70);
        }
        let mut chart = builder
            .build_cartesian_2d(0f64..x_end, (data.y_lo..data.y_hi).log_scale())
            .map_err(err)?;
        if text {
            chart
                .configure_mesh()
                .x_desc(axis.x_desc())
                .y_desc(axis.latency_desc())
                .y_label_formatter(&|y| fmt_num(*y))
                .draw()
                .map_err(err)?;
        } else {
            manual_grid(
                &mut chart,
                x_end,
                &decades,
                (data.y_lo, data.y_hi),
                axis.synthetic,
            )?;
        }
        draw_shades(&mut chart, shades, (data.y_lo, data.y_hi), text)?;
        for (s, (_, label)) in OUTCOMES.iter().enumerate() {
            let color = outcome_color(s);
            let points = &panel.series[s];
            let series = match s {
                0 => chart
                    .draw_series(
                        points
                            .iter()
                            .map(|&p| EmptyElement::at(p) + Circle::new((0, 0), 2, color.filled())),
                    )
                    .map_err(err)?,
                1 => chart
                    .draw_series(points.iter().map(|&p| {
                        EmptyElement::at(p) + Cross::new((0, 0), 3, color.stroke_width(1))
                    }))
                    .map_err(err)?,
                _ => chart
                    .draw_series(points.iter().map(|&p| {
                        EmptyElement::at(p) + TriangleMarker::new((0, 0), 4, color.filled())
                    }))
                    .map_err(err)?,
            };
            if text {
                let series = series.label(format!("{label} ({} ops)", panel.counts[s]));
                match s {
                    0 => series.legend(move |(x, y)| Circle::new((x, y), 3, color.filled())),
                    1 => series.legend(move |(x, y)| Cross::new((x, y), 3, color.stroke_width(1))),
                    _ => {
                        series.legend(move |(x, y)| TriangleMarker::new((x, y), 4, color.filled()))
                    }
                };
            }
        }
        if text {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 12))
                .draw()
                .map_err(err)?;
        }
    }
    root.present().map_err(err)?;
    Ok(())
}

fn draw_shades<DB: DrawingBackend, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    shades: &Shades,
    (y_lo, y_hi): (f64, f64),
    text: bool,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    for (k, (name, color)) in shades.kinds.iter().enumerate() {
        let color = *color;
        let series = chart
            .draw_series(shades.spans.iter().filter(|s| s.kind == k).map(|s| {
                Rectangle::new(
                    [(s.x0, y_lo), (s.x1, y_hi)],
                    color.mix(FAULT_ALPHA).filled(),
                )
            }))
            .map_err(err)?;
        if text {
            let name: String = crate::escape::truncate(name, 40).into_owned();
            series.label(name).legend(move |(x, y)| {
                Rectangle::new([(x - 6, y - 5), (x + 6, y + 5)], color.mix(0.5).filled())
            });
        }
    }
    Ok(())
}

fn draw_throughput<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    data: &Throughput,
    shades: &Shades,
    axis: &Axis,
    text: bool,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(err)?;
    let x_end = axis.end.max(1e-9);
    let mut builder = ChartBuilder::on(&root);
    builder.margin(6).margin_right(16);
    if text {
        builder
            .caption("throughput (completions by outcome)", ("sans-serif", 16))
            .x_label_area_size(34)
            .y_label_area_size(70);
    }
    let mut chart = builder
        .build_cartesian_2d(0f64..x_end, 0f64..data.y_hi)
        .map_err(err)?;
    if text {
        chart
            .configure_mesh()
            .x_desc(axis.x_desc())
            .y_desc(if axis.synthetic {
                "ops per line"
            } else {
                "ops per second"
            })
            .y_label_formatter(&|y| fmt_num(*y))
            .draw()
            .map_err(err)?;
    } else {
        let step = nice_step(data.y_hi / 5.0, false);
        let ys: Vec<f64> = (0..=((data.y_hi / step) as usize).min(50))
            .map(|i| i as f64 * step)
            .collect();
        manual_grid(&mut chart, x_end, &ys, (0.0, data.y_hi), axis.synthetic)?;
    }
    draw_shades(&mut chart, shades, (0.0, data.y_hi), text)?;
    for (s, (_, label)) in OUTCOMES.iter().enumerate() {
        let color = outcome_color(s);
        let series = chart
            .draw_series(LineSeries::new(
                data.lines[s].iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(err)?;
        if text {
            series.label(*label).legend(move |(x, y)| {
                PathElement::new(vec![(x - 8, y), (x + 8, y)], color.stroke_width(2))
            });
        }
    }
    if text {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 12))
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps_are_one_two_five() {
        assert_eq!(nice_step(0.3, false), 0.5);
        assert_eq!(nice_step(1.0, false), 1.0);
        assert_eq!(nice_step(1.2, false), 2.0);
        assert_eq!(nice_step(70.0, false), 100.0);
        assert_eq!(nice_step(0.2, true), 1.0);
    }

    #[test]
    fn decades_enclose_the_latencies() {
        assert_eq!(decade_range(0.35, 42.0, false), (0.1, 100.0));
        assert_eq!(decade_range(5.0, 5.0, false), (1.0, 10.0));
        assert_eq!(decade_range(f64::INFINITY, 0.0, false), (1e-3, 1.0));
    }
}
