//! Memory management: `mmap`, `munmap`, `msync`, `mprotect`, `madvise`, `mlock`,
//! `munlock`, `mincore`, `mremap`, and naming an anonymous range (`prctl(PR_SET_VMA)`).
//!
//! `rustix` makes the calls it has; `libc` makes `mincore` and `prctl(PR_SET_VMA)`.
//!
//! All functions that take an address are `unsafe`: the caller promises the range is a
//! mapping it owns (or, for `mmap` with a hint, that nothing of its own lives there).

use std::os::fd::BorrowedFd;
use std::ptr::NonNull;

use rustix::io::Errno;

use super::errno::last_errno;
use super::page_size;
use rustix::mm::{self, MapFlags, MlockFlags, MprotectFlags, MremapFlags, MsyncFlags, ProtFlags};

/// `mmap(2)`: map `len` bytes of `fd` at `offset`, or anonymous memory when `fd` is `None`.
///
/// <https://man7.org/linux/man-pages/man2/mmap.2.html>
///
/// # Errors
/// `ENOMEM` (address space, overcommit, hugetlb pool), `EACCES`, `ENODEV`, `EINVAL`, …
///
/// # Safety
/// `len` is non-zero. With `MAP_FIXED` in `flags`, nothing the program still uses may live at
/// `hint` (the kernel replaces it).
pub(crate) unsafe fn mmap(
    hint: *mut u8,
    len: usize,
    prot: ProtFlags,
    flags: MapFlags,
    fd: Option<BorrowedFd<'_>>,
    offset: u64,
) -> Result<NonNull<u8>, Errno> {
    debug_assert!(len > 0);
    let ptr = match fd {
        // SAFETY: forwarded from the caller; a file mapping with a hint is only a hint.
        Some(fd) => unsafe { mm::mmap(hint.cast(), len, prot, flags, fd, offset)? },
        // SAFETY: as above, for anonymous memory.
        None => unsafe { mm::mmap_anonymous(hint.cast(), len, prot, flags)? },
    };
    Ok(NonNull::new(ptr.cast()).expect("mmap returned NULL without MAP_FIXED at 0"))
}

/// Anonymous memory of `len` bytes starting at a multiple of `align` (a power of two,
/// more than a page): `mmap(2)` a `PROT_NONE` reservation `align` bytes larger, map over
/// its aligned part with `MAP_FIXED`, and unmap the head and tail left over.
///
/// # Errors
/// As [`mmap`] (`ENOMEM`, `EINVAL`).
pub(crate) fn map_anon_aligned(
    len: usize,
    align: usize,
    prot: ProtFlags,
    flags: MapFlags,
) -> Result<NonNull<u8>, Errno> {
    let reserve = len.checked_add(align).ok_or(Errno::NOMEM)?;
    // SAFETY: a fresh PROT_NONE reservation, no hint; `reserve` is non-zero.
    let r = unsafe {
        mmap(
            std::ptr::null_mut(),
            reserve,
            ProtFlags::empty(),
            MapFlags::PRIVATE | MapFlags::NORESERVE,
            None,
            0,
        )?
    };
    let start = (r.as_ptr() as usize).next_multiple_of(align);
    let head = start - r.as_ptr() as usize;
    // SAFETY: `start..start+len` lies in our reservation, so MAP_FIXED replaces only it.
    let p = unsafe {
        mmap(
            start as *mut u8,
            len,
            prot,
            flags | MapFlags::FIXED,
            None,
            0,
        )
    };
    if p.is_err() {
        // SAFETY: the whole reservation is ours and nothing was mapped over it.
        let _ = unsafe { munmap(r, reserve) };
        return p;
    }
    // SAFETY: unmap the unused head and tail of our own reservation.
    unsafe {
        if head > 0 {
            let _ = munmap(r, head);
        }
        let tail = reserve - head - len;
        if tail > 0 {
            let _ = munmap(NonNull::new_unchecked((start + len) as *mut u8), tail);
        }
    }
    p
}

/// `munmap(2)`: remove the mapping of `[ptr, ptr+len)`.
///
/// <https://man7.org/linux/man-pages/man2/munmap.2.html>
///
/// # Errors
/// `EINVAL` for a range that is not page-aligned.
///
/// # Safety
/// The range belongs to a mapping the caller owns, and nothing refers into it afterwards.
pub(crate) unsafe fn munmap(ptr: NonNull<u8>, len: usize) -> Result<(), Errno> {
    // SAFETY: forwarded from the caller.
    unsafe { mm::munmap(ptr.as_ptr().cast(), len) }
}

/// `msync(2)` with `MS_SYNC` or `MS_ASYNC`.
///
/// <https://man7.org/linux/man-pages/man2/msync.2.html>
///
/// # Errors
/// `ENOMEM` when the range is not mapped, `EIO` when write-back failed.
///
/// # Safety
/// `ptr` is page-aligned and the range lies in a mapping the caller owns.
pub(crate) unsafe fn msync(ptr: *mut u8, len: usize, sync: bool) -> Result<(), Errno> {
    let flags = if sync {
        MsyncFlags::SYNC
    } else {
        MsyncFlags::ASYNC
    };
    // SAFETY: forwarded from the caller; msync does not change memory contents.
    unsafe { mm::msync(ptr.cast(), len, flags) }
}

/// `mprotect(2)`.
///
/// <https://man7.org/linux/man-pages/man2/mprotect.2.html>
///
/// # Errors
/// `EACCES` when the file was not opened for the access asked, `ENOMEM`.
///
/// # Safety
/// The range lies in a mapping the caller owns, and no reference into it relies on an
/// access the new protection removes.
pub(crate) unsafe fn mprotect(ptr: *mut u8, len: usize, prot: MprotectFlags) -> Result<(), Errno> {
    // SAFETY: forwarded from the caller.
    unsafe { mm::mprotect(ptr.cast(), len, prot) }
}

/// `madvise(2)`.
///
/// <https://man7.org/linux/man-pages/man2/madvise.2.html>
///
/// # Errors
/// `EINVAL` for advice this mapping does not take, `EAGAIN`, `ENOMEM`.
///
/// # Safety
/// The range lies in a mapping the caller owns; for advice that discards contents
/// (`DONTNEED`, `FREE`, `REMOVE`) no reference into the range is live.
pub(crate) unsafe fn madvise(ptr: *mut u8, len: usize, advice: mm::Advice) -> Result<(), Errno> {
    // SAFETY: forwarded from the caller.
    unsafe { mm::madvise(ptr.cast(), len, advice) }
}

/// `mlock(2)`, or `mlock2(2)` with `MLOCK_ONFAULT` when `on_fault`.
///
/// <https://man7.org/linux/man-pages/man2/mlock.2.html>
///
/// # Errors
/// `ENOMEM` or `EPERM` over `RLIMIT_MEMLOCK`, `EAGAIN`.
///
/// # Safety
/// The range lies in a mapping the caller owns.
#[doc(alias = "mlock2")]
pub(crate) unsafe fn mlock(ptr: *mut u8, len: usize, on_fault: bool) -> Result<(), Errno> {
    if on_fault {
        // SAFETY: forwarded from the caller; locking never changes contents.
        unsafe { mm::mlock_with(ptr.cast(), len, MlockFlags::ONFAULT) }
    } else {
        // SAFETY: as above.
        unsafe { mm::mlock(ptr.cast(), len) }
    }
}

/// `munlock(2)`.
///
/// <https://man7.org/linux/man-pages/man2/munlock.2.html>
///
/// # Errors
/// `ENOMEM` when the range is not mapped.
///
/// # Safety
/// The range lies in a mapping the caller owns.
pub(crate) unsafe fn munlock(ptr: *mut u8, len: usize) -> Result<(), Errno> {
    // SAFETY: forwarded from the caller.
    unsafe { mm::munlock(ptr.cast(), len) }
}

/// `mincore(2)`: one byte per page, bit 0 set when the page is resident.
///
/// <https://man7.org/linux/man-pages/man2/mincore.2.html>
///
/// # Errors
/// `ENOMEM` when the range is not mapped, `EINVAL` when `ptr` is unaligned.
///
/// # Safety
/// `ptr` is page-aligned and the range lies in a mapping the caller owns.
pub(crate) unsafe fn mincore(ptr: *mut u8, len: usize) -> Result<Vec<u8>, Errno> {
    let pages = len.div_ceil(page_size());
    let mut vec = vec![0u8; pages];
    // SAFETY: `vec` has one byte for each page of the range, as mincore writes.
    let rc = unsafe { libc::mincore(ptr.cast(), len, vec.as_mut_ptr()) };
    if rc != 0 {
        return Err(last_errno());
    }
    Ok(vec)
}

/// `mremap(2)`: grow or shrink a mapping; with `may_move` the kernel may move it.
///
/// <https://man7.org/linux/man-pages/man2/mremap.2.html>
///
/// # Errors
/// `ENOMEM` when the mapping cannot grow in place (without `may_move`), `EFAULT`.
///
/// # Safety
/// `[ptr, ptr+old_len)` is a whole mapping the caller owns; when `may_move`, nothing may
/// refer to the old address afterwards.
pub(crate) unsafe fn mremap(
    ptr: NonNull<u8>,
    old_len: usize,
    new_len: usize,
    may_move: bool,
) -> Result<NonNull<u8>, Errno> {
    let flags = if may_move {
        MremapFlags::MAYMOVE
    } else {
        MremapFlags::empty()
    };
    // SAFETY: forwarded from the caller.
    let p = unsafe { mm::mremap(ptr.as_ptr().cast(), old_len, new_len, flags)? };
    Ok(NonNull::new(p.cast()).expect("mremap returned NULL"))
}

/// `prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, …)`: name an anonymous range in `/proc/PID/maps`.
///
/// <https://man7.org/linux/man-pages/man2/PR_SET_VMA.2const.html>
///
/// # Errors
/// `EINVAL` for a file mapping or a kernel without `CONFIG_ANON_VMA_NAME`.
///
/// # Safety
/// The range lies in a mapping the caller owns.
#[doc(alias = "prctl")]
pub(crate) unsafe fn set_anon_name(
    ptr: *mut u8,
    len: usize,
    name: &std::ffi::CStr,
) -> Result<(), Errno> {
    const PR_SET_VMA: libc::c_int = 0x5356_4d41;
    const PR_SET_VMA_ANON_NAME: libc::c_ulong = 0;
    // SAFETY: prctl reads `name` (NUL-terminated, alive for the call) and the kernel checks
    // the range; naming changes no memory.
    let rc = unsafe {
        libc::prctl(
            PR_SET_VMA,
            PR_SET_VMA_ANON_NAME,
            ptr as libc::c_ulong,
            len,
            name.as_ptr(),
        )
    };
    if rc != 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// `mmap(2)` with `MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS`: replace `[addr, addr+len)` by
/// readable, writable zero pages.
///
/// Async-signal-safe: a raw syscall through `rustix`, no allocation, no lock, no `errno`.
///
/// <https://man7.org/linux/man-pages/man2/mmap.2.html>
///
/// # Errors
/// `ENOMEM` when the kernel cannot make the mapping.
///
/// # Safety
/// Nothing the program still relies on lives in the range: its pages are replaced.
#[doc(alias = "mmap")]
pub(crate) unsafe fn mmap_fixed_zeroes(addr: usize, len: usize) -> Result<(), Errno> {
    // SAFETY: forwarded from the caller.
    unsafe {
        mm::mmap_anonymous(
            addr as *mut std::ffi::c_void,
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE | MapFlags::FIXED,
        )
    }
    .map(|_| ())
}
