//! The **persist** pillar: data that survives the program's crash, on a mapped file.
//!
//! - [`Log`]: an append-only log of byte records, each framed with its length, a
//!   sequence number and a CRC32C. Appends go straight into a shared mapping; readers in
//!   other processes follow the tail as records commit.
//! - [`Kv`]: a key-value store on a log, shared by several processes at once (writers
//!   take turns through a robust lock in the file's header), compacted into a fresh file
//!   that replaces the old one atomically.
//! - [`RecordFile`]: an array of fixed-size typed records (zerocopy types), each slot
//!   checksummed, updated in place through two slots so that a torn update is never read
//!   back.
//!
//! What the stores people use get wrong, and what these do instead:
//!
//! | failure | MMKV / LMDB | mmkit |
//! |---|---|---|
//! | full disk | SIGBUS on a store to the map | space is reserved with `fallocate` before it is mapped: `Err(NoSpace)`, the store stays open and intact, and appends go on once space is freed |
//! | one bad checksum | MMKV drops the whole file | a torn tail is cut at the first bad record and reported; damage in the middle is an error that names the range, and [`Recovery::Salvage`] keeps every intact record after it |
//! | file never shrinks | MMKV | [`Log::truncate_before`] punches the dropped records' pages out of the file |
//!
//! ## Durability
//!
//! [`Durability::Process`]: an append returns once the record is in the shared mapping,
//! which is the page cache: it survives `kill -9` of the writer (and of every reader), not
//! a power loss. [`Durability::Sync`]: an append returns once the record is on storage
//! (`fdatasync`); concurrent appenders share one flush (group commit).
//!
//! ## Checksum: CRC32C
//!
//! CRC32C over each record's header and payload. It runs in hardware (`crc32` of SSE4.2,
//! ARMv8's CRC extension), several GB/s even for 16-byte records where a hash's setup
//! dominates, and unlike a hash it *guarantees* detection of every burst error up to 32
//! bits and of every odd number of flipped bits in records of the sizes a log holds,
//! which are exactly the damage a torn write or a bad sector leaves. A 64-bit hash
//! (xxh3) would only make a random collision rarer (2^-64 against 2^-32), which matters
//! for deduplication, not for finding damage.
//!
//! # Safety
//!
//! The stores copy records in and out of shared file mappings through
//! [`Mapping::with_raw`](crate::Mapping), under the SIGBUS guard: every byte read from
//! the mapping is copied (or checksummed in place, and then copied) before it is
//! trusted, a length is checked against the committed end before it is used, and bytes
//! are written only past the committed end, where no reader looks. The shared header's
//! counters are atomics formed over the mapping inside a guarded access.
#![allow(unsafe_code)]

#[cfg(feature = "bench")]
pub mod bench;
mod file;
pub(crate) mod format;
mod kv;
mod log;
#[cfg(test)]
mod power_tests;
mod records;
mod space;
pub(crate) mod storage;

pub use kv::{Batch, CompactReport, Kv, KvOptions, KvStats};
pub use log::{CheckReport, Damage, Entry, Iter, Log, LogOptions, LogStats, RecoveryReport, Tail};
pub use records::{RecordCheck, RecordFile, RecordFileOptions};

/// A record's sequence number: 1 for the first record a log ever held, then one more for
/// each record appended. Never reused, also after [`Log::truncate_before`].
pub type Seq = u64;

/// When an append (or an update) counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum Durability {
    /// Done once the bytes are in the shared mapping (the page cache): survives the
    /// writer's `kill -9` or crash, not a power loss or a kernel crash.
    #[default]
    Process,
    /// Done once the bytes are on storage: `fdatasync` before returning, one flush shared
    /// by every append that is waiting for one (group commit).
    Sync,
}

/// What opening a store does with damage it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum Recovery {
    /// Cut a torn tail (a bad record with nothing intact after it, what a crash during an
    /// append leaves) and report it; refuse to open, with `Err(Corrupt)` naming the
    /// damaged range, when intact records follow the damage. Nothing is lost silently.
    #[default]
    Strict,
    /// Cut at the first bad record, also when intact records follow it: they are dropped,
    /// and the report counts them.
    Truncate,
    /// Skip every damaged range, keep every intact record after it, and report the holes
    /// (the sequence numbers lost in each). The holes are marked in the file, so the log
    /// opens cleanly afterwards.
    Salvage,
}
