//! Tour claim 15: `sendfile` moves a file to a socket with less CPU per GB than `read` +
//! `write`. A short run of the sink bench (`mmkit bench sink --to socket`): a warm 64 MiB
//! file to a loopback TCP reader the bench starts, each method's sending thread timed by
//! `getrusage(RUSAGE_THREAD)`, the two methods taking turns in each of 5 runs.

use super::{bytes, Ctx, Outcome};
use crate::bench::{run_sinks, CacheState, Sink, SinkOptions, SinkResult};
use mmkit::copy::Method;
use mmkit::Result;

const SIZE: u64 = 64 << 20;

/// Claim 15.
pub(super) fn sendfile_cpu(ctx: &Ctx) -> Result<Outcome> {
    let options = SinkOptions {
        sizes: vec![SIZE],
        dir: Some(ctx.dir.clone()),
        runs: 5,
        sinks: vec![Sink::Socket],
        methods: vec![Method::ReadWrite, Method::Sendfile],
        caches: vec![CacheState::Warm],
        ..SinkOptions::default()
    };
    let report = run_sinks(&options, &mut |_| {})?;
    let find = |m: Method| report.results.iter().find(|r| r.method == m);
    let (Some(rw), Some(sf)) = (find(Method::ReadWrite), find(Method::Sendfile)) else {
        return Ok(Outcome::skipped(
            String::new(),
            "the sink bench measured no pair",
        ));
    };
    if let Some(why) = sf.refused.as_ref().or(rw.refused.as_ref()) {
        return Ok(Outcome::skipped(
            String::new(),
            format!("the kernel refused a method for a socket: {why}"),
        ));
    }
    let (Some(rw_cpu), Some(sf_cpu)) = (rw.cpu_s_per_gb, sf.cpu_s_per_gb) else {
        return Ok(Outcome::skipped(String::new(), "no CPU time was measured"));
    };
    let ratio = sf_cpu / rw_cpu;
    let measured = format!(
        "{} warm file to a loopback TCP socket, median of {} runs: sendfile {} vs read+write {} \
         of the sending thread's CPU ({ratio:.2}x; runs {}); the sender's CPU includes the \
         kernel's TCP transmit and loopback delivery, which both methods pay",
        bytes(SIZE),
        options.runs,
        cpu(sf),
        cpu(rw),
        run_ratios(sf, rw),
    );
    Ok(Outcome::check(ratio < 1.0, measured))
}

fn cpu(r: &SinkResult) -> String {
    let gbps = r.throughput_gbps.unwrap_or(0.0);
    format!(
        "{:.3} CPU s/GB at {gbps:.1} GB/s",
        r.cpu_s_per_gb.unwrap_or(f64::NAN)
    )
}

/// Each run's ratio, sendfile over read+write (the methods take turns within a run).
fn run_ratios(sf: &SinkResult, rw: &SinkResult) -> String {
    let ratios: Vec<String> = sf
        .run_cpu_s_per_gb
        .iter()
        .zip(&rw.run_cpu_s_per_gb)
        .map(|(s, r)| format!("{:.2}", s / r))
        .collect();
    ratios.join(" ")
}
