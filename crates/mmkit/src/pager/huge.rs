//! Huge pages for a pager's region: what it is made of ([`Backing`]), chosen at `build`
//! from what was asked ([`HugePages`]) and what the machine has, with a reason whenever
//! a huge page kind was asked and 4 KiB pages are used instead.
//!
//! With 2 MiB pages the handler machinery is unchanged: one state byte, one fault, one
//! fill and one read-ahead step per *page*, which is now 2 MiB, so the fixed costs of a
//! fill (the fault's round trip, a page allocation, the page-table entry) are paid 512
//! times less often.
//!
//! - **hugetlb**: the region is `MAP_HUGETLB` memory from the pool (`vm.nr_hugepages`),
//!   reserved in full at `build` (a pool too small is a clean fallback, never a SIGBUS
//!   later); a fill reads the source into the handler's buffer and `UFFDIO_COPY`s the
//!   2 MiB in.
//! - **THP**: the region is private anonymous memory with `MADV_HUGEPAGE`; a fill reads
//!   the source into a 2 MiB-aligned buffer the kernel backs with a transparent huge
//!   page, then *moves* that page into the region with `UFFDIO_MOVE` (Linux 6.8): its
//!   page-table entry changes hands and nothing is copied; the buffer gets a fresh huge
//!   page on its next fill.
//!
//! Huge pages are for reading: a pager with a budget (eviction works page by page) or
//! over a writable source (write-back tracks dirty 4 KiB pages) uses 4 KiB pages. A
//! random access reads a whole 2 MiB page from the source.
//!
//! # Safety
//!
//! Maps the region (and reserves it page-aligned), and unmaps it when its [`Region`] is
//! dropped. (Pages are installed into it by `fill.rs`.)
#![allow(unsafe_code)]

use std::ptr::NonNull;

use rustix::mm::{MapFlags, ProtFlags};

use crate::error::{Error, Op, Result};
use crate::sys::uffd::FEATURE_MOVE;

/// The huge page size the pager uses: the PMD size of x86-64 and arm64 with 4 KiB base
/// pages.
pub(crate) const HUGE: usize = 2 << 20;

/// Which pages to build a pager's region from ([`PagerOptions::huge_pages`]).
///
/// [`PagerOptions::huge_pages`]: super::PagerOptions::huge_pages
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum HugePages {
    /// 4 KiB pages (the default): a random access reads 4 KiB.
    #[default]
    Off,
    /// hugetlb pages when the pool has room for the region, else transparent huge pages
    /// when the kernel has them and `UFFDIO_MOVE`, else 4 KiB pages.
    Auto,
    /// 2 MiB pages of the hugetlb pool, else 4 KiB pages.
    Hugetlb,
    /// Transparent huge pages moved in with `UFFDIO_MOVE`, else 4 KiB pages.
    Thp,
}

/// What a built pager's region is made of (see [`Pager::backing`](super::Pager::backing)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Backing {
    /// Base pages (4 KiB), copied in with `UFFDIO_COPY`.
    Base,
    /// 2 MiB hugetlb pages, copied in with `UFFDIO_COPY`.
    Hugetlb,
    /// 2 MiB transparent huge pages, moved in with `UFFDIO_MOVE`.
    Thp,
}

impl Backing {
    /// `4 KiB pages`, `hugetlb 2 MiB pages`, `THP 2 MiB pages (UFFDIO_MOVE)`.
    pub fn describe(self) -> &'static str {
        match self {
            Backing::Base => "4 KiB pages",
            Backing::Hugetlb => "hugetlb 2 MiB pages",
            Backing::Thp => "THP 2 MiB pages (UFFDIO_MOVE)",
        }
    }
}

/// The reserved memory of a pager, unmapped on drop.
#[derive(Debug)]
pub(crate) struct Region {
    pub(crate) ptr: NonNull<u8>,
    pub(crate) len: usize,
}

impl Region {
    /// Name the region `mmkit pager` in `/proc/PID/maps`; best effort: a kernel without
    /// `CONFIG_ANON_VMA_NAME` refuses, and the region stays unnamed.
    pub(crate) fn name(&self) {
        // SAFETY: the range is our own mapping; naming changes no memory.
        let _ = unsafe { crate::sys::set_anon_name(self.ptr.as_ptr(), self.len, c"mmkit pager") };
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: our own mapping; whoever owns the region drops it only once no borrow
        // of it is live and no handler thread runs.
        let _ = unsafe { crate::sys::munmap(self.ptr, self.len) };
    }
}

/// A reserved region and how it is made.
pub(crate) struct Reserved {
    pub(crate) region: Region,
    pub(crate) page: usize,
    pub(crate) backing: Backing,
    /// Why a huge page kind asked for is not used.
    pub(crate) note: Option<String>,
}

/// The userfaultfd features a pager asking for `want` needs beyond `UFFDIO_POISON`.
pub(crate) fn features(want: HugePages) -> u64 {
    match want {
        HugePages::Auto | HugePages::Thp => FEATURE_MOVE,
        _ => 0,
    }
}

/// Reserve the region for `len` bytes (non-zero): huge pages as `want` asks where
/// `plain` (no budget, a read-only source) and the machine allows, else base pages.
///
/// # Errors
/// The base-page mapping failed (`ENOMEM`).
pub(crate) fn reserve(
    want: HugePages,
    len: usize,
    plain: std::result::Result<(), &'static str>,
    granted: u64,
) -> Result<Reserved> {
    let tries: &[Backing] = match want {
        HugePages::Off => &[],
        HugePages::Auto => &[Backing::Hugetlb, Backing::Thp],
        HugePages::Hugetlb => &[Backing::Hugetlb],
        HugePages::Thp => &[Backing::Thp],
    };
    let mut why = Vec::new();
    match plain {
        Err(reason) if !tries.is_empty() => why.push(reason.to_string()),
        _ => {
            for &backing in tries {
                match try_huge(backing, len, granted) {
                    Ok(r) => return Ok(r),
                    Err(reason) => why.push(reason),
                }
            }
        }
    }
    let page = crate::sys::page_size();
    let mapped = len.next_multiple_of(page);
    // SAFETY: a fresh anonymous mapping, no hint; length non-zero.
    let ptr = unsafe {
        crate::sys::mmap(
            std::ptr::null_mut(),
            mapped,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE | MapFlags::NORESERVE,
            None,
            0,
        )
    }
    .map_err(|e| Error::os(Op::Map, e).at(0, mapped as u64))?;
    Ok(Reserved {
        region: Region { ptr, len: mapped },
        page,
        backing: Backing::Base,
        note: (!why.is_empty()).then(|| why.join("; ")),
    })
}

fn try_huge(backing: Backing, len: usize, granted: u64) -> std::result::Result<Reserved, String> {
    let mapped = len
        .checked_next_multiple_of(HUGE)
        .ok_or_else(|| "too large for 2 MiB pages".to_string())?;
    let rw = ProtFlags::READ | ProtFlags::WRITE;
    let region = match backing {
        Backing::Hugetlb => {
            // Reserved in full now (no MAP_NORESERVE): a pool too small fails here.
            let ptr = crate::sys::map_anon_aligned(
                mapped,
                HUGE,
                rw,
                MapFlags::PRIVATE | MapFlags::HUGETLB,
            )
            .map_err(|e| {
                // Free pages include those other mappings reserved and not touched.
                let free = crate::proc::meminfo("HugePages_Free").unwrap_or(0);
                let reserved = crate::proc::meminfo("HugePages_Rsvd").unwrap_or(0);
                let taken = match reserved.min(free) {
                    0 => String::new(),
                    r => format!(" ({r} more reserved by other mappings)"),
                };
                format!(
                    "the hugetlb pool has {} free 2 MiB pages{taken}, {} needed ({e}; \
                         raise vm.nr_hugepages)",
                    free - reserved.min(free),
                    mapped / HUGE
                )
            })?;
            Region { ptr, len: mapped }
        }
        Backing::Thp => {
            if granted & FEATURE_MOVE == 0 {
                return Err("this kernel has no UFFDIO_MOVE (Linux 6.8+)".into());
            }
            let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
                .map_err(|_| "this kernel has no transparent huge pages".to_string())?;
            if mode.contains("[never]") {
                return Err("transparent huge pages are [never] on this machine".into());
            }
            let flags = MapFlags::PRIVATE | MapFlags::NORESERVE;
            let ptr = crate::sys::map_anon_aligned(mapped, HUGE, rw, flags)
                .map_err(|e| format!("cannot reserve {mapped} aligned bytes: {e}"))?;
            // Owned at once, so a refused advice unmaps it.
            let region = Region { ptr, len: mapped };
            // SAFETY: the range is the mapping just made; advice changes no contents.
            unsafe { crate::sys::madvise(ptr.as_ptr(), mapped, rustix::mm::Advice::LinuxHugepage) }
                .map_err(|e| format!("MADV_HUGEPAGE: {e}"))?;
            region
        }
        Backing::Base => unreachable!("base pages are not tried"),
    };
    Ok(Reserved {
        region,
        page: HUGE,
        backing,
        note: None,
    })
}
