//! The lab's seam: the private items of this library that `mmkit-lab` (the benchmarks and
//! the tour, `crates/mmkit-lab`) builds on, in one place. Hidden from the docs and outside
//! the API's promises: a change here is a change to the lab, nothing else.
//!
//! Every item, and why the lab cannot use a public one instead:
//!
//! - [`ErrorExt`]: `Error::new`, `Error::os`, `Error::io` and the context setters
//!   (`with_path`, `at`, `detail`, `hint`, `with_errno`), so a benchmark's or the tour's
//!   failure is the library's own [`Error`] and the CLI prints it like every other. Users
//!   read errors; only code that measures the library builds them.
//! - [`errno_label`]: `EINVAL (Invalid argument)`, the errno's name and text as the
//!   library's errors print it (the sink bench and the tour say why a call failed).
//! - [`open_for_map`]: the library's own open for mapping (non-blocking, special files
//!   refused), so the read bench opens its file exactly as `MapOptions::map_path` does.
//! - [`record_size`] and [`DATA_START`] (`store`): the log's on-disk format, so the log
//!   bench writes the same bytes to its peer and the tour can cut a log at a record.
//!
//! The lab otherwise uses the public API, and [`crate::helpers`] (one xorshift, one
//! median) as the crate's own tests do.

use std::fs::File;
use std::io;
use std::path::Path;

use crate::error::{Error, ErrorKind, Op, Result};

/// Build and annotate an [`Error`] from outside the crate: the crate's own constructors.
pub trait ErrorExt: Sized {
    /// An error of `kind` from `op`, with no context yet.
    fn new(op: Op, kind: ErrorKind) -> Self;
    /// The kernel refused `op` with `errno`.
    fn os(op: Op, errno: rustix::io::Errno) -> Self;
    /// A failed `std::io` call of `op`.
    fn io(op: Op, e: &io::Error) -> Self;
    /// Keep the kernel's `errno` on an error of another kind.
    fn with_errno(self, errno: rustix::io::Errno) -> Self;
    /// The path the operation was on.
    fn with_path(self, path: Option<&Path>) -> Self;
    /// The byte range the operation was on.
    fn at(self, offset: u64, len: u64) -> Self;
    /// What exactly failed.
    fn detail(self, detail: impl Into<String>) -> Self;
    /// What a person can do about it.
    fn hint(self, hint: impl Into<String>) -> Self;
}

impl ErrorExt for Error {
    fn new(op: Op, kind: ErrorKind) -> Self {
        Error::new(op, kind)
    }
    fn os(op: Op, errno: rustix::io::Errno) -> Self {
        Error::os(op, errno)
    }
    fn io(op: Op, e: &io::Error) -> Self {
        Error::io(op, e)
    }
    fn with_errno(self, errno: rustix::io::Errno) -> Self {
        Error::with_errno(self, errno)
    }
    fn with_path(self, path: Option<&Path>) -> Self {
        Error::with_path(self, path)
    }
    fn at(self, offset: u64, len: u64) -> Self {
        Error::at(self, offset, len)
    }
    fn detail(self, detail: impl Into<String>) -> Self {
        Error::detail(self, detail)
    }
    fn hint(self, hint: impl Into<String>) -> Self {
        Error::hint(self, hint)
    }
}

/// `EINVAL (Invalid argument)`: the errno's name and its text.
pub fn errno_label(errno: i32) -> String {
    crate::error::errno_label(errno)
}

/// Open `path` for mapping as the library does: read access (and write access when
/// `write`), created when `create` and missing, never blocking on a FIFO.
///
/// # Errors
/// `NotMappable` for a directory or special file; otherwise the errno of `open`.
pub fn open_for_map(path: &Path, write: bool, create: bool) -> Result<File> {
    crate::map::open_for_map(path, write, create)
}

/// The bytes a log record of `payload` bytes takes on disk, frame and padding included.
#[cfg(feature = "store")]
pub fn record_size(payload: usize) -> u64 {
    crate::store::format::record_size(payload)
}

/// Where a log file's first record starts.
#[cfg(feature = "store")]
pub const DATA_START: u64 = crate::store::format::DATA_START;
