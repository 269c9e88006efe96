//! `cachestat(2)` (Linux 6.5+): page-cache state of a file range, counted by the kernel.

use std::os::fd::AsFd;

use crate::error::{Error, Op, Result};

/// Page-cache counts of a file range, in pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct CacheStat {
    /// Pages in the page cache.
    pub cached: u64,
    /// Cached pages that are dirty.
    pub dirty: u64,
    /// Pages under write-back.
    pub writeback: u64,
    /// Pages evicted recently (their shadow entries remain).
    pub evicted: u64,
    /// Pages evicted recently that would still be cached with more memory.
    pub recently_evicted: u64,
}

/// `cachestat(2)` on `len` bytes at `off` of `file` (`len` 0: to the end).
///
/// <https://man7.org/linux/man-pages/man2/cachestat.2.html>
///
/// # Errors
/// `ENOSYS` before Linux 6.5; `EBADF` for a descriptor without a page cache.
pub fn cachestat(file: impl AsFd, off: u64, len: u64) -> Result<CacheStat> {
    let raw = crate::sys::fs::cachestat(file.as_fd(), off, len).map_err(|errno| {
        let e = Error::os(Op::Probe, errno).at(off, len);
        if errno == rustix::io::Errno::NOSYS {
            e.hint("cachestat needs Linux 6.5 or later")
        } else {
            e
        }
    })?;
    Ok(CacheStat {
        cached: raw.cache,
        dirty: raw.dirty,
        writeback: raw.writeback,
        evicted: raw.evicted,
        recently_evicted: raw.recently_evicted,
    })
}
