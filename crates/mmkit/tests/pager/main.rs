//! The page pillar's tests: userfaultfd demand paging from every source, its limits,
//! read-ahead, huge pages and write-back; with `remote`, the object sources and the tests'
//! own S3 server. One binary, a module a former test file.
//!
//! A test that needs a process of its own (a slice access that must die, a budget measured
//! in smaps, dropped privileges) re-runs this binary with `--exact` on one test.

#[cfg(feature = "probe")]
mod huge;
mod limits;
#[cfg(all(feature = "zstd", feature = "probe"))]
mod pager;
mod pager_common;
mod privileges;
mod readahead;
#[cfg(all(feature = "remote", feature = "zstd"))]
mod remote;
#[cfg(feature = "remote")]
mod s3_server;
#[cfg(feature = "zstd")]
mod sources;
#[cfg(feature = "probe")]
mod writeback;
