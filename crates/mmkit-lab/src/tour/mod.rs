//! The tour: the claims the Linux docs make about `mmap`, each checked live.
//!
//! Every claim is an experiment on files the tour creates in a directory it is given,
//! measured with the kernel's own counters (`/proc/self/smaps`, `getrusage`,
//! `cachestat`, `mincore`, `/proc/self/status`) and, where the behaviour crosses
//! processes, with real child processes made by `fork`. Each gives a [`Finding`]: the
//! claim, what was measured, and a [`Verdict`].
//!
//! ```no_run
//! let dir = tempfile::tempdir()?;
//! for f in mmkit_lab::tour::run(dir.path(), |_| {})? {
//!     println!("{} {}: {:?}", f.id, f.claim, f.verdict);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod device;
mod files;
mod lazy;
mod memory;
mod persist;
mod processes;
mod signals;
mod speed;
mod stall;
mod zerocopy;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use mmkit::lab_seam::ErrorExt;
use mmkit::{Error, ErrorKind, Op, Result};

/// Whether a claim held on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Verdict {
    /// The measurement agrees with the claim.
    Holds,
    /// The measurement disagrees; `measured` says how.
    Differs,
    /// The claim could not be checked here; the reason says why.
    Skipped,
}

/// One checked claim.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Finding {
    /// The claim's number in the tour (`"13a"` for parts).
    pub id: String,
    /// The claim, in one sentence.
    pub claim: String,
    /// What was measured, in one or two sentences with the figures.
    pub measured: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Why it was skipped (only for `Skipped`).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub reason: Option<String>,
}

/// The result of one experiment, before it is labelled with its claim.
pub(crate) struct Outcome {
    verdict: Verdict,
    measured: String,
    reason: Option<String>,
}

impl Outcome {
    /// `Holds` when `ok`, else `Differs`.
    pub(crate) fn check(ok: bool, measured: String) -> Outcome {
        let verdict = if ok { Verdict::Holds } else { Verdict::Differs };
        Outcome {
            verdict,
            measured,
            reason: None,
        }
    }

    pub(crate) fn skipped(measured: String, reason: impl Into<String>) -> Outcome {
        Outcome {
            verdict: Verdict::Skipped,
            measured,
            reason: Some(reason.into()),
        }
    }
}

/// What each experiment gets: the directory for its files.
pub(crate) struct Ctx {
    dir: PathBuf,
}

impl Ctx {
    /// Create `name` with `len` bytes of a known pattern, written and synced (so its pages
    /// are clean and in the page cache).
    pub(crate) fn file(&self, name: &str, len: usize) -> Result<(PathBuf, File)> {
        let path = self.dir.join(name);
        let io = |e: std::io::Error| Error::io(Op::Open, &e).with_path(Some(&path));
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(io)?;
        let mut chunk = vec![0u8; 1 << 20];
        let mut done = 0;
        while done < len {
            let n = chunk.len().min(len - done);
            for (i, b) in chunk[..n].iter_mut().enumerate() {
                *b = pattern(done + i);
            }
            f.write_all(&chunk[..n]).map_err(io)?;
            done += n;
        }
        f.sync_all().map_err(io)?;
        Ok((path, f))
    }
}

/// The byte the tour's files hold at `i`.
pub(crate) fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 12)) as u8 | 1
}

/// Human-readable byte count: `64 KiB`, `1.5 MiB` (the same format as `mmkit bench`).
pub(crate) use mmkit::size::format_size as bytes;

type Experiment = fn(&Ctx) -> Result<Outcome>;

/// The claims, in order, with the experiment that checks each.
const CLAIMS: &[(&str, &str, Experiment)] = &[
    ("1", "mmap copies nothing up front: resident size and page faults do not move until a page is touched", files::nothing_up_front),
    ("2", "The first touch of a page faults it in: a minor fault from the page cache, a major fault after eviction", files::first_touch_faults),
    ("3", "MAP_SHARED writes reach the file, and another process mapping it sees them", processes::shared_writes_visible),
    ("4", "MAP_PRIVATE writes are copy-on-write: the file and other processes do not see them", processes::private_is_cow),
    ("5", "Anonymous memory is zero-filled; shared anonymous memory is seen by a forked child, private is not", processes::anon_zero_and_fork),
    ("6", "Writes through a shared mapping sit dirty in memory until msync writes them back", files::dirty_until_msync),
    ("7", "Data written through a shared mapping survives kill -9 of the writer, with no msync", processes::survives_kill9),
    ("8", "After munmap, or after mprotect to read-only, an access is a SIGSEGV", signals::segv_after_unmap_or_protect),
    ("9", "The kernel rejects an unaligned file offset (EINVAL); mmkit accepts it", signals::unaligned_offset),
    ("10", "The tail of the last page past end of file reads as zeros; a whole page past the end is a SIGBUS", signals::tail_zero_then_sigbus),
    ("11", "The C allocator serves large allocations with mmap: a new anonymous region appears", memory::malloc_uses_mmap),
    ("12", "An anonymous mapping can be resized: mremap grows it in place or by moving it, contents kept", memory::mremap_grows),
    ("13a", "mlock keeps pages resident and counts them in VmLck", memory::mlock_resident),
    ("13b", "Huge pages back a mapping when asked (transparent huge pages, or the hugetlb pool)", memory::huge_pages),
    ("14", "For a large warm file a mapped scan beats read(); for a small file it need not", speed::scan_vs_read),
    ("15", "Zero-copy: sendfile moves a file to a socket with less CPU per GB than read + write", zerocopy::sendfile_cpu),
    ("16", "The JVM stall: a store to a mapped page can stall while writeback has that page (stable pages)", stall::store_stalls_under_writeback),
    ("17", "Lazy loading, as in the xv6 lab: through the pager only the touched pages are read from the source", lazy::only_touched_pages_are_read),
    ("18", "Records appended to an mmkit log survive kill -9, and a torn tail is cut at the first bad checksum", persist::log_survives_kill9),
    ("19", "A driver's mmap decides what the pages are: /dev/zero mapped shared is anonymous shared memory", device::dev_zero_is_anonymous),
];

/// How many findings the tour reports.
pub fn claim_count() -> usize {
    CLAIMS.len()
}

/// Run every experiment in `dir` (which must exist and be writable), calling `progress`
/// after each, and return the findings in order.
///
/// An experiment that fails to run (an I/O error, say) becomes a `Skipped` finding with
/// the error as its reason; the tour itself fails only when `dir` is unusable.
///
/// # Errors
/// `dir` is missing, not a directory, or not writable.
pub fn run(dir: &Path, mut progress: impl FnMut(&Finding)) -> Result<Vec<Finding>> {
    check_dir(dir)?;
    let ctx = Ctx {
        dir: dir.to_path_buf(),
    };
    let mut findings = Vec::with_capacity(CLAIMS.len());
    for (id, claim, experiment) in CLAIMS {
        let outcome = experiment(&ctx).unwrap_or_else(|e| {
            Outcome::skipped(
                String::new(),
                format!("could not measure: {}", e.to_string().replace('\n', " ")),
            )
        });
        let finding = Finding {
            id: id.to_string(),
            claim: claim.to_string(),
            measured: outcome.measured,
            verdict: outcome.verdict,
            reason: outcome.reason,
        };
        progress(&finding);
        findings.push(finding);
    }
    Ok(findings)
}

fn check_dir(dir: &Path) -> Result<()> {
    let probe = dir.join(".mmkit-tour-probe");
    let made = std::fs::metadata(dir)
        .map_err(|e| Error::io(Op::Open, &e).with_path(Some(dir)))
        .and_then(|m| {
            if !m.is_dir() {
                return Err(Error::new(Op::Open, ErrorKind::Unsupported)
                    .with_path(Some(dir))
                    .detail("not a directory"));
            }
            File::create(&probe).map_err(|e| Error::io(Op::Open, &e).with_path(Some(dir)))
        });
    let _ = std::fs::remove_file(&probe);
    made.map(drop)
        .map_err(|e| e.hint("the tour needs a writable directory on a disk file system"))
}
