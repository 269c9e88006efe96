//! Where a [`ZstdSource`](super::ZstdSource)'s compressed bytes come from: a local file
//! read with `pread`, or any [`Source`] (an object store, memory, another file source).
//!
//! Both read like `pread`: a short count at the end of the data, never zeros past it.
//! For a remote source every read is a round trip, so callers read whole frames and
//! whole tables at once, and the streaming decoder reads through a large buffer.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::super::source::{pread_full, Source};
use crate::error::{Error, Op};

/// How much the streaming decoder reads from a [`Source`] at a time (a file is read in
/// zstd's own input size, about 128 KiB).
const SOURCE_BUFFER: usize = 1 << 20;

/// The compressed bytes of a `ZstdSource`.
pub(super) enum Raw {
    /// A local file, `len` bytes when it was opened.
    File { file: File, path: PathBuf, len: u64 },
    /// Any source; `name` is its `describe()` at open, for errors.
    Source {
        src: Arc<dyn Source>,
        name: PathBuf,
        len: u64,
    },
}

impl fmt::Debug for Raw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Raw::File { path, len, .. } => f
                .debug_struct("File")
                .field("path", path)
                .field("len", len)
                .finish(),
            Raw::Source { name, len, .. } => f
                .debug_struct("Source")
                .field("name", name)
                .field("len", len)
                .finish(),
        }
    }
}

impl Raw {
    /// The source's compressed bytes, as they are now.
    pub(super) fn source(src: Arc<dyn Source>) -> Raw {
        Raw::Source {
            name: PathBuf::from(src.describe()),
            len: src.len(),
            src,
        }
    }

    /// The length of the compressed data, as seen at open.
    pub(super) fn len(&self) -> u64 {
        match self {
            Raw::File { len, .. } | Raw::Source { len, .. } => *len,
        }
    }

    /// The file's path, or `None` for a source.
    pub(super) fn path(&self) -> Option<&Path> {
        match self {
            Raw::File { path, .. } => Some(path),
            Raw::Source { .. } => None,
        }
    }

    /// What errors name: the file's path, or the source's description.
    pub(super) fn name(&self) -> &Path {
        match self {
            Raw::File { path, .. } => path,
            Raw::Source { name, .. } => name,
        }
    }

    /// Read up to `buf.len()` bytes at `off` in one call to the file or source; fewer at
    /// the end of the data. A source's own error travels inside the `io::Error` (see
    /// [`Raw::error`]).
    pub(super) fn read(&self, off: u64, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Raw::File { file, .. } => pread_full(file, off, buf),
            Raw::Source { src, len, .. } => {
                let want = len.saturating_sub(off).min(buf.len() as u64) as usize;
                if want > 0 {
                    src.read_at(off, &mut buf[..want])?;
                }
                Ok(want)
            }
        }
    }

    /// Whether the bytes come from a [`Source`] (where each read may be a round trip),
    /// not a local file.
    pub(super) fn is_source(&self) -> bool {
        matches!(self, Raw::Source { .. })
    }

    /// The error for a failed [`read`](Raw::read) of `len` bytes at `off` during `op`:
    /// the source's own error when it came from one (it names the source and the
    /// cause), else the I/O error on the file.
    pub(super) fn error(&self, op: Op, e: io::Error, off: u64, len: u64) -> Error {
        match source_error(e) {
            Ok(err) => err,
            Err(e) => Error::io(op, &e).with_path(Some(self.name())).at(off, len),
        }
    }

    /// A buffered reader of `len` bytes at `off`, for a streaming decoder.
    pub(super) fn range(self: &Arc<Self>, off: u64, len: u64) -> BufReader<Range> {
        let range = Range {
            raw: Arc::clone(self),
            pos: off,
            end: off + len,
        };
        let cap = match **self {
            Raw::File { .. } => ::zstd::zstd_safe::DCtx::in_size(),
            Raw::Source { .. } => SOURCE_BUFFER,
        };
        BufReader::with_capacity(cap, range)
    }
}

/// The mmkit error a source returned, if `e` carries one (a source's errors become
/// `io::Error`s on their way through [`Raw::read`] and the decoder).
pub(super) fn source_error(e: io::Error) -> Result<Error, io::Error> {
    if !e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        return Err(e);
    }
    let kind = e.kind();
    match e.into_inner().map(|inner| inner.downcast::<Error>()) {
        Some(Ok(err)) => Ok(*err),
        Some(Err(other)) => Err(io::Error::new(kind, other)),
        None => Err(io::Error::from(kind)),
    }
}

/// A byte range of the compressed data as a reader.
pub(super) struct Range {
    raw: Arc<Raw>,
    pos: u64,
    end: u64,
}

impl Read for Range {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.end - self.pos).min(buf.len() as u64) as usize;
        let got = self.raw.read(self.pos, &mut buf[..n])?;
        self.pos += got as u64;
        Ok(got)
    }
}
