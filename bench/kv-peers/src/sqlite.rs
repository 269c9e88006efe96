//! SQLite through `rusqlite` (bundled), WAL mode, one `WITHOUT ROWID` table keyed by the
//! key blob. No-sync is `synchronous=OFF` (commits are `write()`n to the WAL, never
//! `fsync`ed); sync is `synchronous=FULL` (the WAL is `fsync`ed at every commit). Writes
//! are one `BEGIN IMMEDIATE … COMMIT` with cached prepared statements; reads are one
//! read transaction (`BEGIN … COMMIT`) per batch, the value read in place from SQLite's
//! page (`ValueRef::Blob`, no copy).

use std::path::Path;

use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension};

use crate::store::{Durability, Staged, Store};

#[derive(Debug)]
pub struct Sqlite {
    durability: Durability,
    conn: Connection,
    staged: Staged,
}

fn synchronous(d: Durability) -> &'static str {
    match d {
        Durability::NoSync => "OFF",
        Durability::Sync => "FULL",
    }
}

impl Store for Sqlite {
    fn open(dir: &Path, durability: Durability) -> Result<Self> {
        let path = dir.join("data.sqlite");
        let conn =
            Connection::open(&path).with_context(|| format!("SQLite open {}", path.display()))?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        anyhow::ensure!(mode == "wal", "SQLite refused WAL mode ({mode})");
        conn.execute_batch(&format!(
            "PRAGMA synchronous={};
             CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;",
            synchronous(durability)
        ))?;
        Ok(Sqlite {
            durability,
            conn,
            staged: Staged::default(),
        })
    }

    fn staged(&mut self) -> &mut Staged {
        &mut self.staged
    }

    fn commit(&mut self) -> Result<()> {
        let txn = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut put = txn.prepare_cached("INSERT OR REPLACE INTO kv (k, v) VALUES (?1, ?2)")?;
            let mut del = txn.prepare_cached("DELETE FROM kv WHERE k = ?1")?;
            for (k, v) in self.staged.ops.drain(..) {
                match v {
                    Some(v) => put.execute(params![k, v])?,
                    None => del.execute(params![k])?,
                };
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn get_many(&self, keys: &[&[u8]], found: &mut dyn FnMut(Option<&[u8]>)) -> Result<()> {
        self.conn.execute_batch("BEGIN DEFERRED")?;
        let result = (|| -> Result<()> {
            let mut get = self.conn.prepare_cached("SELECT v FROM kv WHERE k = ?1")?;
            for k in keys {
                let hit = get
                    .query_row(params![k], |r| {
                        found(Some(r.get_ref(0)?.as_blob()?));
                        Ok(())
                    })
                    .optional()?;
                if hit.is_none() {
                    found(None);
                }
            }
            Ok(())
        })();
        self.conn.execute_batch("COMMIT")?;
        result
    }

    fn flush(&mut self) -> Result<()> {
        // Checkpoint the WAL into the database with `fsync`s, and truncate the WAL.
        self.conn
            .execute_batch("PRAGMA synchronous=FULL; PRAGMA wal_checkpoint(TRUNCATE);")?;
        self.conn.execute_batch(&format!(
            "PRAGMA synchronous={}",
            synchronous(self.durability)
        ))?;
        Ok(())
    }

    fn compact(&mut self) -> Result<bool> {
        self.conn.execute_batch("VACUUM")?;
        self.flush()?;
        Ok(true)
    }

    fn close(self) -> Result<()> {
        self.conn.close().map_err(|(_, e)| e)?;
        Ok(())
    }
}
