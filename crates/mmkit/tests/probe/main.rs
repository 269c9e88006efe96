//! The probe pillar's tests (maps, smaps, the page cache), checked against `pmap`, `fincore`
//! and `vmtouch`: one binary, a module a former test file.
//!
//! Apart from the map tests: they compare this process's own mappings with a peer's view,
//! so no other test's mappings come and go meanwhile.

mod cache;
mod maps;
