//! `mmkit shm` through the real binary: a create/ls/write/cat/rm round trip, bytes
//! exchanged with Python's `multiprocessing.shared_memory` both ways, and the errors.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output, Stdio};

use crate::common;
use common::{mmkit, Name};

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run command")
}

/// Run `mmkit shm ARGS` with `input` on stdin.
fn shm_with_input(args: &[&str], input: &[u8]) -> Output {
    let mut child = mmkit()
        .arg("shm")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn shm(args: &[&str]) -> Output {
    run(mmkit().arg("shm").args(args).stdin(Stdio::null()))
}

/// Start `mmkit shm cat NAME` with stdout and stderr piped.
fn spawn_cat(name: &str) -> std::process::Child {
    mmkit()
        .args(["shm", "cat", name])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn create_ls_write_cat_rm_round_trip() {
    let n = Name::new("round");
    let out = shm(&["create", &n.0, "--size", "8K", "--mode", "0640"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::metadata(n.path()).unwrap().len(), 8192);

    let out = shm(&["ls", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let entries = list.as_array().unwrap();
    let names: Vec<&str> = entries
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "ls is sorted by name");
    let ours = entries.iter().find(|e| e["name"] == n.0.as_str()).unwrap();
    assert_eq!(ours["size"], 8192);
    // The umask may clear bits of 0640, never add any.
    let mode = u32::from_str_radix(ours["mode"].as_str().unwrap(), 8).unwrap();
    assert_eq!(mode & !0o640, 0, "{ours}");
    assert!(ours["uid"].is_u64() && ours["mtime"].is_i64(), "{ours}");

    let table = shm(&["ls"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains(&n.0));

    let out = shm_with_input(&["write", &n.0, "--offset", "4K"], b"hello, segment");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = shm(&["cat", &n.0, "--offset", "4096", "--len", "14"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"hello, segment");
    let whole = shm(&["cat", &n.0]);
    assert_eq!(whole.stdout, std::fs::read(n.path()).unwrap());
    assert_eq!(whole.stdout.len(), 8192);

    let out = shm(&["rm", &n.0]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!n.path().exists());
}

#[test]
fn write_grows_and_creates_only_when_asked() {
    let n = Name::new("grow");
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();

    let out = shm_with_input(&["write", &n.0], &data);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&n.0), "{}", stderr(&out));
    assert!(!n.path().exists());

    let out = shm_with_input(&["write", &n.0, "--create", "--offset", "100"], &data);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::metadata(n.path()).unwrap().len(), 10_100);

    // Past the end: refused with the sizes named, then accepted with --grow.
    let out = shm_with_input(&["write", &n.0, "--offset", "10000"], &data);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("20000") && err.contains("10100") && err.contains("--grow"),
        "{err}"
    );
    let out = shm_with_input(&["write", &n.0, "--offset", "10000", "--grow"], &data);
    assert!(out.status.success(), "{}", stderr(&out));

    let bytes = std::fs::read(n.path()).unwrap();
    assert_eq!(bytes.len(), 20_000);
    assert_eq!(&bytes[..100], &[0u8; 100][..]);
    assert_eq!(&bytes[100..10_000], &data[..9_900]);
    assert_eq!(&bytes[10_000..], &data[..]);
}

#[test]
fn errors_name_the_segment_and_exit_nonzero() {
    let n = Name::new("errs");
    let missing = Name::new("missing");

    let out = shm(&["cat", &missing.0]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("mmkit: ") && stderr(&out).contains(&missing.0));

    let out = shm(&["create", "a/b", "--size", "4K"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("bad segment name"),
        "{}",
        stderr(&out)
    );

    let out = shm(&["create", &n.0, "--size", "0"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("at least 1 byte"), "{}", stderr(&out));
    assert!(!n.path().exists());

    assert!(shm(&["create", &n.0, "--size", "1K"]).status.success());
    let out = shm(&["create", &n.0, "--size", "1K"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("exists") && err.contains("--exist-ok") && err.contains("shm rm"),
        "{err}"
    );
    let out = shm(&["create", &n.0, "--size", "1K", "--exist-ok"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let out = shm(&["cat", &n.0, "--offset", "1000", "--len", "100"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("1024"), "{}", stderr(&out));

    // rm: the missing name is reported, the existing one is still removed.
    let out = shm(&["rm", &missing.0, &n.0]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains(&missing.0));
    assert!(!n.path().exists());
    let out = shm(&["rm", "-f", &missing.0]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn cat_survives_the_segment_shrinking_midway() {
    let n = Name::new("shrink");
    assert!(shm(&["create", &n.0, "--size", "256M"]).status.success());
    let mut child = spawn_cat(&n.0);
    let mut stdout = child.stdout.take().unwrap();
    let mut head = vec![0u8; 1 << 20];
    stdout.read_exact(&mut head).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(n.path())
        .unwrap()
        .set_len(4096)
        .unwrap();
    std::io::copy(&mut stdout, &mut std::io::sink()).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.signal(), None, "killed by a signal: {err}");
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&n.0) && err.contains("truncated"), "{err}");
}

#[test]
fn cat_into_a_closed_pipe_is_success() {
    let n = Name::new("pipe");
    assert!(shm(&["create", &n.0, "--size", "64M"]).status.success());
    let mut child = spawn_cat(&n.0);
    let mut head = [0u8; 10];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap(); // then closed
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}: {}", out.status, stderr(&out));
    assert_eq!(stderr(&out), "");
}

/// Run a Python script with the segment name as `sys.argv[1]`; its stdout.
///
/// Python before 3.13 registers every segment it opens with its resource_tracker, which
/// unlinks them when the script exits; the scripts unregister (or pass `track=False`).
fn python(script: &str, name: &str) -> Option<Vec<u8>> {
    let prelude = "\
import sys
from multiprocessing import shared_memory, resource_tracker
def attach(**kw):
    try:
        return shared_memory.SharedMemory(track=False, **kw)
    except TypeError:
        shm = shared_memory.SharedMemory(**kw)
        resource_tracker.unregister(shm._name, 'shared_memory')
        return shm
";
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!("{prelude}{script}"))
        .arg(name)
        .output()
        .ok()?;
    assert!(out.status.success(), "python: {}", stderr(&out));
    Some(out.stdout)
}

#[test]
fn python_and_mmkit_see_the_same_bytes() {
    if !common::peer("python3", "python3") {
        return;
    }
    let n = Name::new("py");
    // Python creates and writes; mmkit reads.
    python(
        "shm = attach(name=sys.argv[1], create=True, size=4096)\n\
         shm.buf[10:23] = b'from python!!'\n\
         shm.close()\n",
        &n.0,
    )
    .unwrap();
    let out = shm(&["cat", &n.0, "--offset", "10", "--len", "13"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"from python!!");

    // mmkit writes; Python reads.
    let out = shm_with_input(&["write", &n.0, "--offset", "2K"], b"from mmkit");
    assert!(out.status.success(), "{}", stderr(&out));
    let seen = python(
        "shm = attach(name=sys.argv[1])\n\
         sys.stdout.buffer.write(bytes(shm.buf[2048:2058]))\n\
         shm.close()\n",
        &n.0,
    )
    .unwrap();
    assert_eq!(seen, b"from mmkit");
    assert!(n.path().exists(), "Python's exit must not unlink it");
}

#[test]
fn a_reader_without_write_permission_can_cat_but_not_write() {
    use std::os::unix::process::CommandExt;
    let root = common::is_root();
    if !root {
        common::skip("needs root to run the reader as user nobody");
        return;
    }
    let n = Name::new("readonly");
    let out = shm_with_input(&["write", &n.0, "--create"], b"public bytes");
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::set_permissions(
        n.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let as_nobody = |args: &[&str]| {
        mmkit()
            .arg("shm")
            .args(args)
            .uid(65534)
            .gid(65534)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = as_nobody(&["cat", &n.0]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"public bytes");
    let out = as_nobody(&["write", &n.0]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("EACCES"), "{}", stderr(&out));
}

#[test]
fn a_planted_link_is_refused_listed_apart_and_removable() {
    // Who plants the link does not change what mmkit does with it (O_NOFOLLOW); the
    // library's tests/shm/symlink.rs plants it as user nobody against root.
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"root only").unwrap();
    let n = Name::new("link");
    std::os::unix::fs::symlink(&victim, n.path()).unwrap();

    for (args, input) in [
        (vec!["cat", &n.0], &b""[..]),
        (vec!["write", &n.0], &b"overwrite"[..]),
        (vec!["write", &n.0, "--create"], &b"overwrite"[..]),
        (vec!["create", &n.0, "--size", "4K", "--exist-ok"], &b""[..]),
    ] {
        let out = shm_with_input(&args, input);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains("symbolic link") && err.contains(&format!("mmkit shm rm {}", n.0)),
            "{args:?}: {err}"
        );
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"root only");

    // ls does not list it as a segment (nor stat through it), and says what it is.
    let out = shm(&["ls", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        !list
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == n.0.as_str()),
        "{list}"
    );
    assert!(
        stderr(&out).contains(&format!("{} is a symbolic link", n.path().display())),
        "{}",
        stderr(&out)
    );

    // rm removes the link itself, not its target.
    let out = shm(&["rm", &n.0]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::symlink_metadata(n.path()).is_err());
    assert_eq!(std::fs::read(&victim).unwrap(), b"root only");
}

#[test]
fn bad_names_are_one_line_errors() {
    let long = "n".repeat(300);
    for name in ["", "a/b", "/", "..", long.as_str()] {
        for args in [
            vec!["create", name, "--size", "4K"],
            vec!["cat", name],
            vec!["rm", name],
        ] {
            let out = shm(&args);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
            assert!(err.contains("bad segment name"), "{args:?}: {err}");
        }
    }
}
