//! `mmkit page bench`: the pager against the kernel's own paging of a generated file, or
//! (with --url) against a plain download of an object in a store. The library's
//! [`mmkit_lab::pager`] measures; this file parses and draws the tables.

use std::path::PathBuf;
use std::process::ExitCode;

use super::open::RemoteArgs;
use crate::progress::Progress;
use crate::table::{align_right, plain_table};
use mmkit::pager::HugePages;
use mmkit::size::format_size;
use mmkit_lab::pager::{PageBenchOptions, PageBenchReport, RemoteBenchOptions, RemoteBenchReport};

/// Arguments of `mmkit page bench`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
With --url, the object is measured where it is: the time to its first byte through a \
fresh pager (open = one HEAD, then one ranged GET), a sequential scan with asynchronous \
read-ahead on and off, a plain download of the whole object (one GET, the baseline), and \
random 4 KiB reads with the bytes fetched against the bytes touched. Each pass opens the \
object afresh, so nothing is cached in this process; the server's own cache is warm \
after the first run.

Pointing it at an S3 server: the store's client reads the environment. For a local test \
server (s3s-fs on 127.0.0.1):
  cargo run -p mmkit --example s3_server -- --dir /tmp/s3 --delay-ms 5 --make bench/obj=1G
  export AWS_ENDPOINT=http://127.0.0.1:PORT AWS_ALLOW_HTTP=true AWS_REGION=us-east-1 \\
         AWS_ACCESS_KEY_ID=KEY AWS_SECRET_ACCESS_KEY=SECRET   # as the server prints them
  mmkit page bench --url s3://bench/obj --runs 3
Any object URL works: s3://, gs://, az://, http(s)://, or file:///path (no server).")]
pub(super) struct BenchArgs {
    /// Measure the object at this URL instead of a generated file (s3://bucket/key,
    /// gs://, az://, http(s)://host/path, file:///path).
    #[arg(long, value_name = "URL", conflicts_with_all = ["size", "dir", "quick"])]
    url: Option<String>,
    /// Size of the test file (K, M, G suffixes).
    #[arg(long, default_value = "256M", value_parser = crate::args::size::<u64>)]
    size: u64,
    /// The pager's largest read-ahead window, in pages (clamped to 16 MiB and the data's
    /// pages). Default: 256 pages (1 MiB) for the generated file; the source's choice,
    /// 8 MiB, for --url.
    #[arg(long)]
    readahead: Option<usize>,
    /// Passes per measurement; the median (and the min and max) are reported. Default: 5
    /// for the generated file, 3 for --url.
    #[arg(long)]
    runs: Option<usize>,
    /// With --url: the share of the object the random 4 KiB reads cover, more than 0 and
    /// at most 1 (0.01 = 1%, at most 1000000 reads).
    #[arg(long, default_value_t = 0.01, value_parser = fraction_arg, requires = "url")]
    random_fraction: f64,
    /// With --url: skip the scan with asynchronous read-ahead off (it shows what the
    /// background fetching gains).
    #[arg(long, requires = "url")]
    no_async_compare: bool,
    #[command(flatten)]
    remote: RemoteArgs,
    /// Directory for the test file (default: the system's temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Huge page pagers to measure besides the 4 KiB one: thp (transparent huge pages
    /// moved in with UFFDIO_MOVE), hugetlb (2 MiB pages of the pool: raise
    /// vm.nr_hugepages first), both, or off. A kind the machine lacks is measured on the
    /// 4 KiB pages it falls back to, and the table says why.
    #[arg(long, value_enum, default_value = "both", conflicts_with = "url")]
    huge: HugeArg,
    /// A 32 MiB file and 3 passes: a quick look, noisier figures.
    #[arg(long)]
    quick: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum HugeArg {
    Off,
    Thp,
    Hugetlb,
    Both,
}

impl HugeArg {
    fn kinds(self) -> Vec<HugePages> {
        match self {
            HugeArg::Off => vec![],
            HugeArg::Thp => vec![HugePages::Thp],
            HugeArg::Hugetlb => vec![HugePages::Hugetlb],
            HugeArg::Both => vec![HugePages::Thp, HugePages::Hugetlb],
        }
    }
}

/// A share of the object: more than 0, at most 1.
fn fraction_arg(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(f) if f > 0.0 && f <= 1.0 => Ok(f),
        _ => Err(format!(
            "`{s}` is not a fraction of the object: more than 0, at most 1 (0.01 is 1%)"
        )),
    }
}

pub(super) fn run(a: &BenchArgs) -> anyhow::Result<ExitCode> {
    match &a.url {
        Some(url) => remote(a, url),
        None => local(a),
    }
}

fn local(a: &BenchArgs) -> anyhow::Result<ExitCode> {
    let mut opts = PageBenchOptions {
        size: a.size,
        readahead: a.readahead.unwrap_or(256),
        runs: a.runs.unwrap_or(5),
        dir: a.dir.clone(),
        huge: a.huge.kinds(),
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
        mmkit_lab::pager::run(&opts, |what| progress.message(format!("measuring {what}…")))?;
    drop(progress);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(ExitCode::SUCCESS)
}

fn render(r: &PageBenchReport) -> String {
    let mut t = plain_table(&[
        "pattern",
        "method",
        "pages",
        "median",
        "min – max",
        "throughput",
        "vs kernel mmap",
    ]);
    let mut notes = Vec::new();
    for row in &r.rows {
        t.add_row(vec![
            row.pattern.to_string(),
            row.method.to_string(),
            row.backing.map_or("-", |b| b.describe()).to_string(),
            format!("{:.1} ms", row.median_ms),
            format!("{:.1} – {:.1}", row.min_ms, row.max_ms),
            format!("{:.2} GB/s", row.bytes_per_sec / 1e9),
            format!("{:.2}x", row.vs_kernel),
        ]);
        if let Some(note) = row
            .backing_note
            .as_ref()
            .filter(|_| row.pattern == "sequential")
        {
            notes.push(format!("{}: 4 KiB pages, because {note}\n", row.method));
        }
    }
    align_right(&mut t, [3, 4, 5, 6]);
    let t = format!("{t}\n{}", notes.concat());
    let t = t.trim_end();
    let f = &r.fault;
    format!(
        "{} file, pager read-ahead {} pages\n{t}\none fault: pager {:.1} µs (p99 {:.1}), kernel minor fault {:.2} µs (p99 {:.2}): {:.0}x\nsequential pass: {} faults filled {} pages ({} by read-ahead): {:.2} µs a page\nfresh anonymous memory: {:.2} µs a page to touch, the floor for filling private pages\ncopy-once ceiling: {:.2}x the kernel mapping ({:.1} ms): one thread copying 2 MiB at a time while another scans, no pager; a pager copies every page once, so no pager row can pass it\n",
        format_size(r.size),
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
        r.copy_once_vs_kernel,
        r.copy_once_ms,
    )
}

/// Microseconds a page of the pager's median sequential pass.
fn seq_pager_us_per_page(r: &PageBenchReport) -> f64 {
    r.rows
        .iter()
        .find(|row| row.pattern == "sequential" && row.method == "pager")
        .map_or(0.0, |row| row.median_ms * 1e3 / (r.size as f64 / 4096.0))
}

fn remote(a: &BenchArgs, url: &str) -> anyhow::Result<ExitCode> {
    let opts = RemoteBenchOptions {
        runs: a.runs.unwrap_or(3),
        random_fraction: a.random_fraction,
        compare_sync: !a.no_async_compare,
        readahead: a.readahead,
        object: a.remote.options(),
    };
    let progress = Progress::bar("passes");
    progress.message(format!("opening {url}"));
    let report = mmkit_lab::pager::run_remote(url, &opts, |step| {
        progress.at(step.done as u64, step.total as u64);
        progress.message(step.what.to_string());
    })?;
    drop(progress);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render_remote(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// The remote bench's table: a row per pass.
fn remote_table(r: &RemoteBenchReport) -> comfy_table::Table {
    let mut t = plain_table(&[
        "pass",
        "median",
        "min – max",
        "throughput",
        "vs download",
        "requests",
        "fetched",
    ]);
    for row in &r.rows {
        let speed = if row.method.starts_with("random") {
            format!("{:.0} reads/s", r.random.reads_per_sec)
        } else {
            format!("{:.2} GB/s", row.bytes_per_sec / 1e9)
        };
        t.add_row(vec![
            row.method.to_string(),
            format!("{:.1} ms", row.median_ms),
            format!("{:.1} – {:.1}", row.min_ms, row.max_ms),
            speed,
            format!("{:.2}x", row.vs_download),
            row.requests.to_string(),
            format_size(row.bytes_fetched),
        ]);
    }
    align_right(&mut t, [1, 2, 3, 4, 5, 6]);
    t
}

fn render_remote(r: &RemoteBenchReport) -> String {
    let t = remote_table(r);
    let fb = &r.first_byte;
    let sync = r
        .rows
        .iter()
        .find(|row| row.method.contains("sync") && !row.method.contains("async"))
        .map(|row| format!(", {:.2}x with sync read-ahead only", row.vs_download))
        .unwrap_or_default();
    let rnd = &r.random;
    format!(
        "{}: {} object, read-ahead {} pages ({}), {} run{} (each pass a fresh source and \
         pager; the server's cache is warm after the first)\n\
         first byte: {:.1} ms = open (HEAD) {:.1} + pager build {:.1} + first fault {:.1} \
         (min {:.1}, max {:.1}), {} requests\n{t}\n\
         scan / download: {:.2}x with async read-ahead{sync}\n\
         random reads: {} of 4 KiB touched {} ({:.2}% of the object), fetched {} ({:.2}%): \
         {:.2}x the bytes touched\n",
        r.url,
        format_size(r.size),
        r.readahead_pages,
        format_size((r.readahead_pages * r.page_size) as u64),
        r.runs,
        if r.runs == 1 { "" } else { "s" },
        fb.total_ms.median,
        fb.open_ms.median,
        fb.build_ms.median,
        fb.first_fault_ms.median,
        fb.total_ms.min,
        fb.total_ms.max,
        fb.requests,
        r.scan_vs_download,
        rnd.reads,
        format_size(rnd.bytes_touched),
        rnd.touched_percent,
        format_size(rnd.bytes_fetched),
        rnd.fetched_percent,
        rnd.fetched_over_touched,
    )
}
