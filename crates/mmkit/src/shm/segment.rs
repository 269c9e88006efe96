//! Shared-memory segments: named POSIX shared memory and sealed memfds passed over a
//! Unix socket.
//!
//! Three ways to share memory between processes:
//!
//! - **Named segments** ([`Segment`]): `shm_open` objects that any process knowing the
//!   name can open, Python's `multiprocessing.shared_memory.SharedMemory` included. On
//!   Linux they are files in the tmpfs at `/dev/shm`. Wraps
//!   [`shm_open(3)`](https://man7.org/linux/man-pages/man3/shm_open.3.html),
//!   [`shm_unlink(3)`](https://man7.org/linux/man-pages/man3/shm_unlink.3.html) and
//!   [`ftruncate(2)`](https://man7.org/linux/man-pages/man2/ftruncate.2.html).
//! - **Sealed memfds** ([`Memfd`], [`SealedSegment`], [`ReceivedSegment`]): nameless memory
//!   whose size (and optionally contents) is frozen by seals, passed to another process as
//!   a file descriptor over a Unix socket. The receiver checks the seals and the size
//!   before trusting it. Wraps
//!   [`memfd_create(2)`](https://man7.org/linux/man-pages/man2/memfd_create.2.html),
//!   `F_ADD_SEALS`/`F_GET_SEALS` of [`fcntl(2)`](https://man7.org/linux/man-pages/man2/fcntl.2.html)
//!   and `SCM_RIGHTS` of [`unix(7)`](https://man7.org/linux/man-pages/man7/unix.7.html)
//!   through [`sendmsg(2)`](https://man7.org/linux/man-pages/man2/sendmsg.2.html) /
//!   [`recvmsg(2)`](https://man7.org/linux/man-pages/man2/recvmsg.2.html).
//! - **Anonymous shared memory inherited across `fork`**: no name and no descriptor to
//!   pass; see [`MapOptions::map_anon_shared`](crate::MapOptions::map_anon_shared).
//!
//! A mapping of a segment is a [`Mapping`]: another process can write it at any time, so
//! it is read with copies (`read_at`) and atomic views (`atomic_u32s`), never borrowed
//! slices — except a memfd sealed against shrinking and writing, which lends
//! [`Mapping::sealed_slice`].
//!
//! ## Example
//!
//! ```
//! use mmkit::shm::segment::{recv_fd, Memfd, ReceivedSegment, Seals, Segment};
//!
//! // A named segment, as Python's SharedMemory(name=..., create=True, size=4096) makes.
//! let name = format!("mmkit-doc-{}", std::process::id());
//! let seg = Segment::create(&name, 4096)?;
//! seg.map()?.write_at(0, b"hello")?;
//! let other = Segment::open(&format!("/{name}"))?; // "/name" and "name" are the same
//! let mut buf = [0u8; 5];
//! other.map()?.read_at(0, &mut buf)?;
//! assert_eq!(&buf, b"hello");
//! Segment::unlink(&name)?;
//!
//! // A sealed memfd sent over a socket; the receiver verifies before mapping.
//! let (a, b) = std::os::unix::net::UnixStream::pair()?;
//! let sealed = Memfd::new("doc").seal_write().create(b"frozen bytes")?;
//! sealed.send(&a)?;
//! let got = ReceivedSegment::from_fd(recv_fd(&b)?)
//!     .verify(Seals::SHRINK | Seals::GROW | Seals::WRITE, 12)?;
//! assert_eq!(got.map()?.sealed_slice()?, b"frozen bytes");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::ops::BitOr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use rustix::fs::{MemfdFlags, Mode, SealFlags};
use rustix::io::Errno;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

use crate::error::{Error, ErrorKind, Op, Result};
use crate::map::{MapOptions, Mapping};

/// Where Linux keeps `shm_open` objects: a tmpfs, one regular file a segment.
pub const SHM_DIR: &str = "/dev/shm";

/// The longest segment name (without the leading `/`): `NAME_MAX`.
pub const NAME_MAX: usize = 255;

/// The errno's text without std's "(os error N)" suffix.
fn errno_text(e: Errno) -> String {
    let text = std::io::Error::from(e).to_string();
    text.split(" (os error").next().unwrap_or(&text).to_string()
}

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_io_error(e).unwrap_or(Errno::IO)
}

/// Check and normalize a segment name: `"abc"` and `"/abc"` both give `"abc"`.
fn normalize(name: &str) -> Result<&str> {
    let bad = |errno, why: String| {
        Err(Error::os(Op::Open, errno)
            .detail(format!("bad segment name {name:?}: {why}"))
            .hint("a segment name is one path component, like \"my-seg\" or \"/my-seg\""))
    };
    let short = name.strip_prefix('/').unwrap_or(name);
    if short.is_empty() {
        return bad(Errno::INVAL, "it is empty".into());
    }
    if short.contains('/') {
        return bad(
            Errno::INVAL,
            "it has a '/' after the first character".into(),
        );
    }
    if short.contains('\0') {
        return bad(Errno::INVAL, "it contains a NUL byte".into());
    }
    if short == "." || short == ".." {
        return bad(Errno::INVAL, "\".\" and \"..\" are not names".into());
    }
    if short.len() > NAME_MAX {
        return bad(
            Errno::NAMETOOLONG,
            format!("{} bytes, longer than {NAME_MAX}", short.len()),
        );
    }
    Ok(short)
}

fn shm_path(short: &str) -> PathBuf {
    PathBuf::from(SHM_DIR).join(short)
}

/// An error of a syscall on the segment named `short`, with a hint for the common errnos.
fn seg_err(errno: Errno, short: &str, what: &str) -> Error {
    let path = shm_path(short);
    let hint = match errno {
        Errno::EXIST => Some(format!(
            "open it with Segment::open, use SegmentOptions::open_or_create, or unlink it first \
             (Segment::unlink(\"{short}\") or rm {})",
            path.display()
        )),
        Errno::NOENT => Some(format!(
            "no segment /{short} exists; create it first (ls {SHM_DIR} lists the segments)"
        )),
        Errno::ACCESS => Some(format!(
            "the segment's mode or owner forbids this; check `ls -l {}`",
            path.display()
        )),
        _ => None,
    };
    let err = Error::os(Op::Open, errno)
        .with_path(Some(&path))
        .detail(format!("{what}: {}", errno_text(errno)));
    match hint {
        Some(h) => err.hint(h),
        None => err,
    }
}

/// Options for creating a named segment: its mode and whether an existing one is opened.
///
/// ```
/// use mmkit::shm::segment::SegmentOptions;
/// let name = format!("mmkit-opts-{}", std::process::id());
/// let seg = SegmentOptions::new().mode(0o600).open_or_create().create(&name, 4096)?;
/// assert!(seg.created());
/// mmkit::shm::segment::Segment::unlink(&name)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct SegmentOptions {
    mode: u32,
    open_or_create: bool,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        SegmentOptions::new()
    }
}

impl SegmentOptions {
    /// Defaults: mode `0o600` (as Python's `SharedMemory`), fail if the name exists.
    pub fn new() -> SegmentOptions {
        SegmentOptions {
            mode: 0o600,
            open_or_create: false,
        }
    }

    /// Permission bits of a new segment (the process umask still clears bits, as for
    /// `open(2)`).
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode;
        self
    }

    /// Open the segment if it already exists (keeping its size) instead of failing with
    /// `EEXIST`. [`Segment::created`] tells which happened.
    pub fn open_or_create(&mut self) -> &mut Self {
        self.open_or_create = true;
        self
    }

    /// Create the segment `name` (`"name"` or `"/name"`) with `size` bytes, zero-filled.
    ///
    /// `shm_open(O_CREAT | O_EXCL | O_RDWR)` then `ftruncate`. If the size cannot be set,
    /// the new name is unlinked again.
    ///
    /// # Errors
    /// `EEXIST` when it exists (and `open_or_create` was not asked), `EACCES`, `EINVAL` /
    /// `ENAMETOOLONG` for a bad name, `ENOSPC`/`ENOMEM` from `ftruncate`.
    pub fn create(&self, name: &str, size: u64) -> Result<Segment> {
        let short = normalize(name)?;
        let excl = rustix::shm::OFlags::CREATE | rustix::shm::OFlags::EXCL;
        let mode = Mode::from_bits_truncate(self.mode);
        loop {
            match rustix::shm::open(short, excl | rustix::shm::OFlags::RDWR, mode) {
                Ok(fd) => {
                    if let Err(e) = rustix::fs::ftruncate(&fd, size) {
                        let _ = rustix::shm::unlink(short);
                        return Err(seg_err(e, short, "cannot set the size").at(0, size));
                    }
                    return Ok(Segment {
                        fd,
                        name: short.to_string(),
                        created: true,
                    });
                }
                Err(Errno::EXIST) if self.open_or_create => match open_rw(short) {
                    Ok(mut seg) => {
                        seg.created = false;
                        return Ok(seg);
                    }
                    // Unlinked between the two calls: try creating again.
                    Err(e) if e.errno() == Some(libc::ENOENT) => continue,
                    Err(e) => return Err(e),
                },
                Err(e) => return Err(seg_err(e, short, "cannot create the segment")),
            }
        }
    }
}

fn open_rw(short: &str) -> Result<Segment> {
    let fd = rustix::shm::open(short, rustix::shm::OFlags::RDWR, Mode::empty())
        .map_err(|e| seg_err(e, short, "cannot open the segment"))?;
    Ok(Segment {
        fd,
        name: short.to_string(),
        created: false,
    })
}

/// A named POSIX shared-memory segment, open read-write.
///
/// Closing it (drop) does not remove the name: call [`Segment::unlink`], as with Python's
/// `SharedMemory.unlink()`.
#[derive(Debug)]
pub struct Segment {
    fd: OwnedFd,
    name: String,
    created: bool,
}

impl Segment {
    /// Create a new segment of `size` bytes, mode `0o600`; fails if the name exists. See
    /// [`SegmentOptions::create`].
    pub fn create(name: &str, size: u64) -> Result<Segment> {
        SegmentOptions::new().create(name, size)
    }

    /// Open an existing segment read-write:
    /// [`shm_open(3)`](https://man7.org/linux/man-pages/man3/shm_open.3.html) with `O_RDWR`.
    ///
    /// # Errors
    /// `ENOENT` when there is none, `EACCES` when its mode forbids it, `EINVAL` /
    /// `ENAMETOOLONG` for a bad name.
    pub fn open(name: &str) -> Result<Segment> {
        open_rw(normalize(name)?)
    }

    /// Remove the name:
    /// [`shm_unlink(3)`](https://man7.org/linux/man-pages/man3/shm_unlink.3.html). Open
    /// descriptors and mappings stay valid; the memory is freed when the last goes.
    ///
    /// # Errors
    /// `ENOENT` when there is none, `EACCES` when not allowed.
    pub fn unlink(name: &str) -> Result<()> {
        let short = normalize(name)?;
        rustix::shm::unlink(short).map_err(|e| seg_err(e, short, "cannot unlink the segment"))
    }

    /// The names of the segments that exist now, sorted, without the leading `/`: the
    /// regular files in `/dev/shm`, the tmpfs where Linux's `shm_open` keeps them (glibc
    /// and musl both use it). Directories and other file types there are skipped; POSIX
    /// named semaphores (`sem.NAME`) are regular files there too and are listed.
    ///
    /// # Errors
    /// Reading the directory failed.
    pub fn list() -> Result<Vec<String>> {
        let dir_err = |e: &std::io::Error| {
            Error::os(Op::Open, io_errno(e))
                .with_path(Some(std::path::Path::new(SHM_DIR)))
                .detail(format!("cannot list segments: {e}"))
        };
        let mut names = Vec::new();
        for entry in std::fs::read_dir(SHM_DIR).map_err(|e| dir_err(&e))? {
            let entry = entry.map_err(|e| dir_err(&e))?;
            let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
            if let (true, Some(name)) = (is_file, entry.file_name().to_str()) {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// The name without the leading `/` (as Python's `SharedMemory.name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file behind the segment: `/dev/shm/NAME`.
    pub fn path(&self) -> PathBuf {
        shm_path(&self.name)
    }

    /// Whether this handle created the segment (false when
    /// [`open_or_create`](SegmentOptions::open_or_create) or [`open`](Segment::open) found it).
    pub fn created(&self) -> bool {
        self.created
    }

    /// The current size in bytes, from
    /// [`fstat(2)`](https://man7.org/linux/man-pages/man2/fstat.2.html).
    ///
    /// # Errors
    /// `fstat` failed.
    pub fn size(&self) -> Result<u64> {
        let st = rustix::fs::fstat(&self.fd).map_err(|e| seg_err(e, &self.name, "fstat"))?;
        Ok(st.st_size as u64)
    }

    /// Map the whole segment shared and read-write (`MAP_SHARED`, `PROT_READ|PROT_WRITE`).
    /// Another process may shrink it, so reads are guarded: a truncated segment gives
    /// `Err(Truncated)`, not SIGBUS.
    ///
    /// # Errors
    /// As [`MapOptions::map_fd`]; a segment of size 0 cannot be mapped.
    pub fn map(&self) -> Result<Mapping> {
        MapOptions::new()
            .write()
            .shared()
            .map_fd(self.fd.as_fd(), Some(self.path()))
    }

    /// The descriptor, e.g. to pass it with [`send_fd`].
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

impl AsFd for Segment {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A set of memfd seals (`F_SEAL_*`, see
/// [`memfd_create(2)`](https://man7.org/linux/man-pages/man2/memfd_create.2.html)).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Seals(u32);

impl Seals {
    /// No seals.
    pub const NONE: Seals = Seals(0);
    /// `F_SEAL_SEAL`: no further seals can be added.
    pub const SEAL: Seals = Seals(libc::F_SEAL_SEAL as u32);
    /// `F_SEAL_SHRINK`: the size can never go down (no SIGBUS for a mapping).
    pub const SHRINK: Seals = Seals(libc::F_SEAL_SHRINK as u32);
    /// `F_SEAL_GROW`: the size can never go up.
    pub const GROW: Seals = Seals(libc::F_SEAL_GROW as u32);
    /// `F_SEAL_WRITE`: the contents can never change.
    pub const WRITE: Seals = Seals(libc::F_SEAL_WRITE as u32);
    /// `F_SEAL_FUTURE_WRITE` (Linux 5.1): no new writable mappings or `write`s; mappings
    /// made before the seal may still write.
    pub const FUTURE_WRITE: Seals = Seals(libc::F_SEAL_FUTURE_WRITE as u32);

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
            .map_err(|e| err(io_errno(&e), "writing the contents"))?;
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
    fn names_normalize_like_python() {
        assert_eq!(normalize("abc").unwrap(), "abc");
        assert_eq!(normalize("/abc").unwrap(), "abc");
        for bad in ["", "/", "a/b", "/a/b", "//a", ".", "/.."] {
            let e = normalize(bad).unwrap_err();
            assert_eq!(e.errno(), Some(libc::EINVAL), "{bad:?}: {e}");
            assert!(e.to_string().contains("bad segment name"), "{e}");
        }
        let long = "x".repeat(NAME_MAX + 1);
        assert_eq!(
            normalize(&long).unwrap_err().errno(),
            Some(libc::ENAMETOOLONG)
        );
        assert!(normalize(&"x".repeat(NAME_MAX)).is_ok());
    }

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
