//! The **share** pillar: shared memory between processes.
//!
//! - [`segment`]: named POSIX shared memory (`shm_open`) and sealed memfds passed over a
//!   Unix socket.
//! - Sealed memfds and descriptor passing: [`Memfd`] builds a memfd, seals it and gives a
//!   [`SealedSegment`]; the receiver gets a [`ReceivedSegment`] (from [`recv_fd`]) and must
//!   [`verify`](ReceivedSegment::verify) its [`Seals`] and size before it maps it — a peer
//!   could otherwise shrink it under the receiver. Wraps
//!   [`memfd_create(2)`](https://man7.org/linux/man-pages/man2/memfd_create.2.html),
//!   `F_ADD_SEALS`/`F_GET_SEALS` of [`fcntl(2)`](https://man7.org/linux/man-pages/man2/fcntl.2.html)
//!   and `SCM_RIGHTS` of [`unix(7)`](https://man7.org/linux/man-pages/man7/unix.7.html)
//!   ([`send_fd`], [`recv_fd`]).
//! - [`ring`]: a channel of byte messages between processes through a shared ring.
//! - [`sync`]: process-shared synchronisation living inside shared memory.
//! - [`condvar`]: a process-shared condition variable paired with the robust mutex.
//! - [`typed`]: a typed value behind a checked header, initialised exactly once.

pub mod condvar;
mod memfd;
mod owner;
pub mod ring;
pub mod segment;
mod semaphore;
pub mod sync;
pub mod typed;

pub use condvar::Condvar;
pub use memfd::{recv_fd, send_fd, Memfd, ReceivedSegment, SealedSegment, Seals};
pub use segment::{Segment, SegmentOptions};
pub use typed::{Shared, SharedOptions, SharedSafe};
