//! The shard's random number generator: ChaCha20 (a CSPRNG), whose state is
//! part of the shard state, so every replica draws the same numbers and a
//! snapshot carries them on.
//!
//! - **Seeding.** A shard starts unseeded and refuses to play games
//!   (`RngNotSeeded`) until the shard's owner proposes a `Reseed` command
//!   carrying 32 bytes of fresh OS entropy. Owners reseed periodically; the
//!   new key is SHA-256 over a domain tag, the current key, the current word
//!   position and the entropy, so a reseed adds entropy and never removes
//!   any. Outsiders cannot predict outcomes without the key; the key lives in
//!   shard state, so snapshots are secrets.
//! - **Scaling without bias.** `below(n)` draws 32-bit words and rejects
//!   those in the top, incomplete stretch `[2^32 - (2^32 mod n), 2^32)`, so
//!   every value in `0..n` has exactly the same probability (no modulo bias).
//!   The expected number of draws is below 2 for every n, and below
//!   1 + n / 2^32 in general.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};

/// A source of uniformly random 32-bit words, with unbiased scaling.
pub trait Draw {
    fn next_u32(&mut self) -> u32;

    /// A uniform integer in `0..n` by rejection sampling (`n > 0`).
    fn below(&mut self, n: u32) -> u32 {
        assert!(n > 0, "below(0) has no values");
        // Values at or above `limit` would make the low values more likely.
        let limit = u32::MAX - (u32::MAX % n + 1) % n;
        loop {
            let word = self.next_u32();
            if word <= limit {
                return word % n;
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardRng {
    rng: ChaCha20Rng,
    seeded: bool,
}

const RESEED_TAG: &[u8] = b"casino-engine/rng/reseed/v1";

impl Default for ShardRng {
    fn default() -> Self {
        ShardRng { rng: ChaCha20Rng::from_seed([0; 32]), seeded: false }
    }
}

impl ShardRng {
    /// A generator keyed directly (tests, tools, laboratory output).
    pub fn from_key(key: [u8; 32]) -> ShardRng {
        ShardRng { rng: ChaCha20Rng::from_seed(key), seeded: true }
    }

    pub fn is_seeded(&self) -> bool {
        self.seeded
    }

    /// Mixes fresh entropy into the key.
    pub fn reseed(&mut self, entropy: &[u8; 32]) {
        let mut hasher = Sha256::new();
        hasher.update(RESEED_TAG);
        hasher.update(self.rng.get_seed());
        hasher.update(self.rng.get_word_pos().to_le_bytes());
        hasher.update(entropy);
        self.rng = ChaCha20Rng::from_seed(hasher.finalize().into());
        self.seeded = true;
    }

    pub fn fill_bytes(&mut self, out: &mut [u8]) {
        self.rng.fill_bytes(out);
    }

    /// 32 fresh bytes (server seeds for provably-fair play).
    pub fn bytes32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        self.rng.fill_bytes(&mut out);
        out
    }

    /// The state a snapshot stores: key, word position, seeded flag.
    pub fn state(&self) -> ([u8; 32], u128, bool) {
        (self.rng.get_seed(), self.rng.get_word_pos(), self.seeded)
    }

    pub fn from_state(key: [u8; 32], word_pos: u128, seeded: bool) -> ShardRng {
        let mut rng = ChaCha20Rng::from_seed(key);
        rng.set_word_pos(word_pos);
        ShardRng { rng, seeded }
    }
}

impl Draw for ShardRng {
    fn next_u32(&mut self) -> u32 {
        self.rng.next_u32()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Words(Vec<u32>);
    impl Draw for Words {
        fn next_u32(&mut self) -> u32 {
            self.0.remove(0)
        }
    }

    #[test]
    fn below_rejects_the_incomplete_top_stretch() {
        // For n = 3, 2^32 mod 3 = 1: only u32::MAX is rejected.
        let mut words = Words(vec![u32::MAX, 7]);
        assert_eq!(words.below(3), 1);
        // For a power of two nothing is rejected.
        let mut words = Words(vec![u32::MAX]);
        assert_eq!(words.below(4), 3);
        let mut words = Words(vec![u32::MAX]);
        assert_eq!(words.below(1), 0);
    }

    #[test]
    fn state_round_trips_mid_stream() {
        let mut rng = ShardRng::from_key([9; 32]);
        rng.next_u32();
        rng.reseed(&[1; 32]);
        rng.next_u32();
        let (key, word_pos, seeded) = rng.state();
        let mut copy = ShardRng::from_state(key, word_pos, seeded);
        assert_eq!(copy.next_u32(), rng.next_u32());
    }

    #[test]
    fn a_reseed_changes_the_stream() {
        let mut a = ShardRng::from_key([3; 32]);
        let mut b = a.clone();
        b.reseed(&[0; 32]);
        let left: Vec<u32> = (0..8).map(|_| a.next_u32()).collect();
        let right: Vec<u32> = (0..8).map(|_| b.next_u32()).collect();
        assert_ne!(left, right);
    }
}
