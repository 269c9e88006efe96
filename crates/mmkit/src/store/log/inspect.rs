//! Looking at a whole log: `check` (every record verified, damage and torn tails told
//! apart) and `stats`.
//!
//! # Safety
//!
//! `check` scans the file's bytes in one guarded read and only looks at them: a byte
//! another process changes meanwhile can only make a record fail its checks.
#![allow(unsafe_code)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::report::{CheckReport, Damage, LogStats};
use super::scan::{scan, Scan};
use super::ReadOnlyLog;
use crate::map::Protection;
use crate::store::format::Meta;
use crate::{Error, ErrorKind, Op, Result};

impl ReadOnlyLog {
    /// Verify every record from the start to the end of the file: checksums, numbers,
    /// framing. Damage below the committed end (or with intact records after it) is
    /// listed in `damage`; an incomplete record past the committed end is a `torn_tail`.
    /// Changes nothing.
    ///
    /// With a writer appending meanwhile, the bytes past the committed end change while
    /// they are read: what looks like damage there with records after it is scanned
    /// again (up to three times, a millisecond apart) before it is called damage.
    ///
    /// # Errors
    /// `Truncated` when the file shrinks during the check.
    pub fn check(&self) -> Result<CheckReport> {
        let mut tries = 1;
        loop {
            let (report, unsure) = self.check_once()?;
            if !unsure || tries == 3 {
                return Ok(report);
            }
            tries += 1;
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// One scan for [`check`](Self::check); also whether it found damage past the
    /// committed end with records after it, which an append in flight can look like.
    fn check_once(&self) -> Result<(CheckReport, bool)> {
        let meta = self.meta()?;
        let (_, end) = self.committed()?;
        let len = self
            .file
            .metadata()
            .map_err(|e| Error::io(Op::Recover, &e).with_path(Some(&self.path)))?
            .len();
        // A writer appending meanwhile writes past the committed end only: the scan
        // reports that as a torn tail (and `check` looks again).
        let durable = self.durable_from(meta, len)?;
        let found = self.scan_file(meta, len, durable)?;
        let moved = self.committed()?.1 != end;
        let mut unsure = false;
        let mut report = CheckReport {
            records: found.runs.iter().map(|r| r.records).sum(),
            ..CheckReport::default()
        };
        let kept: Vec<_> = found.runs.iter().filter(|r| r.records > 0).collect();
        report.first = kept.first().map(|r| r.first_seq);
        report.last = kept.last().map(|r| r.next_seq - 1);
        for (i, bad) in found.bad.iter().enumerate() {
            let next = found.runs.get(i + 1);
            let d = Damage {
                offset: bad.offset,
                bytes: bad.end - bad.offset,
                first_lost: bad.first_lost,
                next_intact: next.map(|r| r.first_seq),
            };
            // A write torn by a power cut (past the durable end: see `scan`), whatever the
            // header's committed end claims. Past the committed end: an append in
            // flight, or a crashed one's leftovers. When the end moved during the scan,
            // whatever lay past the old end was being written while it was read, so even
            // with records after it, it is not damage.
            let torn = found.torn && i + 1 == found.bad.len();
            if torn || (bad.offset >= end && (next.is_none() || moved)) {
                report.torn_tail.get_or_insert(d);
            } else {
                unsure |= bad.offset >= end;
                report.damage.push(d);
            }
        }
        Ok((report, unsure))
    }

    /// Sizes and counters.
    ///
    /// # Errors
    /// As [`first`](Self::first), and `fstat`'s.
    pub fn stats(&self) -> Result<LogStats> {
        use std::os::unix::fs::MetadataExt;
        let meta = self.meta()?;
        let (last, end) = self.committed()?;
        let md = self
            .file
            .metadata()
            .map_err(|e| Error::io(Op::Probe, &e).with_path(Some(&self.path)))?;
        let held = last >= meta.start_seq;
        Ok(LogStats {
            first: held.then_some(meta.start_seq),
            last: held.then_some(last),
            records: (last + 1).saturating_sub(meta.start_seq),
            used_bytes: end.saturating_sub(meta.start),
            file_bytes: md.len(),
            allocated_bytes: md.blocks() * 512,
            durability: self.file.durability(),
            appends: self.appends.load(Ordering::Relaxed),
            flushes: self.flushes.load(Ordering::Relaxed),
        })
    }

    /// Scan the file's first `len` bytes from `meta`'s start (see `scan`), in one
    /// guarded read; `durable` is the durable end (see `scan`).
    pub(super) fn scan_file(&self, meta: Meta, len: u64, durable: u64) -> Result<Scan> {
        let whole =
            usize::try_from(len).map_err(|_| Error::new(Op::Recover, ErrorKind::LengthOverflow))?;
        let map = self.maps.covering(&self.file, &self.path, len)?;
        // SAFETY: the file's bytes, read under the guard and only looked at: a byte
        // another process changes meanwhile can only make a record fail its checks.
        unsafe {
            map.with_raw(Op::Recover, 0, whole, Protection::READ, |p| {
                scan(
                    std::slice::from_raw_parts(p, whole),
                    meta.start,
                    meta.start_seq,
                    durable,
                )
            })
        }
        .map_err(|e| e.with_path(Some(&self.path)))
    }
}
