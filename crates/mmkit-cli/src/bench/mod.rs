//! `mmkit bench read|sink|find`: the benchmarks of the lab ([`mmkit_lab::bench`]) that
//! measure the library against its alternatives. `read` (also `mmkit bench` alone)
//! compares ways to read a file (`read.rs`, with a chart in `plot.rs`); `sink` ways to send
//! one to a pipe, a socket or a file (`sink.rs`); `find` races `mmkit find` against
//! ripgrep and grep (`find.rs`). This module holds what the three share: the size
//! parser, the cache states, the progress bar and the JSON-or-text output.

mod find;
mod plot;
mod read;
mod sink;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::progress::Progress;
use mmkit_lab::bench::{BenchOptions, CacheState, SinkOptions};

/// Arguments of `mmkit bench`: a subcommand, or the read bench's options alone.
#[derive(Debug, clap::Args)]
// One usage line (clap would print one for the options and one for the subcommands).
#[command(
    args_conflicts_with_subcommands = true,
    override_usage = "mmkit bench [read|sink|find] [OPTIONS] [FILE]"
)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    bench: Option<Box<Bench>>,
    #[command(flatten)]
    read: read::ReadArgs,
}

/// The three benchmarks.
#[derive(Debug, clap::Subcommand)]
enum Bench {
    /// Compare ways to read a file: mapped scans vs read() vs pread (the default).
    ///
    /// Mappings with each advice, `read()` and `pread`, warm and cold, sequential and
    /// random, over a sweep of sizes: by default 4K,64K,1M,16M,256M and 5 runs (--quick:
    /// 4K,1M,16M and 3 runs).
    Read(read::ReadArgs),
    /// Compare ways to send a file to a pipe, a socket or a file.
    ///
    /// read+write, mmap+write, sendfile, splice (through a 1 MiB pipe) and
    /// copy_file_range, side by side: GB/s and the sending thread's CPU seconds per GB.
    /// By default a file of 1G (--quick: 64M) and 3 runs.
    Sink(sink::SinkArgs),
    /// Race `mmkit find` against ripgrep and grep.
    ///
    /// Each a process, on a warm generated text holding the needle about 20,000 times a
    /// GiB: counting lines (-c) and printing every offset (-b -o). Their outputs must
    /// agree; the table gives wall time, user and system CPU, and the speed against
    /// ripgrep. The text is the first size given (at least 1M; by default 1G, --quick
    /// 256M); 5 runs by default.
    Find(find::FindArgs),
}

/// Exit with a usage error (2) of `mmkit bench <sub>`: `msg`, then that command's usage.
fn usage_error(sub: &str, msg: String) -> ! {
    use clap::CommandFactory;
    let mut cli = crate::Cli::command();
    cli.build();
    let bench = cli.find_subcommand_mut("bench").expect("mmkit bench");
    let mut cmd = match bench.find_subcommand_mut(sub) {
        Some(c) => c.clone(),
        None => bench.clone(),
    };
    cmd.error(clap::error::ErrorKind::ArgumentConflict, msg)
        .exit()
}

pub(crate) fn run(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    match args.bench.as_deref() {
        None => read::run(&args.read),
        Some(Bench::Read(a)) => read::run(a),
        Some(Bench::Sink(a)) => sink::run(a),
        Some(Bench::Find(a)) => find::run(a),
    }
}

/// The options every bench takes: what to generate, how often, where, how to print.
#[derive(Debug, clap::Args)]
pub(crate) struct Sweep {
    /// File sizes to generate, comma-separated (K/M/G are powers of 1024; the bench's
    /// help gives its default).
    #[arg(long, alias = "size", value_delimiter = ',', value_parser = crate::args::size::<u64>)]
    sizes: Vec<u64>,
    /// Timed runs per case; the median is reported.
    #[arg(long)]
    runs: Option<usize>,
    /// A smaller, faster sweep.
    #[arg(long)]
    quick: bool,
    /// Directory for the generated files (default the system temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// A bench's options as the lab makes them: a quick set or the default one, then sizes,
/// runs and the directory.
trait SweepOptions: Default {
    fn quick() -> Self;
    fn sweep(&mut self) -> (&mut Vec<u64>, &mut usize, &mut Option<PathBuf>);
}

impl SweepOptions for BenchOptions {
    fn quick() -> Self {
        BenchOptions::quick()
    }
    fn sweep(&mut self) -> (&mut Vec<u64>, &mut usize, &mut Option<PathBuf>) {
        (&mut self.sizes, &mut self.runs, &mut self.dir)
    }
}

impl SweepOptions for SinkOptions {
    fn quick() -> Self {
        SinkOptions::quick()
    }
    fn sweep(&mut self) -> (&mut Vec<u64>, &mut usize, &mut Option<PathBuf>) {
        (&mut self.sizes, &mut self.runs, &mut self.dir)
    }
}

impl Sweep {
    /// `O`'s quick or default options as --quick says, with --sizes, --runs and --dir.
    fn options<O: SweepOptions>(&self) -> O {
        let mut o = if self.quick { O::quick() } else { O::default() };
        let (sizes, runs, dir) = o.sweep();
        if !self.sizes.is_empty() {
            *sizes = self.sizes.clone();
        }
        if let Some(r) = self.runs {
            *runs = r;
        }
        *dir = self.dir.clone();
        o
    }
}

/// `--cache`: the page-cache state before each timed pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum CacheArg {
    Warm,
    Cold,
    Both,
}

impl CacheArg {
    /// The states to measure.
    fn states(self) -> Vec<CacheState> {
        match self {
            CacheArg::Warm => vec![CacheState::Warm],
            CacheArg::Cold => vec![CacheState::Cold],
            CacheArg::Both => vec![CacheState::Warm, CacheState::Cold],
        }
    }
}

/// Print `report` as JSON when `json`, else as `text` writes it; exit 0.
fn emit<R: serde::Serialize>(
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
fn with_progress<T>(
    run: impl FnOnce(&mut dyn FnMut(&mmkit_lab::bench::Progress)) -> mmkit::Result<T>,
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
