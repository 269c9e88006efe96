//! `mmkit shm bench --wake`: how long a [`Shared<T>`] waiter in another process takes to
//! return once the initialiser has published the value.
//!
//! Each run makes a fresh memfd (every process maps it itself, at its own address, as
//! peers of a named segment do), then the parent calls [`SharedOptions::create_or_open`]
//! and wins the claim. Inside its initialiser it forks a waiter, which maps the memfd and
//! calls `create_or_open` too, telling the parent just before it does; the parent then
//! holds the claim for [`WakeBenchOptions::hold`] (so the waiter is surely asleep),
//! notes the time and returns, and `create_or_open` publishes the value. The waiter notes
//! the time as soon as its `create_or_open` returns and checks the value it sees.
//!
//! The wake latency is the waiter's time minus the parent's: from the end of the
//! initialiser (a store and a wake-up later the value is published) to the waiter's
//! return. Both times are read from `CLOCK_MONOTONIC` (`Instant`), which is the same
//! clock in every process, as durations since one `Instant` the child inherits.
//!
//! Forks a child per run, so it must run in a single-threaded process (the `mmkit` CLI
//! is).
//!
//! # Safety
//!
//! Starts the waiter with the `unsafe` `process::fork`, from a single-threaded process
//! (checked), whose closure takes no lock another thread may hold.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mmkit::lab_seam::ErrorExt;
use mmkit::map::MapOptions;
use mmkit::process::{fork, Exit};
use mmkit::shm::typed::{Shared, SharedOptions};
use mmkit::shm::Memfd;
use mmkit::{Error, ErrorKind, Op, Result};

/// What the wake benchmark measures.
#[derive(Debug, Clone)]
pub struct WakeBenchOptions {
    /// How many waits to time.
    pub runs: usize,
    /// How long the initialiser holds its claim after the waiter said it is about to
    /// wait.
    pub hold: Duration,
}

impl Default for WakeBenchOptions {
    fn default() -> Self {
        WakeBenchOptions {
            runs: 50,
            hold: Duration::from_millis(5),
        }
    }
}

/// The most runs (each forks a process and holds a claim for `hold`).
pub const MAX_RUNS: usize = 100_000;

/// The longest hold: a waiter gives up after `SharedOptions`'s timeout, 10 s here.
pub const MAX_HOLD: Duration = Duration::from_secs(5);

/// What was measured.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct WakeReport {
    /// Waits timed.
    pub runs: usize,
    /// How long the initialiser held its claim, in nanoseconds.
    pub hold_ns: u64,
    /// Median wake latency.
    pub p50_ns: f64,
    /// 90th percentile.
    pub p90_ns: f64,
    /// Slowest.
    pub max_ns: f64,
    /// Fastest.
    pub min_ns: f64,
    /// How the waiter sleeps, for people: what this build of `Shared<T>` does.
    pub waiter: &'static str,
}

/// Time `opts.runs` wake-ups; `progress` is told the run number.
///
/// # Errors
/// A multi-threaded caller; runs or hold out of range; a waiter that failed, saw a
/// value other than the initialiser's, or timed out.
pub fn run(opts: &WakeBenchOptions, mut progress: impl FnMut(usize)) -> Result<WakeReport> {
    let bad = |what: String| Error::new(Op::View, ErrorKind::Unsupported).detail(what);
    if opts.runs == 0 || opts.runs > MAX_RUNS {
        return Err(bad(format!(
            "runs must be from 1 to {MAX_RUNS}, not {}",
            opts.runs
        )));
    }
    if opts.hold > MAX_HOLD {
        return Err(bad(format!(
            "the hold must be at most {MAX_HOLD:?}, not {:?}",
            opts.hold
        )));
    }
    super::check_single_threaded()?;
    // Two words the processes stamp: [0] the parent's publish, [8] the waiter's return.
    let stamps = MapOptions::new().len(4096).map_anon_shared()?;
    let words = stamps.atomic_u64s(0, 16)?;
    let mut lat = Vec::with_capacity(opts.runs);
    for i in 0..opts.runs {
        progress(i);
        lat.push(one(opts.hold, &words[0], &words[8])?);
    }
    lat.sort_unstable();
    let at = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)] as f64;
    Ok(WakeReport {
        runs: opts.runs,
        hold_ns: opts.hold.as_nanos() as u64,
        p50_ns: at(0.5),
        p90_ns: at(0.9),
        max_ns: at(1.0),
        min_ns: at(0.0),
        waiter: super::WAITER_SLEEP,
    })
}

/// The value the initialiser stores and the waiter must see.
const SEED: u64 = 0x5eed_0001;

/// An error unless the waiter exited 0 (it saw the value published).
fn waiter_ended(code: Exit) -> Result<()> {
    if code != Exit::Code(0) {
        return Err(Error::new(Op::Process, ErrorKind::Unsupported)
            .detail(format!(
                "the wake bench's waiter ended with {}",
                code.describe()
            ))
            .hint("exit 3: its create_or_open failed (timeout?); 4: it saw another value"));
    }
    Ok(())
}

/// One timed wait: nanoseconds from the parent's publish to the waiter's return.
fn one(hold: Duration, published: &AtomicU64, returned: &AtomicU64) -> Result<u64> {
    let seg = Memfd::new("mmkit-wake-bench")
        .size(Shared::<AtomicU64>::required_len() as u64)
        .create(&[])?;
    let base = Instant::now();
    let ns = |t: Instant| t.duration_since(base).as_nanos() as u64;
    published.store(0, Ordering::Relaxed);
    returned.store(0, Ordering::Relaxed);
    let mut opts = SharedOptions::new(1);
    opts.timeout(Duration::from_secs(10));
    let mut waiter = None;
    let shared = opts.create_or_open::<AtomicU64>(seg.map()?, |s| {
        // SAFETY: single-threaded (checked by `run`); the child maps the memfd, waits,
        // stamps a shared atomic and returns.
        let mut child = unsafe {
            fork(|link| {
                let Ok(map) = seg.map() else { return 2 };
                link.send(b'w');
                let got = opts.create_or_open::<AtomicU64>(map, |_| {
                    Err(Error::new(Op::View, ErrorKind::Busy)
                        .detail("the waiter won a claim the parent held"))
                });
                returned.store(ns(Instant::now()), Ordering::Release);
                match got.map(|s| s.with(|v| v.load(Ordering::Relaxed))) {
                    Ok(Ok(SEED)) => 0,
                    Ok(_) => 4,
                    Err(_) => 3,
                }
            })
        }?;
        s.with(|v| v.store(SEED, Ordering::Relaxed))?;
        // The waiter is about to call create_or_open; give it time to fall asleep.
        let said = child.recv();
        waiter = Some(child);
        if said != Some(b'w') {
            return Err(Error::new(Op::Process, ErrorKind::Unsupported)
                .detail("the wake bench's waiter ended before it waited"));
        }
        std::thread::sleep(hold);
        published.store(ns(Instant::now()), Ordering::Release);
        Ok(())
    });
    let child = waiter.ok_or_else(|| {
        Error::new(Op::Process, ErrorKind::Unsupported)
            .detail("the wake bench did not win the claim on its own fresh memfd")
    })?;
    let shared = shared?;
    let code = child.wait()?;
    drop(shared);
    waiter_ended(code)?;
    let (p, r) = (
        published.load(Ordering::Acquire),
        returned.load(Ordering::Acquire),
    );
    Ok(r.saturating_sub(p))
}
