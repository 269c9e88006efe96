//! `mmkit bench`: compare ways to read a file (mapped scans, `read()`, `pread`), warm and
//! cold, over a sweep of file sizes; with `--sink`, ways to send it to a pipe, a socket or
//! a file (`sink.rs`). The library ([`mmkit::bench`]) measures; this module parses
//! arguments, shows progress, and prints a table, JSON or a chart.

mod find;
mod plot;
mod sink;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::progress::Progress;
use comfy_table::Table;
use mmkit::bench::{
    self, BenchOptions, BenchReport, CacheState, CaseResult, Method, Pattern, Sink,
};
use mmkit::size::format_size;

/// Arguments of `mmkit bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Measure this file instead of generated ones (it must not be written meanwhile;
    /// cold runs evict it from the page cache).
    file: Option<PathBuf>,
    /// File sizes to generate, comma-separated (4K, 64K, 1M, 16M, 256M; K/M/G are
    /// powers of 1024). Default: 4K,64K,1M,16M,256M (--quick: 4K,1M,16M); with --sink 1G
    /// (--quick: 64M).
    #[arg(long, alias = "size", value_delimiter = ',', value_parser = crate::args::size::<u64>)]
    sizes: Vec<u64>,
    /// Timed runs per case; the median is reported (default 5, --quick 3; with --sink 3).
    #[arg(long)]
    runs: Option<usize>,
    /// Methods, comma-separated: mmap, mmap-populate, mmap-seq, mmap-willneed, mmap-thp,
    /// mmap-scan (MapOptions::scan: sequential and huge page advice), read, pread (default
    /// all); with --sink: read+write, mmap+write, sendfile, splice,
    /// copy_file_range (default all).
    #[arg(long, value_delimiter = ',', value_parser = method_arg)]
    methods: Vec<MethodArg>,
    /// Send the file to these sinks instead, comma-separated: pipe, socket (loopback TCP),
    /// file. Compares read+write, mmap+write, sendfile, splice (through a 1 MiB pipe) and
    /// copy_file_range side by side: GB/s and the sending thread's CPU seconds per GB.
    #[arg(
        long,
        value_delimiter = ',',
        value_parser = sink_arg,
        conflicts_with_all = ["plot", "pattern", "random_reads"]
    )]
    sink: Vec<Sink>,
    /// Race `mmkit find` against ripgrep and grep instead, each a process, on a warm
    /// generated text (the first --sizes value, default 1G, --quick 256M) holding the
    /// needle about 20,000 times a GiB: counting lines (-c) and printing every offset
    /// (-b -o). Their outputs must agree; the table gives wall time, user and system CPU,
    /// and the speed against ripgrep.
    #[arg(
        long,
        conflicts_with_all = ["sink", "methods", "plot", "pattern", "random_reads", "cache", "file"]
    )]
    find: bool,
    /// Access pattern.
    #[arg(long, value_enum, default_value = "both")]
    pattern: Which,
    /// Page-cache state before each timed pass.
    #[arg(long, value_enum, default_value = "both")]
    cache: CacheArg,
    /// A smaller, faster sweep.
    #[arg(long)]
    quick: bool,
    /// Directory for the generated files (default the system temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// read()/pread buffer size (with --sink: read+write's and the readers').
    #[arg(long, value_parser = crate::args::size::<u64>, default_value = "1M")]
    buffer: u64,
    /// 4 KiB reads in one random pass.
    #[arg(long, default_value_t = 1000)]
    random_reads: usize,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Draw throughput against file size to FILE.svg or FILE.png.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Which {
    Seq,
    Random,
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum CacheArg {
    Warm,
    Cold,
    Both,
}

/// A read method, or (with `--sink`) a copy method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MethodArg {
    Read(Method),
    Copy(mmkit::copy::Method),
}

fn method_arg(s: &str) -> Result<MethodArg, String> {
    if let Some(m) = Method::from_name(s) {
        return Ok(MethodArg::Read(m));
    }
    if let Some(m) = mmkit::copy::Method::from_name(s) {
        return Ok(MethodArg::Copy(m));
    }
    let read: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
    let copy: Vec<&str> = mmkit::copy::Method::ALL.iter().map(|m| m.name()).collect();
    Err(format!(
        "`{s}` is not a method (one of {}; with --sink one of {})",
        read.join(", "),
        copy.join(", ")
    ))
}

fn sink_arg(s: &str) -> Result<Sink, String> {
    Sink::from_name(s).ok_or_else(|| format!("`{s}` is not a sink (pipe, socket or file)"))
}

/// Refuse a method of the other bench, as clap refuses a bad value (usage, exit 2).
fn wrong_methods(names: &[&str], sink: bool) -> ! {
    use clap::CommandFactory;
    let msg = if sink {
        format!(
            "--sink compares copy methods (read+write, mmap+write, sendfile, splice, \
             copy_file_range), not {}",
            names.join(", ")
        )
    } else {
        format!(
            "{} are copy methods: give --sink pipe, socket or file to compare them",
            names.join(", ")
        )
    };
    crate::Cli::command()
        .error(clap::error::ErrorKind::ArgumentConflict, msg)
        .exit()
}

fn config(args: &BenchArgs) -> BenchOptions {
    let mut c = if args.quick {
        BenchOptions::quick()
    } else {
        BenchOptions::default()
    };
    if !args.sizes.is_empty() {
        c.sizes = args.sizes.clone();
    }
    if let Some(runs) = args.runs {
        c.runs = runs;
    }
    c.methods = args
        .methods
        .iter()
        .filter_map(|m| match m {
            MethodArg::Read(m) => Some(*m),
            MethodArg::Copy(_) => None,
        })
        .collect();
    c.methods.dedup();
    if c.methods.is_empty() {
        c.methods = Method::ALL.to_vec();
    }
    c.patterns = match args.pattern {
        Which::Seq => vec![Pattern::Seq],
        Which::Random => vec![Pattern::Random],
        Which::Both => vec![Pattern::Seq, Pattern::Random],
    };
    c.caches = match args.cache {
        CacheArg::Warm => vec![CacheState::Warm],
        CacheArg::Cold => vec![CacheState::Cold],
        CacheArg::Both => vec![CacheState::Warm, CacheState::Cold],
    };
    c.file = args.file.clone();
    c.dir = args.dir.clone();
    c.buffer = usize::try_from(args.buffer).unwrap_or(usize::MAX);
    c.random_reads = args.random_reads;
    c
}

pub(crate) fn run(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let (mut read, mut copy) = (Vec::new(), Vec::new());
    for m in &args.methods {
        match m {
            MethodArg::Read(m) => read.push(m.name()),
            MethodArg::Copy(m) => copy.push(*m),
        }
    }
    if args.find {
        return find::run(args);
    }
    if !args.sink.is_empty() {
        if !read.is_empty() {
            wrong_methods(&read, true);
        }
        copy.dedup();
        return sink::run(args, copy);
    }
    if !copy.is_empty() {
        let names: Vec<&str> = copy.iter().map(|m| m.name()).collect();
        wrong_methods(&names, false);
    }
    if let Some(plot) = &args.plot {
        // Fail before measuring, not after.
        plot::check_path(plot)?;
    }
    let config = config(args);
    let Some(report) = with_progress(|p| bench::run(&config, p)) else {
        return Ok(ExitCode::from(1));
    };
    if let Some(path) = &args.plot {
        plot::draw(&report, path)?;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
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

/// Print `report` as JSON when `json`, else as `text` writes it; exit 0.
pub(super) fn emit<R: serde::Serialize>(
    json: bool,
    report: &R,
    text: impl FnOnce(&mut std::io::StdoutLock<'static>) -> std::io::Result<()>,
) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, report)?;
        writeln!(out)?;
    } else {
        text(&mut out)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Run a benchmark under a progress bar of its cases (a line a case on stderr when no
/// bar is shown); its report, or `None` once its error has been reported in one line.
pub(super) fn with_progress<T>(
    run: impl FnOnce(&mut dyn FnMut(&bench::Progress)) -> mmkit::Result<T>,
) -> Option<T> {
    let progress = Progress::bar("cases");
    progress.message("generating files");
    let result = run(&mut |p| {
        progress.at(p.done as u64, p.total as u64);
        progress.message(p.case.clone());
        if !progress.shown() {
            eprintln!("bench: {}/{} {}", p.done, p.total, p.case);
        }
    });
    drop(progress);
    match result {
        Ok(r) => Some(r),
        Err(e) => {
            crate::args::report_error("bench", e);
            None
        }
    }
}
