//! File mappings: the two file kinds (`FileShared`, `FilePrivate` / `copy_on_write`), any
//! offset and length (checked against `std::fs::read`, including a proptest
//! differential), the range checks at and past the end of the file, open modes, and
//! what reads see after the file is truncated under the mapping (zeros in the last
//! page's tail, SIGBUS in a child for a page wholly past the end).

use mmkit_testkit as common;

use common::{open_rw, page, pattern, TempFile};
use mmkit::process::Exit;
use mmkit::{ErrorKind, MapKind, MapOptions};
use proptest::prelude::*;

#[test]
fn file_shared_writes_reach_the_file_and_a_fresh_mapping_in_a_child() {
    let len = 3 * page() + 100;
    let tf = TempFile::patterned(len);
    let file = tf.open_rw();
    let mut map = MapOptions::new().write().map(&file).unwrap();
    assert_eq!(map.kind(), MapKind::FileShared);
    assert_eq!(map.len(), len);
    assert!(!map.is_empty());

    // A write straddling a page boundary, not flushed: the page cache is shared.
    let at = page() - 2;
    map.write_at(at, b"hello").unwrap();
    let on_disk = tf.read();
    assert_eq!(&on_disk[at..at + 5], b"hello");
    assert_eq!(&on_disk[..at], &pattern(len)[..at]);
    assert_eq!(&on_disk[at + 5..], &pattern(len)[at + 5..]);

    let path = tf.path.clone();
    // SAFETY: the child only maps the file, copies bytes out of the mapping and exits;
    // it takes no lock another thread could hold (glibc malloc is fork-safe).
    let child = unsafe {
        mmkit::process::fork(move |_| {
            let Ok(fresh) = MapOptions::new().map_path(&path) else {
                return 2;
            };
            let mut buf = [0u8; 5];
            if fresh.read_at(at, &mut buf).is_err() {
                return 3;
            }
            i32::from(&buf != b"hello")
        })
    }
    .unwrap();
    assert_eq!(child.wait().unwrap(), Exit::Code(0));
    map.flush().unwrap();
}

#[test]
fn copy_on_write_changes_the_mapping_but_not_a_read_only_file() {
    let len = 2 * page() + 7;
    let tf = TempFile::patterned(len);
    let ro = tf.open_ro();
    let mut map = MapOptions::new().copy_on_write().map(&ro).unwrap();
    assert_eq!(map.kind(), MapKind::FilePrivate);

    map.write_at(page() + 1, b"private").unwrap();
    let mut buf = [0u8; 7];
    map.read_at(page() + 1, &mut buf).unwrap();
    assert_eq!(&buf, b"private");
    // Untouched bytes still show the file.
    let mut head = vec![0u8; page()];
    map.read_at(0, &mut head).unwrap();
    assert_eq!(head, pattern(len)[..page()]);

    map.flush().unwrap();
    assert_eq!(
        tf.read(),
        pattern(len),
        "a private mapping must not write the file"
    );

    // A second private mapping of the same file sees the file, not the first one's copy.
    let other = MapOptions::new().private().map(&ro).unwrap();
    other.read_at(page() + 1, &mut buf).unwrap();
    assert_eq!(&buf[..], &pattern(len)[page() + 1..page() + 8]);
}

#[test]
fn private_read_only_mapping_refuses_writes() {
    let tf = TempFile::patterned(100);
    let mut map = MapOptions::new().private().map(&tf.open_ro()).unwrap();
    let err = map.write_at(0, b"x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protected);
    assert_eq!(map.read_value::<u8>(0).unwrap(), pattern(1)[0]);
}

#[test]
fn unaligned_offsets_read_what_read_returns() {
    let len = 3 * page() + 333;
    let tf = TempFile::patterned(len);
    let data = tf.read();
    for off in [0, 1, 4095, 4096, 4097, 5000, len - 1] {
        let map = MapOptions::new()
            .offset(off as u64)
            .map_path(&tf.path)
            .unwrap();
        assert_eq!(map.len(), len - off, "len defaults to the rest of the file");
        let mut buf = vec![0u8; map.len()];
        map.read_at(0, &mut buf).unwrap();
        assert_eq!(buf, data[off..], "offset {off}");
        // With an explicit length in the middle of the file.
        let n = (len - off).min(1234);
        let map = MapOptions::new()
            .offset(off as u64)
            .len(n)
            .map_path(&tf.path)
            .unwrap();
        let mut buf = vec![0u8; n];
        map.read_at(0, &mut buf).unwrap();
        assert_eq!(buf, data[off..off + n], "offset {off}, len {n}");
    }
}

#[test]
fn writes_at_unaligned_offset_land_at_that_file_offset() {
    let tf = TempFile::new(&[b'.'; 10_000]);
    let file = tf.open_rw();
    let mut map = MapOptions::new().offset(5000).write().map(&file).unwrap();
    map.write_at(0, b"start").unwrap();
    map.write_at(map.len() - 3, b"end").unwrap();
    map.flush().unwrap();
    let got = tf.read();
    assert_eq!(&got[5000..5005], b"start");
    assert_eq!(&got[9997..], b"end");
    assert!(got[..5000].iter().all(|&b| b == b'.'));
    assert!(got[5005..9997].iter().all(|&b| b == b'.'));
}

#[test]
fn offset_at_end_of_file_gives_an_empty_mapping() {
    let tf = TempFile::patterned(5000);
    let file = tf.open_rw();
    let mut map = MapOptions::new().offset(5000).write().map(&file).unwrap();
    assert!(map.is_empty());
    assert_eq!(map.len(), 0);
    map.read_at(0, &mut []).unwrap();
    map.write_at(0, &[]).unwrap();
    map.flush().unwrap();
    assert_eq!(map.residency().unwrap().pages(), 0);
    let err = map.read_at(0, &mut [0u8; 1]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfRange);
}

#[test]
fn zero_length_file_maps_empty() {
    let tf = TempFile::new(b"");
    let map = MapOptions::new().map_path(&tf.path).unwrap();
    assert!(map.is_empty());
    map.flush().unwrap();
    let map = MapOptions::new().write().map(&tf.open_rw()).unwrap();
    assert!(map.is_empty());
    assert_eq!(map.kind(), MapKind::FileShared);
}

#[test]
fn offset_past_end_is_refused() {
    let tf = TempFile::patterned(5000);
    let err = MapOptions::new()
        .offset(5001)
        .map_path(&tf.path)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OffsetPastEnd);
    assert_eq!(err.offset(), Some(5001));
    assert_eq!(err.path(), Some(tf.path.as_path()));
    assert!(err.to_string().contains("past the end"), "{err}");
}

#[test]
fn range_into_last_page_is_allowed_but_past_it_needs_allow_past_eof() {
    let tf = TempFile::patterned(5000);
    // Ends inside the file's last page: fine, and the tail past EOF reads as zeros.
    let map = MapOptions::new()
        .len(2 * page())
        .map_path(&tf.path)
        .unwrap();
    let mut tail = vec![0xffu8; 2 * page() - 5000];
    map.read_at(5000, &mut tail).unwrap();
    assert!(tail.iter().all(|&b| b == 0));

    let err = MapOptions::new()
        .len(2 * page() + 1)
        .map_path(&tf.path)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RangePastEnd);
    assert!(err.hint_text().unwrap().contains("allow_past_eof"));
    let err = MapOptions::new()
        .offset(4097)
        .len(4096)
        .map_path(&tf.path)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RangePastEnd);

    // Allowed on request; the file grows before the pages are touched.
    let file = tf.open_rw();
    let mut map = MapOptions::new()
        .len(4 * page())
        .write()
        .allow_past_eof()
        .map(&file)
        .unwrap();
    assert_eq!(map.len(), 4 * page());
    file.set_len(4 * page() as u64).unwrap();
    map.write_at(3 * page(), b"grown").unwrap();
    assert_eq!(&tf.read()[3 * page()..3 * page() + 5], b"grown");
}

#[test]
fn offset_plus_len_overflow_is_length_overflow() {
    let tf = TempFile::patterned(100);
    let err = MapOptions::new()
        .offset(1)
        .len(usize::MAX)
        .map_path(&tf.path)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LengthOverflow);
    let err = MapOptions::new()
        .allow_past_eof()
        .offset(100)
        .len(usize::MAX)
        .map_path(&tf.path);
    assert_eq!(err.unwrap_err().kind(), ErrorKind::LengthOverflow);
}

#[test]
fn read_and_write_outside_the_view_are_out_of_range() {
    let tf = TempFile::patterned(3000);
    let file = tf.open_rw();
    let mut map = MapOptions::new().offset(1000).write().map(&file).unwrap();
    assert_eq!(map.len(), 2000);
    let mut buf = [0u8; 10];
    let err = map.read_at(1995, &mut buf).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfRange);
    assert_eq!((err.offset(), err.length()), (Some(1995), Some(10)));
    assert_eq!(
        map.write_at(2000, b"x").unwrap_err().kind(),
        ErrorKind::OutOfRange
    );
    assert_eq!(
        map.read_value::<u64>(1993).unwrap_err().kind(),
        ErrorKind::OutOfRange
    );
    map.read_at(1990, &mut buf).unwrap();
    assert_eq!(buf[..], pattern(3000)[2990..]);
    assert_eq!(tf.read(), pattern(3000), "failed writes changed nothing");
}

#[test]
fn read_only_file_cannot_be_mapped_shared_writable() {
    let tf = TempFile::patterned(100);
    let err = MapOptions::new().write().map(&tf.open_ro()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ReadOnlyFile);
    assert!(err.to_string().contains("read-only"), "{err}");
    assert!(err.hint_text().unwrap().contains("copy_on_write"));
    // The same file opened by map_path with write() is opened read-write.
    let mut map = MapOptions::new().write().map_path(&tf.path).unwrap();
    map.write_at(0, b"w").unwrap();
    assert_eq!(tf.read()[0], b'w');
}

#[test]
fn write_only_file_cannot_be_mapped() {
    let tf = TempFile::patterned(100);
    let wo = std::fs::OpenOptions::new()
        .write(true)
        .open(&tf.path)
        .unwrap();
    for opts in [MapOptions::new(), MapOptions::new().write().clone()] {
        let err = opts.map(&wo).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NoReadAccess);
        assert!(err.to_string().contains("write-only"), "{err}");
    }
}

#[test]
fn truncated_file_reads_zeros_in_last_page_tail_and_sigbus_past_it() {
    let tf = TempFile::new(&vec![0xaa; 3 * page()]);
    let file = tf.open_rw();
    let map = MapOptions::new().map(&file).unwrap();
    file.set_len(5000).unwrap();

    let mut kept = vec![0u8; 5000 - page()];
    map.read_at(page(), &mut kept).unwrap();
    assert!(kept.iter().all(|&b| b == 0xaa));
    let mut tail = vec![0xffu8; 2 * page() - 5000];
    map.read_at(5000, &mut tail).unwrap();
    assert!(
        tail.iter().all(|&b| b == 0),
        "the tail past EOF reads zeros"
    );

    // The guarded copy turns the SIGBUS of a page wholly past the end into an error.
    let mut b = [0u8; 1];
    let err = map.read_at(2 * page(), &mut b).unwrap_err();
    assert_eq!(err.kind(), mmkit::ErrorKind::Truncated, "{err}");

    // An unguarded load of such a page is still a SIGBUS, as the kernel promises.
    let fresh = MapOptions::new()
        .len(3 * page())
        .allow_past_eof()
        .map(&file)
        .unwrap();
    let ptr = fresh.as_ptr() as usize;
    // SAFETY: the child deliberately loads a byte a whole page past the end of the file to
    // take the SIGBUS; it shares nothing with the parent but its exit status.
    let child = unsafe {
        mmkit::process::fork(|_| {
            common::no_core_dump();
            std::hint::black_box(((ptr + 2 * page()) as *const u8).read_volatile());
            0
        })
    }
    .unwrap();
    assert_eq!(child.wait().unwrap(), Exit::Signal(libc::SIGBUS));
}

/// A file, an offset into it, and an optional length that stays inside it.
fn file_and_range() -> impl Strategy<Value = (Vec<u8>, u64, Option<usize>)> {
    proptest::collection::vec(any::<u8>(), 0..4 * 4096 + 300).prop_flat_map(|data| {
        let n = data.len();
        (Just(data), 0..=n).prop_flat_map(move |(data, off)| {
            let len = proptest::option::of(0..=n - off);
            (Just(data), Just(off as u64), len)
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Mapping at any offset and length reads exactly what `read()` returns there.
    #[test]
    fn mapped_bytes_equal_read_bytes((data, off, len) in file_and_range()) {
        let tf = TempFile::new(&data);
        let mut opts = MapOptions::new();
        opts.offset(off);
        if let Some(len) = len {
            opts.len(len);
        }
        let map = opts.map_path(&tf.path).unwrap();
        let off = off as usize;
        let want = &std::fs::read(&tf.path).unwrap()[off..off + len.unwrap_or(data.len() - off)];
        prop_assert_eq!(map.len(), want.len());
        prop_assert_eq!(map.is_empty(), want.is_empty());
        let mut got = vec![0u8; map.len()];
        map.read_at(0, &mut got).unwrap();
        prop_assert_eq!(&got[..], want);
        // A copy-on-write view at the same place agrees too.
        let cow = opts.copy_on_write().map(&open_rw(&tf.path)).unwrap();
        let mut got = vec![0u8; cow.len()];
        cow.read_at(0, &mut got).unwrap();
        prop_assert_eq!(&got[..], want);
    }
}
