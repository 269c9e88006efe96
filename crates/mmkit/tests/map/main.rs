//! The map pillar's tests, with the guard, the file and copy layers: one binary, a module a
//! former test file (rustix's shape, `tests/mm/main.rs`).
//!
//! Tests here share one process: the ones that lock memory or read this process's `VmLck`
//! take `mmkit_testkit::serial::memlock`; the hugetlb pool is changed only by `features`.

mod anon;
mod copy;
mod copy_truncate;
mod cross_process;
mod errors;
#[cfg(feature = "probe")]
mod features;
mod file;
mod file_model;
mod file_python;
mod guard;
#[cfg(feature = "probe")]
mod ops;
