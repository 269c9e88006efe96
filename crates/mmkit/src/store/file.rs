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
    crate::sys::retry(|| rustix::fs::flock(file, how)).map_err(|e| match e {
        Errno::WOULDBLOCK => Error::new(Op::Open, ErrorKind::Busy)
            .with_path(Some(path))
            .detail("another handle has this store open for writing (flock)")
            .hint("one writer at a time: close the other, or open this one read-only"),
        e => Error::os(Op::Open, e).with_path(Some(path)),
    })
}

/// The epoch a writer stamps into a store's header: this boot's id
/// (`/proc/sys/kernel/random/boot_id`), and the file's device and inode. State a header
/// keeps for live processes (a committed end that may claim bytes a power cut lost)
/// is trusted only by an opener that finds its own epoch there: the same boot, the same
/// file. An image restored, copied, or read after a reboot does not match.
///
/// When the boot id cannot be read the epoch holds zeros there, which never matches
/// ([`same_epoch`]).
pub(crate) fn epoch_of(file: &File) -> [u8; 32] {
    use std::os::unix::fs::MetadataExt;
    let mut out = [0u8; 32];
    out[..16].copy_from_slice(&boot_id());
    if let Ok(md) = file.metadata() {
        out[16..24].copy_from_slice(&md.dev().to_le_bytes());
        out[24..32].copy_from_slice(&md.ino().to_le_bytes());
    }
    out
}

/// Whether `stored` is `file`'s epoch now: same boot (a known one), same file.
pub(crate) fn same_epoch(stored: &[u8; 32], file: &File) -> bool {
    stored[..16] != [0u8; 16] && *stored == epoch_of(file)
}

/// This boot's id, 16 bytes; zeros when `/proc` does not tell.
fn boot_id() -> [u8; 16] {
    static ID: std::sync::OnceLock<[u8; 16]> = std::sync::OnceLock::new();
    *ID.get_or_init(|| {
        let text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
        parse_uuid(text.trim()).unwrap_or([0; 16])
    })
}

fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = text.bytes().filter(|&b| b != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epoch_names_this_boot_and_this_file() {
        assert_eq!(
            parse_uuid("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"),
            Some([
                0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2,
                0xe1, 0xf0
            ])
        );
        assert_eq!(parse_uuid("nope"), None);
        let dir = tempfile::tempdir().unwrap();
        let a = File::create(dir.path().join("a")).unwrap();
        let b = File::create(dir.path().join("b")).unwrap();
        let ea = epoch_of(&a);
        assert_eq!(same_epoch(&ea, &a), boot_id() != [0; 16]);
        assert!(!same_epoch(&ea, &b), "another inode");
        assert!(!same_epoch(&[0; 32], &a));
    }
}
