//! Opening a store's file: a regular file on a real file system, never a FIFO, device
//! or `/proc` file (whose "writes" would be commands to the kernel), locked against a
//! second writer.

use std::fs::File;
use std::path::Path;

use rustix::fs::{FileType, FlockOperation};
use rustix::io::Errno;

use crate::map::open::{not_mappable, open_for_map, unmappable};
use crate::{Error, ErrorKind, Op, Result};

const PROC_SUPER_MAGIC: i64 = 0x9fa0;
const SYSFS_MAGIC: i64 = 0x6265_6572;

/// Open `path` for a store: read-write (created when `create`) or read-only.
///
/// # Errors
/// `NotMappable` for anything but a regular file on a file system with pages (a FIFO, a
/// socket, a directory, a device, a `/proc` or `/sys` file); the errno of `open`
/// otherwise (`EACCES` for a read-only file opened for writing, with a hint).
pub(crate) fn open_store_file(path: &Path, write: bool, create: bool) -> Result<File> {
    let file = open_for_map(path, write, create).map_err(|e| {
        if e.errno() == Some(Errno::ACCESS.raw_os_error()) && write {
            e.hint("the file is not writable by this user: open it read-only to read its records")
        } else {
            e
        }
    })?;
    let st = rustix::fs::fstat(&file).map_err(|e| Error::os(Op::Open, e).with_path(Some(path)))?;
    let ft = FileType::from_raw_mode(st.st_mode);
    if ft != FileType::RegularFile {
        let what = unmappable(ft).unwrap_or("a device");
        return Err(not_mappable(what, Some(path))
            .detail(format!("a store lives in a regular file, not {what}"))
            .hint("name a regular file (it is created when missing)"));
    }
    let fs =
        rustix::fs::fstatfs(&file).map_err(|e| Error::os(Op::Open, e).with_path(Some(path)))?;
    if fs.f_type == PROC_SUPER_MAGIC || fs.f_type == SYSFS_MAGIC {
        return Err(not_mappable("a /proc or /sys file", Some(path))
            .detail("a store cannot live in /proc or /sys: their files are the kernel's, not data")
            .hint("name a file on a disk or tmpfs"));
    }
    Ok(file)
}

/// Take the writer's lock: `flock(LOCK_EX | LOCK_NB)` on the open file, released by the
/// kernel when the writer closes it or dies (also on `kill -9`).
///
/// # Errors
/// `Busy` when another open file description (another process, or another handle in
/// this one) holds it.
pub(crate) fn lock_writer(file: &File, path: &Path) -> Result<()> {
    lock(file, path, FlockOperation::NonBlockingLockExclusive)
}

/// Take a shared writer's lock: `flock(LOCK_SH | LOCK_NB)`, which any number of shared
/// writers hold at once (they take turns through a robust lock in the file's header)
/// and which keeps an exclusive writer out.
///
/// # Errors
/// `Busy` when an exclusive writer holds the file.
pub(crate) fn lock_shared_writer(file: &File, path: &Path) -> Result<()> {
    lock(file, path, FlockOperation::NonBlockingLockShared)
}

fn lock(file: &File, path: &Path, how: FlockOperation) -> Result<()> {
    loop {
        match rustix::fs::flock(file, how) {
            Ok(()) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(Errno::WOULDBLOCK) => {
                return Err(Error::new(Op::Open, ErrorKind::Busy)
                    .with_path(Some(path))
                    .detail("another handle has this store open for writing (flock)")
                    .hint("one writer at a time: close the other, or open this one read-only"))
            }
            Err(e) => return Err(Error::os(Op::Open, e).with_path(Some(path))),
        }
    }
}
