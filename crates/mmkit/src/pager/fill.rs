//! Answering a fault: filling a run of pages straight from the source file's pages when
//! it has a [`SourceView`](super::SourceView) (one copy), else read into the handler's
//! buffer and installed from there (copied, or for THP moved: [`place`]); or, when the
//! source fails, answering it with an error that stays ([`fail_page`], [`fail`]).
//!
//! # Safety
//!
//! Installs pages into the pager's region with the `unsafe` `UFFDIO_COPY` and
//! `UFFDIO_MOVE` ([`place`]), from the handler's own buffer or from the source file's
//! read-only mapping, which only the kernel reads.
#![allow(unsafe_code)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;

use rustix::io::Errno;

use super::bounce::Bounce;
use super::budget::release;
use super::huge::Backing;
use super::state::{panic_text, Shared, FAILED, PRESENT, REFERENCED};
use crate::sys::uffd::FEATURE_POISON;

/// The smallest run copied straight from a file source's view.
const DIRECT_MIN: usize = 64 << 10;

/// Where to copy `len` bytes at `offset` from straight, without reading them into a
/// buffer first: the source file's view, when it has one and the run may use it. A move
/// needs anonymous pages of our own, so THP regions always read into the buffer; a run
/// under [`DIRECT_MIN`] reads with `pread` too, as the kernel's copy from the view takes
/// a fault on the view first, which costs more than the copy it saves (a random 4 KiB
/// fault through the view took twice as long).
pub(crate) fn direct_source(shared: &Shared, offset: u64, len: usize) -> Option<*const u8> {
    if !copies_direct(shared, len) {
        return None;
    }
    shared.source.view()?.range(offset, len)
}

/// Whether runs of `len` bytes are copied straight from the source's view (see
/// [`direct_source`]), wherever they lie in it.
pub(crate) fn copies_direct(shared: &Shared, len: usize) -> bool {
    shared.backing != Backing::Thp && len >= DIRECT_MIN && shared.source.view().is_some()
}

/// Read pages `first..first + n` (reserved by `make_room`) from the source and copy
/// them in; give back the reservation of every page not filled.
pub(crate) fn fill(shared: &Shared, bounce: &mut Bounce, first: usize, n: usize) {
    let offset = (first * shared.page) as u64;
    if let Some(src) = direct_source(shared, offset, n * shared.page) {
        if install(shared, first, n, src.cast_mut()) {
            return;
        }
        // EFAULT: the file shrank under its mapping; read it instead (zeros past its
        // new end, as `pread` gives).
    }
    fill_from_buffer(shared, bounce, first, n);
}

fn fill_from_buffer(shared: &Shared, bounce: &mut Bounce, first: usize, mut n: usize) {
    let page = shared.page;
    let buf = bounce.slice(n * page);
    let offset = (first * page) as u64;
    let mut read = read_source(shared, offset, buf);
    if read.is_err() && n > 1 {
        // The failure may lie in the read-ahead: fill the faulting page alone.
        release(shared, n - 1);
        n = 1;
        read = read_source(shared, offset, &mut buf[..page]);
    }
    // From here on the buffer is only a source of pages (a move takes them away).
    let src = buf.as_mut_ptr();
    if let Err(e) = read {
        release(shared, n);
        return fail_page(shared, first, e);
    }
    install(shared, first, n, src);
}

/// Install `n` pages from `src` at page `first`, waking the faulting thread; count them,
/// and give back the reservation of every page not installed. Returns false, having
/// installed and counted nothing, when the very first copy faulted on `src` (`EFAULT`:
/// a file view whose file shrank), so the caller can read the pages another way.
fn install(shared: &Shared, first: usize, n: usize, src: *mut u8) -> bool {
    let page = shared.page;
    let c = &shared.counters;
    let bytes = n * page;
    // Counted before the copy, which wakes the faulting thread: a thread that reads the
    // stats after its access sees its fill. Pages found present are taken back.
    c.bytes_read.fetch_add(bytes as u64, Ordering::Relaxed);
    c.pages_filled.fetch_add(n as u64, Ordering::Relaxed);
    c.readahead_pages.fetch_add(n as u64 - 1, Ordering::Relaxed);
    let not_filled = |p: usize| {
        c.pages_filled.fetch_sub(1, Ordering::Relaxed);
        if p > 0 {
            c.readahead_pages.fetch_sub(1, Ordering::Relaxed);
        }
        release(shared, 1);
    };
    let dst = shared.base + first * page;
    let mut done = 0;
    let mut faulting_filled = false;
    while done < bytes {
        // SAFETY: `src` holds `bytes` bytes: this thread's buffer with no reference into
        // it live, or the source file's read-only view; the destination is our
        // registered region, whose missing pages only this pager fills.
        match unsafe { place(shared, dst + done, src.add(done), bytes - done, true) } {
            Ok(k) => {
                for p in (done / page)..((done + k) / page) {
                    shared.state[first + p].fetch_or(PRESENT | REFERENCED, Ordering::Release);
                    faulting_filled |= p == 0;
                }
                done += k;
            }
            Err(Errno::EXIST) => {
                // Another thread filled this page first: it is resident, not ours.
                not_filled(done / page);
                done += page;
            }
            Err(Errno::FAULT) if done == 0 => {
                c.bytes_read.fetch_sub(bytes as u64, Ordering::Relaxed);
                c.pages_filled.fetch_sub(n as u64, Ordering::Relaxed);
                c.readahead_pages.fetch_sub(n as u64 - 1, Ordering::Relaxed);
                return false;
            }
            Err(_) => {
                // The pages stay missing; woken, the faulting thread faults again.
                for p in (done / page)..n {
                    not_filled(p);
                }
                break;
            }
        }
    }
    if !faulting_filled {
        // Filled by someone else (or the copy failed): make sure the thread runs again.
        let _ = shared.uffd.wake(dst, page);
    }
    true
}

/// Put the pages of `len` bytes at `src` (a handler's or prefetch thread's buffer, or a
/// source file's view) into the region at `dst`: copied (`UFFDIO_COPY`), or for THP
/// moved (`UFFDIO_MOVE`, which leaves `src` unmapped until its next write). Returns the
/// bytes placed.
///
/// # Safety
/// `src` holds `len` bytes: a buffer the calling thread owns, with no reference into it
/// live, or a read-only view only the kernel reads; `dst..dst+len` are pages of the
/// region only this pager fills, missing.
pub(crate) unsafe fn place(
    shared: &Shared,
    dst: usize,
    src: *mut u8,
    len: usize,
    wake: bool,
) -> Result<usize, Errno> {
    // SAFETY: forwarded from the caller.
    unsafe {
        match shared.backing {
            Backing::Thp => shared.uffd.move_pages(dst, src, len, wake),
            _ => shared.uffd.copy(dst, src, len, shared.wp, wake),
        }
    }
}

/// `source.read_at`, its error or its panic as text.
fn read_source(shared: &Shared, offset: u64, buf: &mut [u8]) -> Result<(), String> {
    match catch_unwind(AssertUnwindSafe(|| shared.source.read_at(offset, buf))) {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(p) => Err(format!("the source panicked: {}", panic_text(&*p))),
    }
}

/// Answer the fault at page `first` with an error that stays: note `why` as this page's
/// reason, mark the page `FAILED` (so `read_at` reports it), then poison it.
pub(crate) fn fail_page(shared: &Shared, first: usize, why: String) {
    shared.errors.page_failed(first, why);
    shared.state[first].fetch_or(FAILED, Ordering::SeqCst);
    fail(shared, first);
}

/// Answer a fault at page `first` with an error: a poisoned page (the access raises
/// SIGBUS, which a guarded read turns into `Err`), or a zero page on kernels without
/// `UFFDIO_POISON` (then only `read_at`'s state check reports the error).
pub(crate) fn fail(shared: &Shared, first: usize) {
    shared
        .counters
        .failed_faults
        .fetch_add(1, Ordering::Relaxed);
    poison(shared, first);
}

/// Put a page at page `i` whose access raises SIGBUS (`UFFDIO_POISON`), or a zero page
/// on kernels without it, waking whoever waits on it.
pub(crate) fn poison(shared: &Shared, i: usize) {
    let addr = shared.base + i * shared.page;
    let r = if shared.uffd.features & FEATURE_POISON != 0 {
        shared.uffd.poison(addr, shared.page)
    } else {
        shared.uffd.zeropage(addr, shared.page)
    };
    if r.is_err() {
        // Present already (EEXIST) or the range is gone: just let the thread run again.
        let _ = shared.uffd.wake(addr, shared.page);
    }
}
