//! `LogHashToy`: the mmkit baseline available today, a toy key-value store over
//! `mmkit::store::Log` with an in-memory `HashMap<key, seq>`. NOT `mmkit::store::Kv`
//! (which will live in `src/mmkit_kv.rs`); it exists so the harness runs end to end and
//! shows what a plain log plus an index costs.
//!
//! A put appends the record `[1][key length][key][value]`, a delete `[0][key length][key]`;
//! a commit is one `append_batch` of the staged records (all or none after a crash). Get
//! is a map lookup and `Log::entry(seq).read_into` (a copy with its CRC32C checked).
//! Opening replays the whole log to rebuild the map. No-sync is `mmkit::store::Durability::Process`
//! (the record is in the shared mapping: it survives a crash of the process); sync is
//! `Durability::Sync` (`fdatasync` per commit). Compaction writes the live records to a
//! new log and renames it over the old one.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use mmkit::store::{Log, LogOptions, Seq};

use crate::store::{Durability, Staged, Store};

#[derive(Debug)]
pub struct LogHashToy {
    dir: PathBuf,
    durability: Durability,
    log: Log,
    index: HashMap<Vec<u8>, Seq>,
    staged: Staged,
    /// Reused by `get_many` for the copy `read_into` makes.
    buf: RefCell<Vec<u8>>,
}

const PUT: u8 = 1;
const DELETE: u8 = 0;

fn record(tag: u8, key: &[u8], value: &[u8]) -> Vec<u8> {
    let klen = u8::try_from(key.len()).expect("keys up to 255 bytes");
    let mut r = Vec::with_capacity(2 + key.len() + value.len());
    r.push(tag);
    r.push(klen);
    r.extend_from_slice(key);
    r.extend_from_slice(value);
    r
}

/// The record's key and, for a put, its value.
fn parse(r: &[u8]) -> Result<(&[u8], Option<&[u8]>)> {
    let (&tag, rest) = r.split_first().context("an empty record")?;
    let (&klen, rest) = rest
        .split_first()
        .context("a record without a key length")?;
    if rest.len() < klen as usize {
        bail!("a record shorter than its key");
    }
    let (key, value) = rest.split_at(klen as usize);
    Ok((key, (tag == PUT).then_some(value)))
}

fn open_log(path: &Path, durability: Durability) -> Result<Log> {
    let d = match durability {
        Durability::NoSync => mmkit::store::Durability::Process,
        Durability::Sync => mmkit::store::Durability::Sync,
    };
    LogOptions::new()
        .durability(d)
        .open(path)
        .with_context(|| format!("Log open {}", path.display()))
}

impl Store for LogHashToy {
    fn open(dir: &Path, durability: Durability) -> Result<Self> {
        let log = open_log(&dir.join("data.log"), durability)?;
        let mut index = HashMap::new();
        let mut buf = Vec::new();
        for entry in log.iter() {
            let entry = entry?;
            entry.read_into(&mut buf)?;
            let (key, value) = parse(&buf)?;
            match value {
                Some(_) => index.insert(key.to_vec(), entry.seq()),
                None => index.remove(key),
            };
        }
        Ok(LogHashToy {
            dir: dir.to_owned(),
            durability,
            log,
            index,
            staged: Staged::default(),
            buf: RefCell::new(Vec::new()),
        })
    }

    fn staged(&mut self) -> &mut Staged {
        &mut self.staged
    }

    fn commit(&mut self) -> Result<()> {
        let records: Vec<Vec<u8>> = (self.staged.take().into_iter())
            .map(|(k, v)| match v {
                Some(v) => record(PUT, &k, &v),
                None => record(DELETE, &k, &[]),
            })
            .collect();
        if records.is_empty() {
            return Ok(());
        }
        let seqs = self.log.append_batch(&records)?;
        for (r, seq) in records.into_iter().zip(seqs) {
            let (key, value) = parse(&r)?;
            match value {
                Some(_) => self.index.insert(key.to_vec(), seq),
                None => self.index.remove(key),
            };
        }
        Ok(())
    }

    fn get_many(&self, keys: &[&[u8]], found: &mut dyn FnMut(Option<&[u8]>)) -> Result<()> {
        let mut buf = self.buf.borrow_mut();
        for k in keys {
            match self.index.get(*k) {
                Some(&seq) => {
                    self.log.entry(seq)?.read_into(&mut buf)?;
                    found(parse(&buf)?.1);
                }
                None => found(None),
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.log.sync()?;
        Ok(())
    }

    fn compact(&mut self) -> Result<bool> {
        let new_path = self.dir.join("compact.log");
        let new = open_log(&new_path, Durability::NoSync)?;
        let mut index = HashMap::with_capacity(self.index.len());
        let mut buf = Vec::new();
        let mut batch = Vec::new();
        let mut keys = Vec::new();
        let live: Vec<(&Vec<u8>, &Seq)> = self.index.iter().collect();
        for chunk in live.chunks(4096) {
            batch.clear();
            keys.clear();
            for (key, &seq) in chunk {
                self.log.entry(seq)?.read_into(&mut buf)?;
                batch.push(buf.clone());
                keys.push((*key).clone());
            }
            let seqs = new.append_batch(&batch)?;
            index.extend(keys.drain(..).zip(seqs));
        }
        new.sync()?;
        drop(new);
        fs::rename(&new_path, self.dir.join("data.log"))?;
        self.log = open_log(&self.dir.join("data.log"), self.durability)?;
        self.index = index;
        Ok(true)
    }

    fn close(self) -> Result<()> {
        drop(self.log);
        Ok(())
    }
}
