//! Tour claims about the edges of a mapping: SIGSEGV after `munmap`/`mprotect` (8),
//! offsets (9), and the end of the file (10). Faults are taken in child processes.
//!
//! # Safety
//!
//! Makes, on purpose and in forked children, the faults the docs describe: touching
//! unmapped and protected pages and reading past the end of a truncated file, with raw
//! `rustix::mm::mmap`/`munmap` and `process::fork`.
#![allow(unsafe_code)]

use super::{pattern, Ctx, Outcome};
use libc::{SIGBUS, SIGSEGV};
use mmkit::process::{fork, Exit};
use mmkit::Result;
use mmkit::{MapOptions, Protection};

/// Claim 8: two children, each takes the fault the docs promise.
pub(super) fn segv_after_unmap_or_protect(_ctx: &Ctx) -> Result<Outcome> {
    // SAFETY: the child deliberately stores to an address it has just unmapped; it exists
    // only to take that fault, and shares nothing with the parent but its exit status.
    let unmapped = unsafe {
        fork(|_| {
            let Ok(mut mem) = MapOptions::new().len(4096).map_anon() else {
                return 2;
            };
            let p = mem.as_mut_ptr();
            drop(mem);
            p.write_volatile(1);
            0
        })?
    }
    .wait()?;
    // SAFETY: the child protects its own mapping read-only, checks that the safe API
    // refuses the write, then stores through the raw pointer to take the fault.
    let protected = unsafe {
        fork(|_| {
            let Ok(mut map) = MapOptions::new().len(4096).map_anon_shared() else {
                return 2;
            };
            if map.protect(Protection::READ).is_err() || map.write_at(0, b"x").is_ok() {
                return 3;
            }
            map.as_mut_ptr().write_volatile(1);
            0
        })?
    }
    .wait()?;
    let measured = format!(
        "a store after munmap: child {}; a store after mprotect(PROT_READ): child {} (mmkit's write_at returned Err first)",
        unmapped.describe(),
        protected.describe()
    );
    let segv = Exit::Signal(SIGSEGV);
    Ok(Outcome::check(
        unmapped == segv && protected == segv,
        measured,
    ))
}

/// Claim 9: `mmap` with offset 100 fails; `MapOptions::offset(100)` reads the right bytes.
pub(super) fn unaligned_offset(ctx: &Ctx) -> Result<Outcome> {
    let (_, file) = ctx.file("claim9.dat", 3 * 4096)?;
    let off = 100usize;
    // SAFETY: a fresh read-only shared mapping request with no hint; on success (not
    // expected) it is unmapped at once.
    let raw = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            4096,
            rustix::mm::ProtFlags::READ,
            rustix::mm::MapFlags::SHARED,
            &file,
            off as u64,
        )
    };
    let kernel = match raw {
        Err(e) => format!(
            "fails with {}",
            mmkit::lab_seam::errno_label(e.raw_os_error())
        ),
        Ok(p) => {
            // SAFETY: we own the mapping just made.
            let _ = unsafe { rustix::mm::munmap(p, 4096) };
            "accepted".into()
        }
    };
    let kernel_rejects = raw.is_err_and(|e| e == rustix::io::Errno::INVAL);
    let map = MapOptions::new().offset(off as u64).len(64).map(&file)?;
    let mut got = [0u8; 64];
    map.read_at(0, &mut got)?;
    let want: Vec<u8> = (off..off + 64).map(pattern).collect();
    let measured = format!(
        "mmap(offset = {off}) by the kernel: {kernel}; mmkit offset({off}) maps from the page below and reads {}",
        if got[..] == want[..] { "the right 64 bytes" } else { "WRONG bytes" }
    );
    Ok(Outcome::check(
        kernel_rejects && got[..] == want[..],
        measured,
    ))
}

/// Claim 10: zeros after the end of the file inside the last page, SIGBUS one page later.
pub(super) fn tail_zero_then_sigbus(ctx: &Ctx) -> Result<Outcome> {
    let page = mmkit::page_size();
    let file_len = page + 904;
    let (_, file) = ctx.file("claim10.dat", file_len)?;
    let map = MapOptions::new()
        .len(3 * page)
        .allow_past_eof()
        .map(&file)?;
    let mut tail = vec![0xffu8; 2 * page - file_len];
    map.read_at(file_len, &mut tail)?;
    let zeros = tail.iter().all(|&b| b == 0);
    let past_ptr = map.as_ptr() as usize + 2 * page;
    // SAFETY: the child loads one byte a whole page past the end of the file, unguarded;
    // it exists to take the SIGBUS and shares nothing with the parent but its exit status.
    let past = unsafe {
        fork(|_| {
            std::hint::black_box((past_ptr as *const u8).read_volatile());
            0
        })?
    }
    .wait()?;
    let guarded = map.read_at(2 * page, &mut [0u8]).map_err(|e| e.kind());
    let measured = format!(
        "file of {file_len} bytes mapped for {} bytes: the {} bytes after the end in the last page read {}; \
         an unguarded load one page later: child {}; mmkit's guarded read_at there: {}",
        3 * page,
        tail.len(),
        if zeros { "as zeros" } else { "NOT as zeros" },
        past.describe(),
        match guarded {
            Err(kind) => format!("Err({kind:?}), no signal"),
            Ok(()) => "Ok (unexpected)".into(),
        }
    );
    let ok = zeros && past == Exit::Signal(SIGBUS) && guarded == Err(mmkit::ErrorKind::Truncated);
    Ok(Outcome::check(ok, measured))
}
