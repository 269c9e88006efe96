//! The `mmkit` command's tests that need a quiet process around them: `maps` compares
//! `mmkit maps` with `pmap -X` of a live process, and the PSS of a shared file changes with
//! every process that maps it meanwhile, as the other CLI tests (`main.rs`) start many.
//! A second root in `tests/cli`, so it shares `common` with them.

mod common;

mod maps;
