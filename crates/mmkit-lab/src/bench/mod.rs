//! `mmkit bench read`: ways to read a file, measured side by side in one run; and with
//! [`run_sinks`] (`mmkit bench sink`, the [`sink`] module's docs), ways to send a file
//! to a pipe, a socket or a file; with [`run_find`] (`mmkit bench find`, the [`find`]
//! module's docs), `mmkit find` against ripgrep and grep.
//!
//! Methods ([`Method`]): a fresh lazy mapping, `MAP_POPULATE`, `MADV_SEQUENTIAL`,
//! `MADV_WILLNEED`, `MADV_HUGEPAGE`, `read(2)` into a buffer and `pread(2)` into the
//! same buffer. Patterns ([`Pattern`]): a sequential scan (a wrapping `u64` sum, the same
//! function for every method) and random 4 KiB reads at fixed xorshift offsets shared by
//! all methods. Cache states ([`CacheState`]): warm (the file was read before) and cold
//! (evicted before each timed pass with `fsync` + `posix_fadvise(DONTNEED)`, checked with
//! `cachestat(2)`, see [`CaseResult::cached_pages_before`]).
//!
//! Every pass of every method returns a checksum; a method that disagrees with the others
//! is an error. Results are medians (with min and max) over [`BenchOptions::runs`] runs, the
//! methods interleaved within each run, with the ratio to `read()` for the same size,
//! pattern and cache state. Tests never assert a timing; claims are these ratios.
//!
//! ```
//! use mmkit_lab::bench::{self, CacheState, BenchOptions, Method};
//! let dir = tempfile::tempdir()?;
//! let config = BenchOptions {
//!     sizes: vec![4096],
//!     runs: 1,
//!     random_reads: 16,
//!     dir: Some(dir.path().to_path_buf()),
//!     ..BenchOptions::quick()
//! };
//! let report = bench::run(&config, &mut |_| {})?;
//! let read = report
//!     .results
//!     .iter()
//!     .find(|r| r.method == Method::Read && r.cache == CacheState::Warm)
//!     .unwrap();
//! assert_eq!(read.ratio_to_read, Some(1.0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod cache;
pub mod find;
mod method;
mod report;
mod runner;
pub mod sink;
mod sink_pass;

pub use find::{run_find, FindOptions, FindReport, FindResult};
pub use method::{CacheState, Method, Pattern};
pub use report::{BenchReport, CaseResult, Machine};
// Helpers of the pager and store benches and the tour.
pub(crate) use method::{random_offsets, random_offsets_iter, scan, BLOCK};
pub(crate) use runner::{check_count, check_free_space, generate};
pub use runner::{run, BenchOptions, Progress, MAX_BUFFER, MAX_RANDOM_READS, MAX_RUNS};
pub use sink::{run_sinks, Sink, SinkOptions, SinkReport, SinkResult};

/// The user and system CPU time of `of` so far ([`mmkit::probe::cpu_time`]), as a pair.
pub(crate) fn cpu_time(of: mmkit::probe::CpuOf) -> (std::time::Duration, std::time::Duration) {
    let t = mmkit::probe::cpu_time(of);
    (t.user, t.system)
}
