//! Errors made by real objects: directories, FIFOs, sockets, `/proc` and `/sys` files,
//! devices, missing paths and `O_PATH` descriptors; `mlock` past `RLIMIT_MEMLOCK` in an
//! unprivileged child; and what an [`mmkit::Error`] says (`Display`, hint, fields) and
//! becomes as a [`std::io::Error`].

use mmkit_testkit as common;

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;

use common::{is_root, page, TempFile};
use mmkit::process::{ChildLink, Exit};
use mmkit::{ErrorKind, LockMode, MapOptions, Op};

#[test]
fn a_directory_is_not_mappable() {
    let dir = tempfile::tempdir().unwrap();
    let f = File::open(dir.path()).unwrap();
    let err = MapOptions::new().map(&f).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotMappable);
    assert!(err.to_string().contains("directory"), "{err}");
    let err = MapOptions::new().map_path(dir.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotMappable);
    assert_eq!(err.path(), Some(dir.path()));
}

#[test]
fn a_fifo_is_not_mappable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fifo");
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a NUL-terminated path that lives across the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .unwrap();
    let err = MapOptions::new().len(page()).map(&f).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotMappable);
    assert!(err.to_string().contains("pipe"), "{err}");
    assert!(err.hint_text().unwrap().contains("read()"), "{err}");
}

#[test]
fn a_socket_is_not_mappable() {
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let err = MapOptions::new()
        .len(page())
        .map_fd(a.as_fd(), None)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotMappable);
    assert!(err.to_string().contains("socket"), "{err}");
}

#[test]
fn proc_and_sys_files_are_not_mappable() {
    for path in [
        "/proc/self/status",
        "/sys/kernel/mm/transparent_hugepage/enabled",
    ] {
        if !std::path::Path::new(path).exists() {
            common::skip(&format!("{path} does not exist"));
            continue;
        }
        let err = MapOptions::new().map_path(path).unwrap_err();
        if path.starts_with("/sys") && err.kind() == ErrorKind::Os {
            // sysfs files report a size, so mmkit lets mmap refuse them (ENODEV).
            assert_eq!(err.errno(), Some(libc::ENODEV), "{err}");
            assert!(err.hint_text().unwrap().contains("read()"), "{err}");
            continue;
        }
        assert_eq!(err.kind(), ErrorKind::NotMappable, "{path}: {err}");
        assert!(err.to_string().contains(path), "{err}");
        let err = MapOptions::new()
            .len(page())
            .map(&File::open(path).unwrap())
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotMappable, "{path}: {err}");
    }
}

#[test]
fn a_device_needs_a_length_and_then_maps() {
    let zero = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/zero")
        .unwrap();
    let err = MapOptions::new().map(&zero).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.hint_text().unwrap().contains(".len("), "{err}");
    let map = MapOptions::new()
        .len(3 * page())
        .private()
        .map(&zero)
        .unwrap();
    let mut buf = vec![1u8; 3 * page()];
    map.read_at(0, &mut buf).unwrap();
    assert!(buf.iter().all(|&b| b == 0));
}

#[test]
fn a_missing_path_is_an_open_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-file");
    let err = MapOptions::new().map_path(&path).unwrap_err();
    assert_eq!(err.op(), Op::Open);
    assert_eq!(err.kind(), ErrorKind::Os);
    assert_eq!(err.errno(), Some(libc::ENOENT));
    let text = err.to_string();
    assert!(text.contains(&*path.to_string_lossy()), "{text}");
    assert!(text.contains("ENOENT"), "{text}");
    assert!(text.starts_with("open "), "{text}");
}

#[test]
fn an_o_path_descriptor_is_refused() {
    let tf = TempFile::patterned(100);
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(&tf.path)
        .unwrap();
    let err = MapOptions::new().map(&f).unwrap_err();
    assert_eq!(
        (err.op(), err.errno()),
        (Op::Open, Some(libc::EBADF)),
        "{err}"
    );
    assert!(err.hint_text().unwrap().contains("O_PATH"));
}

#[test]
fn mlock_as_root_succeeds() {
    if !is_root() {
        return common::skip("not root: mlock is bounded by RLIMIT_MEMLOCK");
    }
    // The map tests compare this process's `VmLck`: not while this test locks.
    let _serial = common::serial::memlock();
    let mem = MapOptions::new().len(1 << 20).map_anon().unwrap();
    mem.lock(LockMode::Now).unwrap();
    mem.unlock().unwrap();
}

#[test]
fn mlock_past_rlimit_memlock_fails_with_a_hint_in_an_unprivileged_child() {
    let mem = MapOptions::new().len(1 << 20).map_anon().unwrap();
    let root = is_root();
    let unprivileged_lock = |_: &mut ChildLink| {
        let lim = libc::rlimit {
            rlim_cur: 64 << 10,
            rlim_max: 64 << 10,
        };
        // SAFETY: setrlimit reads the struct we pass and changes only this process.
        if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) } != 0 {
            return 10;
        }
        // setuid(2) as a raw syscall (this child has a single thread, so glibc's
        // all-threads broadcast is not needed); leaving root drops CAP_IPC_LOCK, so
        // RLIMIT_MEMLOCK applies.
        // SAFETY: setuid has no memory effects.
        if root && unsafe { libc::syscall(libc::SYS_setuid, 65534) } != 0 {
            return 11;
        }
        if mem.lock_range(0, 32 << 10, LockMode::Now).is_err() {
            return 12; // under the limit must work
        }
        let _ = mem.unlock();
        let Err(e) = mem.lock(LockMode::Now) else {
            return 1;
        };
        memlock_error_code(&e)
    };
    // SAFETY: the child changes only its own limits and user id, calls mlock on memory
    // it owns, formats an error (glibc malloc is fork-safe) and exits with a code; it
    // takes no lock another thread could hold.
    let child = unsafe { mmkit::process::fork(unprivileged_lock) }.unwrap();
    assert_eq!(child.wait().unwrap(), Exit::Code(0));
}

/// 0 when `e` is the error `lock` should give past `RLIMIT_MEMLOCK` (64 KiB), else
/// the number of the first check that failed.
fn memlock_error_code(e: &mmkit::Error) -> i32 {
    let hint = e.hint_text().unwrap_or("");
    if e.kind() != ErrorKind::Os || e.op() != Op::Lock {
        return 2;
    }
    if !matches!(e.errno(), Some(libc::ENOMEM | libc::EAGAIN | libc::EPERM)) {
        return 3;
    }
    if !hint.contains("RLIMIT_MEMLOCK") {
        return 4;
    }
    if !hint.contains("65536 bytes") {
        return 5;
    }
    if !e.to_string().contains("hint: RLIMIT_MEMLOCK") {
        return 6;
    }
    0
}

#[test]
fn display_has_what_where_why_and_a_hint_line() {
    let tf = TempFile::patterned(5000);
    let err = MapOptions::new()
        .offset(10)
        .len(9000)
        .map_path(&tf.path)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RangePastEnd);
    assert_eq!((err.offset(), err.length()), (Some(10), Some(9000)));
    let text = err.to_string();
    let mut lines = text.lines();
    let first = lines.next().unwrap();
    assert!(first.starts_with("mmap "), "{text}");
    assert!(first.contains(&*tf.path.to_string_lossy()), "{text}");
    assert!(first.contains("(offset 10, 9000 bytes)"), "{text}");
    assert!(lines.next().unwrap().starts_with("  hint: "), "{text}");
    assert!(lines.next().is_none());
    assert!(
        format!("{err:?}").starts_with(&text),
        "Debug leads with Display"
    );
}

fn map_missing(path: &std::path::Path) -> io::Result<usize> {
    let map = MapOptions::new().map_path(path)?;
    Ok(map.len())
}

#[test]
fn conversion_to_io_error_keeps_a_sensible_kind_and_the_source() {
    let tf = TempFile::patterned(5000);
    let ro = tf.open_ro();
    let wo = OpenOptions::new().write(true).open(&tf.path).unwrap();
    let mut prot = MapOptions::new().map(&ro).unwrap();
    let cases = [
        (
            MapOptions::new().write().map(&ro).unwrap_err(),
            io::ErrorKind::PermissionDenied,
        ),
        (
            MapOptions::new().map(&wo).unwrap_err(),
            io::ErrorKind::PermissionDenied,
        ),
        (
            MapOptions::new().map_path("/proc/self/status").unwrap_err(),
            io::ErrorKind::Unsupported,
        ),
        (
            MapOptions::new().offset(6000).map(&ro).unwrap_err(),
            io::ErrorKind::UnexpectedEof,
        ),
        (
            MapOptions::new().len(9000).map(&ro).unwrap_err(),
            io::ErrorKind::UnexpectedEof,
        ),
        (
            prot.read_at(4999, &mut [0; 2]).unwrap_err(),
            io::ErrorKind::InvalidInput,
        ),
        (
            prot.write_at(0, b"x").unwrap_err(),
            io::ErrorKind::PermissionDenied,
        ),
        (
            prot.protect_range(1, 1, mmkit::Protection::NONE)
                .unwrap_err(),
            io::ErrorKind::InvalidInput,
        ),
    ];
    for (err, want) in cases {
        let kind = err.kind();
        let text = err.to_string();
        let io_err = io::Error::from(err);
        assert_eq!(io_err.kind(), want, "{text}");
        assert_eq!(io_err.to_string(), text);
        let inner = io_err
            .get_ref()
            .unwrap()
            .downcast_ref::<mmkit::Error>()
            .unwrap();
        assert_eq!(inner.kind(), kind);
    }
    let err = map_missing(&tf.dir.path().join("missing")).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert_eq!(map_missing(&tf.path).unwrap(), 5000);
}

/// Run `f` on a thread and wait for it for at most a minute: a guard against a hang (the
/// defect was an open that never returns), not a timing assertion. If it does hang on
/// `fifo`, opening the FIFO for writing releases the blocked open before the test fails.
fn without_hanging<T: Send + 'static>(
    what: &str,
    fifo: Option<&std::path::Path>,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(v) => v,
        Err(_) => {
            if let Some(p) = fifo {
                let _ = OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(p);
            }
            panic!("{what} did not return: it blocks on the special file");
        }
    }
}

/// Issue 10, defect 1: every way to map a path refuses a FIFO, a Unix socket and a
/// directory at once with `NotMappable` naming the path, and never waits for a writer.
#[test]
fn special_paths_are_refused_at_once_by_every_opener() {
    use mmkit::MappedFile;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    common::mkfifo(&fifo);
    let socket = dir.path().join("socket");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let subdir = dir.path().join("dir");
    std::fs::create_dir(&subdir).unwrap();

    type Opener = fn(&std::path::Path) -> mmkit::Result<()>;
    let openers: [(&str, Opener); 7] = [
        ("map_path", |p| MapOptions::new().map_path(p).map(drop)),
        ("map_path write", |p| {
            MapOptions::new().write().map_path(p).map(drop)
        }),
        ("map_path copy_on_write", |p| {
            MapOptions::new().copy_on_write().map_path(p).map(drop)
        }),
        ("MappedFile::open", |p| MappedFile::open(p).map(drop)),
        ("MappedFile::open_rw", |p| MappedFile::open_rw(p).map(drop)),
        ("MappedFile create+truncate", |p| {
            MappedFile::options()
                .create(true)
                .truncate(true)
                .set_len(page())
                .open(p)
                .map(drop)
        }),
        ("MappedFile copy", |p| {
            MappedFile::options()
                .access(mmkit::file::Access::Copy)
                .open(p)
                .map(drop)
        }),
    ];
    for (path, kind, is_fifo) in [
        (&fifo, "pipe", true),
        (&socket, "socket", false),
        (&subdir, "directory", false),
    ] {
        for (name, open) in openers {
            let p = path.clone();
            let err = without_hanging(name, is_fifo.then_some(path.as_path()), move || {
                open(&p).unwrap_err()
            });
            assert_eq!(err.kind(), ErrorKind::NotMappable, "{name} {kind}: {err}");
            assert_eq!(err.path(), Some(path.as_path()), "{name} {kind}: {err}");
            assert!(err.to_string().contains(kind), "{name} {kind}: {err}");
        }
    }
    // Still a FIFO (create did not replace it), and nothing was written into it.
    let meta = std::fs::symlink_metadata(&fifo).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type()));
}

#[test]
fn truncate_and_set_len_refuse_a_device() {
    let err = mmkit::MappedFile::options()
        .truncate(true)
        .open("/dev/zero")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(err.to_string().contains("device"), "{err}");
}
