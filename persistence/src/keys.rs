//! Key layouts. Big-endian integers, so byte order is numeric order and a
//! shard's records are one contiguous range.

pub fn shard_prefix(shard: u32) -> [u8; 4] {
    shard.to_be_bytes()
}

/// The first key after every key of `shard`.
pub fn shard_end(shard: u32) -> Vec<u8> {
    match shard.checked_add(1) {
        Some(next) => next.to_be_bytes().to_vec(),
        None => vec![0xFF; 13],
    }
}

/// Log and journal: shard + index.
pub fn indexed(shard: u32, index: u64) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..4].copy_from_slice(&shard.to_be_bytes());
    key[4..].copy_from_slice(&index.to_be_bytes());
    key
}

pub fn index_of(key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.get(4..12)?.try_into().ok()?;
    (key.len() == 12).then(|| u64::from_be_bytes(bytes))
}

/// Snapshot metadata of a shard: shard + 0.
pub fn snapshot_meta(shard: u32) -> [u8; 5] {
    let mut key = [0u8; 5];
    key[..4].copy_from_slice(&shard.to_be_bytes());
    key
}

/// A chunk of the snapshot taken at `index`: shard + 1 + index + chunk.
pub fn snapshot_chunk(shard: u32, index: u64, chunk: u32) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[..4].copy_from_slice(&shard.to_be_bytes());
    key[4] = 1;
    key[5..13].copy_from_slice(&index.to_be_bytes());
    key[13..].copy_from_slice(&chunk.to_be_bytes());
    key
}

/// Every chunk of snapshots taken before `index` (exclusive range end).
pub fn snapshot_chunks_before(shard: u32, index: u64) -> [u8; 17] {
    snapshot_chunk(shard, index, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_order_is_numeric_order() {
        assert!(indexed(1, 255) < indexed(1, 256));
        assert!(indexed(1, u64::MAX) < indexed(2, 0));
        assert!(indexed(1, u64::MAX).as_slice() < shard_end(1).as_slice());
        assert!(snapshot_meta(3).as_slice() < snapshot_chunk(3, 0, 0).as_slice());
        assert!(snapshot_chunk(3, 9, u32::MAX) < snapshot_chunks_before(3, 10));
        assert_eq!(index_of(&indexed(7, 42)), Some(42));
        assert_eq!(index_of(&[0; 5]), None);
    }
}
