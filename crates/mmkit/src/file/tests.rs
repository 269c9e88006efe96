//! Edge cases of [`MappedFile`]: empty files, seek whences, lines without a newline,
//! searches across window edges, resize, overlapping moves, growth and the final length.

// Reversed ranges are Python's `m[5:2]`, tested on purpose; so is `seek(0, 1)`.
#![allow(clippy::reversed_empty_ranges, clippy::seek_from_current)]

use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use super::search;
use super::{Access, MappedFile};
use crate::{ErrorKind, MapOptions};

struct Tmp {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn tmp(bytes: &[u8]) -> Tmp {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, bytes).unwrap();
    Tmp { _dir: dir, path }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn empty_file_maps_and_reads_nothing() {
    let t = tmp(b"");
    let mut f = MappedFile::open(&t.path).unwrap();
    assert_eq!(f.len(), 0);
    assert!(f.is_empty());
    assert_eq!(f.read(None).unwrap(), b"");
    assert_eq!(f.read(5).unwrap(), b"");
    assert_eq!(f.read_byte().unwrap(), None);
    assert_eq!(f.readline().unwrap(), b"");
    assert_eq!(f.find(b"").unwrap(), Some(0));
    assert_eq!(f.find(b"x").unwrap(), None);
    assert_eq!(f.rfind(b"").unwrap(), Some(0));
    assert_eq!(f.get(..).unwrap(), b"");
    assert_eq!(f.seek(SeekFrom::End(0)).unwrap(), 0);
    assert_eq!(
        f.seek(SeekFrom::Start(1)).unwrap_err().kind(),
        ErrorKind::OutOfRange
    );
    assert_eq!(f.fill_buf().unwrap(), b"");
    assert_eq!(f.size().unwrap(), 0);
    f.close().unwrap();
}

#[test]
fn empty_file_write_errors_unless_growable() {
    let t = tmp(b"");
    let mut f = MappedFile::open_rw(&t.path).unwrap();
    assert_eq!(f.write(b"x").unwrap_err().kind(), ErrorKind::OutOfRange);
    assert_eq!(f.write(b"").unwrap(), 0);
    f.close().unwrap();

    let mut f = MappedFile::options().growable(true).open(&t.path).unwrap();
    f.write(b"hello").unwrap();
    assert_eq!(f.len(), 5);
    assert!(f.capacity() >= crate::page_size());
    f.close().unwrap();
    assert_eq!(std::fs::read(&t.path).unwrap(), b"hello");
}

#[test]
fn read_only_refuses_writes() {
    let t = tmp(b"abc");
    let mut f = MappedFile::open(&t.path).unwrap();
    assert_eq!(f.access(), Access::Read);
    for e in [
        f.write(b"x").unwrap_err(),
        f.write_byte(1).unwrap_err(),
        f.set(0..1, b"x").unwrap_err(),
        f.move_within(0, 1, 1).unwrap_err(),
        f.resize(10).unwrap_err(),
    ] {
        assert_eq!(e.kind(), ErrorKind::ReadOnlyFile, "{e}");
    }
    f.flush().unwrap();
    assert_eq!(std::fs::read(&t.path).unwrap(), b"abc");
}

#[test]
fn copy_access_writes_privately_and_cannot_resize() {
    let t = tmp(b"abc");
    let mut f = MappedFile::options()
        .access(Access::Copy)
        .open(&t.path)
        .unwrap();
    f.write(b"X").unwrap();
    assert_eq!(f.get(..).unwrap(), b"Xbc");
    assert_eq!(f.resize(10).unwrap_err().kind(), ErrorKind::Unsupported);
    f.flush().unwrap();
    drop(f);
    assert_eq!(std::fs::read(&t.path).unwrap(), b"abc");
    let err = MappedFile::options()
        .access(Access::Copy)
        .growable(true)
        .open(&t.path)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
}

#[test]
fn seek_whences() {
    let t = tmp(b"0123456789");
    let mut f = MappedFile::open(&t.path).unwrap();
    assert_eq!(f.seek(SeekFrom::Start(3)).unwrap(), 3);
    assert_eq!(f.seek(SeekFrom::Current(4)).unwrap(), 7);
    assert_eq!(f.seek(SeekFrom::Current(-7)).unwrap(), 0);
    assert_eq!(f.seek(SeekFrom::End(-2)).unwrap(), 8);
    assert_eq!(f.read(None).unwrap(), b"89");
    assert_eq!(f.seek(SeekFrom::End(0)).unwrap(), 10);
    // Errors leave the position alone.
    assert_eq!(
        f.seek(SeekFrom::End(1)).unwrap_err().kind(),
        ErrorKind::OutOfRange
    );
    assert_eq!(
        f.seek(SeekFrom::Current(-11)).unwrap_err().kind(),
        ErrorKind::OutOfRange
    );
    assert_eq!(
        f.seek(SeekFrom::Start(11)).unwrap_err().kind(),
        ErrorKind::OutOfRange
    );
    assert_eq!(
        f.seek(SeekFrom::Start(u64::MAX)).unwrap_err().kind(),
        ErrorKind::OutOfRange
    );
    assert_eq!(
        f.seek(SeekFrom::Current(i64::MIN)).unwrap_err().kind(),
        ErrorKind::OutOfRange
    );
    assert_eq!(f.tell(), 10);
    // Through std::io::Seek.
    assert_eq!(Seek::seek(&mut f, SeekFrom::Start(2)).unwrap(), 2);
    assert_eq!(f.stream_position().unwrap(), 2);
    let e = Seek::seek(&mut f, SeekFrom::Current(-3)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn growable_seeks_past_end_and_fills_gap_with_zeros() {
    let t = tmp(b"ab");
    let mut f = MappedFile::options().growable(true).open(&t.path).unwrap();
    assert_eq!(f.seek(SeekFrom::End(3)).unwrap(), 5);
    assert_eq!(f.read(None).unwrap(), b"");
    assert_eq!(f.read_byte().unwrap(), None);
    assert_eq!(f.len(), 2);
    f.write(b"").unwrap();
    assert_eq!(f.len(), 2, "an empty write does not extend");
    f.write_byte(b'z').unwrap();
    assert_eq!(f.len(), 6);
    assert_eq!(f.get(..).unwrap(), b"ab\0\0\0z");
    drop(f);
    assert_eq!(std::fs::read(&t.path).unwrap(), b"ab\0\0\0z");
}

#[test]
fn readline_with_and_without_trailing_newline() {
    let t = tmp(b"one\n\ntwo\nlast");
    let mut f = MappedFile::open(&t.path).unwrap();
    assert_eq!(f.readline().unwrap(), b"one\n");
    assert_eq!(f.readline().unwrap(), b"\n");
    assert_eq!(f.readline().unwrap(), b"two\n");
    assert_eq!(f.readline().unwrap(), b"last");
    assert_eq!(f.readline().unwrap(), b"");
    assert_eq!(f.tell(), 13);

    // A line longer than every read step.
    let mut long = vec![b'x'; 200_000];
    long.push(b'\n');
    long.extend_from_slice(b"tail");
    let t = tmp(&long);
    let mut f = MappedFile::open(&t.path).unwrap();
    assert_eq!(f.readline().unwrap().len(), 200_001);
    assert_eq!(f.readline().unwrap(), b"tail");

    // Through BufRead.
    let t = tmp(b"a\nbb\nccc");
    let f = MappedFile::open(&t.path).unwrap();
    let lines: Vec<String> = f.lines().map(|l| l.unwrap()).collect();
    assert_eq!(lines, ["a", "bb", "ccc"]);
}

#[test]
fn find_and_rfind_with_bounds() {
    let t = tmp(b"abcabcabc");
    let mut f = MappedFile::open(&t.path).unwrap();
    assert_eq!(f.find(b"abc").unwrap(), Some(0));
    assert_eq!(f.rfind(b"abc").unwrap(), Some(6));
    f.seek(SeekFrom::Start(1)).unwrap();
    // Without bounds both start at the position, as in Python.
    assert_eq!(f.find(b"abc").unwrap(), Some(3));
    assert_eq!(f.rfind(b"abc").unwrap(), Some(6));
    f.seek(SeekFrom::Start(7)).unwrap();
    assert_eq!(f.rfind(b"abc").unwrap(), None);
    assert_eq!(f.find(b"").unwrap(), Some(7));
    assert_eq!(f.rfind(b"").unwrap(), Some(9));
    // Explicit ranges.
    assert_eq!(f.find_in(b"abc", ..).unwrap(), Some(0));
    assert_eq!(f.find_in(b"abc", 1..).unwrap(), Some(3));
    assert_eq!(f.find_in(b"abc", 1..5).unwrap(), None);
    assert_eq!(f.find_in(b"abc", 1..6).unwrap(), Some(3));
    assert_eq!(f.find_in(b"abc", 1..=5).unwrap(), Some(3));
    assert_eq!(f.rfind_in(b"abc", ..8).unwrap(), Some(3));
    assert_eq!(f.rfind_in(b"abc", ..=8).unwrap(), Some(6));
    assert_eq!(f.rfind_in(b"c", 0..100).unwrap(), Some(8));
    // Clamped bounds, start after end, empty needles.
    assert_eq!(f.find_in(b"a", 100..).unwrap(), None);
    assert_eq!(f.find_in(b"", 100..).unwrap(), Some(9));
    assert_eq!(f.find_in(b"a", 5..2).unwrap(), None);
    assert_eq!(f.find_in(b"", 5..2).unwrap(), None);
    assert_eq!(f.rfind_in(b"", 5..2).unwrap(), None);
    assert_eq!(f.find_in(b"", 4..4).unwrap(), Some(4));
    assert_eq!(f.rfind_in(b"", 2..4).unwrap(), Some(4));
    assert_eq!(f.find_in(b"abcabcabcx", ..).unwrap(), None);
    // The position does not move.
    assert_eq!(f.tell(), 7);
}

#[test]
fn search_windows_find_needles_across_edges() {
    // Every needle position and length against small windows, compared with a naive search.
    let data = pattern(300);
    let t = tmp(&data);
    let map = MapOptions::new().map_path(&t.path).unwrap();
    let naive_find = |s: usize, e: usize, n: &[u8]| {
        (s..=e.saturating_sub(n.len())).find(|&i| i + n.len() <= e && &data[i..i + n.len()] == n)
    };
    let naive_rfind = |s: usize, e: usize, n: &[u8]| {
        (s..=e.saturating_sub(n.len()))
            .rev()
            .find(|&i| i + n.len() <= e && &data[i..i + n.len()] == n)
    };
    for chunk in [1, 2, 3, 7, 16, 64] {
        for nlen in [1, 2, 3, 5, 9] {
            for at in (0..data.len() - nlen).step_by(13) {
                let needle = &data[at..at + nlen];
                for (s, e) in [(0, 300), (at, 300), (0, at + nlen), (at + 1, 300), (5, 250)] {
                    let search = search::Search {
                        map: &map,
                        start: s,
                        end: e,
                        needle,
                        chunk,
                    };
                    assert_eq!(
                        search.first().unwrap(),
                        naive_find(s, e, needle),
                        "find chunk {chunk} needle {at}+{nlen} in {s}..{e}"
                    );
                    assert_eq!(
                        search.last().unwrap(),
                        naive_rfind(s, e, needle),
                        "rfind chunk {chunk} needle {at}+{nlen} in {s}..{e}"
                    );
                }
            }
        }
    }
}

#[test]
fn needle_spanning_the_real_window_edge() {
    let chunk = super::SEARCH_CHUNK;
    let mut data = vec![b'.'; 3 * chunk];
    data[chunk - 2..chunk + 3].copy_from_slice(b"NEEDL");
    data[2 * chunk - 1..2 * chunk + 4].copy_from_slice(b"NEEDL");
    let t = tmp(&data);
    let f = MappedFile::open(&t.path).unwrap();
    assert_eq!(f.find(b"NEEDL").unwrap(), Some(chunk - 2));
    assert_eq!(f.rfind(b"NEEDL").unwrap(), Some(2 * chunk - 1));
    assert_eq!(f.find_in(b"NEEDL", chunk..).unwrap(), Some(2 * chunk - 1));
    assert_eq!(
        f.rfind_in(b"NEEDL", ..2 * chunk + 3).unwrap(),
        Some(chunk - 2)
    );
}

#[test]
fn resize_grows_and_shrinks_file_and_mapping() {
    let page = crate::page_size();
    let t = tmp(b"hello");
    let mut f = MappedFile::open_rw(&t.path).unwrap();
    f.seek(SeekFrom::End(0)).unwrap();
    f.resize(3 * page + 1).unwrap();
    assert_eq!(f.len(), 3 * page + 1);
    assert_eq!(f.size().unwrap(), 3 * page as u64 + 1);
    assert_eq!(f.tell(), 5);
    assert_eq!(f.read(3).unwrap(), b"\0\0\0");
    f.set(3 * page..3 * page + 1, b"!").unwrap();
    f.resize(2).unwrap();
    assert_eq!(f.size().unwrap(), 2);
    // The position stays past the end, as in Python: reads are empty, writes fail.
    assert_eq!(f.tell(), 8);
    assert_eq!(f.read(None).unwrap(), b"");
    assert_eq!(f.write(b"").unwrap_err().kind(), ErrorKind::OutOfRange);
    assert_eq!(
        f.seek(SeekFrom::Current(0)).unwrap_err().kind(),
        ErrorKind::OutOfRange
    );
    f.resize(0).unwrap();
    assert!(f.is_empty());
    assert_eq!(f.size().unwrap(), 0);
    f.resize(4).unwrap();
    assert_eq!(f.get(..).unwrap(), b"\0\0\0\0");
    f.close().unwrap();
    assert_eq!(std::fs::read(&t.path).unwrap(), b"\0\0\0\0");
}

#[test]
fn move_overlapping_both_directions() {
    let t = tmp(b"0123456789");
    let mut f = MappedFile::open_rw(&t.path).unwrap();
    f.move_within(2, 0, 6).unwrap();
    assert_eq!(f.get(..).unwrap(), b"0101234589");
    f.move_within(0, 3, 7).unwrap();
    assert_eq!(f.get(..).unwrap(), b"1234589589");
    f.move_within(5, 5, 5).unwrap();
    f.move_within(10, 0, 0).unwrap();
    assert_eq!(
        f.move_within(5, 0, 6).unwrap_err().kind(),
        ErrorKind::OutOfRange
    );
    assert_eq!(
        f.move_within(0, 5, 6).unwrap_err().kind(),
        ErrorKind::OutOfRange
    );
    assert_eq!(
        f.move_within(usize::MAX, 0, 2).unwrap_err().kind(),
        ErrorKind::OutOfRange
    );
    assert_eq!(f.tell(), 0);

    // Larger than one copy step, both directions, against a Vec's copy_within.
    let n = 3 * super::MOVE_CHUNK + 123;
    let mut model = pattern(n);
    let t = tmp(&model);
    let mut f = MappedFile::open_rw(&t.path).unwrap();
    for (dest, src, count) in [(1000, 0, n - 1000), (0, 777, n - 777), (5, 9, n - 9)] {
        f.move_within(dest, src, count).unwrap();
        model.copy_within(src..src + count, dest);
        assert!(f.get(..).unwrap() == model, "move {dest} {src} {count}");
    }
}

#[test]
fn get_and_set_clamp_like_python_slices() {
    let t = tmp(b"abcdef");
    let mut f = MappedFile::open_rw(&t.path).unwrap();
    assert_eq!(f.get(2..4).unwrap(), b"cd");
    assert_eq!(f.get(4..100).unwrap(), b"ef");
    assert_eq!(f.get(4..2).unwrap(), b"");
    assert_eq!(f.get(100..).unwrap(), b"");
    assert_eq!(f.get(..=1).unwrap(), b"ab");
    f.set(1..3, b"XY").unwrap();
    f.set(4..100, b"ZW").unwrap();
    f.set(4..2, b"").unwrap();
    assert_eq!(
        f.set(0..2, b"abc").unwrap_err().kind(),
        ErrorKind::OutOfRange
    );
    assert_eq!(
        f.set(5..9, b"abcd").unwrap_err().kind(),
        ErrorKind::OutOfRange
    );
    assert_eq!(f.get(..).unwrap(), b"aXYdZW");
    assert_eq!(f.tell(), 0);
}

#[test]
fn growable_writes_are_amortised_and_final_length_exact() {
    let page = crate::page_size();
    let t = tmp(b"");
    let mut f = MappedFile::options().growable(true).open(&t.path).unwrap();
    let mut caps = Vec::new();
    for i in 0..(3 * page + 17) {
        f.write_byte(i as u8).unwrap();
        if caps.last() != Some(&f.capacity()) {
            caps.push(f.capacity());
        }
    }
    // Capacity doubles from one page: 1, 2, 4 pages.
    assert_eq!(caps, [page, 2 * page, 4 * page]);
    assert_eq!(
        f.size().unwrap(),
        4 * page as u64,
        "spare capacity until flush"
    );
    f.flush().unwrap();
    assert_eq!(f.size().unwrap(), 3 * page as u64 + 17);
    assert_eq!(f.capacity(), 3 * page + 17);
    f.write(b"more").unwrap();
    drop(f); // drop cuts to length too
    let data = std::fs::read(&t.path).unwrap();
    assert_eq!(data.len(), 3 * page + 21);
    assert_eq!(&data[3 * page + 17..], b"more");
    assert!(data[..3 * page + 17]
        .iter()
        .enumerate()
        .all(|(i, &b)| b == i as u8));
}

#[test]
fn options_create_set_len_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new");
    let mut f = MappedFile::create(&path, 10).unwrap();
    assert_eq!(f.access(), Access::Write);
    assert_eq!(f.get(..).unwrap(), [0; 10]);
    f.write(b"abc").unwrap();
    f.close().unwrap();
    // create truncates an existing file.
    let f = MappedFile::create(&path, 2).unwrap();
    assert_eq!(f.get(..).unwrap(), [0; 2]);
    drop(f);

    assert_eq!(
        MappedFile::open(dir.path().join("missing"))
            .unwrap_err()
            .errno(),
        Some(rustix::io::Errno::NOENT.raw_os_error())
    );
    let err = MappedFile::options()
        .access(Access::Read)
        .set_len(5)
        .open(&path)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);

    // An unaligned offset: the object starts there; resize keeps the prefix.
    std::fs::write(&path, b"headerBODY").unwrap();
    let mut f = MappedFile::options()
        .access(Access::Write)
        .offset(6)
        .open(&path)
        .unwrap();
    assert_eq!(f.read(None).unwrap(), b"BODY");
    f.resize(6).unwrap();
    assert_eq!(f.size().unwrap(), 12);
    f.set(4..6, b"!!").unwrap();
    f.close().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"headerBODY!!");

    let mut g = MappedFile::options()
        .offset(6)
        .growable(true)
        .open(&path)
        .unwrap();
    g.seek(SeekFrom::End(0)).unwrap();
    g.write(b"++").unwrap();
    g.close().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"headerBODY!!++");

    let err = MappedFile::options().offset(100).open(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OffsetPastEnd);
}

#[test]
fn from_file_follows_open_mode() {
    let t = tmp(b"data");
    let f = MappedFile::from_file(std::fs::File::open(&t.path).unwrap()).unwrap();
    assert_eq!(f.access(), Access::Read);
    let rw = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&t.path)
        .unwrap();
    let mut f = MappedFile::from_file(rw).unwrap();
    assert_eq!(f.access(), Access::Write);
    f.write(b"D").unwrap();
    drop(f);
    assert_eq!(std::fs::read(&t.path).unwrap(), b"Data");
    let ro = std::fs::File::open(&t.path).unwrap();
    let err = MappedFile::options()
        .access(Access::Write)
        .open_file(ro)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ReadOnlyFile);
    let wo = std::fs::OpenOptions::new()
        .write(true)
        .open(&t.path)
        .unwrap();
    assert_eq!(
        MappedFile::from_file(wo).unwrap_err().kind(),
        ErrorKind::NoReadAccess
    );
}

#[test]
fn io_traits() {
    let t = tmp(b"0123456789");
    let mut f = MappedFile::open_rw(&t.path).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(Read::read(&mut f, &mut buf).unwrap(), 4);
    assert_eq!(&buf, b"0123");
    // Write writes what fits, then errors when nothing does.
    f.seek(SeekFrom::Start(8)).unwrap();
    assert_eq!(Write::write(&mut f, b"abcd").unwrap(), 2);
    assert!(Write::write(&mut f, b"x").is_err());
    assert_eq!(Write::write(&mut f, b"").unwrap(), 0);
    f.seek(SeekFrom::Start(0)).unwrap();
    assert!(f.write_all(b"too long for this file").is_err());
    // fill_buf sees writes made through the object.
    f.seek(SeekFrom::Start(0)).unwrap();
    assert_eq!(&f.fill_buf().unwrap()[..2], b"to");
    f.set(0..2, b"TO").unwrap();
    assert_eq!(&f.fill_buf().unwrap()[..2], b"TO");
    f.consume(3);
    assert_eq!(f.tell(), 3);
    let mut rest = Vec::new();
    f.read_to_end(&mut rest).unwrap();
    assert_eq!(rest.len(), 7);
    Write::flush(&mut f).unwrap();

    let mut g = MappedFile::options().growable(true).open(&t.path).unwrap();
    g.seek(SeekFrom::End(0)).unwrap();
    std::io::copy(&mut &b"0123456789"[..], &mut g).unwrap();
    g.close().unwrap();
    assert_eq!(std::fs::read(&t.path).unwrap().len(), 20);
}

#[test]
fn flush_range_bounds() {
    let t = tmp(&pattern(10_000));
    let f = MappedFile::open_rw(&t.path).unwrap();
    f.flush_range(5000, 3).unwrap();
    f.flush_range(0, 10_000).unwrap();
    f.flush_range(10_000, 0).unwrap();
    assert_eq!(
        f.flush_range(9_999, 2).unwrap_err().kind(),
        ErrorKind::OutOfRange
    );
    assert_eq!(
        f.flush_range(usize::MAX, 2).unwrap_err().kind(),
        ErrorKind::OutOfRange
    );
    f.flush_async().unwrap();
    f.flush_async_range(5000, 3).unwrap();
    assert_eq!(
        f.flush_async_range(9_999, 2).unwrap_err().kind(),
        ErrorKind::OutOfRange
    );
}

#[test]
fn flush_async_writes_back_without_cutting_capacity() {
    let t = tmp(b"");
    let mut f = MappedFile::options().growable(true).open(&t.path).unwrap();
    f.write(b"scheduled").unwrap();
    f.flush_async().unwrap();
    assert_eq!(&std::fs::read(&t.path).unwrap()[..9], b"scheduled");
    let on_disk = std::fs::metadata(&t.path).unwrap().len();
    assert_eq!(on_disk, f.capacity() as u64, "spare capacity is kept");
    assert!(on_disk > 9);
    f.flush().unwrap();
    assert_eq!(std::fs::read(&t.path).unwrap(), b"scheduled");
}

#[test]
fn truncation_by_someone_else_is_an_error_not_sigbus() {
    let page = crate::page_size();
    let t = tmp(&pattern(3 * page));
    let mut f = MappedFile::open_rw(&t.path).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&t.path)
        .unwrap()
        .set_len(0)
        .unwrap();
    f.seek(SeekFrom::Start(page as u64)).unwrap();
    assert_eq!(f.read(10).unwrap_err().kind(), ErrorKind::Truncated);
    assert_eq!(f.readline().unwrap_err().kind(), ErrorKind::Truncated);
    assert_eq!(f.find(b"x").unwrap_err().kind(), ErrorKind::Truncated);
    assert_eq!(f.write(b"x").unwrap_err().kind(), ErrorKind::Truncated);
    assert!(f.fill_buf().is_err());
    assert_eq!(f.tell(), page, "failed calls leave the position");
    f.close().unwrap();
}
