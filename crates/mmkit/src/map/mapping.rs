//! [`Mapping`]: a file mapping (shared or private) or shared anonymous memory.
//!
//! # Safety
//!
//! [`Mapping`] lends its memory through guarded copies and atomic views built on raw
//! pointers into its [`Region`](super::region); its `unsafe fn`s lend slices of memory
//! another process or a truncation can change, under the conditions written on each
//! method.
#![allow(unsafe_code)]

use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::region::Region;
use super::{region_ops, Discard, FlushMode, Protection};
use crate::error::{Error, ErrorKind, Op, Result};

/// A file mapping, shared or private, or shared anonymous memory; unmapped on drop.
///
/// # Safety model
///
/// The bytes of a `Mapping` can change behind any borrow: another process writes the
/// file or the shared memory, or truncates the file (and a touch past the new end raises
/// SIGBUS). Rust's `&[u8]` promises the bytes do not change while borrowed, so the safe
/// API never lends one. It copies instead ([`read_at`](Self::read_at),
/// [`write_at`](Self::write_at), [`read_value`](Self::read_value)) and offers atomic views
/// ([`atomic_u32s`](Self::atomic_u32s)), whose types allow concurrent change.
/// [`as_slice`](Self::as_slice) and [`as_mut_slice`](Self::as_mut_slice) lend slices for
/// callers who can promise no one else changes or truncates the file while they hold one.
///
/// Copies check the protection each page has (see [`protect`](Self::protect)), so an
/// access the pages do not allow is an `Err(Protected)`, not a SIGSEGV.
///
/// ```
/// use mmkit::{FlushMode, MapOptions};
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("counter");
/// let file = std::fs::OpenOptions::new().read(true).write(true).create(true).open(&path)?;
/// file.set_len(4096)?;
/// let mut map = MapOptions::new().write().map(&file)?;
/// map.write_value(0, &42u64)?;
/// map.flush()?;
/// assert_eq!(&std::fs::read(&path)?[..8], &42u64.to_ne_bytes());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Mapping {
    region: Region,
}

impl Mapping {
    pub(crate) fn from_region(region: Region) -> Mapping {
        Mapping { region }
    }

    region_ops!();

    /// The mapped file's device and inode, for a file mapping (a memfd and a named
    /// segment included); `None` for anonymous memory.
    #[cfg(feature = "shm")]
    pub(crate) fn file_id(&self) -> Option<super::poison::FileId> {
        self.region.file_id()
    }

    /// The file's path, when known (for messages; the mapping does not hold the file open).
    pub fn path(&self) -> Option<&Path> {
        self.region.path()
    }

    /// A raw mutable pointer to the first byte of the view; valid until drop or a moving
    /// `remap`. Writing through it skips the protection checks.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.region.ptr()
    }

    /// Copy `buf.len()` bytes at `off` out of the mapping.
    ///
    /// # Errors
    /// `OutOfRange` past the view, `Protected` when the pages are not readable,
    /// `Truncated` when the file no longer reaches the range (the guard caught the
    /// SIGBUS), `StorageFault` when a page of the file could not be read.
    #[inline]
    pub fn read_at(&self, off: usize, buf: &mut [u8]) -> Result<()> {
        let len = buf.len();
        self.region
            .access(Op::Read, off, len, Protection::READ, |src| {
                // SAFETY: `access` checked `[src, src+len)` lies in the view, is readable and
                // is guarded; the destination is a distinct buffer. Bytes another process
                // changes concurrently are copied as they are found.
                unsafe { std::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), len) }
            })
    }

    /// Copy `data` into the mapping at `off`.
    ///
    /// # Errors
    /// `OutOfRange` past the view, `Protected` when the pages are not writable,
    /// `Truncated`/`StorageFault` as for [`read_at`](Self::read_at) (the bytes that fell
    /// on lost pages are not stored).
    #[inline]
    pub fn write_at(&mut self, off: usize, data: &[u8]) -> Result<()> {
        self.region
            .access(Op::Write, off, data.len(), Protection::WRITE, |dst| {
                // SAFETY: `access` checked `[dst, dst+len)` lies in the view, is writable and
                // is guarded; `&mut self` means no borrow of the view is live in this process.
                unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) }
            })
    }

    /// Run `f` over `len` bytes at `off`, borrowed in place, under the SIGBUS guard.
    ///
    /// When the file is truncated under the range while `f` runs, `f` sees zeros where
    /// the pages were lost, its result is dropped, and the call returns `Err(Truncated)`.
    ///
    /// # Safety
    /// No process may write the bytes while `f` runs (through any mapping of the file or
    /// `write(2)`); truncation is handled by the guard.
    ///
    /// # Errors
    /// As [`read_at`](Self::read_at).
    pub unsafe fn with_bytes<R>(
        &self,
        off: usize,
        len: usize,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        self.region
            .access(Op::Read, off, len, Protection::READ, |src| {
                // SAFETY: `access` checked the range; the caller promises no writer.
                f(unsafe { std::slice::from_raw_parts(src, len) })
            })
    }

    /// Write `len` bytes at `off` to the descriptor `fd` with `write(2)`, straight from
    /// the mapped pages (no copy in this process, few system calls); returns the bytes
    /// written, which is `len` unless the descriptor stops taking data.
    ///
    /// No slice is formed: the kernel reads the pages, and a page lost to a truncation
    /// makes it fail with `EFAULT` instead of raising SIGBUS; that becomes `Truncated`.
    ///
    /// # Errors
    /// `OutOfRange`, `Protected`, `Truncated`/`StorageFault`, or the descriptor's error
    /// (`EPIPE` for a closed pipe: with SIGPIPE ignored, as Rust programs do).
    #[doc(alias = "write")]
    pub fn write_to(
        &self,
        off: usize,
        len: usize,
        fd: std::os::fd::BorrowedFd<'_>,
    ) -> Result<usize> {
        const STEP: usize = 16 << 20;
        self.region
            .check_access(Op::Write, off, len, Protection::READ)?;
        let mut done = 0;
        while done < len {
            let n = STEP.min(len - done);
            let at = off + done;
            match self.write_once(at, n, fd)? {
                Ok(0) => break,
                Ok(w) => done += w,
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::FAULT.raw_os_error()) => {
                    return Err(self.lost_in_write(at, len - done));
                }
                Err(e) => {
                    return Err(Error::io(Op::Write, &e).at(at as u64, n as u64));
                }
            }
        }
        Ok(done)
    }

    /// One `write(2)` (retried on `EINTR`) of up to `len` bytes at `off` to `fd`, straight from the pages. The
    /// outer `Result` is the mapping's own check (range, protection, pages already lost),
    /// the inner one the write's: `EFAULT` there means a page had no file behind it (see
    /// [`lost_in_write`](Self::lost_in_write)).
    pub(crate) fn write_once(
        &self,
        off: usize,
        len: usize,
        fd: std::os::fd::BorrowedFd<'_>,
    ) -> Result<std::io::Result<usize>> {
        self.region
            .access(Op::Read, off, len, Protection::READ, |src| {
                crate::sys::retry(|| {
                    // SAFETY: `[src, src+len)` is readable memory of the view (checked by
                    // `access`); write(2) only reads it, and reports a lost page as EFAULT.
                    unsafe { crate::sys::io::write_raw(fd, src, len) }
                })
            })
    }

    /// The error for a `write(2)` from the view at `at` that failed with `EFAULT`: the
    /// kernel met a page with no file behind it. Reads one byte there under the guard to
    /// record the loss and diagnose it (`Truncated`, or `StorageFault`).
    pub(crate) fn lost_in_write(&self, at: usize, len: usize) -> Error {
        let mut probe = [0u8];
        if let Err(e) = self.read_at(at, &mut probe) {
            return e.at(at as u64, len as u64);
        }
        self.region
            .err(Op::Read, ErrorKind::Truncated, at, len)
            .detail("the file was truncated while it was being written out")
    }

    /// The whole view as a slice, safely: only for a memfd sealed against shrinking and
    /// writing (`F_SEAL_SHRINK | F_SEAL_WRITE`), whose bytes can never change.
    ///
    /// # Errors
    /// `Unsupported` for any other mapping; `Protected` when the pages are not readable.
    pub fn sealed_slice(&self) -> Result<&[u8]> {
        if !self.region.frozen() {
            return Err(self
                .region
                .err(Op::View, ErrorKind::Unsupported, 0, self.len())
                .detail("only a memfd sealed with F_SEAL_SHRINK and F_SEAL_WRITE lends safe slices")
                .hint("copy with read_at, or use the unsafe as_slice with its conditions"));
        }
        self.region
            .check_access(Op::View, 0, self.len(), Protection::READ)?;
        // SAFETY: the file can neither shrink nor be written by anyone (the seals are
        // permanent), and the pages are readable; the borrow is tied to `&self`.
        Ok(unsafe { self.as_slice() })
    }

    /// Read a value of a plain-data type at `off` (any alignment).
    ///
    /// # Errors
    /// As [`read_at`](Self::read_at).
    pub fn read_value<T: FromBytes + IntoBytes>(&self, off: usize) -> Result<T> {
        let mut value = T::new_zeroed();
        self.read_at(off, value.as_mut_bytes())?;
        Ok(value)
    }

    /// Write a value of a plain-data type at `off` (any alignment).
    ///
    /// # Errors
    /// As [`write_at`](Self::write_at).
    pub fn write_value<T: IntoBytes + Immutable>(&mut self, off: usize, value: &T) -> Result<()> {
        self.write_at(off, value.as_bytes())
    }

    /// `count` atomic 32-bit words at `off`, for counters and flags shared with other
    /// processes. `off` must be 4-byte aligned in memory and the pages read-write.
    ///
    /// # Errors
    /// `Layout` when misaligned, `OutOfRange`, `Protected`.
    pub fn atomic_u32s(&self, off: usize, count: usize) -> Result<&[AtomicU32]> {
        let ptr = self.atomic_range(off, count, std::mem::size_of::<AtomicU32>())?;
        // SAFETY: the range is inside the view, aligned, readable and writable; atomics
        // allow concurrent change by anyone; the borrow ties the slice to `&self`, and
        // `remap`/`protect` need `&mut self`.
        Ok(unsafe { std::slice::from_raw_parts(ptr.cast::<AtomicU32>(), count) })
    }

    /// `count` atomic 64-bit words at `off` (8-byte aligned). See [`atomic_u32s`](Self::atomic_u32s).
    ///
    /// # Errors
    /// `Layout` when misaligned, `OutOfRange`, `Protected`.
    pub fn atomic_u64s(&self, off: usize, count: usize) -> Result<&[AtomicU64]> {
        let ptr = self.atomic_range(off, count, std::mem::size_of::<AtomicU64>())?;
        // SAFETY: as in `atomic_u32s`, with 8-byte alignment checked.
        Ok(unsafe { std::slice::from_raw_parts(ptr.cast::<AtomicU64>(), count) })
    }

    /// Run `f` on a pointer to `len` bytes at `off` of read-write pages, under the SIGBUS
    /// guard when the file can shrink (a truncation under the range gives `Err(Truncated)`
    /// and `f` finishes on zero pages). For the typed views of [`crate::shm::typed`].
    ///
    /// # Safety
    /// `f` must touch only `[ptr, ptr+len)`, and only with atomic accesses: other
    /// processes may write the bytes at any time.
    #[cfg_attr(not(feature = "shm"), allow(dead_code))]
    pub(crate) unsafe fn with_shared_ptr<R>(
        &self,
        off: usize,
        len: usize,
        f: impl FnOnce(*mut u8) -> R,
    ) -> Result<R> {
        self.region
            .access(Op::View, off, len, Protection::READ_WRITE, f)
    }

    /// Run `f` on a pointer to `len` bytes at `off`, checked for range and for `need`,
    /// and guarded as every access is (a truncation gives `Err(Truncated)`, a full file
    /// system `Err(NoSpace)`). For the stores, which move records in and out themselves.
    ///
    /// # Safety
    /// `f` must touch only `[ptr, ptr+len)`. Other processes may change the bytes at any
    /// time: what `f` reads must be checked (the stores checksum a copy), and what it
    /// writes must not be lent to anyone as a slice at the same time.
    #[cfg_attr(not(feature = "store"), allow(dead_code))]
    pub(crate) unsafe fn with_raw<R, F>(
        &self,
        op: Op,
        off: usize,
        len: usize,
        need: Protection,
        f: F,
    ) -> Result<R>
    where
        F: FnOnce(*mut u8) -> R,
    {
        self.region.access(op, off, len, need, f)
    }

    /// Whether the file behind the mapping can shrink (accesses need the SIGBUS guard).
    #[cfg_attr(not(feature = "shm"), allow(dead_code))]
    pub(crate) fn can_shrink(&self) -> bool {
        self.region.needs_guard()
    }

    fn atomic_range(&self, off: usize, count: usize, size: usize) -> Result<*mut u8> {
        let len = count
            .checked_mul(size)
            .ok_or_else(|| self.region.err(Op::View, ErrorKind::LengthOverflow, off, 0))?;
        self.region
            .check_access(Op::View, off, len, Protection::READ_WRITE)?;
        if self.region.needs_guard() {
            return Err(self.region.err(Op::View, ErrorKind::Unsupported, off, len)
                .detail("atomic views of a file that can shrink cannot be guarded against SIGBUS")
                .hint("use shared anonymous memory or a memfd sealed with F_SEAL_SHRINK, or read_value/write_value"));
        }
        // SAFETY: checked to lie inside the view.
        let ptr = unsafe { self.region.ptr().add(off) };
        if ptr as usize % size != 0 {
            return Err(self
                .region
                .err(Op::View, ErrorKind::Layout, off, len)
                .detail(format!("not {size}-byte aligned")));
        }
        Ok(ptr)
    }

    /// Borrow the view as a byte slice.
    ///
    /// # Safety
    /// While the slice lives, no process may write the mapped bytes (through this or any
    /// other mapping of the file, or `write(2)` to it) and no one may truncate the file
    /// below the view; and the pages must stay readable.
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: the view is mapped for `len` bytes; the caller promises the rest.
        unsafe { std::slice::from_raw_parts(self.region.ptr(), self.region.len()) }
    }

    /// Borrow the view as a mutable byte slice.
    ///
    /// # Safety
    /// As [`as_slice`](Self::as_slice), and the pages must be writable.
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the view is mapped for `len` bytes; `&mut self` is exclusive here and the
        // caller promises no other writer.
        unsafe { std::slice::from_raw_parts_mut(self.region.ptr(), self.region.len()) }
    }

    /// Borrow the view as a slice of `T` (size and alignment checked).
    ///
    /// # Safety
    /// As [`as_slice`](Self::as_slice).
    ///
    /// # Errors
    /// `Layout` when the length is not a multiple of `T`'s size or the start is misaligned.
    pub unsafe fn as_typed<T: FromBytes + KnownLayout + Immutable>(&self) -> Result<&[T]> {
        // SAFETY: forwarded from the caller.
        let bytes = unsafe { self.as_slice() };
        <[T]>::ref_from_bytes(bytes).map_err(|e| layout_err(&self.region, e.to_string()))
    }

    /// Write dirty pages of the whole view back to the file and wait (`msync(MS_SYNC)`).
    /// No-op for anonymous memory.
    ///
    /// # Errors
    /// `EIO` and the like from the file system.
    #[doc(alias = "msync")]
    pub fn flush(&self) -> Result<()> {
        self.region.flush(0, self.region.len(), FlushMode::Sync)
    }

    /// Start writing dirty pages of the whole view back to the file and return at once
    /// (`msync(MS_ASYNC)`); the kernel writes them in the background. No-op for anonymous
    /// memory.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("log");
    /// std::fs::write(&path, [0u8; 4096])?;
    /// let mut map = mmkit::MapOptions::new().write().map_path(&path)?;
    /// map.write_at(0, b"entry")?;
    /// map.flush_async()?; // scheduled; `flush` would wait for the disk
    /// map.flush_async_range(0, 5)?;
    /// assert_eq!(&std::fs::read(&path)?[..5], b"entry"); // the page cache is shared
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// The file system's error.
    #[doc(alias = "msync")]
    pub fn flush_async(&self) -> Result<()> {
        self.region.flush(0, self.region.len(), FlushMode::Async)
    }

    /// Write back `len` bytes at `off` (widened to whole pages), waiting or not.
    ///
    /// # Errors
    /// `OutOfRange`, or the file system's error.
    pub fn flush_range(&self, off: usize, len: usize, mode: FlushMode) -> Result<()> {
        self.region.flush(off, len, mode)
    }

    /// Start writing back `len` bytes at `off` (widened to whole pages) and return at once:
    /// [`flush_range`](Self::flush_range) with [`FlushMode::Async`].
    ///
    /// # Errors
    /// `OutOfRange`, or the file system's error.
    pub fn flush_async_range(&self, off: usize, len: usize) -> Result<()> {
        self.region.flush(off, len, FlushMode::Async)
    }

    /// Change the protection of the whole view (`mprotect`).
    ///
    /// Safe: no borrow can be live (`&mut self`), and later copies check the new
    /// protection. Raw pointers from `as_mut_ptr` are not checked.
    ///
    /// # Errors
    /// `EACCES` asking write of a read-only shared file mapping.
    #[doc(alias = "mprotect")]
    pub fn protect(&mut self, prot: Protection) -> Result<()> {
        let len = self.region.len();
        self.protect_range(0, len, prot)
    }

    /// Change the protection of `len` bytes at `off`; the range must be whole pages (it may
    /// end at the end of the view).
    ///
    /// # Errors
    /// `Unaligned`, `OutOfRange`, or the kernel's refusal.
    pub fn protect_range(&mut self, off: usize, len: usize, prot: Protection) -> Result<()> {
        // SAFETY: `&mut self`: no borrow into the view is live; copies check protection.
        unsafe { self.region.protect(off, len, prot) }
    }

    /// Throw away pages of `len` bytes at `off` (whole pages); see [`Discard`] for what a
    /// later read sees.
    ///
    /// # Errors
    /// `Unaligned`, `OutOfRange`, or the kernel's refusal (`EINVAL` for `Remove` on a file
    /// system without hole punching).
    pub fn discard(&mut self, off: usize, len: usize, how: Discard) -> Result<()> {
        // SAFETY: `&mut self`: no borrow into the view is live, and the safe API only copies.
        unsafe { self.region.discard(off, len, how) }
    }
}

pub(crate) fn layout_err(region: &Region, why: String) -> Error {
    region
        .err(Op::View, ErrorKind::Layout, 0, region.len())
        .detail(why)
}
