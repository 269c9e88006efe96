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

/// The old name of [`BenchReport`].
#[deprecated(since = "0.1.0", note = "renamed to `BenchReport`")]
pub type Report = BenchReport;

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

/// Parse a size: bytes, or a number with `K`, `M`, `G` (powers of 1024; `KiB`, `KB`
/// and lower case also accepted). `None` for anything else, or zero.
///
/// ```
/// assert_eq!(mmkit::bench::parse_size("64K"), Some(65536));
/// assert_eq!(mmkit::bench::parse_size("1MiB"), Some(1 << 20));
/// assert_eq!(mmkit::bench::parse_size("12x"), None);
/// ```
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num.parse().ok()?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return None,
    };
    let v = n.checked_mul(1u64 << shift)?;
    (v > 0).then_some(v)
}

/// A size as people read it: `4 KiB`, `256 MiB`, `1.5 MiB`, `100 B`.
pub fn format_size(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
