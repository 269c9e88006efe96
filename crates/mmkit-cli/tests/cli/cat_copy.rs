//! `mmkit cat` into a pipe, a socket, a file and a file opened for appending: the kernel
//! moves the bytes (`--verbose` says how), and what arrives is the files, byte for byte.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::common;
use common::mmkit;

/// Two files of odd sizes, and what `cat` of both gives.
fn files(dir: &Path) -> ([PathBuf; 2], Vec<u8>) {
    let a: Vec<u8> = (0..(3 << 20) + 17).map(|i| (i % 251) as u8).collect();
    let b: Vec<u8> = (0..4097).map(|i| (i % 13) as u8 + b'a').collect();
    let (pa, pb) = (dir.join("a"), dir.join("b"));
    std::fs::write(&pa, &a).unwrap();
    std::fs::write(&pb, &b).unwrap();
    ([pa, pb], [a, b].concat())
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn cat_into_a_pipe_uses_sendfile() {
    let dir = tempfile::tempdir().unwrap();
    let (paths, want) = files(dir.path());
    let out = mmkit()
        .args(["cat", "--verbose"])
        .args(&paths)
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert!(out.stdout == want, "cat through a pipe differs");
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(err.lines().all(|l| l.contains("by sendfile")), "{err}");
}

#[test]
fn cat_into_a_socket() {
    let dir = tempfile::tempdir().unwrap();
    let (paths, want) = files(dir.path());
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    let child = mmkit()
        .args(["cat", "--verbose"])
        .args(&paths)
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut got = Vec::new();
    ours.read_to_end(&mut got).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(got == want, "cat into a socket differs");
    assert!(
        stderr_of(&out).contains("by sendfile"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn cat_into_a_file_and_appending() {
    let dir = tempfile::tempdir().unwrap();
    let (paths, want) = files(dir.path());
    let sink = dir.path().join("out");
    let out = mmkit()
        .args(["cat", "--verbose"])
        .args(&paths)
        .stdout(std::fs::File::create(&sink).unwrap())
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert!(std::fs::read(&sink).unwrap() == want, "cat > file differs");
    // copy_file_range, unless this file system refuses it (then sendfile).
    assert!(
        err.lines()
            .all(|l| l.contains("by copy_file_range") || l.contains("copy_file_range refused")),
        "{err}"
    );
    // `>>`: only write(2) appends; what was there stays.
    let appending = std::fs::OpenOptions::new()
        .append(true)
        .open(&sink)
        .unwrap();
    let out = mmkit()
        .args(["cat", "--verbose"])
        .args(&paths)
        .stdout(appending)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(std::fs::read(&sink).unwrap() == [&want[..], &want[..]].concat());
    assert!(
        stderr_of(&out).contains("by mmap+write"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn cat_to_dev_null_writes_from_the_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let (paths, _) = files(dir.path());
    let out = mmkit()
        .args(["cat", "--verbose"])
        .args(&paths)
        .stdout(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/null")
                .unwrap(),
        )
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.lines().all(|l| l.contains("write from the mapping")),
        "{err}"
    );
}

/// A `/proc` file reports size 0: it is copied to its end, as `cat` does.
#[test]
fn cat_of_a_proc_file() {
    let out = mmkit().args(["cat", "/proc/version"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(out.stdout, std::fs::read("/proc/version").unwrap());
}
