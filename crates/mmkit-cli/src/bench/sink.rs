//! `mmkit bench --sink pipe|socket|file`: send a file to a sink with each copy method
//! ([`mmkit::bench::run_sinks`] measures); progress, then a table or JSON.

use std::io::Write;
use std::process::ExitCode;

use comfy_table::Table;
use mmkit::bench::{self, CacheState, SinkOptions, SinkReport, SinkResult};
use mmkit::size::format_size;

use super::{BenchArgs, CacheArg};

/// The sink bench's options from the arguments (`--methods` already checked to be copy
/// methods).
fn options(args: &BenchArgs, methods: Vec<mmkit::copy::Method>) -> SinkOptions {
    let mut o = if args.quick {
        SinkOptions::quick()
    } else {
        SinkOptions::default()
    };
    if !args.sizes.is_empty() {
        o.sizes = args.sizes.clone();
    }
    if let Some(runs) = args.runs {
        o.runs = runs;
    }
    if !methods.is_empty() {
        o.methods = methods;
    }
    o.sinks = args.sink.clone();
    o.sinks.dedup();
    o.caches = match args.cache {
        CacheArg::Warm => vec![CacheState::Warm],
        CacheArg::Cold => vec![CacheState::Cold],
        CacheArg::Both => vec![CacheState::Warm, CacheState::Cold],
    };
    o.file = args.file.clone();
    o.dir = args.dir.clone();
    o.buffer = usize::try_from(args.buffer).unwrap_or(usize::MAX);
    o
}

pub(super) fn run(args: &BenchArgs, methods: Vec<mmkit::copy::Method>) -> anyhow::Result<ExitCode> {
    let options = options(args, methods);
    let Some(report) = super::with_progress(|p| bench::run_sinks(&options, p)) else {
        return Ok(ExitCode::from(1));
    };
    super::emit(args.json, &report, |out| {
        let m = &report.machine;
        writeln!(
            out,
            "machine: {} CPUs, {}, Linux {}; pipes {} (splice's got {}), buffer {}",
            m.cpus,
            m.cpu_model,
            m.kernel,
            format_size(report.pipe_size as u64),
            report
                .pipe_size_granted
                .map_or("-".into(), |p| format_size(p as u64)),
            format_size(report.buffer as u64),
        )?;
        writeln!(out, "{}", table(&report))?;
        writeln!(
            out,
            "CPU s/GB: user + system seconds of the sending thread (getrusage RUSAGE_THREAD) per \
         10^9 bytes; the reader thread's are apart (reader)"
        )?;
        writeln!(
            out,
            "vs read+write: the method's CPU per GB over read+write's (below 1 = less CPU); \
         n/a: the kernel refused the method for this sink"
        )?;
        Ok(())
    })
}

fn gbps(size: u64, ns: Option<f64>) -> String {
    ns.map_or(String::new(), |ns| format!("{:.2}", size as f64 / ns))
}

fn secs(s: Option<f64>) -> String {
    s.map_or(String::new(), |s| format!("{s:.3}"))
}

fn row(r: &SinkResult) -> Vec<String> {
    let head = vec![
        format_size(r.size),
        r.sink.name().into(),
        r.cache.name().into(),
        r.method.name().into(),
    ];
    if let Some(why) = &r.refused {
        let errno = why.split_whitespace().next().unwrap_or(why);
        let mut row = head;
        row.push(format!("n/a ({errno})"));
        row.extend(vec![String::new(); 5]);
        return row;
    }
    let mut row = head;
    row.extend([
        r.throughput_gbps
            .map_or(String::new(), |g| format!("{g:.2}")),
        format!("{} – {}", gbps(r.size, r.max_ns), gbps(r.size, r.min_ns)),
        secs(r.cpu_s_per_gb),
        format!(
            "{} – {}",
            secs(r.cpu_min_s_per_gb),
            secs(r.cpu_max_s_per_gb)
        ),
        r.cpu_ratio_to_read_write
            .map_or("-".into(), |x| format!("{x:.2}x")),
        secs(r.reader_cpu_s_per_gb),
    ]);
    row
}

fn table(report: &SinkReport) -> Table {
    const HEADER: [&str; 10] = [
        "size",
        "sink",
        "cache",
        "method",
        "GB/s",
        "min – max",
        "CPU s/GB",
        "min – max",
        "vs read+write",
        "reader s/GB",
    ];
    let mut table = crate::table::plain_table(&HEADER);
    for r in &report.results {
        table.add_row(row(r));
    }
    crate::table::align_right(&mut table, [0, 4, 5, 6, 7, 8, 9]);
    table
}
