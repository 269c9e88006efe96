//! File space for the stores: reserved with `fallocate` before it is mapped and written,
//! so that a full file system is an `Err(NoSpace)` at reservation time and never a
//! SIGBUS on a store to a mapped page.
//!
//! Wraps [`fallocate(2)`](https://man7.org/linux/man-pages/man2/fallocate.2.html)
//! (mode 0 to allocate and extend, `FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE` to free)
//! and [`fdatasync(2)`](https://man7.org/linux/man-pages/man2/fdatasync.2.html) through
//! rustix. A file system without `fallocate` (`EOPNOTSUPP`) gets zeros written with
//! `pwrite`, which allocates the blocks just as well, only slower.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use rustix::fs::FallocateFlags;
use rustix::io::Errno;

use crate::{Error, ErrorKind, Op, Result};

/// The hint every full-disk error of a store carries.
pub(crate) const NO_SPACE_HINT: &str =
    "free space on the file system: the store stays open and intact, and writes go on once there is room";

/// Allocate `[from, from + len)` of `file`, extending its size to cover the range.
///
/// # Errors
/// `NoSpace` when the file system cannot hold the range (`ENOSPC`, also `EDQUOT` and
/// `EFBIG`); `Os` for any other refusal.
pub(crate) fn reserve(file: &File, path: &Path, from: u64, len: u64) -> Result<()> {
    if len == 0 {
        return Ok(());
    }
    match crate::sys::retry(|| rustix::fs::fallocate(file, FallocateFlags::empty(), from, len)) {
        Ok(()) => Ok(()),
        Err(Errno::OPNOTSUPP | Errno::NOSYS) => write_zeros(file, path, from, len),
        Err(e) => Err(reserve_error(e, path, from, len)),
    }
}

/// Free the blocks of `[from, from + len)` without changing the file's size: the range
/// reads as zeros afterwards. Falls back to writing zeros where holes cannot be punched.
///
/// # Errors
/// As [`reserve`].
pub(crate) fn punch(file: &File, path: &Path, from: u64, len: u64) -> Result<()> {
    if len == 0 {
        return Ok(());
    }
    let flags = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
    match crate::sys::retry(|| rustix::fs::fallocate(file, flags, from, len)) {
        Ok(()) => Ok(()),
        Err(Errno::OPNOTSUPP | Errno::NOSYS) => write_zeros(file, path, from, len),
        Err(e) => Err(reserve_error(e, path, from, len)),
    }
}

/// `fdatasync(2)`: the file's data (and the metadata needed to read it) reach storage.
///
/// # Errors
/// `Os` with the kernel's errno (`EIO` when writeback failed).
pub(crate) fn sync_data(file: &File, path: &Path) -> Result<()> {
    crate::sys::retry(|| rustix::fs::fdatasync(file)).map_err(|e| {
        Error::os(Op::Sync, e)
            .with_path(Some(path))
            .detail(format!("fdatasync: {e}"))
    })
}

fn write_zeros(file: &File, path: &Path, from: u64, len: u64) -> Result<()> {
    const CHUNK: usize = 64 << 10;
    let zeros = vec![0u8; CHUNK];
    let mut at = from;
    let end = from
        .checked_add(len)
        .ok_or_else(|| Error::new(Op::Reserve, ErrorKind::LengthOverflow).with_path(Some(path)))?;
    while at < end {
        let n = usize::try_from(end - at).map_or(CHUNK, |left| left.min(CHUNK));
        file.write_all_at(&zeros[..n], at)
            .map_err(|e| reserve_error(crate::sys::errno_of(&e), path, from, len))?;
        at += n as u64;
    }
    Ok(())
}

fn reserve_error(e: Errno, path: &Path, from: u64, len: u64) -> Error {
    let full = matches!(e, Errno::NOSPC | Errno::DQUOT | Errno::FBIG);
    let err = if full {
        Error::new(Op::Reserve, ErrorKind::NoSpace)
            .detail(format!(
                "the file system cannot hold {len} more bytes ({e})"
            ))
            .hint(NO_SPACE_HINT)
    } else {
        Error::os(Op::Reserve, e)
    };
    err.with_path(Some(path)).at(from, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new empty file in a temporary directory (kept while the first value lives).
    fn scratch() -> (tempfile::TempDir, std::path::PathBuf, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        (dir, path, file)
    }

    #[test]
    fn reserve_extends_and_punch_zeroes() {
        let (_dir, path, file) = scratch();
        reserve(&file, &path, 0, 8192).unwrap();
        assert_eq!(file.metadata().unwrap().len(), 8192);
        file.write_all_at(&[7u8; 8192], 0).unwrap();
        punch(&file, &path, 0, 4096).unwrap();
        let mut buf = [1u8; 8192];
        file.read_exact_at(&mut buf, 0).unwrap();
        assert!(buf[..4096].iter().all(|&b| b == 0));
        assert!(buf[4096..].iter().all(|&b| b == 7));
        assert_eq!(
            file.metadata().unwrap().len(),
            8192,
            "punching keeps the size"
        );
    }

    #[test]
    fn an_impossible_reservation_is_no_space_or_too_big() {
        let (_dir, path, file) = scratch();
        let err = reserve(&file, &path, 0, 1 << 62).unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::NoSpace | ErrorKind::Os),
            "{err}"
        );
        assert_eq!(
            file.metadata().unwrap().len(),
            0,
            "a failed reservation leaves the size"
        );
    }
}
