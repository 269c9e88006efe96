//! The bench loop: files, warm-up, interleaved timed runs, checks, medians.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::cache;
use super::method::{pass, random_offsets, CacheState, Method, Pattern, Target, BLOCK};
use super::report::{BenchReport, CaseResult, Machine};
use mmkit::helpers::median_time;
use mmkit::helpers::XorShift;
use mmkit::lab_seam::ErrorExt;
use mmkit::size::format_size;
use mmkit::{Error, ErrorKind, Op, Result};

/// What to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchOptions {
    /// File sizes to generate (ignored when [`file`](Self::file) is set).
    pub sizes: Vec<u64>,
    /// Measure this file instead of generated ones. It must not be written while the
    /// bench runs (mapped methods read it in place); a cold run evicts its pages.
    pub file: Option<PathBuf>,
    /// Where to generate files (a fresh subdirectory, removed afterwards); default the
    /// system temporary directory.
    pub dir: Option<PathBuf>,
    /// Timed runs per case (the median is reported).
    pub runs: usize,
    /// Methods to compare.
    pub methods: Vec<Method>,
    /// Patterns to run.
    pub patterns: Vec<Pattern>,
    /// Cache states to run.
    pub caches: Vec<CacheState>,
    /// `read`/`pread` buffer size in bytes.
    pub buffer: usize,
    /// 4 KiB reads in one `random` pass.
    pub random_reads: usize,
    /// A warm timed run repeats the pass until about this long.
    pub min_run_time: Duration,
}

impl Default for BenchOptions {
    /// Sizes 4 KiB, 64 KiB, 1 MiB, 16 MiB, 256 MiB; 5 runs; every method, pattern and
    /// cache state; 1 MiB buffer; 1000 random reads.
    fn default() -> BenchOptions {
        BenchOptions {
            sizes: vec![4 << 10, 64 << 10, 1 << 20, 16 << 20, 256 << 20],
            file: None,
            dir: None,
            runs: 5,
            methods: Method::ALL.to_vec(),
            patterns: vec![Pattern::Seq, Pattern::Random],
            caches: vec![CacheState::Warm, CacheState::Cold],
            buffer: 1 << 20,
            random_reads: 1000,
            min_run_time: Duration::from_millis(20),
        }
    }
}

impl BenchOptions {
    /// A quick sweep: 4 KiB, 1 MiB, 16 MiB; 3 runs; 5 ms warm runs.
    pub fn quick() -> BenchOptions {
        BenchOptions {
            sizes: vec![4 << 10, 1 << 20, 16 << 20],
            runs: 3,
            min_run_time: Duration::from_millis(5),
            ..BenchOptions::default()
        }
    }
}

/// Progress of a run, given to the callback after each finished case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Cases (size × pattern × cache, all methods) finished.
    pub done: usize,
    /// Cases in the run.
    pub total: usize,
    /// The case just finished, e.g. `16 MiB seq cold`.
    pub case: String,
}

/// A directory of generated files, removed on drop.
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn bad(detail: impl Into<String>) -> Error {
    Error::new(Op::Open, ErrorKind::Unsupported).detail(detail)
}

/// The most timed runs per case (a median of 1000 is as good as one of more).
pub const MAX_RUNS: usize = 1000;
/// The largest `read`/`pread` buffer (it is allocated and zeroed up front).
pub const MAX_BUFFER: usize = 256 << 20;
/// The most 4 KiB reads in one random pass (about a second of `pread`s here).
pub const MAX_RANDOM_READS: usize = 1_000_000;

/// Refuse a count outside `1..=max`: `what` names it in the error.
pub(crate) fn check_count(what: &str, value: usize, max: usize) -> Result<()> {
    if value == 0 || value > max {
        return Err(bad(format!("{what} must be from 1 to {max}, not {value}"))
            .hint("give a smaller number: a median of a few runs is already stable"));
    }
    Ok(())
}

/// Refuse numbers that cannot give a measurement in reasonable time and memory.
fn check_limits(config: &BenchOptions) -> Result<()> {
    check_count("runs", config.runs, MAX_RUNS)?;
    check_count("buffer", config.buffer, MAX_BUFFER)?;
    check_count("random reads", config.random_reads, MAX_RANDOM_READS)?;
    if config.methods.is_empty() {
        return Err(bad("no methods to compare"));
    }
    if config.file.is_none() && config.sizes.contains(&0) {
        return Err(
            bad("a file size of 0 bytes has nothing to read").hint("give sizes of 1 byte or more")
        );
    }
    Ok(())
}

/// Refuse generated files that would not fit in the free space of `dir`, before
/// writing any of them.
pub(crate) fn check_space(dir: &Path, sizes: &[u64]) -> Result<()> {
    let total = sizes
        .iter()
        .try_fold(0u64, |sum, &s| sum.checked_add(s))
        .ok_or_else(|| {
            Error::new(Op::Open, ErrorKind::LengthOverflow)
                .detail("the sizes add up past 2^64 bytes")
        })?;
    check_free_space(dir, total)
}

/// Refuse `total` bytes of test files that would not fit in the free space of `dir`
/// (writing them would fill the disk first, then fail).
pub(crate) fn check_free_space(dir: &Path, total: u64) -> Result<()> {
    let st = rustix::fs::statvfs(dir).map_err(|e| Error::os(Op::Open, e).with_path(Some(dir)))?;
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    if total > free {
        return Err(Error::os(Op::Open, rustix::io::Errno::NOSPC)
            .with_path(Some(dir))
            .detail(format!(
                "the generated files need {}, and the file system has {} free",
                format_size(total),
                format_size(free)
            ))
            .hint("choose a smaller size, or a --dir on a file system with room"));
    }
    Ok(())
}

/// Open the user's file to measure: a regular, non-empty file, opened without blocking
/// (a FIFO would otherwise wait for a writer).
pub(crate) fn open_measured(path: &Path) -> Result<(File, u64)> {
    let file = mmkit::lab_seam::open_for_map(path, false, false)?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io(Op::Open, &e).with_path(Some(path)))?;
    if !meta.is_file() {
        return Err(Error::new(Op::Open, ErrorKind::NotMappable)
            .with_path(Some(path))
            .detail("not a regular file"));
    }
    if meta.len() == 0 {
        return Err(bad("the file is empty").with_path(Some(path)));
    }
    Ok((file, meta.len()))
}

/// Write `size` bytes of xorshift data to `path` (created or truncated) and sync them.
pub(crate) fn generate(path: &Path, size: u64) -> Result<File> {
    use std::io::Write;
    let open_err = |e| Error::io(Op::Open, &e).with_path(Some(path));
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(open_err)?;
    let mut rng = XorShift::new(0x2545_F491_4F6C_DD1D ^ size);
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for w in chunk.chunks_exact_mut(8) {
            w.copy_from_slice(&rng.next_u64().to_ne_bytes());
        }
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n]).map_err(open_err)?;
        left -= n as u64;
    }
    f.sync_all().map_err(open_err)?;
    Ok(f)
}

/// Run the bench; `progress` is called after each case.
///
/// # Errors
/// A missing or unreadable file, a directory, an empty file; a file system refusing the
/// generated files; any method failing; methods disagreeing on a checksum
/// (`Unsupported`, naming the methods and the case).
pub fn run(config: &BenchOptions, progress: &mut dyn FnMut(&Progress)) -> Result<BenchReport> {
    check_limits(config)?;
    let mut scratch = None;
    let files: Vec<(File, u64)> = match &config.file {
        Some(path) => vec![open_measured(path)?],
        None => {
            let base = config.dir.clone().unwrap_or_else(std::env::temp_dir);
            check_space(&base, &config.sizes)?;
            let dir = base.join(format!("mmkit-bench-{}", std::process::id()));
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::io(Op::Open, &e).with_path(Some(&dir)))?;
            let dir = scratch.insert(Scratch(dir)).0.clone();
            let mut files = Vec::new();
            for &size in &config.sizes {
                let path = dir.join(format!("bench-{size}.dat"));
                files.push((generate(&path, size)?, size));
            }
            files
        }
    };
    let total = files.len() * config.patterns.len() * config.caches.len();
    let mut done = 0;
    let mut buf = vec![1u8; config.buffer.max(BLOCK)];
    let mut results = Vec::new();
    for (file, size) in &files {
        let offsets = random_offsets(*size, config.random_reads);
        for &pattern in &config.patterns {
            for &cache in &config.caches {
                let mut target = Target {
                    file,
                    size: *size,
                    buf: &mut buf,
                    offsets: &offsets,
                };
                results.extend(case(config, pattern, cache, &mut target)?);
                done += 1;
                progress(&Progress {
                    done,
                    total,
                    case: format!("{} {} {}", format_size(*size), pattern.name(), cache.name()),
                });
            }
        }
    }
    drop(scratch);
    Ok(BenchReport {
        machine: Machine::current(),
        file: config.file.clone(),
        buffer: config.buffer,
        random_reads: config.random_reads,
        results,
    })
}

/// Per-method state within a case.
struct Timing {
    method: Method,
    passes: u32,
    per_pass: Vec<Duration>,
    cached_before: Option<u64>,
}

/// The checksum every method of a case must agree on: the first one given.
struct Sums {
    /// The first method's checksum.
    expected: Option<(Method, u64)>,
    /// The case, for the error.
    what: String,
}

impl Sums {
    fn check(&mut self, method: Method, sum: u64) -> Result<()> {
        match self.expected {
            None => self.expected = Some((method, sum)),
            Some((m, s)) if s != sum => {
                return Err(Error::new(Op::Read, ErrorKind::Unsupported).detail(format!(
                    "{}: {} gave checksum {sum:#x} but {} gave {s:#x}",
                    self.what,
                    method.name(),
                    m.name()
                )))
            }
            Some(_) => {}
        }
        Ok(())
    }
}

fn case(
    config: &BenchOptions,
    pattern: Pattern,
    cache: CacheState,
    t: &mut Target<'_>,
) -> Result<Vec<CaseResult>> {
    let mut sums = Sums {
        expected: None,
        what: format!(
            "{} {} {}",
            format_size(t.size),
            pattern.name(),
            cache.name()
        ),
    };
    let mut timings = warm_up(config, pattern, cache, t, &mut sums)?;
    for _ in 0..config.runs {
        for timing in &mut timings {
            if cache == CacheState::Cold {
                cache::evict(t.file)?;
            }
            let cached = cache::cached_pages(t.file);
            timing.cached_before = match (timing.cached_before, cached) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            let start = Instant::now();
            for _ in 0..timing.passes {
                let sum = std::hint::black_box(pass(timing.method, pattern, t)?);
                sums.check(timing.method, sum)?;
            }
            timing.per_pass.push(start.elapsed() / timing.passes);
        }
    }
    let checksum = sums.expected.map_or(0, |(_, s)| s);
    Ok(results(timings, pattern, cache, t, checksum))
}

/// Warm-up: every method once untimed (touches buffers, checks the sums), then one
/// timed pass (warm) to choose how many passes a run repeats.
fn warm_up(
    config: &BenchOptions,
    pattern: Pattern,
    cache: CacheState,
    t: &mut Target<'_>,
    sums: &mut Sums,
) -> Result<Vec<Timing>> {
    cache::warm(t.file, t.buf)?;
    let mut timings = Vec::new();
    for &method in &config.methods {
        let sum = pass(method, pattern, t)?;
        sums.check(method, sum)?;
        let passes = match cache {
            CacheState::Cold => 1,
            CacheState::Warm => {
                let start = Instant::now();
                let sum = pass(method, pattern, t)?;
                let took = start.elapsed().max(Duration::from_nanos(100));
                sums.check(method, sum)?;
                (config.min_run_time.as_nanos() / took.as_nanos()).clamp(1, 100_000) as u32
            }
        };
        timings.push(Timing {
            method,
            passes,
            per_pass: Vec::new(),
            cached_before: None,
        });
    }
    Ok(timings)
}

/// The case's results from its timings, with each method's ratio to `read()`.
fn results(
    timings: Vec<Timing>,
    pattern: Pattern,
    cache: CacheState,
    t: &Target<'_>,
    checksum: u64,
) -> Vec<CaseResult> {
    let bytes_per_pass = match pattern {
        Pattern::Seq => t.size,
        Pattern::Random => t
            .offsets
            .iter()
            .map(|&o| (t.size - o).min(BLOCK as u64))
            .sum(),
    };
    let mut out: Vec<CaseResult> = timings
        .into_iter()
        .map(|mut tm| {
            let median_ns = (median_time(&mut tm.per_pass).as_secs_f64() * 1e9).max(1.0);
            CaseResult {
                size: t.size,
                pattern,
                cache,
                method: tm.method,
                runs: tm.per_pass.len(),
                passes_per_run: tm.passes,
                median_ns,
                min_ns: tm.per_pass[0].as_secs_f64() * 1e9,
                max_ns: tm.per_pass[tm.per_pass.len() - 1].as_secs_f64() * 1e9,
                bytes_per_pass,
                throughput_gbps: bytes_per_pass as f64 / median_ns,
                ops_per_sec: (pattern == Pattern::Random)
                    .then(|| t.offsets.len() as f64 / (median_ns / 1e9)),
                ratio_to_read: None,
                checksum,
                cached_pages_before: tm.cached_before,
            }
        })
        .collect();
    if let Some(read) = out
        .iter()
        .find(|r| r.method == Method::Read)
        .map(|r| r.median_ns)
    {
        for r in &mut out {
            r.ratio_to_read = Some(if r.method == Method::Read {
                1.0
            } else {
                read / r.median_ns
            });
        }
    }
    out
}
