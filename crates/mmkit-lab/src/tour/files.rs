//! Tour claims about file pages in one process: nothing is copied up front (1), first
//! touches fault (2), and writes sit dirty until `msync` (6).

use rustix::fs::{fadvise, Advice as FAdvice};

use super::{bytes, Ctx, Outcome};
use mmkit::lab_seam::ErrorExt;
use mmkit::probe::{cachestat, faults, region_stats};
use mmkit::{page_size, MapOptions, Mapping};
use mmkit::{Error, Op, Result};

const TMPFS_MAGIC: i64 = 0x0102_1994;

/// Touch one byte of `map` at `off` and return the faults it took.
fn touch(map: &Mapping, off: usize) -> Result<mmkit::probe::Faults> {
    let mut b = [0u8];
    let before = faults();
    map.read_at(off, &mut b)?;
    let after = faults();
    std::hint::black_box(b);
    Ok(after - before)
}

/// Claim 1: a fresh mapping has no resident pages and cost no faults.
pub(super) fn nothing_up_front(ctx: &Ctx) -> Result<Outcome> {
    let len = 64 << 20;
    let (_, file) = ctx.file("claim1.dat", len)?;
    drop(MapOptions::new().map(&file)?); // warm the code path and the allocator
    let before = faults();
    let map = MapOptions::new().map(&file)?;
    let mapped = faults() - before;
    let rss0 = region_stats(map.as_ptr())?.rss;
    let touched = touch(&map, len / 2)?;
    let rss1 = region_stats(map.as_ptr())?.rss;
    let measured = format!(
        "after mmap of a {} warm file: Rss {}, {} faults; after touching 1 byte: Rss {}, {} fault(s) \
         (one fault mapped {} pages: fault-around over the page cache's folios)",
        bytes(len as u64),
        bytes(rss0),
        mapped.minor + mapped.major,
        bytes(rss1),
        touched.minor + touched.major,
        rss1 / page_size() as u64,
    );
    let ok = rss0 == 0
        && mapped.minor + mapped.major == 0
        && rss1 > 0
        && touched.minor + touched.major >= 1;
    Ok(Outcome::check(ok, measured))
}

/// Claim 2: minor fault when the page is cached, major after `fadvise(DONTNEED)`.
pub(super) fn first_touch_faults(ctx: &Ctx) -> Result<Outcome> {
    let len = 16 << 20;
    let (path, file) = ctx.file("claim2.dat", len)?;
    let map = MapOptions::new().map(&file)?;
    let warm = touch(&map, 0)?;
    drop(map);
    let tmpfs = rustix::fs::fstatfs(&file)
        .map(|s| s.f_type == TMPFS_MAGIC)
        .unwrap_or(false);
    let warm_text = format!(
        "warm file: touching a page took {} minor, {} major",
        warm.minor, warm.major
    );
    if tmpfs {
        return Ok(Outcome::skipped(
            warm_text,
            format!("{} is on tmpfs, which cannot evict", path.display()),
        ));
    }
    fadvise(&file, 0, None, FAdvice::DontNeed)
        .map_err(|e| Error::os(Op::Advise, e).with_path(Some(&path)))?;
    let cached = cachestat(&file, 0, 0).map(|c| c.cached).ok();
    let map = MapOptions::new().map(&file)?;
    let cold = touch(&map, len / 2)?;
    let measured = format!(
        "{warm_text}; after fadvise(DONTNEED) ({} pages cached): {} minor, {} major",
        cached.map_or("?".into(), |c| c.to_string()),
        cold.minor,
        cold.major
    );
    Ok(Outcome::check(
        warm.minor >= 1 && warm.major == 0 && cold.major >= 1,
        measured,
    ))
}

/// Claim 6: dirty pages counted by smaps and cachestat before `flush`, none after.
pub(super) fn dirty_until_msync(ctx: &Ctx) -> Result<Outcome> {
    let len = 4 << 20;
    let written = 1 << 20;
    let (_, file) = ctx.file("claim6.dat", len)?;
    let mut map = MapOptions::new().write().map(&file)?;
    map.write_at(0, &vec![0x5a; written])?;
    let dirty_map = region_stats(map.as_ptr())?.dirty;
    let dirty_cache = cachestat(&file, 0, 0).map(|c| c.dirty).ok();
    map.flush()?;
    let clean_map = region_stats(map.as_ptr())?.dirty;
    let clean_cache = cachestat(&file, 0, 0).map(|c| c.dirty).ok();
    let pages = |c: Option<u64>| c.map_or("?".into(), |p| format!("{p} pages"));
    let measured = format!(
        "wrote {}: smaps Dirty {} (cachestat {}); after flush (msync): Dirty {} (cachestat {})",
        bytes(written as u64),
        bytes(dirty_map),
        pages(dirty_cache),
        bytes(clean_map),
        pages(clean_cache)
    );
    let cache_ok = match (dirty_cache, clean_cache) {
        (Some(d), Some(c)) => d > 0 && c == 0,
        _ => true,
    };
    Ok(Outcome::check(
        dirty_map >= written as u64 && clean_map == 0 && cache_ok,
        measured,
    ))
}
