//! Fast non-cryptographic hashing for backend identities and selection keys.
//!
//! Backends come from trusted configuration, and a selection key only
//! steers its own request, so nothing here needs a keyed (DoS resistant)
//! hash; what matters is speed on the request path and well-spread bits.

use std::hash::Hasher;

/// SplitMix64 finaliser: spreads the bits of `x` so that nearby inputs give
/// unrelated outputs.
pub(crate) fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Folds whole words (one multiply each) and finishes with a full mix, so
/// hashing a backend costs a handful of instructions.
#[derive(Clone, Default)]
pub(crate) struct KeyHasher(u64);

impl KeyHasher {
    fn fold(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        mix64(self.0)
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.fold(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            // the length keeps "ab" and "ab\0" apart
            self.fold(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.fold(n as u64);
    }

    fn write_u16(&mut self, n: u16) {
        self.fold(n as u64);
    }

    fn write_u32(&mut self, n: u32) {
        self.fold(n as u64);
    }

    fn write_u64(&mut self, n: u64) {
        self.fold(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.fold(n as u64);
    }
}

/// Hash `bytes` in one go.
pub(crate) fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut hasher = KeyHasher::default();
    hasher.write(bytes);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_contents_are_distinguished() {
        let inputs: [&[u8]; 6] = [b"", b"\0", b"ab", b"ab\0", b"abcdefgh", b"abcdefgh\0"];
        let hashes: std::collections::HashSet<u64> = inputs.iter().map(|i| hash_bytes(i)).collect();
        assert_eq!(hashes.len(), inputs.len());
        assert_eq!(hash_bytes(b"key"), hash_bytes(b"key"));
    }

    #[test]
    fn mix_spreads_neighbours() {
        let a = mix64(1);
        let b = mix64(2);
        assert!((a ^ b).count_ones() > 16);
    }
}
