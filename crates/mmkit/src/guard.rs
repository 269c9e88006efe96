//! The **guard** pillar: a SIGBUS inside a guarded access becomes an `Err`, not a crash.
//!
//! A file mapping raises SIGBUS when a page it touches has no file behind it any more
//! (the file was truncated by anyone, or its storage failed). Every copy that
//! [`Mapping`](crate::Mapping) makes runs as a *guarded access*:
//!
//! 1. A process-wide SIGBUS handler is installed once (`sigaction`), keeping the
//!    handler that was there before.
//! 2. The thread publishes the address range it is about to touch in a thread-local
//!    (the registry of guarded ranges: each thread registers exactly the one range it
//!    is accessing, for exactly as long as it accesses it).
//! 3. On a SIGBUS whose address lies in the current thread's range, the handler maps
//!    anonymous zero pages over the failing page and the rest of the range
//!    (`mmap(MAP_FIXED)`), records the first failing page, and returns: the faulting
//!    instruction runs again and completes on the new page.
//! 4. After the access the thread sees the record, turns it into an `Err`, and the
//!    mapping remembers the replaced pages so later accesses fail at once instead of
//!    reading zeros.
//! 6. Another thread may read a replaced page *without* faulting (it is ordinary
//!    memory now) before step 4 has recorded it. So the handler counts every
//!    replacement, in a process-wide counter and a "not yet recorded" count (two halves
//!    of one atomic word, read once before and once after an access), before it
//!    maps; a guarded access that sees either move re-checks in `/proc/self/maps` that
//!    its whole range is still backed by its file, and fails if not.
//! 5. Any other SIGBUS (another address, no access in progress, sent with `kill`) goes
//!    to the previous handler; when that was the default action, the handler restores
//!    it and lets the fault happen again (or re-raises a sent signal), so the process
//!    dies with SIGBUS exactly as it would have without mmkit.
//!
//! ## Async-signal safety
//!
//! The handler reads and writes only const-initialised thread-locals of plain integers
//! (no lazy initialisation, no destructor: a TLS access is a load from the thread
//! pointer), reads atomics and a `sigaction` saved before the handler was installed,
//! and makes raw syscalls (`mmap`, `sigaction`, `tgkill` via `raise`) through `rustix`'s
//! direct syscall backend and libc, which touch no lock and no `errno` (libc `raise`
//! and `sigaction` are on the POSIX async-signal-safe list). It allocates nothing and
//! takes no lock. A fault inside an allocator or any lock-holding code cannot be ours,
//! because guarded accesses only copy bytes.
//!
//! ## Limits
//!
//! If another library installs its own SIGBUS handler after mmkit, without chaining to
//! mmkit's, guarded accesses can no longer recover. Install yours first: mmkit chains.
//!
//! # Safety
//!
//! Installs the SIGBUS handler and, inside it, calls the `unsafe` wrappers of
//! `sys::signal` and `sys::mm` (read the kernel's `siginfo`, replace the pages of the
//! faulting range, chain to the previous handler); why each step is sound in a signal
//! handler is argued above.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Once;

use crate::sys;
use crate::sys::signal::SigInfo;

/// What the handler did for an access: the first page it replaced (0 when none) and how
/// many replacements it made.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Record {
    failed_at: usize,
    patches: usize,
}

const CLEAN: Record = Record {
    failed_at: 0,
    patches: 0,
};

/// The replacement counters, in one word so that an access reads both with one load
/// before and one after: the high half counts the replacements ever made in this process
/// (wrapping), the low half those whose thread has not yet recorded them in the
/// mapping's lost pages. Invariant: the handler adds [`ONE_PATCH`]` + 1` (SeqCst) before
/// its `mmap`, so a thread that reads a replaced page sees the word moved; [`settle`]
/// subtracts from the low half after recording, never more than was added.
static COUNTS: AtomicU64 = AtomicU64::new(0);
/// One replacement in the high half of [`COUNTS`].
const ONE_PATCH: u64 = 1 << 32;
/// The low half of [`COUNTS`]: replacements not yet recorded.
const PENDING: u64 = ONE_PATCH - 1;

thread_local! {
    // The current thread's guarded access `[start, end)`, published for the handler;
    // (0, 0) when none. Invariant: `start <= end`; non-idle only between `Scope::enter`
    // and its exit.
    static RANGE: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
    // What the handler did for the innermost guarded access. Invariant: `CLEAN` while it
    // did nothing. A scope clears it on entry only when an outer access left a record,
    // and puts that back when it ends: the common access stores nothing here and loads
    // one pair of words after its copy (issue 16, item 5: the one `Active` of four words,
    // saved and restored whole, cost about 1 ns of a 64-byte guarded copy).
    static RECORD: Cell<Record> = const { Cell::new(CLEAN) };
}

/// Base page size, stored before the handler is installed.
static PAGE: AtomicUsize = AtomicUsize::new(4096);
static INSTALL: Once = Once::new();

/// A guarded access that found pages gone: the first replaced address and the end of
/// the replaced range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fault {
    pub(crate) first: usize,
    pub(crate) end: usize,
    /// Replacements to [`settle`] once the loss is recorded.
    pub(crate) patches: usize,
}

/// The state of the replacement counters ([`COUNTS`]) at the start of a guarded access.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark(u64);

/// Take a mark to compare with [`disturbed_since`]. Take it *before* checking the
/// mapping's lost pages: a replacement recorded after that check is then either counted
/// after the mark, or was still pending when the mark was taken.
#[inline]
pub(crate) fn mark() -> Mark {
    Mark(COUNTS.load(Ordering::SeqCst))
}

/// Whether any page of the process may have been replaced, unrecorded, while the access
/// since `mark` ran: then bytes read without a fault may be zeros from a replaced page.
#[inline]
///
/// That is: some replacement was pending at the mark, or the word moved since (a
/// replacement was made, or one pending at the end; with none pending at the mark, any
/// pending now moved the word).
pub(crate) fn disturbed_since(mark: Mark) -> bool {
    mark.0 & PENDING != 0 || COUNTS.load(Ordering::SeqCst) != mark.0
}

/// The `n` replacements of a fault are now recorded in the mapping's lost pages.
#[inline]
pub(crate) fn settle(n: usize) {
    COUNTS.fetch_sub(n as u64, Ordering::SeqCst);
}

/// Install mmkit's SIGBUS handler now; otherwise the first guarded access installs it.
///
/// A program that forks while other threads run should call this before its first
/// `fork`: the install runs once under a `std::sync::Once`, and a child forked while
/// another thread is inside it would wait for it forever (`mmkit::process::fork` calls
/// it first).
///
/// Idempotent. The handler that was installed before is kept and receives every SIGBUS
/// that is not mmkit's; a handler another library installs later must chain to mmkit's
/// for guarded accesses to keep recovering.
#[doc(alias = "sigaction")]
#[inline]
pub fn install() {
    INSTALL.call_once(|| {
        PAGE.store(sys::page_size(), Ordering::Relaxed);
        // A child made by fork has only the forking thread, which is not inside a guarded
        // access: replacements other threads had not yet recorded can never be settled
        // there, so the child starts with none pending.
        // SAFETY: the fork handler only stores to an atomic.
        unsafe { sys::process::atfork_child(reset_pending_in_child) };
        // SAFETY: installed once (inside `call_once`); the handler is async-signal-safe
        // (see the module docs) and chains what it does not handle.
        let r = unsafe { sys::signal::install_sigbus(on_sigbus) };
        assert!(r.is_ok(), "sigaction(SIGBUS) failed");
    });
}

/// Run `access`, which touches only bytes in `[start, start+len)`, with SIGBUS in that
/// range turned into `Err(Fault)`.
///
/// The range must lie in one mapping of the caller's, and `access` must not touch other
/// memory that can raise SIGBUS.
#[inline]
pub(crate) fn guarded<R>(
    start: *const u8,
    len: usize,
    access: impl FnOnce() -> R,
) -> Result<R, Fault> {
    install();
    let scope = Scope::enter(start as usize, start as usize + len);
    let r = access();
    let fault = scope.exit();
    match fault {
        Some(f) => Err(f),
        None => Ok(r),
    }
}

/// Publishes a range for the handler; restores the outer state on drop (also on panic).
struct Scope {
    outer: (usize, usize),
    /// The end of this scope's range (kept here, so that ending reads no thread-local
    /// but the record: a load right after a large copy waits behind its stores).
    end: usize,
    outer_record: Record,
    done: bool,
}

impl Scope {
    #[inline]
    fn enter(start: usize, end: usize) -> Scope {
        let outer_record = RECORD.with(Cell::get);
        if outer_record != CLEAN {
            RECORD.with(|r| r.set(CLEAN)); // an outer access's record, kept in the scope
        }
        let outer = RANGE.with(|r| r.replace((start, end)));
        // Keep the compiler from moving the guarded loads before the publication.
        std::sync::atomic::compiler_fence(Ordering::SeqCst);
        Scope {
            outer,
            end,
            outer_record,
            done: false,
        }
    }

    #[inline]
    fn exit(mut self) -> Option<Fault> {
        std::sync::atomic::compiler_fence(Ordering::SeqCst);
        let mine = RECORD.with(Cell::get);
        RANGE.with(|r| r.set(self.outer));
        self.done = true;
        if mine == CLEAN && self.outer_record == CLEAN {
            return None;
        }
        RECORD.with(|r| r.set(self.outer_record));
        (mine.failed_at != 0).then(|| Fault {
            first: mine.failed_at,
            end: round_up(self.end),
            patches: mine.patches,
        })
    }
}

impl Drop for Scope {
    #[inline]
    fn drop(&mut self) {
        if !self.done {
            // Unwinding out of a guarded access: nobody will record its replacements.
            let mine = RECORD.with(|r| r.replace(self.outer_record));
            RANGE.with(|r| r.set(self.outer));
            settle(mine.patches);
        }
    }
}

extern "C" fn reset_pending_in_child() {
    COUNTS.fetch_and(!PENDING, Ordering::SeqCst);
}

fn round_up(addr: usize) -> usize {
    let page = PAGE.load(Ordering::Relaxed);
    addr.div_ceil(page) * page
}

/// The SIGBUS handler. See the module docs for why each step is async-signal-safe.
extern "C" fn on_sigbus(sig: c_int, info: *mut SigInfo, ctx: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
    let (addr, code) = unsafe { sys::signal::fault_info(info) };
    let (start, end) = RANGE.with(Cell::get);
    if code > 0 && start <= addr && addr < end {
        let page = PAGE.load(Ordering::Relaxed);
        let from = addr / page * page;
        let to = round_up(end);
        COUNTS.fetch_add(ONE_PATCH + 1, Ordering::SeqCst);
        // SAFETY: `[from, to)` lies in the mapping the current thread is accessing under
        // a guard (the access range, widened to its pages, is inside one mapping of
        // ours); replacing its pages with anonymous memory is what the guard promises.
        let patched = unsafe { sys::mmap_fixed_zeroes(from, to - from) };
        if patched.is_ok() {
            let done = RECORD.with(Cell::get);
            let failed_at = if done.failed_at == 0 {
                from
            } else {
                done.failed_at.min(from)
            };
            let patches = done.patches + 1;
            RECORD.with(|r| r.set(Record { failed_at, patches }));
            return;
        }
        COUNTS.fetch_sub(1, Ordering::SeqCst); // not replaced: nothing to record
    }
    // SAFETY: forwarding a signal we do not handle, from the handler `install_sigbus`
    // installed, with the kernel's own arguments.
    unsafe { sys::signal::chain_sigbus(sig, info, ctx) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two halves of [`COUNTS`] do the work of the two counters they replaced: a mark
    /// is disturbed by a replacement made after it (settled or not), and by one pending
    /// when it was taken. The handler's update is simulated with the same `fetch_add`.
    /// Other tests' guarded accesses may run meanwhile: a replacement of theirs can only
    /// disturb a mark more, so only the undisturbed case is retried.
    #[test]
    fn one_word_of_counters_sees_every_replacement() {
        let before = mark();
        COUNTS.fetch_add(ONE_PATCH + 1, Ordering::SeqCst);
        let pending = mark();
        assert!(disturbed_since(before), "a replacement after the mark");
        assert!(
            disturbed_since(pending),
            "a replacement pending at the mark"
        );
        settle(1);
        assert!(disturbed_since(before), "settled, but made after the mark");
        let settled = (0..1000).any(|_| {
            let quiet = !disturbed_since(mark());
            if !quiet {
                std::thread::yield_now();
            }
            quiet
        });
        assert!(
            settled,
            "a mark taken with nothing pending and nothing since"
        );
    }

    /// A scope inside a scope whose access already faulted (the handler recorded it, as
    /// simulated here) keeps that record away from its own access and gives it back:
    /// the inner access ends well, the outer one with its fault.
    #[test]
    fn an_inner_access_keeps_the_outer_fault_for_the_outer_one() {
        let bytes = [7u8; 64];
        let p = bytes.as_ptr();
        let outer = guarded(p, bytes.len(), || {
            // What the handler does for a fault of the outer access.
            COUNTS.fetch_add(ONE_PATCH + 1, Ordering::SeqCst);
            RECORD.with(|r| {
                r.set(Record {
                    failed_at: 4096,
                    patches: 1,
                })
            });
            let inner = guarded(p, 8, || bytes[0]);
            assert_eq!(inner, Ok(7), "the outer access's fault is not the inner's");
        });
        let f = outer.expect_err("the outer access lost its fault");
        assert_eq!((f.first, f.patches), (4096, 1));
        settle(f.patches);
        assert!(RECORD.with(Cell::get) == CLEAN && RANGE.with(Cell::get) == (0, 0));
    }
}
