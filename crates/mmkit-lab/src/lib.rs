//! # mmkit-lab — measuring code on top of the mmkit library
//!
//! The benchmarks behind `mmkit bench`, `mmkit page bench`, `mmkit shm bench` and
//! `mmkit log bench`, and the live tour of what the Linux docs claim about `mmap`
//! (`mmkit tour`). The library ([`mmkit`]) is mechanism only; everything that measures it
//! lives here and uses its public API, plus one hidden seam (`mmkit::lab_seam`, whose
//! docs list each item and why) and `mmkit::helpers` (one xorshift, one median).
//!
//! | module | command | what it measures |
//! |---|---|---|
//! | [`bench`](mod@bench) | `mmkit bench read` | ways to read a file (mappings with each advice, `read`, `pread`), side by side |
//! | [`bench::sink`] | `mmkit bench sink` | ways to send a file to a pipe, a socket or a file (`sendfile`, `splice`, `copy_file_range`, a mapping + `write`) |
//! | [`bench::find`] | `mmkit bench find` | `mmkit find` against ripgrep and grep |
//! | [`pager`] | `mmkit page bench` | the userfaultfd pager against a kernel file mapping and `pread`; [`pager::remote`]: over an object store against a download |
//! | [`shm`] | `mmkit shm bench` | the ring channel against a pipe and a Unix socket; [`shm::wake`]: a `Shared<T>` waiter's wake-up |
//! | [`store`] | `mmkit log bench` | `Log` appends against an `O_APPEND` `write(2)` log |
//! | [`tour`] | `mmkit tour` | the claims of the Linux docs about `mmap`, each checked live |
//!
//! [`Spread`] is the figure over runs the pager and store benches report (median, least,
//! most). Tests never assert a timing; a claim is a ratio measured in one run.

#![deny(missing_docs)]
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod bench;
pub mod pager;
pub mod shm;
mod spread;
pub mod store;
pub mod tour;

pub use spread::Spread;
