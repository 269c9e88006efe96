//! Random faults read together: the missing pages of one read of the userfaultfd's
//! queue whose windows are one page (no scan) are fetched with one
//! [`Source::read_ranges`](super::Source::read_ranges) call — for a remote object,
//! concurrent range requests instead of one round trip after another — then copied in
//! one by one, each copy waking its fault's thread.
//!
//! # Safety
//!
//! Pages are put into the pager's region from the handler's bounce buffer with the
//! `unsafe` `UFFDIO_COPY` or `UFFDIO_MOVE` ([`place`]).
#![allow(unsafe_code)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;

use super::bounce::Bounce;
use super::budget::{release, settle};
use super::fill::{self, place};
use super::state::{Shared, PRESENT, REFERENCED};

/// Fill `pages` (distinct, each reserved by `make_room`): read them with one
/// `read_ranges` call per bounce buffer's worth, copy them in, settle the reservations.
/// A failed batch read falls back to reading each page alone, so an error poisons only
/// the page it belongs to, and a page that fails then reports its own error (never the
/// batch's).
pub(crate) fn fill(shared: &Shared, bounce: &mut Bounce, pages: &[usize]) {
    let page = shared.page;
    let per_read = (bounce.len() / page).max(1);
    for chunk in pages.chunks(per_read) {
        if chunk.len() == 1 {
            fill::fill(shared, bounce, chunk[0], 1);
            continue;
        }
        let buf = bounce.slice(chunk.len() * page);
        if !read(shared, chunk, buf) {
            for &p in chunk {
                fill::fill(shared, bounce, p, 1);
            }
            continue;
        }
        let c = &shared.counters;
        c.bytes_read
            .fetch_add((chunk.len() * page) as u64, Ordering::Relaxed);
        c.batched_pages
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        // From here on the buffer is only a source of pages (a move takes them away).
        let src = buf.as_mut_ptr();
        for (k, &p) in chunk.iter().enumerate() {
            // SAFETY: page `k` of the `chunk.len()` pages just read into `src`.
            copy_in(shared, p, unsafe { src.add(k * page) });
        }
    }
    settle(shared, pages.len());
}

/// `source.read_ranges` of one page at each of `pages` into consecutive pages of `buf`:
/// whether it succeeded. Its error (or panic) is not kept: the pages are then read
/// alone, and each that fails keeps its own.
fn read(shared: &Shared, pages: &[usize], buf: &mut [u8]) -> bool {
    let page = shared.page;
    let mut reads: Vec<(u64, &mut [u8])> = pages
        .iter()
        .zip(buf.chunks_mut(page))
        .map(|(&p, b)| ((p * page) as u64, b))
        .collect();
    matches!(
        catch_unwind(AssertUnwindSafe(|| shared.source.read_ranges(&mut reads))),
        Ok(Ok(()))
    )
}

/// Put one page in at page `p` from `src` (waking its faults), counted before as a fill
/// counts; a page present already is given back to the budget.
fn copy_in(shared: &Shared, p: usize, src: *mut u8) {
    let c = &shared.counters;
    c.pages_filled.fetch_add(1, Ordering::Relaxed);
    let dst = shared.base + p * shared.page;
    // SAFETY: `src` is one page of this thread's bounce buffer, no reference into it
    // live; the destination is a page of our registered region whose missing pages only
    // this pager fills.
    let r = unsafe { place(shared, dst, src, shared.page, true) };
    match r {
        Ok(_) => {
            shared.state[p].fetch_or(PRESENT | REFERENCED, Ordering::Release);
        }
        Err(_) => {
            c.pages_filled.fetch_sub(1, Ordering::Relaxed);
            release(shared, 1);
            // EEXIST: filled by another thread. Any other error leaves the page missing;
            // woken, its thread faults on it again.
            let _ = shared.uffd.wake(dst, shared.page);
        }
    }
}
