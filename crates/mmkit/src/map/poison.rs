//! Pages a mapping lost to a truncation (or a storage error), replaced by the guard with
//! anonymous pages: later accesses to them fail at once instead of reading zeros.
//!
//! Also the after-the-fact diagnosis of a guarded fault: was the file truncated below
//! the page (its size now says so), or is the page inside the file and unreadable?

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::error::ErrorKind;

/// A replaced byte range, relative to the mapping's base, and why it was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lost {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) kind: ErrorKind,
    /// The file's size when the loss was diagnosed, when it could be found.
    pub(crate) file_size: Option<u64>,
}

#[derive(Debug, Default)]
pub(crate) struct Poison {
    /// Invariant: true exactly when `ranges` is non-empty (a fast path for the common case).
    any: AtomicBool,
    ranges: Mutex<Vec<Lost>>,
}

impl Poison {
    /// The first lost range overlapping `[start, end)`.
    pub(crate) fn overlapping(&self, start: usize, end: usize) -> Option<Lost> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let ranges = self.ranges.lock().unwrap_or_else(|e| e.into_inner());
        ranges
            .iter()
            .copied()
            .find(|l| l.start < end && start < l.end)
    }

    pub(crate) fn add(&self, lost: Lost) {
        let mut ranges = self.ranges.lock().unwrap_or_else(|e| e.into_inner());
        ranges.push(lost);
        self.any.store(true, Ordering::Release);
    }

    /// The lowest lost offset, if any.
    pub(crate) fn first(&self) -> Option<usize> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let ranges = self.ranges.lock().unwrap_or_else(|e| e.into_inner());
        ranges.iter().map(|l| l.start).min()
    }

    /// Forget everything at or past `len` bytes from the base (the pages were unmapped).
    pub(crate) fn truncate(&mut self, len: usize) {
        let ranges = self.ranges.get_mut().unwrap_or_else(|e| e.into_inner());
        ranges.retain_mut(|l| {
            l.end = l.end.min(len);
            l.start < l.end
        });
        self.any.store(!ranges.is_empty(), Ordering::Release);
    }
}

/// The identity of a mapped file: device and inode, as `fstat` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
}

/// Why the page at `file_offset` of the file `id` could not be read: `StorageFault` when
/// the file still reaches past it (so the page exists and its storage failed), else
/// `Truncated`. Also returns the file's size when it could be found: through `path`, an
/// open descriptor of this process on the same file, or another mapping of it.
pub(crate) fn diagnose(
    id: FileId,
    path: Option<&Path>,
    file_offset: u64,
) -> (ErrorKind, Option<u64>) {
    let by_path = |p: &Path| {
        let st = rustix::fs::stat(p).ok()?;
        (st.st_dev == id.dev && st.st_ino == id.ino).then_some(st.st_size as u64)
    };
    let size = path
        .and_then(by_path)
        .or_else(|| size_by_open_fd(id))
        .or_else(|| mapped_path(id).as_deref().and_then(by_path));
    match size {
        Some(s) if s > file_offset => (ErrorKind::StorageFault, Some(s)),
        other => (ErrorKind::Truncated, other),
    }
}

/// The size of the file `id` through a descriptor this process has open on it.
fn size_by_open_fd(id: FileId) -> Option<u64> {
    let dir = std::fs::read_dir("/proc/self/fd").ok()?;
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .find_map(|fd| {
            // SAFETY: fstat only reads the descriptor's inode; a descriptor closed meanwhile
            // (or reused) gives an error or a different inode, both ignored.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            let st = rustix::fs::fstat(fd).ok()?;
            (st.st_dev == id.dev && st.st_ino == id.ino).then_some(st.st_size as u64)
        })
}

/// The path of some mapping of the file `id` in this process, from `/proc/self/maps`.
fn mapped_path(id: FileId) -> Option<PathBuf> {
    let maps = procfs::process::Process::myself().ok()?.maps().ok()?;
    maps.into_iter().find_map(|m| match m.pathname {
        procfs::process::MMapPath::Path(p) if m.inode == id.ino => Some(p),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_and_truncate() {
        let mut p = Poison::default();
        assert_eq!(p.overlapping(0, 100), None);
        p.add(Lost {
            start: 8192,
            end: 16384,
            kind: ErrorKind::Truncated,
            file_size: None,
        });
        assert_eq!(p.overlapping(0, 8192), None);
        assert_eq!(p.overlapping(8000, 8193).map(|l| l.start), Some(8192));
        assert_eq!(p.first(), Some(8192));
        p.truncate(12288);
        assert_eq!(p.overlapping(12288, 20000), None);
        assert!(p.overlapping(12000, 12288).is_some());
        p.truncate(8192);
        assert_eq!(p.first(), None);
    }
}
