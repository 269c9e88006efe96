//! Tour claim 16: the JVM stall (the hsperfdata case). A store to a page of a shared
//! file mapping that writeback has cleaned takes a write fault (`page_mkwrite`), and
//! where the device asks for *stable pages* that fault waits until the page's writeback
//! ends, so a plain store can stall for a disk's latency.
//!
//! The experiment stores one byte into each page of a 32 MiB mapped file in turn for
//! 1.5 s, timing every store, while one thread `msync`s the mapping in a loop (so pages
//! are under writeback) and another writes and `fdatasync`s a second file (write load).
//! It reports the worst store, how many took 100 µs and 1 ms or more, the write faults,
//! and whether the file's block device asks for stable pages
//! (`/sys/dev/block/M:m/queue/stable_writes`). A store of 1 ms or more is a stall.
//!
//! # Safety
//!
//! Stores through the raw pointer of a writable shared mapping of a file the tour just
//! created and nothing truncates, within the mapping's length, while another thread only
//! calls `msync` on it.
#![allow(unsafe_code)]

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{bytes, Ctx, Outcome};
use mmkit::lab_seam::ErrorExt;
use mmkit::probe::faults;
use mmkit::MapOptions;
use mmkit::{Error, Op, Result};

const MAP_LEN: usize = 32 << 20;
const RUN: Duration = Duration::from_millis(1500);
const STALL: Duration = Duration::from_millis(1);
const SLOW: Duration = Duration::from_micros(100);

/// What the timed stores saw.
#[derive(Default)]
struct Stores {
    count: u64,
    worst: Duration,
    slow: u64,
    stalls: u64,
    faults: u64,
}

/// Claim 16.
pub(super) fn store_stalls_under_writeback(ctx: &Ctx) -> Result<Outcome> {
    let (_, file) = ctx.file("claim16.dat", MAP_LEN)?;
    let fs = FileSystem::of(&file);
    if fs.name == "tmpfs" {
        return Ok(Outcome::skipped(
            String::new(),
            "the tour's directory is on tmpfs, which has no writeback: give --dir on a disk",
        ));
    }
    let (_, load) = ctx.file("claim16-load.dat", 0)?;
    let mut map = MapOptions::new().write().map(&file)?;
    let base = map.as_mut_ptr() as usize;
    let map = &map;
    let stop = AtomicBool::new(false);
    let (stores, syncs, loaded) = std::thread::scope(|s| {
        let syncer = s.spawn(|| {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                map.flush()?;
                n += 1;
            }
            Ok::<u64, Error>(n)
        });
        let loader = s.spawn(|| write_load(&load, &stop));
        let stores = store_loop(base);
        stop.store(true, Ordering::Relaxed);
        let join = |r: std::thread::Result<Result<u64>>| {
            r.unwrap_or_else(|_| {
                Err(Error::new(Op::Write, mmkit::ErrorKind::Unsupported)
                    .detail("a thread of the experiment panicked"))
            })
        };
        (stores, join(syncer.join()), join(loader.join()))
    });
    let (syncs, loaded) = (syncs?, loaded?);
    let measured = format!(
        "{} stores, one a page round a {} mapped file on {} ({}), for {:.1} s while {syncs} \
         msync passes and {} of write+fdatasync load ran: worst store {}, {} stores of \
         100 µs or more, {} of 1 ms or more; {} write faults",
        stores.count,
        bytes(MAP_LEN as u64),
        fs.name,
        fs.stable_writes_text(),
        RUN.as_secs_f64(),
        bytes(loaded),
        micros(stores.worst),
        stores.slow,
        stores.stalls,
        stores.faults,
    );
    let measured = match (stores.stalls, fs.stable_writes) {
        (1.., Some(false)) => format!(
            "{measured}; so here a store stalls without stable pages: the write fault waits on \
             the file system, not on the page's writeback"
        ),
        _ => measured,
    };
    Ok(Outcome::check(stores.stalls > 0, measured))
}

/// Store one byte into each page in turn for [`RUN`], timing each store.
fn store_loop(base: usize) -> Stores {
    let page = mmkit::page_size();
    let pages = MAP_LEN / page;
    let mut s = Stores::default();
    let faults_before = faults().minor;
    let end = Instant::now() + RUN;
    let mut i = 0usize;
    while Instant::now() < end {
        let at = (base + (i % pages) * page) as *mut u8;
        let t = Instant::now();
        // SAFETY: `at` is inside the mapping (`i % pages` pages in), which lives and is
        // not truncated for the whole loop (see the module's safety note).
        unsafe { at.write_volatile(i as u8) };
        let took = t.elapsed();
        s.count += 1;
        s.worst = s.worst.max(took);
        s.slow += u64::from(took >= SLOW);
        s.stalls += u64::from(took >= STALL);
        i += 1;
    }
    s.faults = faults().minor.saturating_sub(faults_before);
    s
}

/// Write 1 MiB blocks into `file`, wrapping at 64 MiB, with an `fdatasync` every 8 MiB,
/// until `stop`; the bytes written.
fn write_load(file: &File, stop: &AtomicBool) -> Result<u64> {
    let block = vec![0x6bu8; 1 << 20];
    let io = |e: std::io::Error| Error::io(Op::Write, &e);
    let mut written = 0u64;
    while !stop.load(Ordering::Relaxed) {
        file.write_all_at(&block, written % (64 << 20))
            .map_err(io)?;
        written += block.len() as u64;
        if written % (8 << 20) == 0 {
            file.sync_data().map_err(io)?;
        }
    }
    Ok(written)
}

fn micros(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

/// The file system a file is on, and whether its device asks for stable pages.
struct FileSystem {
    name: String,
    stable_writes: Option<bool>,
}

impl FileSystem {
    fn of(file: &File) -> FileSystem {
        // `f_type`'s integer type differs between architectures.
        #[allow(clippy::unnecessary_cast)]
        let name = rustix::fs::fstatfs(file).map_or_else(
            |_| "an unknown file system".to_string(),
            |s| fs_name(s.f_type as i64),
        );
        let stable_writes = rustix::fs::fstat(file).ok().and_then(|st| {
            let dev = st.st_dev;
            stable_writes(rustix::fs::major(dev), rustix::fs::minor(dev))
        });
        FileSystem {
            name,
            stable_writes,
        }
    }

    fn stable_writes_text(&self) -> &'static str {
        match self.stable_writes {
            Some(true) => "its device asks for stable pages: stable_writes = 1",
            Some(false) => "its device does not ask for stable pages: stable_writes = 0",
            None => "no block device says whether it needs stable pages",
        }
    }
}

/// `queue/stable_writes` of the block device `major:minor` (of its disk, for a
/// partition).
fn stable_writes(major: u32, minor: u32) -> Option<bool> {
    let dev = std::fs::canonicalize(format!("/sys/dev/block/{major}:{minor}")).ok()?;
    let read = |p: std::path::PathBuf| std::fs::read_to_string(p).ok();
    let text = read(dev.join("queue/stable_writes"))
        .or_else(|| read(dev.parent()?.join("queue/stable_writes")))?;
    Some(text.trim() == "1")
}

fn fs_name(magic: i64) -> String {
    match magic {
        0xEF53 => "ext4".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        0x0102_1994 => "tmpfs".into(),
        0x2FC1_2FC1 => "zfs".into(),
        0x6969 => "nfs".into(),
        0x794C_7630 => "overlayfs".into(),
        0xF2F5_2010 => "f2fs".into(),
        other => format!("file system {other:#x}"),
    }
}
