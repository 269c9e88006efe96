//! What a log reports: recovery on open, `check`, and `stats`.

use std::fmt;

use crate::store::{Durability, Seq};

/// A damaged stretch of a log: the bytes, and the sequence numbers it took with it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Damage {
    /// The file offset where the damage starts (a record boundary).
    pub offset: u64,
    /// How many bytes are damaged.
    pub bytes: u64,
    /// The first sequence number lost: the one the damaged record should have had.
    pub first_lost: Seq,
    /// The first intact record after the damage, when there is one; the numbers
    /// `first_lost..next_intact` are lost. `None` for a torn tail.
    pub next_intact: Option<Seq>,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (from, to) = (self.offset, self.offset + self.bytes);
        match self.next_intact {
            Some(next) if next > self.first_lost => write!(
                f,
                "bytes {from}..{to} damaged: records {}..={} lost",
                self.first_lost,
                next - 1
            ),
            Some(_) => write!(f, "bytes {from}..{to} damaged: no record lost"),
            None => write!(
                f,
                "torn tail at bytes {from}..{to}: records from {} on were not complete",
                self.first_lost
            ),
        }
    }
}

/// What opening a log for writing found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RecoveryReport {
    /// Intact records kept.
    pub records: u64,
    /// A torn tail cut off (what a crash during an append leaves), or with
    /// [`Recovery::Truncate`](crate::store::Recovery::Truncate) everything from the first
    /// damage on.
    pub cut: Option<Damage>,
    /// Intact records dropped because they followed damage (`Recovery::Truncate`).
    pub dropped_records: u64,
    /// Damaged stretches skipped and marked (`Recovery::Salvage`).
    pub holes: Vec<Damage>,
}

impl RecoveryReport {
    /// Whether the log was intact: nothing cut, dropped or skipped.
    pub fn is_clean(&self) -> bool {
        self.cut.is_none() && self.holes.is_empty() && self.dropped_records == 0
    }
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_clean() {
            return write!(f, "intact: {} records", self.records);
        }
        write!(f, "recovered {} records", self.records)?;
        if let Some(cut) = &self.cut {
            write!(f, "; cut {} bytes ({cut})", cut.bytes)?;
        }
        if self.dropped_records > 0 {
            write!(
                f,
                "; dropped {} intact records after the damage",
                self.dropped_records
            )?;
        }
        for hole in &self.holes {
            write!(f, "; skipped {hole}")?;
        }
        Ok(())
    }
}

/// What a store's `check` found: [`ReadOnlyLog::check`](super::ReadOnlyLog::check),
/// [`ReadOnlyKv::check`](crate::store::ReadOnlyKv::check) (the log under the store) and
/// [`ReadOnlyRecordFile::check`](crate::store::ReadOnlyRecordFile::check) (`fell_back`
/// and `damaged`; a record file has no sequence numbers, so `first`, `last`, `damage`
/// and `torn_tail` stay empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct CheckReport {
    /// Intact records, every one's checksum verified (for a record file: the records it
    /// holds).
    pub records: u64,
    /// The first and last intact sequence numbers.
    pub first: Option<Seq>,
    /// See `first`.
    pub last: Option<Seq>,
    /// Damage inside the committed part of the log (records that had been acknowledged),
    /// or with intact records after it.
    pub damage: Vec<Damage>,
    /// An incomplete record past the committed end: what a crash during an append
    /// leaves. Not damage; the writer's next open cuts it.
    pub torn_tail: Option<Damage>,
    /// A record file's records whose newer slot is damaged (what a torn update leaves):
    /// they read as their previous value. The next `set` of each overwrites the damaged
    /// slot. Not damage.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Vec::is_empty"))]
    pub fell_back: Vec<usize>,
    /// A record file's records with no valid slot: `get` is `Err(Corrupt)` for them
    /// until they are `set` again.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Vec::is_empty"))]
    pub damaged: Vec<usize>,
}

impl CheckReport {
    /// Whether every committed record is intact (a record file's: whether every record
    /// reads back).
    pub fn is_intact(&self) -> bool {
        self.damage.is_empty() && self.damaged.is_empty()
    }

    /// Whether every record reads back: [`is_intact`](Self::is_intact).
    #[deprecated(note = "use is_intact; a record file's check returns a CheckReport")]
    pub fn is_ok(&self) -> bool {
        self.is_intact()
    }
}

/// Counters and sizes of a log (see [`ReadOnlyLog::stats`](super::ReadOnlyLog::stats)).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct LogStats {
    /// The first and last sequence numbers held (`None` when empty).
    pub first: Option<Seq>,
    /// See `first`.
    pub last: Option<Seq>,
    /// Sequence numbers held: `last - first + 1` (a salvaged hole's lost numbers
    /// included).
    pub records: u64,
    /// Bytes the records take, frames included.
    pub used_bytes: u64,
    /// The file's size, with the space reserved ahead of appends.
    pub file_bytes: u64,
    /// Bytes allocated on storage (`st_blocks`); less than `file_bytes` once
    /// `truncate_before` has punched out dropped records.
    pub allocated_bytes: u64,
    /// The durability of this handle's appends.
    pub durability: Durability,
    /// Appends (records) through this handle since it opened.
    pub appends: u64,
    /// `fdatasync` calls this handle made for them.
    pub flushes: u64,
}

impl LogStats {
    /// Flushes per appended record: 1.0 without group commit, less with it.
    pub fn flushes_per_append(&self) -> f64 {
        if self.appends == 0 {
            0.0
        } else {
            self.flushes as f64 / self.appends as f64
        }
    }
}
