//! Reading a log's records back from its bytes without trusting any of them: the scan
//! that recovery on open and `check` share.
//!
//! The scan walks frames from the log's start. A frame is taken when its CRC holds, its
//! length fits the file, and its sequence number is the next one (a pad, which marks a
//! salvaged hole, moves the next number past the hole). The records of a batch carry
//! MORE on all but the last; a batch counts only once its last record is there.
//!
//! At a frame that is not valid the scan either ends cleanly (a zero frame with only zeros
//! after it: the reserved space past the last record) or has found damage (a zeroed
//! stretch in the middle of the records is damage too). Then it looks for the next valid
//! frame at every 8-byte boundary after it (resync) with a sequence number not below the
//! expected one; the damage spans the bytes in between. No valid frame after it: the
//! damage is a torn tail, spanning up to the last non-zero byte.
//!
//! # Torn writes after a power cut
//!
//! After a power cut the file holds, past the last completed flush, any subset of the
//! pages (or of the disk's 512-byte sectors) written since: a sector that did not reach
//! storage holds what it held at that flush, which past the log's end is zeros (space is
//! reserved with `fallocate`, every append clears the frame after it, and recovery
//! flushes the cuts it makes). So damage at or past the *durable end* (the header's
//! marker of what a completed flush covered, `format::DURABLE_END`) that shows a zeroed
//! sector, in [`tear_at`]'s sense, is an interrupted write: the log ends before it, with
//! the batch it interrupted, and the intact records after it (written later, never
//! flushed, never acknowledged as durable) go with it. A batch is then whole or absent.
//! Damage below the durable end, or without a zeroed sector (a flipped byte), is damage,
//! as above.

use crate::store::format::{frame_crc, Frame, FRAME, MAX_PAYLOAD};
use crate::store::Seq;

/// A stretch of intact records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Run {
    pub(crate) start: u64,
    /// Just past the last complete batch.
    pub(crate) end: u64,
    pub(crate) first_seq: Seq,
    /// The sequence number after the run's last record (or pad).
    pub(crate) next_seq: Seq,
    pub(crate) records: u64,
}

/// Damaged bytes between two runs, or after the last one (a torn tail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bad {
    pub(crate) offset: u64,
    pub(crate) end: u64,
    /// The first sequence number that was expected at `offset`.
    pub(crate) first_lost: Seq,
}

/// What a scan found: `runs[0]` begins at the log's start; `bad[i]` follows `runs[i]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scan {
    pub(crate) runs: Vec<Run>,
    pub(crate) bad: Vec<Bad>,
    /// The last `bad` is a write torn by a power cut (past the durable end), not damage:
    /// it ends the log, and `after_tear` intact records written after it go with it.
    pub(crate) torn: bool,
    /// Intact records found after a torn write (never flushed: they are cut with it).
    pub(crate) after_tear: u64,
}

impl Scan {
    pub(crate) fn last_run(&self) -> &Run {
        self.runs.last().expect("a scan has at least one run")
    }
}

/// Scan `bytes` (the whole file) from `start`, where `start_seq` is expected.
/// `durable` is the durable end (see the module's docs; `start` when unknown): every
/// byte below it was flushed, so damage there is damage, and a batch that reaches into
/// it was whole.
pub(crate) fn scan(bytes: &[u8], start: u64, start_seq: Seq, durable: u64) -> Scan {
    let mut runs = Vec::new();
    let mut bad = Vec::new();
    let (mut at, mut seq) = (start, start_seq);
    loop {
        let (mut run, open) = walk(bytes, at, seq);
        let stop = open.end;
        // Zeros to the end of the file: the reserved space past the last record. A zero
        // frame with bytes after it is damage (a zeroed or unwritten stretch), and the
        // records after it are looked for as after any other damage.
        let clean = open.records == 0 && is_zero_frame(bytes, stop) && is_zero_from(bytes, stop);
        if clean {
            runs.push(run);
            break;
        }
        let resumed = resync(bytes, stop + FRAME as u64, open.next_seq);
        let next_at = resumed.map(|(off, _)| off);
        if stop >= durable && tear_at(bytes, stop, open.next_seq, next_at) {
            // A write torn by a power cut: the log ends with the last whole batch.
            runs.push(run);
            return torn_scan(bytes, runs, bad, resumed.map(|(off, f)| (off, f.seq)));
        }
        // An unfinished batch (MORE on its last frame walked) was whole when it reaches
        // below the durable end (a flush covered it), or when intact records follow
        // damage that is no torn write: then only the damage is lost, not the records
        // before it.
        if open.records > 0 && (stop < durable || resumed.is_some()) {
            run.end = open.end;
            run.next_seq = open.next_seq;
            run.records += open.records;
        }
        let (from, first_lost) = (run.end, run.next_seq);
        runs.push(run);
        match resumed {
            Some((off, frame)) => {
                bad.push(Bad {
                    offset: from,
                    end: off,
                    first_lost,
                });
                at = off;
                seq = frame.seq;
            }
            None => {
                bad.extend(tail(bytes, from, first_lost));
                break;
            }
        }
    }
    Scan {
        runs,
        bad,
        torn: false,
        after_tear: 0,
    }
}

/// The scan of a log that ends with a write torn by a power cut: `runs` ends with the
/// last whole batch's run; what follows it is the torn tail, and `resumed` (the offset
/// and number of an intact frame after the tear) is where the records written after
/// the torn write start, which are counted and dropped.
fn torn_scan(bytes: &[u8], runs: Vec<Run>, mut bad: Vec<Bad>, resumed: Option<(u64, Seq)>) -> Scan {
    let last = runs.last().expect("the run before the tear");
    let (from, first_lost) = (last.end, last.next_seq);
    let after_tear = resumed.map_or(0, |(off, seq)| {
        let rest = scan(bytes, off, seq, u64::MAX);
        rest.runs.iter().map(|r| r.records).sum()
    });
    let tail = tail(bytes, from, first_lost);
    let torn = tail.is_some();
    bad.extend(tail);
    Scan {
        runs,
        bad,
        torn,
        after_tear,
    }
}

/// The torn tail from `from` (where `first_lost` was expected) to the last non-zero
/// byte, if anything is there.
fn tail(bytes: &[u8], from: u64, first_lost: Seq) -> Option<Bad> {
    let end = last_nonzero_end(bytes, from).max(from);
    (end > from).then_some(Bad {
        offset: from,
        end,
        first_lost,
    })
}

/// The disk's unit of an atomic write: what a power cut tears a write into.
const SECTOR: usize = 512;

/// Whether the invalid frame at `at`, where record `seq` was expected, shows what a
/// write interrupted by a power cut leaves (see the module's docs): the bytes from `at`
/// to the next sector boundary are all zero (the frame never reached storage); or the
/// frame is the expected one and a sector inside the record it claims, before the next
/// valid frame (at `next`, if any), is all zero (a later part of it never did); or the
/// frame's second half, past a sector boundary, is zeros with the whole sector. A
/// flipped byte shows none of these (a flipped length claims a record that runs past
/// the next valid frame); a damaged record whose payload holds 512 zero bytes on a
/// sector boundary is taken for a torn write (only past the durable end, where nothing
/// was acknowledged as durable).
pub(crate) fn tear_at(bytes: &[u8], at: u64, seq: Seq, next: Option<u64>) -> bool {
    let Ok(at) = usize::try_from(at) else {
        return false;
    };
    if at >= bytes.len() {
        return false;
    }
    let boundary = (at + 1).next_multiple_of(SECTOR).min(bytes.len());
    if is_zero(&bytes[at..boundary]) {
        return true;
    }
    let Some(head) = bytes.get(at..at + FRAME) else {
        return false;
    };
    let f = Frame::decode(head.try_into().expect("a frame"));
    let claimed = usize::try_from(f.size()).map_or(usize::MAX, |size| at.saturating_add(size));
    let expected = f.seq == seq && !f.pad && f.len as usize <= MAX_PAYLOAD;
    let next = next
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(usize::MAX);
    // A frame that is not the expected one may be torn inside itself only.
    let end = if expected { claimed } else { at + FRAME }
        .min(next)
        .min(bytes.len());
    let mut s = boundary;
    while s < end {
        if is_zero(&bytes[s..(s + SECTOR).min(bytes.len())]) {
            return true;
        }
        s += SECTOR;
    }
    false
}

fn is_zero(bytes: &[u8]) -> bool {
    bytes.chunks(ZEROS.len()).all(|c| c == &ZEROS[..c.len()])
}

/// Where a walk stopped: past its last valid frame, with the records of a batch still
/// open there (MORE set on its last frame), if any.
struct Open {
    end: u64,
    next_seq: Seq,
    records: u64,
}

/// Walk valid frames from `at`; returns the run up to its last complete batch, and the
/// batch left open where walking stopped.
fn walk(bytes: &[u8], mut at: u64, mut seq: Seq) -> (Run, Open) {
    let mut run = Run {
        start: at,
        end: at,
        first_seq: seq,
        next_seq: seq,
        records: 0,
    };
    let mut pending = 0;
    while let Some(f) = valid_frame(bytes, at, Some(seq)) {
        at += f.size();
        seq = f.seq + 1;
        if !f.pad {
            pending += 1;
        }
        if !f.more {
            run.end = at;
            run.next_seq = seq;
            run.records += pending;
            pending = 0;
        }
    }
    let open = Open {
        end: at,
        next_seq: seq,
        records: pending,
    };
    (run, open)
}

/// The frame at `at` when it is valid and (with `expect`) carries the expected number.
pub(crate) fn valid_frame(bytes: &[u8], at: u64, expect: Option<Seq>) -> Option<Frame> {
    let at = usize::try_from(at).ok()?;
    let head: &[u8; FRAME] = bytes.get(at..at.checked_add(FRAME)?)?.try_into().ok()?;
    let f = Frame::decode(head);
    if !f.pad && f.len as usize > MAX_PAYLOAD {
        return None;
    }
    match expect {
        Some(e) if f.pad => (f.seq.checked_add(1)? >= e).then_some(())?,
        Some(e) => (f.seq == e).then_some(())?,
        None => {}
    }
    let payload = bytes.get(at + FRAME..(at + FRAME).checked_add(f.len as usize)?)?;
    let size = usize::try_from(f.size()).ok()?;
    if at.checked_add(size)? > bytes.len() || frame_crc(head, payload) != f.crc {
        return None;
    }
    Some(f)
}

/// The next valid frame at an 8-byte boundary from `from`, numbered `min_seq` or later
/// (and not absurdly later).
fn resync(bytes: &[u8], from: u64, min_seq: Seq) -> Option<(u64, Frame)> {
    const SEQ_WINDOW: u64 = 1 << 40;
    let mut at = usize::try_from(from.next_multiple_of(8)).ok()?;
    while at + FRAME <= bytes.len() {
        let head: &[u8; FRAME] = bytes[at..at + FRAME].try_into().ok()?;
        if head.iter().all(|&b| b == 0) {
            at += 8;
            continue;
        }
        let f = Frame::decode(head);
        let plausible =
            f.seq >= min_seq.saturating_sub(1) && f.seq - min_seq.saturating_sub(1) < SEQ_WINDOW;
        if plausible {
            if let Some(f) = valid_frame(bytes, at as u64, None) {
                if f.pad || f.seq >= min_seq {
                    return Some((at as u64, f));
                }
            }
        }
        at += 8;
    }
    None
}

fn is_zero_frame(bytes: &[u8], at: u64) -> bool {
    let Ok(at) = usize::try_from(at) else {
        return true;
    };
    match bytes.get(at..at.saturating_add(FRAME)) {
        Some(head) => head.iter().all(|&b| b == 0),
        None => true, // the end of the file: nothing more was written
    }
}

/// Whether every byte from `from` to the end is zero.
fn is_zero_from(bytes: &[u8], from: u64) -> bool {
    let from = usize::try_from(from)
        .unwrap_or(bytes.len())
        .min(bytes.len());
    is_zero(&bytes[from..])
}

/// Compared against a page at a time (`memcmp`).
static ZEROS: [u8; 4096] = [0; 4096];

/// Just past the last non-zero byte at or after `from`, rounded up to 8.
fn last_nonzero_end(bytes: &[u8], from: u64) -> u64 {
    let from = usize::try_from(from)
        .unwrap_or(bytes.len())
        .min(bytes.len());
    // The last page-sized chunk that is not all zero, then the byte in it.
    let rest = &bytes[from..];
    let mut upto = rest.len();
    while upto > 0 {
        let lo = upto.saturating_sub(ZEROS.len());
        if rest[lo..upto] != ZEROS[..upto - lo] {
            break;
        }
        upto = lo;
    }
    match rest[..upto].iter().rposition(|&b| b != 0) {
        Some(i) => ((from + i + 1) as u64)
            .next_multiple_of(8)
            .min(bytes.len() as u64),
        None => from as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::format::record_size;

    fn log_of(records: &[(&[u8], Seq, bool)], len: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; len];
        let mut at = 0;
        for (payload, seq, more) in records {
            let frame = Frame::new(payload.len(), *seq, *more, false).encode(payload);
            bytes[at..at + FRAME].copy_from_slice(&frame);
            bytes[at + FRAME..at + FRAME + payload.len()].copy_from_slice(payload);
            at += record_size(payload.len()) as usize;
        }
        bytes
    }

    #[test]
    fn a_clean_log_is_one_run() {
        let bytes = log_of(&[(b"a", 1, false), (b"bcdefghij", 2, false)], 256);
        let s = scan(&bytes, 0, 1, 0);
        assert!(s.bad.is_empty(), "{s:?}");
        assert_eq!(s.runs.len(), 1);
        assert_eq!(
            (s.runs[0].end, s.runs[0].next_seq, s.runs[0].records),
            (24 + 32, 3, 2)
        );
    }

    #[test]
    fn a_torn_tail_is_bad_after_the_last_run() {
        let mut bytes = log_of(&[(b"a", 1, false), (b"bcdefghij", 2, false)], 256);
        bytes[24 + 20] ^= 0xff; // the second record's payload
        let s = scan(&bytes, 0, 1, 0);
        assert_eq!(s.runs.len(), 1);
        assert_eq!(s.runs[0].records, 1);
        assert_eq!(
            s.bad,
            vec![Bad {
                offset: 24,
                end: 56,
                first_lost: 2
            }]
        );
    }

    /// Of three records, the second (bytes 24..48) is lost and the third found again.
    fn assert_second_of_three_lost(s: &Scan) {
        assert_eq!(s.runs.len(), 2, "{s:?}");
        assert_eq!(
            s.bad[0],
            Bad {
                offset: 24,
                end: 48,
                first_lost: 2
            }
        );
        assert_eq!((s.runs[1].first_seq, s.runs[1].records), (3, 1));
    }

    #[test]
    fn damage_in_the_middle_resyncs_to_the_next_record() {
        let mut bytes = log_of(&[(b"a", 1, false), (b"b", 2, false), (b"c", 3, false)], 256);
        bytes[24] ^= 1; // the second record's length
        assert_second_of_three_lost(&scan(&bytes, 0, 1, 0));
    }

    #[test]
    fn a_zeroed_record_in_the_middle_is_damage_not_the_end() {
        let mut bytes = log_of(&[(b"a", 1, false), (b"b", 2, false), (b"c", 3, false)], 256);
        bytes[24..48].fill(0); // the whole second record
        assert_second_of_three_lost(&scan(&bytes, 0, 1, 0));
        // Stray bytes far past the last record, with no record after them: a torn tail.
        let mut bytes = log_of(&[(b"a", 1, false)], 256);
        bytes[200] = 7;
        let s = scan(&bytes, 0, 1, 0);
        assert_eq!((s.runs.len(), s.bad.len()), (1, 1), "{s:?}");
        assert_eq!((s.bad[0].offset, s.bad[0].end), (24, 208));
    }

    #[test]
    fn an_unfinished_batch_does_not_count() {
        let bytes = log_of(&[(b"a", 1, false), (b"b", 2, true), (b"c", 3, true)], 256);
        let s = scan(&bytes, 0, 1, 0);
        assert_eq!(
            (s.runs[0].end, s.runs[0].records, s.runs[0].next_seq),
            (24, 1, 2)
        );
        assert_eq!(
            s.bad,
            vec![Bad {
                offset: 24,
                end: 72,
                first_lost: 2
            }]
        );
        assert!(s.torn, "zeros past an unfinished batch: a torn write");
        // Below the durable end the batch had been flushed whole: damage after it does
        // not take it along.
        let s = scan(&bytes, 0, 1, 80);
        assert_eq!((s.runs[0].end, s.runs[0].records), (72, 3));
        assert!(!s.torn);
    }

    /// A log of `n` records of 200 bytes each from offset 0.
    fn records_of(n: u64, len: usize) -> (Vec<u8>, Vec<(u64, u64)>) {
        let payloads: Vec<Vec<u8>> = (1..=n).map(|i| vec![i as u8 | 1; 200]).collect();
        let recs: Vec<(&[u8], Seq, bool)> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| (&p[..], i as Seq + 1, false))
            .collect();
        let mut spans = Vec::new();
        let mut at = 0;
        for p in &payloads {
            let size = record_size(p.len());
            spans.push((at, at + size));
            at += size;
        }
        (log_of(&recs, len), spans)
    }

    #[test]
    fn a_page_lost_to_a_power_cut_ends_the_log_past_the_durable_end() {
        // 60 records of 216 bytes (12960 bytes); the page 4096..8192 never reached the
        // disk, the pages after it did.
        let (mut bytes, spans) = records_of(60, 16384);
        bytes[4096..8192].fill(0);
        let first_hit = spans.iter().position(|&(_, end)| end > 4096).unwrap();
        let s = scan(&bytes, 0, 1, 0);
        assert!(s.torn, "{s:?}");
        assert_eq!(s.runs.len(), 1);
        assert_eq!(s.runs[0].records, first_hit as u64);
        assert_eq!(s.bad[0].offset, spans[first_hit].0);
        let after = spans.iter().filter(|&&(lo, _)| lo >= 8192).count() as u64;
        assert_eq!(
            s.after_tear, after,
            "the intact records written after the tear"
        );
        // The same bytes below the durable end: damage, with the records after it kept.
        let s = scan(&bytes, 0, 1, 12960);
        assert!(!s.torn);
        assert_eq!(s.runs.len(), 2, "{s:?}");
        // A sector of the tail of one record (all but the frame reached the disk).
        let (mut bytes, spans) = records_of(60, 16384);
        let (lo, _) = spans
            .iter()
            .copied()
            .find(|&(lo, hi)| lo % 512 != 0 && (hi - 1) / 512 > lo / 512)
            .unwrap();
        let sector = (lo / 512 + 1) * 512;
        bytes[sector as usize..(sector + 512) as usize].fill(0);
        let s = scan(&bytes, 0, 1, lo);
        assert!(s.torn, "{s:?}");
        assert_eq!(s.bad[0].offset, lo);
    }

    #[test]
    fn a_flipped_byte_past_the_durable_end_is_damage_not_a_tear() {
        let (mut bytes, spans) = records_of(60, 16384);
        bytes[spans[30].0 as usize + 40] ^= 0x10;
        let s = scan(&bytes, 0, 1, 0);
        assert!(!s.torn);
        assert_eq!(s.runs.len(), 2, "{s:?}");
        assert_eq!(s.runs[1].first_seq, 32);
        // An unwritten frame that reaches a sector boundary is a tear, a zeroed frame
        // with bytes after it in its sector is not.
        assert!(tear_at(&bytes, 12960, 61, None));
        let (mut bytes, spans) = records_of(60, 16384);
        let (lo, _) = spans
            .iter()
            .copied()
            .find(|&(lo, _)| lo % 512 < 256)
            .unwrap();
        bytes[lo as usize..lo as usize + 16].fill(0);
        assert!(!tear_at(&bytes, lo, 1 + lo / 216, None));
    }

    #[test]
    fn damage_inside_a_batch_keeps_the_records_before_it_when_records_follow() {
        let mut bytes = log_of(
            &[
                (b"a", 1, true),
                (b"b", 2, true),
                (b"c", 3, false),
                (b"d", 4, false),
            ],
            256,
        );
        bytes[48 + 16] ^= 1; // record 3's payload
        let s = scan(&bytes, 0, 1, 0);
        assert_eq!((s.runs[0].records, s.runs[0].next_seq), (2, 3), "{s:?}");
        assert_eq!(
            s.bad,
            vec![Bad {
                offset: 48,
                end: 72,
                first_lost: 3
            }]
        );
        assert_eq!(s.runs[1].first_seq, 4);
    }
}
