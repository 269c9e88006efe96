//! Fixed-string search through a mapping: every offset where a pattern occurs, or every
//! line that holds it (as `grep -b -o -F` and `grep -n -F` report them).
//!
//! The mapping is read in large chunks with the guarded [`Mapping::read_at`], so a file
//! truncated while it is searched gives `Err(Truncated)`, and another process writing the
//! file cannot break a borrow. Matches are found with `memchr::memmem` (SIMD).
//!
//! ```
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("log");
//! std::fs::write(&path, b"one\ntwo needle\nthree\nneedle needle\n")?;
//! let map = mmkit::MapOptions::new().map_path(&path)?;
//! let mut offsets = Vec::new();
//! mmkit::search::offsets(&map, b"needle", |o| {
//!     offsets.push(o);
//!     Ok(())
//! })?;
//! assert_eq!(offsets, [8, 21, 28]);
//! let mut lines = Vec::new();
//! mmkit::search::lines(&map, b"needle", |l| {
//!     lines.push((l.number, l.text.to_vec()));
//!     Ok(())
//! })?;
//! assert_eq!(lines, [(2, b"two needle".to_vec()), (4, b"needle needle".to_vec())]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod split;

use std::io;
use std::ops::{ControlFlow, Range};

use memchr::memmem;

use crate::error::{Error, ErrorKind, Op};
use crate::Mapping;

/// How much of the mapping one step copies and searches: small enough that the copy
/// stays in the CPU's L2 cache, so the search reads it from there and the file's bytes
/// cross the memory bus once. (4 MiB chunks spent 46% of a count's time in the copy.)
const CHUNK: usize = 256 << 10;

fn empty_pattern() -> io::Error {
    Error::new(Op::Read, ErrorKind::Unsupported)
        .detail("the pattern is empty")
        .into()
}

/// Call `each` with the offset of every non-overlapping occurrence of `needle` in `map`,
/// in order, on the calling thread; returns how many there were. A mapping of 64 MiB or
/// more is searched on two threads (see the `split` module's notes).
///
/// # Errors
/// An empty `needle`; a read error of the mapping (`Truncated`, …); the first error
/// `each` returns.
pub fn offsets(
    map: &Mapping,
    needle: &[u8],
    mut each: impl FnMut(u64) -> io::Result<()>,
) -> io::Result<u64> {
    if needle.is_empty() {
        return Err(empty_pattern());
    }
    split::offsets(map, needle, &mut each)
}

/// Visit, in order, the offset of every non-overlapping occurrence of the non-empty
/// `needle` within `[start, end)` of `map`, reading windows of about `chunk` bytes with
/// the guarded `read_at`; `visit` ends the search early by returning `Break`.
pub(crate) fn scan<B>(
    map: &Mapping,
    start: usize,
    end: usize,
    needle: &[u8],
    chunk: usize,
    mut visit: impl FnMut(usize) -> ControlFlow<B>,
) -> crate::Result<Option<B>> {
    debug_assert!(!needle.is_empty());
    let finder = memmem::Finder::new(needle);
    // Each window holds at least one whole needle, so every step advances.
    let mut buf = vec![0u8; chunk.max(needle.len() * 2).min(end.saturating_sub(start))];
    let mut pos = start;
    while pos + needle.len() <= end {
        let n = buf.len().min(end - pos);
        map.read_at(pos, &mut buf[..n])?;
        // The next window starts where a match could still begin that did not fit in
        // this one, or after the last match (matches do not overlap).
        let mut next = n + 1 - needle.len();
        for hit in finder.find_iter(&buf[..n]) {
            if let ControlFlow::Break(b) = visit(pos + hit) {
                return Ok(Some(b));
            }
            next = next.max(hit + needle.len());
        }
        if pos + n == end {
            break;
        }
        pos += next;
    }
    Ok(None)
}

/// A line holding the pattern.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    /// 1-based line number.
    pub number: u64,
    /// Byte offset of the line's first byte.
    pub offset: u64,
    /// The line, without its newline.
    pub text: &'a [u8],
}

/// Call `each` once for every line of `map` that holds `needle`, in order; returns how
/// many lines matched (what `grep -c -F` prints).
///
/// # Errors
/// As [`offsets`].
pub fn lines(
    map: &Mapping,
    needle: &[u8],
    mut each: impl FnMut(Line<'_>) -> io::Result<()>,
) -> io::Result<u64> {
    if needle.is_empty() {
        return Err(empty_pattern());
    }
    let finder = memmem::Finder::new(needle);
    let (mut line_no, mut count) = (1u64, 0u64);
    line_chunks(map, 0..map.len(), |pos, chunk| {
        let mut counted = 0; // newlines before `counted` are in `line_no`
        let mut from = 0;
        while let Some(hit) = finder.find(&chunk[from..]).map(|h| h + from) {
            let start = memchr::memrchr(b'\n', &chunk[..hit]).map_or(0, |i| i + 1);
            let stop = memchr::memchr(b'\n', &chunk[hit..]).map_or(chunk.len(), |i| hit + i);
            line_no += memchr::memchr_iter(b'\n', &chunk[counted..start]).count() as u64;
            counted = start;
            each(Line {
                number: line_no,
                offset: (pos + start) as u64,
                text: &chunk[start..stop],
            })?;
            count += 1;
            from = (stop + 1).min(chunk.len());
            if from >= chunk.len() {
                break;
            }
        }
        line_no += memchr::memchr_iter(b'\n', &chunk[counted..]).count() as u64;
        Ok(())
    })?;
    Ok(count)
}

/// How many lines of `map` hold `needle` (what `grep -c -F` prints): [`lines`] without
/// numbering them, so only the matches' own lines are looked at. A mapping of 64 MiB
/// or more is split at a line boundary and its halves counted on two threads.
///
/// # Errors
/// As [`offsets`].
pub fn count_lines(map: &Mapping, needle: &[u8]) -> io::Result<u64> {
    if needle.is_empty() {
        return Err(empty_pattern());
    }
    split::count_lines(map, needle)
}

/// How many lines that start in `range` hold `needle`; `range` starts at a line start
/// and ends at one (or at the end of the mapping).
fn count_lines_in(map: &Mapping, range: Range<usize>, needle: &[u8]) -> io::Result<u64> {
    let finder = memmem::Finder::new(needle);
    let mut count = 0u64;
    line_chunks(map, range, |_, chunk| {
        let mut from = 0;
        while let Some(hit) = finder.find(&chunk[from..]).map(|h| h + from) {
            count += 1;
            // The rest of the line cannot add to the count (as in `lines`).
            match memchr::memchr(b'\n', &chunk[hit..]) {
                Some(i) => from = hit + i + 1,
                None => break,
            }
        }
        Ok(())
    })?;
    Ok(count)
}

/// Copy the lines of `range` out in chunks of whole lines (the last may lack its
/// newline) and call `each` with every chunk's offset and bytes; a line longer than a
/// chunk grows it.
fn line_chunks(
    map: &Mapping,
    range: Range<usize>,
    mut each: impl FnMut(usize, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK.min(range.len())];
    let mut pos = range.start;
    while pos < range.end {
        let n = buf.len().min(range.end - pos);
        map.read_at(pos, &mut buf[..n])?;
        // Search whole lines only: stop after the chunk's last newline, unless the chunk
        // holds none (then grow it) or the range ends here.
        let end = if pos + n == range.end {
            n
        } else {
            match memchr::memrchr(b'\n', &buf[..n]) {
                Some(i) => i + 1,
                None => {
                    buf.resize(buf.len() * 2, 0);
                    continue;
                }
            }
        };
        each(pos, &buf[..end])?;
        pos += end;
    }
    Ok(())
}

/// A mapping of a temporary file holding `bytes` (for the tests here and in `split`).
#[cfg(test)]
fn map_of(bytes: &[u8]) -> (tempfile::TempDir, Mapping) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    std::fs::write(&path, bytes).unwrap();
    let map = crate::MapOptions::new().map_path(&path).unwrap();
    (dir, map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive_offsets(hay: &[u8], needle: &[u8]) -> Vec<u64> {
        let mut out = Vec::new();
        let mut i = 0;
        while i + needle.len() <= hay.len() {
            if &hay[i..i + needle.len()] == needle {
                out.push(i as u64);
                i += needle.len();
            } else {
                i += 1;
            }
        }
        out
    }

    fn naive_lines(hay: &[u8], needle: &[u8]) -> Vec<(u64, Vec<u8>)> {
        let body = hay.strip_suffix(b"\n").unwrap_or(hay);
        if hay.is_empty() {
            return Vec::new();
        }
        body.split(|&b| b == b'\n')
            .enumerate()
            .filter(|(_, l)| memmem::find(l, needle).is_some())
            .map(|(i, l)| (i as u64 + 1, l.to_vec()))
            .collect()
    }

    #[test]
    fn matches_across_chunk_boundaries() {
        let mut hay = vec![b'.'; 3 * CHUNK + 17];
        for at in [0, CHUNK - 3, CHUNK - 1, 2 * CHUNK - 5, hay.len() - 6] {
            hay[at..at + 6].copy_from_slice(b"needle");
        }
        hay[CHUNK + 100] = b'\n';
        let (_d, map) = map_of(&hay);
        let mut got = Vec::new();
        offsets(&map, b"needle", |o| {
            got.push(o);
            Ok(())
        })
        .unwrap();
        assert_eq!(got, naive_offsets(&hay, b"needle"));
        let mut got = Vec::new();
        lines(&map, b"needle", |l| {
            got.push((l.number, l.text.to_vec()));
            Ok(())
        })
        .unwrap();
        let want = naive_lines(&hay, b"needle");
        assert_eq!(count_lines(&map, b"needle").unwrap(), want.len() as u64);
        assert_eq!(got, want);
        // Many lines, a match at each chunk's edge: counted once per line.
        let mut hay = Vec::new();
        while hay.len() < 3 * CHUNK {
            hay.extend_from_slice(b"some text needle and needle again\nplain line\n");
        }
        let (_d, map) = map_of(&hay);
        let want = naive_lines(&hay, b"needle").len() as u64;
        assert_eq!(count_lines(&map, b"needle").unwrap(), want);
        assert_eq!(lines(&map, b"needle", |_| Ok(())).unwrap(), want);
    }

    #[test]
    fn empty_pattern_and_empty_file() {
        let (_d, map) = map_of(b"");
        assert_eq!(offsets(&map, b"x", |_| Ok(())).unwrap(), 0);
        assert_eq!(lines(&map, b"x", |_| Ok(())).unwrap(), 0);
        assert_eq!(count_lines(&map, b"x").unwrap(), 0);
        assert!(offsets(&map, b"", |_| Ok(())).is_err());
        assert!(count_lines(&map, b"").is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn agrees_with_a_naive_search(hay in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'\n')], 0..2000),
                                      needle in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'\n')], 1..4)) {
            let (_d, map) = map_of(&hay);
            let mut got = Vec::new();
            offsets(&map, &needle, |o| {
            got.push(o);
            Ok(())
        }).unwrap();
            prop_assert_eq!(got, naive_offsets(&hay, &needle));
            if !needle.contains(&b'\n') {
                let mut got = Vec::new();
                lines(&map, &needle, |l| {
                    got.push((l.number, l.text.to_vec()));
                    Ok(())
                })
                .unwrap();
                let want = naive_lines(&hay, &needle);
                prop_assert_eq!(count_lines(&map, &needle).unwrap(), want.len() as u64);
                prop_assert_eq!(got, want);
            }
        }
    }
}
