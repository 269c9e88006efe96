//! The **share** pillar: shared memory between processes.
//!
//! - [`segment`]: named POSIX shared memory (`shm_open`) and sealed memfds passed over a
//!   Unix socket.
//! - [`memfd`]: sealed memfds and descriptor passing (`SCM_RIGHTS`).
//! - [`ring`]: a channel of byte messages between processes through a shared ring.
//! - [`sync`]: process-shared synchronisation living inside shared memory.

pub mod memfd;
pub mod ring;
pub mod segment;
pub mod sync;

pub use memfd::{recv_fd, send_fd, Memfd, ReceivedSegment, SealedSegment, Seals};
pub use segment::{Segment, SegmentOptions};
