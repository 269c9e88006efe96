//! Who is alive, decided by the kernel: liveness tokens made of open-file-description
//! (OFD) locks on the shared file, never pid or TID numbers.
//!
//! A pid means nothing across PID namespaces (`/proc/PID` in one namespace names another
//! process, or none, in the next) and a TID written into a file outlives the boot that
//! gave it. An OFD lock has neither flaw: the kernel ties it to an open file description
//! and drops it when the last descriptor of that description closes — when its process
//! dies, `kill -9` included; it lives on the inode, so every process that has the file
//! open sees it whatever its namespace; and nothing of it is stored in the file, so after
//! a reboot, or in a copy of the file, no lock is held.
//!
//! Every token is an exclusive lock on one byte far past any data (byte-range locks may
//! lie past the end of a file): [`Owner`] ids at [`OWNER_BASE`]` + id`, the ring's roles
//! at [`ROLE_BASE`]` + role`. Each token uses its own open file description, opened
//! afresh through `/proc/self/fd` (two descriptions conflict even within one process).
//! Wraps `F_OFD_SETLK`/`F_OFD_GETLK` of
//! [`fcntl(2)`](https://man7.org/linux/man-pages/man2/fcntl.2.html) (see `sys::lock`).
//!
//! **`fork`**: a child inherits its parent's descriptors, so a token held at the fork
//! stays held while the parent *or* the child lives. A token is refused in a fork child
//! ([`Owner`] checks a fork counter), and a role lock is released on purpose only by the
//! process that took it.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};

use rustix::io::Errno;

use crate::error::{Error, Op, Result};
use crate::map::Mapping;
use crate::sys::lock::{ofd_is_locked, ofd_try_lock, ofd_unlock, reopen_rw};
use crate::sys::process::fork_generation;

/// The byte an [`Owner`] with id `n` locks: `OWNER_BASE + n` (2^62: far past any data).
pub const OWNER_BASE: u64 = 1 << 62;
/// The bytes a ring's roles lock: `ROLE_BASE` for the producer, `+ 1` for the consumer.
pub(crate) const ROLE_BASE: u64 = OWNER_BASE - 64;
/// The largest owner id: ids fit a robust mutex's 30-bit owner field (and a typed
/// header's state word) and are never its not-recoverable value, `2^30 - 1`.
pub const MAX_OWNER_ID: u32 = 0x3fff_fffe;

fn lock_err(e: Errno, what: &str) -> Error {
    Error::os(Op::Process, e)
        .detail(format!(
            "{what}: {}",
            crate::error::errno_label(e.raw_os_error())
        ))
        .hint("liveness uses OFD locks on the shared file: it must be open read-write and /proc mounted")
}

/// A random id from 1 to [`MAX_OWNER_ID`] (std's `RandomState` is seeded by the OS).
fn random_id() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(fork_generation());
    1 + (h.finish() % u64::from(MAX_OWNER_ID)) as u32
}

/// This process's identity on one shared file: an exclusive OFD lock on the byte
/// [`OWNER_BASE`]` + id`, held until the `Owner` is dropped or the process dies (the kernel
/// releases it then, in any PID namespace). A lock word that names an id whose byte
/// nobody holds names a dead owner — or one from before a reboot, or from the file this
/// one was copied from — and may be taken over.
///
/// The id is drawn at random (one of 2^30 − 1) and claimed exclusively, so two live
/// owners never share one. A word left by a dead owner whose id a new owner happens to
/// draw reads as alive until that owner locks it itself (it then sees its own id held
/// by nobody in its process and takes over) or ends.
///
/// An `Owner` belongs to the process that claimed it: a `fork` child must claim its own
/// (the inherited one is refused with `EINVAL`: its lock is shared with the parent).
/// Threads of one process may share an `Owner`; they exclude each other through the lock
/// word as usual.
#[derive(Debug)]
pub struct Owner {
    /// A description of the file opened for this owner alone; it holds the id's byte.
    fd: OwnedFd,
    id: u32,
    /// `fork_generation()` when claimed: a fork child sees another and refuses it.
    generation: u64,
    /// Robust-mutex guards this owner holds now, over all words and threads.
    held: AtomicUsize,
}

impl Owner {
    /// Claim an owner id on `file` (any descriptor of it: it is opened again, read-write,
    /// through `/proc/self/fd`).
    ///
    /// # Errors
    /// `Os` when the file cannot be opened read-write again (`/proc` missing, a read-only
    /// file) or the kernel refuses the lock (`ENOLCK`).
    pub fn claim(file: impl AsFd) -> Result<Owner> {
        let fd = reopen_rw(file.as_fd())
            .map_err(|e| lock_err(e, "cannot open the shared file again for its owner lock"))?;
        let generation = fork_generation();
        loop {
            let id = random_id();
            if ofd_try_lock(fd.as_fd(), OWNER_BASE + u64::from(id))
                .map_err(|e| lock_err(e, "cannot take an owner lock (F_OFD_SETLK)"))?
            {
                return Ok(Owner {
                    fd,
                    id,
                    generation,
                    held: AtomicUsize::new(0),
                });
            }
        }
    }

    /// Whether this owner was claimed by this process (not copied by `fork`).
    #[cfg(feature = "store")]
    pub(crate) fn is_current(&self) -> bool {
        self.generation == fork_generation()
    }

    /// The id this owner stores in lock words (1 to [`MAX_OWNER_ID`]).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Whether the owner with id `id` lives: its byte is locked (by another description:
    /// our own id is alive by definition). `F_OFD_GETLK`; never a pid.
    ///
    /// # Errors
    /// The kernel's refusal of `F_OFD_GETLK`.
    pub fn is_alive(&self, id: u32) -> Result<bool> {
        if id == self.id {
            return Ok(true);
        }
        ofd_is_locked(self.fd.as_fd(), OWNER_BASE + u64::from(id))
            .map_err(|e| lock_err(e, "cannot test an owner lock (F_OFD_GETLK)"))
    }

    /// `Err(EINVAL)` in a fork child of the process that claimed this owner.
    pub(crate) fn check_fork(&self) -> Result<()> {
        if fork_generation() == self.generation {
            return Ok(());
        }
        Err(Error::os(Op::Process, Errno::INVAL)
            .detail("this Owner was claimed before a fork: its lock is shared with the parent")
            .hint("claim a new Owner in the child"))
    }

    /// Whether some guard of this owner is held now (by any thread of this process).
    pub(crate) fn holds_any(&self) -> bool {
        self.held.load(Ordering::Acquire) != 0
    }

    pub(crate) fn acquired(&self) {
        self.held.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn released(&self) {
        self.held.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An exclusive lock on one role byte of a shared file (a ring's producer or consumer),
/// on a description of its own. Dropping it releases the role (in the process that took
/// it; a fork child's copy only closes its descriptor).
#[derive(Debug)]
pub(crate) struct RoleLock {
    fd: OwnedFd,
    byte: u64,
    generation: u64,
}

impl RoleLock {
    /// Take `byte` of `file` without waiting: `Ok(None)` when a live process holds it.
    pub(crate) fn try_take(file: BorrowedFd<'_>, byte: u64) -> Result<Option<RoleLock>> {
        let fd = reopen_rw(file)
            .map_err(|e| lock_err(e, "cannot open the shared file again for a role lock"))?;
        let generation = fork_generation();
        Ok(ofd_try_lock(fd.as_fd(), byte)
            .map_err(|e| lock_err(e, "cannot take a role lock (F_OFD_SETLK)"))?
            .then_some(RoleLock {
                fd,
                byte,
                generation,
            }))
    }

    /// Whether this process took the lock (not a `fork` child that inherited it).
    pub(crate) fn is_ours(&self) -> bool {
        fork_generation() == self.generation
    }

    /// Whether someone holds `byte` (another role of the same file); on an error,
    /// alive (never call a peer dead without proof).
    pub(crate) fn other_held(&self, byte: u64) -> bool {
        ofd_is_locked(self.fd.as_fd(), byte).unwrap_or(true)
    }
}

impl Drop for RoleLock {
    fn drop(&mut self) {
        if self.is_ours() {
            let _ = ofd_unlock(self.fd.as_fd(), self.byte);
        }
    }
}

/// Whether a live description holds `byte` of the file `fd` (for diagnostics without a
/// role of one's own); on an error, true.
pub(crate) fn byte_held(fd: BorrowedFd<'_>, byte: u64) -> bool {
    ofd_is_locked(fd, byte).unwrap_or(true)
}

/// The file under `map`, opened again read-write: `Ok(None)` for anonymous memory.
///
/// Found through the mapping's path, a descriptor this process has open on it
/// (`/proc/self/fd`), or the mapping itself (`/proc/self/map_files`, which needs
/// `CAP_SYS_ADMIN`); each checked by device and inode to be that file.
///
/// # Errors
/// `NotFound` when it is a file mapping but no way to open the file worked: liveness
/// would then have no lock to rely on, and a pid is no substitute.
pub(crate) fn file_of(map: &Mapping) -> Result<Option<OwnedFd>> {
    let Some(id) = map.file_id() else {
        return Ok(None);
    };
    let mut tries: Vec<std::path::PathBuf> = Vec::new();
    if let Some(p) = map.path() {
        tries.push(p.to_path_buf());
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        tries.extend(dir.filter_map(|e| e.ok()).map(|e| e.path()));
    }
    if let Ok(maps) = crate::proc::self_maps() {
        for m in maps.into_iter().filter(|m| m.inode == id.ino) {
            let (lo, hi) = m.address;
            tries.push(format!("/proc/self/map_files/{lo:x}-{hi:x}").into());
        }
    }
    for p in tries {
        if let Some(file) = id.open(&p, true) {
            return Ok(Some(file.into()));
        }
    }
    Err(Error::new(Op::Open, crate::ErrorKind::NotFound)
        .with_path(map.path())
        .detail("cannot open the mapped file again to lock its liveness bytes")
        .hint("keep a descriptor of the file open while attaching, or map it by path"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    fn file() -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("f"))
            .unwrap();
        (dir, f)
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn owners_are_distinct_alive_while_held_and_dead_once_dropped() {
        let (_d, f) = file();
        let a = Owner::claim(&f).unwrap();
        let b = Owner::claim(&f).unwrap();
        assert_ne!(a.id(), b.id());
        assert!((1..=MAX_OWNER_ID).contains(&a.id()));
        assert!(a.is_alive(b.id()).unwrap() && b.is_alive(a.id()).unwrap());
        assert!(a.is_alive(a.id()).unwrap());
        let gone = b.id();
        drop(b);
        assert!(!a.is_alive(gone).unwrap());
        // Nothing of an owner is in the file: a copy of it holds no lock.
        assert_eq!(f.metadata().unwrap().len(), 0);
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn a_role_lock_admits_one_holder_and_frees_on_drop() {
        let (_d, f) = file();
        let first = RoleLock::try_take(f.as_fd(), ROLE_BASE).unwrap().unwrap();
        assert!(RoleLock::try_take(f.as_fd(), ROLE_BASE).unwrap().is_none());
        let other = RoleLock::try_take(f.as_fd(), ROLE_BASE + 1)
            .unwrap()
            .unwrap();
        assert!(other.other_held(ROLE_BASE) && first.other_held(ROLE_BASE + 1));
        assert!(byte_held(f.as_fd(), ROLE_BASE));
        drop(first);
        assert!(!other.other_held(ROLE_BASE));
        assert!(RoleLock::try_take(f.as_fd(), ROLE_BASE).unwrap().is_some());
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn two_claims_are_two_live_owners() {
        let (_d, f) = file();
        let a = Owner::claim(&f).unwrap();
        let b = Owner::claim(&f).unwrap();
        assert_ne!(a.id(), b.id(), "two claims, two owners");
        assert!(a.is_alive(b.id()).unwrap() && b.is_alive(a.id()).unwrap());
    }
}
