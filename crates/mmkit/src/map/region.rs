//! The owned kernel mapping under [`Mapping`](super::Mapping) and [`Memory`](super::Memory):
//! it keeps the page-aligned base, the caller's view into it (an offset need not be
//! page-aligned, so the view may start `delta` bytes in), unmaps on drop, and implements
//! each operation over a checked sub-range.
//!
//! Ranges are given in the caller's coordinates (0 is the first byte of the view). Calls
//! that cannot harm bytes outside the range (flush, advise, lock, residency) widen it to
//! whole pages; calls that change pages (protect, discard) demand page alignment.
//!
//! # Safety
//!
//! [`Region`] owns a raw mapping (base pointer and length): it is `Send`/`Sync` by
//! hand, calls the address-taking `sys` wrappers (`mprotect`, `msync`, `madvise`,
//! `mlock`, `mincore`, `mremap`, `munmap`) on ranges it has checked lie in its mapping,
//! and its `unsafe fn`s pass on what only the caller can promise (no live borrow across
//! destructive advice or a protection change).
#![allow(unsafe_code)]

use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use super::poison::{FileId, Poison};
use super::prot::ProtMap;
use super::{Advice, Discard, FlushMode, LockMode, MapKind, Protection, RemapMode, Residency};
use crate::error::{os_hint, Error, ErrorKind, Op, Result};
use crate::sys;

mod lost;

#[derive(Debug)]
pub(crate) struct Region {
    /// Page-aligned start of the kernel mapping; dangling when `map_len == 0`.
    base: NonNull<u8>,
    /// Length of the kernel mapping, a multiple of `granule`; 0 when nothing is mapped.
    map_len: usize,
    /// The caller's view starts this many bytes after `base` (`< granule`).
    delta: usize,
    /// The caller's view length; `delta + len <= map_len`.
    len: usize,
    /// Page size of the mapping (a huge page size for hugetlb mappings).
    granule: usize,
    kind: MapKind,
    huge: bool,
    path: Option<PathBuf>,
    prot: ProtMap,
    /// For file mappings: the file offset of `base`, the file's identity and seals.
    file: Option<FileInfo>,
    /// Pages lost to a truncation and replaced by the guard.
    poison: Poison,
}

/// Where a file mapping's pages come from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileInfo {
    /// File offset of the mapping's first page.
    pub(crate) offset: u64,
    pub(crate) id: FileId,
    /// The file may shrink (no `F_SEAL_SHRINK`): accesses need the SIGBUS guard.
    pub(crate) can_shrink: bool,
    /// Sealed against shrinking and writing (`F_SEAL_SHRINK | F_SEAL_WRITE`): the bytes
    /// can never change, so slices of them are safe.
    pub(crate) frozen: bool,
}

// SAFETY: a Region owns its mapping exclusively (like a Box<[u8]>); the raw pointer is not
// shared with anything that is tied to one thread.
unsafe impl Send for Region {}
// SAFETY: `&Region` only permits reads of the mapping and syscalls that do not change its
// contents; writes need `&mut`.
unsafe impl Sync for Region {}

/// What [`Region::from_raw`] needs to adopt a fresh kernel mapping.
pub(crate) struct RawParts {
    pub(crate) base: Option<NonNull<u8>>,
    pub(crate) map_len: usize,
    pub(crate) delta: usize,
    pub(crate) len: usize,
    pub(crate) granule: usize,
    pub(crate) kind: MapKind,
    pub(crate) huge: bool,
    pub(crate) path: Option<PathBuf>,
    pub(crate) prot: Protection,
    pub(crate) file: Option<FileInfo>,
}

impl Region {
    /// Adopt a mapping made by `sys::mmap` (or nothing, for an empty view).
    ///
    /// # Safety
    /// When `base` is `Some`, `[base, base+map_len)` is a mapping this region now owns and
    /// unmaps on drop, with protection `prot`.
    pub(crate) unsafe fn from_raw(p: RawParts) -> Region {
        debug_assert!(p.delta + p.len <= p.map_len || p.map_len == 0);
        Region {
            base: p.base.unwrap_or(NonNull::dangling()),
            map_len: p.map_len,
            delta: p.delta,
            len: p.len,
            granule: p.granule,
            kind: p.kind,
            huge: p.huge,
            path: p.path,
            prot: ProtMap::new(p.map_len / p.granule.max(1), p.prot),
            file: p.file,
            poison: Poison::default(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn kind(&self) -> MapKind {
        self.kind
    }

    pub(crate) fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The mapped file's identity, for a file mapping.
    #[cfg(feature = "shm")]
    pub(crate) fn file_id(&self) -> Option<FileId> {
        self.file.map(|f| f.id)
    }

    /// Whether accesses need the SIGBUS guard: a file mapping whose file can shrink.
    #[inline]
    pub(crate) fn needs_guard(&self) -> bool {
        self.file.is_some_and(|f| f.can_shrink)
    }

    /// Whether the bytes can never change (a memfd sealed against shrinking and writing).
    pub(crate) fn frozen(&self) -> bool {
        self.file.is_some_and(|f| f.frozen)
    }

    pub(crate) fn granule(&self) -> usize {
        self.granule
    }

    /// Pointer to the first byte of the view (dangling but aligned when empty).
    #[inline]
    pub(crate) fn ptr(&self) -> *mut u8 {
        if self.map_len == 0 {
            return NonNull::dangling().as_ptr();
        }
        // SAFETY: delta < map_len, so the result stays inside the mapping.
        unsafe { self.base.as_ptr().add(self.delta) }
    }

    pub(crate) fn err(&self, op: Op, kind: ErrorKind, off: usize, len: usize) -> Error {
        Error::new(op, kind)
            .with_path(self.path())
            .at(off as u64, len as u64)
    }

    fn os_err(&self, op: Op, errno: rustix::io::Errno, off: usize, len: usize) -> Error {
        let e = Error::os(op, errno)
            .with_path(self.path())
            .at(off as u64, len as u64);
        match os_hint(op, errno.raw_os_error(), self.huge) {
            Some(h) => e.hint(h),
            None => e,
        }
    }

    /// Check that `[off, off+len)` lies in the view.
    #[inline]
    pub(crate) fn check(&self, op: Op, off: usize, len: usize) -> Result<()> {
        match off.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(self.range_err(op, off, len)),
        }
    }

    /// Why [`check`](Self::check) refused a range: out of line, so that the check every
    /// access inlines is a comparison and a branch.
    #[cold]
    #[inline(never)]
    fn range_err(&self, op: Op, off: usize, len: usize) -> Error {
        match off.checked_add(len) {
            Some(_) => self
                .err(op, ErrorKind::OutOfRange, off, len)
                .detail(format!("range ends past the mapping's {} bytes", self.len)),
            None => self.err(op, ErrorKind::LengthOverflow, off, len),
        }
    }

    /// The range as whole pages: (page-aligned pointer, length, first page, end page).
    ///
    /// Every access runs this: the granule (a page or huge page size) is a power of two,
    /// so pages are counted with shifts and masks, not divisions (a 64-bit `div` is tens
    /// of cycles, and four of them were a third of a 16-byte log append).
    #[inline]
    fn widen(&self, off: usize, len: usize) -> (*mut u8, usize, usize, usize) {
        debug_assert!(self.granule.is_power_of_two());
        let shift = self.granule.trailing_zeros();
        let mask = self.granule - 1;
        let start = (self.delta + off) & !mask;
        let end = ((self.delta + off + len + mask) & !mask).min(self.map_len);
        // SAFETY: start <= map_len, inside (or one past) the mapping.
        let ptr = unsafe { self.base.as_ptr().add(start) };
        (ptr, end - start, start >> shift, end >> shift)
    }

    /// As `widen`, but the range must already start on a page and end on a page or at the
    /// end of the view.
    fn exact(&self, op: Op, off: usize, len: usize) -> Result<(*mut u8, usize, usize, usize)> {
        self.check(op, off, len)?;
        let start = self.delta + off;
        let end = start + len;
        // The view's own ends count as aligned: the bytes between them and the page
        // boundary belong to this mapping but are outside the view.
        let start_ok = start % self.granule == 0 || off == 0;
        let end_ok = end % self.granule == 0 || off + len == self.len;
        if !(start_ok && end_ok) {
            let e = self.err(op, ErrorKind::Unaligned, off, len);
            return Err(e.hint(format!(
                "use offsets that are multiples of {} bytes from the page-aligned start{}",
                self.granule,
                if self.delta > 0 {
                    format!(" (this view starts {} bytes into a page)", self.delta)
                } else {
                    String::new()
                }
            )));
        }
        Ok(self.widen(off, len))
    }

    /// Whether every page touched by `[off, off+len)` allows `need`.
    #[inline]
    pub(crate) fn allows(&self, off: usize, len: usize, need: Protection) -> bool {
        if len == 0 {
            return true;
        }
        if let Some(only) = self.prot.uniform() {
            return only.contains(need); // one protection throughout: no pages to count
        }
        let (_, _, first, end) = self.widen(off, len);
        self.prot.allows(first, end, need)
    }

    /// Check the range lies in the view and its pages allow `need`.
    #[inline]
    pub(crate) fn check_access(
        &self,
        op: Op,
        off: usize,
        len: usize,
        need: Protection,
    ) -> Result<()> {
        self.check(op, off, len)?;
        if self.allows(off, len, need) {
            return Ok(());
        }
        Err(self.denied(op, off, len, need))
    }

    /// The error of an access the pages' protection does not allow (out of line, as
    /// [`range_err`](Self::range_err)).
    #[cold]
    #[inline(never)]
    fn denied(&self, op: Op, off: usize, len: usize, need: Protection) -> Error {
        let what = if need.contains(Protection::WRITE) {
            "writing"
        } else {
            "reading"
        };
        self.err(op, ErrorKind::Protected, off, len).detail(format!("pages do not allow {what}")).hint(
            "the mapping was made read-only or protected with protect(); protect it read-write first",
        )
    }

    /// Run `f` on a pointer to byte `off` of the view, after checking that `len` bytes
    /// there are in range, allowed by the protection, and not lost; under the SIGBUS
    /// guard for file mappings that can shrink. `f` must touch only those bytes.
    ///
    /// Inlined with everything on its path that does not fail: a copy's fixed cost is
    /// then a few compares, loads and stores around the copy itself (issue 16, item 5:
    /// as calls, this was 9 ns on top of a 5 ns 64-byte copy).
    #[inline]
    pub(crate) fn access<R>(
        &self,
        op: Op,
        off: usize,
        len: usize,
        need: Protection,
        f: impl FnOnce(*mut u8) -> R,
    ) -> Result<R> {
        self.check_access(op, off, len, need)?;
        // SAFETY: checked to lie inside the view (or be empty).
        let ptr = unsafe { self.ptr().add(off) };
        // The mark comes before the lost-page check (see `guard::mark`).
        let mark = crate::guard::mark();
        let start = self.delta + off;
        if let Some(lost) = self.poison.overlapping(start, start + len) {
            return Err(self.lost_err(op, lost, off, len));
        }
        if !self.needs_guard() || len == 0 {
            return Ok(f(ptr));
        }
        match crate::guard::guarded(ptr, len, || f(ptr)) {
            Ok(r) if crate::guard::disturbed_since(mark) => {
                self.verify_backed(ptr as usize, len)
                    .map_err(|lost| self.lost_err(op, lost, off, len))?;
                Ok(r)
            }
            Ok(r) => Ok(r),
            Err(fault) => {
                let lost = self.record_fault(fault.first, fault.end);
                crate::guard::settle(fault.patches);
                Err(self.lost_err(op, lost, off, len))
            }
        }
    }

    pub(crate) fn flush(&self, off: usize, len: usize, mode: FlushMode) -> Result<()> {
        self.check(Op::Flush, off, len)?;
        if len == 0 || !self.kind.is_file() {
            return Ok(());
        }
        let (ptr, plen, _, _) = self.widen(off, len);
        // SAFETY: a page-aligned range inside our own mapping.
        unsafe { sys::msync(ptr, plen, mode == FlushMode::Sync) }
            .map_err(|e| self.os_err(Op::Flush, e, off, len))
    }

    /// `mprotect` a page-aligned range and record the new protection.
    ///
    /// # Safety
    /// No reference into the range relies on an access `prot` removes.
    pub(crate) unsafe fn protect(
        &mut self,
        off: usize,
        len: usize,
        prot: Protection,
    ) -> Result<()> {
        let (ptr, plen, first, end) = self.exact(Op::Protect, off, len)?;
        if plen == 0 {
            return Ok(());
        }
        // SAFETY: our own page-aligned range; the caller vouches for live references.
        unsafe { sys::mprotect(ptr, plen, prot.mprotect_flags()) }
            .map_err(|e| self.os_err(Op::Protect, e, off, len))?;
        self.prot.set(first, end, prot);
        Ok(())
    }

    pub(crate) fn advise(&self, off: usize, len: usize, advice: Advice) -> Result<()> {
        self.check(Op::Advise, off, len)?;
        let (ptr, plen, _, _) = self.widen(off, len);
        if plen == 0 {
            return Ok(());
        }
        // SAFETY: our own range; safe advice does not change contents.
        unsafe { sys::madvise(ptr, plen, advice.raw()) }.map_err(|e| {
            self.os_err(Op::Advise, e, off, len)
                .detail(format!("{advice:?} refused: {e}"))
        })
    }

    /// # Safety
    /// No reference into the range is live (its contents may change).
    pub(crate) unsafe fn discard(&mut self, off: usize, len: usize, how: Discard) -> Result<()> {
        let (ptr, plen, _, _) = self.exact(Op::Advise, off, len)?;
        if plen == 0 {
            return Ok(());
        }
        // SAFETY: our own page-aligned range; the caller vouches no reference is live.
        unsafe { sys::madvise(ptr, plen, how.raw()) }.map_err(|e| {
            self.os_err(Op::Advise, e, off, len)
                .detail(format!("{how:?} refused: {e}"))
        })
    }

    pub(crate) fn lock(&self, off: usize, len: usize, mode: LockMode) -> Result<()> {
        self.check(Op::Lock, off, len)?;
        let (ptr, plen, _, _) = self.widen(off, len);
        if plen == 0 {
            return Ok(());
        }
        // SAFETY: our own range; locking does not change contents.
        unsafe { sys::mlock(ptr, plen, mode == LockMode::OnFault) }
            .map_err(|e| self.os_err(Op::Lock, e, off, len))
    }

    pub(crate) fn unlock(&self, off: usize, len: usize) -> Result<()> {
        self.check(Op::Unlock, off, len)?;
        let (ptr, plen, _, _) = self.widen(off, len);
        if plen == 0 {
            return Ok(());
        }
        // SAFETY: our own range; unlocking does not change contents.
        unsafe { sys::munlock(ptr, plen) }.map_err(|e| self.os_err(Op::Unlock, e, off, len))
    }

    pub(crate) fn residency(&self, off: usize, len: usize) -> Result<Residency> {
        self.check(Op::Residency, off, len)?;
        let (ptr, plen, _, _) = self.widen(off, len);
        if plen == 0 {
            return Ok(Residency::new(self.granule, Vec::new()));
        }
        // SAFETY: our own page-aligned range.
        let vec = unsafe { sys::mincore(ptr, plen) }
            .map_err(|e| self.os_err(Op::Residency, e, off, len))?;
        // mincore reports base pages; fold them into this mapping's pages.
        let per = self.granule / sys::page_size();
        let pages = vec
            .chunks(per.max(1))
            .map(|c| c.iter().all(|b| b & 1 == 1) as u8)
            .collect();
        Ok(Residency::new(self.granule, pages))
    }

    pub(crate) fn set_name(&self, name: &str) -> Result<()> {
        let cname = std::ffi::CString::new(name).map_err(|_| {
            self.err(Op::Name, ErrorKind::Unsupported, 0, self.len)
                .detail("the name contains a NUL byte")
        })?;
        if self.kind.is_file() {
            return Err(self
                .err(Op::Name, ErrorKind::Unsupported, 0, self.len)
                .detail("only anonymous memory can be named; a file mapping shows its path"));
        }
        if self.map_len == 0 {
            return Ok(());
        }
        // SAFETY: our own mapping; naming changes no memory.
        unsafe { sys::set_anon_name(self.base.as_ptr(), self.map_len, &cname) }.map_err(|e| {
            let err = self.os_err(Op::Name, e, 0, self.len);
            if e == rustix::io::Errno::INVAL && !self.kind.is_file() {
                return Error::new(Op::Name, ErrorKind::Unsupported)
                    .detail(format!("the kernel refused to name the region ({e})"))
                    .hint(err.hint_text().unwrap_or_default().to_string());
            }
            err
        })
    }

    /// `mremap` the view to `new_len` bytes. The caller holds `&mut`, so no reference into
    /// the old range is live; raw pointers taken before are invalid when it moves.
    pub(crate) fn remap(&mut self, new_len: usize, mode: RemapMode) -> Result<()> {
        let total = self
            .delta
            .checked_add(new_len)
            .and_then(|t| t.checked_next_multiple_of(self.granule));
        let Some(new_map_len) = total else {
            return Err(self.err(Op::Remap, ErrorKind::LengthOverflow, 0, new_len));
        };
        if new_len == 0 || self.map_len == 0 {
            return Err(self.err(Op::Remap, ErrorKind::Unsupported, 0, new_len).detail(
                "an empty mapping cannot be remapped, nor a mapping remapped to empty; map again or drop it",
            ));
        }
        if self.kind == MapKind::AnonShared && new_map_len > self.map_len {
            // Its shared memory object keeps the size it was made with: pages past it
            // would raise SIGBUS on the first touch.
            return Err(self.err(Op::Remap, ErrorKind::Unsupported, 0, new_len).detail(
                "shared anonymous memory cannot grow: its backing object keeps its size",
            ).hint("map a larger region and copy, or map a file or memfd you can grow with set_len"));
        }
        self.drop_lost_pages(new_map_len)?;
        if new_map_len != self.map_len {
            // SAFETY: `base, map_len` is our whole mapping and `&mut self` means no
            // reference into it is live.
            let p = unsafe {
                sys::mremap(
                    self.base,
                    self.map_len,
                    new_map_len,
                    mode == RemapMode::MayMove,
                )
            };
            let p = p.map_err(|e| {
                let err = self.os_err(Op::Remap, e, 0, new_len);
                if e == rustix::io::Errno::NOMEM && mode == RemapMode::InPlace {
                    return err
                        .hint("the pages after the mapping are in use: use RemapMode::MayMove");
                }
                err
            })?;
            self.base = p;
            self.map_len = new_map_len;
            self.prot
                .resize(new_map_len / self.granule, Protection::READ_WRITE);
        }
        if self.kind == MapKind::AnonPrivate && new_len > self.len {
            // mremap zero-fills new pages only; bytes past the old end in its last page
            // still hold what was there before a shrink. Grown memory reads as zeros.
            let kept_page_end = (self.delta + self.len).next_multiple_of(self.granule) - self.delta;
            let stale = kept_page_end.min(new_len) - self.len;
            // SAFETY: `[len, len+stale)` lies in the view's mapped pages; `&mut self` is
            // exclusive and the pages are writable private anonymous memory.
            unsafe { std::ptr::write_bytes(self.ptr().add(self.len), 0, stale) };
        }
        self.len = new_len;
        Ok(())
    }
}

impl Region {
    /// Before `mremap`: unmap every page lost to a truncation (and those after it), so
    /// the mapping is one file area again and can grow over the file's new pages.
    fn drop_lost_pages(&mut self, new_map_len: usize) -> Result<()> {
        let Some(first) = self.poison.first() else {
            return Ok(());
        };
        if new_map_len <= first {
            self.poison.truncate(new_map_len);
            return Ok(());
        }
        if first == 0 {
            return Err(self
                .err(Op::Remap, ErrorKind::Truncated, 0, self.len)
                .detail("every page of the mapping was lost to a truncation")
                .hint("map the file again"));
        }
        // SAFETY: `[base+first, base+map_len)` is the tail of our own mapping; `&mut self`
        // means no reference into it is live.
        unsafe {
            sys::munmap(
                NonNull::new_unchecked(self.base.as_ptr().add(first)),
                self.map_len - first,
            )
        }
        .map_err(|e| self.os_err(Op::Remap, e, first, self.map_len - first))?;
        self.map_len = first;
        self.len = self.len.min(first - self.delta);
        self.prot
            .resize(first / self.granule, Protection::READ_WRITE);
        self.poison.truncate(first);
        Ok(())
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        if self.map_len > 0 {
            // SAFETY: we own `[base, base+map_len)` and nothing outlives the region.
            // An error here (EINVAL) would mean a bug in the bookkeeping above.
            let r = unsafe { sys::munmap(self.base, self.map_len) };
            debug_assert!(r.is_ok(), "munmap failed: {r:?}");
        }
    }
}
