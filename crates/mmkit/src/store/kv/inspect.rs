//! Looking at a whole store: `check` (every record of its file verified) and `stats`.

use super::compact::CompactReport;
use super::ReadOnlyKv;
use crate::store::CheckReport;
use crate::Result;

/// Sizes and counts of a store (see [`ReadOnlyKv::stats`]).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct KvStats {
    /// Keys held.
    pub keys: u64,
    /// Bytes of the records that hold the current values.
    pub live_bytes: u64,
    /// Bytes of every record in the log (live, overwritten and deleted).
    pub total_bytes: u64,
    /// The file's size, with the space reserved ahead of writes.
    pub file_bytes: u64,
    /// Bytes allocated on storage.
    pub allocated_bytes: u64,
    /// The last compaction this handle ran, if any.
    pub last_compaction: Option<CompactReport>,
    /// Why the last automatic compaction due could not run (a full disk, most often),
    /// when it has not run since. The write that found it due was written all the
    /// same; it is tried again once the log has grown by a quarter, or by
    /// [`Kv::compact`](super::Kv::compact).
    pub compaction_deferred: Option<String>,
}

impl ReadOnlyKv {
    /// Sizes and counts.
    ///
    /// # Errors
    /// `fstat`'s.
    pub fn stats(&self) -> Result<KvStats> {
        let st = self.fresh()?;
        let log = st.log.stats()?;
        Ok(KvStats {
            keys: st.index.len() as u64,
            live_bytes: st.index.live_bytes,
            total_bytes: log.used_bytes,
            file_bytes: log.file_bytes,
            allocated_bytes: log.allocated_bytes,
            last_compaction: st.last_compaction.clone(),
            compaction_deferred: st.deferred.as_ref().map(|(why, _)| why.clone()),
        })
    }

    /// Verify every record of the store's file (see [`ReadOnlyLog::check`](crate::store::ReadOnlyLog::check)).
    ///
    /// # Errors
    /// As [`ReadOnlyLog::check`](crate::store::ReadOnlyLog::check).
    pub fn check(&self) -> Result<CheckReport> {
        self.fresh()?.log.check()
    }
}
