//! [`PagerOptions`]: how to build a [`Pager`](super::Pager) — read-ahead (its cap, and
//! whether the next window is fetched in the background), handler threads, a memory
//! budget, user-mode-only faults. `build` itself is in `runtime.rs`.

use super::huge::HugePages;
#[allow(unused_imports)] // Named in the docs' links.
use super::{Pager, Source};

/// Default maximum read-ahead window: 32 pages (128 KiB with 4 KiB pages).
pub(crate) const DEFAULT_READAHEAD: usize = 32;

/// Threads fetching read-ahead windows in the background.
pub(crate) const PREFETCH_THREADS: usize = 2;

/// The largest read-ahead window, in bytes: each handler thread holds a buffer this
/// big, and a larger window only delays the faulting thread.
pub const MAX_READAHEAD_BYTES: usize = 16 << 20;

/// The most handler threads a pager starts.
pub const MAX_THREADS: usize = 1024;

/// How to build a [`Pager`]: read-ahead, handler threads, memory budget.
#[derive(Debug, Clone)]
pub struct PagerOptions {
    /// `None`: the source's hint, or `DEFAULT_READAHEAD`.
    pub(crate) readahead: Option<usize>,
    pub(crate) async_readahead: bool,
    pub(crate) threads: usize,
    pub(crate) budget: Option<u64>,
    pub(crate) user_mode_only: bool,
    pub(crate) huge_pages: HugePages,
}

impl Default for PagerOptions {
    fn default() -> Self {
        PagerOptions::new()
    }
}

impl PagerOptions {
    /// One handler thread, read-ahead up to 32 pages (or what the source asks for, see
    /// [`Source::readahead_hint`]) and asynchronous, no memory budget.
    pub fn new() -> PagerOptions {
        PagerOptions {
            readahead: None,
            async_readahead: true,
            threads: 1,
            budget: None,
            user_mode_only: false,
            huge_pages: HugePages::Off,
        }
    }

    /// Build the region from 2 MiB pages (see [`HugePages`]): hugetlb pages from the pool
    /// copied in, or transparent huge pages moved in with `UFFDIO_MOVE`, so a scan pays
    /// a fault and a page allocation per 2 MiB instead of per 4 KiB. Where the kind asked
    /// for is not available (an empty pool, no THP, a kernel before 6.8), or the pager has
    /// a budget or a writable source, it falls back to 4 KiB pages and says why:
    /// [`Pager::backing`], [`Pager::backing_note`].
    ///
    /// Off by default: with huge pages a random 4 KiB access reads 2 MiB from the
    /// source, which for a remote object is 512 times the bytes. The read-ahead window
    /// counts pages, so it is clamped to 16 MiB (8 huge pages).
    pub fn huge_pages(&mut self, huge: HugePages) -> &mut PagerOptions {
        self.huge_pages = huge;
        self
    }

    /// Accept a userfaultfd that serves only faults taken in user mode
    /// (`UFFD_USER_MODE_ONLY`), which any user may open, when a full one is refused.
    ///
    /// The kernel's own accesses to pages not yet filled then fail instead of waiting: a
    /// `write(2)` from the region returns `EFAULT`. Touch the data in user mode (read it,
    /// or copy it out with [`Pager::read_at`]) before handing it to a system call.
    pub fn user_mode_only(&mut self, allow: bool) -> &mut PagerOptions {
        self.user_mode_only = allow;
        self
    }

    /// The largest read-ahead window, in pages (at least 1; 1 turns read-ahead off).
    ///
    /// A fault right after the last run filled doubles the window (1, 2, 4, ... up to
    /// `max_pages`) and fills that many pages with one source read and one copy; any
    /// other fault resets it to one page.
    ///
    /// [`build`](PagerOptions::build) clamps it to what can be used: the region's pages,
    /// the [budget](PagerOptions::budget)'s pages, and [`MAX_READAHEAD_BYTES`] (16 MiB).
    /// Each handler thread holds a buffer of the clamped window.
    pub fn readahead(&mut self, max_pages: usize) -> &mut PagerOptions {
        self.readahead = Some(max_pages.max(1));
        self
    }

    /// Whether a sequential scan also fetches windows ahead in the background
    /// (default: yes), installed ahead of the reader with `UFFDIO_COPY_MODE_DONTWAKE`,
    /// so the reader rarely waits for the source: from the second sequential fault in a
    /// row, the next two windows (twice as large, and twice again, up to the read-ahead
    /// cap) are queued, and each window the reader enters queues the one after them.
    /// Two prefetch threads do the reading, each with a buffer of one window.
    ///
    /// Measured on the 2-vCPU VM: a warm 1 GiB file scanned in 0.61 s against 0.83 s
    /// without (1.36x); a 1 GiB object from a local S3 server with 5 ms added to every
    /// response, 1.97x a plain download against 1.85x.
    ///
    /// A pager with a [budget](PagerOptions::budget), and one over a source that does not
    /// [read out of order](Source::reads_out_of_order) cheaply, reads ahead
    /// synchronously only.
    pub fn async_readahead(&mut self, on: bool) -> &mut PagerOptions {
        self.async_readahead = on;
        self
    }

    /// How many handler threads serve faults (at least 1).
    ///
    /// [`build`](PagerOptions::build) starts no more than the region has pages, and no
    /// more than [`MAX_THREADS`] (1024).
    pub fn threads(&mut self, n: usize) -> &mut PagerOptions {
        self.threads = n.max(1);
        self
    }

    /// Keep at most `bytes` of the region resident (rounded down to pages, at least one
    /// page): before a fill would go over, clean pages are discarded
    /// (`MADV_DONTNEED`) in clock order, and read again from the source when touched.
    ///
    /// Each fill reserves its pages before it reads them, read-ahead shrinks to the room
    /// left, and a fault that finds the whole budget reserved by fills in progress waits
    /// for one of them. The stated bound is the budget plus one read-ahead window per
    /// handler thread. Measured in `smaps` on a stopped process with 8 handler threads,
    /// the region's `Rss` was the budget in nearly every run, and once in about eight
    /// runs 8 pages over it (one page per handler: not explained yet). A sample taken
    /// while the pager runs reads more, as the kernel's walk of the region races
    /// evictions behind it and fills ahead of it.
    ///
    /// With a [writable](Source::writable) source, a dirty page is written back before
    /// it is discarded. A pager of a read-only source with a budget gives no write
    /// access ([`Pager::as_mut_slice`] fails): its writes would be lost on eviction.
    pub fn budget(&mut self, bytes: u64) -> &mut PagerOptions {
        self.budget = Some(bytes);
        self
    }
}
