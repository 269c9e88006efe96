//! Opening a path to map it, without ever waiting on it.
//!
//! A plain read-only `open(2)` of a FIFO blocks until some process opens it for writing,
//! so a FIFO handed to `map_path` (or `mmkit cat`) would hang instead of failing. Here
//! the open is `O_NONBLOCK` (a FIFO opens at once, a socket fails with `ENXIO`), the
//! descriptor's type is checked with `fstat` before anything else is done with it, and
//! only then is `O_NONBLOCK` cleared. `O_NOCTTY` keeps a terminal device from becoming
//! the controlling terminal. Nothing truncates here: a caller that cuts the file does so
//! after the check, on a regular file only.

use std::fs::File;
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags};

use crate::error::{Error, ErrorKind, Op, Result};

/// What a file type is, when it is a kind that can never be mapped.
pub(crate) fn unmappable(ft: FileType) -> Option<&'static str> {
    match ft {
        FileType::RegularFile | FileType::BlockDevice | FileType::CharacterDevice => None,
        FileType::Directory => Some("a directory"),
        FileType::Fifo => Some("a pipe (FIFO)"),
        FileType::Socket => Some("a socket"),
        _ => Some("not a regular file"),
    }
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
    let mut flags = OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    flags |= if write { OFlags::RDWR } else { OFlags::RDONLY };
    if create {
        flags |= OFlags::CREATE;
    }
    let open_err = |e| Error::os(Op::Open, e).with_path(Some(path));
    let fd = rustix::fs::open(path, flags, Mode::from_raw_mode(0o666)).map_err(|e| {
        // The open may fail because of what the path is (ENXIO for a socket, EISDIR for
        // a directory opened for writing): say that, rather than the errno.
        let what = rustix::fs::stat(path)
            .ok()
            .and_then(|st| unmappable(FileType::from_raw_mode(st.st_mode)));
        match what {
            Some(what) => not_mappable(what, Some(path)),
            None => open_err(e),
        }
    })?;
    let st = rustix::fs::fstat(&fd).map_err(open_err)?;
    if let Some(what) = unmappable(FileType::from_raw_mode(st.st_mode)) {
        return Err(not_mappable(what, Some(path)));
    }
    let now = rustix::fs::fcntl_getfl(&fd).map_err(open_err)?;
    rustix::fs::fcntl_setfl(&fd, now - OFlags::NONBLOCK).map_err(open_err)?;
    Ok(File::from(fd))
}
