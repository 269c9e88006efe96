//! `mmkit::probe::cache` against `fincore` and `vmtouch` on real files on disk (not
//! tmpfs, where nothing can be evicted): after evict, touch and a partial touch the
//! resident page counts must agree; trees are walked with globs, without following
//! symlinks or opening FIFOs; locks hold pages and show in `VmLck`.

use std::path::{Path, PathBuf};
use std::process::Command;

use mmkit::probe::cache::{Action, ByteRange, CacheOptions, CacheReport};

use common::peer;
use mmkit_testkit as common;

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir")
}

fn ps() -> u64 {
    mmkit::page_size() as u64
}

fn write(path: &Path, len: usize) -> PathBuf {
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    std::fs::write(path, data).unwrap();
    path.to_path_buf()
}

fn run(opts: &CacheOptions, paths: &[&Path], action: Action) -> CacheReport {
    let (report, _) = opts.run(paths, action, &mut |_| {});
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    report
}

/// fincore's (resident bytes, resident pages, size).
fn fincore(path: &Path) -> (u64, u64, u64) {
    let out = Command::new("fincore")
        .args(["--bytes", "--noheadings", "--raw", "-o", "RES,PAGES,SIZE"])
        .arg(path)
        .output()
        .expect("fincore is installed (util-linux)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let v: Vec<u64> = text
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect();
    assert_eq!(v.len(), 3, "fincore said {text:?}");
    (v[0], v[1], v[2])
}

/// vmtouch's "Resident Pages: X/Y".
fn vmtouch(path: &Path) -> (u64, u64) {
    let out = Command::new("vmtouch")
        .arg(path)
        .output()
        .expect("vmtouch is installed");
    common::resident_pages(&String::from_utf8(out.stdout).unwrap())
}

/// Our resident count of `path` once read-ahead started by a touch has finished (two
/// equal counts 50 ms apart).
fn settled(opts: &CacheOptions, path: &Path) -> mmkit::probe::cache::FileEntry {
    let mut last = one(&run(opts, &[path], Action::Query)).clone();
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let now = one(&run(opts, &[path], Action::Query)).clone();
        if now.resident == last.resident {
            return now;
        }
        last = now;
    }
    panic!("residency of {} did not settle", path.display());
}

/// `settled`, then fincore's count of resident pages; measured again (up to 5 times, a
/// quarter second apart) while the two differ: the kernel may still finish read-ahead,
/// or reclaim a page, between the two readings. A real disagreement stays.
fn settled_with_fincore(opts: &CacheOptions, path: &Path) -> (mmkit::probe::cache::FileEntry, u64) {
    let mut q = settled(opts, path);
    let mut f = fincore(path).1;
    for _ in 0..5 {
        if f == q.resident {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
        q = settled(opts, path);
        f = fincore(path).1;
    }
    (q, f)
}

fn one(report: &CacheReport) -> &mmkit::probe::cache::FileEntry {
    assert_eq!(report.files.len(), 1);
    &report.files[0]
}

#[test]
#[cfg_attr(miri, ignore)]
fn evict_touch_and_partial_touch_agree_with_fincore_and_vmtouch() {
    // Both checked (no short circuit), so a machine lacking both says so for both.
    if !(peer("fincore", "util-linux") & peer("vmtouch", "vmtouch")) {
        return;
    }
    let dir = tempdir();
    let files = [
        (write(&dir.path().join("empty"), 0), 0u64),
        (write(&dir.path().join("one"), 1), 1),
        (write(&dir.path().join("five"), 5 * ps() as usize), 5),
        (
            write(&dir.path().join("ten_mib"), 10 << 20),
            (10 << 20) / ps(),
        ),
    ];
    let opts = CacheOptions::new();
    for (path, pages) in &files {
        let name = path.display();
        let p = path.as_path();

        let e = one(&run(&opts, &[p], Action::Evict)).clone();
        assert_eq!(e.pages, *pages, "{name}");
        assert_eq!(e.resident, 0, "{name}: evicted");
        assert_eq!(fincore(p).1, 0, "{name}: fincore after evict");
        assert_eq!(vmtouch(p), (0, *pages), "{name}: vmtouch after evict");

        let e = one(&run(&opts, &[p], Action::Touch)).clone();
        assert_eq!(e.resident, *pages, "{name}: touched");
        let (res, fpages, size) = fincore(p);
        assert_eq!(
            (fpages, res, size),
            (*pages, pages * ps(), e.size),
            "{name}"
        );
        assert_eq!(vmtouch(p), (*pages, *pages), "{name}: vmtouch after touch");
        let q = one(&run(&opts, &[p], Action::Query)).clone();
        assert_eq!(q.resident, *pages, "{name}: query after touch");
        if *pages > 0 {
            assert_eq!(q.cachestat.expect("cachestat on 6.5+").cached, *pages);
        }
    }

    // Partial: evict the big file, read pages [256, 512) with pread; read-ahead may
    // bring more, but every tool must count the same.
    let big = files[3].0.as_path();
    run(&opts, &[big], Action::Evict);
    let mut buf = vec![0u8; 256 * ps() as usize];
    std::os::unix::fs::FileExt::read_exact_at(
        &std::fs::File::open(big).unwrap(),
        &mut buf,
        256 * ps(),
    )
    .unwrap();
    let (q, f) = settled_with_fincore(&opts, big);
    assert!(q.resident >= 256 && q.resident < q.pages, "{q:?}");
    assert_eq!(f, q.resident, "partial vs fincore");
    assert_eq!(vmtouch(big), (q.resident, q.pages), "partial vs vmtouch");
    assert_eq!(
        q.cachestat.unwrap().cached,
        q.resident,
        "partial vs cachestat"
    );

    // Partial through a range: touch 1 MiB at 2 MiB, measure the range and the file.
    run(&opts, &[big], Action::Evict);
    let mut ranged = CacheOptions::new();
    ranged.range(Some("2M-3M".parse().unwrap()));
    let r = one(&run(&ranged, &[big], Action::Touch)).clone();
    assert_eq!((r.offset, r.bytes, r.pages), (2 << 20, 1 << 20, 256));
    assert_eq!(r.resident, 256, "the range is resident");
    let (q, f) = settled_with_fincore(&opts, big);
    assert!(q.resident >= 256 && q.resident < q.pages, "{q:?}");
    assert_eq!(f, q.resident, "range touch vs fincore");

    // Evicting a range leaves the rest: evict [2M, 2.5M) only.
    let mut half = CacheOptions::new();
    half.range(Some(ByteRange {
        start: 2 << 20,
        end: Some((2 << 20) + (512 << 10)),
    }));
    assert_eq!(one(&run(&half, &[big], Action::Evict)).resident, 0);
    let r = one(&run(&ranged, &[big], Action::Query)).clone();
    // Eviction drops whole folios only, so a large folio may keep some of the half.
    assert!(r.resident >= 128 && r.resident < 256, "{r:?}");
    assert_eq!(
        fincore(big).1,
        one(&run(&opts, &[big], Action::Query)).resident
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn evict_writes_back_dirty_pages_first() {
    let dir = tempdir();
    let path = write(&dir.path().join("dirty"), 64 * ps() as usize);
    // Fresh writes are dirty; DONTNEED alone would leave them.
    let e = one(&run(&CacheOptions::new(), &[&path], Action::Evict)).clone();
    assert_eq!(e.resident, 0);
    assert_eq!(e.cachestat.unwrap().dirty, 0);
    if peer("fincore", "util-linux") {
        assert_eq!(fincore(&path).1, 0);
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn trees_follow_globs_skip_symlinks_and_fifos() {
    let dir = tempdir();
    let root = dir.path().join("tree");
    for d in ["sub/deep", "skip"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    write(&root.join("a.txt"), 100);
    write(&root.join("b.log"), 5000);
    write(&root.join("sub/c.txt"), 3 * ps() as usize);
    write(&root.join("sub/deep/d.txt"), 1);
    write(&root.join("skip/e.txt"), 10);
    // A symlink to a file outside the tree, and a FIFO nobody writes to (opening it
    // for reading would block forever).
    let outside = write(&dir.path().join("outside"), 7 * ps() as usize);
    std::os::unix::fs::symlink(&outside, root.join("link.txt")).unwrap();
    common::mkfifo(root.join("fifo.txt"));

    let names = |r: &CacheReport| {
        let mut v: Vec<String> = r
            .files
            .iter()
            .map(|f| f.path.strip_prefix(&root).unwrap().display().to_string())
            .collect();
        v.sort();
        v
    };

    let all = run(&CacheOptions::new(), &[&root], Action::Touch);
    assert_eq!(
        names(&all),
        [
            "a.txt",
            "b.log",
            "skip/e.txt",
            "sub/c.txt",
            "sub/deep/d.txt"
        ]
    );
    assert_eq!(all.summary.directories, 4);
    assert_eq!(all.summary.pages, 1 + 2 + 1 + 3 + 1);
    assert_eq!(all.summary.resident, all.summary.pages);
    // vmtouch walks the same tree the same way.
    if peer("vmtouch", "vmtouch") {
        let out = Command::new("vmtouch").arg(&root).output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("Files: 5\n"), "{text}");
        assert!(text.contains("Directories: 4\n"), "{text}");
        assert_eq!(vmtouch(&root), (8, 8));
    }

    let mut globbed = CacheOptions::new();
    globbed.include("*.txt").exclude("skip");
    let r = run(&globbed, &[&root], Action::Query);
    assert_eq!(names(&r), ["a.txt", "sub/c.txt", "sub/deep/d.txt"]);
    assert_eq!(
        r.summary.directories, 3,
        "the excluded directory is not walked"
    );

    let mut by_path = CacheOptions::new();
    by_path.include("sub/**");
    assert_eq!(
        names(&run(&by_path, &[&root], Action::Query)),
        ["sub/c.txt", "sub/deep/d.txt"]
    );

    let mut follow = CacheOptions::new();
    follow.follow(true);
    let r = run(&follow, &[&root], Action::Query);
    assert!(
        names(&r).contains(&"link.txt".to_string()),
        "{:?}",
        names(&r)
    );
    assert_eq!(r.summary.files, 6);

    let mut flat = CacheOptions::new();
    flat.recursive(false);
    assert_eq!(
        names(&run(&flat, &[&root], Action::Query)),
        ["a.txt", "b.log"]
    );

    // A bad glob is an error, not a panic.
    let mut bad = CacheOptions::new();
    bad.include("a[");
    let (r, _) = bad.run(&[&root], Action::Query, &mut |_| {});
    assert_eq!(r.errors.len(), 1);
    assert!(r.errors[0].error.to_string().contains("glob"));
}

#[test]
#[cfg_attr(miri, ignore)]
fn missing_paths_are_errors_and_the_rest_is_measured() {
    let dir = tempdir();
    let good = write(&dir.path().join("good"), 3 * ps() as usize);
    let missing = dir.path().join("missing");
    let mut seen = 0;
    let (r, _) =
        CacheOptions::new().run(&[&missing, &good], Action::Touch, &mut |s| seen = s.files);
    assert_eq!(seen, 1, "progress saw the file");
    assert_eq!(r.summary.files, 1);
    assert_eq!(r.summary.resident, 3);
    assert_eq!(r.errors.len(), 1);
    assert_eq!(r.errors[0].path, missing);
    assert_eq!(r.errors[0].error.errno(), Some(libc::ENOENT));
}

#[test]
#[cfg_attr(miri, ignore)]
fn lock_keeps_pages_resident_until_dropped() {
    let dir = tempdir();
    let path = write(&dir.path().join("locked"), 4 << 20);
    let opts = CacheOptions::new();
    run(&opts, &[&path], Action::Evict);
    let before = mmkit::probe::locked_bytes().unwrap();
    let (r, locked) = opts.run(&[&path], Action::Lock, &mut |_| {});
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(locked.files(), 1);
    assert_eq!(locked.pages(), (4 << 20) / ps());
    assert_eq!(
        one(&r).resident,
        locked.pages(),
        "locked pages are resident"
    );
    if peer("fincore", "util-linux") {
        assert_eq!(fincore(&path).1, locked.pages());
    }
    let during = mmkit::probe::locked_bytes().unwrap();
    assert!(during >= before + (4 << 20), "VmLck {before} -> {during}");
    drop(locked);
    assert!(mmkit::probe::locked_bytes().unwrap() < during);

    // On-fault locking of an evicted file loads nothing.
    run(&opts, &[&path], Action::Evict);
    let mut lazy = CacheOptions::new();
    lazy.lock_mode(mmkit::LockMode::OnFault);
    let (r, locked) = lazy.run(&[&path], Action::Lock, &mut |_| {});
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(one(&r).resident, 0);
    drop(locked);
}

/// A plain query counts with cachestat(2); with per-page maps it uses mincore(2). On a
/// partly cached file (evicted, then some pages read back) both must give one count.
#[test]
fn cachestat_count_agrees_with_mincore_pages() {
    use std::os::unix::fs::FileExt;
    let dir = tempdir();
    let path = write(&dir.path().join("partial"), 64 * ps() as usize);
    let file = std::fs::File::open(&path).unwrap();
    mmkit::probe::cache::evict(&file, 0, 0).unwrap();
    let mut buf = vec![0u8; 4096];
    for page in [0u64, 9, 10, 33, 63] {
        file.read_at(&mut buf, page * ps()).unwrap();
    }
    let counted = run(&CacheOptions::new(), &[&path], Action::Query);
    let mapped = run(
        CacheOptions::new().keep_pages(true),
        &[&path],
        Action::Query,
    );
    let by_bitmap = mapped.files[0].map.iter().filter(|&&r| r).count() as u64;
    assert!(counted.files[0].resident >= 5, "{counted:?}");
    assert_eq!(counted.files[0].resident, mapped.files[0].resident);
    assert_eq!(counted.files[0].resident, by_bitmap);
}
