//! Files: `cachestat(2)`, and the `open(2)` and memfd seal flags mmkit passes through
//! `std`.

use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::io::Errno;

use super::errno::last_errno;

/// `O_NONBLOCK` for `OpenOptionsExt::custom_flags`.
pub(crate) const O_NONBLOCK: i32 = libc::O_NONBLOCK;
/// `O_CLOEXEC` for `OpenOptionsExt::custom_flags`.
pub(crate) const O_CLOEXEC: i32 = libc::O_CLOEXEC;
/// `O_NOATIME` for `OpenOptionsExt::custom_flags` (owner or `CAP_FOWNER` only).
pub(crate) const O_NOATIME: i32 = libc::O_NOATIME;

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
