//! [`ObjectOptions`]: how to reach an object (timeouts, retries, parts, the store's
//! settings). Its `open` is in `mod.rs`, above the requests.

use std::time::Duration;

/// The default part size: a read larger than this is fetched as parallel parts.
const DEFAULT_PART: usize = 2 << 20;
/// Default parts in flight for one read.
const DEFAULT_PARALLEL: usize = 8;

/// How to reach an object: timeouts, retries, parts. [`ObjectOptions::open`] opens it.
#[derive(Debug, Clone)]
pub struct ObjectOptions {
    pub(super) timeout: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) retries: usize,
    pub(super) part_size: usize,
    pub(super) parallel: usize,
    /// Store settings over the environment's, as `object_store` config keys.
    pub(super) config: Vec<(String, String)>,
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
    /// [`read_ranges`](crate::pager::Source::read_ranges) (at least 1).
    pub fn parallel(&mut self, n: usize) -> &mut ObjectOptions {
        self.parallel = n.clamp(1, 256);
        self
    }
}
