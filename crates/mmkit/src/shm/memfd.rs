//! Sealed memfds: nameless shared memory whose size (and optionally contents) is frozen
//! by seals, passed to another process as a descriptor over a Unix socket.
//!
//! The sender builds a [`Memfd`], which seals it and returns a [`SealedSegment`]; the
//! receiver gets a [`ReceivedSegment`] and must [`verify`](ReceivedSegment::verify) the
//! seals and the size before it maps it — a peer could otherwise shrink it under the
//! receiver. Wraps
//! [`memfd_create(2)`](https://man7.org/linux/man-pages/man2/memfd_create.2.html),
//! `F_ADD_SEALS`/`F_GET_SEALS` of [`fcntl(2)`](https://man7.org/linux/man-pages/man2/fcntl.2.html)
//! and `SCM_RIGHTS` of [`unix(7)`](https://man7.org/linux/man-pages/man7/unix.7.html).

use std::fmt;
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::ops::BitOr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use rustix::fs::{MemfdFlags, SealFlags};
use rustix::io::Errno;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

use crate::error::{Error, ErrorKind, Op, Result};
use crate::map::{MapOptions, Mapping};
use crate::sys::errno::errno_text;
use crate::sys::errno_of;
use crate::sys::fs as sys;

/// A set of memfd seals (`F_SEAL_*`, see
/// [`memfd_create(2)`](https://man7.org/linux/man-pages/man2/memfd_create.2.html)).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Seals(u32);

impl Seals {
    /// No seals.
    pub const NONE: Seals = Seals(0);
    /// `F_SEAL_SEAL`: no further seals can be added.
    pub const SEAL: Seals = Seals(sys::F_SEAL_SEAL);
    /// `F_SEAL_SHRINK`: the size can never go down (no SIGBUS for a mapping).
    pub const SHRINK: Seals = Seals(sys::F_SEAL_SHRINK);
    /// `F_SEAL_GROW`: the size can never go up.
    pub const GROW: Seals = Seals(sys::F_SEAL_GROW);
    /// `F_SEAL_WRITE`: the contents can never change.
    pub const WRITE: Seals = Seals(sys::F_SEAL_WRITE);
    /// `F_SEAL_FUTURE_WRITE` (Linux 5.1): no new writable mappings or `write`s; mappings
    /// made before the seal may still write.
    pub const FUTURE_WRITE: Seals = Seals(sys::F_SEAL_FUTURE_WRITE);

    const NAMES: [(Seals, &'static str); 5] = [
        (Seals::SEAL, "F_SEAL_SEAL"),
        (Seals::SHRINK, "F_SEAL_SHRINK"),
        (Seals::GROW, "F_SEAL_GROW"),
        (Seals::WRITE, "F_SEAL_WRITE"),
        (Seals::FUTURE_WRITE, "F_SEAL_FUTURE_WRITE"),
    ];

    /// Whether every seal of `other` is in `self`.
    pub fn contains(self, other: Seals) -> bool {
        self.0 & other.0 == other.0
    }

    /// The seals of `self` that are not in `other`.
    pub fn without(self, other: Seals) -> Seals {
        Seals(self.0 & !other.0)
    }

    /// Whether there are none.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The raw `F_SEAL_*` bits.
    pub fn bits(self) -> u32 {
        self.0
    }

    fn from_rustix(s: SealFlags) -> Seals {
        Seals(s.bits())
    }

    fn to_rustix(self) -> SealFlags {
        SealFlags::from_bits_retain(self.0)
    }
}

impl BitOr for Seals {
    type Output = Seals;
    fn bitor(self, rhs: Seals) -> Seals {
        Seals(self.0 | rhs.0)
    }
}

/// `F_SEAL_SHRINK | F_SEAL_GROW`, or `(none)`.
impl fmt::Display for Seals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Seals::NAMES
            .iter()
            .filter(|(s, _)| self.contains(*s))
            .map(|(_, n)| *n)
            .collect();
        if names.is_empty() {
            write!(f, "(none)")
        } else {
            write!(f, "{}", names.join(" | "))
        }
    }
}

impl fmt::Debug for Seals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Seals({self})")
    }
}

/// A builder for a sealed memfd: create, size, fill, then seal.
///
/// Every segment it makes is sealed with `F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`, so
/// its size is fixed for good; [`seal_write`](Self::seal_write) or
/// [`seal_future_write`](Self::seal_future_write) freeze the contents too.
#[derive(Debug, Clone)]
pub struct Memfd {
    name: String,
    size: Option<u64>,
    write_seal: Seals,
}

impl Memfd {
    /// A memfd named `name` (shown in `/proc/PID/fd` as `memfd:NAME`; need not be unique).
    pub fn new(name: &str) -> Memfd {
        Memfd {
            name: name.to_string(),
            size: None,
            write_seal: Seals::NONE,
        }
    }

    /// The size in bytes (default: the length of the initial contents); the bytes past
    /// the contents are zero.
    pub fn size(&mut self, bytes: u64) -> &mut Self {
        self.size = Some(bytes);
        self
    }

    /// Also seal with `F_SEAL_WRITE`: nobody can change the contents again, and mappings
    /// of it lend safe slices ([`Mapping::sealed_slice`]).
    pub fn seal_write(&mut self) -> &mut Self {
        self.write_seal = Seals::WRITE;
        self
    }

    /// Also seal with `F_SEAL_FUTURE_WRITE`: no new writable mapping or `write` (Linux 5.1).
    pub fn seal_future_write(&mut self) -> &mut Self {
        self.write_seal = Seals::FUTURE_WRITE;
        self
    }

    /// Create the memfd:
    /// [`memfd_create(2)`](https://man7.org/linux/man-pages/man2/memfd_create.2.html) with
    /// `MFD_CLOEXEC | MFD_ALLOW_SEALING`, `ftruncate` to the size, `pwrite` the
    /// `contents` at offset 0, then `fcntl(F_ADD_SEALS)`.
    ///
    /// # Errors
    /// The contents are longer than the size (`EINVAL`), or a syscall failed.
    pub fn create(&self, contents: &[u8]) -> Result<SealedSegment> {
        let size = self.size.unwrap_or(contents.len() as u64);
        let path = PathBuf::from(format!("memfd:{}", self.name));
        let err = |e: Errno, what: &str| {
            Error::os(Op::Open, e)
                .with_path(Some(&path))
                .detail(format!("{what}: {}", errno_text(e)))
        };
        if contents.len() as u64 > size {
            return Err(Error::os(Op::Open, Errno::INVAL)
                .with_path(Some(&path))
                .detail(format!(
                    "{} bytes of contents do not fit a size of {size}",
                    contents.len()
                ))
                .hint("leave the size out, or make it at least the contents' length"));
        }
        let fd = rustix::fs::memfd_create(
            self.name.as_str(),
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )
        .map_err(|e| err(e, "memfd_create"))?;
        rustix::fs::ftruncate(&fd, size).map_err(|e| err(e, "ftruncate"))?;
        let file = std::fs::File::from(fd);
        file.write_all_at(contents, 0)
            .map_err(|e| err(errno_of(&e), "writing the contents"))?;
        let fd = OwnedFd::from(file);
        let seals = Seals::SHRINK | Seals::GROW | Seals::SEAL | self.write_seal;
        rustix::fs::fcntl_add_seals(&fd, seals.to_rustix()).map_err(|e| {
            err(e, "F_ADD_SEALS").hint(if self.write_seal == Seals::FUTURE_WRITE {
                "F_SEAL_FUTURE_WRITE needs Linux 5.1"
            } else {
                "the kernel refused the seals"
            })
        })?;
        Ok(SealedSegment { fd, size, seals })
    }
}

/// A memfd whose seals and size are known: made by [`Memfd::create`] or checked by
/// [`ReceivedSegment::verify`].
#[derive(Debug)]
pub struct SealedSegment {
    fd: OwnedFd,
    size: u64,
    seals: Seals,
}

impl SealedSegment {
    /// The size in bytes (fixed by the seals when they include shrink and grow).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The seals it carried when created or verified.
    pub fn seals(&self) -> Seals {
        self.seals
    }

    /// Map it shared: read-only when sealed against writes (`F_SEAL_WRITE` or
    /// `F_SEAL_FUTURE_WRITE`), read-write otherwise. Sealed against shrinking, it needs no
    /// SIGBUS guard; sealed against writing too, it lends [`Mapping::sealed_slice`].
    ///
    /// # Errors
    /// As [`MapOptions::map_fd`]; a size of 0 cannot be mapped.
    pub fn map(&self) -> Result<Mapping> {
        let mut opts = MapOptions::new();
        opts.shared();
        if !self.seals.contains(Seals::WRITE) && !self.seals.contains(Seals::FUTURE_WRITE) {
            opts.write();
        }
        opts.map_fd(self.fd.as_fd(), None)
    }

    /// Send the descriptor over `sock` (see [`send_fd`]).
    ///
    /// # Errors
    /// As [`send_fd`].
    pub fn send(&self, sock: &UnixStream) -> Result<()> {
        send_fd(sock, self.fd.as_fd())
    }

    /// The descriptor.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

impl AsFd for SealedSegment {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A descriptor received from another process, not yet trusted: call
/// [`verify`](Self::verify) before mapping it.
#[derive(Debug)]
pub struct ReceivedSegment {
    fd: OwnedFd,
}

impl ReceivedSegment {
    /// Wrap a received descriptor (from [`recv_fd`]).
    pub fn from_fd(fd: OwnedFd) -> ReceivedSegment {
        ReceivedSegment { fd }
    }

    /// Receive one descriptor from `sock` (see [`recv_fd`]).
    ///
    /// # Errors
    /// As [`recv_fd`].
    pub fn recv(sock: &UnixStream) -> Result<ReceivedSegment> {
        recv_fd(sock).map(ReceivedSegment::from_fd)
    }

    /// The seals it carries now (`fcntl(F_GET_SEALS)`).
    ///
    /// # Errors
    /// `Unsupported` when the descriptor is not a sealable file (not a memfd).
    pub fn seals(&self) -> Result<Seals> {
        rustix::fs::fcntl_get_seals(&self.fd)
            .map(Seals::from_rustix)
            .map_err(|e| {
                Error::new(Op::Open, ErrorKind::Unsupported)
                    .detail(format!(
                        "F_GET_SEALS failed ({}): the descriptor is not a sealable memfd",
                        errno_text(e)
                    ))
                    .hint("the sender must pass a memfd made with MFD_ALLOW_SEALING")
            })
    }

    /// Check that the descriptor is a regular file (a memfd) carrying at least `required`
    /// seals and exactly `expected_size` bytes, and only then trust it. `F_SEAL_WRITE`
    /// satisfies a required `F_SEAL_FUTURE_WRITE`. Ask for at least
    /// `Seals::SHRINK | Seals::GROW`: without them the size can change after the check.
    ///
    /// # Errors
    /// `Unsupported` naming the missing seals, or when the descriptor is not a memfd;
    /// `Layout` when the size differs.
    pub fn verify(self, required: Seals, expected_size: u64) -> Result<SealedSegment> {
        let st = rustix::fs::fstat(&self.fd).map_err(|e| Error::os(Op::Open, e))?;
        let is_reg = rustix::fs::FileType::from_raw_mode(st.st_mode).is_file();
        if !is_reg {
            return Err(Error::new(Op::Open, ErrorKind::Unsupported)
                .detail("the received descriptor is not a regular file (memfd)"));
        }
        let have = self.seals()?;
        let mut effective = have;
        if have.contains(Seals::WRITE) {
            effective = effective | Seals::FUTURE_WRITE;
        }
        let missing = required.without(effective);
        if !missing.is_empty() {
            return Err(Error::new(Op::Open, ErrorKind::Unsupported)
                .detail(format!(
                    "the received memfd lacks the seals {missing} (it has {have})"
                ))
                .hint("the sender must add them with fcntl(F_ADD_SEALS) before sending"));
        }
        let size = st.st_size as u64;
        if size != expected_size {
            return Err(Error::new(Op::Open, ErrorKind::Layout)
                .at(0, size)
                .detail(format!(
                    "the received memfd has {size} bytes, expected {expected_size}"
                )));
        }
        Ok(SealedSegment {
            fd: self.fd,
            size,
            seals: have,
        })
    }
}

/// Send `fd` over a Unix stream socket as `SCM_RIGHTS` ancillary data with one data byte:
/// [`sendmsg(2)`](https://man7.org/linux/man-pages/man2/sendmsg.2.html),
/// [`unix(7)`](https://man7.org/linux/man-pages/man7/unix.7.html).
///
/// # Errors
/// `EPIPE` when the peer closed, or another `sendmsg` failure.
pub fn send_fd(sock: &UnixStream, fd: BorrowedFd<'_>) -> Result<()> {
    let fds = [fd];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(Error::os(Op::Open, Errno::NOBUFS).detail("SCM_RIGHTS buffer too small"));
    }
    let iov = [IoSlice::new(&[0u8])];
    rustix::net::sendmsg(sock, &iov, &mut control, SendFlags::NOSIGNAL)
        .map_err(|e| {
            Error::os(Op::Open, e).detail(format!("sendmsg(SCM_RIGHTS) failed: {}", errno_text(e)))
        })
        .map(|_| ())
}

/// Receive one descriptor sent by [`send_fd`]:
/// [`recvmsg(2)`](https://man7.org/linux/man-pages/man2/recvmsg.2.html) with
/// `MSG_CMSG_CLOEXEC`. Extra descriptors in the same message are closed.
///
/// # Errors
/// The peer closed without sending, the message carried no descriptor, or it was
/// truncated (`MSG_CTRUNC`), or `recvmsg` failed.
pub fn recv_fd(sock: &UnixStream) -> Result<OwnedFd> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let msg = rustix::net::recvmsg(sock, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)
        .map_err(|e| Error::os(Op::Open, e).detail(format!("recvmsg failed: {}", errno_text(e))))?;
    let mut got: Option<OwnedFd> = None;
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = m {
            for fd in fds {
                // Keep the first; the rest are dropped (closed).
                got.get_or_insert(fd);
            }
        }
    }
    let fail =
        |why: &str| Err(Error::new(Op::Open, ErrorKind::Unsupported).detail(why.to_string()));
    if msg.bytes == 0 && got.is_none() {
        return fail("the peer closed the socket before sending a descriptor");
    }
    if msg.flags.contains(ReturnFlags::CTRUNC) {
        return fail(
            "the descriptor message was truncated (MSG_CTRUNC): more than one descriptor sent",
        );
    }
    match got {
        Some(fd) => Ok(fd),
        None => fail("the message carried no descriptor (SCM_RIGHTS)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_display_names_each() {
        assert_eq!(Seals::NONE.to_string(), "(none)");
        assert_eq!(
            (Seals::SHRINK | Seals::WRITE).to_string(),
            "F_SEAL_SHRINK | F_SEAL_WRITE"
        );
        let s = Seals::SHRINK | Seals::GROW;
        assert!(s.contains(Seals::GROW));
        assert_eq!(s.without(Seals::SHRINK), Seals::GROW);
    }
}
