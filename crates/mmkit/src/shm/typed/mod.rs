//! A typed value in shared memory, initialised exactly once: [`Shared<T>`].
//!
//! A [`Shared<T>`] places a 64-byte `#[repr(C)]` header before a `T` in a shared
//! [`Mapping`] (a named [`Segment`], a memfd, or
//! [`MapOptions::map_anon_shared`](crate::MapOptions::map_anon_shared) memory inherited
//! over `fork`). Every process calls [`SharedOptions::create_or_open`] on the same
//! memory; exactly one runs the initialiser, the others wait until it has published the
//! value, then check that the header describes the `T` they expect.
//!
//! The header's state word is updated with atomics in the mapping (under mmkit's SIGBUS
//! guard for segments, which can shrink); waiters sleep on it in
//! [`futex(2)`](https://man7.org/linux/man-pages/man2/futex.2.html) `FUTEX_WAIT` (shared:
//! no `FUTEX_PRIVATE_FLAG`, since the peers are other processes mapping the memory at
//! other addresses) and the initialiser's publish ends with `FUTEX_WAKE` of them all. An
//! initialiser's liveness is an OFD lock (`F_OFD_GETLK` of
//! [`fcntl(2)`](https://man7.org/linux/man-pages/man2/fcntl.2.html)) on the memory's file
//! — its [`Owner`](super::sync::Owner) — valid in any PID namespace; only anonymous
//! shared memory, which has no file, falls back to
//! [`/proc/PID/stat`](https://man7.org/linux/man-pages/man5/proc_pid_stat.5.html), valid
//! in one PID namespace.
//!
//! # The header
//!
//! | offset | field | meaning |
//! |---|---|---|
//! | 0 | `magic: u64` | [`MAGIC`] once initialised |
//! | 8 | `state: u32` | 0 uninitialised; `ID << 2 \| 1` being initialised by `ID`; 2 ready |
//! | 12 | `version: u32` | the layout version the user gave |
//! | 16 | `size: u64` | `size_of::<T>()` |
//! | 24 | `align: u64` | `align_of::<T>()` |
//! | 32 | `pid: u64` | the last initialiser's pid in its own PID namespace, for messages only |
//! | 40..64 | reserved | zero |
//!
//! `T` starts at [`Shared::<T>::offset()`](Shared::offset): 64 rounded up to `T`'s
//! alignment.
//!
//! # Initialisation protocol
//!
//! 1. Read `state` (Acquire). **2 (ready)**: check magic, version, size and alignment,
//!    and return the view (or a [`Layout`](crate::ErrorKind::Layout) error that says
//!    what differs, e.g. "layout version 2, this program expects 1").
//! 2. **0**: CAS `0 → PID << 2 | 1`. The winner writes the header fields, zeroes `T`,
//!    runs the initialiser and stores `state = 2` with **Release** ordering, so a
//!    process that reads 2 with Acquire sees every byte the initialiser wrote, then
//!    wakes every waiter (`FUTEX_WAKE`). If the initialiser fails or panics, the state
//!    goes back to 0, the waiters are woken and another process may try.
//! 3. **Being initialised by a live PID** (or, for [`SharedOptions::open`],
//!    uninitialised): sleep in `FUTEX_WAIT` while the state word still holds the value
//!    seen, for at most 10 ms, then look again (and at the initialiser's liveness), until
//!    the timeout ([`SharedOptions::timeout`], 10 s by default). A publish wakes the
//!    sleepers at once; the kernel checks the word under its own lock, so a publish
//!    between the look and the sleep is never missed (the sleep returns `EAGAIN`).
//! 4. **Being initialised by a dead ID**: the initialiser died mid-way, so `T` may be
//!    half-written. A waiter CASes the state from exactly that value to its own ID and
//!    **initialises again from scratch** (header rewritten, `T` zeroed, the initialiser
//!    run again). Only one waiter wins that CAS.
//!
//! The ID is, for memory that is a file (a segment, a memfd, a mapped file), the id of an
//! [`Owner`](super::sync::Owner) the process claims on that file for the call: dead when
//! nobody holds its OFD lock, which the kernel drops with the process in any PID
//! namespace, and which no reboot keeps. For anonymous shared memory (no file) the ID is
//! the pid, dead when `/proc/PID/stat` is gone or a zombie's: **one PID namespace only**
//! (a pid from another namespace names another process or none), with the pid-reuse
//! caveat of the TID-mode [`RobustMutex`](super::sync::RobustMutex).
//!
//! # What may be borrowed: the soundness rule
//!
//! Another process can write the shared bytes at any moment, so a `&T` is sound only if
//! every byte of `T` may change behind it: `T`'s fields must be atomics (interior
//! mutable), and every bit pattern must be a valid `T`. That is the contract of the
//! unsafe marker trait [`SharedSafe`], implemented here for the integer atomics and
//! arrays of them; a user implements it for a `#[repr(C)]` struct of such fields with
//! an `unsafe impl` whose `// SAFETY:` comment says so. `AtomicBool` is left out (a
//! peer could store 2). For such `T`:
//!
//! - [`Shared::get`] lends `&T` when the memory cannot shrink (anonymous shared memory,
//!   a memfd sealed with `F_SEAL_SHRINK`);
//! - [`Shared::with`] lends `&T` to a closure under the SIGBUS guard, on any mapping,
//!   named segments included (a peer's shrink gives `Err(Truncated)`, not a crash).
//!
//! Plain-data types ([`zerocopy`]'s `FromBytes + IntoBytes + KnownLayout + Immutable`)
//! are never borrowed: [`Shared::read`] and [`Shared::write`] copy the whole value. A
//! copy taken while a peer writes may mix old and new bytes: hold a lock (a
//! [`RobustMutex`](super::sync::RobustMutex) in another `Shared` or beside it) when a
//! value must be read whole.
//!
//! # Example
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use mmkit::shm::typed::{Shared, SharedOptions, SharedSafe};
//! use mmkit::MapOptions;
//!
//! #[repr(C)]
//! struct Stats {
//!     requests: AtomicU64,
//!     errors: AtomicU64,
//! }
//! // SAFETY: repr(C), only atomic integer fields, no padding; any bits are valid.
//! unsafe impl SharedSafe for Stats {}
//!
//! let map = MapOptions::new().len(Shared::<Stats>::required_len()).map_anon_shared()?;
//! let stats = SharedOptions::new(1).create_or_open::<Stats>(map, |s| {
//!     s.with(|t| t.requests.store(100, Ordering::Relaxed))
//! })?;
//! let child = unsafe {
//!     // SAFETY: the child only touches shared atomics and returns.
//!     mmkit::process::fork(|_| {
//!         let Ok(t) = stats.get() else { return 1 };
//!         t.requests.fetch_add(1, Ordering::Relaxed);
//!         0
//!     })
//! }?;
//! assert_eq!(child.wait()?, mmkit::process::Exit::Code(0));
//! assert_eq!(stats.get()?.requests.load(Ordering::Relaxed), 101);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Safety
//!
//! [`SharedSafe`] is an `unsafe trait` (any bit pattern is a valid value and it may be
//! shared between processes), implemented here for the atomics; [`Shared<T>`] turns the
//! checked pointer past its header into `&T`.
#![allow(unsafe_code)]

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{
    AtomicI16, AtomicI32, AtomicI64, AtomicI8, AtomicIsize, AtomicU16, AtomicU32, AtomicU64,
    AtomicU8, AtomicUsize, Ordering,
};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::thread::futex;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::segment::{Segment, SegmentOptions};
use crate::error::{Error, ErrorKind, Op, Result};
use crate::map::Mapping;

mod init;

use init::{timeout_err, Initialiser};

/// The header's magic number: the bytes `mmkitTy1` read as a little-endian `u64`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"mmkitTy1");

/// The size of the header before `T`, in bytes.
pub const HEADER_SIZE: usize = 64;

/// The longest sleep between two looks at the initialiser's liveness.
const LOOK: Duration = Duration::from_millis(10);

const UNINIT: u32 = 0;
const READY: u32 = 2;
/// Low two bits of a state word naming its initialiser: `PID << 2 | INITIALISING`.
const INITIALISING: u32 = 1;

/// The header at offset 0. Invariants: `state` moves only `0 → init(pid)` (CAS),
/// `init(pid) → 2` (by that pid, Release), `init(pid) → 0` (by that pid, on failure) and
/// `init(dead pid) → init(pid')` (CAS, takeover); the other fields are written only by
/// the process whose pid `state` names, and read only after an Acquire load of 2.
#[repr(C)]
struct Header {
    magic: AtomicU64,
    state: AtomicU32,
    version: AtomicU32,
    size: AtomicU64,
    align: AtomicU64,
    reserved: [AtomicU64; 4],
}

const _: () = assert!(std::mem::size_of::<Header>() == HEADER_SIZE);

/// Types that may be borrowed (`&T`) in memory other processes write at any time.
///
/// # Safety
/// Implement only for types that are `#[repr(C)]` (or a primitive atomic), with no
/// padding, whose every byte belongs to an atomic integer field (so all mutation goes
/// through interior mutability and concurrent writes are not data races), for which
/// every bit pattern — all zeros included — is a valid value, and which hold no pointers
/// or references (addresses mean nothing in another process). See the
/// [module docs](self#what-may-be-borrowed-the-soundness-rule).
pub unsafe trait SharedSafe: Sized {}

macro_rules! shared_safe {
    ($($t:ty),*) => {$(
        // SAFETY: an integer atomic: interior mutable, every bit pattern valid, no padding.
        unsafe impl SharedSafe for $t {}
    )*};
}
shared_safe!(
    AtomicU8,
    AtomicU16,
    AtomicU32,
    AtomicU64,
    AtomicUsize,
    AtomicI8,
    AtomicI16,
    AtomicI32,
    AtomicI64,
    AtomicIsize
);

// SAFETY: an array of `SharedSafe` elements has no padding between them and inherits
// their validity and interior mutability.
unsafe impl<T: SharedSafe, const N: usize> SharedSafe for [T; N] {}

/// How to open a [`Shared<T>`]: the layout version this program expects and how long to
/// wait for another process's initialisation.
#[derive(Debug, Clone)]
pub struct SharedOptions {
    version: u32,
    timeout: Duration,
}

impl SharedOptions {
    /// Options for layout `version` (bump it whenever `T` changes meaning); the wait
    /// for another initialiser is 10 s.
    pub fn new(version: u32) -> SharedOptions {
        SharedOptions {
            version,
            timeout: Duration::from_secs(10),
        }
    }

    /// How long to wait for another process to finish initialising.
    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = timeout;
        self
    }

    /// Initialise `T` in `map` exactly once across all processes, or open it when
    /// another process did (see the [protocol](self#initialisation-protocol)). `init`
    /// runs in the winning process with `T` zeroed; it fills `T` through the returned
    /// view's [`with`](Shared::with) or [`write`](Shared::write).
    ///
    /// # Errors
    /// `Layout` when `map` is too small or misaligned for the header and `T`, or when
    /// an initialised header's magic, version, size or alignment differ from this
    /// program's; `Os`/`ETIMEDOUT` when a live initialiser did not finish within the
    /// timeout; `Truncated` when the memory shrank; `init`'s own error.
    pub fn create_or_open<T>(
        &self,
        map: Mapping,
        init: impl FnOnce(&mut Shared<T>) -> Result<()>,
    ) -> Result<Shared<T>> {
        let mut shared = Shared::<T>::adopt(map)?;
        let deadline = Instant::now() + self.timeout;
        // Who we are to the others, made only when the value is not ready yet.
        let mut who: Option<Initialiser> = None;
        loop {
            let state = shared.header(|h| h.state.load(Ordering::Acquire))?;
            if state == READY {
                shared.check_header(self.version)?;
                return Ok(shared);
            }
            if who.is_none() {
                who = Some(Initialiser::new(&shared.map)?);
            }
            let Some(who) = who.as_ref() else {
                unreachable!("set above")
            };
            let me = who.state();
            let claimable = state == UNINIT || who.is_dead(state);
            if claimable && shared.claim(state, me)? {
                shared.initialise(self.version, me, init)?;
                return Ok(shared);
            }
            if !claimable {
                self.wait(&shared, state, deadline)?;
            }
        }
    }

    /// Open a `T` that another process initialises or has initialised, never running an
    /// initialiser: waits (up to the timeout) while the memory is uninitialised or being
    /// initialised.
    ///
    /// # Errors
    /// As [`create_or_open`](Self::create_or_open); `ETIMEDOUT` also when nobody
    /// initialised the memory in time.
    pub fn open<T>(&self, map: Mapping) -> Result<Shared<T>> {
        let shared = Shared::<T>::adopt(map)?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let state = shared.header(|h| h.state.load(Ordering::Acquire))?;
            if state == READY {
                shared.check_header(self.version)?;
                return Ok(shared);
            }
            self.wait(&shared, state, deadline)?;
        }
    }

    /// Create the named segment `name` with room for `T`, or open it when it exists,
    /// then [`create_or_open`](Self::create_or_open) `T` in it.
    ///
    /// A zero-length segment (a peer's create is `shm_open`, then `ftruncate`) is
    /// handled by [`SegmentOptions::create`]: a live creator still sizing it is waited
    /// for (it holds the sizing lock for one `ftruncate`), and one that died before
    /// sizing it is taken over at once — the segment is sized here and `T` initialised
    /// by the usual protocol — never after a timeout.
    ///
    /// # Errors
    /// As [`SegmentOptions::create`] and [`create_or_open`](Self::create_or_open);
    /// `Layout` when an existing segment is smaller than `T` needs.
    pub fn create_or_open_segment<T>(
        &self,
        name: &str,
        init: impl FnOnce(&mut Shared<T>) -> Result<()>,
    ) -> Result<(Segment, Shared<T>)> {
        let need = Shared::<T>::required_len();
        let seg = SegmentOptions::new()
            .open_or_create()
            .create(name, need as u64)?;
        let shared = self.create_or_open(seg.map()?, init)?;
        Ok((seg, shared))
    }

    /// Sleep until the state word leaves `state` (or [`LOOK`] passes) before looking
    /// again, or fail when the deadline passed.
    fn wait<T>(&self, shared: &Shared<T>, state: u32, deadline: Instant) -> Result<()> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let pid = shared.header(|h| h.reserved[0].load(Ordering::Relaxed))?;
            return Err(timeout_err(state, pid, self.timeout));
        }
        shared.sleep_while(state, left.min(LOOK))
    }
}

/// A `T` in shared memory behind a checked header. See the [module docs](self).
pub struct Shared<T> {
    map: Mapping,
    _t: PhantomData<T>,
}

impl<T> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("type", &std::any::type_name::<T>())
            .field("offset", &Self::offset())
            .field("map", &self.map)
            .finish()
    }
}

impl<T> Shared<T> {
    /// Where `T` starts: the header size rounded up to `T`'s alignment.
    pub const fn offset() -> usize {
        HEADER_SIZE.next_multiple_of(std::mem::align_of::<T>())
    }

    /// The bytes a mapping needs for the header and `T`.
    pub const fn required_len() -> usize {
        Self::offset() + std::mem::size_of::<T>()
    }

    /// The mapping underneath (for its size, `flush`, `advise`).
    pub fn mapping(&self) -> &Mapping {
        &self.map
    }

    /// Give the mapping back.
    pub fn into_mapping(self) -> Mapping {
        self.map
    }

    /// Check that `map` has room and alignment for the header and `T`.
    fn adopt(map: Mapping) -> Result<Shared<T>> {
        let need = Self::required_len();
        let layout = |why: String| {
            Error::new(Op::View, ErrorKind::Layout)
                .with_path(map.path())
                .at(0, map.len() as u64)
                .detail(why)
        };
        if map.len() < need {
            return Err(layout(format!(
                "shared memory is {} bytes; the {HEADER_SIZE}-byte header and {} ({} bytes) need {need}",
                map.len(),
                std::any::type_name::<T>(),
                std::mem::size_of::<T>()
            ))
            .hint("create the segment with Shared::<T>::required_len() bytes"));
        }
        let align = std::mem::align_of::<T>().max(8);
        if map.as_ptr() as usize % align != 0 {
            return Err(layout(format!(
                "the mapping starts at {:p}, not {align}-byte aligned",
                map.as_ptr()
            ))
            .hint("map from a page-aligned offset"));
        }
        Ok(Shared {
            map,
            _t: PhantomData,
        })
    }

    /// Run `f` on the header, under the guard.
    fn header<R>(&self, f: impl FnOnce(&Header) -> R) -> Result<R> {
        // SAFETY: `adopt` checked the header lies in the mapping, 8-byte aligned; `Header`
        // is all atomics, valid for any bits, so concurrent writers are fine; `f` gets a
        // borrow that cannot outlive the guarded call.
        unsafe {
            self.map
                .with_shared_ptr(0, HEADER_SIZE, |p| f(&*p.cast::<Header>()))
        }
    }

    /// `FUTEX_WAIT` on the state word while it holds `seen`, for at most `slice`.
    fn sleep_while(&self, seen: u32, slice: Duration) -> Result<()> {
        let ts = futex::Timespec {
            tv_sec: slice.as_secs() as _,
            tv_nsec: slice.subsec_nanos() as _,
        };
        // Shared futex (no FUTEX_PRIVATE_FLAG): the waker is another process. The word
        // is borrowed under the guard, like every other access to the header.
        let woke =
            self.header(|h| futex::wait(&h.state, futex::Flags::empty(), seen, Some(&ts)))?;
        match woke {
            // EAGAIN: the word had already changed; EINTR: a signal; EFAULT: the memory
            // shrank under the word, which the next (guarded) look reports as Truncated.
            Ok(()) | Err(Errno::AGAIN | Errno::INTR | Errno::TIMEDOUT | Errno::FAULT) => Ok(()),
            Err(e) => Err(Error::os(Op::View, e)
                .with_path(self.map.path())
                .detail(format!(
                    "futex wait on the shared value's state word failed: {}",
                    crate::error::errno_label(e.raw_os_error())
                ))),
        }
    }

    /// Wake every process sleeping on the state word (it just became ready, or 0).
    fn wake_all(&self) {
        // i32::MAX, not u32::MAX: the kernel reads the count as an int, and -1 wakes one.
        let _ = self.header(|h| futex::wake(&h.state, futex::Flags::empty(), i32::MAX as u32));
    }

    /// CAS the state from `seen` to `me`; whether this process won.
    fn claim(&self, seen: u32, me: u32) -> Result<bool> {
        self.header(|h| {
            h.state
                .compare_exchange(seen, me, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        })
    }

    /// As the claimed initialiser: write the header, zero `T`, run `init`, publish.
    fn initialise(
        &mut self,
        version: u32,
        me: u32,
        init: impl FnOnce(&mut Shared<T>) -> Result<()>,
    ) -> Result<()> {
        let mut published = false;
        let result = (|| {
            self.header(|h| {
                h.reserved[0].store(u64::from(std::process::id()), Ordering::Relaxed);
                h.magic.store(MAGIC, Ordering::Relaxed);
                h.version.store(version, Ordering::Relaxed);
                h.size
                    .store(std::mem::size_of::<T>() as u64, Ordering::Relaxed);
                h.align
                    .store(std::mem::align_of::<T>() as u64, Ordering::Relaxed);
            })?;
            let zeros = vec![0u8; std::mem::size_of::<T>()];
            self.map.write_at(Self::offset(), &zeros)?;
            // A panic in `init` gives the claim back too, then goes on unwinding.
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| init(self)));
            match ran {
                Ok(r) => r?,
                Err(panic) => {
                    self.unclaim(me);
                    std::panic::resume_unwind(panic);
                }
            }
            // Release: every write above happens before a peer's Acquire load of READY.
            self.header(|h| h.state.store(READY, Ordering::Release))?;
            published = true;
            self.wake_all();
            Ok(())
        })();
        if !published {
            self.unclaim(me);
        }
        result
    }

    /// Give the claim `me` back (only if still ours) so another process may try.
    fn unclaim(&self, me: u32) {
        let gave_back = self.header(|h| {
            h.state
                .compare_exchange(me, UNINIT, Ordering::Release, Ordering::Relaxed)
                .is_ok()
        });
        if matches!(gave_back, Ok(true)) {
            self.wake_all();
        }
    }

    /// Compare an initialised header with what this program expects.
    fn check_header(&self, version: u32) -> Result<()> {
        let (magic, found_version, size, align) = self.header(|h| {
            (
                h.magic.load(Ordering::Relaxed),
                h.version.load(Ordering::Relaxed),
                h.size.load(Ordering::Relaxed),
                h.align.load(Ordering::Relaxed),
            )
        })?;
        let want_size = std::mem::size_of::<T>() as u64;
        let want_align = std::mem::align_of::<T>() as u64;
        let why = if magic != MAGIC {
            format!("magic {magic:#018x}, this program expects {MAGIC:#018x}: not an mmkit typed segment")
        } else if found_version != version {
            format!("layout version {found_version}, this program expects {version}")
        } else if size != want_size {
            format!("type size {size} bytes, this program's type is {want_size} bytes")
        } else if align != want_align {
            format!("type alignment {align}, this program's type needs {want_align}")
        } else {
            return Ok(());
        };
        Err(Error::new(Op::View, ErrorKind::Layout)
            .with_path(self.map.path())
            .at(0, HEADER_SIZE as u64)
            .detail(format!("shared value header: {why}"))
            .hint("the memory was made by another program or build; unlink it and create it again, or migrate it"))
    }
}

impl<T: FromBytes + IntoBytes + KnownLayout + Immutable> Shared<T> {
    /// Copy the value out (a plain-data `T`; a peer's concurrent write may be mixed in,
    /// see the [module docs](self#what-may-be-borrowed-the-soundness-rule)).
    ///
    /// # Errors
    /// As [`Mapping::read_at`]: `Truncated` when a peer shrank the memory.
    pub fn read(&self) -> Result<T> {
        self.map.read_value(Self::offset())
    }

    /// Copy `value` in.
    ///
    /// # Errors
    /// As [`Mapping::write_at`].
    pub fn write(&mut self, value: &T) -> Result<()> {
        self.map.write_value(Self::offset(), value)
    }
}

impl<T: SharedSafe> Shared<T> {
    /// Borrow `T` (atomic fields only, see [`SharedSafe`]) for as long as `self`.
    ///
    /// # Errors
    /// `Unsupported` when the memory can shrink (a named segment, an unsealed file): use
    /// [`with`](Self::with), which guards each access; `Protected` when the pages are not
    /// read-write.
    pub fn get(&self) -> Result<&T> {
        if self.map.can_shrink() {
            return Err(Error::new(Op::View, ErrorKind::Unsupported)
                .with_path(self.map.path())
                .detail(
                    "a lasting &T into memory that can shrink could not be guarded against SIGBUS",
                )
                .hint("use Shared::with, which runs under the SIGBUS guard"));
        }
        // SAFETY: checks range and protection; the pointer is only returned.
        let p = unsafe {
            self.map
                .with_shared_ptr(Self::offset(), std::mem::size_of::<T>(), |p| p)?
        };
        // SAFETY: `p` is aligned for T (`adopt` checked the base; `offset` is a multiple
        // of T's alignment) and inside read-write memory that cannot shrink and cannot
        // move or be unmapped while `&self` is borrowed (remap and drop need ownership);
        // T: SharedSafe makes concurrent writes by peers sound.
        Ok(unsafe { &*p.cast::<T>() })
    }

    /// Run `f` with `&T` under the SIGBUS guard: works on every mapping, named segments
    /// included. When a peer shrinks the memory under `T` while `f` runs, `f` finishes on
    /// zero pages (its writes are lost) and the call returns `Err(Truncated)`.
    ///
    /// # Errors
    /// `Truncated` (remap after [`Segment::size`]), `Protected`.
    pub fn with<R>(&self, f: impl FnOnce(&T) -> R) -> Result<R> {
        // SAFETY: the range is `T`'s, aligned as in `get`; T: SharedSafe makes a borrow
        // under concurrent writes sound, and zero pages are a valid T; the borrow cannot
        // leave `f`.
        unsafe {
            self.map
                .with_shared_ptr(Self::offset(), std::mem::size_of::<T>(), |p| {
                    f(&*p.cast::<T>())
                })
        }
    }
}
