//! The memory budget: fills reserve their pages first (`make_room`), clean pages are
//! discarded in clock order to make room (`evict`), and a fill gives back what it did not
//! use (`release`, `settle`).
//!
//! # Safety
//!
//! Eviction discards clean pages of the pager's region with `sys::madvise(DONTNEED)`.
#![allow(unsafe_code)]

use std::sync::atomic::Ordering;

use super::state::{lock, Budget, Clock, Shared, DIRTY, PRESENT, REFERENCED};
use super::writeback::write_back_page;

/// Give back `n` pages reserved by `make_room` that were not filled.
pub(crate) fn release(shared: &Shared, n: usize) {
    if let Some(b) = &shared.budget {
        b.resident.fetch_sub(n, Ordering::AcqRel);
    }
}

/// Settle a reservation of `reserved` pages once its fill is done (each page copied in
/// and `PRESENT`, or given back by `release`), and tell fills waiting for room.
pub(crate) fn settle(shared: &Shared, reserved: usize) {
    let Some(b) = &shared.budget else { return };
    let mut clock = lock(&b.clock);
    clock.in_flight -= reserved;
    drop(clock);
    b.room.notify_all();
}

/// How many of `want` pages a fill may copy in, reserved: all of them without a budget.
///
/// With a budget, the reservations never exceed it: evict clean pages by the clock until `want` more
/// fit, and reserve as many as fit, at least the faulting page (read-ahead shrinks when
/// other fills in progress hold the rest). When fills in progress hold all of it, wait
/// for one to settle. Every reservation is settled with `settle`.
///
/// # Errors
/// The budget is full of pages that cannot be evicted (dirty, and writing them back
/// failed) with no fill in progress to wait for; or the pager broke.
pub(crate) fn make_room(shared: &Shared, want: usize) -> Result<usize, String> {
    let Some(b) = &shared.budget else {
        return Ok(want);
    };
    let budget = b.pages;
    let mut clock = lock(&b.clock);
    loop {
        if shared.broken.load(Ordering::Acquire) {
            return Err("the pager broke while this fault waited for room".into());
        }
        evict(shared, b, &mut clock, want);
        let resident = b.resident.load(Ordering::Acquire);
        if resident < budget {
            let n = want.min(budget - resident);
            b.resident.fetch_add(n, Ordering::AcqRel);
            clock.in_flight += n;
            return Ok(n);
        }
        if clock.in_flight == 0 {
            return Err(format!(
                "the memory budget ({budget} pages) is full of written pages that could \
                 not be written back, the last write-back error: {}",
                shared.errors.last_writeback().unwrap_or_default()
            ));
        }
        clock = b.room.wait(clock).unwrap_or_else(|p| p.into_inner());
    }
}

/// Evict clean pages by the clock (the `clock` lock held) until `want` more fit in the
/// budget, or two full sweeps (which clear every reference bit) found no more to take.
fn evict(shared: &Shared, b: &Budget, clock: &mut Clock, want: usize) {
    let mut steps = 0;
    while b.resident.load(Ordering::Acquire) + want > b.pages
        // Pages present (the rest of `resident` is fills in progress): none, none to take.
        && b.resident.load(Ordering::Acquire) > clock.in_flight
        && steps < 2 * shared.pages
    {
        let i = clock.hand;
        clock.hand = (clock.hand + 1) % shared.pages;
        steps += 1;
        let s = shared.state[i].load(Ordering::Acquire);
        if s & PRESENT == 0 {
            continue;
        }
        if s & REFERENCED != 0 {
            shared.state[i].fetch_and(!REFERENCED, Ordering::AcqRel);
            continue;
        }
        if s & DIRTY != 0 && !write_back_page(shared, i) {
            continue;
        }
        shared.state[i].fetch_and(!PRESENT, Ordering::AcqRel);
        let addr = (shared.base + i * shared.page) as *mut u8;
        // SAFETY: the page lies in the pager's region. It is clean: never written, or
        // written back just now under write-protection (a write since then waits in a
        // write-protect fault, and finds the page missing: it is filled again from the
        // source, which has the written-back bytes). Discarding it loses nothing: the
        // next touch faults as missing and reads the same bytes again.
        let r =
            unsafe { crate::sys::madvise(addr, shared.page, rustix::mm::Advice::LinuxDontNeed) };
        if r.is_ok() {
            b.resident.fetch_sub(1, Ordering::AcqRel);
            shared.counters.evictions.fetch_add(1, Ordering::Relaxed);
        } else {
            // Still resident: keep counting it, and keep it where the clock can see it.
            shared.state[i].fetch_or(PRESENT, Ordering::AcqRel);
        }
    }
}
