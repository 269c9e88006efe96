//! The two `/proc` files the default build reads, parsed by hand so that mapping a file
//! needs no `procfs` crate: `/proc/meminfo` fields and this process's own
//! `/proc/self/maps` areas. The `probe` module (feature `probe`) reads the rest through
//! `procfs`.
//!
//! See [proc_pid_maps(5)](https://man7.org/linux/man-pages/man5/proc_pid_maps.5.html) and
//! [proc_meminfo(5)](https://man7.org/linux/man-pages/man5/proc_meminfo.5.html).

use std::io;
use std::path::PathBuf;

/// A field of `/proc/meminfo`: bytes for `kB` fields, else the bare count
/// (`HugePages_Free`). `None` when the file or the field is missing.
pub(crate) fn meminfo(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .trim();
    match value.strip_suffix("kB") {
        Some(kb) => kb.trim().parse::<u64>().ok().map(|v| v * 1024),
        None => value.parse().ok(),
    }
}

/// One line of `/proc/self/maps`: what the map layer needs of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Area {
    /// `[start, end)` addresses.
    pub(crate) address: (u64, u64),
    /// The inode of the mapped file; 0 for anonymous memory.
    pub(crate) inode: u64,
    /// The file's path when the kernel shows one (a line's last field starting with `/`,
    /// as printed: a deleted file keeps its ` (deleted)` suffix).
    pub(crate) path: Option<PathBuf>,
}

/// This process's areas, from `/proc/self/maps`.
pub(crate) fn self_maps() -> io::Result<Vec<Area>> {
    let text = std::fs::read_to_string("/proc/self/maps")?;
    text.lines()
        .map(|l| {
            parse_area(l).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, format!("maps line {l:?}"))
            })
        })
        .collect()
}

/// `start-end perms offset dev inode [path]`; the path may hold spaces.
fn parse_area(line: &str) -> Option<Area> {
    let mut rest = line;
    let mut field = || {
        let s = rest.trim_start();
        let end = s.find(' ').unwrap_or(s.len());
        let (f, r) = s.split_at(end);
        rest = r;
        Some(f).filter(|f| !f.is_empty())
    };
    let (lo, hi) = field()?.split_once('-')?;
    let address = (
        u64::from_str_radix(lo, 16).ok()?,
        u64::from_str_radix(hi, 16).ok()?,
    );
    let (_perms, _offset, _dev) = (field()?, field()?, field()?);
    let inode = field()?.parse().ok()?;
    let name = rest.trim_start();
    let path = name.starts_with('/').then(|| PathBuf::from(name));
    Some(Area {
        address,
        inode,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_reads_kb_fields_and_counts() {
        let total = meminfo("MemTotal").expect("MemTotal");
        assert!(total > 64 << 20 && total % 1024 == 0, "{total}");
        // A bare count, not kB: it must not be multiplied.
        let pages = meminfo("HugePages_Total").expect("HugePages_Total");
        assert!(pages < total);
        assert_eq!(
            meminfo("MemTot"),
            None,
            "prefixes of a field are not the field"
        );
        assert_eq!(meminfo("NoSuchField"), None);
    }

    #[test]
    fn maps_lines_parse_with_and_without_paths() {
        let a =
            parse_area("7f00-7f10 r--p 00001000 08:01 1234   /a dir/with space (deleted)").unwrap();
        assert_eq!(a.address, (0x7f00, 0x7f10));
        assert_eq!(a.inode, 1234);
        assert_eq!(a.path, Some(PathBuf::from("/a dir/with space (deleted)")));
        let heap = parse_area("55aa-55bb rw-p 00000000 00:00 0   [heap]").unwrap();
        assert_eq!((heap.inode, heap.path), (0, None));
        let anon = parse_area("55aa-55bb rw-p 00000000 00:00 0").unwrap();
        assert_eq!(anon.path, None);
        assert_eq!(parse_area("garbage"), None);
    }

    #[test]
    fn self_maps_holds_this_function() {
        let here = self_maps_holds_this_function as fn() as usize as u64;
        let maps = self_maps().unwrap();
        assert!(maps
            .iter()
            .any(|a| a.address.0 <= here && here < a.address.1 && a.path.is_some()));
    }
}
