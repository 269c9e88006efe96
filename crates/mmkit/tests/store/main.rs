//! The persist pillar's tests that fork no writer: the log and the key-value store. One
//! binary, a module a former test file.
//!
//! The tests that fork writers or mount a file system, and the one that opens ten thousand
//! writers, are in `tests/store_serial`: a child forked or spawned holds a copy of every
//! descriptor open in the process at that moment, so it would hold the writer lock of a
//! test running beside it.

mod kv;
mod log;
