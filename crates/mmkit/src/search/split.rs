//! Searching a large mapping on two threads, with the results of one thread's search.
//!
//! The copy out of the mapping (mmkit never lends a slice of a file another process may
//! write) costs about as much as the search itself: one thread does both in turn, at
//! 0.85x ripgrep's speed on a warm 1 GiB file (which searches the mapping in place). Two
//! threads each copy and search half.
//!
//! - **Counting lines** splits the mapping at the line boundary nearest its middle and
//!   adds the two counts.
//! - **Offsets** must reach the caller in order, on the caller's thread. The mapping is cut
//!   into 32 MiB segments; a second thread searches the odd ones ahead and holds their
//!   offsets (at most 2^20 a segment), while the caller's thread searches the even ones
//!   and hands over every offset in order. Non-overlapping matches depend on where the
//!   last one ended: a held segment whose first match starts before the end of the
//!   previous match (a match across the boundary, or a periodic needle) is searched
//!   again from there, as is one that held too many.
//!
//! Mappings under 64 MiB, and machines with one CPU, are searched on the caller's thread.

use std::io;
use std::ops::{ControlFlow, Range};
use std::sync::mpsc;

use super::{count_lines_in, scan, CHUNK};
use crate::Mapping;

/// The unit of work of the offsets search.
const SEGMENT: usize = 32 << 20;
/// The most offsets the second thread holds for one segment.
const MAX_HELD: usize = 1 << 20;

/// Whether to search `len` bytes cut into `segment`s on two threads.
fn two_threads(len: usize, segment: usize) -> bool {
    len >= 2 * segment && std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
}

/// Join a scoped thread, passing its panic on.
fn join<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// See [`super::count_lines`].
pub(super) fn count_lines(map: &Mapping, needle: &[u8]) -> io::Result<u64> {
    count_lines_split(map, needle, SEGMENT)
}

fn count_lines_split(map: &Mapping, needle: &[u8], segment: usize) -> io::Result<u64> {
    let len = map.len();
    if !two_threads(len, segment) {
        return count_lines_in(map, 0..len, needle);
    }
    let mid = line_start_from(map, len / 2)?;
    std::thread::scope(|s| {
        let second = s.spawn(|| count_lines_in(map, mid..len, needle));
        let first = count_lines_in(map, 0..mid, needle);
        let second = join(second);
        Ok(first? + second?)
    })
}

/// The first line start at or after `at`: `at` itself when the byte before it is a
/// newline, else just past the next newline (the end of the mapping when none follows).
fn line_start_from(map: &Mapping, at: usize) -> io::Result<usize> {
    if at == 0 {
        return Ok(0);
    }
    let mut buf = vec![0u8; 64 << 10];
    let mut pos = at - 1;
    while pos < map.len() {
        let n = buf.len().min(map.len() - pos);
        map.read_at(pos, &mut buf[..n])?;
        if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
            return Ok(pos + i + 1);
        }
        pos += n;
    }
    Ok(map.len())
}

/// Where the in-order delivery is.
#[derive(Default)]
struct Delivery {
    /// The next match must start here or later: the end of the last one delivered.
    resume: usize,
    count: u64,
}

impl Delivery {
    fn deliver(
        &mut self,
        off: usize,
        needle_len: usize,
        each: &mut dyn FnMut(u64) -> io::Result<()>,
    ) -> io::Result<()> {
        each(off as u64)?;
        self.count += 1;
        self.resume = off + needle_len;
        Ok(())
    }
}

/// The window to scan for the matches that start in `starts`: it runs `needle_len - 1`
/// bytes further (clipped at `len`), so a match may end past the range but not start in
/// the next one.
fn window(starts: &Range<usize>, needle_len: usize, len: usize) -> usize {
    (starts.end + needle_len - 1).min(len)
}

/// Search the matches starting in `starts` and hand each over at once.
fn search_live(
    map: &Mapping,
    starts: Range<usize>,
    needle: &[u8],
    each: &mut dyn FnMut(u64) -> io::Result<()>,
    at: &mut Delivery,
) -> io::Result<()> {
    let end = window(&starts, needle.len(), map.len());
    let stopped = scan(map, starts.start, end, needle, CHUNK, |off| {
        match at.deliver(off, needle.len(), each) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(e),
        }
    })?;
    stopped.map_or(Ok(()), Err)
}

/// The matches that start in `starts`, searched from its start; `None` past `max_held`.
fn search_held(
    map: &Mapping,
    starts: Range<usize>,
    needle: &[u8],
    max_held: usize,
) -> io::Result<Option<Vec<usize>>> {
    let end = window(&starts, needle.len(), map.len());
    let mut held = Vec::new();
    let stopped = scan(map, starts.start, end, needle, CHUNK, |off| {
        held.push(off);
        if held.len() > max_held {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    Ok(stopped.is_none().then_some(held))
}

/// See [`super::offsets`].
pub(super) fn offsets(
    map: &Mapping,
    needle: &[u8],
    each: &mut dyn FnMut(u64) -> io::Result<()>,
) -> io::Result<u64> {
    offsets_split(map, needle, each, SEGMENT, MAX_HELD)
}

fn offsets_split(
    map: &Mapping,
    needle: &[u8],
    each: &mut dyn FnMut(u64) -> io::Result<()>,
    size: usize,
    max_held: usize,
) -> io::Result<u64> {
    let len = map.len();
    let mut at = Delivery::default();
    if !two_threads(len, size) {
        search_live(map, 0..len, needle, each, &mut at)?;
        return Ok(at.count);
    }
    let segments = len.div_ceil(size);
    let segment = |k: usize| k * size..((k + 1) * size).min(len);
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel(1);
        let ahead = s.spawn(move || {
            for k in (1..segments).step_by(2) {
                if tx
                    .send(search_held(map, segment(k), needle, max_held))
                    .is_err()
                {
                    return; // the caller stopped
                }
            }
        });
        let mut run = || -> io::Result<()> {
            for k in 0..segments {
                let starts = segment(k);
                if k % 2 == 1 {
                    let held = rx
                        .recv()
                        .map_err(|_| io::Error::other("the search's second thread stopped"))??;
                    let fits = |h: &Vec<usize>| h.first().map_or(true, |&m| m >= at.resume);
                    if let Some(held) = held.filter(fits) {
                        for off in held {
                            at.deliver(off, needle.len(), each)?;
                        }
                        continue;
                    }
                }
                let from = starts.start.max(at.resume);
                search_live(map, from..starts.end.max(from), needle, each, &mut at)?;
            }
            Ok(())
        };
        let result = run();
        drop(rx);
        join(ahead);
        result.map(|()| at.count)
    })
}

#[cfg(test)]
mod tests {
    use super::super::map_of;
    use super::*;
    use proptest::prelude::*;

    fn one_thread(map: &Mapping, needle: &[u8]) -> Vec<u64> {
        let mut got = Vec::new();
        let mut at = Delivery::default();
        let mut each = |o| {
            got.push(o);
            Ok(())
        };
        search_live(map, 0..map.len(), needle, &mut each, &mut at).unwrap();
        got
    }

    fn two(map: &Mapping, needle: &[u8], segment: usize, max_held: usize) -> Vec<u64> {
        let mut got = Vec::new();
        let n = offsets_split(
            map,
            needle,
            &mut |o| {
                got.push(o);
                Ok(())
            },
            segment,
            max_held,
        )
        .unwrap();
        assert_eq!(n, got.len() as u64);
        got
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Small segments, few held offsets: matches across every boundary, periodic
        /// needles, segments held and refused, all as one thread finds them.
        #[test]
        fn two_threads_find_what_one_finds(
            hay in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'\n')], 0..3000),
            needle in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'\n')], 1..4),
            segment in 8usize..300,
            max_held in 0usize..20,
        ) {
            let (_d, map) = map_of(&hay);
            prop_assert_eq!(two(&map, &needle, segment, max_held), one_thread(&map, &needle));
            if !needle.contains(&b'\n') {
                prop_assert_eq!(
                    count_lines_split(&map, &needle, segment).unwrap(),
                    count_lines_in(&map, 0..map.len(), &needle).unwrap()
                );
            }
        }
    }

    #[test]
    fn a_caller_that_stops_stops_both_threads() {
        let hay = b"xx.".repeat(10_000);
        let (_d, map) = map_of(&hay);
        let mut seen = 0;
        let err = offsets_split(
            &map,
            b"xx",
            &mut |_| {
                seen += 1;
                if seen == 5000 {
                    Err(io::Error::from(io::ErrorKind::BrokenPipe))
                } else {
                    Ok(())
                }
            },
            1024,
            100,
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        assert_eq!(seen, 5000);
    }
}
