//! Player -> slot -> shard. A player id hashes to one of `SLOT_COUNT` slots
//! with a fixed function (stable across versions and machines); slots map to
//! shards. Moving slots between shards is how a cluster rebalances.

use engine::PlayerId;

/// Slots in the cluster. Fixed: changing it moves every player.
pub const SLOT_COUNT: u16 = 4_096;

/// The slot of a player: splitmix64's finaliser, then modulo.
pub fn slot_of(player: PlayerId) -> u16 {
    let mut z = player.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z % u64::from(SLOT_COUNT)) as u16
}

/// Which shard owns each slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotMap {
    shard_of_slot: Vec<u32>,
}

impl SlotMap {
    /// Slots dealt round-robin over `shard_count` shards.
    pub fn even(shard_count: u32) -> SlotMap {
        assert!(shard_count > 0, "a node needs a shard");
        SlotMap { shard_of_slot: (0..u32::from(SLOT_COUNT)).map(|slot| slot % shard_count).collect() }
    }

    /// A map from its table: `slots[slot]` is the slot's shard.
    pub fn from_slots(slots: Vec<u32>) -> SlotMap {
        assert_eq!(slots.len(), usize::from(SLOT_COUNT), "one shard per slot");
        SlotMap { shard_of_slot: slots }
    }

    pub fn slots(&self) -> &[u32] {
        &self.shard_of_slot
    }

    pub fn shard_of(&self, player: PlayerId) -> u32 {
        self.shard_of_slot(slot_of(player))
    }

    pub fn shard_of_slot(&self, slot: u16) -> u32 {
        self.shard_of_slot[usize::from(slot)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_stable_and_spread() {
        // Fixed values: a change here moves players between shards.
        assert_eq!(slot_of(PlayerId(0)), slot_of(PlayerId(0)));
        assert_eq!([slot_of(PlayerId(1)), slot_of(PlayerId(2)), slot_of(PlayerId(1_000_000))], [SLOT_1, SLOT_2, SLOT_1M]);
        let map = SlotMap::even(4);
        let mut per_shard = [0u32; 4];
        for player in 0..40_000 {
            per_shard[map.shard_of(PlayerId(player)) as usize] += 1;
        }
        assert!(per_shard.iter().all(|&n| (9_000..11_000).contains(&n)), "{per_shard:?}");
    }

    const SLOT_1: u16 = 3_265;
    const SLOT_2: u16 = 1_742;
    const SLOT_1M: u16 = 1_511;
}
