//! Who is initialising a [`Shared<T>`](super::Shared), and how a dead initialiser is
//! found: an [`Owner`](crate::shm::sync::Owner) on the memory's file (any PID namespace), or the pid for anonymous
//! memory (one namespace); and the error of a wait that ran out.

use std::time::Duration;

use rustix::io::Errno;

use super::{INITIALISING, UNINIT};
use crate::error::{Error, Op, Result};
use crate::map::Mapping;
use crate::shm::owner::Owner;

pub(super) fn timeout_err(state: u32, pid: u64, timeout: Duration) -> Error {
    let what = match state {
        UNINIT => "nobody initialised it".to_string(),
        s if s & 3 == INITIALISING => {
            format!(
                "process {pid} is still initialising it (pid as its own PID namespace \
                 numbers it; initialiser id {})",
                s >> 2
            )
        }
        s => format!("its state word is {s:#x}"),
    };
    Error::os(Op::View, Errno::TIMEDOUT)
        .detail(format!("shared value not ready after {timeout:?}: {what}"))
        .hint("raise SharedOptions::timeout, or check that some process calls create_or_open")
}

/// How an initialiser is named in the state word (`ID << 2 | 1`) and found dead.
pub(super) enum Initialiser {
    /// The memory is a file (a segment, a memfd): the ID is an [`Owner`] id on it, held
    /// by an OFD lock the kernel drops when the process dies, in any PID namespace.
    Owner(Owner),
    /// Anonymous shared memory (no file to lock): the ID is the pid, and a dead one is
    /// found through `/proc/PID/stat` — one PID namespace only (see the module docs).
    Pid(u32),
}

impl Initialiser {
    pub(super) fn new(map: &Mapping) -> Result<Initialiser> {
        Ok(match crate::shm::owner::file_of(map)? {
            Some(fd) => Initialiser::Owner(Owner::claim(&fd)?),
            None => Initialiser::Pid(std::process::id()),
        })
    }

    /// Our state word while we initialise.
    pub(super) fn state(&self) -> u32 {
        let id = match self {
            Initialiser::Owner(o) => o.id(),
            Initialiser::Pid(p) => *p,
        };
        (id << 2) | INITIALISING
    }

    /// Whether `state` names an initialiser that has ended (never our own).
    pub(super) fn is_dead(&self, state: u32) -> bool {
        if state & 3 != INITIALISING {
            return false;
        }
        let id = state >> 2;
        match self {
            Initialiser::Owner(o) => !o.is_alive(id).unwrap_or(true),
            Initialiser::Pid(me) => id != *me && crate::shm::sync::owner_dead(id),
        }
    }
}
