//! `/proc/meminfo`, read below every module that asks it (`map` for the huge page size,
//! `probe` and the benches for free memory), so no module reaches up to `probe` for it.

/// A field of `/proc/meminfo`: bytes for `kB` fields, else the bare count
/// (`HugePages_Free`). `None` when the file or the field is missing.
pub fn meminfo(field: &str) -> Option<u64> {
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
}
