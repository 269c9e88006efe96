//! The writing end of a ring: reserve space, fill it in place, commit.
//!
//! # Safety
//!
//! Fills a reserved record in place: forms the payload slice from a raw pointer into
//! the ring's data area that only this producer writes until it commits; `Send` by
//! hand.
#![allow(unsafe_code)]

use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::layout::{corrupt, record_size, NO_RECORD, PAD, RECORD_HEADER};
use super::wait::{
    leave_role, register_fast_wake, take_role, wake, Peer, Role, RoleName, Spin, Wait, Woken,
};
use super::Inner;
use super::WaitStats;
use crate::error::{Error, ErrorKind, Op, Result};

/// The producing end of a [`Ring`](super::Ring): one per ring at a time.
///
/// Made by [`Ring::producer`](super::Ring::producer), which claims the role for this
/// process (taking it over from a dead producer). Dropping it closes the producing side:
/// the consumer drains what was committed and then gets
/// [`ErrorKind::Closed`] until another producer attaches.
pub struct Producer {
    inner: Arc<Inner>,
    /// Our copy of the shared `head` (we are its only writer).
    head: u64,
    /// The consumer's `tail` when we last looked: it only grows, so free space is at
    /// least `capacity - (head - tail_seen)`.
    tail_seen: u64,
    next_seq: u64,
    /// The adaptive spin budget and the wait counts.
    spin: Spin,
    /// How we hold the producer role; `None` only while dropping.
    role: Option<Role>,
    /// Registered for `membarrier`: wakes need no fence (see `wait::wake`).
    fast_wake: bool,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("head", &self.head)
            .field("next_seq", &self.next_seq)
            .finish()
    }
}

// A producer may move to another thread; it is not shared (`&mut self` everywhere).
// SAFETY: `Inner` is Send + Sync; the fields are plain values.
unsafe impl Send for Producer {}

impl Producer {
    pub(crate) fn attach(inner: Arc<Inner>) -> Result<Producer> {
        let h = inner.header();
        let peers = &h.peers;
        let role = take_role(
            inner.file(),
            &peers.producer_pid,
            &peers.producer_closed,
            RoleName::Producer,
            Op::Send,
        )?;
        let mut p = Producer {
            head: h.head(),
            tail_seen: h.tail(),
            next_seq: 0,
            spin: Spin::new(inner.spin),
            role: Some(role),
            fast_wake: register_fast_wake(),
            inner,
        };
        p.recover()?;
        p.check_positions()?;
        Ok(p)
    }

    /// The sequence number the next committed message gets. A producer that takes over
    /// from a dead one continues its numbering: messages it committed keep theirs.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The largest message this ring accepts.
    pub fn max_message(&self) -> usize {
        self.inner.max_message()
    }

    /// How long this producer spins before sleeping when the ring is full.
    pub fn set_spin(&mut self, spin: Duration) {
        self.spin.set_limit(spin);
    }

    /// What this producer did while waiting so far: waits ended by spinning, sleeps,
    /// wake-ups made for the consumer, and its current spin budget.
    pub fn wait_stats(&self) -> WaitStats {
        self.spin.stats()
    }

    /// Copy `msg` into the ring as one message, waiting for space; its sequence number.
    ///
    /// # Errors
    /// [`ErrorKind::TooLarge`]; while waiting for space, [`ErrorKind::PeerDied`] or
    /// [`ErrorKind::Closed`] when the consumer is gone; [`ErrorKind::Corrupt`].
    #[inline]
    pub fn send(&mut self, msg: &[u8]) -> Result<u64> {
        if let Some(start) = self.room_now(msg.len()) {
            let mut r = Reservation {
                producer: self,
                start,
                pad: None,
                len: msg.len(),
                reserved: msg.len(),
            };
            r.copy_from_slice(msg);
            return Ok(r.commit());
        }
        self.send_waiting(msg)
    }

    /// [`send`](Self::send) when the record does not fit before the lap's end or in the
    /// space last seen free: kept apart, so the common case inlines.
    #[inline(never)]
    fn send_waiting(&mut self, msg: &[u8]) -> Result<u64> {
        let mut r = self.reserve(msg.len())?;
        r.copy_from_slice(msg);
        Ok(r.commit())
    }

    /// As [`send`](Self::send) without waiting: `Ok(None)` when the ring is full.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn try_send(&mut self, msg: &[u8]) -> Result<Option<u64>> {
        self.send_deadline(msg, Some(Instant::now()))
    }

    /// As [`send`](Self::send) waiting at most `timeout`: `Ok(None)` when it passed.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<Option<u64>> {
        self.send_deadline(msg, Some(Instant::now() + timeout))
    }

    fn send_deadline(&mut self, msg: &[u8], deadline: Option<Instant>) -> Result<Option<u64>> {
        Ok(self.reserve_deadline(msg.len(), deadline)?.map(|mut r| {
            r.copy_from_slice(msg);
            r.commit()
        }))
    }

    /// Reserve `len` bytes in the ring, waiting for space: fill them through the
    /// [`Reservation`] and [`commit`](Reservation::commit). Nothing is visible to the
    /// consumer before the commit; a reservation dropped uncommitted is abandoned.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn reserve(&mut self, len: usize) -> Result<Reservation<'_>> {
        match self.reserve_deadline(len, None)? {
            Some(r) => Ok(r),
            None => unreachable!("a wait without a deadline does not time out"),
        }
    }

    /// As [`reserve`](Self::reserve) without waiting: `Ok(None)` when the ring is full.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn try_reserve(&mut self, len: usize) -> Result<Option<Reservation<'_>>> {
        self.reserve_deadline(len, Some(Instant::now()))
    }

    /// As [`reserve`](Self::reserve) waiting at most `timeout`: `Ok(None)` when it passed.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn reserve_timeout(
        &mut self,
        len: usize,
        timeout: Duration,
    ) -> Result<Option<Reservation<'_>>> {
        self.reserve_deadline(len, Some(Instant::now() + timeout))
    }

    /// Where a `len`-byte record goes when it fits, without padding, in the space last
    /// seen free (no look at the consumer's position): the hot path. `None` leaves the
    /// rest (too large, a lap's end, a full ring) to [`reserve_deadline`](Self::reserve_deadline).
    #[inline]
    fn room_now(&self, len: usize) -> Option<u64> {
        let cap = self.inner.capacity;
        let need = record_size(len);
        let fits = len <= self.inner.max_message()
            && need <= cap - (self.head & (cap - 1))
            && self.head + need - self.tail_seen <= cap;
        fits.then_some(self.head)
    }

    fn reserve_deadline(
        &mut self,
        len: usize,
        deadline: Option<Instant>,
    ) -> Result<Option<Reservation<'_>>> {
        let max = self.inner.max_message();
        if len > max {
            return Err(Error::new(Op::Send, ErrorKind::TooLarge)
                .at(0, len as u64)
                .detail(format!(
                    "a {len}-byte message does not fit: this ring takes at most {max} bytes"
                ))
                .hint("make the ring larger (capacity is 4x the largest message plus 64)"));
        }
        let cap = self.inner.capacity;
        let need = record_size(len);
        let pos = self.head & (cap - 1);
        let room_to_end = cap - pos;
        let total = if need <= room_to_end {
            need
        } else {
            room_to_end + need
        };
        if !self.wait_for_space(total, deadline)? {
            return Ok(None);
        }
        // A record never wraps: padding fills the rest of the lap (written at commit).
        let (start, pad) = if need <= room_to_end {
            (self.head, None)
        } else {
            (self.head + room_to_end, Some(self.head))
        };
        Ok(Some(Reservation {
            producer: self,
            start,
            pad,
            len,
            reserved: len,
        }))
    }

    /// Make sure `total` bytes are free; `false` if the deadline passed first.
    fn wait_for_space(&mut self, total: u64, deadline: Option<Instant>) -> Result<bool> {
        let cap = self.inner.capacity;
        if self.head + total - self.tail_seen <= cap {
            return Ok(true);
        }
        let inner = self.inner.clone();
        let h = inner.header();
        let head = self.head;
        let fits = || head + total - h.tail() <= cap;
        let gone = || h.peers.consumer_closed.load(Ordering::Acquire) != 0;
        loop {
            self.tail_seen = h.tail();
            self.check_positions()?;
            if fits() {
                return Ok(true);
            }
            if gone() {
                return Err(Error::new(Op::Send, ErrorKind::Closed)
                    .detail("the ring is full and its consumer closed it"));
            }
            let Some(mine) = self.role.as_ref() else {
                unreachable!("the role is held until drop")
            };
            let wait = Wait {
                line: &h.space_free,
                peer: Peer {
                    mine,
                    role: RoleName::Consumer,
                    pid: &h.peers.consumer_pid,
                },
                deadline,
                op: Op::Send,
            };
            match wait.until(|| fits() || gone(), &mut self.spin)? {
                Woken::Ready => continue,
                Woken::TimedOut => return Ok(false),
                Woken::PeerDied(pid) => {
                    return Err(Error::new(Op::Send, ErrorKind::PeerDied).detail(format!(
                        "the ring is full and its consumer (pid {pid}) died"
                    )))
                }
            }
        }
    }

    /// Check `tail_seen <= head <= tail_seen + capacity` against what the consumer wrote.
    fn check_positions(&self) -> Result<()> {
        let (head, tail, cap) = (self.head, self.tail_seen, self.inner.capacity);
        if tail > head || head - tail > cap || head % 16 != 0 {
            return Err(corrupt(
                Op::Send,
                format!("head {head}, tail {tail}, capacity {cap}"),
            ));
        }
        Ok(())
    }

    /// Find where the last producer stopped: the sequence number to use next, and
    /// `head` moved past a commit that died after its commit point (the record's mark).
    fn recover(&mut self) -> Result<()> {
        let inner = self.inner.clone();
        let h = inner.header();
        let last = h.prod.last_start.load(Ordering::Acquire);
        if last == NO_RECORD {
            if self.head != 0 {
                return Err(corrupt(Op::Send, "records but no last record".into()));
            }
            self.next_seq = 0;
            return Ok(());
        }
        let seq = h.prod.last_seq.load(Ordering::Acquire);
        let cap = inner.capacity;
        if last % 16 != 0 || last > self.head + cap {
            return Err(corrupt(
                Op::Send,
                format!("last record at {last}, head {}", self.head),
            ));
        }
        let slot = inner.slot(last & (cap - 1));
        if slot.mark.load(Ordering::Acquire) != seq + 1 {
            // Died before the commit point: the record was never visible; reuse its number.
            self.next_seq = seq;
            return Ok(());
        }
        let len = slot.len.load(Ordering::Relaxed);
        if len == PAD || len as usize > inner.max_message() {
            return Err(corrupt(
                Op::Send,
                format!("last record at {last} has length {len}"),
            ));
        }
        let end = last + record_size(len as usize);
        if end > self.head {
            // Died after the commit point: finish the commit (padding, then head).
            if last > self.head {
                let pos = self.head & (cap - 1);
                if last != self.head + (cap - pos) {
                    return Err(corrupt(
                        Op::Send,
                        format!("last record at {last}, head {}", self.head),
                    ));
                }
                let pad = inner.slot(pos);
                pad.len.store(PAD, Ordering::Relaxed);
                pad.mark.store(seq + 1, Ordering::Release);
            }
            self.head = end;
            h.prod.head.store(end, Ordering::Release);
        }
        self.next_seq = seq + 1;
        Ok(())
    }

    /// Publish the record at `start` (logical) with `len` payload bytes, and the padding
    /// at `pad` before it if the record starts a new lap.
    ///
    /// The order is the protocol: length; zero the slot after the record (when free);
    /// `last_seq` and `last_start`; the mark (the commit point); the padding's mark;
    /// `head`; then wake the consumer.
    #[inline]
    fn commit(&mut self, start: u64, pad: Option<u64>, len: usize) -> u64 {
        let inner = &*self.inner;
        let (cap, seq) = (inner.capacity, self.next_seq);
        let end = start + record_size(len);
        let slot = inner.slot(start & (cap - 1));
        slot.len.store(len as u32, Ordering::Relaxed);
        if end < self.tail_seen + cap {
            // Free space: the consumer will look here next, so no old bytes may remain.
            inner.slot(end & (cap - 1)).mark.store(0, Ordering::Relaxed);
        }
        let h = inner.header();
        h.prod.last_seq.store(seq, Ordering::Relaxed);
        h.prod.last_start.store(start, Ordering::Release);
        slot.mark.store(seq + 1, Ordering::Release);
        if let Some(p) = pad {
            let pad = inner.slot(p & (cap - 1));
            pad.len.store(PAD, Ordering::Relaxed);
            pad.mark.store(seq + 1, Ordering::Release);
        }
        self.head = end;
        h.prod.head.store(end, Ordering::Release);
        if wake(&h.data_ready, self.fast_wake) {
            self.spin.wakes += 1;
        }
        self.next_seq += 1;
        seq
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let h = self.inner.header();
        let peers = &h.peers;
        let (pid, closed) = (&peers.producer_pid, &peers.producer_closed);
        if let Some(role) = self.role.take() {
            leave_role(role, pid, closed, &h.data_ready, self.fast_wake);
        }
    }
}

/// Space reserved in the ring, written in place: derefs to `&mut [u8]` of the reserved
/// length. [`commit`](Self::commit) publishes it; dropping it abandons it.
pub struct Reservation<'a> {
    producer: &'a mut Producer,
    /// Logical position of the record (its header).
    start: u64,
    /// Logical position of the padding before it, when it starts a new lap.
    pad: Option<u64>,
    len: usize,
    reserved: usize,
}

impl std::fmt::Debug for Reservation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("start", &self.start)
            .field("len", &self.len)
            .finish()
    }
}

impl Reservation<'_> {
    /// Shorten the message to `len` bytes (at most the reserved length), e.g. after
    /// reserving the most a message could need.
    ///
    /// # Panics
    /// When `len` exceeds the reserved length.
    pub fn truncate(&mut self, len: usize) {
        assert!(
            len <= self.reserved,
            "truncate({len}) past the reserved {}",
            self.reserved
        );
        self.len = len;
    }

    /// Publish the message; its sequence number.
    #[inline]
    pub fn commit(self) -> u64 {
        self.producer.commit(self.start, self.pad, self.len)
    }

    #[inline]
    fn payload(&self) -> *mut u8 {
        let cap = self.producer.inner.capacity;
        let pos = (self.start & (cap - 1)) as usize + RECORD_HEADER;
        // SAFETY: the record fits before the end of the data area (reserve checked).
        unsafe { self.producer.inner.data().add(pos) }
    }
}

impl Deref for Reservation<'_> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: the reserved bytes lie past `head`, inside free space that only this
        // producer writes and the consumer does not read until the commit.
        unsafe { std::slice::from_raw_parts(self.payload(), self.len) }
    }
}

impl DerefMut for Reservation<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes this the only view.
        unsafe { std::slice::from_raw_parts_mut(self.payload(), self.len) }
    }
}
