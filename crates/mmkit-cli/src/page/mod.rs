//! `mmkit page`: user-space demand paging from the shell. `cat` streams a file, an object
//! at a URL (or the uncompressed bytes of a zstd one) through a userfaultfd pager, `stats`
//! scans one and prints the pager's counters (and an object's requests and bytes fetched),
//! `bench` compares the pager with the kernel's own paging, or with a plain download.
//! The library's [`mmkit::pager`] does the work.

mod bench;
mod open;

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use comfy_table::{Cell, CellAlignment};
use mmkit::pager::{ObjectSource, PagerStats};
use mmkit_lab::pager::{scan_pager, touched_bytes};

use bench::BenchArgs;
use open::{build, url_of, Opened, PagerArgs};

/// Arguments of `mmkit page`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
A pager reserves memory, registers it with userfaultfd, and fills each page from the \
source the first time it is touched (with read-ahead for sequential access). It needs \
userfaultfd: root, or `sysctl vm.unprivileged_userfaultfd=1`, or access to \
/dev/userfaultfd.

The source is a file, or an object at a URL (anything with `://`): s3://bucket/key, \
gs://bucket/key, az://container/key, http(s)://host/path, file:///path. The stores' \
clients read their settings from the environment: AWS_ACCESS_KEY_ID, \
AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT (an S3-compatible server), \
AWS_ALLOW_HTTP=true (for an http:// endpoint); GOOGLE_SERVICE_ACCOUNT; \
AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY.

Examples:
  mmkit page cat --zstd logs.zst | grep ERROR
  mmkit page stats --pattern random --reads 5000 big.bin
  mmkit page stats --json s3://bucket/big.bin
  mmkit page bench --size 256M --json
  mmkit page bench --url s3://bench/obj --runs 3")]
pub(crate) struct PageArgs {
    #[command(subcommand)]
    command: PageCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PageCommand {
    /// Write a file or an object (a URL) to stdout through a pager: every byte comes from
    /// a page the pager filled on first touch. With --zstd, the uncompressed bytes
    /// (compare with `zstd -dc`).
    Cat(CatArgs),
    /// Scan a file or an object (a URL) through a pager (all of it, or random 4 KiB
    /// blocks) and print the pager's counters: faults, pages filled, read-ahead (and what
    /// the asynchronous read-ahead fetched), evictions, bytes. For a URL, also the
    /// object's requests and the bytes fetched against the bytes touched.
    Stats(StatsArgs),
    /// Compare the pager with a kernel mapping of the same file and with pread:
    /// sequential and random scans, and the latency of one fault. With --url: an object
    /// in a store, paged in against a plain download of it.
    Bench(BenchArgs),
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
    /// Print the counters as JSON. For a URL, an `object` member has its `requests`
    /// (opening's HEAD included), `bytes_fetched` (object data received) and
    /// `bytes_touched`: the distinct pages the scan read, times the page size, the last
    /// page of the data clipped at its end, i.e. the least any reader must fetch (with
    /// --zstd, touched counts uncompressed bytes and fetched compressed ones).
    #[arg(long)]
    json: bool,
}

/// The most random reads `page stats` makes: minutes of work, not years.
const MAX_READS: usize = 1_000_000_000;

/// What `bytes_touched` means, in the JSON.
const TOUCHED: &str = "the distinct pages the scan read, times the page size, the last page \
                       of the data clipped at its end: the least any reader must fetch";

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
        PageCommand::Bench(a) => bench::run(a),
    }
}

fn cat(a: &CatArgs) -> anyhow::Result<ExitCode> {
    let Opened { pager, object } = build(&a.pager)?;
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
        let fetched = object.map(|o| Fetched::of(&o, pager.len() as u64, a.pager.zstd));
        eprint!("{}", stats_table(&pager.stats(), fetched.as_ref()));
    }
    Ok(ExitCode::SUCCESS)
}

/// What an object cost a scan: requests, and bytes fetched against bytes touched.
#[derive(Debug, serde::Serialize)]
struct Fetched {
    url: String,
    /// The object's size (compressed, with --zstd).
    size: u64,
    /// Requests sent: opening's `HEAD` and the ranged `GET`s.
    requests: u64,
    /// Bytes of object data received.
    bytes_fetched: u64,
    /// See [`TOUCHED`].
    bytes_touched: u64,
    fetched_over_touched: f64,
    /// Whether the data is the object's uncompressed bytes (--zstd).
    zstd: bool,
    bytes_touched_is: &'static str,
}

impl Fetched {
    fn of(object: &ObjectSource, touched: u64, zstd: bool) -> Fetched {
        let st = object.stats();
        Fetched {
            url: object.url().to_string(),
            size: mmkit::pager::Source::len(object),
            requests: st.requests,
            bytes_fetched: st.bytes,
            bytes_touched: touched,
            fetched_over_touched: st.bytes as f64 / touched.max(1) as f64,
            zstd,
            bytes_touched_is: TOUCHED,
        }
    }
}

fn stats(a: &StatsArgs) -> anyhow::Result<ExitCode> {
    let Opened { pager, object } = build(&a.pager)?;
    let random = (a.pattern == "random").then_some(a.reads);
    let (sum, took) = scan_pager(&pager, random)
        .with_context(|| format!("page stats: {}", a.pager.file.display()))?;
    let st = pager.stats();
    let fetched = object.map(|o| {
        let touched = touched_bytes(pager.len() as u64, random);
        Fetched::of(&o, touched, a.pager.zstd)
    });
    let name =
        url_of(&a.pager.file).map_or_else(|| a.pager.file.display().to_string(), str::to_string);
    if a.json {
        let v = serde_json::json!({
            "file": name,
            "source": pager.source().describe(),
            "pattern": a.pattern,
            "seconds": took.as_secs_f64(),
            "checksum": format!("{sum:#018x}"),
            "readahead_pages": pager.readahead(),
            "async_readahead": pager.async_readahead(),
            "stats": st,
            "object": fetched,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "{}, {} scan in {:.3} s, read-ahead up to {} pages{}",
            pager.source().describe(),
            a.pattern,
            took.as_secs_f64(),
            pager.readahead(),
            if pager.async_readahead() {
                " (async)"
            } else {
                ""
            },
        );
        print!("{}", stats_table(&st, fetched.as_ref()));
    }
    Ok(ExitCode::SUCCESS)
}

fn stats_table(st: &PagerStats, object: Option<&Fetched>) -> String {
    let mut rows = vec![
        ("faults served", st.faults.to_string()),
        ("pages filled", st.pages_filled.to_string()),
        ("read-ahead pages", st.readahead_pages.to_string()),
        ("read-ahead hits", st.readahead_hits.to_string()),
        ("prefetched pages (async)", st.prefetched_pages.to_string()),
        ("prefetch waits", st.prefetch_waits.to_string()),
        ("prefetch errors", st.prefetch_errors.to_string()),
        ("evictions", st.evictions.to_string()),
        ("write-backs", st.writebacks.to_string()),
        ("bytes read from source", st.bytes_read.to_string()),
        ("bytes written back", st.bytes_written.to_string()),
        ("failed faults", st.failed_faults.to_string()),
        ("spurious faults", st.spurious_faults.to_string()),
    ];
    if let Some(o) = object {
        rows.extend([
            ("object requests", o.requests.to_string()),
            ("bytes fetched", o.bytes_fetched.to_string()),
            ("bytes touched", o.bytes_touched.to_string()),
            (
                "fetched / touched",
                format!("{:.2}x", o.fetched_over_touched),
            ),
        ]);
    }
    let mut t = crate::table::plain_table(&[]);
    for (name, v) in rows {
        t.add_row(vec![
            Cell::new(name),
            Cell::new(v).set_alignment(CellAlignment::Right),
        ]);
    }
    let note = if object.is_some() {
        "bytes touched: the distinct pages read × the page size (the last page clipped at the \
         end); fetched: object data received\n"
    } else {
        ""
    };
    format!("{t}\n{note}")
}
