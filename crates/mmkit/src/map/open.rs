//! Opening a path to map it, without ever waiting on it.
//!
//! A plain read-only `open(2)` of a FIFO blocks until some process opens it for writing,
//! so a FIFO handed to `map_path` (or `mmkit cat`) would hang instead of failing. The
//! open is [`crate::sys::fs::open_regular`] (non-blocking, the type checked with `fstat`
//! before anything else is done with the descriptor); this file adds what mapping
//! needs: the kinds that map, and the `NotMappable` error. Nothing truncates here: a
//! caller that cuts the file does so after the check, on a regular file only.

use std::fs::File;
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags};

use crate::error::{Error, ErrorKind, Op, Result};
use crate::sys::fs::{open_regular, Purpose, Refusal, Takes};

/// What a file type is, when it is a kind that can never be mapped.
pub(crate) fn unmappable(ft: FileType) -> Option<&'static str> {
    Takes::Mappable.refuses(ft)
}

/// The `NotMappable` error for `what` (as [`unmappable`] names it).
pub(crate) fn not_mappable(what: &str, path: Option<&Path>) -> Error {
    Error::new(Op::Map, ErrorKind::NotMappable)
        .with_path(path)
        .detail(format!("cannot map {what}"))
        .hint(
            "read it with read() instead; only regular files, block devices and memory objects map",
        )
}

/// Open `path` for mapping: read access, write access too when `write`, created (mode
/// 0666 less the umask) when `create` and missing. Never blocks on a FIFO, and never
/// truncates.
///
/// # Errors
/// `NotMappable` for a directory, FIFO, socket or other special file (found with
/// `fstat` on the descriptor, or with `stat` when the open itself failed, as it does for
/// a socket or a directory opened for writing); otherwise the errno of `open` as
/// `Op::Open`.
pub(crate) fn open_for_map(path: &Path, write: bool, create: bool) -> Result<File> {
    let mut purpose = Purpose::new(write, Takes::Mappable);
    if create {
        purpose.flags |= OFlags::CREATE;
        purpose.mode = Mode::from_raw_mode(0o666);
    }
    match open_regular(path, purpose) {
        Ok((file, _)) => Ok(file),
        Err(Refusal::Kind(what)) => Err(not_mappable(what, Some(path))),
        Err(Refusal::Os(e)) => {
            // The open may fail because of what the path is (ENXIO for a socket, EISDIR
            // for a directory opened for writing): say that, rather than the errno.
            let what = rustix::fs::stat(path)
                .ok()
                .and_then(|st| unmappable(FileType::from_raw_mode(st.st_mode)));
            Err(match what {
                Some(what) => not_mappable(what, Some(path)),
                None => Error::os(Op::Open, e).with_path(Some(path)),
            })
        }
    }
}
