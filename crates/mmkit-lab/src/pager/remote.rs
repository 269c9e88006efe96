//! `mmkit page bench --url`: the pager over an object in a store (S3, GCS, Azure, HTTP,
//! `file://`) against a plain download of the same object, in one run.
//!
//! On one object it measures:
//!
//! - **time to the first byte**: opening an [`ObjectSource`](mmkit::pager::ObjectSource)
//!   (one `HEAD`), then the first
//!   fault through a fresh pager (one ranged `GET` of a page), and the requests made by
//!   the time the byte arrived: 2 (`HEAD` and one `GET`) when it goes as designed;
//! - a **sequential scan** through the pager, as a reader does it: copied out with the
//!   guarded [`Pager::read_at`](mmkit::pager::Pager::read_at) 1 MiB at a time and summed
//!   as 64-bit words ([`scan_pager`]), with asynchronous read-ahead on, and (unless
//!   [`RemoteBenchOptions::compare_sync`] is off) with it off;
//! - a **download** of the whole object with one plain `GET`
//!   ([`ObjectSource::download`](mmkit::pager::ObjectSource::download)), summed as it streams in: the baseline, and the ratio of
//!   each scan's throughput to it;
//! - **random 4 KiB reads**: page-aligned reads at random places through a fresh pager,
//!   as many as cover [`RemoteBenchOptions::random_fraction`] of the object (1% by
//!   default): reads a second, and the bytes fetched from the store against the bytes
//!   touched (the distinct pages read, see [`touched_bytes`]).
//!
//! Every measurement of every run opens a fresh `ObjectSource` (a new client, new
//! connections) and builds a fresh pager, so nothing is cached in this process between
//! passes. The server's caches are not this process's to clear: from the second pass on
//! the object is warm there (a local S3 server serves it from the page cache), so the
//! first run's figures are the cold ones and the spread (min – max) shows the difference.
//! The scans and the download must give the same checksum, and the random reads the same
//! one in every run; a pass that differs is an error, not a figure.
//!
//! ```no_run
//! use mmkit_lab::pager::{run_remote, RemoteBenchOptions};
//! let opts = RemoteBenchOptions { runs: 3, ..RemoteBenchOptions::default() };
//! let report = run_remote("s3://bench/obj", &opts, |step| eprintln!("{}", step.what))?;
//! println!("scan at {:.2}x the download", report.scan_vs_download);
//! # Ok::<(), mmkit::Error>(())
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{check_memory, scan_pager, touched_bytes};
use crate::bench::{check_count, MAX_RANDOM_READS, MAX_RUNS};
use mmkit::lab_seam::ErrorExt;
use mmkit::pager::{ObjectOptions, PagerOptions, PagerStats, Source};
use mmkit::{Error, ErrorKind, Op, Result};

/// What to measure, and how to reach the object.
#[derive(Debug, Clone)]
pub struct RemoteBenchOptions {
    /// Repetitions of every measurement (median, min and max are reported).
    pub runs: usize,
    /// The share of the object the random 4 KiB reads cover (more than 0, at most 1):
    /// `size × fraction / 4 KiB` reads, at least 1 and at most
    /// [`MAX_RANDOM_READS`].
    pub random_fraction: f64,
    /// Also scan with asynchronous read-ahead off, to show what it gains.
    pub compare_sync: bool,
    /// The pager's largest read-ahead window, in pages; `None` takes the source's hint
    /// (8 MiB for an object).
    pub readahead: Option<usize>,
    /// Timeouts, retries and parts of the requests.
    pub object: ObjectOptions,
}

impl Default for RemoteBenchOptions {
    /// 3 runs, 1% random reads, scans with and without async read-ahead, the source's
    /// read-ahead, [`ObjectOptions::new`].
    fn default() -> Self {
        RemoteBenchOptions {
            runs: 3,
            random_fraction: 0.01,
            compare_sync: true,
            readahead: None,
            object: ObjectOptions::new(),
        }
    }
}

/// Where a run is: passes done of the total, and the one starting.
#[derive(Debug, Clone, Copy)]
pub struct RemoteStep<'a> {
    /// Passes finished.
    pub done: usize,
    /// Passes in the whole run.
    pub total: usize,
    /// The pass starting, `run 2/3: download`.
    pub what: &'a str,
}

use crate::Spread;

/// From opening the object to its first byte through a fresh pager.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct FirstByte {
    /// Opening the [`ObjectSource`](mmkit::pager::ObjectSource), milliseconds: the store's client, the runtime and the
    /// `HEAD` request (with its connection).
    pub open_ms: Spread,
    /// Building the pager, milliseconds: the region, the userfaultfd, the handler and
    /// prefetch threads and their read-ahead buffers (no request).
    pub build_ms: Spread,
    /// From the pager built to byte 0 copied out, milliseconds: the first fault and its
    /// ranged `GET`.
    pub first_fault_ms: Spread,
    /// From the start of opening to byte 0, milliseconds (building the pager too).
    pub total_ms: Spread,
    /// Requests made by the time byte 0 arrived, the most of any run: 2 (`HEAD` and one
    /// `GET`) as designed.
    pub requests: u64,
}

/// One kind of pass over the object.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RemoteRow {
    /// `scan, async read-ahead`, `scan, sync read-ahead`, `download` or `random 4 KiB`.
    pub method: &'static str,
    /// Median time of a pass, milliseconds.
    pub median_ms: f64,
    /// Fastest pass.
    pub min_ms: f64,
    /// Slowest pass.
    pub max_ms: f64,
    /// Bytes a pass gives the reader: the object for the scans and the download, the
    /// bytes touched for the random reads.
    pub bytes: u64,
    /// `bytes` over the median time.
    pub bytes_per_sec: f64,
    /// This row's throughput over the download's (above 1: faster than downloading).
    pub vs_download: f64,
    /// Requests of a pass (opening's `HEAD` not counted), the most of any run.
    pub requests: u64,
    /// Bytes received from the store in a pass, the most of any run.
    pub bytes_fetched: u64,
}

/// The random 4 KiB reads, in figures a reader cares about.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RandomReads {
    /// Reads in a pass.
    pub reads: usize,
    /// Reads a second at the median pass.
    pub reads_per_sec: f64,
    /// The distinct pages read, in bytes (the object's last page clipped at its end):
    /// the least any reader must fetch.
    pub bytes_touched: u64,
    /// Bytes received from the store in a pass, the most of any run.
    pub bytes_fetched: u64,
    /// `bytes_fetched / bytes_touched`: 1 when the pager fetched nothing the reads did
    /// not use.
    pub fetched_over_touched: f64,
    /// `bytes_touched` as a percentage of the object.
    pub touched_percent: f64,
    /// `bytes_fetched` as a percentage of the object.
    pub fetched_percent: f64,
}

/// The whole run.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RemoteBenchReport {
    /// The object's URL.
    pub url: String,
    /// Its size, bytes.
    pub size: u64,
    /// The system's page size, bytes.
    pub page_size: usize,
    /// The pagers' largest read-ahead window, pages (as the pager settled it).
    pub readahead_pages: usize,
    /// Repetitions of every measurement.
    pub runs: usize,
    /// Time to the first byte.
    pub first_byte: FirstByte,
    /// The scans, the download and the random reads.
    pub rows: Vec<RemoteRow>,
    /// The random reads' fetch against touch.
    pub random: RandomReads,
    /// The scan's (async read-ahead) throughput over the download's.
    pub scan_vs_download: f64,
    /// The pager's counters after the last scan with async read-ahead.
    pub scan_stats: PagerStats,
    /// The same with async read-ahead off, when it was measured.
    pub sync_scan_stats: Option<PagerStats>,
}

/// The pass kinds, in the order of a run.
const SCAN_ASYNC: &str = "scan, async read-ahead";
const SCAN_SYNC: &str = "scan, sync read-ahead";
const DOWNLOAD: &str = "download";
const RANDOM: &str = "random 4 KiB";

/// Measure the object at `url` as the [module docs](self) say; `progress` hears of each
/// pass as it starts.
///
/// # Errors
///
/// - `Unsupported` for `runs` outside 1 to [`MAX_RUNS`], or a
///   `random_fraction` outside (0, 1]; `Format` for an empty object.
/// - `ENOMEM` when the object is larger than the memory available (a scan makes all of
///   it resident).
/// - The object's errors ([`ObjectOptions::open`], a failed read), and the pager's
///   (userfaultfd not allowed).
/// - `Corrupt` when two passes disagree on the object's bytes.
pub fn run_remote(
    url: &str,
    opts: &RemoteBenchOptions,
    mut progress: impl FnMut(&RemoteStep<'_>),
) -> Result<RemoteBenchReport> {
    check_count("runs", opts.runs, MAX_RUNS)?;
    let size = opts.object.open(url)?.len();
    let reads = random_reads(size, opts.random_fraction)?;
    if size == 0 {
        return Err(Error::new(Op::Read, ErrorKind::Format)
            .with_path(Some(std::path::Path::new(url)))
            .detail("the object is empty: nothing to measure"));
    }
    check_memory(
        size,
        "measure a smaller object: a scan makes all of it resident",
    )?;
    let mut kinds = vec![SCAN_ASYNC];
    if opts.compare_sync {
        kinds.push(SCAN_SYNC);
    }
    kinds.extend([DOWNLOAD, RANDOM]);
    let total = opts.runs * (kinds.len() + 1);
    let mut step = 0;
    let mut tell = |run: usize, what: &str| {
        let what = format!("run {}/{}: {what}", run + 1, opts.runs);
        progress(&RemoteStep {
            done: step,
            total,
            what: &what,
        });
        step += 1;
    };
    let mut firsts = Vec::new();
    let mut passes: Vec<Vec<Pass>> = vec![Vec::new(); kinds.len()];
    let mut sums = Sums::default();
    for run in 0..opts.runs {
        tell(run, "first byte");
        firsts.push(first_byte(url, opts)?);
        for (i, &kind) in kinds.iter().enumerate() {
            tell(run, kind);
            let pass = match kind {
                DOWNLOAD => download(url, opts)?,
                RANDOM => pager_pass(url, opts, true, Some(reads))?,
                _ => pager_pass(url, opts, kind == SCAN_ASYNC, None)?,
            };
            sums.check(url, kind, pass.sum)?;
            passes[i].push(pass);
        }
    }
    let measured = Measured {
        kinds,
        firsts,
        passes,
    };
    Ok(report(url, opts, size, reads, &measured))
}

/// The random reads covering `fraction` of `size` bytes.
fn random_reads(size: u64, fraction: f64) -> Result<usize> {
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(Error::new(Op::Open, ErrorKind::Unsupported)
            .detail(format!(
                "the random fraction must be more than 0 and at most 1, not {fraction}"
            ))
            .hint("0.01 reads 1% of the object in 4 KiB pieces"));
    }
    let want = (size as f64 * fraction / crate::bench::BLOCK as f64).ceil();
    Ok((want as usize).clamp(1, MAX_RANDOM_READS))
}

/// What one pass gave.
#[derive(Debug, Clone, Default)]
struct Pass {
    took: Duration,
    sum: u64,
    requests: u64,
    bytes: u64,
    stats: Option<PagerStats>,
    readahead: usize,
}

/// The checksums the passes must agree on: the whole object's, the random reads'.
#[derive(Debug, Default)]
struct Sums {
    whole: Option<(u64, &'static str)>,
    random: Option<u64>,
}

impl Sums {
    fn check(&mut self, url: &str, kind: &'static str, sum: u64) -> Result<()> {
        let (seen, first) = if kind == RANDOM {
            (self.random.get_or_insert(sum), RANDOM)
        } else {
            let (s, k) = self.whole.get_or_insert((sum, kind));
            (s, *k)
        };
        if *seen == sum {
            return Ok(());
        }
        Err(Error::new(Op::Read, ErrorKind::Corrupt)
            .with_path(Some(std::path::Path::new(url)))
            .detail(format!(
                "{kind} summed {sum:#x}, an earlier {first} pass {:#x}",
                *seen
            ))
            .hint("the object changed during the run, or a read returned wrong bytes"))
    }
}

/// One first-byte measurement: its times, and the requests it made.
#[derive(Debug, Clone, Copy)]
struct First {
    open: Duration,
    build: Duration,
    fault: Duration,
    total: Duration,
    requests: u64,
}

fn first_byte(url: &str, opts: &RemoteBenchOptions) -> Result<First> {
    let start = Instant::now();
    let src = Arc::new(opts.object.open(url)?);
    let open = start.elapsed();
    let pager = pager_options(opts, true).build(Arc::clone(&src) as Arc<dyn Source>)?;
    let built = Instant::now();
    let mut byte = [0u8; 1];
    pager.read_at(0, &mut byte)?;
    let fault = built.elapsed();
    let total = start.elapsed();
    Ok(First {
        open,
        build: total - open - fault,
        fault,
        total,
        requests: src.stats().requests,
    })
}

fn pager_options(opts: &RemoteBenchOptions, asynchronous: bool) -> PagerOptions {
    let mut p = PagerOptions::new();
    p.async_readahead(asynchronous);
    if let Some(r) = opts.readahead {
        p.readahead(r);
    }
    p
}

/// A scan (`random: None`) or the random reads through a fresh source and pager.
fn pager_pass(
    url: &str,
    opts: &RemoteBenchOptions,
    asynchronous: bool,
    random: Option<usize>,
) -> Result<Pass> {
    let src = Arc::new(opts.object.open(url)?);
    let before = src.stats();
    let pager = pager_options(opts, asynchronous).build(Arc::clone(&src) as Arc<dyn Source>)?;
    let (sum, took) = scan_pager(&pager, random)?;
    let stats = pager.stats();
    let readahead = pager.readahead();
    // Stop the background read-ahead before counting what was fetched.
    drop(pager);
    let after = src.stats();
    Ok(Pass {
        took,
        sum,
        requests: after.requests - before.requests,
        bytes: after.bytes - before.bytes,
        stats: Some(stats),
        readahead,
    })
}

/// The whole object with one `GET`, summed as [`scan_pager`] sums it.
fn download(url: &str, opts: &RemoteBenchOptions) -> Result<Pass> {
    let src = opts.object.open(url)?;
    let before = src.stats();
    let mut sum = WordSum::default();
    let start = Instant::now();
    src.download(|chunk| sum.add(chunk))?;
    let took = start.elapsed();
    let after = src.stats();
    Ok(Pass {
        took,
        sum: sum.finish(),
        requests: after.requests - before.requests,
        bytes: after.bytes - before.bytes,
        ..Pass::default()
    })
}

/// The sum of [`crate::bench::scan`] over a stream cut anywhere: whole 64-bit words, then
/// the bytes of the last partial word one by one.
#[derive(Debug, Default)]
struct WordSum {
    sum: u64,
    partial: [u8; 8],
    held: usize,
}

impl WordSum {
    fn add(&mut self, mut chunk: &[u8]) {
        if self.held > 0 {
            let n = (8 - self.held).min(chunk.len());
            self.partial[self.held..self.held + n].copy_from_slice(&chunk[..n]);
            self.held += n;
            chunk = &chunk[n..];
            if self.held < 8 {
                return;
            }
            self.sum = self.sum.wrapping_add(u64::from_ne_bytes(self.partial));
            self.held = 0;
        }
        let whole = chunk.len() / 8 * 8;
        self.sum = self.sum.wrapping_add(crate::bench::scan(&chunk[..whole]));
        let rest = &chunk[whole..];
        self.partial[..rest.len()].copy_from_slice(rest);
        self.held = rest.len();
    }

    fn finish(self) -> u64 {
        self.partial[..self.held]
            .iter()
            .fold(self.sum, |s, &b| s.wrapping_add(b as u64))
    }
}

/// The median time of `passes`, in seconds.
fn median_secs(passes: &[Pass]) -> f64 {
    let mut t: Vec<Duration> = passes.iter().map(|p| p.took).collect();
    mmkit::helpers::median_time(&mut t).as_secs_f64()
}

/// The time to the first byte over the runs.
fn first_byte_spread(firsts: &[First]) -> FirstByte {
    let ms = |f: fn(&First) -> Duration| Spread::of_ms(&firsts.iter().map(f).collect::<Vec<_>>());
    FirstByte {
        open_ms: ms(|f| f.open),
        build_ms: ms(|f| f.build),
        first_fault_ms: ms(|f| f.fault),
        total_ms: ms(|f| f.total),
        requests: firsts.iter().map(|f| f.requests).max().unwrap_or(0),
    }
}

/// A row per kind of pass, against the download's median (`download`, seconds).
fn rows(
    kinds: &[&'static str],
    passes: &[Vec<Pass>],
    size: u64,
    touched: u64,
    download: f64,
) -> Vec<RemoteRow> {
    kinds
        .iter()
        .zip(passes)
        .map(|(&method, p)| {
            let t = Spread::of_ms(&p.iter().map(|p| p.took).collect::<Vec<_>>());
            let bytes = if method == RANDOM { touched } else { size };
            let m = median_secs(p);
            let per_sec = bytes as f64 / m.max(1e-9);
            RemoteRow {
                method,
                median_ms: t.median,
                min_ms: t.min,
                max_ms: t.max,
                bytes,
                bytes_per_sec: per_sec,
                vs_download: per_sec / (size as f64 / download.max(1e-9)),
                requests: p.iter().map(|p| p.requests).max().unwrap_or(0),
                bytes_fetched: p.iter().map(|p| p.bytes).max().unwrap_or(0),
            }
        })
        .collect()
}

/// What the runs measured: `passes[i]` are the runs of `kinds[i]`.
struct Measured {
    kinds: Vec<&'static str>,
    firsts: Vec<First>,
    passes: Vec<Vec<Pass>>,
}

/// The report from the passes over an object of `size` bytes, `reads` random reads.
fn report(
    url: &str,
    opts: &RemoteBenchOptions,
    size: u64,
    reads: usize,
    measured: &Measured,
) -> RemoteBenchReport {
    let Measured {
        kinds,
        firsts,
        passes,
    } = measured;
    let touched = touched_bytes(size, Some(reads));
    let med = median_secs;
    let of = |kind: &str| {
        kinds
            .iter()
            .position(|k| *k == kind)
            .map(|i| &passes[i][..])
    };
    let download = of(DOWNLOAD).map_or(0.0, med);
    let rows = rows(kinds, passes, size, touched, download);
    let random = of(RANDOM).unwrap_or(&[]);
    let fetched = random.iter().map(|p| p.bytes).max().unwrap_or(0);
    let pct = |b: u64| b as f64 * 100.0 / size as f64;
    let last_stats = |kind: &str| of(kind).and_then(|p| p.last()).and_then(|p| p.stats);
    let scan = of(SCAN_ASYNC).unwrap_or(&[]);
    RemoteBenchReport {
        url: url.to_string(),
        size,
        page_size: mmkit::page_size(),
        readahead_pages: scan.first().map_or(0, |p| p.readahead),
        runs: opts.runs,
        first_byte: first_byte_spread(firsts),
        random: RandomReads {
            reads,
            reads_per_sec: reads as f64 / med(random).max(1e-9),
            bytes_touched: touched,
            bytes_fetched: fetched,
            fetched_over_touched: fetched as f64 / touched.max(1) as f64,
            touched_percent: pct(touched),
            fetched_percent: pct(fetched),
        },
        scan_vs_download: download / med(scan).max(1e-9),
        scan_stats: last_stats(SCAN_ASYNC).unwrap_or_default(),
        sync_scan_stats: last_stats(SCAN_SYNC),
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_cut_anywhere_sums_as_the_whole() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let whole = crate::bench::scan(&data);
        for cuts in [&[][..], &[1, 2, 3], &[7, 8, 9, 17, 999], &[500]] {
            let mut sum = WordSum::default();
            let mut at = 0;
            for &c in cuts.iter().chain([&data.len()]) {
                sum.add(&data[at..c]);
                at = c;
            }
            assert_eq!(sum.finish(), whole, "cuts {cuts:?}");
        }
    }

    #[test]
    fn fractions_outside_zero_to_one_are_refused() {
        for f in [0.0, -0.5, 1.5, f64::NAN, f64::INFINITY] {
            assert!(random_reads(1 << 20, f).is_err(), "{f}");
        }
        assert_eq!(random_reads(1 << 20, 1.0).unwrap(), 256);
        assert_eq!(random_reads(100, 1e-9).unwrap(), 1);
        assert_eq!(random_reads(1 << 50, 1.0).unwrap(), MAX_RANDOM_READS);
    }
}
