//! Compaction: the live records are rewritten into a fresh file next to the store, which
//! then replaces the old one with `rename(2)`, and the directory is synced.
//!
//! A crash before the rename leaves the old file (the fresh one is a leftover, removed
//! by the next compaction); after it, the new one, complete and synced. Never a mix.

use std::time::{Duration, Instant};

use super::index::Index;
use super::{Kv, State};
use crate::store::{Durability, Log, LogOptions};
use crate::{Error, Op, Result};

/// What a compaction did.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct CompactReport {
    /// Keys kept.
    pub keys: u64,
    /// The log's record bytes before and after.
    pub bytes_before: u64,
    /// See `bytes_before`.
    pub bytes_after: u64,
    /// Bytes allocated on storage by the file before and after.
    pub allocated_before: u64,
    /// See `allocated_before`.
    pub allocated_after: u64,
    /// How long it took.
    pub took: Duration,
}

/// Live records copied per `append_batch` while compacting.
const BATCH: usize = 4096;

impl Kv {
    /// Rewrite the live records into a fresh file and replace the store's file with it.
    ///
    /// # Errors
    /// `NoSpace` when the fresh file does not fit (the store is left as it was); the
    /// errors of `rename` and `fsync`.
    pub fn compact(&self) -> Result<CompactReport> {
        let mut st = self.write_lock();
        let report = self.compact_locked(&mut st)?;
        st.deferred = None;
        Ok(report)
    }

    /// Compact if the live records fell below the threshold. A compaction that fails
    /// is deferred (see [`KvStats::compaction_deferred`]), never the caller's error: the
    /// caller's write is done.
    pub(super) fn maybe_compact(&self) {
        let due = |st: &State| {
            let total = st.index.total_bytes();
            let retry = match &st.deferred {
                Some((_, then)) => total >= then + then / 4,
                None => true,
            };
            self.opts.compact_below > 0.0
                && total >= self.opts.compact_min_bytes
                && (st.index.live_bytes as f64) < self.opts.compact_below * total as f64
                && retry
        };
        if !due(&self.read()) {
            return;
        }
        let mut st = self.write_lock();
        if due(&st) {
            match self.compact_locked(&mut st) {
                Ok(_) => st.deferred = None,
                Err(e) => st.deferred = Some((e.to_string(), st.index.total_bytes())),
            }
        }
    }

    fn compact_locked(&self, st: &mut State) -> Result<CompactReport> {
        let started = Instant::now();
        self.refresh(st)?;
        let old = st.log.clone();
        let before = old.stats()?;
        // Under the old log's writers' lock nobody appends to it: catch up with the last
        // records other processes wrote, copy the live ones, mark the old file replaced,
        // and rename the fresh one over it.
        let fresh = old.with_write_lock(|| {
            if old.poll()?.1 && old.is_replaced()? {
                return Ok(None); // another process compacted first
            }
            st.index.catch_up(&old)?;
            self.write_fresh(st, &old).map(Some)
        });
        let fresh = match fresh {
            Ok(Some(fresh)) => fresh,
            Ok(None) => {
                self.refresh(st)?;
                return self.report(st, &before, started);
            }
            Err(e) => return Err(e),
        };
        st.index = {
            let mut index = Index::new(&fresh)?;
            index.catch_up(&fresh)?;
            index
        };
        st.log = std::sync::Arc::new(fresh);
        self.report(st, &before, started)
    }

    /// Write the live records into a fresh file, sync it, mark `old` replaced and
    /// rename the fresh file over the store (the caller holds `old`'s writers' lock).
    fn write_fresh(&self, st: &State, old: &Log) -> Result<Log> {
        let fresh_path = fresh_path(&self.path);
        let _ = std::fs::remove_file(&fresh_path); // a leftover of a crashed compaction
        let fresh = LogOptions::new()
            .durability(Durability::Process)
            .shared_writers()
            .open(&fresh_path)?;
        let written = copy_live(st, &fresh)
            .and_then(|()| fresh.trim_reserve())
            .and_then(|()| fresh.sync());
        if let Err(e) = written {
            drop(fresh);
            let _ = std::fs::remove_file(&fresh_path);
            return Err(e);
        }
        old.mark_replaced()?;
        if let Err(e) = std::fs::rename(&fresh_path, &self.path) {
            let _ = old.check_replaced(); // still this file: clear the mark
            let _ = std::fs::remove_file(&fresh_path);
            return Err(Error::io(Op::Sync, &e)
                .with_path(Some(&self.path))
                .detail(format!(
                    "rename {} over the store: {e}",
                    fresh_path.display()
                )));
        }
        crate::store::log::sync_dir(&self.path)?;
        let mut fresh = fresh;
        fresh.renamed(&self.path);
        Ok(fresh)
    }

    fn report(
        &self,
        st: &mut State,
        before: &crate::store::LogStats,
        started: Instant,
    ) -> Result<CompactReport> {
        let after = st.log.stats()?;
        let report = CompactReport {
            keys: st.index.len() as u64,
            bytes_before: before.used_bytes,
            bytes_after: after.used_bytes,
            allocated_before: before.allocated_bytes,
            allocated_after: after.allocated_bytes,
            took: started.elapsed(),
        };
        st.last_compaction = Some(report.clone());
        Ok(report)
    }
}

/// Append the live records, in log order, to `fresh`.
fn copy_live(st: &State, fresh: &Log) -> Result<()> {
    let mut live: Vec<_> = st.index.locs().copied().collect();
    live.sort_unstable_by_key(|loc| loc.seq);
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(BATCH);
    for chunk in live.chunks(BATCH) {
        batch.clear();
        for loc in chunk {
            batch.push(loc.entry(&st.log).read()?);
        }
        fresh.append_batch(&batch)?;
    }
    Ok(())
}

/// The fresh file's name: the store's, with `.compact` added, in the same directory (so
/// the rename stays on one file system).
fn fresh_path(path: &std::path::Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".compact");
    path.with_file_name(name)
}
