//! The workload's view of a key-value store: staged writes committed as one transaction
//! with the store's durability, batched reads inside one read transaction, a durable
//! flush, and compaction where the store has it.

use std::path::Path;

use anyhow::Result;

/// When a commit counts as done; each store maps it to its own setting (see the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Durability {
    /// The commit is in the OS page cache (or, for redb, in memory) when `commit` returns;
    /// nothing waits for the disk.
    NoSync,
    /// The commit is on storage when `commit` returns (an `fsync`/`fdatasync` each).
    Sync,
}

/// One store under test. Writes are staged with [`put`](Store::put) and
/// [`delete`](Store::delete) and applied in one transaction by [`commit`](Store::commit);
/// every store stages into the same kind of buffer, so staging costs all of them alike.
pub trait Store {
    /// Open (or create) the store kept in `dir`, an otherwise empty directory.
    fn open(dir: &Path, durability: Durability) -> Result<Self>
    where
        Self: Sized;

    /// The store's staging buffer, which [`put`](Store::put) and
    /// [`delete`](Store::delete) fill.
    fn staged(&mut self) -> &mut Staged;

    /// Stage an insert or overwrite of `key`.
    fn put(&mut self, key: &[u8], value: &[u8]) {
        self.staged().put(key, value);
    }

    /// Stage the removal of `key`.
    fn delete(&mut self, key: &[u8]) {
        self.staged().delete(key);
    }

    /// Apply everything staged since the last commit in one write transaction, committed
    /// with the store's durability.
    fn commit(&mut self) -> Result<()>;

    /// Look up each key, inside one read transaction where the store has them, and call
    /// `found` with the value's bytes (borrowed from the store where it reads zero-copy)
    /// or `None`.
    fn get_many(&self, keys: &[&[u8]], found: &mut dyn FnMut(Option<&[u8]>)) -> Result<()>;

    /// Look up one key; `found` as in [`get_many`](Store::get_many).
    fn get(&self, key: &[u8], found: &mut dyn FnMut(Option<&[u8]>)) -> Result<()> {
        self.get_many(&[key], found)
    }

    /// Make every commit so far durable on storage (whatever the store's durability).
    fn flush(&mut self) -> Result<()>;

    /// Compact the store's files; `Ok(false)` when the store has no compaction.
    fn compact(&mut self) -> Result<bool>;

    /// Close the store: every file closed and every lock released when this returns.
    fn close(self) -> Result<()>
    where
        Self: Sized;
}

/// Staged writes: `Some(value)` for a put, `None` for a delete, in order.
#[derive(Debug, Default)]
pub struct Staged {
    pub ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Staged {
    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        self.ops.push((key.to_vec(), Some(value.to_vec())));
    }

    pub fn delete(&mut self, key: &[u8]) {
        self.ops.push((key.to_vec(), None));
    }

    /// The staged writes, in order, leaving none staged.
    pub fn take(&mut self) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        std::mem::take(&mut self.ops)
    }
}
