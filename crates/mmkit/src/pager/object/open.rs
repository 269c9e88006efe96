//! Opening an object: the URL to a store (through the stores' builders, which read the
//! environment), the runtime, and the `HEAD` request for size and ETag.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::http::HttpBuilder;
use object_store::local::LocalFileSystem;
use object_store::{
    BackoffConfig, ClientConfigKey, ObjectStore, ObjectStoreExt, ObjectStoreScheme, RetryConfig,
};
use url::Url;

use super::error::store_error;
use super::options::ObjectOptions;
use super::source::ObjectSource;
use crate::error::{Error, ErrorKind, Op, Result};

/// Open `url` as `opts` say: build the store, start the runtime, `HEAD` the object.
pub(super) fn open(opts: &ObjectOptions, url: &str) -> Result<ObjectSource> {
    let parsed = Url::parse(url).map_err(|e| bad_url(url, &e.to_string()))?;
    let (scheme, path) = ObjectStoreScheme::parse(&parsed)
        .map_err(|e| bad_url(url, &format!("no object store for it ({e})")))?;
    if scheme == ObjectStoreScheme::Local {
        check_local(url, &parsed)?;
    }
    let store = build_store(opts, url, &parsed, &scheme)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("mmkit-remote")
        .enable_all()
        .build()
        .map_err(|e| Error::io(Op::Open, &e).detail("start the runtime for remote reads"))?;
    let meta = runtime
        .block_on(store.head(&path))
        .map_err(|e| store_error(Op::Open, url, &e))?;
    Ok(ObjectSource {
        url: url.to_string(),
        store,
        path,
        len: meta.size,
        e_tag: meta.e_tag,
        options: opts.clone(),
        runtime,
        requests: AtomicU64::new(1),
        bytes: AtomicU64::new(0),
    })
}

/// The error for a URL that is not one of an object.
fn bad_url(url: &str, why: &str) -> Error {
    Error::new(Op::Open, ErrorKind::Format)
        .with_path(Some(std::path::Path::new(url)))
        .detail(format!("not an object URL: {why}"))
        .hint(
            "use s3://bucket/key, gs://bucket/key, az://container/key, \
             http(s)://host/path or file:///path",
        )
}

/// Refuse a `file://` URL naming a FIFO, a socket, a device or a directory before the
/// store opens it (opening a FIFO would wait for a writer, forever); a path that is
/// missing is left to the store, whose error says so.
fn check_local(url: &str, parsed: &Url) -> Result<()> {
    let path = parsed
        .to_file_path()
        .map_err(|()| bad_url(url, "not an absolute local path"))?;
    match std::fs::metadata(&path) {
        Ok(m) if !m.is_file() => Err(Error::new(Op::Open, ErrorKind::NotMappable)
            .with_path(Some(std::path::Path::new(url)))
            .detail(if m.is_dir() {
                "a directory, not an object"
            } else {
                "not a regular file (a FIFO, a socket or a device), not an object"
            })
            .hint("file:// URLs name regular files")),
        _ => Ok(()),
    }
}

/// The client settings every store gets, as `object_store` config keys.
fn client_config(opts: &ObjectOptions) -> [(ClientConfigKey, String); 2] {
    [
        (
            ClientConfigKey::Timeout,
            format!("{}ms", opts.timeout.as_millis()),
        ),
        (
            ClientConfigKey::ConnectTimeout,
            format!("{}ms", opts.connect_timeout.as_millis()),
        ),
    ]
}

/// The longest wait between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Room in the retry window for the work around the tries (signing, the runtime).
const WINDOW_SLACK: Duration = Duration::from_secs(1);

/// Retries: exponential backoff from 100 ms, doubling, at most 2 s apart.
fn retry_config(opts: &ObjectOptions) -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: MAX_BACKOFF,
            base: 2.0,
        },
        max_retries: opts.retries,
        retry_timeout: retry_window(opts.timeout, opts.retries),
    }
}

/// `object_store`'s retry window for `retries` retries of requests that each take at
/// most `timeout`: it starts no retry once the window has passed since the first try,
/// so the window must hold every try that may precede the last retry and the backoff
/// before each: `retries × (timeout + MAX_BACKOFF)`, and some slack. (A window equal
/// to the timeout, as it once was, let a first try that timed out use it all up: a
/// timeout was never retried.)
fn retry_window(timeout: Duration, retries: usize) -> Duration {
    let n = u32::try_from(retries).unwrap_or(u32::MAX);
    (timeout.saturating_add(MAX_BACKOFF))
        .checked_mul(n)
        .and_then(|d| d.checked_add(WINDOW_SLACK))
        .unwrap_or(Duration::MAX)
}

/// The store behind `url`, configured from the environment and `opts`.
fn build_store(
    opts: &ObjectOptions,
    url: &str,
    parsed: &Url,
    scheme: &ObjectStoreScheme,
) -> Result<Arc<dyn ObjectStore>> {
    let client = client_config(opts);
    let retry = retry_config(opts);
    let built: object_store::Result<Arc<dyn ObjectStore>> = match scheme {
        ObjectStoreScheme::AmazonS3 => {
            let mut b = AmazonS3Builder::from_env().with_url(url);
            for (k, v) in client {
                b = b.with_config(AmazonS3ConfigKey::Client(k), v);
            }
            for (k, v) in user_config::<AmazonS3ConfigKey>(opts, url)? {
                b = b.with_config(k, v);
            }
            b.with_retry(retry).build().map(|s| Arc::new(s) as _)
        }
        ObjectStoreScheme::GoogleCloudStorage => {
            let mut b = GoogleCloudStorageBuilder::from_env().with_url(url);
            for (k, v) in client {
                b = b.with_config(GoogleConfigKey::Client(k), v);
            }
            for (k, v) in user_config::<GoogleConfigKey>(opts, url)? {
                b = b.with_config(k, v);
            }
            b.with_retry(retry).build().map(|s| Arc::new(s) as _)
        }
        ObjectStoreScheme::MicrosoftAzure => {
            let mut b = MicrosoftAzureBuilder::from_env().with_url(url);
            for (k, v) in client {
                b = b.with_config(AzureConfigKey::Client(k), v);
            }
            for (k, v) in user_config::<AzureConfigKey>(opts, url)? {
                b = b.with_config(k, v);
            }
            b.with_retry(retry).build().map(|s| Arc::new(s) as _)
        }
        ObjectStoreScheme::Http => {
            // The store is the server's root; the object path is the rest.
            let base = format!("{}://{}", parsed.scheme(), parsed.authority());
            let mut b = HttpBuilder::new().with_url(base);
            for (k, v) in client {
                b = b.with_config(k, v);
            }
            // The client refuses plain http unless told: an http:// URL says so.
            if parsed.scheme() == "http" {
                b = b.with_config(ClientConfigKey::AllowHttp, "true");
            }
            for (k, v) in user_config::<ClientConfigKey>(opts, url)? {
                b = b.with_config(k, v);
            }
            b.with_retry(retry).build().map(|s| Arc::new(s) as _)
        }
        ObjectStoreScheme::Local => Ok(Arc::new(LocalFileSystem::new()) as _),
        _ => return Err(bad_url(url, "this store is not supported")),
    };
    built.map_err(|e| store_error(Op::Open, url, &e))
}

/// The options set with [`ObjectOptions::set`], parsed as the store's config keys.
fn user_config<K: std::str::FromStr>(opts: &ObjectOptions, url: &str) -> Result<Vec<(K, String)>> {
    opts.config
        .iter()
        .map(|(k, v)| {
            let key = k.parse::<K>().map_err(|_| {
                Error::new(Op::Open, ErrorKind::Format)
                    .with_path(Some(std::path::Path::new(url)))
                    .detail(format!("`{k}` is not an option of this store"))
                    .hint("use the name of the store's environment variable in lower case, e.g. aws_endpoint")
            })?;
            Ok((key, v.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_window_holds_every_try_that_times_out() {
        let t = Duration::from_secs(2);
        for n in [1, 3, 100] {
            let w = retry_window(t, n);
            // After the n-th try timed out, and n - 1 backoffs, the n-th retry still starts.
            assert!(
                w > t * n as u32 + MAX_BACKOFF * (n as u32 - 1),
                "{n}: {w:?}"
            );
        }
        assert_eq!(retry_window(t, 0), WINDOW_SLACK);
        assert_eq!(retry_window(Duration::MAX, 3), Duration::MAX);
        assert!(retry_window(t, usize::MAX) > Duration::from_secs(u64::from(u32::MAX)));
    }
}
