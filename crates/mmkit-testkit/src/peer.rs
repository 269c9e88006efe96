//! Peer programs the tests compare against (vmtouch, fincore, pmap, zstd, python3, ...),
//! and the one way a test says it was skipped.
//!
//! Shared by the library's and the CLI's tests, so the skip line and the
//! `MMKIT_REQUIRE_PEERS` rule have one home.
//!
//! libtest captures `println!` and `eprintln!` of passing tests, so a skip written with
//! them is invisible in a plain `cargo test`. [`skip`] writes to the process's stderr
//! directly, which libtest does not capture.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Print `skipped: REASON` where a plain `cargo test` shows it.
pub fn skip(reason: &str) {
    let line = format!("skipped: {reason}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Print a figure a test measured (a kill count, a flush count) where a plain
/// `cargo test` shows it, as [`skip`] does.
pub fn note(line: &str) {
    let _ = std::io::stderr()
        .lock()
        .write_all(format!("{line}\n").as_bytes());
}

/// Whether peers are required: `MMKIT_REQUIRE_PEERS=1` (set by `.ci/run`, which installs
/// them), so a missing peer fails instead of skipping.
pub fn peers_required() -> bool {
    std::env::var_os("MMKIT_REQUIRE_PEERS").is_some_and(|v| v == "1")
}

/// Whether the peer program `tool` is on `PATH`. When it is not: prints
/// `skipped: TOOL not installed (apt-get install PACKAGE)` and returns false, or panics
/// with that message under `MMKIT_REQUIRE_PEERS=1`.
pub fn peer(tool: &str, package: &str) -> bool {
    if on_path(tool) {
        return true;
    }
    let reason = format!("{tool} not installed (apt-get install {package})");
    assert!(!peers_required(), "{reason}, and MMKIT_REQUIRE_PEERS=1");
    skip(&reason);
    false
}

/// Whether an executable file named `tool` is in a directory of `PATH`.
pub fn on_path(tool: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| is_executable(&dir.join(tool)))
}

fn is_executable(file: &Path) -> bool {
    std::fs::metadata(file).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// "Resident Pages: X/Y" from vmtouch's summary (or `mmkit cache`'s, which prints the
/// same line): `(X, Y)`.
pub fn resident_pages(text: &str) -> (u64, u64) {
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Resident Pages:"))
        .unwrap_or_else(|| panic!("no Resident Pages in {text:?}"));
    let (x, y) = line
        .split_whitespace()
        .next()
        .unwrap()
        .split_once('/')
        .unwrap();
    (x.parse().unwrap(), y.parse().unwrap())
}
