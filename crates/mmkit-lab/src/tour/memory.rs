//! Tour claims about anonymous memory: malloc and mmap (11), mremap (12), mlock (13a),
//! huge pages (13b).
//!
//! # Safety
//!
//! Shows malloc against mmap with `GlobalAlloc::alloc`/`dealloc` on `System`, and
//! reserves the pages after a mapping with `rustix::mm::mmap_anonymous` so `mremap` cannot grow it in
//! place.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};

use super::{bytes, Ctx, Outcome};
use mmkit::lab_seam::ErrorExt;
use mmkit::probe::{locked_bytes, mapping_ranges, region_stats};
use mmkit::{page_size, HugePageSize, LockMode, MapOptions, RemapMode};
use mmkit::{Error, Result};

/// Claim 11: a 64 MiB `malloc` gets a mapping of its own; a 4 KiB one does not.
pub(super) fn malloc_uses_mmap(_ctx: &Ctx) -> Result<Outcome> {
    let big = Layout::from_size_align(64 << 20, 16).expect("valid layout");
    let small = Layout::from_size_align(4096, 16).expect("valid layout");
    let before = mapping_ranges()?;
    // SAFETY: non-zero sizes; both blocks are freed below with the same layouts.
    let (pb, ps) = unsafe { (System.alloc(big), System.alloc(small)) };
    let after = mapping_ranges();
    // SAFETY: allocated above with these layouts (null is checked by dealloc's contract
    // only when non-null, so guard it).
    unsafe {
        if !pb.is_null() {
            System.dealloc(pb, big);
        }
        if !ps.is_null() {
            System.dealloc(ps, small);
        }
    }
    let after = after?;
    let holder = |p: *mut u8| {
        after
            .iter()
            .find(|(s, e, _)| *s <= p as u64 && (p as u64) < *e)
            .cloned()
    };
    let is_new = |start: u64| !before.iter().any(|(s, _, _)| *s == start);
    let (Some(b), Some(s)) = (holder(pb), holder(ps)) else {
        return Ok(Outcome::check(
            false,
            "an allocation lies in no mapping of /proc/self/maps".into(),
        ));
    };
    let describe = |r: &(u64, u64, String)| {
        let name = if r.2.is_empty() {
            "anonymous mapping".to_string()
        } else {
            r.2.clone()
        };
        format!(
            "{} {name} of {}",
            if is_new(r.0) { "a new" } else { "an existing" },
            bytes(r.1 - r.0)
        )
    };
    let measured = format!(
        "malloc(64 MiB) lies in {}; malloc(4 KiB) lies in {}",
        describe(&b),
        describe(&s)
    );
    Ok(Outcome::check(
        is_new(b.0) && b.2.is_empty() && !is_new(s.0),
        measured,
    ))
}

/// Claim 12: grow in place into free pages; grow by moving past a blocker.
pub(super) fn mremap_grows(_ctx: &Ctx) -> Result<Outcome> {
    let page = page_size();
    let mut mem = MapOptions::new().len(8 * page).map_anon()?;
    for (i, b) in mem.iter_mut().enumerate() {
        *b = (i % 253) as u8;
    }
    let kept = |m: &[u8]| {
        m[..4 * page]
            .iter()
            .enumerate()
            .all(|(i, &b)| b == (i % 253) as u8)
    };
    mem.remap(4 * page, RemapMode::InPlace)?;
    let a0 = mem.as_ptr();
    mem.remap(8 * page, RemapMode::InPlace)?;
    let in_place = mem.as_ptr() == a0 && kept(&mem);
    mem.remap(4 * page, RemapMode::InPlace)?;
    // Block the pages right after the mapping so it cannot grow in place.
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping; we unmap it below.
    let blocker = unsafe {
        rustix::mm::mmap_anonymous(
            a0.add(4 * page).cast_mut().cast(),
            page,
            rustix::mm::ProtFlags::READ,
            rustix::mm::MapFlags::PRIVATE | rustix::mm::MapFlags::FIXED_NOREPLACE,
        )
    }
    .map_err(|e| Error::os(mmkit::Op::Map, e))?;
    let blocked = mem.remap(8 * page, RemapMode::InPlace).is_err();
    let moved = mem.remap(8 * page, RemapMode::MayMove);
    // SAFETY: the blocker is our own one-page mapping.
    let _ = unsafe { rustix::mm::munmap(blocker, page) };
    moved?;
    let a1 = mem.as_ptr();
    let zero_tail = mem[4 * page..].iter().all(|&b| b == 0);
    let by_moving = a1 != a0 && kept(&mem) && zero_tail;
    let measured = format!(
        "16 KiB -> 32 KiB in place at {a0:p}: {}; with the next page taken, in place {} and MREMAP_MAYMOVE moved it to {a1:p}: {}",
        if in_place { "same address, contents kept" } else { "FAILED" },
        if blocked { "fails" } else { "succeeds" },
        if by_moving { "contents kept, new bytes zero" } else { "contents NOT kept" }
    );
    Ok(Outcome::check(in_place && blocked && by_moving, measured))
}

/// Claim 13a: `mlock` raises `VmLck` by the locked size and makes every page resident.
pub(super) fn mlock_resident(_ctx: &Ctx) -> Result<Outcome> {
    let len = 4 << 20;
    let before = locked_bytes()?;
    let mem = MapOptions::new().len(len).map_anon()?;
    if let Err(e) = mem.lock(LockMode::Now) {
        return Ok(Outcome::skipped(
            String::new(),
            e.to_string().replace('\n', "; "),
        ));
    }
    let during = locked_bytes()?;
    let res = mem.residency()?;
    mem.unlock()?;
    let after = locked_bytes()?;
    let measured = format!(
        "mlock of {} untouched anonymous memory: VmLck {} -> {} -> {} after munlock; {} of {} pages resident",
        bytes(len as u64),
        bytes(before),
        bytes(during),
        bytes(after),
        res.resident(),
        res.pages()
    );
    let ok = during - before == len as u64 && res.resident() == res.pages() && after == before;
    Ok(Outcome::check(ok, measured))
}

fn thp_mode() -> String {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .ok()
        .and_then(|s| {
            s.split('[')
                .nth(1)
                .and_then(|r| r.split(']').next())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "unavailable".into())
}

/// Claim 13b: THP (`AnonHugePages`) and, when the pool has pages, hugetlb.
pub(super) fn huge_pages(_ctx: &Ctx) -> Result<Outcome> {
    let mode = thp_mode();
    let thp = if mode == "never" || mode == "unavailable" {
        None
    } else {
        let mut mem = MapOptions::new()
            .len(8 << 20)
            .transparent_huge()
            .map_anon()?;
        mem.fill(1);
        Some(region_stats(mem.as_ptr())?.anon_huge)
    };
    let free = mmkit::probe::meminfo("HugePages_Free").unwrap_or(0);
    let tlb = if free == 0 {
        None
    } else {
        let mut mem = MapOptions::new()
            .len(2 << 20)
            .huge_tlb(HugePageSize::Default)
            .map_anon()?;
        mem.fill(1);
        Some(region_stats(mem.as_ptr())?.hugetlb)
    };
    let thp_text = match thp {
        Some(b) => format!(
            "THP ({mode}): 8 MiB with MADV_HUGEPAGE, touched: AnonHugePages {}",
            bytes(b)
        ),
        None => format!("THP is {mode}"),
    };
    let tlb_text = match tlb {
        Some(b) => format!(
            "hugetlb: 2 MiB with MAP_HUGETLB: {} in huge pages",
            bytes(b)
        ),
        None => "hugetlb pool is empty (vm.nr_hugepages = 0), not tried".into(),
    };
    let measured = format!("{thp_text}; {tlb_text}");
    match (thp, tlb) {
        (None, None) => Ok(Outcome::skipped(
            measured,
            "no transparent huge pages and an empty hugetlb pool",
        )),
        (t, h) => Ok(Outcome::check(
            t.unwrap_or(1) > 0 && h.unwrap_or(1) > 0,
            measured,
        )),
    }
}
