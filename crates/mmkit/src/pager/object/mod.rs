//! [`ObjectSource`]: an object in S3, Google Cloud Storage or Azure Blob Storage, a file
//! on an HTTP(S) server, or a local file (`file://`), as a pager [`Source`] read with
//! range GETs through the [`object_store`] crate.
//!
//! ```no_run
//! use std::sync::Arc;
//! use mmkit::pager::{ObjectSource, PagerOptions};
//! // Credentials, region and endpoint come from the environment (AWS_ACCESS_KEY_ID, ...).
//! let src = Arc::new(ObjectSource::open("s3://my-bucket/big.bin")?);
//! let pager = PagerOptions::new().build(src.clone())?;
//! // Touching a byte fetches its page (and, for a sequential scan, the pages after it).
//! let first = pager.as_slice()[0];
//! println!("{first} after {} requests, {} bytes", src.stats().requests, src.stats().bytes);
//! # Ok::<(), mmkit::Error>(())
//! ```
//!
//! ## How it reads
//!
//! - Opening makes one `HEAD` request: the object's size and ETag.
//! - [`read_at`](Source::read_at) makes one ranged `GET` per [part](ObjectOptions::part_size)
//!   of the range, all the parts at once (up to [`ObjectOptions::parallel`]). Every
//!   response is checked against the size and ETag seen at open (and the ETag is sent as
//!   `If-Match`): an object replaced since it was opened is an error, never a page of the
//!   new version mixed with pages of the old.
//! - [`read_ranges`](Source::read_ranges) fetches scattered ranges concurrently through
//!   [`object_store::coalesce_ranges`], merging only ranges that touch (the stores'
//!   `get_ranges` merges ranges up to 1 MiB apart, which for scattered 4 KiB pages
//!   fetches many times the bytes touched).
//! - 5xx responses, timeouts and dropped connections are retried with exponential
//!   backoff ([`ObjectOptions::retries`]), each retry however long the tries before it
//!   took, and a body cut short is asked for again from where it stopped; what still
//!   fails is an `Err(StorageFault)`
//!   naming the URL and the cause, which the pager turns into a poisoned page: a guarded
//!   [`Pager::read_at`](super::Pager::read_at) returns the error, nothing hangs.
//!
//! ## Integrity
//!
//! The bytes of a ranged `GET` are not checked against the object: S3, GCS, Azure and
//! plain HTTP servers give no checksum for a byte range (S3's full-object checksums
//! cover whole objects only, and `object_store` 0.14 does not return them on reads). Each
//! answer's length, size and ETag are checked, not its bytes: a body damaged on the way
//! over plain `http://` (a faulty proxy), or by the server's disk, is returned as the
//! object's bytes. HTTPS protects them on the way. To check every byte end to end, store
//! the data as seekable zstd ([`compress_seekable`](super::compress_seekable)) and read
//! it through [`ZstdSource::from_source`](super::ZstdSource::from_source): each frame's
//! checksum is verified when it is decoded (see its docs for which frames), and a
//! damaged frame is an `Err(Corrupt)` from its reads, a failed page through a
//! [`Pager`](super::Pager) (`Err(StorageFault)` from its `read_at`), never its bytes.
//!
//! ## Configuration
//!
//! The stores' builders read the usual environment variables: `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT`,
//! `AWS_ALLOW_HTTP`; `GOOGLE_SERVICE_ACCOUNT` (or `GOOGLE_APPLICATION_CREDENTIALS`);
//! `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY` and the other `AZURE_*`.
//!
//! ## Runtime
//!
//! `object_store` is async. Each `ObjectSource` owns a small tokio runtime (two worker
//! threads, named `mmkit-remote`) and blocks on it from the pager's handler threads;
//! nothing else in mmkit is async, and a caller needs no runtime of its own. Do not call
//! it from inside an async task (blocking there stalls that runtime's worker).

mod error;
mod fetch;
mod open;

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;

use super::source::Source;
use crate::{Error, ErrorKind, Op, Result};

/// The default part size: a read larger than this is fetched as parallel parts.
const DEFAULT_PART: usize = 2 << 20;
/// Default parts in flight for one read.
const DEFAULT_PARALLEL: usize = 8;
/// The read-ahead an `ObjectSource` asks the pager for: 8 MiB, the size S3 serves at full
/// speed per request (its guidance for byte-range fetches) and Mountpoint's part size.
const READAHEAD_HINT: usize = 8 << 20;

/// How to reach an object: timeouts, retries, parts. [`ObjectOptions::open`] opens it.
#[derive(Debug, Clone)]
pub struct ObjectOptions {
    timeout: Duration,
    connect_timeout: Duration,
    retries: usize,
    part_size: usize,
    parallel: usize,
    /// Store settings over the environment's, as `object_store` config keys.
    config: Vec<(String, String)>,
}

impl Default for ObjectOptions {
    fn default() -> Self {
        ObjectOptions::new()
    }
}

impl ObjectOptions {
    /// 30 s a request, 5 s to connect, 3 retries, 2 MiB parts, 8 at once.
    pub fn new() -> ObjectOptions {
        ObjectOptions {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            retries: 3,
            part_size: DEFAULT_PART,
            parallel: DEFAULT_PARALLEL,
            config: Vec::new(),
        }
    }

    /// Set one of the store's options over what the environment says, by the name of
    /// its environment variable in lower case: `aws_endpoint`, `aws_access_key_id`,
    /// `aws_secret_access_key`, `aws_region`, `aws_allow_http`, `google_service_account`,
    /// `azure_storage_account_key`, ... (`object_store`'s config keys). Several sources
    /// in one process can so reach different servers. An unknown key fails at `open`.
    ///
    /// ```
    /// let mut opts = mmkit::pager::ObjectOptions::new();
    /// opts.set("aws_endpoint", "http://127.0.0.1:9000").set("aws_allow_http", "true");
    /// ```
    pub fn set(&mut self, key: &str, value: &str) -> &mut ObjectOptions {
        self.config.push((key.to_string(), value.to_string()));
        self
    }

    /// The longest one request may take, from connecting to the last byte of the body.
    /// A server that accepts and never answers fails the read after this times the
    /// attempts (1 + [`retries`](ObjectOptions::retries)), plus the backoffs.
    pub fn timeout(&mut self, d: Duration) -> &mut ObjectOptions {
        self.timeout = d.max(Duration::from_millis(1));
        self
    }

    /// The longest a connection may take to open.
    pub fn connect_timeout(&mut self, d: Duration) -> &mut ObjectOptions {
        self.connect_timeout = d.max(Duration::from_millis(1));
        self
    }

    /// Retries of a request that failed with a 5xx, a timeout or a dropped connection
    /// (0 turns retries off), with exponential backoff from 100 ms to at most 2 s apart.
    /// Every retry is made, however long the tries before it took (each at most
    /// [`timeout`](ObjectOptions::timeout)): a request that keeps failing gives up after
    /// `n + 1` tries. A body cut short is asked for again from where it stopped (a
    /// retry too), when the store gave an ETag to pin the version with. Errors such as
    /// 403 and 404 are never retried.
    pub fn retries(&mut self, n: usize) -> &mut ObjectOptions {
        self.retries = n;
        self
    }

    /// Split reads larger than this into parts fetched in parallel (at least 64 KiB).
    pub fn part_size(&mut self, bytes: usize) -> &mut ObjectOptions {
        self.part_size = bytes.max(64 << 10);
        self
    }

    /// Parts of one read in flight at once, and scattered ranges fetched at once by
    /// [`read_ranges`](Source::read_ranges) (at least 1).
    pub fn parallel(&mut self, n: usize) -> &mut ObjectOptions {
        self.parallel = n.clamp(1, 256);
        self
    }

    /// Open the object at `url`: `s3://bucket/key`, `gs://bucket/key`,
    /// `az://container/key` (or `abfs://`, `azure://`, and the stores' `https://` forms),
    /// `http(s)://host/path`, or `file:///path`. Makes one `HEAD` request.
    ///
    /// # Errors
    ///
    /// - `Format` for a URL that does not parse or names no store.
    /// - `NotFound` for a missing bucket, container or key.
    /// - `Os` with `EACCES` when the store refuses the credentials (403, 401).
    /// - `StorageFault` for anything else that failed after the retries (the server is
    ///   down, a timeout), with the URL and the store's message.
    pub fn open(&self, url: &str) -> Result<ObjectSource> {
        open::open(self, url)
    }
}

/// Requests made and bytes received by an [`ObjectSource`] so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ObjectStats {
    /// Requests sent (`HEAD` and ranged `GET`s; a retry counts once more in the store,
    /// not here).
    pub requests: u64,
    /// Bytes of object data received.
    pub bytes: u64,
}

/// An object in a store, as a pager [`Source`]: the bytes of one version of it, fetched
/// with ranged `GET`s as pages are touched. [`ObjectOptions::open`] takes the URLs.
pub struct ObjectSource {
    url: String,
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    len: u64,
    e_tag: Option<String>,
    options: ObjectOptions,
    runtime: tokio::runtime::Runtime,
    requests: AtomicU64,
    bytes: AtomicU64,
}

impl fmt::Debug for ObjectSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectSource")
            .field("url", &self.url)
            .field("len", &self.len)
            .field("e_tag", &self.e_tag)
            .finish_non_exhaustive()
    }
}

impl ObjectSource {
    /// Open `url` with the default [`ObjectOptions`].
    ///
    /// # Errors
    ///
    /// As [`ObjectOptions::open`].
    pub fn open(url: &str) -> Result<ObjectSource> {
        ObjectOptions::new().open(url)
    }

    /// The URL it was opened from.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The ETag seen at open, when the store gives one.
    pub fn e_tag(&self) -> Option<&str> {
        self.e_tag.as_deref()
    }

    /// Requests made and bytes received so far.
    pub fn stats(&self) -> ObjectStats {
        ObjectStats {
            requests: self.requests.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }

    /// Download the whole object with one plain `GET`, handing each piece of the body to
    /// `sink` as it arrives: the baseline a pager's scan is measured against. Returns the
    /// bytes received.
    ///
    /// # Errors
    ///
    /// As [`read_at`](Source::read_at): the store's error after the retries, or
    /// `StorageFault` when the object changed since it was opened.
    pub fn download(&self, sink: impl FnMut(&[u8])) -> Result<u64> {
        fetch::download(self, sink)
    }

    /// The error for a range whose end overflows.
    fn overflow(&self, offset: u64, len: usize) -> Error {
        Error::new(Op::Read, ErrorKind::LengthOverflow)
            .with_path(Some(std::path::Path::new(&self.url)))
            .at(offset, len as u64)
    }

    /// The part of `offset..offset + len` that lies in the object.
    fn clip(&self, offset: u64, len: usize) -> Result<Range<u64>> {
        let end = offset
            .checked_add(len as u64)
            .ok_or_else(|| self.overflow(offset, len))?;
        Ok(offset.min(self.len)..end.min(self.len))
    }
}

impl Source for ObjectSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let r = self.clip(offset, buf.len())?;
        let n = (r.end - r.start) as usize;
        let (data, tail) = buf.split_at_mut(n);
        tail.fill(0);
        if n > 0 {
            fetch::read_into(self, r.start, data)?;
        }
        Ok(())
    }

    fn read_ranges(&self, reads: &mut [(u64, &mut [u8])]) -> Result<()> {
        fetch::read_ranges(self, reads)
    }

    fn readahead_hint(&self) -> Option<usize> {
        Some(READAHEAD_HINT)
    }

    fn describe(&self) -> String {
        format!("{} ({} bytes)", self.url, self.len)
    }
}
