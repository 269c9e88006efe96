//! Shared by the CLI tests.
#![allow(dead_code)]

use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

#[allow(unused_imports)] // Not every test module skips.
pub(crate) use mmkit_testkit::{is_root, peer, resident_pages, skip};

mod run;
#[allow(unused_imports)] // Only the log and kv tests run mmkit with a stdin this way.
pub(crate) use run::{
    assert_code, assert_prints, assert_refused, p, run, run_command, run_with, seekable_zstd,
    stderr, stdout,
};

#[allow(unused_imports)] // Only the log and kv tests damage files.
pub(crate) use mmkit_testkit::flip;
#[allow(unused_imports)] // Only the remote tests hang.
pub(crate) use mmkit_testkit::hang::HangServer;
#[allow(unused_imports)] // Only the remote tests go through the faulty proxy.
pub(crate) use mmkit_testkit::proxy::{Fault, FaultyProxy};
#[allow(unused_imports)] // Only the remote tests serve S3.
pub(crate) use mmkit_testkit::s3::{
    fill_pattern, s3_client, s3_env, Counts, S3Options, S3Server, ACCESS_KEY, REGION, SECRET_KEY,
};
#[allow(unused_imports)] // Only the shm tests name segments.
pub(crate) use mmkit_testkit::Name;

/// Whether this process may use userfaultfd (CI runs as root, where it must work).
/// `mmkit page stats --json --pattern random --reads READS TARGET`: random reads of a
/// file or an object, reported as JSON.
pub(crate) fn random_stats<'a>(reads: &'a str, target: &'a str) -> [&'a str; 8] {
    [
        "page",
        "stats",
        "--json",
        "--pattern",
        "random",
        "--reads",
        reads,
        target,
    ]
}

pub(crate) fn uffd_allowed() -> bool {
    let root = is_root();
    let sysctl = std::fs::read_to_string("/proc/sys/vm/unprivileged_userfaultfd")
        .map(|s| s.trim() == "1")
        .unwrap_or(false);
    if !(root || sysctl) {
        skip("userfaultfd needs root or vm.unprivileged_userfaultfd=1");
    }
    root || sysctl
}

/// `mmkit` run as user nobody (65534) through `setpriv`, ready for its arguments.
pub(crate) fn mmkit_as_nobody() -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_mmkit"));
    cmd
}

/// Whether `mmkit` can be run as user nobody here: needs root and `setpriv`, else prints
/// why it is skipped. (A peer check: fails under `MMKIT_REQUIRE_PEERS=1` without setpriv.)
pub(crate) fn can_run_as_nobody() -> bool {
    if !is_root() {
        skip("needs root to run mmkit as user nobody");
        return false;
    }
    peer("setpriv", "util-linux")
}

/// Wait for `child` to end, at most `limit`: its status, or `None` when it was still
/// running then and has been killed (and reaped). A guard against a hang, not a timing.
pub(crate) fn wait_or_kill(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The `mmkit` binary under test, ready for its arguments.
pub(crate) fn mmkit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mmkit"))
}

/// Run `mmkit ARGS` to the end: its status and output.
pub(crate) fn mmkit_output(args: &[&str]) -> Output {
    mmkit().args(args).output().expect("run mmkit")
}

/// Run `cmd` to its end, but kill it and fail if it is still running after about ten
/// seconds: a guard against a hang, not a timing assertion.
pub(crate) fn run_or_kill(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mmkit");
    if wait_or_kill(&mut child, Duration::from_secs(10)).is_some() {
        return child.wait_with_output().expect("collect output");
    }
    let out = child.wait_with_output().expect("reap killed child");
    panic!(
        "{cmd:?} hung and was killed; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
