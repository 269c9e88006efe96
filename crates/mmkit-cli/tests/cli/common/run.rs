//! Running `mmkit` with a stdin, its output drained as it comes (so a big one does not
//! fill the pipe), under the hang guard; and reading what it printed.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::{mmkit, wait_or_kill};

/// Run `mmkit ARGS` with `stdin` fed to it; a run past 60 s is killed and fails the test.
pub(crate) fn run_with<S: AsRef<OsStr>>(args: &[S], stdin: &[u8]) -> Output {
    let mut cmd = mmkit();
    cmd.args(args);
    run_command(cmd, stdin)
}

/// Run `cmd` (an `mmkit` command with its arguments and environment) with `stdin` fed to
/// it and its output drained as it comes; a run past 60 s is killed and fails the test.
pub(crate) fn run_command(mut cmd: Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mmkit");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let drain = |mut from: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = from.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let status = wait_or_kill(&mut child, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("{cmd:?} hung and was killed"));
    feeder.join().unwrap();
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Run `mmkit ARGS` with an empty stdin (see [`run_with`]).
pub(crate) fn run<S: AsRef<OsStr>>(args: &[S]) -> Output {
    run_with(args, b"")
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The run exited with `code` (its output in the failure message otherwise).
#[track_caller]
/// The command succeeded and printed exactly `want` (`what` names it if not).
pub(crate) fn assert_prints(o: &Output, want: &[u8], what: &str) {
    assert_code(o, 0);
    assert!(o.stdout == want, "{what} differs");
}

pub(crate) fn assert_code(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
}

/// A path as an argument.
pub(crate) fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// What a refused command must give: exit 1, nothing on stdout, and one line naming
/// `name` (`mmkit: …`) that contains `want`, a `hint:` line at most after it; never a
/// panic.
#[track_caller]
pub(crate) fn assert_refused(out: &Output, name: &str, want: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty(), "{}", stdout(out));
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines
            .first()
            .is_some_and(|l| l.starts_with("mmkit: ") && l.contains(name)),
        "wanted one line naming {name}: {err}"
    );
    assert!(err.contains(want), "wanted {want:?}: {err}");
    match lines.len() {
        1 => {}
        2 => assert!(lines[1].trim_start().starts_with("hint:"), "{err}"),
        _ => panic!("more than two lines: {err}"),
    }
}

/// `plain` compressed as seekable zstd (level 3) in frames of `frame` bytes.
pub(crate) fn seekable_zstd(plain: &[u8], frame: usize) -> Vec<u8> {
    let mut zst = Vec::new();
    mmkit::pager::compress_seekable(&mut &plain[..], &mut zst, frame, 3).expect("compress");
    zst
}
