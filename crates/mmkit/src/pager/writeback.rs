//! Write-back of written pages: the first write to a write-protected page marks it dirty
//! (`write_fault`), `flush` writes the dirty pages to the source and protects them again,
//! and eviction writes one back before discarding it (`write_back_page`).
//!
//! # Safety
//!
//! Write-back reads dirty pages of the pager's region through raw pointers while they are
//! write-protected (or, in `flush`, while no thread may write them).
#![allow(unsafe_code)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;

use super::state::{panic_text, Shared, DIRTY, PRESENT};
use crate::error::{Error, Op, Result};

/// The first write to a write-protected page: mark it dirty, then lift the protection
/// (which wakes the writer).
pub(crate) fn write_fault(shared: &Shared, addr: usize) {
    let page = shared.page;
    let i = (addr - shared.base) / page;
    let start = shared.base + i * page;
    let _evict = shared.evict_lock();
    if shared.state[i].load(Ordering::Acquire) & PRESENT == 0 {
        // Evicted while the write waited: it runs again and faults as missing.
        let _ = shared.uffd.wake(start, page);
        return;
    }
    shared.state[i].fetch_or(DIRTY, Ordering::AcqRel);
    if let Err(e) = shared.uffd.writeprotect(start, page, false) {
        shared
            .errors
            .writeback_failed(format!("UFFDIO_WRITEPROTECT: {e}"));
        let _ = shared.uffd.wake(start, page);
    }
}

/// Write the dirty pages back to the source (clipped at its length), write-protect them
/// again, then `sync` the source. The caller guarantees no thread writes the region
/// meanwhile (writes need `&mut Pager`).
pub(crate) fn flush(shared: &Shared, len: usize) -> Result<()> {
    let _one = shared.flushing.lock().unwrap_or_else(|p| p.into_inner());
    // No eviction while pages are cleaned and copied out.
    let _evict = shared.evict_lock();
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
pub(crate) fn write_back_page(shared: &Shared, i: usize) -> bool {
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
        shared.errors.writeback_failed(e);
        let _ = shared.uffd.writeprotect(start, page, false);
        return false;
    }
    shared.state[i].fetch_and(!DIRTY, Ordering::AcqRel);
    let c = &shared.counters;
    c.writebacks.fetch_add(1, Ordering::Relaxed);
    c.bytes_written.fetch_add(n as u64, Ordering::Relaxed);
    true
}
