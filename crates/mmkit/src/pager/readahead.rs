//! Asynchronous read-ahead: windows of a sequential scan fetched by background threads
//! and installed ahead of the reader with `UFFDIO_COPY_MODE_DONTWAKE`.
//!
//! A scan's faults are served by the handler as before (a synchronous window that
//! doubles); from its second sequential fault on, the handler also queues the next *two*
//! windows, twice as large and twice again (up to the read-ahead cap), for the prefetch
//! threads. A thread reads a window from the source and copies in every page but the
//! first without waking anybody; the first page it keeps aside as the window's *marker*
//! (as the kernel's page cache marks a page `PG_readahead`). Pages already present never
//! fault, so the reader's progress is invisible — except at the marker: its fault is
//! answered from the bytes kept aside (no source read; a page copied straight from a
//! file's view keeps none, and is copied from the view then) and queues the window two ahead,
//! so two windows are in flight while the reader consumes a third. (With one window in
//! flight, a scan of an object was no faster than synchronous windows: the reader
//! caught up with every window; with two, 1.97x a download against 1.85x.)
//!
//! A fault on a page still being fetched marks it `WAITED` and returns; the prefetch
//! wakes it once the page is in (`UFFDIO_WAKE`). A prefetch that fails leaves its pages
//! missing and wakes their waiters, whose faults then read the page synchronously (and
//! poison it if that fails too). Only a pager without a budget reads ahead this way:
//! with a budget, windows stay synchronous, so every page counted is reserved first.
//!
//! # Safety
//!
//! The prefetch threads copy pages into the pager's region from their own bounce
//! buffers with the `unsafe` `UFFDIO_COPY`.
#![allow(unsafe_code)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rustix::io::Errno;

use super::bounce::Bounce;
use super::fill::{copies_direct, direct_source, place};
use super::state::{
    lock, Job, Marker, Prefetch, Shared, INFLIGHT, MARKER, PRESENT, REFERENCED, TAKEN, WAITED,
};

/// The most markers kept aside; past this a window's first page is installed at once
/// (and its chain of windows ends there).
const MAX_MARKERS: usize = 1024;

/// Queue the window of up to `window` pages from `start` (clipped at the region's end
/// and at the first page someone else fills), marking its pages `INFLIGHT`.
pub(crate) fn submit(shared: &Shared, start: usize, window: usize) {
    let Some(pf) = &shared.prefetch else { return };
    let mut n = 0;
    while n < window && start + n < shared.pages {
        let old = shared.state[start + n].fetch_or(INFLIGHT, Ordering::AcqRel);
        if old & TAKEN != 0 {
            if old & INFLIGHT == 0 {
                shared.state[start + n].fetch_and(!INFLIGHT, Ordering::AcqRel);
            }
            break;
        }
        n += 1;
    }
    if n == 0 {
        return;
    }
    let mut q = lock(&pf.queue);
    if q.stop {
        drop(q);
        abandon(
            shared,
            Job {
                first: start,
                n,
                window,
            },
        );
        return;
    }
    q.jobs.push_back(Job {
        first: start,
        n,
        window,
    });
    drop(q);
    pf.ready.notify_one();
}

/// A scan continues at page `start` after a synchronous window of `window` pages: queue
/// the two windows after it (twice as large, and twice again, up to the cap), so one is
/// fetched while the reader waits for — or reads — the other.
pub(crate) fn start(shared: &Shared, start: usize, window: usize) {
    let cap = shared.readahead;
    let first = (window * 2).min(cap);
    submit(shared, start, first);
    submit(shared, start + first, (first * 2).min(cap));
}

/// A fault on page `i`, which a prefetch fills or has kept aside as a marker. Returns
/// whether it was handled here (`false`: fill it as a missing page).
pub(crate) fn fault(shared: &Shared, i: usize) -> bool {
    let s = shared.state[i].load(Ordering::Acquire);
    if s & MARKER != 0 {
        return take_marker(shared, i);
    }
    if s & INFLIGHT == 0 {
        return false;
    }
    let old = shared.state[i].fetch_or(WAITED, Ordering::AcqRel);
    if old & INFLIGHT != 0 {
        // The prefetch will see `WAITED` when it clears `INFLIGHT`, and wake us.
        if let Some(pf) = &shared.prefetch {
            pf.counters.waits.fetch_add(1, Ordering::Relaxed);
        }
        return true;
    }
    // It finished meanwhile: kept as a marker, filled (wake), or failed (fill it
    // ourselves).
    shared.state[i].fetch_and(!WAITED, Ordering::AcqRel);
    if old & MARKER != 0 {
        return take_marker(shared, i);
    }
    if old & PRESENT != 0 {
        let _ = shared.uffd.wake(shared.base + i * shared.page, shared.page);
        return true;
    }
    false
}

/// The reader reached marker page `i`: copy its bytes in (waking the reader) and queue
/// the window after its own.
fn take_marker(shared: &Shared, i: usize) -> bool {
    let Some(pf) = &shared.prefetch else {
        return false;
    };
    let old = shared.state[i].fetch_and(!MARKER, Ordering::AcqRel);
    if old & MARKER == 0 {
        // Another handler took it and copied it in (which woke this fault's thread).
        let _ = shared.uffd.wake(shared.base + i * shared.page, shared.page);
        return true;
    }
    let Some(m) = lock(&pf.markers).remove(&i) else {
        return false;
    };
    shared
        .counters
        .readahead_hits
        .fetch_add(1, Ordering::Relaxed);
    submit(shared, m.next, m.window);
    shared.note_sequential(m.next + m.window, m.window);
    let addr = shared.base + i * shared.page;
    count(shared, pf, 1);
    match copy_marker(shared, i, m.bytes.as_deref()) {
        Ok(()) => {
            shared.state[i].fetch_or(PRESENT | REFERENCED, Ordering::Release);
        }
        Err(_) => {
            count(shared, pf, -1);
            let _ = shared.uffd.wake(addr, shared.page);
        }
    }
    true
}

/// The body of a prefetch thread: fetch queued windows until stopped.
pub(crate) fn serve(shared: Arc<Shared>, mut bounce: Bounce) {
    let Some(pf) = &shared.prefetch else { return };
    loop {
        let job = {
            let mut q = lock(&pf.queue);
            loop {
                if q.stop {
                    let left: Vec<Job> = q.jobs.drain(..).collect();
                    drop(q);
                    left.into_iter().for_each(|j| abandon(&shared, j));
                    return;
                }
                if let Some(j) = q.jobs.pop_front() {
                    break j;
                }
                q = pf.ready.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        };
        if !fetch(&shared, pf, &mut bounce, job) {
            pf.counters.errors.fetch_add(1, Ordering::Relaxed);
            abandon(&shared, job);
        }
    }
}

/// Read a window and install it: straight from the source file's pages when it has a
/// view (only the marker page is read, with `pread`), else through `bounce`. False when
/// the source failed (or the pager closed meanwhile).
fn fetch(shared: &Shared, pf: &Prefetch, bounce: &mut Bounce, job: Job) -> bool {
    let page = shared.page;
    let len = job.n * page;
    let offset = (job.first * page) as u64;
    let read = |buf: &mut [u8]| {
        let r = catch_unwind(AssertUnwindSafe(|| shared.source.read_at(offset, buf)));
        matches!(r, Ok(Ok(()))) && !shared.closed.load(Ordering::Acquire)
    };
    let c = &shared.counters;
    if let Some(src) = direct_source(shared, offset, len) {
        let marker = if copies_direct(shared, page) {
            None
        } else {
            let mut bytes = vec![0u8; page].into_boxed_slice();
            if !read(&mut bytes) {
                return false;
            }
            Some(bytes)
        };
        c.bytes_read.fetch_add(len as u64, Ordering::Relaxed);
        install(shared, pf, job, src.cast_mut(), marker);
        return true;
    }
    let buf = bounce.slice(len);
    if !read(buf) {
        return false;
    }
    c.bytes_read.fetch_add(len as u64, Ordering::Relaxed);
    // The marker's bytes are kept before the other pages go (a move takes them away).
    let marker = Some(buf[..page].into());
    install(shared, pf, job, buf.as_mut_ptr(), marker);
    true
}

/// A window not fetched: its pages go back to missing, and their waiters run again
/// (their faults then fill them synchronously).
fn abandon(shared: &Shared, job: Job) {
    for p in job.first..job.first + job.n {
        settle_page(shared, p, 0);
    }
}

/// Clear `INFLIGHT` (and `WAITED`) of page `p`, setting `add`; wake a waiter.
fn settle_page(shared: &Shared, p: usize, add: u8) {
    if add != 0 {
        shared.state[p].fetch_or(add, Ordering::AcqRel);
    }
    let old = shared.state[p].fetch_and(!(INFLIGHT | WAITED), Ordering::AcqRel);
    if old & WAITED != 0 {
        let _ = shared.uffd.wake(shared.base + p * shared.page, shared.page);
    }
}

/// Put a fetched window in from `src`: every page but the first without waking anybody,
/// the first (whose bytes are `marker`) kept aside as the window's marker (or copied in
/// too, when a thread already waits for it or too many markers are kept). A page that
/// cannot be put in (a file view whose file shrank) is left missing, to be read when
/// touched.
fn install(shared: &Shared, pf: &Prefetch, job: Job, src: *mut u8, marker: Option<Box<[u8]>>) {
    let page = shared.page;
    let len = job.n * page;
    // Counted before the copies make the pages visible (a reader that reads the stats
    // after touching them sees them); pages not copied are taken back below.
    count(shared, pf, job.n as i64 - 1);
    let mut done = page;
    while done < len {
        let dst = shared.base + job.first * page + done;
        // SAFETY: `src` holds the window: this thread's buffer with no reference into it
        // live, or the source file's read-only view; the destination lies in our region,
        // and its pages are `INFLIGHT`: missing, and filled by nobody else.
        let r = unsafe { place(shared, dst, src.add(done), len - done, false) };
        let k = match r {
            Ok(k) => k,
            Err(Errno::EXIST) => {
                // Present already (poisoned by a pager giving up): not ours.
                count(shared, pf, -1);
                settle_page(shared, job.first + done / page, 0);
                done += page;
                continue;
            }
            Err(_) => break,
        };
        for p in done / page..(done + k) / page {
            settle_page(shared, job.first + p, PRESENT | REFERENCED);
        }
        done += k;
    }
    // Pages a copy error left: missing again.
    count(shared, pf, -((job.n - done / page) as i64));
    for p in done / page..job.n {
        settle_page(shared, job.first + p, 0);
    }
    keep_marker(shared, pf, job, marker);
}

/// Keep the window's first page aside as its marker, unless a thread already waits for
/// it (then copy it in and queue the next window now).
fn keep_marker(shared: &Shared, pf: &Prefetch, job: Job, mut bytes: Option<Box<[u8]>>) {
    let i = job.first;
    let mut markers = lock(&pf.markers);
    if markers.len() < MAX_MARKERS {
        markers.insert(
            i,
            Marker {
                bytes: std::mem::take(&mut bytes),
                next: job.after_next(shared.readahead).0,
                window: job.after_next(shared.readahead).1,
            },
        );
        // Publish the marker; a waiter set `WAITED` first: then it is not a marker.
        let old = shared.state[i]
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                Some(if s & WAITED == 0 {
                    (s & !INFLIGHT) | MARKER
                } else {
                    s
                })
            })
            .unwrap_or_else(|s| s);
        if old & WAITED == 0 {
            return;
        }
        if let Some(m) = markers.remove(&i) {
            bytes = m.bytes;
        }
    }
    drop(markers);
    if shared.state[i].load(Ordering::Acquire) & WAITED != 0 {
        // The reader is here already: the window two ahead is due. (Without a waiter,
        // too many markers were kept: the chain of windows ends here.)
        let (next, window) = job.after_next(shared.readahead);
        submit(shared, next, window);
        shared.note_sequential(next + window, window);
    }
    count(shared, pf, 1);
    let add = if copy_marker(shared, i, bytes.as_deref()).is_ok() {
        PRESENT | REFERENCED
    } else {
        count(shared, pf, -1);
        0
    };
    settle_page(shared, i, add);
}

/// Copy marker page `i` into the region (missing, and filled by nobody else), waking its
/// waiters: from `bytes`, or from the source's view when none were kept. An error
/// leaves the page missing: its fault then fills it as any other (with `pread` when the
/// view fails, as for a file that shrank).
fn copy_marker(shared: &Shared, i: usize, bytes: Option<&[u8]>) -> rustix::io::Result<()> {
    let page = shared.page;
    let src = match bytes {
        Some(b) => b.as_ptr(),
        None => direct_source(shared, (i * page) as u64, page).ok_or(Errno::NOENT)?,
    };
    // SAFETY: `src` holds one page: kept heap bytes (copied, also for THP: heap pages
    // must not move) or the source's read-only view; the destination is page `i` of our
    // region, missing and filled by nobody else.
    unsafe {
        shared
            .uffd
            .copy(shared.base + i * page, src, page, shared.wp, true)
    }
    .map(drop)
}

/// Count `n` pages (taken back when negative) as filled by read-ahead.
fn count(shared: &Shared, pf: &Prefetch, n: i64) {
    let c = &shared.counters;
    for a in [&c.pages_filled, &c.readahead_pages, &pf.counters.pages] {
        if n >= 0 {
            a.fetch_add(n as u64, Ordering::Relaxed);
        } else {
            a.fetch_sub(n.unsigned_abs(), Ordering::Relaxed);
        }
    }
}
