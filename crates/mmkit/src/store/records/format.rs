//! The record file's on-disk format: the header page, the length slots and the record
//! slots.
//!
//! ```text
//! page 0, the header (4096 bytes, little-endian)
//!   0  magic "MMKITREC"          8  version u32          12 data offset u32 (4096)
//!   16 record size u32 (T's)     20 slot size u32        24 type tag u64 (the caller's)
//!   32 CRC32C u32 of bytes 0..32
//!   64 length slot 0, 96 length slot 1: generation u64, record count u64, CRC32C u32 of
//!      the 16 bytes; the valid slot with the higher generation holds the length
//! from 4096: record i's two slots, A at 4096 + i * 2 * slot size, B right after it
//!   0  generation u64: 1 for the first value, one more for each update
//!   8  CRC32C u32 of the record's index (u64), the generation and the T bytes
//!   12 zero u32
//!   16 the T bytes, then zeros up to the next 8-byte boundary
//! ```
//!
//! A slot is *valid* when its generation is not 0 and its CRC matches, *empty* when all
//! its bytes are zero (never written), and *damaged* otherwise. A zero slot never
//! passes for a valid one (generation 0 is never written). The index in the CRC makes a
//! slot copied to another record's place fail its check.

/// "MMKITREC".
pub(crate) const MAGIC: [u8; 8] = *b"MMKITREC";
/// The log's magic, to name it when a log is opened as a record file.
pub(crate) const LOG_MAGIC: [u8; 8] = *b"MMKITLOG";
/// The format version this build writes and reads.
pub(crate) const VERSION: u32 = 1;
/// The header page's size, and where the records start.
pub(crate) const HEADER_LEN: usize = 4096;
/// The header bytes the fixed part's CRC covers.
const FIXED: usize = 32;
/// Where the two length slots live in the header.
pub(crate) const LEN_SLOTS: [usize; 2] = [64, 96];
/// A length slot's bytes.
pub(crate) const LEN_SLOT: usize = 24;
/// A record slot's bytes before the value.
pub(crate) const SLOT_HEAD: usize = 16;

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(b[i..i + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(b[i..i + 8].try_into().unwrap())
}

/// The bytes one slot of a `record`-byte value takes; `None` when that does not fit the
/// format's u32.
pub(crate) fn slot_size(record: usize) -> Option<usize> {
    let slot = SLOT_HEAD.checked_add(record.checked_next_multiple_of(8)?)?;
    u32::try_from(slot).ok().map(|_| slot)
}

/// The fixed part of the header: what a file holds and how it is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fixed {
    pub(crate) version: u32,
    pub(crate) record_size: u32,
    pub(crate) slot_size: u32,
    pub(crate) type_tag: u64,
}

/// Why a header is not one this build reads for this `T`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FixedError {
    /// Fewer bytes than the header page.
    Short(usize),
    /// Not a record file: the magic found.
    Magic([u8; 8]),
    /// A newer format version.
    Newer(u32),
    /// The CRC or the layout fields do not hold.
    Damaged,
}

impl Fixed {
    /// A header page for records of `record_size` bytes, tagged `type_tag`, holding
    /// no records (length slot 0 has generation 1 and length 0).
    pub(crate) fn new_page(record_size: u32, slot_size: u32, type_tag: u64) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        b[16..20].copy_from_slice(&record_size.to_le_bytes());
        b[20..24].copy_from_slice(&slot_size.to_le_bytes());
        b[24..32].copy_from_slice(&type_tag.to_le_bytes());
        let c = crc32c::crc32c(&b[0..FIXED]);
        b[FIXED..FIXED + 4].copy_from_slice(&c.to_le_bytes());
        let first = LenSlot {
            generation: 1,
            len: 0,
        };
        b[LEN_SLOTS[0]..LEN_SLOTS[0] + LEN_SLOT].copy_from_slice(&first.encode());
        b
    }

    /// Decode the header `b` (the file's first bytes, up to a page).
    pub(crate) fn decode(b: &[u8]) -> Result<Fixed, FixedError> {
        if b.len() < 8 || b[0..8] != MAGIC {
            let mut magic = [0u8; 8];
            let n = b.len().min(8);
            magic[..n].copy_from_slice(&b[..n]);
            return match b.len() {
                n if n < 8 && MAGIC.starts_with(&b[..n]) => Err(FixedError::Short(n)),
                _ => Err(FixedError::Magic(magic)),
            };
        }
        if b.len() < HEADER_LEN {
            return Err(FixedError::Short(b.len()));
        }
        let version = u32_at(b, 8);
        if u32_at(b, FIXED) != crc32c::crc32c(&b[0..FIXED]) {
            return Err(FixedError::Damaged);
        }
        if version > VERSION {
            return Err(FixedError::Newer(version));
        }
        let fixed = Fixed {
            version,
            record_size: u32_at(b, 16),
            slot_size: u32_at(b, 20),
            type_tag: u64_at(b, 24),
        };
        let layout_holds = version != 0
            && u32_at(b, 12) as usize == HEADER_LEN
            && slot_size(fixed.record_size as usize) == Some(fixed.slot_size as usize);
        if !layout_holds {
            return Err(FixedError::Damaged);
        }
        Ok(fixed)
    }
}

/// One length slot: how many records the file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LenSlot {
    pub(crate) generation: u64,
    pub(crate) len: u64,
}

impl LenSlot {
    pub(crate) fn encode(&self) -> [u8; LEN_SLOT] {
        let mut b = [0u8; LEN_SLOT];
        b[0..8].copy_from_slice(&self.generation.to_le_bytes());
        b[8..16].copy_from_slice(&self.len.to_le_bytes());
        let c = crc32c::crc32c(&b[0..16]);
        b[16..20].copy_from_slice(&c.to_le_bytes());
        b
    }

    /// The slot when its CRC holds and its generation is not 0.
    pub(crate) fn decode(b: &[u8]) -> Option<LenSlot> {
        let slot = LenSlot {
            generation: u64_at(b, 0),
            len: u64_at(b, 8),
        };
        (slot.generation != 0 && u32_at(b, 16) == crc32c::crc32c(&b[0..16])).then_some(slot)
    }

    /// The current length of the header page `b`: the valid slot with the higher
    /// generation, and which slot that is.
    pub(crate) fn current(b: &[u8]) -> Option<(usize, LenSlot)> {
        let [a, z] = LEN_SLOTS.map(|at| LenSlot::decode(&b[at..at + LEN_SLOT]));
        match (a, z) {
            (Some(a), Some(z)) if z.generation > a.generation => Some((1, z)),
            (Some(a), _) => Some((0, a)),
            (None, Some(z)) => Some((1, z)),
            (None, None) => None,
        }
    }
}

/// What one record slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// All zeros: never written.
    Empty,
    /// A value of this generation, checksum intact.
    Valid(u64),
    /// Anything else: a torn write or damage.
    Damaged,
}

/// The CRC a slot of record `index` with `generation` and `value` must carry.
fn slot_crc(index: u64, generation: u64, value: &[u8]) -> u32 {
    let c = crc32c::crc32c(&index.to_le_bytes());
    let c = crc32c::crc32c_append(c, &generation.to_le_bytes());
    crc32c::crc32c_append(c, value)
}

/// Fill `out` (one slot's bytes) with `value` of record `index` at `generation`.
pub(crate) fn encode_slot(out: &mut [u8], index: u64, generation: u64, value: &[u8]) {
    debug_assert!(out.len() >= SLOT_HEAD + value.len() && generation != 0);
    out.fill(0);
    out[0..8].copy_from_slice(&generation.to_le_bytes());
    out[8..12].copy_from_slice(&slot_crc(index, generation, value).to_le_bytes());
    out[SLOT_HEAD..SLOT_HEAD + value.len()].copy_from_slice(value);
}

/// Classify the slot `b` of record `index` holding `record`-byte values.
pub(crate) fn decode_slot(b: &[u8], index: u64, record: usize) -> Slot {
    let generation = u64_at(b, 0);
    let value = &b[SLOT_HEAD..SLOT_HEAD + record];
    if generation != 0 && u32_at(b, 8) == slot_crc(index, generation, value) {
        Slot::Valid(generation)
    } else if b.iter().all(|&x| x == 0) {
        Slot::Empty
    } else {
        Slot::Damaged
    }
}

/// What a record's two slots say, read together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Record {
    /// Both slots empty: the record was never written.
    Empty,
    /// The value is in slot `slot` (0 = A, 1 = B) with `generation`; `fell_back` when
    /// the other slot is damaged (what a torn update leaves: the value is the previous
    /// one).
    Value {
        slot: usize,
        generation: u64,
        fell_back: bool,
    },
    /// No slot is valid, and not both are empty.
    Damaged,
}

/// Decide record `index` from its two slots `pair` (2 * `slot` bytes).
pub(crate) fn decode_record(pair: &[u8], slot: usize, index: u64, record: usize) -> Record {
    let a = decode_slot(&pair[..slot], index, record);
    let b = decode_slot(&pair[slot..2 * slot], index, record);
    let value = |slot, generation, other| Record::Value {
        slot,
        generation,
        fell_back: other == Slot::Damaged,
    };
    match (a, b) {
        (Slot::Valid(ga), Slot::Valid(gb)) if gb > ga => value(1, gb, a),
        (Slot::Valid(ga), _) => value(0, ga, b),
        (_, Slot::Valid(gb)) => value(1, gb, a),
        (Slot::Empty, Slot::Empty) => Record::Empty,
        _ => Record::Damaged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_checks_itself() {
        let page = Fixed::new_page(12, 32, 7);
        let fixed = Fixed::decode(&page).unwrap();
        assert_eq!(
            (fixed.record_size, fixed.slot_size, fixed.type_tag),
            (12, 32, 7)
        );
        assert_eq!(
            LenSlot::current(&page),
            Some((
                0,
                LenSlot {
                    generation: 1,
                    len: 0
                }
            ))
        );
        assert_eq!(Fixed::decode(&page[..100]), Err(FixedError::Short(100)));
        assert_eq!(Fixed::decode(&page[..3]), Err(FixedError::Short(3)));
        assert_eq!(
            Fixed::decode(b"hello"),
            Err(FixedError::Magic(*b"hello\0\0\0"))
        );
        let mut bad = page.clone();
        bad[17] ^= 1;
        assert_eq!(Fixed::decode(&bad), Err(FixedError::Damaged));
        let mut newer = page.clone();
        newer[8..12].copy_from_slice(&2u32.to_le_bytes());
        let c = crc32c::crc32c(&newer[0..FIXED]);
        newer[FIXED..FIXED + 4].copy_from_slice(&c.to_le_bytes());
        assert_eq!(Fixed::decode(&newer), Err(FixedError::Newer(2)));
        assert_eq!(slot_size(0), Some(16));
        assert_eq!(slot_size(1), Some(24));
        assert_eq!(slot_size(usize::MAX), None);
    }

    #[test]
    fn length_slots_pick_the_newer_valid_one() {
        let mut page = Fixed::new_page(8, 24, 0);
        let next = LenSlot {
            generation: 2,
            len: 5,
        };
        page[96..96 + LEN_SLOT].copy_from_slice(&next.encode());
        assert_eq!(LenSlot::current(&page), Some((1, next)));
        page[100] ^= 0x10;
        assert_eq!(
            LenSlot::current(&page).unwrap().1.len,
            0,
            "torn: the older length"
        );
        page[64] ^= 1;
        assert_eq!(LenSlot::current(&page), None);
    }

    #[test]
    fn a_record_falls_back_to_its_older_slot() {
        let (slot, record) = (24, 8);
        let mut pair = vec![0u8; 2 * slot];
        assert_eq!(decode_record(&pair, slot, 3, record), Record::Empty);
        encode_slot(&mut pair[..slot], 3, 1, &[1; 8]);
        let first = Record::Value {
            slot: 0,
            generation: 1,
            fell_back: false,
        };
        assert_eq!(decode_record(&pair, slot, 3, record), first);
        assert_eq!(
            decode_record(&pair, slot, 4, record),
            Record::Damaged,
            "index checked"
        );
        encode_slot(&mut pair[slot..], 3, 2, &[2; 8]);
        assert!(matches!(
            decode_record(&pair, slot, 3, record),
            Record::Value {
                slot: 1,
                generation: 2,
                fell_back: false
            }
        ));
        pair[slot + 20] ^= 4;
        assert_eq!(
            decode_record(&pair, slot, 3, record),
            Record::Value {
                slot: 0,
                generation: 1,
                fell_back: true,
            }
        );
        pair[20] ^= 4;
        assert_eq!(decode_record(&pair, slot, 3, record), Record::Damaged);
    }
}
