//! Asynchronous read-ahead: a sequential scan's next window is fetched in the background
//! and installed ahead of the reader. Checked byte for byte, with a slow source (the
//! reader then catches up with windows in flight and must be woken), a source whose
//! background reads fail (the pages are read when touched instead), many readers at once,
//! and random access (no window fetched ahead).
//!
//! Tests that need userfaultfd print `skipped: <reason>` where it is not allowed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mmkit::pager::{FnSource, PagerOptions, Source};

use crate::pager_common;
use mmkit::helpers::XorShift;
use pager_common::{build, hash_byte, hashed};

const PAGE: usize = 4096;

/// A hashed source that sleeps `delay` per read and counts reads.
fn slow(len: u64, delay: Duration, reads: Arc<AtomicU64>) -> FnSource {
    FnSource::new(len, move |off, buf| {
        reads.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(delay);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = hash_byte(off + i as u64);
        }
    })
}

fn check_page(bytes: &[u8], page: usize) {
    for (k, &b) in bytes.iter().enumerate().step_by(509) {
        let off = (page * PAGE + k) as u64;
        assert_eq!(b, hash_byte(off), "byte {off}");
    }
}

#[test]
fn a_scan_is_fetched_ahead_of_the_reader() {
    let pages = 4000usize;
    let reads = Arc::new(AtomicU64::new(0));
    let src = Arc::new(slow(
        (pages * PAGE) as u64,
        Duration::from_micros(300),
        reads.clone(),
    ));
    let Some(pager) = build(PagerOptions::new().readahead(64), src) else {
        return;
    };
    for p in 0..pages {
        check_page(&pager.as_slice()[p * PAGE..(p + 1) * PAGE], p);
    }
    let st = pager.stats();
    assert_eq!(st.pages_filled, pages as u64, "{st:?}");
    assert_eq!(
        st.bytes_read,
        (pages * PAGE) as u64,
        "each page read once: {st:?}"
    );
    assert!(
        st.prefetched_pages >= (pages * 9 / 10) as u64,
        "most pages come from windows fetched ahead: {st:?}"
    );
    // Windows of 64 pages: about one source read per window, not per page.
    assert!(
        reads.load(Ordering::Relaxed) < (pages / 32) as u64,
        "{st:?}"
    );
    assert_eq!(st.prefetch_errors, 0, "{st:?}");
}

#[test]
fn turning_it_off_keeps_the_synchronous_windows() {
    let pages = 1000usize;
    let src: Arc<dyn Source> = Arc::new(hashed((pages * PAGE) as u64));
    let Some(pager) = build(
        PagerOptions::new().readahead(32).async_readahead(false),
        src,
    ) else {
        return;
    };
    for p in 0..pages {
        check_page(&pager.as_slice()[p * PAGE..(p + 1) * PAGE], p);
    }
    let st = pager.stats();
    assert_eq!((st.prefetched_pages, st.prefetch_waits), (0, 0), "{st:?}");
    assert_eq!(st.pages_filled, pages as u64, "{st:?}");
}

#[test]
fn random_reads_fetch_nothing_ahead() {
    let pages = 20_000usize;
    let src: Arc<dyn Source> = Arc::new(hashed((pages * PAGE) as u64));
    let Some(pager) = build(PagerOptions::new().readahead(256), src) else {
        return;
    };
    let mut rng = XorShift::new(99);
    let mut touched = std::collections::HashSet::new();
    for _ in 0..200 {
        let p = (rng.next_u64() % pages as u64) as usize;
        touched.insert(p);
        check_page(&pager.as_slice()[p * PAGE..(p + 1) * PAGE], p);
    }
    let st = pager.stats();
    assert_eq!(st.prefetched_pages, 0, "{st:?}");
    // Two touched pages in a row may grow a synchronous window once; nothing more.
    assert!(st.pages_filled <= touched.len() as u64 + 8, "{st:?}");
}

/// A hashed source whose reads of more than 4 pages fail (every background window, and
/// the larger synchronous ones, which then fall back to the faulting page alone).
fn big_reads_fail(len: u64) -> FnSource {
    FnSource::new(len, |off, buf| {
        if buf.len() > 4 * PAGE {
            panic!("a read of {} bytes failed (test)", buf.len());
        }
        for (i, b) in buf.iter_mut().enumerate() {
            *b = hash_byte(off + i as u64);
        }
    })
}

#[test]
fn failed_background_windows_are_read_when_touched() {
    let pages = 600usize;
    let src: Arc<dyn Source> = Arc::new(big_reads_fail((pages * PAGE) as u64));
    // Windows ahead are 8 pages: every one fails.
    let Some(pager) = build(PagerOptions::new().readahead(8), src) else {
        return;
    };
    let mut buf = vec![0u8; PAGE];
    for p in 0..pages {
        pager.read_at(p * PAGE, &mut buf).expect("every page reads");
        check_page(&buf, p);
    }
    let st = pager.stats();
    assert_eq!(st.failed_faults, 0, "{st:?}");
    assert_eq!(st.pages_filled, pages as u64, "{st:?}");
    assert!(st.prefetch_errors > 0, "{st:?}");
}

#[test]
fn many_readers_scanning_at_once_see_the_right_bytes() {
    let pages = 8192usize;
    let src = Arc::new(slow(
        (pages * PAGE) as u64,
        Duration::from_micros(100),
        Arc::new(AtomicU64::new(0)),
    ));
    let Some(pager) = build(PagerOptions::new().readahead(128).threads(4), src) else {
        return;
    };
    let pager = &pager;
    std::thread::scope(|s| {
        for t in 0..8usize {
            s.spawn(move || {
                // Each reader scans its own eighth, then all of it from a random start:
                // readers overlap windows in flight and markers.
                let part = pages / 8;
                for p in t * part..(t + 1) * part {
                    check_page(&pager.as_slice()[p * PAGE..(p + 1) * PAGE], p);
                }
                let start = (XorShift::new(t as u64 + 1).next_u64() % pages as u64) as usize;
                for k in 0..pages {
                    let p = (start + k) % pages;
                    check_page(&pager.as_slice()[p * PAGE..(p + 1) * PAGE], p);
                }
            });
        }
    });
    let st = pager.stats();
    assert_eq!(
        st.pages_filled, pages as u64,
        "each page filled once: {st:?}"
    );
    assert_eq!(st.failed_faults, 0, "{st:?}");
}

#[test]
fn dropping_a_pager_mid_scan_does_not_hang() {
    for _ in 0..20 {
        let pages = 2048usize;
        let src = Arc::new(slow(
            (pages * PAGE) as u64,
            Duration::from_millis(2),
            Arc::new(AtomicU64::new(0)),
        ));
        let Some(pager) = build(PagerOptions::new().readahead(64), src) else {
            return;
        };
        for p in 0..100 {
            check_page(&pager.as_slice()[p * PAGE..(p + 1) * PAGE], p);
        }
        // Windows are queued and in flight: drop waits for the reads under way only.
        drop(pager);
    }
}

/// A hashed source that takes 3 ms a call and counts its `read_ranges` calls: a remote
/// object in miniature.
struct Remote {
    len: u64,
    batches: AtomicU64,
}

impl Source for Remote {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> mmkit::Result<()> {
        std::thread::sleep(Duration::from_millis(3));
        for (i, b) in buf.iter_mut().enumerate() {
            *b = hash_byte(offset + i as u64);
        }
        Ok(())
    }
    fn read_ranges(&self, reads: &mut [(u64, &mut [u8])]) -> mmkit::Result<()> {
        self.batches.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(3));
        for (offset, buf) in reads.iter_mut() {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = hash_byte(*offset + i as u64);
            }
        }
        Ok(())
    }
    fn describe(&self) -> String {
        "remote (test)".into()
    }
}

#[test]
fn random_faults_queued_together_are_read_with_one_call() {
    let pages = 50_000usize;
    let src = Arc::new(Remote {
        len: (pages * PAGE) as u64,
        batches: AtomicU64::new(0),
    });
    let Some(pager) = build(&PagerOptions::new(), src.clone()) else {
        return;
    };
    let pager = &pager;
    std::thread::scope(|s| {
        for t in 0..16u64 {
            s.spawn(move || {
                let mut rng = XorShift::new(t * 31 + 7);
                for _ in 0..20 {
                    let p = (rng.next_u64() % pages as u64) as usize;
                    check_page(&pager.as_slice()[p * PAGE..(p + 1) * PAGE], p);
                }
            });
        }
    });
    let st = pager.stats();
    assert!(st.batched_pages > 0, "16 threads' faults queue up: {st:?}");
    assert!(
        src.batches.load(Ordering::Relaxed) < st.batched_pages,
        "several pages a call: {st:?}"
    );
    assert_eq!(st.failed_faults, 0, "{st:?}");
}

/// A zstd frame larger than a window is decoded by one streaming decoder, which a jump
/// back restarts from the frame's start: no windows are read ahead out of order.
#[cfg(feature = "zstd")]
#[test]
fn a_large_zstd_frame_is_read_ahead_in_order_only() {
    use mmkit::pager::{compress_seekable, ZstdSource};
    let len = 12 << 20;
    let mut plain = vec![0u8; len];
    for (i, b) in plain.iter_mut().enumerate() {
        *b = hash_byte(i as u64) & 0x0f;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one-frame.zst");
    let mut out = std::fs::File::create(&path).unwrap();
    compress_seekable(&mut &plain[..], &mut out, len, 1).expect("compress");
    drop(out);
    let src = Arc::new(ZstdSource::open(&path).expect("open"));
    assert!(!src.reads_out_of_order());
    let Some(pager) = build(PagerOptions::new().readahead(64), src) else {
        return;
    };
    assert_eq!(pager.as_slice(), &plain[..]);
    let st = pager.stats();
    assert_eq!((st.prefetched_pages, st.prefetch_waits), (0, 0), "{st:?}");
}
