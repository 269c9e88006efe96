//! The **share** pillar: shared memory between processes.
//!
//! - [`segment`]: named POSIX shared memory (`shm_open`) and sealed memfds passed over a
//!   Unix socket.
//! - [`sync`]: process-shared synchronisation living inside shared memory.

pub mod segment;
pub mod sync;
