//! `mmkit::store::Kv`: puts and deletes appended to a crash-safe log, an in-memory hash
//! index rebuilt on open. No-sync is `Durability::Process` (each write is in the shared
//! mapping when it returns: it survives a crash of the process), sync is
//! `Durability::Sync` (`fdatasync` per commit, shared by concurrent writers). A commit
//! of one staged write is one `put`/`delete`; of several, one atomic `Batch`. Gets read
//! zero-copy with `get_with` (the value's CRC32C checked in place), as LMDB lends a slice
//! of its map.

use std::path::Path;

use anyhow::{Context, Result};
use mmkit::store::{Batch, Kv, KvOptions};

use crate::store::{Durability, Staged, Store};

pub struct MmkitKv {
    kv: Kv,
    staged: Staged,
}

impl Store for MmkitKv {
    fn open(dir: &Path, durability: Durability) -> Result<Self> {
        let d = match durability {
            Durability::NoSync => mmkit::store::Durability::Process,
            Durability::Sync => mmkit::store::Durability::Sync,
        };
        let path = dir.join("data.kv");
        let kv = KvOptions::new()
            .durability(d)
            .compact_below(0.0, 0) // compaction is measured on its own
            .open(&path)
            .with_context(|| format!("Kv open {}", path.display()))?;
        Ok(MmkitKv {
            kv,
            staged: Staged::default(),
        })
    }

    fn staged(&mut self) -> &mut Staged {
        &mut self.staged
    }

    fn commit(&mut self) -> Result<()> {
        let ops = self.staged.take();
        if let [(key, value)] = &ops[..] {
            match value {
                Some(v) => self.kv.put(key, v)?,
                None => {
                    self.kv.delete(key)?;
                }
            }
            return Ok(());
        }
        let mut batch = Batch::new();
        for (key, value) in &ops {
            match value {
                Some(v) => batch.put(key, v),
                None => batch.delete(key),
            };
        }
        self.kv.write(&batch)?;
        Ok(())
    }

    fn get_many(&self, keys: &[&[u8]], found: &mut dyn FnMut(Option<&[u8]>)) -> Result<()> {
        for key in keys {
            // SAFETY: nothing writes the store's file outside mmkit during the bench.
            let hit = unsafe { self.kv.get_with(key, |v| found(Some(v))) }?;
            if hit.is_none() {
                found(None);
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.kv.sync()?;
        Ok(())
    }

    fn compact(&mut self) -> Result<bool> {
        self.kv.compact()?;
        Ok(true)
    }

    fn close(self) -> Result<()> {
        drop(self.kv);
        Ok(())
    }
}
