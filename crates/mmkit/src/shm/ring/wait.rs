//! Waiting for the other side of a ring: spin briefly, then sleep in `FUTEX_WAIT`,
//! checking every [`SLICE`] that the peer still lives.
//!
//! The spin adapts ([`Spin`]): a spin that ends in a sleep halves the next one (down to
//! a 32nd of the configured spin), a spin that finds the ring ready doubles it (up to the
//! configured spin). When the two sides share a CPU, the peer cannot run while we spin,
//! so spinning only burns the time slice it needs; the budget then falls to its floor.
//! A waker clears the sleeper's flag as it wakes it, so one sleep costs one
//! `FUTEX_WAKE`, not one a message until the sleeper runs again.

use std::sync::atomic::{compiler_fence, fence, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::thread::futex;

use super::layout::WakeLine;
use super::WaitStats;
use crate::error::{Error, Op, Result};
use crate::shm::owner::{byte_held, RoleLock, ROLE_BASE};
use crate::shm::sync::owner_dead;
use std::os::fd::BorrowedFd;

/// The longest sleep between two checks that the peer lives.
pub(crate) const SLICE: Duration = Duration::from_millis(10);

/// Why a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Woken {
    /// `ready` returned true: look again.
    Ready,
    /// The deadline passed.
    TimedOut,
    /// The peer with this pid died (and `ready` was still false after it did).
    PeerDied(u32),
}

/// What a wait sleeps on and whom it watches.
pub(crate) struct Wait<'a> {
    pub(crate) line: &'a WakeLine,
    pub(crate) peer: Peer<'a>,
    pub(crate) deadline: Option<Instant>,
    pub(crate) op: Op,
}

/// One side's spin budget and its wait counts (process-local).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spin {
    /// The configured spin: the budget's ceiling.
    pub(crate) max: Duration,
    /// The spin the next wait makes, from `max / 32` to `max`.
    pub(crate) now: Duration,
    /// Waits that ended in the spin, without sleeping.
    pub(crate) spun: u64,
    /// `FUTEX_WAIT`s made.
    pub(crate) sleeps: u64,
    /// `FUTEX_WAKE`s made (for the other side).
    pub(crate) wakes: u64,
}

impl Spin {
    pub(crate) fn new(max: Duration) -> Spin {
        Spin {
            max,
            now: max,
            spun: 0,
            sleeps: 0,
            wakes: 0,
        }
    }

    /// A new limit: the budget starts there again; the counts are kept.
    pub(crate) fn set_limit(&mut self, max: Duration) {
        self.max = max;
        self.now = max;
    }

    /// The counts and the current budget, as the public [`WaitStats`].
    pub(crate) fn stats(&self) -> WaitStats {
        WaitStats {
            spun: self.spun,
            sleeps: self.sleeps,
            wakes: self.wakes,
            spin_ns: self.now.as_nanos() as u64,
        }
    }

    /// A spin that found the ring ready: spin longer next time (up to `max`).
    fn won(&mut self) {
        self.spun += 1;
        self.now = (self.now * 2).min(self.max);
    }

    /// A spin that ended in a sleep: spin shorter next time (down to `max / 32`).
    fn lost(&mut self) {
        self.now = (self.now / 2).max(self.max / 32);
    }
}

impl Wait<'_> {
    /// Wait until `ready()` holds, the deadline passes or the peer dies; `spin` gives
    /// the spin budget and counts what happened.
    ///
    /// # Errors
    /// A futex failure other than a timeout, a signal or a changed word.
    pub(crate) fn until(&self, ready: impl Fn() -> bool, spin: &mut Spin) -> Result<Woken> {
        // A deadline that cuts the spin short (`try_recv`, a short timeout) says nothing
        // about how long spinning takes to pay off: the budget stays as it is.
        let cut = self
            .deadline
            .is_some_and(|d| d.saturating_duration_since(Instant::now()) < spin.now);
        if self.spin_until(&ready, spin.now) {
            spin.won();
            return Ok(Woken::Ready);
        }
        if !cut && !spin.now.is_zero() {
            spin.lost();
        }
        loop {
            let seen = self.line.seq.load(Ordering::Acquire);
            self.line.waiting.store(1, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            heavy_barrier();
            if ready() {
                self.line.waiting.store(0, Ordering::Relaxed);
                return Ok(Woken::Ready);
            }
            let mut slice = SLICE;
            if let Some(d) = self.deadline {
                slice = slice.min(d.saturating_duration_since(Instant::now()));
            }
            spin.sleeps += 1;
            let woke = self.sleep(seen, slice);
            self.line.waiting.store(0, Ordering::Relaxed);
            woke?;
            if ready() {
                return Ok(Woken::Ready);
            }
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(Woken::TimedOut);
            }
            if let Some(pid) = self.peer.dead() {
                return Ok(if ready() {
                    Woken::Ready
                } else {
                    Woken::PeerDied(pid)
                });
            }
        }
    }

    /// Spin for up to `spin` (or the deadline); whether `ready()` came true.
    fn spin_until(&self, ready: &impl Fn() -> bool, spin: Duration) -> bool {
        if spin.is_zero() {
            return false;
        }
        let start = Instant::now();
        let mut end = start + spin;
        if let Some(d) = self.deadline {
            end = end.min(d);
        }
        loop {
            for _ in 0..64 {
                if ready() {
                    return true;
                }
                std::hint::spin_loop();
            }
            if Instant::now() >= end {
                return false;
            }
        }
    }

    /// `FUTEX_WAIT` on the line's word while it is still `seen`, at most `slice`.
    fn sleep(&self, seen: u32, slice: Duration) -> Result<()> {
        let ts = futex::Timespec {
            tv_sec: slice.as_secs() as _,
            tv_nsec: slice.subsec_nanos() as _,
        };
        // Shared futex (no FUTEX_PRIVATE_FLAG): the waker may be another process.
        match futex::wait(&self.line.seq, futex::Flags::empty(), seen, Some(&ts)) {
            Ok(()) | Err(Errno::AGAIN | Errno::INTR | Errno::TIMEDOUT) => Ok(()),
            Err(e) => Err(Error::os(self.op, e).detail(format!(
                "futex wait on the ring failed: {}",
                crate::error::errno_label(e.raw_os_error())
            ))),
        }
    }
}

/// After publishing a position: wake the other side if it sleeps (or is about to);
/// whether it did (a `FUTEX_WAKE` was made).
///
/// The flag is cleared here, by the waker: the sleeper clears it only once it runs
/// again, and until then every publish would make another `FUTEX_WAKE`.
///
/// `registered` says this process registered for `MEMBARRIER_CMD_GLOBAL_EXPEDITED`
/// ([`register_fast_wake`]): then a compiler fence is enough here, because a sleeper
/// issues `membarrier(2)` between setting its flag and its last look, which runs a full
/// barrier on every CPU running this process (the asymmetric form of Dekker's pattern:
/// the hot path pays nothing, the rare sleep pays an IPI). Otherwise a `SeqCst` fence.
#[inline]
pub(crate) fn wake(line: &WakeLine, registered: bool) -> bool {
    if registered {
        compiler_fence(Ordering::SeqCst);
    } else {
        fence(Ordering::SeqCst);
    }
    line.waiting.load(Ordering::Relaxed) != 0 && wake_sleeper(line)
}

/// The rare half of [`wake`]: take the sleeper's flag and `FUTEX_WAKE` it.
#[cold]
#[inline(never)]
fn wake_sleeper(line: &WakeLine) -> bool {
    if line.waiting.swap(0, Ordering::Relaxed) == 0 {
        return false;
    }
    line.seq.fetch_add(1, Ordering::Release);
    let _ = futex::wake(&line.seq, futex::Flags::empty(), 1);
    true
}

/// Register this process for [`membarrier(2)`](https://man7.org/linux/man-pages/man2/membarrier.2.html)
/// `MEMBARRIER_CMD_GLOBAL_EXPEDITED`, so its wakers may skip the fence (see [`wake`]).
/// `false` when the kernel refuses (then wakers fence).
pub(crate) fn register_fast_wake() -> bool {
    use rustix::thread::{membarrier, MembarrierCommand};
    membarrier(MembarrierCommand::RegisterGlobalExpedited).is_ok()
}

/// Run a full memory barrier on every CPU running a registered process: the sleeper's
/// half of [`wake`]'s bargain. Without kernel support, registration failed too, and the
/// wakers fence.
fn heavy_barrier() {
    use rustix::thread::{membarrier, MembarrierCommand};
    let _ = membarrier(MembarrierCommand::GlobalExpedited);
}

/// This process's pid, as stored in the ring's peer words.
pub(crate) fn my_pid() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get() as u32
}

/// Which role: the byte its lock takes is `ROLE_BASE + role as u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoleName {
    Producer = 0,
    Consumer = 1,
}

impl RoleName {
    fn byte(self) -> u64 {
        ROLE_BASE + self as u64
    }

    fn name(self) -> &'static str {
        match self {
            RoleName::Producer => "producer",
            RoleName::Consumer => "consumer",
        }
    }
}

/// How a side holds its role.
#[derive(Debug)]
pub(crate) enum Role {
    /// A file-backed ring: an exclusive OFD lock on the role's byte of the ring's file,
    /// which the kernel drops when the process dies (in any PID namespace).
    Lock(RoleLock),
    /// A ring in anonymous shared memory (no file to lock): the role's pid word holds our
    /// pid, and a dead holder is found through `/proc/PID/stat` — one PID namespace only.
    Pid,
}

/// The other side, as a waiter watches it.
pub(crate) struct Peer<'a> {
    /// Our own role: its lock's description tests the peer's byte.
    pub(crate) mine: &'a Role,
    /// The peer's role.
    pub(crate) role: RoleName,
    /// The peer's pid word (for messages; for liveness only in the pid mode).
    pub(crate) pid: &'a AtomicU32,
}

impl Peer<'_> {
    /// `Some(pid it reported)` when the peer has died: a holder recorded its pid and
    /// left without clearing it, and its role lock is free (lock mode) or its pid names
    /// no live process (pid mode). A peer that closed on purpose is
    /// seen through its closed flag before this is asked.
    fn dead(&self) -> Option<u32> {
        let pid = self.pid.load(Ordering::Acquire);
        // A role never taken, or left on purpose, has pid 0: free, not dead.
        let dead = pid != 0
            && match self.mine {
                Role::Lock(lock) => !lock.other_held(self.role.byte()),
                Role::Pid => owner_dead(pid),
            };
        dead.then_some(pid)
    }
}

/// Take `role` for this process: the role lock on the ring's `file` when there is one
/// (else the pid word, see [`claim`]), then record our pid (for messages) and clear the
/// role's closed flag.
///
/// # Errors
/// [`ErrorKind::Busy`](crate::ErrorKind::Busy) when a live process holds it; `Os` when
/// the ring's file cannot be locked.
pub(crate) fn take_role(
    file: Option<BorrowedFd<'_>>,
    pid: &AtomicU32,
    closed: &AtomicU32,
    role: RoleName,
    op: Op,
) -> Result<Role> {
    let me = my_pid();
    let busy = |holder: u32| {
        let who = if holder == 0 {
            "another live process".to_string()
        } else {
            format!("process {holder} (as its own PID namespace numbers it)")
        };
        Error::new(op, crate::ErrorKind::Busy)
            .detail(format!("{who} is this ring's {}", role.name()))
            .hint(format!(
                "a ring has one {0} at a time; the role frees when it closes or dies",
                role.name()
            ))
    };
    let held = match file {
        Some(fd) => match RoleLock::try_take(fd, role.byte())? {
            Some(lock) => {
                pid.store(me, Ordering::Release);
                Role::Lock(lock)
            }
            None => return Err(busy(pid.load(Ordering::Acquire))),
        },
        None => {
            claim(pid, me).map_err(busy)?;
            Role::Pid
        }
    };
    closed.store(0, Ordering::Release);
    Ok(held)
}

/// Give a role up: mark it closed, free its pid word if it is still ours, release the
/// role lock (by dropping `held`), and wake the other side (sleeping on `line`) so it
/// sees the close. A `fork` child dropping its copy of its parent's role only closes
/// its descriptor: the parent's role goes on.
pub(crate) fn leave_role(
    held: Role,
    pid: &AtomicU32,
    closed: &AtomicU32,
    line: &WakeLine,
    registered: bool,
) {
    if let Role::Lock(lock) = &held {
        if !lock.is_ours() {
            // A fork child's copy of its parent's role: the parent still holds it.
            return;
        }
    }
    closed.store(1, Ordering::Release);
    let _ = pid.compare_exchange(my_pid(), 0, Ordering::AcqRel, Ordering::Relaxed);
    drop(held);
    let _ = wake(line, registered);
}

/// Whether `role` is held now (for [`Ring::peers`](super::Ring::peers)): its lock is
/// taken (lock mode) or its pid word names a live process (pid mode).
pub(crate) fn role_held(file: Option<BorrowedFd<'_>>, pid: u32, role: RoleName) -> bool {
    match file {
        Some(fd) => byte_held(fd, role.byte()),
        None => pid != 0 && !owner_dead(pid),
    }
}

/// Take a role word: free (0) or held by a dead process. `Err(pid)` names the live
/// holder.
fn claim(word: &AtomicU32, me: u32) -> std::result::Result<(), u32> {
    loop {
        let cur = word.load(Ordering::Acquire);
        if cur != 0 && (cur == me || !owner_dead(cur)) {
            return Err(cur);
        }
        if word
            .compare_exchange(cur, me, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spin_halves_to_a_32nd_on_a_sleep_and_doubles_to_the_limit_on_a_win() {
        let max = Duration::from_micros(20);
        let mut s = Spin::new(max);
        for _ in 0..10 {
            s.lost();
        }
        assert_eq!(s.now, max / 32);
        s.won();
        assert_eq!(s.now, max / 16);
        for _ in 0..10 {
            s.won();
        }
        assert_eq!((s.now, s.spun), (max, 11));
        let mut none = Spin::new(Duration::ZERO);
        none.lost();
        none.won();
        assert_eq!(none.now, Duration::ZERO);
    }
}
