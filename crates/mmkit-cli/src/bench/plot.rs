//! `mmkit bench read --plot`: throughput against file size (log x axis), one line a method,
//! one chart per pattern × cache state, in a grid. SVG or PNG, chosen by the extension.
//! SVG is written by hand (text is laid out by the viewer, so no fonts are needed here);
//! PNG goes through `plotters`, whose text needs a TrueType font on the machine.

mod svg;

use std::path::Path;

use anyhow::{bail, Context};
use mmkit::size::format_size;
use mmkit_lab::bench::{BenchReport, CacheState, CaseResult, Method, Pattern};
use plotters::coord::Shift;
use plotters::prelude::*;

const CHART: (u32, u32) = (640, 440);

fn methods(report: &BenchReport) -> Vec<Method> {
    let mut methods = Vec::new();
    for r in &report.results {
        if !methods.contains(&r.method) {
            methods.push(r.method);
        }
    }
    methods
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Svg,
    Png,
}

fn format(path: &Path) -> anyhow::Result<Format> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("svg") => Ok(Format::Svg),
        Some("png") => Ok(Format::Png),
        _ => bail!(
            "--plot {}: the file name must end in .svg or .png",
            path.display()
        ),
    }
}

/// Check the plot path before the bench runs: a known extension, an existing directory.
pub(super) fn check_path(path: &Path) -> anyhow::Result<()> {
    format(path)?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            bail!(
                "--plot {}: no directory {}",
                path.display(),
                parent.display()
            );
        }
    }
    Ok(())
}

/// Draw the report to `path`.
pub(super) fn draw(report: &BenchReport, path: &Path) -> anyhow::Result<()> {
    let mut combos: Vec<(Pattern, CacheState)> = Vec::new();
    for r in &report.results {
        if !combos.contains(&(r.pattern, r.cache)) {
            combos.push((r.pattern, r.cache));
        }
    }
    let cols = combos.iter().map(|c| c.1).fold(Vec::new(), |mut v, c| {
        if !v.contains(&c) {
            v.push(c);
        }
        v
    });
    let cols = cols.len().max(1);
    let rows = combos.len().div_ceil(cols).max(1);
    let size = (CHART.0 * cols as u32, CHART.1 * rows as u32 + 40);
    let what = || format!("--plot {}", path.display());
    match format(path)? {
        Format::Svg => {
            let svg = svg::chart(report, &combos, cols, size, &methods(report));
            std::fs::write(path, svg).with_context(what)?;
        }
        Format::Png => {
            let root = BitMapBackend::new(path, size).into_drawing_area();
            grid(report, &combos, rows, cols, &root).with_context(|| {
                format!(
                    "{}: PNG text needs a TrueType font (install fonts-dejavu-core) or use .svg",
                    what()
                )
            })?;
            root.present().with_context(what)?;
        }
    }
    Ok(())
}

fn grid<DB: DrawingBackend>(
    report: &BenchReport,
    combos: &[(Pattern, CacheState)],
    rows: usize,
    cols: usize,
    root: &DrawingArea<DB, Shift>,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let root = root.titled(
        "mmkit bench: throughput by file size",
        ("sans-serif", 24).into_font(),
    )?;
    let areas = root.split_evenly((rows, cols));
    let methods = methods(report);
    for (area, &(pattern, cache)) in areas.iter().zip(combos) {
        panel(report, pattern, cache, &methods, area)?;
    }
    Ok(())
}

/// One panel: throughput against file size for one pattern and cache state, a line a
/// method.
fn panel<DB: DrawingBackend>(
    report: &BenchReport,
    pattern: Pattern,
    cache: CacheState,
    methods: &[Method],
    area: &DrawingArea<DB, Shift>,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let here: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.pattern == pattern && r.cache == cache)
        .collect();
    let ((xmin, xmax), ymax) = ranges(&here);
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("{} reads, {} cache", pattern.name(), cache.name()),
            ("sans-serif", 18).into_font(),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(xmin..xmax, 0.0..ymax)?;
    chart
        .configure_mesh()
        .x_desc("file size (log scale)")
        .y_desc("throughput (GB/s)")
        .x_label_formatter(&|v| format_size(v.exp2().round() as u64))
        .draw()?;
    for (i, &m) in methods.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> = here
            .iter()
            .filter(|r| r.method == m)
            .map(|r| ((r.size as f64).log2(), r.throughput_gbps))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(m.name())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 3, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// The x range (log2 of the sizes, at least 2 wide) and the top of the y axis (GB/s) of
/// a panel's results.
fn ranges(here: &[&CaseResult]) -> ((f64, f64), f64) {
    // x is log2 of the size, so the ticks fall on powers of two.
    let xmin = (here.iter().map(|r| r.size).min().unwrap_or(1) as f64).log2();
    let xmax = (here.iter().map(|r| r.size).max().unwrap_or(1) as f64).log2();
    let (xmin, xmax) = if xmin == xmax {
        (xmin - 1.0, xmax + 1.0)
    } else {
        (xmin, xmax)
    };
    let ymax = here.iter().map(|r| r.throughput_gbps).fold(0.0, f64::max) * 1.15;
    let ymax = if ymax > 0.0 { ymax } else { 1.0 };
    ((xmin, xmax), ymax)
}
