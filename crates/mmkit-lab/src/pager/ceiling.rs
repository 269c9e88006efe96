//! The copy-once ceiling: how fast any pager that copies each page once could scan.
//!
//! A pager hands out private pages, so every byte it serves is copied once from where the
//! source keeps it, while a kernel file mapping maps the page cache as it is and copies
//! nothing. This pass does only that copy and the scan, with nothing of a pager around
//! them: one thread copies the file's kernel mapping into memory touched beforehand, 2 MiB
//! at a time, and the calling thread scans each chunk as soon as it is copied (while it is
//! still in the cache), as a pager's read-ahead threads and its faulting thread do. Its
//! speed over the kernel mapping's is the ratio a pager could reach, at best, on this
//! machine's memory bandwidth.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::bench::scan;

/// Bytes copied before the scanner is handed them: a huge page.
const CHUNK: usize = 2 << 20;

/// Copy `src` into `dest` (as long) on a second thread, chunk by chunk, scanning each
/// chunk on this one once it is copied; the time of the whole and the sum of the words.
pub(super) fn copy_and_scan(src: &[u8], dest: &mut [u8]) -> (Duration, u64) {
    debug_assert_eq!(src.len(), dest.len());
    let start = Instant::now();
    let mut sum = 0u64;
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel::<&[u8]>(src.len() / CHUNK + 1);
        s.spawn(move || {
            for (to, from) in dest.chunks_mut(CHUNK).zip(src.chunks(CHUNK)) {
                to.copy_from_slice(from);
                if tx.send(&*to).is_err() {
                    return;
                }
            }
        });
        for chunk in rx {
            sum = sum.wrapping_add(scan(chunk));
        }
    });
    (start.elapsed(), sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_every_byte_and_sums_as_a_plain_scan() {
        let src: Vec<u8> = (0..(5 * CHUNK + 4096))
            .map(|i| (i * 7 + i / 251) as u8)
            .collect();
        let mut dest = vec![0u8; src.len()];
        let (_, sum) = copy_and_scan(&src, &mut dest);
        assert_eq!(sum, scan(&src));
        assert!(dest == src, "the copy differs from the source");
    }
}
