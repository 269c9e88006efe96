//! Segment names in the world-writable `/dev/shm`: a symbolic link planted by an
//! unprivileged user is refused by every open (as glibc's `shm_open` does with
//! `O_NOFOLLOW`), never followed to overwrite its target; a planted FIFO does not hang
//! an open; bad names are errors, not panics.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mmkit::shm::segment::{Segment, SegmentOptions};
use mmkit::shm::typed::SharedOptions;
use mmkit::ErrorKind;

use common::{skip, Name};
use mmkit_testkit as common;

/// Plant a symbolic link at `link` pointing at `target` as user nobody (65534), in a
/// forked child (no exec, so it works where nobody may not run programs from PATH).
fn symlink_as_nobody(target: &std::path::Path, link: &std::path::Path) {
    let (target, link) = (target.to_path_buf(), link.to_path_buf());
    // SAFETY: the child drops to user nobody, makes one symlink and exits; it takes no
    // lock another thread could hold and does not unwind.
    let kid = unsafe {
        mmkit::process::fork(move |_| {
            // SAFETY: plain syscalls in the single-threaded child.
            if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                return 2;
            }
            match std::os::unix::fs::symlink(&target, &link) {
                Ok(()) => 0,
                Err(_) => 3,
            }
        })
    }
    .expect("fork");
    let exit = kid.wait().expect("wait");
    assert!(
        matches!(exit, mmkit::process::Exit::Code(0)),
        "planting the link as nobody: {}",
        exit.describe()
    );
}

fn assert_refused_as_link(e: &mmkit::Error, what: &str) {
    assert_eq!(e.errno(), Some(libc::ELOOP), "{what}: {e}");
    let first = e.to_string();
    let first = first.lines().next().unwrap();
    assert!(
        first.contains("symbolic link") && first.contains("mmkit shm rm"),
        "{what}: {e}"
    );
    assert!(e.hint_text().is_some(), "{what}: {e}");
}

#[test]
fn a_link_planted_by_nobody_is_refused_by_every_open_and_its_target_kept() {
    if !rustix::process::geteuid().is_root() {
        skip("needs root to plant the link as user nobody");
        return;
    }
    // A root-owned file the link points at: root's segment code must never write it.
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    let precious = b"root's precious bytes\n".repeat(10);
    std::fs::write(&victim, &precious).unwrap();
    let name = Name::new("link");
    symlink_as_nobody(&victim, &name.path());
    let meta = std::fs::symlink_metadata(name.path()).unwrap();
    assert!(meta.file_type().is_symlink());
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 65534);

    assert_refused_as_link(&Segment::open(&name.0).unwrap_err(), "open");
    assert_refused_as_link(
        &Segment::open_read_only(&format!("/{}", name.0)).unwrap_err(),
        "open_read_only",
    );
    let e = Segment::create(&name.0, 4096).unwrap_err();
    assert_eq!(e.errno(), Some(libc::EEXIST), "create: {e}");
    let e = SegmentOptions::new()
        .open_or_create()
        .create(&name.0, 4096)
        .unwrap_err();
    assert_refused_as_link(&e, "open_or_create");
    let e = SharedOptions::new(1)
        .timeout(Duration::from_secs(30))
        .create_or_open_segment::<AtomicU64>(&name.0, |s| s.with(|v| v.store(7, Ordering::Relaxed)))
        .unwrap_err();
    assert_refused_as_link(&e, "Shared create_or_open_segment");

    assert_eq!(std::fs::read(&victim).unwrap(), precious, "target changed");

    // Removing the name removes the link, not its target.
    Segment::unlink(&name.0).unwrap();
    assert!(std::fs::symlink_metadata(name.path()).is_err());
    assert_eq!(std::fs::read(&victim).unwrap(), precious);
    assert!(!Segment::list().unwrap().contains(&name.0));
}

#[test]
fn a_dangling_link_is_not_created_through() {
    if !rustix::process::geteuid().is_root() {
        skip("needs root to plant the link as user nobody");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("made-by-root");
    let name = Name::new("dangling");
    symlink_as_nobody(&target, &name.path());
    let e = SegmentOptions::new()
        .open_or_create()
        .create(&name.0, 4096)
        .unwrap_err();
    assert_refused_as_link(&e, "open_or_create");
    assert!(!target.exists(), "a file was created through the link");
    let others = Segment::list_others().unwrap();
    assert!(
        others.contains(&(name.0.clone(), "a symbolic link")),
        "{others:?}"
    );
}

#[test]
fn a_planted_fifo_is_refused_without_hanging() {
    let name = Name::new("fifo");
    let made = Command::new("mkfifo").arg(name.path()).status();
    if !made.is_ok_and(|s| s.success()) {
        skip("mkfifo not installed");
        return;
    }
    for e in [
        Segment::open_read_only(&name.0).unwrap_err(),
        Segment::open(&name.0).unwrap_err(),
        SegmentOptions::new()
            .open_or_create()
            .create(&name.0, 4096)
            .unwrap_err(),
    ] {
        assert_eq!(e.kind(), ErrorKind::NotMappable, "{e}");
        assert!(e.to_string().contains("a FIFO"), "{e}");
    }
    assert!(!Segment::list().unwrap().contains(&name.0));
}

#[test]
fn bad_names_are_errors_not_panics() {
    let long = "n".repeat(300);
    for (bad, errno) in [
        ("", libc::EINVAL),
        ("/", libc::EINVAL),
        ("a/b", libc::EINVAL),
        ("a\0b", libc::EINVAL),
        ("..", libc::EINVAL),
        (long.as_str(), libc::ENAMETOOLONG),
    ] {
        let errs = [
            Segment::open(bad).unwrap_err(),
            Segment::open_read_only(bad).unwrap_err(),
            Segment::create(bad, 4096).unwrap_err(),
            SegmentOptions::new()
                .open_or_create()
                .create(bad, 4096)
                .unwrap_err(),
            Segment::unlink(bad).unwrap_err(),
            SharedOptions::new(1)
                .create_or_open_segment::<AtomicU64>(bad, |_| Ok(()))
                .unwrap_err(),
        ];
        for e in errs {
            assert_eq!(e.errno(), Some(errno), "{bad:?}: {e}");
            assert!(e.to_string().contains("bad segment name"), "{bad:?}: {e}");
        }
    }
}
