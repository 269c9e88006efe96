//! A faulty proxy for the remote tests: a TCP proxy on 127.0.0.1 in front of a server
//! (the S3 test server of `s3.rs`) that spoils the `GET` requests it forwards on a fixed
//! schedule: the first `GET` gets the schedule's first [`Fault`], the second its second,
//! and so on; every request after the schedule (and every `HEAD`, `PUT`, ...) passes.
//!
//! - [`Fault::Reset`]: the connection is closed with the request unread, so the kernel
//!   answers with a TCP reset: the client sees "Connection reset by peer".
//! - [`Fault::Truncate`]: the response is sent with half of its body, then the
//!   connection is closed: the body ends before its `Content-Length`.
//! - [`Fault::Stall`]: nothing is answered until the client gives up (closes), or at most
//!   [`STALL_MAX`]: a client's timeout must end it.
//!
//! Each request is forwarded on a fresh connection to the server with `Connection:
//! close`, so the server closes after its answer and the client does not reuse the
//! connection either: a client connection carries one request, and the schedule's order
//! is the order in which `GET`s arrive. Bounded: at most [`MAX_CONNECTIONS`] connections,
//! each thread ends at [`FaultyProxy`]'s drop at the latest.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::listen::Running;
pub use crate::listen::MAX_CONNECTIONS;
use crate::s3::s3_env;

/// The longest a [`Fault::Stall`] holds a request.
pub const STALL_MAX: Duration = Duration::from_secs(20);
/// How often a waiting thread looks at the stop flag.
const POLL: Duration = Duration::from_millis(20);
/// The longest an exchange with the server may take.
const UPSTREAM_MAX: Duration = Duration::from_secs(20);

/// What the proxy does to one `GET`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward it and its answer.
    Pass,
    /// Close the connection with the request unread (a TCP reset).
    Reset,
    /// Forward it, send the answer's head and half of its body, close.
    Truncate,
    /// Answer nothing until the client closes (or [`STALL_MAX`]).
    Stall,
}

#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    schedule: Mutex<VecDeque<Fault>>,
    /// The faults (not `Pass`) applied so far, in order.
    applied: Mutex<Vec<Fault>>,
    gets: AtomicUsize,
    stop: Arc<AtomicBool>,
}

/// The proxy: listening on 127.0.0.1 until dropped.
#[derive(Debug)]
pub struct FaultyProxy {
    server: Running,
    shared: Arc<Shared>,
}

impl FaultyProxy {
    /// Proxy to `upstream`, spoiling the first `GET`s as `schedule` says.
    pub fn start(upstream: SocketAddr, schedule: &[Fault]) -> FaultyProxy {
        let shared = Arc::new(Shared {
            upstream,
            schedule: Mutex::new(schedule.iter().copied().collect()),
            applied: Mutex::new(Vec::new()),
            gets: AtomicUsize::new(0),
            stop: Arc::new(AtomicBool::new(false)),
        });
        let server = Running::start("faulty-proxy", &shared, &shared.stop, serve);
        FaultyProxy { server, shared }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The environment pointing a child at it, as `S3Server::env`.
    pub fn env(&self) -> Vec<(String, String)> {
        s3_env(&self.endpoint())
    }

    /// The faults applied so far (not the passes), in order.
    pub fn applied(&self) -> Vec<Fault> {
        self.shared.applied.lock().unwrap().clone()
    }

    /// Scheduled faults not applied yet.
    pub fn pending(&self) -> usize {
        self.shared.schedule.lock().unwrap().len()
    }

    /// `GET`s seen so far.
    pub fn gets(&self) -> usize {
        self.shared.gets.load(Ordering::Relaxed)
    }
}

/// Serve one client connection: each request by its fault.
fn serve(client: TcpStream, shared: &Shared) -> io::Result<()> {
    client.set_nonblocking(false)?;
    client.set_read_timeout(Some(POLL))?;
    let mut client = client;
    loop {
        let Some(head_len) = peek_head(&client, shared)? else {
            return Ok(());
        };
        let mut head = vec![0u8; head_len];
        let is_get = {
            let mut peeked = vec![0u8; 4];
            let n = client.peek(&mut peeked)?;
            &peeked[..n] == b"GET "
        };
        let fault = if is_get {
            shared.gets.fetch_add(1, Ordering::Relaxed);
            shared
                .schedule
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Fault::Pass)
        } else {
            Fault::Pass
        };
        if fault != Fault::Pass {
            shared.applied.lock().unwrap().push(fault);
        }
        if fault == Fault::Reset {
            // Closed with the request unread: the kernel sends a reset, not a FIN.
            return Ok(());
        }
        read_exact_polling(&mut client, &mut head, shared)?;
        let mut body = vec![0u8; content_length(&head)];
        read_exact_polling(&mut client, &mut body, shared)?;
        if fault == Fault::Stall {
            stall(&client, shared);
            return Ok(());
        }
        let answer = forward(shared.upstream, &head, &body)?;
        if fault == Fault::Truncate {
            let head_end = find_head_end(&answer).unwrap_or(answer.len());
            let body_len = answer.len() - head_end;
            client.write_all(&answer[..head_end + body_len / 2])?;
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
        client.write_all(&answer)?;
    }
}

/// Wait until a whole request head is readable; its length, or `None` when the client
/// closed or the proxy stops.
fn peek_head(client: &TcpStream, shared: &Shared) -> io::Result<Option<usize>> {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        match client.peek(&mut buf) {
            Ok(0) => return Ok(None),
            Ok(n) => {
                if let Some(end) = find_head_end(&buf[..n]) {
                    return Ok(Some(end));
                }
                if n == buf.len() {
                    return Err(io::Error::other("request head over 64 KiB"));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Fill `buf` from `client`, looking at the stop flag between reads.
fn read_exact_polling(client: &mut TcpStream, buf: &mut [u8], shared: &Shared) -> io::Result<()> {
    let mut at = 0;
    while at < buf.len() {
        if shared.stop.load(Ordering::Relaxed) {
            return Err(io::Error::other("stopped"));
        }
        match client.read(&mut buf[at..]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => at += n,
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Hold the connection, answering nothing, until the client closes it, the proxy stops,
/// or [`STALL_MAX`].
fn stall(client: &TcpStream, shared: &Shared) {
    let until = Instant::now() + STALL_MAX;
    let mut byte = [0u8; 1];
    while Instant::now() < until && !shared.stop.load(Ordering::Relaxed) {
        match client.peek(&mut byte) {
            Ok(0) => return,
            Ok(_) => std::thread::sleep(POLL),
            Err(e) if is_timeout(&e) => {}
            Err(_) => return,
        }
    }
}

/// Send the request to `upstream` on a fresh connection, with `Connection: close`; the
/// whole answer (the server closes after it).
fn forward(upstream: SocketAddr, head: &[u8], body: &[u8]) -> io::Result<Vec<u8>> {
    let mut up = TcpStream::connect(upstream)?;
    up.set_read_timeout(Some(UPSTREAM_MAX))?;
    let line_end = head
        .windows(2)
        .position(|w| w == b"\r\n")
        .ok_or_else(|| io::Error::other("no request line"))?;
    let mut req = Vec::with_capacity(head.len() + body.len() + 32);
    req.extend_from_slice(&head[..line_end + 2]);
    req.extend_from_slice(b"Connection: close\r\n");
    for line in head[line_end + 2..].split(|&b| b == b'\n') {
        let lower = String::from_utf8_lossy(line).to_ascii_lowercase();
        if lower.starts_with("connection:") || line.is_empty() || line == b"\r" {
            continue;
        }
        req.extend_from_slice(line);
        req.push(b'\n');
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body);
    up.write_all(&req)?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    Ok(answer)
}

/// The length of the head (through the blank line) at the start of `buf`, if whole.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// The `Content-Length` of a request head (0 without one).
fn content_length(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
