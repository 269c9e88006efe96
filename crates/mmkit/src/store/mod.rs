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
//! The three open and answer the same way. Options take `&mut self` setters and end in
//! `open(path)`, a handle that reads and writes, or `open_read_only(path)`, one that
//! only reads: [`ReadOnlyLog`], [`ReadOnlyKv`], [`ReadOnlyRecordFile`] (redb's
//! `ReadOnlyDatabase`; the writable handle derefs to its read-only one, as memmap2's
//! `MmapMut` reads like its `Mmap`). `check()` returns a [`CheckReport`], `stats()` the
//! store's `…Stats`, and `recovery_report()` a `&`[`RecoveryReport`].
//!
//! Where they stand beside Tencent MMKV, the store mobile apps map their settings with.
//! The MMKV column was measured, not read from its docs: MMKV 2.4.2 (commit `ad7657ef`)
//! built from its own source with its POSIX CMake build and default configuration
//! (single process, no encryption), on a 2-vCPU Linux 6.18 VM with ext4 and tmpfs, as
//! recorded in this project's issue 22. LMDB was not measured the same way and is not
//! compared here.
//!
//! | what happened | MMKV 2.4.2, measured | mmkit |
//! |---|---|---|
//! | a full disk (five setups) | no signal: `set()` returns false; on a nearly full disk where its `.crc` file could not be created, 36 keys whose `set()` had returned true were gone after reopening | space is reserved with `fallocate` before it is mapped: `Err(NoSpace)` and nothing written, the store stays open and intact; a write that was saved returns `Ok` (an automatic compaction that no longer fits is deferred and reported in [`KvStats::compaction_deferred`]) |
//! | one flipped byte in the file | every key discarded (the default on a checksum mismatch) | a torn tail is cut at the first bad record and reported; damage in the middle is `Err(Corrupt)` naming the range under [`Recovery::Strict`], and [`Recovery::Salvage`] (the key-value store's) keeps every intact record |
//! | the writer killed (`kill -9`) | all keys lost in 1 to 7 of 100 kills | no acknowledged record lost (`tests/store_serial/kv_crash.rs`, `tests/store_serial/log_crash.rs`) |
//! | a power cut, with [`Durability::Sync`] | not measured | no acknowledged record lost and no batch half applied at any cut of the model (`store::power_tests`) or of a real ext4 image (`tests/store_serial/power.rs`) |
//!
//! [`Log::truncate_before`] also gives the space of dropped records back (it punches
//! their pages out of the file).
//!
//! ## Durability
//!
//! [`Durability::Process`]: an append returns once the record is in the shared mapping,
//! which is the page cache: it survives `kill -9` of the writer (and of every reader), not
//! a power loss. [`Durability::Sync`]: an append returns once the record is on storage
//! (`fdatasync`); concurrent appenders share one flush (group commit).
//!
//! What a power cut leaves, and how an open tells it apart from damage: a flush makes
//! everything written before it durable; only *after* it returns does the header say so
//! (its durable end), so the header never claims bytes a flush had not covered. Past the
//! durable end a cut leaves any subset of the pages (or sectors) written since, and the
//! rest reads as it was, zeros; a record there with a zeroed sector is a write the cut
//! tore, and the log ends before its batch (the records after it were never flushed
//! either). Below the durable end, or without a zeroed sector, it is damage. So after a
//! cut at any moment a `Sync` store holds every acknowledged record and every batch
//! whole or not at all, and the default open cuts the torn write and says so. A reader
//! opening an image no writer has opened since (another boot or another file, told by an
//! epoch in the header) sees it as that recovery would, without writing.
//!
//! The lock and liveness state in a file's header never outlives its boot: a writer that
//! finds itself alone with the file (its exclusive `flock`) clears a writers' lock word
//! left held, as LMDB and SQLite reinitialise their lock files.
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
//! counters are atomics formed over the mapping inside a guarded access. `unsafe` is
//! allowed only in the files that use it, each with its own `# Safety` paragraph:
//! `log/{append,bulk,inspect,maps,open,read}.rs`, `kv/{index,mod}.rs`.

mod file;
pub(crate) mod format;
mod kv;
mod log;
#[cfg(test)]
mod power_tests;
mod records;
mod space;
pub(crate) mod storage;

pub use kv::{Batch, CompactReport, Kv, KvOptions, KvStats, ReadOnlyKv};
pub use log::{
    CheckReport, Damage, Entry, Iter, Log, LogOptions, LogStats, ReadOnlyLog, RecoveryReport, Tail,
};
pub use records::{ReadOnlyRecordFile, RecordFile, RecordFileOptions, RecordFileStats};

/// What [`ReadOnlyRecordFile::check`] found: now the one [`CheckReport`] of the three
/// stores.
#[deprecated(note = "record files' check returns a CheckReport")]
pub type RecordCheck = CheckReport;

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
