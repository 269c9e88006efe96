//! A file source's bytes as a read-only shared mapping ([`SourceView`]), from which the
//! pager copies pages straight into its region: one copy (`UFFDIO_COPY` from the page
//! cache), where `pread` into a buffer and `UFFDIO_COPY` from the buffer make two.
//!
//! Only the pager reads through the view, and only inside the kernel (`UFFDIO_COPY`'s
//! source): a file truncated under it makes that copy fail with `EFAULT`, never raises
//! SIGBUS in this process, and the pager then reads the range with `pread` as before
//! (zeros past the new end, as the file source documents).
//!
//! # Safety
//!
//! Maps the file read-only and shared, unmaps it on drop; hands out only its address
//! range, as an address for the kernel to copy from, never a Rust reference.
#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::AsFd;
use std::ptr::NonNull;

use rustix::mm::{Advice, MapFlags, ProtFlags};

use super::huge::HUGE;

/// A read-only shared mapping of a file source's bytes (see the module docs). Made only
/// by the crate's own [`FileSource`](super::FileSource); other sources have none.
#[derive(Debug)]
pub struct SourceView {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is read-only and owned; only its address is shared.
unsafe impl Send for SourceView {}
// SAFETY: as above.
unsafe impl Sync for SourceView {}

impl SourceView {
    /// Map `len` bytes of `file` (non-zero); `None` when the kernel refuses (the pager
    /// then reads with `pread`).
    pub(crate) fn map(file: &File, len: u64) -> Option<SourceView> {
        let len = usize::try_from(len).ok().filter(|&l| l > 0)?;
        // SAFETY: a fresh read-only shared mapping of our own file, no hint.
        let ptr = unsafe {
            crate::sys::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ,
                MapFlags::SHARED,
                Some(file.as_fd()),
                0,
            )
        }
        .ok()?;
        if len >= HUGE {
            // SAFETY: the range is the mapping just made; advice changes no contents.
            // Large page-cache folios are then mapped whole when the kernel copies.
            let _ = unsafe { crate::sys::madvise(ptr.as_ptr(), len, Advice::LinuxHugepage) };
        }
        Some(SourceView { ptr, len })
    }

    /// The address of `len` bytes at `offset`, when they lie within the file's pages
    /// (the last page's tail past the end reads as zeros; a page wholly past it would
    /// fault), with the view's page tables for them filled in (`MADV_POPULATE_READ`,
    /// Linux 5.14).
    ///
    /// Filled in because the kernel's copy into the pager's region runs with page faults
    /// disabled: one that meets a source page not yet mapped gives up, and the kernel
    /// copies the source into a bounce page and retries. Into a hugetlb page, that copies
    /// every byte twice (measured: half the handler's copying time went to the second
    /// copy). Best effort: a kernel or file that refuses it leaves the copy to fault.
    pub(crate) fn range(&self, offset: u64, len: usize) -> Option<*const u8> {
        let pages_end = self.len.next_multiple_of(crate::sys::page_size());
        let start = usize::try_from(offset).ok()?;
        (start.checked_add(len)? <= pages_end).then(|| {
            // SAFETY: `start..start + len` is within the mapping (checked above).
            let ptr = unsafe { self.ptr.as_ptr().add(start) };
            // SAFETY: as above; populating reads the file's pages, writes nothing.
            let _ = unsafe { crate::sys::madvise(ptr, len, Advice::LinuxPopulateRead) };
            ptr.cast_const()
        })
    }
}

impl Drop for SourceView {
    fn drop(&mut self) {
        // SAFETY: our own mapping; no reference into it was ever handed out.
        let _ = unsafe { crate::sys::munmap(self.ptr, self.len) };
    }
}
