//! The reading end of a ring: borrow a message in place, release it by dropping it.
//!
//! # Safety
//!
//! Lends a committed record in place as a slice from a raw pointer into the ring's data
//! area, which the producer does not touch until it is released; `Send` by hand.
#![allow(unsafe_code)]

use std::ops::Deref;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::layout::{corrupt, record_size, PAD, RECORD_HEADER};
use super::wait::{
    leave_role, register_fast_wake, take_role, wake, Peer, Role, RoleName, Spin, Wait, Woken,
};
use super::Inner;
use super::WaitStats;
use crate::error::{Error, ErrorKind, Op, Result};

/// The consuming end of a [`Ring`](super::Ring): one per ring at a time.
///
/// Made by [`Ring::consumer`](super::Ring::consumer), which claims the role for this
/// process (taking it over from a dead consumer, whose unreleased message is delivered
/// again). Messages are borrowed from the ring as [`Message`]s, one at a time.
pub struct Consumer {
    inner: Arc<Inner>,
    /// Our copy of the shared `tail` plus any padding skipped since (we are its only
    /// writer; the padding is released with the next message).
    tail: u64,
    /// The sequence number of the next message: the record at `tail` is committed when
    /// its mark reads `expect + 1`.
    expect: u64,
    /// The adaptive spin budget and the wait counts.
    spin: Spin,
    /// How we hold the consumer role; `None` only while dropping.
    role: Option<Role>,
    /// Registered for `membarrier`: wakes need no fence (see `wait::wake`).
    fast_wake: bool,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("tail", &self.tail)
            .field("expect", &self.expect)
            .finish()
    }
}

// A consumer may move to another thread; it is not shared (`&mut self` everywhere).
// SAFETY: `Inner` is Send + Sync; the fields are plain values.
unsafe impl Send for Consumer {}

impl Consumer {
    pub(crate) fn attach(inner: Arc<Inner>) -> Result<Consumer> {
        let h = inner.header();
        let peers = &h.peers;
        let role = take_role(
            inner.file(),
            &peers.consumer_pid,
            &peers.consumer_closed,
            RoleName::Consumer,
            Op::Receive,
        )?;
        let tail = h.tail();
        let next = h.cons.next_seq.load(Ordering::Acquire);
        // A consumer that died between storing `next_seq` and `tail` left the record
        // (or padding) at `tail` marked with the number before: it was not released.
        let mark = inner
            .slot(tail & (inner.capacity - 1))
            .mark
            .load(Ordering::Acquire);
        let expect = if next > 0 && mark == next {
            next - 1
        } else {
            next
        };
        Ok(Consumer {
            expect,
            tail,
            spin: Spin::new(inner.spin),
            role: Some(role),
            fast_wake: register_fast_wake(),
            inner,
        })
    }

    /// How long this consumer spins before sleeping when the ring is empty.
    pub fn set_spin(&mut self, spin: Duration) {
        self.spin.set_limit(spin);
    }

    /// What this consumer did while waiting so far: waits ended by spinning, sleeps,
    /// wake-ups made for the producer, and its current spin budget.
    pub fn wait_stats(&self) -> WaitStats {
        self.spin.stats()
    }

    /// Borrow the next message, waiting for one.
    ///
    /// # Errors
    /// Once the ring is empty: [`ErrorKind::PeerDied`] when the producer died,
    /// [`ErrorKind::Closed`] when it closed. [`ErrorKind::Corrupt`] for a damaged ring.
    #[inline]
    pub fn recv(&mut self) -> Result<Message<'_>> {
        if let Some(len) = self.ready_len() {
            return Ok(self.message(len));
        }
        self.recv_waiting()
    }

    /// [`recv`](Self::recv) when the next record is not a plain committed message (not
    /// committed yet, padding, or damaged): kept apart, so the common case inlines.
    #[inline(never)]
    fn recv_waiting(&mut self) -> Result<Message<'_>> {
        match self.recv_deadline(None)? {
            Some(m) => Ok(m),
            None => unreachable!("a wait without a deadline does not time out"),
        }
    }

    /// As [`recv`](Self::recv) waiting at most `timeout`: `Ok(None)` when it passed.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Message<'_>>> {
        self.recv_deadline(Some(Instant::now() + timeout))
    }

    /// The next message if one is committed, without waiting.
    ///
    /// # Errors
    /// [`ErrorKind::Corrupt`] for a damaged ring.
    #[inline]
    pub fn try_recv(&mut self) -> Result<Option<Message<'_>>> {
        if let Some(len) = self.ready_len() {
            return Ok(Some(self.message(len)));
        }
        if !self.available()? {
            return Ok(None);
        }
        self.next_message().map(Some)
    }

    fn recv_deadline(&mut self, deadline: Option<Instant>) -> Result<Option<Message<'_>>> {
        if self.available()? {
            return self.next_message().map(Some);
        }
        let inner = self.inner.clone();
        let h = inner.header();
        loop {
            if self.available()? {
                return self.next_message().map(Some);
            }
            if h.peers.producer_closed.load(Ordering::Acquire) != 0 {
                if self.available()? {
                    continue;
                }
                return Err(Error::new(Op::Receive, ErrorKind::Closed)
                    .detail("the producer closed the ring and every message was received"));
            }
            let slot = inner.slot(self.tail & (inner.capacity - 1));
            let want = self.expect + 1;
            let ready = || {
                slot.mark.load(Ordering::Acquire) == want
                    || h.peers.producer_closed.load(Ordering::Acquire) != 0
            };
            let Some(mine) = self.role.as_ref() else {
                unreachable!("the role is held until drop")
            };
            let wait = Wait {
                line: &h.data_ready,
                peer: Peer {
                    mine,
                    role: RoleName::Producer,
                    pid: &h.peers.producer_pid,
                },
                deadline,
                op: Op::Receive,
            };
            match wait.until(ready, &mut self.spin)? {
                Woken::Ready => continue,
                Woken::TimedOut => return Ok(None),
                Woken::PeerDied(pid) => {
                    return Err(Error::new(Op::Receive, ErrorKind::PeerDied).detail(format!(
                    "the ring's producer (pid {pid}) died; every message it committed was received"
                )))
                }
            }
        }
    }

    /// Whether the next message is committed: its slot carries the expected mark.
    /// Padding (marked like the record after it) is skipped on the way.
    fn available(&mut self) -> Result<bool> {
        let cap = self.inner.capacity;
        loop {
            let pos = self.tail & (cap - 1);
            let slot = self.inner.slot(pos);
            if slot.mark.load(Ordering::Acquire) != self.expect + 1 {
                return Ok(false);
            }
            if slot.len.load(Ordering::Relaxed) != PAD {
                return Ok(true);
            }
            if pos == 0 {
                // Padding fills the rest of a lap; a whole lap of it is never written.
                return Err(self.bad_record(pos, "padding over a whole lap"));
            }
            self.tail += cap - pos;
        }
    }

    /// The length of the message at `tail` when it is committed, not padding and fits
    /// where it lies: the hot path's one look at the slot. `None` leaves every other case
    /// (not yet committed, padding, damage) to the checks of the slow path.
    #[inline]
    fn ready_len(&self) -> Option<usize> {
        let cap = self.inner.capacity;
        let pos = self.tail & (cap - 1);
        let slot = self.inner.slot(pos);
        if slot.mark.load(Ordering::Acquire) != self.expect + 1 {
            return None;
        }
        let len = slot.len.load(Ordering::Relaxed);
        (len != PAD && self.record_fits(pos, len as usize)).then_some(len as usize)
    }

    /// Whether a record of `len` payload bytes at physical offset `pos` is no larger
    /// than a message may be and ends within the data area.
    #[inline]
    fn record_fits(&self, pos: u64, len: usize) -> bool {
        len <= self.inner.max_message() && record_size(len) <= self.inner.capacity - pos
    }

    /// The message of `len` bytes at `tail` (checked by `ready_len` or `next_message`).
    #[inline]
    fn message(&mut self, len: usize) -> Message<'_> {
        let pos = self.tail & (self.inner.capacity - 1);
        Message {
            ptr: self.payload(pos),
            len,
            seq: self.expect,
            next_tail: self.tail + record_size(len),
            consumer: self,
        }
    }

    /// The committed message at `tail` (`available` returned true).
    fn next_message(&mut self) -> Result<Message<'_>> {
        let cap = self.inner.capacity;
        let pos = self.tail & (cap - 1);
        let len = self.inner.slot(pos).len.load(Ordering::Relaxed) as usize;
        if !self.record_fits(pos, len) {
            return Err(self.bad_record(pos, &format!("record of length {len}")));
        }
        Ok(self.message(len))
    }

    #[inline]
    fn payload(&self, pos: u64) -> *const u8 {
        // SAFETY: the record fits before the end of the data area (checked).
        unsafe { self.inner.data().add(pos as usize + RECORD_HEADER) }
    }

    fn bad_record(&self, pos: u64, what: &str) -> Error {
        corrupt(
            Op::Receive,
            format!(
                "{what} at offset {pos} (tail {}, message {})",
                self.tail, self.expect
            ),
        )
    }

    #[inline]
    fn release(&mut self, seq: u64, next_tail: u64) {
        self.tail = next_tail;
        self.expect = seq + 1;
        let h = self.inner.header();
        h.cons.next_seq.store(seq + 1, Ordering::Relaxed);
        h.cons.tail.store(next_tail, Ordering::Release);
        if wake(&h.space_free, self.fast_wake) {
            self.spin.wakes += 1;
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let h = self.inner.header();
        let peers = &h.peers;
        let (pid, closed) = (&peers.consumer_pid, &peers.consumer_closed);
        if let Some(role) = self.role.take() {
            leave_role(role, pid, closed, &h.space_free, self.fast_wake);
        }
    }
}

/// A message borrowed from the ring: derefs to its bytes. Dropping it (or
/// [`release`](Self::release)) hands its space back to the producer; a consumer that
/// dies holding it leaves it in the ring for the next consumer.
pub struct Message<'a> {
    consumer: &'a mut Consumer,
    ptr: *const u8,
    len: usize,
    seq: u64,
    next_tail: u64,
}

impl std::fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("seq", &self.seq)
            .field("len", &self.len)
            .finish()
    }
}

impl Message<'_> {
    /// The ring's number for this message: 0 for the first ever committed, then +1.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Release the message now (as dropping it does).
    pub fn release(self) {}
}

impl Deref for Message<'_> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: the record's mark was read with Acquire: it is complete, and the
        // producer does not write it again until this message is released (which needs
        // `self`).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for Message<'_> {
    #[inline]
    fn drop(&mut self) {
        self.consumer.release(self.seq, self.next_tail);
    }
}
