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
//! [`wake`] measures the other wait in `shm`: how soon a [`Shared<T>`](mmkit::shm::Shared)
//! waiter in another process returns once the value is published.
//!
//! For the ring's throughput run it also reports what the two sides did while waiting
//! ([`RingWaits`]: sleeps in `FUTEX_WAIT` and `FUTEX_WAKE`s per message, and the spin
//! budget), next to the spin it was given ([`ShmBenchOptions::ring_spin`]).

use std::time::Duration;

use measure::{measure, spin_limit};
use mmkit::lab_seam::ErrorExt;
use mmkit::{Error, ErrorKind, Op, Result};

mod measure;
pub mod wake;

/// How a [`Shared<T>`](mmkit::shm::Shared) waiter sleeps between looks at the state word
/// (`mmkit::shm::typed`'s wait, reported by the wake bench).
const WAITER_SLEEP: &str = "FUTEX_WAIT on the state word, 10 ms slices";

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
    /// How long a ring waiter spins before it sleeps, at most
    /// ([`RingOptions::spin`](mmkit::shm::ring::RingOptions::spin)).
    pub ring_spin: Duration,
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
                    mmkit::size::format_size(n as u64)
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
            ring_spin: Duration::from_micros(20),
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
    /// CPU time the sender and the receiver got during the throughput run, over its
    /// wall time (1.0: a whole CPU each). Below 1 for a busy-polling ring means the
    /// machine's other load (or the other end, on one CPU) took the rest.
    pub cpu_share: (f64, f64),
    /// The ring's waits in the throughput run (`None` for the other transports).
    pub waits: Option<RingWaits>,
}

/// What the ring's two sides did while waiting during a throughput run, per message.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RingWaits {
    /// The consumer's sleeps in `FUTEX_WAIT` (the ring was empty past its spin).
    pub consumer_sleeps_per_msg: f64,
    /// The producer's `FUTEX_WAKE`s for the consumer.
    pub producer_wakes_per_msg: f64,
    /// The producer's sleeps (the ring was full past its spin).
    pub producer_sleeps_per_msg: f64,
    /// The consumer's `FUTEX_WAKE`s for the producer.
    pub consumer_wakes_per_msg: f64,
    /// The consumer's waits that ended while spinning.
    pub consumer_spun_per_msg: f64,
    /// The consumer's spin budget at the end of the run, in nanoseconds (it adapts,
    /// see [`WaitStats::spin_ns`](mmkit::shm::ring::WaitStats::spin_ns)).
    pub consumer_spin_ns: u64,
}

impl RingWaits {
    /// Per-message figures from the two sides' counts over `count` messages.
    pub fn new(
        count: u64,
        producer: mmkit::shm::ring::WaitStats,
        consumer: mmkit::shm::ring::WaitStats,
    ) -> RingWaits {
        let per = |n: u64| n as f64 / count.max(1) as f64;
        RingWaits {
            consumer_sleeps_per_msg: per(consumer.sleeps),
            producer_wakes_per_msg: per(producer.wakes),
            producer_sleeps_per_msg: per(producer.sleeps),
            consumer_wakes_per_msg: per(consumer.wakes),
            consumer_spun_per_msg: per(consumer.spun),
            consumer_spin_ns: consumer.spin_ns,
        }
    }
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
    /// The ring waiters' spin limit: how long they spin before sleeping, at most.
    pub ring_spin_ns: u64,
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
        ring_spin_ns: opts.ring_spin.as_nanos() as u64,
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
