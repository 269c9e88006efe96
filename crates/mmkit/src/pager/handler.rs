//! The pager's handler threads: wait for page faults on the userfaultfd, read the pages
//! (and the read-ahead run after them) from the source, and copy them in.
//!
//! A fault is sorted here and served by the files below: a write to a protected page by
//! `writeback.rs`, a page the asynchronous read-ahead fetches by `readahead.rs`, random
//! faults read together by `batch.rs`, any other run of pages by `fill.rs`, each with
//! its pages reserved first by `budget.rs` when the pager has a budget. The state they
//! share is in `state.rs`.

use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::io::Errno;

use super::batch;
use super::bounce::Bounce;
use super::budget::{make_room, settle};
use super::fill::{fail, fail_page, fill, poison};
use super::readahead;
use super::state::{panic_text, Shared, FAILED, PRESENT, TAKEN};
use super::writeback::write_fault;
use crate::sys::uffd::{UffdMsg, EVENT_PAGEFAULT, PAGEFAULT_FLAG_WP};

/// How long a handler keeps reading the queue after serving a fault before it sleeps
/// in `poll`: a fault that follows soon after (the next random read, the next window of
/// a scan) is then served without waking a sleeping thread, which costs tens of
/// microseconds in a VM (an inter-processor interrupt). An idle pager does not spin.
const SPIN: Duration = Duration::from_micros(100);

/// The body of a handler thread: serve faults until the stop pipe becomes readable.
///
/// No fault it reads is left unanswered: a panic while serving one (in the source, or a
/// bug) is caught, the pager is marked broken and the fault answered with an error; if
/// the userfaultfd cannot be read any more, every page not yet filled is poisoned, so
/// no thread waits on a fault nobody will read.
pub(crate) fn serve(shared: Arc<Shared>, mut bounce: Bounce) {
    let mut msgs = [UffdMsg::default(); 16];
    let mut busy = false;
    loop {
        let mut n = if busy {
            spin_read(&shared, &mut msgs)
        } else {
            Ok(0)
        };
        if matches!(n, Ok(0)) {
            if !sleep(&shared) {
                return;
            }
            n = shared.uffd.read_msgs(&mut msgs);
        }
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                give_up(&shared, format!("read(userfaultfd): {e}"));
                // Do not spin on an error that persists; faults are poisoned already.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        busy = n > 0;
        // Random faults of this read, each with its page reserved, read together.
        let mut batch = Vec::with_capacity(msgs.len());
        for m in &msgs[..n] {
            if m.event != EVENT_PAGEFAULT {
                continue;
            }
            let addr = m.address as usize;
            let served = catch_unwind(AssertUnwindSafe(|| {
                if m.flags & PAGEFAULT_FLAG_WP != 0 {
                    write_fault(&shared, addr);
                } else {
                    fault(&shared, &mut bounce, addr, &mut batch);
                }
            }));
            if let Err(p) = served {
                broke(&shared, addr, panic_text(&*p));
            }
        }
        if !batch.is_empty() {
            let served = catch_unwind(AssertUnwindSafe(|| {
                batch::fill(&shared, &mut bounce, &batch);
            }));
            if let Err(p) = served {
                for &i in &batch {
                    broke(&shared, shared.base + i * shared.page, panic_text(&*p));
                }
            }
        }
    }
}

/// A handler panicked serving the fault at `addr`: the pager's state can no longer be
/// trusted. Mark it broken (every later fault is answered with an error) and answer
/// this one with an error, so its thread does not wait forever.
fn broke(shared: &Shared, addr: usize, why: String) {
    shared.mark_broken(format!("a pager handler thread panicked: {why}"));
    let i = addr.wrapping_sub(shared.base) / shared.page;
    if i < shared.pages {
        shared.state[i].fetch_or(FAILED, Ordering::SeqCst);
        fail(shared, i);
    } else {
        let _ = shared.uffd.wake(addr & !(shared.page - 1), shared.page);
    }
}

/// The userfaultfd cannot be read: faults would queue with nobody to answer them. Mark
/// the pager broken and poison every page not filled, so each access to one fails
/// (SIGBUS, which `read_at` turns into `Err`) instead of waiting, and wake the waiting.
fn give_up(shared: &Shared, why: String) {
    if shared.broken.load(Ordering::Acquire) {
        return;
    }
    shared.mark_broken(why);
    // No eviction while pages are poisoned (one evicted after this would be missing,
    // not poisoned).
    let _evict = shared.evict_lock();
    for i in 0..shared.pages {
        if shared.state[i].load(Ordering::Acquire) & PRESENT == 0 {
            shared.state[i].fetch_or(FAILED, Ordering::SeqCst);
            poison(shared, i);
        }
    }
}

/// Read the queue (non-blocking) for up to [`SPIN`]; the messages read, 0 if none came.
fn spin_read(shared: &Shared, msgs: &mut [UffdMsg]) -> Result<usize, Errno> {
    let until = Instant::now() + SPIN;
    loop {
        let n = shared.uffd.read_msgs(msgs)?;
        if n > 0 || Instant::now() >= until {
            return Ok(n);
        }
        std::hint::spin_loop();
    }
}

/// Sleep in `poll` until a fault is queued (`true`) or the stop pipe is readable
/// (`false`).
fn sleep(shared: &Shared) -> bool {
    loop {
        match crate::sys::io::poll_in([shared.uffd.raw(), shared.stop.as_raw_fd()]) {
            Ok(revents) => return revents[1] == 0,
            Err(_) => continue, // EINTR
        }
    }
}

/// Serve one missing-page fault at `addr`; a random one (a window of one page) is
/// reserved and added to `batch` instead, to be read with the others.
fn fault(shared: &Shared, bounce: &mut Bounce, addr: usize, batch: &mut Vec<usize>) {
    let page = shared.page;
    let c = &shared.counters;
    c.faults.fetch_add(1, Ordering::Relaxed);
    let first = (addr - shared.base) / page;
    if shared.closed.load(Ordering::Acquire) {
        fail(shared, first);
        return;
    }
    if shared.broken.load(Ordering::Acquire) {
        shared.state[first].fetch_or(FAILED, Ordering::SeqCst);
        fail(shared, first);
        return;
    }
    if shared.state[first].load(Ordering::Acquire) & PRESENT != 0 {
        // Filled since the fault was queued (by another thread's fault, or this is the
        // kernel reporting a retried fault again): only wake.
        c.spurious_faults.fetch_add(1, Ordering::Relaxed);
        let _ = shared.uffd.wake(shared.base + first * page, page);
        return;
    }
    if readahead::fault(shared, first) {
        return;
    }
    if batch.contains(&first) {
        // The batch's copy wakes this fault's thread too.
        c.spurious_faults.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let (want, streak) = shared.window(first);
    // The run: `want` pages from the fault, clipped at the end and at a page someone
    // else fills (or filled).
    let mut n = 1;
    while n < want
        && first + n < shared.pages
        && shared.state[first + n].load(Ordering::Relaxed) & TAKEN == 0
    {
        n += 1;
    }
    if streak >= 2 {
        // A scan: fetch the next window while this one is read.
        readahead::start(shared, first + n, want);
    }
    // With a budget, as many pages as there is room for (the faulting one at least).
    let reserved = match make_room(shared, n) {
        Ok(r) => r,
        Err(why) => return fail_page(shared, first, why),
    };
    if shared.batch && reserved == 1 && streak == 0 && batch.len() < batch.capacity() {
        batch.push(first);
        return;
    }
    fill(shared, bounce, first, reserved);
    settle(shared, reserved);
}
