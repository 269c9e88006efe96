//! The accept loop of the plain test servers (`http.rs`, `proxy.rs`): a listener on any free
//! port of 127.0.0.1, each connection served on a thread of its own, at most
//! [`MAX_CONNECTIONS`]; when the [`Running`] handle drops, the loop stops and joins them all.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Connections served at most; later ones are closed at once.
pub const MAX_CONNECTIONS: usize = 512;

/// Serves one connection to its end, with the server's state.
pub(crate) type ServeFn<S> = fn(TcpStream, &S) -> io::Result<()>;

/// A server listening: its address; stopped (`stop` set) and joined on drop. The state's
/// connections look at `stop` too, so that each of them ends.
#[derive(Debug)]
pub(crate) struct Running {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    /// Listen on any free port of 127.0.0.1 and serve each connection with `serve` and
    /// `state`, on threads named after `name`, until `stop` is set.
    pub(crate) fn start<S: Send + Sync + 'static>(
        name: &str,
        state: &Arc<S>,
        stop: &Arc<AtomicBool>,
        serve: ServeFn<S>,
    ) -> Running {
        let listener =
            TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind {name}: {e}"));
        listener.set_nonblocking(true).expect("non-blocking accept");
        let addr = listener.local_addr().expect("local address");
        let (state, stopping) = (Arc::clone(state), Arc::clone(stop));
        let conn_name = format!("{name}-conn");
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || accept_loop(&listener, &state, &stopping, serve, &conn_name))
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Running {
            addr,
            stop: Arc::clone(stop),
            thread: Some(thread),
        }
    }

    /// The address it listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Accept connections until stopped, each served on a thread of its own; join them all.
fn accept_loop<S: Send + Sync + 'static>(
    listener: &TcpListener,
    state: &Arc<S>,
    stop: &AtomicBool,
    serve: ServeFn<S>,
    name: &str,
) {
    let mut threads = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((conn, _)) if threads.len() < MAX_CONNECTIONS => {
                let s = Arc::clone(state);
                let t = std::thread::Builder::new()
                    .name(name.into())
                    .spawn(move || {
                        let _ = serve(conn, &s);
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
