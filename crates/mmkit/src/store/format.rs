//! The log's on-disk format: the header page and the record frame.
//!
//! ```text
//! page 0, the header (4096 bytes, little-endian)
//!   0  magic "MMKITLOG"          8  version u32          12 data offset u32 (4096)
//!   16 flags u32 (0)             20 CRC32C of bytes 0..20
//!   64 meta slot 0, 96 meta slot 1: generation u64, start offset u64, start seq u64,
//!      CRC32C of the 24 bytes; the valid slot with the higher generation is current
//!   128 committed end u64        136 last committed seq u64     (hints, shared)
//!   144 reserved bytes u64 (the file's allocated size, kept by whoever grows it)
//!   152 durable end u64: an offset every byte below which a completed flush made
//!      durable (offset / 8 in bits 16..64, a 16-bit check in bits 0..16; 0 = none)
//!   192 commit events u32 (the futex word)   196 waiters u32     (shared)
//!   200 replaced u32: 1 once a compaction renamed a fresh file over this one
//!   256 the writers' robust lock word (shared writers only)
//!   384 epoch: the boot id (16 bytes), device (u64) and inode (u64) of the last
//!      writer's open; an image from another boot or file system does not match
//! from 4096: records, each at an 8-byte boundary
//!   0 word u32: payload length (bits 0..30), MORE (bit 30: a batch continues), PAD (bit 31)
//!   4 CRC32C u32 of bytes 0..4, 8..16 and the payload
//!   8 seq u64
//!   16 payload, then zeros up to the next 8-byte boundary
//! ```
//!
//! A record is valid when its CRC matches and its length fits the file. Space past the
//! last record is zeros (reserved with `fallocate`), and a zero header is never valid
//! (its CRC is not zero), so the log ends at the first record that is not valid.

/// "MMKITLOG".
pub(crate) const MAGIC: [u8; 8] = *b"MMKITLOG";
/// The format version this build writes. 2: the writers' lock word names an owner the
/// kernel ties to its process (an OFD lock), no longer a thread id; the durable end and
/// the epoch. Version 1 is read too, and a writer that has the file to itself upgrades
/// it (so that no build of version 1, which would read the lock word as a thread id,
/// opens it again); beside a writer of version 1 this build does not write.
pub(crate) const VERSION: u32 = 2;
/// Where the records start: one page of header.
pub(crate) const DATA_START: u64 = 4096;
/// The header page's size.
pub(crate) const HEADER_LEN: usize = 4096;

pub(crate) const META_SLOTS: [usize; 2] = [64, 96];
pub(crate) const COMMITTED_END: usize = 128;
pub(crate) const LAST_SEQ: usize = 136;
pub(crate) const RESERVED: usize = 144;
pub(crate) const DURABLE_END: usize = 152;
pub(crate) const EPOCH: usize = 384;
/// The epoch's bytes: boot id, device, inode.
pub(crate) const EPOCH_LEN: usize = 32;
pub(crate) const EVENTS: usize = 192;
pub(crate) const WAITERS: usize = 196;
pub(crate) const REPLACED: usize = 200;
pub(crate) const WRITE_LOCK: usize = 256;

/// A record's frame before its payload.
pub(crate) const FRAME: usize = 16;
/// The largest payload: 30 bits of length, less the frame.
pub(crate) const MAX_PAYLOAD: usize = (1 << 30) - FRAME - 8;
const LEN_MASK: u32 = (1 << 30) - 1;
const MORE: u32 = 1 << 30;
const PAD: u32 = 1 << 31;

/// CRC32C of `bytes`.
pub(crate) fn crc(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// The bytes a record of `payload` bytes takes, frame and padding included.
pub(crate) fn record_size(payload: usize) -> u64 {
    (FRAME + payload).next_multiple_of(8) as u64
}

/// A record's frame, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame {
    pub(crate) len: u32,
    pub(crate) more: bool,
    pub(crate) pad: bool,
    pub(crate) crc: u32,
    pub(crate) seq: u64,
}

impl Frame {
    pub(crate) fn new(len: usize, seq: u64, more: bool, pad: bool) -> Frame {
        debug_assert!(len <= MAX_PAYLOAD || pad);
        Frame {
            len: len as u32,
            more,
            pad,
            crc: 0,
            seq,
        }
    }

    fn word(&self) -> u32 {
        (self.len & LEN_MASK) | if self.more { MORE } else { 0 } | if self.pad { PAD } else { 0 }
    }

    /// The frame's 16 bytes with the CRC of the frame and `payload` filled in.
    pub(crate) fn encode(&self, payload: &[u8]) -> [u8; FRAME] {
        let mut b = [0u8; FRAME];
        b[0..4].copy_from_slice(&self.word().to_le_bytes());
        b[8..16].copy_from_slice(&self.seq.to_le_bytes());
        let crc = frame_crc(&b, payload);
        b[4..8].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8; FRAME]) -> Frame {
        let word = u32::from_le_bytes(b[0..4].try_into().unwrap());
        Frame {
            len: word & LEN_MASK,
            more: word & MORE != 0,
            pad: word & PAD != 0,
            crc: u32::from_le_bytes(b[4..8].try_into().unwrap()),
            seq: u64::from_le_bytes(b[8..16].try_into().unwrap()),
        }
    }

    /// The bytes this record takes.
    pub(crate) fn size(&self) -> u64 {
        record_size(self.len as usize)
    }
}

/// The CRC a frame's bytes `b` (CRC field ignored) and `payload` must carry.
pub(crate) fn frame_crc(b: &[u8; FRAME], payload: &[u8]) -> u32 {
    let c = crc32c::crc32c(&b[0..4]);
    let c = crc32c::crc32c_append(c, &b[8..16]);
    crc32c::crc32c_append(c, payload)
}

/// The fixed part of the header page (bytes 0..24).
pub(crate) fn encode_fixed() -> [u8; 24] {
    let mut b = [0u8; 24];
    b[0..8].copy_from_slice(&MAGIC);
    b[8..12].copy_from_slice(&VERSION.to_le_bytes());
    b[12..16].copy_from_slice(&(DATA_START as u32).to_le_bytes());
    let c = crc(&b[0..20]);
    b[20..24].copy_from_slice(&c.to_le_bytes());
    b
}

/// Why the fixed header is not one this build reads.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FixedError {
    Magic,
    Newer(u32),
    Damaged,
}

/// Check the fixed header; returns its format version.
pub(crate) fn check_fixed(b: &[u8; 24]) -> Result<u32, FixedError> {
    if b[0..8] != MAGIC {
        return Err(FixedError::Magic);
    }
    let version = u32::from_le_bytes(b[8..12].try_into().unwrap());
    let stored = u32::from_le_bytes(b[20..24].try_into().unwrap());
    if stored != crc(&b[0..20]) {
        return Err(FixedError::Damaged);
    }
    if version > VERSION {
        return Err(FixedError::Newer(version));
    }
    if u32::from_le_bytes(b[12..16].try_into().unwrap()) as u64 != DATA_START || version == 0 {
        return Err(FixedError::Damaged);
    }
    Ok(version)
}

/// The durable-end word for `end`: `end / 8` above a 16-bit check, so that a damaged
/// word reads as no marker rather than as a claim. `end` must be 8-aligned and below
/// 2^51 (2 PiB).
pub(crate) fn encode_durable(end: u64) -> u64 {
    debug_assert!(end % 8 == 0 && end < 1 << 51);
    let high = end / 8;
    (high << 16) | u64::from(durable_check(high))
}

/// The end a durable-end word claims, `None` for no marker or a damaged one.
pub(crate) fn decode_durable(word: u64) -> Option<u64> {
    let high = word >> 16;
    (word != 0 && (word & 0xffff) as u16 == durable_check(high)).then_some(high * 8)
}

fn durable_check(high: u64) -> u16 {
    let c = crc(&high.to_le_bytes());
    // Never 0 for a valid word, so that an all-zero word is never a marker.
    ((c ^ (c >> 16)) as u16) | 1
}

/// One meta slot: where the log starts (moved by `truncate_before`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) generation: u64,
    pub(crate) start: u64,
    pub(crate) start_seq: u64,
}

impl Meta {
    pub(crate) fn encode(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[0..8].copy_from_slice(&self.generation.to_le_bytes());
        b[8..16].copy_from_slice(&self.start.to_le_bytes());
        b[16..24].copy_from_slice(&self.start_seq.to_le_bytes());
        let c = crc(&b[0..24]);
        b[24..28].copy_from_slice(&c.to_le_bytes());
        b
    }

    /// The slot's meta when its CRC holds and it is plausible.
    pub(crate) fn decode(b: &[u8; 32]) -> Option<Meta> {
        let stored = u32::from_le_bytes(b[24..28].try_into().unwrap());
        if stored != crc(&b[0..24]) {
            return None;
        }
        let u = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
        let meta = Meta {
            generation: u(0),
            start: u(8),
            start_seq: u(16),
        };
        (meta.start >= DATA_START && meta.start % 8 == 0 && meta.start_seq >= 1).then_some(meta)
    }

    /// The current meta of two slots: the valid one with the higher generation.
    pub(crate) fn current(slots: [Option<Meta>; 2]) -> Option<(usize, Meta)> {
        match slots {
            [Some(a), Some(b)] if b.generation > a.generation => Some((1, b)),
            [Some(a), _] => Some((0, a)),
            [None, Some(b)] => Some((1, b)),
            [None, None] => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips_and_a_zero_frame_is_invalid() {
        let f = Frame::new(5, 7, true, false);
        let b = f.encode(b"hello");
        let d = Frame::decode(&b);
        assert_eq!((d.len, d.seq, d.more, d.pad), (5, 7, true, false));
        assert_eq!(d.crc, frame_crc(&b, b"hello"));
        assert_ne!(frame_crc(&b, b"hellp"), d.crc);
        let zero = [0u8; FRAME];
        assert_ne!(frame_crc(&zero, &[]), 0, "zeros never pass for a record");
        assert_eq!(record_size(0), 16);
        assert_eq!(record_size(1), 24);
        assert_eq!(record_size(8), 24);
    }

    #[test]
    fn the_fixed_header_and_meta_slots_check_themselves() {
        let fixed = encode_fixed();
        assert_eq!(check_fixed(&fixed), Ok(VERSION));
        let mut bad = fixed;
        bad[0] = b'X';
        assert_eq!(check_fixed(&bad), Err(FixedError::Magic));
        let mut newer = fixed;
        newer[8..12].copy_from_slice(&(VERSION + 1).to_le_bytes());
        let c = crc(&newer[0..20]);
        newer[20..24].copy_from_slice(&c.to_le_bytes());
        assert_eq!(check_fixed(&newer), Err(FixedError::Newer(VERSION + 1)));
        let m = Meta {
            generation: 3,
            start: 4096,
            start_seq: 9,
        };
        let mut b = m.encode();
        assert_eq!(Meta::decode(&b), Some(m));
        b[9] ^= 1;
        assert_eq!(Meta::decode(&b), None);
        for end in [4096u64, 4104, 1 << 40] {
            assert_eq!(decode_durable(encode_durable(end)), Some(end));
            assert_eq!(decode_durable(encode_durable(end) ^ 4), None);
        }
        assert_eq!(decode_durable(0), None);
        let older = Meta { generation: 2, ..m };
        assert_eq!(Meta::current([Some(older), Some(m)]), Some((1, m)));
        assert_eq!(Meta::current([Some(m), None]), Some((0, m)));
    }
}
