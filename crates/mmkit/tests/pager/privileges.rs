//! The pager where userfaultfd is refused: this test binary runs itself again as user
//! `nobody` (uid/gid 65534) with `vm.unprivileged_userfaultfd = 0`, where building a
//! pager must fail with `EPERM` and a hint naming the ways to allow it, and where
//! `user_mode_only(true)` must still work (with `EFAULT` for the kernel's own accesses).

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Arc;

use mmkit::pager::{FnSource, PagerOptions};

use mmkit_testkit as common;

const CHILD_ENV: &str = "MMKIT_PAGER_UNPRIVILEGED_CHILD";
const CHILD_TEST: &str = "unprivileged_child";

#[test]
fn refused_userfaultfd_names_the_ways_to_allow_it() {
    if !rustix::process::geteuid().is_root() {
        common::skip("needs root to drop to nobody");
        return;
    }
    let sysctl =
        std::fs::read_to_string("/proc/sys/vm/unprivileged_userfaultfd").unwrap_or_default();
    if sysctl.trim() != "0" {
        common::skip(&format!(
            "vm.unprivileged_userfaultfd is {:?}, not 0",
            sysctl.trim()
        ));
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "--exact",
            mmkit_testkit::serial::test_name(module_path!(), CHILD_TEST).as_str(),
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if text.contains("Permission denied") && !text.contains("refused as expected") {
        common::skip(&format!("nobody cannot run the test binary here: {text}"));
        return;
    }
    assert!(out.status.success(), "child failed:\n{text}");
    assert!(text.contains("refused as expected"), "{text}");
    assert!(text.contains("user-mode only works"), "{text}");
    println!("child as nobody:\n{text}");
}

/// Runs only in the child started above (as `nobody`).
#[test]
#[ignore = "run by refused_userfaultfd_names_the_ways_to_allow_it as user nobody"]
fn unprivileged_child() {
    assert!(
        std::env::var_os(CHILD_ENV).is_some(),
        "only meant to run as the unprivileged child"
    );
    assert!(!rustix::process::geteuid().is_root());
    let src = || {
        Arc::new(FnSource::new(64 * 4096, |off, buf| {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = ((off + i as u64) % 253) as u8;
            }
        }))
    };
    let err = PagerOptions::new().build(src()).unwrap_err();
    assert_eq!(err.errno(), Some(libc::EPERM), "{err}");
    let text = err.to_string();
    for way in [
        "CAP_SYS_PTRACE",
        "sysctl vm.unprivileged_userfaultfd=1",
        "/dev/userfaultfd",
    ] {
        assert!(text.contains(way), "{way:?} missing from: {text}");
    }
    println!("refused as expected: {text}");

    let pager = PagerOptions::new()
        .user_mode_only(true)
        .build(src())
        .expect("UFFD_USER_MODE_ONLY is open to every user");
    assert_eq!(pager.uffd_kind(), Some("userfaultfd (user-mode only)"));
    // The kernel copying from an unfilled page gets EFAULT instead of waiting.
    let (mut tx, _rx) = std::os::unix::net::UnixStream::pair().unwrap();
    let e = tx.write(&pager.as_slice()[8 * 4096..9 * 4096]).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EFAULT), "{e}");
    // Touched from user mode, the same page is filled and then the kernel can copy it.
    assert_eq!(pager.as_slice()[8 * 4096 + 5], ((8 * 4096 + 5) % 253) as u8);
    tx.write_all(&pager.as_slice()[8 * 4096..9 * 4096]).unwrap();
    let mut buf = vec![0u8; 4096];
    pager.read_at(20 * 4096, &mut buf).unwrap();
    assert_eq!(buf[1], ((20 * 4096 + 1) % 253) as u8);
    println!("user-mode only works");
}
