//! [`Log`]: an append-only log of byte records on a shared mapping of its file.
//!
//! The format is in `store::format`; recovery's scan in [`scan`]; appends, growth and
//! group commit in [`append`]; reading in [`read`] (and [`bulk`] for many records at once),
//! following in [`follow`], checking and stats in [`inspect`].

mod append;
mod bulk;
mod follow;
mod inspect;
mod maps;
mod open;
mod read;
mod report;
mod scan;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Condvar, Mutex};

pub use follow::Tail;
pub(crate) use open::sync_dir;
pub use read::{Entry, Iter};
pub use report::{CheckReport, Damage, LogStats, RecoveryReport};

use super::{Durability, Recovery, Seq};
use crate::store::format::Meta;
use crate::store::storage::StoreFile;
use maps::Maps;

/// How to open a [`Log`].
#[derive(Debug, Clone)]
pub struct LogOptions {
    durability: Durability,
    recovery: Recovery,
    create: bool,
    shared: bool,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions::new()
    }
}

impl LogOptions {
    /// Read-write, created when missing, [`Durability::Process`], [`Recovery::Strict`].
    pub fn new() -> LogOptions {
        LogOptions {
            durability: Durability::Process,
            recovery: Recovery::Strict,
            create: true,
            shared: false,
        }
    }

    /// When an append counts as done (see [`Durability`]).
    pub fn durability(&mut self, durability: Durability) -> &mut Self {
        self.durability = durability;
        self
    }

    /// What opening does with damage (see [`Recovery`]). A read-only open
    /// ([`open_read_only`](Self::open_read_only)) never changes the file;
    /// [`ReadOnlyLog::check`] reports the damage.
    pub fn recovery(&mut self, recovery: Recovery) -> &mut Self {
        self.recovery = recovery;
        self
    }

    /// Let writers in several processes append to the log, taking turns through a
    /// robust lock in its header (a writer killed holding it does not wedge the
    /// others). Every shared writer opens with this; an exclusive writer (the default)
    /// and shared writers keep each other out (`Busy`). An append then costs the lock
    /// and a read of the header.
    pub fn shared_writers(&mut self) -> &mut Self {
        self.shared = true;
        self
    }

    /// Whether a missing file is created (on by default for writers).
    pub fn create(&mut self, create: bool) -> &mut Self {
        self.create = create;
        self
    }

    /// Open (or create) the log at `path`.
    ///
    /// A writer takes the file's writer lock, checks the header, scans every record and
    /// recovers as [`recovery`](Self::recovery) says; [`ReadOnlyLog::recovery_report`] tells what
    /// it found. A file left by a writer killed while creating the log (zeros, no header
    /// yet, no record) is created again.
    ///
    /// # Errors
    /// - `NotMappable` for a FIFO, socket, directory, device or `/proc` file;
    /// - `Format` for a file that is not a log (bad magic), a newer format version, or a
    ///   file cut inside its header;
    /// - `Corrupt` for damage with intact records after it, under [`Recovery::Strict`];
    /// - `Busy` when another handle has the log open for writing;
    /// - `NoSpace` when a new log's first space cannot be reserved;
    /// - `Os` from `open` (`EACCES` for a read-only file opened for writing).
    pub fn open(&self, path: impl AsRef<Path>) -> crate::Result<Log> {
        open::open(self, path.as_ref(), true).map(|reader| Log { reader })
    }

    /// Open the log at `path` for reading only: no lock, no recovery, nothing written,
    /// and a handle without the append methods. Any number of readers (in any process)
    /// follow a writer's appends. [`durability`](Self::durability) and
    /// [`recovery`](Self::recovery) do not apply; the file is never created.
    ///
    /// # Errors
    /// As [`open`](Self::open), but never `Busy`, `NoSpace` or `Corrupt`: `Os` with
    /// `ENOENT` for a missing file.
    pub fn open_read_only(&self, path: impl AsRef<Path>) -> crate::Result<ReadOnlyLog> {
        let mut opts = self.clone();
        opts.create = false;
        open::open(&opts, path.as_ref(), false)
    }
}

/// An append-only log of byte records on a shared mapping: each record framed with its
/// length, its sequence number and a CRC32C, appended past the committed end and then
/// published, so a reader (in any process) sees whole records or nothing.
///
/// ```
/// use mmkit::store::{Durability, LogOptions};
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("events.log");
/// let log = LogOptions::new().durability(Durability::Process).open(&path)?;
/// let first = log.append(b"hello")?;
/// let batch = log.append_batch(&[&b"a"[..], b"b"])?;
/// assert_eq!(log.get(first)?, b"hello");
/// assert_eq!(batch, first + 1..first + 3);
/// drop(log);
///
/// // Another handle (or process) reads what was committed.
/// let reader = LogOptions::new().open_read_only(&path)?;
/// let all: Vec<Vec<u8>> = reader.iter().map(|e| e?.read()).collect::<Result<_, _>>()?;
/// assert_eq!(all, [b"hello".to_vec(), b"a".to_vec(), b"b".to_vec()]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// `Log` is `Send + Sync`: appends from many threads are serialised by a mutex, and with
/// [`Durability::Sync`] the threads waiting for a flush share one (group commit).
///
/// Every method of [`ReadOnlyLog`] (reading, following, `check`, `stats`, the recovery
/// report) is a `Log`'s too, through `Deref`, as memmap2's `MmapMut` reads like its
/// `Mmap`.
pub struct Log {
    reader: ReadOnlyLog,
}

/// A log opened for reading only ([`LogOptions::open_read_only`]): it reads, follows,
/// checks and counts, and has no method that writes, as redb's `ReadOnlyDatabase`. A
/// [`Log`] derefs to one, so a function that only reads takes `&ReadOnlyLog` and is
/// given either.
///
/// ```compile_fail
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("events.log");
/// drop(mmkit::store::Log::open(&path)?);
/// let reader = mmkit::store::LogOptions::new().open_read_only(&path)?;
/// reader.append(b"no")?; // a read-only log has no `append`
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ReadOnlyLog {
    path: PathBuf,
    file: StoreFile,
    maps: Maps,
    /// Whether writers in other processes append too (see `LogOptions::shared_writers`).
    shared: bool,
    /// The append side: `None` for a reader ([`ReadOnlyLog`]), and for the log under a
    /// read-only key-value store (a `Log` the crate never hands out).
    writer: Option<Mutex<append::Writer>>,
    /// Whether a flush runs; one at a time.
    flush_lock: Mutex<bool>,
    /// Signalled when a flush ends: its waiters find their records flushed, or one of
    /// them starts the next flush (group commit).
    flushed: Condvar,
    /// Bytes known to be on storage (the log's end at the last flush's start).
    synced_end: AtomicU64,
    /// The committed end this process published last (the writer's; 0 for readers).
    published_end: AtomicU64,
    index: Mutex<read::Index>,
    recovered: RecoveryReport,
    appends: AtomicU64,
    flushes: AtomicU64,
    /// A reader's view of an unrecovered image (see `open::read_only_cap`).
    cap: Option<Cap>,
    /// The owner id the writers' lock word names while this handle holds it.
    owner: Mutex<Option<std::sync::Arc<crate::shm::sync::Owner>>>,
}

/// What a reader of an unrecovered image sees: `view` (last seq, end) instead of the
/// header's committed `header` (last seq, end), while the header still says that.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cap {
    header: (Seq, u64),
    view: (Seq, u64),
}

impl std::ops::Deref for Log {
    type Target = ReadOnlyLog;

    fn deref(&self) -> &ReadOnlyLog {
        &self.reader
    }
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.reader.fmt(f)
    }
}

impl std::fmt::Debug for ReadOnlyLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(if self.writer.is_some() {
            "Log"
        } else {
            "ReadOnlyLog"
        })
        .field("path", &self.path)
        .field("durability", &self.file.durability())
        .field("writer", &self.writer.is_some())
        .finish_non_exhaustive()
    }
}

impl Log {
    /// Open the log at `path` with the default options (read-write, created when
    /// missing). See [`LogOptions::open`].
    ///
    /// # Errors
    /// As [`LogOptions::open`].
    pub fn open(path: impl AsRef<Path>) -> crate::Result<Log> {
        LogOptions::new().open(path)
    }

    /// The log's file was renamed to `path` (the key-value store's compaction renames
    /// the new file over the old one): name it so in messages.
    pub(crate) fn renamed(&mut self, path: &Path) {
        self.reader.path = path.to_path_buf();
        self.reader.file.renamed(path);
    }

    /// This log as the read-only handle it derefs to, for good: the writer's lock and
    /// its append state are released when it is dropped (as memmap2's
    /// `MmapMut::make_read_only`).
    pub fn into_read_only(self) -> ReadOnlyLog {
        self.reader
    }

    /// The `Log` over `reader`, for the key-value store's read-only handle: its write
    /// methods fail (`Unsupported`), and the crate never hands it out.
    pub(crate) fn over_reader(reader: ReadOnlyLog) -> Log {
        Log { reader }
    }
}

impl ReadOnlyLog {
    /// The log's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The durability appends get.
    pub fn durability(&self) -> Durability {
        self.file.durability()
    }

    /// What recovery found and did when this handle opened the log (empty for a
    /// [`ReadOnlyLog`], which does not recover).
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovered
    }

    /// The committed `(last seq, end)` from the header, as this handle may trust it (a
    /// reader of an unrecovered image sees the log up to its torn write).
    pub(crate) fn committed(&self) -> crate::Result<(Seq, u64)> {
        let now = self.maps.snapshot()?;
        Ok(match self.cap {
            Some(cap) if cap.header == now => cap.view,
            _ => now,
        })
    }

    /// The durable end for a scan of `len` bytes from `meta`'s start: the header's marker
    /// inside `[start, len]`, the start when there is none.
    pub(crate) fn durable_from(&self, meta: Meta, len: u64) -> crate::Result<u64> {
        Ok(self
            .maps
            .durable()?
            .map_or(meta.start, |d| d.clamp(meta.start, len.max(meta.start))))
    }
}
