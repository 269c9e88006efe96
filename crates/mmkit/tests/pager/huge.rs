//! The pager on 2 MiB pages: transparent huge pages moved in with `UFFDIO_MOVE`, and
//! hugetlb pages from the pool (raised as root, restored after), each checked byte for
//! byte against the source, in smaps (`AnonHugePages`, `Private_Hugetlb`), and in the
//! fault counts; and the clean fallback to 4 KiB pages, with its reason, where huge
//! pages cannot be had or do not apply (an empty pool, a budget, a writable source).
//!
//! Tests that need userfaultfd print `skipped: <reason>` where it is not allowed.

use std::sync::{Arc, Mutex};

use mmkit::pager::{Backing, FileSource, FnSource, HugePages, Pager, PagerOptions, Source};
use mmkit::probe::region_stats;

use crate::pager_common;
use pager_common::{build, cut_file, hash_byte, hashed, nonzero_file, skip};

use hugetlb::PoolGuard;
use mmkit_testkit::hugetlb;

const HUGE: usize = 2 << 20;

/// The hugetlb tests change the pool one at a time.
static POOL: Mutex<()> = Mutex::new(());

fn check_bytes(bytes: &[u8]) {
    for (i, &b) in bytes.iter().enumerate().step_by(4093) {
        assert_eq!(b, hash_byte(i as u64), "byte {i}");
    }
    let last = bytes.len() - 1;
    assert_eq!(bytes[last], hash_byte(last as u64), "the last byte");
}

fn thp_enabled() -> bool {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .is_ok_and(|m| !m.contains("[never]"))
}

/// A THP pager over `src`, or `None` (said why) where userfaultfd or THP with
/// `UFFDIO_MOVE` is missing; the fallback's reason must name what is missing.
fn thp_pager(src: Arc<dyn Source>) -> Option<Pager> {
    let pager = build(PagerOptions::new().huge_pages(HugePages::Thp), src)?;
    if pager.backing() == Backing::Thp {
        return Some(pager);
    }
    let why = pager.backing_note().unwrap_or_default().to_string();
    assert!(!thp_enabled() || why.contains("UFFDIO_MOVE"), "{why}");
    skip(&format!("no THP pager here: {why}"));
    None
}

#[test]
fn thp_pages_are_moved_in_whole() {
    // 11 huge pages and a bit: the last page is partly past the end.
    let len = 11 * HUGE + 12345;
    let Some(pager) = thp_pager(Arc::new(hashed(len as u64))) else {
        return;
    };
    assert_eq!(pager.page_size(), HUGE);
    assert_eq!(pager.as_ptr() as usize % HUGE, 0);
    check_bytes(pager.as_slice());
    let stats = pager.stats();
    assert!(
        stats.faults <= 12,
        "one fault a 2 MiB page at most: {stats:?}"
    );
    assert_eq!(stats.bytes_read, 12 * HUGE as u64, "{stats:?}");
    let area = region_stats(pager.as_ptr()).unwrap();
    assert!(
        area.anon_huge >= HUGE as u64,
        "no transparent huge page in the region: {area:?}"
    );
}

#[test]
fn random_reads_on_thp_fill_only_their_huge_pages() {
    let len = 64 * HUGE;
    let Some(pager) = thp_pager(Arc::new(hashed(len as u64))) else {
        return;
    };
    let mut buf = [0u8; 100];
    for page in [40usize, 3, 61, 17, 3] {
        let off = page * HUGE + 777;
        pager.read_at(off, &mut buf).unwrap();
        for (i, &b) in buf.iter().enumerate() {
            assert_eq!(b, hash_byte((off + i) as u64));
        }
    }
    // Counted before the fill wakes the reader; a page is marked present just after.
    assert_eq!(pager.stats().bytes_read, 4 * HUGE as u64);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pager.resident_pages() < 4 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(pager.resident_pages(), 4);
}

#[test]
fn a_failing_huge_page_fails_alone() {
    let len = 8 * HUGE;
    let src = FnSource::new(len as u64, |off, buf| {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = hash_byte(off + i as u64);
        }
    });
    // Page 5 cannot be read.
    struct Failing(FnSource);
    impl Source for Failing {
        fn len(&self) -> u64 {
            self.0.len()
        }
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> mmkit::Result<()> {
            let range = offset..offset + buf.len() as u64;
            if range.contains(&(5 * HUGE as u64)) {
                // Borrow a real error: reading a directory.
                let dir = tempfile::tempdir().unwrap();
                return mmkit::pager::FileSource::open(dir.path()).map(|_| ());
            }
            self.0.read_at(offset, buf)
        }
        fn describe(&self) -> String {
            "failing at 10 MiB".into()
        }
    }
    let Some(pager) = thp_pager(Arc::new(Failing(src))) else {
        return;
    };
    let mut buf = vec![0u8; 4096];
    assert!(pager.read_at(5 * HUGE + 10, &mut buf).is_err());
    for page in [0, 4, 6, 7] {
        pager.read_at(page * HUGE, &mut buf).unwrap();
        assert_eq!(buf[0], hash_byte((page * HUGE) as u64));
    }
}

#[test]
fn hugetlb_pages_are_copied_in_and_an_empty_pool_falls_back() {
    let _one = POOL.lock().unwrap_or_else(|p| p.into_inner());
    let len = 6 * HUGE + 99;
    let pages = 7;
    {
        let _pool = match PoolGuard::raise(pages) {
            Ok(g) => g,
            Err(why) => return skip(&why),
        };
        let Some(pager) = build(
            PagerOptions::new().huge_pages(HugePages::Hugetlb),
            Arc::new(hashed(len as u64)),
        ) else {
            return;
        };
        assert_eq!(
            pager.backing(),
            Backing::Hugetlb,
            "{:?}",
            pager.backing_note()
        );
        assert_eq!(pager.page_size(), HUGE);
        check_bytes(pager.as_slice());
        let area = region_stats(pager.as_ptr()).unwrap();
        assert_eq!(area.hugetlb, (pages as usize * HUGE) as u64, "{area:?}");
        // Auto takes the pool when it has room.
        drop(pager);
        let auto = build(
            PagerOptions::new().huge_pages(HugePages::Auto),
            Arc::new(hashed(len as u64)),
        )
        .unwrap();
        assert_eq!(
            auto.backing(),
            Backing::Hugetlb,
            "{:?}",
            auto.backing_note()
        );
    }
    let _empty = PoolGuard::empty().unwrap();
    let pager = build(
        PagerOptions::new().huge_pages(HugePages::Hugetlb),
        Arc::new(hashed(len as u64)),
    )
    .unwrap();
    assert_eq!(pager.backing(), Backing::Base);
    assert_eq!(pager.page_size(), 4096);
    let why = pager.backing_note().expect("a reason");
    assert!(why.contains("hugetlb pool has 0 free"), "{why}");
    check_bytes(pager.as_slice());
}

#[test]
fn hugetlb_pages_come_straight_from_a_file_and_a_shrunk_file_never_signals() {
    // A file source's huge pages are copied from its mapping, the read-ahead markers too
    // (from the mapping, when the reader reaches them); past a new end those copies fail
    // in the kernel (EFAULT) and the pages are read with pread: zeros.
    let _one = POOL.lock().unwrap_or_else(|p| p.into_inner());
    let len = 24 * HUGE + 777;
    let _pool = match PoolGuard::raise(2 * 25) {
        Ok(g) => g,
        Err(why) => return skip(&why),
    };
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = nonzero_file(dir.path(), len);
    let hugetlb = |opts: &mut PagerOptions| {
        let src = Arc::new(FileSource::open(&path).unwrap());
        let pager = build(opts.huge_pages(HugePages::Hugetlb), src)?;
        assert_eq!(
            pager.backing(),
            Backing::Hugetlb,
            "{:?}",
            pager.backing_note()
        );
        Some(pager)
    };
    let Some(pager) = hugetlb(&mut PagerOptions::new()) else {
        return;
    };
    let mut all = vec![0u8; len];
    for (i, chunk) in all.chunks_mut(1 << 20).enumerate() {
        pager.read_at(i << 20, chunk).unwrap();
    }
    assert!(all == data, "a sequential scan's bytes");
    let stats = pager.stats();
    assert!(stats.readahead_hits > 0, "markers taken: {stats:?}");
    drop(pager);

    // Cut the file under two pagers: one reading ahead in the background (pages fetched
    // before the cut keep their bytes; every other page past it reads as zeros), one
    // filling only on faults (all zeros past the cut).
    let background = hugetlb(&mut PagerOptions::new()).unwrap();
    let on_faults = hugetlb(PagerOptions::new().async_readahead(false)).unwrap();
    for p in [&background, &on_faults] {
        p.read_at(0, &mut all[..HUGE]).unwrap();
        p.read_at(HUGE, &mut all[..HUGE]).unwrap();
    }
    let cut = 5 * HUGE + 123;
    cut_file(&path, cut);
    let mut shrunk = data.clone();
    shrunk[cut..].fill(0);
    for (name, p) in [("background", &background), ("on faults", &on_faults)] {
        all.fill(0xee);
        p.read_at(0, &mut all).unwrap();
        for (i, page) in all.chunks(HUGE).enumerate() {
            let at = i * HUGE..(i * HUGE + page.len());
            let old = page == &data[at.clone()];
            let zeroed = page == &shrunk[at];
            assert!(
                zeroed || (old && name == "background"),
                "{name}: huge page {i}"
            );
        }
    }
}

#[test]
fn a_budget_or_a_writable_source_uses_base_pages_and_says_why() {
    let len = 4 * HUGE;
    let Some(budgeted) = build(
        PagerOptions::new()
            .huge_pages(HugePages::Auto)
            .budget(HUGE as u64),
        Arc::new(hashed(len as u64)),
    ) else {
        return;
    };
    assert_eq!(budgeted.backing(), Backing::Base);
    assert!(budgeted.backing_note().unwrap().contains("budget"));
    check_bytes(budgeted.as_slice());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    std::fs::write(&path, vec![7u8; len]).unwrap();
    let src = mmkit::pager::FileSource::open_rw(&path).unwrap();
    let writable = build(
        PagerOptions::new().huge_pages(HugePages::Thp),
        Arc::new(src),
    )
    .unwrap();
    assert_eq!(writable.backing(), Backing::Base);
    assert!(writable.backing_note().unwrap().contains("writable"));
    // Nothing asked, nothing to say.
    let plain = build(&PagerOptions::new(), Arc::new(hashed(len as u64))).unwrap();
    assert_eq!(
        (plain.backing(), plain.backing_note()),
        (Backing::Base, None)
    );
}
