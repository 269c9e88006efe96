//! Segments: named POSIX shared memory (round trip, errors, mode, Python both ways) and
//! sealed memfds passed over a socket to a real child process.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::Command;

use mmkit::process::{fork, Exit};

use common::{hex, Name};
use mmkit::shm::{recv_fd, send_fd, Memfd, ReceivedSegment, Seals, Segment, SegmentOptions};
use mmkit_testkit as common;

#[test]
fn create_open_list_unlink_round_trip() {
    let name = Name::new("rt");
    let seg = Segment::create(&name.0, 8192).expect("create");
    assert!(seg.created());
    assert_eq!(seg.size().unwrap(), 8192);
    assert_eq!(seg.name(), name.0);
    assert!(Segment::list().unwrap().contains(&name.0));

    let mut map = seg.map().expect("map");
    map.write_at(100, b"round trip").unwrap();
    let other = Segment::open(&format!("/{}", name.0)).expect("open with slash");
    assert!(!other.created());
    assert_eq!(other.size().unwrap(), 8192);
    let mut buf = [0u8; 10];
    other.map().unwrap().read_at(100, &mut buf).unwrap();
    assert_eq!(&buf, b"round trip");

    Segment::unlink(&name.0).expect("unlink");
    assert!(!Segment::list().unwrap().contains(&name.0));
    // The open descriptor and mapping still work after unlink.
    map.write_at(0, b"x").unwrap();
    let e = Segment::unlink(&name.0).unwrap_err();
    assert_eq!(e.errno(), Some(libc::ENOENT), "{e}");
}

#[test]
fn create_twice_is_eexist_with_hint() {
    let name = Name::new("excl");
    let _seg = Segment::create(&name.0, 4096).unwrap();
    let e = Segment::create(&name.0, 4096).unwrap_err();
    assert_eq!(e.errno(), Some(libc::EEXIST), "{e}");
    let text = e.to_string();
    assert!(text.contains("EEXIST") && text.contains(&name.0), "{text}");
    assert!(e.hint_text().unwrap().contains("unlink"), "{text}");

    // open_or_create opens it instead, keeping its size.
    let again = SegmentOptions::new()
        .open_or_create()
        .create(&name.0, 1)
        .unwrap();
    assert!(!again.created());
    assert_eq!(again.size().unwrap(), 4096);
}

#[test]
fn open_missing_is_enoent_and_bad_names_are_refused() {
    let name = Name::new("missing");
    let e = Segment::open(&name.0).unwrap_err();
    assert_eq!(e.errno(), Some(libc::ENOENT), "{e}");
    assert!(e.hint_text().is_some());
    for bad in ["", "a/b", "/"] {
        let e = Segment::open(bad).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EINVAL), "{bad:?}: {e}");
    }
    let e = Segment::create(&"y".repeat(256), 4096).unwrap_err();
    assert_eq!(e.errno(), Some(libc::ENAMETOOLONG), "{e}");
}

#[test]
fn mode_is_0600_by_default_and_settable() {
    let name = Name::new("mode");
    let _seg = Segment::create(&name.0, 4096).unwrap();
    let meta = std::fs::metadata(format!("/dev/shm/{}", name.0)).unwrap();
    assert!(meta.is_file());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    let name2 = Name::new("mode2");
    let _seg2 = SegmentOptions::new()
        .mode(0o640)
        .create(&name2.0, 4096)
        .unwrap();
    let meta = std::fs::metadata(format!("/dev/shm/{}", name2.0)).unwrap();
    // The umask may clear bits but never adds any.
    assert_eq!(meta.permissions().mode() & 0o777 & !0o640, 0);
    assert_eq!(meta.permissions().mode() & 0o600, 0o600);
}

fn python() -> Option<&'static str> {
    if !common::peer("python3", "python3") {
        return None;
    }
    let ok = Command::new("python3")
        .arg("-c")
        .arg("import multiprocessing.shared_memory")
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        Some("python3")
    } else {
        common::skip("python3 has no multiprocessing.shared_memory (Python 3.8 or later has it)");
        None
    }
}

fn run_python(py: &str, script: &str) -> String {
    let out = Command::new(py).arg("-c").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn python_creates_mmkit_reads() {
    let Some(py) = python() else { return };
    let name = Name::new("py2mm");
    // Unregister from the resource tracker so Python does not unlink it at exit.
    let script = format!(
        "from multiprocessing import shared_memory, resource_tracker\n\
         s = shared_memory.SharedMemory(name={:?}, create=True, size=4096)\n\
         s.buf[:11] = b'from python'\n\
         s.buf[4095] = 0x5a\n\
         resource_tracker.unregister(s._name, 'shared_memory')\n\
         s.close()\n",
        name.0
    );
    run_python(py, &script);
    let seg = Segment::open(&name.0).expect("open python's segment");
    assert!(seg.size().unwrap() >= 4096);
    let map = seg.map().unwrap();
    let mut buf = [0u8; 11];
    map.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"from python");
    let mut last = [0u8; 1];
    map.read_at(4095, &mut last).unwrap();
    assert_eq!(last[0], 0x5a);
    Segment::unlink(&name.0).unwrap();
}

#[test]
fn mmkit_creates_python_reads() {
    let Some(py) = python() else { return };
    let name = Name::new("mm2py");
    let seg = Segment::create(&format!("/{}", name.0), 4096).unwrap();
    seg.map().unwrap().write_at(0, b"from mmkit").unwrap();
    let script = format!(
        "from multiprocessing import shared_memory, resource_tracker\n\
         s = shared_memory.SharedMemory(name={:?})\n\
         resource_tracker.unregister(s._name, 'shared_memory')\n\
         print(bytes(s.buf[:10]).hex(), s.size)\n\
         s.close()\n",
        name.0
    );
    let out = run_python(py, &script);
    let want = format!("{} 4096", hex(b"from mmkit"));
    assert_eq!(out.trim(), want);
    // Python did not remove it; we do.
    Segment::unlink(&name.0).unwrap();
}

const DATA: &[u8] = b"sealed data for the child";

#[test]
fn sealed_memfd_crosses_to_a_child_process() {
    let sealed = Memfd::new("cross")
        .size(8192)
        .seal_write()
        .create(DATA)
        .unwrap();
    assert!(sealed
        .seals()
        .contains(Seals::SHRINK | Seals::GROW | Seals::WRITE));
    let (parent, child) = UnixStream::pair().unwrap();
    // SAFETY: the child receives a descriptor, maps it and compares bytes; it takes no
    // lock another thread could hold (the test harness threads are idle in the child)
    // and does not unwind (every failure is an exit code).
    let kid = unsafe {
        fork(move |_| {
            let Ok(fd) = recv_fd(&child) else { return 2 };
            let Ok(seg) = ReceivedSegment::from_fd(fd)
                .verify(Seals::SHRINK | Seals::GROW | Seals::WRITE, 8192)
            else {
                return 3;
            };
            let Ok(map) = seg.map() else { return 4 };
            let Ok(bytes) = map.sealed_slice() else {
                return 5;
            };
            if &bytes[..DATA.len()] != DATA || bytes[DATA.len()..].iter().any(|&b| b != 0) {
                return 6;
            }
            0
        })
    }
    .expect("fork");
    sealed.send(&parent).expect("send");
    assert_eq!(kid.wait().unwrap(), Exit::Code(0));
}

#[test]
fn unsealed_memfd_fails_verify_naming_missing_seals() {
    let fd = rustix::fs::memfd_create("plain", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    rustix::fs::ftruncate(&fd, 4096).unwrap();
    let (a, b) = UnixStream::pair().unwrap();
    send_fd(&a, std::os::fd::AsFd::as_fd(&fd)).unwrap();
    let got = ReceivedSegment::recv(&b).unwrap();
    let e = got.verify(Seals::SHRINK | Seals::GROW, 4096).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("F_SEAL_SHRINK") && text.contains("F_SEAL_GROW"),
        "{text}"
    );

    // Sealed for size but not for writes: only F_SEAL_WRITE is named as missing.
    let s = Memfd::new("wrong-size").create(&[1u8; 100]).unwrap();
    let e = ReceivedSegment::from_fd(s.into_fd())
        .verify(Seals::SHRINK | Seals::WRITE, 100)
        .unwrap_err();
    assert!(
        e.to_string().contains("lacks the seals F_SEAL_WRITE "),
        "{e}"
    );

    // The size is checked too.
    let s = Memfd::new("size").create(&[1u8; 100]).unwrap();
    let e = ReceivedSegment::from_fd(s.into_fd())
        .verify(Seals::SHRINK | Seals::GROW, 200)
        .unwrap_err();
    assert!(e.to_string().contains("expected 200"), "{e}");
}

#[test]
fn sealed_memfd_cannot_shrink_grow_or_be_written() {
    let s = Memfd::new("frozen")
        .seal_future_write()
        .create(b"abc")
        .unwrap();
    let file = std::fs::File::from(s.into_fd());
    for len in [1, 4096] {
        let e = file.set_len(len).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPERM), "set_len({len}): {e}");
    }
    use std::os::unix::fs::FileExt;
    let e = file.write_at(b"x", 0).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPERM));
    // FUTURE_WRITE: the received side maps it read-only and reads the contents.
    let seg = ReceivedSegment::from_fd(file.into())
        .verify(Seals::SHRINK | Seals::FUTURE_WRITE, 3)
        .unwrap();
    let mut buf = [0u8; 3];
    seg.map().unwrap().read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"abc");
}

#[test]
fn recv_from_closed_peer_is_an_error() {
    let (a, b) = UnixStream::pair().unwrap();
    drop(a);
    let e = recv_fd(&b).unwrap_err();
    assert!(e.to_string().contains("closed"), "{e}");
}

#[test]
fn open_forbidden_is_eacces_with_hint() {
    if rustix::process::geteuid().as_raw() != 0 {
        common::skip("needs root to switch to another user");
        return;
    }
    let name = Name::new("acces");
    let _seg = Segment::create(&name.0, 4096).unwrap(); // mode 0600, owned by root
    let seg_name = name.0.clone();
    // SAFETY: the child drops to user `nobody` (65534) and tries to open the segment; it
    // takes no lock another thread could hold and does not unwind.
    let kid = unsafe {
        fork(move |_| {
            // SAFETY: plain syscalls in the single-threaded child.
            if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                return 2;
            }
            match Segment::open(&seg_name) {
                Ok(_) => 3,
                Err(e) if e.errno() == Some(libc::EACCES) && e.hint_text().is_some() => 0,
                Err(_) => 4,
            }
        })
    }
    .expect("fork");
    assert_eq!(kid.wait().unwrap(), Exit::Code(0));
}
