//! A channel of byte messages between processes through a ring in shared memory.
//!
//! One [`Producer`] and one [`Consumer`] (single-producer single-consumer), in the same
//! process or in two, exchange messages of any size up to a quarter of the ring. The ring
//! is a header page followed by a power-of-two data area, in any shared memory: fork-
//! inherited anonymous memory ([`Ring::anonymous`]), a named segment
//! ([`Ring::create_named`], [`Ring::open_named`]) or a mapping you made
//! ([`RingOptions::init`], [`Ring::attach`]).
//!
//! - **Zero-copy**: a writer [`reserve`](Producer::reserve)s space, fills it in place and
//!   [`commit`](Reservation::commit)s; a reader borrows a [`Message`] straight from the
//!   ring and releases it by dropping it. [`Producer::send`] and `Message::to_vec` (a slice's) copy
//!   for convenience.
//! - **Blocking and not**: `send`/`reserve`/`recv` wait, `try_*` never wait, `*_timeout`
//!   wait at most a duration. A waiter spins briefly (at most
//!   [`RingOptions::spin`], 20 µs by default; a spin that ends in a sleep halves the
//!   next, so two sides sharing one CPU stop spinning each other out of it) and then
//!   sleeps in `FUTEX_WAIT`: an idle channel burns no CPU. [`Producer::wait_stats`] and
//!   [`Consumer::wait_stats`] count the spins, sleeps and wake-ups.
//! - **Numbered messages**: the ring numbers every committed message (0, 1, 2, …;
//!   [`Message::seq`]); a restarted producer continues the numbering
//!   ([`Producer::next_seq`]).
//! - **A peer that dies**: a waiter checks, every 10 ms of sleep, that the process at the
//!   other end lives. A consumer receives everything the dead producer committed and then
//!   gets [`ErrorKind::PeerDied`]; a producer waiting for
//!   space gets it when the consumer died. A new process can then attach to the free role
//!   and carry on where the dead one stopped (a dead consumer's unreleased message is
//!   delivered again). A peer that closed on purpose (drop) gives
//!   [`ErrorKind::Closed`] once the ring is empty.
//!
//! # Roles and liveness
//!
//! A role is an exclusive open-file-description lock on one byte of the ring's file
//! (far past its data; the producer's and the consumer's bytes differ), taken on a
//! description opened for that role alone. The kernel refuses a second holder
//! ([`ErrorKind::Busy`]) and drops the lock when the holder's process dies, `kill -9`
//! included; every process with the file open sees it, in any PID namespace, and
//! nothing of it survives a reboot. So "is the peer alive" is "is its role byte locked"
//! (`F_OFD_GETLK`, asked only after a sleep, never on the send/receive path) — never a
//! pid. The pid words in the header are the holders' pids as their own namespaces
//! number them, kept for messages and [`Ring::peers`] only.
//!
//! Every ring built here has a file: [`Ring::anonymous`] is a sealed memfd, named rings
//! a `/dev/shm` file, and [`RingOptions::init`]/[`Ring::attach`] find the file under the
//! mapping (through its path, `/proc/self/fd` or `/proc/self/map_files`). Only a ring
//! laid over `MAP_SHARED | MAP_ANONYMOUS` memory has none; its roles fall back to the pid
//! words checked in `/proc/PID/stat`, which holds only within **one PID namespace**:
//! give such a ring to processes of one namespace, or use a memfd.
//!
//! **`fork`**: a child inherits its parent's descriptors, a role's included, so a role
//! taken before a `fork` stays held while the parent *or* the child lives (dropping the
//! `Producer`/`Consumer` in the process that took it still frees it). Take roles after
//! forking.
//!
//! Wraps [`futex(2)`](https://man7.org/linux/man-pages/man2/futex.2.html) (`FUTEX_WAIT`
//! with a timeout and `FUTEX_WAKE`, shared between processes) and `F_OFD_SETLK`/
//! `F_OFD_GETLK` of [`fcntl(2)`](https://man7.org/linux/man-pages/man2/fcntl.2.html).
//!
//! # The protocol
//!
//! `head` counts the bytes the producer has committed, `tail` the bytes the consumer has
//! released; both only grow, and `tail <= head <= tail + capacity`. Only the producer
//! writes `head` and the bytes in `[head, tail + capacity)`; only the consumer writes
//! `tail`. A record is a 16-byte header (payload length, a commit *mark*) and the
//! payload, padded to 16 bytes; a record never wraps: when it does not fit before the end
//! of the data area, a padding record fills the rest and the record starts at offset 0.
//!
//! - **commit**: write the payload and length; zero the next slot if it is free (so old
//!   bytes there never pass for a mark); store `last_seq`/`last_start`; store the mark
//!   `seq + 1` with `Release` — the commit point; mark the padding, if any; store `head`.
//!   The consumer never reads `head`: it polls the mark of the slot at its `tail`, so a
//!   message costs it the cache lines of the message and nothing else.
//! - **release**: store `next_seq`, then `tail` with `Release` (the producer's `Acquire`
//!   load orders its later writes after the consumer's reads).
//! - **a producer killed mid-commit**: before the mark, nothing was visible and the next
//!   producer reuses the number; after it, the next producer finds the mark through
//!   `last_start` and finishes the commit (padding and `head`).
//! - **a consumer killed mid-release**: `next_seq` one ahead of `tail` is recognised by
//!   the mark at `tail`; the message there was not released and is delivered again.
//!
//! - **sleeping**: a waiter sets its `waiting` flag, issues a `SeqCst` fence and a
//!   [`membarrier(2)`](https://man7.org/linux/man-pages/man2/membarrier.2.html)
//!   (`MEMBARRIER_CMD_GLOBAL_EXPEDITED`), and looks at the position once more before
//!   `FUTEX_WAIT`; the other side stores its position and wakes only if the flag is set,
//!   clearing it as it does (one `FUTEX_WAKE` per sleep, not one per message until the
//!   sleeper runs again).
//!   Every process that attaches registers for that membarrier, so the hot side needs
//!   only a compiler fence: the sleeper's membarrier runs a full barrier on every CPU
//!   running it, and one of the two always sees the other (Dekker's argument, made
//!   asymmetric: the rare sleep pays an IPI, each commit and release pays nothing).
//!   Where the kernel refuses the registration, the hot side falls back to a `SeqCst`
//!   fence. No wake-up is lost either way.
//!
//! Single producer, single consumer: a multi-producer ring is not built. With several
//! producers, give each its own ring (the consumer polls them with `try_recv`).
//!
//! # Safety
//!
//! The ring lends slices of shared memory ([`Message`] derefs to `&[u8]`,
//! [`Reservation`] to `&mut [u8]`). That is sound only while every process mapping the
//! memory follows this protocol: a process that writes the ring's memory by other means
//! (or shrinks a named segment under it) races with those slices. This is why the
//! constructors over named segments and caller-made mappings are `unsafe`;
//! [`Ring::anonymous`] is safe because only this process and its `fork` children, which
//! reach the memory through the same `Ring`, can see it. A ring that holds corrupt
//! positions or record lengths is reported as
//! [`ErrorKind::Corrupt`], never read out of bounds.
//!
//! # Example
//!
//! ```
//! use mmkit::shm::ring::Ring;
//!
//! let ring = Ring::anonymous(64 * 1024)?;
//! let mut tx = ring.producer()?;
//! let mut rx = ring.consumer()?;
//!
//! tx.send(b"hello")?;
//! let mut r = tx.reserve(5)?;          // zero-copy: fill the ring in place
//! r.copy_from_slice(b"world");
//! r.commit();
//!
//! let m = rx.recv()?;                 // borrowed from the ring
//! assert_eq!((&*m, m.seq()), (&b"hello"[..], 0));
//! drop(m);                            // released: the space is the producer's again
//! assert_eq!(rx.recv()?.to_vec(), b"world");
//! assert!(rx.try_recv()?.is_none());
//! # Ok::<(), mmkit::Error>(())
//! ```
//!
//! # Safety
//!
//! The ring reads its header and records in a shared mapping through raw pointers at
//! offsets checked against the header; it is `Send`/`Sync` by hand, and making or
//! opening one over a named segment or a caller's mapping is `unsafe` because another
//! process controls that memory.
#![allow(unsafe_code)]

mod consumer;
mod layout;
mod producer;
mod wait;

use std::sync::Arc;
use std::time::Duration;

pub use consumer::{Consumer, Message};
pub use producer::{Producer, Reservation};

use crate::error::{Error, ErrorKind, Op, Result};
use crate::map::Mapping;
use crate::shm::owner::file_of;
use crate::shm::segment::{Segment, SegmentOptions};
use crate::shm::Memfd;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// The file under a ring's mapping, opened again for its role locks; `None` for
/// anonymous shared memory.
fn lock_file(map: &Mapping) -> Result<Option<OwnedFd>> {
    file_of(map)
}
use layout::{Header, HEADER_BYTES, RECORD_HEADER};

/// What one side of a ring did while waiting (this process's side only), for tuning and
/// benchmarks: [`Producer::wait_stats`], [`Consumer::wait_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct WaitStats {
    /// Waits that ended while spinning.
    pub spun: u64,
    /// Sleeps in `FUTEX_WAIT`.
    pub sleeps: u64,
    /// `FUTEX_WAKE`s made for the other side (at most one per sleep of it).
    pub wakes: u64,
    /// The spin the next wait makes, in nanoseconds: it adapts between a 32nd of the
    /// configured spin ([`RingOptions::spin`]) and all of it.
    pub spin_ns: u64,
}

/// How to build a ring: data capacity and how long a waiter spins before it sleeps.
#[derive(Debug, Clone, Copy)]
pub struct RingOptions {
    capacity: usize,
    spin: Duration,
}

impl Default for RingOptions {
    fn default() -> Self {
        RingOptions::new()
    }
}

impl RingOptions {
    /// 1 MiB of data, 20 µs of spinning.
    pub fn new() -> RingOptions {
        RingOptions {
            capacity: 1 << 20,
            spin: Duration::from_micros(20),
        }
    }

    /// Bytes of message data: a power of two, at least 4096. Messages may be up to a
    /// quarter of it, less 16 bytes.
    pub fn capacity(&mut self, bytes: usize) -> &mut Self {
        self.capacity = bytes;
        self
    }

    /// How long a waiter spins (checking the ring) before it sleeps in `FUTEX_WAIT`, at
    /// most: a spin that ends in a sleep halves the next one, down to a 32nd of this
    /// (see [`WaitStats::spin_ns`]). Zero sleeps at once; a longer spin lowers latency
    /// and costs CPU while waiting.
    pub fn spin(&mut self, spin: Duration) -> &mut Self {
        self.spin = spin;
        self
    }

    /// The bytes of shared memory a ring of this capacity needs (header page + data);
    /// `usize::MAX` for a capacity so large that no ring can have it.
    pub fn shared_bytes(&self) -> usize {
        HEADER_BYTES.saturating_add(self.capacity)
    }

    /// A ring in new shared anonymous memory, inherited by `fork` children.
    ///
    /// # Errors
    /// A capacity that is not a power of two ≥ 4096; the mapping's errors.
    ///
    /// The memory is a memfd sealed against shrinking and growing (rather than
    /// `MAP_SHARED | MAP_ANONYMOUS`), so the roles are OFD locks on it: see the
    /// [module docs](self#a-peer-that-dies).
    pub fn anonymous(&self) -> Result<Ring> {
        self.check()?;
        let seg = Memfd::new("mmkit-ring")
            .size(self.shared_bytes() as u64)
            .create(&[])?;
        let map = seg.map()?;
        // SAFETY: a new memfd; only this process and its fork children, which reach it
        // through this `Ring`, hold it.
        unsafe { self.init_parts(map, Some(seg.into_fd())) }
    }

    /// Create a named segment (exclusive, mode 0600) holding a new ring.
    ///
    /// # Safety
    /// Every process that opens the segment must use it only through [`Ring`] (see the
    /// [module docs](self#safety)).
    ///
    /// # Errors
    /// As [`Segment::create`]; a bad capacity.
    pub unsafe fn create_named(&self, name: &str) -> Result<Ring> {
        self.check()?;
        let seg = SegmentOptions::new().create(name, self.shared_bytes() as u64)?;
        let map = seg.map()?;
        // SAFETY: the segment is new (O_EXCL); the caller promises its users follow
        // the protocol.
        unsafe { self.init(map) }
    }

    /// Lay a new, empty ring over the start of `map` (which must be zeroed or hold no
    /// live ring: nobody may be attached).
    ///
    /// # Safety
    /// As [`Ring::attach`].
    ///
    /// # Errors
    /// A bad capacity, or `map` too small for it.
    pub unsafe fn init(&self, map: Mapping) -> Result<Ring> {
        let file = lock_file(&map)?;
        // SAFETY: forwarded to the caller.
        unsafe { self.init_parts(map, file) }
    }

    /// [`init`](Self::init) with the ring's file (for its role locks) already found.
    ///
    /// # Safety
    /// As [`Ring::attach`].
    unsafe fn init_parts(&self, mut map: Mapping, file: Option<OwnedFd>) -> Result<Ring> {
        self.check()?;
        if map.len() < self.shared_bytes() {
            return Err(Error::new(Op::Map, ErrorKind::OutOfRange)
                .at(0, map.len() as u64)
                .detail(format!(
                    "a ring of {} data bytes needs {} bytes of shared memory, the mapping has {}",
                    self.capacity,
                    self.shared_bytes(),
                    map.len()
                )));
        }
        let base = map.as_mut_ptr();
        // SAFETY: the mapping is at least HEADER_BYTES long and page-aligned; the
        // header holds only atomics; the caller promises no one else uses it yet.
        let header = unsafe { &*(base as *const Header) };
        // SAFETY: the data area starts HEADER_BYTES in (page-aligned) and holds at
        // least one record header; all its fields are atomics.
        let first = unsafe { &*(base.add(HEADER_BYTES) as *const layout::RecordHeader) };
        // The consumer's first look is at offset 0: no old bytes may pass for a mark.
        first.mark.store(0, std::sync::atomic::Ordering::Relaxed);
        header.initialise(self.capacity as u64);
        Ok(Ring::from_parts(map, self.spin, file))
    }

    fn check(&self) -> Result<()> {
        let c = self.capacity;
        if c < 4096 || !c.is_power_of_two() || c > (1 << 40) {
            return Err(Error::new(Op::Map, ErrorKind::OutOfRange).detail(format!(
                "ring capacity {c} must be a power of two from 4096 to 2^40 bytes"
            )));
        }
        Ok(())
    }
}

/// A ring channel in shared memory: the handle both ends are made from.
///
/// Cloning is cheap (the mapping is shared); the roles are taken with
/// [`producer`](Ring::producer) and [`consumer`](Ring::consumer).
#[derive(Clone)]
pub struct Ring {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let h = self.inner.header();
        f.debug_struct("Ring")
            .field("capacity", &self.inner.capacity)
            .field("head", &h.head())
            .field("tail", &h.tail())
            .finish()
    }
}

/// The mapping and the values read from the header once, at attach.
pub(crate) struct Inner {
    map: Mapping,
    base: *mut u8,
    pub(crate) capacity: u64,
    pub(crate) spin: Duration,
    /// The ring's file, when its memory is one (a memfd, a named segment, a mapped
    /// file): the roles are OFD locks on it. `None` for anonymous shared memory.
    file: Option<OwnedFd>,
}

// SAFETY: `base` points into `map`, which lives as long as `Inner`; all access to the
// shared memory goes through atomics or through the ring protocol, which gives each
// byte range to one side at a time.
unsafe impl Send for Inner {}
// SAFETY: as above; `Inner` has no interior state of its own besides the shared memory.
unsafe impl Sync for Inner {}

impl Inner {
    /// The ring's file, for role locks (see [`Inner::file`](Inner)).
    pub(crate) fn file(&self) -> Option<BorrowedFd<'_>> {
        self.file.as_ref().map(|f| f.as_fd())
    }

    pub(crate) fn header(&self) -> &Header {
        // SAFETY: the mapping starts with a `Header` (checked at attach) and lives as
        // long as `self`; the header is all atomics.
        unsafe { &*(self.base as *const Header) }
    }

    /// The data area's first byte.
    pub(crate) fn data(&self) -> *mut u8 {
        // SAFETY: the mapping is HEADER_BYTES + capacity long (checked at attach).
        unsafe { self.base.add(HEADER_BYTES) }
    }

    /// The record header at physical offset `pos` of the data area.
    pub(crate) fn slot(&self, pos: u64) -> &layout::RecordHeader {
        debug_assert!(pos % 16 == 0 && pos + 16 <= self.capacity);
        // SAFETY: `pos` is 16-aligned and at least 16 bytes before the end of the data
        // area (every caller masks a position with `capacity - 1`, and positions are
        // multiples of 16); the header is all atomics.
        unsafe { &*(self.data().add(pos as usize) as *const layout::RecordHeader) }
    }

    /// The largest payload a record may carry: records up to a quarter of the ring keep
    /// a producer's half-written record from ever overlapping the last committed one
    /// (which a restarted producer reads back for its sequence number).
    pub(crate) fn max_message(&self) -> usize {
        (self.capacity / 4) as usize - RECORD_HEADER
    }
}

impl Ring {
    /// A ring of `capacity` data bytes in new shared anonymous memory, for a parent and
    /// its `fork` children: [`RingOptions::anonymous`] with default options.
    ///
    /// # Errors
    /// A capacity that is not a power of two ≥ 4096; the mapping's errors.
    pub fn anonymous(capacity: usize) -> Result<Ring> {
        RingOptions::new().capacity(capacity).anonymous()
    }

    /// Create a named segment holding a new ring of `capacity` data bytes.
    ///
    /// # Safety
    /// As [`RingOptions::create_named`].
    ///
    /// # Errors
    /// As [`RingOptions::create_named`].
    pub unsafe fn create_named(name: &str, capacity: usize) -> Result<Ring> {
        // SAFETY: forwarded to the caller.
        unsafe { RingOptions::new().capacity(capacity).create_named(name) }
    }

    /// Open the ring in an existing named segment.
    ///
    /// # Safety
    /// As [`Ring::attach`].
    ///
    /// # Errors
    /// As [`Segment::open`]; a segment that holds no ring, or a damaged one.
    pub unsafe fn open_named(name: &str) -> Result<Ring> {
        let map = Segment::open(name)?.map()?;
        // SAFETY: forwarded to the caller.
        unsafe { Ring::attach(map) }
    }

    /// Use the ring that [`RingOptions::init`] laid over `map`, checking its header.
    ///
    /// # Safety
    /// Every process mapping this memory must use it only through [`Ring`], and none may
    /// shrink it: the ring lends slices of it (see the [module docs](self#safety)).
    ///
    /// # Errors
    /// No ring there (bad magic or version), or a capacity that does not match the size
    /// of the mapping.
    pub unsafe fn attach(mut map: Mapping) -> Result<Ring> {
        let base = map.as_mut_ptr();
        if map.len() < HEADER_BYTES {
            return Err(layout::not_a_ring(map.len(), "too small for the header"));
        }
        // SAFETY: at least HEADER_BYTES long, page-aligned, all atomics.
        let header = unsafe { &*(base as *const Header) };
        header.check(map.len())?;
        let file = lock_file(&map)?;
        Ok(Ring::from_parts(map, RingOptions::new().spin, file))
    }

    fn from_parts(mut map: Mapping, spin: Duration, file: Option<OwnedFd>) -> Ring {
        let base = map.as_mut_ptr();
        // SAFETY: the header was initialised or checked by the caller.
        let capacity = unsafe { &*(base as *const Header) }.capacity();
        Ring {
            inner: Arc::new(Inner {
                map,
                base,
                capacity,
                spin,
                file,
            }),
        }
    }

    /// Data bytes in the ring.
    pub fn capacity(&self) -> usize {
        self.inner.capacity as usize
    }

    /// The largest message the ring accepts: a quarter of the capacity less 16 bytes.
    pub fn max_message(&self) -> usize {
        self.inner.max_message()
    }

    /// Bytes committed and not yet released (records and padding included).
    pub fn used(&self) -> usize {
        let h = self.inner.header();
        h.head().saturating_sub(h.tail()) as usize
    }

    /// The pids attached as producer and consumer (0 when the role is free), each as
    /// the holder's own PID namespace numbers it: for messages, not to act on. Whether a
    /// role is held is read from its lock (from `/proc/PID` for a ring in anonymous
    /// memory that is not a memfd).
    pub fn peers(&self) -> (u32, u32) {
        let h = self.inner.header();
        let file = self.inner.file();
        let held = |pid: u32, role| {
            if wait::role_held(file, pid, role) {
                pid
            } else {
                0
            }
        };
        (
            held(h.producer_pid(), wait::RoleName::Producer),
            held(h.consumer_pid(), wait::RoleName::Consumer),
        )
    }

    /// Take the producer role: see [`Producer`].
    ///
    /// # Errors
    /// [`ErrorKind::Busy`] when a live process already produces; a damaged ring.
    pub fn producer(&self) -> Result<Producer> {
        Producer::attach(self.inner.clone())
    }

    /// Take the consumer role: see [`Consumer`].
    ///
    /// # Errors
    /// [`ErrorKind::Busy`] when a live process already consumes.
    pub fn consumer(&self) -> Result<Consumer> {
        Consumer::attach(self.inner.clone())
    }

    /// The mapping under the ring (to inspect it; writing it breaks the ring).
    pub fn mapping(&self) -> &Mapping {
        &self.inner.map
    }
}
