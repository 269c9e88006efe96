//! [`Bounce`]: the page-aligned buffer each handler and prefetch thread reads the source
//! into before the pages are installed (`UFFDIO_COPY` wants whole pages).
//!
//! # Safety
//!
//! The buffer is a private anonymous mapping made and unmapped through `sys`, lent out
//! as a slice by `&mut` and sent to its thread by hand.
#![allow(unsafe_code)]

use std::ptr::NonNull;

use super::huge::{Backing, HUGE};

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
