//! `mmkit cat` and `mmkit find` through the real binary, against `cat` and `grep` on the
//! same files, and with a file truncated while they run (a one-line error, no signal).

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use mmkit::helpers::XorShift;

use crate::common;
use common::{mmkit, run_or_kill};

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run command")
}

/// A text file of `lines` lines, some holding "needle" (some twice, one at the very end).
fn text_file(dir: &Path, name: &str, lines: usize) -> PathBuf {
    let mut text = String::new();
    let mut rng = XorShift::new(12345);
    for i in 0..lines {
        let x = rng.next_u64();
        let word = [
            "alpha",
            "needle",
            "beta needle gamma needle",
            "haystack",
            "",
        ][(x % 5) as usize];
        text.push_str(&format!("{i} {word} {}\n", "x".repeat((x % 90) as usize)));
    }
    text.push_str("last needle");
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn cat_writes_what_cat_writes() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let big = dir.path().join("big");
    std::fs::write(
        &big,
        (0..(9 << 20) + 123)
            .map(|i| (i % 253) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let small = text_file(dir.path(), "small", 100);
    let files = [&small, &empty, &big, &small];
    let ours = run(mmkit().arg("cat").args(files));
    let theirs = run(Command::new("cat").args(files));
    assert!(
        ours.status.success(),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    assert!(ours.stdout == theirs.stdout, "mmkit cat differs from cat");
}

#[test]
fn cat_reports_bad_files_in_one_line_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let good = text_file(dir.path(), "good", 10);
    let missing = dir.path().join("missing");
    let out = run(mmkit().arg("cat").arg(&missing).arg(dir.path()).arg(&good));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        out.stdout,
        std::fs::read(&good).unwrap(),
        "the good file is still written"
    );
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].contains("missing") && lines[0].contains("ENOENT"),
        "{err}"
    );
    assert!(lines[1].contains("directory"), "{err}");
}

#[test]
fn find_agrees_with_grep() {
    let dir = tempfile::tempdir().unwrap();
    let a = text_file(dir.path(), "a.txt", 20_000);
    let b = text_file(dir.path(), "b.txt", 3);
    // Offsets: grep -b -o -F prints OFFSET:MATCH.
    let ours = run(mmkit().args(["find", "needle"]).arg(&a));
    let grep = run(Command::new("grep")
        .args(["-b", "-o", "-F", "needle"])
        .arg(&a));
    let grep_offsets: String = String::from_utf8(grep.stdout)
        .unwrap()
        .lines()
        .map(|l| format!("{}\n", l.split(':').next().unwrap()))
        .collect();
    assert_eq!(String::from_utf8(ours.stdout).unwrap(), grep_offsets);
    // Lines and counts, over two files (both tools prefix the file name).
    for flag in ["-n", "-c"] {
        let ours = run(mmkit().args(["find", flag, "needle"]).args([&a, &b]));
        let grep = run(Command::new("grep")
            .args([flag, "-F", "needle"])
            .args([&a, &b]));
        assert!(ours.status.success());
        assert!(
            ours.stdout == grep.stdout,
            "mmkit find {flag} differs from grep {flag} -F"
        );
    }
}

#[test]
fn find_exit_codes_follow_grep() {
    let dir = tempfile::tempdir().unwrap();
    let a = text_file(dir.path(), "a.txt", 50);
    assert_eq!(
        run(mmkit().args(["find", "needle"]).arg(&a)).status.code(),
        Some(0)
    );
    assert_eq!(
        run(mmkit().args(["find", "no-such-words"]).arg(&a))
            .status
            .code(),
        Some(1)
    );
    let bad = run(mmkit()
        .args(["find", "needle"])
        .arg(dir.path().join("nope"))
        .arg(&a));
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("nope"));
    let empty = run(mmkit().args(["find", ""]).arg(&a));
    assert_eq!(empty.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&empty.stderr).contains("pattern is empty"));
}

/// Start `args` with stdout piped, read `first` bytes, truncate `file`, read the rest.
fn truncate_midway(args: &[&str], file: &Path, first: usize) -> (std::process::ExitStatus, String) {
    let mut child = mmkit()
        .args(args)
        .arg(file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut head = vec![0u8; first];
    stdout.read_exact(&mut head).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .unwrap()
        .set_len(4096)
        .unwrap();
    std::io::copy(&mut stdout, &mut std::io::sink()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status, String::from_utf8(out.stderr).unwrap())
}

#[test]
fn cat_survives_truncation_midway() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big");
    std::fs::write(&path, vec![b'z'; 256 << 20]).unwrap();
    let (status, err) = truncate_midway(&["cat"], &path, 1 << 20);
    assert_eq!(status.signal(), None, "killed by a signal: {err}");
    assert_eq!(status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("big") && err.contains("truncated"), "{err}");
}

#[test]
fn find_survives_truncation_midway() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many");
    // A match every 16 bytes: the offsets fill the pipe long before the end.
    std::fs::write(&path, b"..needle........".repeat(8 << 20)).unwrap();
    let (status, err) = truncate_midway(&["find", "needle"], &path, 64 << 10);
    assert_eq!(status.signal(), None, "killed by a signal: {err}");
    assert_eq!(status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("many") && err.contains("truncated"), "{err}");
}

/// A FIFO, a bound Unix socket and a directory in `dir` (the listener keeps the socket).
fn special_files(dir: &Path) -> ([PathBuf; 3], std::os::unix::net::UnixListener) {
    let fifo = dir.join("fifo");
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo failed");
    let socket = dir.join("socket");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let sub = dir.join("sub");
    std::fs::create_dir(&sub).unwrap();
    ([fifo, socket, sub], listener)
}

/// Issue 10, defect 1: `cat` and `find` on a FIFO (no writer), a socket or a directory
/// fail at once with one line naming the file, go on with the next file, and exit 1 (cat)
/// or 2 (find).
#[test]
fn cat_and_find_refuse_special_files_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let good = text_file(dir.path(), "good", 10);
    let (specials, _listener) = special_files(dir.path());
    for (special, kind) in specials.iter().zip(["pipe", "socket", "directory"]) {
        let out = run_or_kill(mmkit().arg("cat").arg(special).arg(&good));
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "cat {kind}: {err}");
        assert_eq!(out.stdout, std::fs::read(&good).unwrap(), "cat {kind}");
        assert_eq!(err.lines().count(), 1, "cat {kind}: {err}");
        assert!(
            err.contains(&*special.to_string_lossy()) && err.contains(kind),
            "cat {kind}: {err}"
        );

        let out = run_or_kill(mmkit().args(["find", "needle"]).arg(special).arg(&good));
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "find {kind}: {err}");
        assert!(
            String::from_utf8(out.stdout).unwrap().contains("good:"),
            "find {kind}: the good file is still searched"
        );
        assert_eq!(err.lines().count(), 1, "find {kind}: {err}");
        assert!(
            err.contains(&*special.to_string_lossy()) && err.contains(kind),
            "find {kind}: {err}"
        );
    }
}

/// Issue 11: `find` documents exit 2 for an error, and every kind of error keeps it — a
/// missing file, a directory, a FIFO, a bad argument (clap's or the pattern's), and an
/// error that ends the whole run (stdout on a full device) — never 1, which means "no
/// match". `cat` exits 1 on the same failures.
#[test]
fn every_find_error_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let good = text_file(dir.path(), "good", 10);
    let (specials, _listener) = special_files(dir.path());
    let [fifo, _socket, sub] = &specials;
    let missing = dir.path().join("missing");
    for (kind, file) in [
        ("missing file", &missing),
        ("directory", sub),
        ("FIFO", fifo),
    ] {
        let out = run_or_kill(mmkit().args(["find", "needle"]).arg(file));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "find, {kind}: {err}");
        assert!(
            err.contains(&*file.to_string_lossy()),
            "find, {kind}: {err}"
        );
        let out = run_or_kill(mmkit().arg("cat").arg(file));
        assert_eq!(out.status.code(), Some(1), "cat, {kind}");
    }
    let bad_arguments: [&[&str]; 4] = [
        &["find", "needle"],                        // no file
        &["find", "--no-such-flag", "needle", "f"], // unknown flag
        &["find", "-n", "-c", "needle", "f"],       // conflicting flags
        &["find", "", "f"],                         // an empty pattern
    ];
    for args in bad_arguments {
        let args: Vec<_> = args
            .iter()
            .map(|a| {
                if *a == "f" {
                    good.as_os_str()
                } else {
                    a.as_ref()
                }
            })
            .collect();
        let out = run_or_kill(mmkit().args(&args));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "find {args:?}: {err}");
        assert!(!err.is_empty(), "find {args:?} says why");
    }
    // An error that is not one file's: the output cannot be written.
    if let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") {
        let out = mmkit()
            .args(["find", "needle"])
            .arg(&good)
            .stdout(full)
            .stderr(Stdio::piped())
            .output()
            .expect("run mmkit");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "find > /dev/full: {err}");
        assert!(err.contains("No space left"), "find > /dev/full: {err}");
    }
}
