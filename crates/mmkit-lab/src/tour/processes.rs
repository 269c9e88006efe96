//! Tour claims that cross processes: shared writes are seen (3), private writes are
//! copy-on-write (4), anonymous memory and `fork` (5), data survives `kill -9` (7).
//!
//! # Safety
//!
//! Forks children with the `unsafe` [`mmkit::process::fork`] to show what another
//! process sees of a mapping; their closures take no lock.
#![allow(unsafe_code)]

use std::path::Path;

use super::{pattern, Ctx, Outcome};
use libc::SIGKILL;
use mmkit::lab_seam::ErrorExt;
use mmkit::probe::region_stats;
use mmkit::process::{fork, Exit};
use mmkit::{Error, Op, Result};
use mmkit::{MapOptions, Memory};

const MARK: &[u8] = b"written-by-mmkit";

/// In a child: map `path` afresh and exit 0 when it holds `want` at `off`, 1 when it
/// holds something else, 2 when it could not map.
fn child_sees(path: &Path, off: usize, want: &[u8]) -> Result<Exit> {
    // SAFETY: the child maps a file, copies bytes and exits; it takes no lock another
    // thread could hold (the allocator is fork-safe).
    let child = unsafe {
        fork(|_| {
            let Ok(map) = MapOptions::new().map_path(path) else {
                return 2;
            };
            let mut got = vec![0u8; want.len()];
            match map.read_at(off, &mut got) {
                Ok(()) if got == want => 0,
                _ => 1,
            }
        })?
    };
    child.wait()
}

fn sees(e: Exit) -> &'static str {
    match e {
        Exit::Code(0) => "sees",
        Exit::Code(1) => "does not see",
        _ => "could not check",
    }
}

/// Claim 3.
pub(super) fn shared_writes_visible(ctx: &Ctx) -> Result<Outcome> {
    let (path, file) = ctx.file("claim3.dat", 64 << 10)?;
    let mut map = MapOptions::new().write().map(&file)?;
    map.write_at(1000, MARK)?;
    let on_disk =
        std::fs::read(&path).map_err(|e| Error::io(Op::Open, &e).with_path(Some(&path)))?;
    let file_sees = on_disk.get(1000..1000 + MARK.len()) == Some(MARK);
    let child = child_sees(&path, 1000, MARK)?;
    let measured = format!(
        "wrote {} bytes through a MAP_SHARED mapping, no msync: read() of the file {} them; a child process mapping the file {} them",
        MARK.len(),
        if file_sees { "sees" } else { "does not see" },
        sees(child)
    );
    Ok(Outcome::check(
        file_sees && child == Exit::Code(0),
        measured,
    ))
}

/// Claim 4.
pub(super) fn private_is_cow(ctx: &Ctx) -> Result<Outcome> {
    let (path, file) = ctx.file("claim4.dat", 64 << 10)?;
    let original: Vec<u8> = (1000..1000 + MARK.len()).map(pattern).collect();
    let mut map = MapOptions::new().copy_on_write().map(&file)?;
    let anon_before = region_stats(map.as_ptr())?.anonymous;
    map.write_at(1000, MARK)?;
    let anon_after = region_stats(map.as_ptr())?.anonymous;
    let mut mine = vec![0u8; MARK.len()];
    map.read_at(1000, &mut mine)?;
    let on_disk =
        std::fs::read(&path).map_err(|e| Error::io(Op::Open, &e).with_path(Some(&path)))?;
    let file_unchanged = on_disk.get(1000..1000 + MARK.len()) == Some(&original[..]);
    let child = child_sees(&path, 1000, &original)?;
    let measured = format!(
        "wrote through MAP_PRIVATE: the mapping {} the write; the file {}; a child mapping the file {} the original bytes; \
         the written page became anonymous (smaps Anonymous {} -> {} bytes)",
        if mine == MARK { "holds" } else { "lost" },
        if file_unchanged { "is unchanged" } else { "changed" },
        sees(child),
        anon_before,
        anon_after
    );
    let ok = mine == MARK && file_unchanged && child == Exit::Code(0) && anon_after > anon_before;
    Ok(Outcome::check(ok, measured))
}

/// Claim 5.
pub(super) fn anon_zero_and_fork(_ctx: &Ctx) -> Result<Outcome> {
    let fresh = MapOptions::new().len(1 << 20).map_anon()?;
    let zero = fresh.iter().all(|&b| b == 0);
    let mut shared = MapOptions::new().len(4096).map_anon_shared()?;
    let mut private: Memory = MapOptions::new().len(4096).map_anon()?;
    let shared_ptr = shared.as_mut_ptr();
    let private_ptr = private.as_mut_ptr();
    // SAFETY: the child writes one byte into each of two mappings it inherited (its own
    // copies of the pointers are valid: fork duplicates the address space) and exits.
    let child = unsafe {
        fork(|_| {
            shared_ptr.write_volatile(0xab);
            private_ptr.write_volatile(0xab);
            0
        })?
    };
    let exit = child.wait()?;
    let mut s = [0u8];
    shared.read_at(0, &mut s)?;
    let p = private[0];
    let measured = format!(
        "fresh 1 MiB anonymous mapping {}; after a forked child wrote 0xab to both: shared reads {:#04x}, private reads {:#04x} (child: {})",
        if zero { "is all zeros" } else { "is NOT all zeros" },
        s[0],
        p,
        exit.describe()
    );
    Ok(Outcome::check(
        zero && s[0] == 0xab && p == 0 && exit == Exit::Code(0),
        measured,
    ))
}

/// Claim 7.
pub(super) fn survives_kill9(ctx: &Ctx) -> Result<Outcome> {
    let len = 256 << 10;
    let (path, _) = ctx.file("claim7.dat", len)?;
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let data_ref = &data;
    let path_ref = &path;
    // SAFETY: the child maps the file, copies into it, reports and then waits to be
    // killed; it takes no lock another thread could hold.
    let mut child = unsafe {
        fork(|link| {
            let Ok(mut map) = MapOptions::new().write().map_path(path_ref) else {
                return 2;
            };
            if map.write_at(0, data_ref).is_err() {
                return 3;
            }
            link.send(1);
            loop {
                std::thread::sleep(std::time::Duration::from_secs(60));
            }
        })?
    };
    let ready = child.recv() == Some(1);
    child.signal(SIGKILL)?;
    let exit = child.wait()?;
    let on_disk =
        std::fs::read(&path).map_err(|e| Error::io(Op::Open, &e).with_path(Some(&path)))?;
    let intact = on_disk == data;
    let measured = format!(
        "a child wrote {} through MAP_SHARED (no msync) and was {}; read() of the file afterwards: {}",
        super::bytes(len as u64),
        exit.describe(),
        if intact { "every byte is there" } else { "data is missing" }
    );
    Ok(Outcome::check(
        ready && exit == Exit::Signal(SIGKILL) && intact,
        measured,
    ))
}
