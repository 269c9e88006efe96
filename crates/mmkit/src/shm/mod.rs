//! The **share** pillar: shared memory between processes.
//!
//! - [`segment`]: named POSIX shared memory (`shm_open`) and sealed memfds passed over a
//!   Unix socket.
//! - [`memfd`]: sealed memfds and descriptor passing (`SCM_RIGHTS`).
//! - [`ring`]: a channel of byte messages between processes through a shared ring.
//! - [`sync`]: process-shared synchronisation living inside shared memory.
//! - [`condvar`]: a process-shared condition variable paired with the robust mutex.
//! - [`typed`]: a typed value behind a checked header, initialised exactly once.

#[cfg(feature = "bench")]
#[cfg_attr(docsrs, doc(cfg(feature = "bench")))]
pub mod bench;
pub mod condvar;
pub mod memfd;
pub mod ring;
pub mod segment;
pub mod sync;
pub mod typed;

pub use condvar::Condvar;
pub use memfd::{recv_fd, send_fd, Memfd, ReceivedSegment, SealedSegment, Seals};
pub use segment::{Segment, SegmentOptions};
pub use typed::{Shared, SharedOptions, SharedSafe};
