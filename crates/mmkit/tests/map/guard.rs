//! The guard: a file truncated under a mapping gives `Err`, never a SIGBUS crash; a SIGBUS
//! that is not mmkit's still behaves as before. Readers race a truncating process many
//! times over, in a thread and in a child process.

use mmkit_testkit as common;

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{page, pattern, SmallTmpfs, TempFile};
use mmkit::helpers::XorShift;
use mmkit::process::{fork, Exit};
use mmkit::{ErrorKind, MapOptions, RemapMode};

/// Pages in the raced file; the truncator shrinks it in steps from the end.
const PAGES: usize = 256;
const CYCLES: usize = 12;

/// Read random ranges of `map` until `stop`; every read must be the file's pattern or a
/// truncation error. Returns (good reads, failed reads) or panics with the violation.
fn read_until(map: &mmkit::Mapping, want: &[u8], stop: &AtomicBool, seed: u64) -> (u64, u64) {
    let (mut good, mut failed) = (0, 0);
    let mut rng = XorShift::new(seed | 1);
    let mut buf = vec![0u8; 3 * page()];
    while !stop.load(Ordering::Relaxed) {
        let x = rng.next_u64();
        let len = 1 + (x as usize >> 3) % buf.len();
        let off = (x as usize >> 20) % (want.len() - len);
        match map.read_at(off, &mut buf[..len]) {
            Ok(()) => {
                assert!(
                    buf[..len] == want[off..off + len],
                    "wrong bytes at {off}+{len}"
                );
                good += 1;
            }
            Err(e) => {
                assert!(
                    matches!(e.kind(), ErrorKind::Truncated),
                    "unexpected error: {e}"
                );
                failed += 1;
            }
        }
    }
    (good, failed)
}

/// A child process that shrinks `path` to `PAGES - k*step` pages, step by step, then to 0.
fn truncator(path: &std::path::Path) -> mmkit::process::Child {
    let path = path.to_path_buf();
    // SAFETY: the child opens the file, truncates it in steps with sleeps, and exits; it
    // takes no lock another thread could hold.
    unsafe {
        fork(move |_| {
            let Ok(f) = common::open_rw_result(&path) else {
                return 2;
            };
            for k in (0..8).rev() {
                std::thread::sleep(Duration::from_millis(3));
                if f.set_len((k * PAGES / 8 * page()) as u64).is_err() {
                    return 3;
                }
            }
            0
        })
    }
    .expect("fork truncator")
}

#[test]
fn readers_survive_a_truncating_process_many_times_over() {
    let want = pattern(PAGES * page());
    let (mut good, mut failed) = (0u64, 0u64);
    for cycle in 0..CYCLES {
        let tf = TempFile::new(&want);
        let map = MapOptions::new().map(&tf.open_ro()).expect("map");
        let stop = AtomicBool::new(false);
        // The reader child process reads until the truncator is done, then reports.
        let map_ref = &map;
        let want_ref = &want;
        // SAFETY: the child reads through the inherited mapping and exits with a code; a
        // panic (a wrong byte) becomes exit code 101 through fork's catch_unwind.
        let reader_child = unsafe {
            fork(|_| {
                // Read for longer than the truncator runs (8 steps of 3 ms).
                let stop_at = AtomicBool::new(false);
                std::thread::scope(|s| {
                    s.spawn(|| {
                        std::thread::sleep(Duration::from_millis(60));
                        stop_at.store(true, Ordering::Relaxed);
                    });
                    read_until(map_ref, want_ref, &stop_at, 7 + cycle as u64);
                });
                0
            })
        }
        .expect("fork reader");
        let cutter = truncator(&tf.path);
        std::thread::scope(|s| {
            let t = s.spawn(|| read_until(&map, &want, &stop, 99 + cycle as u64));
            let second = s.spawn(|| read_until(&map, &want, &stop, 12345 + cycle as u64));
            assert_eq!(cutter.wait().expect("wait truncator"), Exit::Code(0));
            std::thread::sleep(Duration::from_millis(5));
            stop.store(true, Ordering::Relaxed);
            for h in [t, second] {
                let (g, f) = h.join().expect("reader thread panicked");
                good += g;
                failed += f;
            }
        });
        assert_eq!(
            reader_child.wait().expect("wait reader"),
            Exit::Code(0),
            "cycle {cycle}"
        );
        // Once the file is empty, every read fails, quickly and without a signal.
        let mut b = [0u8; 1];
        assert_eq!(
            map.read_at(0, &mut b).unwrap_err().kind(),
            ErrorKind::Truncated
        );
    }
    println!("{CYCLES} cycles: {good} good reads, {failed} truncation errors");
    assert!(failed > 0, "no read ever met the truncation");
    assert!(good > 0, "no read ever succeeded");
}

#[test]
fn foreign_sigbus_still_kills() {
    // Raised with raise(): not a fault in a guarded access. The child starts from the
    // default action, as a C program does (Rust's runtime installs a SIGBUS handler that
    // survives one raised SIGBUS, and mmkit chains to it faithfully).
    // SAFETY: the child installs the guard, raises SIGBUS and would exit 0 if it survived.
    let raised = unsafe {
        fork(|_| {
            common::no_core_dump();
            libc::signal(libc::SIGBUS, libc::SIG_DFL);
            mmkit::guard::install();
            libc::raise(libc::SIGBUS);
            0
        })
    }
    .unwrap();
    assert_eq!(raised.wait().unwrap(), Exit::Signal(libc::SIGBUS));

    // A real fault outside any guarded access (a raw load past the end of the file).
    let tf = TempFile::patterned(page());
    let map = MapOptions::new()
        .len(3 * page())
        .allow_past_eof()
        .map(&tf.open_ro())
        .unwrap();
    // SAFETY: the child takes a guarded fault first (which must be survived), then an
    // unguarded one, which must kill it.
    let fault = unsafe {
        fork(|_| {
            common::no_core_dump();
            if map.read_at(2 * page(), &mut [0u8]).is_ok() {
                return 3;
            }
            let fresh = MapOptions::new()
                .len(3 * page())
                .allow_past_eof()
                .map(&common::open_rw(&tf.path));
            let Ok(fresh) = fresh else { return 4 };
            std::hint::black_box(
                ((fresh.as_ptr() as usize + 2 * page()) as *const u8).read_volatile(),
            );
            0
        })
    }
    .unwrap();
    assert_eq!(fault.wait().unwrap(), Exit::Signal(libc::SIGBUS));
}

static CHAINED: AtomicU64 = AtomicU64::new(0);

extern "C" fn user_handler(_sig: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(42 + CHAINED.load(Ordering::Relaxed) as i32) };
}

#[test]
fn a_previous_handler_gets_the_sigbus_that_is_not_ours() {
    let tf = TempFile::patterned(page());
    let file = tf.open_ro();
    // SAFETY: the child installs its own SIGBUS handler (which exits 42), then mmkit's
    // guard on top; a guarded fault must not reach the user's handler, a raised one must.
    let child = unsafe {
        fork(|_| {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = user_handler as *const () as usize;
            libc::sigaction(libc::SIGBUS, &act, std::ptr::null_mut());
            mmkit::guard::install();
            let Ok(map) = MapOptions::new()
                .len(2 * page())
                .allow_past_eof()
                .map(&file)
            else {
                return 2;
            };
            match map.read_at(page(), &mut [0u8]) {
                Err(e) if e.kind() == ErrorKind::Truncated => {}
                _ => return 3,
            }
            libc::raise(libc::SIGBUS);
            0
        })
    }
    .unwrap();
    assert_eq!(child.wait().unwrap(), Exit::Code(42));
}

#[test]
fn truncation_then_regrowth_is_recovered_by_remap() {
    let len = 16 * page();
    let tf = TempFile::patterned(len);
    let file = tf.open_rw();
    let mut map = MapOptions::new().offset(100).write().map(&file).unwrap();
    file.set_len((5 * page()) as u64).unwrap();

    let mut buf = vec![0u8; 2 * page()];
    let err = map.read_at(8 * page(), &mut buf).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Truncated);
    let text = err.to_string();
    assert!(
        text.contains(&format!("truncated to {} bytes", 5 * page())),
        "{text}"
    );
    assert!(text.contains("remap()"), "{text}");
    // The part still backed by the file reads correctly, and the lost part fails fast.
    map.read_at(0, &mut buf[..page()]).unwrap();
    assert_eq!(&buf[..page()], &pattern(len)[100..100 + page()]);
    assert_eq!(
        map.read_at(9 * page(), &mut buf).unwrap_err().kind(),
        ErrorKind::Truncated
    );
    // Writes into lost pages fail too, and do not grow the file.
    assert_eq!(
        map.write_at(10 * page(), b"x").unwrap_err().kind(),
        ErrorKind::Truncated
    );
    assert_eq!(file.metadata().unwrap().len(), (5 * page()) as u64);

    // The file grows back with its old contents: remap to the full length recovers.
    std::fs::write(&tf.path, pattern(len)).unwrap();
    map.remap(len - 100, RemapMode::MayMove).unwrap();
    let mut all = vec![0u8; len - 100];
    map.read_at(0, &mut all).unwrap();
    assert!(
        all == pattern(len)[100..],
        "remapped contents differ from the file"
    );
}

#[test]
fn with_bytes_is_guarded_and_writes_report_truncation() {
    let tf = TempFile::patterned(8 * page());
    let file = tf.open_rw();
    let map = MapOptions::new().map(&file).unwrap();
    // SAFETY: this test is the only writer of the file, and does not write while f runs.
    let sum =
        unsafe { map.with_bytes(0, 4 * page(), |b| b.iter().map(|&x| x as u64).sum::<u64>()) };
    assert_eq!(
        sum.unwrap(),
        pattern(4 * page()).iter().map(|&x| x as u64).sum::<u64>()
    );
    file.set_len(page() as u64).unwrap();
    // SAFETY: as above.
    let r = unsafe { map.with_bytes(0, 4 * page(), |b| b.iter().map(|&x| x as u64).sum::<u64>()) };
    assert_eq!(r.unwrap_err().kind(), ErrorKind::Truncated);
}

fn memfd_with(bytes: &[u8]) -> std::fs::File {
    let fd = rustix::fs::memfd_create("mmkit-guard-test", rustix::fs::MemfdFlags::ALLOW_SEALING)
        .unwrap();
    let file = std::fs::File::from(fd);
    std::io::Write::write_all(&mut &file, bytes).unwrap();
    file
}

#[test]
fn sealed_memfds_need_no_guard_and_lend_slices() {
    use rustix::fs::SealFlags;
    let data = pattern(3 * page());
    let frozen = memfd_with(&data);
    rustix::fs::fcntl_add_seals(
        &frozen,
        SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE,
    )
    .unwrap();
    let map = MapOptions::new().map_fd(frozen.as_fd(), None).unwrap();
    assert_eq!(map.sealed_slice().unwrap(), &data[..]);

    // Shrink-sealed but writable: no slices, but atomic views are allowed (no SIGBUS).
    let shrink_only = memfd_with(&data);
    rustix::fs::fcntl_add_seals(&shrink_only, SealFlags::SHRINK).unwrap();
    let map = MapOptions::new()
        .write()
        .map_fd(shrink_only.as_fd(), None)
        .unwrap();
    assert_eq!(
        map.sealed_slice().unwrap_err().kind(),
        ErrorKind::Unsupported
    );
    map.atomic_u32s(0, 4).unwrap()[0].store(7, Ordering::Relaxed);
    assert!(
        shrink_only.set_len(0).is_err(),
        "the seal forbids shrinking"
    );

    // An ordinary file can shrink: atomic views are refused, slices too.
    let tf = TempFile::patterned(page());
    let map = MapOptions::new().write().map(&tf.open_rw()).unwrap();
    assert_eq!(
        map.atomic_u32s(0, 4).unwrap_err().kind(),
        ErrorKind::Unsupported
    );
    assert_eq!(
        map.sealed_slice().unwrap_err().kind(),
        ErrorKind::Unsupported
    );
}

/// Issue 10, defect 3: a file cut to one page and grown back while another thread reads
/// its second page. Whatever the size is when the guard diagnoses the fault, the page was
/// lost to a truncation, never to a storage failure: every error is `Truncated`.
#[test]
fn a_truncation_that_grows_back_is_not_a_storage_fault() {
    use std::os::unix::fs::FileExt;
    const READS: usize = 20_000;
    let tf = TempFile::patterned(2 * page());
    let file = tf.open_rw();
    let stop = AtomicBool::new(false);
    let (mut ok, mut truncated, mut storage) = (0usize, 0usize, 0usize);
    std::thread::scope(|s| {
        let cutter = s.spawn(|| {
            let fill = vec![7u8; page()];
            let mut cycles = 0u64;
            while !stop.load(Ordering::Relaxed) {
                file.set_len(page() as u64).expect("truncate");
                file.write_all_at(&fill, page() as u64).expect("grow back");
                cycles += 1;
            }
            cycles
        });
        for _ in 0..READS {
            let map = MapOptions::new()
                .len(2 * page())
                .allow_past_eof()
                .map(&file)
                .expect("map");
            match map.read_at(page(), &mut [0u8; 1]) {
                Ok(()) => ok += 1,
                Err(e) if e.kind() == ErrorKind::Truncated => truncated += 1,
                Err(e) if e.kind() == ErrorKind::StorageFault => {
                    storage += 1;
                    if storage == 1 {
                        eprintln!("first storage fault: {e}");
                    }
                }
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        stop.store(true, Ordering::Relaxed);
        let cycles = cutter.join().expect("truncating thread panicked");
        println!(
            "{READS} reads over {cycles} truncate/grow cycles: {ok} read, {truncated} \
             Truncated, {storage} StorageFault"
        );
    });
    assert_eq!(
        storage,
        0,
        "{storage} of {} errors were StorageFault",
        storage + truncated
    );
}

#[test]
fn a_write_into_a_hole_on_a_full_tmpfs_is_no_space_not_a_crash() {
    if !common::is_root() {
        return common::skip("needs root to mount a small tmpfs");
    }
    let Some(fs) = SmallTmpfs::mount("256k") else {
        return common::skip("could not mount a tmpfs here");
    };
    let path = fs.dir.path().join("data");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .expect("create data");
    // Sparse: ftruncate takes no space, so the pages are holes until written.
    file.set_len(16 * page() as u64).unwrap();
    let mut map = MapOptions::new().write().map(&file).unwrap();
    map.write_at(0, &pattern(page())).unwrap();
    fs.fill();

    // Every hole now needs a page the file system does not have: SIGBUS, turned into
    // Err(NoSpace), and the process goes on.
    for k in 1..16 {
        let e = map.write_at(k * page(), &[7u8; 16]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NoSpace, "page {k}: {e}");
        assert!(e.to_string().contains("full"), "{e}");
    }
    // What was written before the disk filled is intact.
    let mut back = vec![0u8; page()];
    map.read_at(0, &mut back).unwrap();
    assert_eq!(back, pattern(page()));

    // Once space is freed, a fresh mapping of the same file writes again.
    std::fs::remove_file(fs.dir.path().join("fill")).unwrap();
    let mut again = MapOptions::new().write().map(&file).unwrap();
    again.write_at(5 * page(), b"room again").unwrap();
    again.flush().unwrap();
    let mut got = [0u8; 10];
    again.read_at(5 * page(), &mut got).unwrap();
    assert_eq!(&got, b"room again");
}
