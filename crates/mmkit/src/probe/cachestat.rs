//! `cachestat(2)` (Linux 6.5+): page-cache state of a file range, counted by the kernel.

use std::os::fd::{AsFd, AsRawFd};

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

#[repr(C)]
struct Range {
    off: u64,
    len: u64,
}

#[repr(C)]
#[derive(Default)]
struct Raw {
    cache: u64,
    dirty: u64,
    writeback: u64,
    evicted: u64,
    recently_evicted: u64,
}

/// `cachestat(2)` on `len` bytes at `off` of `file` (`len` 0: to the end).
///
/// <https://man7.org/linux/man-pages/man2/cachestat.2.html>
///
/// # Errors
/// `ENOSYS` before Linux 6.5; `EBADF` for a descriptor without a page cache.
pub fn cachestat(file: impl AsFd, off: u64, len: u64) -> Result<CacheStat> {
    const SYS_CACHESTAT: libc::c_long = 451;
    let range = Range { off, len };
    let mut raw = Raw::default();
    // SAFETY: the kernel reads `range` and writes `raw`, both live repr(C) structs of the
    // layout the syscall defines; flags must be 0.
    let rc = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_fd().as_raw_fd(),
            &range as *const Range,
            &mut raw as *mut Raw,
            0,
        )
    };
    if rc != 0 {
        let errno = crate::error::errno_of(&std::io::Error::last_os_error());
        let e = Error::os(Op::Probe, errno).at(off, len);
        return Err(if errno == rustix::io::Errno::NOSYS {
            e.hint("cachestat needs Linux 6.5 or later")
        } else {
            e
        });
    }
    Ok(CacheStat {
        cached: raw.cache,
        dirty: raw.dirty,
        writeback: raw.writeback,
        evicted: raw.evicted,
        recently_evicted: raw.recently_evicted,
    })
}
