//! Operations on live mappings: `flush`/`flush_range` (checked with `cachestat`),
//! `protect` (copies refuse, raw writes in a child die with SIGSEGV), `advise` with every
//! safe advice, `discard` per mapping kind, `lock`/`unlock` (`VmLck` and residency).

use mmkit_testkit as common;

use common::{page, pattern, TempFile};
use mmkit::probe::{cachestat, locked_bytes};
use mmkit::process::{ChildLink, Exit};
use mmkit::{Advice, Discard, ErrorKind, FlushMode, LockMode, MapOptions, Protection};

// Lock tests compare this process's `VmLck` before and after; they take
// `common::serial::memlock()`, as every test of the binary that locks memory does.

/// Dirty pages are counted per page-cache folio, and a folio never spans a 2 MiB
/// boundary: the test writes in two different 2 MiB blocks of the file.
const BLOCK: usize = 2 << 20;

#[test]
fn flush_range_cleans_its_pages_and_flush_cleans_the_rest() {
    let n = 2 * BLOCK;
    let tf = TempFile::patterned(n);
    let file = tf.open_rw();
    file.sync_all().unwrap(); // start from a clean page cache
    assert_eq!(cachestat(&file, 0, 0).unwrap().dirty, 0);
    let mut map = MapOptions::new().write().map(&file).unwrap();
    let second = BLOCK + 3 * page() + 10;
    map.write_at(10, b"first").unwrap();
    map.write_at(second, b"second").unwrap();
    let dirty = |block: usize| {
        cachestat(&file, (block * BLOCK) as u64, BLOCK as u64)
            .unwrap()
            .dirty
    };
    assert!(dirty(0) > 0 && dirty(1) > 0, "written pages are dirty");

    map.flush_range(5, 20, FlushMode::Sync).unwrap();
    assert_eq!(dirty(0), 0, "flush_range(Sync) wrote its page back");
    assert!(dirty(1) > 0, "a page outside the range stays dirty");
    map.flush_range(second, 1, FlushMode::Async).unwrap();
    map.flush().unwrap();
    assert_eq!(cachestat(&file, 0, 0).unwrap().dirty, 0);

    let mut want = pattern(n);
    want[10..15].copy_from_slice(b"first");
    want[second..second + 6].copy_from_slice(b"second");
    assert_eq!(tf.read(), want);
    let err = map.flush_range(n - 1, 2, FlushMode::Sync).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfRange);
}

#[test]
fn protect_read_makes_copies_in_refuse_and_back_to_read_write_works() {
    let tf = TempFile::patterned(3 * page());
    let file = tf.open_rw();
    let mut map = MapOptions::new().write().map(&file).unwrap();
    map.protect(Protection::READ).unwrap();
    let err = map.write_at(0, b"x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protected);
    assert!(err.to_string().contains("writing"), "{err}");
    let mut buf = [0u8; 4];
    map.read_at(page() - 2, &mut buf).unwrap();
    assert_eq!(buf[..], pattern(3 * page())[page() - 2..page() + 2]);

    for (off, len) in [(1, page()), (0, 100), (page(), page() + 1)] {
        let err = map
            .protect_range(off, len, Protection::READ_WRITE)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unaligned, "({off}, {len})");
    }
    // The middle page only.
    map.protect_range(page(), page(), Protection::READ_WRITE)
        .unwrap();
    map.write_at(page(), b"mid").unwrap();
    assert_eq!(
        map.write_at(page() - 1, b"ab").unwrap_err().kind(),
        ErrorKind::Protected
    );
    assert_eq!(
        map.write_at(2 * page(), b"ab").unwrap_err().kind(),
        ErrorKind::Protected
    );
    // No access at all to the last page.
    map.protect_range(2 * page(), page(), Protection::NONE)
        .unwrap();
    assert_eq!(
        map.read_at(2 * page(), &mut buf).unwrap_err().kind(),
        ErrorKind::Protected
    );

    map.protect(Protection::READ_WRITE).unwrap();
    map.write_at(0, b"zero").unwrap();
    map.write_at(3 * page() - 4, b"last").unwrap();
    let got = tf.read();
    assert_eq!(&got[..4], b"zero");
    assert_eq!(&got[page()..page() + 3], b"mid");
    assert_eq!(&got[3 * page() - 4..], b"last");
}

#[test]
fn protect_on_an_unaligned_view_accepts_its_own_ends() {
    let tf = TempFile::patterned(3 * page());
    let file = tf.open_rw();
    // The view starts 100 bytes into page 0 and ends 100 bytes into page 2.
    let mut map = MapOptions::new()
        .offset(100)
        .len(2 * page())
        .write()
        .map(&file)
        .unwrap();
    map.protect_range(0, page() - 100, Protection::READ)
        .unwrap();
    assert_eq!(
        map.write_at(0, b"x").unwrap_err().kind(),
        ErrorKind::Protected
    );
    map.write_at(page() - 100, b"y").unwrap();
    let err = map.protect_range(0, page(), Protection::READ).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unaligned);
    assert!(
        err.hint_text().unwrap().contains("100 bytes into a page"),
        "{err}"
    );
    map.protect_range(2 * page() - 100, 100, Protection::READ)
        .unwrap();
    assert_eq!(
        map.write_at(2 * page() - 1, b"z").unwrap_err().kind(),
        ErrorKind::Protected
    );
}

#[test]
fn write_access_cannot_be_added_to_a_read_only_shared_file_mapping() {
    let tf = TempFile::patterned(page());
    let mut map = MapOptions::new().map(&tf.open_ro()).unwrap();
    let err = map.protect(Protection::READ_WRITE).unwrap_err();
    assert_eq!(
        (err.kind(), err.errno()),
        (ErrorKind::Os, Some(libc::EACCES)),
        "{err}"
    );
    assert_eq!(
        map.write_at(0, b"x").unwrap_err().kind(),
        ErrorKind::Protected
    );
}

#[test]
fn raw_write_after_protect_read_kills_a_child_with_sigsegv() {
    let mut map = MapOptions::new().len(page()).map_anon_shared().unwrap();
    map.protect(Protection::READ).unwrap();
    let p = map.as_mut_ptr();
    let write_read_only = move |_: &mut ChildLink| {
        common::no_core_dump();
        // SAFETY: `p` points into a live mapping of this process; the write faults (the
        // pages are read-only), which is what the test wants to see.
        unsafe { p.write_volatile(1) };
        0
    };
    // SAFETY: the child only writes one byte through the pointer (and dies of it); it
    // takes no lock another thread could hold.
    let child = unsafe { mmkit::process::fork(write_read_only) }.unwrap();
    assert_eq!(child.wait().unwrap(), Exit::Signal(libc::SIGSEGV));
    assert_eq!(
        map.read_value::<u8>(0).unwrap(),
        0,
        "the write did not happen"
    );

    let mut mem = MapOptions::new().len(2 * page()).map_anon().unwrap();
    // SAFETY: no slice of `mem` is used until it is read-write again, except in the
    // child, where the read is meant to fault.
    unsafe { mem.protect_range(page(), page(), Protection::NONE) }.unwrap();
    let q = mem.as_ptr().wrapping_add(page());
    let read_no_access = move |_: &mut ChildLink| {
        common::no_core_dump();
        // SAFETY: `q` points into a live mapping of this process; the read faults (the
        // page is PROT_NONE), which is what the test wants to see.
        i32::from(unsafe { q.read_volatile() })
    };
    // SAFETY: the child only reads one byte of our PROT_NONE page (and dies of it); no
    // locks.
    let child = unsafe { mmkit::process::fork(read_no_access) }.unwrap();
    assert_eq!(child.wait().unwrap(), Exit::Signal(libc::SIGSEGV));
    // SAFETY: restoring read-write; no slice is live.
    unsafe { mem.protect_range(page(), page(), Protection::READ_WRITE) }.unwrap();
    mem[page()] = 5;
    assert_eq!(mem[page()], 5);
}

const ALL_ADVICE: [Advice; 18] = [
    Advice::Normal,
    Advice::Random,
    Advice::Sequential,
    Advice::WillNeed,
    Advice::HugePage,
    Advice::NoHugePage,
    Advice::DontFork,
    Advice::DoFork,
    Advice::WipeOnFork,
    Advice::KeepOnFork,
    Advice::DontDump,
    Advice::DoDump,
    Advice::Mergeable,
    Advice::Unmergeable,
    Advice::Cold,
    Advice::PageOut,
    Advice::PopulateRead,
    Advice::PopulateWrite,
];

/// Apply every advice: the basic four must succeed, the rest succeed or get EINVAL.
fn advise_all(what: &str, advise: &dyn Fn(Advice) -> mmkit::Result<()>) {
    for advice in ALL_ADVICE {
        match advise(advice) {
            Ok(()) => {}
            Err(e) => {
                let basic = matches!(
                    advice,
                    Advice::Normal | Advice::Random | Advice::Sequential | Advice::WillNeed
                );
                assert!(!basic, "{what}: {advice:?} must be accepted: {e}");
                assert_eq!(
                    (e.kind(), e.errno()),
                    (ErrorKind::Os, Some(libc::EINVAL)),
                    "{what}: {e}"
                );
                println!("{what}: {advice:?} refused with EINVAL");
            }
        }
    }
}

#[test]
fn every_safe_advice_is_accepted_or_einval_and_keeps_contents() {
    let n = 4 * page();
    let mut mem = MapOptions::new().len(n).map_anon().unwrap();
    mem.copy_from_slice(&pattern(n));
    advise_all("anon private", &|a| mem.advise(a));
    advise_all("anon private range", &|a| {
        mem.advise_range(page() + 1, 10, a)
    });
    assert_eq!(&mem[..], &pattern(n)[..]);

    let mut shared = MapOptions::new().len(n).map_anon_shared().unwrap();
    shared.write_at(0, &pattern(n)).unwrap();
    advise_all("anon shared", &|a| shared.advise(a));

    let tf = TempFile::patterned(n);
    let file = tf.open_rw();
    let map = MapOptions::new().write().map(&file).unwrap();
    advise_all("file shared", &|a| map.advise(a));
    let cow = MapOptions::new()
        .copy_on_write()
        .offset(7)
        .map(&tf.open_ro())
        .unwrap();
    advise_all("file private", &|a| cow.advise(a));

    for (m, name) in [(&shared, "anon shared"), (&map, "file shared")] {
        let mut got = vec![0u8; n];
        m.read_at(0, &mut got).unwrap();
        assert_eq!(got, pattern(n), "{name}: advice changed the contents");
    }
    assert_eq!(tf.read(), pattern(n));
    let err = map.advise_range(n - 1, 2, Advice::Normal).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfRange);
}

#[test]
fn discard_zeroes_private_anon_and_keeps_shared_contents() {
    let n = 4 * page();
    let mut mem = MapOptions::new().len(n).map_anon().unwrap();
    mem.copy_from_slice(&pattern(n));
    mem.discard(page(), 2 * page()).unwrap();
    let r = mem.residency().unwrap();
    assert_eq!(r.iter().collect::<Vec<_>>(), [true, false, false, true]);
    assert!(mem[page()..3 * page()].iter().all(|&b| b == 0));
    assert_eq!(&mem[..page()], &pattern(n)[..page()]);
    assert_eq!(&mem[3 * page()..], &pattern(n)[3 * page()..]);
    assert_eq!(
        mem.discard(1, page()).unwrap_err().kind(),
        ErrorKind::Unaligned
    );
    assert_eq!(
        mem.discard(page(), n).unwrap_err().kind(),
        ErrorKind::OutOfRange
    );

    let tf = TempFile::patterned(n);
    let file = tf.open_rw();
    let mut map = MapOptions::new().write().map(&file).unwrap();
    map.write_at(page(), b"kept").unwrap();
    map.discard(0, n, Discard::DontNeed).unwrap();
    let mut buf = [0u8; 4];
    map.read_at(page(), &mut buf).unwrap();
    assert_eq!(&buf, b"kept", "shared file pages survive DONTNEED");
    assert_eq!(&tf.read()[page()..page() + 4], b"kept");

    let mut cow = MapOptions::new().copy_on_write().map(&file).unwrap();
    cow.write_at(0, b"gone").unwrap();
    cow.discard(0, page(), Discard::DontNeed).unwrap();
    cow.read_at(0, &mut buf).unwrap();
    assert_eq!(
        buf[..],
        pattern(n)[..4],
        "private file pages read the file again"
    );

    let mut shm = MapOptions::new().len(page()).map_anon_shared().unwrap();
    shm.write_at(0, b"shm!").unwrap();
    shm.discard(0, page(), Discard::DontNeed).unwrap();
    shm.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"shm!");
}

#[test]
fn discard_remove_punches_a_hole_in_the_file() {
    let n = 3 * page();
    let tf = TempFile::patterned(n);
    let file = tf.open_rw();
    let mut map = MapOptions::new().write().map(&file).unwrap();
    match map.discard(page(), page(), Discard::Remove) {
        Ok(()) => {}
        Err(e) if e.errno() == Some(libc::EOPNOTSUPP) => {
            return common::skip("the file system of the temp dir cannot punch holes");
        }
        Err(e) => panic!("MADV_REMOVE failed: {e}"),
    }
    let got = tf.read();
    assert_eq!(got.len(), n);
    assert!(got[page()..2 * page()].iter().all(|&b| b == 0));
    assert_eq!(&got[..page()], &pattern(n)[..page()]);
    assert_eq!(&got[2 * page()..], &pattern(n)[2 * page()..]);
}

#[test]
fn lock_now_faults_in_and_counts_in_vmlck() {
    let _serial = common::serial::memlock();
    let n = 64 * page();
    let mem = MapOptions::new().len(n).map_anon().unwrap();
    let before = locked_bytes().unwrap();
    mem.lock(LockMode::Now).unwrap();
    assert_eq!(locked_bytes().unwrap() - before, n as u64);
    assert_eq!(
        mem.residency().unwrap().resident(),
        64,
        "mlock faults every page in"
    );
    assert_eq!(
        mmkit::probe::region_stats(mem.as_ptr()).unwrap().locked,
        n as u64
    );
    mem.unlock().unwrap();
    assert_eq!(locked_bytes().unwrap(), before);

    // A sub-range is widened to whole pages.
    mem.lock_range(page() + 1, 10, LockMode::Now).unwrap();
    assert_eq!(locked_bytes().unwrap() - before, page() as u64);
    mem.unlock_range(page() + 5, 1).unwrap();
    assert_eq!(locked_bytes().unwrap(), before);
    assert_eq!(
        mem.lock_range(n, 1, LockMode::Now).unwrap_err().kind(),
        ErrorKind::OutOfRange
    );

    let tf = TempFile::patterned(8 * page());
    let map = MapOptions::new()
        .lock(LockMode::Now)
        .map_path(&tf.path)
        .unwrap();
    assert_eq!(map.residency().unwrap().resident(), 8);
    assert_eq!(locked_bytes().unwrap() - before, 8 * page() as u64);
    drop(map);
    assert_eq!(locked_bytes().unwrap(), before, "unmapping unlocks");
}

#[test]
fn lock_on_fault_faults_nothing_in_until_touched() {
    let _serial = common::serial::memlock();
    let before = locked_bytes().unwrap();
    let mut mem = MapOptions::new().len(16 * page()).map_anon().unwrap();
    mem.lock(LockMode::OnFault).unwrap();
    assert_eq!(mem.residency().unwrap().resident(), 0);
    mem[0] = 1;
    mem[5 * page()] = 1;
    assert_eq!(mem.residency().unwrap().resident(), 2);
    mem.unlock().unwrap();
    drop(mem);

    let mem = MapOptions::new()
        .len(8 * page())
        .lock(LockMode::OnFault)
        .map_anon()
        .unwrap();
    assert_eq!(mem.residency().unwrap().resident(), 0);
    drop(mem);
    assert_eq!(locked_bytes().unwrap(), before);
}
