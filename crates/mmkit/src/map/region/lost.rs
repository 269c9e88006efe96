//! The slow side of a guarded access (out of [`Region::access`]'s inlined fast path):
//! checking that a range is still the file's after another thread's guard replaced
//! pages, recording pages lost to a truncation, and the error that says so.
//!
//! # Safety
//!
//! [`Region::record_fault`] gives pages the guard replaced with anonymous memory back the
//! protection the mapping recorded for them (`mprotect` on pages of our own mapping).
#![allow(unsafe_code)]

use super::super::poison::{diagnose, Lost};
use super::super::Protection;
use super::Region;
use crate::error::{Error, ErrorKind, Op};
use crate::sys;

impl Region {
    /// After a guarded access during which some thread's guard replaced pages: check in
    /// `/proc/self/maps` that every page of `[addr, addr+len)` is still our file's, and
    /// record (and return) the first stretch that is not.
    pub(super) fn verify_backed(&self, addr: usize, len: usize) -> std::result::Result<(), Lost> {
        let Some(file) = self.file else { return Ok(()) };
        let start = addr / self.granule * self.granule;
        let end = (addr + len).div_ceil(self.granule) * self.granule;
        let Ok(maps) = crate::proc::self_maps() else {
            return Ok(());
        };
        let mut covered = start;
        // Areas overlap `[start, end)` when they begin before its end and end after its start.
        let overlapping = maps
            .into_iter()
            .filter(|m| m.address.0 < end as u64 && (start as u64) < m.address.1);
        for m in overlapping {
            let (lo, hi) = (m.address.0 as usize, m.address.1 as usize);
            if lo > covered {
                return Err(self.record_fault(covered, end)); // a hole: pages unmapped
            }
            if m.inode != file.id.ino {
                return Err(self.record_fault(lo.max(start), end)); // replaced pages
            }
            covered = covered.max(hi);
        }
        if covered < end {
            return Err(self.record_fault(covered, end));
        }
        Ok(())
    }

    /// Remember pages `[first, end)` (addresses) the guard replaced, give them back the
    /// protection the map says they have, and diagnose why they were lost.
    pub(super) fn record_fault(&self, first: usize, end: usize) -> Lost {
        let base = self.base.as_ptr() as usize;
        let (start, end) = (first - base, (end - base).min(self.map_len));
        let (kind, file_size) = match self.file {
            Some(f) => diagnose(f.id, self.path(), f.offset + start as u64),
            // Not reached: only file mappings are guarded.
            None => (ErrorKind::StorageFault, None),
        };
        for page in start / self.granule..end.div_ceil(self.granule) {
            let prot = self.prot.at(page);
            if prot != Protection::READ_WRITE {
                // SAFETY: one page of our own mapping, now anonymous memory of ours.
                let _ = unsafe {
                    sys::mprotect(
                        self.base.as_ptr().add(page * self.granule),
                        self.granule,
                        prot.mprotect_flags(),
                    )
                };
            }
        }
        let lost = Lost {
            start,
            end,
            kind,
            file_size,
        };
        self.poison.add(lost);
        lost
    }

    pub(super) fn lost_err(&self, op: Op, lost: Lost, off: usize, len: usize) -> Error {
        let usable = lost.start.saturating_sub(self.delta);
        let e = self.err(op, lost.kind, off, len);
        let lost_at = self.file.map_or(0, |f| f.offset + lost.start as u64);
        let e = match (lost.kind, lost.file_size) {
            (ErrorKind::Truncated, Some(size)) if size > lost_at => e.detail(format!(
                "the file was truncated under the mapping (it has grown back to {size} bytes since)"
            )),
            (ErrorKind::Truncated, Some(size)) => e.detail(format!(
                "the file was truncated to {size} bytes under the mapping"
            )),
            (ErrorKind::Truncated, None) => e.detail(
                "the file was truncated under the mapping (or its storage failed: the file \
                 could not be inspected)",
            ),
            _ => e,
        };
        if lost.kind == ErrorKind::NoSpace {
            return e.hint(
                "free space on the file system, then remap() to go on (the page that could \
                 not be written stays unusable in this mapping); reserve space first with \
                 fallocate to avoid this",
            );
        }
        e.hint(format!(
            "the first {usable} bytes of the mapping are still backed by the file; \
             remap() to that length, or to the file's new length, to go on"
        ))
    }
}
