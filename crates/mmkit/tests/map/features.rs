//! Features that depend on kernel configuration or privilege: transparent huge pages,
//! hugetlb pages (the empty pool's error, then, as root, the pool raised to 4 pages and
//! restored by a guard even on failure), and naming anonymous regions
//! (`CONFIG_ANON_VMA_NAME`), which is refused for file mappings.

use mmkit_testkit as common;

use common::{page, skip, TempFile};
use mmkit::{ErrorKind, HugePageSize, MapOptions, Op};

#[test]
fn transparent_huge_pages_back_a_touched_region() {
    let enabled = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled");
    match enabled {
        Err(e) => return skip(&format!("no transparent huge pages ({e})")),
        Ok(s) if s.contains("[never]") => return skip("transparent huge pages are [never]"),
        Ok(_) => {}
    }
    let len = 4 << 20;
    let mut mem = MapOptions::new()
        .len(len)
        .transparent_huge()
        .map_anon()
        .unwrap();
    assert_eq!(
        mem.as_ptr() as usize % (2 << 20),
        0,
        "aligned so whole huge pages fit"
    );
    for i in (0..len).step_by(page()) {
        mem[i] = 1;
    }
    let stats = mmkit::probe::region_stats(mem.as_ptr()).unwrap();
    assert!(
        stats.anon_huge > 0,
        "no AnonHugePages after touching 4 MiB: {stats:?}"
    );
}

use hugetlb::{sysctl, PoolGuard};
use mmkit_testkit::hugetlb;

#[test]
fn huge_tlb_fails_with_an_empty_pool_and_works_with_pages() {
    let two_mib = 2 << 20;
    if HugePageSize::Default.bytes() != two_mib {
        return skip("the default huge page size is not 2 MiB");
    }
    let orig = sysctl("nr_hugepages");
    if orig == 0 && sysctl("nr_overcommit_hugepages") == 0 {
        let err = MapOptions::new()
            .len(two_mib)
            .huge_tlb(HugePageSize::Default)
            .map_anon();
        let err = err.unwrap_err();
        assert_eq!(
            (err.op(), err.errno()),
            (Op::Map, Some(libc::ENOMEM)),
            "{err}"
        );
        assert!(
            err.hint_text().unwrap().contains("vm.nr_hugepages"),
            "{err}"
        );
    } else {
        skip("the hugetlb pool is not empty; empty-pool error not checked");
    }
    let _guard = match PoolGuard::raise(4) {
        Ok(g) => g,
        Err(why) => return skip(&why),
    };
    for size in [HugePageSize::Default, HugePageSize::Size2M] {
        let mut mem = MapOptions::new()
            .len(100)
            .huge_tlb(size)
            .map_anon()
            .unwrap();
        assert_eq!(mem.page_size(), two_mib);
        assert_eq!(mem.as_ptr() as usize % two_mib, 0);
        mem[0] = 1;
        mem[99] = 2;
        let stats = mmkit::probe::region_stats(mem.as_ptr()).unwrap();
        assert!(stats.hugetlb > 0, "{stats:?}");
        let r = mem.residency().unwrap();
        assert_eq!((r.pages(), r.resident(), r.page_size()), (1, 1, two_mib));
    }
}

fn maps_has(needle: &str) -> bool {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .contains(needle)
}

#[test]
fn naming_anonymous_memory_works_or_is_unsupported() {
    let mem = MapOptions::new().len(page()).map_anon().unwrap();
    match mem.set_name("mmkit-test-a") {
        Ok(()) => assert!(maps_has("[anon:mmkit-test-a]")),
        Err(e) => {
            assert_eq!(
                (e.kind(), e.op()),
                (ErrorKind::Unsupported, Op::Name),
                "{e}"
            );
            assert!(
                e.hint_text().unwrap().contains("CONFIG_ANON_VMA_NAME"),
                "{e}"
            );
            skip("kernel lacks CONFIG_ANON_VMA_NAME");
        }
    }
    match MapOptions::new()
        .len(page())
        .name("mmkit-test-b")
        .map_anon()
    {
        Ok(_mem) => assert!(maps_has("[anon:mmkit-test-b]")),
        Err(e) => assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}"),
    }
    let err = mem.set_name("nul\0byte").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
}

#[test]
fn naming_a_file_mapping_is_unsupported() {
    let tf = TempFile::patterned(page());
    let err = MapOptions::new().name("x").map_path(&tf.path).unwrap_err();
    assert_eq!(
        (err.kind(), err.op()),
        (ErrorKind::Unsupported, Op::Name),
        "{err}"
    );
    let map = MapOptions::new().map_path(&tf.path).unwrap();
    let err = map.set_name("x").unwrap_err();
    assert_eq!(
        (err.kind(), err.op()),
        (ErrorKind::Unsupported, Op::Name),
        "{err}"
    );
}

/// The `VmFlags` of the `smaps` entry that starts at `addr`.
fn vm_flags(addr: usize) -> Vec<String> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let start = format!("{addr:x}-");
    let entry = smaps
        .split_inclusive('\n')
        .skip_while(|l| !l.starts_with(&start))
        .take_while(|l| l.starts_with(&start) || !l.contains('-') || l.starts_with("VmFlags"))
        .find(|l| l.starts_with("VmFlags:"))
        .unwrap_or_else(|| panic!("no VmFlags for {start} in smaps"));
    entry["VmFlags:".len()..]
        .split_whitespace()
        .map(String::from)
        .collect()
}

#[test]
fn a_scan_mapping_asks_for_sequential_read_ahead_and_huge_folios() {
    let len = 3 << 20;
    let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
    let file = TempFile::new(&data).open_ro();
    let plain = MapOptions::new().map(&file).unwrap();
    let scan = MapOptions::new().scan().map(&file).unwrap();
    let flags = vm_flags(scan.as_ptr() as usize);
    assert!(
        flags.iter().any(|f| f == "sr"),
        "no MADV_SEQUENTIAL: {flags:?}"
    );
    let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled");
    if thp.is_ok() {
        assert!(
            flags.iter().any(|f| f == "hg"),
            "no MADV_HUGEPAGE: {flags:?}"
        );
    } else {
        skip("no transparent huge pages: the scan mapping has sequential read-ahead only");
    }
    let plain_flags = vm_flags(plain.as_ptr() as usize);
    assert!(
        !plain_flags.iter().any(|f| f == "sr" || f == "hg"),
        "a plain mapping has no advice: {plain_flags:?}"
    );
    // Evicted, then read back through the scan mapping: the file's bytes.
    mmkit::probe::cache::evict(&file, 0, 0).unwrap();
    let mut got = vec![0u8; len];
    scan.read_at(0, &mut got).unwrap();
    assert!(got == data, "the scan mapping read other bytes");
}
