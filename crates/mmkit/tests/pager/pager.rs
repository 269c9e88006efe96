//! The pager against its sources: random access from several threads compared byte for
//! byte with the source (generated data, a real file, zstd files made by mmkit and by
//! the `zstd` CLI), read-ahead and its counters, the memory budget measured in smaps,
//! closing while readers are blocked, and the error when userfaultfd is refused.
//!
//! Tests that need userfaultfd print `skipped: <reason>` where it is not allowed.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mmkit::pager::{
    compress_seekable, FileSource, FnSource, Pager, PagerOptions, Source, ZstdSource,
};
use mmkit::ErrorKind;

use crate::pager_common;
use mmkit::helpers::XorShift;
use pager_common::{build, cut_file, hash_byte, hashed, nonzero_file};

const PAGE: usize = 4096;

fn expected(src: &dyn Source) -> Vec<u8> {
    let mut v = vec![0u8; (src.len() as usize).next_multiple_of(PAGE)];
    src.read_at(0, &mut v).expect("read the source");
    v.truncate(src.len() as usize);
    v
}

/// Four threads read random ranges (through the slice and through `read_at`) and compare
/// them with `want`.
fn random_check(pager: &Pager, want: &[u8], reads_per_thread: usize) {
    std::thread::scope(|s| {
        for t in 0..4u64 {
            s.spawn(move || {
                let mut rng = XorShift::new(0x1234_5678 + t * 7919);
                let mut buf = vec![0u8; 3 * PAGE];
                for i in 0..reads_per_thread {
                    let off = (rng.next_u64() % want.len() as u64) as usize;
                    let n =
                        ((rng.next_u64() % (3 * PAGE) as u64) as usize + 1).min(want.len() - off);
                    if i % 2 == 0 {
                        assert_eq!(
                            &pager.as_slice()[off..off + n],
                            &want[off..off + n],
                            "slice at {off}"
                        );
                    } else {
                        pager.read_at(off, &mut buf[..n]).expect("read_at");
                        assert_eq!(&buf[..n], &want[off..off + n], "read_at at {off}");
                    }
                }
            });
        }
    });
}

#[test]
fn random_access_from_four_threads_matches_generated_source() {
    // Not a whole number of pages: the last page is short.
    let len = 3 * 1024 * 1024 + 123;
    let src: Arc<dyn Source> = Arc::new(hashed(len));
    let want = expected(&*src);
    for threads in [1, 2] {
        let Some(pager) = build(PagerOptions::new().threads(threads), Arc::clone(&src)) else {
            return;
        };
        assert_eq!(pager.len(), len as usize);
        random_check(&pager, &want, 400);
        // Then everything, so every page was filled exactly once.
        assert_eq!(pager.as_slice(), &want[..]);
        let st = pager.stats();
        let pages = (len as usize).div_ceil(PAGE) as u64;
        assert_eq!(st.pages_filled, pages, "{st:?}");
        // Two threads faulting on one page both queue a fault; one fill serves both.
        assert!(st.bytes_read >= pages * PAGE as u64, "{st:?}");
        assert_eq!(st.failed_faults, 0);
    }
}

#[test]
fn random_access_matches_a_real_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let data: Vec<u8> = (0..2_000_000u64).map(hash_byte).collect();
    std::fs::write(&path, &data).unwrap();
    let src = Arc::new(FileSource::open(&path).unwrap());
    let Some(pager) = build(PagerOptions::new().threads(2), src) else {
        return;
    };
    random_check(&pager, &data, 300);
    assert_eq!(pager.as_slice(), &data[..]);
}

fn zstd_data() -> Vec<u8> {
    // Half noise, half text, so frames compress differently.
    (0..1_500_000u64)
        .map(|i| {
            if i < 750_000 {
                hash_byte(i)
            } else {
                b"pager pages page by page "[(i % 25) as usize]
            }
        })
        .collect()
}

#[test]
fn random_access_matches_a_seekable_zstd_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.zst");
    let data = zstd_data();
    let mut out = std::fs::File::create(&path).unwrap();
    compress_seekable(&mut &data[..], &mut out, 64 * 1024, 3).unwrap();
    drop(out);
    let src = Arc::new(ZstdSource::open(&path).unwrap());
    let Some(pager) = build(&PagerOptions::new(), src) else {
        return;
    };
    random_check(&pager, &data, 200);
    assert_eq!(pager.as_slice(), &data[..]);
}

#[test]
fn random_access_matches_a_zstd_cli_file() {
    if !pager_common::peer("zstd", "zstd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("data");
    let data = zstd_data();
    std::fs::write(&raw, &data).unwrap();
    let st = Command::new("zstd")
        .args(["-q", "-3", "-f"])
        .arg(&raw)
        .status()
        .unwrap();
    assert!(st.success());
    let src = Arc::new(ZstdSource::open(dir.path().join("data.zst")).unwrap());
    let Some(pager) = build(&PagerOptions::new(), src) else {
        return;
    };
    random_check(&pager, &data, 100);
    assert_eq!(pager.as_slice(), &data[..]);
}

#[test]
fn sequential_scan_is_read_ahead_in_growing_windows() {
    let pages = 1000usize;
    for ra in [1usize, 8, 32] {
        let src: Arc<dyn Source> = Arc::new(hashed((pages * PAGE) as u64));
        // The synchronous windows alone (pager_readahead.rs tests the windows ahead).
        let Some(pager) = build(
            PagerOptions::new().readahead(ra).async_readahead(false),
            src,
        ) else {
            return;
        };
        let mut sum = 0u64;
        for i in (0..pages * PAGE).step_by(PAGE) {
            sum += u64::from(pager.as_slice()[i]);
        }
        assert!(sum > 0);
        let st = pager.stats();
        assert_eq!(st.pages_filled, pages as u64, "ra {ra}: {st:?}");
        // The window grows 1, 2, 4, ... ra: the first log2(ra)+1 faults cover 2ra-1 pages,
        // then one fault per ra pages.
        let ramp = ra.trailing_zeros() as usize + 1;
        let want = ramp + (pages - (2 * ra - 1)).div_ceil(ra);
        assert_eq!(
            st.faults - st.spurious_faults,
            want as u64,
            "ra {ra}: {st:?}"
        );
        assert_eq!(st.readahead_pages, (pages - want) as u64, "ra {ra}: {st:?}");
        assert_eq!(st.readahead_hits, want as u64 - 1, "ra {ra}: {st:?}");
    }
}

#[test]
fn random_faults_do_not_read_ahead() {
    let pages = 512usize;
    let src: Arc<dyn Source> = Arc::new(hashed((pages * PAGE) as u64));
    let Some(pager) = build(PagerOptions::new().readahead(32), src) else {
        return;
    };
    // Every third page, backwards: never the page after the last run.
    for p in (0..pages).rev().step_by(3) {
        assert_eq!(pager.as_slice()[p * PAGE], hash_byte((p * PAGE) as u64));
    }
    let st = pager.stats();
    let touched = pages.div_ceil(3) as u64;
    assert_eq!(st.pages_filled, touched, "{st:?}");
    assert_eq!(st.faults - st.spurious_faults, touched, "{st:?}");
    assert_eq!((st.readahead_pages, st.readahead_hits), (0, 0), "{st:?}");
}

#[test]
fn empty_source_gives_an_empty_pager() {
    let pager = PagerOptions::new()
        .build(Arc::new(hashed(0)))
        .expect("an empty pager needs no userfaultfd");
    assert!(pager.is_empty());
    assert_eq!(pager.as_slice(), &[] as &[u8]);
    pager.read_at(0, &mut []).unwrap();
    assert_eq!(
        pager.read_at(0, &mut [0]).unwrap_err().kind(),
        ErrorKind::OutOfRange
    );
}

#[test]
fn read_past_the_end_is_out_of_range() {
    let Some(pager) = build(&PagerOptions::new(), Arc::new(hashed(5000))) else {
        return;
    };
    let mut buf = [0u8; 10];
    pager.read_at(4990, &mut buf).unwrap();
    let e = pager.read_at(4991, &mut buf).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OutOfRange);
    assert_eq!(
        pager.read_at(usize::MAX, &mut buf).unwrap_err().kind(),
        ErrorKind::OutOfRange
    );
}

#[test]
fn a_failing_source_gives_err_from_read_at() {
    struct Flaky;
    impl Source for Flaky {
        fn len(&self) -> u64 {
            (16 * PAGE) as u64
        }
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> mmkit::Result<()> {
            let bad = (5 * PAGE) as u64;
            if offset <= bad && bad < offset + buf.len() as u64 {
                // Borrow a real error: reading a directory.
                let dir = tempfile::tempdir().unwrap();
                return FileSource::open(dir.path()).map(|_| ());
            }
            buf.fill(1);
            Ok(())
        }
        fn describe(&self) -> String {
            "flaky".into()
        }
    }
    let Some(pager) = build(PagerOptions::new().readahead(8), Arc::new(Flaky)) else {
        return;
    };
    let mut buf = vec![0u8; PAGE];
    // Page 3, then 4: sequential, so 4 is filled with read-ahead over the bad page 5;
    // that read fails, and page 4 is filled alone.
    pager.read_at(3 * PAGE, &mut buf).unwrap();
    pager.read_at(4 * PAGE, &mut buf).unwrap();
    assert!(buf.iter().all(|&b| b == 1));
    let e = pager.read_at(5 * PAGE + 10, &mut buf[..100]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::StorageFault, "{e}");
    assert!(e.to_string().contains("flaky"), "{e}");
    // Again: still an error, never zeros.
    let e = pager.read_at(5 * PAGE, &mut buf[..1]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::StorageFault, "{e}");
    // The pages around it are fine.
    pager.read_at(6 * PAGE, &mut buf).unwrap();
    assert!(buf.iter().all(|&b| b == 1));
    assert_eq!(pager.stats().failed_faults, 1);
}

#[test]
fn close_wakes_blocked_readers_with_err() {
    for round in 0..4 {
        // 50 ms a page: the readers are blocked in faults when the pager closes.
        let handlers = 1 + round % 2;
        let src = FnSource::new((64 * PAGE) as u64, |off, buf| {
            std::thread::sleep(Duration::from_millis(50) * (buf.len() / PAGE) as u32);
            for (i, b) in buf.iter_mut().enumerate() {
                *b = hash_byte(off + i as u64);
            }
        });
        let Some(pager) = build(
            PagerOptions::new().readahead(1).threads(handlers),
            Arc::new(src),
        ) else {
            return;
        };
        let started = Instant::now();
        let results: Vec<_> = std::thread::scope(|s| {
            let readers: Vec<_> = (0..4)
                .map(|t| {
                    let pager = &pager;
                    s.spawn(move || {
                        let mut buf = vec![0u8; 16 * PAGE];
                        let r = pager.read_at(t * 16 * PAGE, &mut buf);
                        (r, started.elapsed())
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_millis(120));
            pager.close();
            readers.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (t, (r, took)) in results.iter().enumerate() {
            let e = r.as_ref().expect_err("a reader blocked at close gets Err");
            assert_eq!(e.kind(), ErrorKind::Closed, "round {round} thread {t}: {e}");
            // 64 pages at 50 ms would take 3.2 s: every reader stopped long before.
            assert!(
                *took < Duration::from_millis(3000),
                "round {round} thread {t} took {took:?}"
            );
        }
        assert!(pager.is_closed());
        // Pages filled before close stay readable; new reads are refused.
        let mut b = [0u8; 1];
        assert_eq!(
            pager.read_at(0, &mut b).unwrap_err().kind(),
            ErrorKind::Closed
        );
        drop(pager);
    }
}

#[test]
fn budget_bounds_resident_memory_measured_in_smaps() {
    let budget = 1 << 20;
    let len = 4 * budget;
    let ra = 32;
    let src: Arc<dyn Source> = Arc::new(hashed(len as u64));
    let want = expected(&*src);
    for handlers in [1, 2] {
        let Some(pager) = build(
            PagerOptions::new()
                .budget(budget as u64)
                .readahead(ra)
                .threads(handlers),
            Arc::clone(&src),
        ) else {
            return;
        };
        let limit = (budget + ra * PAGE) as u64;
        let rss = || {
            mmkit::probe::region_stats(pager.as_ptr())
                .expect("smaps of the region")
                .rss
        };
        let mut max_rss = 0;
        let mut buf = vec![0u8; PAGE];
        // Twice sequentially, through the slice and through read_at.
        for pass in 0..2 {
            for p in 0..len / PAGE {
                let off = p * PAGE;
                if pass == 0 {
                    assert_eq!(&pager.as_slice()[off..off + PAGE], &want[off..off + PAGE]);
                } else {
                    pager.read_at(off, &mut buf).unwrap();
                    assert_eq!(&buf[..], &want[off..off + PAGE], "page {p}");
                }
                if p % 32 == 0 {
                    max_rss = max_rss.max(rss());
                }
            }
        }
        // Then randomly, from four threads.
        random_check(&pager, &want, 300);
        max_rss = max_rss.max(rss());
        let st = pager.stats();
        assert!(max_rss <= limit, "RSS {max_rss} over {limit}: {st:?}");
        assert!(pager.resident_pages() * PAGE <= budget, "{st:?}");
        // Every page was read at least twice: the budget made the pager evict and refill.
        assert!(st.pages_filled >= 2 * (len / PAGE) as u64, "{st:?}");
        assert!(
            st.evictions >= st.pages_filled - (budget / PAGE) as u64,
            "{st:?}"
        );
        println!("{handlers} handlers: max RSS {max_rss} of budget {budget}: {st:?}");
    }
}

#[test]
fn a_budget_over_a_read_only_source_refuses_writes() {
    let Some(mut pager) = build(
        PagerOptions::new().budget(64 * 1024),
        Arc::new(hashed(1 << 20)),
    ) else {
        return;
    };
    let e = pager.as_mut_slice().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
}

const SLICE_CHILD_ENV: &str = "MMKIT_PAGER_SLICE_AFTER_CLOSE_CHILD";

#[test]
fn a_slice_access_after_close_dies_with_sigbus_never_reads_zeros() {
    use std::os::unix::process::ExitStatusExt;
    if build(&PagerOptions::new(), Arc::new(hashed(4096))).is_none() {
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            mmkit_testkit::serial::test_name(module_path!(), "slice_after_close_child").as_str(),
            "--ignored",
            "--nocapture",
        ])
        .env(SLICE_CHILD_ENV, "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("filled page still readable"), "{text}");
    assert!(
        !text.contains("read an unfilled page after close"),
        "{text}"
    );
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGBUS),
        "{:?}\n{text}",
        out.status
    );
}

/// Runs only in the child started above: expected to die with SIGBUS.
#[test]
#[ignore = "run by a_slice_access_after_close_dies_with_sigbus_never_reads_zeros"]
fn slice_after_close_child() {
    assert!(std::env::var_os(SLICE_CHILD_ENV).is_some());
    let pager = PagerOptions::new()
        .readahead(1)
        .build(Arc::new(hashed((8 * PAGE) as u64)))
        .unwrap();
    let first = pager.as_slice()[0];
    pager.close();
    assert_eq!(pager.as_slice()[0], first);
    println!("filled page still readable");
    let b = std::hint::black_box(pager.as_slice())[5 * PAGE];
    println!("read an unfilled page after close: {b}");
}

#[test]
fn a_file_that_shrinks_under_the_pager_reads_zeros_past_its_new_end() {
    // The pager copies a file source's pages straight from a mapping of the file; past a
    // new end that copy faults in the kernel (EFAULT, never SIGBUS here), and the pages
    // are read with pread instead: zeros, as the file source documents.
    let dir = tempfile::tempdir().unwrap();
    let len = 300 * PAGE;
    let (path, data) = nonzero_file(dir.path(), len);
    let src = Arc::new(FileSource::open(&path).unwrap());
    // Windows grow to 64 pages as the scan goes, so one crosses the new end; none is
    // fetched ahead in the background (a page filled before the cut keeps its bytes).
    let opts = PagerOptions::new()
        .readahead(64)
        .async_readahead(false)
        .clone();
    let Some(pager) = build(&opts, src) else {
        return;
    };
    let cut = 100 * PAGE + 123;
    let mut head = vec![0u8; PAGE];
    pager.read_at(0, &mut head).unwrap();
    assert!(head == data[..PAGE], "the first page, before the cut");
    cut_file(&path, cut);
    let mut all = vec![0xeeu8; len];
    pager.read_at(0, &mut all).unwrap();
    assert!(all[..cut] == data[..cut], "the bytes before the new end");
    assert!(all[cut..].iter().all(|&b| b == 0), "zeros past the new end");
}
