//! Test support: fork a child with a pipe back. Run a closure in a `fork`ed child, learn
//! how it ended (exit code or signal), kill it at a chosen moment; the "pipe back" is a
//! Unix socket pair for one-byte "ready" handshakes.
//!
//! Public only with the `process` Cargo feature (off by default); mmkit's own tests,
//! examples, benches and doc tests turn it on through a dev-dependency on the crate
//! itself. The lab (`crates/mmkit-lab`: the tour and the shm bench) turns it on too, to
//! show what another process sees of a mapping and that a bad access ends a process with
//! the signal the docs promise.
//!
//! ```toml
//! [dev-dependencies]
//! mmkit = { version = "0.1", features = ["process"] }
//! ```
//!
//! Wraps [`fork(2)`](https://man7.org/linux/man-pages/man2/fork.2.html),
//! [`waitpid(2)`](https://man7.org/linux/man-pages/man2/waitpid.2.html) and
//! [`kill(2)`](https://man7.org/linux/man-pages/man2/kill.2.html).
//!
//! # Safety
//!
//! [`fork`] is an `unsafe fn`: what the child may do when other threads exist is a
//! promise only the caller can make. It passes that promise on to `sys::process::fork`.
#![allow(unsafe_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use crate::error::{Error, Op, Result};
use crate::sys::process as sys;
use crate::sys::signal::{self, SIGABRT, SIGBUS, SIGKILL, SIGSEGV, SIGTERM};

/// How a child process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It called `exit` with this code.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
}

impl Exit {
    /// The signal's name, for signals the tour and tests meet.
    pub fn describe(self) -> String {
        match self {
            Exit::Code(c) => format!("exit code {c}"),
            Exit::Signal(s) => format!("killed by {}", signal_name(s)),
        }
    }
}

/// `SIGSEGV`, `SIGBUS`, … for a signal number.
pub fn signal_name(sig: i32) -> String {
    match sig {
        SIGSEGV => "SIGSEGV".into(),
        SIGBUS => "SIGBUS".into(),
        SIGKILL => "SIGKILL".into(),
        SIGABRT => "SIGABRT".into(),
        SIGTERM => "SIGTERM".into(),
        n => format!("signal {n}"),
    }
}

/// A forked child, with a socket to it for "ready" handshakes.
#[derive(Debug)]
pub struct Child {
    pid: i32,
    sock: UnixStream,
    reaped: bool,
}

/// The child's end of the handshake socket.
#[derive(Debug)]
pub struct ChildLink {
    sock: UnixStream,
}

impl ChildLink {
    /// Tell the parent one byte's worth of news (e.g. "the write is done").
    pub fn send(&mut self, byte: u8) {
        let _ = self.sock.write_all(&[byte]);
    }
}

/// Run `f` in a new child process made by `fork`; the child exits with `f`'s return value.
///
/// # Safety
/// When other threads exist, the child has only the calling thread and any lock they
/// held stays locked there forever: `f` must not take locks another thread may hold (the
/// allocator is fork-safe in glibc; `std::io::stdout` is not). `f` must not unwind: a
/// panic in the child aborts it.
///
/// # Errors
/// The kernel's refusal to fork (`EAGAIN`, `ENOMEM`).
pub unsafe fn fork<F: FnOnce(&mut ChildLink) -> i32>(f: F) -> Result<Child> {
    let (parent_sock, child_sock) = UnixStream::pair().map_err(|e| Error::io(Op::Process, &e))?;
    // The guard's one-time install runs under a `Once`: forked while another thread is
    // inside it, the child would wait on it forever at its first guarded access. Finish
    // (or wait out) the install here, before the fork.
    crate::guard::install();
    // SAFETY: the caller upholds the fork-safety contract above for `f`.
    let pid = unsafe { sys::fork() }.map_err(|e| Error::os(Op::Process, e))?;
    if pid == 0 {
        drop(parent_sock);
        let mut link = ChildLink { sock: child_sock };
        let code =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut link))).unwrap_or(101);
        // `_exit` ends the child at once without running the parent's atexit handlers or
        // flushing buffers it inherited.
        sys::exit_now(code);
    }
    Ok(Child {
        pid,
        sock: parent_sock,
        reaped: false,
    })
}

impl Child {
    /// The child's process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Wait for the child's next handshake byte (`None` when it ended without sending).
    pub fn recv(&mut self) -> Option<u8> {
        let mut b = [0u8];
        self.sock.read_exact(&mut b).ok().map(|_| b[0])
    }

    /// Send the child a signal (`kill(2)`).
    ///
    /// # Errors
    /// `ESRCH` when it already ended and was reaped.
    pub fn signal(&self, sig: i32) -> Result<()> {
        // `pid` is our unreaped child, so the id cannot have been reused.
        signal::kill(self.pid, sig).map_err(|e| Error::os(Op::Process, e))
    }

    /// Wait for the child to end (`waitpid`).
    ///
    /// # Errors
    /// The kernel's refusal (`ECHILD`).
    pub fn wait(mut self) -> Result<Exit> {
        let status =
            crate::sys::retry(|| sys::waitpid(self.pid)).map_err(|e| Error::os(Op::Process, e))?;
        self.reaped = true;
        match sys::term_signal(status) {
            Some(sig) => Ok(Exit::Signal(sig)),
            None => Ok(Exit::Code(sys::exit_code(status))),
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            // Our unreaped child: kill and reap it so no zombie is left.
            let _ = signal::kill(self.pid, SIGKILL);
            let _ = sys::waitpid(self.pid);
        }
    }
}
