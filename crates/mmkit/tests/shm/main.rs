//! The share pillar's tests (segments, typed structs, locks, the ring), its examples and
//! its hostile inputs: one binary, a module a former test file.
//!
//! Segment names are unique per test (`mmkit_testkit::Name`, or the pid and a tag).

mod condvar;
mod create_crash;
mod examples;
mod hostile;
#[cfg(feature = "store")]
mod pidns;
mod resize;
mod ring;
mod ring_common;
mod ring_crash;
mod segment;
mod symlink;
mod sync;
mod typed;
