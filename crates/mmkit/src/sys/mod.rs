//! The one small layer that calls the kernel: every syscall and ioctl mmkit makes.
//!
//! Everything above this module works with owned types ([`crate::Mapping`],
//! [`crate::Memory`]) and never calls the kernel directly. One file an area:
//!
//! | file | wraps |
//! |---|---|
//! | `mm` | `mmap`, `munmap`, `msync`, `mprotect`, `madvise`, `mlock`/`mlock2`, `munlock`, `mincore`, `mremap`, `prctl(PR_SET_VMA)` |
//! | `signal` | `sigaction` for the SIGBUS guard and its chaining, `pthread_sigmask`, `sigwait`, `kill`, `raise`, signal numbers |
//! | `process` | `fork`, `_exit`, `waitpid`, `pthread_atfork`, `getrusage` (faults, CPU time) |
//! | `io` | `write(2)` from raw memory or a buffer, `poll(2)` for input or output |
//! | `copy` | `sendfile`, `splice`, `copy_file_range`, `pipe2`, `F_SETPIPE_SZ`/`F_GETPIPE_SZ` |
//! | `errno` | errno numbers by C name (from `rustix`'s `Errno`), the errno of a failed call or an `io::Error` and its text, the one `EINTR` retry (`retry`) |
//! | `fs` | the one safe open of a path (`open_regular`: non-blocking `open`, `fstat`, `fcntl(F_SETFL)`), `cachestat(2)`, memfd seal flags |
//! | `lock` | open-file-description locks (`F_OFD_SETLK`, `F_OFD_GETLK`), reopening a descriptor through `/proc/self/fd` |
//! | `uffd` | `userfaultfd(2)`, `/dev/userfaultfd` and the `UFFDIO_*` ioctls |
//!
//! Each function names the call it makes, links its man page and carries the C name as a
//! doc alias; `rustix` is used where it has the call and `libc` where it does not. No
//! `libc::` path appears outside this module (`.ci/check-fence` checks it), and every
//! `unsafe` syscall is made here; the pillars still call `rustix`'s *safe* wrappers on
//! descriptors they own (`fstat`, `fcntl`, `memfd_create`, futexes, …) directly. Two
//! sequences every pillar needs live here once: opening a path without waiting on it
//! (`fs::open_regular`) and retrying a call a signal interrupted (`retry`). This module
//! imports nothing else of mmkit: it is the bottom floor, and the error type stands on it.
//!
//! # Safety
//!
//! This module is where raw system calls are made, which Rust cannot check: each wrapper
//! is either safe (the kernel checks its arguments, or it touches only memory the wrapper
//! owns) or an `unsafe fn` whose `# Safety` section says what the caller must promise
//! (typically: the address range is a mapping the caller owns).
#![allow(unsafe_code)]
// A wrapper layer for every pillar: with only some features on, the wrappers of the
// others go unused.
#![cfg_attr(
    not(all(
        feature = "shm",
        feature = "pager",
        feature = "probe",
        feature = "store",
        feature = "process"
    )),
    allow(dead_code)
)]

pub(crate) mod copy;
pub(crate) mod errno;
pub(crate) mod fs;
pub(crate) mod io;
#[cfg(feature = "shm")]
pub(crate) mod lock;
mod mm;
pub(crate) mod process;
pub(crate) mod signal;
#[cfg(feature = "pager")]
pub(crate) mod uffd;

pub(crate) use errno::{errno_of, retry};
pub(crate) use mm::{
    madvise, map_anon_aligned, mincore, mlock, mmap, mmap_fixed_zeroes, mprotect, mremap, msync,
    munlock, munmap, set_anon_name,
};

/// The size of a base page, in bytes (`sysconf(_SC_PAGESIZE)`, from the aux vector).
///
/// <https://man7.org/linux/man-pages/man2/getpagesize.2.html>
#[doc(alias = "getpagesize")]
pub(crate) fn page_size() -> usize {
    rustix::param::page_size()
}
