//! One pass of the sink bench: a fresh destination (a pipe or a loopback TCP connection
//! with a reader thread draining it, or a truncated file), one forced copy method, and the
//! sending thread's CPU time around it.

use std::fs::File;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::method::scan;
use mmkit::copy::{CopyOptions, CopyReport, Method};
use mmkit::lab_seam::ErrorExt;
use mmkit::probe::CpuOf as Who;
use mmkit::{Error, Op, Result};

/// Where the bench sends the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
#[non_exhaustive]
pub enum Sink {
    /// A pipe (1 MiB), drained by a reader thread.
    Pipe,
    /// A TCP connection on 127.0.0.1, drained by a reader thread.
    Socket,
    /// A file, truncated before each pass.
    File,
}

impl Sink {
    /// Every sink, in table order.
    pub const ALL: [Sink; 3] = [Sink::Pipe, Sink::Socket, Sink::File];

    /// `pipe`, `socket` or `file`.
    pub fn name(self) -> &'static str {
        match self {
            Sink::Pipe => "pipe",
            Sink::Socket => "socket",
            Sink::File => "file",
        }
    }

    /// The sink of a [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<Sink> {
        Sink::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// The bench's sinks: the listening socket, the sink file, the sizes.
#[derive(Debug)]
pub(crate) struct Endpoints {
    /// 127.0.0.1, an ephemeral port; each socket pass connects afresh.
    pub(crate) listener: Option<TcpListener>,
    /// The file sink, truncated before each pass.
    pub(crate) sink_file: PathBuf,
    /// The pipe buffer for splice's own pipe and for the pipe sink.
    pub(crate) pipe_size: usize,
    /// The read+write buffer, and the reader's.
    pub(crate) buffer: usize,
}

impl Endpoints {
    /// Short exchanges over loopback from each CPU this thread may run on, for the cold
    /// eviction: socket buffers holding pages a `sendfile` or `splice` lent are freed
    /// lazily, on the CPU that made them, at its next network receive
    /// (`skb_attempt_defer_free`); until then those page-cache pages stay referenced and
    /// cannot be evicted. The thread is pinned to one CPU at a time (`sched_setaffinity`)
    /// and its affinity restored. Errors are ignored: this is only a nudge.
    pub(crate) fn nudge_loopback(&self) {
        use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};
        let Ok(allowed) = sched_getaffinity(None) else {
            return self.exchange();
        };
        for cpu in (0..CpuSet::MAX_CPU).filter(|&c| allowed.is_set(c)) {
            let mut one = CpuSet::new();
            one.set(cpu);
            if sched_setaffinity(None, &one).is_ok() {
                self.exchange();
            }
        }
        let _ = sched_setaffinity(None, &allowed);
    }

    /// 64 round trips of 1 KiB over a fresh loopback connection, errors ignored.
    fn exchange(&self) {
        use std::io::Write;
        let Some(listener) = &self.listener else {
            return;
        };
        let Ok(mut a) = listener.local_addr().and_then(TcpStream::connect) else {
            return;
        };
        let Ok((mut b, _)) = listener.accept() else {
            return;
        };
        let mut buf = [0u8; 1024];
        for _ in 0..64 {
            let ok = a.write_all(&buf).is_ok()
                && b.read_exact(&mut buf).is_ok()
                && b.write_all(&buf).is_ok()
                && a.read_exact(&mut buf).is_ok();
            if !ok {
                return;
            }
        }
    }
}

/// The measurements of one pass.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// From the start of the copy to the reader's end of file (the copy's end for a file).
    pub(crate) wall: Duration,
    /// User CPU time of the sending thread.
    pub(crate) user: Duration,
    /// System CPU time of the sending thread.
    pub(crate) sys: Duration,
    /// CPU time (user + system) of the reader thread, when there is one.
    pub(crate) reader: Option<Duration>,
    /// CPU time (user + system) of the whole process: sender, reader and any other thread.
    pub(crate) process: Duration,
}

/// What a pass delivered: the bytes, their checksum when asked (as [`scan`] of the whole
/// file gives it), the copy's report.
#[derive(Debug)]
pub(crate) struct Delivered {
    pub(crate) bytes: u64,
    pub(crate) checksum: Option<u64>,
    pub(crate) report: CopyReport,
}

/// [`scan`]'s checksum of a stream fed in pieces of any length.
#[derive(Debug, Default)]
pub(crate) struct Summer {
    sum: u64,
    carry: [u8; 8],
    held: usize,
}

impl Summer {
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) {
        if self.held > 0 {
            let take = (8 - self.held).min(bytes.len());
            self.carry[self.held..self.held + take].copy_from_slice(&bytes[..take]);
            self.held += take;
            bytes = &bytes[take..];
            if self.held < 8 {
                return;
            }
            self.sum = self.sum.wrapping_add(u64::from_ne_bytes(self.carry));
            self.held = 0;
        }
        let whole = bytes.len() / 8 * 8;
        self.sum = self.sum.wrapping_add(scan(&bytes[..whole]));
        let rest = &bytes[whole..];
        self.carry[..rest.len()].copy_from_slice(rest);
        self.held = rest.len();
    }

    pub(crate) fn finish(&self) -> u64 {
        self.carry[..self.held]
            .iter()
            .fold(self.sum, |s, &b| s.wrapping_add(b as u64))
    }
}

/// The checksum and length of a whole file, read with `buffer`-sized reads.
pub(crate) fn checksum_file(mut file: &File, buffer: usize) -> Result<(u64, u64)> {
    use std::io::{Seek, SeekFrom};
    let err = |e: std::io::Error| Error::io(Op::Read, &e);
    file.seek(SeekFrom::Start(0)).map_err(err)?;
    let mut buf = vec![0u8; buffer];
    let (mut summer, mut len) = (Summer::default(), 0u64);
    loop {
        let n = file.read(&mut buf).map_err(err)?;
        if n == 0 {
            return Ok((summer.finish(), len));
        }
        summer.feed(&buf[..n]);
        len += n as u64;
    }
}

/// The reader's account: bytes, checksum when asked, its CPU time.
type Drained = std::io::Result<(u64, Option<u64>, Duration)>;

/// A thread that reads `from` to its end.
fn reader(
    mut from: impl Read + Send + 'static,
    buffer: usize,
    verify: bool,
) -> JoinHandle<Drained> {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; buffer];
        let (mut summer, mut bytes) = (Summer::default(), 0u64);
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if verify {
                summer.feed(&buf[..n]);
            }
            bytes += n as u64;
        }
        let (user, sys) = crate::bench::cpu_time(Who::Thread);
        Ok((bytes, verify.then(|| summer.finish()), user + sys))
    })
}

/// A fresh sink of kind `to`: the descriptor to copy into, and the thread draining it
/// (none for a file).
fn open_sink(
    ep: &Endpoints,
    to: Sink,
    verify: bool,
) -> Result<(OwnedFd, Option<JoinHandle<Drained>>)> {
    let io = |e: std::io::Error| Error::io(Op::Copy, &e);
    Ok(match to {
        Sink::Pipe => {
            let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                .map_err(|e| Error::os(Op::Copy, e))?;
            // Refused (EPERM over the user's pipe pages): the default size is measured.
            let _ = rustix::pipe::fcntl_setpipe_size(w.as_fd(), ep.pipe_size);
            (w, Some(reader(File::from(r), ep.buffer, verify)))
        }
        Sink::Socket => {
            let listener = ep
                .listener
                .as_ref()
                .expect("a listener for the socket sink");
            let tx = TcpStream::connect(listener.local_addr().map_err(io)?).map_err(io)?;
            let (rx, _) = listener.accept().map_err(io)?;
            (tx.into(), Some(reader(rx, ep.buffer, verify)))
        }
        Sink::File => {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&ep.sink_file)
                .map_err(|e| Error::io(Op::Open, &e).with_path(Some(&ep.sink_file)))?;
            (f.into(), None)
        }
    })
}

/// Copy all of `src` to a fresh sink of kind `to` with `method` forced; with `verify`, the
/// checksum of what arrived too.
pub(crate) fn pass(
    ep: &Endpoints,
    to: Sink,
    method: Method,
    src: &File,
    verify: bool,
) -> Result<(Sample, Delivered)> {
    let io = |e: std::io::Error| Error::io(Op::Copy, &e);
    let (writer, reading) = open_sink(ep, to, verify)?;
    let (puser0, psys0) = crate::bench::cpu_time(Who::Process);
    let (user0, sys0) = crate::bench::cpu_time(Who::Thread);
    let start = Instant::now();
    let copied = CopyOptions::new()
        .method(method)
        .pipe_size(ep.pipe_size)
        .buffer(ep.buffer)
        .copy(src, &writer);
    drop(writer); // the reader's end of file
    let drained = reading.map(|r| r.join().expect("the reader thread does not panic"));
    let wall = start.elapsed();
    let (user1, sys1) = crate::bench::cpu_time(Who::Thread);
    let (puser1, psys1) = crate::bench::cpu_time(Who::Process);
    let report = copied?;
    let (bytes, checksum, reader_cpu) = match drained {
        Some(d) => {
            let (bytes, sum, cpu) = d.map_err(io)?;
            (bytes, sum, Some(cpu))
        }
        None if verify => {
            let f = File::open(&ep.sink_file).map_err(io)?;
            let (sum, len) = checksum_file(&f, ep.buffer)?;
            (len, Some(sum), None)
        }
        None => (report.bytes, None, None),
    };
    let sample = Sample {
        wall,
        user: user1.saturating_sub(user0),
        sys: sys1.saturating_sub(sys0),
        reader: reader_cpu,
        process: (puser1 + psys1).saturating_sub(puser0 + psys0),
    };
    Ok((
        sample,
        Delivered {
            bytes,
            checksum,
            report,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summer_matches_scan_whatever_the_pieces() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        for step in [1, 3, 7, 8, 13, 999, 1000] {
            let mut s = Summer::default();
            for piece in data.chunks(step) {
                s.feed(piece);
            }
            assert_eq!(s.finish(), scan(&data), "pieces of {step}");
        }
    }
}
