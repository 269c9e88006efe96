//! [`Semaphore`]: a process-shared counting semaphore over one word of shared memory
//! (`sem_post`/`sem_wait` on a futex), re-exported as `shm::sync::Semaphore`.
//!
//! Wraps [`futex(2)`](https://man7.org/linux/man-pages/man2/futex.2.html) (`FUTEX_WAIT`
//! with a timeout, `FUTEX_WAKE`; shared, never `FUTEX_PRIVATE_FLAG`).

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::thread::futex;

use crate::error::{Error, Op, Result};
use crate::map::Mapping;

/// Bit 31 of a semaphore word: some thread may be sleeping on it.
const SEM_WAITERS: u32 = 0x8000_0000;
/// The low 31 bits of a semaphore word: the count.
const SEM_COUNT: u32 = 0x7fff_ffff;

/// A process-shared counting semaphore over a 4-byte-aligned `u32` in shared memory:
/// [`post`](Self::post) adds one and wakes a sleeper, [`wait`](Self::wait) takes one or
/// sleeps in `FUTEX_WAIT` until there is one (`sem_post`/`sem_wait` with a futex).
///
/// The word starts at 0 (nothing posted) in zeroed shared memory. Unlike the mutex it has
/// no owner, so a process that dies simply posts no more: bound waits with
/// [`wait_timeout`](Self::wait_timeout) when the poster may die.
#[derive(Clone, Copy)]
pub struct Semaphore<'a> {
    /// The semaphore word. Invariants:
    /// - `word & SEM_COUNT` is the number of posts not yet taken; only `post` raises it
    ///   (never past `SEM_COUNT`) and only a successful CAS in `try_wait` lowers it;
    /// - `SEM_WAITERS` is set before any thread sleeps on the word; `post` clears it and
    ///   then wakes every sleeper, who set it again if they must sleep again.
    word: &'a AtomicU32,
}

impl fmt::Debug for Semaphore<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.word.load(Ordering::Relaxed);
        f.debug_struct("Semaphore")
            .field("count", &(w & SEM_COUNT))
            .field("waiters", &(w & SEM_WAITERS != 0))
            .finish()
    }
}

impl<'a> Semaphore<'a> {
    /// The size of the semaphore word in bytes.
    pub const SIZE: usize = 4;

    /// A semaphore over `word`, which must live in memory every user maps shared.
    pub fn new(word: &'a AtomicU32) -> Semaphore<'a> {
        Semaphore { word }
    }

    /// A semaphore over the 4-byte word at `off` in `map`.
    ///
    /// # Errors
    /// As [`Mapping::atomic_u32s`].
    pub fn from_mapping(map: &'a Mapping, off: usize) -> Result<Semaphore<'a>> {
        Ok(Semaphore::new(&map.atomic_u32s(off, 1)?[0]))
    }

    /// The count now (a snapshot).
    pub fn value(&self) -> u32 {
        self.word.load(Ordering::Relaxed) & SEM_COUNT
    }

    /// Add one and wake the sleepers (`FUTEX_WAKE`).
    ///
    /// # Errors
    /// `Os` with errno `EOVERFLOW` when the count is at its maximum (2^31 - 1).
    #[doc(alias = "sem_post")]
    pub fn post(&self) -> Result<()> {
        let mut cur = self.word.load(Ordering::Relaxed);
        loop {
            if cur & SEM_COUNT == SEM_COUNT {
                return Err(Error::os(Op::Process, Errno::OVERFLOW)
                    .detail("semaphore count is at its maximum (2^31 - 1)"));
            }
            // Release: what the poster wrote happens before the taker's Acquire CAS.
            match self.word.compare_exchange_weak(
                cur,
                (cur & SEM_COUNT) + 1,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        if cur & SEM_WAITERS != 0 {
            // FUTEX_WAKE (shared) every sleeper; the ones that find nothing sleep again.
            let _ = futex::wake(self.word, futex::Flags::empty(), i32::MAX as u32);
        }
        Ok(())
    }

    /// Take one if the count is above zero, without waiting.
    #[doc(alias = "sem_trywait")]
    pub fn try_wait(&self) -> bool {
        let mut cur = self.word.load(Ordering::Relaxed);
        while cur & SEM_COUNT != 0 {
            match self.word.compare_exchange_weak(
                cur,
                cur - 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
        false
    }

    /// Take one, sleeping as long as it takes.
    ///
    /// # Errors
    /// The kernel's refusal of `futex` (`EFAULT`, `ENOSYS`).
    #[doc(alias = "sem_wait")]
    pub fn wait(&self) -> Result<()> {
        self.wait_until(None).map(|_| ())
    }

    /// Take one, sleeping at most `timeout`: `Ok(false)` when it passed with nothing posted.
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    #[doc(alias = "sem_timedwait")]
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        self.wait_until(Some(Instant::now() + timeout))
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<bool> {
        loop {
            if self.try_wait() {
                return Ok(true);
            }
            let cur = self.word.load(Ordering::Relaxed);
            if cur & SEM_COUNT != 0 {
                continue;
            }
            if cur & SEM_WAITERS == 0
                && self
                    .word
                    .compare_exchange(cur, cur | SEM_WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            let ts = match deadline {
                None => None,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(false);
                    }
                    Some(futex::Timespec {
                        tv_sec: left.as_secs() as _,
                        tv_nsec: left.subsec_nanos() as _,
                    })
                }
            };
            // FUTEX_WAIT (shared) while the word is still "empty, waiters".
            match futex::wait(self.word, futex::Flags::empty(), SEM_WAITERS, ts.as_ref()) {
                Ok(()) | Err(Errno::AGAIN) | Err(Errno::INTR) | Err(Errno::TIMEDOUT) => {}
                Err(e) => {
                    return Err(Error::os(Op::Process, e).detail(format!(
                        "futex wait on a semaphore failed: {}",
                        crate::error::errno_label(e.raw_os_error())
                    )))
                }
            }
        }
    }
}
