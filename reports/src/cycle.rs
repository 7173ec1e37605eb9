//! A dependency cycle of the transactional checkers (list-append, rw-register) drawn as an
//! inline SVG: the transactions on a circle, each edge a curved arrow labelled with its kind
//! (ww, wr, rw, realtime), each transaction a link to its invocation in the timeline.
//!
//! Drawn by hand, with no layout library: a cycle has a handful of nodes, and a circle shows its
//! order at a glance. Edges bend to one side, so the two edges of a two-transaction cycle do not
//! overlap. Everything from the result goes through the escape functions, like the rest of the
//! page.

use crate::escape::push_html;
use serde_json::Value;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Cycles longer than this are listed, not drawn.
const NODES_DRAWN_MAX: usize = 12;
const NODE_RADIUS: f64 = 20.0;

/// One transaction of the cycle: its name and the event its link points at.
struct Node {
    name: String,
    invoke_index: Option<u64>,
    process: Option<u64>,
}

/// Draws `data.cycle` with `data.steps` when the anomaly has them; false when it does not.
pub fn push_cycle_svg(out: &mut String, data: &Value) -> bool {
    let (Some(cycle), Some(steps)) = (
        data.get("cycle").and_then(Value::as_array),
        data.get("steps").and_then(Value::as_array),
    ) else {
        return false;
    };
    let nodes: Vec<Node> = cycle
        .iter()
        .map(|t| Node {
            name: t
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string(),
            invoke_index: t.get("invoke_index").and_then(Value::as_u64),
            process: t.get("process").and_then(Value::as_u64),
        })
        .collect();
    let n = nodes.len();
    if !(2..=NODES_DRAWN_MAX).contains(&n) || steps.len() != n {
        return false;
    }
    let radius = 60.0 + 18.0 * n as f64;
    let size = 2.0 * radius + 4.0 * NODE_RADIUS + 40.0;
    let center = size / 2.0;
    let at = |i: usize| {
        let angle = -std::f64::consts::FRAC_PI_2 + 2.0 * std::f64::consts::PI * i as f64 / n as f64;
        (center + radius * angle.cos(), center + radius * angle.sin())
    };
    // Marker ids must be unique on the page, which may hold many cycles.
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let _ = write!(
        out,
        "<svg class=\"cycle\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{size:.0}\" height=\"{size:.0}\" viewBox=\"0 0 {size:.0} {size:.0}\" role=\"img\" aria-label=\"dependency cycle\">\
         <defs><marker id=\"arrow-{id}\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#444\"/></marker></defs>"
    );
    for (i, step) in steps.iter().enumerate() {
        let (x1, y1) = at(i);
        let (x2, y2) = at((i + 1) % n);
        let (dx, dy) = (x2 - x1, y2 - y1);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        let (ux, uy) = (dx / len, dy / len);
        // Start and end on the node circles; bend to the left of the direction of travel.
        let (sx, sy) = (x1 + ux * NODE_RADIUS, y1 + uy * NODE_RADIUS);
        let (ex, ey) = (x2 - ux * (NODE_RADIUS + 2.0), y2 - uy * (NODE_RADIUS + 2.0));
        let bend = 0.18 * len;
        let (cx, cy) = ((x1 + x2) / 2.0 + uy * bend, (y1 + y2) / 2.0 - ux * bend);
        let kind = step.get("type").and_then(Value::as_str).unwrap_or("?");
        let color = match kind {
            "rw" => "#b03030",
            "wr" => "#2060b0",
            "ww" => "#208040",
            _ => "#777",
        };
        let _ = write!(
            out,
            "<path d=\"M{sx:.1},{sy:.1} Q{cx:.1},{cy:.1} {ex:.1},{ey:.1}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" marker-end=\"url(#arrow-{id})\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\" fill=\"{color}\">",
            // The curve's midpoint, moved off the line to the outside of the bend.
            (x1 + x2) / 4.0 + cx / 2.0 + uy * 12.0,
            (y1 + y2) / 4.0 + cy / 2.0 - ux * 12.0 + 4.0
        );
        push_html(out, kind);
        out.push_str("</text>");
    }
    for (i, node) in nodes.iter().enumerate() {
        let (x, y) = at(i);
        if let Some(ev) = node.invoke_index {
            let _ = write!(out, "<a href=\"#ev-{ev}\">");
        }
        let _ = write!(
            out,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{NODE_RADIUS}\" fill=\"#f4f4f4\" stroke=\"#444\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"13\" text-anchor=\"middle\">",
            y + 4.0
        );
        push_html(out, &node.name);
        out.push_str("</text>");
        if let Some(p) = node.process {
            let _ = write!(
                out,
                "<text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#666\">p{p}</text>",
                y + NODE_RADIUS + 12.0
            );
        }
        if node.invoke_index.is_some() {
            out.push_str("</a>");
        }
    }
    out.push_str("</svg>\n");
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_cycle_is_drawn_with_one_arrow_per_step_and_links_to_the_timeline() {
        let data = json!({
            "cycle": [
                {"name": "T1", "process": 0, "invoke_index": 0},
                {"name": "T2", "process": 1, "invoke_index": 2},
            ],
            "steps": [{"type": "rw"}, {"type": "wr"}],
        });
        let mut out = String::new();
        assert!(push_cycle_svg(&mut out, &data));
        assert_eq!(out.matches("marker-end").count(), 2);
        assert!(out.contains("href=\"#ev-2\""));
        assert!(out.contains(">rw</text>") && out.contains(">T2</text>"));
        let mut none = String::new();
        assert!(!push_cycle_svg(&mut none, &json!({"key": "x"})));
        assert!(none.is_empty());
    }

    #[test]
    fn names_are_escaped() {
        let data = json!({
            "cycle": [{"name": "<b>"}, {"name": "T2"}],
            "steps": [{"type": "ww"}, {"type": "<i>"}],
        });
        let mut out = String::new();
        assert!(push_cycle_svg(&mut out, &data));
        assert!(!out.contains("<b>") && !out.contains("<i>"));
    }
}
