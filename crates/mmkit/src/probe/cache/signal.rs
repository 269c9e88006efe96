//! [`Termination`]: wait for SIGTERM or SIGINT (`pthread_sigmask` + `sigwait`), so a
//! process can hold a [`LockedSet`](super::LockedSet) until told to stop.

use crate::error::{Error, Op, Result};

/// Waits for SIGTERM or SIGINT, for a process holding a [`LockedSet`](super::LockedSet)
/// until told to stop.
///
/// [`block`](Self::block) blocks the two signals in the calling thread (and threads it
/// starts later), so one sent before [`wait`](Self::wait) is kept pending, not fatal.
/// Call it before starting other threads: a thread that does not block them would take
/// the default action (exit) instead.
#[derive(Debug)]
pub struct Termination {
    set: libc::sigset_t,
}

impl Termination {
    /// Block SIGTERM and SIGINT in this thread (`pthread_sigmask`).
    ///
    /// # Errors
    /// The kernel's refusal (not expected).
    pub fn block() -> Result<Termination> {
        let mut set = std::mem::MaybeUninit::<libc::sigset_t>::zeroed();
        // SAFETY: sigemptyset/sigaddset initialise and edit the set we own; the pointer
        // is valid for the call; pthread_sigmask reads it and may pass a null old set.
        let (set, rc) = unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            libc::sigaddset(set.as_mut_ptr(), libc::SIGTERM);
            libc::sigaddset(set.as_mut_ptr(), libc::SIGINT);
            let set = set.assume_init();
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            (set, rc)
        };
        if rc != 0 {
            return Err(Error::os(
                Op::Process,
                rustix::io::Errno::from_raw_os_error(rc),
            ));
        }
        Ok(Termination { set })
    }

    /// Wait until SIGTERM or SIGINT arrives (`sigwait`); returns the signal number.
    ///
    /// # Errors
    /// The kernel's refusal (not expected).
    #[doc(alias = "sigwait")]
    pub fn wait(&self) -> Result<i32> {
        let mut sig: libc::c_int = 0;
        // SAFETY: `self.set` is an initialised sigset; `sig` is a live int for the result.
        let rc = unsafe { libc::sigwait(&self.set, &mut sig) };
        if rc != 0 {
            return Err(Error::os(
                Op::Process,
                rustix::io::Errno::from_raw_os_error(rc),
            ));
        }
        Ok(sig)
    }
}
