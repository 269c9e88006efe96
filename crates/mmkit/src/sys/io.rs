//! Descriptor I/O: `write(2)` from raw memory or a buffer to a borrowed descriptor, and
//! `poll(2)` for reading or writing.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use rustix::io::Errno;

use super::errno::last_errno;

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

/// `write(2)` of `buf` to `fd`; returns the bytes written.
///
/// <https://man7.org/linux/man-pages/man2/write.2.html>
///
/// # Errors
/// `EAGAIN` for a non-blocking descriptor that is full, `EINTR`, `EPIPE`, `ENOSPC`, `EIO`, …
pub(crate) fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> Result<usize, Errno> {
    rustix::io::write(fd, buf)
}

/// `poll(2)` for `POLLOUT` on `fd`, without timeout: returns once it can take data (or is
/// in error or hung up: the next write says which).
///
/// <https://man7.org/linux/man-pages/man2/poll.2.html>
///
/// # Errors
/// `EINTR` when a signal interrupted the wait, `ENOMEM`.
#[doc(alias = "poll")]
pub(crate) fn poll_out(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: `pfd` is one initialised pollfd structure; the kernel writes its `revents`.
    let rc = unsafe { libc::poll(&mut pfd, 1, -1) };
    if rc < 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// `pread(2)`: read up to `buf.len()` bytes of `fd` at `offset` into `buf`, without using
/// or moving the file position; returns the bytes read (0 at the end of the file).
///
/// <https://man7.org/linux/man-pages/man2/pread.2.html>
///
/// # Errors
/// `EISDIR`, `EINVAL` for a descriptor that cannot be read at an offset, `ESPIPE` for a
/// pipe or socket, `EINTR`, `EIO`, …
#[doc(alias = "pread64")]
pub(crate) fn pread(fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> Result<usize, Errno> {
    rustix::io::pread(fd, buf, offset)
}
