//! `mmkit log bench`: [`Log`](mmkit::store::Log) appends against a plain `O_APPEND` `write(2)` log of the
//! same bytes, side by side in one run.
//!
//! For each record size (16 B, 256 B and 4 KiB by default) it measures appends per
//! second in three cases, each against its peer:
//!
//! | case | mmkit | peer |
//! |---|---|---|
//! | [`Durability::Process`], one writer | `Log::append` | one `write` per record (a 4-byte length, then the payload) on an `O_APPEND` file |
//! | [`Durability::Sync`], one writer | `Log::append` | `write` + `fdatasync` per record |
//! | [`Durability::Sync`], [`writers`](LogBenchOptions::writers) threads | `Log::append` from every thread (group commit) | every thread `write` + `fdatasync` on one shared `O_APPEND` descriptor |
//!
//! Every measurement writes a fresh file in a scratch directory (removed afterwards), so
//! both sides pay for new page-cache pages and block allocation. Each case is run
//! [`runs`](LogBenchOptions::runs) times, mmkit and its peer alternating which goes
//! first; a row gives the median appends/s of each side with the slowest and fastest
//! run, and the ratio of the medians. Tests never assert a timing.
//!
//! ```
//! use mmkit_lab::store::{self, LogBenchOptions};
//! let dir = tempfile::tempdir()?;
//! let opts = LogBenchOptions {
//!     dir: Some(dir.path().to_path_buf()),
//!     ..LogBenchOptions::tiny()
//! };
//! let report = store::run(&opts, |_| {})?;
//! assert_eq!(report.rows.len(), 3 * opts.sizes.len());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod measure;

use std::path::{Path, PathBuf};

use crate::bench::{check_count, check_free_space, Machine, MAX_RUNS};
use measure::{mmkit, peer, Job};
use mmkit::helpers::median;
use mmkit::helpers::XorShift;
use mmkit::lab_seam::record_size;
use mmkit::lab_seam::ErrorExt;
use mmkit::store::Durability;
use mmkit::{Error, ErrorKind, Op, Result};

/// The most appends one measurement may make (about 10 s of `write` calls here).
pub const MAX_APPENDS: usize = 100_000_000;
/// The most concurrent appenders.
pub const MAX_WRITERS: usize = 256;
/// The largest record measured (the log takes up to 1 GiB).
pub const MAX_RECORD: usize = 64 << 20;

/// What to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogBenchOptions {
    /// Record (payload) sizes in bytes.
    pub sizes: Vec<usize>,
    /// Runs of every measurement; the median is reported.
    pub runs: usize,
    /// Where to write the logs (a fresh subdirectory, removed afterwards); default the
    /// system temporary directory.
    pub dir: Option<PathBuf>,
    /// Appends per `Process` run for the smallest records...
    pub process_appends: usize,
    /// ...but no more than this many payload bytes per `Process` run (fewer appends of
    /// larger records).
    pub process_bytes: u64,
    /// Appends per `Sync` run with one writer.
    pub sync_appends: usize,
    /// Appends per `Sync` run with [`writers`](Self::writers) threads, all threads
    /// together.
    pub group_appends: usize,
    /// Concurrent appenders of the group-commit case.
    pub writers: usize,
}

impl Default for LogBenchOptions {
    /// 16 B, 256 B and 4 KiB; 3 runs; 1 000 000 `Process` appends or 64 MiB of payload,
    /// 1 000 `Sync` appends with one writer and 4 000 with 8 (about 40 s on a 2-vCPU VM
    /// whose `fdatasync` takes 0.3 ms).
    fn default() -> Self {
        LogBenchOptions {
            sizes: vec![16, 256, 4096],
            runs: 3,
            dir: None,
            process_appends: 1_000_000,
            process_bytes: 64 << 20,
            sync_appends: 1_000,
            group_appends: 4_000,
            writers: 8,
        }
    }
}

impl LogBenchOptions {
    /// A tenth of the default counts: a quick look, noisier figures.
    pub fn quick() -> Self {
        LogBenchOptions {
            process_appends: 100_000,
            process_bytes: 8 << 20,
            sync_appends: 100,
            group_appends: 400,
            ..LogBenchOptions::default()
        }
    }

    /// Tiny counts for tests: every row, no meaningful figure.
    pub fn tiny() -> Self {
        LogBenchOptions {
            runs: 1,
            process_appends: 200,
            process_bytes: 64 << 10,
            sync_appends: 4,
            group_appends: 16,
            writers: 4,
            ..LogBenchOptions::default()
        }
    }

    /// Appends per run of `case` at `size`.
    fn count(&self, case: Case, size: usize) -> usize {
        match case {
            Case::Process => {
                let by_bytes = self.process_bytes / size.max(1) as u64;
                (self.process_appends as u64).min(by_bytes.max(1)) as usize
            }
            Case::Sync => self.sync_appends,
            Case::Group => self.group_appends,
        }
    }

    /// Refuse what cannot be measured: counts out of range, no sizes, a zero size.
    ///
    /// # Errors
    /// `Unsupported`, naming the number and its range.
    pub fn check(&self) -> Result<()> {
        check_count("runs", self.runs, MAX_RUNS)?;
        check_count("process appends", self.process_appends, MAX_APPENDS)?;
        check_count("sync appends", self.sync_appends, MAX_APPENDS)?;
        check_count("group appends", self.group_appends, MAX_APPENDS)?;
        check_count("writers", self.writers, MAX_WRITERS)?;
        if self.group_appends < self.writers {
            return Err(bad(format!(
                "{} group appends cannot keep {} writers busy",
                self.group_appends, self.writers
            ))
            .hint("give at least one append per writer"));
        }
        if self.process_bytes == 0 {
            return Err(bad("process bytes must be 1 or more".into()));
        }
        if self.sizes.is_empty() {
            return Err(bad("no record sizes to measure".into()));
        }
        for &size in &self.sizes {
            check_count("record size", size, MAX_RECORD)?;
        }
        Ok(())
    }

    /// The most bytes one measurement's file takes: the largest log, framed, with the
    /// space a log reserves ahead (up to 64 MiB) and a page of header.
    fn largest_file(&self) -> Result<u64> {
        let mut most = 0u64;
        for &size in &self.sizes {
            for case in Case::ALL {
                let n = self.count(case, size) as u64;
                let bytes = n
                    .checked_mul(record_size(size).max(size as u64 + 4))
                    .and_then(|b| b.checked_add((64 << 20) + 4096))
                    .ok_or_else(|| {
                        Error::new(Op::Open, ErrorKind::LengthOverflow).detail(format!(
                            "{n} appends of {size} bytes add up past 2^64 bytes"
                        ))
                    })?;
                most = most.max(bytes);
            }
        }
        Ok(most)
    }
}

fn bad(detail: String) -> Error {
    Error::new(Op::Append, ErrorKind::Unsupported).detail(detail)
}

/// The three cases measured, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Process,
    Sync,
    Group,
}

impl Case {
    const ALL: [Case; 3] = [Case::Process, Case::Sync, Case::Group];

    fn durability(self) -> Durability {
        match self {
            Case::Process => Durability::Process,
            Case::Sync | Case::Group => Durability::Sync,
        }
    }

    fn peer(self) -> &'static str {
        match self {
            Case::Process => "write",
            Case::Sync | Case::Group => "write+fdatasync",
        }
    }
}

use crate::Spread;

/// One record size in one case: mmkit against its peer.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct LogBenchRow {
    /// Payload bytes of each record.
    pub size: usize,
    /// The log's durability.
    pub durability: Durability,
    /// Concurrent appenders (threads), on each side.
    pub writers: usize,
    /// Appends per run, all writers together.
    pub appends: u64,
    /// `Log::append` calls per second.
    pub mmkit_per_sec: Spread,
    /// What mmkit is compared with: `write`, or `write+fdatasync`.
    pub peer: &'static str,
    /// The peer's records per second.
    pub peer_per_sec: Spread,
    /// mmkit's median over the peer's (above 1: mmkit is faster).
    pub ratio: f64,
    /// `fdatasync` calls per append mmkit made (the median over the runs): 1.0 without
    /// group commit, 0 with `Process` durability; the peer's is 1.0 with `Sync`.
    pub flushes_per_append: f64,
}

/// Where the run was measured.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct LogBenchMachine {
    /// CPUs, CPU model and kernel.
    pub machine: Machine,
    /// The directory the logs were written in.
    pub dir: PathBuf,
    /// Its file system type (`ext4`, `tmpfs`, ...), from `/proc/self/mountinfo`.
    pub file_system: String,
}

/// The whole run.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct LogBenchReport {
    /// Where it ran.
    pub machine: LogBenchMachine,
    /// Runs behind each median.
    pub runs: usize,
    /// By case (`Process`, `Sync` with one writer, `Sync` with several), then size.
    pub rows: Vec<LogBenchRow>,
}

impl LogBenchReport {
    /// The row for `size` with `durability` and `writers`.
    pub fn row(&self, size: usize, durability: Durability, writers: usize) -> Option<&LogBenchRow> {
        self.rows
            .iter()
            .find(|r| r.size == size && r.durability == durability && r.writers == writers)
    }
}

/// Progress of a run: given to the callback before each measurement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Measurements finished.
    pub done: usize,
    /// Measurements in the run.
    pub total: usize,
    /// The one starting, e.g. `sync x8 256 B write+fdatasync`.
    pub what: String,
}

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run the benchmark; `progress` is told what is measured next.
///
/// # Errors
/// Numbers out of range (`Unsupported`); a directory without room for the largest log
/// (`NoSpace`, before anything is written); any append or write failing.
pub fn run(opts: &LogBenchOptions, mut progress: impl FnMut(&Progress)) -> Result<LogBenchReport> {
    opts.check()?;
    let (scratch, machine) = prepare(opts)?;
    let cases: Vec<(Case, usize)> = Case::ALL
        .iter()
        .flat_map(|&c| opts.sizes.iter().map(move |&s| (c, s)))
        .collect();
    let total = cases.len() * opts.runs * 2;
    let mut done = 0;
    // [case][side] -> appends/s of each run; flushes per append of mmkit's runs.
    let mut rates = vec![[Vec::new(), Vec::new()]; cases.len()];
    let mut flushes = vec![Vec::new(); cases.len()];
    for run in 0..opts.runs {
        for (i, &(case, size)) in cases.iter().enumerate() {
            let writers = if case == Case::Group { opts.writers } else { 1 };
            let count = opts.count(case, size);
            let payload = payload(size);
            // Alternate which side goes first, so neither always finds a quieter disk.
            let order = if run % 2 == 0 { [0, 1] } else { [1, 0] };
            for side in order {
                let name = if side == 0 { "mmkit" } else { case.peer() };
                progress(&Progress {
                    done,
                    total,
                    what: format!("{} {} {name}", label(case, writers), size_name(size)),
                });
                let path = scratch.0.join(format!("{run}-{i}-{side}.log"));
                let job = Job {
                    path: &path,
                    case,
                    writers,
                    count,
                    payload: &payload,
                };
                let sample = if side == 0 { mmkit(&job)? } else { peer(&job)? };
                remove(&path)?;
                rates[i][side].push(count as f64 / sample.secs.max(1e-9));
                if side == 0 {
                    flushes[i].push(sample.flushes_per_append);
                }
                done += 1;
            }
        }
    }
    drop(scratch);
    let rows = rows(opts, &cases, &mut rates, &mut flushes);
    Ok(LogBenchReport {
        machine,
        runs: opts.runs,
        rows,
    })
}

/// The report's rows: each case's spreads, ratio and flushes per append.
fn rows(
    opts: &LogBenchOptions,
    cases: &[(Case, usize)],
    rates: &mut [[Vec<f64>; 2]],
    flushes: &mut [Vec<f64>],
) -> Vec<LogBenchRow> {
    cases
        .iter()
        .zip(rates.iter_mut().zip(flushes.iter_mut()))
        .map(|(&(case, size), ([m, p], f))| {
            let mmkit_per_sec = Spread::of(m);
            let peer_per_sec = Spread::of(p);
            LogBenchRow {
                size,
                durability: case.durability(),
                writers: if case == Case::Group { opts.writers } else { 1 },
                appends: opts.count(case, size) as u64,
                ratio: mmkit_per_sec.median / peer_per_sec.median,
                mmkit_per_sec,
                peer: case.peer(),
                peer_per_sec,
                flushes_per_append: median(f),
            }
        })
        .collect()
}

/// Check for room (two logs of the largest case), make the scratch directory, and say
/// where it runs.
fn prepare(opts: &LogBenchOptions) -> Result<(Scratch, LogBenchMachine)> {
    let parent = opts.dir.clone().unwrap_or_else(std::env::temp_dir);
    // Two files at most exist at once (a log is removed before its peer is written), but
    // the next measurement's file may be created while the last one's blocks are freed.
    let need = opts.largest_file()?.checked_mul(2).ok_or_else(|| {
        Error::new(Op::Open, ErrorKind::LengthOverflow).detail("the logs add up past 2^64 bytes")
    })?;
    check_free_space(&parent, need)?;
    let dir = parent.join(format!("mmkit-log-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(Op::Open, &e).with_path(Some(&dir)))?;
    let scratch = Scratch(dir);
    let machine = LogBenchMachine {
        machine: Machine::current(),
        file_system: file_system(&parent),
        dir: parent,
    };
    Ok((scratch, machine))
}

fn label(case: Case, writers: usize) -> String {
    match case {
        Case::Process => "process".into(),
        Case::Sync => "sync".into(),
        Case::Group => format!("sync x{writers}"),
    }
}

fn size_name(size: usize) -> String {
    mmkit::size::format_size(size as u64)
}

/// `size` bytes of xorshift data.
fn payload(size: usize) -> Vec<u8> {
    let mut rng = XorShift::new(0x9E37_79B9_7F4A_7C15 ^ size as u64);
    (0..size).map(|_| rng.next_u64() as u8).collect()
}

fn remove(path: &Path) -> Result<()> {
    std::fs::remove_file(path).map_err(|e| Error::io(Op::Open, &e).with_path(Some(path)))
}

/// The file system type of `dir`'s mount (the longest mount point that is a prefix of
/// its canonical path in `/proc/self/mountinfo`), or `unknown`.
fn file_system(dir: &Path) -> String {
    let Ok(dir) = dir.canonicalize() else {
        return "unknown".into();
    };
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut best: Option<(usize, String)> = None;
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let (Some(point), Some(fs)) = (left.split(' ').nth(4), right.split(' ').next()) else {
            continue;
        };
        let point = unescape(point);
        if dir.starts_with(&point) && best.as_ref().map_or(true, |(len, _)| point.len() >= *len) {
            best = Some((point.len(), fs.to_string()));
        }
    }
    best.map_or_else(|| "unknown".into(), |(_, fs)| fs)
}

/// A mountinfo path with its octal escapes (`\040` for a space) decoded.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let code = b.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (b[i], code) {
            (b'\\', Some(c)) => {
                out.push(c);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_scale_down_for_large_records() {
        let o = LogBenchOptions::default();
        assert_eq!(o.count(Case::Process, 16), 1_000_000);
        assert_eq!(o.count(Case::Process, 4096), 16_384);
        assert_eq!(o.count(Case::Sync, 4096), 1_000);
        assert_eq!(o.count(Case::Process, MAX_RECORD), 1);
    }

    #[test]
    fn bad_numbers_are_refused() {
        let ok = LogBenchOptions::tiny();
        assert!(ok.check().is_ok());
        for bad in [
            LogBenchOptions {
                runs: 0,
                ..ok.clone()
            },
            LogBenchOptions {
                sizes: vec![],
                ..ok.clone()
            },
            LogBenchOptions {
                sizes: vec![0],
                ..ok.clone()
            },
            LogBenchOptions {
                sizes: vec![MAX_RECORD + 1],
                ..ok.clone()
            },
            LogBenchOptions {
                writers: 0,
                ..ok.clone()
            },
            LogBenchOptions {
                group_appends: 1,
                ..ok.clone()
            },
            LogBenchOptions {
                process_appends: MAX_APPENDS + 1,
                ..ok.clone()
            },
            LogBenchOptions {
                process_bytes: 0,
                ..ok.clone()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn largest_file_overflow_is_an_error() {
        let o = LogBenchOptions {
            sizes: vec![MAX_RECORD],
            process_appends: MAX_APPENDS,
            process_bytes: u64::MAX,
            sync_appends: MAX_APPENDS,
            ..LogBenchOptions::default()
        };
        // 10^8 records of 64 MiB: 6.7e15 bytes, still a u64; the free-space check
        // refuses it.
        assert!(o.largest_file().is_ok());
        assert!(check_free_space(&std::env::temp_dir(), o.largest_file().unwrap()).is_err());
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn tiny_run_has_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let opts = LogBenchOptions {
            runs: 2,
            dir: Some(dir.path().to_path_buf()),
            ..LogBenchOptions::tiny()
        };
        let mut calls = Vec::new();
        let report = run(&opts, |p| calls.push((p.done, p.total))).unwrap();
        let total = 3 * opts.sizes.len() * 2 * 2;
        assert_eq!(calls.len(), total);
        assert_eq!(calls.first(), Some(&(0, total)));
        assert_eq!(calls.last(), Some(&(total - 1, total)));
        assert_eq!(report.runs, 2);
        assert_eq!(report.rows.len(), 3 * opts.sizes.len());
        assert_eq!(report.machine.dir, dir.path());
        assert!(!report.machine.file_system.is_empty());
        for &size in &opts.sizes {
            for (durability, writers, peer) in [
                (Durability::Process, 1, "write"),
                (Durability::Sync, 1, "write+fdatasync"),
                (Durability::Sync, opts.writers, "write+fdatasync"),
            ] {
                let r = report.row(size, durability, writers).unwrap();
                assert_eq!(r.peer, peer);
                assert!(r.appends > 0);
                for s in [r.mmkit_per_sec, r.peer_per_sec] {
                    assert!(
                        s.min > 0.0 && s.min <= s.median && s.median <= s.max,
                        "{r:?}"
                    );
                }
                assert_eq!(r.ratio, r.mmkit_per_sec.median / r.peer_per_sec.median);
                if durability == Durability::Process {
                    assert_eq!(r.flushes_per_append, 0.0);
                } else {
                    assert!(r.flushes_per_append > 0.0 && r.flushes_per_append <= 1.0);
                }
            }
        }
        // The scratch directory is gone.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape(r"/mnt/a\040b"), "/mnt/a b");
        assert_eq!(unescape(r"/x\"), r"/x\");
        assert_ne!(file_system(Path::new("/")), "");
    }
}
