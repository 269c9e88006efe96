//! A plain HTTP server for the remote tests (`object_store`'s `http` store reads from
//! it): one object, served at every path, to `HEAD` and to `GET` with or without a
//! byte range (`206` and `Content-Range`), on 127.0.0.1. It can flip one byte of the
//! object in every body that holds it ([`HttpServer::flip`]), as a faulty disk, proxy or
//! network card would: the client sees a well-formed answer of the right length whose
//! bytes are wrong.
//!
//! One request per connection (`Connection: close`); each connection on a thread of its
//! own, at most [`MAX_CONNECTIONS`]; all of them end when the server is dropped.

pub use crate::listen::MAX_CONNECTIONS;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::listen::Running;

/// No flip.
const NO_FLIP: u64 = u64::MAX;

#[derive(Debug)]
struct Shared {
    object: Vec<u8>,
    /// The object offset whose byte is flipped (inverted) in answers, or [`NO_FLIP`].
    flip: AtomicU64,
    /// Bodies sent with the flipped byte in them.
    flipped: AtomicUsize,
    stop: Arc<AtomicBool>,
}

/// The server: listening on 127.0.0.1 until dropped.
#[derive(Debug)]
pub struct HttpServer {
    server: Running,
    shared: Arc<Shared>,
}

impl HttpServer {
    /// Serve `object` on any free port.
    pub fn start(object: Vec<u8>) -> HttpServer {
        let shared = Arc::new(Shared {
            object,
            flip: AtomicU64::new(NO_FLIP),
            flipped: AtomicUsize::new(0),
            stop: Arc::new(AtomicBool::new(false)),
        });
        let server = Running::start("http-server", &shared, &shared.stop, serve);
        HttpServer { server, shared }
    }

    /// `http://127.0.0.1:PORT/NAME`: the object (any path serves it).
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{name}", self.server.addr())
    }

    /// From now on, invert the object's byte at `offset` in every body that holds it.
    pub fn flip(&self, offset: u64) {
        self.shared.flip.store(offset, Ordering::Relaxed);
    }

    /// Bodies sent with the flipped byte in them so far.
    pub fn flipped(&self) -> usize {
        self.shared.flipped.load(Ordering::Relaxed)
    }
}

/// Answer the one request on `conn`.
fn serve(mut conn: TcpStream, shared: &Shared) -> io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_millis(20)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if shared.stop.load(Ordering::Relaxed) || head.len() > 64 << 10 {
            return Ok(());
        }
        match conn.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let method = text.split(' ').next().unwrap_or("");
    let len = shared.object.len() as u64;
    let range = text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("range")
            .then(|| parse_range(v.trim(), len))?
    });
    let (status, start, end) = match range {
        Some(r) => ("206 Partial Content", r.0, r.1),
        None => ("200 OK", 0, len),
    };
    let mut answer = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nETag: \"mmkit-test\"\r\n\
         Accept-Ranges: bytes\r\nConnection: close\r\n",
        end - start
    );
    if range.is_some() {
        answer.push_str(&format!(
            "Content-Range: bytes {start}-{}/{len}\r\n",
            end - 1
        ));
    }
    answer.push_str("\r\n");
    conn.write_all(answer.as_bytes())?;
    if method == "GET" {
        let mut body = shared.object[start as usize..end as usize].to_vec();
        let flip = shared.flip.load(Ordering::Relaxed);
        if (start..end).contains(&flip) {
            body[(flip - start) as usize] ^= 0xFF;
            shared.flipped.fetch_add(1, Ordering::Relaxed);
        }
        conn.write_all(&body)?;
    }
    conn.flush()
}

/// `bytes=A-B` (inclusive; `B` clipped to the object) as `A..B+1`; `None` for anything
/// else (then the whole object is sent).
fn parse_range(v: &str, len: u64) -> Option<(u64, u64)> {
    let (a, b) = v.strip_prefix("bytes=")?.split_once('-')?;
    let a: u64 = a.trim().parse().ok()?;
    let b: u64 = match b.trim() {
        "" => len.checked_sub(1)?,
        b => b.parse::<u64>().ok()?.min(len.checked_sub(1)?),
    };
    (a <= b).then_some((a, b + 1))
}
