//! [`Kv`]: a key-value store on a [`Log`]: every put and delete is a record appended to
//! the log, and an in-memory hash index, rebuilt from the log on open, says where each
//! key's last value is.
//!
//! Modules: `codec` (an operation as a record), `index` (the hash index and how it
//! follows the log), `compact` (rewriting the live records into a fresh file),
//! `inspect` (`check` and `stats`), `typed` (typed values).
//!
//! # Safety
//!
//! [`ReadOnlyKv::get_with`] is an `unsafe fn`: its caller promises that no process
//! writes the store's file outside mmkit while `f` runs. No `unsafe` block here.
#![allow(unsafe_code)]

mod codec;
mod compact;
mod hash;
mod index;
mod inspect;
mod typed;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub use compact::CompactReport;
pub use inspect::KvStats;

use super::{Durability, Log, LogOptions, Recovery, RecoveryReport};
use crate::{Error, ErrorKind, Op, Result};
use codec::Operation;
use index::Index;

/// How to open a [`Kv`].
#[derive(Debug, Clone)]
pub struct KvOptions {
    durability: Durability,
    create: bool,
    verify_reads: bool,
    compact_below: f64,
    compact_min_bytes: u64,
}

impl Default for KvOptions {
    fn default() -> Self {
        KvOptions::new()
    }
}

impl KvOptions {
    /// Created when missing, [`Durability::Process`], compaction when live records fall
    /// below half of the log (and the log holds at least 4 MiB).
    pub fn new() -> KvOptions {
        KvOptions {
            durability: Durability::Process,
            create: true,
            verify_reads: false,
            compact_below: 0.5,
            compact_min_bytes: 4 << 20,
        }
    }

    /// When a put, delete or batch counts as done (see [`Durability`]).
    pub fn durability(&mut self, durability: Durability) -> &mut Self {
        self.durability = durability;
        self
    }

    /// Whether a missing file is created (on by default).
    pub fn create(&mut self, create: bool) -> &mut Self {
        self.create = create;
        self
    }

    /// Check each value's CRC32C again on every read. Off by default: every record's
    /// checksum is verified when this handle first reads it (on open, and as it follows
    /// other processes' writes), and mmkit never writes a committed record again; a read
    /// checks the record's number, length and key. Turn it on to catch damage done to
    /// the file after that (a bad sector, a process writing the file outside mmkit), at
    /// the cost of reading every value's bytes (a third of a random 256-byte get).
    pub fn verify_reads(&mut self, verify: bool) -> &mut Self {
        self.verify_reads = verify;
        self
    }

    /// Compact automatically when live records take less than `fraction` of the log's
    /// bytes, once the log holds at least `min_bytes`. A fraction of 0 turns automatic
    /// compaction off ([`Kv::compact`] still works).
    pub fn compact_below(&mut self, fraction: f64, min_bytes: u64) -> &mut Self {
        self.compact_below = fraction.clamp(0.0, 1.0);
        self.compact_min_bytes = min_bytes;
        self
    }

    /// Open (or create) the store at `path`. Damage anywhere in the file is skipped and
    /// reported ([`ReadOnlyKv::recovery_report`]): every intact key is kept.
    ///
    /// # Errors
    /// As [`LogOptions::open`]: `NotMappable`, `Format`, `Busy`, `NoSpace`, `Os`.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<Kv> {
        ReadOnlyKv::open_with(path.as_ref(), self.clone(), true).map(|reader| Kv { reader })
    }

    /// Open the store at `path` for reading only: no recovery (damage is reported by
    /// [`ReadOnlyKv::check`] and by reads that meet it), a handle without the methods
    /// that write, and only read access to the file is needed. The handle still follows
    /// writers in other processes, and their compactions. The file is never created.
    ///
    /// # Errors
    /// As [`open`](Self::open); `Os` with `ENOENT` for a missing file.
    pub fn open_read_only(&self, path: impl AsRef<Path>) -> Result<ReadOnlyKv> {
        ReadOnlyKv::open_with(path.as_ref(), self.clone(), false)
    }
}

/// A key-value store on a crash-safe [`Log`].
///
/// - A put or delete is one log record; a [`Batch`] is one `append_batch`, so after a
///   crash either all of it is there or none.
/// - The index is an in-memory hash map rebuilt from the log on open, one guarded pass
///   that checks every record's CRC32C: 0.29-0.43 s for 1 M keys on a 2-vCPU VM, so no
///   persisted index (and none of its own crash cases) is needed for opens under a
///   second. It maps a key's hash to its record; keys are compared in the mapping.
/// - Keys iterate in no particular order (hash order); sort them if you need an order.
/// - When live records fall below a threshold, the live records are rewritten into a
///   fresh file which replaces the old one atomically (rename, then the directory is
///   synced): the file shrinks.
///
/// ```
/// use mmkit::store::Kv;
/// let dir = tempfile::tempdir()?;
/// let kv = Kv::open(dir.path().join("settings.kv"))?;
/// kv.put(b"theme", b"dark")?;
/// kv.put_u64(b"launches", 41)?;
/// kv.put_u64(b"launches", kv.get_u64(b"launches")?.unwrap_or(0) + 1)?;
/// assert_eq!(kv.get(b"theme")?.as_deref(), Some(&b"dark"[..]));
/// assert_eq!(kv.get_u64(b"launches")?, Some(42));
/// assert!(kv.delete(b"theme")?);
/// assert_eq!(kv.get(b"theme")?, None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Every method of [`ReadOnlyKv`] (the reads, `check`, `stats`, the recovery report) is
/// a `Kv`'s too, through `Deref`.
pub struct Kv {
    reader: ReadOnlyKv,
}

/// A key-value store opened for reading only ([`KvOptions::open_read_only`]): it reads,
/// follows other processes' writes and compactions, checks and counts, and has no
/// method that writes. A [`Kv`] derefs to one.
///
/// ```compile_fail
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("settings.kv");
/// drop(mmkit::store::Kv::open(&path)?);
/// let reader = mmkit::store::KvOptions::new().open_read_only(&path)?;
/// reader.put(b"theme", b"dark")?; // a read-only store has no `put`
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ReadOnlyKv {
    path: PathBuf,
    opts: KvOptions,
    /// Whether the store's log is opened for writing (a [`Kv`]'s), also when it is
    /// opened again after another process compacted the store.
    write: bool,
    /// What opening found.
    recovered: RecoveryReport,
    state: RwLock<State>,
}

struct State {
    log: Arc<Log>,
    index: Index,
    last_compaction: Option<CompactReport>,
    /// An automatic compaction that could not run: why, and the log's size then (it is
    /// tried again once the log has grown by a quarter).
    deferred: Option<(String, u64)>,
}

impl std::ops::Deref for Kv {
    type Target = ReadOnlyKv;

    fn deref(&self) -> &ReadOnlyKv {
        &self.reader
    }
}

impl std::fmt::Debug for Kv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.reader.fmt(f)
    }
}

impl std::fmt::Debug for ReadOnlyKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(if self.write { "Kv" } else { "ReadOnlyKv" })
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Several puts and deletes written as one: all of them or none, also across a crash.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    records: Vec<Vec<u8>>,
    error: Option<String>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Set `key` to `value`.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> &mut Self {
        self.push(Operation::Put(key, value))
    }

    /// Remove `key`.
    pub fn delete(&mut self, key: &[u8]) -> &mut Self {
        self.push(Operation::Delete(key))
    }

    /// How many operations the batch holds.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the batch holds none.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    fn push(&mut self, op: Operation<'_>) -> &mut Self {
        match op.encode() {
            Ok(rec) => self.records.push(rec),
            Err(e) => {
                self.error.get_or_insert_with(|| e.to_string());
            }
        }
        self
    }
}

/// Open the store's log as a shared writer (writers in other processes take turns), with
/// damage skipped and reported, or read-only; and build its index.
fn open_log(path: &Path, opts: &KvOptions, write: bool) -> Result<(Arc<Log>, Index)> {
    let log = if write {
        LogOptions::new()
            .durability(Durability::Process)
            .recovery(Recovery::Salvage)
            .shared_writers()
            .create(opts.create)
            .open(path)?
    } else {
        Log::over_reader(LogOptions::new().open_read_only(path)?)
    };
    let mut index = Index::new(&log)?;
    // Room for as many keys as records (an upper bound): no rehash while opening.
    index.reserve(log.recovery_report().records as usize);
    index.catch_up(&log)?;
    Ok((Arc::new(log), index))
}

impl Kv {
    /// Open (or create) the store at `path` with the default options.
    ///
    /// # Errors
    /// As [`KvOptions::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Kv> {
        KvOptions::new().open(path)
    }

    /// This store as the read-only handle it derefs to, for good (as memmap2's
    /// `MmapMut::make_read_only`); its file stays open as it was (for writing, so it
    /// still takes part in the writers' turns until it is dropped).
    pub fn into_read_only(self) -> ReadOnlyKv {
        self.reader
    }
}

impl ReadOnlyKv {
    fn open_with(path: &Path, opts: KvOptions, write: bool) -> Result<ReadOnlyKv> {
        let (log, index) = open_log(path, &opts, write)?;
        let state = State {
            log,
            index,
            last_compaction: None,
            deferred: None,
        };
        Ok(ReadOnlyKv {
            path: path.to_path_buf(),
            recovered: state.log.recovery_report().clone(),
            opts,
            write,
            state: RwLock::new(state),
        })
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What opening found: damage skipped (every intact key kept) or a torn tail cut
    /// (empty for a read-only handle, which does not recover).
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovered
    }

    /// The value of `key`, copied out. Its record's checksum was verified when this
    /// handle first read it; every read checks its number, length and key, and its
    /// checksum too with [`KvOptions::verify_reads`].
    ///
    /// # Errors
    /// `Corrupt` when the record does not check out; `Truncated` when the file was cut.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut buf = Vec::new();
        Ok(self.get_into(key, &mut buf)?.then_some(buf))
    }

    /// As [`get`](Self::get), into `buf` (cleared first), reusing its allocation;
    /// returns whether the key was there.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn get_into(&self, key: &[u8], buf: &mut Vec<u8>) -> Result<bool> {
        let st = self.fresh()?;
        buf.clear();
        let found = st
            .index
            .get_with(&st.log, key, self.opts.verify_reads, |v| {
                buf.extend_from_slice(v)
            })?;
        Ok(found.is_some())
    }

    /// Run `f` over the value of `key` in place (zero-copy), under the SIGBUS guard,
    /// with the record checked as for [`get`](Self::get).
    ///
    /// # Safety
    /// No process may write the store's file outside mmkit while `f` runs (mmkit never
    /// writes a committed record; compaction writes a new file).
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub unsafe fn get_with<R>(&self, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        let st = self.fresh()?;
        st.index.get_with(&st.log, key, self.opts.verify_reads, f)
    }

    /// Whether `key` is held.
    ///
    /// # Errors
    /// `Corrupt`/`Truncated` when records another process appended cannot be read.
    pub fn contains(&self, key: &[u8]) -> Result<bool> {
        let st = self.fresh()?;
        st.index.contains(&st.log, key)
    }

    /// How many keys the store holds.
    ///
    /// # Errors
    /// As [`contains`](Self::contains).
    pub fn len(&self) -> Result<usize> {
        Ok(self.fresh()?.index.len())
    }

    /// Whether the store holds no key.
    ///
    /// # Errors
    /// As [`contains`](Self::contains).
    pub fn is_empty(&self) -> Result<bool> {
        self.len().map(|n| n == 0)
    }

    /// Every key, in no particular order.
    ///
    /// # Errors
    /// As [`contains`](Self::contains).
    pub fn keys(&self) -> Result<Vec<Vec<u8>>> {
        let st = self.fresh()?;
        st.index.locs().map(|loc| loc.key(&st.log)).collect()
    }

    /// Every key with its value, in no particular order (a snapshot of the keys; values
    /// are read as the iteration reaches them, and a key deleted meanwhile is skipped).
    ///
    /// # Errors
    /// As [`keys`](Self::keys); each item as [`get`](Self::get).
    pub fn iter(&self) -> Result<impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + '_> {
        let keys = self.keys()?;
        Ok(keys.into_iter().filter_map(move |k| match self.get(&k) {
            Ok(Some(v)) => Some(Ok((k, v))),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }))
    }

    /// The state, first brought up to date with the file: records other processes
    /// committed are applied, and a file a compaction replaced is reopened.
    fn fresh(&self) -> Result<RwLockReadGuard<'_, State>> {
        {
            let st = self.read();
            let (last, replaced) = st.log.poll()?;
            if !replaced && last + 1 == st.index.next_seq {
                return Ok(st);
            }
        }
        let mut st = self.write_lock();
        self.refresh(&mut st)?;
        drop(st);
        Ok(self.read())
    }

    /// Apply what other processes committed; reopen the path when a compaction replaced
    /// the file.
    fn refresh(&self, st: &mut State) -> Result<()> {
        let (_, replaced) = st.log.poll()?;
        if replaced && st.log.is_replaced()? {
            let mut again = self.opts.clone();
            again.create = false;
            let (log, index) = open_log(&self.path, &again, self.write)?;
            (st.log, st.index) = (log, index);
            return Ok(());
        }
        st.index.catch_up(&st.log)?;
        Ok(())
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_lock(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl Kv {
    /// Set `key` to `value`.
    ///
    /// # Errors
    /// `TooLarge` for a key over 64 KiB or a record over 1 GiB; `NoSpace` on a full disk
    /// (the store stays open and intact); with [`Durability::Sync`], `fdatasync`'s error.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.write_records(&[Operation::Put(key, value).encode()?])
    }

    /// Remove `key`; returns whether it was there.
    ///
    /// # Errors
    /// As [`put`](Self::put).
    pub fn delete(&self, key: &[u8]) -> Result<bool> {
        if !self.contains(key)? {
            return Ok(false);
        }
        self.write_records(&[Operation::Delete(key).encode()?])?;
        Ok(true)
    }

    /// Write a batch: all of it or none, also after a crash.
    ///
    /// # Errors
    /// `TooLarge` when an operation of the batch was (nothing is written); as
    /// [`put`](Self::put).
    pub fn write(&self, batch: &Batch) -> Result<()> {
        if let Some(e) = &batch.error {
            return Err(Error::new(Op::Append, ErrorKind::TooLarge)
                .with_path(Some(&self.path))
                .detail(format!(
                    "the batch holds an operation that cannot be written: {e}"
                )));
        }
        self.write_records(&batch.records)
    }

    fn write_records(&self, records: &[Vec<u8>]) -> Result<()> {
        let log = {
            let mut st = self.write_lock();
            let st = &mut *st;
            let (seqs, mut at) = loop {
                match st.log.append_placed(records) {
                    Err(e) if e.kind() == ErrorKind::Replaced => self.refresh(st)?,
                    placed => break placed?,
                }
            };
            if (seqs.start, at) == (st.index.next_seq, st.index.next_at) {
                for (rec, seq) in records.iter().zip(seqs) {
                    let size = crate::store::format::record_size(rec.len());
                    st.index.apply(&st.log, at, seq, size, rec)?;
                    at += size;
                }
            } else {
                // Other processes appended first: apply theirs, then ours, from the log.
                st.index.catch_up(&st.log)?;
            }
            st.log.clone()
        };
        if self.opts.durability == Durability::Sync {
            log.sync()?;
        }
        // The records are written (and durable as asked): what an automatic compaction
        // meets is not this write's failure. It is deferred and reported in `stats`.
        self.maybe_compact();
        Ok(())
    }

    /// Make every write so far durable on storage (`fdatasync`), whatever the store's
    /// durability.
    ///
    /// # Errors
    /// `fdatasync`'s (`EIO`).
    pub fn sync(&self) -> Result<()> {
        let log = self.read().log.clone();
        log.sync()
    }
}
