//! The one error type of mmkit.
//!
//! Every failure carries the operation that failed, what it was working on (the path,
//! the offset and length), the raw `errno` when the kernel refused, and a hint a person
//! can act on. It converts into [`std::io::Error`] so `?` works in I/O code.
//!
//! ```
//! use mmkit::{ErrorKind, MapOptions};
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("empty");
//! std::fs::write(&path, b"12345")?;
//! let err = MapOptions::new().offset(4096).map_path(&path).unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::OffsetPastEnd);
//! assert!(err.to_string().contains("past the end"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use rustix::io::Errno;

use crate::sys::errno::{self, errno_of, errno_text};

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// Opening or inspecting the file to map.
    Open,
    /// `mmap`.
    Map,
    /// `munmap`.
    Unmap,
    /// `msync`.
    Flush,
    /// `mprotect`.
    Protect,
    /// `madvise`.
    Advise,
    /// `mlock` / `mlock2`.
    Lock,
    /// `munlock`.
    Unlock,
    /// `mincore`.
    Residency,
    /// `mremap`.
    Remap,
    /// `prctl(PR_SET_VMA_ANON_NAME)`.
    Name,
    /// A copy out of a mapping.
    Read,
    /// A copy into a mapping.
    Write,
    /// A typed or atomic view of a mapping.
    View,
    /// Starting or waiting for a child process.
    Process,
    /// Reading `/proc` or another kernel counter.
    Probe,
    /// Send a message on a channel.
    Send,
    /// Receive a message from a channel.
    Receive,
    /// Setting up or running a pager (`userfaultfd`).
    Pager,
    /// Appending a record to a store (`store::Log`, `store::RecordFile`).
    Append,
    /// Making a store durable (`msync` + `fdatasync`).
    Sync,
    /// Reserving file space before it is mapped (`fallocate`).
    Reserve,
    /// Checking or recovering a store's records on open.
    Recover,
    /// Moving a byte range of a file to a descriptor ([`copy`](crate::copy)).
    Copy,
}

impl Op {
    fn verb(self) -> &'static str {
        match self {
            Op::Open => "open",
            Op::Map => "mmap",
            Op::Unmap => "munmap",
            Op::Flush => "msync",
            Op::Protect => "mprotect",
            Op::Advise => "madvise",
            Op::Lock => "mlock",
            Op::Unlock => "munlock",
            Op::Residency => "mincore",
            Op::Remap => "mremap",
            Op::Name => "name region",
            Op::Read => "read",
            Op::Write => "write",
            Op::View => "view",
            Op::Process => "child process",
            Op::Probe => "probe",
            Op::Send => "send",
            Op::Receive => "receive",
            Op::Pager => "pager",
            Op::Append => "append",
            Op::Sync => "sync",
            Op::Reserve => "reserve space",
            Op::Recover => "recover",
            Op::Copy => "copy",
        }
    }
}

/// What went wrong, as a category a program can match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The kernel refused; [`Error::errno`] has the code.
    Os,
    /// A writable shared mapping was asked of a file opened read-only.
    ReadOnlyFile,
    /// The file was opened without read access; no mapping can be made of it.
    NoReadAccess,
    /// The file is a kind that cannot be mapped (pipe, socket, directory, `/proc` file).
    NotMappable,
    /// The offset lies past the end of the file.
    OffsetPastEnd,
    /// The range ends past the last page of the file; touching it would raise SIGBUS.
    RangePastEnd,
    /// `offset + len` does not fit the address space.
    LengthOverflow,
    /// An offset or length lies outside the mapping.
    OutOfRange,
    /// The range must start and end on a page boundary for this operation.
    Unaligned,
    /// The pages are protected against this access (see `protect`).
    Protected,
    /// A typed view does not fit: size or alignment of the type does not match.
    Layout,
    /// This kernel or this mapping kind does not support the operation.
    Unsupported,
    /// The file was truncated: the access needs a page past its new end. The guard
    /// turned the SIGBUS into this error.
    Truncated,
    /// A page inside the file could not be read (its storage failed). The guard turned
    /// the SIGBUS into this error.
    StorageFault,
    /// A page of the file could not be allocated because its file system is full (a
    /// write into a hole of a mapped file on a full disk or tmpfs). The guard turned the
    /// SIGBUS into this error.
    NoSpace,
    /// The process at the other end of a channel died (its pid no longer names a live
    /// process); everything it committed before dying was still delivered.
    PeerDied,
    /// The other end of a channel closed it, and nothing is left to receive.
    Closed,
    /// The role is taken: a live process is already attached (a second producer or
    /// consumer on a single-producer single-consumer ring).
    Busy,
    /// A message does not fit: it is larger than the ring accepts.
    TooLarge,
    /// Shared state breaks its invariants (a bad record length, a position out of
    /// order): a process wrote the memory without following the protocol. Also a file
    /// whose format is damaged (a truncated or undecodable zstd file, a record whose
    /// checksum fails).
    Corrupt,
    /// The file is not in the format asked for: another kind of file (bad magic), a
    /// newer format version, or a header cut short.
    Format,
    /// No such record (the sequence number or index is not, or no longer, in the store),
    /// or no such object (a remote bucket or key).
    NotFound,
    /// The store's file was replaced (a compaction renamed a fresh file over it): open
    /// the path again.
    Replaced,
}

/// The error of every mmkit operation.
///
/// `Display` gives one line (what failed, on what, and why) and, where there is one, a
/// second line with a hint.
pub struct Error {
    inner: Box<Inner>,
}

#[derive(Debug)]
struct Inner {
    op: Op,
    kind: ErrorKind,
    errno: Option<i32>,
    path: Option<PathBuf>,
    offset: Option<u64>,
    len: Option<u64>,
    detail: Option<String>,
    hint: Option<String>,
}

impl Error {
    /// An error of `kind` from `op`, with no context yet.
    pub(crate) fn new(op: Op, kind: ErrorKind) -> Error {
        Error {
            inner: Box::new(Inner {
                op,
                kind,
                errno: None,
                path: None,
                offset: None,
                len: None,
                detail: None,
                hint: None,
            }),
        }
    }

    /// The kernel refused `op` with `errno`.
    pub(crate) fn os(op: Op, errno: rustix::io::Errno) -> Error {
        let mut e = Error::new(op, ErrorKind::Os);
        e.inner.errno = Some(errno.raw_os_error());
        e
    }

    /// A failed `std::io` call of `op`: the kernel's errno when the error carries one,
    /// else `EIO` with the error's own text. The one way an [`io::Error`] becomes an
    /// mmkit error.
    pub(crate) fn io(op: Op, e: &io::Error) -> Error {
        let err = Error::os(op, errno_of(e));
        match e.raw_os_error() {
            Some(_) => err,
            None => err.detail(e.to_string()),
        }
    }

    /// Keep the kernel's `errno` on an error of another kind (an `Unsupported` refusal).
    pub(crate) fn with_errno(mut self, errno: rustix::io::Errno) -> Error {
        self.inner.errno = Some(errno.raw_os_error());
        self
    }

    pub(crate) fn with_path(mut self, path: Option<&Path>) -> Error {
        if let Some(p) = path {
            self.inner.path = Some(p.to_path_buf());
        }
        self
    }

    pub(crate) fn at(mut self, offset: u64, len: u64) -> Error {
        self.inner.offset = Some(offset);
        self.inner.len = Some(len);
        self
    }

    pub(crate) fn detail(mut self, detail: impl Into<String>) -> Error {
        self.inner.detail = Some(detail.into());
        self
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Error {
        self.inner.hint = Some(hint.into());
        self
    }

    /// The operation that failed.
    pub fn op(&self) -> Op {
        self.inner.op
    }

    /// The category of the failure.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The raw `errno`, when the kernel refused.
    pub fn errno(&self) -> Option<i32> {
        self.inner.errno
    }

    /// The file the operation worked on, when known.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// The offset the operation worked at, when known.
    pub fn offset(&self) -> Option<u64> {
        self.inner.offset
    }

    /// The length the operation worked on, when known.
    pub fn length(&self) -> Option<u64> {
        self.inner.len
    }

    /// What to do about it, when there is something to say.
    pub fn hint_text(&self) -> Option<&str> {
        self.inner.hint.as_deref()
    }

    fn reason(&self) -> String {
        if let Some(d) = &self.inner.detail {
            return d.clone();
        }
        match self.inner.kind {
            ErrorKind::Os => match self.inner.errno {
                Some(n) => errno_text(Errno::from_raw_os_error(n)),
                None => "the kernel refused".into(),
            },
            ErrorKind::ReadOnlyFile => {
                "the file is open read-only but the mapping asks for write".into()
            }
            ErrorKind::NoReadAccess => {
                "the file is open write-only; a mapping needs read access".into()
            }
            ErrorKind::NotMappable => "this kind of file cannot be mapped".into(),
            ErrorKind::OffsetPastEnd => "offset is past the end of the file".into(),
            ErrorKind::RangePastEnd => "range ends past the last page of the file".into(),
            ErrorKind::LengthOverflow => "offset + length overflows".into(),
            ErrorKind::OutOfRange => "range lies outside the mapping".into(),
            ErrorKind::Unaligned => "range is not page-aligned".into(),
            ErrorKind::Protected => "pages are protected against this access".into(),
            ErrorKind::Layout => "type does not fit the bytes".into(),
            ErrorKind::Unsupported => "not supported here".into(),
            ErrorKind::Truncated => "the file was truncated below this range".into(),
            ErrorKind::StorageFault => "a page of the file could not be read".into(),
            ErrorKind::NoSpace => {
                "the file system is full: a page of the file could not be allocated".into()
            }
            ErrorKind::PeerDied => "the process at the other end died".into(),
            ErrorKind::Closed => "the other end closed the channel".into(),
            ErrorKind::Busy => "another live process holds this role".into(),
            ErrorKind::TooLarge => "the message is larger than the ring accepts".into(),
            ErrorKind::Corrupt => "shared state breaks the protocol's invariants".into(),
            ErrorKind::Format => "the file is not in the expected format".into(),
            ErrorKind::NotFound => "no such record or object".into(),
            ErrorKind::Replaced => "the file was replaced by a compaction".into(),
        }
    }
}

fn errno_name(n: i32) -> Option<&'static str> {
    Some(match n {
        errno::EPERM => "EPERM",
        errno::ENOENT => "ENOENT",
        errno::EBADF => "EBADF",
        errno::EAGAIN => "EAGAIN",
        errno::ENOMEM => "ENOMEM",
        errno::EACCES => "EACCES",
        errno::EFAULT => "EFAULT",
        errno::EBUSY => "EBUSY",
        errno::EEXIST => "EEXIST",
        errno::ENODEV => "ENODEV",
        errno::EISDIR => "EISDIR",
        errno::EINVAL => "EINVAL",
        errno::ETXTBSY => "ETXTBSY",
        errno::EFBIG => "EFBIG",
        errno::ENOSPC => "ENOSPC",
        errno::ELOOP => "ELOOP",
        errno::ESPIPE => "ESPIPE",
        errno::EOVERFLOW => "EOVERFLOW",
        errno::ENOSYS => "ENOSYS",
        errno::EOPNOTSUPP => "EOPNOTSUPP",
        _ => return None,
    })
}

/// `EINVAL (Invalid argument)`: the errno's name and its text.
#[cfg_attr(not(any(feature = "shm", feature = "pager")), allow(dead_code))]
pub(crate) fn errno_label(n: i32) -> String {
    let text = errno_text(Errno::from_raw_os_error(n));
    match errno_name(n) {
        Some(name) => format!("{name} ({text})"),
        None => text,
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        write!(f, "{}", i.op.verb())?;
        if let Some(p) = &i.path {
            write!(f, " {}", p.display())?;
        }
        match (i.offset, i.len) {
            (Some(o), Some(l)) => write!(f, " (offset {o}, {l} bytes)")?,
            (Some(o), None) => write!(f, " (offset {o})")?,
            (None, Some(l)) => write!(f, " ({l} bytes)")?,
            (None, None) => {}
        }
        write!(f, ": {}", self.reason())?;
        if let Some(name) = i.errno.and_then(errno_name) {
            write!(f, " ({name})")?;
        }
        if let Some(h) = &i.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug is what `unwrap` prints: make it as readable as Display, and keep the fields.
        write!(f, "{self} [{:?}]", self.inner)
    }
}

impl std::error::Error for Error {}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match e.kind() {
            ErrorKind::Os => {
                let n = e.errno().unwrap_or(errno::EIO);
                io::Error::from_raw_os_error(n).kind()
            }
            ErrorKind::ReadOnlyFile | ErrorKind::NoReadAccess => io::ErrorKind::PermissionDenied,
            ErrorKind::NotMappable | ErrorKind::Unsupported => io::ErrorKind::Unsupported,
            ErrorKind::Protected => io::ErrorKind::PermissionDenied,
            ErrorKind::OffsetPastEnd | ErrorKind::RangePastEnd | ErrorKind::Truncated => {
                io::ErrorKind::UnexpectedEof
            }
            ErrorKind::StorageFault => io::Error::from_raw_os_error(errno::EIO).kind(),
            ErrorKind::NoSpace => io::Error::from_raw_os_error(errno::ENOSPC).kind(),
            ErrorKind::PeerDied | ErrorKind::Closed => io::ErrorKind::BrokenPipe,
            ErrorKind::Busy => io::ErrorKind::AddrInUse,
            ErrorKind::Corrupt | ErrorKind::Format => io::ErrorKind::InvalidData,
            ErrorKind::NotFound => io::ErrorKind::NotFound,
            _ => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, e)
    }
}

/// The hint for `op` failing with `errno`, using live limits where they explain it.
pub(crate) fn os_hint(op: Op, errno: i32, huge: bool) -> Option<String> {
    let memlock = || {
        let lim = rustix::process::getrlimit(rustix::process::Resource::Memlock);
        let show = |v: Option<u64>| v.map_or("unlimited".to_string(), |b| format!("{b} bytes"));
        format!(
            "RLIMIT_MEMLOCK is {} (hard {}); raise it with `ulimit -l`, in /etc/security/limits.conf, \
             or run with CAP_IPC_LOCK",
            show(lim.current),
            show(lim.maximum)
        )
    };
    let sysctl = |name: &str| {
        std::fs::read_to_string(format!("/proc/sys/vm/{name}"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "?".into())
    };
    Some(match (op, errno) {
        (Op::Lock, errno::ENOMEM | errno::EAGAIN | errno::EPERM) => memlock(),
        (Op::Map, errno::ENOMEM) if huge => format!(
            "the hugetlb pool has too few free pages (vm.nr_hugepages = {}); as root: sysctl vm.nr_hugepages=N",
            sysctl("nr_hugepages")
        ),
        (Op::Map, errno::ENOMEM) => format!(
            "out of address space, over vm.max_map_count ({}), or refused by overcommit \
             (vm.overcommit_memory = {}); map less, or use no_reserve()",
            sysctl("max_map_count"),
            sysctl("overcommit_memory")
        ),
        (Op::Map, errno::EACCES) => {
            "open the file with read access (and write access for a writable shared mapping)".into()
        }
        (Op::Map, errno::ENODEV) => {
            "this file type cannot be mapped (pipe, socket, directory, /proc file); read it with read()"
                .into()
        }
        (Op::Map, errno::EPERM) => {
            "the file is sealed or immutable, or the filesystem is mounted noexec for an exec mapping"
                .into()
        }
        (_, errno::EBADF) => "the file descriptor is not open, or was opened with O_PATH".into(),
        (Op::Name, errno::EINVAL) => {
            "naming needs an anonymous mapping and a kernel built with CONFIG_ANON_VMA_NAME (5.17+)".into()
        }
        _ => return None,
    })
}
