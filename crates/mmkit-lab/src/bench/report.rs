//! The results of a bench run, and sizes as people write them.

use std::path::PathBuf;

use super::method::{CacheState, Method, Pattern};

/// The measurements of one method for one size, pattern and cache state.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct CaseResult {
    /// File size in bytes.
    pub size: u64,
    /// The access pattern.
    pub pattern: Pattern,
    /// The cache state before each timed pass.
    pub cache: CacheState,
    /// The method.
    pub method: Method,
    /// Timed runs.
    pub runs: usize,
    /// Passes in each timed run (warm runs repeat short passes; cold runs do one).
    pub passes_per_run: u32,
    /// Median time of one pass, in nanoseconds.
    pub median_ns: f64,
    /// Fastest run's time of one pass, in nanoseconds.
    pub min_ns: f64,
    /// Slowest run's time of one pass, in nanoseconds.
    pub max_ns: f64,
    /// Bytes a pass reads (the file for `seq`; the blocks for `random`).
    pub bytes_per_pass: u64,
    /// Bytes a pass reads over the median time, in GB/s (10^9 bytes).
    pub throughput_gbps: f64,
    /// Reads per second at the median (`random` only).
    pub ops_per_sec: Option<f64>,
    /// `read()`'s median over this method's median for the same size, pattern and cache
    /// (above 1: faster than `read()`); `None` when `read` was not measured.
    pub ratio_to_read: Option<f64>,
    /// The checksum every pass gave (all methods agreed on it).
    pub checksum: u64,
    /// The most pages `cachestat(2)` counted as cached just before a timed pass (0 for a
    /// truly cold run); `None` where `cachestat` is missing.
    pub cached_pages_before: Option<u64>,
}

/// The machine a report was measured on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Machine {
    /// CPUs available to this process.
    pub cpus: usize,
    /// The CPU model from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// The kernel release (`uname -r`).
    pub kernel: String,
}

impl Machine {
    pub(crate) fn current() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .and_then(|r| r.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            kernel,
        }
    }
}

/// A whole bench run.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct BenchReport {
    /// Where it ran.
    pub machine: Machine,
    /// The file measured, when one was given (else generated files).
    pub file: Option<PathBuf>,
    /// `read`/`pread` buffer size in bytes.
    pub buffer: usize,
    /// Reads in a `random` pass.
    pub random_reads: usize,
    /// One entry per size × pattern × cache × method, in that nesting order.
    pub results: Vec<CaseResult>,
}
