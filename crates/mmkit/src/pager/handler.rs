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
//! to them by hand) with the `unsafe` `UFFDIO_COPY`. Eviction (`budget.rs`), write-back
//! (`writeback.rs`) and the asynchronous read-ahead (`readahead.rs`) live beside this.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustix::io::Errno;

use super::batch;
use super::budget::{evict_lock, make_room, settle};
use super::fill::fill;
use super::huge::{Backing, HUGE};
use super::readahead::{self, Prefetch, TAKEN};
use super::writeback::write_fault;
use super::Source;
use crate::sys::uffd::{Uffd, UffdMsg, EVENT_PAGEFAULT, FEATURE_POISON, PAGEFAULT_FLAG_WP};
use crate::Result;

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
    pub(crate) batched_pages: AtomicU64,
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
    pub(crate) hand: usize,
    /// Pages reserved by `make_room` for fills in progress and not yet settled by
    /// `settle`. `resident` beyond this is pages present (a fill gives back the pages
    /// it could not fill with `release` just before it settles, so for that moment this
    /// may exceed `resident`: compare, never subtract).
    pub(crate) in_flight: usize,
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
    pub(crate) flushing: Mutex<()>,
    /// Pages present or reserved for a fill in progress. Invariant (with a budget): at
    /// most `budget`, always (a fill that finds no room waits for it, see
    /// `make_room`); changed only under the `clock` lock when increasing.
    pub(crate) resident: AtomicUsize,
    seq: Mutex<Seq>,
    pub(crate) clock: Mutex<Clock>,
    /// Signalled (with the `clock` lock taken) when a fill in progress settles or the
    /// pager breaks: a fill waiting for room looks again.
    pub(crate) room: Condvar,
    pub(crate) counters: Counters,
    /// Asynchronous read-ahead (`None` with a budget, or with read-ahead off).
    pub(crate) prefetch: Option<Prefetch>,
    /// Why pages failed, each its own reason: what `read_at` reports for a `FAILED` page.
    pub(crate) errors: Errors,
    /// What the region is made of (and so how a fill installs its pages).
    pub(crate) backing: Backing,
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
        backing: Backing,
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
            errors: Errors::default(),
            backing,
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
    /// `len` bytes for a region made of `backing`: page-aligned, or for THP 2 MiB-aligned
    /// with `MADV_HUGEPAGE` (its huge pages are moved out whole); `None` when `len` is 0
    /// or the kernel refuses the mapping.
    pub(crate) fn new(len: usize, backing: Backing) -> Option<Bounce> {
        use rustix::mm::{MapFlags, ProtFlags};
        if len == 0 {
            return None;
        }
        let rw = ProtFlags::READ | ProtFlags::WRITE;
        let ptr = if backing == Backing::Thp {
            let ptr = crate::sys::map_anon_aligned(len, HUGE, rw, MapFlags::PRIVATE).ok()?;
            // SAFETY: the range is the mapping just made; advice changes no contents.
            let _ = unsafe {
                crate::sys::madvise(ptr.as_ptr(), len, rustix::mm::Advice::LinuxHugepage)
            };
            ptr
        } else {
            // SAFETY: a fresh private anonymous mapping, no hint; length non-zero.
            unsafe { crate::sys::mmap(std::ptr::null_mut(), len, rw, MapFlags::PRIVATE, None, 0) }
                .ok()?
        };
        Some(Bounce { ptr, len })
    }

    /// Its size in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
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

/// The message of a panic's payload.
pub(crate) fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// Lock a mutex of the pager, whether or not a panicking thread poisoned it (the state
/// behind every lock stays consistent across a panic, or the pager is marked broken).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Why pages failed. A page's own reason is kept apart from every other error, so a
/// later failure (another page's, or a batch read that failed and then succeeded page by
/// page) never stands in for it.
#[derive(Debug, Default)]
pub(crate) struct Errors {
    /// Each page failed by [`fail_page`]: the error that failed it (the first, if more).
    /// Set before the page is marked `FAILED`, so a reader that sees the mark finds it.
    pages: Mutex<HashMap<usize, String>>,
    /// Why the pager broke (the first reason): the error of every page failed after.
    broken: Mutex<Option<String>>,
    /// The last write-back that failed, for the budget's error when it is full of pages
    /// that could not be written back.
    writeback: Mutex<Option<String>>,
}

impl Errors {
    /// Why page `page` (marked `FAILED`) failed.
    pub(crate) fn page(&self, page: usize) -> String {
        if let Some(why) = lock(&self.pages).get(&page) {
            return why.clone();
        }
        lock(&self.broken)
            .clone()
            .unwrap_or_else(|| "the pager stopped serving it".into())
    }

    /// Note that a write-back failed, and why.
    pub(crate) fn writeback_failed(&self, why: String) {
        *lock(&self.writeback) = Some(why);
    }

    /// The last write-back error, if any.
    pub(crate) fn last_writeback(&self) -> Option<String> {
        lock(&self.writeback).clone()
    }
}

/// Mark the pager broken (`why`, unless it broke already) and wake every fill waiting for
/// room (they then fail).
fn mark_broken(shared: &Shared, why: String) {
    lock(&shared.errors.broken).get_or_insert(why);
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
    mark_broken(shared, format!("a pager handler thread panicked: {why}"));
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
    mark_broken(shared, why);
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

/// `source.read_at`, its error or its panic as text.
pub(crate) fn read_source(shared: &Shared, offset: u64, buf: &mut [u8]) -> Result<(), String> {
    match catch_unwind(AssertUnwindSafe(|| shared.source.read_at(offset, buf))) {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(p) => Err(format!("the source panicked: {}", panic_text(&*p))),
    }
}

/// Answer the fault at page `first` with an error that stays: note `why` as this page's
/// reason, mark the page `FAILED` (so `read_at` reports it), then poison it.
pub(crate) fn fail_page(shared: &Shared, first: usize, why: String) {
    lock(&shared.errors.pages).entry(first).or_insert(why);
    shared.state[first].fetch_or(FAILED, Ordering::SeqCst);
    fail(shared, first);
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
        readahead::start(shared, first + n, want);
    }
    // With a budget, as many pages as there is room for (the faulting one at least).
    let reserved = match make_room(shared, n) {
        Ok(r) => r,
        Err(why) => return fail_page(shared, first, why),
    };
    // Batched only without a budget: a batch holds its reservations until the queue's
    // faults are all seen, and a later fault of the queue waiting for room would wait on
    // this very thread.
    if shared.budget.is_none() && reserved == 1 && streak == 0 && batch.len() < batch.capacity() {
        batch.push(first);
        return;
    }
    fill(shared, bounce, first, reserved);
    settle(shared, reserved);
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
