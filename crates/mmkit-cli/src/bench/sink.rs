//! `mmkit bench sink [--to pipe,socket,file]`: send a file to a sink with each copy method
//! ([`mmkit_lab::bench::run_sinks`] measures); progress, then a table or JSON.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use comfy_table::Table;
use mmkit::size::format_size;
use mmkit_lab::bench::{self, Sink, SinkOptions, SinkReport, SinkResult};

use super::CacheArg;

/// Arguments of `mmkit bench sink`.
#[derive(Debug, clap::Args)]
pub(crate) struct SinkArgs {
    /// Send this file instead of generated ones (it must not be written meanwhile; cold
    /// runs evict it from the page cache).
    file: Option<PathBuf>,
    /// The sinks, comma-separated: pipe, socket (loopback TCP), file (default all three).
    #[arg(long, value_delimiter = ',', value_parser = sink_arg)]
    to: Vec<Sink>,
    #[command(flatten)]
    sweep: super::Sweep,
    /// Copy methods, comma-separated: read+write, mmap+write, sendfile, splice,
    /// copy_file_range (default all).
    #[arg(long, value_delimiter = ',', value_parser = method_arg)]
    methods: Vec<mmkit::copy::Method>,
    /// Page-cache state before each timed pass.
    #[arg(long, value_enum, default_value = "both")]
    cache: CacheArg,
    /// read+write's and the readers' buffer size.
    #[arg(long, value_parser = crate::args::size::<u64>, default_value = "1M")]
    buffer: u64,
}

fn sink_arg(s: &str) -> Result<Sink, String> {
    Sink::from_name(s).ok_or_else(|| format!("`{s}` is not a sink (pipe, socket or file)"))
}

/// A copy method; a read method is refused with the subcommand that compares those.
fn method_arg(s: &str) -> Result<mmkit::copy::Method, String> {
    if let Some(m) = mmkit::copy::Method::from_name(s) {
        return Ok(m);
    }
    if mmkit_lab::bench::Method::from_name(s).is_some() {
        return Err(format!(
            "`{s}` is a read method: compare those with `mmkit bench read`"
        ));
    }
    let copy: Vec<&str> = mmkit::copy::Method::ALL.iter().map(|m| m.name()).collect();
    Err(format!(
        "`{s}` is not a copy method (one of {})",
        copy.join(", ")
    ))
}

/// The sink bench's options from the arguments.
fn options(args: &SinkArgs) -> SinkOptions {
    let mut o: SinkOptions = args.sweep.options();
    if !args.methods.is_empty() {
        o.methods = args.methods.clone();
        o.methods.dedup();
    }
    if !args.to.is_empty() {
        o.sinks = args.to.clone();
        o.sinks.dedup();
    }
    o.caches = args.cache.states();
    o.file = args.file.clone();
    o.buffer = usize::try_from(args.buffer).unwrap_or(usize::MAX);
    o
}

pub(super) fn run(args: &SinkArgs) -> anyhow::Result<ExitCode> {
    let options = options(args);
    let Some(report) = super::with_progress(|p| bench::run_sinks(&options, p)) else {
        return Ok(ExitCode::from(1));
    };
    super::emit(args.sweep.json, &report, |out| {
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
