//! `mmkit bench sink`: ways to move a file to a pipe, a loopback TCP socket or another
//! file, side by side in one run, warm and cold.
//!
//! The methods are [`copy::Method`](mmkit::copy::Method)'s, each forced: `read` + `write`
//! (1 MiB buffer), a mapping + `write`, `sendfile`, `splice` (straight into the pipe sink,
//! else through a pipe of its own sized to 1 MiB with `F_SETPIPE_SZ`) and
//! `copy_file_range` (a file sink only: the kernel refuses it for the others, and the
//! report says `n/a` with the errno it gave).
//!
//! The sinks ([`Sink`]): a pipe (sized to 1 MiB too) and a TCP connection on 127.0.0.1,
//! each drained by a reader thread this bench starts, with a fresh pipe or connection
//! for every pass; and a file in the scratch directory, truncated before every pass (so
//! the copy writes into the page cache: no `fsync` is timed).
//!
//! For each pass it measures the time from the start of the copy to the reader's end of
//! file, and the **CPU time of the sending thread** (user + system, `getrusage` with
//! `RUSAGE_THREAD` around the copy): the reader's CPU is not in it (it is reported apart,
//! [`SinkResult::reader_cpu_s_per_gb`], and the two together with anything else the
//! process ran as [`SinkResult::process_cpu_s_per_gb`], from `RUSAGE_SELF`). Without `CONFIG_IRQ_TIME_ACCOUNTING` the kernel
//! charges softirq work to the thread it interrupts: on loopback, the receive path of a
//! packet runs in the softirq of the thread that sent it, and the transmit of more data
//! can run from the reader's ACKs, so how the work splits between the two threads depends
//! on whether they run on one CPU or two (the scheduler's choice, or `taskset`). The
//! process's total does not depend on it.
//!
//! Cold passes evict the file first (`fsync` + `posix_fadvise(DONTNEED)`, checked with
//! `cachestat`; pages a `sendfile` to a socket lent are freed lazily by the network stack,
//! so the eviction nudges it with a short loopback exchange until they go). A first untimed pass of each method checks that the sink received the
//! file's bytes (their count and checksum). Results are medians with min and max over
//! [`SinkOptions::runs`] runs, methods interleaved within each run, with each method's
//! CPU per GB over `read` + `write`'s.
//!
//! ```
//! use mmkit_lab::bench::{self, CacheState, Sink, SinkOptions};
//! use mmkit::copy::Method;
//! let dir = tempfile::tempdir()?;
//! let options = SinkOptions {
//!     sizes: vec![1 << 20],
//!     runs: 1,
//!     sinks: vec![Sink::Pipe],
//!     caches: vec![CacheState::Warm],
//!     dir: Some(dir.path().to_path_buf()),
//!     ..SinkOptions::default()
//! };
//! let report = bench::run_sinks(&options, &mut |_| {})?;
//! let sendfile = report.results.iter().find(|r| r.method == Method::Sendfile).unwrap();
//! assert!(sendfile.cpu_s_per_gb.is_some());
//! let cfr = report.results.iter().find(|r| r.method == Method::CopyFileRange).unwrap();
//! assert!(cfr.refused.is_some()); // n/a into a pipe
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use super::cache;
use super::method::CacheState;
use super::report::Machine;
use super::runner::{
    bad, check_count, check_space, generate, open_measured, Progress, Scratch, MAX_BUFFER, MAX_RUNS,
};
pub use super::sink_pass::Sink;
use super::sink_pass::{checksum_file, pass, Endpoints, Sample};
use mmkit::copy::Method;
use mmkit::helpers::median;
use mmkit::lab_seam::ErrorExt;
use mmkit::size::format_size;
use mmkit::{Error, ErrorKind, Op, Result};

/// What to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkOptions {
    /// File sizes to generate (ignored when [`file`](Self::file) is set).
    pub sizes: Vec<u64>,
    /// Send this file instead of generated ones (it must not be written meanwhile; cold
    /// runs evict it from the page cache).
    pub file: Option<PathBuf>,
    /// Where to generate files and the file sink (a fresh subdirectory, removed
    /// afterwards); default the system temporary directory.
    pub dir: Option<PathBuf>,
    /// Timed runs per case (the median is reported).
    pub runs: usize,
    /// Sinks to send to.
    pub sinks: Vec<Sink>,
    /// Methods to compare.
    pub methods: Vec<Method>,
    /// Cache states to run.
    pub caches: Vec<CacheState>,
    /// The pipe buffer asked for splice's own pipe and the pipe sink, in bytes.
    pub pipe_size: usize,
    /// The read+write buffer, and the readers', in bytes.
    pub buffer: usize,
}

impl Default for SinkOptions {
    /// 1 GiB, 3 runs, every sink, method and cache state, 1 MiB pipes and buffers.
    fn default() -> SinkOptions {
        SinkOptions {
            sizes: vec![1 << 30],
            file: None,
            dir: None,
            runs: 3,
            sinks: Sink::ALL.to_vec(),
            methods: Method::ALL.to_vec(),
            caches: vec![CacheState::Warm, CacheState::Cold],
            pipe_size: 1 << 20,
            buffer: 1 << 20,
        }
    }
}

impl SinkOptions {
    /// 64 MiB instead of 1 GiB.
    pub fn quick() -> SinkOptions {
        SinkOptions {
            sizes: vec![64 << 20],
            ..SinkOptions::default()
        }
    }
}

/// One method sending one file to one sink, warm or cold. `None` fields: the method was
/// refused for this sink (`refused` says how), so nothing was measured.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct SinkResult {
    /// File size in bytes.
    pub size: u64,
    /// Where the bytes went.
    pub sink: Sink,
    /// The cache state before each timed pass.
    pub cache: CacheState,
    /// The method, forced.
    pub method: Method,
    /// Why the method is not applicable to this sink: the kernel's refusal
    /// (`EINVAL (Invalid argument)`); `None` when it was measured.
    pub refused: Option<String>,
    /// Timed runs.
    pub runs: usize,
    /// Median time of a pass, in nanoseconds (to the reader's end of file).
    pub median_ns: Option<f64>,
    /// Fastest pass, in nanoseconds.
    pub min_ns: Option<f64>,
    /// Slowest pass, in nanoseconds.
    pub max_ns: Option<f64>,
    /// Bytes over the median time, in GB/s (10^9 bytes).
    pub throughput_gbps: Option<f64>,
    /// The sending thread's CPU seconds (user + system) per GB moved, median of the runs.
    pub cpu_s_per_gb: Option<f64>,
    /// The lowest run's CPU seconds per GB.
    pub cpu_min_s_per_gb: Option<f64>,
    /// The highest run's CPU seconds per GB.
    pub cpu_max_s_per_gb: Option<f64>,
    /// User CPU seconds per GB, median.
    pub user_s_per_gb: Option<f64>,
    /// System CPU seconds per GB, median.
    pub sys_s_per_gb: Option<f64>,
    /// The reader thread's CPU seconds per GB, median (`None` for a file sink).
    pub reader_cpu_s_per_gb: Option<f64>,
    /// The whole process's CPU seconds per GB (`RUSAGE_SELF`: sender and reader), median.
    pub process_cpu_s_per_gb: Option<f64>,
    /// This method's median CPU per GB over `read` + `write`'s, same size, sink and cache
    /// (below 1: less CPU than read + write).
    pub cpu_ratio_to_read_write: Option<f64>,
    /// The most pages `cachestat(2)` counted as cached just before a timed pass.
    pub cached_pages_before: Option<u64>,
    /// Each run's time of a pass in nanoseconds, in run order (empty when refused).
    pub run_ns: Vec<f64>,
    /// Each run's sending-thread CPU seconds per GB, in run order: with the same index
    /// of another method's, a ratio within one run (the methods take turns in each run).
    pub run_cpu_s_per_gb: Vec<f64>,
}

/// A whole sink bench run.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct SinkReport {
    /// Where it ran.
    pub machine: Machine,
    /// The file sent, when one was given (else generated files).
    pub file: Option<PathBuf>,
    /// The pipe buffer asked for, in bytes.
    pub pipe_size: usize,
    /// The pipe buffer the kernel gave splice's own pipe (when a splice pass used one).
    pub pipe_size_granted: Option<usize>,
    /// The read+write buffer, in bytes.
    pub buffer: usize,
    /// One entry per size × sink × cache × method, in that nesting order.
    pub results: Vec<SinkResult>,
}

/// Run the sink bench; `progress` is called after each case (size × sink × cache).
///
/// # Errors
/// Bad options (no runs, sinks or methods; a zero size or buffer); a missing, empty or
/// special file; no room for the generated files; a method failing for a reason other
/// than the kernel refusing it for the sink; a sink receiving other bytes than the file's.
pub fn run_sinks(options: &SinkOptions, progress: &mut dyn FnMut(&Progress)) -> Result<SinkReport> {
    check_options(options)?;
    let (scratch, files) = prepare(options)?;
    let listener = match options.sinks.contains(&Sink::Socket) {
        true => Some(TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io(Op::Open, &e))?),
        false => None,
    };
    let ep = Endpoints {
        listener,
        sink_file: scratch.0.join("sink.dat"),
        pipe_size: options.pipe_size,
        buffer: options.buffer,
    };
    let total = files.len() * options.sinks.len() * options.caches.len();
    let mut done = 0;
    let mut granted = None;
    let mut results = Vec::new();
    for (file, size) in &files {
        let (sum, len) = checksum_file(file, options.buffer)?;
        if len != *size {
            return Err(bad("the file changed size while it was read").at(0, *size));
        }
        for &sink in &options.sinks {
            let what = format!("{} to a {}", format_size(*size), sink.name());
            let checked = check_methods(options, &ep, sink, (file, *size, sum), &what)?;
            granted = checked.granted.or(granted);
            for &cache in &options.caches {
                let one = (file, *size, sink, cache);
                results.extend(case(options, &ep, one, &checked.refused)?);
                done += 1;
                progress(&Progress {
                    done,
                    total,
                    case: format!("{what} {}", cache.name()),
                });
            }
        }
    }
    drop(scratch);
    Ok(SinkReport {
        machine: Machine::current(),
        file: options.file.clone(),
        pipe_size: options.pipe_size,
        pipe_size_granted: granted,
        buffer: options.buffer,
        results,
    })
}

/// Refuse options that leave nothing to measure.
fn check_options(options: &SinkOptions) -> Result<()> {
    check_count("runs", options.runs, MAX_RUNS)?;
    check_count("buffer", options.buffer, MAX_BUFFER)?;
    check_count("pipe size", options.pipe_size, MAX_BUFFER)?;
    if options.methods.is_empty() || options.sinks.is_empty() || options.caches.is_empty() {
        return Err(bad("no methods, sinks or cache states to measure"));
    }
    if options.file.is_none() && options.sizes.contains(&0) {
        return Err(
            bad("a file size of 0 bytes has nothing to send").hint("give sizes of 1 byte or more")
        );
    }
    Ok(())
}

/// The scratch directory and the files to send (the given one, or one generated per
/// size), once there is room for them and for the file sink's copy of the largest.
fn prepare(options: &SinkOptions) -> Result<(Scratch, Vec<(File, u64)>)> {
    let base = options.dir.clone().unwrap_or_else(std::env::temp_dir);
    let mut need: Vec<u64> = match options.file {
        Some(_) => Vec::new(),
        None => options.sizes.clone(),
    };
    let files: Vec<(File, u64)> = match &options.file {
        Some(path) => vec![open_measured(path)?],
        None => Vec::new(),
    };
    if options.sinks.contains(&Sink::File) {
        // The file sink holds a copy of the largest file.
        need.push(
            files
                .iter()
                .map(|f| f.1)
                .chain(options.sizes.iter().copied())
                .max()
                .unwrap_or(0),
        );
    }
    check_space(&base, &need)?;
    let dir = base.join(format!("mmkit-sink-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(Op::Open, &e).with_path(Some(&dir)))?;
    let scratch = Scratch(dir);
    let files = match options.file {
        Some(_) => files,
        None => options
            .sizes
            .iter()
            .map(|&size| {
                Ok((
                    generate(&scratch.0.join(format!("send-{size}.dat")), size)?,
                    size,
                ))
            })
            .collect::<Result<Vec<_>>>()?,
    };
    Ok((scratch, files))
}

/// What the untimed check of every method for one sink found.
struct Checked {
    /// The methods the kernel refused for the sink, with the errno's label.
    refused: Vec<(Method, String)>,
    /// The pipe buffer the kernel gave splice's own pipe, when a pass used one.
    granted: Option<usize>,
}

/// The untimed check of every method: the bytes arrive (`file` is the file, its size and
/// checksum), or the kernel refuses the method for the sink.
fn check_methods(
    options: &SinkOptions,
    ep: &Endpoints,
    sink: Sink,
    (file, size, sum): (&File, u64, u64),
    what: &str,
) -> Result<Checked> {
    let mut checked = Checked {
        refused: Vec::new(),
        granted: None,
    };
    for &method in &options.methods {
        match pass(ep, sink, method, file, true) {
            Ok((_, got)) => {
                if got.bytes != size || got.checksum != Some(sum) {
                    return Err(Error::new(Op::Copy, ErrorKind::Corrupt).detail(format!(
                        "{what}: {} delivered {} bytes with checksum {:#x}, not the file's {size} bytes with {sum:#x}",
                        method.name(),
                        got.bytes,
                        got.checksum.unwrap_or(0)
                    )));
                }
                checked.granted = got.report.pipe_size.or(checked.granted);
            }
            Err(e) if e.kind() == ErrorKind::Unsupported && e.errno().is_some() => {
                let label = mmkit::lab_seam::errno_label(e.errno().unwrap_or(0));
                checked.refused.push((method, label));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(checked)
}

/// The timed runs of every method for one file, sink and cache state.
fn case(
    options: &SinkOptions,
    ep: &Endpoints,
    (file, size, sink, cache): (&File, u64, Sink, CacheState),
    refused: &[(Method, String)],
) -> Result<Vec<SinkResult>> {
    if cache == CacheState::Warm {
        checksum_file(file, options.buffer)?;
    }
    let measured: Vec<Method> = options
        .methods
        .iter()
        .copied()
        .filter(|m| !refused.iter().any(|(r, _)| r == m))
        .collect();
    let (samples, cached_before) = time_runs(options, ep, (file, size, sink, cache), &measured)?;
    let mut out = Vec::new();
    for &method in &options.methods {
        let blank = SinkResult::blank(size, sink, cache, method);
        if let Some((_, why)) = refused.iter().find(|(m, _)| *m == method) {
            out.push(SinkResult {
                refused: Some(why.clone()),
                ..blank
            });
            continue;
        }
        let i = measured
            .iter()
            .position(|m| *m == method)
            .expect("measured");
        out.push(SinkResult {
            cached_pages_before: cached_before,
            ..blank.measured(&samples[i])
        });
    }
    let base = out
        .iter()
        .find(|r| r.method == Method::ReadWrite)
        .and_then(|r| r.cpu_s_per_gb);
    if let Some(base) = base.filter(|b| *b > 0.0) {
        for r in &mut out {
            r.cpu_ratio_to_read_write = r.cpu_s_per_gb.map(|c| c / base);
        }
    }
    Ok(out)
}

/// `options.runs` timed passes of each of `measured`, the methods taking turns in each
/// run; the samples per method, and the most pages cached before a cold pass.
fn time_runs(
    options: &SinkOptions,
    ep: &Endpoints,
    (file, size, sink, cache): (&File, u64, Sink, CacheState),
    measured: &[Method],
) -> Result<(Vec<Vec<Sample>>, Option<u64>)> {
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); measured.len()];
    let mut cached_before: Option<u64> = None;
    for _ in 0..options.runs {
        for (i, &method) in measured.iter().enumerate() {
            if cache == CacheState::Cold {
                if let Some(c) = evict(file, ep)? {
                    cached_before = Some(cached_before.map_or(c, |b| b.max(c)));
                }
            }
            let (sample, got) = pass(ep, sink, method, file, false)?;
            if got.bytes != size {
                return Err(Error::new(Op::Copy, ErrorKind::Corrupt).detail(format!(
                    "{} to a {}: {} bytes delivered, not {size}",
                    method.name(),
                    sink.name(),
                    got.bytes
                )));
            }
            samples[i].push(sample);
        }
    }
    Ok((samples, cached_before))
}

impl SinkResult {
    /// A result with nothing measured yet.
    fn blank(size: u64, sink: Sink, cache: CacheState, method: Method) -> SinkResult {
        SinkResult {
            size,
            sink,
            cache,
            method,
            refused: None,
            runs: 0,
            median_ns: None,
            min_ns: None,
            max_ns: None,
            throughput_gbps: None,
            cpu_s_per_gb: None,
            cpu_min_s_per_gb: None,
            cpu_max_s_per_gb: None,
            user_s_per_gb: None,
            sys_s_per_gb: None,
            reader_cpu_s_per_gb: None,
            process_cpu_s_per_gb: None,
            cpu_ratio_to_read_write: None,
            cached_pages_before: None,
            run_ns: Vec::new(),
            run_cpu_s_per_gb: Vec::new(),
        }
    }

    /// This result with the figures of its samples (one per run).
    fn measured(self, s: &[Sample]) -> SinkResult {
        let gb = self.size as f64 / 1e9;
        let per_gb = |d: Duration| d.as_secs_f64() / gb;
        let mut walls: Vec<f64> = s.iter().map(|x| x.wall.as_secs_f64() * 1e9).collect();
        let mut cpus: Vec<f64> = s.iter().map(|x| per_gb(x.user + x.sys)).collect();
        let mut users: Vec<f64> = s.iter().map(|x| per_gb(x.user)).collect();
        let mut syss: Vec<f64> = s.iter().map(|x| per_gb(x.sys)).collect();
        let mut readers: Vec<f64> = s.iter().filter_map(|x| x.reader.map(per_gb)).collect();
        let mut procs: Vec<f64> = s.iter().map(|x| per_gb(x.process)).collect();
        let (run_ns, run_cpu) = (walls.clone(), cpus.clone());
        let median_ns = median(&mut walls).max(1.0);
        let cpu = median(&mut cpus);
        SinkResult {
            runs: s.len(),
            median_ns: Some(median_ns),
            min_ns: walls.first().copied(),
            max_ns: walls.last().copied(),
            throughput_gbps: Some(self.size as f64 / median_ns),
            cpu_s_per_gb: Some(cpu),
            cpu_min_s_per_gb: cpus.first().copied(),
            cpu_max_s_per_gb: cpus.last().copied(),
            user_s_per_gb: Some(median(&mut users)),
            sys_s_per_gb: Some(median(&mut syss)),
            reader_cpu_s_per_gb: (!readers.is_empty()).then(|| median(&mut readers)),
            process_cpu_s_per_gb: Some(median(&mut procs)),
            run_ns,
            run_cpu_s_per_gb: run_cpu,
            ..self
        }
    }
}

/// Evict the file; the pages still cached after (`None` without `cachestat`).
///
/// Pages a `sendfile` to a socket lent stay referenced by socket buffers the kernel frees
/// lazily (at the next network receive on the CPU that made them), and a referenced page
/// is not evicted: while pages remain, nudge with a short loopback exchange and try
/// again, up to 50 times.
fn evict(file: &File, ep: &Endpoints) -> Result<Option<u64>> {
    for _ in 0..50 {
        cache::evict(file)?;
        match cache::cached_pages(file) {
            Some(0) | None => break,
            Some(_) => {
                ep.nudge_loopback();
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    Ok(cache::cached_pages(file))
}
