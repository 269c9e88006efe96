//! The pager's limits: numbers too large for its options, a source that panics, and the
//! memory budget under many concurrent faults, measured in a child process stopped for
//! each sample.
//!
//! Tests that need userfaultfd print `skipped: <reason>` where it is not allowed.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use mmkit::pager::{FileSource, Pager, PagerOptions, Source};
use mmkit::ErrorKind;

use crate::pager_common;
use mmkit::helpers::XorShift;
use pager_common::{build, hash_byte, hashed};

const PAGE: usize = 4096;

/// Run `f` on its own thread; its result, or a panic saying it hung. A guard against a
/// reader blocked forever, not a timing assertion: the limit is minutes.
fn or_hang<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: blocked (a hang)"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: the thread panicked"),
    }
}

/// Read the whole pager in `chunk`-byte steps and compare it with the hashed bytes.
fn check_all(pager: &Pager, chunk: usize) {
    let mut buf = vec![0u8; chunk];
    let mut off = 0;
    while off < pager.len() {
        let n = (pager.len() - off).min(chunk);
        pager.read_at(off, &mut buf[..n]).expect("read_at");
        for (i, &b) in buf[..n].iter().enumerate() {
            assert_eq!(b, hash_byte((off + i) as u64), "at {}", off + i);
        }
        off += n;
    }
}

#[test]
fn huge_read_ahead_threads_and_budgets_are_clamped_to_what_can_be_used() {
    let pages = 64;
    let cases: [(usize, usize, Option<u64>); 8] = [
        ((1 << 52) + 1, 1, None),
        (usize::MAX, 1, None),
        (usize::MAX, 2, Some(u64::MAX)),
        ((1 << 52) + 1, 3, Some(8 * PAGE as u64)),
        (usize::MAX, usize::MAX, Some(1)),
        (0, 0, Some(0)),
        (1, 1, Some(1 << 52)),
        (pages + 1, pages + 1, Some(PAGE as u64 - 1)),
    ];
    for (readahead, threads, budget) in cases {
        let what = format!("readahead {readahead}, threads {threads}, budget {budget:?}");
        let mut opts = PagerOptions::new();
        opts.readahead(readahead).threads(threads);
        if let Some(b) = budget {
            opts.budget(b);
        }
        let Some(pager) = build(&opts, Arc::new(hashed((pages * PAGE) as u64 - 100))) else {
            return;
        };
        let pager = Arc::new(pager);
        let p = Arc::clone(&pager);
        or_hang(&what, move || check_all(&p, 3 * PAGE + 5));
        let st = pager.stats();
        assert_eq!(st.failed_faults, 0, "{what}: {st:?}");
        if budget.is_none() {
            // Filled once each, the read-ahead wrapping to nothing smaller than asked.
            assert_eq!(st.pages_filled, pages as u64, "{what}: {st:?}");
        }
        // The budget, at least one page, holds.
        if let Some(b) = budget {
            let limit = (b as usize / PAGE).max(1);
            assert!(pager.resident_pages() <= limit, "{what}: {st:?}");
        }
    }
    // One page, every number at its largest.
    let Some(pager) = build(
        PagerOptions::new()
            .readahead(usize::MAX)
            .threads(usize::MAX)
            .budget(u64::MAX),
        Arc::new(hashed(1)),
    ) else {
        return;
    };
    let mut b = [0u8; 1];
    pager.read_at(0, &mut b).unwrap();
    assert_eq!(b[0], hash_byte(0));
}

/// A source whose `read_at` panics on one page.
struct Panicky {
    bad: u64,
}

impl Source for Panicky {
    fn len(&self) -> u64 {
        (16 * PAGE) as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> mmkit::Result<()> {
        let bad = self.bad * PAGE as u64;
        if offset <= bad && bad < offset + buf.len() as u64 {
            panic!("panicky source: page {}", self.bad);
        }
        for (i, b) in buf.iter_mut().enumerate() {
            *b = hash_byte(offset + i as u64);
        }
        Ok(())
    }
    fn describe(&self) -> String {
        "panicky".into()
    }
}

#[test]
fn a_source_that_panics_gives_err_to_the_reader_not_a_hang() {
    for (threads, budget) in [
        (1, None),
        (2, Some(4 * PAGE as u64)),
        (4, Some(PAGE as u64)),
    ] {
        let mut opts = PagerOptions::new();
        opts.readahead(8).threads(threads);
        if let Some(b) = budget {
            opts.budget(b);
        }
        let Some(pager) = build(&opts, Arc::new(Panicky { bad: 5 })) else {
            return;
        };
        let pager = Arc::new(pager);
        let what = format!("{threads} handlers, budget {budget:?}");
        let p = Arc::clone(&pager);
        let (e, again, after) = or_hang(&what, move || {
            let mut buf = vec![0u8; PAGE];
            // Pages 3 and 4: sequential, so 4 is read ahead over page 5, which panics;
            // page 4 is then filled alone.
            p.read_at(3 * PAGE, &mut buf).unwrap();
            p.read_at(4 * PAGE, &mut buf).unwrap();
            assert_eq!(buf[7], hash_byte(4 * PAGE as u64 + 7));
            let e = p.read_at(5 * PAGE + 10, &mut buf[..100]).unwrap_err();
            let again = p.read_at(5 * PAGE, &mut buf[..1]).unwrap_err();
            p.read_at(6 * PAGE, &mut buf).unwrap();
            (e, again, buf[1])
        });
        assert_eq!(e.kind(), ErrorKind::StorageFault, "{what}: {e}");
        assert!(e.to_string().contains("panicked"), "{what}: {e}");
        assert!(e.to_string().contains("panicky"), "{what}: {e}");
        assert_eq!(again.kind(), ErrorKind::StorageFault, "{what}: {again}");
        assert_eq!(after, hash_byte(6 * PAGE as u64 + 1), "{what}");
        assert_eq!(pager.stats().failed_faults, 1, "{what}");
        // Many readers at once on the bad page and around it: each gets its answer.
        let p = Arc::clone(&pager);
        or_hang(&what, move || {
            std::thread::scope(|s| {
                for t in 0..8 {
                    let p = &p;
                    s.spawn(move || {
                        let mut buf = vec![0u8; 2 * PAGE];
                        let off = (t % 4) * 3 * PAGE;
                        let r = p.read_at(off, &mut buf);
                        let hits_bad = off <= 5 * PAGE && 5 * PAGE < off + 2 * PAGE;
                        assert_eq!(r.is_err(), hits_bad, "offset {off}: {r:?}");
                    });
                }
            })
        });
    }
}

/// A source whose pages in `bad` fail, each with an error of its own (opening a missing
/// file named `page-N`), whose page `slow` takes a while to read (so faults queue
/// behind it and are read together), and whose reads of several ranges at once fail
/// with yet another error (`batch-read`), so the pager reads those pages again alone.
struct Flaky {
    bad: Vec<u64>,
    slow: AtomicUsize,
    batches: AtomicUsize,
}

/// A real error whose text names `name`.
fn error_naming(name: &str) -> mmkit::Error {
    FileSource::open(Path::new("/nonexistent-mmkit-test").join(name))
        .map(|_| ())
        .unwrap_err()
}

impl Source for Flaky {
    fn len(&self) -> u64 {
        (4096 * PAGE) as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> mmkit::Result<()> {
        let pages = offset / PAGE as u64..(offset + buf.len() as u64).div_ceil(PAGE as u64);
        if let Some(b) = self.bad.iter().find(|b| pages.contains(b)) {
            return Err(error_naming(&format!("page-{b}")));
        }
        if pages.contains(&(self.slow.load(Ordering::Relaxed) as u64)) {
            std::thread::sleep(Duration::from_millis(100));
        }
        for (i, b) in buf.iter_mut().enumerate() {
            *b = hash_byte(offset + i as u64);
        }
        Ok(())
    }
    fn read_ranges(&self, reads: &mut [(u64, &mut [u8])]) -> mmkit::Result<()> {
        if reads.len() > 1 {
            self.batches.fetch_add(1, Ordering::Relaxed);
            return Err(error_naming("batch-read"));
        }
        reads
            .iter_mut()
            .try_for_each(|(off, buf)| self.read_at(*off, buf))
    }
    fn describe(&self) -> String {
        "flaky".into()
    }
}

/// Issue 22, item 11: the error for a failed page is that page's, not the last error the
/// pager saw (another page's, or a batch read's that failed and then succeeded page by
/// page).
#[test]
fn a_failed_page_reports_its_own_error_not_the_last_one() {
    let src = Arc::new(Flaky {
        bad: vec![2, 9],
        slow: AtomicUsize::new(usize::MAX),
        batches: AtomicUsize::new(0),
    });
    let Some(pager) = build(
        PagerOptions::new()
            .readahead(16)
            .async_readahead(false)
            .threads(1),
        src.clone(),
    ) else {
        return;
    };
    let pager = Arc::new(pager);
    let p = Arc::clone(&pager);
    let fails = move |page: usize| {
        let mut b = [0u8; 1];
        p.read_at(page * PAGE, &mut b).unwrap_err().to_string()
    };
    let e2 = fails(2);
    assert!(e2.contains("page-2"), "{e2}");
    let e9 = fails(9);
    assert!(e9.contains("page-9"), "{e9}");
    let again = fails(2);
    assert!(
        again.contains("page-2") && !again.contains("page-9"),
        "page 2, after page 9 failed: {again}"
    );
    // Random faults queued behind a slow read are read together: that batch read fails,
    // the pages are read alone and succeed. Page 2's error is still page 2's.
    let mut round = 0;
    while src.batches.load(Ordering::Relaxed) == 0 && round < 20 {
        let gate = 100 + round * 64;
        src.slow.store(gate, Ordering::Relaxed);
        let p = Arc::clone(&pager);
        or_hang("a batch of faults", move || {
            std::thread::scope(|s| {
                let p = &p;
                s.spawn(move || {
                    let mut b = [0u8; 1];
                    p.read_at(gate * PAGE, &mut b).expect("the slow page");
                });
                std::thread::sleep(Duration::from_millis(20));
                for k in 0..8 {
                    s.spawn(move || {
                        let page = gate + 2 + 5 * k;
                        let mut b = [0u8; 1];
                        p.read_at(page * PAGE + 1, &mut b).expect("a batched page");
                        assert_eq!(b[0], hash_byte((page * PAGE + 1) as u64));
                    });
                }
            })
        });
        round += 1;
    }
    assert!(
        src.batches.load(Ordering::Relaxed) > 0,
        "no faults were read together in {round} rounds"
    );
    let last = fails(2);
    assert!(
        last.contains("page-2") && !last.contains("batch-read"),
        "page 2, after a batch read failed: {last}"
    );
}

const BUDGET_CHILD_ENV: &str = "MMKIT_PAGER_BUDGET_CHILD";

/// `Rss` of the mapping holding `addr` in `/proc/<pid>/smaps`, in bytes; `None` once
/// no mapping holds it (the child dropped its pager).
fn smaps_rss(pid: u32, addr: u64) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).expect("read smaps");
    let mut inside = false;
    for line in text.lines() {
        if let Some((range, _)) = line.split_once(' ') {
            if let Some((a, b)) = range.split_once('-') {
                if let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) {
                    inside = a <= addr && addr < b;
                    continue;
                }
            }
        }
        if inside {
            if let Some(kb) = line.strip_prefix("Rss:") {
                let kb = kb.trim().trim_end_matches("kB").trim();
                return Some(kb.parse::<u64>().expect("Rss in kB") * 1024);
            }
        }
    }
    None
}

/// Eight threads read random ranges of a 64 MiB pager with a budget, served by eight
/// handlers, in a child process; the parent stops the child (SIGSTOP, all its threads
/// at once) for each sample, so smaps sees one consistent moment, not a walk that
/// races evictions behind it and fills ahead of it.
#[test]
fn budget_holds_under_eight_concurrent_readers_measured_in_smaps() {
    if build(&PagerOptions::new(), Arc::new(hashed(4096))).is_none() {
        return;
    }
    for (budget, readahead) in [(4usize << 20, 32usize), (64 << 10, 32)] {
        // Reaped below by `waitpid`, which also reports it stopped.
        #[allow(clippy::zombie_processes)]
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                mmkit_testkit::serial::test_name(module_path!(), "budget_child").as_str(),
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(BUDGET_CHILD_ENV, format!("{budget} {readahead}"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let addr = loop {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "child ended early");
            // libtest may print "test budget_child ... " first on the same line.
            if let Some((_, a)) = line.trim().split_once("region ") {
                break u64::from_str_radix(a, 16).unwrap();
            }
        };
        let mut peak = 0;
        let mut samples = 0;
        let mut rounds = 0;
        let status = loop {
            rounds += 1;
            if rounds > 100_000 {
                // Minutes of rounds: the child hangs. Kill it (it is ours) and say so.
                // SAFETY: signalling our own child, which we have not reaped.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                panic!("the child did not finish: a fault waiting for room forever?");
            }
            // SAFETY: signalling our own child, which we have not reaped.
            assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGSTOP) }, 0);
            let mut st = 0;
            // SAFETY: waiting for our own child; `st` is a valid out-pointer.
            let r = unsafe { libc::waitpid(pid as i32, &mut st, libc::WUNTRACED) };
            assert_eq!(r, pid as i32);
            if !libc::WIFSTOPPED(st) {
                break st;
            }
            if let Some(rss) = smaps_rss(pid, addr) {
                peak = peak.max(rss);
                samples += 1;
            }
            // SAFETY: as above.
            assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGCONT) }, 0);
            // Let it run between samples (a pace, not a measurement).
            std::thread::sleep(std::time::Duration::from_millis(3));
        };
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child status {status:#x}: {rest}"
        );
        assert!(rest.contains("reads done"), "{rest}");
        println!(
            "budget {budget}, read-ahead {readahead}, 8 readers, 8 handlers: peak RSS {peak} \
             ({:.3} MiB) in {samples} stopped samples; {}",
            peak as f64 / (1 << 20) as f64,
            rest.trim()
        );
        assert!(samples > 0);
        // The documented bound: the budget plus one read-ahead window per handler
        // thread (8 here). Fills reserve before they copy, so the peak is the budget in
        // nearly every run; one run in about eight here measured 8 pages over.
        let bound = budget as u64 + 8 * readahead as u64 * 4096;
        assert!(
            peak <= bound,
            "peak RSS {peak} over budget {budget} + 8 windows of {readahead} pages"
        );
    }
}

/// Runs only in the child started above.
#[test]
#[ignore = "run by budget_holds_under_eight_concurrent_readers_measured_in_smaps"]
fn budget_child() {
    let cfg = std::env::var(BUDGET_CHILD_ENV).expect("run by the budget test");
    let mut it = cfg.split(' ').map(|s| s.parse::<usize>().unwrap());
    let (budget, readahead) = (it.next().unwrap(), it.next().unwrap());
    let len = 64 << 20;
    let pager = PagerOptions::new()
        .budget(budget as u64)
        .readahead(readahead)
        .threads(8)
        .build(Arc::new(hashed(len as u64)))
        .unwrap();
    println!("region {:x}", pager.as_ptr() as usize);
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let pager = &pager;
            s.spawn(move || {
                let mut rng = XorShift::new(0x5151_2323 + t * 104_729);
                let mut buf = vec![0u8; 64 << 10];
                for _ in 0..1000 {
                    let off = (rng.next_u64() % len as u64) as usize;
                    let n = ((rng.next_u64() % buf.len() as u64) as usize + 1).min(len - off);
                    pager.read_at(off, &mut buf[..n]).expect("read_at");
                    for (i, &b) in buf[..n].iter().enumerate().step_by(997) {
                        assert_eq!(b, hash_byte((off + i) as u64), "at {}", off + i);
                    }
                }
            });
        }
    });
    println!("reads done: {:?}", pager.stats());
}
