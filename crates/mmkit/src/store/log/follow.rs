//! Following a log across processes: [`Tail`] waits for the next commit on a futex in
//! the log's shared header (no polling), and a writer wakes it only when it waits.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rustix::thread::futex;

use super::read::{Entry, Iter};
use super::ReadOnlyLog;
use crate::store::format;
use crate::store::Seq;
use crate::{Error, Op, Result};

/// Follows a log's tail (see [`ReadOnlyLog::tail`]): returns records as they commit, waiting
/// for the next one on a futex in the log's shared header (no polling).
#[derive(Debug)]
pub struct Tail<'log> {
    iter: Iter<'log>,
}

impl<'log> Tail<'log> {
    /// The next record, waiting up to `timeout` for one to be committed (by any
    /// process). `Ok(None)` when none came in time.
    ///
    /// # Errors
    /// As the iterator's items, and a failed `futex` wait.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Entry<'log>>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = self.iter.next() {
                return found.map(Some);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.iter.log.wait_commit(self.iter.next_seq, left)?;
        }
    }

    /// The sequence number the next record will have.
    pub fn next_seq(&self) -> Seq {
        self.iter.next_seq
    }
}

impl ReadOnlyLog {
    /// Follow the log from `seq`: see [`Tail::next_timeout`]. Works across processes: a
    /// read-only handle in one follows a writer in another, with no reopen.
    pub fn tail(&self, seq: Seq) -> Tail<'_> {
        Tail {
            iter: self.iter_from(seq),
        }
    }

    /// Block until a record numbered `seq` or later may have been committed, or
    /// `timeout` passes.
    ///
    /// A handle whose file could only be opened read-only cannot register as a waiter
    /// in the header (a write), so the writer would not wake it: it polls instead, every
    /// millisecond.
    pub(super) fn wait_commit(&self, seq: Seq, timeout: Duration) -> Result<()> {
        if !self.maps.header_writable() {
            std::thread::sleep(timeout.min(Duration::from_millis(1)));
            return Ok(());
        }
        self.maps
            .with_u32(format::WAITERS, |w| w.fetch_add(1, Ordering::SeqCst))?;
        let waited = self.wait_events(seq, timeout);
        self.maps
            .with_u32(format::WAITERS, |w| w.fetch_sub(1, Ordering::SeqCst))?;
        waited
    }

    fn wait_events(&self, seq: Seq, timeout: Duration) -> Result<()> {
        let seen = self
            .maps
            .with_u32(format::EVENTS, |e| e.load(Ordering::SeqCst))?;
        let (last, _) = self.maps.snapshot()?;
        if last >= seq {
            return Ok(());
        }
        let ts = futex::Timespec {
            tv_sec: timeout.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: timeout.subsec_nanos() as _,
        };
        let r = self.maps.with_u32(format::EVENTS, |e| {
            // Shared futex: the writer wakes it from another process.
            futex::wait(e, futex::Flags::empty(), seen, Some(&ts))
        })?;
        match r {
            Ok(()) => Ok(()),
            Err(e)
                if e == rustix::io::Errno::TIMEDOUT
                    || e == rustix::io::Errno::AGAIN
                    || e == rustix::io::Errno::INTR =>
            {
                Ok(())
            }
            Err(e) => Err(Error::os(Op::Read, e)
                .with_path(Some(&self.path))
                .detail(format!(
                    "futex wait on the log's commit counter failed: {e}"
                ))),
        }
    }
}
