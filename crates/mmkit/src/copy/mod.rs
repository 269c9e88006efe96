//! **Copying without copying**: move a byte range of a file to a pipe, a socket or another
//! file, letting the kernel move the bytes where it can.
//!
//! [`copy_range`] (and [`CopyOptions`] for more control) tries, in order, what the kernel
//! allows for the kind of destination ([`Destination`]):
//!
//! | [`Method`] | system calls | destinations |
//! |---|---|---|
//! | [`CopyFileRange`](Method::CopyFileRange) | [`copy_file_range(2)`](https://man7.org/linux/man-pages/man2/copy_file_range.2.html) | a regular file |
//! | [`Sendfile`](Method::Sendfile) | [`sendfile(2)`](https://man7.org/linux/man-pages/man2/sendfile.2.html) | a socket, a pipe, a file |
//! | [`Splice`](Method::Splice) | [`splice(2)`](https://man7.org/linux/man-pages/man2/splice.2.html) straight into a pipe, or through a pipe of its own (1 MiB, `F_SETPIPE_SZ`) | a pipe, a socket, a file |
//! | [`MmapWrite`](Method::MmapWrite) | [`mmap(2)`](https://man7.org/linux/man-pages/man2/mmap.2.html) + [`write(2)`](https://man7.org/linux/man-pages/man2/write.2.html) from the mapped pages | anything `write` takes |
//! | [`ReadWrite`](Method::ReadWrite) | [`pread(2)`](https://man7.org/linux/man-pages/man2/pread.2.html) into a buffer + `write(2)` | anything `write` takes |
//!
//! A method the kernel refuses for this pair of descriptors (`EINVAL`, `ENOSYS`, `EXDEV`,
//! `EOPNOTSUPP`; `EBADF` from `copy_file_range`; `ENODEV` from `mmap`) hands over to the
//! next one at the offset reached, and the report lists it in [`CopyReport::refused`].
//! `EINTR` is retried, `EAGAIN` from a non-blocking destination waits in `poll(2)` until it
//! takes data, and short writes go on where they stopped. [`CopyOptions::method`] forces one
//! method (no fall-back), as `mmkit bench sink` does to compare them.
//!
//! The source's file position is never used or moved (every method reads at an explicit
//! offset); the destination's is, as `write(2)` would (a file is written at its position).
//!
//! ## A file that shrinks meanwhile
//!
//! A copy never raises SIGBUS: the in-kernel methods and `pread` stop at the file's end,
//! and `write(2)` from a mapping reports a page with no file behind it as `EFAULT`, which
//! the [guard](crate::guard) diagnoses. Either way the copy returns `Ok` with a *short
//! count* ([`CopyReport::bytes`] below [`CopyReport::requested`]) and
//! [`CopyReport::truncated`] set; the count is exactly what the destination was given.
//! A copy that got to the end is checked too: `truncated` is set when the file is shorter
//! than the range once it is done.
//!
//! The bytes delivered below the file's new length are the file's. Past it, a copy may
//! have delivered bytes it read before the truncation (the file's too), or zeros: the
//! kernel zeroes the rest of the page holding the new end (of the large folio, up to
//! 2 MiB, on file systems with large folios) in place, and
//! - mmap+write reads that page through the mapping: zeros up to the end of the page
//!   when the new length is not a whole number of pages;
//! - `sendfile` and `splice` *into a pipe* lend the page-cache pages to the pipe, not a
//!   copy of them, so its reader sees them as they are when it reads: zeros up to the end
//!   of the folio, even for a whole number of pages (and, the same way, a write to the
//!   file after the copy returned can show through in bytes not read yet);
//! - `read(2)`, `sendfile` and `copy_file_range` into a file can, rarely, read the folio
//!   in the instant between the new length and the zeroing.
//!
//! `tests/map/copy_truncate.rs` checks all of this many times over for every method.
//!
//! ```
//! use std::io::Read;
//! use mmkit::copy::{self, CopyOptions, Method};
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("greeting");
//! std::fs::write(&path, b"hello, zero-copy world")?;
//! let src = copy::open(&path)?;
//!
//! // Bytes 7..16 into another file: copy_file_range where the file system allows it.
//! let out = std::fs::File::create(dir.path().join("out"))?;
//! let report = copy::copy_range(&src, 7, 9, &out)?;
//! assert_eq!(report.bytes, 9);
//! assert_eq!(std::fs::read(dir.path().join("out"))?, b"zero-copy");
//!
//! // The whole file into a socket, with sendfile and nothing else.
//! let (mut rx, tx) = std::os::unix::net::UnixStream::pair()?;
//! let report = CopyOptions::new().method(Method::Sendfile).copy(&src, &tx)?;
//! assert_eq!((report.method, report.bytes), (Method::Sendfile, 22));
//! drop(tx);
//! let mut got = Vec::new();
//! rx.read_to_end(&mut got)?;
//! assert_eq!(got, b"hello, zero-copy world");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A [`Mapping`](crate::Mapping) already writes its pages to a descriptor with
//! [`write_to`](crate::Mapping::write_to); this module starts from the file.

mod methods;

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, OFlags};
use rustix::io::Errno;

use crate::error::{Error, ErrorKind, Op, Result};

/// A way to move bytes from a file to a descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub enum Method {
    /// `pread(2)` into a buffer, then `write(2)`: two copies through this process.
    #[cfg_attr(feature = "serde", serde(rename = "read+write"))]
    ReadWrite,
    /// A mapping of the range, then `write(2)` straight from the mapped pages: one copy.
    #[cfg_attr(feature = "serde", serde(rename = "mmap+write"))]
    MmapWrite,
    /// `sendfile(2)`: the kernel moves page-cache pages to the destination.
    #[cfg_attr(feature = "serde", serde(rename = "sendfile"))]
    Sendfile,
    /// `splice(2)`: straight into a pipe destination, else into a pipe of the copy's own
    /// and from there to the destination.
    #[cfg_attr(feature = "serde", serde(rename = "splice"))]
    Splice,
    /// `copy_file_range(2)`: file to file inside the kernel (a reflink on file systems that
    /// share extents).
    #[cfg_attr(feature = "serde", serde(rename = "copy_file_range"))]
    CopyFileRange,
}

impl Method {
    /// Every method, in the order tables list them.
    pub const ALL: [Method; 5] = [
        Method::ReadWrite,
        Method::MmapWrite,
        Method::Sendfile,
        Method::Splice,
        Method::CopyFileRange,
    ];

    /// `read+write`, `mmap+write`, `sendfile`, `splice` or `copy_file_range`.
    pub fn name(self) -> &'static str {
        match self {
            Method::ReadWrite => "read+write",
            Method::MmapWrite => "mmap+write",
            Method::Sendfile => "sendfile",
            Method::Splice => "splice",
            Method::CopyFileRange => "copy_file_range",
        }
    }

    /// The method of a [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// What kind of descriptor a copy writes to; it decides which methods are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Destination {
    /// A regular file.
    File,
    /// A regular file opened with `O_APPEND` (`>>`): only `write(2)` appends, so only
    /// mmap+write and read+write are tried.
    AppendFile,
    /// A pipe or FIFO.
    Pipe,
    /// A socket.
    Socket,
    /// Anything else (a terminal, `/dev/null`, a block device).
    Other,
}

impl Destination {
    /// The kind of `fd` (`fstat`, and `fcntl(F_GETFL)` for `O_APPEND`).
    ///
    /// # Errors
    /// `EBADF` for a descriptor that is not open.
    pub fn of(fd: impl AsFd) -> Result<Destination> {
        let fd = fd.as_fd();
        let st = rustix::fs::fstat(fd).map_err(|e| Error::os(Op::Copy, e))?;
        Ok(match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => {
                let flags = rustix::fs::fcntl_getfl(fd).map_err(|e| Error::os(Op::Copy, e))?;
                if flags.contains(OFlags::APPEND) {
                    Destination::AppendFile
                } else {
                    Destination::File
                }
            }
            FileType::Fifo => Destination::Pipe,
            FileType::Socket => Destination::Socket,
            _ => Destination::Other,
        })
    }

    /// The methods tried for this destination, in order.
    pub fn methods(self) -> &'static [Method] {
        use Method::*;
        match self {
            Destination::File => &[CopyFileRange, Sendfile, Splice, MmapWrite, ReadWrite],
            Destination::AppendFile => &[MmapWrite, ReadWrite],
            Destination::Pipe | Destination::Socket | Destination::Other => {
                &[Sendfile, Splice, MmapWrite, ReadWrite]
            }
        }
    }
}

/// A method the kernel refused on the way, and the copy went on with the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Refusal {
    /// The method refused.
    pub method: Method,
    /// The kernel's `errno` (0 when the method stopped short of the end of a file that
    /// still had the bytes: `copy_file_range` on some file systems).
    pub errno: i32,
    /// Bytes it had moved before it was refused (usually 0).
    pub bytes: u64,
}

/// What a copy did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct CopyReport {
    /// The method that moved the last bytes (or that found the end of the file).
    pub method: Method,
    /// Bytes delivered to the destination.
    pub bytes: u64,
    /// Bytes asked for, clipped to the file's size when the copy started; `None` when the
    /// size is unknown (a `/proc` or `/sys` file reports 0) and the copy went to the end.
    pub requested: Option<u64>,
    /// The file was truncated below the range during the copy: it ended before
    /// `requested` (a short count), or it was found shorter than the range once the copy
    /// was done (then bytes past its new end may be zeros, see the [module
    /// docs](self#a-file-that-shrinks-meanwhile)). Not set for a file of unknown size.
    pub truncated: bool,
    /// Methods refused before `method`, in the order tried.
    pub refused: Vec<Refusal>,
    /// The size of the pipe `splice` went through, when it used one of its own.
    pub pipe_size: Option<usize>,
}

/// How to copy: the range, the methods, the buffers. [`copy`](Self::copy) runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOptions {
    offset: u64,
    len: Option<u64>,
    methods: Option<Vec<Method>>,
    pipe_size: usize,
    buffer: usize,
    path: Option<PathBuf>,
}

impl Default for CopyOptions {
    fn default() -> CopyOptions {
        CopyOptions::new()
    }
}

impl CopyOptions {
    /// The whole file, every method the destination allows, a 1 MiB pipe for `splice` and a
    /// 1 MiB buffer for read+write.
    pub fn new() -> CopyOptions {
        CopyOptions {
            offset: 0,
            len: None,
            methods: None,
            pipe_size: 1 << 20,
            buffer: 1 << 20,
            path: None,
        }
    }

    /// Start at byte `offset` of the file (default 0).
    pub fn offset(&mut self, offset: u64) -> &mut Self {
        self.offset = offset;
        self
    }

    /// Move at most `len` bytes (default: to the end of the file). The copy stops early at
    /// the end of the file as it was when the copy started.
    pub fn len(&mut self, len: u64) -> &mut Self {
        self.len = Some(len);
        self
    }

    /// Use `method` only: a refusal is an error instead of a hand-over to the next method.
    pub fn method(&mut self, method: Method) -> &mut Self {
        self.methods = Some(vec![method]);
        self
    }

    /// Try `methods` in this order, each refusal handing over to the next (default: the
    /// destination's [`Destination::methods`]).
    pub fn methods(&mut self, methods: &[Method]) -> &mut Self {
        self.methods = Some(methods.to_vec());
        self
    }

    /// The pipe buffer `splice` asks for when it goes through a pipe of its own (default
    /// 1 MiB; without `CAP_SYS_RESOURCE` the kernel grants at most
    /// `/proc/sys/fs/pipe-max-size`, and the pipe keeps its default size when refused).
    pub fn pipe_size(&mut self, bytes: usize) -> &mut Self {
        self.pipe_size = bytes;
        self
    }

    /// The read+write buffer (default 1 MiB; at least 1 byte).
    pub fn buffer(&mut self, bytes: usize) -> &mut Self {
        self.buffer = bytes.max(1);
        self
    }

    /// The source's path, for error messages (default: read from `/proc/self/fd`).
    pub fn path(&mut self, path: impl AsRef<Path>) -> &mut Self {
        self.path = Some(path.as_ref().to_path_buf());
        self
    }

    /// Move the range of `src` to `dst`.
    ///
    /// # Errors
    /// - `Unsupported` for a source that is not a regular file (a directory, FIFO, socket
    ///   or device: nothing is read from it);
    /// - `OffsetPastEnd` when the offset lies past the end of the file;
    /// - `LengthOverflow` when `offset + len` passes 2^63 - 1 (the kernel's largest offset);
    /// - `Unsupported`, with the kernel's errno, when every method was refused (or the
    ///   forced one was: `copy_file_range` to a pipe is `EINVAL`);
    /// - `Os` with the kernel's errno when the destination fails (`EPIPE` once its reader
    ///   is gone, `ENOSPC`) or the file cannot be read (`EIO`);
    /// - `StorageFault` when a page of the file could not be read through the mapping.
    ///
    /// A file truncated during the copy is not an error: see the [module
    /// docs](self#a-file-that-shrinks-meanwhile).
    pub fn copy(&self, src: impl AsFd, dst: impl AsFd) -> Result<CopyReport> {
        let (src, dst) = (src.as_fd(), dst.as_fd());
        let path = || self.path.clone().or_else(|| crate::map::fd_path(src));
        self.run(src, dst).map_err(|e| {
            if e.path().is_some() {
                e
            } else {
                e.with_path(path().as_deref())
            }
        })
    }

    fn run(&self, src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> Result<CopyReport> {
        let size = source_size(src)?;
        let (end, requested) = self.range(size)?;
        let dest = Destination::of(dst)?;
        let methods = self.methods_for(&dest, size)?;
        let mut job = methods::Job {
            src,
            dst,
            dest,
            pos: self.offset,
            end,
            known_size: size.is_some(),
            pipe_size: self.pipe_size,
            buffer: self.buffer,
            pipe_used: None,
        };
        let mut refused = Vec::new();
        for (i, &method) in methods.iter().enumerate() {
            let last = i + 1 == methods.len();
            let from = job.pos;
            let stop = match job.run(method) {
                Ok(stop) => stop,
                Err(methods::Fail::Refused(errno)) if !last => {
                    refused.push(Refusal {
                        method,
                        errno: errno.raw_os_error(),
                        bytes: job.pos - from,
                    });
                    continue;
                }
                Err(methods::Fail::Refused(errno)) => {
                    return Err(self.refused_err(method, errno, &job, from))
                }
                Err(methods::Fail::Error(e)) => return Err(e),
            };
            let Some(truncated) = truncated(stop, src, size, end, job.pos, last) else {
                // The bytes are still there: this method stopped short.
                refused.push(Refusal {
                    method,
                    errno: 0,
                    bytes: job.pos - from,
                });
                continue;
            };
            return Ok(CopyReport {
                method,
                bytes: job.pos - self.offset,
                requested,
                truncated,
                refused,
                pipe_size: job.pipe_used,
            });
        }
        unreachable!("the loop returns at its last method")
    }

    /// The methods to try, in order, for `dest` and a file of `size` (`None`: unknown).
    fn methods_for(&self, dest: &Destination, size: Option<u64>) -> Result<Vec<Method>> {
        Ok(match &self.methods {
            Some(m) if m.is_empty() => {
                return Err(Error::new(Op::Copy, ErrorKind::Unsupported).detail("no methods to try"))
            }
            Some(m) => m.clone(),
            // An unknown size: copy_file_range may stop at 0 bytes, and a mapping needs a
            // length.
            None if size.is_none() => dest
                .methods()
                .iter()
                .copied()
                .filter(|m| !matches!(m, Method::CopyFileRange | Method::MmapWrite))
                .collect(),
            None => dest.methods().to_vec(),
        })
    }

    /// The end offset and the bytes requested, for a file of `size` (`None`: unknown).
    fn range(&self, size: Option<u64>) -> Result<(u64, Option<u64>)> {
        const MAX_OFFSET: u64 = i64::MAX as u64;
        let overflow = || {
            Error::new(Op::Copy, ErrorKind::LengthOverflow)
                .at(self.offset, self.len.unwrap_or(0))
                .detail("offset + length passes 2^63 - 1, the largest file offset")
        };
        if self.offset > MAX_OFFSET {
            return Err(overflow());
        }
        if let Some(len) = self.len {
            if self
                .offset
                .checked_add(len)
                .map_or(true, |end| end > MAX_OFFSET)
            {
                return Err(overflow());
            }
        }
        let Some(size) = size else {
            let end = self.len.map_or(MAX_OFFSET, |l| self.offset + l);
            return Ok((end, self.len));
        };
        if self.offset > size {
            return Err(Error::new(Op::Copy, ErrorKind::OffsetPastEnd)
                .at(self.offset, self.len.unwrap_or(0))
                .detail(format!("offset is past the end of the file ({size} bytes)")));
        }
        let want = self.len.unwrap_or(u64::MAX).min(size - self.offset);
        Ok((self.offset + want, Some(want)))
    }

    fn refused_err(
        &self,
        method: Method,
        errno: Errno,
        job: &methods::Job<'_>,
        from: u64,
    ) -> Error {
        let e = Error::new(Op::Copy, ErrorKind::Unsupported)
            .with_errno(errno)
            .at(from, job.end - from)
            .detail(format!(
                "{} refused this source and destination ({})",
                method.name(),
                crate::error::errno_label(errno.raw_os_error())
            ));
        let hint = match (method, job.dest) {
            (Method::CopyFileRange, Destination::File) => {
                "copy_file_range needs both files on one file system (or one that copies across); \
                 let the copy choose its method"
            }
            (Method::CopyFileRange, _) => "copy_file_range writes only to a regular file",
            (_, Destination::AppendFile) => {
                "an O_APPEND file takes only write(2): use mmap+write or read+write"
            }
            _ => "let the copy choose its method: it falls back to write(2)",
        };
        e.hint(hint)
    }
}

/// Move `len` bytes of `src` at `offset` to `dst` (fewer at the end of the file), with the
/// first method the kernel allows: see the [module docs](self) and [`CopyOptions::copy`]
/// for the errors.
pub fn copy_range(src: impl AsFd, offset: u64, len: u64, dst: impl AsFd) -> Result<CopyReport> {
    CopyOptions::new().offset(offset).len(len).copy(src, dst)
}

/// Open `path` as a copy's source: read-only, never waiting on a FIFO (it is opened
/// `O_NONBLOCK` and its type checked before anything is read), `O_CLOEXEC`, `O_NOCTTY`.
///
/// # Errors
/// `NotMappable` for a directory, FIFO or socket (devices open: [`copy_range`] refuses
/// them, a mapping takes them); otherwise the errno of `open(2)`.
pub fn open(path: impl AsRef<Path>) -> Result<File> {
    crate::map::open_for_map(path.as_ref(), false, false)
}

/// Whether a copy that stopped with `stop` at `pos` (of `end`, from a file of `size` at
/// the start) lost bytes to a truncation; `None` when the file still holds bytes past
/// `pos` and this is not the `last` method: it stopped short, and the next one goes on.
fn truncated(
    stop: methods::Stop,
    src: BorrowedFd<'_>,
    size: Option<u64>,
    end: u64,
    pos: u64,
    last: bool,
) -> Option<bool> {
    Some(match stop {
        // Whole, but the file may have shrunk under the last bytes (zeros from the page
        // holding its new end: see the module docs).
        methods::Stop::Done => size.is_some() && current_size(src).is_some_and(|n| n < end),
        methods::Stop::Truncated => true,
        // Ended before `end`: a shrunk file, or (size unknown) simply its end.
        methods::Stop::Eof => match (size, current_size(src)) {
            (Some(_), Some(now)) if now > pos && !last => return None,
            (Some(_), Some(now)) => now < end,
            (Some(_), None) => true,
            (None, _) => false,
        },
    })
}

/// The source's size: `Some` for a regular file that reports one, `None` for one that
/// reports 0 (empty, or a `/proc` file that does not know); other kinds are refused.
fn source_size(src: BorrowedFd<'_>) -> Result<Option<u64>> {
    let st = rustix::fs::fstat(src).map_err(|e| Error::os(Op::Copy, e))?;
    let ft = FileType::from_raw_mode(st.st_mode);
    if ft != FileType::RegularFile {
        let what = match ft {
            FileType::CharacterDevice => "a character device",
            FileType::BlockDevice => "a block device",
            other => crate::map::unmappable(other).unwrap_or("not a regular file"),
        };
        return Err(Error::new(Op::Copy, ErrorKind::Unsupported)
            .detail(format!("cannot copy from {what}"))
            .hint("the source must be a regular file; read anything else with read()"));
    }
    Ok((st.st_size > 0).then_some(st.st_size as u64))
}

/// The file's size now, `None` if `fstat` fails.
fn current_size(src: BorrowedFd<'_>) -> Option<u64> {
    rustix::fs::fstat(src)
        .ok()
        .map(|st| st.st_size.max(0) as u64)
}
