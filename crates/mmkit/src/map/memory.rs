//! [`Memory`]: private anonymous memory, lent as ordinary slices.
//!
//! # Safety
//!
//! [`Memory`] is private anonymous memory, so it forms `&[u8]`/`&mut [u8]` from its raw
//! region; discarding contents and changing protection are `unsafe fn`s because a slice
//! borrowed before could observe them.
#![allow(unsafe_code)]

use std::ops::{Deref, DerefMut};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::mapping::layout_err;
use super::region::Region;
use super::{region_ops, Discard, Protection};
use crate::error::Result;

/// Private anonymous memory (`MAP_PRIVATE | MAP_ANONYMOUS`): zero-filled, readable and
/// writable, unmapped on drop.
///
/// No other process can write it (a child made by `fork` gets its own copy-on-write
/// copy), so it derefs to `[u8]` and lends typed slices safely. Operations that could
/// break a borrow take `&mut self`; [`protect_range`](Self::protect_range) is `unsafe`
/// because the slices it would leave behind assume readable, writable pages.
///
/// ```
/// use mmkit::{MapOptions, RemapMode};
/// let mut mem = MapOptions::new().len(4096).map_anon()?;
/// let words: &mut [u64] = mem.as_typed_mut()?;
/// words[0] = 7;
/// mem.remap(1 << 20, RemapMode::MayMove)?; // grow: contents kept
/// assert_eq!(mem.as_typed::<u64>()?[0], 7);
/// assert_eq!(mem.len(), 1 << 20);
/// # Ok::<(), mmkit::Error>(())
/// ```
#[derive(Debug)]
pub struct Memory {
    region: Region,
}

impl Memory {
    pub(crate) fn from_region(region: Region) -> Memory {
        Memory { region }
    }

    region_ops!();

    /// A raw mutable pointer to the first byte; valid until drop or a moving `remap`.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.region.ptr()
    }

    /// The memory as a slice of `T`.
    ///
    /// # Errors
    /// `Layout` when the length is not a multiple of `T`'s size or the alignment of `T`
    /// exceeds the page size.
    pub fn as_typed<T: FromBytes + KnownLayout + Immutable>(&self) -> Result<&[T]> {
        <[T]>::ref_from_bytes(&self[..]).map_err(|e| layout_err(&self.region, e.to_string()))
    }

    /// The memory as a mutable slice of `T`.
    ///
    /// # Errors
    /// As [`as_typed`](Self::as_typed).
    pub fn as_typed_mut<T: FromBytes + IntoBytes + KnownLayout>(&mut self) -> Result<&mut [T]> {
        let len = self.region.len();
        // SAFETY: private anonymous memory of `len` bytes, read-write, owned by `self`.
        let bytes = unsafe { std::slice::from_raw_parts_mut(self.region.ptr(), len) };
        <[T]>::mut_from_bytes(bytes).map_err(|e| layout_err(&self.region, e.to_string()))
    }

    /// Zero `len` bytes at `off` by giving the pages back to the kernel
    /// (`MADV_DONTNEED`); the range must be whole pages. Memory is freed until touched again.
    ///
    /// # Errors
    /// `Unaligned`, `OutOfRange`.
    pub fn discard(&mut self, off: usize, len: usize) -> Result<()> {
        // SAFETY: `&mut self`: no borrow is live; the pages read as zeros afterwards,
        // deterministically.
        unsafe { self.region.discard(off, len, Discard::DontNeed) }
    }

    /// Give pages back with other discard advice (`MADV_FREE`, `MADV_REMOVE`).
    ///
    /// # Safety
    /// With `Free` the kernel may zero the pages at any moment until each is written
    /// again: until then, no slice of the range may be read with the expectation that it
    /// does not change (read it through raw pointers, or write every page first).
    ///
    /// # Errors
    /// `Unaligned`, `OutOfRange`, or the kernel's refusal.
    pub unsafe fn discard_with(&mut self, off: usize, len: usize, how: Discard) -> Result<()> {
        // SAFETY: forwarded from the caller.
        unsafe { self.region.discard(off, len, how) }
    }

    /// Change the protection of `len` bytes at `off` (whole pages; `mprotect`).
    ///
    /// # Safety
    /// Deref hands out slices that assume readable and writable pages: until the range is
    /// read-write again, it must not be accessed through `Deref`/`DerefMut`/`as_typed*` in a
    /// way the protection forbids (that would fault with SIGSEGV).
    ///
    /// # Errors
    /// `Unaligned`, `OutOfRange`, or the kernel's refusal.
    #[doc(alias = "mprotect")]
    pub unsafe fn protect_range(&mut self, off: usize, len: usize, prot: Protection) -> Result<()> {
        // SAFETY: forwarded from the caller.
        unsafe { self.region.protect(off, len, prot) }
    }
}

impl Deref for Memory {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: private anonymous memory of `len` bytes owned by `self`; no other process
        // can write it, and changes in this process need `&mut self`.
        unsafe { std::slice::from_raw_parts(self.region.ptr(), self.region.len()) }
    }
}

impl DerefMut for Memory {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, with `&mut self` exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.region.ptr(), self.region.len()) }
    }
}
