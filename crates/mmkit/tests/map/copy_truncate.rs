//! A file truncated while `mmkit::copy` moves it, in every method, into a pipe and into a
//! file, many times over: never a signal, never an error, and the bytes delivered are the
//! file's own from the start (the copy's count says how many).
//!
//! Into a pipe the truncation is certain to land mid-copy: the reader takes a random number
//! of bytes, truncates the file itself while the copy waits on the full pipe, and reads the
//! rest. Into a file it races: another thread truncates after a random delay.
//!
//! Rounds per method and destination: `MMKIT_COPY_RACE_ROUNDS` (default 40).

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use mmkit::copy::{CopyOptions, CopyReport, Method};
use mmkit::helpers::XorShift;

use common::random_nonzero;
use mmkit_testkit as common;

const SIZE: usize = 4 << 20;

fn rounds() -> usize {
    std::env::var("MMKIT_COPY_RACE_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40)
}

/// A length to truncate to: half the time a whole number of pages, else any byte.
fn cut_point(rng: &mut XorShift) -> u64 {
    let at = rng.next_u64() % SIZE as u64;
    if rng.next_u64() % 2 == 0 {
        at / 4096 * 4096
    } else {
        at
    }
}

fn truncate(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// What the rounds saw, for the summary line.
#[derive(Debug, Default)]
struct Seen {
    rounds: usize,
    cut_short: usize,
    /// Rounds that delivered zeros past the new end (from the page the kernel zeroed).
    zeros_past_end: usize,
    /// Of those, rounds cut at a page boundary.
    zeros_aligned: usize,
    /// The farthest zero past the new end.
    farthest_zero: usize,
}

/// Check one round: `got` was delivered by a copy of `data` reported as `r`, while the
/// file was cut to `cut` bytes.
fn check(what: &str, data: &[u8], cut: u64, r: &CopyReport, got: &[u8], seen: &mut Seen) {
    assert_eq!(
        got.len() as u64,
        r.bytes,
        "{what}: the count is what was delivered"
    );
    assert!(got.len() <= data.len(), "{what}");
    let cut = cut as usize;
    let whole = got.len().min(cut);
    assert!(
        got[..whole] == data[..whole],
        "{what}: the bytes below the new end differ from the file's"
    );
    if got.len() > cut && got[cut..] != data[cut..got.len()] {
        // Past the new end: bytes read before the truncation (the file's), or zeros the
        // kernel wrote over the rest of the page that holds the new end — only there.
        let page_end = cut.div_ceil(4096) * 4096;
        let mut zeros = false;
        for (i, &b) in got.iter().enumerate().skip(cut) {
            if b == 0 {
                zeros = true;
                seen.farthest_zero = seen.farthest_zero.max(i - cut);
                assert!(
                    i < page_end.max(cut.div_ceil(2 << 20) * (2 << 20)),
                    "{what}: a zero at {i}, past the page (or large folio) of the new end {cut}"
                );
            } else {
                assert_eq!(b, data[i], "{what}: byte {i} past the new end {cut}");
            }
        }
        seen.zeros_past_end += zeros as usize;
        assert!(
            !zeros || r.truncated,
            "{what}: zeros delivered without `truncated`: {r:?}"
        );
        seen.zeros_aligned += (zeros && cut % 4096 == 0) as usize;
    }
    // A truncation before the copy started shows in the size it saw.
    let requested = r.requested.expect("the size was known") as usize;
    assert!(
        requested <= data.len() && got.len() <= requested,
        "{what}: {r:?}"
    );
    if got.len() < requested {
        assert!(r.truncated, "{what}: short without `truncated`: {r:?}");
        seen.cut_short += 1;
    }
    seen.rounds += 1;
}

#[test]
#[cfg_attr(miri, ignore)]
fn truncated_into_a_pipe_mid_copy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("src");
    let data = random_nonzero(SIZE, 11);
    let mut rng = XorShift::new(99);
    for method in [
        Method::Sendfile,
        Method::Splice,
        Method::MmapWrite,
        Method::ReadWrite,
    ] {
        let mut seen = Seen::default();
        for round in 0..rounds() {
            std::fs::write(&path, &data).unwrap();
            let src = File::open(&path).unwrap();
            let cut = cut_point(&mut rng);
            let gate = (rng.next_u64() % (SIZE as u64 / 2)) as usize;
            let (r, w) = rustix::pipe::pipe().unwrap();
            let reader_path = path.clone();
            let reader = std::thread::spawn(move || {
                let mut r = File::from(r);
                let mut got = vec![0u8; gate];
                r.read_exact(&mut got).unwrap();
                truncate(&reader_path, cut);
                r.read_to_end(&mut got).unwrap();
                got
            });
            let report = CopyOptions::new().method(method).copy(&src, &w);
            drop(w);
            let got = reader.join().unwrap();
            let what = format!("{method:?} round {round}, cut to {cut} after {gate}");
            let report = report.unwrap_or_else(|e| panic!("{what}: {e}"));
            check(&what, &data, cut, &report, &got, &mut seen);
        }
        eprintln!("pipe, {method:?}: {seen:?}");
        assert_eq!(seen.rounds, rounds());
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn truncated_into_a_file_racing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("src");
    let out = dir.path().join("out");
    let data = random_nonzero(SIZE, 12);
    let mut rng = XorShift::new(7);
    for method in mmkit::copy::Method::ALL {
        let mut seen = Seen::default();
        for round in 0..rounds() {
            std::fs::write(&path, &data).unwrap();
            let src = File::open(&path).unwrap();
            let dst = File::create(&out).unwrap();
            let cut = cut_point(&mut rng);
            let delay = Duration::from_micros(rng.next_u64() % 3000);
            let cutter_path = path.clone();
            let cutter = std::thread::spawn(move || {
                let start = Instant::now();
                while start.elapsed() < delay {
                    std::hint::spin_loop();
                }
                truncate(&cutter_path, cut);
            });
            let report = CopyOptions::new().method(method).copy(&src, &dst);
            cutter.join().unwrap();
            drop(dst);
            let got = std::fs::read(&out).unwrap();
            let what = format!("{method:?} round {round}, cut to {cut} after {delay:?}");
            let report = report.unwrap_or_else(|e| panic!("{what}: {e}"));
            // A truncation after the copy leaves it whole: the bytes past `cut` are the
            // file's, which `check` allows.
            check(&what, &data, cut, &report, &got, &mut seen);
        }
        eprintln!("file, {method:?}: {seen:?}");
    }
}
