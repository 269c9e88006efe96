//! The pager's handler threads: wait for page faults on the userfaultfd, read the pages
//! (and the read-ahead run after them) from the source, and copy them in.
//!
//! State shared with the [`Pager`](super::Pager) lives in [`Shared`]: the region's
//! address, one state byte per page, the read-ahead cursor, the eviction clock and the
//! counters behind [`PagerStats`](super::PagerStats).
//!
//! # Safety
//!
//! Handler threads copy pages in from a bounce buffer allocated with `std::alloc` (sent
//! to them by hand), drop clean pages with `sys::madvise(DONTNEED)`, read dirty pages
//! of the region through raw pointers for write-back, and call the `unsafe`
//! `UFFDIO_COPY`.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustix::io::Errno;

use super::readahead::{self, Prefetch, TAKEN};
use super::Source;
use crate::sys::uffd::{Uffd, UffdMsg, EVENT_PAGEFAULT, FEATURE_POISON, PAGEFAULT_FLAG_WP};
use crate::{Error, Op, Result};

/// Page state bits. Invariant: `PRESENT` is set only after the page was copied in, and
/// cleared before it is discarded; `FAILED` is set before the page is poisoned and
/// never cleared.
pub(crate) const PRESENT: u8 = 1;
/// Clock reference bit: set on fill, cleared by a sweep of the clock hand.
pub(crate) const REFERENCED: u8 = 2;
/// The source failed to read this page; the fault was answered with a poisoned page.
pub(crate) const FAILED: u8 = 4;
/// Written since it was filled or last written back. Invariant (with write-protect
/// tracking): a present page without `DIRTY` is write-protected.
pub(crate) const DIRTY: u8 = 8;

/// Counters behind `PagerStats`; each only ever grows.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) faults: AtomicU64,
    pub(crate) pages_filled: AtomicU64,
    pub(crate) readahead_pages: AtomicU64,
    pub(crate) readahead_hits: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) writebacks: AtomicU64,
    pub(crate) bytes_read: AtomicU64,
    pub(crate) bytes_written: AtomicU64,
    pub(crate) failed_faults: AtomicU64,
    pub(crate) spurious_faults: AtomicU64,
}

/// The sequential-access detector: where the next fault of a sequential scan lands and
/// how many pages to fill for it.
#[derive(Debug)]
struct Seq {
    /// The page just past the last run filled.
    next: usize,
    /// The current window in pages (1..=readahead).
    window: usize,
    /// Sequential faults in a row: asynchronous read-ahead starts at 2 (a random read
    /// straddling two pages makes one, and should not fetch windows ahead).
    streak: usize,
}

/// The eviction clock, and the budget's fills in progress.
#[derive(Debug)]
pub(crate) struct Clock {
    hand: usize,
    /// Pages reserved by `make_room` for fills in progress and not yet settled by
    /// `settle`. `resident` beyond this is pages present (a fill gives back the pages
    /// it could not fill with `release` just before it settles, so for that moment this
    /// may exceed `resident`: compare, never subtract).
    in_flight: usize,
}

/// Everything the handler threads and the `Pager` share.
pub(crate) struct Shared {
    pub(crate) source: Arc<dyn Source>,
    pub(crate) uffd: Uffd,
    /// Start of the region (page-aligned).
    pub(crate) base: usize,
    /// Pages in the region.
    pub(crate) pages: usize,
    pub(crate) page: usize,
    /// Read end of the stop pipe: readable once the pager is dropped.
    pub(crate) stop: OwnedFd,
    /// Set by `close`: faults are answered with errors from then on.
    pub(crate) closed: AtomicBool,
    /// Set when a handler panicked or could no longer read the userfaultfd: the
    /// pager's state is not to be trusted, and every fault from then on is answered
    /// with an error (a `FAILED` page). Never cleared.
    pub(crate) broken: AtomicBool,
    /// One byte a page: `PRESENT`, `REFERENCED`, `FAILED`.
    pub(crate) state: Box<[AtomicU8]>,
    /// Maximum read-ahead window, pages (>= 1).
    pub(crate) readahead: usize,
    /// Resident page budget, when set.
    pub(crate) budget: Option<usize>,
    /// Dirty tracking by write-protect faults: pages are copied in write-protected, and
    /// the first write to one marks it `DIRTY`. Without it, every present page counts
    /// as dirty for write-back.
    pub(crate) wp: bool,
    /// Held by `flush`, so two flushes do not interleave.
    flushing: Mutex<()>,
    /// Pages present or reserved for a fill in progress. Invariant (with a budget): at
    /// most `budget`, always (a fill that finds no room waits for it, see
    /// `make_room`); changed only under the `clock` lock when increasing.
    pub(crate) resident: AtomicUsize,
    seq: Mutex<Seq>,
    clock: Mutex<Clock>,
    /// Signalled (with the `clock` lock taken) when a fill in progress settles or the
    /// pager breaks: a fill waiting for room looks again.
    room: Condvar,
    pub(crate) counters: Counters,
    /// Asynchronous read-ahead (`None` with a budget, or with read-ahead off).
    pub(crate) prefetch: Option<Prefetch>,
    /// The last error a source read returned, for `read_at`'s error.
    pub(crate) last_error: Mutex<Option<String>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("base", &(self.base as *const u8))
            .field("pages", &self.pages)
            .field("source", &self.source.describe())
            .finish_non_exhaustive()
    }
}

impl Shared {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        source: Arc<dyn Source>,
        uffd: Uffd,
        base: usize,
        pages: usize,
        page: usize,
        stop: OwnedFd,
        readahead: usize,
        budget: Option<usize>,
        wp: bool,
        prefetch: Option<Prefetch>,
    ) -> Shared {
        Shared {
            source,
            uffd,
            base,
            pages,
            page,
            stop,
            closed: AtomicBool::new(false),
            broken: AtomicBool::new(false),
            state: (0..pages).map(|_| AtomicU8::new(0)).collect(),
            readahead,
            budget,
            wp,
            flushing: Mutex::new(()),
            resident: AtomicUsize::new(0),
            seq: Mutex::new(Seq {
                next: usize::MAX,
                window: 1,
                streak: 0,
            }),
            clock: Mutex::new(Clock {
                hand: 0,
                in_flight: 0,
            }),
            room: Condvar::new(),
            counters: Counters::default(),
            prefetch,
            last_error: Mutex::new(None),
        }
    }
}

impl Shared {
    /// A window of read-ahead was queued up to page `next`: a fault there continues the
    /// scan.
    pub(crate) fn note_sequential(&self, next: usize, window: usize) {
        let mut seq = lock(&self.seq);
        seq.next = next;
        seq.window = window;
        seq.streak = seq.streak.max(2);
    }
}

/// A page-aligned buffer for the pages on their way in (`UFFDIO_COPY` wants whole pages).
/// Made by `build` before the handler starts, so a size that cannot be had is an error
/// there, not an abort in the handler.
///
/// It is fresh anonymous memory, zero until written: a page of it costs memory and a
/// first-touch fault only once a window that large is read. (A zeroed allocation of
/// this alignment is `posix_memalign` and `memset`: building a pager with 8 MiB windows,
/// one handler and two prefetch threads, spent 11–16 ms writing zeros, most of the time
/// to an object's first byte.)
#[derive(Debug)]
pub(crate) struct Bounce {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the buffer is owned memory with no thread affinity; one handler uses it.
unsafe impl Send for Bounce {}

impl Bounce {
    /// `len` bytes aligned to `align`; `None` when `len` is 0, `align` is more than a
    /// page, or the kernel refuses the mapping.
    pub(crate) fn new(len: usize, align: usize) -> Option<Bounce> {
        if len == 0 || align > crate::sys::page_size() {
            return None;
        }
        // SAFETY: a fresh private anonymous mapping, no hint; length non-zero.
        let ptr = unsafe {
            crate::sys::mmap(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::PRIVATE,
                None,
                0,
            )
        }
        .ok()?;
        Some(Bounce { ptr, len })
    }

    pub(crate) fn slice(&mut self, len: usize) -> &mut [u8] {
        assert!(len <= self.len);
        // SAFETY: `ptr` holds `self.len` bytes (zero until written) we own exclusively.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), len) }
    }
}

impl Drop for Bounce {
    fn drop(&mut self) {
        // SAFETY: our own mapping from `new`; `&mut self`: no slice of it is live.
        let _ = unsafe { crate::sys::munmap(self.ptr, self.len) };
    }
}

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
        for m in &msgs[..n] {
            if m.event != EVENT_PAGEFAULT {
                continue;
            }
            let addr = m.address as usize;
            let served = catch_unwind(AssertUnwindSafe(|| {
                if m.flags & PAGEFAULT_FLAG_WP != 0 {
                    write_fault(&shared, addr);
                } else {
                    fault(&shared, &mut bounce, addr);
                }
            }));
            if let Err(p) = served {
                broke(&shared, addr, panic_text(&*p));
            }
        }
    }
}

/// The message of a panic's payload.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// Lock a mutex of the pager, whether or not a panicking thread poisoned it (the state
/// behind every lock stays consistent across a panic, or the pager is marked broken).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Mark the pager broken and wake every fill waiting for room (they then fail).
fn mark_broken(shared: &Shared) {
    shared.broken.store(true, Ordering::Release);
    // Taken and let go so a fill between its check of `broken` and its wait cannot
    // miss the signal.
    drop(lock(&shared.clock));
    shared.room.notify_all();
}

/// A handler panicked serving the fault at `addr`: the pager's state can no longer be
/// trusted. Mark it broken (every later fault is answered with an error) and answer
/// this one with an error, so its thread does not wait forever.
fn broke(shared: &Shared, addr: usize, why: String) {
    note_error(shared, format!("a pager handler thread panicked: {why}"));
    mark_broken(shared);
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
    note_error(shared, why);
    mark_broken(shared);
    // No eviction while pages are poisoned (one evicted after this would be missing,
    // not poisoned).
    let _evict = evict_lock(shared);
    for i in 0..shared.pages {
        if shared.state[i].load(Ordering::Acquire) & PRESENT == 0 {
            shared.state[i].fetch_or(FAILED, Ordering::SeqCst);
            let addr = shared.base + i * shared.page;
            let r = if shared.uffd.features & FEATURE_POISON != 0 {
                shared.uffd.poison(addr, shared.page)
            } else {
                shared.uffd.zeropage(addr, shared.page)
            };
            if r.is_err() {
                let _ = shared.uffd.wake(addr, shared.page);
            }
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

fn note_error(shared: &Shared, text: String) {
    *lock(&shared.last_error) = Some(text);
}

/// `source.read_at`, its error or its panic as text.
fn read_source(shared: &Shared, offset: u64, buf: &mut [u8]) -> Result<(), String> {
    match catch_unwind(AssertUnwindSafe(|| shared.source.read_at(offset, buf))) {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(p) => Err(format!("the source panicked: {}", panic_text(&*p))),
    }
}

/// Answer the fault at page `first` with an error that stays: mark the page `FAILED`
/// (so `read_at` reports `why`), then poison it.
fn fail_page(shared: &Shared, first: usize, why: String) {
    note_error(shared, why);
    shared.state[first].fetch_or(FAILED, Ordering::SeqCst);
    fail(shared, first);
}

/// Serve one missing-page fault at `addr`.
fn fault(shared: &Shared, bounce: &mut Bounce, addr: usize) {
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
    let (want, streak) = window(shared, first);
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
        readahead::submit(shared, first + n, (want * 2).min(shared.readahead));
    }
    // With a budget, as many pages as there is room for (the faulting one at least).
    let reserved = match make_room(shared, n) {
        Ok(r) => r,
        Err(why) => return fail_page(shared, first, why),
    };
    fill(shared, bounce, first, reserved);
    settle(shared, reserved);
}

/// Read pages `first..first + n` (reserved by `make_room`) from the source and copy
/// them in; give back the reservation of every page not filled.
fn fill(shared: &Shared, bounce: &mut Bounce, first: usize, mut n: usize) {
    let page = shared.page;
    let c = &shared.counters;
    let mut bytes = n * page;
    let buf = bounce.slice(bytes);
    let offset = (first * page) as u64;
    let mut read = read_source(shared, offset, buf);
    if read.is_err() && n > 1 {
        // The failure may lie in the read-ahead: fill the faulting page alone.
        release(shared, n - 1);
        n = 1;
        bytes = page;
        read = read_source(shared, offset, &mut buf[..page]);
    }
    let buf = &buf[..bytes];
    if let Err(e) = read {
        release(shared, n);
        return fail_page(shared, first, e);
    }
    c.bytes_read.fetch_add(bytes as u64, Ordering::Relaxed);
    // Counted before the copy, which wakes the faulting thread: a thread that reads the
    // stats after its access sees its fill. Pages found present are taken back.
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
        // SAFETY: `buf` holds `bytes` bytes; the destination is our registered region,
        // whose missing pages only this pager fills.
        match unsafe {
            shared.uffd.copy(
                dst + done,
                buf.as_ptr().add(done),
                bytes - done,
                shared.wp,
                true,
            )
        } {
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
            Err(e) => {
                note_error(shared, format!("UFFDIO_COPY: {e}"));
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
}

/// The read-ahead window for a fault at page `first`: doubled (up to the maximum) when
/// the fault continues the last run, back to one page otherwise; and the faults in a row
/// that continued a run.
fn window(shared: &Shared, first: usize) -> (usize, usize) {
    let mut seq = shared.seq.lock().unwrap_or_else(|p| p.into_inner());
    if first == seq.next {
        seq.streak += 1;
        seq.window = (seq.window * 2).min(shared.readahead);
        shared
            .counters
            .readahead_hits
            .fetch_add(1, Ordering::Relaxed);
    } else {
        seq.window = 1;
        seq.streak = 0;
    }
    let w = seq.window;
    seq.next = first + w;
    (w, seq.streak)
}

/// Answer a fault at page `first` with an error: a poisoned page (the access raises
/// SIGBUS, which a guarded read turns into `Err`), or a zero page on kernels without
/// `UFFDIO_POISON` (then only `read_at`'s state check reports the error).
fn fail(shared: &Shared, first: usize) {
    shared
        .counters
        .failed_faults
        .fetch_add(1, Ordering::Relaxed);
    let addr = shared.base + first * shared.page;
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

/// Give back `n` pages reserved by `make_room` that were not filled.
fn release(shared: &Shared, n: usize) {
    if shared.budget.is_some() {
        shared.resident.fetch_sub(n, Ordering::AcqRel);
    }
}

/// Settle a reservation of `reserved` pages once its fill is done (each page copied in
/// and `PRESENT`, or given back by `release`), and tell fills waiting for room.
fn settle(shared: &Shared, reserved: usize) {
    if shared.budget.is_none() {
        return;
    }
    let mut clock = lock(&shared.clock);
    clock.in_flight -= reserved;
    drop(clock);
    shared.room.notify_all();
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
fn make_room(shared: &Shared, want: usize) -> Result<usize, String> {
    let Some(budget) = shared.budget else {
        return Ok(want);
    };
    let mut clock = lock(&shared.clock);
    loop {
        if shared.broken.load(Ordering::Acquire) {
            return Err("the pager broke while this fault waited for room".into());
        }
        evict(shared, &mut clock, want, budget);
        let resident = shared.resident.load(Ordering::Acquire);
        if resident < budget {
            let n = want.min(budget - resident);
            shared.resident.fetch_add(n, Ordering::AcqRel);
            clock.in_flight += n;
            return Ok(n);
        }
        if clock.in_flight == 0 {
            return Err(format!(
                "the memory budget ({budget} pages) is full of written pages that could \
                 not be written back, the last error: {}",
                lock(&shared.last_error).clone().unwrap_or_default()
            ));
        }
        clock = shared.room.wait(clock).unwrap_or_else(|p| p.into_inner());
    }
}

/// Evict clean pages by the clock (the `clock` lock held) until `want` more fit in the
/// budget, or two full sweeps (which clear every reference bit) found no more to take.
fn evict(shared: &Shared, clock: &mut Clock, want: usize, budget: usize) {
    let mut steps = 0;
    while shared.resident.load(Ordering::Acquire) + want > budget
        // Pages present (the rest of `resident` is fills in progress): none, none to take.
        && shared.resident.load(Ordering::Acquire) > clock.in_flight
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
            shared.resident.fetch_sub(1, Ordering::AcqRel);
            shared.counters.evictions.fetch_add(1, Ordering::Relaxed);
        } else {
            // Still resident: keep counting it, and keep it where the clock can see it.
            shared.state[i].fetch_or(PRESENT, Ordering::AcqRel);
        }
    }
}

/// With a budget, the eviction lock: write faults, evictions and flushes take it, so a
/// page is never written back, dirtied and discarded at once.
fn evict_lock(shared: &Shared) -> Option<MutexGuard<'_, Clock>> {
    shared.budget.map(|_| lock(&shared.clock))
}

/// The first write to a write-protected page: mark it dirty, then lift the protection
/// (which wakes the writer).
fn write_fault(shared: &Shared, addr: usize) {
    let page = shared.page;
    let i = (addr - shared.base) / page;
    let start = shared.base + i * page;
    let _evict = evict_lock(shared);
    if shared.state[i].load(Ordering::Acquire) & PRESENT == 0 {
        // Evicted while the write waited: it runs again and faults as missing.
        let _ = shared.uffd.wake(start, page);
        return;
    }
    shared.state[i].fetch_or(DIRTY, Ordering::AcqRel);
    if let Err(e) = shared.uffd.writeprotect(start, page, false) {
        note_error(shared, format!("UFFDIO_WRITEPROTECT: {e}"));
        let _ = shared.uffd.wake(start, page);
    }
}

/// Write the dirty pages back to the source (clipped at its length), write-protect them
/// again, then `sync` the source. The caller guarantees no thread writes the region
/// meanwhile (writes need `&mut Pager`).
pub(crate) fn flush(shared: &Shared, len: usize) -> Result<()> {
    let _one = shared.flushing.lock().unwrap_or_else(|p| p.into_inner());
    // No eviction while pages are cleaned and copied out.
    let _evict = evict_lock(shared);
    let page = shared.page;
    let is_dirty = |i: usize| {
        let s = shared.state[i].load(Ordering::Acquire);
        if shared.wp {
            s & DIRTY != 0
        } else {
            s & PRESENT != 0
        }
    };
    let mut i = 0;
    while i < shared.pages {
        if !is_dirty(i) {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < shared.pages && is_dirty(j) {
            j += 1;
        }
        // Protect first: a write racing the copy below would fault and be marked dirty
        // again rather than be lost (none can race: writes need `&mut Pager`).
        let start = shared.base + i * page;
        if shared.wp {
            shared
                .uffd
                .writeprotect(start, (j - i) * page, true)
                .map_err(|e| {
                    Error::os(Op::Flush, e)
                        .at((i * page) as u64, ((j - i) * page) as u64)
                        .detail(format!("UFFDIO_WRITEPROTECT: {e}"))
                })?;
            for p in i..j {
                shared.state[p].fetch_and(!DIRTY, Ordering::AcqRel);
            }
        }
        let end = (j * page).min(len);
        let n = end - i * page;
        // SAFETY: `[start, start+n)` lies in the region, its pages are present (dirty
        // implies present), and nothing writes them during the flush (see above).
        let data = unsafe { std::slice::from_raw_parts(start as *const u8, n) };
        if let Err(e) = shared.source.write_at((i * page) as u64, data) {
            if shared.wp {
                for p in i..j {
                    shared.state[p].fetch_or(DIRTY, Ordering::AcqRel);
                }
                let _ = shared.uffd.writeprotect(start, (j - i) * page, false);
            }
            return Err(e);
        }
        let c = &shared.counters;
        c.writebacks.fetch_add((j - i) as u64, Ordering::Relaxed);
        c.bytes_written.fetch_add(n as u64, Ordering::Relaxed);
        i = j;
    }
    shared.source.sync()
}

/// Before evicting dirty page `i` (the eviction lock held): write-protect it, write it
/// back, mark it clean. `false` (page left dirty and writable) when that fails.
fn write_back_page(shared: &Shared, i: usize) -> bool {
    let page = shared.page;
    let start = shared.base + i * page;
    if shared.uffd.writeprotect(start, page, true).is_err() {
        return false;
    }
    let len = shared.source.len() as usize;
    let n = ((i + 1) * page).min(len) - i * page;
    // SAFETY: the page is present (dirty implies present; evictions are serialised by
    // the eviction lock) and write-protected: nothing writes it while it is read.
    let data = unsafe { std::slice::from_raw_parts(start as *const u8, n) };
    let wrote = catch_unwind(AssertUnwindSafe(|| {
        shared.source.write_at((i * page) as u64, data)
    }));
    let wrote = match wrote {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(p) => Err(format!("the source panicked: {}", panic_text(&*p))),
    };
    if let Err(e) = wrote {
        note_error(shared, e);
        let _ = shared.uffd.writeprotect(start, page, false);
        return false;
    }
    shared.state[i].fetch_and(!DIRTY, Ordering::AcqRel);
    let c = &shared.counters;
    c.writebacks.fetch_add(1, Ordering::Relaxed);
    c.bytes_written.fetch_add(n as u64, Ordering::Relaxed);
    true
}
