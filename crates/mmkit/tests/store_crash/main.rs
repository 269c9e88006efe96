//! The persist pillar's tests that fork writers and kill them, or cut the power under them:
//! one binary, a module a former test file.
//!
//! Every test here takes one lock (`mmkit_testkit::serial::forks`), so they run one at a
//! time: a forked child gets a copy of every descriptor open in the process at the fork,
//! and would hold another test's writer lock (its next open is `Busy`) or a deleted file's
//! space; the power-cut runs also change system-wide writeback settings. The store tests
//! that fork nothing are in `tests/store`, a process of their own.

mod kv_crash;
mod log_crash;
mod power;
mod records;
