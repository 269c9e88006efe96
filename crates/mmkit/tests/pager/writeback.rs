//! Dirty tracking and write-back: writes from several threads through the pager's
//! mutable slice reach the source on `flush` and on drop, exactly for the pages written,
//! compared with a model of the same writes.

use std::collections::BTreeSet;
use std::sync::Arc;

use mmkit::pager::{FileSource, MemSource, Pager, PagerOptions};

use crate::pager_common;
use mmkit::helpers::XorShift;
use pager_common::build;

const PAGE: usize = 4096;

/// Four threads each write `per_thread` short random runs into their quarter of the
/// pager; the same writes are applied to `model`. Returns the pages written.
fn random_writes(
    pager: &mut Pager,
    model: &mut [u8],
    seed: u64,
    per_thread: usize,
) -> BTreeSet<usize> {
    let len = pager.len();
    let quarter = len.div_ceil(4);
    let slice = pager.as_mut_slice().expect("writable pager");
    let ops: Vec<Vec<(usize, Vec<u8>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = slice
            .chunks_mut(quarter)
            .enumerate()
            .map(|(t, chunk)| {
                s.spawn(move || {
                    let mut rng = XorShift::new(seed + t as u64 * 7919);
                    let mut ops = Vec::new();
                    for _ in 0..per_thread {
                        let at = (rng.next_u64() % chunk.len() as u64) as usize;
                        let n = ((rng.next_u64() % 300) as usize + 1).min(chunk.len() - at);
                        let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                        chunk[at..at + n].copy_from_slice(&bytes);
                        ops.push((t * quarter + at, bytes));
                    }
                    ops
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut pages = BTreeSet::new();
    for (at, bytes) in ops.into_iter().flatten() {
        model[at..at + bytes.len()].copy_from_slice(&bytes);
        pages.extend(at / PAGE..=(at + bytes.len() - 1) / PAGE);
    }
    pages
}

#[test]
fn writes_from_four_threads_reach_a_memory_source_on_flush_and_drop() {
    for round in 0..3u64 {
        // A short last page: write-back clips it at the source's length.
        let len = 2 * 1024 * 1024 + 123;
        let initial: Vec<u8> = (0..len).map(|i| (i % 241) as u8).collect();
        let src = Arc::new(MemSource::new(initial.clone()));
        let Some(mut pager) = build(&PagerOptions::new(), src.clone()) else {
            return;
        };
        let mut model = initial.clone();
        let written = random_writes(&mut pager, &mut model, 42 + round, 200);
        assert_eq!(pager.dirty_pages(), written.len());
        // Nothing reached the source yet.
        assert_eq!(src.to_vec(), initial);
        pager.flush().unwrap();
        assert!(
            src.to_vec() == model,
            "round {round}: source differs from model"
        );
        let st = pager.stats();
        assert_eq!(st.writebacks, written.len() as u64, "{st:?}");
        assert_eq!(pager.dirty_pages(), 0);
        assert_eq!(src.syncs(), 1);
        // A second flush with nothing written does nothing.
        let writes = src.writes();
        pager.flush().unwrap();
        assert_eq!(src.writes(), writes);
        // Pages written back are protected again: a new write is seen, and drop flushes.
        let again = random_writes(&mut pager, &mut model, 1000 + round, 50);
        assert_eq!(pager.dirty_pages(), again.len());
        assert_eq!(pager.as_slice(), &model[..]);
        drop(pager);
        assert!(
            src.to_vec() == model,
            "round {round}: drop did not write back"
        );
    }
}

#[test]
fn only_the_pages_written_are_written_back() {
    let src = Arc::new(MemSource::new(vec![0u8; 64 * PAGE]));
    let Some(mut pager) = build(&PagerOptions::new(), src.clone()) else {
        return;
    };
    // Read everything: reading does not dirty.
    assert!(pager.as_slice().iter().all(|&b| b == 0));
    assert_eq!(pager.dirty_pages(), 0);
    let s = pager.as_mut_slice().unwrap();
    s[3 * PAGE + 7] = 1;
    s[10 * PAGE] = 2;
    s[11 * PAGE + 4095] = 3; // 10 and 11: one run, one write
    s[63 * PAGE + 1] = 4;
    assert_eq!(pager.dirty_pages(), 4);
    pager.flush().unwrap();
    let st = pager.stats();
    assert_eq!(
        (st.writebacks, st.bytes_written),
        (4, 4 * PAGE as u64),
        "{st:?}"
    );
    assert_eq!(src.writes(), 3);
    let v = src.to_vec();
    assert_eq!(
        (
            v[3 * PAGE + 7],
            v[10 * PAGE],
            v[11 * PAGE + 4095],
            v[63 * PAGE + 1]
        ),
        (1, 2, 3, 4)
    );
    assert_eq!(v.iter().filter(|&&b| b != 0).count(), 4);
}

#[test]
fn writes_reach_a_real_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let len = 1024 * 1024 + 5;
    let initial: Vec<u8> = (0..len).map(|i| (i % 199) as u8).collect();
    std::fs::write(&path, &initial).unwrap();
    let src = Arc::new(FileSource::open_rw(&path).unwrap());
    let Some(mut pager) = build(PagerOptions::new().threads(2), src) else {
        return;
    };
    let mut model = initial;
    random_writes(&mut pager, &mut model, 7, 300);
    pager.flush().unwrap();
    let on_disk = std::fs::read(&path).unwrap();
    assert_eq!(on_disk.len(), len, "write-back must not grow the file");
    assert!(on_disk == model, "file differs from model");
}

#[test]
fn a_read_only_source_keeps_writes_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    std::fs::write(&path, vec![5u8; 3 * PAGE]).unwrap();
    let src = Arc::new(FileSource::open(&path).unwrap());
    let Some(mut pager) = build(&PagerOptions::new(), src) else {
        return;
    };
    pager.as_mut_slice().unwrap()[PAGE] = 9;
    assert_eq!(pager.as_slice()[PAGE], 9);
    assert_eq!(pager.dirty_pages(), 0);
    pager.flush().unwrap();
    drop(pager);
    assert!(std::fs::read(&path).unwrap().iter().all(|&b| b == 5));
}

#[test]
fn a_budget_writes_dirty_pages_back_before_evicting_them() {
    for threads in [1, 2] {
        let budget = 256 * 1024;
        let len = 4 * budget + 99;
        let initial: Vec<u8> = (0..len).map(|i| (i % 233) as u8).collect();
        let src = Arc::new(MemSource::new(initial.clone()));
        let ra = 16;
        let Some(mut pager) = build(
            PagerOptions::new()
                .budget(budget as u64)
                .readahead(ra)
                .threads(threads),
            src.clone(),
        ) else {
            return;
        };
        let mut model = initial;
        // Random writes all over a region four times the budget: most written pages are
        // evicted (after write-back) before the flush.
        random_writes(&mut pager, &mut model, 99, 400);
        let st = pager.stats();
        assert!(st.evictions > 0 && st.writebacks > 0, "{st:?}");
        // Everything reads back as written, through refills from the source.
        assert!(
            pager.as_slice() == &model[..],
            "threads {threads}: contents differ"
        );
        let rss = mmkit::probe::region_stats(pager.as_ptr()).unwrap().rss;
        assert!(rss <= (budget + ra * PAGE) as u64, "RSS {rss}: {st:?}");
        pager.flush().unwrap();
        assert!(
            src.to_vec() == model,
            "threads {threads}: source differs from model"
        );
        println!("threads {threads}: {:?}", pager.stats());
    }
}

#[test]
fn a_closed_pager_still_writes_back_on_drop() {
    let src = Arc::new(MemSource::new(vec![0u8; 8 * PAGE]));
    let Some(mut pager) = build(&PagerOptions::new(), src.clone()) else {
        return;
    };
    pager.as_mut_slice().unwrap()[2 * PAGE + 1] = 7;
    pager.close();
    assert_eq!(pager.dirty_pages(), 1);
    drop(pager);
    assert_eq!(src.to_vec()[2 * PAGE + 1], 7);
    assert_eq!(src.writes(), 1);
}
