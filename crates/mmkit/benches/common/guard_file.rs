//! The file both guard benches copy from: 64 MiB of a known pattern in a temporary
//! directory, mapped and populated (warm, every page present).

use mmkit::{MapOptions, Mapping};

/// The file's size.
pub(crate) const FILE_LEN: usize = 64 << 20;

/// The directory (removed on drop) and a populated mapping of the file in it.
pub(crate) fn guard_file() -> (tempfile::TempDir, Mapping) {
    let dir = tempfile::tempdir_in(std::env::temp_dir()).expect("temp dir");
    let path = dir.path().join("guard.dat");
    std::fs::write(
        &path,
        (0..FILE_LEN).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
    )
    .expect("write");
    let map = MapOptions::new().populate().map_path(&path).expect("map");
    (dir, map)
}
