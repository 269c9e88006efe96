//! `mmkit shm bench`: the ring channel against a pipe and a Unix socket, between two
//! processes, in one run.
//!
//! For each message size it measures, per transport:
//!
//! - **throughput**: the parent sends `count` messages as fast as it can, a forked child
//!   receives them; messages per second from the first send to the child's "done";
//! - **round trip**: the parent sends one message, the child echoes it back, `rounds`
//!   times; the p50, p99 and p99.9 of the round-trip times.
//!
//! A fourth line measures the machine's limit for a round trip through shared memory:
//! two processes spinning on one atomic word each, with no protocol at all. Each
//! measurement is taken after a warm-up pass (first touches of memory are slow in a VM).
//! The processes are left to the scheduler unless `pin` asks for two CPUs (the first two
//! this process may run on).
//!
//! The report says where the two ends ran ([`Placement`]): on one CPU when only one is
//! available (`sched_getaffinity`), on the two pinned CPUs, or — unpinned — what the
//! spin limit shows: a spin round trip of about 100–300 ns needs the ends on two CPUs,
//! while one of a microsecond or more means they took turns on one CPU (each hop waits
//! for the other to be scheduled).
//!
//! Forks a child per measurement, so it must run in a single-threaded process (the
//! `mmkit` CLI is); otherwise it returns an error rather than fork unsafely.
//!
//! [`wake`] measures the other wait in `shm`: how soon a [`Shared<T>`](super::Shared)
//! waiter in another process returns once the value is published.
//!
//! # Safety
//!
//! Starts the peer process with the `unsafe` `process::fork`, whose closure
//! takes no lock another thread may hold.
#![allow(unsafe_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Op, Result};
use crate::map::MapOptions;
use crate::process::{fork, Child, ChildLink, Exit};
use crate::shm::ring::{Consumer, Producer, RingOptions};

pub mod wake;

/// The transports compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Transport {
    /// mmkit's ring channel (two rings for round trips).
    Ring,
    /// A pair of pipes; one `write` and one `read_exact` per message.
    Pipe,
    /// A `socketpair(AF_UNIX, SOCK_STREAM)`; one `write` and one `read_exact` a message.
    UnixSocket,
    /// Two atomics spun on in shared memory: the floor for any shared-memory round trip.
    SpinLimit,
}

impl Transport {
    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Ring => "ring",
            Transport::Pipe => "pipe",
            Transport::UnixSocket => "unix socket",
            Transport::SpinLimit => "spin limit",
        }
    }
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct ShmBenchOptions {
    /// Message sizes in bytes.
    pub sizes: Vec<usize>,
    /// Total bytes to send per throughput measurement (the count is this over the size,
    /// between 2 000 and 2 000 000 messages).
    pub bytes_per_run: u64,
    /// Round trips per latency measurement.
    pub rounds: usize,
    /// Ring data capacity in bytes.
    pub ring_capacity: usize,
    /// Pin the parent and the child to two different CPUs (the first two this process
    /// may run on); ignored when only one is available.
    pub pin: bool,
}

/// The most round trips per latency measurement (seconds of pipe round trips here).
pub const MAX_ROUNDS: usize = 1_000_000;

impl ShmBenchOptions {
    /// Refuse what cannot be measured: no sizes, a zero size, a size the ring cannot
    /// carry, a capacity the ring refuses, rounds out of 1..=[`MAX_ROUNDS`].
    ///
    /// # Errors
    /// `Unsupported` or `TooLarge`, saying which number and what to give instead.
    pub fn check(&self) -> Result<()> {
        let bad = |what: String| Error::new(Op::Send, ErrorKind::Unsupported).detail(what);
        if self.rounds == 0 || self.rounds > MAX_ROUNDS {
            return Err(bad(format!(
                "rounds must be from 1 to {MAX_ROUNDS}, not {}",
                self.rounds
            )));
        }
        if self.sizes.is_empty() || self.sizes.contains(&0) {
            return Err(bad("message sizes must be 1 byte or more".into()));
        }
        let cap = self.ring_capacity;
        if !cap.is_power_of_two() || !(4096..=1 << 40).contains(&cap) {
            return Err(bad(format!(
                "ring capacity {cap} must be a power of two from 4096 to 2^40 bytes"
            )));
        }
        let max = cap / 4 - 16;
        if let Some(&size) = self.sizes.iter().find(|&&s| s > max) {
            let need = size
                .checked_add(16)
                .and_then(|s| s.checked_mul(4))
                .and_then(usize::checked_next_power_of_two)
                .filter(|&n| n <= 1 << 40);
            let detail = match need {
                Some(n) => format!(
                    "{size}-byte messages need a ring of at least {} (--capacity)",
                    crate::size::format_size(n as u64)
                ),
                None => format!("{size}-byte messages are larger than any ring can carry"),
            };
            return Err(Error::new(Op::Send, ErrorKind::TooLarge).detail(detail));
        }
        Ok(())
    }
}

impl Default for ShmBenchOptions {
    fn default() -> Self {
        ShmBenchOptions {
            sizes: vec![64, 1024, 65536],
            bytes_per_run: 256 << 20,
            rounds: 20_000,
            ring_capacity: 4 << 20,
            pin: false,
        }
    }
}

/// Round-trip percentiles in nanoseconds.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Latency {
    /// Median.
    pub p50_ns: f64,
    /// 99th percentile.
    pub p99_ns: f64,
    /// 99.9th percentile.
    pub p999_ns: f64,
    /// Fastest.
    pub min_ns: f64,
}

/// One transport at one size.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Row {
    /// Which transport.
    pub transport: Transport,
    /// Message size in bytes.
    pub size: usize,
    /// Messages sent in the throughput run (0 for the spin limit).
    pub messages: u64,
    /// Messages per second (0 for the spin limit).
    pub msgs_per_sec: f64,
    /// Payload bytes per second.
    pub bytes_per_sec: f64,
    /// Round trips.
    pub rtt: Latency,
}

/// Where the parent and the child ran during the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Placement {
    /// Only one CPU is available to the process: both ends share it.
    OneCpu,
    /// Pinned to two different CPUs.
    Pinned,
    /// Not pinned, and the spin limit shows the ends ran on different CPUs.
    SeparateCpus,
    /// Not pinned, several CPUs available, but the spin limit's round trip (a
    /// microsecond or more) shows the ends took turns on one CPU: the machine is busy,
    /// or a CPU quota limits the process.
    SharedCpu,
}

/// A spin round trip (p50) at or above this means the two ends shared a CPU: across two
/// CPUs it is a cache-line transfer each way, 100–300 ns; on one CPU each hop waits for
/// a context switch.
pub const SHARED_CPU_SPIN_NS: f64 = 1_000.0;

impl Placement {
    /// Judge the placement from the CPUs available, the pinning and the spin limit's
    /// median round trip.
    pub fn judge(cpus: usize, pinned: bool, spin_p50_ns: f64) -> Placement {
        if cpus <= 1 {
            Placement::OneCpu
        } else if pinned {
            Placement::Pinned
        } else if spin_p50_ns >= SHARED_CPU_SPIN_NS {
            Placement::SharedCpu
        } else {
            Placement::SeparateCpus
        }
    }
}

/// The whole run.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ShmBenchReport {
    /// Every measurement, by size then transport.
    pub rows: Vec<Row>,
    /// Whether parent and child were pinned to different CPUs.
    pub pinned: bool,
    /// The CPUs they were pinned to (parent, child), when pinned.
    pub pinned_cpus: Option<(usize, usize)>,
    /// CPUs this process may run on (`sched_getaffinity`).
    pub cpus: usize,
    /// Where the two ends ran.
    pub placement: Placement,
    /// One sentence saying so, for people.
    pub note: String,
}

impl ShmBenchReport {
    /// The row for `transport` at `size`.
    pub fn row(&self, transport: Transport, size: usize) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.transport == transport && r.size == size)
    }
}

/// Run the benchmark; `progress` is told what is being measured.
///
/// # Errors
/// A multi-threaded caller; a size the ring cannot carry; a child that failed.
pub fn run(opts: &ShmBenchOptions, mut progress: impl FnMut(&str)) -> Result<ShmBenchReport> {
    opts.check()?;
    check_single_threaded()?;
    let allowed = allowed_cpus();
    let cpus = allowed.len().max(1);
    // Not pinned by default: on this kind of VM, pinning both ends to fixed CPUs made
    // ring round trips about 3x slower (1 µs against 0.3 µs) than letting the scheduler
    // place them.
    let pins = match allowed[..] {
        [a, b, ..] if opts.pin => Some((a, b)),
        _ => None,
    };
    let mut rows = Vec::new();
    progress("spin limit");
    let spin = spin_limit(opts.rounds, pins)?;
    let placement = Placement::judge(cpus, pins.is_some(), spin.rtt.p50_ns);
    let note = describe(placement, cpus, pins, spin.rtt.p50_ns, opts.pin);
    rows.push(spin);
    for &size in &opts.sizes {
        let count = (opts.bytes_per_run / size.max(1) as u64).clamp(2_000, 2_000_000);
        for t in [Transport::Ring, Transport::Pipe, Transport::UnixSocket] {
            progress(&format!("{} {size} B", t.name()));
            rows.push(measure(t, size, count, opts, pins)?);
        }
    }
    Ok(ShmBenchReport {
        rows,
        pinned: pins.is_some(),
        pinned_cpus: pins,
        cpus,
        placement,
        note,
    })
}

/// The CPUs this process may run on, ascending (`sched_getaffinity`; all online CPUs
/// when that fails).
fn allowed_cpus() -> Vec<usize> {
    match rustix::thread::sched_getaffinity(None) {
        Ok(set) => (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|&c| set.is_set(c))
            .collect(),
        Err(_) => (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect(),
    }
}

/// The note on where the ends ran.
fn describe(
    placement: Placement,
    cpus: usize,
    pins: Option<(usize, usize)>,
    spin_ns: f64,
    asked_pin: bool,
) -> String {
    let spin = if spin_ns >= 10_000.0 {
        format!("{:.1} µs", spin_ns / 1000.0)
    } else {
        format!("{spin_ns:.0} ns")
    };
    match (placement, pins) {
        (Placement::OneCpu, _) => format!(
            "one CPU available: parent and child share it, round trips include a context \
             switch{}",
            if asked_pin {
                " (--pin needs two CPUs)"
            } else {
                ""
            }
        ),
        (Placement::Pinned, Some((a, b))) => {
            format!("{cpus} CPUs available; parent pinned to CPU {a}, child to CPU {b}")
        }
        (Placement::SharedCpu, _) => format!(
            "{cpus} CPUs available, not pinned, but the spin round trip of {spin} shows \
             parent and child took turns on one CPU (a busy machine or a CPU quota): round \
             trips include context switches"
        ),
        _ => format!(
            "{cpus} CPUs available, not pinned; the spin round trip of {spin} shows parent \
             and child ran on different CPUs"
        ),
    }
}

pub(crate) fn check_single_threaded() -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    if threads != Some(1) {
        return Err(Error::new(Op::Process, ErrorKind::Unsupported)
            .detail("the shm bench forks children and must run in a single-threaded process")
            .hint("run it through the `mmkit shm bench` command"));
    }
    Ok(())
}

/// CPUs to pin (parent, child) to, when pinning.
type Pins = Option<(usize, usize)>;

/// Fork `f` as a child pinned to the child's CPU (when pinning).
fn spawn(pins: Pins, f: impl FnOnce(&mut ChildLink) -> i32) -> Result<Child> {
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
fn pin_parent(pins: Pins) {
    if let Some((parent, _)) = pins {
        pin(parent);
    }
}

fn pin(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    let _ = rustix::thread::sched_setaffinity(None, &set);
}

fn finish(child: Child, what: &str) -> Result<()> {
    match child.wait()? {
        Exit::Code(0) => Ok(()),
        other => Err(Error::new(Op::Process, ErrorKind::Unsupported)
            .detail(format!("the {what} child ended with {}", other.describe()))),
    }
}

fn measure(
    t: Transport,
    size: usize,
    count: u64,
    o: &ShmBenchOptions,
    pinned: Pins,
) -> Result<Row> {
    pin_parent(pinned);
    // Warm-up passes, then the measured ones.
    throughput(t, size, count / 10 + 1, o.ring_capacity, pinned)?;
    let secs = throughput(t, size, count, o.ring_capacity, pinned)?;
    round_trips(t, size, o.rounds / 10 + 1, o.ring_capacity, pinned)?;
    let rtt = round_trips(t, size, o.rounds, o.ring_capacity, pinned)?;
    let per_sec = count as f64 / secs;
    Ok(Row {
        transport: t,
        size,
        messages: count,
        msgs_per_sec: per_sec,
        bytes_per_sec: per_sec * size as f64,
        rtt,
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

/// Seconds to move `count` messages of `size` bytes from parent to child.
fn throughput(t: Transport, size: usize, count: u64, cap: usize, pinned: Pins) -> Result<f64> {
    let msg = vec![0x5au8; size];
    match t {
        Transport::Ring => {
            let ring = RingOptions::new().capacity(cap).anonymous()?;
            let mut child = spawn(pinned, |link| {
                let Ok(mut rx) = ring.consumer() else {
                    return 2;
                };
                link.send(b'r');
                let code = drain_ring(&mut rx, size, count);
                link.send(b'd');
                code
            })?;
            let mut tx = ring.producer()?;
            child.recv();
            let start = Instant::now();
            for _ in 0..count {
                tx.send(&msg)?;
            }
            child.recv();
            let secs = start.elapsed().as_secs_f64();
            finish(child, "ring reader")?;
            Ok(secs)
        }
        _ => {
            let s = streams(t)?;
            let (mut w, mut r) = s.to_child;
            let mut child = spawn(pinned, move |link| {
                link.send(b'r');
                let mut buf = vec![0u8; size];
                for _ in 0..count {
                    if r.read_exact(&mut buf).is_err() || buf[size - 1] != 0x5a {
                        return 3;
                    }
                }
                link.send(b'd');
                0
            })?;
            child.recv();
            let start = Instant::now();
            for _ in 0..count {
                w.write_all(&msg).map_err(|e| Error::io(Op::Send, &e))?;
            }
            child.recv();
            let secs = start.elapsed().as_secs_f64();
            finish(child, "stream reader")?;
            Ok(secs)
        }
    }
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
    cap: usize,
    pinned: Pins,
) -> Result<Latency> {
    let mut times = Vec::with_capacity(rounds);
    let msg = vec![0x5au8; size];
    match t {
        Transport::Ring => {
            let there = RingOptions::new().capacity(cap).anonymous()?;
            let back = RingOptions::new().capacity(cap).anonymous()?;
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

fn echo_ring(there: &crate::shm::ring::Ring, back: &crate::shm::ring::Ring, rounds: usize) -> i32 {
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
fn spin_limit(rounds: usize, pinned: Pins) -> Result<Row> {
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
