//! The index's hash function: keys are short byte strings, and std's SipHash-1-3 was the
//! largest single cost of a put (16% of it, measured with `perf`). This is a
//! multiply-and-fold hash in wyhash's style over 8-byte words, keyed with a secret
//! drawn from std's `RandomState` per process, so that which keys collide cannot be
//! known from outside (not a cryptographic guarantee: a store whose keys come from an
//! adversary who can also time its operations should hash them first).

use std::hash::{BuildHasher, Hasher};

/// Makes [`KeyHasher`]s with this process's secret.
#[derive(Clone)]
pub(crate) struct KeyHash {
    secret: [u64; 2],
}

impl Default for KeyHash {
    fn default() -> Self {
        let state = std::collections::hash_map::RandomState::new();
        KeyHash {
            secret: [
                state.hash_one(0x5157_u64) | 1,
                state.hash_one(0xa3c9_u64) | 1,
            ],
        }
    }
}

#[cfg(test)]
impl KeyHash {
    /// A hash that sends every key to the same value: for testing collisions.
    pub(crate) fn colliding() -> KeyHash {
        KeyHash { secret: [0, 0] }
    }
}

impl BuildHasher for KeyHash {
    type Hasher = KeyHasher;

    fn build_hasher(&self) -> KeyHasher {
        KeyHasher {
            state: self.secret[0],
            secret: self.secret[1],
        }
    }
}

/// Multiply two words into 128 bits and fold the halves together.
#[inline]
fn mum(a: u64, b: u64) -> u64 {
    let r = (a as u128).wrapping_mul(b as u128);
    (r as u64) ^ ((r >> 64) as u64)
}

pub(crate) struct KeyHasher {
    state: u64,
    secret: u64,
}

impl Hasher for KeyHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            self.state = mum(self.state ^ w, self.secret);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            let w = u64::from_le_bytes(last) ^ ((rest.len() as u64) << 59);
            self.state = mum(self.state ^ w, self.secret);
        }
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.state = mum(self.state ^ n as u64, self.secret ^ 0x9e37_79b9_7f4a_7c15);
    }

    #[inline]
    fn finish(&self) -> u64 {
        mum(self.state, self.secret ^ 0xe703_7ed1_a0b4_28db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_hash_equal_and_near_keys_spread() {
        let h = KeyHash::default();
        assert_eq!(
            h.hash_one(b"key-1".as_slice()),
            h.hash_one(b"key-1".as_slice())
        );
        let mut top = std::collections::HashSet::new();
        for i in 0..4096u32 {
            // hashbrown takes its control byte from the top 7 bits: they must vary.
            top.insert(h.hash_one(format!("key-{i}").as_bytes()) >> 57);
        }
        assert!(top.len() > 100, "{}", top.len());
        assert_ne!(h.hash_one(b"a\0".as_slice()), h.hash_one(b"a".as_slice()));
    }
}
