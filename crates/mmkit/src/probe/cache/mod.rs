//! Page-cache residency of files and directory trees, as `vmtouch` and `fincore` report
//! it, and the actions that change it: touch (load), evict, lock.
//!
//! | step | syscall |
//! |---|---|
//! | walk | `lstat`/`stat` through [`walkdir`], `st_dev` compared with the root's |
//! | resident pages | [`mmap(2)`](https://man7.org/linux/man-pages/man2/mmap.2.html) read-only + [`mincore(2)`](https://man7.org/linux/man-pages/man2/mincore.2.html) |
//! | dirty, writeback, evicted | [`cachestat(2)`](https://man7.org/linux/man-pages/man2/cachestat.2.html) (Linux 6.5+; left out when `ENOSYS`) |
//! | touch | `MADV_POPULATE_READ` (5.14+), else a read of every page through the mapping |
//! | evict | `fdatasync` then [`posix_fadvise(POSIX_FADV_DONTNEED)`](https://man7.org/linux/man-pages/man2/posix_fadvise.2.html) |
//! | lock | `mlock` / `mlock2(MLOCK_ONFAULT)` on mappings held by a [`LockedSet`] |
//!
//! A file that cannot be opened or mapped is recorded in [`CacheReport::errors`] and the walk
//! goes on. Non-regular files (FIFOs, sockets, devices) in a tree are skipped without
//! being opened; one named as a root is an error (`NotMappable`), also without an open.
//! [`ByteRange`] limits everything to a part of each file; [`Termination`] lets a process
//! hold a [`LockedSet`] until SIGTERM or SIGINT. Eviction drops whole folios only: a
//! large folio straddling the edge of a range stays cached.
//!
//! ```
//! use mmkit::probe::cache::{Action, CacheOptions};
//! let dir = tempfile::tempdir()?;
//! std::fs::create_dir(dir.path().join("sub"))?;
//! std::fs::write(dir.path().join("sub/data"), vec![7u8; 5 * mmkit::page_size()])?;
//! std::fs::write(dir.path().join("empty"), b"")?;
//!
//! let opts = CacheOptions::new();
//! let (report, _) = opts.run(&[dir.path()], Action::Touch, &mut |_| {});
//! assert_eq!(report.summary.files, 2);
//! assert_eq!(report.summary.directories, 2);
//! assert_eq!(report.summary.pages, 5);
//! assert_eq!(report.summary.resident, 5); // touched: all in the page cache
//!
//! let (report, _) = opts.run(&[dir.path()], Action::Evict, &mut |_| {});
//! assert!(report.errors.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::{Error, ErrorKind, Op, Result};
use crate::{LockMode, Mapping};

mod range;
mod signal;
mod walk;

use walk::Walker;

pub use range::{ByteRange, ParseRangeError};
pub use signal::Termination;

/// What [`CacheOptions::run`] does to each file before it measures it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Action {
    /// Only measure.
    #[default]
    Query,
    /// Load every page of the range into the page cache.
    Touch,
    /// Write dirty pages back, then drop the range from the page cache.
    Evict,
    /// Map and `mlock` the range; the mappings are returned in a [`LockedSet`].
    Lock,
}

/// How to walk and what to measure; [`run`](Self::run) does the work.
#[derive(Debug, Clone)]
pub struct CacheOptions {
    recursive: bool,
    include: Vec<String>,
    exclude: Vec<String>,
    cross_mounts: bool,
    follow: bool,
    range: Option<ByteRange>,
    keep_pages: bool,
    lock_mode: LockMode,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions::new()
    }
}

impl CacheOptions {
    /// Recursive, no globs, one file system, symlinks not followed, whole files.
    pub fn new() -> CacheOptions {
        CacheOptions {
            recursive: true,
            include: Vec::new(),
            exclude: Vec::new(),
            cross_mounts: false,
            follow: false,
            range: None,
            keep_pages: false,
            lock_mode: LockMode::Now,
        }
    }

    /// Descend into directories (default); `false` looks at a directory's files only.
    pub fn recursive(&mut self, yes: bool) -> &mut Self {
        self.recursive = yes;
        self
    }

    /// Only files whose name or path below the root matches `glob` (any of several).
    pub fn include(&mut self, glob: &str) -> &mut Self {
        self.include.push(glob.to_string());
        self
    }

    /// Leave out files and directories whose name or path below the root matches `glob`.
    pub fn exclude(&mut self, glob: &str) -> &mut Self {
        self.exclude.push(glob.to_string());
        self
    }

    /// Descend into other file systems mounted below a root (default: stay on the root's).
    pub fn cross_mounts(&mut self, yes: bool) -> &mut Self {
        self.cross_mounts = yes;
        self
    }

    /// Follow symbolic links (default: skip them).
    pub fn follow(&mut self, yes: bool) -> &mut Self {
        self.follow = yes;
        self
    }

    /// Apply everything to this byte range of each file only.
    pub fn range(&mut self, range: Option<ByteRange>) -> &mut Self {
        self.range = range;
        self
    }

    /// Keep each file's page-by-page residency in [`FileEntry::map`] (for bars).
    pub fn keep_pages(&mut self, yes: bool) -> &mut Self {
        self.keep_pages = yes;
        self
    }

    /// How [`Action::Lock`] locks: [`LockMode::Now`] (default) loads and locks every
    /// page; [`LockMode::OnFault`] locks only what is resident now or touched later, so
    /// locking a big, partly cached file does not read it all in.
    pub fn lock_mode(&mut self, mode: LockMode) -> &mut Self {
        self.lock_mode = mode;
        self
    }

    /// Walk `paths`, apply `action` to each regular file, and measure it. `progress` is
    /// called after each file with the totals so far.
    ///
    /// Never fails as a whole: a path that is missing, or a file that cannot be opened,
    /// mapped or locked, is an entry of [`CacheReport::errors`]. The [`LockedSet`] holds the
    /// locked mappings for [`Action::Lock`] (empty otherwise); the locks last until it
    /// is dropped.
    pub fn run<P: AsRef<Path>>(
        &self,
        paths: &[P],
        action: Action,
        progress: &mut dyn FnMut(&Summary),
    ) -> (CacheReport, LockedSet) {
        let mut w = Walker {
            opts: self,
            action,
            report: CacheReport::default(),
            locked: LockedSet::default(),
            seen: HashSet::new(),
            cachestat: true,
            progress,
        };
        w.report.summary.page_size = crate::page_size() as u64;
        match (self.globs(&self.include), self.globs(&self.exclude)) {
            (Ok(inc), Ok(exc)) => {
                for p in paths {
                    w.walk(p.as_ref(), &inc, &exc);
                }
            }
            (Err(e), _) | (_, Err(e)) => w.report.errors.push(PathError {
                path: PathBuf::new(),
                error: e,
            }),
        }
        if !w.cachestat {
            let s = &mut w.report.summary;
            (s.dirty, s.writeback, s.evicted) = (None, None, None);
        }
        (w.report, w.locked)
    }

    fn globs(&self, globs: &[String]) -> Result<Option<GlobSet>> {
        if globs.is_empty() {
            return Ok(None);
        }
        let mut b = GlobSetBuilder::new();
        for g in globs {
            b.add(Glob::new(g).map_err(|e| {
                Error::new(Op::Probe, ErrorKind::Unsupported).detail(format!("bad glob {g:?}: {e}"))
            })?);
        }
        b.build().map(Some).map_err(|e| {
            Error::new(Op::Probe, ErrorKind::Unsupported).detail(format!("bad globs: {e}"))
        })
    }
}

/// Totals over every file measured, in pages of [`page_size`](Self::page_size) bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Summary {
    /// Regular files measured (without the ones in [`CacheReport::errors`]).
    pub files: u64,
    /// Directories walked (the roots included).
    pub directories: u64,
    /// Pages the files (or their ranges) cover.
    pub pages: u64,
    /// Of those, pages in the page cache (`mincore`).
    pub resident: u64,
    /// Bytes the files (or their ranges) cover.
    pub bytes: u64,
    /// The page size.
    pub page_size: u64,
    /// Dirty pages (`cachestat`); `None` when the kernel lacks it.
    pub dirty: Option<u64>,
    /// Pages under write-back (`cachestat`).
    pub writeback: Option<u64>,
    /// Pages evicted recently (`cachestat`).
    pub evicted: Option<u64>,
    /// Pages the action worked on: touched, evicted or locked.
    pub acted: u64,
}

impl Summary {
    /// Resident bytes (resident pages times the page size, at most [`bytes`](Self::bytes)
    /// rounded up to pages).
    pub fn resident_bytes(&self) -> u64 {
        self.resident * self.page_size
    }

    /// Resident pages as a percentage of all pages; `None` when nothing was measured
    /// (no pages: no share of them to give).
    pub fn percent(&self) -> Option<f64> {
        (self.pages != 0).then(|| self.resident as f64 * 100.0 / self.pages as f64)
    }

    fn add(&mut self, e: &FileEntry) {
        self.files += 1;
        self.pages += e.pages;
        self.resident += e.resident;
        self.bytes += e.bytes;
        if let Some(c) = e.cachestat {
            *self.dirty.get_or_insert(0) += c.dirty;
            *self.writeback.get_or_insert(0) += c.writeback;
            *self.evicted.get_or_insert(0) += c.evicted;
        }
    }
}

/// One regular file's residency.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct FileEntry {
    /// The path as walked.
    pub path: PathBuf,
    /// The file's size in bytes.
    pub size: u64,
    /// The range measured: byte offset and length (the whole file without a range).
    pub offset: u64,
    /// Bytes of the range.
    pub bytes: u64,
    /// Pages the range covers.
    pub pages: u64,
    /// Resident pages of the range (`mincore`).
    pub resident: u64,
    /// `cachestat` of the range, when the kernel has it.
    pub cachestat: Option<crate::probe::CacheStat>,
    /// Page-by-page residency, kept with [`CacheOptions::keep_pages`].
    #[cfg_attr(feature = "serde", serde(skip))]
    pub map: Vec<bool>,
}

impl FileEntry {
    /// A residency bar of `width` columns: `#` where most pages of the bucket are
    /// resident, `.` elsewhere (empty without [`CacheOptions::keep_pages`] or pages).
    pub fn bar(&self, width: usize) -> String {
        let n = self.map.len();
        if n == 0 || width == 0 {
            return String::new();
        }
        let cols = width.min(n);
        (0..cols)
            .map(|c| {
                let (a, b) = (c * n / cols, ((c + 1) * n / cols).max(c * n / cols + 1));
                let res = self.map[a..b].iter().filter(|&&r| r).count();
                if res * 2 > b - a {
                    '#'
                } else {
                    '.'
                }
            })
            .collect()
    }
}

/// A path that could not be measured, and why.
#[derive(Debug)]
pub struct PathError {
    /// The path.
    pub path: PathBuf,
    /// What failed.
    pub error: Error,
}

#[cfg(feature = "serde")]
impl serde::Serialize for PathError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("PathError", 3)?;
        st.serialize_field("path", &self.path)?;
        st.serialize_field("error", &self.error.to_string())?;
        st.serialize_field("errno", &self.error.errno())?;
        st.end()
    }
}

/// What [`CacheOptions::run`] found.
#[derive(Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct CacheReport {
    /// Totals.
    pub summary: Summary,
    /// Each regular file measured, in walk order.
    pub files: Vec<FileEntry>,
    /// Paths that could not be measured.
    pub errors: Vec<PathError>,
}

/// Locked mappings: the pages stay resident until this is dropped (`munmap` unlocks).
#[derive(Debug, Default)]
pub struct LockedSet {
    maps: Vec<Mapping>,
    pages: u64,
}

impl LockedSet {
    /// Files locked.
    pub fn files(&self) -> usize {
        self.maps.len()
    }

    /// Pages locked (with [`LockMode::OnFault`]: pages that will stay once touched).
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// Whether nothing is locked.
    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }
}

/// Drop `len` bytes at `off` of `file` from the page cache: dirty pages are written back
/// first (`fdatasync`), since `POSIX_FADV_DONTNEED` leaves dirty pages in place.
///
/// # Errors
/// The kernel's refusal of `fdatasync` or `posix_fadvise`.
#[doc(alias = "posix_fadvise")]
pub fn evict(file: &File, off: u64, len: u64) -> Result<()> {
    rustix::fs::fdatasync(file)
        .map_err(|e| Error::os(Op::Flush, e).detail(format!("fdatasync: {e}")))?;
    let n = std::num::NonZeroU64::new(len);
    rustix::fs::fadvise(file, off, n, rustix::fs::Advice::DontNeed).map_err(|e| {
        Error::os(Op::Advise, e)
            .at(off, len)
            .detail(format!("posix_fadvise(DONTNEED): {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_marks_mostly_resident_buckets() {
        let e = FileEntry {
            map: [true, true, false, false, true, false, false, false].to_vec(),
            ..FileEntry::default()
        };
        assert_eq!(e.bar(4), "#...");
        assert_eq!(e.bar(8), "##..#...");
        assert_eq!(e.bar(40), "##..#...");
        assert_eq!(FileEntry::default().bar(40), "");
    }
}
