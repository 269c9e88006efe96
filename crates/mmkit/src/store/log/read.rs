//! Reading: finding a record by number (a sparse index), copying it out with its
//! checksum verified, and iterating. Following is in `follow`, `check` and `stats` in
//! `inspect`.
//!
//! # Safety
//!
//! A record is read in place under the SIGBUS guard, its length checked against the
//! committed end before it is used, and copied (or checksummed, then copied) before it
//! is trusted. [`Entry::with_bytes`] is `unsafe`: its caller promises that no process
//! writes the file outside mmkit while `f` runs.
#![allow(unsafe_code)]

use super::ReadOnlyLog;
use crate::map::Protection;
use crate::store::format::{self, frame_crc, Frame, Meta, FRAME, META_SLOTS};
use crate::store::Seq;
use crate::{Error, ErrorKind, Op, Result};

/// One anchor every this many records.
const STRIDE: u64 = 64;

/// Sparse index: the offset of every `STRIDE`th record from the start, filled lazily.
#[derive(Debug)]
pub(crate) struct Index {
    meta: Meta,
    /// `(seq, offset)` of records, ascending; the first is the log's start.
    anchors: Vec<(Seq, u64)>,
}

impl Index {
    pub(crate) fn new(meta: Meta) -> Index {
        Index {
            meta,
            anchors: vec![(meta.start_seq, meta.start)],
        }
    }
}

/// A committed record, found but not yet copied: its number and length are known, its
/// bytes are read (and their checksum verified) on demand.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'log> {
    log: &'log ReadOnlyLog,
    seq: Seq,
    offset: u64,
    len: u32,
}

impl<'log> Entry<'log> {
    /// The record at a known place (the key-value store's index keeps these); its
    /// bytes are checked when read.
    pub(crate) fn at(log: &'log ReadOnlyLog, offset: u64, seq: Seq, len: u32) -> Entry<'log> {
        Entry {
            log,
            seq,
            offset,
            len,
        }
    }

    /// The record's sequence number.
    pub fn seq(&self) -> Seq {
        self.seq
    }

    /// The payload's length in bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copy the payload out, with its checksum verified on the copy.
    ///
    /// # Errors
    /// `Corrupt` when the checksum fails; `NotFound` when the record was dropped by
    /// `truncate_before` meanwhile; `Truncated` when the file was cut under it.
    pub fn read(&self) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.read_into(&mut buf)?;
        Ok(buf)
    }

    /// As [`read`](Self::read), into `buf` (cleared first), reusing its allocation.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn read_into(&self, buf: &mut Vec<u8>) -> Result<()> {
        let total = FRAME + self.len as usize;
        buf.clear();
        buf.reserve(total);
        // SAFETY: the frame is copied out into spare capacity of `buf`, and only then
        // checked.
        unsafe {
            self.with_frame(|p| {
                std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), total);
                buf.set_len(total);
            })
        }?;
        let head: [u8; FRAME] = buf[..FRAME].try_into().expect("a frame");
        let f = Frame::decode(&head);
        if f.seq != self.seq || f.len != self.len || frame_crc(&head, &buf[FRAME..]) != f.crc {
            buf.clear();
            return Err(self.log.damaged_or_dropped(self.seq, self.offset));
        }
        buf.drain(..FRAME);
        Ok(())
    }

    /// Run `f` over the payload in place (zero-copy), after its checksum was verified in
    /// place, under the SIGBUS guard.
    ///
    /// # Safety
    /// No process may write the record's bytes while `f` runs: committed records are
    /// never written by mmkit, but `truncate_before` in another process zeroes them,
    /// and any process can write the file.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub unsafe fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        // SAFETY: forwarded from the caller.
        unsafe { self.with_bytes_checked(true, f) }
    }

    /// As [`with_bytes`](Self::with_bytes); with `verify` false the frame's number and
    /// length are checked but not the checksum (for records whose checksum was verified
    /// when they were first read: the key-value store's index).
    ///
    /// # Safety
    /// As [`with_bytes`](Self::with_bytes).
    pub(crate) unsafe fn with_bytes_checked<R>(
        &self,
        verify: bool,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        let total = FRAME + self.len as usize;
        // SAFETY: `f` sees the payload only; the caller promises no writer while it runs.
        let r = unsafe {
            self.with_frame(|p| {
                let bytes = std::slice::from_raw_parts(p, total);
                let head: &[u8; FRAME] = bytes[..FRAME].try_into().expect("a frame");
                let frame = Frame::decode(head);
                let ok = frame.seq == self.seq
                    && frame.len == self.len
                    && !frame.pad
                    && (!verify || frame_crc(head, &bytes[FRAME..]) == frame.crc);
                ok.then(|| f(&bytes[FRAME..]))
            })
        }?;
        r.ok_or_else(|| self.log.damaged_or_dropped(self.seq, self.offset))
    }

    /// Run `f` on a pointer to the record's frame (header and payload) under the SIGBUS
    /// guard; an error names the log's file.
    ///
    /// # Safety
    /// `f` may touch only the frame's bytes, and must check what it reads (another
    /// process can write the file).
    unsafe fn with_frame<R>(&self, f: impl FnOnce(*mut u8) -> R) -> Result<R> {
        let total = FRAME + self.len as usize;
        let map = self.log.maps.get();
        // SAFETY: the frame lies below the committed end (checked when the entry was
        // found), inside the mapping; `f`'s part is the caller's promise.
        unsafe { map.with_raw(Op::Read, self.offset as usize, total, Protection::READ, f) }
            .map_err(|e| e.with_path(Some(&self.log.path)))
    }
}

/// Iterates over committed records in order (see [`ReadOnlyLog::iter`]). Yields `Err` once and
/// stops at damage. After it returns `None`, it can be polled again and continues with
/// records committed since.
#[derive(Debug)]
pub struct Iter<'log> {
    pub(super) log: &'log ReadOnlyLog,
    pub(super) next_seq: Seq,
    /// Where `next_seq` is, once found.
    at: Option<u64>,
    failed: bool,
}

impl<'log> Iterator for Iter<'log> {
    type Item = Result<Entry<'log>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.step() {
            Ok(found) => found.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

impl<'log> Iter<'log> {
    fn step(&mut self) -> Result<Option<Entry<'log>>> {
        let (last, end) = self.log.snapshot()?;
        if self.next_seq > last {
            return Ok(None);
        }
        let at = match self.at {
            Some(at) => at,
            None => match self.log.locate_from(self.next_seq)? {
                Some((seq, at)) => {
                    self.next_seq = seq;
                    at
                }
                None => return Ok(None),
            },
        };
        let (entry, after) = self.log.entry_at(at, self.next_seq, end)?;
        self.at = Some(after);
        self.next_seq = entry.seq + 1;
        Ok(Some(entry))
    }
}

impl ReadOnlyLog {
    /// The record `seq`, copied out with its checksum verified.
    ///
    /// # Errors
    /// `NotFound` for a number not in the log (not yet appended, dropped by
    /// `truncate_before`, or lost to a salvaged hole); `Corrupt` when its checksum
    /// fails; `Truncated` when the file was cut under it.
    pub fn get(&self, seq: Seq) -> Result<Vec<u8>> {
        self.entry(seq)?.read()
    }

    /// The record `seq`, found but not copied.
    ///
    /// # Errors
    /// As [`get`](Self::get), except a checksum, which is verified on read.
    pub fn entry(&self, seq: Seq) -> Result<Entry<'_>> {
        let (_, end) = self.snapshot()?;
        let at = self.locate(seq)?;
        let (e, _) = self.entry_at(at, seq, end)?;
        if e.seq != seq {
            return Err(self.not_found(seq).detail(format!(
                "record {seq} was lost to damage (a salvaged hole before record {})",
                e.seq
            )));
        }
        Ok(e)
    }

    /// Every committed record, in order.
    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(0)
    }

    /// Committed records from `seq` on (from the first, when `seq` is older).
    pub fn iter_from(&self, seq: Seq) -> Iter<'_> {
        Iter {
            log: self,
            next_seq: seq,
            at: None,
            failed: false,
        }
    }

    /// The first sequence number held, `None` when the log is empty.
    ///
    /// # Errors
    /// `Truncated`/`Corrupt` when the header cannot be read.
    pub fn first(&self) -> Result<Option<Seq>> {
        let meta = self.meta()?;
        let (last, _) = self.committed()?;
        Ok((last >= meta.start_seq).then_some(meta.start_seq))
    }

    /// The last committed sequence number, `None` when the log is empty.
    ///
    /// # Errors
    /// As [`first`](Self::first).
    pub fn last(&self) -> Result<Option<Seq>> {
        let meta = self.meta()?;
        let (last, _) = self.committed()?;
        Ok((last >= meta.start_seq).then_some(last))
    }

    /// How many sequence numbers the log holds (`last - first + 1`).
    ///
    /// # Errors
    /// As [`first`](Self::first).
    pub fn len(&self) -> Result<u64> {
        let meta = self.meta()?;
        let (last, _) = self.committed()?;
        Ok((last + 1).saturating_sub(meta.start_seq))
    }

    /// Whether the log holds no record.
    ///
    /// # Errors
    /// As [`first`](Self::first).
    pub fn is_empty(&self) -> Result<bool> {
        self.len().map(|n| n == 0)
    }

    /// Where the log starts: its first sequence number and that record's offset.
    pub(crate) fn start(&self) -> Result<(Seq, u64)> {
        let meta = self.meta()?;
        Ok((meta.start_seq, meta.start))
    }

    /// The last committed sequence number (0 before the first) and whether a compaction
    /// replaced the file: one shared read, for the key-value store's check that it is up
    /// to date.
    pub(crate) fn poll(&self) -> Result<(Seq, bool)> {
        let (last, replaced) = self.maps.poll()?;
        match self.cap {
            Some(cap) if cap.header.0 == last => Ok((cap.view.0, replaced)),
            _ => Ok((last, replaced)),
        }
    }

    /// The committed `(last, end)`, with a mapping that covers `end` (a writer in another
    /// process may have grown the file past this handle's first mapping).
    pub(super) fn snapshot(&self) -> Result<(Seq, u64)> {
        let (last, end) = self.committed()?;
        if end > self.maps.get().len() as u64 {
            // Past this handle's mapping: the file grew, or the header is damaged.
            let len = self
                .file
                .metadata()
                .map_err(|e| Error::io(Op::Read, &e).with_path(Some(&self.path)))?
                .len();
            if end > len {
                return Err(Error::new(Op::Read, ErrorKind::Corrupt)
                    .with_path(Some(&self.path))
                    .detail(format!(
                        "the header's committed end ({end}) is past the end of the file ({len} bytes)"
                    ))
                    .hint("mmkit log check verifies the records; a writer's open repairs the header"));
            }
            self.maps.covering(&self.file, &self.path, end)?;
        }
        Ok((last, end))
    }

    /// The current meta slot, read from the shared header (another process may have
    /// moved the start).
    pub(super) fn meta(&self) -> Result<Meta> {
        let mut raw = [0u8; 64];
        // SAFETY: the two meta slots, copied out under the guard and then checked.
        unsafe {
            self.maps
                .header()
                .with_raw(Op::Read, META_SLOTS[0], 64, Protection::READ, |p| {
                    std::ptr::copy_nonoverlapping(p, raw.as_mut_ptr(), 64)
                })
        }?;
        let slot = |i: usize| Meta::decode(raw[i * 32..i * 32 + 32].try_into().expect("32"));
        Meta::current([slot(0), slot(1)])
            .map(|(_, m)| m)
            .ok_or_else(|| {
                Error::new(Op::Read, ErrorKind::Corrupt)
                    .with_path(Some(&self.path))
                    .detail("both of the log's meta slots are damaged")
            })
    }

    /// The offset of record `seq` (or of the pad before it, when a salvaged hole took
    /// it: `entry_at` then finds a later number).
    pub(super) fn locate(&self, seq: Seq) -> Result<u64> {
        if seq < self.meta()?.start_seq {
            return Err(self.not_found(seq));
        }
        self.locate_from(seq)?
            .map(|(_, at)| at)
            .ok_or_else(|| self.not_found(seq))
    }

    /// The offset of the first record numbered `seq` or later, with `seq` raised to the
    /// log's first number (`None` past the last).
    pub(super) fn locate_from(&self, seq: Seq) -> Result<Option<(Seq, u64)>> {
        let meta = self.meta()?;
        let (last, end) = self.snapshot()?;
        let seq = seq.max(meta.start_seq);
        if seq > last {
            return Ok(None);
        }
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        if index.meta != meta {
            *index = Index::new(meta);
        }
        let i = index.anchors.partition_point(|&(s, _)| s <= seq) - 1;
        let (mut s, mut at) = index.anchors[i];
        let extend = i + 1 == index.anchors.len();
        while s < seq {
            let (e, after) = self.entry_at(at, s, end)?;
            if e.seq == seq {
                at = e.offset; // the record itself, maybe past pads
                break;
            }
            if e.seq > seq {
                // The pads skipped past `seq`: it was lost to a hole. Stay on the pad,
                // where `entry_at` (expecting `seq`) skips to the next record.
                break;
            }
            at = after;
            s = e.seq + 1;
            if extend && s >= index.anchors.last().map_or(0, |a| a.0) + STRIDE {
                index.anchors.push((s, at));
            }
        }
        Ok(Some((seq, at)))
    }

    /// The record at `at` (numbered `seq` or, past a pad, later), below `end`: returns
    /// it and the offset after it. Checks framing, not the payload's checksum.
    pub(super) fn entry_at(&self, mut at: u64, seq: Seq, end: u64) -> Result<(Entry<'_>, u64)> {
        let mut expect = seq;
        loop {
            if at + FRAME as u64 > end {
                return Err(self.damaged_or_dropped(expect, at));
            }
            let mut head = [0u8; FRAME];
            // SAFETY: a frame below the committed end, copied out under the guard.
            unsafe {
                self.maps
                    .get()
                    .with_raw(Op::Read, at as usize, FRAME, Protection::READ, |p| {
                        std::ptr::copy_nonoverlapping(p, head.as_mut_ptr(), FRAME)
                    })
            }
            .map_err(|e| e.with_path(Some(&self.path)))?;
            let f = Frame::decode(&head);
            let fits = at + f.size() <= end;
            if f.pad && fits && f.seq + 1 >= expect {
                at += f.size();
                expect = f.seq + 1;
                continue;
            }
            if f.pad || !fits || f.seq != expect || f.len as usize > format::MAX_PAYLOAD {
                return Err(self.damaged_or_dropped(expect, at));
            }
            let entry = Entry {
                log: self,
                seq: f.seq,
                offset: at,
                len: f.len,
            };
            return Ok((entry, at + f.size()));
        }
    }

    fn not_found(&self, seq: Seq) -> Error {
        let range = match (self.first(), self.last()) {
            (Ok(Some(f)), Ok(Some(l))) => format!("the log holds {f}..={l}"),
            _ => "the log is empty".to_string(),
        };
        Error::new(Op::Read, ErrorKind::NotFound)
            .with_path(Some(&self.path))
            .detail(format!("no record {seq}: {range}"))
    }

    /// The error for a record that did not check out at `at`: `NotFound` when the log
    /// no longer holds `seq` (dropped meanwhile), else `Corrupt`.
    pub(super) fn damaged_or_dropped(&self, seq: Seq, at: u64) -> Error {
        if let Ok(meta) = self.meta() {
            if seq < meta.start_seq {
                return self.not_found(seq);
            }
        }
        Error::new(Op::Read, ErrorKind::Corrupt)
            .with_path(Some(&self.path))
            .at(at, FRAME as u64)
            .detail(format!("record {seq} at byte {at} is damaged (framing or checksum)"))
            .hint("mmkit log check lists the damage; a writer opened with Recovery::Salvage keeps the intact records")
    }
}
