//! A small tmpfs mounted for one test, to fill a file system up (root only).

use std::path::Path;

/// A tmpfs of a given size mounted on a temporary directory, unmounted on drop.
#[derive(Debug)]
pub struct SmallTmpfs {
    pub dir: tempfile::TempDir,
}

impl SmallTmpfs {
    /// Mount a tmpfs of `size` (`mount -o size=`, e.g. `"256k"`); `None` when that fails
    /// (not root, no `mount`, or a container that forbids it).
    pub fn mount(size: &str) -> Option<SmallTmpfs> {
        let dir = tempfile::tempdir().expect("tempdir");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallTmpfs { dir })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fill the file system with a file `fill` until it refuses a page.
    pub fn fill(&self) {
        self.fill_with("fill", usize::MAX);
    }

    /// Write a file `name` of up to `max` bytes, a page at a time, until the file system
    /// refuses a page; returns the bytes written.
    pub fn fill_with(&self, name: &str, max: usize) -> usize {
        use std::io::Write;
        let page = crate::page();
        let mut f = std::fs::File::create(self.path().join(name)).expect("create fill");
        let mut written = 0;
        while written < max && f.write_all(&vec![1u8; page]).is_ok() {
            written += page;
        }
        written
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
