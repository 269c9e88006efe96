//! A real S3 server on loopback for the remote tests: `s3s-fs` (the S3 REST API over a
//! directory) served by hyper on 127.0.0.1, on a tokio runtime of its own.
//!
//! - [`S3Server::start`] (or [`S3Options`]) serves a fresh temporary directory with fixed
//!   credentials ([`ACCESS_KEY`], [`SECRET_KEY`], region [`REGION`]) and path-style URLs.
//!   [`S3Server::env`] is what a child process (the `mmkit` CLI) needs to reach it;
//!   [`S3Server::client`] is an `object_store` builder already pointed at it.
//! - Objects go in through the S3 API ([`S3Server::put`], [`S3Server::put_with`]: one PUT up
//!   to 16 MiB, a multipart upload of 8 MiB parts above), never by writing files into
//!   [`S3Server::dir`]: s3s-fs stores an object's ETag when it is uploaded, and computes the
//!   MD5 of the whole file on every GET and HEAD of one it did not receive.
//! - Every request waits [`S3Server::set_delay`] before it is served (a round trip to a real
//!   store), and is counted ([`S3Server::counts`]: requests, GETs, bytes of GET bodies).
//! - A GET or HEAD with `If-Match` or `If-None-Match` gets S3's 412 or 304, which s3s-fs
//!   itself does not send (`precondition`).
//! - [`S3Server::stop`] (and drop) kills it abruptly: the listener and every open
//!   connection are dropped with the runtime, so a client mid-request gets an error and a
//!   new connection is refused.
//!
//! Its sibling `hang.rs` has the server that never answers.
//!
//! Speed: s3s-fs streams a GET body in 4 KiB reads, each a hop through tokio's blocking
//! pool, so one GET runs at about 50 to 200 MiB/s here (2 vCPUs, release build), whatever
//! the delay; parallel range GETs add up to a little more. Uploads hash every byte (MD5,
//! for the ETag), and a multipart upload is copied once more when it completes.
//!
//! ```ignore
//! let s3 = S3Server::start();
//! s3.create_bucket("data");
//! s3.put("data", "obj", b"hello");
//! let mut cmd = std::process::Command::new("mmkit");
//! cmd.envs(s3.env()).args(["page", "bench", "--url", "s3://data/obj"]);
//! ```
//!
//! Shared by the library's tests, its `s3_server` example and the CLI's tests.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{HttpError, HttpRequest, HttpResponse};

/// Whether `name` follows S3's rules for a bucket name (3 to 63 of `a-z 0-9 . -`).
pub use s3s::path::check_bucket_name;

/// The test server's access key id.
pub const ACCESS_KEY: &str = "mmkit-test-access-key";
/// The test server's secret access key.
pub const SECRET_KEY: &str = "mmkit-test-secret-key";
/// The region the clients sign for (s3s does not check it against anything).
pub const REGION: &str = "us-east-1";

/// Objects up to this size are uploaded with one PUT, larger ones in parts.
const SINGLE_PUT_MAX: u64 = 16 << 20;
/// The part size of a multipart upload (S3 and s3s-fs want at least 5 MiB but the last).
const PART: u64 = 8 << 20;
/// Parts in flight at once during an upload.
const PARTS_IN_FLIGHT: usize = 4;
/// How long [`S3Server::stop`] waits for the runtime's threads to end.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// How to start an [`S3Server`]: which directory, port and delay.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    dir: Option<PathBuf>,
    port: u16,
    delay: Duration,
}

impl S3Options {
    /// A fresh temporary directory, any free port, no delay.
    pub fn new() -> S3Options {
        S3Options::default()
    }

    /// Serve `dir` (created if missing, kept after the server stops) instead of a fresh
    /// temporary directory. Buckets are its subdirectories.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> S3Options {
        self.dir = Some(dir.into());
        self
    }

    /// Listen on this port of 127.0.0.1; 0 (the default) takes any free one.
    pub fn port(mut self, port: u16) -> S3Options {
        self.port = port;
        self
    }

    /// Delay every response by `delay` from the start (see [`S3Server::set_delay`]).
    pub fn delay(mut self, delay: Duration) -> S3Options {
        self.delay = delay;
        self
    }

    /// Start serving. Fails if the directory cannot be made or the port is taken.
    pub fn start(self) -> io::Result<S3Server> {
        let (root, tmp) = match self.dir {
            Some(dir) => {
                std::fs::create_dir_all(&dir)?;
                (dir, None)
            }
            None => {
                let tmp = tempfile::Builder::new().prefix("mmkit-s3-").tempdir()?;
                (tmp.path().to_path_buf(), Some(tmp))
            }
        };
        let fs = s3s_fs::FileSystem::new(&root)
            .map_err(|e| io::Error::other(format!("s3s-fs over {}: {e:?}", root.display())))?;
        let mut service = S3ServiceBuilder::new(fs);
        service.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = service.build();

        let listener = StdListener::bind(("127.0.0.1", self.port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        shared.set_delay(self.delay);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("s3-server")
            .enable_all()
            .build()?;
        rt.spawn(serve(listener, service, Arc::clone(&shared)));
        Ok(S3Server {
            rt: Some(rt),
            addr,
            root,
            shared,
            _tmp: tmp,
        })
    }
}

/// What the service wrapper and the test share.
#[derive(Debug, Default)]
struct Shared {
    /// The delay before each response, in nanoseconds; read at each request's arrival.
    delay_ns: AtomicU64,
    /// Requests received (counted on arrival, before the delay).
    requests: AtomicU64,
    /// GET requests received (object reads, and bucket listings).
    gets: AtomicU64,
    /// The sum of the Content-Length of successful GET responses.
    get_bytes: AtomicU64,
    /// Serve as s3s-fs alone does: ignore `If-Match` and `If-None-Match`.
    ignore_preconditions: AtomicBool,
    /// Answer this many of the next requests with `503 SlowDown` (a store shedding load).
    fail_next: AtomicU64,
}

impl Shared {
    fn set_delay(&self, delay: Duration) {
        let ns = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        self.delay_ns.store(ns, Ordering::Relaxed);
    }

    fn delay(&self) -> Duration {
        Duration::from_nanos(self.delay_ns.load(Ordering::Relaxed))
    }
}

/// What an [`S3Server`] has served since it started or since [`S3Server::reset_counts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Every request, whatever its method and outcome (uploads by the helper too).
    pub requests: u64,
    /// GET requests (object reads, whole or ranged; bucket listings).
    pub gets: u64,
    /// Bytes of successful GET responses, by their Content-Length: what the server sends
    /// unless the client hangs up first.
    pub get_bytes: u64,
}

/// An S3 REST server (s3s-fs) on 127.0.0.1, on its own tokio runtime; stopped on drop.
#[derive(Debug)]
pub struct S3Server {
    /// `None` once stopped.
    rt: Option<tokio::runtime::Runtime>,
    addr: SocketAddr,
    root: PathBuf,
    shared: Arc<Shared>,
    /// The temporary directory served, if no directory was given; removed after the stop
    /// (`Drop` stops the runtime before the fields are dropped).
    _tmp: Option<tempfile::TempDir>,
}

impl S3Server {
    /// A server over a fresh temporary directory, on any free port, with no delay.
    pub fn start() -> S3Server {
        S3Options::new().start().expect("start the test S3 server")
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The directory it serves: one subdirectory a bucket, one file an object.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// The access key id of its one user ([`ACCESS_KEY`]).
    pub fn access_key(&self) -> &'static str {
        ACCESS_KEY
    }

    /// The secret key of its one user ([`SECRET_KEY`]).
    pub fn secret_key(&self) -> &'static str {
        SECRET_KEY
    }

    /// The environment a child process needs to reach it with `object_store`'s
    /// `AmazonS3Builder::from_env` (the variables the AWS tools read).
    pub fn env(&self) -> Vec<(String, String)> {
        s3_env(&self.endpoint())
    }

    /// An `object_store` builder for `bucket` on this server: its endpoint, credentials and
    /// region, plain HTTP, path-style, two quick retries. Adjust it, then `build()`.
    pub fn client(&self, bucket: &str) -> AmazonS3Builder {
        s3_client(&self.endpoint(), bucket)
    }

    /// Delay every response from now on by `delay` (0: none). A request waits the delay
    /// current at its arrival, before s3s-fs sees it.
    pub fn set_delay(&self, delay: Duration) {
        self.shared.set_delay(delay);
    }

    /// Answer the next `n` requests with `503 SlowDown`, as S3 does when it sheds load;
    /// clients retry those.
    pub fn fail_next(&self, n: u64) {
        self.shared.fail_next.store(n, Ordering::Relaxed);
    }

    /// Ignore `If-Match` and `If-None-Match` from now on, as s3s-fs alone (and some
    /// S3-compatible stores) do: a client must then notice a changed object itself.
    pub fn ignore_preconditions(&self, ignore: bool) {
        self.shared
            .ignore_preconditions
            .store(ignore, Ordering::Relaxed);
    }

    /// The current response delay.
    pub fn delay(&self) -> Duration {
        self.shared.delay()
    }

    /// What it has served so far.
    pub fn counts(&self) -> Counts {
        Counts {
            requests: self.shared.requests.load(Ordering::Relaxed),
            gets: self.shared.gets.load(Ordering::Relaxed),
            get_bytes: self.shared.get_bytes.load(Ordering::Relaxed),
        }
    }

    /// Zero the counts (after setting up the objects, before what a test measures).
    pub fn reset_counts(&self) {
        self.shared.requests.store(0, Ordering::Relaxed);
        self.shared.gets.store(0, Ordering::Relaxed);
        self.shared.get_bytes.store(0, Ordering::Relaxed);
    }

    /// Create bucket `name` (an S3 name: 3 to 63 of `a-z0-9.-`). s3s-fs's CreateBucket is
    /// a `mkdir` of the bucket's directory, and `object_store` has no call for it, so this
    /// makes the directory itself. Panics if the name is not one S3 accepts.
    pub fn create_bucket(&self, name: &str) {
        assert!(
            s3s::path::check_bucket_name(name),
            "{name:?} is not a valid S3 bucket name (3 to 63 of a-z 0-9 . -)"
        );
        match std::fs::create_dir(self.root.join(name)) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                panic!("create bucket {name}: {e}")
            }
            _ => {}
        }
    }

    /// Upload `bytes` as `bucket/key`; its ETag. Through the S3 API (see the module docs).
    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) -> String {
        self.put_with(bucket, key, bytes.len() as u64, |at, buf| {
            let at = at as usize;
            buf.copy_from_slice(&bytes[at..at + buf.len()]);
        })
    }

    /// Upload `len` bytes as `bucket/key`, asking `fill(offset, buf)` for each piece (at
    /// most 16 MiB at once, so a 1 GiB object never sits in memory whole); its ETag.
    /// One PUT up to 16 MiB, else a multipart upload of 8 MiB parts (ETag `MD5-PARTS`).
    pub fn put_with(
        &self,
        bucket: &str,
        key: &str,
        len: u64,
        fill: impl Fn(u64, &mut [u8]) + Sync,
    ) -> String {
        let store = self.uploader(bucket);
        let path = ObjectPath::from(key);
        let what = format!("put s3://{bucket}/{key} ({len} bytes)");
        self.block_on(async {
            let piece = |at: u64, n: u64| {
                let mut buf = vec![0u8; n as usize];
                fill(at, &mut buf);
                buf
            };
            let put = if len <= SINGLE_PUT_MAX {
                store.put(&path, PutPayload::from(piece(0, len))).await?
            } else {
                let upload = store.put_multipart(&path).await?;
                let mut upload = WriteMultipart::new_with_chunk_size(upload, PART as usize);
                let mut at = 0;
                while at < len {
                    let n = PART.min(len - at);
                    upload.wait_for_capacity(PARTS_IN_FLIGHT).await?;
                    upload.put(piece(at, n).into());
                    at += n;
                }
                upload.finish().await?
            };
            Ok::<_, object_store::Error>(put.e_tag.unwrap_or_default())
        })
        .unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    /// Upload the file at `path` as `bucket/key`, read a piece at a time; its ETag.
    pub fn put_file(&self, bucket: &str, key: &str, path: &Path) -> String {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::open(path)
            .unwrap_or_else(|e| panic!("open {} to upload: {e}", path.display()));
        let len = file.metadata().expect("stat the file to upload").len();
        self.put_with(bucket, key, len, |at, buf| {
            file.read_exact_at(buf, at)
                .unwrap_or_else(|e| panic!("read {} at {at}: {e}", path.display()))
        })
    }

    /// Upload `len` bytes of [`fill_pattern`] as `bucket/key`; its ETag.
    pub fn put_pattern(&self, bucket: &str, key: &str, len: u64) -> String {
        self.put_with(bucket, key, len, fill_pattern)
    }

    /// Delete `bucket/key` (through the S3 API; deleting a missing key succeeds).
    pub fn delete(&self, bucket: &str, key: &str) {
        let store = self.uploader(bucket);
        let path = ObjectPath::from(key);
        self.block_on(async { store.delete(&path).await })
            .unwrap_or_else(|e| panic!("delete s3://{bucket}/{key}: {e}"));
    }

    /// Kill the server abruptly: its runtime is shut down, dropping the listener and every
    /// connection mid-request (a client sees the connection closed or reset; a new one is
    /// refused). Waits at most about 2 s for its threads; never hangs. Idempotent.
    pub fn stop(&mut self) {
        if let Some(rt) = self.rt.take() {
            // On a thread of its own: `shutdown_timeout` blocks, which a caller inside an
            // async context may not do on its own thread.
            let _ = std::thread::spawn(move || rt.shutdown_timeout(STOP_WAIT)).join();
        }
    }

    /// Whether [`S3Server::stop`] has run.
    pub fn is_stopped(&self) -> bool {
        self.rt.is_none()
    }

    /// A client for the helper's own uploads.
    fn uploader(&self, bucket: &str) -> AmazonS3 {
        // Unsigned payloads: no SHA-256 of every byte on both sides (s3s's is slow in a
        // debug build); s3s-fs still computes the MD5, which is the ETag.
        self.client(bucket)
            .with_unsigned_payload(true)
            .build()
            .expect("object_store client")
    }

    /// Run `fut` on the server's runtime and wait for it, from any thread (a test's async
    /// context too: the waiting is on a scoped thread of its own).
    fn block_on<T: Send>(&self, fut: impl Future<Output = T> + Send) -> T {
        let handle = self
            .rt
            .as_ref()
            .expect("the S3 server has been stopped")
            .handle()
            .clone();
        std::thread::scope(|s| {
            s.spawn(|| handle.block_on(fut))
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The environment variables that point `object_store` (and the AWS tools) at the S3
/// server at `endpoint` with the test credentials, plain HTTP and path-style requests.
pub fn s3_env(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_REGION", REGION),
        ("AWS_ENDPOINT", endpoint),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// An `object_store` builder for `bucket` at `endpoint`, as [`S3Server::client`].
pub fn s3_client(endpoint: &str, bucket: &str) -> AmazonS3Builder {
    let retry = RetryConfig {
        max_retries: 2,
        retry_timeout: Duration::from_secs(10),
        ..RetryConfig::default()
    };
    AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_bucket_name(bucket)
        .with_access_key_id(ACCESS_KEY)
        .with_secret_access_key(SECRET_KEY)
        .with_region(REGION)
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .with_retry(retry)
        .with_client_options(ClientOptions::new().with_allow_http(true))
}

/// Byte `at + i` of the generated objects: the tests' `pattern` (`common::pattern`),
/// for any 64-bit offset. Different from page to page and within pages, never zero.
pub fn fill_pattern(at: u64, buf: &mut [u8]) {
    // Copied page by page from a table of every (offset mod 251, page mod 256) run, fast
    // in a debug build too: a 1 GiB object's fill is memcpy, not a loop over bytes.
    static TABLE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    const ROW: usize = 4096 + 251;
    let table = TABLE.get_or_init(|| {
        let mut t = vec![0u8; 256 * ROW];
        for (p, row) in t.chunks_exact_mut(ROW).enumerate() {
            for (j, b) in row.iter_mut().enumerate() {
                *b = ((j % 251) as u8 ^ p as u8) | 1;
            }
        }
        t
    });
    let mut i = at;
    let mut rest = buf;
    while !rest.is_empty() {
        let n = rest.len().min((4096 - i % 4096) as usize);
        let (page, start) = ((i / 4096 % 256) as usize, (i % 251) as usize);
        let (now, later) = rest.split_at_mut(n);
        now.copy_from_slice(&table[page * ROW + start..page * ROW + start + n]);
        rest = later;
        i += n as u64;
    }
}

/// The accept loop: each connection served by hyper (HTTP/1 or 2) on its own task, through
/// [`delayed`]. Ends only with the runtime.
async fn serve(listener: StdListener, service: S3Service, shared: Arc<Shared>) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("register the listener");
    let http = ConnBuilder::new(TokioExecutor::new());
    loop {
        let socket = match listener.accept().await {
            Ok((socket, _)) => socket,
            // Out of file descriptors and the like: wait, then take the next.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let (service, shared) = (service.clone(), Arc::clone(&shared));
        let handler = hyper::service::service_fn(move |req| {
            delayed(service.clone(), Arc::clone(&shared), req)
        });
        let conn = http
            .serve_connection(TokioIo::new(socket), handler)
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

/// One request: counted, delayed by the current delay, then served by s3s; for a GET or
/// HEAD, the ETag preconditions checked against the answer (see [`precondition`]).
async fn delayed(
    service: S3Service,
    shared: Arc<Shared>,
    req: HttpRequest<Incoming>,
) -> Result<HttpResponse, HttpError> {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let get = req.method() == hyper::Method::GET;
    let read = get || req.method() == hyper::Method::HEAD;
    if get {
        shared.gets.fetch_add(1, Ordering::Relaxed);
    }
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let if_match = header(hyper::header::IF_MATCH).map(str::to_string);
    let if_none_match = header(hyper::header::IF_NONE_MATCH).map(str::to_string);
    let delay = shared.delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let shed = shared
        .fail_next
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
        .is_ok();
    if shed {
        return Ok(hyper::Response::builder()
            .status(503)
            .body(s3s::Body::from(SLOW_DOWN.to_string()))
            .expect("a 503 response"));
    }
    let mut resp = hyper::service::Service::call(&service, req).await?;
    if read && resp.status().is_success() && !shared.ignore_preconditions.load(Ordering::Relaxed) {
        let etag = resp.headers().get(hyper::header::ETAG);
        let etag = etag.and_then(|v| v.to_str().ok()).unwrap_or("");
        if let Some(status) = precondition(etag, if_match.as_deref(), if_none_match.as_deref()) {
            let body = match status {
                412 => PRECONDITION_FAILED,
                _ => "",
            };
            resp = hyper::Response::builder()
                .status(status)
                .header(hyper::header::ETAG, etag)
                .body(s3s::Body::from(body.to_string()))
                .expect("a precondition response");
        }
    }
    if get && resp.status().is_success() {
        let len = resp
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        shared
            .get_bytes
            .fetch_add(len.unwrap_or(0), Ordering::Relaxed);
    }
    Ok(resp)
}

/// S3's answer when it sheds load.
const SLOW_DOWN: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error>\
    <Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";

/// S3's answer to a failed `If-Match`.
const PRECONDITION_FAILED: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error>\
    <Code>PreconditionFailed</Code>\
    <Message>At least one of the pre-conditions you specified did not hold</Message>\
    <Condition>If-Match</Condition></Error>";

/// What S3 answers a GET or HEAD of an object whose ETag is `etag` given these headers:
/// 412 if `If-Match` names neither it nor `*`, else 304 if `If-None-Match` names it or
/// `*`, else `None` (serve it). s3s-fs 0.14 ignores both on GET and HEAD, and a client that
/// pins an object's version with `If-Match` (as `object_store`'s `GetOptions::if_match`
/// does) must see the 412 a real store sends when the object has changed. The date
/// conditions (`If-Modified-Since`, `If-Unmodified-Since`) stay ignored.
fn precondition(etag: &str, if_match: Option<&str>, if_none_match: Option<&str>) -> Option<u16> {
    let names = |list: &str| {
        list.split(',').map(str::trim).any(|t| {
            let t = t.strip_prefix("W/").unwrap_or(t);
            t == "*" || t == etag || t.trim_matches('"') == etag.trim_matches('"')
        })
    };
    match (if_match, if_none_match) {
        (Some(list), _) if !names(list) => Some(412),
        (_, Some(list)) if names(list) => Some(304),
        _ => None,
    }
}
