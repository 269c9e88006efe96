//! Damaging a file by hand, as a bad sector or a stray write would: the stores' tests
//! (the library's and the CLI's) flip bits in records.

use std::os::unix::fs::FileExt;
use std::path::Path;

/// Flip the bits of `mask` in the byte at `offset` of the file at `path`.
pub fn flip(path: &Path, offset: u64, mask: u8) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, offset).unwrap();
    f.write_all_at(&[b[0] ^ mask], offset).unwrap();
}
