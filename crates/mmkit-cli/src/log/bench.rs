//! `mmkit log bench`: presents [`mmkit_lab::store`] as a table with the targets and
//! a verdict for each, or as JSON.

use std::path::PathBuf;

use crate::progress::Progress;
use clap::Args;
use mmkit::store::Durability;
use mmkit_lab::store::{LogBenchOptions, LogBenchReport, LogBenchRow};
use mmkit_lab::Spread;
use serde::Serialize;

/// Options of `mmkit log bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Runs of every measurement; the median is reported with the lowest and highest.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Where to write the logs (a scratch directory inside it, removed afterwards);
    /// default the system temporary directory. Its file system decides the cost of
    /// fdatasync.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Scale every count by this factor (0.5 halves the run, 2 doubles it). Defaults
    /// per run: 1 000 000 appends (at most 64 MiB of payload) with Process durability,
    /// 1 000 with Sync and one writer, 4 000 with Sync and 8 writers.
    #[arg(long, value_name = "FACTOR", default_value_t = 1.0, value_parser = factor_arg)]
    count: f64,
    /// Record sizes (bytes; K, M suffixes), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "16,256,4K", value_parser = crate::args::size::<usize>)]
    sizes: Vec<usize>,
    /// Concurrent appenders of the group-commit case.
    #[arg(long, default_value_t = 8)]
    writers: usize,
    /// A tenth of the default counts (a quick look, noisier figures).
    #[arg(long)]
    quick: bool,
    /// Print the report as JSON (with the targets and verdicts).
    #[arg(long)]
    json: bool,
}

fn factor_arg(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() && f > 0.0 && f <= 1000.0 => Ok(f),
        _ => Err(format!("`{s}` is not a factor above 0 and up to 1000")),
    }
}

/// The targets.
const PROCESS_16B_PER_SEC: f64 = 5e6;
const SYNC_ONE_RATIO: f64 = 1.0;
const SYNC_GROUP_RATIO: f64 = 4.0;

/// A target and what was measured against it.
#[derive(Debug, Serialize)]
struct Verdict {
    target: String,
    measured: String,
    met: bool,
}

#[derive(Debug, Serialize)]
struct Output<'a> {
    #[serde(flatten)]
    report: &'a LogBenchReport,
    targets: Vec<Verdict>,
}

pub(crate) fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let base = if args.quick {
        LogBenchOptions::quick()
    } else {
        LogBenchOptions::default()
    };
    let scale = |n: usize| ((n as f64 * args.count).round() as usize).max(1);
    let opts = LogBenchOptions {
        sizes: args.sizes.clone(),
        runs: args.runs,
        dir: args.dir.clone(),
        process_appends: scale(base.process_appends),
        process_bytes: ((base.process_bytes as f64 * args.count) as u64).max(1),
        sync_appends: scale(base.sync_appends),
        group_appends: scale(base.group_appends).max(args.writers),
        writers: args.writers,
    };
    let progress = Progress::bar("measurements");
    let report = mmkit_lab::store::run(&opts, |p| {
        progress.at(p.done as u64, p.total as u64);
        progress.message(p.what.clone());
    })?;
    drop(progress);
    let targets = verdicts(&report);
    if args.json {
        let out = Output {
            report: &report,
            targets,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", render(&report, &targets));
    }
    Ok(())
}

/// The three targets, judged on the medians; a target whose row was not measured (a
/// `--sizes` without 16 B) is left out.
fn verdicts(report: &LogBenchReport) -> Vec<Verdict> {
    let mut out = Vec::new();
    if let Some(r) = report.row(16, Durability::Process, 1) {
        out.push(Verdict {
            target: format!(
                "16 B Process appends >= {:.0} M/s",
                PROCESS_16B_PER_SEC / 1e6
            ),
            measured: format!("{:.2} M/s", r.mmkit_per_sec.median / 1e6),
            met: r.mmkit_per_sec.median >= PROCESS_16B_PER_SEC,
        });
    }
    let sync = |writers: usize, want: f64| {
        let rows: Vec<&LogBenchRow> = report
            .rows
            .iter()
            .filter(|r| r.durability == Durability::Sync && r.writers == writers)
            .collect();
        let worst = rows.iter().map(|r| r.ratio).fold(f64::INFINITY, f64::min);
        (!rows.is_empty()).then(|| Verdict {
            target: format!(
                "Sync, {writers} writer{}: >= {want:.1}x write+fdatasync (every size)",
                if writers == 1 { "" } else { "s" }
            ),
            measured: format!("{worst:.2}x at worst"),
            met: worst >= want,
        })
    };
    out.extend(sync(1, SYNC_ONE_RATIO));
    let group = report
        .rows
        .iter()
        .find(|r| r.writers > 1)
        .map_or(8, |r| r.writers);
    out.extend(sync(group, SYNC_GROUP_RATIO));
    out
}

fn render(report: &LogBenchReport, targets: &[Verdict]) -> String {
    let mut table = crate::table::plain_table(&[
        "case",
        "size",
        "appends",
        "mmkit/s",
        "(min-max)",
        "peer",
        "peer/s",
        "(min-max)",
        "ratio",
        "flushes/append",
        "target",
        "verdict",
    ]);
    for r in &report.rows {
        let (target, verdict) = row_target(r);
        table.add_row(vec![
            case(r),
            mmkit::size::format_size(r.size as u64),
            count(r.appends as f64),
            rate(r.mmkit_per_sec.median),
            spread(&r.mmkit_per_sec),
            r.peer.to_string(),
            rate(r.peer_per_sec.median),
            spread(&r.peer_per_sec),
            format!("{:.2}x", r.ratio),
            format!("{:.3}", r.flushes_per_append),
            target,
            verdict,
        ]);
    }
    crate::table::align_right(&mut table, [2, 3, 4, 6, 7, 8, 9]);
    let m = &report.machine;
    let mut out = format!("{table}\n");
    for t in targets {
        out.push_str(&format!(
            "target {}: {} ({})\n",
            t.target,
            if t.met { "met" } else { "missed" },
            t.measured
        ));
    }
    out.push_str(&format!(
        "medians of {} runs; {} CPUs ({}), Linux {}; logs in {} ({})\n",
        report.runs,
        m.machine.cpus,
        m.machine.cpu_model,
        m.machine.kernel,
        m.dir.display(),
        m.file_system,
    ));
    out
}

/// The target a row is judged on, and the verdict, or dashes.
fn row_target(r: &LogBenchRow) -> (String, String) {
    let verdict = |met: bool| if met { "met" } else { "missed" }.to_string();
    match (r.durability, r.writers, r.size) {
        (Durability::Process, _, 16) => (
            format!(">= {:.0} M/s", PROCESS_16B_PER_SEC / 1e6),
            verdict(r.mmkit_per_sec.median >= PROCESS_16B_PER_SEC),
        ),
        (Durability::Sync, 1, _) => (
            format!(">= {SYNC_ONE_RATIO:.1}x"),
            verdict(r.ratio >= SYNC_ONE_RATIO),
        ),
        (Durability::Sync, _, _) => (
            format!(">= {SYNC_GROUP_RATIO:.1}x"),
            verdict(r.ratio >= SYNC_GROUP_RATIO),
        ),
        _ => ("-".into(), "-".into()),
    }
}

fn case(r: &LogBenchRow) -> String {
    match (r.durability, r.writers) {
        (Durability::Process, _) => "process".into(),
        (_, 1) => "sync".into(),
        (_, n) => format!("sync x{n}"),
    }
}

fn count(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.1} M", n / 1e6)
    } else if n >= 1e4 {
        format!("{:.0} k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

fn rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn spread(s: &Spread) -> String {
    format!("({}-{})", rate(s.min), rate(s.max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        assert_eq!(factor_arg("0.5"), Ok(0.5));
        for bad in ["0", "-1", "nan", "inf", "1001", "x"] {
            assert!(factor_arg(bad).is_err(), "{bad}");
        }
        assert_eq!(crate::args::size::<usize>("4K"), Ok(4096));
        assert!(crate::args::size::<usize>("0").is_err());
    }

    #[test]
    fn tiny_report_renders_every_row_and_target() {
        let dir = tempfile::tempdir().unwrap();
        let opts = LogBenchOptions {
            dir: Some(dir.path().to_path_buf()),
            ..LogBenchOptions::tiny()
        };
        let report = mmkit_lab::store::run(&opts, |_| {}).unwrap();
        let targets = verdicts(&report);
        assert_eq!(targets.len(), 3);
        let text = render(&report, &targets);
        // Each Sync row names its peer, and so do the two Sync targets.
        assert_eq!(
            text.matches("write+fdatasync").count(),
            2 * opts.sizes.len() + 2
        );
        assert_eq!(text.lines().filter(|l| l.starts_with("target ")).count(), 3);
        let json = serde_json::to_value(Output {
            report: &report,
            targets,
        })
        .unwrap();
        assert_eq!(json["rows"].as_array().unwrap().len(), 9);
        assert_eq!(json["targets"].as_array().unwrap().len(), 3);
    }
}
