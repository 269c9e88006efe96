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
mod options;
mod source;

pub use self::options::ObjectOptions;
pub use self::source::{ObjectSource, ObjectStats};
use super::source::Source;
use crate::error::Result;

/// The read-ahead an `ObjectSource` asks the pager for: 8 MiB, the size S3 serves at full
/// speed per request (its guidance for byte-range fetches) and Mountpoint's part size.
const READAHEAD_HINT: usize = 8 << 20;

impl ObjectOptions {
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

impl ObjectSource {
    /// Open `url` with the default [`ObjectOptions`].
    ///
    /// # Errors
    ///
    /// As [`ObjectOptions::open`].
    pub fn open(url: &str) -> Result<ObjectSource> {
        ObjectOptions::new().open(url)
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
