//! `mmkit page`: user-space demand paging from the shell. `cat` streams a file (or the
//! uncompressed bytes of a zstd file) through a userfaultfd pager, `stats` scans one and
//! prints the pager's counters, `bench` compares the pager with the kernel's own paging.
//! The library's [`mmkit::pager`] does the work.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::progress::Progress;
use anyhow::Context;
use comfy_table::{presets, Cell, CellAlignment, ContentArrangement, Table};
use mmkit::pager::bench::{PageBenchOptions, PageBenchReport};
use mmkit::pager::{FileSource, Pager, PagerOptions, PagerStats, Source, ZstdSource};

/// Arguments of `mmkit page`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
A pager reserves memory, registers it with userfaultfd, and fills each page from the \
source the first time it is touched (with read-ahead for sequential access). It needs \
userfaultfd: root, or `sysctl vm.unprivileged_userfaultfd=1`, or access to \
/dev/userfaultfd.

Examples:
  mmkit page cat --zstd logs.zst | grep ERROR
  mmkit page stats --pattern random --reads 5000 big.bin
  mmkit page bench --size 256M --json")]
pub(crate) struct PageArgs {
    #[command(subcommand)]
    command: PageCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PageCommand {
    /// Write a file to stdout through a pager: every byte comes from a page the pager
    /// filled on first touch. With --zstd, the file's uncompressed bytes (compare with
    /// `zstd -dc`).
    Cat(CatArgs),
    /// Scan a file through a pager (all of it, or random 4 KiB blocks) and print the
    /// pager's counters: faults, pages filled, read-ahead, evictions, bytes.
    Stats(StatsArgs),
    /// Compare the pager with a kernel mapping of the same file and with pread:
    /// sequential and random scans, and the latency of one fault.
    Bench(BenchArgs),
}

/// How to build the pager, shared by `cat` and `stats`.
#[derive(Debug, clap::Args)]
struct PagerArgs {
    /// The file is zstd-compressed: page in its uncompressed bytes.
    #[arg(long)]
    zstd: bool,
    /// Largest read-ahead window, in pages (1 turns read-ahead off; larger values are
    /// clamped to 16 MiB, the file's pages and the budget). 256 pages (1 MiB) brought
    /// a sequential pass to the cost of touching fresh memory here.
    #[arg(long, default_value_t = 256)]
    readahead: usize,
    /// Keep about this much of the region resident (K, M, G suffixes; at least one
    /// page): a fill waits for room. The bound is this plus one --readahead window per
    /// handler thread; measured peaks stay at it or a few pages over.
    #[arg(long, value_parser = budget_arg)]
    budget: Option<u64>,
    /// Handler threads serving faults (1 to 1024, no more than the file's pages).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// The file to page in.
    file: PathBuf,
}

#[derive(Debug, clap::Args)]
struct CatArgs {
    #[command(flatten)]
    pager: PagerArgs,
    /// Print the pager's counters to stderr at the end.
    #[arg(long)]
    stats: bool,
}

#[derive(Debug, clap::Args)]
struct StatsArgs {
    #[command(flatten)]
    pager: PagerArgs,
    /// `seq`: read all of it in order; `random`: --reads blocks of 4 KiB at random.
    #[arg(long, default_value = "seq", value_parser = ["seq", "random"])]
    pattern: String,
    /// Random reads, for --pattern random (at most 1000000000).
    #[arg(long, default_value_t = 10_000, value_parser = reads_arg)]
    reads: usize,
    /// Print the counters as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// Size of the test file (K, M, G suffixes).
    #[arg(long, default_value = "256M", value_parser = crate::shm::size_arg)]
    size: u64,
    /// The pager's largest read-ahead window, in pages (clamped to 16 MiB and the file's
    /// pages).
    #[arg(long, default_value_t = 256)]
    readahead: usize,
    /// Passes per measurement; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Directory for the test file (default: the system's temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// A 32 MiB file and 3 passes: a quick look, noisier figures.
    #[arg(long)]
    quick: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// The most random reads `page stats` makes: minutes of work, not years.
const MAX_READS: usize = 1_000_000_000;

/// A memory budget: a positive byte count, optionally with K, M or G.
fn budget_arg(s: &str) -> Result<u64, String> {
    mmkit::size::parse_size(s).ok_or_else(|| {
        format!(
            "`{s}` is not a budget (a positive byte count, optionally with K, M or G; \
             the pager keeps at least one page)"
        )
    })
}

/// A count of random reads, 0 to [`MAX_READS`].
fn reads_arg(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n <= MAX_READS => Ok(n),
        _ => Err(format!(
            "`{s}` is not a count of reads from 0 to {MAX_READS}"
        )),
    }
}

pub(crate) fn run(args: &PageArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        PageCommand::Cat(a) => cat(a),
        PageCommand::Stats(a) => stats(a),
        PageCommand::Bench(a) => bench(a),
    }
}

fn build(a: &PagerArgs) -> anyhow::Result<Pager> {
    // The library's errors name the file, the offset and the cause.
    let source: Arc<dyn Source> = if a.zstd {
        Arc::new(ZstdSource::open(&a.file)?)
    } else {
        Arc::new(FileSource::open(&a.file)?)
    };
    let mut opts = PagerOptions::new();
    opts.readahead(a.readahead).threads(a.threads);
    if let Some(b) = a.budget {
        opts.budget(b);
    }
    Ok(opts.build(source)?)
}

fn cat(a: &CatArgs) -> anyhow::Result<ExitCode> {
    let pager = build(&a.pager)?;
    let mut out = std::io::stdout().lock();
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0;
    while off < pager.len() {
        let n = (pager.len() - off).min(buf.len());
        pager
            .read_at(off, &mut buf[..n])
            .with_context(|| format!("page cat: {}", a.pager.file.display()))?;
        out.write_all(&buf[..n])?;
        off += n;
    }
    out.flush()?;
    if a.stats {
        eprint!("{}", stats_table(&pager.stats()));
    }
    Ok(ExitCode::SUCCESS)
}

fn stats(a: &StatsArgs) -> anyhow::Result<ExitCode> {
    let pager = build(&a.pager)?;
    let random = (a.pattern == "random").then_some(a.reads);
    let (sum, took) = mmkit::pager::bench::scan_pager(&pager, random)
        .with_context(|| format!("page stats: {}", a.pager.file.display()))?;
    let st = pager.stats();
    if a.json {
        let v = serde_json::json!({
            "file": a.pager.file,
            "source": pager.source().describe(),
            "pattern": a.pattern,
            "seconds": took.as_secs_f64(),
            "checksum": format!("{sum:#018x}"),
            "stats": st,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "{} ({}), {} scan in {:.3} s",
            a.pager.file.display(),
            pager.source().describe(),
            a.pattern,
            took.as_secs_f64()
        );
        print!("{}", stats_table(&st));
    }
    Ok(ExitCode::SUCCESS)
}

fn stats_table(st: &PagerStats) -> String {
    let rows = [
        ("faults served", st.faults),
        ("pages filled", st.pages_filled),
        ("read-ahead pages", st.readahead_pages),
        ("read-ahead hits", st.readahead_hits),
        ("evictions", st.evictions),
        ("write-backs", st.writebacks),
        ("bytes read from source", st.bytes_read),
        ("bytes written back", st.bytes_written),
        ("failed faults", st.failed_faults),
        ("spurious faults", st.spurious_faults),
    ];
    let mut t = Table::new();
    t.load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    for (name, v) in rows {
        t.add_row(vec![
            Cell::new(name),
            Cell::new(v).set_alignment(CellAlignment::Right),
        ]);
    }
    format!("{t}\n")
}

fn bench(a: &BenchArgs) -> anyhow::Result<ExitCode> {
    let mut opts = PageBenchOptions {
        size: a.size,
        readahead: a.readahead,
        runs: a.runs,
        dir: a.dir.clone(),
        ..PageBenchOptions::default()
    };
    if a.quick {
        opts.size = opts.size.min(32 << 20);
        opts.runs = opts.runs.min(3);
        opts.random_reads = 5_000;
        opts.faults = 500;
    }
    let progress = Progress::spinner();
    let report =
        mmkit::pager::bench::run(&opts, |what| progress.message(format!("measuring {what}…")))?;
    drop(progress);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(ExitCode::SUCCESS)
}

fn render(r: &PageBenchReport) -> String {
    let mut t = Table::new();
    t.load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(
            [
                "pattern",
                "method",
                "median",
                "min – max",
                "throughput",
                "vs kernel mmap",
            ]
            .iter()
            .map(Cell::new),
        );
    for row in &r.rows {
        t.add_row(vec![
            row.pattern.to_string(),
            row.method.to_string(),
            format!("{:.1} ms", row.median_ms),
            format!("{:.1} – {:.1}", row.min_ms, row.max_ms),
            format!("{:.2} GB/s", row.bytes_per_sec / 1e9),
            format!("{:.2}x", row.vs_kernel),
        ]);
    }
    for i in [2, 3, 4, 5] {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    let f = &r.fault;
    format!(
        "{} file, pager read-ahead {} pages\n{t}\none fault: pager {:.1} µs (p99 {:.1}), kernel minor fault {:.2} µs (p99 {:.2}): {:.0}x\nsequential pass: {} faults filled {} pages ({} by read-ahead): {:.2} µs a page\nfresh anonymous memory: {:.2} µs a page to touch, the floor for filling private pages\n",
        mmkit::size::format_size(r.size),
        r.readahead,
        f.pager_p50_ns / 1e3,
        f.pager_p99_ns / 1e3,
        f.kernel_p50_ns / 1e3,
        f.kernel_p99_ns / 1e3,
        f.pager_p50_ns / f.kernel_p50_ns.max(1.0),
        r.sequential_stats.faults,
        r.sequential_stats.pages_filled,
        r.sequential_stats.readahead_pages,
        seq_pager_us_per_page(r),
        r.anon_touch_ns_per_page / 1e3,
    )
}

/// Microseconds a page of the pager's median sequential pass.
fn seq_pager_us_per_page(r: &PageBenchReport) -> f64 {
    r.rows
        .iter()
        .find(|row| row.pattern == "sequential" && row.method == "pager")
        .map_or(0.0, |row| row.median_ms * 1e3 / (r.size as f64 / 4096.0))
}
