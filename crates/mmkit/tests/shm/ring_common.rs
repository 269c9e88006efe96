//! Deterministic message contents for ring tests: message `seq` has a length and bytes
//! derived from `seq`, so a receiver can check every byte without a copy of the sender's
//! state.

#![allow(dead_code)]

/// A table of pseudo-random bytes that messages are cut from.
pub(crate) struct Pattern {
    table: Vec<u8>,
    max: usize,
}

fn mix(mut x: u64) -> u64 {
    // splitmix64
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Pattern {
    /// Messages up to `max` bytes (mostly under 256, one in 64 up to `max`).
    pub(crate) fn new(max: usize) -> Pattern {
        let mut table = Vec::with_capacity(max + 4096);
        let mut x = 1u64;
        while table.len() < max + 4096 {
            x = mix(x);
            table.extend_from_slice(&x.to_le_bytes());
        }
        Pattern { table, max }
    }

    /// The length of message `seq`.
    pub(crate) fn len(&self, seq: u64) -> usize {
        let h = mix(seq);
        let cap = if h % 64 == 0 {
            self.max
        } else {
            256.min(self.max)
        };
        (h >> 8) as usize % (cap + 1)
    }

    /// The two parts of message `seq`: the first bytes of `seq` (up to 8), then a slice
    /// of the table.
    fn parts(&self, seq: u64) -> ([u8; 8], usize, &[u8]) {
        let len = self.len(seq);
        let start = (mix(seq) >> 20) as usize % 4096;
        let n = len.min(8);
        (seq.to_le_bytes(), n, &self.table[start..start + len - n])
    }

    /// Write message `seq` into `out`, which is `len(seq)` bytes long.
    pub(crate) fn write(&self, seq: u64, out: &mut [u8]) {
        let (tag, n, body) = self.parts(seq);
        out[..n].copy_from_slice(&tag[..n]);
        out[n..].copy_from_slice(body);
    }

    /// Message `seq` as a new vector.
    pub(crate) fn message(&self, seq: u64) -> Vec<u8> {
        let mut v = vec![0; self.len(seq)];
        self.write(seq, &mut v);
        v
    }

    /// Whether `got` is message `seq`.
    pub(crate) fn matches(&self, seq: u64, got: &[u8]) -> bool {
        let (tag, n, body) = self.parts(seq);
        got.len() == n + body.len() && got[..n] == tag[..n] && got[n..] == *body
    }
}

/// Check a received message against the pattern: `Ok(seq)` or a description.
pub(crate) fn expected(pat: &Pattern, m: &mmkit::shm::ring::Message<'_>) -> Result<u64, String> {
    let seq = m.seq();
    if !pat.matches(seq, m) {
        return Err(format!(
            "message {seq}: {} bytes, expected {} bytes{}",
            m.len(),
            pat.len(seq),
            if m.len() == pat.len(seq) {
                " (contents differ)"
            } else {
                ""
            }
        ));
    }
    Ok(seq)
}
