//! [`RecordFile`]: an array of fixed-size typed records in a file, each record in two
//! checksummed slots, updated in place so that a torn update is never read back.
//!
//! The format is in [`format`]. An update writes the slot that does *not* hold the
//! record's current value, with the next generation; a reader takes the valid slot with
//! the higher generation. An update cut short by a crash leaves a slot that fails its
//! CRC, and the record reads as its previous value.

mod format;
mod inspect;
mod open;

pub use inspect::RecordFileStats;
use open::{check_fixed, file_len, map_file, open_file, read_header};

use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use self::format::{LenSlot, Record, HEADER_LEN, LEN_SLOTS, SLOT_HEAD};
use super::storage::StoreFile;
use super::{Durability, RecoveryReport};
use crate::{Error, ErrorKind, Mapping, Op, Result};

/// The least a record file grows by (then by half its size), so that pushes do not
/// reserve and remap one page at a time.
const GROW_MIN: u64 = 64 << 10;
/// How often a read-only handle re-reads a record whose slots are both invalid: a writer
/// in another process may have been writing both while it copied them.
const READ_RETRIES: usize = 4;

/// How to open a [`RecordFile`]: `&mut self` setters, then [`open`](Self::open) or
/// [`open_read_only`](Self::open_read_only), as [`LogOptions`](super::LogOptions).
///
/// The default: created when missing, [`Durability::Process`], type tag 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordFileOptions {
    durability: Durability,
    type_tag: u64,
    create: bool,
}

impl Default for RecordFileOptions {
    fn default() -> Self {
        RecordFileOptions::new()
    }
}

impl RecordFileOptions {
    /// The defaults: see the type.
    pub fn new() -> RecordFileOptions {
        RecordFileOptions {
            durability: Durability::Process,
            type_tag: 0,
            create: true,
        }
    }

    /// When [`set`](RecordFile::set) and [`push`](RecordFile::push) count as done (see
    /// [`Durability`]).
    pub fn durability(&mut self, durability: Durability) -> &mut Self {
        self.durability = durability;
        self
    }

    /// The caller's tag for the record type and its schema version, stored in the file
    /// when it is created and checked on every open: opening with another tag is
    /// `Err(Format)`. The record size is checked as well, whatever the tag.
    pub fn type_tag(&mut self, tag: u64) -> &mut Self {
        self.type_tag = tag;
        self
    }

    /// Whether a missing file is created, holding no records (on by default). A
    /// read-only open never creates one.
    pub fn create(&mut self, create: bool) -> &mut Self {
        self.create = create;
        self
    }

    /// Open the record file at `path` for reading and writing (creating it with
    /// [`create`](Self::create)), taking its writer's lock.
    ///
    /// A new file is written under a temporary name and linked into place whole, so no
    /// one ever opens a half-written header.
    ///
    /// # Errors
    /// - `NotFound` when the file does not exist and is not to be created;
    /// - `Format` when it is not a record file (another magic; a header cut short; a
    ///   newer format version), or holds records of another size or another type tag;
    /// - `Corrupt` when its header fails its checksum, or it holds fewer bytes than its
    ///   length says;
    /// - `Busy` when another handle has it open for writing;
    /// - `NotMappable` for a FIFO, device, directory or `/proc` file; `NoSpace` when a
    ///   new file's header finds no room; `Layout` when `T` is too large for the format;
    ///   the errno of `open`/`mmap` otherwise.
    pub fn open<T: FromBytes + IntoBytes + Immutable + KnownLayout>(
        &self,
        path: impl AsRef<Path>,
    ) -> Result<RecordFile<T>> {
        ReadOnlyRecordFile::open_with(path.as_ref(), *self, true)
            .map(|reader| RecordFile { reader })
    }

    /// Open the record file at `path` for reading only: no writer's lock is taken, the
    /// file is never created or written, and the handle has no `set` or `push`.
    ///
    /// # Errors
    /// As [`open`](Self::open), but never `Busy`; `NotFound` for a missing file.
    pub fn open_read_only<T: FromBytes + IntoBytes + Immutable + KnownLayout>(
        &self,
        path: impl AsRef<Path>,
    ) -> Result<ReadOnlyRecordFile<T>> {
        ReadOnlyRecordFile::open_with(path.as_ref(), *self, false)
    }
}

/// A file holding an array of fixed-size records of type `T`, updated in place and
/// crash-safe: after a crash (of the process with [`Durability::Process`], of the
/// machine with [`Durability::Sync`]) every record reads back as a value that was
/// written whole, never as a mix of two.
///
/// Each record has two slots, each with a generation and a CRC32C; an update writes the
/// slot not holding the current value, and a reader takes the valid slot with the newer
/// generation, so an update cut short reads back as the previous value. A record whose
/// two slots are both damaged is `Err(Corrupt)` naming its index, and the others read
/// on. The file's header names the record size and a caller-given type tag, checked on
/// open. One writer at a time (an `flock` on the file, released when it exits or dies;
/// the lock belongs to the open file, so a child `fork`ed while a writer is open holds
/// it too until it exits); any number of read-only handles, in any process.
///
/// ```
/// use mmkit::store::{RecordFile, RecordFileOptions};
/// use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};
///
/// #[derive(Debug, Clone, Copy, PartialEq, FromBytes, IntoBytes, Immutable, KnownLayout)]
/// #[repr(C)]
/// struct Point {
///     x: u32,
///     y: u32,
/// }
///
/// # let dir = tempfile::tempdir()?;
/// let path = dir.path().join("points");
/// let mut opts = RecordFileOptions::new();
/// opts.create(true).type_tag(1);
/// let mut points: RecordFile<Point> = opts.open(&path)?;
/// let i = points.push(&Point { x: 1, y: 2 })?;
/// points.set(i, &Point { x: 3, y: 4 })?;
/// drop(points);
///
/// let points = opts.open_read_only::<Point>(&path)?;
/// assert_eq!(points.len(), 1);
/// assert_eq!(points.get(0)?, Some(Point { x: 3, y: 4 }));
/// assert_eq!(points.get(1)?, None);
/// // Another type tag, or another record size, is refused.
/// let err = opts.type_tag(2).open::<Point>(&path).unwrap_err();
/// assert_eq!(err.kind(), mmkit::ErrorKind::Format);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Every method of [`ReadOnlyRecordFile`] (`get`, `iter`, `check`, `stats`, the
/// recovery report) is a `RecordFile`'s too, through `Deref`.
pub struct RecordFile<T> {
    reader: ReadOnlyRecordFile<T>,
}

/// A record file opened for reading only ([`RecordFileOptions::open_read_only`]): it
/// reads, checks and counts, sees another process's pushes after
/// [`refresh`](Self::refresh), and has no method that writes. A [`RecordFile`] derefs to
/// one.
///
/// ```compile_fail
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("numbers");
/// drop(mmkit::store::RecordFile::<u64>::open(&path)?);
/// let mut numbers = mmkit::store::RecordFileOptions::new().open_read_only::<u64>(&path)?;
/// numbers.push(&1)?; // a read-only record file has no `push`
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ReadOnlyRecordFile<T> {
    file: StoreFile,
    path: PathBuf,
    map: Mapping,
    opts: RecordFileOptions,
    /// Whether the file is mapped for writing (a [`RecordFile`]'s).
    write: bool,
    /// What opening found (a record file needs no recovery: its records).
    recovered: RecoveryReport,
    /// One slot's bytes; a record takes two.
    slot: usize,
    /// The records the file holds.
    len: u64,
    /// The records the mapped file has room for.
    cap: u64,
    /// The length slot holding `len`, and its generation.
    len_slot: (usize, u64),
    _record: PhantomData<fn() -> T>,
}

impl<T> std::ops::Deref for RecordFile<T> {
    type Target = ReadOnlyRecordFile<T>;

    fn deref(&self) -> &ReadOnlyRecordFile<T> {
        &self.reader
    }
}

impl<T> std::fmt::Debug for RecordFile<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.reader.fmt(f)
    }
}

impl<T> std::fmt::Debug for ReadOnlyRecordFile<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(if self.write {
            "RecordFile"
        } else {
            "ReadOnlyRecordFile"
        })
        .field("path", &self.path)
        .field("len", &self.len)
        .field("capacity", &self.cap)
        .field("record_size", &std::mem::size_of::<T>())
        .field("options", &self.opts)
        .finish()
    }
}

impl<T: FromBytes + IntoBytes + Immutable + KnownLayout> RecordFile<T> {
    /// Open (or create) the record file at `path` with the default options: type tag
    /// 0, [`Durability::Process`]. See [`RecordFileOptions::open`].
    ///
    /// # Errors
    /// As [`RecordFileOptions::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<RecordFile<T>> {
        RecordFileOptions::new().open(path)
    }

    /// This file as the read-only handle it derefs to, for good (as memmap2's
    /// `MmapMut::make_read_only`); the writer's lock goes when it is dropped.
    pub fn into_read_only(self) -> ReadOnlyRecordFile<T> {
        self.reader
    }
}

impl<T: FromBytes + IntoBytes + Immutable + KnownLayout> ReadOnlyRecordFile<T> {
    fn open_with(path: &Path, opts: RecordFileOptions, write: bool) -> Result<Self> {
        let record = std::mem::size_of::<T>();
        let slot = format::slot_size(record).ok_or_else(|| {
            Error::new(Op::Open, ErrorKind::Layout)
                .with_path(Some(path))
                .detail(format!(
                    "records of {record} bytes are too large for a record file"
                ))
        })?;
        let file = open_file(path, &opts, write, record, slot)?;
        let header = read_header(&file, path)?;
        check_fixed(&header, path, record, opts.type_tag)?;
        let (which, current) = LenSlot::current(&header).ok_or_else(|| {
            Error::new(Op::Recover, ErrorKind::Corrupt)
                .with_path(Some(path))
                .at(LEN_SLOTS[0] as u64, (2 * format::LEN_SLOT) as u64)
                .detail("both length slots of the header fail their checksum")
        })?;
        let file_len = file_len(&file, path)?;
        let cap = capacity(file_len, slot);
        if current.len > cap {
            return Err(Error::new(Op::Recover, ErrorKind::Corrupt)
                .with_path(Some(path))
                .detail(format!(
                    "the header says {} records, but the file ({file_len} bytes) holds only {cap}",
                    current.len
                ))
                .hint("the file was truncated: its last records are lost"));
        }
        let map = map_file(&file, write)?;
        Ok(ReadOnlyRecordFile {
            file,
            path: path.to_path_buf(),
            map,
            opts,
            write,
            recovered: RecoveryReport {
                records: current.len,
                ..RecoveryReport::default()
            },
            slot,
            len: current.len,
            cap,
            len_slot: (which, current.generation),
            _record: PhantomData,
        })
    }

    /// The number of records: what this handle last saw (a read-only handle sees another
    /// process's pushes after [`refresh`](Self::refresh)).
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the file holds no records.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Record `i`: `Ok(None)` when `i` is past the end (as [`slice::get`]).
    ///
    /// A record left with a damaged newer slot (a torn update) reads as its previous
    /// value. A record never written (both slots zero, which `push` never leaves behind
    /// but a file grown by hand would) reads as `T`'s zero value.
    ///
    /// # Errors
    /// `Corrupt` naming the index when both of the record's slots are damaged (the
    /// other records read on); `Truncated`/`StorageFault` when the file was truncated
    /// under the mapping or its storage failed.
    pub fn get(&self, i: usize) -> Result<Option<T>> {
        if i as u64 >= self.len {
            return Ok(None);
        }
        self.read(i).map(Some)
    }

    /// Every record in order: an `Err(Corrupt)` for each damaged one, and the iteration
    /// goes on after it.
    pub fn iter(&self) -> impl Iterator<Item = Result<T>> + '_ {
        (0..self.len()).map(|i| self.read(i))
    }

    /// Re-read the length from the header, to see records another process pushed since
    /// this handle opened (or last refreshed); returns the new length.
    ///
    /// # Errors
    /// `Corrupt` when both length slots are damaged, or the length exceeds the file;
    /// the errno of `mmap` when the grown file cannot be mapped.
    pub fn refresh(&mut self) -> Result<usize> {
        let mut page = vec![0u8; HEADER_LEN];
        self.map.read_at(0, &mut page)?;
        let (which, current) = LenSlot::current(&page).ok_or_else(|| {
            Error::new(Op::Recover, ErrorKind::Corrupt)
                .with_path(Some(&self.path))
                .detail("both length slots of the header fail their checksum")
        })?;
        if current.len > self.cap {
            let file_len = file_len(&self.file, &self.path)?;
            let cap = capacity(file_len, self.slot);
            if current.len > cap {
                return Err(Error::new(Op::Recover, ErrorKind::Corrupt)
                    .with_path(Some(&self.path))
                    .detail(format!(
                        "the header says {} records, but the file ({file_len} bytes) holds only {cap}",
                        current.len
                    )));
            }
            self.map = map_file(&self.file, self.write)?;
            self.cap = cap;
        }
        self.len = current.len;
        self.len_slot = (which, current.generation);
        Ok(self.len())
    }

    fn read(&self, i: usize) -> Result<T> {
        let mut pair = vec![0u8; 2 * self.slot];
        let retries = if self.write { 1 } else { READ_RETRIES };
        for _ in 0..retries {
            match self.read_record(i, &mut pair)? {
                Record::Value { slot, .. } => {
                    let at = slot * self.slot + SLOT_HEAD;
                    let bytes = &pair[at..at + std::mem::size_of::<T>()];
                    return Ok(T::read_from_bytes(bytes).expect("the slot holds exactly a T"));
                }
                Record::Empty => return Ok(T::new_zeroed()),
                Record::Damaged => {}
            }
        }
        let off = self.pair_offset(i)?;
        Err(self
            .corrupt(Op::Read, off)
            .detail(format!("record {i}: both of its slots fail their checksum")))
    }

    /// Copy record `i`'s two slots into `pair` and decide them.
    fn read_record(&self, i: usize, pair: &mut [u8]) -> Result<Record> {
        let off = self.pair_offset(i)?;
        self.map.read_at(off, pair)?;
        Ok(format::decode_record(
            pair,
            self.slot,
            i as u64,
            std::mem::size_of::<T>(),
        ))
    }

    /// Where record `i`'s slots start in the file (and the mapping).
    fn pair_offset(&self, i: usize) -> Result<usize> {
        (2 * self.slot)
            .checked_mul(i)
            .and_then(|o| o.checked_add(HEADER_LEN))
            .ok_or_else(|| self.overflow())
    }

    fn overflow(&self) -> Error {
        Error::new(Op::Append, ErrorKind::LengthOverflow).with_path(Some(&self.path))
    }

    fn corrupt(&self, op: Op, off: usize) -> Error {
        Error::new(op, ErrorKind::Corrupt)
            .with_path(Some(&self.path))
            .at(off as u64, (2 * self.slot) as u64)
            .hint("check() lists every damaged record; set() rewrites one")
    }
}

impl<T: FromBytes + IntoBytes + Immutable + KnownLayout> RecordFile<T> {
    /// Replace record `i` with `value`: the slot not holding the current value gets it
    /// with the next generation (and with [`Durability::Sync`] reaches storage before
    /// this returns). A damaged record is repaired by this.
    ///
    /// # Errors
    /// `OutOfRange` when `i` is not below
    /// [`len`](ReadOnlyRecordFile::len); `Corrupt` when the record's generation cannot grow (a
    /// hostile file); `Truncated`/`StorageFault` as for [`get`](ReadOnlyRecordFile::get); the errno of
    /// `fdatasync`.
    pub fn set(&mut self, i: usize, value: &T) -> Result<()> {
        if i as u64 >= self.len {
            return Err(Error::new(Op::Write, ErrorKind::OutOfRange)
                .with_path(Some(&self.path))
                .detail(format!("record {i} of a file holding {}", self.len))
                .hint("push appends a record"));
        }
        let off = self.pair_offset(i)?;
        let mut pair = vec![0u8; 2 * self.slot];
        self.map.read_at(off, &mut pair)?;
        let (slot, generation) =
            match format::decode_record(&pair, self.slot, i as u64, std::mem::size_of::<T>()) {
                Record::Value {
                    slot, generation, ..
                } => {
                    let next = generation.checked_add(1).ok_or_else(|| {
                        self.corrupt(Op::Write, off)
                            .detail(format!("record {i}: its generation cannot grow"))
                    })?;
                    (1 - slot, next)
                }
                Record::Empty | Record::Damaged => (0, 1),
            };
        let buf = &mut pair[..self.slot];
        format::encode_slot(buf, i as u64, generation, value.as_bytes());
        self.reader.map.write_at(off + slot * self.slot, buf)?;
        self.sync_if_asked()
    }

    /// Append `value` as a new record and return its index.
    ///
    /// The file grows (by at least 64 KiB, or half its size) with space reserved by
    /// `fallocate` *before* the new pages are mapped, so a full disk is an error here,
    /// never a SIGBUS. The new length is written after the record, so a crash in between
    /// leaves the file as it was.
    ///
    /// # Errors
    /// `NoSpace` when the file system is full: the
    /// file is unchanged, the handle stays usable, and pushes go on once space is freed;
    /// `Truncated`/`StorageFault` as for [`get`](ReadOnlyRecordFile::get); the errno of `fdatasync`
    /// or `mmap`.
    pub fn push(&mut self, value: &T) -> Result<usize> {
        let i = self.len;
        let index = usize::try_from(i).map_err(|_| self.overflow())?;
        if i >= self.cap {
            self.grow(i + 1)?;
        }
        let off = self.pair_offset(index)?;
        // Slot A gets the value, slot B zeros: whatever a crashed push left there is gone.
        let mut pair = vec![0u8; 2 * self.slot];
        format::encode_slot(&mut pair[..self.slot], i, 1, value.as_bytes());
        self.reader.map.write_at(off, &pair)?;
        self.sync_if_asked()?;
        self.write_len(i + 1)?;
        Ok(index)
    }

    /// Make every update so far durable (`fdatasync`), whatever the handle's
    /// [`Durability`].
    ///
    /// # Errors
    /// The errno of `fdatasync` (`EIO` when writeback failed).
    pub fn sync(&self) -> Result<()> {
        self.file.sync_data()
    }

    fn sync_if_asked(&self) -> Result<()> {
        self.file.commit().map(drop)
    }

    /// Write `len` into the length slot not holding the current one.
    fn write_len(&mut self, len: u64) -> Result<()> {
        let (which, generation) = self.len_slot;
        let next = LenSlot {
            generation: generation + 1,
            len,
        };
        let other = 1 - which;
        self.reader.map.write_at(LEN_SLOTS[other], &next.encode())?;
        self.sync_if_asked()?;
        self.reader.len = len;
        self.reader.len_slot = (other, next.generation);
        Ok(())
    }

    /// Make room for at least `records`: reserve the space, then map the longer file.
    fn grow(&mut self, records: u64) -> Result<()> {
        let pair = 2 * self.slot as u64;
        let from = file_len(&self.file, &self.path)?;
        let need = records
            .checked_mul(pair)
            .and_then(|b| b.checked_add(HEADER_LEN as u64))
            .ok_or_else(|| self.overflow())?;
        let page = crate::page_size() as u64;
        let least = need.saturating_sub(from).next_multiple_of(page);
        let generous = least.max(GROW_MIN).max(from / 2).next_multiple_of(page);
        if let Err(e) = self.file.reserve(from, generous) {
            // Too much asked of a nearly full disk: ask for just what this push needs.
            if e.kind() != ErrorKind::NoSpace || generous == least {
                return Err(e);
            }
            self.file.reserve(from, least)?;
        }
        let len = file_len(&self.file, &self.path)?;
        self.reader.map = map_file(&self.file, true)?;
        self.reader.cap = capacity(len, self.slot);
        Ok(())
    }
}

/// The records a file of `file_len` bytes has room for.
fn capacity(file_len: u64, slot: usize) -> u64 {
    file_len.saturating_sub(HEADER_LEN as u64) / (2 * slot as u64)
}
