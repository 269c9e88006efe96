//! Searching a [`Mapping`] without borrowing it: forwards with the crate's windowed
//! scanner ([`crate::search::scan`]); backwards with windows copied out with `read_at`,
//! overlapping by `needle.len() - 1` bytes so a match across a window edge is found, and
//! searched with `memchr::memmem`. [`MappedFile`]'s `find`, `find_in`, `rfind` and
//! `rfind_in` (Python's `find` and `rfind`) are built on it here.

use std::ops::ControlFlow;

use memchr::memmem::FinderRev;

use std::ops::RangeBounds;

use super::MappedFile;
use crate::error::Result;
use crate::map::Mapping;

/// Bytes searched per window (plus the overlap); large enough that the copy is cheap next to
/// the search, small enough to stay in cache.
pub(super) const SEARCH_CHUNK: usize = 64 * 1024;

/// A search for `needle` in `[start, end)` of a mapping, in windows of `chunk` bytes.
pub(super) struct Search<'a> {
    pub(super) map: &'a Mapping,
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) needle: &'a [u8],
    pub(super) chunk: usize,
}

impl Search<'_> {
    /// The answer that needs no search, if there is one: nothing for `start > end` or a
    /// range shorter than the needle, `empty_at` for an empty needle.
    fn without_search(&self, empty_at: usize) -> Option<Option<usize>> {
        if self.start > self.end {
            return Some(None);
        }
        if self.needle.is_empty() {
            return Some(Some(empty_at));
        }
        (self.end - self.start < self.needle.len()).then_some(None)
    }

    /// The lowest `i` in `[start, end - needle.len()]` where `needle` occurs. An empty
    /// needle matches at `start`; `start > end` matches nothing.
    pub(super) fn first(&self) -> Result<Option<usize>> {
        if let Some(found) = self.without_search(self.start) {
            return Ok(found);
        }
        let (map, needle, chunk) = (self.map, self.needle, self.chunk.max(1));
        crate::search::scan(map, self.start, self.end, needle, chunk, ControlFlow::Break)
    }

    /// The highest `i` in `[start, end - needle.len()]` where `needle` occurs. An empty
    /// needle matches at `end`; `start > end` matches nothing.
    pub(super) fn last(&self) -> Result<Option<usize>> {
        if let Some(found) = self.without_search(self.end) {
            return Ok(found);
        }
        let (start, end, needle) = (self.start, self.end, self.needle);
        let chunk = self.chunk.max(1);
        let window = chunk.saturating_add(needle.len() - 1);
        let finder = FinderRev::new(needle);
        let mut buf = vec![0u8; window.min(end - start)];
        let mut e = end;
        loop {
            let s = e.saturating_sub(window).max(start);
            let b = &mut buf[..e - s];
            self.map.read_at(s, b)?;
            if let Some(i) = finder.rfind(&*b) {
                return Ok(Some(s + i));
            }
            if s == start {
                return Ok(None);
            }
            // Here s = e - window > start: the next window ends `chunk` lower and overlaps
            // this one by `needle.len() - 1` bytes.
            e -= chunk;
        }
    }
}

/// Python's `find` and `rfind`.
impl MappedFile {
    /// Search for `needle` from the position to the end (Python's `find(sub)`); returns the
    /// offset of the first match.
    ///
    /// # Errors
    /// The mapping's read error.
    pub fn find(&self, needle: &[u8]) -> Result<Option<usize>> {
        self.find_in(needle, self.pos..)
    }

    /// Search for `needle` in `range`, bounds clamped to the length (Python's
    /// `find(sub, start, end)`); a match must lie wholly in the range. An empty needle
    /// matches at the start; a range that starts after it ends matches nothing.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("f");
    /// # std::fs::write(&path, b"abcabc")?;
    /// let f = mmkit::MappedFile::open(&path)?;
    /// assert_eq!(f.find_in(b"bc", 2..)?, Some(4));
    /// assert_eq!(f.find_in(b"bc", 2..5)?, None);
    /// assert_eq!(f.find_in(b"", 3..100)?, Some(3));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// The mapping's read error.
    pub fn find_in(&self, needle: &[u8], range: impl RangeBounds<usize>) -> Result<Option<usize>> {
        self.search(needle, &range).first()
    }

    /// A search for `needle` in `range`, bounds clamped to the length.
    fn search<'a>(&'a self, needle: &'a [u8], range: &impl RangeBounds<usize>) -> Search<'a> {
        let (start, end) = self.clamp(range);
        Search {
            map: &self.map,
            start,
            end,
            needle,
            chunk: SEARCH_CHUNK,
        }
    }

    /// Search backwards for `needle` between the position and the end (Python's
    /// `rfind(sub)`); returns the offset of the last match.
    ///
    /// # Errors
    /// The mapping's read error.
    pub fn rfind(&self, needle: &[u8]) -> Result<Option<usize>> {
        self.rfind_in(needle, self.pos..)
    }

    /// The last match of `needle` in `range` (Python's `rfind(sub, start, end)`); an empty
    /// needle matches at the clamped end.
    ///
    /// # Errors
    /// The mapping's read error.
    pub fn rfind_in(&self, needle: &[u8], range: impl RangeBounds<usize>) -> Result<Option<usize>> {
        self.search(needle, &range).last()
    }
}
