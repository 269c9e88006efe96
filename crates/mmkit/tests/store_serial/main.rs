//! The persist pillar's tests that must not meet a fork: the ones that fork writers and
//! kill them, cut the power under them or mount a file system (a child), and the one that
//! opens ten thousand writers. One binary, a module a former test file.
//!
//! Every test here takes one lock (`mmkit_testkit::serial::forks`), so they run one at a
//! time: a child forked or spawned gets a copy of every descriptor open in the process at
//! that moment, and would hold another test's writer lock (its next open is `Busy`) or a
//! deleted file's space; the power-cut runs also change system-wide writeback settings.
//! The other store tests are in `tests/store`, a process of their own.

mod kv_crash;
mod log_crash;
mod log_damage;
mod log_full;
mod power;
mod records;
