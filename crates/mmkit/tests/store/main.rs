//! The persist pillar's tests that fork no child: the log, its damage and full-disk cases,
//! the key-value store. One binary, a module a former test file.
//!
//! The tests that fork writers are in `tests/store_crash`: a forked child holds a copy of
//! every descriptor open in the process, so it would hold these tests' writer locks.

mod kv;
mod log;
mod log_damage;
mod log_full;
