//! The reading end of a ring: borrow a message in place, release it by dropping it.

use std::ops::Deref;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::layout::{corrupt, record_size, RecordHeader, PAD, RECORD_HEADER};
use super::wait::{claim, my_pid, wake, Wait, Woken};
use super::Inner;
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
    /// The producer's `head` when we last looked: everything below it is committed.
    head_seen: u64,
    spin: Duration,
    pid: u32,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("tail", &self.tail)
            .field("head_seen", &self.head_seen)
            .finish()
    }
}

// A consumer may move to another thread; it is not shared (`&mut self` everywhere).
// SAFETY: `Inner` is Send + Sync; the fields are plain values.
unsafe impl Send for Consumer {}

impl Consumer {
    pub(crate) fn attach(inner: Arc<Inner>) -> Result<Consumer> {
        let pid = my_pid();
        let h = inner.header();
        if let Err(holder) = claim(&h.peers.consumer_pid, pid) {
            return Err(Error::new(Op::Receive, ErrorKind::Busy)
                .detail(format!("process {holder} is this ring's consumer"))
                .hint("a ring has one consumer at a time; the role frees when it closes or dies"));
        }
        h.peers.consumer_closed.store(0, Ordering::Release);
        let tail = h.tail();
        Ok(Consumer {
            head_seen: tail,
            tail,
            spin: inner.spin,
            pid,
            inner,
        })
    }

    /// How long this consumer spins before sleeping when the ring is empty.
    pub fn set_spin(&mut self, spin: Duration) {
        self.spin = spin;
    }

    /// Borrow the next message, waiting for one.
    ///
    /// # Errors
    /// Once the ring is empty: [`ErrorKind::PeerDied`] when the producer died,
    /// [`ErrorKind::Closed`] when it closed. [`ErrorKind::Corrupt`] for a damaged ring.
    pub fn recv(&mut self) -> Result<Message<'_>> {
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
    pub fn try_recv(&mut self) -> Result<Option<Message<'_>>> {
        if !self.available()? {
            return Ok(None);
        }
        self.next_message().map(Some)
    }

    fn recv_deadline(&mut self, deadline: Option<Instant>) -> Result<Option<Message<'_>>> {
        let inner = self.inner.clone();
        let h = inner.header();
        let tail = self.tail;
        let ready = || h.head() != tail || h.peers.producer_closed.load(Ordering::Acquire) != 0;
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
            let wait = Wait {
                line: &h.data_ready,
                peer: &h.peers.producer_pid,
                spin: self.spin,
                deadline,
                op: Op::Receive,
            };
            match wait.until(ready)? {
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

    /// Whether a committed message waits (reloading `head` when ours is used up).
    fn available(&mut self) -> Result<bool> {
        if self.tail != self.head_seen {
            return Ok(true);
        }
        let head = self.inner.header().head();
        let cap = self.inner.capacity;
        if head < self.tail || head - self.tail > cap || head % 16 != 0 {
            return Err(corrupt(
                Op::Receive,
                format!("head {head}, tail {}, capacity {cap}", self.tail),
            ));
        }
        self.head_seen = head;
        Ok(head != self.tail)
    }

    /// The message at `tail` (skipping padding); `tail != head_seen` on entry.
    fn next_message(&mut self) -> Result<Message<'_>> {
        let cap = self.inner.capacity;
        loop {
            let pos = self.tail & (cap - 1);
            // SAFETY: `pos` is 16-aligned inside the data area; the record below
            // `head_seen` is complete (Acquire on head) and the producer does not write
            // it again before we release it.
            let hdr = unsafe {
                std::ptr::read(self.inner.data().add(pos as usize) as *const RecordHeader)
            };
            let room_to_end = cap - pos;
            if hdr.len == PAD {
                if self.tail + room_to_end >= self.head_seen {
                    return Err(self.bad_record(pos, "padding with no record after it"));
                }
                self.tail += room_to_end;
                continue;
            }
            let len = hdr.len as usize;
            let size = record_size(len);
            if len > self.inner.max_message()
                || size > room_to_end
                || self.tail + size > self.head_seen
            {
                return Err(self.bad_record(pos, &format!("record of length {len}")));
            }
            return Ok(Message {
                ptr: self.payload(pos),
                len,
                seq: hdr.seq,
                next_tail: self.tail + size,
                consumer: self,
            });
        }
    }

    fn payload(&self, pos: u64) -> *const u8 {
        // SAFETY: the record fits before the end of the data area (checked).
        unsafe { self.inner.data().add(pos as usize + RECORD_HEADER) }
    }

    fn bad_record(&self, pos: u64, what: &str) -> Error {
        corrupt(
            Op::Receive,
            format!(
                "{what} at offset {pos} (tail {}, head {})",
                self.tail, self.head_seen
            ),
        )
    }

    fn release(&mut self, next_tail: u64) {
        self.tail = next_tail;
        let h = self.inner.header();
        h.cons.tail.store(next_tail, Ordering::Release);
        wake(&h.space_free);
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let h = self.inner.header();
        h.peers.consumer_closed.store(1, Ordering::Release);
        let _ =
            h.peers
                .consumer_pid
                .compare_exchange(self.pid, 0, Ordering::AcqRel, Ordering::Relaxed);
        wake(&h.space_free);
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
    fn deref(&self) -> &[u8] {
        // SAFETY: the record lies in [tail, head): committed, complete, and not written
        // by the producer until this message is released (which needs `self`).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for Message<'_> {
    fn drop(&mut self) {
        self.consumer.release(self.next_tail);
    }
}
