//! Appending: reserve space first, write the frames past the committed end, then
//! publish the new end; with `Sync`, one flush for every appender waiting (group
//! commit). Also `sync` and `truncate_before`.
//!
//! Invariants, each kept by the writer mutex:
//! - bytes at or past the committed end are touched only by the writer;
//! - the frame just past the committed end is zero (the writer clears it with each
//!   append), so bytes left there by a failed append can never be read as the next
//!   record;
//! - the committed end in the header only grows (until a recovery on open), and is
//!   published after the records' bytes (release), before the commit counter is bumped.
//!
//! # Safety
//!
//! Records are copied into the mapping past the committed end, where only this writer
//! (holding the mutex) writes and no reader looks, inside the space reserved for them.
#![allow(unsafe_code)]

use std::ops::Range;
use std::sync::atomic::Ordering;

use super::{Log, ReadOnlyLog};
use crate::map::Protection;
use crate::store::format::{self, record_size, Frame, Meta, FRAME, MAX_PAYLOAD, META_SLOTS};
use crate::store::{Durability, Seq};
use crate::{Error, ErrorKind, Op, Result};

/// Records of this many payload bytes or more are written with `pwritev`, smaller ones
/// are copied into the mapping (measured on 4 KiB records: see `write_record`).
const WRITE_FROM: usize = 2048;

/// The append side's state.
#[derive(Debug)]
pub(crate) struct Writer {
    /// The committed end: where the next record goes.
    pub(crate) end: u64,
    pub(crate) next_seq: Seq,
    /// The file's size: reserved (allocated) space.
    reserved: u64,
    /// The current meta slot and its content.
    meta: Meta,
}

impl Writer {
    pub(crate) fn new(end: u64, next_seq: Seq, reserved: u64, meta: Meta) -> Writer {
        Writer {
            end,
            next_seq,
            reserved,
            meta,
        }
    }
}

/// Marks the running flush finished and wakes its waiters, on drop.
struct FlushEnd<'a>(&'a Log);

impl Drop for FlushEnd<'_> {
    fn drop(&mut self) {
        *self.0.flush_lock.lock().unwrap_or_else(|p| p.into_inner()) = false;
        self.0.flushed.notify_all();
    }
}

impl Log {
    /// Append one record; returns its sequence number.
    ///
    /// # Errors
    /// - `TooLarge` for a record over 1 GiB;
    /// - `NoSpace` when the file system cannot hold it: nothing is written, the log
    ///   stays open and intact, and appends go on once space is freed;
    /// - `Truncated` when another process cut the file under the log;
    /// - with [`Durability::Sync`], the error of `fdatasync` (`EIO`).
    pub fn append(&self, record: &[u8]) -> Result<Seq> {
        self.append_batch(&[record]).map(|r| r.start)
    }

    /// Append several records at once: readers see all of them or none, and after a
    /// crash recovery keeps all of them or none. Returns their sequence numbers.
    ///
    /// # Errors
    /// As [`append`](Self::append).
    pub fn append_batch<R: AsRef<[u8]>>(&self, records: &[R]) -> Result<Range<Seq>> {
        self.append_placed(records).map(|(seqs, _)| seqs)
    }

    /// As [`append_batch`](Self::append_batch), also returning the offset of the first
    /// record's frame (the records follow one another).
    pub(crate) fn append_placed<R: AsRef<[u8]>>(&self, records: &[R]) -> Result<(Range<Seq>, u64)> {
        let writer = self.writer.as_ref().ok_or_else(|| self.read_only_err())?;
        let mut total: u64 = 0;
        for r in records {
            let len = r.as_ref().len();
            if len > MAX_PAYLOAD {
                return Err(Error::new(Op::Append, ErrorKind::TooLarge)
                    .with_path(Some(&self.path))
                    .detail(format!(
                        "a record of {len} bytes is over the limit of {MAX_PAYLOAD}"
                    ))
                    .hint("split it into smaller records"));
            }
            total += record_size(len);
        }
        let mut w = writer.lock().unwrap_or_else(|p| p.into_inner());
        let (seqs, start, end) = if self.shared {
            self.with_write_lock(|| {
                self.refresh(&mut w)?;
                self.write_records(&mut w, records, total)
            })?
        } else {
            self.write_records(&mut w, records, total)?
        };
        drop(w);
        self.appends
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        if self.file.durability() == Durability::Sync {
            self.sync_to(end)?;
        }
        Ok((seqs, start))
    }

    /// Write `records` (`total` bytes) at the committed end and publish them; returns
    /// their numbers, where they start and where they end.
    fn write_records<R: AsRef<[u8]>>(
        &self,
        w: &mut Writer,
        records: &[R],
        total: u64,
    ) -> Result<(Range<Seq>, u64, u64)> {
        let first = w.next_seq;
        let start = w.end;
        if records.is_empty() {
            return Ok((first..first, start, start));
        }
        let need = w.end.checked_add(total).ok_or_else(|| {
            Error::new(Op::Append, ErrorKind::LengthOverflow).with_path(Some(&self.path))
        })?;
        if need + FRAME as u64 > w.reserved {
            self.grow(w, need + FRAME as u64)?;
        }
        let map = self.maps.covering(&self.file, &self.path, w.reserved)?;
        let mut at = w.end;
        for (i, r) in records.iter().enumerate() {
            let payload = r.as_ref();
            let more = i + 1 < records.len();
            let frame = Frame::new(payload.len(), first + i as u64, more, false).encode(payload);
            let size = record_size(payload.len()) as usize;
            if payload.len() >= WRITE_FROM {
                self.write_record(at, &frame, payload, size)?;
                at += size as u64;
                continue;
            }
            copy_record(map, at, &frame, payload, size)
                .map_err(|e| e.with_path(Some(&self.path)))?;
            at += size as u64;
        }
        let last = first + records.len() as u64 - 1;
        self.publish(at, last)?;
        w.end = at;
        w.next_seq = last + 1;
        Ok((first..last + 1, start, at))
    }

    /// Write one record (and the zero frame after it) at `at` with `pwritev(2)`: for
    /// large records, which would otherwise fault on every fresh page of the mapping
    /// (a store to a page the last writeback cleaned faults again, `page_mkwrite`). The
    /// page cache is the mapping's, so readers see the bytes as if stored through it.
    fn write_record(
        &self,
        at: u64,
        frame: &[u8; FRAME],
        payload: &[u8],
        size: usize,
    ) -> Result<()> {
        const ZEROS: [u8; 2 * FRAME] = [0; 2 * FRAME];
        let tail = &ZEROS[..size - FRAME - payload.len() + FRAME];
        self.file
            .write_parts_at(&[frame, payload, tail], at, Op::Append)
    }

    /// A shared writer's view of the log, from the header: another process may have
    /// appended, grown the file, moved the start, or replaced the file.
    fn refresh(&self, w: &mut Writer) -> Result<()> {
        let (end, last, reserved, replaced) = self.maps.writer_view()?;
        if replaced {
            self.check_replaced()?;
        }
        w.end = end;
        w.next_seq = last + 1;
        if reserved > w.reserved {
            w.reserved = reserved;
        }
        Ok(())
    }

    /// Whether the path now names another file than this log's (a compaction renamed a
    /// fresh file over it).
    pub(crate) fn is_replaced(&self) -> Result<bool> {
        use std::os::unix::fs::MetadataExt;
        let mine = self
            .file
            .metadata()
            .map_err(|e| Error::io(Op::Append, &e).with_path(Some(&self.path)))?;
        let now = std::fs::metadata(&self.path).ok();
        Ok(!now.is_some_and(|m| m.ino() == mine.ino() && m.dev() == mine.dev()))
    }

    /// The header says a compaction replaced the file: `Err(Replaced)` when the path now
    /// names another file; when it still names this one, the compaction died before its
    /// rename, and the mark is cleared (the caller holds the writers' lock).
    pub(crate) fn check_replaced(&self) -> Result<()> {
        if !self.is_replaced()? {
            self.maps
                .with_u32(format::REPLACED, |r| r.store(0, Ordering::Release))?;
            return Ok(());
        }
        Err(Error::new(Op::Append, ErrorKind::Replaced)
            .with_path(Some(&self.path))
            .detail("a compaction renamed a fresh file over this log")
            .hint("open the path again"))
    }

    /// Give back the space reserved past the committed end (keeping a page of it): a
    /// compaction's fresh file, written whole, is then no larger than its records. Only
    /// before the file is shared: a writer in another process may be using the space.
    pub(crate) fn trim_reserve(&self) -> Result<()> {
        let writer = self.writer.as_ref().ok_or_else(|| self.read_only_err())?;
        let mut w = writer.lock().unwrap_or_else(|p| p.into_inner());
        let keep = (w.end + FRAME as u64).next_multiple_of(4096);
        if keep < w.reserved {
            self.file.set_len(keep)?;
            w.reserved = keep;
            self.maps.store_u64(format::RESERVED, keep)?;
        }
        Ok(())
    }

    /// Mark the log replaced (a compaction is about to rename a fresh file over it;
    /// the caller holds the writers' lock).
    pub(crate) fn mark_replaced(&self) -> Result<()> {
        self.maps
            .with_u32(format::REPLACED, |r| r.store(1, Ordering::Release))
    }

    /// Make every committed record durable on storage (`fdatasync`), whatever the
    /// handle's durability.
    ///
    /// `msync(MS_SYNC)` on Linux is `vfs_fsync_range` over the mapped range, the same
    /// writeback `fdatasync` does for the whole file; the log's dirty pages are all in
    /// its one file, so one `fdatasync` covers the records and the header.
    ///
    /// # Errors
    /// The error of `fdatasync` (`EIO` when writeback failed).
    pub fn sync(&self) -> Result<()> {
        self.sync_to(self.published_end.load(Ordering::Acquire))
    }

    /// Flush until `end` is on storage, one flush at a time; appenders that wait while a
    /// flush runs find their records covered by the next one (group commit).
    fn sync_to(&self, end: u64) -> Result<()> {
        if self.synced_end.load(Ordering::Acquire) >= end {
            return Ok(());
        }
        let mut flushing = self.flush_lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if self.synced_end.load(Ordering::Acquire) >= end {
                return Ok(()); // a flush that started after our publish covered us
            }
            if !*flushing {
                break;
            }
            flushing = self
                .flushed
                .wait(flushing)
                .unwrap_or_else(|p| p.into_inner());
        }
        *flushing = true;
        drop(flushing);
        // Ends the flush and wakes every waiter at once, also if `sync_data` panics: the
        // covered ones return together instead of taking a lock one after another, and
        // the rest start the next flush with every record appended meanwhile.
        let _end = FlushEnd(self);
        let upto = self.published_end.load(Ordering::Acquire);
        self.file.sync_data()?;
        self.flushes.fetch_add(1, Ordering::Relaxed);
        // Only now may the header say so: a marker written before the flush could reach
        // storage ahead of the records it claims (see `scan` on torn writes).
        self.maps.advance_durable(upto)?;
        self.synced_end.fetch_max(upto, Ordering::AcqRel);
        Ok(())
    }

    /// Publish `[.., end)` as committed (last seq `last`), and wake followers.
    fn publish(&self, end: u64, last: Seq) -> Result<()> {
        self.maps.publish(end, last)?;
        self.published_end.store(end, Ordering::Release);
        Ok(())
    }

    /// Reserve space for at least `need` bytes: a chunk of an eighth of the file (1 to
    /// 64 MiB) when the file system has it, else exactly what is needed.
    fn grow(&self, w: &mut Writer, need: u64) -> Result<()> {
        const PAGE: u64 = 4096;
        let chunk = (w.reserved / 8).clamp(1 << 20, 64 << 20);
        let generous = need.max(w.reserved + chunk).next_multiple_of(PAGE);
        let exact = need.next_multiple_of(PAGE);
        match self.file.reserve(w.reserved, generous - w.reserved) {
            Ok(()) => w.reserved = generous,
            Err(e) if e.kind() == ErrorKind::NoSpace => {
                self.file
                    .reserve(w.reserved, exact - w.reserved)
                    .map_err(|e| e.at(w.end, need - w.end))?;
                w.reserved = exact;
            }
            Err(e) => return Err(e),
        }
        self.maps.store_u64(format::RESERVED, w.reserved)
    }

    /// Drop every record before `seq` (retention): the log then starts at `seq`, and the
    /// whole pages the dropped records took are punched out of the file (its size stays,
    /// its allocated blocks shrink). `seq` up to the next number to be appended (which
    /// empties the log). Returns the bytes dropped.
    ///
    /// The new start is written to the header's spare meta slot, with a generation and
    /// a checksum, and reaches storage (`fdatasync`, whatever the durability) before any
    /// page is punched: a crash or a power cut in between leaves the log starting at the
    /// old or the new record, both intact. (A punch is a change to the file system's
    /// metadata, which its journal can commit before the header page is written back.)
    /// When no whole page is freed, a `Process` log does not flush.
    ///
    /// # Errors
    /// `OutOfRange` for a `seq` past the next one; the errors of `fallocate` and (with
    /// `Sync`) `fdatasync`.
    pub fn truncate_before(&self, seq: Seq) -> Result<u64> {
        let writer = self.writer.as_ref().ok_or_else(|| self.read_only_err())?;
        let mut w = writer.lock().unwrap_or_else(|p| p.into_inner());
        if self.shared {
            return self.with_write_lock(|| {
                self.refresh(&mut w)?;
                w.meta = self.meta()?;
                self.truncate_locked(&mut w, seq)
            });
        }
        self.truncate_locked(&mut w, seq)
    }

    fn truncate_locked(&self, w: &mut Writer, seq: Seq) -> Result<u64> {
        if seq <= w.meta.start_seq {
            return Ok(0);
        }
        if seq > w.next_seq {
            return Err(Error::new(Op::Write, ErrorKind::OutOfRange)
                .with_path(Some(&self.path))
                .detail(format!(
                    "cannot drop records before {seq}: the next record will be {}",
                    w.next_seq
                )));
        }
        let new_start = if seq == w.next_seq {
            w.end
        } else {
            self.locate(seq)?
        };
        let meta = Meta {
            generation: w.meta.generation + 1,
            start: new_start,
            start_seq: seq,
        };
        // Generation g lives in slot (g + 1) % 2: the new one never overwrites the current.
        let slot = ((meta.generation + 1) % 2) as usize;
        let bytes = meta.encode();
        // SAFETY: the header's meta slot, 32 bytes inside the header page; only the
        // writer writes it, and readers check its CRC (a torn slot is ignored).
        unsafe {
            self.maps.header().with_raw(
                Op::Write,
                META_SLOTS[slot],
                32,
                Protection::READ_WRITE,
                |p| std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, 32),
            )
        }?;
        let dropped = new_start - w.meta.start;
        let from = w.meta.start.next_multiple_of(4096).max(format::DATA_START);
        let to = new_start / 4096 * 4096;
        if to > from {
            self.file.sync_data()?;
            self.file.punch(from, to - from)?;
        } else {
            self.file.commit()?;
        }
        w.meta = meta;
        Ok(dropped)
    }

    /// The error of a write through the log under a read-only key-value store (see
    /// [`Log::over_reader`]), which the store's own types never make.
    pub(super) fn read_only_err(&self) -> Error {
        Error::new(Op::Append, ErrorKind::Unsupported)
            .with_path(Some(&self.path))
            .detail("this log handle is read-only")
            .hint("open it with LogOptions::open to append")
    }
}

impl ReadOnlyLog {
    /// Run `f` holding the shared writers' robust lock (in the header). A writer that
    /// died holding it left nothing published past the committed end (its bytes there
    /// are overwritten), so the state is consistent as it is.
    ///
    /// The lock is file-backed: the word names the holder's [`Owner`] on this file, whose
    /// liveness is an OFD lock the kernel drops with the process — in any PID namespace,
    /// and never carried over a reboot, so a word left by a power cut (or copied with the
    /// file) is taken over at once, never waited on.
    ///
    /// [`Owner`]: crate::shm::sync::Owner
    pub(crate) fn with_write_lock<R>(&self, f: impl FnOnce() -> Result<R>) -> Result<R> {
        let owner = self.owner()?;
        self.maps
            .with_u32(format::WRITE_LOCK, |word| {
                let mutex = crate::shm::sync::RobustMutex::with_owner(word, &owner);
                let mut guard = mutex.lock()?.into_guard();
                guard.mark_consistent();
                f()
            })
            .and_then(|r| r)
    }

    /// This handle's owner on its file for the writers' lock, claimed on first use (and
    /// again in a `fork` child), released with the handle.
    fn owner(&self) -> Result<std::sync::Arc<crate::shm::sync::Owner>> {
        let mut owner = self.owner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(o) = owner.as_ref().filter(|o| o.is_current()) {
            return Ok(o.clone());
        }
        let o = std::sync::Arc::new(crate::shm::sync::Owner::claim(&*self.file)?);
        *owner = Some(o.clone());
        Ok(o)
    }
}

/// Copy one record's frame and payload to `at` through the mapping, with its padding and
/// the zero frame that ends the log after it.
fn copy_record(
    map: &crate::Mapping,
    at: u64,
    frame: &[u8; FRAME],
    payload: &[u8],
    size: usize,
) -> Result<()> {
    // SAFETY: past the committed end, which only this writer (holding the mutex)
    // touches; `size` bytes from `at` lie in the reserved file (checked by the caller).
    unsafe {
        map.with_raw(
            Op::Append,
            at as usize,
            size + FRAME,
            Protection::READ_WRITE,
            |p| {
                std::ptr::copy_nonoverlapping(frame.as_ptr(), p, FRAME);
                std::ptr::copy_nonoverlapping(payload.as_ptr(), p.add(FRAME), payload.len());
                // Padding, and the zero frame that ends the log.
                std::ptr::write_bytes(
                    p.add(FRAME + payload.len()),
                    0,
                    size - FRAME - payload.len() + FRAME,
                );
            },
        )
    }
}
