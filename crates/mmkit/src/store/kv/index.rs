//! The in-memory index of a key-value store: where each key's last record is, rebuilt
//! from the log on open and kept up with the log's tail (records another process
//! appended) before each operation.

use std::collections::HashMap;

use super::codec::{self, DELETE, PREFIX};
use super::hash::KeyHash;
use crate::store::log::Entry;
use crate::store::{Log, Seq};
use crate::Result;

/// Where a key's value is: its record's place in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    pub(crate) offset: u64,
    pub(crate) seq: Seq,
    /// The record's payload length (prefix, key and value).
    pub(crate) len: u32,
}

impl Loc {
    pub(crate) fn entry<'log>(&self, log: &'log Log) -> Entry<'log> {
        Entry::at(log, self.offset, self.seq, self.len)
    }
}

/// The keys, their records, and how far into the log they have been read.
#[derive(Debug, Default)]
pub(crate) struct Index {
    pub(crate) map: HashMap<Box<[u8]>, Loc, KeyHash>,
    /// Bytes of the live records (frames included): what compaction keeps.
    pub(crate) live_bytes: u64,
    /// Where the log starts (what `next_at` counts from for the log's size).
    pub(crate) start_at: u64,
    /// The next record to apply, and where it starts.
    pub(crate) next_seq: Seq,
    pub(crate) next_at: u64,
    /// Records that were not key-value operations (skipped).
    pub(crate) foreign: u64,
}

impl Index {
    /// An index of nothing, to be filled from `log`'s first record.
    pub(crate) fn new(log: &Log) -> Result<Index> {
        let (seq, at) = log.start()?;
        Ok(Index {
            next_seq: seq,
            next_at: at,
            start_at: at,
            ..Index::default()
        })
    }

    /// Bytes of every record applied (live or not): the log's size as far as read.
    pub(crate) fn total_bytes(&self) -> u64 {
        self.next_at - self.start_at
    }

    /// Apply every record committed after the last one applied. Returns how many.
    pub(crate) fn catch_up(&mut self, log: &Log) -> Result<u64> {
        let mut applied = 0;
        let (seq, at) = log.for_each_from(self.next_seq, self.next_at, |raw| {
            self.apply(raw.offset, raw.seq, raw.size, raw.payload);
            applied += 1;
        })?;
        (self.next_seq, self.next_at) = (seq, at);
        Ok(applied)
    }

    /// Apply one record: number `seq` at `offset`, taking `size` bytes, with payload
    /// `rec`.
    pub(crate) fn apply(&mut self, offset: u64, seq: Seq, size: u64, rec: &[u8]) {
        let loc = Loc {
            offset,
            seq,
            len: rec.len() as u32,
        };
        self.next_seq = seq + 1;
        self.next_at = offset + size;
        let Some((op, key, _)) = codec::decode(rec) else {
            self.foreign += 1;
            return;
        };
        let old = if op == DELETE {
            self.map.remove(key)
        } else {
            self.live_bytes += size;
            match self.map.get_mut(key) {
                Some(slot) => Some(std::mem::replace(slot, loc)),
                None => self.map.insert(key.into(), loc),
            }
        };
        if let Some(old) = old {
            self.live_bytes -= crate::store::format::record_size(old.len as usize);
        }
    }

    /// The offset of a key's value inside its record's payload.
    pub(crate) fn value_start(key: &[u8]) -> usize {
        PREFIX + key.len()
    }
}
