//! What `mmkit page` pages in: a file, a zstd file, or an object at a URL (anything with
//! `://`), and the options that say how to reach an object. The library's sources
//! ([`FileSource`], [`ZstdSource`], [`ObjectSource`]) do the work.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mmkit::pager::{
    FileSource, ObjectOptions, ObjectSource, Pager, PagerOptions, Source, ZstdSource,
};

/// The longest --timeout: a request that may wait longer than an hour is a hang.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// The most --retries.
const MAX_RETRIES: usize = 100;

/// How to reach an object given as a URL (ignored for a file).
#[derive(Debug, Clone, clap::Args)]
pub(super) struct RemoteArgs {
    /// For a URL: the longest one request may take (500ms, 10s, 2m; a bare number is
    /// seconds; at most 1h); connecting gets 5 s of it at most. Each retry gets as long
    /// again, so a request that never answers fails after (retries + 1) times this, plus
    /// the backoffs. Default: 30 s.
    #[arg(long, value_parser = timeout_arg, value_name = "DURATION")]
    timeout: Option<Duration>,
    /// For a URL: retries of a request that failed with a 5xx, a timeout or a dropped
    /// connection (0 to 100; 403 and 404 are never retried), with exponential backoff from
    /// 100 ms to 2 s apart; each retry is made, however long the tries before it took.
    #[arg(long, default_value_t = 3, value_parser = retries_arg)]
    retries: usize,
}

impl RemoteArgs {
    /// The library's options for these arguments.
    pub(super) fn options(&self) -> ObjectOptions {
        let mut o = ObjectOptions::new();
        o.retries(self.retries);
        if let Some(t) = self.timeout {
            o.timeout(t).connect_timeout(t.min(Duration::from_secs(5)));
        }
        o
    }
}

/// How to build the pager, shared by `cat` and `stats`.
#[derive(Debug, clap::Args)]
pub(super) struct PagerArgs {
    /// The file (or the object at the URL) is zstd-compressed: page in its uncompressed
    /// bytes.
    #[arg(long)]
    pub(super) zstd: bool,
    /// Largest read-ahead window, in pages (1 turns read-ahead off; larger values are
    /// clamped to 16 MiB, the data's pages and the budget). Default: the source's choice:
    /// 256 pages (1 MiB) for a file, which brought a sequential pass to the cost of
    /// touching fresh memory here; 8 MiB (2048 pages) for an object at a URL, where every
    /// request costs a round trip.
    #[arg(long)]
    pub(super) readahead: Option<usize>,
    /// Turn off asynchronous read-ahead: a sequential scan then fetches each window when
    /// the reader faults on it, instead of fetching the next one in the background while
    /// the reader reads this one. (It is off with --budget, or a window under 4 pages.)
    #[arg(long)]
    pub(super) no_async: bool,
    /// Keep about this much of the region resident (K, M, G suffixes; at least one
    /// page): a fill waits for room. The bound is this plus one --readahead window per
    /// handler thread; measured peaks stay at it or a few pages over.
    #[arg(long, value_parser = budget_arg)]
    pub(super) budget: Option<u64>,
    /// Handler threads serving faults (1 to 1024, no more than the file's pages).
    #[arg(long, default_value_t = 1)]
    pub(super) threads: usize,
    #[command(flatten)]
    pub(super) remote: RemoteArgs,
    /// The file to page in, or the URL of an object (anything with `://`): s3://bucket/key,
    /// gs://bucket/key, az://container/key, http(s)://host/path or file:///path.
    #[arg(value_name = "FILE|URL")]
    pub(super) file: PathBuf,
}

/// A pager, and the object under it when it pages in a URL.
#[derive(Debug)]
pub(super) struct Opened {
    pub(super) pager: Pager,
    /// The object, for its requests and bytes fetched.
    pub(super) object: Option<Arc<ObjectSource>>,
}

/// `path` as a URL, when it is one (it has `://`).
pub(super) fn url_of(path: &Path) -> Option<&str> {
    path.to_str().filter(|s| s.contains("://"))
}

/// Open the source `a` names and build its pager.
pub(super) fn build(a: &PagerArgs) -> anyhow::Result<Opened> {
    // The library's errors name the file or URL, the cause, and a hint.
    let (source, object): (Arc<dyn Source>, _) = match url_of(&a.file) {
        Some(url) => {
            let object = Arc::new(a.remote.options().open(url)?);
            let raw: Arc<dyn Source> = Arc::clone(&object) as Arc<dyn Source>;
            let source = if a.zstd { zstd_over(raw)? } else { raw };
            (source, Some(object))
        }
        None if a.zstd => (Arc::new(ZstdSource::open(&a.file)?), None),
        None => (Arc::new(FileSource::open(&a.file)?), None),
    };
    let mut opts = PagerOptions::new();
    opts.threads(a.threads).async_readahead(!a.no_async);
    // Without --readahead, the source's own choice (1 MiB for a file, 8 MiB for an object).
    if let Some(pages) = a.readahead {
        opts.readahead(pages);
    }
    if let Some(b) = a.budget {
        opts.budget(b);
    }
    Ok(Opened {
        pager: opts.build(source)?,
        object,
    })
}

/// The zstd object read through `object`, as its uncompressed bytes (a seekable one
/// fetches only the frames touched).
fn zstd_over(object: Arc<dyn Source>) -> anyhow::Result<Arc<dyn Source>> {
    // The source's errors name the URL already.
    Ok(Arc::new(ZstdSource::from_source(object)?))
}

/// A memory budget: a positive byte count, optionally with K, M or G.
fn budget_arg(s: &str) -> Result<u64, String> {
    mmkit::size::parse_size(s).ok_or_else(|| {
        format!(
            "`{s}` is not a budget (a positive byte count, optionally with K, M or G; \
             the pager keeps at least one page)"
        )
    })
}

/// A request timeout: `500ms`, `10s`, `2m`, or bare seconds; more than 0, at most 1 h.
fn timeout_arg(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let scale = match unit {
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => f64::NAN,
    };
    let secs = digits.parse::<f64>().map(|n| n * scale).unwrap_or(f64::NAN);
    if secs.is_finite() && secs > 0.0 && secs <= MAX_TIMEOUT.as_secs_f64() {
        return Ok(Duration::from_secs_f64(secs).max(Duration::from_millis(1)));
    }
    Err(format!(
        "`{s}` is not a timeout from 1ms to 1h (like 500ms, 10s or 2m; a bare number is seconds)"
    ))
}

/// Retries of a failed request, 0 to [`MAX_RETRIES`].
fn retries_arg(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n <= MAX_RETRIES => Ok(n),
        _ => Err(format!(
            "`{s}` is not a count of retries from 0 to {MAX_RETRIES}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_with_units_and_refuse_the_rest() {
        let ms = Duration::from_millis;
        assert_eq!(timeout_arg("500ms"), Ok(ms(500)));
        assert_eq!(timeout_arg("2"), Ok(ms(2000)));
        assert_eq!(timeout_arg("1.5s"), Ok(ms(1500)));
        assert_eq!(timeout_arg("2m"), Ok(ms(120_000)));
        assert_eq!(timeout_arg("1h"), Ok(ms(3_600_000)));
        for bad in ["0", "-1", "", "abc", "2h", "1e9", "5d", "ms", "NaN", "inf"] {
            assert!(timeout_arg(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_have_a_scheme_separator() {
        assert_eq!(url_of(Path::new("s3://b/k")), Some("s3://b/k"));
        assert_eq!(url_of(Path::new("/tmp/data.bin")), None);
        assert_eq!(url_of(Path::new("relative:name")), None);
    }
}
