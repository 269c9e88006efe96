//! The **map** pillar: files and anonymous memory, shared or private, at any offset.
//!
//! | call | syscall |
//! |---|---|
//! | [`MapOptions`] `map*` | [`mmap(2)`](https://man7.org/linux/man-pages/man2/mmap.2.html) |
//! | drop | [`munmap(2)`](https://man7.org/linux/man-pages/man2/munmap.2.html) |
//! | `flush`, `flush_async` | [`msync(2)`](https://man7.org/linux/man-pages/man2/msync.2.html) |
//! | `protect` | [`mprotect(2)`](https://man7.org/linux/man-pages/man2/mprotect.2.html) |
//! | `advise`, `discard` | [`madvise(2)`](https://man7.org/linux/man-pages/man2/madvise.2.html) |
//! | `lock`, `unlock` | [`mlock(2)`, `mlock2(2)`, `munlock(2)`](https://man7.org/linux/man-pages/man2/mlock.2.html) |
//! | `residency` | [`mincore(2)`](https://man7.org/linux/man-pages/man2/mincore.2.html) |
//! | `remap` | [`mremap(2)`](https://man7.org/linux/man-pages/man2/mremap.2.html) |
//! | `set_name` | [`PR_SET_VMA_ANON_NAME`](https://man7.org/linux/man-pages/man2/PR_SET_VMA.2const.html) |
//!
//! Two owned types come out of [`MapOptions`]:
//!
//! - [`Memory`]: private anonymous memory. Nothing outside this process can change it,
//!   so it derefs to `[u8]` like a `Vec`, and has typed views.
//! - [`Mapping`]: a file (shared or private) or shared anonymous memory. Another process
//!   or a truncation can change it at any time, so the safe API copies in and out
//!   (`read_at`, `write_at`, `read_value`, `write_value`) and offers atomic views; a
//!   borrowed slice is `unsafe` (see [`Mapping::as_slice`]).
//!
//! Both unmap on drop. Sub-range operations take offsets in the view's coordinates.
//!
//! ## Stable addresses
//!
//! A mapping stays at one address for its whole life except across `remap` with
//! [`RemapMode::MayMove`], which takes `&mut self` (so no borrow can be live) and may
//! return it at a new address: raw pointers taken with `as_ptr` before are then dangling.
//! [`RemapMode::InPlace`] never moves, and fails with `ENOMEM` when the pages after the
//! mapping are taken.
//!
#![doc = include_str!("memmap2.md")]

mod mapping;
mod memory;
pub(crate) mod open;
mod options;
mod poison;
mod prot;
mod region;
mod residency;
mod types;

pub use mapping::Mapping;
pub use memory::Memory;
pub(crate) use open::{not_mappable, open_for_map, unmappable};
pub(crate) use options::fd_path;
pub use options::MapOptions;
pub use residency::Residency;
pub use types::{
    Advice, Discard, FlushMode, HugePageSize, LockMode, MapKind, Protection, RemapMode,
};

/// The operations that read no bytes and break no borrow, the same on both owned types.
macro_rules! region_ops {
    () => {
        /// The length of the view in bytes.
        pub fn len(&self) -> usize {
            self.region.len()
        }

        /// Whether the view is empty (no kernel mapping exists for it).
        pub fn is_empty(&self) -> bool {
            self.region.len() == 0
        }

        /// The kind of mapping.
        pub fn kind(&self) -> $crate::MapKind {
            self.region.kind()
        }

        /// The page size of the mapping: the base page size, or the huge page size.
        pub fn page_size(&self) -> usize {
            self.region.granule()
        }

        /// A raw pointer to the first byte of the view; valid until drop or a moving `remap`.
        pub fn as_ptr(&self) -> *const u8 {
            self.region.ptr()
        }

        /// Advise the kernel about the whole view (`madvise`); see [`Advice`]($crate::Advice).
        ///
        /// # Errors
        /// The kernel's refusal (`EINVAL` for advice this kernel or mapping kind lacks).
        pub fn advise(&self, advice: $crate::Advice) -> $crate::Result<()> {
            self.region.advise(0, self.region.len(), advice)
        }

        /// Advise the kernel about `len` bytes at `off`, widened to whole pages.
        ///
        /// # Errors
        /// `OutOfRange` when the range leaves the view, else the kernel's refusal.
        pub fn advise_range(
            &self,
            off: usize,
            len: usize,
            advice: $crate::Advice,
        ) -> $crate::Result<()> {
            self.region.advise(off, len, advice)
        }

        /// Lock the whole view in memory (`mlock`, or `mlock2(MLOCK_ONFAULT)`).
        ///
        /// # Errors
        /// `ENOMEM`/`EAGAIN`/`EPERM` past `RLIMIT_MEMLOCK`; the hint gives the limit.
        #[doc(alias = "mlock")]
        #[doc(alias = "mlock2")]
        pub fn lock(&self, mode: $crate::LockMode) -> $crate::Result<()> {
            self.region.lock(0, self.region.len(), mode)
        }

        /// Lock `len` bytes at `off`, widened to whole pages.
        ///
        /// # Errors
        /// As [`lock`](Self::lock), and `OutOfRange`.
        pub fn lock_range(
            &self,
            off: usize,
            len: usize,
            mode: $crate::LockMode,
        ) -> $crate::Result<()> {
            self.region.lock(off, len, mode)
        }

        /// Unlock the whole view (`munlock`).
        ///
        /// # Errors
        /// The kernel's refusal.
        #[doc(alias = "munlock")]
        pub fn unlock(&self) -> $crate::Result<()> {
            self.region.unlock(0, self.region.len())
        }

        /// Unlock `len` bytes at `off`, widened to whole pages.
        ///
        /// # Errors
        /// `OutOfRange`, or the kernel's refusal.
        pub fn unlock_range(&self, off: usize, len: usize) -> $crate::Result<()> {
            self.region.unlock(off, len)
        }

        /// Which pages of the view are resident (`mincore`).
        ///
        /// # Errors
        /// The kernel's refusal.
        #[doc(alias = "mincore")]
        pub fn residency(&self) -> $crate::Result<$crate::Residency> {
            self.region.residency(0, self.region.len())
        }

        /// Which pages of `len` bytes at `off` are resident.
        ///
        /// # Errors
        /// `OutOfRange`, or the kernel's refusal.
        pub fn residency_range(&self, off: usize, len: usize) -> $crate::Result<$crate::Residency> {
            self.region.residency(off, len)
        }

        /// Grow or shrink the view to `new_len` bytes (`mremap`); contents are kept.
        /// See the module docs on stable addresses.
        ///
        /// # Errors
        /// `ENOMEM` when [`RemapMode::InPlace`]($crate::RemapMode) cannot grow in place;
        /// `Unsupported` to or from an empty view, and for growing shared anonymous memory
        /// (its backing object cannot grow, so new pages would raise SIGBUS).
        #[doc(alias = "mremap")]
        pub fn remap(&mut self, new_len: usize, mode: $crate::RemapMode) -> $crate::Result<()> {
            self.region.remap(new_len, mode)
        }

        /// Name anonymous memory in `/proc/PID/maps` (`PR_SET_VMA_ANON_NAME`).
        ///
        /// # Errors
        /// `Unsupported` when the kernel lacks `CONFIG_ANON_VMA_NAME`, or for file mappings.
        pub fn set_name(&self, name: &str) -> $crate::Result<()> {
            self.region.set_name(name)
        }
    };
}
pub(crate) use region_ops;
