//! [`Termination`]: wait for SIGTERM or SIGINT (`pthread_sigmask` + `sigwait`), so a
//! process can hold a [`LockedSet`](super::LockedSet) until told to stop.

use crate::error::{Error, Op, Result};
use crate::sys::signal::{self, SigSet, SIGINT, SIGTERM};

/// Waits for SIGTERM or SIGINT, for a process holding a [`LockedSet`](super::LockedSet)
/// until told to stop.
///
/// [`block`](Self::block) blocks the two signals in the calling thread (and threads it
/// starts later), so one sent before [`wait`](Self::wait) is kept pending, not fatal.
/// Call it before starting other threads: a thread that does not block them would take
/// the default action (exit) instead.
#[derive(Debug)]
pub struct Termination {
    set: SigSet,
}

impl Termination {
    /// Block SIGTERM and SIGINT in this thread (`pthread_sigmask`).
    ///
    /// # Errors
    /// The kernel's refusal (not expected).
    pub fn block() -> Result<Termination> {
        let set = SigSet::of(&[SIGTERM, SIGINT]);
        signal::block(&set).map_err(|e| Error::os(Op::Process, e))?;
        Ok(Termination { set })
    }

    /// Wait until SIGTERM or SIGINT arrives (`sigwait`); returns the signal number.
    ///
    /// # Errors
    /// The kernel's refusal (not expected).
    #[doc(alias = "sigwait")]
    pub fn wait(&self) -> Result<i32> {
        signal::sigwait(&self.set).map_err(|e| Error::os(Op::Process, e))
    }
}
