//! The storage seam under every store: a [`StoreFile`] owns a store's file and every
//! call that changes what storage will hold — open, reserve, punch, write, set_len and
//! `fdatasync` — and resolves the store's [`Durability`] once, in [`StoreFile::commit`].
//! Bytes the stores store through their mappings reach the same page cache; what
//! reaches *storage*, and when, is decided here.
//!
//! The crate's own tests put a crash backend behind this seam (`crash`, test builds
//! only), as redb's `CrashBackend` does: it keeps the bytes a completed flush made
//! durable apart from the bytes written, and at any call it can make the image a power
//! cut would leave (the durable bytes, with any subset of the pages written since).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rustix::io::Errno;

use super::{file, space, Durability};
use crate::{Error, ErrorKind, Op, Result};

/// A store's file (see the module's docs). Dereferences to the [`File`] for mapping
/// and `fstat`.
#[derive(Debug)]
pub(crate) struct StoreFile {
    file: File,
    path: PathBuf,
    durability: Durability,
}

impl std::ops::Deref for StoreFile {
    type Target = File;

    fn deref(&self) -> &File {
        &self.file
    }
}

impl StoreFile {
    /// Open `path` for a store (see [`file::open_store_file`]).
    ///
    /// # Errors
    /// As [`file::open_store_file`].
    pub(crate) fn open(
        path: &Path,
        write: bool,
        create: bool,
        durability: Durability,
    ) -> Result<StoreFile> {
        let file = file::open_store_file(path, write, create)?;
        Ok(StoreFile::from_file(file, path, durability))
    }

    /// A file opened elsewhere (a new store's temporary file).
    pub(crate) fn from_file(file: File, path: &Path, durability: Durability) -> StoreFile {
        StoreFile {
            file,
            path: path.to_path_buf(),
            durability,
        }
    }

    /// The path messages name.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The file was renamed to `path` (a compaction renamed it over the store).
    pub(crate) fn renamed(&mut self, path: &Path) {
        self.path = path.to_path_buf();
    }

    /// The durability commits get.
    pub(crate) fn durability(&self) -> Durability {
        self.durability
    }

    /// Allocate `[from, from + len)`, extending the file (see [`space::reserve`]).
    ///
    /// # Errors
    /// `NoSpace` on a full file system; `Os` otherwise.
    pub(crate) fn reserve(&self, from: u64, len: u64) -> Result<()> {
        let r = space::reserve(&self.file, &self.path, from, len);
        crash::after(crash::Event::Reserve, self);
        r
    }

    /// Free the blocks of `[from, from + len)`, keeping the size (see [`space::punch`]).
    ///
    /// # Errors
    /// As [`reserve`](Self::reserve).
    pub(crate) fn punch(&self, from: u64, len: u64) -> Result<()> {
        let r = space::punch(&self.file, &self.path, from, len);
        crash::after(crash::Event::Punch, self);
        r
    }

    /// Write all of `buf` at `at` (`pwrite`, retried on short writes and `EINTR`).
    ///
    /// # Errors
    /// `NoSpace` when the file system is full (`ENOSPC`, `EDQUOT`); `Os` otherwise.
    pub(crate) fn write_all_at(&self, buf: &[u8], at: u64) -> Result<()> {
        let r = self.file.write_all_at(buf, at).map_err(|e| {
            let errno = crate::sys::errno_of(&e);
            write_error(errno, Op::Write, &self.path).at(at, buf.len() as u64)
        });
        crash::after(crash::Event::Write, self);
        r
    }

    /// Write `parts` one after another from `at` with `pwritev(2)` (the rest, after a
    /// short write, with `pwrite`), for `op`.
    ///
    /// # Errors
    /// As [`write_all_at`](Self::write_all_at).
    pub(crate) fn write_parts_at(&self, parts: &[&[u8]], at: u64, op: Op) -> Result<()> {
        use std::io::IoSlice;
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let fail = |e: Errno| write_error(e, op, &self.path).at(at, total as u64);
        let bufs: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        let wrote = crate::sys::retry(|| rustix::io::pwritev(&self.file, &bufs, at)).map_err(fail);
        let r = wrote.and_then(|wrote| {
            if wrote == total {
                return Ok(());
            }
            // A short write (a signal): finish the rest from one buffer.
            let all = parts.concat();
            self.file
                .write_all_at(&all[wrote..], at + wrote as u64)
                .map_err(|e| fail(crate::sys::errno_of(&e)))
        });
        crash::after(crash::Event::Write, self);
        r
    }

    /// Set the file's size (`ftruncate`).
    ///
    /// # Errors
    /// `Os` with the errno.
    pub(crate) fn set_len(&self, len: u64) -> Result<()> {
        let r = self
            .file
            .set_len(len)
            .map_err(|e| Error::io(Op::Reserve, &e).with_path(Some(&self.path)));
        crash::after(crash::Event::SetLen, self);
        r
    }

    /// `fdatasync(2)`: everything written so far reaches storage.
    ///
    /// # Errors
    /// `Os` with the kernel's errno (`EIO` when writeback failed).
    pub(crate) fn sync_data(&self) -> Result<()> {
        crash::before_sync(self);
        space::sync_data(&self.file, &self.path)?;
        crash::synced(self);
        Ok(())
    }

    /// A commit point: with [`Durability::Sync`] everything written so far reaches
    /// storage before this returns `Ok(true)`; with [`Durability::Process`] nothing
    /// happens (`Ok(false)`): the page cache already holds it.
    ///
    /// # Errors
    /// As [`sync_data`](Self::sync_data).
    pub(crate) fn commit(&self) -> Result<bool> {
        match self.durability {
            Durability::Sync => self.sync_data().map(|()| true),
            Durability::Process => Ok(false),
        }
    }
}

/// The error for a write the file system refused: `NoSpace` for a full one, with a hint
/// that says what is true after a failed write into an open store.
pub(crate) fn write_error(errno: Errno, op: Op, path: &Path) -> Error {
    if matches!(errno, Errno::NOSPC | Errno::DQUOT) {
        Error::new(op, ErrorKind::NoSpace)
            .detail(format!("the file system is full ({errno})"))
            .hint(space::NO_SPACE_HINT)
            .with_path(Some(path))
    } else {
        Error::os(op, errno).with_path(Some(path))
    }
}

/// The crash backend's hooks: nothing outside test builds.
#[cfg(not(test))]
mod crash {
    pub(super) enum Event {
        Reserve,
        Punch,
        Write,
        SetLen,
    }

    #[inline(always)]
    pub(super) fn after(_: Event, _: &super::StoreFile) {}

    #[inline(always)]
    pub(super) fn before_sync(_: &super::StoreFile) {}

    #[inline(always)]
    pub(super) fn synced(_: &super::StoreFile) {}
}

#[cfg(test)]
pub(crate) mod crash;
