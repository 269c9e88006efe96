//! The log's views of its file: one mapping reserved well past the file's end, replaced
//! by a larger one when the file outgrows it. Every mapping made lives as long as the
//! log, so a pointer taken from any of them stays valid; the file is mapped once per
//! doubling, and the address space a log holds stays under twice its largest size.
//!
//! # Safety
//!
//! The header's counters and lock word are atomics formed over the mapping inside a
//! guarded access. Every mapping made lives as long as the log, so a reference into one
//! stays valid while the log does.
#![allow(unsafe_code)]

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

use rustix::thread::futex;

use crate::map::Protection;
use crate::store::format;
use crate::{Error, ErrorKind, MapOptions, Mapping, Op, Result};

/// The smallest reservation: address space only (a shared file mapping is not charged
/// against memory until its pages are touched).
const MIN_RESERVATION: u64 = 256 << 20;

pub(crate) struct Maps {
    current: AtomicPtr<Mapping>,
    /// Every mapping made, the current one last. Only ever grows until drop. Boxed: a
    /// mapping's address must not move when the vector grows (`current` points at it).
    #[allow(clippy::vec_box)]
    all: Mutex<Vec<Box<Mapping>>>,
    write: bool,
    /// The header page, mapped on its own: read-write whenever the file was opened
    /// read-write, also for a read-only log (a follower registers itself as a waiter in
    /// it), while the records stay mapped read-only for readers.
    header: Mapping,
    header_write: bool,
}

impl Maps {
    /// Map `file`'s records read-write (`write`) or read-only, reserving room for at
    /// least `len` bytes, and its header read-write when `header_write`.
    pub(crate) fn new(
        file: &File,
        path: &Path,
        write: bool,
        header_write: bool,
        len: u64,
    ) -> Result<Maps> {
        let first = Box::new(map(file, path, write, reservation(len)?)?);
        let ptr = &*first as *const Mapping as *mut Mapping;
        let header = map(file, path, header_write, format::HEADER_LEN as u64)?;
        Ok(Maps {
            current: AtomicPtr::new(ptr),
            all: Mutex::new(vec![first]),
            write,
            header,
            header_write,
        })
    }

    /// The header page's mapping.
    pub(crate) fn header(&self) -> &Mapping {
        &self.header
    }

    /// Whether this handle can write the header's shared words (register as a waiter).
    pub(crate) fn header_writable(&self) -> bool {
        self.header_write
    }

    /// The current mapping.
    pub(crate) fn get(&self) -> &Mapping {
        // SAFETY: `current` always points at a boxed mapping in `all`, and boxes in `all`
        // are dropped only with `self`; the box's address is stable across pushes.
        unsafe { &*self.current.load(Ordering::Acquire) }
    }

    /// A mapping that covers `[0, len)`, made (and kept) if the current one is smaller.
    pub(crate) fn covering(&self, file: &File, path: &Path, len: u64) -> Result<&Mapping> {
        let now = self.get();
        if now.len() as u64 >= len {
            return Ok(now);
        }
        let mut all = self.all.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.get();
        if now.len() as u64 >= len {
            return Ok(now);
        }
        let want = reservation(len.max(now.len() as u64 * 2))?;
        let next = Box::new(map(file, path, self.write, want)?);
        let ptr = &*next as *const Mapping as *mut Mapping;
        all.push(next);
        self.current.store(ptr, Ordering::Release);
        Ok(self.get())
    }

    /// Load the shared 64-bit word at `off` of the header.
    pub(crate) fn load_u64(&self, off: usize) -> Result<u64> {
        // SAFETY: an 8-byte aligned word of the header page, read atomically under the
        // guard; the reference does not outlive the closure.
        unsafe {
            self.get()
                .with_raw(Op::Read, off, 8, Protection::READ, |p| {
                    AtomicU64::from_ptr(p.cast::<u64>()).load(Ordering::Acquire)
                })
        }
    }

    /// The last committed sequence number and the replaced mark, in one guarded read:
    /// what a key-value store checks before each operation.
    pub(crate) fn poll(&self) -> Result<(u64, bool)> {
        let span = format::REPLACED + 4 - format::LAST_SEQ;
        // SAFETY: aligned words of the header page, loaded atomically in the closure.
        unsafe {
            self.header
                .with_raw(Op::Read, format::LAST_SEQ, span, Protection::READ, |p| {
                    let last = AtomicU64::from_ptr(p.cast::<u64>()).load(Ordering::Acquire);
                    let replaced = AtomicU32::from_ptr(
                        p.add(format::REPLACED - format::LAST_SEQ).cast::<u32>(),
                    )
                    .load(Ordering::Acquire);
                    (last, replaced != 0)
                })
        }
    }

    /// What a shared writer reads under the writers' lock, in one guarded read: the
    /// committed end, the last sequence number, the reserved size and the replaced mark.
    pub(crate) fn writer_view(&self) -> Result<(u64, u64, u64, bool)> {
        let span = format::REPLACED + 4 - format::COMMITTED_END;
        // SAFETY: aligned words of the header page, loaded atomically in the closure.
        unsafe {
            self.header.with_raw(
                Op::Read,
                format::COMMITTED_END,
                span,
                Protection::READ,
                |p| {
                    let word = |off: usize| p.add(off - format::COMMITTED_END);
                    let u64_at = |off: usize| {
                        AtomicU64::from_ptr(word(off).cast::<u64>()).load(Ordering::Acquire)
                    };
                    let replaced = AtomicU32::from_ptr(word(format::REPLACED).cast::<u32>())
                        .load(Ordering::Acquire);
                    (
                        u64_at(format::COMMITTED_END),
                        u64_at(format::LAST_SEQ),
                        u64_at(format::RESERVED),
                        replaced != 0,
                    )
                },
            )
        }
    }

    /// Store the shared 64-bit word at `off` of the header.
    pub(crate) fn store_u64(&self, off: usize, value: u64) -> Result<()> {
        // SAFETY: as in `load_u64`; the page is writable (checked by `with_raw`).
        unsafe {
            self.header
                .with_raw(Op::Append, off, 8, Protection::READ_WRITE, |p| {
                    AtomicU64::from_ptr(p.cast::<u64>()).store(value, Ordering::Release)
                })
        }
    }

    /// Publish a commit: the committed end, then the last sequence number (a reader
    /// that loads them in the other order, as [`snapshot`](Self::snapshot) does, never
    /// sees a last number whose record lies past the end it sees); then bump the commit
    /// counter and wake followers if any wait.
    pub(crate) fn publish(&self, end: u64, last: u64) -> Result<()> {
        let span = format::WAITERS + 4 - format::COMMITTED_END;
        // SAFETY: the header's shared words (aligned, inside the header page), used only
        // through atomics and the futex call, inside the closure.
        unsafe {
            self.get().with_raw(
                Op::Append,
                format::COMMITTED_END,
                span,
                Protection::READ_WRITE,
                |p| {
                    let word = |off: usize| p.add(off - format::COMMITTED_END);
                    AtomicU64::from_ptr(word(format::COMMITTED_END).cast())
                        .store(end, Ordering::Release);
                    AtomicU64::from_ptr(word(format::LAST_SEQ).cast())
                        .store(last, Ordering::Release);
                    let events = AtomicU32::from_ptr(word(format::EVENTS).cast());
                    events.fetch_add(1, Ordering::SeqCst);
                    if AtomicU32::from_ptr(word(format::WAITERS).cast()).load(Ordering::SeqCst) > 0
                    {
                        // Shared futex (no FUTEX_PRIVATE_FLAG): followers are other processes.
                        // Every one: the kernel reads the count as an int, so u32::MAX
                        // would be -1 and wake just one follower.
                        let _ = futex::wake(events, futex::Flags::empty(), i32::MAX as u32);
                    }
                },
            )
        }
    }

    /// The committed `(last sequence number, end)`, read in the order that keeps the
    /// last record inside the end.
    pub(crate) fn snapshot(&self) -> Result<(u64, u64)> {
        let last = self.load_u64(format::LAST_SEQ)?;
        let end = self.load_u64(format::COMMITTED_END)?;
        Ok((last, end))
    }

    /// The durable end the header claims (see `format::encode_durable`), `None` when it
    /// holds no marker or a damaged one.
    pub(crate) fn durable(&self) -> Result<Option<u64>> {
        self.load_u64(format::DURABLE_END)
            .map(format::decode_durable)
    }

    /// Raise the header's durable end to `end`, which a completed flush made durable.
    /// The header page reaches storage with the next flush or writeback, whichever
    /// comes first: it then claims only bytes that were flushed before it was written.
    pub(crate) fn advance_durable(&self, end: u64) -> Result<()> {
        let want = format::encode_durable(end);
        // SAFETY: an 8-byte aligned word of the header page, used through the atomic
        // inside the closure; the page is writable (checked by `with_raw`).
        unsafe {
            self.header.with_raw(
                Op::Sync,
                format::DURABLE_END,
                8,
                Protection::READ_WRITE,
                |p| {
                    let word = AtomicU64::from_ptr(p.cast::<u64>());
                    let mut now = word.load(Ordering::Acquire);
                    while !matches!(format::decode_durable(now), Some(d) if d >= end) {
                        match word.compare_exchange_weak(
                            now,
                            want,
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        ) {
                            Ok(_) => break,
                            Err(seen) => now = seen,
                        }
                    }
                },
            )
        }
    }

    /// Set the durable end to `end` whatever it was (recovery, which cut the log there
    /// and flushed the cut, or moved the start past it).
    pub(crate) fn reset_durable(&self, end: u64) -> Result<()> {
        self.store_u64(format::DURABLE_END, format::encode_durable(end))
    }

    /// The epoch stored in the header (see `format::EPOCH`).
    pub(crate) fn epoch(&self) -> Result<[u8; format::EPOCH_LEN]> {
        let mut out = [0u8; format::EPOCH_LEN];
        // SAFETY: bytes of the header page, copied out under the guard.
        unsafe {
            self.header.with_raw(
                Op::Read,
                format::EPOCH,
                format::EPOCH_LEN,
                Protection::READ,
                |p| std::ptr::copy_nonoverlapping(p, out.as_mut_ptr(), format::EPOCH_LEN),
            )
        }?;
        Ok(out)
    }

    /// Store `epoch` in the header (a writer, after recovery).
    pub(crate) fn set_epoch(&self, epoch: &[u8; format::EPOCH_LEN]) -> Result<()> {
        // SAFETY: bytes of the header page that only a writer holding the file's lock
        // writes, copied in under the guard; readers only compare them.
        unsafe {
            self.header.with_raw(
                Op::Write,
                format::EPOCH,
                format::EPOCH_LEN,
                Protection::READ_WRITE,
                |p| std::ptr::copy_nonoverlapping(epoch.as_ptr(), p, format::EPOCH_LEN),
            )
        }
    }

    /// Run `f` on the shared 32-bit word at `off` of the header.
    pub(crate) fn with_u32<R>(&self, off: usize, f: impl FnOnce(&AtomicU32) -> R) -> Result<R> {
        let need = if self.header_write {
            Protection::READ_WRITE
        } else {
            Protection::READ
        };
        // SAFETY: a 4-byte aligned word of the header page, used only through the atomic
        // (loads, and read-modify-writes when the mapping is writable) and the futex
        // calls, which report a lost page as EFAULT; the reference stays in the closure.
        unsafe {
            self.header.with_raw(Op::Read, off, 4, need, |p| {
                f(AtomicU32::from_ptr(p.cast::<u32>()))
            })
        }
    }
}

fn reservation(len: u64) -> Result<u64> {
    let want = len.max(MIN_RESERVATION);
    want.checked_next_power_of_two()
        .filter(|&r| usize::try_from(r).is_ok())
        .ok_or_else(|| {
            Error::new(Op::Map, ErrorKind::LengthOverflow).detail(format!(
                "a log of {len} bytes does not fit the address space"
            ))
        })
}

fn map(file: &File, path: &Path, write: bool, len: u64) -> Result<Mapping> {
    let mut opts = MapOptions::new();
    opts.shared().len(len as usize).allow_past_eof();
    if write {
        opts.write();
    }
    opts.map(file).map_err(|e| e.with_path(Some(path)))
}
