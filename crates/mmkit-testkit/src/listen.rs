//! The accept loop of the plain test servers (`http.rs`, `proxy.rs`): a listener on any free
//! port of 127.0.0.1, each connection served on a thread of its own, at most
//! [`MAX_CONNECTIONS`]; the loop ends when the server says it stops, and joins them all.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Connections served at most; later ones are closed at once.
pub const MAX_CONNECTIONS: usize = 512;

/// What a server does with one connection, and whether it is stopping.
pub(crate) trait Serve: Send + Sync + 'static {
    /// Whether the server stops (its owner was dropped).
    fn stopped(&self) -> bool;
    /// Serve one connection to its end.
    fn serve(&self, conn: TcpStream) -> io::Result<()>;
}

/// Listen on any free port of 127.0.0.1 and serve `shared`'s connections on a thread named
/// `name`: the address and that thread.
pub(crate) fn start<S: Serve>(name: &str, shared: &Arc<S>) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind {name}: {e}"));
    listener.set_nonblocking(true).expect("non-blocking accept");
    let addr = listener.local_addr().expect("local address");
    let s = Arc::clone(shared);
    let conn_name = format!("{name}-conn");
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || accept_loop(&listener, &s, &conn_name))
        .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
    (addr, thread)
}

/// Accept connections until stopped, each served on a thread of its own; join them all.
fn accept_loop<S: Serve>(listener: &TcpListener, shared: &Arc<S>, name: &str) {
    let mut threads = Vec::new();
    while !shared.stopped() {
        match listener.accept() {
            Ok((conn, _)) if threads.len() < MAX_CONNECTIONS => {
                let s = Arc::clone(shared);
                let t = std::thread::Builder::new()
                    .name(name.into())
                    .spawn(move || {
                        let _ = s.serve(conn);
                    });
                if let Ok(t) = t {
                    threads.push(t);
                }
            }
            Ok(_) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    for t in threads {
        let _ = t.join();
    }
}
