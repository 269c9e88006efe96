//! [`MappedFileOptions`]: how a [`MappedFile`] opens its file, and the [`Access`] it has.

use std::fs::File;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, OFlags};

use super::MappedFile;
use crate::error::{Error, ErrorKind, Op, Result};

/// What a [`MappedFile`] may do to its file: Python's `ACCESS_READ`, `ACCESS_WRITE` and
/// `ACCESS_COPY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Access {
    /// Read only (`ACCESS_READ`): every write is an error.
    #[default]
    Read,
    /// Read and write through a shared mapping (`ACCESS_WRITE`): writes reach the file,
    /// and [`resize`](MappedFile::resize) changes its length.
    Write,
    /// Copy on write (`ACCESS_COPY`): writes change this process's copy only; the file may
    /// be open read-only, and its length cannot change.
    Copy,
}

/// A builder for [`MappedFile`]: access, creation, initial length, offset, growth.
///
/// Defaults: an existing file, read-only, mapped from offset 0 to its end, not growable.
/// [`create`](Self::create), [`truncate`](Self::truncate), [`set_len`](Self::set_len) and
/// [`growable`](Self::growable) change the file, so they imply [`Access::Write`] unless an
/// access is given explicitly (then any other access is an error at open).
///
/// ```
/// use mmkit::MappedFile;
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("new");
/// // Create (or truncate) a file of 100 zero bytes, writes past the end allowed.
/// let mut f = MappedFile::options().create(true).truncate(true).set_len(100).growable(true).open(&path)?;
/// assert_eq!(f.len(), 100);
/// f.seek(std::io::SeekFrom::End(0))?;
/// f.write(b"tail")?;
/// f.close()?;
/// assert_eq!(std::fs::metadata(&path)?.len(), 104);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct MappedFileOptions {
    access: Option<Access>,
    create: bool,
    truncate: bool,
    set_len: Option<usize>,
    offset: u64,
    growable: bool,
}

impl MappedFileOptions {
    /// Defaults: an existing file, read-only, whole file, not growable.
    pub fn new() -> MappedFileOptions {
        MappedFileOptions::default()
    }

    /// The access ([`Access::Read`] by default for a path; for
    /// [`open_file`](Self::open_file), the file's own open mode).
    pub fn access(&mut self, access: Access) -> &mut Self {
        self.access = Some(access);
        self
    }

    /// Create the file when it does not exist (paths only; implies write access).
    pub fn create(&mut self, yes: bool) -> &mut Self {
        self.create = yes;
        self
    }

    /// Cut the file to length 0 first (`ftruncate`, once the open file is known to be a
    /// regular file: a FIFO or device is never cut). Combine with
    /// [`set_len`](Self::set_len) for a zero-filled file.
    pub fn truncate(&mut self, yes: bool) -> &mut Self {
        self.truncate = yes;
        self
    }

    /// Make the mapped part `len` bytes on open: the file becomes `offset + len` bytes,
    /// extended with zeros or cut. This is how a file is created with an initial length.
    pub fn set_len(&mut self, len: usize) -> &mut Self {
        self.set_len = Some(len);
        self
    }

    /// Map from `offset` bytes into the file (need not be page-aligned; Python demands a
    /// multiple of `ALLOCATIONGRANULARITY`). The mapping always runs to the end of the file,
    /// and resizing sets the file's length to `offset + new_len`, as in Python.
    pub fn offset(&mut self, offset: u64) -> &mut Self {
        self.offset = offset;
        self
    }

    /// Let writes (and seeks) go past the end: the file and mapping grow geometrically, and
    /// the file is cut to its exact length on [`flush`](MappedFile::flush),
    /// [`close`](MappedFile::close) and drop. Off by default, as in Python (a write past the
    /// end is an error).
    pub fn growable(&mut self, yes: bool) -> &mut Self {
        self.growable = yes;
        self
    }

    /// Open `path` and map it.
    ///
    /// # Errors
    /// The open's errno (`ENOENT`, `EACCES`, ...) as `Op::Open`; conflicting options
    /// (`Unsupported`); the mapping's errors (`NotMappable` for a directory or pipe,
    /// `OffsetPastEnd`).
    pub fn open(&self, path: impl AsRef<Path>) -> Result<MappedFile> {
        let path = path.as_ref();
        let access = self.resolve(None, Some(path))?;
        // Never O_TRUNC: the file is cut in `finish`, once it is known to be a regular file.
        let file = crate::map::open_for_map(path, access == Access::Write, self.create)?;
        self.finish(file, Some(path.to_path_buf()), access)
    }

    /// Map an open file, taking ownership of it (it is closed with the `MappedFile`).
    /// Without [`access`](Self::access), a file open read-write gets [`Access::Write`] and
    /// one open read-only [`Access::Read`]. [`create`](Self::create) has no effect here.
    ///
    /// # Errors
    /// `ReadOnlyFile` asking [`Access::Write`] of a file open read-only, `NoReadAccess` for a
    /// write-only file, and the errors of [`open`](Self::open).
    pub fn open_file(&self, file: File) -> Result<MappedFile> {
        let flags = rustix::fs::fcntl_getfl(&file).map_err(|e| {
            Error::os(Op::Open, e)
                .hint("the file descriptor is not open, or was opened with O_PATH")
        })?;
        let fd_access = if flags & OFlags::RWMODE == OFlags::RDWR {
            Access::Write
        } else {
            Access::Read
        };
        let access = self.resolve(Some(fd_access), None)?;
        self.finish(file, None, access)
    }

    /// The access to use, checking it against the options that change the file.
    fn resolve(&self, from_fd: Option<Access>, path: Option<&Path>) -> Result<Access> {
        let changes = [
            (self.create, "create"),
            (self.truncate, "truncate"),
            (self.set_len.is_some(), "set_len"),
            (self.growable, "growable"),
        ];
        let wanted: Vec<&str> = changes.iter().filter(|c| c.0).map(|c| c.1).collect();
        match self.access {
            Some(a) if a != Access::Write && !wanted.is_empty() => {
                Err(Error::new(Op::Open, ErrorKind::Unsupported)
                    .with_path(path)
                    .detail(format!(
                        "{} change the file, which {a:?} access does not allow",
                        wanted.join(", ")
                    ))
                    .hint("use Access::Write, or leave the access unset"))
            }
            Some(a) => Ok(a),
            None if !wanted.is_empty() => Ok(Access::Write),
            None => Ok(from_fd.unwrap_or(Access::Read)),
        }
    }

    fn finish(&self, file: File, path: Option<PathBuf>, access: Access) -> Result<MappedFile> {
        let p = path.as_deref();
        let changes_len = self.truncate || self.set_len.is_some();
        if changes_len {
            // Cut or extend only a regular file: a FIFO, socket or directory is refused as
            // the mapping would refuse it, and a device has no length to set.
            let st = rustix::fs::fstat(&file).map_err(|e| Error::os(Op::Open, e).with_path(p))?;
            let ft = FileType::from_raw_mode(st.st_mode);
            if let Some(what) = crate::map::unmappable(ft) {
                return Err(crate::map::not_mappable(what, p));
            }
            if ft != FileType::RegularFile {
                return Err(Error::new(Op::Open, ErrorKind::Unsupported)
                    .with_path(p)
                    .detail("truncate and set_len change a regular file's length; this is a device")
                    .hint("leave truncate and set_len out to map a device"));
            }
        }
        if self.truncate {
            file.set_len(0)
                .map_err(|e| Error::io(Op::Open, &e).with_path(p))?;
        }
        if let Some(len) = self.set_len {
            let total = self
                .offset
                .checked_add(len as u64)
                .ok_or_else(|| Error::new(Op::Open, ErrorKind::LengthOverflow).with_path(p))?;
            file.set_len(total).map_err(|e| {
                Error::io(Op::Open, &e)
                    .with_path(p)
                    .at(self.offset, len as u64)
            })?;
        }
        MappedFile::from_parts(file, path, self.offset, access, self.growable)
    }
}
