//! [`PagerOptions`]: how to build a [`Pager`] — read-ahead (its cap, and whether the
//! next window is fetched in the background), handler threads, a memory budget,
//! user-mode-only faults, huge pages — and [`build`](PagerOptions::build), in three
//! steps: reserve the region and register it with a userfaultfd, settle the
//! [`Limits`] once, start the threads.

use std::sync::Arc;

use rustix::io::Errno;

use super::bounce::Bounce;
use super::huge::{self, Backing, HugePages, Reserved};
use super::runtime::Pager;
use super::source::Source;
use super::state::{Layout, Limits, Shared};
use super::{handler, readahead};
use crate::error::{Error, ErrorKind, Op, Result};
use crate::sys::uffd::{Uffd, FEATURE_POISON};

/// Default maximum read-ahead window: 32 pages (128 KiB with 4 KiB pages), where the
/// source gives no [hint](Source::readahead_hint) (or one under a page).
const DEFAULT_READAHEAD: usize = 32;

/// Threads fetching read-ahead windows in the background.
const PREFETCH_THREADS: usize = 2;

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
    /// One handler thread, read-ahead up to what the source asks for (see
    /// [`Source::readahead_hint`]: 1 MiB for a [`FileSource`](super::FileSource), 8 MiB
    /// for an object) or else 32 pages, and asynchronous, no memory budget.
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

impl PagerOptions {
    /// Reserve the region, open and register the userfaultfd, start the handlers.
    ///
    /// # Errors
    ///
    /// - `Op::Pager`, `EPERM`, when this process may not use userfaultfd; the hint names
    ///   the three ways to allow it.
    /// - `Op::Map` when the region cannot be reserved; `Op::Pager` with the errno when
    ///   the handshake or registration fails.
    pub fn build(&self, source: Arc<dyn Source>) -> Result<Pager> {
        let Some(len) = region_len(&*source)? else {
            return Ok(Pager::empty(source));
        };
        let (uffd, reserved, layout) = self.reserve(&*source, len)?;
        let limits = self.limits(&*source, &layout);
        start(source, uffd, reserved, layout, &limits)
    }

    /// Open the userfaultfd, reserve `len` bytes (of huge pages where asked for and
    /// allowed), name the region and register it.
    fn reserve(&self, source: &dyn Source, len: usize) -> Result<(Uffd, Reserved, Layout)> {
        let want = FEATURE_POISON | huge::features(self.huge_pages);
        let uffd = Uffd::open(want, self.user_mode_only).map_err(open_error)?;
        let plain = if self.budget.is_some() {
            Err("a pager with a budget uses 4 KiB pages (eviction works page by page)")
        } else if source.writable() {
            Err("a writable source is paged in 4 KiB pages (write-back tracks dirty pages)")
        } else {
            Ok(())
        };
        let reserved = huge::reserve(self.huge_pages, len, plain, uffd.features)?;
        let region = &reserved.region;
        region.name();
        let base = region.ptr.as_ptr() as usize;
        // Dirty tracking for a source that takes write-back: write-protect faults.
        let wp = register(&uffd, base, region.len, source.writable())?;
        let layout = Layout {
            base,
            pages: region.len / reserved.page,
            page: reserved.page,
            backing: reserved.backing,
            wp,
        };
        Ok((uffd, reserved, layout))
    }

    /// Every number of the options clamped to what can be used, before it sizes
    /// anything: the budget to the region, read-ahead to the region, the budget and
    /// [`MAX_READAHEAD_BYTES`], the threads to the region's pages and [`MAX_THREADS`].
    ///
    /// Every consequence of a budget is decided here too: windows fetched in the
    /// background are not reserved first, so a budget turns them off; a batch of random
    /// faults holds its reservations until the queue's faults are all seen, and a later
    /// fault of the queue waiting for room would wait on its own thread, so a budget
    /// turns batching off; and eviction would lose writes to a source that takes no
    /// write-back, so a budget over one makes the pager read-only.
    fn limits(&self, source: &dyn Source, layout: &Layout) -> Limits {
        let (pages, page) = (layout.pages, layout.page);
        let budget = self
            .budget
            .map(|b| (usize::try_from(b).unwrap_or(usize::MAX) / page).clamp(1, pages));
        // A hint under one page (a file's 1 MiB with 2 MiB pages) was not meant for
        // pages this large: the default applies.
        let wanted = self.readahead.unwrap_or_else(|| {
            source
                .readahead_hint()
                .map(|b| b / page)
                .filter(|&p| p > 0)
                .unwrap_or(DEFAULT_READAHEAD)
        });
        let readahead = wanted
            .min(pages)
            .min(budget.unwrap_or(pages))
            .min(MAX_READAHEAD_BYTES / page)
            .max(1);
        Limits {
            readahead,
            budget,
            threads: self.threads.clamp(1, MAX_THREADS.min(pages)),
            prefetch: self.async_readahead
                && budget.is_none()
                && readahead >= 4
                && source.reads_out_of_order(),
            batch: budget.is_none(),
            read_only: budget.is_some() && !layout.wp,
        }
    }
}

/// The region's length for `source`: its length rounded up to pages; `None` for an
/// empty source.
fn region_len(source: &dyn Source) -> Result<Option<usize>> {
    let len = source.len();
    let mapped = usize::try_from(len)
        .ok()
        .and_then(|l| l.checked_next_multiple_of(crate::sys::page_size()))
        .ok_or_else(|| {
            Error::new(Op::Pager, ErrorKind::LengthOverflow)
                .at(0, len)
                .detail(format!(
                    "{} does not fit the address space",
                    source.describe()
                ))
        })?;
    Ok((mapped > 0).then_some(mapped))
}

/// Register `len` bytes at `base` for missing-page faults, and for write-protect faults
/// too when `wp`. Returns whether write-protect is on: a kernel without it for anonymous
/// memory registers missing faults only (every present page is then written back).
fn register(uffd: &Uffd, base: usize, len: usize, wp: bool) -> Result<bool> {
    let mut wp = wp;
    let mut reg = uffd.register(base, len, wp);
    if reg == Err(Errno::INVAL) && wp {
        wp = false;
        reg = uffd.register(base, len, false);
    }
    reg.map_err(|e| {
        Error::os(Op::Pager, e).at(0, len as u64).detail(format!(
            "UFFDIO_REGISTER: {}",
            crate::error::errno_label(e.raw_os_error())
        ))
    })?;
    Ok(wp)
}

/// Allocate the threads' buffers (so a size that cannot be had is an error here, not an
/// abort in a thread), build the shared state and the [`Pager`], and start the handler
/// threads and, with asynchronous read-ahead, the prefetch threads.
fn start(
    source: Arc<dyn Source>,
    uffd: Uffd,
    reserved: Reserved,
    layout: Layout,
    limits: &Limits,
) -> Result<Pager> {
    let (stop_r, stop_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| Error::os(Op::Pager, e))?;
    let len = limits.readahead * layout.page;
    let threads = limits.threads;
    let handlers = bounces(
        threads,
        len,
        layout.backing,
        format!("a {len}-byte read-ahead buffer for each of {threads} handler threads"),
        "lower the read-ahead window or the number of handler threads",
    )?;
    let prefetchers = bounces(
        if limits.prefetch { PREFETCH_THREADS } else { 0 },
        len,
        layout.backing,
        format!("a {len}-byte buffer for each prefetch thread"),
        "lower the read-ahead window, or turn off async_readahead",
    )?;
    let shared = Arc::new(Shared::new(source, uffd, stop_r, layout, limits));
    let (region, note) = (reserved.region, reserved.note);
    let mut pager = Pager::new(region, Arc::clone(&shared), note, stop_w, limits.read_only);
    for (i, bounce) in handlers.into_iter().enumerate() {
        let s = Arc::clone(&shared);
        let name = format!("mmkit-pager-{i}");
        pager.spawn("handler", name, move || handler::serve(s, bounce))?;
    }
    for (i, bounce) in prefetchers.into_iter().enumerate() {
        let s = Arc::clone(&shared);
        let name = format!("mmkit-prefetch-{i}");
        pager.spawn("prefetch", name, move || readahead::serve(s, bounce))?;
    }
    Ok(pager)
}

/// `n` buffers of `len` bytes for a region of `backing`; `ENOMEM` with `detail` and
/// `hint` when one cannot be had.
fn bounces(
    n: usize,
    len: usize,
    backing: Backing,
    detail: String,
    hint: &'static str,
) -> Result<Vec<Bounce>> {
    (0..n)
        .map(|_| {
            Bounce::new(len, backing).ok_or_else(|| {
                Error::os(Op::Pager, Errno::NOMEM)
                    .detail(detail.clone())
                    .hint(hint)
            })
        })
        .collect()
}

/// The error for a userfaultfd that cannot be opened.
fn open_error(e: Errno) -> Error {
    let err = Error::os(Op::Pager, e);
    if e == Errno::PERM || e == Errno::ACCESS {
        let sysctl = std::fs::read_to_string("/proc/sys/vm/unprivileged_userfaultfd")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "?".into());
        return err
            .detail(format!(
                "this process may not use userfaultfd (vm.unprivileged_userfaultfd = {sysctl}, \
                 no access to /dev/userfaultfd)"
            ))
            .hint(
                "run as root or with CAP_SYS_PTRACE; or `sysctl vm.unprivileged_userfaultfd=1`; \
                 or grant access to /dev/userfaultfd (its group, or an ACL); \
                 or accept user-mode faults only with PagerOptions::user_mode_only(true)",
            );
    }
    if e == Errno::NOSYS {
        return err.detail("this kernel has no userfaultfd (CONFIG_USERFAULTFD off)".to_string());
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pager::{FileSource, FnSource};

    fn layout(pages: usize, page: usize) -> Layout {
        Layout {
            base: 0,
            pages,
            page,
            backing: Backing::Base,
            wp: false,
        }
    }

    #[test]
    fn a_file_is_read_ahead_1_mib_by_default_other_sources_32_pages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        std::fs::write(&path, vec![1u8; 1 << 20]).unwrap();
        let file = FileSource::open(&path).unwrap();
        let made = FnSource::new(1 << 30, |_, _| {});
        let base = layout(100_000, 4096);
        let opts = PagerOptions::new();
        assert_eq!(opts.limits(&file, &base).readahead, 256);
        assert_eq!(opts.limits(&made, &base).readahead, DEFAULT_READAHEAD);
        // With 2 MiB pages a 1 MiB hint is under a page: the default, clamped to 16 MiB.
        assert_eq!(opts.limits(&file, &layout(1000, 2 << 20)).readahead, 8);
        // The option wins over the hint.
        let sixteen = PagerOptions::new().readahead(16).limits(&file, &base);
        assert_eq!(sixteen.readahead, 16);
    }

    #[test]
    fn limits_are_clamped_to_what_can_be_used() {
        let made = FnSource::new(1 << 30, |_, _| {});
        let small = layout(10, 4096);
        let all = PagerOptions::new()
            .readahead(1000)
            .threads(5000)
            .budget(u64::MAX)
            .limits(&made, &small);
        let want = Limits {
            readahead: 10,
            budget: Some(10),
            threads: 10,
            prefetch: false,
            batch: false,
            read_only: true,
        };
        assert_eq!(all, want);
        let tiny = PagerOptions::new().budget(1).limits(&made, &small);
        assert_eq!(
            (tiny.budget, tiny.readahead, tiny.prefetch),
            (Some(1), 1, false)
        );
        let free = PagerOptions::new().limits(&made, &layout(1000, 4096));
        assert_eq!((free.budget, free.threads, free.prefetch), (None, 1, true));
        assert!(free.batch && !free.read_only);
        let mut writable = layout(10, 4096);
        writable.wp = true;
        let written = PagerOptions::new().budget(1).limits(&made, &writable);
        assert!(!written.batch && !written.read_only);
    }
}
