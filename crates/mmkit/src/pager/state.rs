//! The state the pager's threads share, at the bottom of the pager: every file that
//! serves faults builds on this one, and it imports none of them (only the [`Source`]
//! trait and what the region is made of, [`Backing`]).
//!
//! - the page bits: one state byte a page, every bit defined here;
//! - [`Shared`]: the region, the userfaultfd, the page states, the sequential-scan
//!   detector, the counters behind [`PagerStats`](super::PagerStats), and why pages
//!   failed ([`Errors`]);
//! - [`Budget`]: the eviction clock and the resident count, which exist only when the
//!   pager has a budget;
//! - [`Prefetch`]: the queue of windows the asynchronous read-ahead fetches, and the
//!   markers it keeps aside;
//! - [`Layout`] and [`Limits`]: what `build` reserved and the numbers it settled, once.

use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::huge::Backing;
use super::source::Source;
use crate::sys::uffd::Uffd;

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
/// A prefetch of this page is queued or running.
pub(crate) const INFLIGHT: u8 = 16;
/// A thread faulted on this page while it was `INFLIGHT`: wake it once the page is in.
pub(crate) const WAITED: u8 = 32;
/// The first page of a prefetched window, kept aside: its fault queues the next window.
pub(crate) const MARKER: u8 = 64;
/// Bits that mean "someone fills this page, or has": a fill's run stops at them.
pub(crate) const TAKEN: u8 = PRESENT | FAILED | INFLIGHT | MARKER;

/// Lock a mutex of the pager, whether or not a panicking thread poisoned it (the state
/// behind every lock stays consistent across a panic, or the pager is marked broken).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The message of a panic's payload.
pub(crate) fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// Where the region lies, what it is made of and how it is registered, as `build`
/// reserved it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    /// Start of the region (page-aligned).
    pub(crate) base: usize,
    /// Pages in the region.
    pub(crate) pages: usize,
    /// The size of one page: 4 KiB, or 2 MiB with huge pages.
    pub(crate) page: usize,
    pub(crate) backing: Backing,
    /// Registered for write-protect faults (dirty tracking of a writable source).
    pub(crate) wp: bool,
}

/// The numbers `build` settles once from the options, the source and the [`Layout`]:
/// each clamped to what can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Maximum read-ahead window, pages (>= 1).
    pub(crate) readahead: usize,
    /// Resident page budget (1..=pages), when set.
    pub(crate) budget: Option<usize>,
    /// Handler threads (1..=pages).
    pub(crate) threads: usize,
    /// Whether sequential scans fetch windows ahead on the prefetch threads.
    pub(crate) prefetch: bool,
    /// Whether the random faults of one read of the queue are read together.
    pub(crate) batch: bool,
    /// Whether the pager refuses write access (a budget over a source that takes no
    /// write-back: writes would be lost on eviction).
    pub(crate) read_only: bool,
}

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

/// A memory budget's state (see `budget.rs`): only a pager with a budget has one.
#[derive(Debug)]
pub(crate) struct Budget {
    /// The most pages resident or reserved (>= 1).
    pub(crate) pages: usize,
    /// Pages present or reserved for a fill in progress. Invariant: at most `pages`,
    /// always (a fill that finds no room waits for it, see `make_room`); changed only
    /// under the `clock` lock when increasing.
    pub(crate) resident: AtomicUsize,
    /// Also the eviction lock: write faults, evictions and flushes take it.
    pub(crate) clock: Mutex<Clock>,
    /// Signalled (with the `clock` lock taken) when a fill in progress settles or the
    /// pager breaks: a fill waiting for room looks again.
    pub(crate) room: Condvar,
}

impl Budget {
    fn new(pages: usize) -> Budget {
        Budget {
            pages,
            resident: AtomicUsize::new(0),
            clock: Mutex::new(Clock {
                hand: 0,
                in_flight: 0,
            }),
            room: Condvar::new(),
        }
    }
}

/// Everything the handler threads, the prefetch threads and the `Pager` share.
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
    /// One byte a page, of the bits above.
    pub(crate) state: Box<[AtomicU8]>,
    /// Maximum read-ahead window, pages (>= 1).
    pub(crate) readahead: usize,
    /// Random faults of one read of the queue are read together (see `batch.rs`).
    pub(crate) batch: bool,
    /// The memory budget, when set.
    pub(crate) budget: Option<Budget>,
    /// Dirty tracking by write-protect faults: pages are copied in write-protected, and
    /// the first write to one marks it `DIRTY`. Without it, every present page counts
    /// as dirty for write-back.
    pub(crate) wp: bool,
    /// Held by `flush`, so two flushes do not interleave.
    pub(crate) flushing: Mutex<()>,
    seq: Mutex<Seq>,
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
    pub(crate) fn new(
        source: Arc<dyn Source>,
        uffd: Uffd,
        stop: OwnedFd,
        layout: Layout,
        limits: &Limits,
    ) -> Shared {
        Shared {
            source,
            uffd,
            base: layout.base,
            pages: layout.pages,
            page: layout.page,
            stop,
            closed: AtomicBool::new(false),
            broken: AtomicBool::new(false),
            state: (0..layout.pages).map(|_| AtomicU8::new(0)).collect(),
            readahead: limits.readahead,
            batch: limits.batch,
            budget: limits.budget.map(Budget::new),
            wp: layout.wp,
            flushing: Mutex::new(()),
            seq: Mutex::new(Seq {
                next: usize::MAX,
                window: 1,
                streak: 0,
            }),
            counters: Counters::default(),
            prefetch: limits.prefetch.then(Prefetch::new),
            errors: Errors::default(),
            backing: layout.backing,
        }
    }

    /// The read-ahead window for a fault at page `first`: doubled (up to the maximum)
    /// when the fault continues the last run, back to one page otherwise; and the faults
    /// in a row that continued a run.
    pub(crate) fn window(&self, first: usize) -> (usize, usize) {
        let mut seq = lock(&self.seq);
        if first == seq.next {
            seq.streak += 1;
            seq.window = (seq.window * 2).min(self.readahead);
            self.counters.readahead_hits.fetch_add(1, Ordering::Relaxed);
        } else {
            seq.window = 1;
            seq.streak = 0;
        }
        let w = seq.window;
        seq.next = first + w;
        (w, seq.streak)
    }

    /// A window of read-ahead was queued up to page `next`: a fault there continues the
    /// scan.
    pub(crate) fn note_sequential(&self, next: usize, window: usize) {
        let mut seq = lock(&self.seq);
        seq.next = next;
        seq.window = window;
        seq.streak = seq.streak.max(2);
    }

    /// With a budget, the eviction lock: write faults, evictions and flushes take it, so
    /// a page is never written back, dirtied and discarded at once.
    pub(crate) fn evict_lock(&self) -> Option<MutexGuard<'_, Clock>> {
        self.budget.as_ref().map(|b| lock(&b.clock))
    }

    /// Mark the pager broken (`why`, unless it broke already) and wake every fill
    /// waiting for room (they then fail).
    pub(crate) fn mark_broken(&self, why: String) {
        lock(&self.errors.broken).get_or_insert(why);
        self.broken.store(true, Ordering::Release);
        if let Some(b) = &self.budget {
            // Taken and let go so a fill between its check of `broken` and its wait
            // cannot miss the signal.
            drop(lock(&b.clock));
            b.room.notify_all();
        }
    }
}

/// Why pages failed. A page's own reason is kept apart from every other error, so a
/// later failure (another page's, or a batch read that failed and then succeeded page by
/// page) never stands in for it.
#[derive(Debug, Default)]
pub(crate) struct Errors {
    /// Each page failed by `fail_page`: the error that failed it (the first, if more).
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

    /// Note why page `page` failed (unless it has a reason already), before it is
    /// marked `FAILED`.
    pub(crate) fn page_failed(&self, page: usize, why: String) {
        lock(&self.pages).entry(page).or_insert(why);
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

/// A window to fetch: pages `first..first + n`, of a window of `window` pages (`n` is
/// less when the window was clipped at the end or at a page someone else fills).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Job {
    pub(crate) first: usize,
    pub(crate) n: usize,
    pub(crate) window: usize,
}

impl Job {
    /// The window after this one's successor (two are in flight ahead of the reader):
    /// where it starts and how large it is.
    pub(crate) fn after_next(&self, cap: usize) -> (usize, usize) {
        let next = (self.window * 2).min(cap);
        (self.first + self.window + next, (next * 2).min(cap))
    }
}

/// A window's first page, kept aside until the reader reaches it.
#[derive(Debug)]
pub(crate) struct Marker {
    /// The page's bytes, or none where pages are copied straight from the source's
    /// view: a huge page is then not read twice (once for the marker, once for the
    /// window), nor its 2 MiB allocated and zeroed, and the view is copied from when the
    /// reader arrives.
    pub(crate) bytes: Option<Box<[u8]>>,
    /// Where the window to queue when the reader gets here starts (two windows ahead:
    /// the next one is in flight already).
    pub(crate) next: usize,
    /// Its size.
    pub(crate) window: usize,
}

/// The windows queued for the prefetch threads.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    pub(crate) jobs: VecDeque<Job>,
    pub(crate) stop: bool,
}

/// Counters of the asynchronous read-ahead, behind `PagerStats`.
#[derive(Debug, Default)]
pub(crate) struct PrefetchCounters {
    pub(crate) pages: AtomicU64,
    pub(crate) waits: AtomicU64,
    pub(crate) errors: AtomicU64,
}

/// The asynchronous read-ahead's state, shared by handlers and prefetch threads.
#[derive(Debug)]
pub(crate) struct Prefetch {
    pub(crate) queue: Mutex<Queue>,
    /// Signalled when a job is queued or the queue stops.
    pub(crate) ready: Condvar,
    /// The markers kept aside, by page.
    pub(crate) markers: Mutex<HashMap<usize, Marker>>,
    pub(crate) counters: PrefetchCounters,
}

impl Prefetch {
    fn new() -> Prefetch {
        Prefetch {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            markers: Mutex::new(HashMap::new()),
            counters: PrefetchCounters::default(),
        }
    }

    /// Stop the prefetch threads: each finishes the read it is in, then exits.
    pub(crate) fn stop(&self) {
        lock(&self.queue).stop = true;
        self.ready.notify_all();
    }
}
