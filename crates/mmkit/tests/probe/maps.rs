//! `probe::maps::process_maps` against mappings this test makes: one of each kind, found
//! by address, classified, and its RSS equal to what `probe::region_stats` reads.

use mmkit::probe::maps::{process_maps, AreaKind};
use mmkit::probe::region_stats;
use mmkit::MapOptions;

const PAGES: usize = 16;

#[test]
#[cfg_attr(miri, ignore)]
fn each_kind_is_found_and_classified() {
    let page = mmkit::page_size();
    let len = PAGES * page;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("data");
    std::fs::write(&path, vec![7u8; len]).expect("write file");

    let mut file_shared = MapOptions::new().write().map_path(&path).expect("shared");
    let mut file_private = MapOptions::new()
        .copy_on_write()
        .map_path(&path)
        .expect("private");
    let mut anon_shared = MapOptions::new()
        .len(len)
        .map_anon_shared()
        .expect("anon shared");
    let mut anon_private = MapOptions::new().len(len).map_anon().expect("anon");

    // Touch a known number of pages of each: all of the shared file, half of the others.
    for i in 0..PAGES {
        file_shared.write_at(i * page, b"s").expect("write");
    }
    for i in 0..PAGES / 2 {
        file_private.write_at(i * page, b"p").expect("write");
        anon_shared.write_at(i * page, b"a").expect("write");
        anon_private[i * page] = 1;
    }

    let maps = process_maps(None).expect("process_maps");
    assert_eq!(maps.pid, std::process::id() as i32);
    assert!(maps.mappings.windows(2).all(|w| w[0].end <= w[1].start));

    let cases = [
        (file_shared.as_ptr(), AreaKind::FileShared, PAGES),
        (file_private.as_ptr(), AreaKind::FilePrivate, PAGES / 2),
        (anon_shared.as_ptr(), AreaKind::AnonShared, PAGES / 2),
        (anon_private.as_ptr(), AreaKind::AnonPrivate, PAGES / 2),
    ];
    for (ptr, kind, touched) in cases {
        check_entry(&maps, ptr, kind, touched * page, len, &path);
    }

    // Copy-on-write pages are private and dirty; the shared file's dirty pages are ours.
    let cow = maps.find(file_private.as_ptr()).unwrap();
    assert_eq!(
        cow.usage.private_dirty,
        (PAGES / 2 * page) as u64,
        "{cow:?}"
    );
    assert!(maps.find(anon_shared.as_ptr()).unwrap().dirty() >= (PAGES / 2 * page) as u64);

    check_totals(&maps, (PAGES / 2 * page) as u64);
}

/// The entry holding `ptr`: its kind, its numbers equal to `region_stats`', at least
/// `touched` bytes resident (exactly, for the areas of their own), and its path.
fn check_entry(
    maps: &mmkit::probe::maps::ProcessMaps,
    ptr: *const u8,
    kind: AreaKind,
    touched: usize,
    len: usize,
    path: &std::path::Path,
) {
    let e = maps
        .find(ptr)
        .unwrap_or_else(|| panic!("no entry holds {ptr:p} ({kind})"));
    assert_eq!(e.kind, kind, "{e:?}");
    assert!(e.usage.size >= len as u64, "{e:?}");
    let stats = region_stats(ptr).expect("region_stats");
    assert_eq!((e.start, e.end), (stats.start, stats.end), "{kind}");
    assert_eq!(
        e.usage.rss, stats.rss,
        "{kind}: RSS differs from region_stats"
    );
    assert_eq!(e.usage.pss, stats.pss, "{kind}");
    assert_eq!(e.dirty(), stats.dirty, "{kind}");
    assert_eq!(e.perms, stats.perms, "{kind}");
    assert!(e.usage.rss >= touched as u64, "{kind}: {e:?}");
    if kind != AreaKind::AnonPrivate {
        // Areas of their own (anonymous private ones may merge with neighbours).
        assert_eq!(e.start, ptr as u64, "{kind}");
        assert_eq!(e.usage.size, len as u64, "{kind}");
        assert_eq!(e.usage.rss, touched as u64, "{kind}: {e:?}");
    }
    match kind {
        AreaKind::FileShared | AreaKind::FilePrivate => {
            assert_eq!(e.path, path.display().to_string())
        }
        AreaKind::AnonShared => assert!(e.path.starts_with("/dev/zero"), "{e:?}"),
        _ => {}
    }
}

/// The heap and the stack are found, and every kind sums into the totals; each of the
/// test's four kinds holds at least `least` resident bytes.
fn check_totals(maps: &mmkit::probe::maps::ProcessMaps, least: u64) {
    let kinds: Vec<AreaKind> = maps.mappings.iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&AreaKind::Stack), "{kinds:?}");
    assert!(kinds.contains(&AreaKind::Special), "{kinds:?}");
    let t = maps.totals();
    assert_eq!(t.all.count, maps.mappings.len());
    assert_eq!(
        t.all.usage.rss,
        maps.mappings.iter().map(|e| e.usage.rss).sum::<u64>()
    );
    assert_eq!(
        t.per_kind.values().map(|k| k.usage.rss).sum::<u64>(),
        t.all.usage.rss
    );
    assert_eq!(
        t.per_kind.values().map(|k| k.usage.pss).sum::<u64>(),
        t.all.usage.pss
    );
    for kind in [
        AreaKind::FileShared,
        AreaKind::FilePrivate,
        AreaKind::AnonShared,
        AreaKind::AnonPrivate,
    ] {
        assert!(t.per_kind[&kind].usage.rss >= least, "{kind}");
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn unmapped_area_is_gone() {
    let mem = MapOptions::new()
        .len(4 * mmkit::page_size())
        .map_anon_shared()
        .expect("map");
    let addr = mem.as_ptr();
    assert!(process_maps(None).unwrap().find(addr).is_some());
    drop(mem);
    let after = process_maps(None).unwrap();
    assert!(
        !matches!(after.find(addr), Some(e) if e.kind == AreaKind::AnonShared),
        "still listed after munmap"
    );
}

#[test]
fn missing_process_is_a_clear_error() {
    let pid_max: i32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4_194_304);
    let pid = pid_max + 1; // never a live pid
    let err = process_maps(Some(pid)).unwrap_err();
    assert_eq!(err.op(), mmkit::Op::Probe);
    assert_eq!(err.errno(), Some(libc::ESRCH));
    let text = err.to_string();
    assert!(text.contains(&pid.to_string()), "{text}");
    assert!(text.contains("no such process"), "{text}");
}
