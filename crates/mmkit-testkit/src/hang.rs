//! A server that hangs, for the remote tests: a TCP listener on 127.0.0.1 that accepts
//! connections and never answers, so a client's every request waits until its own timeout.
//! The address, environment and client builder are those of the S3 server (`s3.rs`).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;

use crate::s3::{s3_client, s3_env};

/// A TCP listener on 127.0.0.1 that accepts connections and never answers: every request
/// waits forever. Its connections and listener close on drop.
#[derive(Debug)]
pub struct HangServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HangServer {
    /// Listen on any free port of 127.0.0.1.
    pub fn start() -> HangServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the hanging server");
        listener.set_nonblocking(true).expect("non-blocking accept");
        let addr = listener.local_addr().expect("local address");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("hang-server".into())
            .spawn(move || {
                let mut held: Vec<TcpStream> = Vec::new();
                while !stopping.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((socket, _)) => held.push(socket),
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
            .expect("spawn the hanging server's thread");
        HangServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The environment pointing a child at it, as [`S3Server::env`](crate::s3::S3Server::env).
    pub fn env(&self) -> Vec<(String, String)> {
        s3_env(&self.endpoint())
    }

    /// An `object_store` builder for `bucket` on it, as [`S3Server::client`](crate::s3::S3Server::client).
    pub fn client(&self, bucket: &str) -> AmazonS3Builder {
        s3_client(&self.endpoint(), bucket)
    }
}

impl Drop for HangServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
