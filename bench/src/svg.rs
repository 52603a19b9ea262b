//! Hand-written SVG charts (no plotting dependency): line/step charts with linear or log axes,
//! histograms and stage waterfalls. Output is plain SVG 1.1 that any browser renders.

use std::fmt::Write;

use crate::sample::Stage;

const W: f64 = 960.0;
const H: f64 = 540.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 210.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 64.0;

/// Colour-blind-friendly palette (Okabe–Ito, then Tableau extras).
const PALETTE: [&str; 12] = [
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000",
    "#8c564b", "#7f7f7f", "#bcbd22", "#17becf",
];

pub fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    Linear,
    Log,
}

#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
}

/// A horizontal reference line (a target, a percentile level).
#[derive(Debug, Clone)]
pub struct RefLine {
    pub y: f64,
    pub label: String,
}

#[derive(Debug, Clone)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_scale: Scale,
    pub series: Vec<Series>,
    /// Categorical x labels (position, text) instead of numeric ticks.
    pub x_ticks: Option<Vec<(f64, String)>>,
    /// Fixed y range; otherwise from 0 (linear) to the data maximum.
    pub y_range: Option<(f64, f64)>,
    /// Format y ticks as percentages of 1.0.
    pub y_percent: bool,
    pub refs: Vec<RefLine>,
    /// Draw steps (empirical CDF) instead of straight segments.
    pub step: bool,
    /// Draw a dot on every point (useful with few points).
    pub markers: bool,
}

/// Maps data to pixels on one axis.
#[derive(Debug, Clone, Copy)]
struct Axis {
    scale: Scale,
    lo: f64,
    hi: f64,
    px_lo: f64,
    px_hi: f64,
}

impl Axis {
    fn new(scale: Scale, lo: f64, hi: f64, px_lo: f64, px_hi: f64) -> Self {
        let (lo, hi) = match scale {
            Scale::Log => {
                let lo = lo.max(1e-3);
                (lo, hi.max(lo * 10.0))
            }
            Scale::Linear if hi <= lo => (lo, lo + 1.0),
            Scale::Linear => (lo, hi),
        };
        Self {
            scale,
            lo,
            hi,
            px_lo,
            px_hi,
        }
    }

    fn map(&self, v: f64) -> f64 {
        let t = match self.scale {
            Scale::Linear => (v - self.lo) / (self.hi - self.lo),
            Scale::Log => (v.max(self.lo).ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln()),
        };
        self.px_lo + t.clamp(-0.02, 1.02) * (self.px_hi - self.px_lo)
    }

    fn ticks(&self) -> Vec<f64> {
        match self.scale {
            Scale::Linear => linear_ticks(self.lo, self.hi),
            Scale::Log => log_ticks(self.lo, self.hi),
        }
    }
}

/// "Nice" ticks (1, 2, 5 × 10^k steps), about six of them.
pub fn linear_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if hi <= lo || !lo.is_finite() || !hi.is_finite() {
        return vec![lo];
    }
    let raw = (hi - lo) / 6.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut v = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while v <= hi + step * 1e-9 && out.len() < 50 {
        out.push(if v.abs() < step * 1e-9 { 0.0 } else { v });
        v += step;
    }
    out
}

/// 1, 2, 5 × 10^k ticks within [lo, hi]; only decades when that would be too many.
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let (a, b) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let mults: &[f64] = match b - a {
        ..=1 => &[1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
        2..=5 => &[1.0, 2.0, 5.0],
        _ => &[1.0],
    };
    let mut out = Vec::new();
    for e in a..=b {
        for m in mults {
            let v = m * 10f64.powi(e);
            if v >= lo * 0.999 && v <= hi * 1.001 {
                out.push(v);
            }
        }
    }
    out
}

pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".to_string()
    } else if a >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        trim(format!("{v:.1}"))
    } else if a >= 1.0 {
        trim(format!("{v:.2}"))
    } else {
        trim(format!("{v:.3}"))
    }
}

fn trim(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn header(out: &mut String, title: &str, height: f64) {
    let _ = write!(
        out,
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" font-family="Helvetica, Arial, sans-serif" font-size="12">
<title>{t}</title>
<rect x="0" y="0" width="{W}" height="{height}" fill="#ffffff"/>
<text x="{cx}" y="28" text-anchor="middle" font-size="16" font-weight="bold">{t}</text>
"##,
        t = esc(title),
        cx = W / 2.0
    );
}

fn frame(out: &mut String, x: &Axis, y: &Axis, x_label: &str, y_label: &str) {
    let (x0, x1, y0, y1) = (x.px_lo, x.px_hi, y.px_lo, y.px_hi);
    let _ = write!(
        out,
        r##"<rect x="{x0}" y="{y1}" width="{w}" height="{h}" fill="none" stroke="#333333"/>
<text x="{cx}" y="{ly}" text-anchor="middle" font-size="13">{xl}</text>
<text x="18" y="{cy}" text-anchor="middle" font-size="13" transform="rotate(-90 18 {cy})">{yl}</text>
"##,
        w = x1 - x0,
        h = y0 - y1,
        cx = (x0 + x1) / 2.0,
        ly = y0 + 44.0,
        cy = (y0 + y1) / 2.0,
        xl = esc(x_label),
        yl = esc(y_label),
    );
}

fn x_ticks(out: &mut String, x: &Axis, y: &Axis, ticks: &[(f64, String)]) {
    for (v, label) in ticks {
        let px = x.map(*v);
        let _ = writeln!(
            out,
            r##"<line x1="{px:.1}" y1="{}" x2="{px:.1}" y2="{}" stroke="#e0e0e0"/><text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"##,
            y.px_lo,
            y.px_hi,
            y.px_lo + 18.0,
            esc(label)
        );
    }
}

fn y_ticks(out: &mut String, x: &Axis, y: &Axis, percent: bool) {
    for v in y.ticks() {
        let py = y.map(v);
        let label = if percent {
            format!("{}%", fmt_num(v * 100.0))
        } else {
            fmt_num(v)
        };
        let _ = writeln!(
            out,
            r##"<line x1="{}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#e0e0e0"/><text x="{}" y="{:.1}" text-anchor="end">{label}</text>"##,
            x.px_lo,
            x.px_hi,
            x.px_lo - 6.0,
            py + 4.0
        );
    }
}

fn legend(out: &mut String, entries: &[(String, &str, bool)]) {
    let x = W - RIGHT + 16.0;
    for (i, (name, color, dashed)) in entries.iter().enumerate() {
        let y = TOP + 10.0 + i as f64 * 20.0;
        let dash = if *dashed {
            r#" stroke-dasharray="6 3""#
        } else {
            ""
        };
        let _ = writeln!(
            out,
            r##"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{color}" stroke-width="2.5"{dash}/><text x="{}" y="{}">{}</text>"##,
            x + 24.0,
            x + 30.0,
            y + 4.0,
            esc(name)
        );
    }
}

/// A line (or step) chart with a legend on the right.
pub fn line_chart(c: &LineChart) -> String {
    let mut out = String::new();
    header(&mut out, &c.title, H);
    let pts = c.series.iter().flat_map(|s| s.points.iter());
    let (mut xmin, mut xmax, mut ymax) = (f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY);
    for &(x, y) in pts {
        if x.is_finite() && (c.x_scale == Scale::Linear || x > 0.0) {
            xmin = xmin.min(x);
            xmax = xmax.max(x);
        }
        if y.is_finite() {
            ymax = ymax.max(y);
        }
    }
    for r in &c.refs {
        ymax = ymax.max(r.y);
    }
    if !xmin.is_finite() {
        (xmin, xmax) = (1.0, 10.0);
    }
    if !ymax.is_finite() {
        ymax = 1.0;
    }
    let (xlo, xhi) = match c.x_scale {
        Scale::Log => (
            10f64.powf(xmin.log10().floor()),
            10f64.powf(xmax.log10().ceil()),
        ),
        Scale::Linear if c.x_ticks.is_some() => (xmin - 0.5, xmax + 0.5),
        Scale::Linear => (xmin.min(0.0), xmax),
    };
    // A little headroom so a reference line never sits on the frame.
    let (ylo, yhi) = c.y_range.unwrap_or((0.0, nice_max(ymax * 1.05)));
    let x = Axis::new(c.x_scale, xlo, xhi, LEFT, W - RIGHT);
    let y = Axis::new(Scale::Linear, ylo, yhi, H - BOTTOM, TOP);
    frame(&mut out, &x, &y, &c.x_label, &c.y_label);
    let ticks: Vec<(f64, String)> = match &c.x_ticks {
        // At most ~10 category labels, or they overprint.
        Some(t) => {
            let every = t.len().div_ceil(10).max(1);
            t.iter().step_by(every).cloned().collect()
        }
        None => x.ticks().into_iter().map(|v| (v, fmt_num(v))).collect(),
    };
    x_ticks(&mut out, &x, &y, &ticks);
    y_ticks(&mut out, &x, &y, c.y_percent);
    for r in &c.refs {
        let py = y.map(r.y);
        let _ = writeln!(
            out,
            r##"<line x1="{}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#999999" stroke-dasharray="4 4"/><text x="{}" y="{:.1}" fill="#666666" text-anchor="end">{}</text>"##,
            x.px_lo,
            x.px_hi,
            x.px_hi - 4.0,
            py - 4.0,
            esc(&r.label)
        );
    }
    let mut entries = Vec::new();
    for (i, s) in c.series.iter().enumerate() {
        let col = color(i);
        entries.push((s.name.clone(), col, s.dashed));
        let mut d = String::new();
        let mut prev_y: Option<f64> = None;
        for &(vx, vy) in &s.points {
            if !vx.is_finite() || !vy.is_finite() || (c.x_scale == Scale::Log && vx <= 0.0) {
                continue;
            }
            let (px, py) = (x.map(vx), y.map(vy));
            match prev_y {
                None => {
                    let _ = write!(d, "M{px:.1},{py:.1}");
                }
                Some(p) if c.step => {
                    let _ = write!(d, " L{px:.1},{p:.1} L{px:.1},{py:.1}");
                }
                Some(_) => {
                    let _ = write!(d, " L{px:.1},{py:.1}");
                }
            }
            prev_y = Some(py);
            if c.markers {
                let _ = writeln!(
                    out,
                    r#"<circle cx="{px:.1}" cy="{py:.1}" r="3.5" fill="{col}"/>"#
                );
            }
        }
        if !d.is_empty() {
            let dash = if s.dashed {
                r#" stroke-dasharray="6 3""#
            } else {
                ""
            };
            let _ = writeln!(
                out,
                r#"<path d="{d}" fill="none" stroke="{col}" stroke-width="2"{dash}><title>{}</title></path>"#,
                esc(&s.name)
            );
        }
    }
    legend(&mut out, &entries);
    out.push_str("</svg>\n");
    out
}

fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|m| *m >= v)
        .unwrap_or(10.0 * mag)
}

/// One histogram bin: [lo, hi) and its count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bin {
    pub lo: f64,
    pub hi: f64,
    pub count: usize,
}

/// Bins `values` into about `n` bins, log-spaced when the data spans more than 20x.
pub fn bins(values: &[f64], n: usize) -> (Vec<Bin>, Scale) {
    let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() || n == 0 {
        return (Vec::new(), Scale::Linear);
    }
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let log = min > 0.0 && max / min > 20.0;
    let edges: Vec<f64> = if log {
        let (a, b) = (min.ln(), max.ln());
        (0..=n)
            .map(|i| (a + (b - a) * i as f64 / n as f64).exp())
            .collect()
    } else {
        let (a, b) = if max > min {
            (min, max)
        } else {
            (min - 0.5, max + 0.5)
        };
        (0..=n).map(|i| a + (b - a) * i as f64 / n as f64).collect()
    };
    let mut out: Vec<Bin> = edges
        .windows(2)
        .map(|w| Bin {
            lo: w[0],
            hi: w[1],
            count: 0,
        })
        .collect();
    for x in v {
        let i = out.iter().position(|b| x < b.hi).unwrap_or(out.len() - 1);
        out[i].count += 1;
    }
    (out, if log { Scale::Log } else { Scale::Linear })
}

pub fn histogram(title: &str, x_label: &str, bins: &[Bin], scale: Scale) -> String {
    let mut out = String::new();
    header(&mut out, title, H);
    let (lo, hi) = match (bins.first(), bins.last()) {
        (Some(f), Some(l)) => (f.lo, l.hi),
        _ => (1.0, 10.0),
    };
    let ymax = bins.iter().map(|b| b.count).max().unwrap_or(1).max(1) as f64;
    let x = Axis::new(scale, lo, hi, LEFT, W - RIGHT);
    let y = Axis::new(Scale::Linear, 0.0, nice_max(ymax), H - BOTTOM, TOP);
    frame(&mut out, &x, &y, x_label, "messages");
    let ticks: Vec<(f64, String)> = x
        .ticks()
        .into_iter()
        .filter(|v| *v >= lo && *v <= hi)
        .map(|v| (v, fmt_num(v)))
        .collect();
    x_ticks(&mut out, &x, &y, &ticks);
    y_ticks(&mut out, &x, &y, false);
    for b in bins {
        let (x0, x1) = (x.map(b.lo), x.map(b.hi));
        let y1 = y.map(b.count as f64);
        let _ = writeln!(
            out,
            r##"<rect x="{x0:.1}" y="{y1:.1}" width="{:.1}" height="{:.1}" fill="{}" stroke="#ffffff" stroke-width="0.5"><title>{}–{} ms: {}</title></rect>"##,
            (x1 - x0).max(0.5),
            (y.px_lo - y1).max(0.0),
            color(0),
            fmt_num(b.lo),
            fmt_num(b.hi),
            b.count
        );
    }
    let total: usize = bins.iter().map(|b| b.count).sum();
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}">{total} messages</text>"#,
        W - RIGHT + 16.0,
        TOP + 10.0
    );
    out.push_str("</svg>\n");
    out
}

/// One message's stages for the waterfall.
#[derive(Debug, Clone)]
pub struct WaterfallPanel {
    pub title: String,
    pub stages: Vec<Stage>,
    pub first_token_ms: Option<f64>,
    pub total_ms: Option<f64>,
}

/// Stage bars on a shared time axis, one panel per message; budgets drawn as dashed outlines.
pub fn waterfall(title: &str, panels: &[WaterfallPanel]) -> String {
    const ROW: f64 = 22.0;
    const LABEL_W: f64 = 150.0;
    let rows: usize = panels.iter().map(|p| p.stages.len().max(1) + 4).sum();
    let height = TOP + BOTTOM + rows as f64 * ROW + 20.0;
    let mut out = String::new();
    header(&mut out, title, height);
    // The axis follows what happened, not the budgets: a 400 ms budget around a 1 ms stage
    // would squash every bar to nothing. Budgets past the axis are clipped (their value is in
    // the bar's label).
    let mut max = 0.0f64;
    for p in panels {
        for s in &p.stages {
            max = max.max(s.start_ms + s.duration_ms);
        }
        max = max
            .max(p.first_token_ms.unwrap_or(0.0))
            .max(p.total_ms.unwrap_or(0.0));
    }
    let max = if max > 0.0 { nice_max(max * 1.1) } else { 1.0 };
    let left = LEFT + LABEL_W;
    let x = Axis::new(Scale::Linear, 0.0, max, left, W - 60.0);
    let mut yy = TOP + 10.0;
    for p in panels {
        let _ = writeln!(
            out,
            r#"<text x="{LEFT}" y="{:.1}" font-weight="bold" font-size="13">{}</text>"#,
            yy + 12.0,
            esc(&p.title)
        );
        yy += ROW * 1.2;
        let top = yy;
        let mut stages = p.stages.clone();
        stages.sort_by(|a, b| a.start_ms.total_cmp(&b.start_ms));
        if stages.is_empty() {
            let _ = writeln!(
                out,
                r##"<text x="{left}" y="{:.1}" fill="#666666">no stage timings in this message</text>"##,
                yy + 14.0
            );
            yy += ROW;
        }
        for s in &stages {
            let (x0, x1) = (x.map(s.start_ms), x.map(s.start_ms + s.duration_ms));
            let outcome = s.outcome.as_deref().unwrap_or("ok");
            let fill = if s.over_budget() {
                "#D55E00"
            } else if matches!(outcome, "ok" | "hit" | "miss" | "done" | "") {
                color(0)
            } else {
                "#999999"
            };
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                left - 8.0,
                yy + 15.0,
                esc(&s.stage)
            );
            if let Some(b) = s.budget_ms {
                let _ = writeln!(
                    out,
                    r##"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#333333" stroke-dasharray="3 2"><title>budget {} ms</title></rect>"##,
                    yy + 3.0,
                    (x.map((s.start_ms + b).min(max)) - x0).max(0.5),
                    ROW - 6.0,
                    fmt_num(b)
                );
            }
            let budget = s
                .budget_ms
                .map(|b| format!(" / {} ms", fmt_num(b)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                r#"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{fill}"><title>{}: start {} ms, {} ms{budget} ({})</title></rect>"#,
                yy + 5.0,
                (x1 - x0).max(1.0),
                ROW - 10.0,
                esc(&s.stage),
                fmt_num(s.start_ms),
                fmt_num(s.duration_ms),
                esc(outcome)
            );
            // Label right of the bar or of its budget box, whichever ends later.
            let budget_end = s.budget_ms.map_or(x1, |b| x.map((s.start_ms + b).min(max)));
            let _ = writeln!(
                out,
                r##"<text x="{:.1}" y="{:.1}" fill="#333333">{} ms{}</text>"##,
                x1.max(x0 + 1.0).max(budget_end) + 4.0,
                yy + 15.0,
                fmt_num(s.duration_ms),
                esc(&budget)
            );
            yy += ROW;
        }
        // Two label rows so "first token" and "done" never overprint each other.
        for (row, (v, label, col)) in [
            (p.first_token_ms, "first token", "#009E73"),
            (p.total_ms, "done", "#CC79A7"),
        ]
        .into_iter()
        .enumerate()
        {
            if let Some(v) = v {
                let px = x.map(v);
                let _ = writeln!(
                    out,
                    r#"<line x1="{px:.1}" y1="{top:.1}" x2="{px:.1}" y2="{:.1}" stroke="{col}" stroke-width="2"/><text x="{:.1}" y="{:.1}" fill="{col}">{label} {} ms</text>"#,
                    yy + 4.0 + row as f64 * 14.0,
                    px + 3.0,
                    yy + 14.0 + row as f64 * 14.0,
                    fmt_num(v)
                );
            }
        }
        yy += ROW * 2.4;
    }
    // Time axis at the bottom.
    let axis_y = yy;
    let _ = writeln!(
        out,
        r##"<line x1="{left}" y1="{axis_y:.1}" x2="{}" y2="{axis_y:.1}" stroke="#333333"/>"##,
        W - 60.0
    );
    for v in x.ticks() {
        let px = x.map(v);
        let _ = writeln!(
            out,
            r##"<line x1="{px:.1}" y1="{axis_y:.1}" x2="{px:.1}" y2="{:.1}" stroke="#333333"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            axis_y + 5.0,
            axis_y + 18.0,
            fmt_num(v)
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="13">ms since the gateway received the query (dashed box = budget, orange = over budget, grey = skipped or failed)</text>"#,
        (left + W - 60.0) / 2.0,
        axis_y + 38.0
    );
    out.push_str("</svg>\n");
    out
}

/// A tiny well-formedness check: tags balance and nest, attributes are quoted, no stray `<` or
/// unescaped `&`. Enough to catch a broken generator; not a full XML parser.
pub fn check_well_formed(svg: &str) -> Result<(), String> {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = svg;
    let mut roots = 0;
    while let Some(i) = rest.find('<') {
        check_text(&rest[..i])?;
        let after = &rest[i + 1..];
        let end = after
            .find('>')
            .ok_or_else(|| "unterminated tag".to_string())?;
        let tag = &after[..end];
        rest = &after[end + 1..];
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack
                .pop()
                .ok_or_else(|| format!("</{name}> closes nothing"))?;
            if open != name.trim() {
                return Err(format!("</{name}> closes <{open}>"));
            }
            continue;
        }
        let name: String = tag
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '/')
            .collect();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == ':' || c == '-')
        {
            return Err(format!("bad tag <{tag}>"));
        }
        if !tag.matches('"').count().is_multiple_of(2) {
            return Err(format!("unbalanced quotes in <{tag}>"));
        }
        if stack.is_empty() {
            roots += 1;
        }
        if !tag.ends_with('/') {
            stack.push(name);
        }
    }
    check_text(rest)?;
    if let Some(open) = stack.pop() {
        return Err(format!("<{open}> is never closed"));
    }
    if roots != 1 {
        return Err(format!("{roots} root elements"));
    }
    Ok(())
}

fn check_text(text: &str) -> Result<(), String> {
    let mut s = text;
    while let Some(i) = s.find('&') {
        let ent = &s[i..];
        let ok = ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#"]
            .iter()
            .any(|e| ent.starts_with(e));
        if !ok {
            return Err(format!("unescaped & in {:?}", &ent[..ent.len().min(20)]));
        }
        s = &ent[1..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ticks_are_nice() {
        assert_eq!(linear_ticks(0.0, 10.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(
            log_ticks(1.0, 100.0),
            vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
        );
        assert_eq!(log_ticks(100.0, 1000.0).len(), 10);
        assert_eq!(
            log_ticks(1.0, 1e8),
            (0..=8).map(|e| 10f64.powi(e)).collect::<Vec<_>>()
        );
        assert_eq!(fmt_num(0.25), "0.25");
        assert_eq!(fmt_num(1500.0), "1500");
        assert_eq!(fmt_num(12.0), "12");
    }

    #[test]
    fn bins_count_every_value() {
        let v: Vec<f64> = (1..=1000).map(f64::from).collect();
        let (b, scale) = bins(&v, 30);
        assert_eq!(scale, Scale::Log);
        assert_eq!(b.iter().map(|b| b.count).sum::<usize>(), 1000);
        let (b, scale) = bins(&[5.0, 5.0, 5.0], 10);
        assert_eq!(scale, Scale::Linear);
        assert_eq!(b.iter().map(|b| b.count).sum::<usize>(), 3);
    }

    #[test]
    fn checker_rejects_broken_svg() {
        assert!(check_well_formed("<svg><g></svg>").is_err());
        assert!(check_well_formed("<svg><text>a & b</text></svg>").is_err());
        assert!(check_well_formed("<svg/><svg/>").is_err());
        assert!(check_well_formed("<svg><text x=\"1>a</text></svg>").is_err());
        check_well_formed("<?xml version=\"1.0\"?><svg><text>a &amp; b</text><g/></svg>").unwrap();
    }

    #[test]
    fn charts_are_well_formed_and_labelled() {
        let c = LineChart {
            title: "TTFT <CDF> & more".into(),
            x_label: "ms".into(),
            y_label: "share".into(),
            x_scale: Scale::Log,
            series: vec![Series {
                name: "greeting".into(),
                points: vec![(1.0, 0.1), (10.0, 0.5), (100.0, 1.0)],
                dashed: false,
            }],
            x_ticks: None,
            y_range: Some((0.0, 1.0)),
            y_percent: true,
            refs: vec![RefLine {
                y: 0.95,
                label: "p95".into(),
            }],
            step: true,
            markers: false,
        };
        let svg = line_chart(&c);
        check_well_formed(&svg).unwrap();
        assert!(svg.contains("greeting") && svg.contains("p95") && svg.contains("&lt;CDF&gt;"));
        let (b, s) = bins(&[1.0, 2.0, 300.0], 10);
        check_well_formed(&histogram("h", "ms", &b, s)).unwrap();
        let w = waterfall(
            "w",
            &[WaterfallPanel {
                title: "median".into(),
                stages: vec![Stage {
                    stage: "intent".into(),
                    start_ms: 0.0,
                    duration_ms: 40.0,
                    budget_ms: Some(35.0),
                    outcome: Some("ok".into()),
                }],
                first_token_ms: Some(50.0),
                total_ms: Some(80.0),
            }],
        );
        check_well_formed(&w).unwrap();
        assert!(w.contains("intent") && w.contains("#D55E00"));
    }
}
