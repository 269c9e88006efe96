//! The two sides of each measurement: mmkit's log, and the plain `O_APPEND` log written
//! with `write(2)` (and `fdatasync`), on one thread or several.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Barrier;
use std::time::Instant;

use super::Case;
use mmkit::lab_seam::ErrorExt;
use mmkit::store::{Durability, LogOptions};
use mmkit::{Error, ErrorKind, Op, Result};

/// One measurement's result: seconds, and mmkit's flushes per append.
pub(super) struct Sample {
    pub(super) secs: f64,
    pub(super) flushes_per_append: f64,
}

/// One measurement: `count` appends of `payload` to a new file at `path`, from
/// `writers` threads, in `case`.
pub(super) struct Job<'a> {
    pub(super) path: &'a Path,
    pub(super) case: Case,
    pub(super) writers: usize,
    pub(super) count: usize,
    pub(super) payload: &'a [u8],
}

/// The job's appends to a new log.
pub(super) fn mmkit(job: &Job<'_>) -> Result<Sample> {
    let (writers, count, payload) = (job.writers, job.count, job.payload);
    let log = LogOptions::new()
        .durability(job.case.durability())
        .open(job.path)?;
    let secs = on_threads(writers, count, |n| {
        for _ in 0..n {
            log.append(payload)?;
        }
        Ok(())
    })?;
    let stats = log.stats()?;
    Ok(Sample {
        secs,
        flushes_per_append: stats.flushes_per_append(),
    })
}

/// The job's peer: `count` records (a 4-byte length, then `payload`), one `write` each on
/// an `O_APPEND` descriptor shared by `writers` threads, each followed by `fdatasync` with
/// `Sync`.
pub(super) fn peer(job: &Job<'_>) -> Result<Sample> {
    let (path, writers, count, payload) = (job.path, job.writers, job.count, job.payload);
    let file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(path)
        .map_err(|e| Error::io(Op::Open, &e).with_path(Some(path)))?;
    let sync = job.case.durability() == Durability::Sync;
    let err = |e: std::io::Error| Error::io(Op::Write, &e).with_path(Some(path));
    let secs = on_threads(writers, count, |n| {
        let mut buf = vec![0u8; 4 + payload.len()];
        for _ in 0..n {
            // Framed per record, as the log frames each one.
            buf[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
            buf[4..].copy_from_slice(payload);
            write_once(&file, &buf).map_err(err)?;
            if sync {
                file.sync_data().map_err(err)?;
            }
        }
        Ok(())
    })?;
    Ok(Sample {
        secs,
        flushes_per_append: if sync { 1.0 } else { 0.0 },
    })
}

/// One `write(2)`; a short write (a full disk) is an error, not a second call.
fn write_once(mut file: &File, buf: &[u8]) -> std::io::Result<()> {
    let n = file.write(buf)?;
    if n != buf.len() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            format!("short write: {n} of {} bytes", buf.len()),
        ));
    }
    Ok(())
}

/// Run `work` on `writers` threads, `count` split between them, released together; the
/// seconds from the first one's start to the last one's end, as each thread clocks
/// itself (this thread may be scheduled long after the workers start). One writer runs
/// on this thread.
fn on_threads(
    writers: usize,
    count: usize,
    work: impl Fn(usize) -> Result<()> + Sync,
) -> Result<f64> {
    if writers == 1 {
        let t = Instant::now();
        work(count)?;
        return Ok(t.elapsed().as_secs_f64());
    }
    let start = Barrier::new(writers);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let n = count / writers + usize::from(w < count % writers);
                let (start, work) = (&start, &work);
                s.spawn(move || {
                    start.wait();
                    let t = Instant::now();
                    work(n).map(|()| (t, Instant::now()))
                })
            })
            .collect();
        let mut span: Option<(Instant, Instant)> = None;
        let mut result = Ok(());
        for h in handles {
            let r = h.join().unwrap_or_else(|_| {
                Err(Error::new(Op::Append, ErrorKind::Unsupported).detail("an appender panicked"))
            });
            match r {
                Ok((a, b)) => {
                    span = Some(span.map_or((a, b), |(s, e)| (s.min(a), e.max(b))));
                }
                Err(e) if result.is_ok() => result = Err(e),
                Err(_) => {}
            }
        }
        result.map(|()| span.map_or(0.0, |(s, e)| (e - s).as_secs_f64()))
    })
}
