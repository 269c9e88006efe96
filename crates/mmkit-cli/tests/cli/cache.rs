//! `mmkit cache` through the real binary against `vmtouch` on the same files (on disk,
//! not tmpfs): evict/touch/partial states must read the same from both tools; the lock
//! daemon holds `VmLck` until SIGTERM; bad paths and ranges give clear one-line errors.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common;
use common::{mmkit, peer, resident_pages, run_or_kill};

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir")
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run command")
}

fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{:?}: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn write(path: &Path, len: usize) -> PathBuf {
    let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
    std::fs::write(path, data).unwrap();
    // On disk, so eviction is not held up by dirty pages (vmtouch -e does not sync).
    std::fs::File::open(path).unwrap().sync_all().unwrap();
    path.to_path_buf()
}

fn ours(path: &Path) -> (u64, u64) {
    resident_pages(&ok(mmkit().arg("cache").arg(path)))
}

fn vmtouch(args: &[&str], path: &Path) -> String {
    ok(Command::new("vmtouch").args(args).arg(path))
}

/// Both tools once read-ahead has finished (the same counts twice, 50 ms apart).
fn both_settled(path: &Path) -> ((u64, u64), (u64, u64)) {
    let mut last = ours(path);
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(50));
        let now = ours(path);
        if now == last {
            return (now, resident_pages(&vmtouch(&[], path)));
        }
        last = now;
    }
    panic!("residency did not settle");
}

#[test]
fn summary_agrees_with_vmtouch_after_evict_touch_and_partial() {
    if !peer("vmtouch", "vmtouch") {
        return;
    }
    let dir = tempdir();
    let big = write(&dir.path().join("big"), 8 << 20);
    let pages = (8 << 20) / 4096u64;

    // vmtouch evicts, we see nothing resident.
    vmtouch(&["-e"], &big);
    assert_eq!(ours(&big), (0, pages));
    assert_eq!(resident_pages(&vmtouch(&[], &big)), (0, pages));

    // We touch, vmtouch sees everything resident.
    let out = ok(mmkit().args(["cache", "--touch"]).arg(&big));
    assert!(out.contains("Touched Pages: 2048 (8M)"), "{out}");
    assert_eq!(resident_pages(&out), (pages, pages));
    let v = vmtouch(&[], &big);
    assert_eq!(resident_pages(&v), (pages, pages));
    assert!(v.contains("100%"), "{v}");

    // We evict, vmtouch sees nothing.
    let out = ok(mmkit().args(["cache", "--evict"]).arg(&big));
    assert_eq!(resident_pages(&out), (0, pages));
    assert_eq!(resident_pages(&vmtouch(&[], &big)), (0, pages));

    // Partial: we touch a range; the range is all resident; the whole file agrees.
    let out = ok(mmkit()
        .args(["cache", "--touch", "--range", "1M-2M"])
        .arg(&big));
    assert_eq!(resident_pages(&out), (256, 256));
    // Read-ahead may load more than the range (up to the whole file): compare tools.
    let (a, b) = both_settled(&big);
    assert!(a.0 >= 256, "{a:?}");
    assert_eq!(a, b, "partial: mmkit vs vmtouch");

    // vmtouch touches a range; we agree.
    vmtouch(&["-e"], &big);
    vmtouch(&["-t", "-p", "4M-5M"], &big);
    let (a, b) = both_settled(&big);
    assert!(a.0 >= 256, "{a:?}");
    assert_eq!(a, b, "vmtouch partial: mmkit vs vmtouch");
    let r = resident_pages(&ok(mmkit().args(["cache", "-p", "4M-5M"]).arg(&big)));
    assert_eq!(r, (256, 256));
}

#[test]
fn tree_summary_verbose_bars_and_json() {
    let dir = tempdir();
    let root = dir.path().join("tree");
    std::fs::create_dir_all(root.join("a/b")).unwrap();
    let f1 = write(&root.join("one"), 40 * 4096);
    write(&root.join("a/two"), 3);
    write(&root.join("a/b/three"), 0);
    ok(Command::new("mkfifo").arg(root.join("a/fifo")));
    ok(mmkit().args(["cache", "--touch"]).arg(&root));
    ok(mmkit()
        .args(["cache", "--evict", "--range", "80K-"])
        .arg(&f1));

    let out = ok(mmkit().args(["cache", "-v"]).arg(&root));
    // Eviction works on whole folios: a large folio straddling 80K stays, so up to
    // 21 + 19 pages may remain; every tool must count the same.
    let (res, all) = resident_pages(&out);
    assert!(all == 41 && (21..41).contains(&res), "{out}");
    for field in ["Files: 3", "Directories: 3"] {
        assert!(out.contains(field), "{out}");
    }
    if peer("vmtouch", "vmtouch") {
        let v = vmtouch(&[], &root);
        assert_eq!(resident_pages(&out), resident_pages(&v), "{out}\n{v}");
        for field in ["Files: 3", "Directories: 3"] {
            assert!(v.contains(field), "{v}");
        }
    }
    if peer("fincore", "util-linux") {
        let fincore = ok(Command::new("fincore")
            .args(["--noheadings", "--raw", "-o", "PAGES"])
            .arg(&f1));
        assert_eq!(
            fincore.trim().parse::<u64>().unwrap(),
            res - 1,
            "fincore of one"
        );
    }
    let bar = out
        .lines()
        .find(|l| l.ends_with("/one"))
        .unwrap_or_else(|| panic!("{out}"));
    // 40 pages over 40 columns: the first 20 resident, then some, then evicted.
    let k = (res - 1) as usize;
    assert!(
        bar.starts_with(&format!("[{}{}]", "#".repeat(k), ".".repeat(40 - k))),
        "{bar}"
    );
    assert!(bar.contains(&format!("{k}/40")), "{bar}");

    let json: serde_json::Value =
        serde_json::from_str(&ok(mmkit().args(["cache", "--json"]).arg(&root))).unwrap();
    assert_eq!(json["summary"]["files"], 3);
    assert_eq!(json["summary"]["resident"], res);
    assert_eq!(json["summary"]["pages"], 41);
    assert_eq!(json["files"].as_array().unwrap().len(), 3);
    assert_eq!(json["errors"].as_array().unwrap().len(), 0);
}

#[test]
fn missing_paths_are_reported_in_one_line_after_the_others() {
    let dir = tempdir();
    let good = write(&dir.path().join("good"), 4096 * 3);
    let missing = dir.path().join("missing");
    let out = run(mmkit().arg("cache").arg(&missing).arg(&good));
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("Files: 1"),
        "the good file is measured: {stdout}"
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("mmkit: cache: {}: ", missing.display())),
        "{err}"
    );
    assert!(err.contains("No such file"), "{err}");

    let out = run(mmkit().args(["cache", "--json"]).arg(&missing));
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["errors"][0]["errno"], 2);
}

#[test]
fn bad_ranges_are_rejected_clearly() {
    let dir = tempdir();
    let good = write(&dir.path().join("good"), 100);
    for (range, says) in [
        ("10-5", "must be after"),
        ("5", "expected A-B"),
        ("x-9", "not a number"),
    ] {
        let out = run(mmkit().args(["cache", "--range", range]).arg(&good));
        assert_eq!(out.status.code(), Some(2), "{range}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(says), "{range}: {err}");
        assert!(out.stdout.is_empty());
    }
}

fn vmlck_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0)
}

#[test]
fn lock_daemon_holds_until_sigterm() {
    let dir = tempdir();
    let file = write(&dir.path().join("hot"), 4 << 20);
    ok(mmkit().args(["cache", "--evict"]).arg(&file));

    // Without --daemon: lock, report, exit.
    let out = ok(mmkit().args(["cache", "--lock"]).arg(&file));
    assert!(out.contains("Locked Pages: 1024 (4M)"), "{out}");
    assert_eq!(resident_pages(&out), (1024, 1024));

    let mut child = mmkit()
        .args(["cache", "--lock", "--daemon"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert_eq!(
        line.trim(),
        "locked 1024 pages of 1 files; holding until signalled"
    );
    let pid = child.id();
    assert!(vmlck_kb(pid) >= 4096, "VmLck {} kB", vmlck_kb(pid));
    std::thread::sleep(Duration::from_millis(100));
    assert!(child.try_wait().unwrap().is_none(), "still holding");
    ok(Command::new("kill").args(["-TERM", &pid.to_string()]));
    let status = common::wait_or_kill(&mut child, Duration::from_secs(10)).expect("did not exit");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn daemon_needs_lock_and_actions_exclude_each_other() {
    let dir = tempdir();
    let f = write(&dir.path().join("f"), 10);
    assert_eq!(
        run(mmkit().args(["cache", "--daemon"]).arg(&f))
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        run(mmkit().args(["cache", "--touch", "--evict"]).arg(&f))
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn lock_past_rlimit_memlock_names_the_limit() {
    let dir = tempdir();
    let file = write(&dir.path().join("f"), 4 << 20);
    // A 64 KiB limit and no CAP_IPC_LOCK (root would bypass the limit with it).
    let out = run(Command::new("prlimit")
        .arg("--memlock=65536")
        .args([
            "setpriv",
            "--bounding-set",
            "-ipc_lock",
            "--inh-caps",
            "-ipc_lock",
        ])
        .arg(env!("CARGO_BIN_EXE_mmkit"))
        .args(["cache", "--lock", "--daemon"])
        .arg(&file));
    let err = String::from_utf8(out.stderr).unwrap();
    if err.contains("setpriv:") || err.contains("prlimit:") {
        common::skip(&format!("cannot drop CAP_IPC_LOCK here: {err}"));
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("mmkit: cache: "), "{err}");
    assert!(err.contains("RLIMIT_MEMLOCK is 65536 bytes"), "{err}");
    assert!(err.contains("nothing was locked"), "{err}");
}

/// Issue 10, defect 6: nothing measured means no summary (no "0/0 100%"), one line per
/// bad path, and a non-zero exit; with a good path too, the good one is reported.
#[test]
fn nothing_measured_prints_no_summary() {
    let dir = tempdir();
    let good = write(&dir.path().join("good"), 4096 * 2);
    let missing = dir.path().join("missing");
    let out = run_or_kill(mmkit().arg("cache").arg(&missing));
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.is_empty(), "a summary of nothing: {stdout}");
    assert_eq!(String::from_utf8(out.stderr).unwrap().lines().count(), 1);

    let out = run_or_kill(mmkit().arg("cache").arg(&good).arg(&missing));
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("Files: 1"), "{stdout}");
    assert_eq!(resident_pages(&stdout).1, 2, "{stdout}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&*missing.to_string_lossy()), "{err}");

    // An empty directory is measured (0 files): a summary, but no percentage of 0 pages.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = run_or_kill(mmkit().arg("cache").arg(&empty));
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(resident_pages(&stdout), (0, 0), "{stdout}");
    assert!(!stdout.contains('%'), "a percentage of no pages: {stdout}");
}

/// Issue 10, defect 1 for `cache`: a FIFO (no writer), a socket or a device named on the
/// command line is an error at once (its line, and a hint), never a hang; in a tree they
/// are skipped.
#[test]
fn special_files_named_as_roots_are_errors_at_once() {
    let dir = tempdir();
    let good = write(&dir.path().join("good"), 4096);
    let fifo = dir.path().join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let socket = dir.path().join("socket");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    for (special, kind) in [
        (fifo.as_path(), "pipe"),
        (socket.as_path(), "socket"),
        (Path::new("/dev/null"), "device"),
    ] {
        let out = run_or_kill(mmkit().arg("cache").arg(special).arg(&good));
        assert_eq!(out.status.code(), Some(1), "{kind}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(stdout.contains("Files: 1"), "{kind}: {stdout}");
        // The error's line names the path and what it is; a hint line may follow.
        let err = String::from_utf8(out.stderr).unwrap();
        let first = err.lines().next().unwrap_or_default();
        assert!(err.lines().count() <= 2, "{kind}: {err}");
        assert!(
            first.contains(&*special.to_string_lossy()) && first.contains(kind),
            "{kind}: {err}"
        );
    }
    // The directory holding them: the FIFO and the socket are skipped, not opened.
    let out = run_or_kill(mmkit().arg("cache").arg(dir.path()));
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8(out.stdout).unwrap().contains("Files: 1"));
}

/// Hostile `--range` values: one line of error (exit 2), or for `-B` a valid range;
/// never a panic. A range past the end of a named file is an error for that file.
#[test]
fn hostile_ranges_give_one_line_never_a_panic() {
    let dir = tempdir();
    let good = write(&dir.path().join("good"), 100);
    for (range, says) in [
        ("0", "expected A-B"),
        ("0-0", "must be after"),
        ("9-3", "must be after"),
        ("99999999999999999999-", "too large"),
        ("0-99999999999999999999", "too large"),
        ("16777216T-", "too large"),
        ("-1-5", "not a number"),
        ("--5", "not a number"),
        ("", "expected A-B"),
    ] {
        let out = run_or_kill(mmkit().args(["cache", "--range", range]).arg(&good));
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{range:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{range:?}: {err}");
        assert!(err.contains(says), "{range:?}: {err}");
        assert!(!err.contains("panicked"), "{range:?}: {err}");
        assert!(out.stdout.is_empty(), "{range:?}");
    }
    // `-B` is a range from 0 (vmtouch's form), also written as a separate argument.
    let out = run_or_kill(mmkit().args(["cache", "--range", "-50"]).arg(&good));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(resident_pages(&String::from_utf8(out.stdout).unwrap()).1, 1);
    // Past the end of the file: an error naming it, no summary, exit 1.
    let out = run_or_kill(mmkit().args(["cache", "--range", "1G-2G"]).arg(&good));
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.lines().count() <= 2, "{err}");
    assert!(
        err.lines()
            .next()
            .unwrap_or_default()
            .contains("past the end"),
        "{err}"
    );
}
