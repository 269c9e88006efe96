//! The walk behind [`measure`](super::measure): every file under the roots, filtered by
//! the globs, special files and links reported, each file opened without waiting, mapped,
//! and its residency counted, touched, evicted or locked as the options say.

use std::collections::HashSet;
use std::fs::File;
use std::path::Path;

use globset::GlobSet;
use rustix::io::Errno;

use super::*;
use crate::error::{Error, ErrorKind, Op, Result};
use crate::sys::fs::{open_regular, Purpose, Refusal, Takes};
use crate::{Advice, MapOptions, Mapping};

pub(super) struct Walker<'a> {
    pub(super) opts: &'a CacheOptions,
    pub(super) action: Action,
    pub(super) report: CacheReport,
    pub(super) locked: LockedSet,
    /// (dev, ino) of files with more than one link already measured.
    pub(super) seen: HashSet<(u64, u64)>,
    pub(super) cachestat: bool,
    pub(super) progress: &'a mut dyn FnMut(&Summary),
}

/// What a file type is when it is neither a regular file nor a directory.
fn special(ft: &std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    Some(if ft.is_dir() || ft.is_file() {
        return None;
    } else if ft.is_fifo() {
        "a pipe (FIFO)"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() || ft.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    })
}

fn matches(set: &Option<GlobSet>, rel: &Path, name: &std::ffi::OsStr) -> bool {
    set.as_ref()
        .is_some_and(|s| s.is_match(name) || s.is_match(rel))
}

impl Walker<'_> {
    /// Whether `root` can be walked: it exists, and is a regular file or a directory
    /// (else the error is recorded).
    fn root_ok(&mut self, root: &Path) -> bool {
        let meta = match std::fs::metadata(root) {
            Ok(m) => m,
            Err(e) => {
                let e = std::fs::symlink_metadata(root).err().unwrap_or(e);
                self.fail(root, Error::io(Op::Open, &e));
                return false;
            }
        };
        // Special files are skipped inside a tree, but one named as a root is a mistake
        // worth saying (and is never opened: a FIFO would wait for a writer).
        if let Some(what) = special(&meta.file_type()) {
            self.fail(
                root,
                Error::new(Op::Probe, ErrorKind::NotMappable)
                    .detail(format!(
                        "cannot measure {what}: it has no pages in the page cache"
                    ))
                    .hint("give regular files or directories"),
            );
            return false;
        }
        true
    }

    pub(super) fn walk(&mut self, root: &Path, inc: &Option<GlobSet>, exc: &Option<GlobSet>) {
        if !self.root_ok(root) {
            return;
        }
        let mut wd = walkdir::WalkDir::new(root)
            .follow_links(self.opts.follow)
            .same_file_system(!self.opts.cross_mounts);
        if !self.opts.recursive {
            wd = wd.max_depth(1);
        }
        let mut it = wd.into_iter();
        while let Some(entry) = it.next() {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    let path = e.path().unwrap_or(root).to_path_buf();
                    let err = match e.io_error() {
                        Some(io) => Error::io(Op::Open, io),
                        None => Error::new(Op::Open, ErrorKind::Unsupported).detail(e.to_string()),
                    };
                    self.fail(&path, err);
                    continue;
                }
            };
            let depth = entry.depth();
            let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
            if depth > 0 && matches(exc, rel, entry.file_name()) {
                if entry.file_type().is_dir() {
                    it.skip_current_dir();
                }
                continue;
            }
            let ft = entry.file_type();
            if ft.is_dir() {
                self.report.summary.directories += 1;
                continue;
            }
            if !ft.is_file() {
                continue; // FIFOs, sockets, devices, and symlinks not followed
            }
            if inc.is_some() && depth > 0 && !matches(inc, rel, entry.file_name()) {
                continue;
            }
            self.file(entry.path(), depth == 0);
            (self.progress)(&self.report.summary);
        }
    }

    fn fail(&mut self, path: &Path, error: Error) {
        self.report.errors.push(PathError {
            path: path.to_path_buf(),
            error,
        });
    }

    /// Open `path` to measure it (read-only, `O_NOATIME` where allowed so measuring does
    /// not write inodes; non-blocking in case the path has become a FIFO); `None` for a
    /// file that is not regular after all, or a hard link already counted.
    fn open(&mut self, path: &Path) -> Result<Option<(File, u64)>> {
        let purpose = Purpose {
            noatime: true,
            ..Purpose::new(false, Takes::Regular)
        };
        let (file, st) = match open_regular(path, purpose) {
            Ok(opened) => opened,
            Err(Refusal::Kind(_)) => return Ok(None),
            Err(Refusal::Os(e)) => return Err(Error::os(Op::Open, e)),
        };
        if st.st_nlink > 1 && !self.seen.insert((st.st_dev, st.st_ino)) {
            return Ok(None);
        }
        Ok(Some((file, st.st_size as u64)))
    }

    /// Measure one file; `root` when it was named itself rather than found in a tree.
    fn file(&mut self, path: &Path, root: bool) {
        match self.measure(path, root) {
            Ok(Some(entry)) => {
                self.report.summary.add(&entry);
                self.report.files.push(entry);
            }
            Ok(None) => {}
            Err(e) => self.fail(path, e),
        }
    }

    /// Act on and measure one file; `None` for a hard link already counted or a file
    /// that is not regular after all. A range that starts past the end of a file named
    /// as a `root` is an error (in a tree, such a file is measured as 0 pages).
    fn measure(&mut self, path: &Path, root: bool) -> Result<Option<FileEntry>> {
        let Some((file, size)) = self.open(path)? else {
            return Ok(None);
        };
        let (off, len) = self.range_of(size, root)?;
        let ps = crate::page_size() as u64;
        let pages = if len == 0 {
            0
        } else {
            (off + len).div_ceil(ps) - off / ps
        };
        let mut entry = FileEntry {
            path: path.to_path_buf(),
            size,
            offset: off,
            bytes: len,
            pages,
            ..FileEntry::default()
        };
        if pages == 0 {
            return Ok(Some(entry));
        }
        if self.action == Action::Evict {
            evict(&file, off, len)?;
            self.report.summary.acted += pages;
        }
        // A plain query needs only counts: cachestat(2) gives them without a mapping
        // (open, fstat, cachestat: fewer system calls than mmap + mincore + munmap).
        if self.action == Action::Query && !self.opts.keep_pages && self.cachestat {
            if let Some(c) = self.cachestat(&file, off, len) {
                entry.resident = c.cached;
                entry.cachestat = Some(c);
                return Ok(Some(entry));
            }
        }
        self.map_and_count(&file, &mut entry)?;
        Ok(Some(entry))
    }

    /// The part of a file of `size` bytes the options' range covers, as (offset,
    /// length); an error for a range starting past the end of a file named as a `root`.
    fn range_of(&self, size: u64, root: bool) -> Result<(u64, u64)> {
        let range = self.opts.range.unwrap_or_default();
        if root && range.start > 0 && range.start >= size {
            return Err(Error::new(Op::Probe, ErrorKind::OffsetPastEnd)
                .at(
                    range.start,
                    range.end.map_or(0, |e| e.saturating_sub(range.start)),
                )
                .detail(format!(
                    "the range starts past the end of the file ({size} bytes)"
                ))
                .hint("give a range that starts inside the file"));
        }
        Ok(range.clamp(size))
    }

    /// `cachestat(2)` of the range; `None` when it fails (and, for `ENOSYS`, it is not
    /// tried again).
    fn cachestat(&mut self, file: &File, off: u64, len: u64) -> Option<crate::probe::CacheStat> {
        match crate::probe::cachestat(file, off, len) {
            Ok(c) => Some(c),
            Err(e) => {
                if e.errno() == Some(Errno::NOSYS.raw_os_error()) {
                    self.cachestat = false;
                }
                None
            }
        }
    }

    /// Map the entry's range, touch or lock it as the action says, and count its
    /// resident pages with `mincore` (and `cachestat` where there is one).
    fn map_and_count(&mut self, file: &File, entry: &mut FileEntry) -> Result<()> {
        let (off, len, pages) = (entry.offset, entry.bytes, entry.pages);
        let map = MapOptions::new().map(file)?;
        let (o, l) = (off as usize, len as usize);
        match self.action {
            Action::Touch => {
                touch(&map, o, l)?;
                self.report.summary.acted += pages;
            }
            Action::Lock => {
                map.lock_range(o, l, self.opts.lock_mode)?;
                self.report.summary.acted += pages;
            }
            _ => {}
        }
        let res = map.residency_range(o, l)?;
        entry.resident = res.resident() as u64;
        if self.opts.keep_pages {
            entry.map = res.iter().collect();
        }
        if self.cachestat {
            entry.cachestat = self.cachestat(file, off, len);
        }
        if self.action == Action::Lock {
            self.locked.pages += pages;
            self.locked.maps.push(map);
        }
        Ok(())
    }
}

/// Load `len` bytes at `off` of a mapping into memory: `MADV_POPULATE_READ`, else a read
/// of one byte of every page (guarded: a truncated file is an error, not SIGBUS).
fn touch(map: &Mapping, off: usize, len: usize) -> Result<()> {
    if map.advise_range(off, len, Advice::PopulateRead).is_ok() {
        return Ok(());
    }
    let _ = map.advise_range(off, len, Advice::WillNeed);
    let ps = crate::page_size();
    let mut b = [0u8; 1];
    let mut at = off - off % ps;
    while at < off + len {
        map.read_at(at.max(off), &mut b)?;
        at += ps;
    }
    Ok(())
}
