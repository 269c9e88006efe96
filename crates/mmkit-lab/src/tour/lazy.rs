//! Tour claim 17: lazy loading, as in the xv6 lab. A pager over a 64 MiB file built with
//! the default options maps the whole file at once; touching 64 pages spread over it,
//! in a shuffled order, must read those pages and no others from the source, as the
//! source's own counters (calls and bytes, kept by a wrapper around [`FileSource`]) show.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{bytes, pattern, Ctx, Outcome};
use mmkit::helpers::XorShift;
use mmkit::pager::{FileSource, PagerOptions, Source};
use mmkit::Result;

const LEN: usize = 64 << 20;
const TOUCHED: usize = 64;

/// A file source that counts what it is asked for.
struct Counted {
    inner: FileSource,
    calls: AtomicU64,
    bytes: AtomicU64,
}

impl Source for Counted {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.inner.read_at(offset, buf)
    }

    fn describe(&self) -> String {
        format!("counted {}", self.inner.describe())
    }
}

/// Claim 17.
pub(super) fn only_touched_pages_are_read(ctx: &Ctx) -> Result<Outcome> {
    let (path, _) = ctx.file("claim17.dat", LEN)?;
    let source = Arc::new(Counted {
        inner: FileSource::open(&path)?,
        calls: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
    });
    let pager = match PagerOptions::new().build(source.clone()) {
        Ok(p) => p,
        Err(e) if refused(&e) => {
            return Ok(Outcome::skipped(
                String::new(),
                e.to_string().replace('\n', " "),
            ))
        }
        Err(e) => return Err(e),
    };
    let page = mmkit::page_size();
    // Pages 1 MiB apart, never neighbours (a fault right after the last one filled would
    // start read-ahead), touched in a shuffled order.
    let stride = LEN / TOUCHED / page;
    let mut order: Vec<usize> = (0..TOUCHED).map(|i| i * stride + i % 7).collect();
    let mut rng = XorShift::new(17);
    for i in (1..order.len()).rev() {
        order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    let memory = pager.as_slice();
    let mut right = 0;
    for &p in &order {
        let off = p * page + 123;
        right += usize::from(memory[off] == pattern(off));
    }
    let (calls, read) = (
        source.calls.load(Ordering::Relaxed),
        source.bytes.load(Ordering::Relaxed),
    );
    let faults = pager.stats().faults;
    let touched = (TOUCHED * page) as u64;
    let measured = format!(
        "a pager maps a {} file; one byte read in each of {TOUCHED} scattered pages: the \
         source was asked for {calls} reads of {} in all ({:.2}% of the file; {} touched), \
         the pager took {faults} faults, {right} of {TOUCHED} bytes were the file's",
        bytes(LEN as u64),
        bytes(read),
        read as f64 * 100.0 / LEN as f64,
        bytes(touched),
    );
    Ok(Outcome::check(
        read == touched && calls == TOUCHED as u64 && right == TOUCHED,
        measured,
    ))
}

/// Whether building failed because userfaultfd is not allowed or not built in.
fn refused(e: &mmkit::Error) -> bool {
    use rustix::io::Errno;
    let codes = [Errno::PERM, Errno::ACCESS, Errno::NOSYS].map(Errno::raw_os_error);
    e.errno().is_some_and(|code| codes.contains(&code))
}
