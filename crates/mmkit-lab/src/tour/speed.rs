//! Tour claim 14: a mapped scan against `read()`, for a large and a small warm file.
//! A quick ratio (median of 5 interleaved runs); `mmkit bench` and the criterion bench
//! measure it properly.
//!
//! # Safety
//!
//! Scans, as a slice (`Mapping::as_slice`), a mapping of a file the tour just wrote and
//! nothing else changes.
#![allow(unsafe_code)]

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

use super::{bytes, Ctx, Outcome};
use mmkit::helpers::median_time;
use mmkit::lab_seam::ErrorExt;
use mmkit::MapOptions;
use mmkit::{Error, Op, Result};

/// The scan both sides do: `mmkit bench`'s wrapping sum of 64-bit words.
use crate::bench::scan;

/// A fresh lazy mapping: with large page-cache folios one fault maps a whole folio,
/// which beats `MAP_POPULATE` (page by page) for a single pass.
fn scan_mapped(file: &File) -> Result<u64> {
    let map = MapOptions::new().map(file)?;
    // SAFETY: the tour owns this file in its own directory; nothing writes or truncates
    // it while the slice lives.
    Ok(scan(unsafe { map.as_slice() }))
}

fn scan_read(file: &mut File, buf: &mut [u8]) -> Result<u64> {
    let io = |e: std::io::Error| Error::io(Op::Read, &e);
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut sum = 0u64;
    loop {
        let n = file.read(buf).map_err(io)?;
        if n == 0 {
            return Ok(sum);
        }
        sum = sum.wrapping_add(scan(&buf[..n]));
    }
}

/// Median over 5 runs of `reps` calls each, for two methods interleaved.
fn race(
    reps: u32,
    mut a: impl FnMut() -> Result<u64>,
    mut b: impl FnMut() -> Result<u64>,
) -> Result<(Duration, Duration)> {
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for round in 0..6 {
        for (f, times) in [
            (&mut a as &mut dyn FnMut() -> Result<u64>, &mut ta),
            (&mut b, &mut tb),
        ] {
            let t = Instant::now();
            for _ in 0..reps {
                std::hint::black_box(f()?);
            }
            if round > 0 {
                times.push(t.elapsed() / reps); // round 0 warms up
            }
        }
    }
    Ok((median_time(&mut ta), median_time(&mut tb)))
}

fn compare(
    ctx: &Ctx,
    name: &str,
    len: usize,
    reps: u32,
    buf_len: usize,
) -> Result<(Duration, Duration)> {
    let (_, file) = ctx.file(name, len)?;
    let mut reader = file
        .try_clone()
        .map_err(|e| Error::io(Op::Open, &e).with_path(Some(&ctx.dir)))?;
    let mut buf = vec![0u8; buf_len];
    let check = scan_mapped(&file)? == scan_read(&mut reader, &mut buf)?;
    if !check {
        return Err(Error::new(Op::Read, mmkit::ErrorKind::Unsupported)
            .detail("mapped and read() scans disagree"));
    }
    race(
        reps,
        || scan_mapped(&file),
        || scan_read(&mut reader, &mut buf),
    )
}

fn rate(len: usize, t: Duration) -> String {
    format!("{:.1} GB/s", len as f64 / t.as_secs_f64() / 1e9)
}

/// Claim 14.
pub(super) fn scan_vs_read(ctx: &Ctx) -> Result<Outcome> {
    let large = 128 << 20;
    let small = 4 << 10;
    let (lm, lr) = compare(ctx, "claim14-large.dat", large, 1, 1 << 20)?;
    let (sm, sr) = compare(ctx, "claim14-small.dat", small, 2000, 1 << 20)?;
    let ratio = |m: Duration, r: Duration| r.as_secs_f64() / m.as_secs_f64();
    let measured = format!(
        "{} warm file: mmap+scan {} vs read()+scan {} ({:.2}x); {} file: mmap+scan {:.1} µs vs read()+scan {:.1} µs ({:.2}x)",
        bytes(large as u64),
        rate(large, lm),
        rate(large, lr),
        ratio(lm, lr),
        bytes(small as u64),
        sm.as_secs_f64() * 1e6,
        sr.as_secs_f64() * 1e6,
        ratio(sm, sr),
    );
    Ok(Outcome::check(lm < lr, measured))
}
