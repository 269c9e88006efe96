//! The measurements of `mmkit shm bench`: each starts a forked peer (pinned when asked),
//! times a throughput run or round trips over one transport, and gives the figures to
//! [`super::run`].
//!
//! # Safety
//!
//! Starts the peer process with the `unsafe` `process::fork`, from a process `run`
//! checked is single-threaded; the closures take no lock another thread may hold.
#![allow(unsafe_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{Latency, RingWaits, Row, ShmBenchOptions, Transport};
use mmkit::lab_seam::ErrorExt;
use mmkit::map::MapOptions;
use mmkit::process::{fork, Child, ChildLink, Exit};
use mmkit::shm::ring::{Consumer, Producer, Ring, RingOptions, WaitStats};
use mmkit::{Error, ErrorKind, Op, Result};

/// CPUs to pin (parent, child) to, when pinning.
pub(super) type Pins = Option<(usize, usize)>;

/// Fork `f` as a child pinned to the child's CPU (when pinning).
pub(super) fn spawn(pins: Pins, f: impl FnOnce(&mut ChildLink) -> i32) -> Result<Child> {
    // SAFETY: the process has a single thread (checked in `run`), so no lock can be held
    // by a thread that does not exist in the child; `fork` catches a panic.
    unsafe {
        fork(move |link| {
            if let Some((_, child)) = pins {
                pin(child);
            }
            f(link)
        })
    }
}

/// Pin the parent to its CPU (when pinning).
pub(super) fn pin_parent(pins: Pins) {
    if let Some((parent, _)) = pins {
        pin(parent);
    }
}

fn pin(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    let _ = rustix::thread::sched_setaffinity(None, &set);
}

pub(super) fn finish(child: Child, what: &str) -> Result<()> {
    match child.wait()? {
        Exit::Code(0) => Ok(()),
        other => Err(Error::new(Op::Process, ErrorKind::Unsupported)
            .detail(format!("the {what} child ended with {}", other.describe()))),
    }
}

pub(super) fn measure(
    t: Transport,
    size: usize,
    count: u64,
    o: &ShmBenchOptions,
    pinned: Pins,
) -> Result<Row> {
    pin_parent(pinned);
    // Warm-up passes, then the measured ones.
    let ring = *RingOptions::new()
        .capacity(o.ring_capacity)
        .spin(o.ring_spin);
    throughput(t, size, count / 10 + 1, ring, pinned)?;
    let run = throughput(t, size, count, ring, pinned)?;
    round_trips(t, size, o.rounds / 10 + 1, ring, pinned)?;
    let rtt = round_trips(t, size, o.rounds, ring, pinned)?;
    let per_sec = count as f64 / run.secs;
    Ok(Row {
        transport: t,
        size,
        messages: count,
        msgs_per_sec: per_sec,
        bytes_per_sec: per_sec * size as f64,
        rtt,
        cpu_share: run.cpu,
        waits: run.waits,
    })
}

/// Byte streams both ways: (parent writes, child reads) and (child writes, parent reads).
struct Streams {
    to_child: (std::fs::File, std::fs::File),
    to_parent: (std::fs::File, std::fs::File),
}

fn streams(t: Transport) -> Result<Streams> {
    let os = |e| Error::io(Op::Process, &e);
    let pipe = || -> Result<(std::fs::File, std::fs::File)> {
        let (r, w) = rustix::pipe::pipe().map_err(|e| Error::os(Op::Process, e))?;
        Ok((std::fs::File::from(w), std::fs::File::from(r)))
    };
    match t {
        Transport::Pipe => Ok(Streams {
            to_child: pipe()?,
            to_parent: pipe()?,
        }),
        _ => {
            let (a, b) = UnixStream::pair().map_err(os)?;
            let (a2, b2) = (a.try_clone().map_err(os)?, b.try_clone().map_err(os)?);
            let f = |s: UnixStream| std::fs::File::from(std::os::fd::OwnedFd::from(s));
            Ok(Streams {
                to_child: (f(a), f(b)),
                to_parent: (f(b2), f(a2)),
            })
        }
    }
}

/// What a throughput run measured.
struct Throughput {
    secs: f64,
    /// The sender's and the receiver's CPU time over the wall time.
    cpu: (f64, f64),
    waits: Option<RingWaits>,
}

/// CPU time used by this process so far (user + system).
fn cpu_now() -> Duration {
    let (user, system) = crate::bench::cpu_time(mmkit::probe::CpuOf::Process);
    user + system
}

/// Seconds to move `count` messages of `size` bytes from parent to child, how much CPU
/// each side got meanwhile, and for the ring what its two sides did while waiting.
fn throughput(
    t: Transport,
    size: usize,
    count: u64,
    ring: RingOptions,
    pinned: Pins,
) -> Result<Throughput> {
    // Written by the child before it says "done": its CPU time over the run (word 4)
    // and, for the ring, the consumer's wait counts (words 0-3).
    let shared = MapOptions::new().len(4096).map_anon_shared()?;
    let words = shared.atomic_u64s(0, 5)?;
    match t {
        Transport::Ring => ring_throughput(size, count, ring, pinned, words),
        _ => stream_throughput(t, size, count, pinned, words),
    }
}

/// In the child: its CPU time since `since`, into word 4 of `words`.
fn store_child_cpu(words: &[AtomicU64], since: Duration) {
    words[4].store((cpu_now() - since).as_nanos() as u64, Ordering::Relaxed);
}

/// The parent's (`parent`) and the child's (word 4 of `words`) CPU time over `secs`.
fn cpu_shares(words: &[AtomicU64], secs: f64, parent: Duration) -> (f64, f64) {
    let child = words[4].load(Ordering::Relaxed) as f64 / 1e9;
    (parent.as_secs_f64() / secs, child / secs)
}

/// [`throughput`] through the ring; the child leaves its consumer's wait counts in
/// words 0-3.
fn ring_throughput(
    size: usize,
    count: u64,
    ring: RingOptions,
    pinned: Pins,
    words: &[AtomicU64],
) -> Result<Throughput> {
    let msg = vec![0x5au8; size];
    let ring = ring.anonymous()?;
    let mut child = spawn(pinned, |link| {
        let Ok(mut rx) = ring.consumer() else {
            return 2;
        };
        let cpu0 = cpu_now();
        link.send(b'r');
        let code = drain_ring(&mut rx, size, count);
        store_child_cpu(words, cpu0);
        let w = rx.wait_stats();
        for (word, v) in words.iter().zip([w.spun, w.sleeps, w.wakes, w.spin_ns]) {
            word.store(v, Ordering::Relaxed);
        }
        link.send(b'd');
        code
    })?;
    let mut tx = ring.producer()?;
    child.recv();
    let (start, cpu0) = (Instant::now(), cpu_now());
    for _ in 0..count {
        tx.send(&msg)?;
    }
    let sent = cpu_now() - cpu0;
    child.recv();
    let secs = start.elapsed().as_secs_f64();
    finish(child, "ring reader")?;
    let w = |i: usize| words[i].load(Ordering::Relaxed);
    let consumer = WaitStats {
        spun: w(0),
        sleeps: w(1),
        wakes: w(2),
        spin_ns: w(3),
    };
    Ok(Throughput {
        secs,
        cpu: cpu_shares(words, secs, sent),
        waits: Some(RingWaits::new(count, tx.wait_stats(), consumer)),
    })
}

/// [`throughput`] through a pipe or a Unix socket.
fn stream_throughput(
    t: Transport,
    size: usize,
    count: u64,
    pinned: Pins,
    words: &[AtomicU64],
) -> Result<Throughput> {
    let msg = vec![0x5au8; size];
    let s = streams(t)?;
    let (mut w, mut r) = s.to_child;
    let mut child = spawn(pinned, move |link| {
        let cpu0 = cpu_now();
        link.send(b'r');
        let mut buf = vec![0u8; size];
        for _ in 0..count {
            if r.read_exact(&mut buf).is_err() || buf[size - 1] != 0x5a {
                return 3;
            }
        }
        store_child_cpu(words, cpu0);
        link.send(b'd');
        0
    })?;
    child.recv();
    let (start, cpu0) = (Instant::now(), cpu_now());
    for _ in 0..count {
        w.write_all(&msg).map_err(|e| Error::io(Op::Send, &e))?;
    }
    let sent = cpu_now() - cpu0;
    child.recv();
    let secs = start.elapsed().as_secs_f64();
    finish(child, "stream reader")?;
    Ok(Throughput {
        secs,
        cpu: cpu_shares(words, secs, sent),
        waits: None,
    })
}

fn drain_ring(rx: &mut Consumer, size: usize, count: u64) -> i32 {
    for _ in 0..count {
        match rx.recv() {
            Ok(m) if m.len() == size && m.last() == Some(&0x5a) => {}
            _ => return 3,
        }
    }
    0
}

/// Percentiles of `rounds` round trips of `size`-byte messages.
fn round_trips(
    t: Transport,
    size: usize,
    rounds: usize,
    ring: RingOptions,
    pinned: Pins,
) -> Result<Latency> {
    let mut times = Vec::with_capacity(rounds);
    let msg = vec![0x5au8; size];
    match t {
        Transport::Ring => {
            let (there, back) = (ring.anonymous()?, ring.anonymous()?);
            let child = spawn(pinned, |_| echo_ring(&there, &back, rounds))?;
            let (mut tx, mut rx) = (there.producer()?, back.consumer()?);
            for _ in 0..rounds {
                let start = Instant::now();
                tx.send(&msg)?;
                let m = rx.recv()?;
                times.push(start.elapsed());
                drop(m);
            }
            finish(child, "ring echo")?;
        }
        _ => {
            let s = streams(t)?;
            let (mut w, mut r) = (s.to_child.0, s.to_parent.1);
            let (mut cr, mut cw) = (s.to_child.1, s.to_parent.0);
            let child = spawn(pinned, move |_| {
                let mut buf = vec![0u8; size];
                for _ in 0..rounds {
                    if cr.read_exact(&mut buf).is_err() || cw.write_all(&buf).is_err() {
                        return 3;
                    }
                }
                0
            })?;
            let mut buf = vec![0u8; size];
            for _ in 0..rounds {
                let start = Instant::now();
                w.write_all(&msg).map_err(|e| Error::io(Op::Send, &e))?;
                r.read_exact(&mut buf)
                    .map_err(|e| Error::io(Op::Send, &e))?;
                times.push(start.elapsed());
            }
            finish(child, "stream echo")?;
        }
    }
    Ok(percentiles(&mut times))
}

fn echo_ring(there: &Ring, back: &Ring, rounds: usize) -> i32 {
    let (Ok(mut rx), Ok(mut tx)) = (there.consumer(), back.producer()) else {
        return 2;
    };
    for _ in 0..rounds {
        if echo_one(&mut rx, &mut tx).is_err() {
            return 3;
        }
    }
    0
}

fn echo_one(rx: &mut Consumer, tx: &mut Producer) -> Result<()> {
    let m = rx.recv()?;
    let mut r = tx.reserve(m.len())?;
    r.copy_from_slice(&m);
    r.commit();
    Ok(())
}

/// Round trips through two atomics spun on: the parent stores `i` in `ping` and spins
/// until the child stores `i` in `pong`.
pub(super) fn spin_limit(rounds: usize, pinned: Pins) -> Result<Row> {
    pin_parent(pinned);
    let words = MapOptions::new().len(4096).map_anon_shared()?;
    // Two words on different cache lines.
    let w = words.atomic_u64s(0, 32)?;
    let (ping, pong) = (&w[0], &w[16]);
    let total = rounds + rounds / 10;
    let child = spawn(pinned, |_| {
        for i in 1..=total as u64 {
            spin_for(ping, i);
            pong.store(i, Ordering::Release);
        }
        0
    })?;
    let mut times = Vec::with_capacity(rounds);
    for i in 1..=total as u64 {
        let start = Instant::now();
        ping.store(i, Ordering::Release);
        spin_for(pong, i);
        if i as usize > total - rounds {
            times.push(start.elapsed());
        }
    }
    finish(child, "spin echo")?;
    Ok(Row {
        transport: Transport::SpinLimit,
        size: 8,
        messages: 0,
        msgs_per_sec: 0.0,
        bytes_per_sec: 0.0,
        rtt: percentiles(&mut times),
        cpu_share: (0.0, 0.0),
        waits: None,
    })
}

fn spin_for(word: &AtomicU64, value: u64) {
    let start = Instant::now();
    let mut n = 0u32;
    while word.load(Ordering::Acquire) != value {
        std::hint::spin_loop();
        n = n.wrapping_add(1);
        // A peer on another CPU answers within a few hundred spins; one sharing this CPU
        // cannot answer until we give the CPU up (else each hop costs a time slice).
        if n % 16_384 == 0 {
            std::thread::yield_now();
        }
        // A peer that died leaves us spinning: give up after 10 s.
        if n % 4096 == 0 && start.elapsed() > Duration::from_secs(10) {
            return;
        }
    }
}

fn percentiles(times: &mut [Duration]) -> Latency {
    times.sort_unstable();
    let at = |q: f64| {
        let i = ((times.len() as f64 * q) as usize).min(times.len().saturating_sub(1));
        times.get(i).map_or(0.0, |d| d.as_nanos() as f64)
    };
    Latency {
        p50_ns: at(0.5),
        p99_ns: at(0.99),
        p999_ns: at(0.999),
        min_ns: at(0.0),
    }
}
