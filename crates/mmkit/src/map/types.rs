//! The small value types of the map pillar: protection, advice, and the modes of
//! `flush`, `lock` and `remap`.

use rustix::mm::{Advice as RawAdvice, MprotectFlags, ProtFlags};

/// Page protection: any mix of read, write and execute (`PROT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Protection(u8);

impl Protection {
    /// `PROT_NONE`: any access faults.
    pub const NONE: Protection = Protection(0);
    /// `PROT_READ`.
    pub const READ: Protection = Protection(1);
    /// `PROT_WRITE` (on x86 it implies read; ask for both).
    pub const WRITE: Protection = Protection(2);
    /// `PROT_EXEC`.
    pub const EXEC: Protection = Protection(4);
    /// `PROT_READ | PROT_WRITE`.
    pub const READ_WRITE: Protection = Protection(3);

    /// Whether every access of `other` is allowed by `self`.
    #[inline]
    pub fn contains(self, other: Protection) -> bool {
        self.0 & other.0 == other.0
    }

    pub(crate) fn prot_flags(self) -> ProtFlags {
        ProtFlags::from_bits_retain(self.raw())
    }

    pub(crate) fn mprotect_flags(self) -> MprotectFlags {
        MprotectFlags::from_bits_retain(self.raw())
    }

    fn raw(self) -> u32 {
        let mut bits = 0;
        if self.contains(Self::READ) {
            bits |= ProtFlags::READ.bits();
        }
        if self.contains(Self::WRITE) {
            bits |= ProtFlags::WRITE.bits();
        }
        if self.contains(Self::EXEC) {
            bits |= ProtFlags::EXEC.bits();
        }
        bits
    }
}

impl std::ops::BitOr for Protection {
    type Output = Protection;
    fn bitor(self, rhs: Protection) -> Protection {
        Protection(self.0 | rhs.0)
    }
}

impl std::fmt::Display for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = |p, ch| if self.contains(p) { ch } else { '-' };
        write!(
            f,
            "{}{}{}",
            c(Self::READ, 'r'),
            c(Self::WRITE, 'w'),
            c(Self::EXEC, 'x')
        )
    }
}

/// Advice that never changes what the memory holds (`madvise`), safe on any mapping.
///
/// Advice that throws contents away is [`Discard`], a separate call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Advice {
    /// `MADV_NORMAL`: default read-ahead.
    Normal,
    /// `MADV_RANDOM`: no read-ahead.
    Random,
    /// `MADV_SEQUENTIAL`: aggressive read-ahead, pages may be freed soon after access.
    Sequential,
    /// `MADV_WILLNEED`: start reading the range in now.
    WillNeed,
    /// `MADV_HUGEPAGE`: back the range with transparent huge pages where possible.
    HugePage,
    /// `MADV_NOHUGEPAGE`.
    NoHugePage,
    /// `MADV_DONTFORK`: a child made by `fork` does not get the range.
    DontFork,
    /// `MADV_DOFORK`: undo `DontFork`.
    DoFork,
    /// `MADV_WIPEONFORK`: a child sees the (private anonymous) range zero-filled.
    WipeOnFork,
    /// `MADV_KEEPONFORK`: undo `WipeOnFork`.
    KeepOnFork,
    /// `MADV_DONTDUMP`: leave the range out of core dumps.
    DontDump,
    /// `MADV_DODUMP`.
    DoDump,
    /// `MADV_MERGEABLE`: let KSM merge identical pages.
    Mergeable,
    /// `MADV_UNMERGEABLE`.
    Unmergeable,
    /// `MADV_COLD`: deactivate the pages (reclaim them first under pressure).
    Cold,
    /// `MADV_PAGEOUT`: reclaim the pages now (written to swap or file; contents kept).
    PageOut,
    /// `MADV_POPULATE_READ`: fault every page in readable (5.14+).
    PopulateRead,
    /// `MADV_POPULATE_WRITE`: fault every page in writable (5.14+).
    PopulateWrite,
}

impl Advice {
    pub(crate) fn raw(self) -> RawAdvice {
        match self {
            Advice::Normal => RawAdvice::Normal,
            Advice::Random => RawAdvice::Random,
            Advice::Sequential => RawAdvice::Sequential,
            Advice::WillNeed => RawAdvice::WillNeed,
            Advice::HugePage => RawAdvice::LinuxHugepage,
            Advice::NoHugePage => RawAdvice::LinuxNoHugepage,
            Advice::DontFork => RawAdvice::LinuxDontFork,
            Advice::DoFork => RawAdvice::LinuxDoFork,
            Advice::WipeOnFork => RawAdvice::LinuxWipeOnFork,
            Advice::KeepOnFork => RawAdvice::LinuxKeepOnFork,
            Advice::DontDump => RawAdvice::LinuxDontDump,
            Advice::DoDump => RawAdvice::LinuxDoDump,
            Advice::Mergeable => RawAdvice::LinuxMergeable,
            Advice::Unmergeable => RawAdvice::LinuxUnmergeable,
            Advice::Cold => RawAdvice::LinuxCold,
            Advice::PageOut => RawAdvice::LinuxPageOut,
            Advice::PopulateRead => RawAdvice::LinuxPopulateRead,
            Advice::PopulateWrite => RawAdvice::LinuxPopulateWrite,
        }
    }
}

/// Advice that throws the contents of pages away (`madvise`).
///
/// What a later read sees depends on the mapping kind: private anonymous pages read as
/// zeros, private file pages read the file again, shared pages keep their contents
/// (`DontNeed` only drops this process's page tables). `Remove` also frees the backing
/// store of shared memory and tmpfs files, so the data is gone for every process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Discard {
    /// `MADV_DONTNEED`: drop the pages now.
    DontNeed,
    /// `MADV_FREE`: the kernel may drop (private anonymous) pages later, until the next write.
    Free,
    /// `MADV_REMOVE`: drop the pages and punch a hole in the backing store.
    Remove,
}

impl Discard {
    pub(crate) fn raw(self) -> RawAdvice {
        match self {
            Discard::DontNeed => RawAdvice::LinuxDontNeed,
            Discard::Free => RawAdvice::LinuxFree,
            Discard::Remove => RawAdvice::LinuxRemove,
        }
    }
}

/// How `flush` waits for the write-back (`msync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlushMode {
    /// `MS_SYNC`: return when the pages are on the storage device.
    #[default]
    Sync,
    /// `MS_ASYNC`: schedule the write-back and return.
    Async,
}

/// How `lock` keeps pages resident (`mlock` / `mlock2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LockMode {
    /// `mlock`: fault every page in now and keep it resident.
    #[default]
    Now,
    /// `mlock2(MLOCK_ONFAULT)`: keep pages resident once touched; fault nothing in now.
    OnFault,
}

/// Whether `remap` may move the mapping to another address (`mremap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RemapMode {
    /// `MREMAP_MAYMOVE`: grow in place when the next pages are free, else move.
    #[default]
    MayMove,
    /// Grow or shrink in place only; fails with `ENOMEM` when the next pages are in use.
    InPlace,
}

/// Huge page size for a hugetlb mapping (`MAP_HUGETLB | MAP_HUGE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HugePageSize {
    /// The system's default huge page size (2 MiB on x86-64).
    #[default]
    Default,
    /// 2 MiB pages (`MAP_HUGE_2MB`).
    Size2M,
    /// 1 GiB pages (`MAP_HUGE_1GB`).
    Size1G,
}

impl HugePageSize {
    /// The page size in bytes.
    pub fn bytes(self) -> usize {
        match self {
            HugePageSize::Default => default_huge_page_size(),
            HugePageSize::Size2M => 2 << 20,
            HugePageSize::Size1G => 1 << 30,
        }
    }

    /// The `MAP_HUGE_*` bits: log2 of the size, shifted by `MAP_HUGE_SHIFT`.
    pub(crate) fn flag_bits(self) -> u32 {
        match self {
            HugePageSize::Default => 0,
            HugePageSize::Size2M => 21 << 26,
            HugePageSize::Size1G => 30 << 26,
        }
    }
}

/// `Hugepagesize` from `/proc/meminfo`, 2 MiB where it cannot be read.
fn default_huge_page_size() -> usize {
    crate::proc::meminfo("Hugepagesize").map_or(2 << 20, |b| b as usize)
}

/// The four kinds of mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum MapKind {
    /// A file mapped `MAP_SHARED`: writes reach the file and every process mapping it.
    FileShared,
    /// A file mapped `MAP_PRIVATE`: writes are copy-on-write and stay in this process.
    FilePrivate,
    /// Anonymous memory mapped `MAP_SHARED`: zero-filled, shared with children after `fork`.
    AnonShared,
    /// Anonymous memory mapped `MAP_PRIVATE`: zero-filled, private to this process.
    AnonPrivate,
}

impl MapKind {
    /// Whether the mapping is backed by a file.
    pub fn is_file(self) -> bool {
        matches!(self, MapKind::FileShared | MapKind::FilePrivate)
    }

    /// Whether writes are seen by other processes.
    pub fn is_shared(self) -> bool {
        matches!(self, MapKind::FileShared | MapKind::AnonShared)
    }
}
