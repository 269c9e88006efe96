//! Every mapping of a process with its memory, by kind: what `pmap -X` shows, as data.
//!
//! [`process_maps`] reads `/proc/PID/smaps` (through the `procfs` crate) and gives one
//! [`MapEntry`] per kernel area: its range, permissions, offset, path or label, and the
//! kernel's byte counts ([`Usage`]: `Rss`, `Pss`, shared/private clean/dirty, `Swap`, `Locked`,
//! `AnonHugePages`). Each entry is classified as an [`AreaKind`], and [`Totals`] sums them
//! per kind and overall.
//!
//! ## How areas are classified
//!
//! | kind | rule |
//! |---|---|
//! | [`FileShared`](AreaKind::FileShared) / [`FilePrivate`](AreaKind::FilePrivate) | a path on a file system; `s` or `p` in the permissions |
//! | [`AnonShared`](AreaKind::AnonShared) | shared memory with no file on disk: `/dev/zero (deleted)` (what `MAP_SHARED \| MAP_ANONYMOUS` shows), `/SYSV…` (System V segments), `[anon_shmem:…]`, `/memfd:…` and `[anon:…]` mapped `s` |
//! | [`AnonPrivate`](AreaKind::AnonPrivate) | no path, `[anon:NAME]`, or one of the shmem objects above mapped `p` |
//! | [`Heap`](AreaKind::Heap) | `[heap]` |
//! | [`Stack`](AreaKind::Stack) | `[stack]`, `[stack:TID]` |
//! | [`Special`](AreaKind::Special) | `[vdso]`, `[vvar]`, `[vvar_vclock]`, `[vsyscall]` and any other `[…]` label |
//!
//! A memfd is a file of the kernel's shmem file system, so it could be counted as a
//! file; it is counted as anonymous because its pages, like those of `/dev/zero` and
//! System V segments, live in memory and swap only: no disk file backs them, and
//! dropping them loses the data.
//!
//! Permissions: reading another process's smaps needs ptrace read access (root, or the
//! owner of a process that is not protected by `kernel.yama.ptrace_scope`).
//!
//! ```
//! use mmkit::probe::maps::{process_maps, AreaKind};
//! let mut mem = mmkit::MapOptions::new().len(1 << 20).map_anon_shared()?;
//! mem.write_at(0, b"x")?; // one page resident
//!
//! let maps = process_maps(None)?; // this process
//! let entry = maps.find(mem.as_ptr()).expect("the mapping is listed");
//! assert_eq!(entry.kind, AreaKind::AnonShared);
//! assert_eq!(entry.usage.size, 1 << 20);
//! assert_eq!(entry.usage.rss, mmkit::page_size() as u64);
//!
//! let totals = maps.totals();
//! assert!(totals.all.usage.rss >= entry.usage.rss);
//! assert!(totals.per_kind[&AreaKind::AnonShared].usage.rss >= entry.usage.rss);
//! # Ok::<(), mmkit::Error>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use procfs::process::{MMPermissions, MMapPath, MemoryMap, Process};
use procfs::ProcError;
use rustix::io::Errno;

use crate::error::{Error, ErrorKind, Op, Result};

/// What an area of a process's address space holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
#[non_exhaustive]
pub enum AreaKind {
    /// A file mapped `MAP_SHARED`: writes reach the file.
    FileShared,
    /// A file mapped `MAP_PRIVATE`: program text, libraries, copy-on-write data.
    FilePrivate,
    /// Shared memory with no file on disk: shared anonymous, System V, memfd.
    AnonShared,
    /// Private anonymous memory: `malloc` arenas, thread stacks, `MAP_ANONYMOUS`.
    AnonPrivate,
    /// The `brk` heap (`[heap]`).
    Heap,
    /// The main thread's stack (`[stack]`), or a thread's (`[stack:TID]`, old kernels).
    Stack,
    /// Kernel-provided areas: `[vdso]`, `[vvar]`, `[vvar_vclock]`, `[vsyscall]`, others.
    Special,
}

impl AreaKind {
    /// Every kind, in the order totals are listed.
    pub const ALL: [AreaKind; 7] = [
        AreaKind::FileShared,
        AreaKind::FilePrivate,
        AreaKind::AnonShared,
        AreaKind::AnonPrivate,
        AreaKind::Heap,
        AreaKind::Stack,
        AreaKind::Special,
    ];

    /// The kind's name as the CLI and JSON spell it: `file-shared`, `anon-private`, ….
    pub fn name(self) -> &'static str {
        match self {
            AreaKind::FileShared => "file-shared",
            AreaKind::FilePrivate => "file-private",
            AreaKind::AnonShared => "anon-shared",
            AreaKind::AnonPrivate => "anon-private",
            AreaKind::Heap => "heap",
            AreaKind::Stack => "stack",
            AreaKind::Special => "special",
        }
    }

    /// Classify an area from its `maps` path (as the kernel prints it, empty for plain
    /// anonymous memory) and whether it is mapped shared (`s` in the permissions).
    pub fn classify(path: &str, shared: bool) -> AreaKind {
        let by_sharing = |s, p| if shared { s } else { p };
        if path.is_empty() {
            return by_sharing(AreaKind::AnonShared, AreaKind::AnonPrivate);
        }
        if let Some(label) = path.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            return match label {
                "heap" => AreaKind::Heap,
                "stack" => AreaKind::Stack,
                l if l.starts_with("stack:") => AreaKind::Stack,
                l if l.starts_with("anon_shmem:") => AreaKind::AnonShared,
                l if l.starts_with("anon:") => {
                    by_sharing(AreaKind::AnonShared, AreaKind::AnonPrivate)
                }
                _ => AreaKind::Special,
            };
        }
        if path.starts_with("/SYSV") {
            return AreaKind::AnonShared;
        }
        if path == "/dev/zero (deleted)" || path.starts_with("/memfd:") {
            return by_sharing(AreaKind::AnonShared, AreaKind::AnonPrivate);
        }
        by_sharing(AreaKind::FileShared, AreaKind::FilePrivate)
    }
}

impl fmt::Display for AreaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for AreaKind {
    type Err = String;

    /// Parse a kind's [`name`](AreaKind::name).
    fn from_str(s: &str) -> std::result::Result<AreaKind, String> {
        AreaKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = AreaKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown kind {s:?}; one of {}", names.join(", "))
            })
    }
}

/// One area of a process's address space (one `smaps` entry); sizes in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct MapEntry {
    /// First address.
    pub start: u64,
    /// End address (exclusive).
    pub end: u64,
    /// Permissions as `/proc/PID/maps` shows them, e.g. `rw-s`.
    pub perms: String,
    /// Offset into the file (for anonymous memory, the page offset the kernel keeps).
    pub offset: u64,
    /// Device of the file, `major:minor` in hex as `maps` shows it.
    pub dev: String,
    /// Inode of the file, 0 for anonymous memory.
    pub inode: u64,
    /// The path, or a label such as `[heap]`, `[anon:NAME]`; empty for plain anonymous
    /// memory.
    pub path: String,
    /// The classification of the area.
    pub kind: AreaKind,
    /// The kernel's byte counts of the area (in JSON, fields of the entry itself).
    #[cfg_attr(feature = "serde", serde(flatten))]
    pub usage: Usage,
}

/// The kernel's byte counts of an area, or their sums over areas, as `smaps` names them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Usage {
    /// Address space (virtual size): `end - start`.
    pub size: u64,
    /// `Rss`: bytes resident in memory.
    pub rss: u64,
    /// `Pss`: resident bytes, each page divided by the number of processes mapping it.
    pub pss: u64,
    /// `Shared_Clean`: resident, unmodified, mapped by other processes too.
    pub shared_clean: u64,
    /// `Shared_Dirty`: resident, modified, mapped by other processes too.
    pub shared_dirty: u64,
    /// `Private_Clean`: resident, unmodified, mapped by this process only.
    pub private_clean: u64,
    /// `Private_Dirty`: resident, modified, mapped by this process only.
    pub private_dirty: u64,
    /// `Swap`: bytes swapped out.
    pub swap: u64,
    /// `Locked`: bytes locked in memory (`mlock`).
    pub locked: u64,
    /// `AnonHugePages`: bytes in transparent huge pages.
    pub anon_huge: u64,
}

impl Usage {
    /// `Shared_Dirty + Private_Dirty`.
    pub fn dirty(&self) -> u64 {
        self.shared_dirty + self.private_dirty
    }

    /// The counts in `pmap -X`'s column order: size, `Rss`, `Pss`, shared clean, shared
    /// dirty, private clean, private dirty, `Swap`, `Locked`, `AnonHugePages`.
    pub fn columns(&self) -> [u64; 10] {
        [
            self.size,
            self.rss,
            self.pss,
            self.shared_clean,
            self.shared_dirty,
            self.private_clean,
            self.private_dirty,
            self.swap,
            self.locked,
            self.anon_huge,
        ]
    }

    /// Add `other`'s counts to these.
    fn add(&mut self, other: &Usage) {
        let [size, rss, pss, shared_clean, shared_dirty, private_clean, private_dirty, swap, locked, anon_huge] =
            other.columns();
        self.size += size;
        self.rss += rss;
        self.pss += pss;
        self.shared_clean += shared_clean;
        self.shared_dirty += shared_dirty;
        self.private_clean += private_clean;
        self.private_dirty += private_dirty;
        self.swap += swap;
        self.locked += locked;
        self.anon_huge += anon_huge;
    }
}

impl MapEntry {
    /// `Shared_Dirty + Private_Dirty`.
    pub fn dirty(&self) -> u64 {
        self.usage.dirty()
    }

    /// Whether `addr` lies in `start..end`.
    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    fn from_smaps(m: &MemoryMap) -> MapEntry {
        let get = |k: &str| m.extension.map.get(k).copied().unwrap_or(0);
        let path = super::path_text(&m.pathname);
        let shared = m.perms.contains(MMPermissions::SHARED);
        let kind = match m.pathname {
            // The label of a System V segment is rebuilt above; classify by the variant.
            MMapPath::Vsys(_) => AreaKind::AnonShared,
            _ => AreaKind::classify(&path, shared),
        };
        MapEntry {
            start: m.address.0,
            end: m.address.1,
            perms: m.perms.as_str(),
            offset: m.offset,
            dev: format!("{:02x}:{:02x}", m.dev.0, m.dev.1),
            inode: m.inode,
            path,
            kind,
            usage: Usage {
                size: m.address.1.saturating_sub(m.address.0),
                rss: get("Rss"),
                pss: get("Pss"),
                shared_clean: get("Shared_Clean"),
                shared_dirty: get("Shared_Dirty"),
                private_clean: get("Private_Clean"),
                private_dirty: get("Private_Dirty"),
                swap: get("Swap"),
                locked: get("Locked"),
                anon_huge: get("AnonHugePages"),
            },
        }
    }
}

/// Sums over a set of entries; sizes in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct MapTotals {
    /// How many entries were summed.
    pub count: usize,
    /// The sums of the entries' counts (in JSON, fields of the totals themselves).
    #[cfg_attr(feature = "serde", serde(flatten))]
    pub usage: Usage,
    /// `Shared_Dirty + Private_Dirty`.
    pub dirty: u64,
}

impl MapTotals {
    /// Add one entry.
    pub fn add(&mut self, e: &MapEntry) {
        self.count += 1;
        self.usage.add(&e.usage);
        self.dirty += e.dirty();
    }
}

/// Totals per kind (only the kinds present) and over all entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Totals {
    /// Sums per kind, in [`AreaKind::ALL`] order.
    pub per_kind: BTreeMap<AreaKind, MapTotals>,
    /// Sums over every entry.
    pub all: MapTotals,
}

impl Totals {
    /// Sum `entries` per kind and overall.
    pub fn of<'a>(entries: impl IntoIterator<Item = &'a MapEntry>) -> Totals {
        let mut t = Totals::default();
        for e in entries {
            t.per_kind.entry(e.kind).or_default().add(e);
            t.all.add(e);
        }
        t
    }
}

/// Every mapping of one process, in address order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ProcessMaps {
    /// The process id (the real one when the process was asked for as "self").
    pub pid: i32,
    /// One entry per `smaps` area, in address order.
    pub mappings: Vec<MapEntry>,
}

impl ProcessMaps {
    /// The entry whose range holds `addr`.
    pub fn find(&self, addr: *const u8) -> Option<&MapEntry> {
        let a = addr as u64;
        self.mappings.iter().find(|e| e.contains(a))
    }

    /// Totals of every entry, per kind and overall.
    pub fn totals(&self) -> Totals {
        Totals::of(&self.mappings)
    }
}

/// Read `/proc/PID/smaps` of `pid` (`None`: this process) into classified entries.
///
/// # Errors
/// With op `Probe` and the path `/proc/PID/smaps`:
/// - `Os` with `ESRCH`: no process has this pid (or it exited while being read);
/// - `Os` with `EACCES`: no permission to read its smaps (the hint says what gives it);
/// - `Unsupported`: the process exists but the kernel has no smaps
///   (`CONFIG_PROC_PAGE_MONITOR` off), or the file could not be parsed.
#[doc(alias = "pmap")]
#[doc(alias = "smaps")]
pub fn process_maps(pid: Option<i32>) -> Result<ProcessMaps> {
    let shown = pid.map_or_else(|| "self".to_string(), |p| p.to_string());
    let smaps_path = PathBuf::from(format!("/proc/{shown}/smaps"));
    let who = pid.map_or_else(|| "this process".to_string(), |p| format!("pid {p}"));
    let fail = |e: ProcError| -> Error {
        let exists = std::path::Path::new(&format!("/proc/{shown}")).exists();
        match e {
            ProcError::PermissionDenied(_) => Error::os(Op::Probe, rustix::io::Errno::ACCESS)
                .with_path(Some(&smaps_path))
                .detail(format!("no permission to read the mappings of {who}"))
                .hint(
                    "run as root, or as the user that owns the process (reading smaps needs \
                     ptrace read access; see kernel.yama.ptrace_scope)",
                ),
            ProcError::NotFound(_) | ProcError::Incomplete(_) if !exists => {
                no_such_process(&smaps_path, &who)
            }
            ProcError::NotFound(_) => Error::new(Op::Probe, ErrorKind::Unsupported)
                .with_path(Some(&smaps_path))
                .detail("this kernel has no smaps file")
                .hint("smaps needs a kernel built with CONFIG_PROC_PAGE_MONITOR"),
            ProcError::Io(io, _) if io.raw_os_error() == Some(Errno::SRCH.raw_os_error()) => {
                no_such_process(&smaps_path, &who)
            }
            other => Error::new(Op::Probe, ErrorKind::Unsupported)
                .with_path(Some(&smaps_path))
                .detail(format!("cannot read the mappings of {who}: {other}")),
        }
    };
    let proc = match pid {
        Some(p) if p <= 0 => return Err(no_such_process(&smaps_path, &who)),
        Some(p) => Process::new(p),
        None => Process::myself(),
    }
    .map_err(fail)?;
    let maps = proc.smaps().map_err(fail)?;
    let mut mappings: Vec<MapEntry> = maps.0.iter().map(MapEntry::from_smaps).collect();
    mappings.sort_by_key(|e| e.start);
    Ok(ProcessMaps {
        pid: proc.pid,
        mappings,
    })
}

fn no_such_process(path: &std::path::Path, who: &str) -> Error {
    Error::os(Op::Probe, rustix::io::Errno::SRCH)
        .with_path(Some(path))
        .detail(format!("no such process ({who} does not exist)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_rules() {
        use AreaKind::*;
        let cases = [
            ("/usr/lib/libc.so.6", false, FilePrivate),
            ("/tmp/data", true, FileShared),
            ("/tmp/gone (deleted)", true, FileShared),
            ("", false, AnonPrivate),
            ("", true, AnonShared),
            ("/dev/zero (deleted)", true, AnonShared),
            ("/SYSV0000002a (deleted)", true, AnonShared),
            ("/memfd:ring (deleted)", true, AnonShared),
            ("/memfd:ring (deleted)", false, AnonPrivate),
            ("[anon_shmem:pool]", true, AnonShared),
            ("[anon:arena]", false, AnonPrivate),
            ("[heap]", false, Heap),
            ("[stack]", false, Stack),
            ("[stack:1234]", false, Stack),
            ("[vdso]", false, Special),
            ("[vvar]", false, Special),
            ("[vvar_vclock]", false, Special),
            ("[vsyscall]", false, Special),
        ];
        for (path, shared, want) in cases {
            assert_eq!(AreaKind::classify(path, shared), want, "{path:?} {shared}");
        }
    }

    #[test]
    fn kind_names_round_trip() {
        for k in AreaKind::ALL {
            assert_eq!(k.name().parse::<AreaKind>(), Ok(k));
        }
        assert!("nonsense".parse::<AreaKind>().is_err());
    }

    #[test]
    fn missing_pid_is_esrch() {
        let err = process_maps(Some(i32::MAX)).unwrap_err();
        assert_eq!(err.errno(), Some(Errno::SRCH.raw_os_error()));
        assert!(err.to_string().contains(&i32::MAX.to_string()), "{err}");
        assert_eq!(
            process_maps(Some(0)).unwrap_err().errno(),
            Some(Errno::SRCH.raw_os_error())
        );
    }
}
