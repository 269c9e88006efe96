//! Shared by the pager tests: building a pager that may be refused, a source whose
//! every byte depends on its offset, and a file of such bytes to cut under a pager.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mmkit::pager::{FnSource, Pager, PagerOptions, Source};

#[allow(unused_imports)] // Not every pager test runs a peer.
pub(crate) use mmkit_testkit::{peer, skip};

/// Build a pager, or print why userfaultfd is not usable here and return `None`.
pub(crate) fn build(opts: &PagerOptions, src: Arc<dyn Source>) -> Option<Pager> {
    match opts.build(src) {
        Ok(p) => Some(p),
        Err(e) if e.op() == mmkit::Op::Pager && e.errno() == Some(libc::EPERM) => {
            skip(&format!("userfaultfd not allowed here: {e}"));
            None
        }
        Err(e) => panic!("build: {e}"),
    }
}

/// A byte that depends on its whole offset (a hash), so a page at the wrong place shows.
pub(crate) fn hash_byte(off: u64) -> u8 {
    let mut x = off.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    (x ^ (x >> 32)) as u8
}

/// A source of `len` bytes of [`hash_byte`].
pub(crate) fn hashed(len: u64) -> FnSource {
    FnSource::new(len, |off, buf| {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = hash_byte(off + i as u64);
        }
    })
}

/// A file named `data` in `dir` of `len` bytes, none of them zero (so zeros past a cut
/// tell): its path and its bytes.
pub(crate) fn nonzero_file(dir: &Path, len: usize) -> (PathBuf, Vec<u8>) {
    let path = dir.join("data");
    let data: Vec<u8> = (0..len).map(|i| hash_byte(i as u64) | 1).collect();
    std::fs::write(&path, &data).unwrap();
    (path, data)
}

/// Cut the file at `path` to `len` bytes, as another process might under a pager.
pub(crate) fn cut_file(path: &Path, len: usize) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len as u64)
        .unwrap();
}
