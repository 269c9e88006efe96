//! In-kernel copies: `sendfile(2)`, `splice(2)`, `copy_file_range(2)`, and the pipes
//! `splice` goes through (`pipe2(2)`, `fcntl(F_SETPIPE_SZ)`).
//!
//! Each moves bytes between two descriptors without passing them through this process's
//! memory. The source offsets are explicit (`&mut u64`, advanced by the bytes moved), so
//! the source's file position is never used or changed; the destination's is, as a
//! `write(2)` would.

use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::pipe::{PipeFlags, SpliceFlags};

/// `sendfile(2)`: up to `count` bytes of `src` at `*offset` to `dst`; advances `*offset`
/// and returns the bytes moved (0 at the end of `src`).
///
/// <https://man7.org/linux/man-pages/man2/sendfile.2.html>
///
/// # Errors
/// `EINVAL` when `src` cannot be read this way or `dst` cannot take it (an `O_APPEND`
/// file), `EAGAIN` for a non-blocking `dst` that is full, `EPIPE`, `EINTR`, `EIO`, …
#[doc(alias = "sendfile64")]
pub(crate) fn sendfile(
    dst: BorrowedFd<'_>,
    src: BorrowedFd<'_>,
    offset: &mut u64,
    count: usize,
) -> Result<usize, Errno> {
    rustix::fs::sendfile(dst, src, Some(offset), count)
}

/// `splice(2)` from a file at `*offset` into the pipe `pipe_in` (its write end); advances
/// `*offset` and returns the bytes moved (0 at the end of the file).
///
/// <https://man7.org/linux/man-pages/man2/splice.2.html>
///
/// # Errors
/// `EINVAL` when the file cannot be spliced from or `pipe_in` is not a pipe, `EAGAIN` for a
/// non-blocking pipe that is full, `EINTR`, `EIO`, …
pub(crate) fn splice_from_file(
    file: BorrowedFd<'_>,
    offset: &mut u64,
    pipe_in: BorrowedFd<'_>,
    count: usize,
) -> Result<usize, Errno> {
    rustix::pipe::splice(
        file,
        Some(offset),
        pipe_in,
        None,
        count,
        SpliceFlags::empty(),
    )
}

/// `splice(2)` from the pipe `pipe_out` (its read end) to `dst` at `dst`'s own position;
/// returns the bytes moved.
///
/// <https://man7.org/linux/man-pages/man2/splice.2.html>
///
/// # Errors
/// `EINVAL` when `dst` cannot take a splice (an `O_APPEND` file, a terminal), `EAGAIN` for a
/// non-blocking `dst` that is full, `EPIPE`, `EINTR`, …
pub(crate) fn splice_to(
    pipe_out: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    count: usize,
    more: bool,
) -> Result<usize, Errno> {
    let flags = if more {
        SpliceFlags::MORE
    } else {
        SpliceFlags::empty()
    };
    rustix::pipe::splice(pipe_out, None, dst, None, count, flags)
}

/// `copy_file_range(2)`: up to `len` bytes of the file `src` at `*offset` into the file
/// `dst` at `dst`'s own position; advances `*offset` and returns the bytes copied (0 at the
/// end of `src`).
///
/// <https://man7.org/linux/man-pages/man2/copy_file_range.2.html>
///
/// # Errors
/// `EINVAL` when either is not a regular file, `EXDEV` across file systems the kernel
/// will not copy between, `EBADF` for an `O_APPEND` destination, `EOPNOTSUPP`, `ENOSYS`
/// before Linux 4.5, `EINTR`, `ENOSPC`, …
pub(crate) fn copy_file_range(
    src: BorrowedFd<'_>,
    offset: &mut u64,
    dst: BorrowedFd<'_>,
    len: usize,
) -> Result<usize, Errno> {
    rustix::fs::copy_file_range(src, Some(offset), dst, None, len)
}

/// `pipe2(2)` with `O_CLOEXEC`: (read end, write end).
///
/// <https://man7.org/linux/man-pages/man2/pipe.2.html>
///
/// # Errors
/// `EMFILE`, `ENFILE`.
#[doc(alias = "pipe2")]
pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd), Errno> {
    rustix::pipe::pipe_with(PipeFlags::CLOEXEC)
}

/// `fcntl(F_SETPIPE_SZ)`: ask for a pipe buffer of `size` bytes; returns the size the
/// kernel gave (rounded up to a power-of-two number of pages).
///
/// <https://man7.org/linux/man-pages/man2/fcntl.2.html>
///
/// # Errors
/// `EPERM` above `/proc/sys/fs/pipe-max-size` (or the user's pipe pages) without
/// `CAP_SYS_RESOURCE`, `EBUSY` below the bytes the pipe holds, `EINVAL`.
#[doc(alias = "F_SETPIPE_SZ")]
pub(crate) fn set_pipe_size(fd: BorrowedFd<'_>, size: usize) -> Result<usize, Errno> {
    rustix::pipe::fcntl_setpipe_size(fd, size)
}

/// `fcntl(F_GETPIPE_SZ)`: the pipe's buffer size in bytes.
///
/// <https://man7.org/linux/man-pages/man2/fcntl.2.html>
///
/// # Errors
/// `EBADF`, `EINVAL` when `fd` is not a pipe.
#[doc(alias = "F_GETPIPE_SZ")]
pub(crate) fn pipe_size(fd: BorrowedFd<'_>) -> Result<usize, Errno> {
    rustix::pipe::fcntl_getpipe_size(fd)
}
