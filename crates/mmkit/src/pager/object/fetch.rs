//! The requests: one ranged `GET` checked against the version opened, a read as parallel
//! parts, scattered ranges at once, and the plain whole-object download.

use std::ops::Range;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use object_store::{GetOptions, GetResult, ObjectMeta};

use super::error::store_error;
use super::source::ObjectSource;
use crate::error::{Error, ErrorKind, Op, Result};

/// Fetch `range` (inside the object) with one ranged `GET`, checked.
async fn get(src: &ObjectSource, range: Range<u64>) -> Result<Bytes> {
    src.requests.fetch_add(1, Ordering::Relaxed);
    let opts = GetOptions::new()
        .with_range(Some(range.clone()))
        .with_if_match(src.e_tag.clone());
    let res = src
        .store
        .get_opts(&src.path, opts)
        .await
        .map_err(|e| store_error(Op::Read, &src.url, &e))?;
    check_version(src, &res.meta)?;
    let got = res.range.clone();
    let bytes = res
        .bytes()
        .await
        .map_err(|e| store_error(Op::Read, &src.url, &e))?;
    src.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    if got != range || bytes.len() as u64 != range.end - range.start {
        return Err(fault(src, &range).detail(format!(
            "asked for bytes {}..{}, the store sent {} bytes of {}..{}",
            range.start,
            range.end,
            bytes.len(),
            got.start,
            got.end
        )));
    }
    Ok(bytes)
}

/// `StorageFault` for `range` of the object.
fn fault(src: &ObjectSource, range: &Range<u64>) -> Error {
    Error::new(Op::Read, ErrorKind::StorageFault)
        .with_path(Some(std::path::Path::new(&src.url)))
        .at(range.start, range.end - range.start)
}

/// Refuse a response from another version of the object than the one opened: a store
/// that ignores `If-Match` still says the object's size and ETag with every response.
fn check_version(src: &ObjectSource, meta: &ObjectMeta) -> Result<()> {
    let etag_changed = matches!((&src.e_tag, &meta.e_tag), (Some(a), Some(b)) if a != b);
    if meta.size == src.len && !etag_changed {
        return Ok(());
    }
    Err(Error::new(Op::Read, ErrorKind::StorageFault)
        .with_path(Some(std::path::Path::new(&src.url)))
        .detail(format!(
            "the object changed since it was opened: it was {} bytes (ETag {}), it is {} \
             bytes (ETag {})",
            src.len,
            src.e_tag.as_deref().unwrap_or("none"),
            meta.size,
            meta.e_tag.as_deref().unwrap_or("none"),
        ))
        .hint("open it again to read the new version"))
}

/// Fill `data` with the object's bytes at `offset` (the range lies inside the object):
/// one `GET` per part, the parts in flight at once.
pub(super) fn read_into(src: &ObjectSource, offset: u64, data: &mut [u8]) -> Result<()> {
    let part = src.options.part_size;
    let len = data.len();
    let parts = (0..len).step_by(part).map(move |at| {
        let n = part.min(len - at);
        offset + at as u64..offset + (at + n) as u64
    });
    src.runtime.block_on(async {
        let mut fetched = stream::iter(parts)
            .map(|r| get(src, r))
            .buffered(src.options.parallel);
        let mut at = 0;
        while let Some(bytes) = fetched.next().await {
            let bytes = bytes?;
            data[at..at + bytes.len()].copy_from_slice(&bytes);
            at += bytes.len();
        }
        Ok(())
    })
}

/// Fill each buffer of `reads` with the object's bytes at its offset (zeros past the
/// end), fetching them at once; ranges that touch are merged into one `GET`.
pub(super) fn read_ranges(src: &ObjectSource, reads: &mut [(u64, &mut [u8])]) -> Result<()> {
    let mut ranges = Vec::with_capacity(reads.len());
    for (offset, buf) in reads.iter_mut() {
        let r = src.clip(*offset, buf.len())?;
        buf[(r.end - r.start) as usize..].fill(0);
        ranges.push(r);
    }
    let wanted: Vec<Range<u64>> = ranges.iter().filter(|r| !r.is_empty()).cloned().collect();
    let fetched = src.runtime.block_on(object_store::coalesce_ranges(
        &wanted,
        |r| async move { get(src, r).await },
        0,
    ))?;
    let mut fetched = fetched.into_iter();
    for ((_, buf), r) in reads.iter_mut().zip(&ranges) {
        if r.is_empty() {
            continue;
        }
        let bytes = fetched.next().expect("one result a non-empty range");
        buf[..bytes.len()].copy_from_slice(&bytes);
    }
    Ok(())
}

/// The whole object with one plain `GET`, streamed to `sink`.
pub(super) fn download(src: &ObjectSource, mut sink: impl FnMut(&[u8])) -> Result<u64> {
    src.requests.fetch_add(1, Ordering::Relaxed);
    src.runtime.block_on(async {
        let opts = GetOptions::new().with_if_match(src.e_tag.clone());
        let res: GetResult = src
            .store
            .get_opts(&src.path, opts)
            .await
            .map_err(|e| store_error(Op::Read, &src.url, &e))?;
        check_version(src, &res.meta)?;
        let mut body = res.into_stream();
        let mut total = 0u64;
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| store_error(Op::Read, &src.url, &e))?
        {
            total += chunk.len() as u64;
            src.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            sink(&chunk);
        }
        if total != src.len {
            return Err(fault(src, &(0..src.len)).detail(format!(
                "the download ended after {total} bytes of {}",
                src.len
            )));
        }
        Ok(total)
    })
}
