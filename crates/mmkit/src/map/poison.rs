//! Pages a mapping lost to a truncation (or a storage error), replaced by the guard with
//! anonymous pages: later accesses to them fail at once instead of reading zeros.
//!
//! Also the after-the-fact diagnosis of a guarded fault: was the file truncated below
//! the page, or is the page inside the file and unreadable? Reading the page again
//! decides, not the file's size now (it may have grown back since the fault).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::error::ErrorKind;
use crate::sys::fs::{open_regular, Purpose, Takes};

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
    #[inline]
    pub(crate) fn overlapping(&self, start: usize, end: usize) -> Option<Lost> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        self.search(start, end)
    }

    #[inline(never)]
    fn search(&self, start: usize, end: usize) -> Option<Lost> {
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

impl FileId {
    /// Open `path` (read-only, or read-write when `write`) when it names this file:
    /// `stat` first, so nothing else is opened, then [`open_regular`] (non-blocking, so a
    /// path replaced by a FIFO meanwhile cannot hang) and `fstat` to check it again.
    pub(crate) fn open(self, path: &Path, write: bool) -> Option<File> {
        let same = |st: &rustix::fs::Stat| st.st_dev == self.dev && st.st_ino == self.ino;
        if !same(&rustix::fs::stat(path).ok()?) {
            return None;
        }
        let (file, st) = open_regular(path, Purpose::new(write, Takes::Any)).ok()?;
        same(&st).then_some(file)
    }
}

/// Why the page at `file_offset` of the file `id` could not be read, and the file's size
/// when it could be found.
///
/// The fault happened a moment ago; the file may have been cut and grown back since, so
/// its size now proves nothing. The page is read again with `pread` through a descriptor
/// of the same file (found through `path`, a descriptor this process has open on it, or
/// another mapping of it): `StorageFault` only when that read fails (`EIO` and the like),
/// so the page really cannot be read; `Truncated` when it reads (the file was cut below
/// the page and has grown back), reads nothing (the file ends before it), or the file
/// cannot be found or opened at all.
pub(crate) fn diagnose(
    id: FileId,
    path: Option<&Path>,
    file_offset: u64,
) -> (ErrorKind, Option<u64>) {
    let Some(file) = open_same_file(id, path) else {
        return (ErrorKind::Truncated, None);
    };
    let size = rustix::fs::fstat(&file).ok().map(|st| st.st_size as u64);
    if size.is_some_and(|s| s <= file_offset) {
        return (ErrorKind::Truncated, size);
    }
    // One byte brings the whole page in (or fails as the fault did).
    let mut byte = [0u8; 1];
    let read = crate::sys::retry(|| file.read_at(&mut byte, file_offset));
    (verdict(&read, fs_full(&file)), size)
}

/// A page the guard lost is a storage fault when reading it again fails; when it reads
/// back but its file system has no page left, the fault was a write that could not
/// allocate the page (a full disk or tmpfs); otherwise the file was truncated under it.
fn verdict(read: &std::io::Result<usize>, fs_full: bool) -> ErrorKind {
    match read {
        Err(_) => ErrorKind::StorageFault,
        Ok(_) if fs_full => ErrorKind::NoSpace,
        Ok(_) => ErrorKind::Truncated,
    }
}

/// Whether the file system holding `file` has less than a page free for this process
/// (`fstatvfs`: blocks available to unprivileged users, or to root all free blocks).
fn fs_full(file: &File) -> bool {
    let Ok(st) = rustix::fs::fstatvfs(file) else {
        return false;
    };
    let blocks = if rustix::process::geteuid().is_root() {
        st.f_bfree
    } else {
        st.f_bavail
    };
    blocks.saturating_mul(st.f_frsize) < crate::sys::page_size() as u64
}

/// A fresh read-only descriptor of the file `id`, opened through `path`, through
/// `/proc/self/fd` (a descriptor this process has open on it), or through a mapping of it
/// in `/proc/self/maps`; each checked with `fstat` to be that file.
fn open_same_file(id: FileId, path: Option<&Path>) -> Option<File> {
    if let Some(f) = path.and_then(|p| open_if_same(id, p)) {
        return Some(f);
    }
    if let Some(f) = open_by_fd(id) {
        return Some(f);
    }
    mapped_paths(id)
        .into_iter()
        .find_map(|p| open_if_same(id, &p))
}

/// Open `path` read-only when it names the file `id` (see [`FileId::open`]).
fn open_if_same(id: FileId, path: &Path) -> Option<File> {
    id.open(path, false)
}

/// The file `id` reopened through `/proc/self/fd/N` for a descriptor this process has
/// open on it (its own open mode does not matter: the reopening reads).
fn open_by_fd(id: FileId) -> Option<File> {
    let dir = std::fs::read_dir("/proc/self/fd").ok()?;
    dir.filter_map(|e| e.ok())
        .find_map(|e| open_if_same(id, &e.path()))
}

/// Paths that reach the file `id` through this process's mappings of it: the mapping's
/// own `/proc/self/map_files` entry (the very file, even when deleted or renamed; needs
/// `CAP_SYS_ADMIN` or `CAP_CHECKPOINT_RESTORE`), then the path `/proc/self/maps` shows.
fn mapped_paths(id: FileId) -> Vec<PathBuf> {
    let Ok(maps) = crate::proc::self_maps() else {
        return Vec::new();
    };
    let mut paths = Vec::new();
    for m in maps.into_iter().filter(|m| m.inode == id.ino) {
        let (lo, hi) = m.address;
        paths.push(PathBuf::from(format!("/proc/self/map_files/{lo:x}-{hi:x}")));
        if let Some(p) = m.path {
            paths.push(p);
        }
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_failing_read_is_a_storage_fault() {
        let eio = std::io::Error::from_raw_os_error(rustix::io::Errno::IO.raw_os_error());
        let eio2 = std::io::Error::from_raw_os_error(rustix::io::Errno::IO.raw_os_error());
        assert_eq!(verdict(&Err(eio), false), ErrorKind::StorageFault);
        assert_eq!(verdict(&Err(eio2), true), ErrorKind::StorageFault);
        assert_eq!(verdict(&Ok(1), false), ErrorKind::Truncated);
        assert_eq!(verdict(&Ok(0), false), ErrorKind::Truncated);
        assert_eq!(verdict(&Ok(1), true), ErrorKind::NoSpace);
    }

    #[test]
    fn a_regrown_file_is_diagnosed_as_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        std::fs::write(&path, vec![1u8; 8192]).unwrap();
        let st = rustix::fs::stat(&path).unwrap();
        let id = FileId {
            dev: st.st_dev,
            ino: st.st_ino,
        };
        // Through the path, and (no path) through a descriptor this process holds.
        assert_eq!(
            diagnose(id, Some(&path), 4096),
            (ErrorKind::Truncated, Some(8192))
        );
        let held = File::open(&path).unwrap();
        assert_eq!(diagnose(id, None, 4096), (ErrorKind::Truncated, Some(8192)));
        assert_eq!(diagnose(id, None, 8192), (ErrorKind::Truncated, Some(8192)));
        drop(held);
    }

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
