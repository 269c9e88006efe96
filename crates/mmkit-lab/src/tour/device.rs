//! Tour claim 19: what a character device's mapping is. A driver's `mmap` handler
//! decides what the pages are; `/dev/zero`'s gives, for `MAP_SHARED`, shared anonymous
//! memory (a shmem object the kernel names `/dev/zero (deleted)`), and for
//! `MAP_PRIVATE`, private anonymous memory. Shown by what `/proc/self/smaps` says of
//! each region and by what a forked child's writes do to it.
//!
//! # Safety
//!
//! Forks a child with the `unsafe` [`mmkit::process::fork`] that writes one byte into
//! each of two mappings it inherited and exits.
#![allow(unsafe_code)]

use super::{Ctx, Outcome};
use mmkit::probe::{region_stats, RegionStats};
use mmkit::process::{fork, Exit};
use mmkit::Result;
use mmkit::{MapOptions, Mapping};

const DEVICE: &str = "/dev/zero";
const LEN: usize = 1 << 20;

fn map(shared: bool) -> Result<Mapping> {
    if shared {
        MapOptions::new().len(LEN).write().map_path(DEVICE)
    } else {
        MapOptions::new().len(LEN).copy_on_write().map_path(DEVICE)
    }
}

fn all_zero(map: &Mapping) -> Result<bool> {
    let mut buf = vec![1u8; LEN];
    map.read_at(0, &mut buf)?;
    Ok(buf.iter().all(|&b| b == 0))
}

/// Claim 19.
pub(super) fn dev_zero_is_anonymous(_ctx: &Ctx) -> Result<Outcome> {
    let (mut shared, mut private) = match (map(true), map(false)) {
        (Ok(s), Ok(p)) => (s, p),
        (Err(e), _) | (_, Err(e)) => {
            return Ok(Outcome::skipped(
                String::new(),
                format!("cannot map {DEVICE}: {e}"),
            ))
        }
    };
    let zeros = all_zero(&shared)? && all_zero(&private)?;
    let (s_ptr, p_ptr) = (shared.as_mut_ptr(), private.as_mut_ptr());
    // SAFETY: the child writes one byte at the end of each of two 1 MiB mappings it
    // inherited (fork duplicates the address space, so the pointers are valid there) and
    // exits; it takes no lock.
    let child = unsafe {
        fork(|_| {
            s_ptr.add(LEN - 1).write_volatile(0x5a);
            p_ptr.add(LEN - 1).write_volatile(0x5a);
            0
        })?
    };
    let exit = child.wait()?;
    let mut seen = [0u8; 2];
    shared.read_at(LEN - 1, &mut seen[..1])?;
    private.read_at(LEN - 1, &mut seen[1..])?;
    let (s_area, p_area) = (region_stats(s_ptr)?, region_stats(p_ptr)?);
    let measured = format!(
        "{DEVICE} mapped 1 MiB MAP_SHARED: {}; a forked child's write {} (reads {:#04x}). \
         MAP_PRIVATE: {}; the child's write {} (reads {:#04x}). Both read as zeros at \
         first: {}",
        describe(&s_area),
        if seen[0] == 0x5a {
            "is seen by the parent"
        } else {
            "is not seen"
        },
        seen[0],
        describe(&p_area),
        if seen[1] == 0 {
            "stays the child's"
        } else {
            "leaked to the parent"
        },
        seen[1],
        if zeros { "yes" } else { "no" },
    );
    // A shared mapping of /dev/zero is a shmem object: the kernel names it as a deleted
    // file, the way it names memfds and System V segments.
    let shmem = s_area.path.ends_with("(deleted)") && s_area.perms.ends_with('s');
    Ok(Outcome::check(
        exit == Exit::Code(0) && zeros && seen == [0x5a, 0] && shmem,
        measured,
    ))
}

fn describe(area: &RegionStats) -> String {
    format!(
        "smaps names it {:?} with permissions {}",
        area.path, area.perms
    )
}
