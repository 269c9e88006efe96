//! Anonymous memory: `AnonPrivate` ([`Memory`]) and `AnonShared` ([`Mapping`]) are
//! zero-filled and behave as their names say across `fork`; typed and atomic views,
//! value copies, `remap` grow/shrink (and a file mapping growing over its file),
//! `populate`, and residency.

use mmkit_testkit as common;

use std::sync::atomic::Ordering;

use common::{page, TempFile};
use mmkit::process::Exit;
use mmkit::{ErrorKind, MapKind, MapOptions, Memory, Op, RemapMode};

#[test]
fn anon_private_is_zeroed_sliceable_and_private_across_fork() {
    let len = 3 * page() + 10;
    let mut mem = MapOptions::new().len(len).map_anon().unwrap();
    assert_eq!(mem.kind(), MapKind::AnonPrivate);
    assert_eq!(mem.len(), len);
    assert!(
        mem.iter().all(|&b| b == 0),
        "fresh anonymous memory is zero-filled"
    );
    mem[..6].copy_from_slice(b"parent");
    mem[len - 1] = 9;

    // SAFETY: the child only writes and reads the (copy-on-write) memory and exits; it
    // takes no lock another thread could hold.
    let child = unsafe {
        mmkit::process::fork(|_| {
            mem[..5].copy_from_slice(b"child");
            mem[page()] = 1;
            i32::from(&mem[..6] != b"childt")
        })
    }
    .unwrap();
    assert_eq!(child.wait().unwrap(), Exit::Code(0));
    assert_eq!(&mem[..6], b"parent", "the child's writes are its own");
    assert_eq!(mem[page()], 0);
    assert_eq!(mem[len - 1], 9);
}

#[test]
fn anon_shared_is_zeroed_and_shared_with_a_child() {
    let len = 2 * page() + 1;
    let mut map = MapOptions::new().len(len).map_anon_shared().unwrap();
    assert_eq!(map.kind(), MapKind::AnonShared);
    let mut all = vec![0xffu8; len];
    map.read_at(0, &mut all).unwrap();
    assert!(
        all.iter().all(|&b| b == 0),
        "fresh shared memory is zero-filled"
    );
    map.write_at(0, b"parent").unwrap();

    // SAFETY: the child only reads and writes the shared mapping and exits; no locks.
    let child = unsafe {
        mmkit::process::fork(|_| {
            let mut seen = [0u8; 6];
            if map.read_at(0, &mut seen).is_err() || &seen != b"parent" {
                return 1;
            }
            match map.write_at(len - 5, b"child") {
                Ok(()) => 0,
                Err(_) => 2,
            }
        })
    }
    .unwrap();
    assert_eq!(child.wait().unwrap(), Exit::Code(0));
    let mut seen = [0u8; 5];
    map.read_at(len - 5, &mut seen).unwrap();
    assert_eq!(&seen, b"child", "the parent sees the child's write");
    map.flush().unwrap(); // a no-op for anonymous memory
}

#[test]
fn anonymous_memory_needs_a_length() {
    let err = MapOptions::new().map_anon().unwrap_err();
    assert_eq!(err.op(), Op::Map);
    assert!(err.hint_text().unwrap().contains(".len("), "{err}");
    assert!(MapOptions::new().map_anon_shared().is_err());
}

#[test]
fn typed_views_check_size_and_read_what_was_written() {
    let mut mem = MapOptions::new().len(page()).map_anon().unwrap();
    let words = mem.as_typed_mut::<u64>().unwrap();
    assert_eq!(words.len(), page() / 8);
    words[3] = 0xdead_beef_0bad_f00d;
    assert_eq!(mem.as_typed::<u64>().unwrap()[3], 0xdead_beef_0bad_f00d);
    assert_eq!(&mem[24..32], &0xdead_beef_0bad_f00d_u64.to_ne_bytes());

    let odd = MapOptions::new().len(page() + 4).map_anon().unwrap();
    let err = odd.as_typed::<u64>().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Layout);
    assert_eq!(odd.as_typed::<u32>().unwrap().len(), page() / 4 + 1);

    let shared = MapOptions::new().len(12).map_anon_shared().unwrap();
    // SAFETY: the mapping is ours alone (no child, no file), so nothing changes the bytes
    // while the slice is borrowed.
    let err = unsafe { shared.as_typed::<u64>() }.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Layout);
    // SAFETY: as above.
    assert_eq!(unsafe { shared.as_typed::<u32>() }.unwrap(), &[0, 0, 0]);
}

#[test]
fn atomics_in_shared_memory_count_across_processes() {
    const N: u32 = 1000;
    let map = MapOptions::new().len(page()).map_anon_shared().unwrap();
    let mut children = Vec::new();
    for _ in 0..2 {
        // SAFETY: the child only does atomic adds on the shared mapping and exits; no locks.
        let child = unsafe {
            mmkit::process::fork(|_| {
                let (Ok(a), Ok(b)) = (map.atomic_u32s(0, 2), map.atomic_u64s(8, 1)) else {
                    return 1;
                };
                for _ in 0..N {
                    a[1].fetch_add(1, Ordering::SeqCst);
                    b[0].fetch_add(2, Ordering::SeqCst);
                }
                0
            })
        }
        .unwrap();
        children.push(child);
    }
    let (a, b) = (
        map.atomic_u32s(0, 2).unwrap(),
        map.atomic_u64s(8, 1).unwrap(),
    );
    for _ in 0..N {
        a[1].fetch_add(1, Ordering::SeqCst);
        b[0].fetch_add(2, Ordering::SeqCst);
    }
    for child in children {
        assert_eq!(child.wait().unwrap(), Exit::Code(0));
    }
    assert_eq!(a[0].load(Ordering::SeqCst), 0);
    assert_eq!(a[1].load(Ordering::SeqCst), 3 * N);
    assert_eq!(b[0].load(Ordering::SeqCst), 6 * u64::from(N));
    assert_eq!(map.read_value::<u32>(4).unwrap(), 3 * N);
}

#[test]
fn misaligned_or_outside_atomics_are_refused() {
    let map = MapOptions::new().len(page()).map_anon_shared().unwrap();
    assert_eq!(map.atomic_u32s(2, 1).unwrap_err().kind(), ErrorKind::Layout);
    assert_eq!(map.atomic_u64s(4, 1).unwrap_err().kind(), ErrorKind::Layout);
    assert_eq!(
        map.atomic_u32s(page() - 4, 2).unwrap_err().kind(),
        ErrorKind::OutOfRange
    );
    assert_eq!(
        map.atomic_u64s(0, usize::MAX).unwrap_err().kind(),
        ErrorKind::LengthOverflow
    );
    assert_eq!(map.atomic_u32s(page() - 4, 1).unwrap().len(), 1);
}

#[derive(Debug, PartialEq, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)]
#[repr(C)]
struct Header {
    magic: u32,
    version: u16,
    flags: u16,
    size: u64,
}

#[test]
fn values_round_trip_at_any_alignment() {
    let mut map = MapOptions::new().len(page()).map_anon_shared().unwrap();
    map.write_value(3, &0x1122_3344_5566_7788_u64).unwrap();
    assert_eq!(map.read_value::<u64>(3).unwrap(), 0x1122_3344_5566_7788);
    let mut raw = [0u8; 8];
    map.read_at(3, &mut raw).unwrap();
    assert_eq!(raw, 0x1122_3344_5566_7788_u64.to_ne_bytes());
    let h = Header {
        magic: 0x6d6d_6b74,
        version: 2,
        flags: 0x8001,
        size: 1 << 40,
    };
    map.write_value(101, &h).unwrap();
    assert_eq!(map.read_value::<Header>(101).unwrap(), h);
    assert_eq!(map.read_value::<u16>(105).unwrap(), 2);
    let err = map.write_value(page() - 4, &h).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfRange);
}

/// Grow with `remap` in place if the kernel can, else (`ENOMEM`) moving.
fn grow(mem_remap: &mut dyn FnMut(RemapMode) -> mmkit::Result<()>) {
    match mem_remap(RemapMode::InPlace) {
        Ok(()) => {}
        Err(e) => {
            assert_eq!(
                e.errno(),
                Some(libc::ENOMEM),
                "InPlace may only fail for lack of room: {e}"
            );
            assert!(e.hint_text().unwrap().contains("MayMove"));
            mem_remap(RemapMode::MayMove).unwrap();
        }
    }
}

#[test]
fn remap_grows_keeping_contents_with_zeroed_new_bytes_and_shrinks() {
    let mut mem: Memory = MapOptions::new().len(2 * page()).map_anon().unwrap();
    let old = common::pattern(2 * page());
    mem.copy_from_slice(&old);
    let big = 64 * page();
    grow(&mut |mode| mem.remap(big, mode));
    assert_eq!(mem.len(), big);
    assert_eq!(&mem[..2 * page()], &old[..]);
    assert!(
        mem[2 * page()..].iter().all(|&b| b == 0),
        "grown anonymous bytes are zero"
    );
    mem[big - 1] = 7;

    mem.remap(page() + 5, RemapMode::InPlace).unwrap();
    assert_eq!(mem.len(), page() + 5);
    assert_eq!(&mem[..], &old[..page() + 5]);

    // A file mapping grows over more of its file.
    let tf = TempFile::patterned(8 * page());
    let file = tf.open_rw();
    let mut map = MapOptions::new().len(page()).write().map(&file).unwrap();
    grow(&mut |mode| map.remap(8 * page(), mode));
    let mut all = vec![0u8; 8 * page()];
    map.read_at(0, &mut all).unwrap();
    assert_eq!(all, common::pattern(8 * page()));
    map.write_at(8 * page() - 2, b"gr").unwrap();
    assert_eq!(&tf.read()[8 * page() - 2..], b"gr");
}

#[test]
fn remap_shrinks_shared_anon_but_refuses_to_grow_it() {
    // Its shared memory object keeps its size: grown pages would raise SIGBUS.
    let mut shared = MapOptions::new().len(4 * page()).map_anon_shared().unwrap();
    shared.write_at(page() - 4, b"tail").unwrap();
    for mode in [RemapMode::InPlace, RemapMode::MayMove] {
        let err = shared.remap(16 * page(), mode).unwrap_err();
        assert_eq!(
            (err.kind(), err.op()),
            (ErrorKind::Unsupported, Op::Remap),
            "{err}"
        );
        assert_eq!(shared.len(), 4 * page());
    }
    shared.write_at(4 * page() - 1, b"z").unwrap();
    shared.remap(page() + 100, RemapMode::InPlace).unwrap();
    assert_eq!(shared.len(), page() + 100);
    let mut buf = [0u8; 8];
    shared.read_at(page() - 4, &mut buf).unwrap();
    assert_eq!(&buf, b"tail\0\0\0\0");
    // Growing within the same last page needs no new pages.
    shared.remap(2 * page(), RemapMode::InPlace).unwrap();
    shared.write_at(2 * page() - 1, b"y").unwrap();
}

#[test]
fn remap_to_or_from_empty_is_unsupported() {
    let mut empty = MapOptions::new().len(0).map_anon().unwrap();
    assert!(empty.is_empty());
    let err = empty.remap(page(), RemapMode::MayMove).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    let mut mem = MapOptions::new().len(page()).map_anon().unwrap();
    let err = mem.remap(0, RemapMode::MayMove).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
}

#[test]
fn residency_counts_touched_pages() {
    let mut mem = MapOptions::new().len(16 * page()).map_anon().unwrap();
    let r = mem.residency().unwrap();
    assert_eq!(
        (r.pages(), r.resident()),
        (16, 0),
        "nothing is resident before a touch"
    );
    for i in [0, 3, 4, 15] {
        mem[i * page() + 1] = 1;
    }
    let r = mem.residency().unwrap();
    assert_eq!(r.resident(), 4);
    assert_eq!(r.resident_bytes(), 4 * page() as u64);
    let want: Vec<bool> = (0..16).map(|i| [0, 3, 4, 15].contains(&i)).collect();
    assert_eq!(r.iter().collect::<Vec<_>>(), want);
    let r = mem.residency_range(3 * page() + 10, page()).unwrap();
    assert_eq!((r.pages(), r.resident()), (2, 2));
    let err = mem.residency_range(15 * page(), page() + 1).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfRange);
}

#[test]
fn populate_makes_every_page_resident_at_once() {
    let mem = MapOptions::new()
        .len(32 * page())
        .populate()
        .map_anon()
        .unwrap();
    let r = mem.residency().unwrap();
    assert_eq!((r.pages(), r.resident()), (32, 32));
    let tf = TempFile::patterned(8 * page());
    let map = MapOptions::new().populate().map_path(&tf.path).unwrap();
    assert_eq!(map.residency().unwrap().resident(), 8);
}

/// Shrinking and growing again within one page must not bring back the old bytes.
#[test]
fn regrow_within_a_page_reads_zeros() {
    let mut mem = mmkit::MapOptions::new().len(4096).map_anon().unwrap();
    mem.fill(0xee);
    mem.remap(100, mmkit::RemapMode::InPlace).unwrap();
    mem.remap(4096, mmkit::RemapMode::InPlace).unwrap();
    assert!(mem[..100].iter().all(|&b| b == 0xee));
    assert!(
        mem[100..].iter().all(|&b| b == 0),
        "stale bytes after regrow"
    );
}
