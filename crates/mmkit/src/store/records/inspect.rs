//! Looking at a whole record file: `check` (every record's slots read and decided),
//! `stats`, and the recovery report.

use std::os::unix::fs::MetadataExt;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::format::Record;
use super::ReadOnlyRecordFile;
use crate::store::{CheckReport, Durability, RecoveryReport};
use crate::{Error, Op, Result};

/// Sizes of a record file (see [`ReadOnlyRecordFile::stats`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct RecordFileStats {
    /// The records the file holds, as this handle last saw.
    pub records: u64,
    /// The records the file has room for before it grows.
    pub capacity: u64,
    /// One record's bytes (`size_of::<T>()`).
    pub record_bytes: u64,
    /// The file's size.
    pub file_bytes: u64,
    /// Bytes allocated on storage (`st_blocks`).
    pub allocated_bytes: u64,
    /// The durability of this handle's updates.
    pub durability: Durability,
}

impl<T: FromBytes + IntoBytes + Immutable + KnownLayout> ReadOnlyRecordFile<T> {
    /// Read every record's slots and report the damaged ones and those that fell back to
    /// their previous value.
    ///
    /// # Errors
    /// `Truncated`/`StorageFault` when the file cannot be read.
    pub fn check(&self) -> Result<CheckReport> {
        let mut report = CheckReport {
            records: self.len,
            ..CheckReport::default()
        };
        let mut pair = vec![0u8; 2 * self.slot];
        for i in 0..self.len() {
            match self.read_record(i, &mut pair)? {
                Record::Damaged => report.damaged.push(i),
                Record::Value {
                    fell_back: true, ..
                } => report.fell_back.push(i),
                _ => {}
            }
        }
        Ok(report)
    }

    /// Sizes and counts.
    ///
    /// # Errors
    /// `fstat`'s.
    pub fn stats(&self) -> Result<RecordFileStats> {
        let md = self
            .file
            .metadata()
            .map_err(|e| Error::io(Op::Probe, &e).with_path(Some(&self.path)))?;
        Ok(RecordFileStats {
            records: self.len,
            capacity: self.cap,
            record_bytes: std::mem::size_of::<T>() as u64,
            file_bytes: md.len(),
            allocated_bytes: md.blocks() * 512,
            durability: self.file.durability(),
        })
    }

    /// What opening found: the records the file held. A record file needs no recovery
    /// (a torn update reads as the previous value, which [`check`](Self::check) lists),
    /// so the report is always clean; it is here so that the three stores answer the
    /// same questions the same way.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovered
    }
}
