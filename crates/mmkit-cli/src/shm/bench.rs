//! `mmkit shm bench`: presents [`mmkit_lab::shm`] as a table or JSON; with `--wake`,
//! [`mmkit_lab::shm::wake`] (the `Shared<T>` waiter's wake latency) instead.

use std::process::ExitCode;

use crate::progress::Progress;
use clap::Args;
use mmkit_lab::shm::wake::{WakeBenchOptions, WakeReport};
use mmkit_lab::shm::{Row, ShmBenchOptions, ShmBenchReport, Transport};

/// Options of `mmkit shm bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Message sizes (bytes; K, M suffixes), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "64,1K,64K", value_parser = crate::args::size::<u64>)]
    sizes: Vec<u64>,
    /// Round trips per latency measurement.
    #[arg(long, default_value_t = 20_000)]
    rounds: usize,
    /// Bytes to send per throughput measurement (between 2 000 and 2 000 000 messages).
    #[arg(long, default_value = "256M", value_parser = crate::args::size::<u64>)]
    bytes: u64,
    /// Ring capacity: a power of two, at least 4x the largest message plus 64. (4 MiB
    /// measured fastest here: 1 MiB lets the reader catch up and pay a cache-line
    /// transfer a message, 16 MiB leaves the caches.)
    #[arg(long, default_value = "4M", value_parser = crate::args::size::<u64>)]
    capacity: u64,
    /// Fewer messages and round trips (a quick look, noisier figures).
    #[arg(long)]
    quick: bool,
    /// Pin the parent and the child to two different CPUs, the first two this process
    /// may run on (by default the scheduler places them; pinning was slower on the VMs
    /// this was measured on). The report's note says where they ran.
    #[arg(long)]
    pin: bool,
    /// How long a ring waiter spins before it sleeps in FUTEX_WAIT, at most, in
    /// microseconds (the spin adapts below it; see the report's wait counts).
    #[arg(long, default_value_t = 20)]
    spin_us: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Measure instead how soon a `Shared<T>` waiter in another process returns once the
    /// initialiser publishes (median and max over --runs).
    #[arg(long)]
    wake: bool,
    /// With --wake: waits to time.
    #[arg(long, default_value_t = 50, requires = "wake")]
    runs: usize,
    /// With --wake: milliseconds the initialiser holds its claim while the waiter waits.
    #[arg(long, default_value_t = 5, requires = "wake")]
    hold_ms: u64,
}

pub(crate) fn run(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    if args.wake {
        return run_wake(args);
    }
    let mut opts = ShmBenchOptions {
        sizes: args.sizes.iter().map(|&s| s as usize).collect(),
        bytes_per_run: args.bytes,
        rounds: args.rounds,
        ring_capacity: args.capacity as usize,
        pin: args.pin,
        ring_spin: std::time::Duration::from_micros(args.spin_us),
    };
    if args.quick {
        opts.bytes_per_run = opts.bytes_per_run.min(16 << 20);
        opts.rounds = opts.rounds.min(2_000);
    }
    let progress = Progress::spinner();
    let report = mmkit_lab::shm::run(&opts, |what| progress.message(format!("measuring {what}…")))?;
    drop(progress);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(ExitCode::SUCCESS)
}

fn run_wake(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let opts = WakeBenchOptions {
        runs: args.runs,
        hold: std::time::Duration::from_millis(args.hold_ms),
    };
    let progress = Progress::spinner();
    let report = mmkit_lab::shm::wake::run(&opts, |i| {
        progress.message(format!("timing wake-up {} of {}…", i + 1, opts.runs))
    })?;
    drop(progress);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render_wake(&report));
    }
    Ok(ExitCode::SUCCESS)
}

fn render_wake(r: &WakeReport) -> String {
    format!(
        "Shared<T> wake latency, initialiser's publish to the waiter's return \
         ({} runs, claim held {}):\n  p50 {}  p90 {}  max {}  min {}\nwaiter: {}\n",
        r.runs,
        ms(r.hold_ns as f64),
        ms(r.p50_ns),
        ms(r.p90_ns),
        ms(r.max_ns),
        ms(r.min_ns),
        r.waiter
    )
}

/// Nanoseconds as milliseconds from 1 ms up, else as `ns` does.
fn ms(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} ms", v / 1e6)
    } else {
        ns(v)
    }
}

fn render(report: &ShmBenchReport) -> String {
    let mut table = crate::table::plain_table(&[
        "size",
        "transport",
        "msgs/s",
        "throughput",
        "vs pipe",
        "rtt p50",
        "p99",
        "p99.9",
    ]);
    for r in &report.rows {
        table.add_row(row(report, r));
    }
    crate::table::align_right(&mut table, [0, 2, 3, 4, 5, 6, 7]);
    let mut out = format!("{table}\n");
    out.push_str(&summary(report));
    out
}

fn row(report: &ShmBenchReport, r: &Row) -> Vec<String> {
    let spin = r.transport == Transport::SpinLimit;
    let pipe = report.row(Transport::Pipe, r.size);
    let vs_pipe = match (spin, pipe) {
        (false, Some(p)) if p.msgs_per_sec > 0.0 => {
            format!("{:.1}x", r.msgs_per_sec / p.msgs_per_sec)
        }
        _ => "-".into(),
    };
    let dash = |v: String| if spin { "-".to_string() } else { v };
    vec![
        if spin {
            "8 B".into()
        } else {
            mmkit::size::format_size(r.size as u64)
        },
        r.transport.name().into(),
        dash(format!("{:.2} M", r.msgs_per_sec / 1e6)),
        dash(format!("{:.2} GB/s", r.bytes_per_sec / 1e9)),
        vs_pipe,
        ns(r.rtt.p50_ns),
        ns(r.rtt.p99_ns),
        ns(r.rtt.p999_ns),
    ]
}

fn ns(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1} µs", v / 1000.0)
    } else {
        format!("{v:.0} ns")
    }
}

/// The two targets: 64-byte throughput against a pipe, round trip against the spin limit.
fn summary(report: &ShmBenchReport) -> String {
    let mut out = String::new();
    let spin = report.row(Transport::SpinLimit, 8).map(|r| r.rtt.p50_ns);
    for size in report
        .rows
        .iter()
        .filter(|r| r.transport == Transport::Ring)
        .map(|r| r.size)
    {
        let (Some(ring), Some(pipe)) = (
            report.row(Transport::Ring, size),
            report.row(Transport::Pipe, size),
        ) else {
            continue;
        };
        out.push_str(&format!(
            "{}: ring {:.1}x the messages/s of a pipe, round trip {:.1}x faster (p50)",
            mmkit::size::format_size(size as u64),
            ring.msgs_per_sec / pipe.msgs_per_sec,
            pipe.rtt.p50_ns / ring.rtt.p50_ns,
        ));
        if let Some(s) = spin.filter(|s| *s > 0.0) {
            out.push_str(&format!(
                "; {:.2}x the spin limit's round trip",
                ring.rtt.p50_ns / s
            ));
        }
        out.push('\n');
        if let Some(w) = ring.waits {
            out.push_str(&format!(
                "  ring waits: spin limit {} (consumer's at the end {}); per message the \
                 consumer slept {:.4}, the producer woke it {:.4}; the producer slept {:.4}\n",
                ns(report.ring_spin_ns as f64),
                ns(w.consumer_spin_ns as f64),
                w.consumer_sleeps_per_msg,
                w.producer_wakes_per_msg,
                w.producer_sleeps_per_msg,
            ));
        }
        let (rs, rr) = ring.cpu_share;
        let (ps, pr) = pipe.cpu_share;
        out.push_str(&format!(
            "  CPU each end got (sender/receiver, 1.00 = a whole CPU): ring {rs:.2}/{rr:.2}, \
             pipe {ps:.2}/{pr:.2}"
        ));
        // Messages per CPU-second of the two ends: the ratio with the machine's other load
        // taken out (both ends of both transports use their CPU while they run).
        if rs + rr > 0.0 && ps + pr > 0.0 {
            out.push_str(&format!(
                "; per CPU-second {:.1}x",
                (ring.msgs_per_sec / (rs + rr)) / (pipe.msgs_per_sec / (ps + pr))
            ));
        }
        out.push('\n');
    }
    out.push_str(&format!("note: {}\n", report.note));
    out
}
