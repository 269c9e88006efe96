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
//! - **Sealed memfds** ([`Memfd`](super::Memfd), [`SealedSegment`](super::SealedSegment),
//!   [`ReceivedSegment`](super::ReceivedSegment)): nameless memory
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
//! ## Resizing a segment that others have mapped
//!
//! [`Segment::resize`] sets a new size with `ftruncate`. Nothing tells the peers: each
//! mapping keeps the length it was made or last remapped with. The rule:
//!
//! - **Grow.** Peers keep working on the old range. To reach the new bytes a peer reads
//!   the size with [`Segment::size`] (`fstat` on its own descriptor) and calls
//!   [`Mapping::remap`] with it (`RemapMode::MayMove`). Until then an access past its
//!   old length is `Err(OutOfRange)`.
//! - **Shrink.** A peer touching a page past the new end would get SIGBUS; mmkit's guard
//!   turns that into `Err(Truncated)` (the lost pages are replaced and remembered, so
//!   later accesses to them fail at once, and no crash happens). On `Truncated` the peer
//!   reads [`Segment::size`] and remaps to it, then carries on inside the new size.
//! - **How peers learn of a change** other than by an error: keep a size or generation
//!   word in a header the resizer updates — after `ftruncate` for a grow, before it for
//!   a shrink (and shrink only once peers can take `Truncated`) — and have peers compare
//!   it with what they mapped, e.g. before each batch of work.
//! - For this reason lasting atomic views and `&T` are refused on segments (a shrink
//!   cannot be guarded under a borrow); use copies, or
//!   [`Shared::with`](super::typed::Shared::with), which runs under the guard.
//!
//! ## Example
//!
//! ```
//! use mmkit::shm::{recv_fd, Memfd, ReceivedSegment, Seals, Segment};
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

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Error, ErrorKind, Op, Result};
use crate::map::{MapOptions, Mapping};

mod name;

use name::{file_kind, normalize, open_name, seg_err, shm_entries, shm_path};

/// Where Linux keeps `shm_open` objects: a tmpfs, one regular file a segment.
pub const SHM_DIR: &str = "/dev/shm";

/// The longest segment name (without the leading `/`): `NAME_MAX`.
pub const NAME_MAX: usize = 255;

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
    /// `shm_open(O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW)`, an exclusive
    /// [`flock(2)`](https://man7.org/linux/man-pages/man2/flock.2.html) on the new
    /// descriptor, then `ftruncate`, then the lock is let go. If the size cannot be set,
    /// the new name is unlinked again.
    ///
    /// # Zero-length segments
    ///
    /// Between `shm_open` and `ftruncate` a new segment has 0 bytes. The creator holds
    /// the lock over that window, so with
    /// [`open_or_create`](Self::open_or_create) an opener that finds 0 bytes takes the
    /// lock without waiting: busy means a live creator is sizing it (the opener waits
    /// for it, microseconds); free means the creator died before sizing it (the lock
    /// went with its descriptors), and the opener sizes the segment itself, at once.
    /// Sizing is grow-only under the lock, so nobody's mapping is shrunk: a creator whose
    /// segment was sized by an opener in the instant before it took the lock keeps the
    /// name and `created() == true`, and grows the segment to its size if it is smaller.
    /// An opener that sized a dead creator's segment reports `created() == false`; use
    /// [`Shared`](super::typed::Shared) when contents need initialising exactly once.
    /// (Creators that take no lock, such as Python's `SharedMemory`, can still be sized
    /// first by an opener in their window; their own `ftruncate` then sets their size.)
    ///
    /// # Errors
    /// `EEXIST` when it exists (and `open_or_create` was not asked), `ELOOP` when the
    /// name is a symbolic link (never followed), `EACCES`, `EINVAL` / `ENAMETOOLONG` for
    /// a bad name, `ENOSPC`/`ENOMEM` from `ftruncate`, `EWOULDBLOCK` when another process
    /// holds the sizing lock of a zero-length segment for more than 10 s.
    pub fn create(&self, name: &str, size: u64) -> Result<Segment> {
        self.create_pausing(name, size, |_| {})
    }

    /// [`create`](Self::create) that calls `pause("opened")` right after `shm_open` made
    /// the name and `pause("locked")` once the sizing lock is held, before `ftruncate`:
    /// a test stops or kills the creator there. Not part of the API.
    #[doc(hidden)]
    pub fn create_pausing(
        &self,
        name: &str,
        size: u64,
        mut pause: impl FnMut(&'static str),
    ) -> Result<Segment> {
        let short = normalize(name)?;
        let excl = OFlags::CREATE | OFlags::EXCL | OFlags::RDWR;
        let mode = Mode::from_bits_truncate(self.mode);
        loop {
            match open_name(short, excl, mode) {
                Ok(fd) => {
                    pause("opened");
                    let sized = lock_sizing(&fd, short).and_then(|()| {
                        pause("locked");
                        grow_to(&fd, short, size)
                    });
                    if let Err(e) = sized {
                        let _ = rustix::shm::unlink(short);
                        return Err(e);
                    }
                    unlock_sizing(&fd);
                    return Ok(Segment {
                        fd,
                        name: short.to_string(),
                        created: true,
                        writable: true,
                    });
                }
                Err(Errno::EXIST) if self.open_or_create => match open_rw(short) {
                    Ok(seg) => {
                        seg.size_if_empty(size)?;
                        return Ok(seg);
                    }
                    // Unlinked between the two calls: try creating again.
                    Err(e) if e.errno() == Some(Errno::NOENT.raw_os_error()) => continue,
                    Err(e) => return Err(e),
                },
                Err(e) => return Err(seg_err(e, short, "cannot create the segment")),
            }
        }
    }
}

/// How long an opener waits for a live process holding the sizing lock of a
/// zero-length segment (a creator holds it for one `ftruncate`).
const SIZING_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Take the exclusive sizing lock (`flock(LOCK_EX | LOCK_NB)`, retried with short naps
/// while a live process holds it, up to [`SIZING_LOCK_WAIT`]).
fn lock_sizing(fd: &OwnedFd, short: &str) -> Result<()> {
    use rustix::fs::FlockOperation;
    let deadline = std::time::Instant::now() + SIZING_LOCK_WAIT;
    let mut nap = std::time::Duration::from_micros(100);
    loop {
        match crate::sys::retry(|| rustix::fs::flock(fd, FlockOperation::NonBlockingLockExclusive)) {
            Ok(()) => return Ok(()),
            Err(Errno::WOULDBLOCK) if std::time::Instant::now() < deadline => {
                std::thread::sleep(nap);
                nap = (nap * 2).min(std::time::Duration::from_millis(10));
            }
            Err(Errno::WOULDBLOCK) => {
                return Err(Error::os(Op::Open, Errno::WOULDBLOCK)
                    .with_path(Some(&shm_path(short)))
                    .detail(format!(
                        "segment /{short} has 0 bytes and another process has held its sizing \
                         lock (flock) for {SIZING_LOCK_WAIT:?}"
                    ))
                    .hint(format!(
                        "`grep FLOCK /proc/locks` names the holder; if the segment is not \
                         wanted, remove it with Segment::unlink(\"{short}\") or `mmkit shm rm {short}`"
                    )))
            }
            Err(e) => return Err(seg_err(e, short, "cannot lock the segment to size it")),
        }
    }
}

fn unlock_sizing(fd: &OwnedFd) {
    let _ = rustix::fs::flock(fd, rustix::fs::FlockOperation::Unlock);
}

/// Under the sizing lock: grow the segment to `size` bytes if it is smaller (never
/// shrink: a peer may have mapped what another process sized).
fn grow_to(fd: &OwnedFd, short: &str, size: u64) -> Result<()> {
    let now = rustix::fs::fstat(fd)
        .map_err(|e| seg_err(e, short, "fstat"))?
        .st_size as u64;
    if now < size {
        rustix::fs::ftruncate(fd, size)
            .map_err(|e| seg_err(e, short, "cannot set the size").at(0, size))?;
    }
    Ok(())
}

fn open_rw(short: &str) -> Result<Segment> {
    open_with(short, OFlags::RDWR)
}

fn open_with(short: &str, flags: OFlags) -> Result<Segment> {
    let fd = open_name(short, flags, Mode::empty())
        .map_err(|e| seg_err(e, short, "cannot open the segment"))?;
    let seg = Segment {
        fd,
        name: short.to_string(),
        created: false,
        writable: flags.contains(OFlags::RDWR),
    };
    seg.check_regular()?;
    Ok(seg)
}

/// A named POSIX shared-memory segment, open read-write (or read-only, with
/// [`Segment::open_read_only`]).
///
/// Closing it (drop) does not remove the name: call [`Segment::unlink`], as with Python's
/// `SharedMemory.unlink()`.
#[derive(Debug)]
pub struct Segment {
    fd: OwnedFd,
    name: String,
    created: bool,
    /// Opened `O_RDWR` (else `O_RDONLY`, by [`Segment::open_read_only`]).
    writable: bool,
}

impl Segment {
    /// Create a new segment of `size` bytes, mode `0o600`; fails if the name exists. See
    /// [`SegmentOptions::create`].
    pub fn create(name: &str, size: u64) -> Result<Segment> {
        SegmentOptions::new().create(name, size)
    }

    /// Open an existing segment read-write:
    /// [`shm_open(3)`](https://man7.org/linux/man-pages/man3/shm_open.3.html) with `O_RDWR`
    /// (and `O_NOFOLLOW`, as glibc: a symbolic link planted under the name in the
    /// world-writable `/dev/shm` is refused, never followed).
    ///
    /// # Errors
    /// `ENOENT` when there is none, `EACCES` when its mode forbids it, `ELOOP` when the
    /// name is a symbolic link, `NotMappable` when it is not a regular file (a FIFO or a
    /// directory), `EINVAL` / `ENAMETOOLONG` for a bad name.
    pub fn open(name: &str) -> Result<Segment> {
        open_rw(normalize(name)?)
    }

    /// Open an existing segment read-only: `shm_open(3)` with `O_RDONLY`. Its mapping is
    /// read-only too; enough permission to read is enough.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_read_only(name: &str) -> Result<Segment> {
        open_with(normalize(name)?, OFlags::RDONLY)
    }

    /// Remove the name:
    /// [`shm_unlink(3)`](https://man7.org/linux/man-pages/man3/shm_unlink.3.html). Open
    /// descriptors and mappings stay valid; the memory is freed when the last goes.
    ///
    /// A symbolic link under the name is removed itself (`unlink(2)` never follows the
    /// last component), never its target.
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
        Ok(shm_entries()?
            .into_iter()
            .filter(|(_, ft)| *ft == Some(FileType::RegularFile))
            .map(|(name, _)| name)
            .collect())
    }

    /// The entries of `/dev/shm` that are not segments, sorted, each with what it is
    /// ("a symbolic link", "a directory", "a FIFO", ...). Read with `lstat` semantics:
    /// a symbolic link is reported as one, never followed. A link here named like a
    /// segment is worth a look: nobody needs one, and segments refuse to follow it.
    ///
    /// # Errors
    /// Reading the directory failed.
    pub fn list_others() -> Result<Vec<(String, &'static str)>> {
        Ok(shm_entries()?
            .into_iter()
            .filter(|(_, ft)| *ft != Some(FileType::RegularFile))
            .map(|(name, ft)| (name, ft.map_or("an entry of unknown kind", file_kind)))
            .collect())
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

    /// Set the size to `new_size` bytes:
    /// [`ftruncate(2)`](https://man7.org/linux/man-pages/man2/ftruncate.2.html). New
    /// bytes read as zero. Peers that mapped the segment must remap; see
    /// [resizing](self#resizing-a-segment-that-others-have-mapped).
    ///
    /// ```
    /// use mmkit::shm::segment::Segment;
    /// let name = format!("mmkit-resize-doc-{}", std::process::id());
    /// let seg = Segment::create(&name, 4096)?;
    /// let mut map = seg.map()?;
    /// seg.resize(3 * 4096)?;
    /// map.remap(seg.size()? as usize, mmkit::RemapMode::MayMove)?;
    /// map.write_at(8192, b"grown")?;
    /// Segment::unlink(&name)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// `EFBIG`/`EINVAL` for a size the file system refuses, `ENOSPC`/`ENOMEM` when the
    /// tmpfs is full.
    #[doc(alias = "ftruncate")]
    pub fn resize(&self, new_size: u64) -> Result<()> {
        rustix::fs::ftruncate(&self.fd, new_size)
            .map_err(|e| seg_err(e, &self.name, "cannot set the size").at(0, new_size))
    }

    /// Map the whole segment shared and read-write (`MAP_SHARED`, `PROT_READ|PROT_WRITE`;
    /// read-only for a segment opened with [`open_read_only`](Self::open_read_only)).
    /// Another process may shrink it, so reads are guarded: a truncated segment gives
    /// `Err(Truncated)`, not SIGBUS.
    ///
    /// # Errors
    /// As [`MapOptions::map_fd`]; a segment of size 0 cannot be mapped.
    pub fn map(&self) -> Result<Mapping> {
        if self.size()? == 0 {
            return Err(Error::new(Op::Map, ErrorKind::Unsupported)
                .with_path(Some(&self.path()))
                .detail(format!(
                    "segment /{} has 0 bytes: its creator has not sized it yet, or died \
                     before it did",
                    self.name
                ))
                .hint(format!(
                    "SegmentOptions::open_or_create sizes an empty segment; or remove it with \
                     Segment::unlink(\"{0}\") or `mmkit shm rm {0}`",
                    self.name
                )));
        }
        let mut opts = MapOptions::new();
        if self.writable {
            opts.write();
        }
        opts.shared().map_fd(self.fd.as_fd(), Some(self.path()))
    }

    /// Refuse a name that is not a regular file (a FIFO, a directory or a socket
    /// someone put in `/dev/shm`): it is no segment.
    fn check_regular(&self) -> Result<()> {
        let st = rustix::fs::fstat(&self.fd).map_err(|e| seg_err(e, &self.name, "fstat"))?;
        let ft = FileType::from_raw_mode(st.st_mode);
        if ft == FileType::RegularFile {
            return Ok(());
        }
        Err(Error::new(Op::Open, ErrorKind::NotMappable)
            .with_path(Some(&self.path()))
            .detail(format!(
                "/{} is {}, not a shared-memory segment (a regular file)",
                self.name,
                file_kind(ft)
            ))
            .hint(format!(
                "check `ls -l {}`; remove it if it is not wanted",
                self.path().display()
            )))
    }

    /// For `open_or_create` on a name that exists: a zero-length segment is sized to
    /// `size` under the sizing lock (see [`SegmentOptions::create`]).
    fn size_if_empty(&self, size: u64) -> Result<()> {
        if self.size()? != 0 {
            return Ok(());
        }
        let fd = &self.fd;
        lock_sizing(fd, &self.name)?;
        // Still empty under the lock? Then its creator died before sizing it (or has not
        // locked it yet): size it. Otherwise the creator, which held the lock, sized it.
        let sized = match self.size() {
            Ok(0) => grow_to(fd, &self.name, size),
            other => other.map(drop),
        };
        unlock_sizing(fd);
        sized
    }

    /// The descriptor, e.g. to pass it with [`send_fd`](super::send_fd).
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

impl AsFd for Segment {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
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
            assert_eq!(e.errno(), Some(Errno::INVAL.raw_os_error()), "{bad:?}: {e}");
            assert!(e.to_string().contains("bad segment name"), "{e}");
        }
        let long = "x".repeat(NAME_MAX + 1);
        assert_eq!(
            normalize(&long).unwrap_err().errno(),
            Some(Errno::NAMETOOLONG.raw_os_error())
        );
        assert!(normalize(&"x".repeat(NAME_MAX)).is_ok());
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn resize_grows_with_zeros_and_shrinks() {
        let name = format!("mmkit-resize-{}", std::process::id());
        let seg = Segment::create(&name, 4096).unwrap();
        seg.map().unwrap().write_at(4095, b"x").unwrap();
        seg.resize(3 * 4096).unwrap();
        assert_eq!(seg.size().unwrap(), 3 * 4096);
        let mut tail = [1u8; 4097];
        seg.map().unwrap().read_at(4095, &mut tail).unwrap();
        assert_eq!(tail[0], b'x');
        assert!(tail[1..].iter().all(|&b| b == 0));
        seg.resize(100).unwrap();
        assert_eq!(seg.size().unwrap(), 100);
        Segment::unlink(&name).unwrap();
    }
}
