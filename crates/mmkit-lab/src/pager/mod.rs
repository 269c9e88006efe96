//! `mmkit page bench`: the pager against a kernel file mapping of the same data and
//! against `pread`, in one run.
//!
//! On one warm file (in the page cache, so the comparison is of the fault paths, not of
//! the disk) it measures:
//!
//! - a **sequential scan** of the whole file (a sum of 64-bit words): through a new
//!   pager (every page filled by its handler, with read-ahead), through a new kernel
//!   mapping (`MAP_SHARED`, faults with fault-around), and with 1 MiB `pread`s;
//! - **random 4 KiB reads** at fixed page offsets, by the same three;
//! - the latency of **one fault**: a pager without read-ahead against a kernel minor
//!   fault on a warm file page, each touch 2 MiB from the last (past fault-around and
//!   large folios).
//!
//! Every pass is checked against the sum of the file, and the median of `runs` passes is
//! reported, with the throughput ratio to the kernel mapping.
//!
//! [`run_remote`] measures the pager over an object in a store
//! (time to the first byte, scans with and without asynchronous read-ahead, random reads)
//! against a plain download of the same object: see the [`remote`] module.
//!
//! # Safety
//!
//! Borrows the bytes of kernel file mappings this bench made (`Mapping::as_slice`);
//! nothing truncates or writes those files while it runs.
#![allow(unsafe_code)]

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mmkit::lab_seam::ErrorExt;
use mmkit::pager::{Backing, FileSource, HugePages, Pager, PagerOptions, PagerStats};

/// What a pager pass reports besides its time and sum.
type PagerPass = (PagerStats, Backing, Option<String>);
use crate::bench::{random_offsets, random_offsets_iter, scan, BLOCK};
use mmkit::helpers::{median, median_time};
use mmkit::map::MapOptions;
use mmkit::{Error, ErrorKind, Op, Result};

mod ceiling;
pub mod remote;
pub use remote::{
    run_remote, FirstByte, RandomReads, RemoteBenchOptions, RemoteBenchReport, RemoteRow,
    RemoteStep,
};

/// What to measure.
#[derive(Debug, Clone)]
pub struct PageBenchOptions {
    /// Bytes of the test file.
    pub size: u64,
    /// The pager's largest read-ahead window, in pages.
    pub readahead: usize,
    /// Random 4 KiB reads per pass.
    pub random_reads: usize,
    /// Passes per measurement (the median is reported).
    pub runs: usize,
    /// Touches timed for the one-fault latency.
    pub faults: usize,
    /// Where to write the test file (the system's temporary directory by default).
    pub dir: Option<PathBuf>,
    /// Huge page kinds to measure a pager on besides 4 KiB pages, each a row of its own
    /// (`pager thp`, `pager hugetlb`); a kind the machine lacks is measured on the
    /// 4 KiB pages it falls back to, and its row says so.
    pub huge: Vec<HugePages>,
}

impl Default for PageBenchOptions {
    fn default() -> Self {
        PageBenchOptions {
            size: 256 << 20,
            readahead: 256,
            random_reads: 20_000,
            runs: 5,
            faults: 2_000,
            dir: None,
            huge: vec![HugePages::Thp, HugePages::Hugetlb],
        }
    }
}

/// One method on one access pattern.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct PageRow {
    /// `sequential` or `random`.
    pub pattern: &'static str,
    /// `pager`, `pager thp`, `pager hugetlb`, `kernel mmap` or `pread`.
    pub method: &'static str,
    /// For a pager: what its region was made of.
    pub backing: Option<Backing>,
    /// For a pager asked for huge pages: why it used 4 KiB pages instead.
    pub backing_note: Option<String>,
    /// Median time of a pass, milliseconds.
    pub median_ms: f64,
    /// Fastest pass.
    pub min_ms: f64,
    /// Slowest pass.
    pub max_ms: f64,
    /// Bytes per second of the median pass.
    pub bytes_per_sec: f64,
    /// This method's throughput over the kernel mapping's, same pattern.
    pub vs_kernel: f64,
}

/// One-fault service times, nanoseconds.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct FaultLatency {
    /// Median time of a touch served by the pager (no read-ahead).
    pub pager_p50_ns: f64,
    /// 99th percentile of the same.
    pub pager_p99_ns: f64,
    /// Median time of a kernel minor fault on a warm file page.
    pub kernel_p50_ns: f64,
    /// 99th percentile of the same.
    pub kernel_p99_ns: f64,
}

/// The whole run.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct PageBenchReport {
    /// Bytes of the test file.
    pub size: u64,
    /// The pager's read-ahead window, in pages.
    pub readahead: usize,
    /// Every measurement.
    pub rows: Vec<PageRow>,
    /// One-fault latency.
    pub fault: FaultLatency,
    /// The pager's counters after one sequential pass.
    pub sequential_stats: PagerStats,
    /// Nanoseconds a page to touch fresh private anonymous memory of the same size (the
    /// median of the runs): the floor for any pager that fills private pages, since
    /// every fill allocates one. A kernel file mapping allocates nothing: it maps the
    /// page cache.
    pub anon_touch_ns_per_page: f64,
    /// The copy-once ceiling: the median time of a sequential scan whose every byte is
    /// first copied, 2 MiB at a time on a second thread, out of a kernel mapping of the
    /// file into memory touched beforehand, milliseconds. No pager that copies each page
    /// once (every pager here) can scan faster on this machine.
    pub copy_once_ms: f64,
    /// The kernel mapping's sequential median over `copy_once_ms`: the best ratio a
    /// pager's sequential row could show.
    pub copy_once_vs_kernel: f64,
}

/// Run the benchmark; `progress` is told what is being measured.
///
/// # Errors
/// The test file cannot be written; userfaultfd is not allowed; a pass read bytes that
/// differ from the file (a bug, reported rather than timed).
pub fn run(opts: &PageBenchOptions, mut progress: impl FnMut(&str)) -> Result<PageBenchReport> {
    let dir = opts.dir.clone().unwrap_or_else(std::env::temp_dir);
    crate::bench::check_count("runs", opts.runs, crate::bench::MAX_RUNS)?;
    crate::bench::check_count(
        "random reads",
        opts.random_reads,
        crate::bench::MAX_RANDOM_READS,
    )?;
    crate::bench::check_count("faults", opts.faults, crate::bench::MAX_RANDOM_READS)?;
    check_size(&dir, opts.size)?;
    let file = TestFile::create(&dir, opts.size)?;
    let want = file.sum()?;
    let offsets = random_offsets(opts.size, opts.random_reads);
    let want_random = file.random_sum(&offsets)?;
    let (rows, stats) = patterns(opts, &file, &offsets, (want, want_random), &mut progress)?;
    progress("one-fault latency");
    let fault = file.fault_latency(opts.faults)?;
    progress("copy-once ceiling");
    let copy_once_ms = file.copy_once_ms(opts.runs, want)?;
    let kernel_seq_ms = rows
        .iter()
        .find(|r| (r.pattern, r.method) == ("sequential", "kernel mmap"))
        .map_or(f64::NAN, |r| r.median_ms);
    progress("fresh anonymous memory");
    let mut touch = Vec::new();
    for _ in 0..opts.runs {
        touch.push(anon_touch_ns_per_page(opts.size)?);
    }
    Ok(PageBenchReport {
        size: opts.size,
        readahead: opts.readahead,
        rows,
        fault,
        sequential_stats: stats,
        anon_touch_ns_per_page: median(&mut touch),
        copy_once_ms,
        copy_once_vs_kernel: kernel_seq_ms / copy_once_ms,
    })
}

/// The sequential and random rows, each method's passes checked against the file's sums
/// (`want`: the whole file's, the random offsets'); the pager's sequential counters.
fn patterns(
    opts: &PageBenchOptions,
    file: &TestFile,
    offsets: &[u64],
    (want, want_random): (u64, u64),
    progress: &mut impl FnMut(&str),
) -> Result<(Vec<PageRow>, PagerStats)> {
    let mut rows = Vec::new();
    let mut stats = PagerStats::default();
    let methods = methods(&opts.huge);
    for pattern in ["sequential", "random"] {
        let mut times = vec![Vec::new(); methods.len()];
        let mut backings = vec![(None, None); methods.len()];
        for _ in 0..opts.runs {
            for (i, &method) in methods.iter().enumerate() {
                progress(&format!("{pattern} {method}"));
                let (t, sum, st) = file.pass(method, pattern, offsets, opts.readahead)?;
                let expect = if pattern == "sequential" {
                    want
                } else {
                    want_random
                };
                if sum != expect {
                    return Err(Error::new(Op::Read, ErrorKind::Corrupt).detail(format!(
                        "{method} {pattern} pass summed {sum:#x}, the file sums to {expect:#x}"
                    )));
                }
                if let Some((st, backing, note)) = st {
                    if (method, pattern) == ("pager", "sequential") {
                        stats = st;
                    }
                    backings[i] = (Some(backing), note);
                }
                times[i].push(t);
            }
        }
        let bytes = if pattern == "sequential" {
            opts.size
        } else {
            (offsets.len() * 4096) as u64
        };
        rows.extend(rows_for(pattern, &methods, &mut times, backings, bytes));
    }
    Ok((rows, stats))
}

/// Refuse a size the run cannot hold: the test file must fit the free space of `dir`
/// (it would fill the disk first, then fail), and `size` bytes must fit the memory
/// available (a pager pass and the anonymous-memory pass make all of it resident).
fn check_size(dir: &Path, size: u64) -> Result<()> {
    crate::bench::check_free_space(dir, size)?;
    check_memory(size, "choose a smaller --size")
}

/// Refuse to make `size` bytes resident when the memory available is less (a pager's
/// scan fills every page of its region); `hint` says what to do instead.
fn check_memory(size: u64, hint: &str) -> Result<()> {
    let available = mmkit::probe::meminfo("MemAvailable");
    if let Some(avail) = available.filter(|&a| size > a) {
        return Err(Error::os(Op::Map, rustix::io::Errno::NOMEM)
            .at(0, size)
            .detail(format!(
                "the run makes {size} bytes resident, more than the {avail} bytes of memory available"
            ))
            .hint(hint.to_string()));
    }
    Ok(())
}

/// The methods measured: the pager on 4 KiB pages, on each huge page kind asked for,
/// the kernel's mapping (always at index `len - 2`) and `pread`.
fn methods(huge: &[HugePages]) -> Vec<&'static str> {
    let mut m = vec!["pager"];
    for h in huge {
        match h {
            HugePages::Thp if !m.contains(&"pager thp") => m.push("pager thp"),
            HugePages::Hugetlb if !m.contains(&"pager hugetlb") => m.push("pager hugetlb"),
            _ => {}
        }
    }
    m.extend(["kernel mmap", "pread"]);
    m
}

fn rows_for(
    pattern: &'static str,
    methods: &[&'static str],
    times: &mut [Vec<Duration>],
    backings: Vec<(Option<Backing>, Option<String>)>,
    bytes: u64,
) -> Vec<PageRow> {
    let kernel = median_time(&mut times[methods.len() - 2]).as_secs_f64();
    methods
        .iter()
        .zip(times.iter_mut())
        .zip(backings)
        .map(|((&method, t), (backing, backing_note))| {
            let m = median_time(t).as_secs_f64();
            PageRow {
                pattern,
                method,
                backing,
                backing_note,
                median_ms: m * 1e3,
                min_ms: t[0].as_secs_f64() * 1e3,
                max_ms: t[t.len() - 1].as_secs_f64() * 1e3,
                bytes_per_sec: bytes as f64 / m,
                vs_kernel: kernel / m,
            }
        })
        .collect()
}

/// The test file, removed on drop.
struct TestFile {
    path: PathBuf,
    file: File,
    size: u64,
}

impl TestFile {
    /// Write `size` bytes of xorshift data, so sums catch any misplaced page.
    fn create(dir: &Path, size: u64) -> Result<TestFile> {
        let path = dir.join(format!("mmkit-page-bench-{}", std::process::id()));
        let file = crate::bench::generate(&path, size).inspect_err(|_| {
            let _ = std::fs::remove_file(&path);
        })?;
        Ok(TestFile { path, file, size })
    }

    /// The sum of the whole file, read with `pread` (also warms the page cache).
    fn sum(&self) -> Result<u64> {
        self.pread_scan()
    }

    fn random_sum(&self, offsets: &[u64]) -> Result<u64> {
        let mut buf = vec![0u8; 4096];
        let mut sum = 0u64;
        for &off in offsets {
            let n = self.read_at(off, &mut buf)?;
            sum = sum.wrapping_add(scan(&buf[..n]));
        }
        Ok(sum)
    }

    fn read_at(&self, off: u64, buf: &mut [u8]) -> Result<usize> {
        let want = (self.size - off).min(buf.len() as u64) as usize;
        self.file
            .read_exact_at(&mut buf[..want], off)
            .map_err(|e| Error::io(Op::Read, &e).with_path(Some(&self.path)))?;
        Ok(want)
    }

    fn pread_scan(&self) -> Result<u64> {
        let mut buf = vec![0u8; 1 << 20];
        let (mut off, mut sum) = (0u64, 0u64);
        while off < self.size {
            let n = self.read_at(off, &mut buf)?;
            sum = sum.wrapping_add(scan(&buf[..n]));
            off += n as u64;
        }
        Ok(sum)
    }

    /// One timed pass: its time, its sum, and the pager's counters if it used one.
    fn pass(
        &self,
        method: &str,
        pattern: &str,
        offsets: &[u64],
        readahead: usize,
    ) -> Result<(Duration, u64, Option<PagerPass>)> {
        let seq = pattern == "sequential";
        let huge = match method {
            "pager thp" => Some(HugePages::Thp),
            "pager hugetlb" => Some(HugePages::Hugetlb),
            "pager" => Some(HugePages::Off),
            _ => None,
        };
        if let Some(huge) = huge {
            let src = Arc::new(FileSource::open(&self.path)?);
            let pager = PagerOptions::new()
                .readahead(readahead)
                .huge_pages(huge)
                .build(src)?;
            let start = Instant::now();
            let sum = scan_bytes(pager.as_slice(), seq, offsets);
            let took = start.elapsed();
            let note = pager.backing_note().map(str::to_string);
            return Ok((took, sum, Some((pager.stats(), pager.backing(), note))));
        }
        match method {
            "kernel mmap" => {
                let map = MapOptions::new().map(&self.file)?;
                let start = Instant::now();
                // SAFETY: the file is this benchmark's own, in a private temporary name;
                // nothing truncates or writes it while the slice lives.
                let sum = scan_bytes(unsafe { map.as_slice() }, seq, offsets);
                Ok((start.elapsed(), sum, None))
            }
            _ => {
                let start = Instant::now();
                let sum = if seq {
                    self.pread_scan()?
                } else {
                    self.random_sum(offsets)?
                };
                Ok((start.elapsed(), sum, None))
            }
        }
    }

    /// The median of `runs` copy-once passes ([`ceiling`]), each over a new kernel
    /// mapping (as each pager has a new view of its file), in milliseconds.
    fn copy_once_ms(&self, runs: usize, want: u64) -> Result<f64> {
        let mut dest = MapOptions::new().len(self.size as usize).map_anon()?;
        dest.fill(1);
        let mut times = Vec::new();
        for _ in 0..runs {
            let map = MapOptions::new().map(&self.file)?;
            // SAFETY: as in `pass`: the file is ours and unchanged.
            let (took, sum) = ceiling::copy_and_scan(unsafe { map.as_slice() }, &mut dest[..]);
            if sum != want {
                return Err(Error::new(Op::Read, ErrorKind::Corrupt).detail(format!(
                    "the copy-once pass summed {sum:#x}, the file sums to {want:#x}"
                )));
            }
            times.push(took);
        }
        Ok(median_time(&mut times).as_secs_f64() * 1e3)
    }

    /// Median and p99 of single touches: the pager without read-ahead, and the kernel.
    fn fault_latency(&self, touches: usize) -> Result<FaultLatency> {
        const STRIDE: usize = 2 << 20;
        let per_region = (self.size as usize / STRIDE).max(1);
        let (mut pager, mut kernel) = (Vec::new(), Vec::new());
        while pager.len() < touches {
            let src = Arc::new(FileSource::open(&self.path)?);
            let p = PagerOptions::new().readahead(1).build(src)?;
            time_touches(p.as_slice(), STRIDE, per_region, &mut pager);
        }
        while kernel.len() < touches {
            let map = MapOptions::new().map(&self.file)?;
            // SAFETY: as in `pass`: the file is ours and unchanged.
            time_touches(unsafe { map.as_slice() }, STRIDE, per_region, &mut kernel);
        }
        let pct = |v: &mut Vec<f64>, q: f64| {
            v.sort_by(f64::total_cmp);
            v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
        };
        Ok(FaultLatency {
            pager_p50_ns: pct(&mut pager, 0.5),
            pager_p99_ns: pct(&mut pager, 0.99),
            kernel_p50_ns: pct(&mut kernel, 0.5),
            kernel_p99_ns: pct(&mut kernel, 0.99),
        })
    }
}

impl Drop for TestFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Write one byte a page into new private anonymous memory of `size` bytes: the time
/// a page.
fn anon_touch_ns_per_page(size: u64) -> Result<f64> {
    let mut mem = MapOptions::new().len(size as usize).map_anon()?;
    let page = mem.page_size();
    let start = Instant::now();
    for off in (0..mem.len()).step_by(page) {
        mem[off] = 1;
    }
    let took = start.elapsed();
    std::hint::black_box(&mem);
    Ok(took.as_nanos() as f64 / (mem.len() / page) as f64)
}

fn scan_bytes(bytes: &[u8], seq: bool, offsets: &[u64]) -> u64 {
    if seq {
        return scan(bytes);
    }
    offsets.iter().fold(0u64, |sum, &off| {
        let off = off as usize;
        let end = (off + 4096).min(bytes.len());
        sum.wrapping_add(scan(&bytes[off..end]))
    })
}

/// Time one read of a byte every `stride` bytes, `count` of them, into `out` (ns).
fn time_touches(bytes: &[u8], stride: usize, count: usize, out: &mut Vec<f64>) {
    for i in 0..count {
        let off = i * stride + (i * 4096) % stride;
        if off >= bytes.len() {
            break;
        }
        let start = Instant::now();
        std::hint::black_box(bytes[off]);
        out.push(start.elapsed().as_nanos() as f64);
    }
}

/// Read a whole pager in 1 MiB steps, or `random` 4 KiB blocks at fixed page offsets,
/// through [`Pager::read_at`](Pager::read_at) (guarded: a failing source is an
/// `Err`, not SIGBUS). Returns the sum of the bytes' 64-bit words and the time taken.
///
/// # Errors
/// The source failed on a page, or the pager was closed.
pub fn scan_pager(pager: &Pager, random: Option<usize>) -> Result<(u64, Duration)> {
    let start = Instant::now();
    let mut sum = 0u64;
    let len = pager.len();
    match random {
        None => {
            let mut buf = vec![0u8; 1 << 20];
            let mut off = 0;
            while off < len {
                let n = (len - off).min(buf.len());
                pager.read_at(off, &mut buf[..n])?;
                sum = sum.wrapping_add(scan(&buf[..n]));
                off += n;
            }
        }
        Some(count) => {
            let mut buf = [0u8; 4096];
            // Made one at a time: a count in the billions must not become a vector.
            for off in random_offsets_iter(len as u64, count) {
                let off = off as usize;
                let n = (len - off).min(buf.len());
                pager.read_at(off, &mut buf[..n])?;
                sum = sum.wrapping_add(scan(&buf[..n]));
            }
        }
    }
    Ok((sum, start.elapsed()))
}

/// Bytes of a pager's data that [`scan_pager`] touches with the same `random` (`None`:
/// the whole of `len`): the distinct pages its reads fall in, the last page clipped at
/// `len`. No pager can serve the scan fetching less; what a source fetched beyond it is
/// read-ahead the scan did not use.
pub fn touched_bytes(len: u64, random: Option<usize>) -> u64 {
    let Some(count) = random else {
        return len;
    };
    let page = mmkit::page_size() as u64;
    let pages = len.div_ceil(page);
    let block = BLOCK as u64;
    // The pages each read touches, as page numbers (a read is one 4 KiB block).
    let touched = random_offsets_iter(len, count)
        .filter(|&off| off < len)
        .flat_map(|off| off / page..=((off + block).min(len) - 1) / page);
    let mut last_touched = false;
    let touched = touched.inspect(|&p| last_touched |= p == pages - 1);
    let distinct = if pages / 64 <= count as u64 {
        // A bitmap of the pages: no larger than the list of reads would be.
        let mut seen = vec![0u64; pages.div_ceil(64) as usize];
        let mut n = 0u64;
        for p in touched {
            let (w, b) = ((p / 64) as usize, 1u64 << (p % 64));
            n += u64::from(seen[w] & b == 0);
            seen[w] |= b;
        }
        n
    } else {
        let mut list: Vec<u64> = touched.collect();
        list.sort_unstable();
        list.dedup();
        list.len() as u64
    };
    // Every touched page is whole but the object's last, which holds `len % page` bytes.
    let short = (page - len % page) % page;
    distinct * page - if last_touched { short } else { 0 }
}

#[cfg(test)]
mod tests {
    #[test]
    fn touched_bytes_counts_distinct_pages_clipped_at_the_end() {
        let page = mmkit::page_size() as u64;
        assert_eq!(super::touched_bytes(12345, None), 12345);
        assert_eq!(super::touched_bytes(0, Some(10)), 0);
        // One page, read many times: it counts once, clipped.
        assert_eq!(super::touched_bytes(100, Some(50)), 100);
        // Enough reads to touch every page of a small object: all of it.
        let len = 64 * page + 7;
        assert_eq!(super::touched_bytes(len, Some(100_000)), len);
        // A few reads of a large object: a page each at most, and the same by either
        // counting method (bitmap and list).
        let big = 1 << 40;
        let few = super::touched_bytes(big, Some(1000));
        assert!(few <= 1000 * page && few >= 990 * page, "{few}");
    }

    #[test]
    fn offsets_one_at_a_time_match_the_vector() {
        for (size, count) in [(0u64, 3usize), (1, 5), (10 << 20, 1000)] {
            let lazy: Vec<u64> = super::random_offsets_iter(size, count).collect();
            assert_eq!(lazy, crate::bench::random_offsets(size, count));
        }
    }
}
