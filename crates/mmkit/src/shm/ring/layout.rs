//! The ring's shared layout: the header page and the record format.
//!
//! Every field of the header is an atomic, so a `&Header` into shared memory is sound
//! whatever another process does. Fields that different sides write sit on different
//! 128-byte lines (two 64-byte lines: the adjacent-line prefetcher pairs them), as
//! crossbeam's `CachePadded` does.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::error::{Error, ErrorKind, Op};

/// Bytes before the data area: one page, so the data starts page-aligned.
pub(crate) const HEADER_BYTES: usize = 4096;
/// Bytes of a record header: payload length (u32), flags (u32), commit mark (u64).
pub(crate) const RECORD_HEADER: usize = 16;
/// The length field of a padding record, which fills the data area to its end.
pub(crate) const PAD: u32 = u32::MAX;
/// `last_start` before any record was written.
pub(crate) const NO_RECORD: u64 = u64::MAX;

const MAGIC: u64 = u64::from_le_bytes(*b"MMKRING\0");
/// 3: roles are OFD locks on the ring's file (a version-2 process would judge them by
/// the pid words).
const VERSION: u32 = 3;

/// Written once by the creator; `magic` is stored last, with `Release`.
#[repr(C, align(128))]
struct Fixed {
    magic: AtomicU64,
    version: AtomicU32,
    capacity: AtomicU64,
}

/// Written only by the producer.
#[repr(C, align(128))]
pub(crate) struct ProducerLine {
    /// Bytes committed, ever, as of the last finished commit. Invariant:
    /// `tail <= head <= tail + capacity`, a multiple of 16. It may lag one record behind
    /// the marks after a producer died inside a commit; the next producer repairs it.
    pub(crate) head: AtomicU64,
    /// Where the newest record (committed or being committed) starts; stored (after
    /// `last_seq`) before that record's mark, so a restarted producer can tell whether
    /// the commit it interrupted passed its commit point.
    pub(crate) last_start: AtomicU64,
    /// The sequence number of the record at `last_start`.
    pub(crate) last_seq: AtomicU64,
}

/// Written only by the consumer.
#[repr(C, align(128))]
pub(crate) struct ConsumerLine {
    /// Bytes released, ever; stored with `Release` after the consumer's last read of
    /// them. Only grows; always at a record (or padding) boundary.
    pub(crate) tail: AtomicU64,
    /// The sequence number expected at `tail`, stored just before `tail`: after a
    /// consumer died between the two stores it is one ahead, which the record at `tail`
    /// (marked with the number before) reveals.
    pub(crate) next_seq: AtomicU64,
}

/// A sleeping place: one side sleeps on `seq`, the other wakes it.
#[repr(C, align(128))]
pub(crate) struct WakeLine {
    /// Bumped by the waker before `FUTEX_WAKE`; the futex word.
    pub(crate) seq: AtomicU32,
    /// 1 while the sleeper is (about to be) in `FUTEX_WAIT`; set before its last look,
    /// with a `SeqCst` fence between (see the module docs).
    pub(crate) waiting: AtomicU32,
}

/// Who is attached. In a file-backed ring the pid words are for messages only (each is
/// the holder's pid in its own PID namespace, and a dead holder leaves it behind): the
/// role locks decide; in anonymous memory they decide (one namespace only).
#[repr(C, align(128))]
pub(crate) struct PeerLine {
    /// The producing process's pid, 0 when the role was left on purpose.
    pub(crate) producer_pid: AtomicU32,
    /// The consuming process's pid, 0 when the role was left on purpose.
    pub(crate) consumer_pid: AtomicU32,
    /// 1 after a producer closed on purpose (and until the next one attaches).
    pub(crate) producer_closed: AtomicU32,
    /// 1 after a consumer closed on purpose (and until the next one attaches).
    pub(crate) consumer_closed: AtomicU32,
}

/// The first page of a ring.
#[repr(C)]
pub(crate) struct Header {
    fixed: Fixed,
    pub(crate) prod: ProducerLine,
    pub(crate) cons: ConsumerLine,
    /// The consumer sleeps here for data; the producer wakes it.
    pub(crate) data_ready: WakeLine,
    /// The producer sleeps here for space; the consumer wakes it.
    pub(crate) space_free: WakeLine,
    pub(crate) peers: PeerLine,
}

const _: () = assert!(std::mem::size_of::<Header>() <= HEADER_BYTES);

/// A record's header as it sits in the data area (16-byte aligned), all atomics.
///
/// `mark` is the commit point: the producer stores `seq + 1` with `Release` after the
/// payload and `len`; a consumer expecting `seq` takes the record once it loads exactly
/// that with `Acquire`. Padding carries the mark of the record after it. A slot holds 0
/// until written, and before the producer commits a record it zeroes the slot after it
/// (when that slot is free), so the consumer never mistakes old payload bytes for a mark.
#[repr(C)]
pub(crate) struct RecordHeader {
    pub(crate) len: AtomicU32,
    pub(crate) flags: AtomicU32,
    pub(crate) mark: AtomicU64,
}

/// The bytes a record of `len` payload bytes takes: header plus payload rounded up to 16.
pub(crate) fn record_size(len: usize) -> u64 {
    (RECORD_HEADER + len.next_multiple_of(16)) as u64
}

impl Header {
    /// Set up an empty ring and publish it (magic last, `Release`).
    pub(crate) fn initialise(&self, capacity: u64) {
        self.fixed.magic.store(0, Ordering::Relaxed);
        self.fixed.version.store(VERSION, Ordering::Relaxed);
        self.fixed.capacity.store(capacity, Ordering::Relaxed);
        self.prod.head.store(0, Ordering::Relaxed);
        self.prod.last_start.store(NO_RECORD, Ordering::Relaxed);
        self.prod.last_seq.store(0, Ordering::Relaxed);
        self.cons.tail.store(0, Ordering::Relaxed);
        self.cons.next_seq.store(0, Ordering::Relaxed);
        for line in [&self.data_ready, &self.space_free] {
            line.seq.store(0, Ordering::Relaxed);
            line.waiting.store(0, Ordering::Relaxed);
        }
        let p = &self.peers;
        for word in [
            &p.producer_pid,
            &p.consumer_pid,
            &p.producer_closed,
            &p.consumer_closed,
        ] {
            word.store(0, Ordering::Relaxed);
        }
        self.fixed.magic.store(MAGIC, Ordering::Release);
    }

    /// Check that a ring was published here and fits `map_len` bytes; its capacity.
    pub(crate) fn check(&self, map_len: usize) -> Result<u64, Error> {
        let magic = self.fixed.magic.load(Ordering::Acquire);
        if magic != MAGIC {
            return Err(not_a_ring(map_len, "no ring header (bad magic)"));
        }
        let version = self.fixed.version.load(Ordering::Relaxed);
        if version != VERSION {
            return Err(not_a_ring(
                map_len,
                &format!("ring layout version {version}, this mmkit reads version {VERSION}"),
            ));
        }
        let cap = self.capacity();
        if !cap.is_power_of_two() || cap < 4096 || HEADER_BYTES as u64 + cap > map_len as u64 {
            return Err(Error::new(Op::Map, ErrorKind::Corrupt).detail(format!(
                "the ring header claims {cap} data bytes; the mapping has {map_len} bytes"
            )));
        }
        Ok(cap)
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.fixed.capacity.load(Ordering::Relaxed)
    }

    pub(crate) fn head(&self) -> u64 {
        self.prod.head.load(Ordering::Acquire)
    }

    pub(crate) fn tail(&self) -> u64 {
        self.cons.tail.load(Ordering::Acquire)
    }

    pub(crate) fn producer_pid(&self) -> u32 {
        self.peers.producer_pid.load(Ordering::Acquire)
    }

    pub(crate) fn consumer_pid(&self) -> u32 {
        self.peers.consumer_pid.load(Ordering::Acquire)
    }
}

/// The error for memory that holds no usable ring.
pub(crate) fn not_a_ring(map_len: usize, why: &str) -> Error {
    Error::new(Op::Open, ErrorKind::Layout)
        .at(0, map_len as u64)
        .detail(format!("not an mmkit ring: {why}"))
        .hint("create the ring with RingOptions::create_named or RingOptions::init first")
}

/// A positions error: the shared `head`/`tail` break `tail <= head <= tail + capacity`.
pub(crate) fn corrupt(op: Op, what: String) -> Error {
    Error::new(op, ErrorKind::Corrupt)
        .detail(format!("the ring is damaged: {what}"))
        .hint("a process wrote the ring's memory without following its protocol; recreate the ring")
}
