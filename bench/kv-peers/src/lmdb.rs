//! LMDB through `heed`: one unnamed database of raw bytes. No-sync is the environment's
//! `MDB_NOSYNC` flag (commits are `write()`n to the page cache, not `fsync`ed); sync is
//! LMDB's default (`fdatasync` at every commit). Reads are zero-copy: the value is a
//! slice of LMDB's map, valid inside the read transaction.
//!
//! # Safety
//!
//! heed makes opening an environment and setting its flags `unsafe`: the file must not
//! be changed from outside while it is mapped (it is this process's own scratch file),
//! and `MDB_NOSYNC` gives up durability against a system crash, not memory safety.
#![allow(unsafe_code)]

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use heed::types::Bytes;
use heed::{CompactionOption, Database, Env, EnvFlags, EnvOpenOptions};

use crate::store::{Durability, Staged, Store};

/// The largest the map may grow to (address space only: LMDB grows the file as it is
/// written).
const MAP_SIZE: usize = 64 << 30;

#[derive(Debug)]
pub struct Lmdb {
    dir: PathBuf,
    durability: Durability,
    /// `None` only while compaction swaps the environment.
    env: Option<Env>,
    db: Database<Bytes, Bytes>,
    staged: Staged,
}

fn open_env(dir: &Path, durability: Durability) -> Result<(Env, Database<Bytes, Bytes>)> {
    let mut opts = EnvOpenOptions::new();
    opts.map_size(MAP_SIZE).max_dbs(0);
    if durability == Durability::NoSync {
        // SAFETY: MDB_NOSYNC gives up durability against a system crash (the benchmark's
        // point); it does not make any access unsound.
        unsafe {
            opts.flags(EnvFlags::NO_SYNC);
        }
    }
    // SAFETY: the benchmark's directory is used by this process only, and the file is not
    // changed from outside while it is mapped.
    let env = unsafe { opts.open(dir) }.with_context(|| format!("LMDB open {}", dir.display()))?;
    let mut wtxn = env.write_txn()?;
    let db = env.create_database::<Bytes, Bytes>(&mut wtxn, None)?;
    wtxn.commit()?;
    Ok((env, db))
}

impl Store for Lmdb {
    fn open(dir: &Path, durability: Durability) -> Result<Self> {
        let (env, db) = open_env(dir, durability)?;
        Ok(Lmdb {
            dir: dir.to_owned(),
            durability,
            env: Some(env),
            db,
            staged: Staged::default(),
        })
    }

    fn staged(&mut self) -> &mut Staged {
        &mut self.staged
    }

    fn commit(&mut self) -> Result<()> {
        let env = self.env.as_ref().expect("the environment is open");
        let mut wtxn = env.write_txn()?;
        for (k, v) in self.staged.ops.drain(..) {
            match v {
                Some(v) => self.db.put(&mut wtxn, &k, &v)?,
                None => {
                    self.db.delete(&mut wtxn, &k)?;
                }
            }
        }
        wtxn.commit()?;
        Ok(())
    }

    fn get_many(&self, keys: &[&[u8]], found: &mut dyn FnMut(Option<&[u8]>)) -> Result<()> {
        let rtxn = self.env().read_txn()?;
        for k in keys {
            found(self.db.get(&rtxn, k)?);
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.env().force_sync()?;
        Ok(())
    }

    fn compact(&mut self) -> Result<bool> {
        // mdb_env_copy2 with MDB_CP_COMPACT into a new file, which then replaces data.mdb.
        let copy = self.dir.join("compact.mdb");
        let file = self.env().copy_to_path(&copy, CompactionOption::Enabled)?;
        file.sync_all()?;
        drop(file);
        if let Some(env) = self.env.take() {
            env.prepare_for_closing().wait();
        }
        fs::rename(&copy, self.dir.join("data.mdb"))?;
        let (env, db) = open_env(&self.dir, self.durability)?;
        self.env = Some(env);
        self.db = db;
        Ok(true)
    }

    fn close(mut self) -> Result<()> {
        if let Some(env) = self.env.take() {
            env.prepare_for_closing().wait();
        }
        Ok(())
    }
}

impl Lmdb {
    fn env(&self) -> &Env {
        self.env.as_ref().expect("the environment is open")
    }
}
