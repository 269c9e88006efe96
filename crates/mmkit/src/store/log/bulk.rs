//! Reading many committed records at once, in one guarded access: how the key-value
//! store builds and refreshes its index (a guarded access per record would cost more
//! than the record).
//!
//! # Safety
//!
//! Committed records are walked in one guarded read, each checked (length against the
//! committed end, frame) before its bytes are handed to the callback.
#![allow(unsafe_code)]

use super::ReadOnlyLog;
use crate::map::Protection;
use crate::store::format::{frame_crc, Frame, FRAME};
use crate::store::Seq;
use crate::{Op, Result};

/// A record handed to [`Log::for_each_from`]'s callback.
pub(crate) struct Raw<'a> {
    pub(crate) seq: Seq,
    pub(crate) offset: u64,
    /// The bytes the record takes, frame and padding included.
    pub(crate) size: u64,
    pub(crate) payload: &'a [u8],
}

impl ReadOnlyLog {
    /// Call `f` on every committed record from `seq`, whose frame starts at `at`, in
    /// order, each checksum verified in place; returns the next `(seq, at)`.
    ///
    /// # Errors
    /// `Corrupt` at a record whose framing or checksum fails (`f` has seen every record
    /// before it); `Truncated` when the file is cut meanwhile.
    pub(crate) fn for_each_from(
        &self,
        seq: Seq,
        at: u64,
        mut f: impl FnMut(Raw<'_>),
    ) -> Result<(Seq, u64)> {
        let (last, end) = self.snapshot()?;
        if seq > last || at >= end {
            return Ok((seq, at));
        }
        let len = (end - at) as usize;
        let map = self.maps.get();
        // SAFETY: `[at, end)` is committed: mmkit never writes it again (a process that
        // writes the file outside the protocol can only make a checksum fail). The
        // bytes are read under the guard, and every record's checksum is verified
        // before `f` sees it.
        let walked = unsafe {
            map.with_raw(Op::Read, at as usize, len, Protection::READ, |p| {
                walk(std::slice::from_raw_parts(p, len), seq, at, &mut f)
            })
        }
        .map_err(|e| e.with_path(Some(&self.path)))?;
        match walked {
            Ok(next) => Ok(next),
            Err((seq, offset)) => Err(self.damaged_or_dropped(seq, offset)),
        }
    }
}

/// Walk the frames of `bytes` (which start at file offset `base`); `Err` holds the
/// expected number and the offset of a frame that does not check out.
fn walk(
    bytes: &[u8],
    mut seq: Seq,
    base: u64,
    f: &mut impl FnMut(Raw<'_>),
) -> std::result::Result<(Seq, u64), (Seq, u64)> {
    let mut i = 0usize;
    while i < bytes.len() {
        let offset = base + i as u64;
        let head: &[u8; FRAME] = bytes
            .get(i..i + FRAME)
            .and_then(|h| h.try_into().ok())
            .ok_or((seq, offset))?;
        let frame = Frame::decode(head);
        let size = frame.size() as usize;
        let payload = bytes
            .get(i + FRAME..i + FRAME + frame.len as usize)
            .filter(|_| i + size <= bytes.len())
            .ok_or((seq, offset))?;
        if frame_crc(head, payload) != frame.crc {
            return Err((seq, offset));
        }
        if frame.pad {
            if frame.seq + 1 < seq {
                return Err((seq, offset));
            }
            seq = frame.seq + 1;
        } else {
            if frame.seq != seq {
                return Err((seq, offset));
            }
            f(Raw {
                seq,
                offset,
                size: size as u64,
                payload,
            });
            seq += 1;
        }
        i += size;
    }
    Ok((seq, base + i as u64))
}
