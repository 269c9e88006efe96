//! `mmkit bench read` (and `mmkit bench` alone): compare ways to read a file (mapped
//! scans, `read()`, `pread`), warm and cold, over a sweep of file sizes. The lab
//! ([`mmkit_lab::bench`]) measures; this file parses the arguments and prints a table,
//! JSON or a chart (`plot.rs`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use comfy_table::Table;
use mmkit::size::format_size;
use mmkit_lab::bench::{self, BenchOptions, BenchReport, CaseResult, Method, Pattern};

use super::CacheArg;

/// Arguments of `mmkit bench read` (and of `mmkit bench` without a subcommand).
#[derive(Debug, clap::Args)]
pub(crate) struct ReadArgs {
    /// Measure this file instead of generated ones (it must not be written meanwhile;
    /// cold runs evict it from the page cache).
    file: Option<PathBuf>,
    #[command(flatten)]
    sweep: super::Sweep,
    /// Methods, comma-separated: mmap, mmap-populate, mmap-seq, mmap-willneed, mmap-thp,
    /// mmap-scan (MapOptions::scan: sequential and huge page advice), read, pread (default
    /// all).
    #[arg(long, value_delimiter = ',', value_parser = method_arg)]
    methods: Vec<Method>,
    /// Access pattern.
    #[arg(long, value_enum, default_value = "both")]
    pattern: Which,
    /// Page-cache state before each timed pass.
    #[arg(long, value_enum, default_value = "both")]
    cache: CacheArg,
    /// read()/pread buffer size.
    #[arg(long, value_parser = crate::args::size::<u64>, default_value = "1M")]
    buffer: u64,
    /// 4 KiB reads in one random pass.
    #[arg(long, default_value_t = 1000)]
    random_reads: usize,
    /// Draw throughput against file size to FILE.svg or FILE.png.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// The flags that chose the other benches before they were subcommands, refused
    /// with the subcommand to use instead.
    #[arg(long, hide = true, num_args = 0.., value_name = "SINKS")]
    sink: Option<Vec<String>>,
    #[arg(long, hide = true)]
    find: bool,
}

impl ReadArgs {
    /// Exit with a usage error (2) naming the subcommand an old flag now is.
    fn refuse_old_flags(&self) {
        if let Some(sinks) = &self.sink {
            let to = match sinks.is_empty() {
                true => String::new(),
                false => format!(" --to {}", sinks.join(",")),
            };
            super::usage_error(
                "read",
                format!("--sink is a subcommand now: `mmkit bench sink{to}`"),
            )
        }
        if self.find {
            super::usage_error(
                "read",
                "--find is a subcommand now: `mmkit bench find`".into(),
            )
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Which {
    Seq,
    Random,
    Both,
}

/// A read method; a copy method is refused with the subcommand that compares those.
fn method_arg(s: &str) -> Result<Method, String> {
    if let Some(m) = Method::from_name(s) {
        return Ok(m);
    }
    if mmkit::copy::Method::from_name(s).is_some() {
        return Err(format!(
            "`{s}` is a copy method: compare those with `mmkit bench sink`"
        ));
    }
    let read: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
    Err(format!(
        "`{s}` is not a method (one of {})",
        read.join(", ")
    ))
}

fn config(args: &ReadArgs) -> BenchOptions {
    let mut c: BenchOptions = args.sweep.options();
    c.methods = args.methods.clone();
    c.methods.dedup();
    if c.methods.is_empty() {
        c.methods = Method::ALL.to_vec();
    }
    c.patterns = match args.pattern {
        Which::Seq => vec![Pattern::Seq],
        Which::Random => vec![Pattern::Random],
        Which::Both => vec![Pattern::Seq, Pattern::Random],
    };
    c.caches = args.cache.states();
    c.file = args.file.clone();
    c.buffer = usize::try_from(args.buffer).unwrap_or(usize::MAX);
    c.random_reads = args.random_reads;
    c
}

pub(super) fn run(args: &ReadArgs) -> anyhow::Result<ExitCode> {
    args.refuse_old_flags();
    if let Some(plot) = &args.plot {
        // Fail before measuring, not after.
        super::plot::check_path(plot)?;
    }
    let config = config(args);
    let Some(report) = super::with_progress(|p| bench::run(&config, p)) else {
        return Ok(ExitCode::from(1));
    };
    if let Some(path) = &args.plot {
        super::plot::draw(&report, path)?;
    }
    let mut out = std::io::stdout().lock();
    if args.sweep.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        let m = &report.machine;
        writeln!(
            out,
            "machine: {} CPUs, {}, Linux {}; buffer {}, {} random 4 KiB reads a pass",
            m.cpus,
            m.cpu_model,
            m.kernel,
            format_size(report.buffer as u64),
            report.random_reads
        )?;
        writeln!(out, "{}", table(&report))?;
        writeln!(
            out,
            "vs read(): read()'s median time over the method's (above 1 = faster than read())"
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A duration in nanoseconds as people read it.
fn time(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

fn row(r: &CaseResult) -> Vec<String> {
    vec![
        format_size(r.size),
        r.pattern.name().into(),
        r.cache.name().into(),
        r.method.name().into(),
        time(r.median_ns),
        format!("{} – {}", time(r.min_ns), time(r.max_ns)),
        format!("{:.2} GB/s", r.throughput_gbps),
        r.ops_per_sec
            .map_or(String::new(), |o| format!("{:.0} k/s", o / 1e3)),
        r.ratio_to_read.map_or("-".into(), |x| format!("{x:.2}x")),
    ]
}

fn table(report: &BenchReport) -> Table {
    const HEADER: [&str; 9] = [
        "size",
        "pattern",
        "cache",
        "method",
        "median",
        "min – max",
        "throughput",
        "reads/s",
        "vs read()",
    ];
    let mut table = crate::table::plain_table(&HEADER);
    for r in &report.results {
        table.add_row(row(r));
    }
    crate::table::align_right(&mut table, [0, 4, 5, 6, 7, 8]);
    table
}
