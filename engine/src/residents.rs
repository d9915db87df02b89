//! The resident (decoded) wallets of a shard: a dense slab of players and
//! their wallets, found through a [`HandleTable`] keyed by player.
//!
//! The layout exists for prefetching. Over a million wallets every part of
//! a wallet a command reads is a cache miss: the table line, the slab entry
//! (three lines), and the heap of its accounts, sessions and open bets. A
//! batch asks for them in stages before a command applies
//! ([`Residents::prefetch`]), each stage reading only what an earlier stage
//! brought in. Removal moves the last entry into the hole, so the slab
//! stays dense and iteration never skips.

use crate::ids::PlayerId;
use crate::prefetch::prefetch;
use crate::table::{HandleTable, Probe};
use crate::wallet::Wallet;

#[derive(Debug)]
pub(crate) struct Resident {
    pub wallet: Wallet,
    /// The residency clock when last touched.
    pub touched: u64,
}

#[derive(Debug)]
struct Entry {
    player: PlayerId,
    resident: Resident,
}

/// What a stage of [`Residents::prefetch`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// The table line where the player is looked for.
    Table,
    /// The slab entry (the table line is in cache by now).
    Entry,
    /// The first lines of the wallet's accounts, sessions and open bets
    /// (the entry is in cache by now).
    Heap,
}

#[derive(Debug, Default)]
pub(crate) struct Residents {
    table: HandleTable,
    slab: Vec<Entry>,
}

/// A 64-bit mix of a player id (the murmur3 finaliser): the table takes its
/// tag and place from the high half.
fn hash_player(player: PlayerId) -> u64 {
    let mut h = player.0;
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

impl Residents {
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    fn probe(&self, player: PlayerId) -> Probe {
        let slab = &self.slab;
        self.table.probe(hash_player(player), |handle| slab[handle as usize].player == player)
    }

    /// The slab position of `player`'s wallet, if resident.
    pub fn handle(&self, player: PlayerId) -> Option<usize> {
        let slab = &self.slab;
        self.table.find(hash_player(player), |handle| slab[handle as usize].player == player).map(|handle| handle as usize)
    }

    pub fn at_mut(&mut self, handle: usize) -> &mut Resident {
        &mut self.slab[handle].resident
    }

    pub fn get(&self, player: PlayerId) -> Option<&Resident> {
        self.handle(player).map(|handle| &self.slab[handle].resident)
    }

    pub fn contains(&self, player: PlayerId) -> bool {
        self.handle(player).is_some()
    }

    /// Adds a resident wallet; the caller has checked the player is absent.
    pub fn insert(&mut self, player: PlayerId, resident: Resident) -> &mut Resident {
        let handle = u32::try_from(self.slab.len()).expect("resident wallets are bounded far below 2^32");
        match self.probe(player) {
            Probe::Vacant(at) => self.table.insert_at(at, hash_player(player), handle),
            Probe::Found(_) => panic!("player {player:?} made resident twice"),
        }
        self.slab.push(Entry { player, resident });
        &mut self.slab[handle as usize].resident
    }

    pub fn remove(&mut self, player: PlayerId) -> Option<Resident> {
        let Probe::Found(at) = self.probe(player) else { return None };
        let handle = self.table.handle_at(at) as usize;
        self.table.remove_at(at);
        let removed = self.slab.swap_remove(handle);
        if let Some(moved) = self.slab.get(handle) {
            // The last entry now sits in the hole: repoint its table slot.
            let from = self.slab.len() as u32;
            match self.table.probe(hash_player(moved.player), |h| h == from) {
                Probe::Found(slot) => self.table.set_handle_at(slot, handle as u32),
                Probe::Vacant(_) => panic!("resident {:?} missing from its table", moved.player),
            }
        }
        Some(removed.resident)
    }

    /// Every resident player, in slab order.
    pub fn players(&self) -> impl Iterator<Item = PlayerId> + '_ {
        self.slab.iter().map(|entry| entry.player)
    }

    /// Every resident wallet, in slab order.
    pub fn wallets(&self) -> impl Iterator<Item = &Wallet> + '_ {
        self.slab.iter().map(|entry| &entry.resident.wallet)
    }

    pub fn reserve(&mut self, additional: usize) {
        self.slab.reserve(additional);
        self.table.reserve(additional);
    }

    pub fn clear(&mut self) {
        self.slab.clear();
        self.table.clear();
    }

    pub fn shrink_to_fit(&mut self) {
        self.slab.shrink_to_fit();
        self.table.shrink_to(self.slab.len());
    }

    /// A hint: asks the CPU for what stage `stage` of reading `player`'s
    /// wallet needs. Changes nothing; cheap when the player is not resident.
    pub fn prefetch(&self, player: PlayerId, stage: Stage) {
        match stage {
            Stage::Table => self.table.prefetch(hash_player(player)),
            Stage::Entry => {
                // The entry is what is being fetched, so its player cannot
                // confirm the table's guess without waiting for it.
                if let Some(entry) = self.table.candidate(hash_player(player)).and_then(|handle| self.slab.get(handle as usize)) {
                    let start = std::ptr::from_ref(entry).cast::<u8>();
                    for offset in (0..std::mem::size_of::<Entry>()).step_by(64) {
                        prefetch(start.wrapping_add(offset));
                    }
                }
            }
            Stage::Heap => {
                if let Some(handle) = self.handle(player) {
                    let wallet = &self.slab[handle].resident.wallet;
                    if !wallet.accounts.is_empty() {
                        prefetch(wallet.accounts.as_ptr());
                    }
                    if !wallet.sessions.is_empty() {
                        prefetch(wallet.sessions.as_ptr());
                    }
                    if !wallet.open_bets.is_empty() {
                        prefetch(wallet.open_bets.keys().as_ptr());
                    }
                }
            }
        }
    }

    pub fn check_invariants(&self) {
        assert_eq!(self.table.len(), self.slab.len(), "resident table and slab disagree");
        for (at, entry) in self.slab.iter().enumerate() {
            assert_eq!(self.handle(entry.player), Some(at), "resident {:?} not found by its id", entry.player);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::ids::OperatorId;

    proptest! {
        /// Against a map: inserts and removals (which move the last entry)
        /// keep every resident findable, with its own wallet.
        #[test]
        fn agrees_with_a_map(operations in prop::collection::vec((any::<bool>(), 0u64..300), 1..1_500)) {
            let mut residents = Residents::default();
            let mut model: BTreeMap<u64, u64> = BTreeMap::new();
            for (step, (insert, player)) in operations.into_iter().enumerate() {
                let id = PlayerId(player);
                if insert && !residents.contains(id) {
                    residents.insert(id, Resident { wallet: Wallet::new(OperatorId(1)), touched: step as u64 });
                    model.insert(player, step as u64);
                } else if !insert {
                    prop_assert_eq!(residents.remove(id).map(|r| r.touched), model.remove(&player));
                }
                prop_assert_eq!(residents.len(), model.len());
            }
            residents.check_invariants();
            for player in 0..300 {
                prop_assert_eq!(residents.get(PlayerId(player)).map(|r| r.touched), model.get(&player).copied());
            }
        }
    }
}
