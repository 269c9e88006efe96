//! Processes: `fork`, `_exit`, `waitpid`, `pthread_atfork`, and the fault counters of
//! `getrusage`.

use rustix::io::Errno;

use super::errno::last_errno;

/// `fork(2)`: returns 0 in the child and the child's id in the parent.
///
/// <https://man7.org/linux/man-pages/man2/fork.2.html>
///
/// # Errors
/// `EAGAIN`, `ENOMEM`.
///
/// # Safety
/// When other threads exist, the child has only the calling thread and any lock they held
/// stays locked there forever: the child must not take locks another thread may hold,
/// and should end with [`exit_now`].
pub(crate) unsafe fn fork() -> Result<i32, Errno> {
    // SAFETY: forwarded from the caller.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(last_errno());
    }
    Ok(pid)
}

/// `_exit(2)`: end the process at once, without running `atexit` handlers or flushing
/// buffers.
///
/// <https://man7.org/linux/man-pages/man2/_exit.2.html>
#[doc(alias = "_exit")]
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` takes any code and never returns.
    unsafe { libc::_exit(code) }
}

/// `waitpid(2)` with no options: wait for child `pid` to end; returns its raw status
/// (decode with [`term_signal`] and [`exit_code`]).
///
/// <https://man7.org/linux/man-pages/man2/waitpid.2.html>
///
/// # Errors
/// `ECHILD` when `pid` is not an unreaped child, `EINTR` when a signal interrupted it.
pub(crate) fn waitpid(pid: i32) -> Result<i32, Errno> {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    if rc == pid {
        Ok(status)
    } else {
        Err(last_errno())
    }
}

/// The signal that ended a child (`WIFSIGNALED`, `WTERMSIG`), if one did.
#[doc(alias = "WTERMSIG")]
pub(crate) fn term_signal(status: i32) -> Option<i32> {
    libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status))
}

/// A child's exit code (`WEXITSTATUS`).
#[doc(alias = "WEXITSTATUS")]
pub(crate) fn exit_code(status: i32) -> i32 {
    libc::WEXITSTATUS(status)
}

/// `pthread_atfork(3)` with only a child handler: `child` runs in the child after each
/// `fork`.
///
/// <https://man7.org/linux/man-pages/man3/pthread_atfork.3.html>
///
/// # Safety
/// `child` is async-signal-safe (it runs in a child that may have inherited locks held).
#[doc(alias = "pthread_atfork")]
pub(crate) unsafe fn atfork_child(child: extern "C" fn()) {
    // SAFETY: registering handlers has no memory effects; the handler is the caller's
    // promise.
    unsafe { libc::pthread_atfork(None, None, Some(child)) };
}

#[cfg(feature = "shm")]
/// Forks this process has been through as a child (counted in the child by a
/// `pthread_atfork` handler): a thread's cached TID is valid only within one generation.
static FORK_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[cfg(feature = "shm")]
std::thread_local! {
    /// This thread's TID and the fork generation it was read in.
    static TID: std::cell::Cell<(u64, u32)> = const { std::cell::Cell::new((u64::MAX, 0)) };
}

#[cfg(feature = "shm")]
extern "C" fn count_fork_in_child() {
    FORK_GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// 0: no fork handler yet; 1: a thread is registering it; 2: registered. Not a `Once`: a
/// `fork` while another thread ran `call_once` left the child waiting on the `Once`
/// forever (the thread that would finish it does not exist in the child).
#[cfg(feature = "shm")]
static HOOK: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Register the `pthread_atfork` handler that counts forks, once; whether it is known
/// registered now (false while another thread is registering it).
#[cfg(feature = "shm")]
fn fork_hook() -> bool {
    use std::sync::atomic::Ordering;
    if HOOK.load(Ordering::Acquire) == 2 {
        return true;
    }
    if HOOK
        .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
    {
        // SAFETY: the handler only bumps an atomic, which is async-signal-safe.
        unsafe { atfork_child(count_fork_in_child) };
        HOOK.store(2, Ordering::Release);
        return true;
    }
    HOOK.load(Ordering::Acquire) == 2
}

/// How many forks this process has been through as a child: a value read before a
/// `fork` and again in the child differs. Registers the counting handler first (waiting
/// briefly for another thread that is registering it; one that a `fork` left half-done
/// in this child is redone: a second handler only counts each fork twice).
#[cfg(feature = "shm")]
pub(crate) fn fork_generation() -> u64 {
    use std::sync::atomic::Ordering;
    let mut tries = 0;
    while !fork_hook() {
        tries += 1;
        if tries > 1000 {
            // SAFETY: as in `fork_hook`.
            unsafe { atfork_child(count_fork_in_child) };
            HOOK.store(2, Ordering::Release);
            break;
        }
        std::thread::yield_now();
    }
    FORK_GENERATION.load(Ordering::Relaxed)
}

/// [`gettid(2)`](https://man7.org/linux/man-pages/man2/gettid.2.html), read once per
/// thread and cached: a robust lock's fast path needs it, and the system call cost as
/// much as the rest of the lock. A child made by `fork` (any `fork`, through the
/// `pthread_atfork` handler registered before the first read) reads its own again.
#[cfg(feature = "shm")]
pub(crate) fn cached_tid() -> u32 {
    // Until the handler is known registered, the TID is read afresh, never cached.
    if !fork_hook() {
        return rustix::thread::gettid().as_raw_nonzero().get() as u32;
    }
    let generation = FORK_GENERATION.load(std::sync::atomic::Ordering::Relaxed);
    TID.with(|cell| {
        let (seen, tid) = cell.get();
        if seen == generation {
            return tid;
        }
        let tid = rustix::thread::gettid().as_raw_nonzero().get() as u32;
        cell.set((generation, tid));
        tid
    })
}

/// `getrusage(RUSAGE_SELF)`: minor and major page faults of this process so far.
/// Allocation-free.
///
/// <https://man7.org/linux/man-pages/man2/getrusage.2.html>
#[doc(alias = "getrusage")]
pub(crate) fn fault_counts() -> (u64, u64) {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole `rusage` into the pointer we pass; zeroed is valid.
    let ru = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr());
        ru.assume_init()
    };
    (ru.ru_minflt as u64, ru.ru_majflt as u64)
}

/// Whose CPU time [`cpu_time`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Who {
    /// The whole process, every thread (`RUSAGE_SELF`).
    Process,
    /// The calling thread only (`RUSAGE_THREAD`, Linux 2.6.26).
    Thread,
    /// The children this process has waited for (`RUSAGE_CHILDREN`).
    Children,
}

/// `getrusage(2)`: the user and system CPU time used so far by the process, the calling
/// thread, or the children waited for.
///
/// <https://man7.org/linux/man-pages/man2/getrusage.2.html>
#[doc(alias = "getrusage")]
#[doc(alias = "RUSAGE_THREAD")]
pub(crate) fn cpu_time(who: Who) -> (std::time::Duration, std::time::Duration) {
    let who = match who {
        Who::Process => libc::RUSAGE_SELF,
        Who::Thread => libc::RUSAGE_THREAD,
        Who::Children => libc::RUSAGE_CHILDREN,
    };
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole `rusage` into the pointer we pass; zeroed is valid.
    let ru = unsafe {
        libc::getrusage(who, ru.as_mut_ptr());
        ru.assume_init()
    };
    let time =
        |tv: libc::timeval| std::time::Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000);
    (time(ru.ru_utime), time(ru.ru_stime))
}
