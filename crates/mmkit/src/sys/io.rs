//! Descriptor I/O that `std` cannot express: `write(2)` from raw memory and `poll(2)`.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use rustix::io::Errno;

use super::last_errno;

/// `write(2)` of `len` bytes at `src` to `fd`; returns the bytes written.
///
/// For memory that may not be lent as a slice (a shared or file mapping): the kernel reads
/// it and reports a page it cannot read as `EFAULT` instead of raising a signal.
///
/// <https://man7.org/linux/man-pages/man2/write.2.html>
///
/// # Errors
/// `EFAULT` for memory the kernel cannot read, `EINTR`, `ENOSPC`, `EIO`, …
///
/// # Safety
/// `[src, src+len)` is mapped memory of the caller's (the kernel never writes it).
#[doc(alias = "write")]
pub(crate) unsafe fn write_raw(
    fd: BorrowedFd<'_>,
    src: *const u8,
    len: usize,
) -> std::io::Result<usize> {
    // SAFETY: forwarded from the caller; write(2) only reads the range.
    let rc = unsafe { libc::write(fd.as_raw_fd(), src.cast(), len) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

/// `poll(2)` for `POLLIN` on each of `fds`, without timeout; returns each one's `revents`.
///
/// <https://man7.org/linux/man-pages/man2/poll.2.html>
///
/// # Errors
/// `EINTR` when a signal interrupted the wait, `ENOMEM`.
#[doc(alias = "poll")]
pub(crate) fn poll_in<const N: usize>(fds: [RawFd; N]) -> Result<[i16; N], Errno> {
    let mut pfds = fds.map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    // SAFETY: `pfds` is an array of N initialised pollfd structures; an invalid
    // descriptor is reported in its `revents`, not undefined.
    let rc = unsafe { libc::poll(pfds.as_mut_ptr(), N as libc::nfds_t, -1) };
    if rc < 0 {
        return Err(last_errno());
    }
    Ok(pfds.map(|p| p.revents))
}
