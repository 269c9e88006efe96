//! Files: the one safe open of a path ([`open_regular`]), `cachestat(2)`, and the memfd
//! seal flags.
//!
//! # Opening without waiting
//!
//! A plain `open(2)` of a FIFO blocks until some process opens its other end, so a FIFO
//! put where a file was expected would hang the caller. [`open_regular`] opens with
//! `O_NONBLOCK` (a FIFO opens at once, a socket fails with `ENXIO`), checks the
//! descriptor's type with `fstat` before anything else is done with it, and only then
//! clears `O_NONBLOCK`; `O_CLOEXEC` keeps the descriptor out of children and `O_NOCTTY`
//! keeps a terminal from becoming the controlling terminal. Each caller says what it
//! wants in a [`Purpose`] and turns a [`Refusal`] into its own error.

use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use super::errno::{last_errno, retry};

/// The kinds of file an opener takes (anything else is a [`Refusal::Kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Takes {
    /// Regular files only.
    Regular,
    /// Regular files and block devices (what can be read at an offset and has a size).
    RegularOrBlock,
    /// What `mmap` takes: regular files, block and character devices.
    Mappable,
    /// Any kind: the caller checks the type itself.
    Any,
}

impl Takes {
    /// `None` when `ft` is taken, else what the file is, for a message: `"a directory"`,
    /// `"a pipe (FIFO)"`, `"a socket"`, `"not a regular file"`.
    pub(crate) fn refuses(self, ft: FileType) -> Option<&'static str> {
        let taken = match self {
            Takes::Regular => ft == FileType::RegularFile,
            Takes::RegularOrBlock => matches!(ft, FileType::RegularFile | FileType::BlockDevice),
            Takes::Mappable => matches!(
                ft,
                FileType::RegularFile | FileType::BlockDevice | FileType::CharacterDevice
            ),
            Takes::Any => true,
        };
        (!taken).then_some(match ft {
            FileType::Directory => "a directory",
            FileType::Fifo => "a pipe (FIFO)",
            FileType::Socket => "a socket",
            _ => "not a regular file",
        })
    }
}

/// Why a path is opened: how, and which kinds of file are taken.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Purpose {
    /// The access mode and any of `O_CREAT`, `O_EXCL`, `O_NOFOLLOW`; `O_NONBLOCK`,
    /// `O_CLOEXEC` and `O_NOCTTY` are always added.
    pub(crate) flags: OFlags,
    /// The mode of a file `O_CREAT` makes (less the umask).
    pub(crate) mode: Mode,
    /// Try `O_NOATIME` first (allowed to the file's owner or `CAP_FOWNER`; on `EPERM`
    /// the open is made without it), so reading does not write the inode.
    pub(crate) noatime: bool,
    /// The kinds of file taken.
    pub(crate) takes: Takes,
}

impl Purpose {
    /// Read (or read and write, when `write`) a file of the kinds `takes`.
    pub(crate) fn new(write: bool, takes: Takes) -> Purpose {
        Purpose {
            flags: if write { OFlags::RDWR } else { OFlags::RDONLY },
            mode: Mode::empty(),
            noatime: false,
            takes,
        }
    }
}

/// Why [`open_regular`] gave no file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The kernel refused `open`, `fstat` or `fcntl`.
    Os(Errno),
    /// The file is of a kind the purpose does not take; what it is, for a message (see
    /// [`Takes::refuses`]).
    Kind(&'static str),
}

/// Open `path` for `purpose` without ever waiting on it: `open(2)` with `O_NONBLOCK |
/// O_CLOEXEC | O_NOCTTY` (retried on `EINTR`), `fstat(2)` to refuse a kind the purpose
/// does not take, then `fcntl(F_SETFL)` to clear `O_NONBLOCK`. Returns the file and its
/// `stat`.
///
/// <https://man7.org/linux/man-pages/man2/open.2.html>
///
/// # Errors
/// [`Refusal::Kind`] for a file of a kind not taken (a FIFO, a directory, …);
/// [`Refusal::Os`] with the errno of the call that failed (`ENOENT`, `EACCES`, `ENXIO`
/// for a socket, `EISDIR` for a directory opened for writing, `ELOOP` for a symbolic link
/// under `O_NOFOLLOW`, …).
#[doc(alias = "open")]
pub(crate) fn open_regular(path: &Path, purpose: Purpose) -> Result<(File, Stat), Refusal> {
    let flags = purpose.flags | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let open = |flags| retry(|| rustix::fs::open(path, flags, purpose.mode));
    let fd = match purpose.noatime {
        true => match open(flags | OFlags::NOATIME) {
            Err(Errno::PERM) => open(flags),
            r => r,
        },
        false => open(flags),
    }
    .map_err(Refusal::Os)?;
    let st = rustix::fs::fstat(&fd).map_err(Refusal::Os)?;
    if let Some(what) = purpose.takes.refuses(FileType::from_raw_mode(st.st_mode)) {
        return Err(Refusal::Kind(what));
    }
    let now = rustix::fs::fcntl_getfl(&fd).map_err(Refusal::Os)?;
    rustix::fs::fcntl_setfl(&fd, now - OFlags::NONBLOCK).map_err(Refusal::Os)?;
    Ok((File::from(fd), st))
}

/// `F_SEAL_SEAL` (`fcntl(F_ADD_SEALS)`).
pub(crate) const F_SEAL_SEAL: u32 = libc::F_SEAL_SEAL as u32;
/// `F_SEAL_SHRINK`.
pub(crate) const F_SEAL_SHRINK: u32 = libc::F_SEAL_SHRINK as u32;
/// `F_SEAL_GROW`.
pub(crate) const F_SEAL_GROW: u32 = libc::F_SEAL_GROW as u32;
/// `F_SEAL_WRITE`.
pub(crate) const F_SEAL_WRITE: u32 = libc::F_SEAL_WRITE as u32;
/// `F_SEAL_FUTURE_WRITE` (Linux 5.1).
pub(crate) const F_SEAL_FUTURE_WRITE: u32 = libc::F_SEAL_FUTURE_WRITE as u32;

/// `struct cachestat_range`.
#[repr(C)]
struct Range {
    off: u64,
    len: u64,
}

/// `struct cachestat`: page counts of a file range.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct Cachestat {
    pub(crate) cache: u64,
    pub(crate) dirty: u64,
    pub(crate) writeback: u64,
    pub(crate) evicted: u64,
    pub(crate) recently_evicted: u64,
}

/// `cachestat(2)` on `len` bytes at `off` of `fd` (`len` 0: to the end).
///
/// <https://man7.org/linux/man-pages/man2/cachestat.2.html>
///
/// # Errors
/// `ENOSYS` before Linux 6.5; `EBADF` for a descriptor without a page cache.
pub(crate) fn cachestat(fd: BorrowedFd<'_>, off: u64, len: u64) -> Result<Cachestat, Errno> {
    const SYS_CACHESTAT: libc::c_long = 451;
    let range = Range { off, len };
    let mut raw = Cachestat::default();
    // SAFETY: the kernel reads `range` and writes `raw`, both live repr(C) structs of the
    // layout the syscall defines; flags must be 0.
    let rc = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            fd.as_raw_fd(),
            &range as *const Range,
            &mut raw as *mut Cachestat,
            0,
        )
    };
    if rc != 0 {
        return Err(last_errno());
    }
    Ok(raw)
}
