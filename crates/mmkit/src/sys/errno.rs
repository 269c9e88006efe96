//! Errno numbers by their C names, for matching the raw `i32` an [`crate::Error`] keeps;
//! the errno of a failed call ([`last_errno`]) or of an [`io::Error`] ([`errno_of`]); and
//! the one loop that retries a call a signal interrupted ([`retry`]).
//!
//! The values come from `rustix`'s [`Errno`] constants, so no `libc` path is needed above
//! `sys`. This file imports nothing of mmkit: the error type stands on it, not the other
//! way round.

use std::io;

use rustix::io::Errno;

/// The calling thread's `errno` after a failed libc call, as an [`Errno`] (`EIO` if it
/// has none).
pub(crate) fn last_errno() -> Errno {
    errno_of(&io::Error::last_os_error())
}

/// The errno an [`io::Error`] carries, `EIO` when it carries none: for the callers that
/// keep an errno rather than an [`crate::Error`] (`Error::io` makes one from it).
pub(crate) fn errno_of(e: &io::Error) -> Errno {
    Errno::from_io_error(e).unwrap_or(Errno::IO)
}

/// The errno's text without std's "(os error N)" suffix: `Invalid argument`.
pub(crate) fn errno_text(e: Errno) -> String {
    let text = io::Error::from(e).to_string();
    text.split(" (os error").next().unwrap_or(&text).to_string()
}

/// An error that can say "a signal interrupted the call" (`EINTR`).
pub(crate) trait Interrupted {
    /// Whether this is `EINTR`.
    fn interrupted(&self) -> bool;
}

impl Interrupted for Errno {
    fn interrupted(&self) -> bool {
        *self == Errno::INTR
    }
}

impl Interrupted for io::Error {
    fn interrupted(&self) -> bool {
        self.kind() == io::ErrorKind::Interrupted
    }
}

/// Call `f` until it does not fail with `EINTR`: the one `EINTR` retry loop of mmkit,
/// for a `rustix` call (`Result<T, Errno>`) or a `std` one (`io::Result<T>`).
///
/// <https://man7.org/linux/man-pages/man7/signal.7.html> ("Interruption of system calls")
#[doc(alias = "EINTR")]
pub(crate) fn retry<T, E: Interrupted>(mut f: impl FnMut() -> Result<T, E>) -> Result<T, E> {
    loop {
        match f() {
            Err(e) if e.interrupted() => continue,
            r => return r,
        }
    }
}

/// `EPERM`.
pub(crate) const EPERM: i32 = Errno::PERM.raw_os_error();
/// `ENOENT`.
pub(crate) const ENOENT: i32 = Errno::NOENT.raw_os_error();
/// `EBADF`.
pub(crate) const EBADF: i32 = Errno::BADF.raw_os_error();
/// `EAGAIN`.
pub(crate) const EAGAIN: i32 = Errno::AGAIN.raw_os_error();
/// `ENOMEM`.
pub(crate) const ENOMEM: i32 = Errno::NOMEM.raw_os_error();
/// `EACCES`.
pub(crate) const EACCES: i32 = Errno::ACCESS.raw_os_error();
/// `EFAULT`.
pub(crate) const EFAULT: i32 = Errno::FAULT.raw_os_error();
/// `EBUSY`.
pub(crate) const EBUSY: i32 = Errno::BUSY.raw_os_error();
/// `EEXIST`.
pub(crate) const EEXIST: i32 = Errno::EXIST.raw_os_error();
/// `ENODEV`.
pub(crate) const ENODEV: i32 = Errno::NODEV.raw_os_error();
/// `EISDIR`.
pub(crate) const EISDIR: i32 = Errno::ISDIR.raw_os_error();
/// `EINVAL`.
pub(crate) const EINVAL: i32 = Errno::INVAL.raw_os_error();
/// `ETXTBSY`.
pub(crate) const ETXTBSY: i32 = Errno::TXTBSY.raw_os_error();
/// `EFBIG`.
pub(crate) const EFBIG: i32 = Errno::FBIG.raw_os_error();
/// `ENOSPC`.
pub(crate) const ENOSPC: i32 = Errno::NOSPC.raw_os_error();
/// `ELOOP`.
pub(crate) const ELOOP: i32 = Errno::LOOP.raw_os_error();
/// `ESPIPE`.
pub(crate) const ESPIPE: i32 = Errno::SPIPE.raw_os_error();
/// `EOVERFLOW`.
pub(crate) const EOVERFLOW: i32 = Errno::OVERFLOW.raw_os_error();
/// `ENOSYS`.
pub(crate) const ENOSYS: i32 = Errno::NOSYS.raw_os_error();
/// `EOPNOTSUPP`.
pub(crate) const EOPNOTSUPP: i32 = Errno::OPNOTSUPP.raw_os_error();
/// `EIO`.
pub(crate) const EIO: i32 = Errno::IO.raw_os_error();
