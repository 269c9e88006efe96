//! The **file** pillar: [`MappedFile`], a file object on a mapping with the methods of
//! Python's [`mmap.mmap`](https://docs.python.org/3/library/mmap.html).
//!
//! It keeps a position, reads, writes, searches, resizes and moves bytes like Python's
//! object, and implements [`Read`](std::io::Read), [`Write`](std::io::Write),
//! [`Seek`](std::io::Seek) and [`BufRead`](std::io::BufRead). It is built on the safe
//! copy-in/copy-out calls of [`Mapping`] (`read_at`, `write_at`, `flush_range`, `remap`), so
//! it never lends a slice of the file and is as guarded as those calls are: a file truncated
//! by someone else gives an `Err`, not a crash.
//!
//! | call | what it does |
//! |---|---|
//! | [`MappedFile::open`], [`open_rw`](MappedFile::open_rw), [`create`](MappedFile::create), [`from_file`](MappedFile::from_file), [`options`](MappedFile::options) | `open(2)`, `ftruncate(2)` for an initial length, [`mmap(2)`](https://man7.org/linux/man-pages/man2/mmap.2.html) |
//! | `read`, `readline`, `get`, `find`, `rfind` | copies out of the mapping (`memchr::memmem` for the searches) |
//! | `write`, `set`, `move_within` | copies into the mapping |
//! | `resize`, writes past the end of a growable file | [`ftruncate(2)`](https://man7.org/linux/man-pages/man2/ftruncate.2.html) and [`mremap(2)`](https://man7.org/linux/man-pages/man2/mremap.2.html) |
//! | `flush`, `flush_range`, `flush_async` | [`msync(2)`](https://man7.org/linux/man-pages/man2/msync.2.html) |
//! | `close`, drop | `ftruncate(2)` to the exact length when the file grew, `munmap(2)`, `close(2)` |
//!
//! ## Example
//!
//! ```
//! use std::io::SeekFrom;
//! use mmkit::MappedFile;
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("log.txt");
//! std::fs::write(&path, b"alpha\nbeta\ngamma\n")?;
//!
//! let mut f = MappedFile::open_rw(&path)?;
//! assert_eq!(f.readline()?, b"alpha\n");
//! assert_eq!(f.find(b"gamma")?, Some(11));     // from the position, like Python
//! assert_eq!(f.rfind_in(b"a", ..10)?, Some(9)); // an explicit range: m.rfind(b"a", 0, 10)
//! f.seek(SeekFrom::End(-6))?;
//! f.write(b"GAMMA")?;
//! assert_eq!(f.get(11..16)?, b"GAMMA");         // m[11:16]
//! // As in Python, a write past the end is an error unless the file is growable.
//! assert!(f.write(b"more").is_err());
//! f.close()?;
//!
//! let mut log = MappedFile::options().growable(true).open(&path)?;
//! log.seek(SeekFrom::End(0))?;
//! log.write(b"delta\n")?;
//! log.close()?; // cut to the exact length
//! assert_eq!(std::fs::read(&path)?, b"alpha\nbeta\nGAMMA\ndelta\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
#![doc = include_str!("parity.md")]

mod capacity;
mod io;
mod options;
mod search;
#[cfg(test)]
mod tests;

pub use options::{Access, MappedFileOptions};

use std::fmt;
use std::fs::File;
use std::io::SeekFrom;
use std::ops::{Bound, RangeBounds};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Op, Result};
use crate::map::{FlushMode, MapOptions, Mapping, RemapMode};
use search::SEARCH_CHUNK;

/// The size of the buffer behind [`BufRead::fill_buf`](std::io::BufRead::fill_buf).
const READ_BUF: usize = 8 * 1024;
/// Bytes copied per step by `move_within` and the zero fill of a gap.
const MOVE_CHUNK: usize = 64 * 1024;

/// A file object on a mapping, with the methods of Python's `mmap.mmap`: a position,
/// `read`/`readline`/`write`/`seek`/`find`/`rfind`/`resize`/`move_within`/`flush`, slicing
/// with [`get`](Self::get)/[`set`](Self::set), and the `std::io` traits.
///
/// See the [module docs](self) for an example and the table of parity with Python.
///
/// The object owns the file and a [`Mapping`] of it from [`offset`](Self::offset) to the
/// end. Its [`len`](Self::len) is the logical length; a growable object may map more (its
/// [`capacity`](Self::capacity)) and cuts the file to `offset + len` on
/// [`flush`](Self::flush), [`close`](Self::close) and drop.
pub struct MappedFile {
    file: File,
    map: Mapping,
    path: Option<PathBuf>,
    offset: u64,
    access: Access,
    growable: bool,
    /// The logical length; `len <= map.len()`.
    len: usize,
    /// The position; may exceed `len` (after a shrinking `resize`, or a seek of a growable
    /// object).
    pos: usize,
    /// The file's length may differ from `offset + len` (spare capacity, or a failed resize).
    len_dirty: bool,
    /// `fill_buf`'s copy of the bytes at `rbuf_start..`; emptied by every change.
    rbuf: Vec<u8>,
    rbuf_start: usize,
    /// `close` or drop has run.
    done: bool,
}

impl fmt::Debug for MappedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MappedFile")
            .field("path", &self.path)
            .field("offset", &self.offset)
            .field("access", &self.access)
            .field("growable", &self.growable)
            .field("len", &self.len)
            .field("capacity", &self.map.len())
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

/// The mapping options for `access` at `offset`, `len` bytes (default: to the end).
fn map_options(access: Access, offset: u64, len: Option<usize>) -> MapOptions {
    let mut o = MapOptions::new();
    o.offset(offset);
    match access {
        Access::Read => {}
        Access::Write => {
            o.write();
        }
        Access::Copy => {
            o.copy_on_write();
        }
    }
    if let Some(len) = len {
        o.len(len);
    }
    o
}

impl MappedFile {
    /// A builder: access, create, initial length, offset, growth.
    pub fn options() -> MappedFileOptions {
        MappedFileOptions::new()
    }

    /// Open `path` read-only ([`Access::Read`]).
    ///
    /// # Errors
    /// As [`MappedFileOptions::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<MappedFile> {
        MappedFileOptions::new().open(path)
    }

    /// Open `path` for reading and writing ([`Access::Write`]); not growable.
    ///
    /// # Errors
    /// As [`MappedFileOptions::open`].
    pub fn open_rw(path: impl AsRef<Path>) -> Result<MappedFile> {
        MappedFileOptions::new().access(Access::Write).open(path)
    }

    /// Create `path` (or truncate it) as `len` zero bytes, open for reading and writing;
    /// not growable.
    ///
    /// # Errors
    /// As [`MappedFileOptions::open`].
    pub fn create(path: impl AsRef<Path>, len: usize) -> Result<MappedFile> {
        MappedFileOptions::new()
            .create(true)
            .truncate(true)
            .set_len(len)
            .open(path)
    }

    /// Map an open file, with the access its open mode allows (read-write or read-only).
    ///
    /// # Errors
    /// As [`MappedFileOptions::open_file`].
    pub fn from_file(file: File) -> Result<MappedFile> {
        MappedFileOptions::new().open_file(file)
    }

    pub(super) fn from_parts(
        file: File,
        path: Option<PathBuf>,
        offset: u64,
        access: Access,
        growable: bool,
    ) -> Result<MappedFile> {
        let map = map_options(access, offset, None).map_fd(file.as_fd(), path.clone())?;
        Ok(MappedFile {
            file,
            len: map.len(),
            map,
            path,
            offset,
            access,
            growable,
            pos: 0,
            len_dirty: false,
            rbuf: Vec::new(),
            rbuf_start: 0,
            done: false,
        })
    }

    /// The logical length in bytes (Python's `len(m)`).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the length is 0.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The position (Python's `tell()`).
    pub fn tell(&self) -> usize {
        self.pos
    }

    /// The bytes mapped: the length plus a growable object's spare capacity.
    pub fn capacity(&self) -> usize {
        self.map.len()
    }

    /// Where in the file the object starts.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The path it was opened with, when opened by path.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The access it has.
    pub fn access(&self) -> Access {
        self.access
    }

    /// Whether writes and seeks may go past the end.
    pub fn is_growable(&self) -> bool {
        self.growable
    }

    /// The mapping underneath, for `advise`, `lock`, `residency` and the like. It may be
    /// longer than [`len`](Self::len) (spare capacity, which holds zeros).
    pub fn mapping(&self) -> &Mapping {
        &self.map
    }

    /// The file's length from `fstat`, offset included (Python's `size()`).
    ///
    /// # Errors
    /// The `fstat` error.
    pub fn size(&self) -> Result<u64> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| Error::io(Op::Open, &e).with_path(self.path()))
    }

    fn err(&self, op: Op, kind: ErrorKind, off: usize, len: usize) -> Error {
        Error::new(op, kind)
            .with_path(self.path())
            .at(off as u64, len as u64)
    }

    fn check_writable(&self, op: Op, off: usize, len: usize) -> Result<()> {
        if self.access == Access::Read {
            return Err(self
                .err(op, ErrorKind::ReadOnlyFile, off, len)
                .detail("the file object was opened with read access")
                .hint("open it with Access::Write (or Access::Copy for private changes)"));
        }
        Ok(())
    }

    fn check_resizable(&self, new_len: usize) -> Result<()> {
        self.check_writable(Op::Remap, 0, new_len)?;
        if self.access == Access::Copy {
            return Err(self
                .err(Op::Remap, ErrorKind::Unsupported, 0, new_len)
                .detail("a copy-on-write object cannot change the file's length")
                .hint("open it with Access::Write"));
        }
        Ok(())
    }

    /// Python's slice bounds: both ends clamped to the length.
    fn clamp(&self, range: &impl RangeBounds<usize>) -> (usize, usize) {
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e.saturating_add(1),
            Bound::Excluded(&e) => e,
            Bound::Unbounded => self.len,
        };
        (start.min(self.len), end.min(self.len))
    }

    /// Read up to `n` bytes from the position (all the rest with `None`), and move past
    /// them. At or past the end the result is empty.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("f");
    /// # std::fs::write(&path, b"abcdef")?;
    /// let mut f = mmkit::MappedFile::open(&path)?;
    /// assert_eq!(f.read(2)?, b"ab");
    /// assert_eq!(f.read(None)?, b"cdef");
    /// assert_eq!(f.read(10)?, b"");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// The mapping's read error (a file truncated by someone else).
    pub fn read(&mut self, n: impl Into<Option<usize>>) -> Result<Vec<u8>> {
        let rest = self.len.saturating_sub(self.pos);
        let n = n.into().map_or(rest, |n| n.min(rest));
        let mut out = vec![0u8; n];
        self.read_into(&mut out)?;
        Ok(out)
    }

    /// Copy as many bytes as fit in `buf` from the position and move past them; returns the
    /// count (0 at the end).
    ///
    /// # Errors
    /// The mapping's read error.
    pub fn read_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        let n = buf.len().min(self.len.saturating_sub(self.pos));
        if n > 0 {
            self.map.read_at(self.pos, &mut buf[..n])?;
            self.pos += n;
        }
        Ok(n)
    }

    /// Read the byte at the position and move past it; `None` at the end (where Python
    /// raises `ValueError`).
    ///
    /// # Errors
    /// The mapping's read error.
    pub fn read_byte(&mut self) -> Result<Option<u8>> {
        let mut b = [0u8];
        Ok((self.read_into(&mut b)? == 1).then_some(b[0]))
    }

    /// Read to and including the next `\n`, or to the end when there is none; empty at the
    /// end.
    ///
    /// # Errors
    /// The mapping's read error; the position does not move then.
    pub fn readline(&mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut at = self.pos;
        let mut step = 256;
        while at < self.len {
            let n = step.min(self.len - at);
            let old = out.len();
            out.resize(old + n, 0);
            self.map.read_at(at, &mut out[old..])?;
            if let Some(i) = memchr::memchr(b'\n', &out[old..]) {
                out.truncate(old + i + 1);
                break;
            }
            at += n;
            step = (step * 2).min(SEARCH_CHUNK);
        }
        self.pos += out.len();
        Ok(out)
    }

    /// Write `data` at the position and move past it; returns `data.len()`.
    ///
    /// All or nothing, as in Python: when `data` does not fit before the end, nothing is
    /// written and the result is `OutOfRange` — unless the object is growable, when the
    /// file and mapping grow (geometrically, so appending byte by byte is amortised O(1)),
    /// and a gap left by seeking past the end is filled with zeros.
    ///
    /// # Errors
    /// `ReadOnlyFile` with read access; `OutOfRange` past the end; growth's `ftruncate` and
    /// `mremap` errors; the mapping's write error.
    pub fn write(&mut self, data: &[u8]) -> Result<usize> {
        self.check_writable(Op::Write, self.pos, data.len())?;
        let end = self
            .pos
            .checked_add(data.len())
            .ok_or_else(|| self.err(Op::Write, ErrorKind::LengthOverflow, self.pos, data.len()))?;
        if end > self.len {
            if !self.growable {
                return Err(self
                    .err(Op::Write, ErrorKind::OutOfRange, self.pos, data.len())
                    .detail(format!("data runs past the end ({} bytes)", self.len))
                    .hint("resize() first, or open with growable(true)"));
            }
            if data.is_empty() {
                return Ok(0);
            }
            self.grow_to(end)?;
        }
        self.write_at(self.pos, data)?;
        self.pos = end;
        Ok(data.len())
    }

    /// Write one byte at the position and move past it.
    ///
    /// # Errors
    /// As [`write`](Self::write): at the end, `OutOfRange` unless growable.
    pub fn write_byte(&mut self, byte: u8) -> Result<()> {
        self.write(&[byte]).map(|_| ())
    }

    /// Move the position (Python's `seek(pos, whence)`); returns the new position.
    ///
    /// # Errors
    /// `OutOfRange` before the start, or past the end unless the object is growable.
    pub fn seek(&mut self, to: SeekFrom) -> Result<usize> {
        let (base, delta) = match to {
            SeekFrom::Start(n) => (0i128, i128::from(n)),
            SeekFrom::Current(d) => (self.pos as i128, i128::from(d)),
            SeekFrom::End(d) => (self.len as i128, i128::from(d)),
        };
        let target = base + delta;
        let bad = |what: &str| {
            Error::new(Op::Read, ErrorKind::OutOfRange)
                .with_path(self.path())
                .detail(format!(
                    "seek to {target}: {what} (the object has {} bytes)",
                    self.len
                ))
        };
        if target < 0 {
            return Err(bad("before the start"));
        }
        if target > self.len as i128 && !self.growable {
            return Err(bad("past the end").hint("open with growable(true) to seek past the end"));
        }
        if target > isize::MAX as i128 {
            return Err(bad("too large for the address space"));
        }
        self.pos = target as usize;
        Ok(self.pos)
    }

    /// Copy the bytes of `range` (Python's `m[a:b]`): bounds clamped to the length, empty
    /// when the range is. The position does not move.
    ///
    /// # Errors
    /// The mapping's read error.
    pub fn get(&self, range: impl RangeBounds<usize>) -> Result<Vec<u8>> {
        let (start, end) = self.clamp(&range);
        let mut out = vec![0u8; end.saturating_sub(start)];
        if !out.is_empty() {
            self.map.read_at(start, &mut out)?;
        }
        Ok(out)
    }

    /// Overwrite `range` with `data` (Python's `m[a:b] = data`): bounds clamped to the
    /// length, and `data` must be exactly as long as the clamped range. Never grows the
    /// file; the position does not move.
    ///
    /// # Errors
    /// `OutOfRange` when the lengths differ; `ReadOnlyFile` with read access.
    pub fn set(&mut self, range: impl RangeBounds<usize>, data: &[u8]) -> Result<()> {
        let (start, end) = self.clamp(&range);
        let end = end.max(start);
        self.check_writable(Op::Write, start, data.len())?;
        if data.len() != end - start {
            return Err(self
                .err(Op::Write, ErrorKind::OutOfRange, start, data.len())
                .detail(format!(
                    "{} bytes given for a slice of {} bytes ({start}..{end} of {})",
                    data.len(),
                    end - start,
                    self.len
                )));
        }
        self.write_at(start, data)
    }

    /// Copy `count` bytes from `src` to `dest` within the object, correct when the ranges
    /// overlap (Python's `move`, C's `memmove`). The position does not move.
    ///
    /// # Errors
    /// `OutOfRange` unless both ranges lie inside the length; `ReadOnlyFile` with read
    /// access.
    pub fn move_within(&mut self, dest: usize, src: usize, count: usize) -> Result<()> {
        self.check_writable(Op::Write, dest, count)?;
        let fits = |at: usize| at.checked_add(count).is_some_and(|e| e <= self.len);
        if !fits(src) || !fits(dest) {
            return Err(self
                .err(Op::Write, ErrorKind::OutOfRange, dest, count)
                .detail(format!(
                    "move of {count} bytes from {src} to {dest} leaves the object ({} bytes)",
                    self.len
                )));
        }
        if count == 0 || src == dest {
            return Ok(());
        }
        let mut buf = vec![0u8; count.min(MOVE_CHUNK)];
        let mut done = 0;
        while done < count {
            let n = buf.len().min(count - done);
            // Forwards when moving down, backwards when moving up: each chunk is read
            // before any write can reach it.
            let at = if dest < src { done } else { count - done - n };
            self.map.read_at(src + at, &mut buf[..n])?;
            self.write_at(dest + at, &buf[..n])?;
            done += n;
        }
        Ok(())
    }

    /// Set the length to `new_len` bytes: the file becomes `offset + new_len` bytes (new
    /// bytes are zeros) and the mapping follows (`ftruncate` + `mremap`). The position is
    /// kept, even past the new end, as in Python. 0 is allowed.
    ///
    /// # Errors
    /// `ReadOnlyFile` with read access, `Unsupported` with copy access; the kernel's
    /// `ftruncate`/`mremap` errors.
    pub fn resize(&mut self, new_len: usize) -> Result<()> {
        self.check_resizable(new_len)?;
        self.rbuf.clear();
        self.len_dirty = true;
        if new_len == self.map.len() {
            self.set_file_len(Op::Remap, new_len)?;
        } else {
            self.set_capacity(new_len)?;
        }
        self.len = new_len;
        self.len_dirty = false;
        Ok(())
    }

    /// Write the dirty pages back to the file and wait (`msync(MS_SYNC)`), and cut a
    /// growable file's spare capacity so the file on disk is exactly `offset + len` bytes.
    /// A no-op with read or copy access, as in Python.
    ///
    /// # Errors
    /// The kernel's `msync`/`ftruncate`/`mremap` errors (`EIO`).
    pub fn flush(&mut self) -> Result<()> {
        if self.access != Access::Write {
            return Ok(());
        }
        if self.len > 0 {
            self.map.flush_range(0, self.len, FlushMode::Sync)?;
        }
        if self.len_dirty {
            if self.map.len() == self.len {
                self.set_file_len(Op::Flush, self.len)?;
            } else {
                self.set_capacity(self.len)?;
            }
            self.len_dirty = false;
        }
        Ok(())
    }

    /// Write back `len` bytes at `off` (widened to whole pages) and wait (Python's
    /// `flush(offset, size)`). A no-op with read or copy access.
    ///
    /// # Errors
    /// `OutOfRange` unless the range lies inside the length; the kernel's `msync` error.
    pub fn flush_range(&self, off: usize, len: usize) -> Result<()> {
        self.flush_range_with(off, len, FlushMode::Sync)
    }

    /// Unmap and close. A growable file that grew is cut to its exact length first; that
    /// error is returned here (drop ignores it). Does not `msync`: call
    /// [`flush`](Self::flush) first when the data must be on disk.
    ///
    /// # Errors
    /// The `ftruncate` error of cutting the file to length.
    pub fn close(mut self) -> Result<()> {
        self.finish()
    }

    fn finish(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.done, true) {
            return Ok(());
        }
        if self.access == Access::Write && self.len_dirty {
            // The mapping past the new end is never touched again: it is unmapped on drop.
            self.set_file_len(Op::Unmap, self.len)?;
            self.len_dirty = false;
        }
        Ok(())
    }

    /// Copy into the mapping and drop the read buffer.
    fn write_at(&mut self, off: usize, data: &[u8]) -> Result<()> {
        self.rbuf.clear();
        if data.is_empty() {
            return Ok(());
        }
        self.map.write_at(off, data)
    }
}
