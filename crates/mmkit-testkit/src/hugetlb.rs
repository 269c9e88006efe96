//! The hugetlb pool for tests that need it: raised as root, and put back (`vm.nr_hugepages`)
//! when the guard drops, even if the test panics.

/// A `vm.*` sysctl's value.
pub fn sysctl(name: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/sys/vm/{name}"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Sets `vm.nr_hugepages` back to what it was when dropped.
#[derive(Debug)]
pub struct PoolGuard(u64);

impl PoolGuard {
    /// Raise the pool to at least `pages` (as root), or `Err(reason)` when it cannot be.
    pub fn raise(pages: u64) -> Result<PoolGuard, String> {
        let euid = effective_uid();
        if euid != 0 {
            return Err("raising vm.nr_hugepages needs root".into());
        }
        let guard = PoolGuard(sysctl("nr_hugepages"));
        if guard.0 < pages {
            std::fs::write("/proc/sys/vm/nr_hugepages", format!("{pages}\n"))
                .map_err(|e| format!("cannot set vm.nr_hugepages: {e}"))?;
        }
        let got = sysctl("nr_hugepages");
        if got < pages {
            return Err(format!("the kernel found {got} of {pages} huge pages"));
        }
        Ok(guard)
    }

    /// Empty the pool (as root) until dropped.
    pub fn empty() -> Result<PoolGuard, String> {
        if effective_uid() != 0 {
            return Err("emptying vm.nr_hugepages needs root".into());
        }
        let guard = PoolGuard(sysctl("nr_hugepages"));
        std::fs::write("/proc/sys/vm/nr_hugepages", "0\n")
            .map_err(|e| format!("cannot set vm.nr_hugepages: {e}"))?;
        Ok(guard)
    }
}

impl Drop for PoolGuard {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write("/proc/sys/vm/nr_hugepages", format!("{}\n", self.0)) {
            eprintln!("could not restore vm.nr_hugepages to {}: {e}", self.0);
        }
    }
}

/// The effective user id, from `/proc/self/status`.
fn effective_uid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse().ok())
        .unwrap_or(u32::MAX)
}
