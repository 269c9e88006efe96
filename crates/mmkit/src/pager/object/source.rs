//! [`ObjectSource`]: what an opened object holds (the store, the version seen at open,
//! the runtime, the counters) and [`ObjectStats`]. Its requests are in `fetch.rs`, its
//! opening in `open.rs`, its [`Source`](crate::pager::Source) methods in `mod.rs`.

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;

use super::options::ObjectOptions;
use crate::error::{Error, ErrorKind, Op, Result};

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

/// An object in a store, as a pager [`Source`](crate::pager::Source): the bytes of one
/// version of it, fetched with ranged `GET`s as pages are touched.
/// [`ObjectOptions::open`] takes the URLs.
pub struct ObjectSource {
    pub(super) url: String,
    pub(super) store: Arc<dyn ObjectStore>,
    pub(super) path: ObjectPath,
    pub(super) len: u64,
    pub(super) e_tag: Option<String>,
    pub(super) options: ObjectOptions,
    pub(super) runtime: tokio::runtime::Runtime,
    pub(super) requests: AtomicU64,
    pub(super) bytes: AtomicU64,
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

    /// The error for a range whose end overflows.
    fn overflow(&self, offset: u64, len: usize) -> Error {
        Error::new(Op::Read, ErrorKind::LengthOverflow)
            .with_path(Some(std::path::Path::new(&self.url)))
            .at(offset, len as u64)
    }

    /// The part of `offset..offset + len` that lies in the object.
    pub(super) fn clip(&self, offset: u64, len: usize) -> Result<Range<u64>> {
        let end = offset
            .checked_add(len as u64)
            .ok_or_else(|| self.overflow(offset, len))?;
        Ok(offset.min(self.len)..end.min(self.len))
    }
}
