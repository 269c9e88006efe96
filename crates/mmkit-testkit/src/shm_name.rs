//! A unique shared-memory segment name for a test, removed on drop.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// A unique segment name (tag, pid and a counter); removes whatever is under it in
/// `/dev/shm` on drop, pass or fail, never following a link.
#[derive(Debug)]
pub struct Name(pub String);

impl Name {
    pub fn new(tag: &str) -> Name {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        Name(format!("mmkit-test-{tag}-{}-{n}", std::process::id()))
    }

    /// Its path in `/dev/shm`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/dev/shm").join(&self.0)
    }

    /// The segment's size in bytes.
    #[allow(clippy::len_without_is_empty)] // A size in bytes, not a collection.
    pub fn len(&self) -> u64 {
        std::fs::metadata(self.path()).unwrap().len()
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.path());
    }
}
