//! redb: one table of raw bytes in `data.redb`. No-sync is `Durability::None` on every
//! write transaction; sync is `Durability::Immediate` (redb's default: the commit is
//! `fsync`ed before it returns). Reads borrow the value from redb's own page cache
//! (redb reads its file with `pread` into a cache it manages; it does not map it),
//! inside one read transaction per batch.
//!
//! Unlike LMDB's `MDB_NOSYNC` and SQLite's `synchronous=OFF`, a `Durability::None`
//! commit is not on disk in any form redb recovers: after a crash of the process the
//! database opens at the last `Immediate` commit.

use std::path::Path;

use anyhow::{Context, Result};
use redb::{Database, ReadableDatabase, TableDefinition};

use crate::store::{Durability, Staged, Store};

const TABLE: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("kv");

#[derive(Debug)]
pub struct Redb {
    durability: Durability,
    db: Database,
    staged: Staged,
}

impl Redb {
    fn write_txn(&self, durability: Durability) -> Result<redb::WriteTransaction> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(match durability {
            Durability::NoSync => redb::Durability::None,
            Durability::Sync => redb::Durability::Immediate,
        })?;
        Ok(txn)
    }
}

impl Store for Redb {
    fn open(dir: &Path, durability: Durability) -> Result<Self> {
        let path = dir.join("data.redb");
        let db =
            Database::create(&path).with_context(|| format!("redb open {}", path.display()))?;
        let store = Redb {
            durability,
            db,
            staged: Staged::default(),
        };
        // Create the table, so that a read before the first put finds it.
        let txn = store.write_txn(Durability::Sync)?;
        txn.open_table(TABLE)?;
        txn.commit()?;
        Ok(store)
    }

    fn staged(&mut self) -> &mut Staged {
        &mut self.staged
    }

    fn commit(&mut self) -> Result<()> {
        let txn = self.write_txn(self.durability)?;
        {
            let mut table = txn.open_table(TABLE)?;
            for (k, v) in self.staged.ops.drain(..) {
                match v {
                    Some(v) => {
                        table.insert(k.as_slice(), v.as_slice())?;
                    }
                    None => {
                        table.remove(k.as_slice())?;
                    }
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn get_many(&self, keys: &[&[u8]], found: &mut dyn FnMut(Option<&[u8]>)) -> Result<()> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TABLE)?;
        for k in keys {
            match table.get(*k)? {
                Some(v) => found(Some(v.value())),
                None => found(None),
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        // An empty `Immediate` commit makes every `None` commit before it durable.
        self.write_txn(Durability::Sync)?.commit()?;
        Ok(())
    }

    fn compact(&mut self) -> Result<bool> {
        // `compact` returns whether it moved anything; repeat until it has nothing to do.
        for _ in 0..16 {
            if !self.db.compact()? {
                break;
            }
        }
        Ok(true)
    }

    fn close(self) -> Result<()> {
        drop(self.db);
        Ok(())
    }
}
