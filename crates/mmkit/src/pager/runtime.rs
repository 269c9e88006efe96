//! The [`Pager`]: a region of memory whose pages are read from a [`Source`] on first
//! touch, served by handler threads through `userfaultfd(2)`, and what it lends, counts
//! and flushes. [`PagerOptions::build`](super::PagerOptions::build) makes it.
//!
//! See the [module docs](super) for the example and the safety model.
//!
//! # Safety
//!
//! The [`Pager`] owns a raw region registered with userfaultfd: it maps, names and
//! unmaps it through `sys`, is `Send`/`Sync` by hand (the pointer is shared only with
//! the handler threads), and lends its bytes as slices and copies through raw pointers.
#![allow(unsafe_code)]

use std::os::fd::OwnedFd;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

use super::huge::{Backing, Region};
use super::source::Source;
use super::state::{Shared, DIRTY, FAILED, PRESENT};
use super::writeback;
use crate::error::{Error, ErrorKind, Op, Result};
use crate::sys::uffd::Opened;

/// What a pager has done so far. All counts since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct PagerStats {
    /// Missing-page faults the handlers received.
    pub faults: u64,
    /// Pages copied in (the faulting pages and their read-ahead).
    pub pages_filled: u64,
    /// Pages filled by read-ahead, not by their own fault.
    pub readahead_pages: u64,
    /// Faults that continued a sequential run (they grew the read-ahead window).
    pub readahead_hits: u64,
    /// Pages discarded to stay within the budget.
    pub evictions: u64,
    /// Pages written back to the source.
    pub writebacks: u64,
    /// Bytes read from the source.
    pub bytes_read: u64,
    /// Bytes written back to the source.
    pub bytes_written: u64,
    /// Faults answered with an error (the source failed, or the pager was closed).
    pub failed_faults: u64,
    /// Faults on a page already filled when the handler got to them (two threads
    /// touching one page, or the kernel reporting a retried fault again): answered
    /// with a wake. Counted in `faults` too.
    pub spurious_faults: u64,
    /// Pages installed ahead of the reader by asynchronous read-ahead (counted in
    /// `pages_filled` and `readahead_pages` too).
    pub prefetched_pages: u64,
    /// Faults on a page the asynchronous read-ahead was still fetching: the reader
    /// caught up with it and waited.
    pub prefetch_waits: u64,
    /// Pages of random faults read together, with one
    /// [`read_ranges`](Source::read_ranges) call for the faults queued at once.
    pub batched_pages: u64,
    /// Background windows that could not be read (their pages were then read when
    /// touched).
    pub prefetch_errors: u64,
}

/// A region of memory paged in from a [`Source`] by `userfaultfd` handler threads.
///
/// Built with [`PagerOptions::build`](super::PagerOptions::build). See the
/// [module docs](super) for the safety model: why [`as_slice`](Pager::as_slice) is
/// safe, and when to use [`read_at`](Pager::read_at) instead.
pub struct Pager {
    /// `None` for an empty source (nothing mapped, no handler).
    region: Option<(Region, Arc<Shared>)>,
    /// Why huge pages asked for are not used.
    backing_note: Option<String>,
    len: usize,
    source: Arc<dyn Source>,
    /// A budget without write-back: writes would be lost on eviction.
    read_only: bool,
    threads: Vec<JoinHandle<()>>,
    /// Write end of the stop pipe; dropping it wakes every handler to exit.
    stop: Option<OwnedFd>,
}

// SAFETY: the region is memory this pager owns; shared access gives only reads of bytes
// that, once filled, keep their values (see the module docs), and writes need `&mut`.
unsafe impl Send for Pager {}
// SAFETY: as above; `&Pager` methods only read the region or touch atomics.
unsafe impl Sync for Pager {}

impl std::fmt::Debug for Pager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pager")
            .field("ptr", &self.as_ptr())
            .field("len", &self.len)
            .field("source", &self.source.describe())
            .field("threads", &self.threads.len())
            .finish()
    }
}

impl Pager {
    /// The pager of an empty source: nothing mapped, no handler.
    pub(super) fn empty(source: Arc<dyn Source>) -> Pager {
        Pager {
            region: None,
            backing_note: None,
            len: 0,
            source,
            read_only: false,
            threads: Vec::new(),
            stop: None,
        }
    }

    /// The pager of `region`, served through `shared`, before its threads start;
    /// dropping it stops the threads started (closing `stop`), then unmaps. `read_only`:
    /// [`as_mut_slice`](Pager::as_mut_slice) fails.
    pub(super) fn new(
        region: Region,
        shared: Arc<Shared>,
        backing_note: Option<String>,
        stop: OwnedFd,
        read_only: bool,
    ) -> Pager {
        let source = Arc::clone(&shared.source);
        Pager {
            // `build` checked that the source's length fits the address space.
            len: source.len() as usize,
            read_only,
            region: Some((region, shared)),
            backing_note,
            source,
            threads: Vec::new(),
            stop: Some(stop),
        }
    }

    /// Start the `what` thread named `name` running `body`; it is stopped and joined on
    /// drop.
    pub(super) fn spawn(
        &mut self,
        what: &str,
        name: String,
        body: impl FnOnce() + Send + 'static,
    ) -> Result<()> {
        let t = std::thread::Builder::new()
            .name(name)
            .spawn(body)
            .map_err(|e| Error::io(Op::Pager, &e).detail(format!("spawn {what} thread: {e}")))?;
        self.threads.push(t);
        Ok(())
    }

    /// What the region is made of: 4 KiB pages, or the huge pages
    /// [`PagerOptions::huge_pages`](super::PagerOptions::huge_pages) asked for when the
    /// machine has them.
    pub fn backing(&self) -> Backing {
        self.region
            .as_ref()
            .map_or(Backing::Base, |(_, s)| s.backing)
    }

    /// Why the huge pages asked for are not used (the pool is too small, the kernel lacks
    /// them, the pager has a budget…); `None` when they are, or none were asked for.
    pub fn backing_note(&self) -> Option<&str> {
        self.backing_note.as_deref()
    }

    /// The size of the region's pages, in bytes: the unit of a fault, a fill, and the
    /// page counts of [`PagerStats`], [`resident_pages`](Self::resident_pages) and
    /// [`dirty_pages`](Self::dirty_pages).
    pub fn page_size(&self) -> usize {
        self.region
            .as_ref()
            .map_or(crate::sys::page_size(), |(_, s)| s.page)
    }

    /// Start of the region (dangling for an empty source).
    pub fn as_ptr(&self) -> *const u8 {
        match &self.region {
            Some((r, _)) => r.ptr.as_ptr(),
            None => NonNull::dangling().as_ptr(),
        }
    }

    /// Length of the data, in bytes: the source's length when the pager was built.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the source was empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The source the pages come from.
    pub fn source(&self) -> &Arc<dyn Source> {
        &self.source
    }

    /// How the userfaultfd was obtained: `"userfaultfd"`, `"/dev/userfaultfd"`, or
    /// `"userfaultfd (user-mode only)"`, where the kernel's own accesses to the region
    /// (a `read(2)` into it) fail with `EFAULT`. `None` for an empty source.
    pub fn uffd_kind(&self) -> Option<&'static str> {
        self.region.as_ref().map(|(_, s)| match s.uffd.opened {
            Opened::Syscall => "userfaultfd",
            Opened::Device => "/dev/userfaultfd",
            Opened::UserModeOnly => "userfaultfd (user-mode only)",
        })
    }

    /// The data as a slice; pages are read from the source as they are touched.
    ///
    /// Touching a page the source cannot read, or any page not yet filled after
    /// [`close`](Pager::close), raises SIGBUS (the process dies, loudly, as with any
    /// unhandled SIGBUS; on kernels before 6.6 it reads zeros instead). Use
    /// [`read_at`](Pager::read_at) when the source can fail or another thread may close
    /// the pager.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `len` bytes of our own private mapping; they are only written through
        // `&mut self` (or refilled with the same bytes after an eviction), see the
        // module docs.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len) }
    }

    /// The data as a mutable slice.
    ///
    /// With a [writable](Source::writable) source, the pages written are tracked (each
    /// page is filled write-protected; its first write takes a write-protect fault that
    /// marks it dirty) and [`flush`](Pager::flush) or drop writes them back. With a
    /// read-only source, writes stay in memory.
    ///
    /// As with [`as_slice`](Pager::as_slice), touching a page not yet filled after
    /// [`close`](Pager::close), or one the source failed to read, raises SIGBUS.
    ///
    /// # Errors
    ///
    /// `Unsupported` when the pager has a budget and a read-only source (eviction would
    /// drop the writes).
    pub fn as_mut_slice(&mut self) -> Result<&mut [u8]> {
        if self.read_only {
            return Err(Error::new(Op::Write, ErrorKind::Unsupported)
                .detail("a pager with a memory budget over a read-only source is read-only")
                .hint("build it without .budget() to write, or over a writable source"));
        }
        // SAFETY: as in `as_slice`, and `&mut self` makes this the only borrow.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.as_ptr().cast_mut(), self.len) })
    }

    /// Copy `buf.len()` bytes at `offset` into `buf`, paging them in as needed.
    ///
    /// Each page is copied under mmkit's SIGBUS guard, so a page the source failed to
    /// read, or a read racing [`close`](Pager::close), returns `Err` instead of
    /// crashing or hanging.
    ///
    /// # Errors
    ///
    /// - `OutOfRange` when the range ends past [`len`](Pager::len).
    /// - `Closed` when the pager was closed before or during the read.
    /// - `StorageFault` when the source failed to read a page of the range (the detail
    ///   has the source's error).
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        let end = offset
            .checked_add(buf.len())
            .filter(|&e| e <= self.len)
            .ok_or_else(|| {
                Error::new(Op::Read, ErrorKind::OutOfRange)
                    .at(offset as u64, buf.len() as u64)
                    .detail(format!("the pager holds {} bytes", self.len))
            })?;
        let Some((_, shared)) = &self.region else {
            return Ok(());
        };
        let page = shared.page;
        let mut at = offset;
        while at < end {
            let n = (at / page * page + page).min(end) - at;
            self.check_page(shared, at / page, offset, buf.len())?;
            // SAFETY: `at < len`, inside our region.
            let src = unsafe { self.as_ptr().add(at) };
            let dst = &mut buf[at - offset..at - offset + n];
            let r = crate::guard::guarded(src, n, || {
                // SAFETY: `src` is valid for `n` bytes of our region (the guard catches
                // the SIGBUS of a poisoned page); `dst` is a distinct buffer.
                unsafe { std::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), n) }
            });
            if let Err(f) = r {
                crate::guard::settle(f.patches);
            }
            // The page state is set before a page is poisoned, so this sees any failure
            // the copy ran into, and any zero page a closed pager handed out.
            self.check_page(shared, at / page, offset, buf.len())?;
            at += n;
        }
        Ok(())
    }

    fn check_page(&self, shared: &Shared, page: usize, offset: usize, len: usize) -> Result<()> {
        if shared.closed.load(Ordering::Acquire) {
            return Err(Error::new(Op::Read, ErrorKind::Closed)
                .at(offset as u64, len as u64)
                .detail("the pager was closed"));
        }
        if shared.state[page].load(Ordering::Acquire) & FAILED != 0 {
            let why = shared.errors.page(page);
            return Err(Error::new(Op::Read, ErrorKind::StorageFault)
                .at(offset as u64, len as u64)
                .detail(format!(
                    "{} could not read page {page}: {why}",
                    self.source.describe()
                )));
        }
        Ok(())
    }

    /// Stop serving data: every fault pending now or later is answered with an error
    /// (a poisoned page), so threads blocked in [`read_at`](Pager::read_at) return
    /// `Err(Closed)` instead of waiting; pages already filled stay readable through
    /// [`as_slice`](Pager::as_slice), and pages written are still written back by
    /// [`flush`](Pager::flush). Dropping the pager flushes it, then closes it.
    ///
    /// A fault whose source read is already running finishes it (the reader then gets
    /// `Err(Closed)` all the same).
    pub fn close(&self) {
        if let Some((_, s)) = &self.region {
            s.closed.store(true, Ordering::Release);
        }
    }

    /// Whether [`close`](Pager::close) was called.
    pub fn is_closed(&self) -> bool {
        self.region
            .as_ref()
            .is_some_and(|(_, s)| s.closed.load(Ordering::Acquire))
    }

    /// Write the pages written since the last flush back to the source (`write_at`, the
    /// last page clipped at [`len`](Pager::len)), protect them again so the next write
    /// is seen, and [`sync`](Source::sync) the source. Does nothing for a read-only
    /// source. Dropping the pager flushes too, ignoring errors: call this to see them.
    ///
    /// On a kernel without write-protect for anonymous memory, every page filled so far
    /// is written back.
    ///
    /// # Errors
    ///
    /// The source's `write_at` or `sync` error; pages not written stay dirty.
    pub fn flush(&self) -> Result<()> {
        match &self.region {
            Some((_, s)) if self.source.writable() => writeback::flush(s, self.len),
            _ => Ok(()),
        }
    }

    /// Pages written since the last [`flush`](Pager::flush) (0 for a read-only source).
    pub fn dirty_pages(&self) -> usize {
        match &self.region {
            Some((_, s)) if s.wp => s
                .state
                .iter()
                .filter(|p| p.load(Ordering::Relaxed) & DIRTY != 0)
                .count(),
            _ => 0,
        }
    }

    /// Pages of the region the pager counts as resident now (filled and not evicted).
    pub fn resident_pages(&self) -> usize {
        self.region.as_ref().map_or(0, |(_, s)| {
            s.state
                .iter()
                .filter(|p| p.load(Ordering::Relaxed) & PRESENT != 0)
                .count()
        })
    }

    /// The largest read-ahead window, in pages, as
    /// [`build`](super::PagerOptions::build) settled it: the option or the source's
    /// hint, clamped (0 for an empty source).
    pub fn readahead(&self) -> usize {
        self.region.as_ref().map_or(0, |(_, s)| s.readahead)
    }

    /// Whether sequential scans fetch their next window in the background
    /// ([`PagerOptions::async_readahead`](super::PagerOptions::async_readahead), and no
    /// budget, and a window of 4 pages or more).
    pub fn async_readahead(&self) -> bool {
        self.region
            .as_ref()
            .is_some_and(|(_, s)| s.prefetch.is_some())
    }

    /// The counters so far.
    pub fn stats(&self) -> PagerStats {
        let Some((_, s)) = &self.region else {
            return PagerStats::default();
        };
        let c = &s.counters;
        let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        PagerStats {
            faults: l(&c.faults),
            pages_filled: l(&c.pages_filled),
            readahead_pages: l(&c.readahead_pages),
            readahead_hits: l(&c.readahead_hits),
            evictions: l(&c.evictions),
            writebacks: l(&c.writebacks),
            bytes_read: l(&c.bytes_read),
            bytes_written: l(&c.bytes_written),
            failed_faults: l(&c.failed_faults),
            spurious_faults: l(&c.spurious_faults),
            batched_pages: l(&c.batched_pages),
            prefetched_pages: s.prefetch.as_ref().map_or(0, |p| l(&p.counters.pages)),
            prefetch_waits: s.prefetch.as_ref().map_or(0, |p| l(&p.counters.waits)),
            prefetch_errors: s.prefetch.as_ref().map_or(0, |p| l(&p.counters.errors)),
        }
    }
}

impl Drop for Pager {
    fn drop(&mut self) {
        // Errors are lost here; `flush` reports them. Dirty pages are present, so this
        // needs no fault served and works on a closed pager too.
        let _ = self.flush();
        self.close();
        // Closing the write end makes the pipe readable (end of file) for every handler.
        drop(self.stop.take());
        if let Some((_, s)) = &self.region {
            if let Some(pf) = &s.prefetch {
                pf.stop();
            }
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some((region, shared)) = self.region.take() {
            // Handlers have exited; dropping the last `Shared` closes the userfaultfd,
            // then the region is unmapped (`&mut self`: no borrow of it is live).
            drop(shared);
            drop(region);
        }
    }
}
