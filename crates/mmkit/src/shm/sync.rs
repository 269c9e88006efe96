//! Process-shared synchronisation living inside shared memory.
//!
//! - [`RobustMutex`]: a robust mutex (below).
//! - [`Semaphore`]: a counting semaphore (`post`, `wait`, `wait_timeout`) for events
//!   between processes.
//!
//! [`RobustMutex`] is a futex-based mutex over one 4-byte word of shared memory (a
//! [`Mapping`] made with [`MapOptions::map_anon_shared`](crate::MapOptions) and inherited
//! over `fork`, a named segment, a memfd). It is *robust*, like a
//! `PTHREAD_MUTEX_ROBUST` mutex: when the owner dies holding it (`kill -9`, a crash), the
//! next locker gets [`LockResult::OwnerDied`] instead of a deadlock, repairs the shared
//! state and calls [`RobustMutexGuard::mark_consistent`]. A guard from `OwnerDied` that is
//! dropped without `mark_consistent` leaves the mutex *not recoverable*: every later lock
//! fails with `ENOTRECOVERABLE`, as `pthread_mutex_lock` does.
//! A holder that took the lock over (`OwnerDied`) and dies too before
//! `mark_consistent` passes `OwnerDied` on to the next locker, again as pthreads do: the
//! state is still unrepaired.
//!
//! Wraps [`futex(2)`](https://man7.org/linux/man-pages/man2/futex.2.html) (`FUTEX_WAIT`
//! with a timeout, `FUTEX_WAKE`; never `FUTEX_PRIVATE_FLAG`, so waiters in other
//! processes are found through the shared page). Owner liveness comes from an OFD lock
//! (`F_OFD_GETLK` of [`fcntl(2)`](https://man7.org/linux/man-pages/man2/fcntl.2.html)) in
//! the file-backed mode, from
//! [`/proc/TID/stat`](https://man7.org/linux/man-pages/man5/proc_pid_stat.5.html) and
//! [`gettid(2)`](https://man7.org/linux/man-pages/man2/gettid.2.html) in the TID mode.
//!
//! # Two modes
//!
//! - **File-backed** ([`RobustMutex::with_owner`]), for a word in a file every user has
//!   open (a named segment, a memfd, a store's header): the word names the holder's
//!   [`Owner`] — an id whose byte ([`OWNER_BASE`]` + id`) the holder's process keeps
//!   locked with an open-file-description lock. The kernel drops that lock when the
//!   process dies, and the lock is seen by every process with the file open, in any PID
//!   namespace; nothing of it is stored, so after a reboot (or in a copy of the file) a
//!   word names nobody alive and is taken over at once. This is the mode the stores use.
//! - **TID mode** ([`RobustMutex::new`]), for any word, file or not (anonymous shared
//!   memory inherited over `fork`): the word holds the holder's TID, checked in
//!   `/proc/TID/stat`. It is for one PID namespace and one boot only (see Limits).
//!
//! # The protocol
//!
//! The lock word follows the kernel's robust-futex layout
//! (`Documentation/locking/robust-futex-ABI.rst`): the holder in the low 30 bits (0 =
//! free; a TID, or an [`Owner`] id), [`FUTEX_OWNER_DIED`] (bit 30) and [`FUTEX_WAITERS`]
//! (bit 31).
//!
//! - **lock**: CAS `0 → me`. Otherwise set the waiters bit and `FUTEX_WAIT` on the
//!   observed value for at most 20 ms. On each timeout the waiter asks whether the
//!   holder lives (its owner lock is held, or its `/proc/TID/stat` names a live
//!   thread); if not, it CASes the word from exactly that value to
//!   `me | OWNER_DIED | WAITERS` and returns `OwnerDied`. Only one waiter can win that
//!   CAS. The fast path (an uncontended CAS) makes no system call in either mode.
//! - **unlock** (guard drop): swap the word to 0 (or to the not-recoverable value) and,
//!   if the waiters bit was set, `FUTEX_WAKE` one waiter (all of them for not-recoverable).
//!
//! Why not the kernel's own robust list (`set_robust_list(2)`)? glibc registers one list
//! head per thread for its pthread robust mutexes; replacing it would break them, and
//! sharing it would mean writing glibc's private list layout. Checking liveness in the
//! waiter needs neither.
//!
//! # Limits
//!
//! File-backed mode:
//!
//! - **The holder is a process**, not a thread: threads of one process share its
//!   [`Owner`] and exclude each other through the word, but a thread that exits holding
//!   a guard (only possible by leaking it) is not noticed while its process lives.
//! - **`fork`**: a child inherits the parent's descriptors, so an owner lock held at the
//!   fork stays held while either lives; the child must claim its own [`Owner`] (the
//!   inherited one is refused with `EINVAL`).
//! - **Id reuse.** Ids are drawn at random from 2^30 − 1 and held exclusively, so two live
//!   owners never share one. A word left by a dead owner whose id a new owner happens to
//!   draw reads as alive until that owner locks the word itself (then it sees its own id
//!   held by no thread of its process and takes over) or ends.
//! - Every user must have the file open read-write and `/proc` mounted (the owner's
//!   description is opened through `/proc/self/fd`).
//!
//! TID mode:
//!
//! - **One PID namespace.** The word holds a TID as the holder's namespace numbers it;
//!   in another namespace that number names another thread or none, so a live holder
//!   in another namespace can be taken over and a dead one waited for forever. Use the
//!   file-backed mode across containers or `unshare --pid`.
//! - **One boot.** A word kept in a file keeps a dead thread's TID across a reboot,
//!   where a live thread may have it: the file-backed mode has no such state.
//! - **TID reuse.** If the kernel hands a dead holder's TID to a new thread before a
//!   waiter looks (after wrapping `kernel.pid_max`), the waiter keeps waiting.
//! - A guard is bound to its thread (the word holds that thread's TID): it is not `Send`.
//!
//! Both modes:
//!
//! - **Detection latency.** A waiter notices a dead owner within about one poll
//!   interval (20 ms); a live owner is never taken over.
//! - **Not re-entrant.** Locking twice from the same thread fails with `EDEADLK`.
//!
//! # Example
//!
//! ```
//! use mmkit::shm::sync::{LockResult, RobustMutex};
//! use mmkit::process::Exit;
//! use mmkit::MapOptions;
//!
//! let lock_map = MapOptions::new().len(4096).map_anon_shared()?;
//! let counter = MapOptions::new().len(4096).map_anon_shared()?;
//! let mutex = RobustMutex::from_mapping(&lock_map, 0)?;
//! let count = &counter.atomic_u64s(0, 1)?[0];
//!
//! // SAFETY: the child only locks, touches shared memory and returns.
//! let child = unsafe {
//!     mmkit::process::fork(|_link| {
//!         for _ in 0..100 {
//!             let Ok(guard) = mutex.lock() else { return 1 };
//!             let g = guard.into_guard();
//!             // A read-modify-write made safe by the lock.
//!             let v = count.load(std::sync::atomic::Ordering::Relaxed);
//!             count.store(v + 1, std::sync::atomic::Ordering::Relaxed);
//!             drop(g);
//!         }
//!         0
//!     })
//! }?;
//! for _ in 0..100 {
//!     let guard = mutex.lock()?;
//!     assert!(matches!(guard, LockResult::Acquired(_)));
//!     let v = count.load(std::sync::atomic::Ordering::Relaxed);
//!     count.store(v + 1, std::sync::atomic::Ordering::Relaxed);
//! }
//! assert_eq!(child.wait()?, Exit::Code(0));
//! assert_eq!(count.load(std::sync::atomic::Ordering::Relaxed), 200);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::thread::futex;

use crate::error::{Error, Op, Result};
use crate::map::Mapping;

pub use super::owner::{Owner, MAX_OWNER_ID, OWNER_BASE};
pub use super::semaphore::Semaphore;

/// Bit 31 of the lock word: some thread may be sleeping in `FUTEX_WAIT` on it.
pub const FUTEX_WAITERS: u32 = 0x8000_0000;
/// Bit 30 of the lock word: the owner took the lock over from a dead owner and has not
/// yet called [`RobustMutexGuard::mark_consistent`].
pub const FUTEX_OWNER_DIED: u32 = 0x4000_0000;
/// The low 30 bits of the lock word: the owner's TID, 0 when free.
pub const FUTEX_TID_MASK: u32 = 0x3fff_ffff;

/// The TID field of a mutex that is not recoverable. No thread has this id:
/// `kernel.pid_max` is at most 2^22.
const NOT_RECOVERABLE: u32 = FUTEX_TID_MASK;

/// How long a waiter sleeps in `FUTEX_WAIT` before it checks that the owner lives.
const POLL: Duration = Duration::from_millis(20);

/// A robust, process-shared mutex: a view over a 4-byte-aligned `u32` in shared memory.
///
/// The word must start at 0 (free); shared anonymous memory and new segments are zeroed.
/// The mutex protects no data by itself (the data lives in shared memory beside it):
/// hold the guard while reading and writing that data. A hot lock is best given its own
/// cache line (as crossbeam's `CachePadded`), away from the data other processes write.
///
/// See the [module docs](self) for the protocol and its limits.
#[derive(Clone, Copy)]
pub struct RobustMutex<'a> {
    /// Who is the holder: `None` for the TID mode (one PID namespace only, see the
    /// [module docs](self#two-modes)); an [`Owner`] for the file-backed mode.
    owner: Option<&'a Owner>,
    /// The lock word. Invariants (for every process that maps it):
    /// - `word & FUTEX_TID_MASK` is 0 (free), the TID of the one thread holding a guard,
    ///   or `NOT_RECOVERABLE` (terminal: nothing but a fresh word leaves it);
    /// - only the holder changes the TID field away from its own TID (unlock), except a
    ///   waiter that has seen the holder dead, which CASes from the exact value it read;
    /// - `FUTEX_WAITERS` is set before any thread sleeps on the word and stays set until
    ///   the holder's unlock clears the word (it may be set with no sleeper: one spare wake);
    /// - `FUTEX_OWNER_DIED` is set only together with a live holder's TID, from takeover
    ///   until `mark_consistent`.
    word: &'a AtomicU32,
}

impl fmt::Debug for RobustMutex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.word.load(Ordering::Relaxed);
        f.debug_struct("RobustMutex")
            .field("owner", &(w & FUTEX_TID_MASK))
            .field("waiters", &(w & FUTEX_WAITERS != 0))
            .field("owner_died", &(w & FUTEX_OWNER_DIED != 0))
            .finish()
    }
}

/// What a successful lock found.
#[must_use = "dropping the result unlocks the mutex at once"]
#[derive(Debug)]
pub enum LockResult<'a> {
    /// The lock was taken normally; the protected state is consistent.
    Acquired(RobustMutexGuard<'a>),
    /// The previous owner died holding the lock (`EOWNERDEAD`): the protected state may be
    /// half-updated. Repair it, then call [`RobustMutexGuard::mark_consistent`]; dropping
    /// the guard without doing so makes the mutex not recoverable.
    OwnerDied(RobustMutexGuard<'a>),
}

impl<'a> LockResult<'a> {
    /// The guard, whichever way the lock was taken.
    pub fn into_guard(self) -> RobustMutexGuard<'a> {
        match self {
            LockResult::Acquired(g) | LockResult::OwnerDied(g) => g,
        }
    }

    /// Whether the previous owner died holding the lock.
    pub fn is_owner_died(&self) -> bool {
        matches!(self, LockResult::OwnerDied(_))
    }
}

/// Proof that this thread holds a [`RobustMutex`]; unlocks on drop.
#[must_use = "dropping the guard unlocks the mutex at once"]
pub struct RobustMutexGuard<'a> {
    word: &'a AtomicU32,
    owner: Option<&'a Owner>,
    /// Taken over from a dead owner and not yet marked consistent.
    inconsistent: bool,
    /// The word holds this thread's TID: the guard must stay on this thread.
    _not_send: PhantomData<*const ()>,
}

impl fmt::Debug for RobustMutexGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RobustMutexGuard")
            .field("inconsistent", &self.inconsistent)
            .finish()
    }
}

impl<'a> RobustMutex<'a> {
    /// The size of the lock word in bytes.
    pub const SIZE: usize = 4;

    /// A mutex over `word`, which must live in memory every user maps shared and start
    /// at 0. The word is not reset: an existing lock state is adopted as it is.
    ///
    /// This is the TID mode: the word holds the holder's TID and a dead holder is found
    /// through `/proc/TID/stat`, so every user must be in one PID namespace and the word
    /// must not outlive the boot (see the [module docs](self#two-modes)). Prefer
    /// [`with_owner`](Self::with_owner) whenever the memory is a file.
    pub fn new(word: &'a AtomicU32) -> RobustMutex<'a> {
        RobustMutex { word, owner: None }
    }

    /// A mutex over `word` in a shared *file* (a segment, a memfd, a store's header),
    /// whose holders are named by their [`Owner`] on that file: the file-backed mode.
    /// A holder is dead when nobody holds its owner lock — decided by the kernel, in any
    /// PID namespace, and never carried over a reboot — so a word left by a power cut or
    /// copied with the file is taken over at once ([`LockResult::OwnerDied`]).
    ///
    /// Every user of the word must use this mode with an `Owner` on the same file.
    pub fn with_owner(word: &'a AtomicU32, owner: &'a Owner) -> RobustMutex<'a> {
        RobustMutex {
            word,
            owner: Some(owner),
        }
    }

    /// A mutex over the 4-byte word at `off` in `map`.
    ///
    /// # Errors
    /// As [`Mapping::atomic_u32s`]: `Layout` when `off` is not 4-byte aligned,
    /// `OutOfRange`, `Protected`, `Unsupported` for a file that can shrink.
    pub fn from_mapping(map: &'a Mapping, off: usize) -> Result<RobustMutex<'a>> {
        Ok(RobustMutex::new(&map.atomic_u32s(off, 1)?[0]))
    }

    /// Lock, waiting as long as it takes (`FUTEX_WAIT`).
    ///
    /// # Errors
    /// `Os` with errno `ENOTRECOVERABLE` when an earlier `OwnerDied` guard was dropped
    /// unrepaired; `EDEADLK` when this thread holds it already; the kernel's refusal of
    /// `futex` (`EFAULT`, `ENOSYS`).
    #[doc(alias = "pthread_mutex_lock")]
    pub fn lock(&self) -> Result<LockResult<'a>> {
        self.lock_until(None)
    }

    /// Lock, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`lock`](Self::lock), and `Os` with errno `ETIMEDOUT` when `timeout` passed
    /// with the lock held by a live thread.
    #[doc(alias = "pthread_mutex_timedlock")]
    pub fn lock_timeout(&self, timeout: Duration) -> Result<LockResult<'a>> {
        self.lock_until(Some(Instant::now() + timeout))
    }

    /// Lock only if that needs no waiting: `Ok(None)` when a live thread holds it.
    ///
    /// # Errors
    /// As [`lock`](Self::lock).
    #[doc(alias = "pthread_mutex_trylock")]
    pub fn try_lock(&self) -> Result<Option<LockResult<'a>>> {
        let tid = self.me()?;
        let cur = self.word.load(Ordering::Relaxed);
        if cur & FUTEX_TID_MASK == 0 {
            return Ok(self.acquire(cur, tid | (cur & FUTEX_WAITERS)));
        }
        self.check_state(cur, tid)?;
        if self.holder_dead(cur & FUTEX_TID_MASK, tid) {
            return Ok(self.take_over(cur, tid));
        }
        Ok(None)
    }

    /// The value this thread stores as the holder: its TID, or its owner's id.
    #[inline]
    fn me(&self) -> Result<u32> {
        match self.owner {
            None => Ok(current_tid()),
            Some(o) => {
                o.check_fork()?;
                Ok(o.id())
            }
        }
    }

    /// Whether the holder `holder` (not free, not not-recoverable) is gone. TID mode:
    /// `/proc/TID/stat`. Owner mode: its owner lock is free (`F_OFD_GETLK`); our own
    /// id is gone only when no thread of this process holds a guard of our owner (the
    /// word was left by an earlier owner that drew the same id, before a reboot or in
    /// the file this one was copied from).
    fn holder_dead(&self, holder: u32, me: u32) -> bool {
        match self.owner {
            None => owner_dead(holder),
            Some(o) if holder == me => !o.holds_any(),
            // On an error, alive: never take a lock over without proof.
            Some(o) => !o.is_alive(holder).unwrap_or(true),
        }
    }

    /// Whether some thread holds the lock now (a snapshot, for diagnostics).
    pub fn is_locked(&self) -> bool {
        self.word.load(Ordering::Relaxed) & FUTEX_TID_MASK != 0
    }

    fn lock_until(&self, deadline: Option<Instant>) -> Result<LockResult<'a>> {
        let tid = self.me()?;
        // Once this thread has slept, others may still sleep: keep the waiters bit set
        // when taking the lock so the unlock wakes the next one (Drepper, "Futexes Are
        // Tricky", mutex 2).
        let mut waited = false;
        loop {
            let cur = self.word.load(Ordering::Relaxed);
            if cur & FUTEX_TID_MASK == 0 {
                let waiters = if waited { FUTEX_WAITERS } else { 0 };
                match self.acquire(cur, tid | waiters | (cur & FUTEX_WAITERS)) {
                    Some(r) => return Ok(r),
                    None => continue,
                }
            }
            self.check_state(cur, tid)?;
            let expect = cur | FUTEX_WAITERS;
            if cur != expect
                && self
                    .word
                    .compare_exchange(cur, expect, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            waited = true;
            let mut slice = POLL;
            if let Some(d) = deadline {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    if self.holder_dead(cur & FUTEX_TID_MASK, tid) {
                        if let Some(r) = self.take_over(expect, tid) {
                            return Ok(r);
                        }
                        continue;
                    }
                    return Err(self.timeout_error(cur & FUTEX_TID_MASK));
                }
                slice = slice.min(left);
            }
            if let Some(r) = self.sleep(expect, tid, slice)? {
                return Ok(r);
            }
        }
    }

    /// The error for a lock still held by `holder` when the timeout passed.
    fn timeout_error(&self, holder: u32) -> Error {
        Error::os(Op::Process, Errno::TIMEDOUT)
            .detail(format!(
                "robust mutex still held by {} {holder} when the timeout passed",
                if self.owner.is_some() { "owner" } else { "thread" },
            ))
            .hint("the owner is alive and has not unlocked; wait longer or find why it holds the lock")
    }

    /// Sleep while the word is `expect`, for at most `slice`; `Some` when the sleep timed
    /// out, its holder had died, and this thread (`tid`) took the lock over.
    fn sleep(&self, expect: u32, tid: u32, slice: Duration) -> Result<Option<LockResult<'a>>> {
        let ts = futex::Timespec {
            tv_sec: slice.as_secs() as _,
            tv_nsec: slice.subsec_nanos() as _,
        };
        // FUTEX_WAIT (shared: no FUTEX_PRIVATE_FLAG) sleeps only while the word is
        // still `expect`; EAGAIN means it changed, EINTR a signal: look again.
        match futex::wait(self.word, futex::Flags::empty(), expect, Some(&ts)) {
            Ok(()) | Err(Errno::AGAIN) | Err(Errno::INTR) => Ok(None),
            Err(Errno::TIMEDOUT) if self.holder_dead(expect & FUTEX_TID_MASK, tid) => {
                Ok(self.take_over(expect, tid))
            }
            Err(Errno::TIMEDOUT) => Ok(None),
            Err(e) => Err(Error::os(Op::Process, e).detail(format!(
                "futex wait on a robust mutex failed: {}",
                crate::error::errno_label(e.raw_os_error())
            ))),
        }
    }

    /// CAS the free word `cur` to `new` (holding `tid`); `None` if it changed meanwhile.
    fn acquire(&self, cur: u32, new: u32) -> Option<LockResult<'a>> {
        self.counted(|| {
            self.word
                .compare_exchange(cur, new, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        })
        .then(|| LockResult::Acquired(self.guard(false)))
    }

    /// Run the CAS `cas` with this process's owner counted as holding a guard (owner
    /// mode), uncounted again when it fails: another thread of this process that sees
    /// our id in the word between the CAS and the count must not take it for stale.
    #[inline]
    fn counted(&self, cas: impl FnOnce() -> bool) -> bool {
        if let Some(o) = self.owner {
            o.acquired();
            let won = cas();
            if !won {
                o.released();
            }
            won
        } else {
            cas()
        }
    }

    /// CAS the word from `seen` (a dead owner's value) to `tid | OWNER_DIED`, keeping the
    /// waiters bit. Only one waiter can win: the others see a live owner (the winner).
    fn take_over(&self, seen: u32, tid: u32) -> Option<LockResult<'a>> {
        let new = tid | FUTEX_OWNER_DIED | (seen & FUTEX_WAITERS);
        self.counted(|| {
            self.word
                .compare_exchange(seen, new, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        })
        .then(|| LockResult::OwnerDied(self.guard(true)))
    }

    /// Errors for a held word: not recoverable, or held by this very thread.
    fn check_state(&self, cur: u32, tid: u32) -> Result<()> {
        let owner = cur & FUTEX_TID_MASK;
        if owner == NOT_RECOVERABLE {
            return Err(Error::os(Op::Process, Errno::NOTRECOVERABLE)
                .detail("robust mutex is not recoverable: a lock taken over from a dead owner was released without mark_consistent")
                .hint("call mark_consistent() on an OwnerDied guard after repairing the shared state; re-create the mutex word to use it again"));
        }
        if owner == tid && (self.owner.is_none() || held_here(self.word)) {
            return Err(Error::os(Op::Process, Errno::DEADLK)
                .detail(format!("thread {tid} already holds this robust mutex"))
                .hint("drop the first guard before locking again; the mutex is not re-entrant"));
        }
        Ok(())
    }

    fn guard(&self, inconsistent: bool) -> RobustMutexGuard<'a> {
        if self.owner.is_some() {
            HELD.with(|h| h.borrow_mut().push(self.word as *const AtomicU32 as usize));
        }
        RobustMutexGuard {
            word: self.word,
            owner: self.owner,
            inconsistent,
            _not_send: PhantomData,
        }
    }
}

impl<'a> RobustMutexGuard<'a> {
    /// The mutex this guard holds, to unlock and relock it around a condition-variable
    /// wait.
    pub(crate) fn mutex(&self) -> RobustMutex<'a> {
        RobustMutex {
            word: self.word,
            owner: self.owner,
        }
    }

    /// Declare the protected state repaired after [`LockResult::OwnerDied`]; the mutex
    /// then unlocks normally. A no-op on a normally acquired guard.
    #[doc(alias = "pthread_mutex_consistent")]
    pub fn mark_consistent(&mut self) {
        if self.inconsistent {
            // Only the holder changes OWNER_DIED; waiters may add FUTEX_WAITERS meanwhile.
            self.word.fetch_and(!FUTEX_OWNER_DIED, Ordering::Relaxed);
            self.inconsistent = false;
        }
    }

    /// Whether this guard came from a dead owner and is not yet marked consistent.
    pub fn is_inconsistent(&self) -> bool {
        self.inconsistent
    }
}

impl Drop for RobustMutexGuard<'_> {
    fn drop(&mut self) {
        let (next, wake) = if self.inconsistent {
            (NOT_RECOVERABLE, i32::MAX as u32)
        } else {
            (0, 1)
        };
        if self.owner.is_some() {
            let me = self.word as *const AtomicU32 as usize;
            HELD.with(|h| {
                let mut h = h.borrow_mut();
                if let Some(i) = h.iter().rposition(|&w| w == me) {
                    h.swap_remove(i);
                }
            });
        }
        // Release: the protected writes happen before the next owner's Acquire CAS.
        let prev = self.word.swap(next, Ordering::Release);
        // Uncounted only after the word is free: until then a thread of this process
        // that sees our id must know it is held.
        if let Some(o) = self.owner {
            o.released();
        }
        if prev & FUTEX_WAITERS != 0 || next != 0 {
            // FUTEX_WAKE (shared). Its only errors are EFAULT/EINVAL on a bad word, which
            // a live borrow of mapped memory rules out; nothing to report from a drop.
            let _ = futex::wake(self.word, futex::Flags::empty(), wake);
        }
    }
}

std::thread_local! {
    /// The words of owner-mode mutexes this thread holds (by address): tells "this thread
    /// locks twice" (`EDEADLK`) from "another thread of this process, same owner, holds
    /// it" (wait).
    static HELD: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Whether this thread holds an owner-mode guard on `word`.
fn held_here(word: &AtomicU32) -> bool {
    let me = word as *const AtomicU32 as usize;
    HELD.with(|h| h.borrow().contains(&me))
}

fn current_tid() -> u32 {
    crate::sys::process::cached_tid()
}

/// Whether thread `tid` has ended: `/proc/TID/stat` is gone, or it is a zombie (`Z`) or
/// dead (`X`) and only waits to be reaped. Any other answer counts as alive.
pub(crate) fn owner_dead(tid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{tid}/stat")) {
        Err(e) => {
            e.kind() == std::io::ErrorKind::NotFound
                || e.raw_os_error() == Some(rustix::io::Errno::SRCH.raw_os_error())
        }
        // "pid (comm) S ...": the state follows the last ')' (comm may hold ')').
        Ok(s) => matches!(
            s.rfind(')')
                .and_then(|i| s[i + 1..].trim_start().chars().next()),
            Some('Z' | 'X' | 'x')
        ),
    }
}
