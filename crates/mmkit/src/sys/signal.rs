//! Signals: the SIGBUS handler's installation and chaining (`sigaction`, `raise`),
//! blocking and waiting (`pthread_sigmask`, `sigwait`), sending (`kill`), and the signal
//! numbers mmkit names.

use std::ffi::{c_int, c_void};
use std::mem::MaybeUninit;

use rustix::io::Errno;
use rustix::process::Signal;

use super::errno::last_errno;

/// `SIGSEGV`.
pub(crate) const SIGSEGV: i32 = Signal::SEGV.as_raw();
/// `SIGBUS`.
pub(crate) const SIGBUS: i32 = Signal::BUS.as_raw();
/// `SIGKILL`.
pub(crate) const SIGKILL: i32 = Signal::KILL.as_raw();
/// `SIGABRT`.
pub(crate) const SIGABRT: i32 = Signal::ABORT.as_raw();
/// `SIGTERM`.
pub(crate) const SIGTERM: i32 = Signal::TERM.as_raw();
/// `SIGINT`.
pub(crate) const SIGINT: i32 = Signal::INT.as_raw();

/// The `siginfo_t` an `SA_SIGINFO` handler receives.
pub(crate) type SigInfo = libc::siginfo_t;

/// An `SA_SIGINFO` handler: `void (*)(int, siginfo_t *, void *)`.
pub(crate) type SigInfoHandler = extern "C" fn(c_int, *mut SigInfo, *mut c_void);

/// The SIGBUS action that was installed before [`install_sigbus`]'s; written once, by the
/// kernel, before ours is installed (the `sigaction` syscall orders the write before any
/// delivery).
static mut PREVIOUS_SIGBUS: MaybeUninit<libc::sigaction> = MaybeUninit::uninit();

/// `sigaction(SIGBUS)`: install `handler` with `SA_SIGINFO | SA_ONSTACK` and an empty
/// mask, keeping the previous action for [`chain_sigbus`].
///
/// <https://man7.org/linux/man-pages/man2/sigaction.2.html>
///
/// # Errors
/// `EINVAL` (not expected for SIGBUS).
///
/// # Safety
/// Called at most once in the process (the saved previous action is not synchronised);
/// `handler` is async-signal-safe and calls [`chain_sigbus`] for signals it does not
/// handle.
#[doc(alias = "sigaction")]
pub(crate) unsafe fn install_sigbus(handler: SigInfoHandler) -> Result<(), Errno> {
    // SAFETY: `act` is fully initialised (zeroes are a valid sigaction) before use;
    // PREVIOUS_SIGBUS is written by the kernel here, once (the caller's promise), before
    // the handler can run.
    let rc = unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = handler as *const () as usize;
        act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut act.sa_mask);
        let prev = &raw mut PREVIOUS_SIGBUS;
        libc::sigaction(libc::SIGBUS, &act, (*prev).as_mut_ptr())
    };
    if rc != 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// The fault address (`si_addr`) and `si_code` of a signal's `siginfo_t`.
///
/// <https://man7.org/linux/man-pages/man2/sigaction.2.html>
///
/// # Safety
/// `info` is the `siginfo_t` the kernel passed to an `SA_SIGINFO` handler.
pub(crate) unsafe fn fault_info(info: *const SigInfo) -> (usize, i32) {
    // SAFETY: the caller passes the kernel's valid siginfo.
    unsafe { ((*info).si_addr() as usize, (*info).si_code) }
}

/// Hand a SIGBUS to the action that was installed before [`install_sigbus`]'s.
///
/// When that was the default action (or ignore), restore the default with
/// `sigaction(2)`: a fault re-executes and now kills the process with SIGBUS; a signal
/// sent with `kill`/`raise` (`si_code <= 0`) is raised again with `raise(3)` (blocked
/// until the handler returns, then delivered with the default action). Otherwise call
/// the previous handler with the same arguments. Async-signal-safe.
///
/// <https://man7.org/linux/man-pages/man2/sigaction.2.html>,
/// <https://man7.org/linux/man-pages/man3/raise.3.html>
///
/// # Safety
/// Called only from the handler installed by [`install_sigbus`], with its arguments.
#[doc(alias = "sigaction")]
#[doc(alias = "raise")]
pub(crate) unsafe fn chain_sigbus(sig: c_int, info: *mut SigInfo, ctx: *mut c_void) {
    // SAFETY: PREVIOUS_SIGBUS was written by sigaction before our handler was installed.
    let prev: libc::sigaction = unsafe { (&raw const PREVIOUS_SIGBUS).read().assume_init() };
    let handler = prev.sa_sigaction;
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // SAFETY: async-signal-safe libc calls with valid arguments.
        unsafe {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &dfl, std::ptr::null_mut());
            if (*info).si_code <= 0 {
                libc::raise(sig);
            }
        }
    } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed with SA_SIGINFO, so it has this type.
        let f: SigInfoHandler = unsafe { std::mem::transmute(handler) };
        f(sig, info, ctx);
    } else {
        // SAFETY: a plain handler installed without SA_SIGINFO takes the signal number.
        let f: extern "C" fn(c_int) = unsafe { std::mem::transmute(handler) };
        f(sig);
    }
}

/// A set of signals (`sigset_t`).
#[derive(Debug)]
pub(crate) struct SigSet(libc::sigset_t);

impl SigSet {
    /// `sigemptyset(3)` then `sigaddset(3)` for each of `signals`.
    ///
    /// <https://man7.org/linux/man-pages/man3/sigsetops.3.html>
    #[doc(alias = "sigemptyset")]
    #[doc(alias = "sigaddset")]
    pub(crate) fn of(signals: &[i32]) -> SigSet {
        let mut set = MaybeUninit::<libc::sigset_t>::zeroed();
        // SAFETY: sigemptyset/sigaddset initialise and edit the set we own; the pointer
        // is valid for each call.
        let set = unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            for &sig in signals {
                libc::sigaddset(set.as_mut_ptr(), sig);
            }
            set.assume_init()
        };
        SigSet(set)
    }
}

/// `pthread_sigmask(SIG_BLOCK, set)`: block `set` in the calling thread (and the threads
/// it starts later).
///
/// <https://man7.org/linux/man-pages/man3/pthread_sigmask.3.html>
///
/// # Errors
/// The error number it returns (not expected).
#[doc(alias = "pthread_sigmask")]
pub(crate) fn block(set: &SigSet) -> Result<(), Errno> {
    // SAFETY: pthread_sigmask reads the initialised set and may take a null old set.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set.0, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(Errno::from_raw_os_error(rc));
    }
    Ok(())
}

/// `sigwait(3)`: wait until a signal of `set` is pending and take it; returns its number.
///
/// <https://man7.org/linux/man-pages/man3/sigwait.3.html>
///
/// # Errors
/// The error number it returns (not expected).
pub(crate) fn sigwait(set: &SigSet) -> Result<i32, Errno> {
    let mut sig: c_int = 0;
    // SAFETY: `set` is an initialised sigset; `sig` is a live int for the result.
    let rc = unsafe { libc::sigwait(&set.0, &mut sig) };
    if rc != 0 {
        return Err(Errno::from_raw_os_error(rc));
    }
    Ok(sig)
}

/// `kill(2)`: send `sig` to process `pid`.
///
/// <https://man7.org/linux/man-pages/man2/kill.2.html>
///
/// # Errors
/// `ESRCH` when no such process exists, `EPERM`, `EINVAL` for a bad signal.
pub(crate) fn kill(pid: i32, sig: i32) -> Result<(), Errno> {
    // SAFETY: kill has no memory effects.
    if unsafe { libc::kill(pid, sig) } != 0 {
        return Err(last_errno());
    }
    Ok(())
}
