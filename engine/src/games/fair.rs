//! Provably-fair play. Before playing, the player sees `SHA-256(server
//! seed)` and picks a client seed. Each round's random words are the bytes of
//! `HMAC-SHA256(key = server seed, message = "<client seed>:<nonce>:<block>")`
//! for blocks 0, 1, 2, ..., taken four at a time (big-endian) and scaled with
//! the same unbiased rejection sampling as the shard RNG. The nonce counts
//! the player's fair rounds. Rotating the seeds reveals the old server seed,
//! so the player can recompute every round played with it (`casino fair
//! verify`) and check it against the hash shown before.
//!
//! The server seed comes from the shard's CSPRNG, so replicas agree on it
//! and nobody outside can predict it.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::ids::ExternalId;
use crate::rng::Draw;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FairSeeds {
    pub server_seed: [u8; 32],
    pub client_seed: ExternalId,
    /// Rounds played with these seeds so far: the next round's nonce.
    pub nonce: u64,
}

pub fn server_seed_hash(server_seed: &[u8; 32]) -> [u8; 32] {
    Sha256::digest(server_seed).into()
}

/// The random words of one provably-fair round.
#[derive(Debug)]
pub struct FairDraw {
    server_seed: [u8; 32],
    client_seed: ExternalId,
    nonce: u64,
    block: u64,
    buffer: [u8; 32],
    used: usize,
}

impl FairDraw {
    pub fn new(server_seed: [u8; 32], client_seed: ExternalId, nonce: u64) -> FairDraw {
        FairDraw { server_seed, client_seed, nonce, block: 0, buffer: [0; 32], used: 32 }
    }

    fn refill(&mut self) {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.server_seed).expect("HMAC takes keys of any length");
        mac.update(format!("{}:{}:{}", self.client_seed, self.nonce, self.block).as_bytes());
        self.buffer = mac.finalize().into_bytes().into();
        self.block += 1;
        self.used = 0;
    }
}

impl Draw for FairDraw {
    fn next_u32(&mut self) -> u32 {
        if self.used + 4 > self.buffer.len() {
            self.refill();
        }
        let word = u32::from_be_bytes(self.buffer[self.used..self.used + 4].try_into().expect("four bytes"));
        self.used += 4;
        word
    }
}

pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len()).step_by(2).map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_block_is_hmac_of_client_seed_nonce_and_block() {
        let client = ExternalId::new("alice").expect("valid");
        let mut draw = FairDraw::new([7; 32], client, 3);
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&[7; 32]).expect("any key");
        mac.update(b"alice:3:0");
        let block: [u8; 32] = mac.finalize().into_bytes().into();
        assert_eq!(draw.next_u32(), u32::from_be_bytes([block[0], block[1], block[2], block[3]]));
        for _ in 0..7 {
            draw.next_u32();
        }
        // The ninth word comes from block 1.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&[7; 32]).expect("any key");
        mac.update(b"alice:3:1");
        let next: [u8; 32] = mac.finalize().into_bytes().into();
        assert_eq!(draw.next_u32(), u32::from_be_bytes([next[0], next[1], next[2], next[3]]));
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(from_hex(&to_hex(&[0, 1, 0xab, 0xff])), Some(vec![0, 1, 0xab, 0xff]));
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
    }
}
