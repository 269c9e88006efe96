//! The `mmkit` command's tests: each runs the binary as a user would (its arguments, its
//! output, its exit code), many against a peer tool. One binary, a module a former test
//! file (rustix's shape); the helpers in `common`, shared ones from `mmkit-testkit`.
//!
//! `maps` is not here but in `alone.rs`, a binary of its own: it compares PSS, which every
//! process these tests start changes.

mod common;

mod bench;
mod bench_sink;
mod cache;
mod cat_copy;
mod cat_find;
mod hostile;
mod kv;
mod log;
mod page;
mod page_remote;
mod page_s3;
mod shm;
mod shm_bench;
mod tour;
