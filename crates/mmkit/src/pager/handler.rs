//! The pager's handler threads: wait for page faults on the userfaultfd, read the pages
//! (and the read-ahead run after them) from the source, and copy them in.
//!
//! State shared with the [`Pager`](super::Pager) lives in [`Shared`]: the region's
//! address, one state byte per page, the read-ahead cursor, the eviction clock and the
//! counters behind [`PagerStats`](super::PagerStats).

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::io::Errno;

use super::uffd::{Uffd, UffdMsg, EVENT_PAGEFAULT, FEATURE_POISON, PAGEFAULT_FLAG_WP};
use super::Source;
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
}

/// The eviction clock.
#[derive(Debug)]
struct Clock {
    hand: usize,
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
    /// most `budget`; changed only under the `clock` lock when increasing.
    pub(crate) resident: AtomicUsize,
    seq: Mutex<Seq>,
    clock: Mutex<Clock>,
    pub(crate) counters: Counters,
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
    ) -> Shared {
        Shared {
            source,
            uffd,
            base,
            pages,
            page,
            stop,
            closed: AtomicBool::new(false),
            state: (0..pages).map(|_| AtomicU8::new(0)).collect(),
            readahead,
            budget,
            wp,
            flushing: Mutex::new(()),
            resident: AtomicUsize::new(0),
            seq: Mutex::new(Seq {
                next: usize::MAX,
                window: 1,
            }),
            clock: Mutex::new(Clock { hand: 0 }),
            counters: Counters::default(),
            last_error: Mutex::new(None),
        }
    }
}

/// A page-aligned buffer for the pages on their way in (`UFFDIO_COPY` wants whole pages).
struct Bounce {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}

impl Bounce {
    fn new(len: usize, align: usize) -> Bounce {
        let layout = std::alloc::Layout::from_size_align(len, align).expect("bounce layout");
        // SAFETY: `len` is non-zero (at least one page).
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Bounce { ptr, layout }
    }

    fn slice(&mut self, len: usize) -> &mut [u8] {
        assert!(len <= self.layout.size());
        // SAFETY: `ptr` holds `layout.size()` initialised bytes we own exclusively.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, len) }
    }
}

impl Drop for Bounce {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

/// How long a handler keeps reading the queue after serving a fault before it sleeps
/// in `poll`: a fault that follows soon after (the next random read, the next window of
/// a scan) is then served without waking a sleeping thread, which costs tens of
/// microseconds in a VM (an inter-processor interrupt). An idle pager does not spin.
const SPIN: Duration = Duration::from_micros(100);

/// The body of a handler thread: serve faults until the stop pipe becomes readable.
pub(crate) fn serve(shared: Arc<Shared>) {
    let mut bounce = Bounce::new(shared.readahead * shared.page, shared.page);
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
                note_error(&shared, format!("read(userfaultfd): {e}"));
                return;
            }
        };
        busy = n > 0;
        for m in &msgs[..n] {
            if m.event != EVENT_PAGEFAULT {
                continue;
            }
            if m.flags & PAGEFAULT_FLAG_WP != 0 {
                write_fault(&shared, m.address as usize);
            } else {
                fault(&shared, &mut bounce, m.address as usize);
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
        let mut fds = [
            libc::pollfd {
                fd: shared.uffd.raw(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: shared.stop.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is an array of two initialised pollfd structures.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if rc < 0 {
            continue; // EINTR
        }
        return fds[1].revents == 0;
    }
}

fn note_error(shared: &Shared, text: String) {
    *shared.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
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
    if shared.state[first].load(Ordering::Acquire) & PRESENT != 0 {
        // Filled since the fault was queued (by another thread's fault, or this is the
        // kernel reporting a retried fault again): only wake.
        c.spurious_faults.fetch_add(1, Ordering::Relaxed);
        let _ = shared.uffd.wake(shared.base + first * page, page);
        return;
    }
    let want = window(shared, first);
    // The run: `want` pages from the fault, clipped at the end and at a present page.
    let mut n = 1;
    while n < want
        && first + n < shared.pages
        && shared.state[first + n].load(Ordering::Relaxed) & (PRESENT | FAILED) == 0
    {
        n += 1;
    }
    make_room(shared, n);
    let mut bytes = n * page;
    let buf = bounce.slice(bytes);
    let offset = (first * page) as u64;
    let mut read = shared.source.read_at(offset, buf);
    if read.is_err() && n > 1 {
        // The failure may lie in the read-ahead: fill the faulting page alone.
        release(shared, n - 1);
        n = 1;
        bytes = page;
        read = shared.source.read_at(offset, &mut buf[..page]);
    }
    let buf = &buf[..bytes];
    if let Err(e) = read {
        release(shared, n);
        note_error(shared, e.to_string());
        shared.state[first].fetch_or(FAILED, Ordering::SeqCst);
        fail(shared, first);
        return;
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
            shared
                .uffd
                .copy(dst + done, buf.as_ptr().add(done), bytes - done, shared.wp)
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
/// the fault continues the last run, back to one page otherwise.
fn window(shared: &Shared, first: usize) -> usize {
    let mut seq = shared.seq.lock().unwrap_or_else(|p| p.into_inner());
    if first == seq.next {
        seq.window = (seq.window * 2).min(shared.readahead);
        shared
            .counters
            .readahead_hits
            .fetch_add(1, Ordering::Relaxed);
    } else {
        seq.window = 1;
    }
    let w = seq.window;
    seq.next = first + w;
    w
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

/// With a budget: evict clean pages by the clock until `n` more fit, and reserve them.
fn make_room(shared: &Shared, n: usize) {
    let Some(budget) = shared.budget else {
        return;
    };
    let mut clock = shared.clock.lock().unwrap_or_else(|p| p.into_inner());
    // Two full sweeps clear every reference bit; past that nothing present is left to
    // take (every page is reserved by fills in progress), so go over budget, rarely.
    let mut steps = 0;
    while shared.resident.load(Ordering::Acquire) + n > budget && steps < 2 * shared.pages {
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
        }
    }
    shared.resident.fetch_add(n, Ordering::AcqRel);
}

/// With a budget, the eviction lock: write faults, evictions and flushes take it, so a
/// page is never written back, dirtied and discarded at once.
fn evict_lock(shared: &Shared) -> Option<std::sync::MutexGuard<'_, Clock>> {
    shared
        .budget
        .map(|_| shared.clock.lock().unwrap_or_else(|p| p.into_inner()))
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
    if let Err(e) = shared.source.write_at((i * page) as u64, data) {
        note_error(shared, e.to_string());
        let _ = shared.uffd.writeprotect(start, page, false);
        return false;
    }
    shared.state[i].fetch_and(!DIRTY, Ordering::AcqRel);
    let c = &shared.counters;
    c.writebacks.fetch_add(1, Ordering::Relaxed);
    c.bytes_written.fetch_add(n as u64, Ordering::Relaxed);
    true
}
