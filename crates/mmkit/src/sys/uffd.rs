//! Userfaultfd: opening the descriptor, and the `ioctl`s the pager makes.
//!
//! mmkit makes these calls itself (with `libc::ioctl` and the `uffdio_*` structures
//! written out below, as in `<linux/userfaultfd.h>`) rather than through the
//! `userfaultfd` crate, because the pager needs three things that crate does not give:
//! the byte count of a partial `UFFDIO_COPY` (to skip pages another thread filled),
//! `UFFDIO_POISON` (to fail a fault), and the `UFFD_USER_MODE_ONLY` fallback.
//!
//! <https://man7.org/linux/man-pages/man2/userfaultfd.2.html>,
//! <https://man7.org/linux/man-pages/man2/ioctl_userfaultfd.2.html>,
//! <https://docs.kernel.org/admin-guide/mm/userfaultfd.html>

use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use rustix::io::Errno;

use super::errno::last_errno;

/// `UFFD_API`: the API version of the handshake.
const UFFD_API: u64 = 0xAA;
/// `UFFD_USER_MODE_ONLY`: handle faults from user mode only (allowed unprivileged).
const UFFD_USER_MODE_ONLY: libc::c_int = 1;
/// `UFFD_FEATURE_POISON`: `UFFDIO_POISON` is available (Linux 6.6).
pub(crate) const FEATURE_POISON: u64 = 1 << 14;
/// `UFFD_FEATURE_MOVE` (Linux 6.8): `UFFDIO_MOVE`.
pub(crate) const FEATURE_MOVE: u64 = 1 << 16;
/// `UFFDIO_REGISTER_MODE_MISSING`.
const REGISTER_MODE_MISSING: u64 = 1;
/// `UFFDIO_REGISTER_MODE_WP`.
const REGISTER_MODE_WP: u64 = 2;
/// `UFFDIO_COPY_MODE_DONTWAKE`: install the pages without waking threads that fault on
/// them (nobody waits on pages installed ahead of the reader).
const COPY_MODE_DONTWAKE: u64 = 1;
/// `UFFDIO_COPY_MODE_WP`: install the pages write-protected.
const COPY_MODE_WP: u64 = 2;
/// `UFFDIO_WRITEPROTECT_MODE_WP`.
const WRITEPROTECT_MODE_WP: u64 = 1;
/// `UFFD_PAGEFAULT_FLAG_WP`: the fault is a write to a write-protected page.
pub(crate) const PAGEFAULT_FLAG_WP: u64 = 2;
/// `UFFD_EVENT_PAGEFAULT`.
pub(crate) const EVENT_PAGEFAULT: u8 = 0x12;

const fn ioc(dir: u64, nr: u64, size: usize) -> libc::c_ulong {
    ((dir << 30) | ((size as u64) << 16) | (0xAA << 8) | nr) as libc::c_ulong
}
const IOC_READ_WRITE: u64 = 3;
const IOC_READ: u64 = 2;

const UFFDIO_API: libc::c_ulong = ioc(IOC_READ_WRITE, 0x3F, size_of::<UffdioApi>());
const UFFDIO_REGISTER: libc::c_ulong = ioc(IOC_READ_WRITE, 0x00, size_of::<UffdioRegister>());
const UFFDIO_WAKE: libc::c_ulong = ioc(IOC_READ, 0x02, size_of::<UffdioRange>());
const UFFDIO_COPY: libc::c_ulong = ioc(IOC_READ_WRITE, 0x03, size_of::<UffdioCopy>());
const UFFDIO_ZEROPAGE: libc::c_ulong = ioc(IOC_READ_WRITE, 0x04, size_of::<UffdioZeropage>());
const UFFDIO_WRITEPROTECT: libc::c_ulong =
    ioc(IOC_READ_WRITE, 0x06, size_of::<UffdioWriteprotect>());
const UFFDIO_POISON: libc::c_ulong = ioc(IOC_READ_WRITE, 0x08, size_of::<UffdioPoison>());
const UFFDIO_MOVE: libc::c_ulong = ioc(IOC_READ_WRITE, 0x05, size_of::<UffdioMove>());
const MOVE_MODE_DONTWAKE: u64 = 1;
/// `USERFAULTFD_IOC_NEW` on `/dev/userfaultfd` (`_IO(0xAA, 0)`).
const USERFAULTFD_IOC_NEW: libc::c_ulong = ioc(0, 0x00, 0);

#[repr(C)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct UffdioRange {
    start: u64,
    len: u64,
}

#[repr(C)]
struct UffdioRegister {
    range: UffdioRange,
    mode: u64,
    ioctls: u64,
}

#[repr(C)]
struct UffdioCopy {
    dst: u64,
    src: u64,
    len: u64,
    mode: u64,
    copy: i64,
}

#[repr(C)]
struct UffdioMove {
    dst: u64,
    src: u64,
    len: u64,
    mode: u64,
    moved: i64,
}

#[repr(C)]
struct UffdioZeropage {
    range: UffdioRange,
    mode: u64,
    zeropage: i64,
}

#[repr(C)]
struct UffdioWriteprotect {
    range: UffdioRange,
    mode: u64,
}

#[repr(C)]
struct UffdioPoison {
    range: UffdioRange,
    mode: u64,
    updated: i64,
}

/// `struct uffd_msg`, reduced to the page-fault event the pager asks for.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct UffdMsg {
    pub(crate) event: u8,
    _reserved1: u8,
    _reserved2: u16,
    _reserved3: u32,
    /// `arg.pagefault.flags`.
    pub(crate) flags: u64,
    /// `arg.pagefault.address`.
    pub(crate) address: u64,
    _ptid: u64,
}

const _: () = assert!(size_of::<UffdMsg>() == 32);

/// How the descriptor was obtained, for error messages and docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opened {
    /// `userfaultfd(2)` handling kernel and user faults.
    Syscall,
    /// `/dev/userfaultfd` with `USERFAULTFD_IOC_NEW`.
    Device,
    /// `userfaultfd(2)` with `UFFD_USER_MODE_ONLY`: faults the kernel takes on the region
    /// (a `read(2)` into it, say) fail with `EFAULT` instead of being served.
    UserModeOnly,
}

/// A userfaultfd after the API handshake.
#[derive(Debug)]
pub(crate) struct Uffd {
    fd: OwnedFd,
    /// Features the kernel granted.
    pub(crate) features: u64,
    pub(crate) opened: Opened,
}

/// `ioctl(2)`: `ioctl(fd, req, arg)`, `Err(errno)` on -1.
///
/// <https://man7.org/linux/man-pages/man2/ioctl.2.html>
///
/// # Errors
/// The errno the ioctl sets.
///
/// # Safety
/// `arg` points to the structure `req` expects, valid for reads and writes.
unsafe fn ioctl<T>(fd: RawFd, req: libc::c_ulong, arg: *mut T) -> Result<(), Errno> {
    // SAFETY: forwarded from the caller.
    let rc = unsafe { libc::ioctl(fd, req, arg) };
    if rc == -1 {
        return Err(last_errno());
    }
    Ok(())
}

impl Uffd {
    /// Open a userfaultfd (`O_CLOEXEC | O_NONBLOCK`): `userfaultfd(2)`; on failure,
    /// `/dev/userfaultfd` with `USERFAULTFD_IOC_NEW`; failing that, when
    /// `user_mode_only`, `userfaultfd(2)` with `UFFD_USER_MODE_ONLY`. Then the
    /// `UFFDIO_API` handshake asking for `want` features (those the kernel lacks are
    /// left out, not refused).
    ///
    /// <https://man7.org/linux/man-pages/man2/userfaultfd.2.html>
    ///
    /// # Errors
    /// The errno of the first attempt when all fail (`EPERM` without
    /// `vm.unprivileged_userfaultfd`, `ENOSYS`), or of the handshake.
    #[doc(alias = "userfaultfd")]
    #[doc(alias = "UFFDIO_API")]
    pub(crate) fn open(want: u64, user_mode_only: bool) -> Result<Uffd, Errno> {
        let flags = libc::O_CLOEXEC | libc::O_NONBLOCK;
        let (fd, opened) = match sys_userfaultfd(flags) {
            Ok(fd) => (fd, Opened::Syscall),
            Err(first) => match dev_userfaultfd(flags) {
                Ok(fd) => (fd, Opened::Device),
                Err(_) if user_mode_only => match sys_userfaultfd(flags | UFFD_USER_MODE_ONLY) {
                    Ok(fd) => (fd, Opened::UserModeOnly),
                    Err(_) => return Err(first),
                },
                Err(_) => return Err(first),
            },
        };
        // The API is set once per descriptor: ask for `want`; a kernel lacking one of
        // them refuses with EINVAL, and a new descriptor asks for none.
        let features = match api(&fd, want) {
            Ok(f) => f,
            // Without `UFFDIO_MOVE` (before 6.8), ask again for the rest.
            Err(Errno::INVAL) if want & FEATURE_MOVE != 0 => {
                drop(fd);
                return Uffd::open(want & !FEATURE_MOVE, user_mode_only);
            }
            Err(Errno::INVAL) if want != 0 => {
                drop(fd);
                return Uffd::open(0, user_mode_only);
            }
            Err(e) => return Err(e),
        };
        Ok(Uffd {
            fd,
            features,
            opened,
        })
    }

    /// `UFFDIO_REGISTER` `[start, start+len)` in missing mode, and write-protect mode
    /// too when `wp`.
    ///
    /// <https://man7.org/linux/man-pages/man2/ioctl_userfaultfd.2.html>
    ///
    /// # Errors
    /// The ioctl's errno (`EINVAL` for a range not registered on this descriptor, `ENOENT`, …).
    #[doc(alias = "UFFDIO_REGISTER")]
    pub(crate) fn register(&self, start: usize, len: usize, wp: bool) -> Result<(), Errno> {
        let mut reg = UffdioRegister {
            range: UffdioRange {
                start: start as u64,
                len: len as u64,
            },
            mode: REGISTER_MODE_MISSING | if wp { REGISTER_MODE_WP } else { 0 },
            ioctls: 0,
        };
        // SAFETY: `reg` is the structure UFFDIO_REGISTER reads and writes.
        unsafe { ioctl(self.fd.as_raw_fd(), UFFDIO_REGISTER, &mut reg) }
    }

    /// `UFFDIO_COPY`: copy `len` bytes at `src` into `dst` (page-aligned, registered),
    /// waking the threads that fault on it unless `wake` is false
    /// (`UFFDIO_COPY_MODE_DONTWAKE`); with `wp` the pages start write-protected.
    ///
    /// Returns how many bytes were copied: all of them, or fewer when a page of the
    /// range was already present (`EEXIST` after a partial copy), in which case the
    /// caller skips that page and goes on. `Err(EEXIST)` when the first page was present.
    ///
    /// <https://man7.org/linux/man-pages/man2/ioctl_userfaultfd.2.html>
    ///
    /// # Errors
    /// The ioctl's errno (`EINVAL` for a range not registered on this descriptor, `ENOENT`, …).
    ///
    /// # Safety
    /// `src` is valid for reading `len` bytes; `dst` lies in a range registered on this
    /// descriptor, whose missing pages nothing else relies on staying missing.
    #[doc(alias = "UFFDIO_COPY")]
    pub(crate) unsafe fn copy(
        &self,
        dst: usize,
        src: *const u8,
        len: usize,
        wp: bool,
        wake: bool,
    ) -> Result<usize, Errno> {
        let mode = if wp { COPY_MODE_WP } else { 0 } | if wake { 0 } else { COPY_MODE_DONTWAKE };
        loop {
            let mut c = UffdioCopy {
                dst: dst as u64,
                src: src as u64,
                len: len as u64,
                mode,
                copy: 0,
            };
            // SAFETY: `c` is the structure UFFDIO_COPY reads and writes; the ranges are
            // the caller's promise.
            match unsafe { ioctl(self.fd.as_raw_fd(), UFFDIO_COPY, &mut c) } {
                Ok(()) => return Ok(len),
                // A partial copy: `copy` holds the bytes done.
                Err(Errno::AGAIN) if c.copy > 0 => return Ok(c.copy as usize),
                // The mapping was changing (fork, mremap): try again.
                Err(Errno::AGAIN) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// `UFFDIO_MOVE`: move the pages of `[src, src+len)` (private anonymous memory of
    /// this process) to `[dst, dst+len)` of a registered range, without copying them, and
    /// wake the faulting threads unless `!wake`. A transparent huge page whose 2 MiB both
    /// ranges cover, aligned, moves as one (its PMD); `src` is left unmapped. Returns the
    /// bytes moved, which may be fewer than `len`.
    ///
    /// <https://man7.org/linux/man-pages/man2/UFFDIO_MOVE.2const.html>
    ///
    /// # Errors
    /// The ioctl's errno (`EEXIST` where a destination page is present, `ENOENT` for a
    /// hole in `src`, `EBUSY` for a page shared with another process, `EINVAL`, …).
    ///
    /// # Safety
    /// `src` is private anonymous memory the caller owns with no live reference into it
    /// (its pages leave it); `dst` lies in a range registered on this descriptor, whose
    /// missing pages nothing else relies on staying missing.
    #[doc(alias = "UFFDIO_MOVE")]
    pub(crate) unsafe fn move_pages(
        &self,
        dst: usize,
        src: *mut u8,
        len: usize,
        wake: bool,
    ) -> Result<usize, Errno> {
        let mode = if wake { 0 } else { MOVE_MODE_DONTWAKE };
        loop {
            let mut m = UffdioMove {
                dst: dst as u64,
                src: src as u64,
                len: len as u64,
                mode,
                moved: 0,
            };
            // SAFETY: `m` is the structure UFFDIO_MOVE reads and writes; the ranges are
            // the caller's promise.
            match unsafe { ioctl(self.fd.as_raw_fd(), UFFDIO_MOVE, &mut m) } {
                Ok(()) => return Ok(len),
                Err(Errno::AGAIN) if m.moved > 0 => return Ok(m.moved as usize),
                Err(Errno::AGAIN) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// `UFFDIO_ZEROPAGE` over one range (page-aligned, registered).
    ///
    /// <https://man7.org/linux/man-pages/man2/ioctl_userfaultfd.2.html>
    ///
    /// # Errors
    /// The ioctl's errno (`EINVAL` for a range not registered on this descriptor, `ENOENT`, …).
    #[doc(alias = "UFFDIO_ZEROPAGE")]
    pub(crate) fn zeropage(&self, start: usize, len: usize) -> Result<(), Errno> {
        let mut z = UffdioZeropage {
            range: UffdioRange {
                start: start as u64,
                len: len as u64,
            },
            mode: 0,
            zeropage: 0,
        };
        // SAFETY: `z` is the structure UFFDIO_ZEROPAGE reads and writes; the kernel checks
        // the range is registered on this descriptor.
        unsafe { ioctl(self.fd.as_raw_fd(), UFFDIO_ZEROPAGE, &mut z) }
    }

    /// `UFFDIO_WRITEPROTECT`: protect the range (`protect`), or lift the protection and
    /// wake the threads waiting on it.
    ///
    /// <https://man7.org/linux/man-pages/man2/ioctl_userfaultfd.2.html>
    ///
    /// # Errors
    /// The ioctl's errno (`EINVAL` for a range not registered on this descriptor, `ENOENT`, …).
    #[doc(alias = "UFFDIO_WRITEPROTECT")]
    pub(crate) fn writeprotect(
        &self,
        start: usize,
        len: usize,
        protect: bool,
    ) -> Result<(), Errno> {
        let mut w = UffdioWriteprotect {
            range: UffdioRange {
                start: start as u64,
                len: len as u64,
            },
            mode: if protect { WRITEPROTECT_MODE_WP } else { 0 },
        };
        // SAFETY: `w` is the structure UFFDIO_WRITEPROTECT reads; the kernel checks the
        // range is registered in write-protect mode on this descriptor.
        unsafe { ioctl(self.fd.as_raw_fd(), UFFDIO_WRITEPROTECT, &mut w) }
    }

    /// `UFFDIO_POISON` over one range: touching it raises `SIGBUS` (`BUS_MCEERR_AR`).
    ///
    /// <https://man7.org/linux/man-pages/man2/ioctl_userfaultfd.2.html>
    ///
    /// # Errors
    /// The ioctl's errno (`EINVAL` for a range not registered on this descriptor, `ENOENT`, …).
    #[doc(alias = "UFFDIO_POISON")]
    pub(crate) fn poison(&self, start: usize, len: usize) -> Result<(), Errno> {
        let mut p = UffdioPoison {
            range: UffdioRange {
                start: start as u64,
                len: len as u64,
            },
            mode: 0,
            updated: 0,
        };
        // SAFETY: `p` is the structure UFFDIO_POISON reads and writes; the kernel checks
        // the range is registered on this descriptor.
        unsafe { ioctl(self.fd.as_raw_fd(), UFFDIO_POISON, &mut p) }
    }

    /// `UFFDIO_WAKE`: wake the threads waiting on faults in the range.
    ///
    /// <https://man7.org/linux/man-pages/man2/ioctl_userfaultfd.2.html>
    ///
    /// # Errors
    /// The ioctl's errno (`EINVAL` for a range not registered on this descriptor, `ENOENT`, …).
    #[doc(alias = "UFFDIO_WAKE")]
    pub(crate) fn wake(&self, start: usize, len: usize) -> Result<(), Errno> {
        let mut r = UffdioRange {
            start: start as u64,
            len: len as u64,
        };
        // SAFETY: `r` is the structure UFFDIO_WAKE reads.
        unsafe { ioctl(self.fd.as_raw_fd(), UFFDIO_WAKE, &mut r) }
    }

    /// `read(2)` up to `out.len()` messages; `Ok(0)` when none is queued (`EAGAIN`).
    ///
    /// <https://man7.org/linux/man-pages/man2/read.2.html>
    ///
    /// # Errors
    /// The kernel's refusal other than `EAGAIN`/`EINTR` (not expected).
    #[doc(alias = "read")]
    pub(crate) fn read_msgs(&self, out: &mut [UffdMsg]) -> Result<usize, Errno> {
        let bytes = size_of_val(out);
        // SAFETY: `out` is valid for writing `bytes` bytes, and UffdMsg is plain data for
        // which any bytes are valid.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), out.as_mut_ptr().cast(), bytes) };
        if n < 0 {
            return match last_errno() {
                Errno::AGAIN | Errno::INTR => Ok(0),
                e => Err(e),
            };
        }
        Ok(n as usize / size_of::<UffdMsg>())
    }

    /// The raw descriptor, for `poll`.
    pub(crate) fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// `userfaultfd(2)`.
///
/// <https://man7.org/linux/man-pages/man2/userfaultfd.2.html>
#[doc(alias = "userfaultfd")]
fn sys_userfaultfd(flags: libc::c_int) -> Result<OwnedFd, Errno> {
    // SAFETY: the syscall takes one int and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, flags) };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: the kernel just returned this descriptor; we own it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `open("/dev/userfaultfd")` then `ioctl(USERFAULTFD_IOC_NEW, flags)`.
///
/// <https://docs.kernel.org/admin-guide/mm/userfaultfd.html#dev-userfaultfd>
#[doc(alias = "USERFAULTFD_IOC_NEW")]
fn dev_userfaultfd(flags: libc::c_int) -> Result<OwnedFd, Errno> {
    let dev = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/userfaultfd")
        .map_err(|e| super::errno::errno_of(&e))?;
    // SAFETY: USERFAULTFD_IOC_NEW takes the flags as its integer argument and returns a
    // new descriptor.
    let fd = unsafe { libc::ioctl(dev.as_raw_fd(), USERFAULTFD_IOC_NEW, flags) };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: the kernel just returned this descriptor; we own it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `UFFDIO_API` handshake; returns the features granted.
///
/// <https://man7.org/linux/man-pages/man2/UFFDIO_API.2const.html>
fn api(fd: &OwnedFd, features: u64) -> Result<u64, Errno> {
    let mut a = UffdioApi {
        api: UFFD_API,
        features,
        ioctls: 0,
    };
    // SAFETY: `a` is the structure UFFDIO_API reads and writes.
    unsafe { ioctl(fd.as_raw_fd(), UFFDIO_API, &mut a)? };
    Ok(a.features)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_kernel_headers() {
        // Values from <linux/userfaultfd.h> on x86_64, as printed by a C program.
        assert_eq!(UFFDIO_API, 0xc018_aa3f);
        assert_eq!(UFFDIO_REGISTER, 0xc020_aa00);
        assert_eq!(UFFDIO_WAKE, 0x8010_aa02);
        assert_eq!(UFFDIO_COPY, 0xc028_aa03);
        assert_eq!(UFFDIO_ZEROPAGE, 0xc020_aa04);
        assert_eq!(UFFDIO_POISON, 0xc020_aa08);
        assert_eq!(UFFDIO_MOVE, 0xc028_aa05);
        assert_eq!(UFFDIO_WRITEPROTECT, 0xc018_aa06);
        assert_eq!(USERFAULTFD_IOC_NEW, 0xaa00);
    }
}
