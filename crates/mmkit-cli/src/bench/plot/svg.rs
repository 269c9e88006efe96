//! A hand-written SVG chart grid: log-x lines of throughput per method.

use std::fmt::Write;

use mmkit::size::format_size;
use mmkit_lab::bench::{BenchReport, CacheState, Method, Pattern};

use super::CHART;

/// Colours of the lines, one a method (cycled).
const COLORS: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 55.0;
const TITLE: f64 = 40.0;

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten, at least `v`.
fn nice(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|&x| x >= v)
        .unwrap_or(10.0 * p)
}

/// The whole SVG document.
pub(super) fn chart(
    report: &BenchReport,
    combos: &[(Pattern, CacheState)],
    cols: usize,
    (width, height): (u32, u32),
    methods: &[Method],
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="26" text-anchor="middle" font-size="20">mmkit bench: throughput by file size ({} CPUs, Linux {})</text>"#,
        width / 2,
        report.machine.cpus,
        esc(&report.machine.kernel)
    );
    for (i, &(pattern, cache)) in combos.iter().enumerate() {
        let x0 = (i % cols) as f64 * CHART.0 as f64;
        let y0 = TITLE + (i / cols) as f64 * CHART.1 as f64;
        panel(&mut s, report, pattern, cache, methods, x0, y0);
    }
    s.push_str("</svg>\n");
    s
}

/// Where one panel draws: its plot area and its axes' ranges.
struct Frame {
    /// The panel's left edge (for the rotated y label).
    x0: f64,
    /// The plot area's left, top, width and height.
    pl: f64,
    pt: f64,
    pw: f64,
    ph: f64,
    /// log10 of the smallest and largest size on the x axis.
    lo: f64,
    hi: f64,
    /// The top of the y axis, GB/s.
    ymax: f64,
}

impl Frame {
    fn px(&self, size: u64) -> f64 {
        self.pl + ((size as f64).log10() - self.lo) / (self.hi - self.lo) * self.pw
    }

    fn py(&self, v: f64) -> f64 {
        self.pt + self.ph - v / self.ymax * self.ph
    }
}

fn panel(
    s: &mut String,
    report: &BenchReport,
    pattern: Pattern,
    cache: CacheState,
    methods: &[Method],
    x0: f64,
    y0: f64,
) {
    let here: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.pattern == pattern && r.cache == cache)
        .collect();
    let mut sizes: Vec<u64> = here.iter().map(|r| r.size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let (lo, hi) = match (sizes.first(), sizes.last()) {
        (Some(&a), Some(&b)) if a < b => ((a as f64).log10(), (b as f64).log10()),
        (Some(&a), _) => ((a as f64 / 2.0).log10(), (a as f64 * 2.0).log10()),
        _ => (0.0, 1.0),
    };
    let f = Frame {
        x0,
        pl: x0 + LEFT,
        pt: y0 + TOP,
        pw: CHART.0 as f64 - LEFT - RIGHT,
        ph: CHART.1 as f64 - TOP - BOTTOM,
        lo,
        hi,
        ymax: nice(here.iter().map(|r| r.throughput_gbps).fold(0.0, f64::max) * 1.1),
    };
    let (pl, pt, pw, ph) = (f.pl, f.pt, f.pw, f.ph);
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="16">{} reads, {} cache</text>
<rect x="{pl:.1}" y="{pt:.1}" width="{pw:.1}" height="{ph:.1}" fill="none" stroke="black"/>"#,
        pl + pw / 2.0,
        y0 + 24.0,
        pattern.name(),
        cache.name()
    );
    axes(s, &f, &sizes);
    for (i, &m) in methods.iter().enumerate() {
        let mut pts: Vec<(u64, f64)> = here
            .iter()
            .filter(|r| r.method == m)
            .map(|r| (r.size, r.throughput_gbps))
            .collect();
        pts.sort_by_key(|p| p.0);
        line(s, &f, i, m, &pts);
    }
}

/// The grid lines, their labels, and the axis titles.
fn axes(s: &mut String, f: &Frame, sizes: &[u64]) {
    let (pl, pt, pw, ph, ymax) = (f.pl, f.pt, f.pw, f.ph, f.ymax);
    for k in 0..=5 {
        let v = ymax * k as f64 / 5.0;
        let y = f.py(v);
        let _ = writeln!(
            s,
            r##"<line x1="{pl:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end" font-size="12">{}</text>"##,
            pl + pw,
            pl - 6.0,
            y + 4.0,
            if ymax < 1.0 {
                format!("{v:.2}")
            } else {
                format!("{v:.1}")
            }
        );
    }
    for &size in sizes {
        let x = f.px(size);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{pt:.1}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" font-size="12">{}</text>"##,
            pt + ph,
            pt + ph + 16.0,
            format_size(size)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="13">file size (log scale)</text>
<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="13" transform="rotate(-90 {:.1} {:.1})">throughput (GB/s)</text>"#,
        pl + pw / 2.0,
        pt + ph + 38.0,
        f.x0 + 18.0,
        pt + ph / 2.0,
        f.x0 + 18.0,
        pt + ph / 2.0
    );
}

/// The `i`th method's line through `pts` (size, GB/s), its points and its legend entry.
fn line(s: &mut String, f: &Frame, i: usize, m: Method, pts: &[(u64, f64)]) {
    let color = COLORS[i % COLORS.len()];
    let (pl, pt) = (f.pl, f.pt);
    let line: Vec<String> = pts
        .iter()
        .map(|&(x, y)| format!("{:.1},{:.1}", f.px(x), f.py(y)))
        .collect();
    let _ = writeln!(
        s,
        r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"><title>{}</title></polyline>"#,
        line.join(" "),
        m.name()
    );
    for &(x, y) in pts {
        let _ = writeln!(
            s,
            r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
            f.px(x),
            f.py(y)
        );
    }
    let ly = pt + 14.0 + i as f64 * 16.0;
    let _ = writeln!(
        s,
        r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="2"/><text x="{:.1}" y="{:.1}" font-size="12">{}</text>"#,
        pl + 8.0,
        pl + 28.0,
        pl + 32.0,
        ly + 4.0,
        m.name()
    );
}
