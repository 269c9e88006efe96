//! A process-shared condition variable over one futex word, paired with
//! [`RobustMutex`](super::sync::RobustMutex): [`Condvar`].
//!
//! The word is a sequence counter. [`Condvar::wait`] reads it while the caller holds the
//! mutex, unlocks, sleeps in `FUTEX_WAIT` while the word still has that value, and locks
//! again. [`notify_one`](Condvar::notify_one) / [`notify_all`](Condvar::notify_all) add one
//! to the word and `FUTEX_WAKE` one or all sleepers.
//!
//! Wraps [`futex(2)`](https://man7.org/linux/man-pages/man2/futex.2.html) (`FUTEX_WAIT`
//! with a timeout and `FUTEX_WAKE`, shared: never `FUTEX_PRIVATE_FLAG`).
//!
//! # Why no wakeup is lost
//!
//! A notifier changes the waited-for state while holding the mutex, then bumps the word.
//! The waiter read the word while holding the mutex, before unlocking it, so a bump made
//! after the waiter's unlock is later than the value the waiter read: `FUTEX_WAIT`
//! either sees the new value and returns at once (`EAGAIN`), or is asleep already and is
//! woken. (Only exactly 2^32 notifications between the read and the sleep could hide one.)
//!
//! # Rules
//!
//! - Wakeups may be spurious: always wait in a loop over the condition.
//! - The relock is the mutex's own: when the mutex owner died while this waiter slept,
//!   the wait returns [`LockResult::OwnerDied`]; repair, then `mark_consistent`.
//! - Waiting with a guard that is still inconsistent (from `OwnerDied`, not yet marked)
//!   releases it the way dropping it does: the mutex becomes not recoverable.
//! - A peer that dies without notifying wakes nobody: bound waits with
//!   [`wait_timeout`](Condvar::wait_timeout) when peers may die.
//! - The word starts at any value (zeroed shared memory is fine) and needs no reset.
//!
//! # Example
//!
//! ```
//! use std::sync::atomic::Ordering::Relaxed;
//! use std::time::Duration;
//! use mmkit::shm::{condvar::Condvar, sync::RobustMutex};
//! use mmkit::MapOptions;
//!
//! let words = MapOptions::new().len(4096).map_anon_shared()?;
//! let mutex = RobustMutex::from_mapping(&words, 0)?;
//! let cv = Condvar::from_mapping(&words, 4)?;
//! let ready = &words.atomic_u32s(8, 1)?[0];
//!
//! // SAFETY: the child only locks, touches shared atomics and returns.
//! let child = unsafe {
//!     mmkit::process::fork(|_| {
//!         let Ok(g) = mutex.lock() else { return 1 };
//!         ready.store(1, Relaxed);
//!         drop(g);
//!         cv.notify_all();
//!         0
//!     })
//! }?;
//! let mut guard = mutex.lock()?.into_guard();
//! while ready.load(Relaxed) == 0 {
//!     let (relocked, _timed_out) = cv.wait_timeout(guard, Duration::from_secs(10))?;
//!     guard = relocked.into_guard();
//! }
//! drop(guard);
//! assert_eq!(child.wait()?, mmkit::process::Exit::Code(0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::thread::futex;

use super::sync::{LockResult, RobustMutexGuard};
use crate::error::{Error, Op, Result};
use crate::map::Mapping;

/// A process-shared condition variable: a view over a 4-byte-aligned `u32` in shared
/// memory. See the [module docs](self).
#[derive(Clone, Copy)]
pub struct Condvar<'a> {
    /// The sequence word. Invariant: only `notify_*` change it, each by +1 (wrapping),
    /// before waking; waiters only read it.
    seq: &'a AtomicU32,
}

impl fmt::Debug for Condvar<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar")
            .field("seq", &self.seq.load(Ordering::Relaxed))
            .finish()
    }
}

impl<'a> Condvar<'a> {
    /// The size of the condvar word in bytes.
    pub const SIZE: usize = 4;

    /// A condition variable over `word`, in memory every user maps shared.
    pub fn new(word: &'a AtomicU32) -> Condvar<'a> {
        Condvar { seq: word }
    }

    /// A condition variable over the 4-byte word at `off` in `map`.
    ///
    /// # Errors
    /// As [`Mapping::atomic_u32s`].
    pub fn from_mapping(map: &'a Mapping, off: usize) -> Result<Condvar<'a>> {
        Ok(Condvar::new(&map.atomic_u32s(off, 1)?[0]))
    }

    /// Unlock `guard`'s mutex, sleep until notified (or spuriously), lock it again.
    ///
    /// # Errors
    /// As [`RobustMutex::lock`](super::sync::RobustMutex::lock) for the relock; the
    /// kernel's refusal of `futex` (after relocking, the guard is then dropped).
    #[doc(alias = "pthread_cond_wait")]
    pub fn wait<'m>(&self, guard: RobustMutexGuard<'m>) -> Result<LockResult<'m>> {
        self.wait_until(guard, None).map(|(r, _)| r)
    }

    /// As [`wait`](Self::wait), sleeping at most `timeout`; the `bool` is true when the
    /// timeout passed without a notification (the mutex is held again either way).
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    #[doc(alias = "pthread_cond_timedwait")]
    pub fn wait_timeout<'m>(
        &self,
        guard: RobustMutexGuard<'m>,
        timeout: Duration,
    ) -> Result<(LockResult<'m>, bool)> {
        self.wait_until(guard, Some(Instant::now() + timeout))
    }

    /// Wake one waiter (`FUTEX_WAKE` 1).
    #[doc(alias = "pthread_cond_signal")]
    pub fn notify_one(&self) {
        self.notify(1);
    }

    /// Wake every waiter (`FUTEX_WAKE` all).
    #[doc(alias = "pthread_cond_broadcast")]
    pub fn notify_all(&self) {
        self.notify(i32::MAX as u32);
    }

    fn notify(&self, n: u32) {
        // Release: pairs with nothing the waiter needs (the mutex orders the state), but
        // keeps the bump after this thread's earlier writes.
        self.seq.fetch_add(1, Ordering::Release);
        // FUTEX_WAKE (shared). Its only errors are EFAULT/EINVAL on a bad word, which a
        // live borrow of mapped memory rules out.
        let _ = futex::wake(self.seq, futex::Flags::empty(), n);
    }

    fn wait_until<'m>(
        &self,
        guard: RobustMutexGuard<'m>,
        deadline: Option<Instant>,
    ) -> Result<(LockResult<'m>, bool)> {
        let mutex = guard.mutex();
        // Read under the mutex: see "Why no wakeup is lost".
        let seen = self.seq.load(Ordering::Relaxed);
        drop(guard);
        let slept = self.sleep(seen, deadline);
        let relocked = mutex.lock()?;
        Ok((relocked, slept?))
    }

    /// `FUTEX_WAIT` while the word is `seen`; whether the deadline passed.
    fn sleep(&self, seen: u32, deadline: Option<Instant>) -> Result<bool> {
        let ts = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(true);
                }
                Some(futex::Timespec {
                    tv_sec: left.as_secs() as _,
                    tv_nsec: left.subsec_nanos() as _,
                })
            }
            None => None,
        };
        match futex::wait(self.seq, futex::Flags::empty(), seen, ts.as_ref()) {
            // Woken, the word moved already (EAGAIN), or a signal: a (maybe spurious) wakeup.
            Ok(()) | Err(Errno::AGAIN) | Err(Errno::INTR) => Ok(false),
            Err(Errno::TIMEDOUT) => Ok(true),
            Err(e) => Err(Error::os(Op::Process, e).detail(format!(
                "futex wait on a condition variable failed: {}",
                crate::error::errno_label(e.raw_os_error())
            ))),
        }
    }
}
