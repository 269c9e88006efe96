//! The **observe** pillar's probes: what the kernel says about this process's mappings,
//! page faults and locked memory, read from `/proc` and `getrusage`.
//!
//! - [`region_stats`]: the `/proc/self/smaps` entry that holds an address (RSS, PSS,
//!   dirty, locked, huge pages), parsed with the `procfs` crate.
//! - [`faults`]: minor and major page faults so far (`getrusage(RUSAGE_SELF)`).
//! - [`cpu_time`]: user and system CPU time of the process, the calling thread or the
//!   children waited for (`getrusage`).
//! - [`locked_bytes`]: `VmLck` from `/proc/self/status`.
//! - [`mapping_ranges`]: the address ranges of `/proc/self/maps`, to see what a call added.
//!
//! ```
//! // Shared anonymous memory has an smaps entry of its own (private anonymous areas
//! // may merge with their neighbours, so their entry can cover more than one mapping).
//! let mut mem = mmkit::MapOptions::new().len(1 << 20).map_anon_shared()?;
//! assert_eq!(mmkit::probe::region_stats(mem.as_ptr())?.rss, 0); // nothing touched yet
//! mem.write_at(0, b"x")?;
//! assert_eq!(mmkit::probe::region_stats(mem.as_ptr())?.rss, mmkit::page_size() as u64);
//! # Ok::<(), mmkit::Error>(())
//! ```

pub mod cache;
mod cachestat;
pub mod maps;

pub use cachestat::{cachestat, CacheStat};

use procfs::process::{MMapPath, Process};

use crate::error::{Error, ErrorKind, Op, Result};

/// One `/proc/self/smaps` entry, sizes in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RegionStats {
    /// Start address of the kernel's area.
    pub start: u64,
    /// End address (exclusive).
    pub end: u64,
    /// Permissions as `/proc/PID/maps` shows them, e.g. `rw-s`.
    pub perms: String,
    /// The path, or `[heap]`, `[anon:NAME]`, empty for plain anonymous memory.
    pub path: String,
    /// `Rss`: resident bytes.
    pub rss: u64,
    /// `Pss`: resident bytes divided among the processes sharing them.
    pub pss: u64,
    /// `Shared_Dirty + Private_Dirty`.
    pub dirty: u64,
    /// `Anonymous`: bytes of anonymous (or copy-on-write) pages.
    pub anonymous: u64,
    /// `AnonHugePages`: bytes in transparent huge pages.
    pub anon_huge: u64,
    /// `Shared_Hugetlb + Private_Hugetlb`.
    pub hugetlb: u64,
    /// `Locked`.
    pub locked: u64,
    /// `Swap`.
    pub swap: u64,
}

fn probe_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(Op::Probe, ErrorKind::Unsupported).detail(format!("{what}: {e}"))
}

/// The path as the kernel printed it (procfs parses it into [`MMapPath`]).
pub(crate) fn path_text(p: &MMapPath) -> String {
    match p {
        MMapPath::Path(p) => p.display().to_string(),
        MMapPath::Heap => "[heap]".into(),
        MMapPath::Stack => "[stack]".into(),
        MMapPath::TStack(t) => format!("[stack:{t}]"),
        MMapPath::Vdso => "[vdso]".into(),
        MMapPath::Vvar => "[vvar]".into(),
        MMapPath::Vsyscall => "[vsyscall]".into(),
        MMapPath::Rollup => "[rollup]".into(),
        MMapPath::Anonymous => String::new(),
        MMapPath::Vsys(key) => format!("/SYSV{:08x} (deleted)", *key as u32),
        MMapPath::Other(s) => format!("[{s}]"),
    }
}

/// The smaps entry of this process whose range holds `addr`.
///
/// # Errors
/// `Unsupported` (op `Probe`) when `/proc/self/smaps` cannot be read or no area holds
/// `addr`.
pub fn region_stats(addr: *const u8) -> Result<RegionStats> {
    let me = Process::myself().map_err(|e| probe_err("/proc/self", e))?;
    let maps = me.smaps().map_err(|e| probe_err("/proc/self/smaps", e))?;
    let a = addr as u64;
    let m = maps
        .into_iter()
        .find(|m| m.address.0 <= a && a < m.address.1)
        .ok_or_else(|| probe_err("/proc/self/smaps", format!("no mapping holds {a:#x}")))?;
    let get = |k: &str| m.extension.map.get(k).copied().unwrap_or(0);
    Ok(RegionStats {
        start: m.address.0,
        end: m.address.1,
        perms: m.perms.as_str(),
        path: path_text(&m.pathname),
        rss: get("Rss"),
        pss: get("Pss"),
        dirty: get("Shared_Dirty") + get("Private_Dirty"),
        anonymous: get("Anonymous"),
        anon_huge: get("AnonHugePages"),
        hugetlb: get("Shared_Hugetlb") + get("Private_Hugetlb"),
        locked: get("Locked"),
        swap: get("Swap"),
    })
}

/// The address ranges and paths of every mapping of this process (`/proc/self/maps`).
///
/// # Errors
/// `Unsupported` (op `Probe`) when `/proc/self/maps` cannot be read.
pub fn mapping_ranges() -> Result<Vec<(u64, u64, String)>> {
    let me = Process::myself().map_err(|e| probe_err("/proc/self", e))?;
    let maps = me.maps().map_err(|e| probe_err("/proc/self/maps", e))?;
    Ok(maps
        .into_iter()
        .map(|m| (m.address.0, m.address.1, path_text(&m.pathname)))
        .collect())
}

/// Page faults of this process so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Faults {
    /// Faults served without I/O (`ru_minflt`).
    pub minor: u64,
    /// Faults that needed I/O (`ru_majflt`).
    pub major: u64,
}

impl std::ops::Sub for Faults {
    type Output = Faults;
    fn sub(self, rhs: Faults) -> Faults {
        Faults {
            minor: self.minor.saturating_sub(rhs.minor),
            major: self.major.saturating_sub(rhs.major),
        }
    }
}

/// Minor and major page faults of this process so far (`getrusage(RUSAGE_SELF)`).
/// Allocation-free, so it can bracket a single touch.
#[doc(alias = "getrusage")]
pub fn faults() -> Faults {
    let (minor, major) = crate::sys::process::fault_counts();
    Faults { minor, major }
}

/// Whose CPU time [`cpu_time`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CpuOf {
    /// The whole process, every thread (`RUSAGE_SELF`).
    Process,
    /// The calling thread only (`RUSAGE_THREAD`).
    Thread,
    /// The children this process has waited for (`RUSAGE_CHILDREN`).
    Children,
}

/// User and system CPU time used so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTime {
    /// Time spent running the program's own code.
    pub user: std::time::Duration,
    /// Time the kernel spent on its behalf (system calls, page faults).
    pub system: std::time::Duration,
}

/// The user and system CPU time used so far by this process, the calling thread, or the
/// children waited for (`getrusage(2)`). Allocation-free.
///
/// ```
/// use mmkit::probe::{cpu_time, CpuOf};
/// let thread = cpu_time(CpuOf::Thread);
/// let process = cpu_time(CpuOf::Process); // read after: it has every thread's time
/// assert!(process.user + process.system >= thread.user + thread.system);
/// ```
#[doc(alias = "getrusage")]
pub fn cpu_time(of: CpuOf) -> CpuTime {
    use crate::sys::process::Who;
    let who = match of {
        CpuOf::Process => Who::Process,
        CpuOf::Thread => Who::Thread,
        CpuOf::Children => Who::Children,
    };
    let (user, system) = crate::sys::process::cpu_time(who);
    CpuTime { user, system }
}

/// A field of `/proc/meminfo`: bytes for `kB` fields, else the bare count
/// (`HugePages_Free`). `None` when the file or the field is missing.
pub fn meminfo(field: &str) -> Option<u64> {
    crate::proc::meminfo(field)
}

/// Bytes of memory this process has locked (`VmLck` in `/proc/self/status`).
///
/// # Errors
/// `Unsupported` (op `Probe`) when the status file cannot be read.
pub fn locked_bytes() -> Result<u64> {
    let st = Process::myself()
        .and_then(|p| p.status())
        .map_err(|e| probe_err("/proc/self/status", e))?;
    Ok(st.vmlck.unwrap_or(0) * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_count_a_first_touch() {
        let mut mem = crate::MapOptions::new()
            .len(1 << 20)
            .map_anon()
            .expect("map");
        let before = faults();
        mem[4096 * 100] = 1;
        assert!((faults() - before).minor >= 1);
    }
}
