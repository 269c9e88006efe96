//! Open-file-description locks: `fcntl(F_OFD_SETLK)`, `fcntl(F_OFD_GETLK)`, and a fresh
//! open file description of a file this process has open (`open("/proc/self/fd/N")`).
//!
//! An OFD lock belongs to an open file description, not to a process: the kernel drops
//! it when the last descriptor of that description closes, which a process's death
//! (`kill -9` included) does. It lives on the inode, so every process that opens the
//! file sees it, whatever PID namespace it is in; and nothing of it is written to the
//! file, so it never outlives the boot, nor applies to a copy of the file. mmkit uses
//! one-byte write locks far past any data (byte-range locks may lie past the end of the
//! file) as liveness tokens.
//!
//! <https://man7.org/linux/man-pages/man2/fcntl.2.html> ("Open file description locks")

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use rustix::io::Errno;

use super::errno::{last_errno, retry};

/// `fcntl(fd, F_OFD_SETLK, {F_WRLCK, byte, 1})`: take an exclusive lock on one byte
/// without waiting; `Ok(false)` when another open file description holds it.
///
/// <https://man7.org/linux/man-pages/man2/fcntl.2.html>
///
/// # Errors
/// `EBADF` when `fd` is not open for writing; `ENOLCK`; `EINVAL` for a byte past
/// `i64::MAX`.
#[doc(alias = "F_OFD_SETLK")]
pub(crate) fn ofd_try_lock(fd: BorrowedFd<'_>, byte: u64) -> Result<bool, Errno> {
    match ofd(fd, libc::F_OFD_SETLK, libc::F_WRLCK as i16, byte) {
        Ok(_) => Ok(true),
        Err(Errno::AGAIN | Errno::ACCESS) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `fcntl(fd, F_OFD_SETLK, {F_UNLCK, byte, 1})`: release this description's lock on
/// one byte (a no-op when it holds none).
///
/// <https://man7.org/linux/man-pages/man2/fcntl.2.html>
///
/// # Errors
/// `EBADF`, `EINVAL` as for [`ofd_try_lock`].
#[doc(alias = "F_OFD_SETLK")]
pub(crate) fn ofd_unlock(fd: BorrowedFd<'_>, byte: u64) -> Result<(), Errno> {
    ofd(fd, libc::F_OFD_SETLK, libc::F_UNLCK as i16, byte).map(|_| ())
}

/// `fcntl(fd, F_OFD_GETLK, {F_WRLCK, byte, 1})`: whether another open file description
/// holds a lock on the byte (this description's own locks never conflict, so they read
/// as free).
///
/// <https://man7.org/linux/man-pages/man2/fcntl.2.html>
///
/// # Errors
/// `EBADF`, `EINVAL`.
#[doc(alias = "F_OFD_GETLK")]
pub(crate) fn ofd_is_locked(fd: BorrowedFd<'_>, byte: u64) -> Result<bool, Errno> {
    ofd(fd, libc::F_OFD_GETLK, libc::F_WRLCK as i16, byte).map(|t| t != libc::F_UNLCK as i16)
}

/// One `fcntl` with a one-byte `struct flock` (`l_pid` 0, as OFD locks require); the
/// `l_type` the kernel left in it.
fn ofd(fd: BorrowedFd<'_>, cmd: i32, kind: i16, byte: u64) -> Result<i16, Errno> {
    let start = i64::try_from(byte).map_err(|_| Errno::INVAL)?;
    // SAFETY: an all-zero `flock` is valid (plain integers).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as i16;
    fl.l_start = start;
    fl.l_len = 1;
    retry(|| {
        // SAFETY: `fd` is open for the borrow; the kernel reads and (GETLK) writes the
        // `flock` we own, nothing else.
        let r = unsafe { libc::fcntl(fd.as_raw_fd(), cmd, &mut fl as *mut libc::flock) };
        if r == 0 {
            Ok(fl.l_type)
        } else {
            Err(last_errno())
        }
    })
}

/// A new open file description, read-write and close-on-exec, of the file `fd` refers
/// to: `open("/proc/self/fd/N", O_RDWR | O_CLOEXEC)`. Works for unlinked files and
/// memfds; needs `/proc` mounted.
///
/// <https://man7.org/linux/man-pages/man5/proc_pid_fd.5.html>
///
/// # Errors
/// `ENOENT` without `/proc`; `EACCES` when the file may not be opened for writing.
pub(crate) fn reopen_rw(fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    use rustix::fs::{Mode, OFlags};
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    rustix::fs::open(
        path.as_str(),
        OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
}
