//! Locks for tests that would disturb each other in one process.
//!
//! A test binary holds a whole area's tests (`tests/<area>/main.rs`), so tests that used to
//! have a process of their own now share one, and run on parallel threads. Where one test
//! changes what another measures, both take the same lock here:
//!
//! - [`memlock`]: tests that lock memory (`mlock`) or read this process's `VmLck`.
//! - [`forks`]: the store tests that fork or spawn children (writers to kill, `mount`), and
//!   the ones that must not meet such a child (a child gets a copy of every descriptor open
//!   in the process at that moment, so it would hold another test's writer lock, or a
//!   deleted file's space, until it exits or execs); also the power-cut runs, which change
//!   system-wide writeback settings.

use std::sync::{Mutex, MutexGuard};

static MEMLOCK: Mutex<()> = Mutex::new(());
static FORKS: Mutex<()> = Mutex::new(());

/// Held while a test locks memory or compares this process's `VmLck`.
pub fn memlock() -> MutexGuard<'static, ()> {
    MEMLOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Held by every test of a binary whose tests fork or spawn children beside store writers.
pub fn forks() -> MutexGuard<'static, ()> {
    FORKS.lock().unwrap_or_else(|p| p.into_inner())
}

/// The name libtest gives the test function `name` of the module `module_path` (what
/// `module_path!()` says there): the path without the crate's name, for a child that
/// re-runs one test with `--exact`.
pub fn test_name(module_path: &str, name: &str) -> String {
    match module_path.split_once("::") {
        Some((_crate, module)) => format!("{module}::{name}"),
        None => name.to_string(),
    }
}
