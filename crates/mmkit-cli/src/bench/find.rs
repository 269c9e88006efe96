//! `mmkit bench --find`: `mmkit find` against ripgrep and grep
//! ([`mmkit::bench::run_find`] measures); progress, then a table or JSON.

use std::io::Write;
use std::process::ExitCode;

use comfy_table::Table;
use mmkit::bench::{self, FindOptions, FindReport, FindResult};
use mmkit::size::format_size;

use super::BenchArgs;

fn options(args: &BenchArgs) -> anyhow::Result<FindOptions> {
    let exe = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("cannot find this program's own path to time it: {e}"))?;
    let mut o = FindOptions::new(exe);
    if args.quick {
        o.size = 256 << 20;
    }
    if let Some(&size) = args.sizes.first() {
        o.size = size;
    }
    if let Some(runs) = args.runs {
        o.runs = runs;
    }
    o.dir = args.dir.clone();
    Ok(o)
}

pub(super) fn run(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let options = options(args)?;
    let Some(report) = super::with_progress(|p| bench::run_find(&options, p)) else {
        return Ok(ExitCode::from(1));
    };
    super::emit(args.json, &report, |out| {
        let m = &report.machine;
        writeln!(
            out,
            "machine: {} CPUs, {}, Linux {}; warm text of {}: {} lines hold {:?} ({} matches); \
         median of {} runs",
            m.cpus,
            m.cpu_model,
            m.kernel,
            format_size(report.size),
            report.lines,
            report.needle,
            report.matches,
            options.runs,
        )?;
        writeln!(out, "{}", table(&report))?;
        writeln!(
            out,
            "vs ripgrep: ripgrep's median time over the tool's (above 1 = faster); user and sys: \
         the process's CPU seconds (getrusage of the child)"
        )?;
        Ok(())
    })
}

fn ms(ns: Option<f64>) -> String {
    ns.map_or(String::new(), |ns| format!("{:.1} ms", ns / 1e6))
}

fn row(r: &FindResult) -> Vec<String> {
    let mut row = vec![r.mode.to_string(), r.tool.to_string(), r.command.clone()];
    if let Some(why) = &r.skipped {
        row.push(format!("skipped: {why}"));
        return row;
    }
    let secs = |s: Option<f64>| s.map_or(String::new(), |s| format!("{s:.3}"));
    row.extend([
        ms(r.median_ns),
        format!("{} – {}", ms(r.min_ns), ms(r.max_ns)),
        secs(r.user_s),
        secs(r.sys_s),
        r.vs_ripgrep.map_or("-".into(), |x| format!("{x:.2}x")),
    ]);
    row
}

fn table(report: &FindReport) -> Table {
    const HEADER: [&str; 8] = [
        "mode",
        "tool",
        "command",
        "median",
        "min – max",
        "user s",
        "sys s",
        "vs ripgrep",
    ];
    let mut table = crate::table::plain_table(&HEADER);
    for r in &report.results {
        table.add_row(row(r));
    }
    crate::table::align_right(&mut table, [3, 4, 5, 6, 7]);
    table
}
