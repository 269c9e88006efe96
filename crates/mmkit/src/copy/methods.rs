//! The five ways to move the bytes. Each is a loop from [`Job::pos`] to [`Job::end`] that
//! retries `EINTR`, waits in `poll(2)` when a non-blocking destination is full, and goes on
//! after a short transfer; `pos` is always the offset of the next byte the destination has
//! not received.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};

use rustix::io::Errno;

use super::{Destination, Method};
use crate::error::{Error, ErrorKind, Op};
use crate::sys;
use crate::sys::errno_of;
use crate::MapOptions;

/// The most one system call is asked to move (the kernel moves at most 2 GiB - 4 KiB).
const CHUNK: u64 = 1 << 30;
/// The most one `write(2)` from a mapping is asked to move: bounds the page faults a single
/// call takes (as [`Mapping::write_to`](crate::Mapping::write_to) does).
const MAP_STEP: u64 = 16 << 20;

/// How a method ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// It reached `end`.
    Done,
    /// The file ended before `end`.
    Eof,
    /// A page of the mapping had no file behind it any more: the file was truncated.
    Truncated,
}

/// How a method failed.
#[derive(Debug)]
pub(super) enum Fail {
    /// The kernel refused the method for these descriptors: the next one may go on.
    Refused(Errno),
    /// A real error (the destination failed, the file could not be read).
    Error(Error),
}

/// A copy in progress.
#[derive(Debug)]
pub(super) struct Job<'a> {
    pub(super) src: BorrowedFd<'a>,
    pub(super) dst: BorrowedFd<'a>,
    pub(super) dest: Destination,
    /// The file offset of the next byte the destination has not received.
    pub(super) pos: u64,
    /// Where the copy stops.
    pub(super) end: u64,
    /// Whether the file reported its size (a mapping needs one).
    pub(super) known_size: bool,
    pub(super) pipe_size: usize,
    pub(super) buffer: usize,
    /// The size of splice's own pipe, once it made one.
    pub(super) pipe_used: Option<usize>,
}

/// Errnos that say "not this way" rather than "this failed".
fn is_refusal(e: Errno) -> bool {
    matches!(
        e,
        Errno::INVAL | Errno::NOSYS | Errno::XDEV | Errno::OPNOTSUPP
    )
}

impl Job<'_> {
    pub(super) fn run(&mut self, method: Method) -> Result<Stop, Fail> {
        let (src, dst) = (self.src, self.dst);
        match method {
            Method::CopyFileRange => self.in_kernel(Errno::BADF, |pos, n| {
                sys::copy::copy_file_range(src, pos, dst, n)
            }),
            Method::Sendfile => {
                self.in_kernel(Errno::INVAL, |pos, n| sys::copy::sendfile(dst, src, pos, n))
            }
            Method::Splice if self.dest == Destination::Pipe => self
                .in_kernel(Errno::INVAL, |pos, n| {
                    sys::copy::splice_from_file(src, pos, dst, n)
                }),
            Method::Splice => self.splice_through_pipe(),
            Method::MmapWrite => self.mmap_write(),
            Method::ReadWrite => self.read_write(),
        }
    }

    /// Bytes left, at most one call's worth.
    fn left(&self, most: u64) -> usize {
        (self.end - self.pos).min(most) as usize
    }

    /// After a call on the destination failed with `e`: `Ok` to try again (`EINTR`; `EAGAIN`
    /// once `poll` says it takes data), else the error.
    fn wait(&self, e: Errno) -> Result<(), Errno> {
        match e {
            Errno::INTR => Ok(()),
            Errno::AGAIN => sys::retry(|| sys::io::poll_out(self.dst)),
            e => Err(e),
        }
    }

    /// The failure for `e`: a refusal, or an error of `op` at the current offset.
    fn fail(&self, op: Op, e: Errno) -> Fail {
        if is_refusal(e) {
            Fail::Refused(e)
        } else {
            Fail::Error(Error::os(op, e).at(self.pos, self.end - self.pos))
        }
    }

    /// A method done by one system call that moves up to `n` bytes from `*pos` and
    /// advances it: `copy_file_range`, `sendfile`, `splice` into a pipe destination.
    /// `also_refusal` is one more errno that means "not this way" for this call.
    fn in_kernel(
        &mut self,
        also_refusal: Errno,
        mut call: impl FnMut(&mut u64, usize) -> Result<usize, Errno>,
    ) -> Result<Stop, Fail> {
        while self.pos < self.end {
            let n = self.left(CHUNK);
            let before = self.pos;
            match call(&mut self.pos, n) {
                Ok(0) => return Ok(Stop::Eof),
                Ok(moved) => debug_assert_eq!(self.pos, before + moved as u64),
                Err(e) => match self.wait(e) {
                    Ok(()) => {}
                    Err(e) if e == also_refusal => return Err(Fail::Refused(e)),
                    Err(e) => return Err(self.fail(Op::Copy, e)),
                },
            }
        }
        Ok(Stop::Done)
    }

    /// `splice` from the file into a pipe of our own, then from the pipe to the destination.
    fn splice_through_pipe(&mut self) -> Result<Stop, Fail> {
        let os = |e| Fail::Error(Error::os(Op::Copy, e));
        let (out, into) = sys::copy::pipe().map_err(os)?;
        // Refused (EPERM past pipe-max-size or the user's pipe pages): keep the default.
        let _ = sys::copy::set_pipe_size(into.as_fd(), self.pipe_size);
        let cap = sys::copy::pipe_size(into.as_fd()).map_err(os)? as u64;
        self.pipe_used = Some(cap as usize);
        let out = File::from(out);
        while self.pos < self.end {
            let n = self.left(cap);
            let mut at = self.pos;
            let held =
                sys::retry(|| sys::copy::splice_from_file(self.src, &mut at, into.as_fd(), n))
                    .map_err(|e| self.fail(Op::Read, e))?;
            if held == 0 {
                return Ok(Stop::Eof);
            }
            let mut held = held as u64;
            while held > 0 {
                let more = self.pos + held < self.end;
                match sys::copy::splice_to(out.as_fd(), self.dst, held as usize, more) {
                    Ok(0) => {
                        return Err(Fail::Error(
                            Error::os(Op::Write, Errno::IO).detail("splice moved no bytes"),
                        ))
                    }
                    Ok(k) => {
                        held -= k as u64;
                        self.pos += k as u64;
                    }
                    Err(e) => match self.wait(e) {
                        Ok(()) => {}
                        Err(e) if is_refusal(e) => {
                            // The bytes in the pipe are out of the file already: deliver
                            // them before the next method takes over at `pos`.
                            self.drain(&out, held)?;
                            return Err(Fail::Refused(e));
                        }
                        Err(e) => return Err(self.fail(Op::Write, e)),
                    },
                }
            }
        }
        Ok(Stop::Done)
    }

    /// Read `held` bytes out of `pipe` and write them to the destination.
    fn drain(&mut self, mut pipe: &File, mut held: u64) -> Result<(), Fail> {
        let mut buf = vec![0u8; self.buffer.min(held as usize)];
        while held > 0 {
            let n = buf.len().min(held as usize);
            let got = sys::retry(|| pipe.read(&mut buf[..n]))
                .map_err(|e| Fail::Error(Error::io(Op::Copy, &e)))?;
            if got == 0 {
                return Err(Fail::Error(
                    Error::os(Op::Copy, Errno::IO).detail("splice's pipe ended early"),
                ));
            }
            self.write_all(&buf[..got], false)?;
            held -= got as u64;
        }
        Ok(())
    }

    /// A mapping of the range, and `write(2)` from its pages.
    fn mmap_write(&mut self) -> Result<Stop, Fail> {
        if !self.known_size {
            return Err(Fail::Refused(Errno::INVAL)); // a mapping needs a length
        }
        if self.pos == self.end {
            return Ok(Stop::Done);
        }
        let len = usize::try_from(self.end - self.pos).map_err(|_| Fail::Refused(Errno::NOMEM))?;
        // Past the file's end is allowed: a file shrunk since is found by the writes.
        let map = MapOptions::new()
            .offset(self.pos)
            .len(len)
            .allow_past_eof()
            .map_fd(self.src, None)
            .map_err(
                |e| match (e.kind(), e.errno().map(Errno::from_raw_os_error)) {
                    (ErrorKind::NotMappable, _) => Fail::Refused(Errno::NODEV),
                    (_, Some(n)) if is_refusal(n) || n == Errno::NODEV => Fail::Refused(n),
                    _ => Fail::Error(e),
                },
            )?;
        let base = self.pos;
        while self.pos < self.end {
            let at = (self.pos - base) as usize;
            let n = self.left(MAP_STEP);
            match map.write_once(at, n, self.dst) {
                Err(e) if e.kind() == ErrorKind::Truncated => return Ok(Stop::Truncated),
                Err(e) => return Err(Fail::Error(e)),
                Ok(Ok(0)) => {
                    return Err(Fail::Error(
                        Error::os(Op::Write, Errno::IO).detail("write(2) took no bytes"),
                    ))
                }
                Ok(Ok(k)) => self.pos += k as u64,
                Ok(Err(io)) if errno_of(&io) == Errno::FAULT => {
                    let e = map.lost_in_write(at, n);
                    return match e.kind() {
                        ErrorKind::Truncated => Ok(Stop::Truncated),
                        _ => Err(Fail::Error(e)),
                    };
                }
                Ok(Err(io)) => {
                    if let Err(e) = self.wait(errno_of(&io)) {
                        return Err(self.fail(Op::Write, e));
                    }
                }
            }
        }
        Ok(Stop::Done)
    }

    /// `pread(2)` into a buffer, `write(2)` out of it.
    fn read_write(&mut self) -> Result<Stop, Fail> {
        let mut buf = vec![0u8; self.left(self.buffer as u64)];
        while self.pos < self.end {
            let n = self.left(buf.len() as u64);
            let got = sys::retry(|| sys::io::pread(self.src, &mut buf[..n], self.pos))
                .map_err(|e| self.fail(Op::Read, e))?;
            if got == 0 {
                return Ok(Stop::Eof);
            }
            self.write_all(&buf[..got], true)?;
        }
        Ok(Stop::Done)
    }

    /// Write all of `bytes` to the destination, advancing `pos`. A refusal is a refusal
    /// only when `refusable` (bytes already out of the file cannot be handed over).
    fn write_all(&mut self, mut bytes: &[u8], refusable: bool) -> Result<(), Fail> {
        while !bytes.is_empty() {
            match sys::io::write(self.dst, bytes) {
                Ok(0) => {
                    return Err(Fail::Error(
                        Error::os(Op::Write, Errno::IO).detail("write(2) took no bytes"),
                    ))
                }
                Ok(k) => {
                    bytes = &bytes[k..];
                    self.pos += k as u64;
                }
                Err(e) => match self.wait(e) {
                    Ok(()) => {}
                    Err(e) if refusable => return Err(self.fail(Op::Write, e)),
                    Err(e) => {
                        return Err(Fail::Error(
                            Error::os(Op::Write, e).at(self.pos, self.end - self.pos),
                        ))
                    }
                },
            }
        }
        Ok(())
    }
}
