//! An open-addressing hash table of 32-bit handles, for indexes whose
//! records live elsewhere (the idempotency index's slab).
//!
//! Each slot is 8 bytes: a 31-bit tag from the key's hash (top bit set, so
//! that no occupied slot is zero) and the handle. Probing is linear from
//! the slot the tag names, so a lookup usually reads one cache line of the
//! table and touches a record only when the tags match. (Records compared
//! in one probe mostly share their home, hence the tag's low bits: a false
//! match is about a `slots / 2^31` event per comparison, 1 in 512 at four
//! million slots, and costs one record read.) Removal shifts the following run back instead of
//! leaving tombstones, so the table never degrades. A slot's place depends
//! on its tag alone, so the table grows without the records' keys.
//!
//! The table's reason to exist beside `hashbrown`: it can say where a key
//! will be looked for before it is looked for ([`HandleTable::prefetch`]),
//! so a batch can ask for the cache lines of later commands while it
//! applies earlier ones, as TigerBeetle prefetches a batch's accounts
//! before executing it. Over millions of records the table is far larger
//! than the caches, and each lookup would otherwise wait for memory.

use crate::prefetch::prefetch;

/// Slots are at most 3/4 full; linear probing stays short below that.
const LOAD_NUMERATOR: usize = 3;
const LOAD_DENOMINATOR: usize = 4;
const SLOTS_MIN: usize = 16;
/// Tags keep 31 bits, and a slot's place is its tag's low bits.
const SLOTS_MAX: usize = 1 << 31;
const OCCUPIED: u32 = 0x8000_0000;

#[derive(Debug, Clone)]
pub struct HandleTable {
    slots: Vec<u64>,
    mask: usize,
    len: usize,
}

impl Default for HandleTable {
    fn default() -> Self {
        HandleTable::with_capacity(0)
    }
}

/// A slot found for a hash: where a key is, or where it would go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Found(usize),
    Vacant(usize),
}

fn tag_of(hash: u64) -> u32 {
    (hash >> 32) as u32 | OCCUPIED
}

fn slot_tag(slot: u64) -> u32 {
    (slot >> 32) as u32
}

fn slot_handle(slot: u64) -> u32 {
    slot as u32
}

fn slots_for(records: usize) -> usize {
    let wanted = records.saturating_mul(LOAD_DENOMINATOR).div_ceil(LOAD_NUMERATOR);
    let slots = wanted.max(SLOTS_MIN).next_power_of_two();
    assert!(slots <= SLOTS_MAX, "a handle table of {records} records is too large");
    slots
}

impl HandleTable {
    /// A table that holds `records` records before it grows.
    pub fn with_capacity(records: usize) -> HandleTable {
        let slots = slots_for(records);
        HandleTable { slots: vec![0; slots], mask: slots - 1, len: 0 }
    }

    /// The handle in slot `at` (a slot a probe found).
    pub fn handle_at(&self, at: usize) -> u32 {
        slot_handle(self.slots[at])
    }

    /// Points slot `at` (a slot a probe found) at another handle.
    pub fn set_handle_at(&mut self, at: usize, handle: u32) {
        self.slots[at] = self.slots[at] & !u64::from(u32::MAX) | u64::from(handle);
    }

    pub fn clear(&mut self) {
        self.slots.fill(0);
        self.len = 0;
    }

    /// Shrinks the table to the smallest that holds `records` (at least its
    /// current records).
    pub fn shrink_to(&mut self, records: usize) {
        let slots = slots_for(records.max(self.len));
        if slots < self.slots.len() {
            self.rebuild(slots);
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Records held before the next insert grows the table.
    pub fn capacity(&self) -> usize {
        self.slots.len() / LOAD_DENOMINATOR * LOAD_NUMERATOR
    }

    pub fn allocated_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<u64>()
    }

    fn home(&self, tag: u32) -> usize {
        tag as usize & self.mask
    }

    /// Asks the CPU for the cache line where `hash` is looked for. A hint:
    /// it changes nothing and cannot fail.
    pub fn prefetch(&self, hash: u64) {
        prefetch(self.slots.as_ptr().wrapping_add(self.home(tag_of(hash))));
    }

    /// Like [`HandleTable::prefetch`], and the line after too: a removal
    /// reads the run of slots after the record's, which often crosses into
    /// it (at 3/4 load, runs are several slots long).
    pub fn prefetch_for_removal(&self, hash: u64) {
        let home = self.home(tag_of(hash));
        prefetch(self.slots.as_ptr().wrapping_add(home));
        prefetch(self.slots.as_ptr().wrapping_add((home + 8) & self.mask));
    }

    /// Where the record with `hash` is (`is_it(handle)` confirms a
    /// candidate), or the vacant slot where it would be inserted.
    pub fn probe(&self, hash: u64, mut is_it: impl FnMut(u32) -> bool) -> Probe {
        let tag = tag_of(hash);
        let mut at = self.home(tag);
        loop {
            let slot = self.slots[at];
            if slot == 0 {
                return Probe::Vacant(at);
            }
            if slot_tag(slot) == tag && is_it(slot_handle(slot)) {
                return Probe::Found(at);
            }
            at = (at + 1) & self.mask;
        }
    }

    /// The first handle whose tag matches `hash`, unconfirmed: a guess for
    /// prefetching that reads the table and nothing else (wrong on a false
    /// tag match, see above, or when the key is absent).
    pub fn candidate(&self, hash: u64) -> Option<u32> {
        let tag = tag_of(hash);
        let mut at = self.home(tag);
        loop {
            let slot = self.slots[at];
            if slot == 0 {
                return None;
            }
            if slot_tag(slot) == tag {
                return Some(slot_handle(slot));
            }
            at = (at + 1) & self.mask;
        }
    }

    pub fn find(&self, hash: u64, is_it: impl FnMut(u32) -> bool) -> Option<u32> {
        match self.probe(hash, is_it) {
            Probe::Found(at) => Some(slot_handle(self.slots[at])),
            Probe::Vacant(_) => None,
        }
    }

    /// Inserts `handle` for `hash` at the slot a [`HandleTable::probe`]
    /// found vacant, with nothing changed since. A full table doubles
    /// first (and the record goes where the grown table puts it).
    pub fn insert_at(&mut self, vacant: usize, hash: u64, handle: u32) {
        debug_assert_eq!(self.slots[vacant], 0, "insert_at a slot that is not vacant");
        let slot = u64::from(tag_of(hash)) << 32 | u64::from(handle);
        if self.len >= self.capacity() {
            self.reserve(self.capacity().max(1));
            self.place(slot);
        } else {
            self.slots[vacant] = slot;
        }
        self.len += 1;
    }

    /// Puts `slot` in the first vacant slot from its home.
    fn place(&mut self, slot: u64) {
        let mut at = self.home(slot_tag(slot));
        while self.slots[at] != 0 {
            at = (at + 1) & self.mask;
        }
        self.slots[at] = slot;
    }

    /// Removes the record at `at` (a slot a probe found), moving back the
    /// records after it that probed past it.
    pub fn remove_at(&mut self, at: usize) {
        debug_assert_ne!(self.slots[at], 0, "remove_at an empty slot");
        let mut hole = at;
        let mut next = at;
        loop {
            next = (next + 1) & self.mask;
            let slot = self.slots[next];
            if slot == 0 {
                break;
            }
            // The record at `next` may fill the hole unless its home lies
            // after the hole (cyclically), up to `next`.
            let home = self.home(slot_tag(slot));
            if next.wrapping_sub(home) & self.mask >= next.wrapping_sub(hole) & self.mask {
                self.slots[hole] = slot;
                hole = next;
            }
        }
        self.slots[hole] = 0;
        self.len -= 1;
    }

    /// Makes room for `additional` more records without growing later.
    pub fn reserve(&mut self, additional: usize) {
        let wanted = self.len.saturating_add(additional);
        if wanted <= self.capacity() {
            return;
        }
        self.rebuild(slots_for(wanted));
    }

    /// Writes to every page of the slots (each word written back as it
    /// is), so that the kernel maps them now. A table allocated zeroed is
    /// untouched memory: each first lookup in a page maps the shared zero
    /// page, and the first insert there then faults again to copy it, with
    /// a TLB shootdown of every CPU running the process.
    pub fn touch_pages(&mut self) {
        const WORDS_PER_PAGE: usize = 4096 / std::mem::size_of::<u64>();
        for at in (0..self.slots.len()).step_by(WORDS_PER_PAGE) {
            self.slots[at] = std::hint::black_box(self.slots[at]);
        }
    }

    fn rebuild(&mut self, slots: usize) {
        let old = std::mem::replace(&mut self.slots, vec![0; slots]);
        self.mask = slots - 1;
        for slot in old.into_iter().filter(|&slot| slot != 0) {
            self.place(slot);
        }
    }

    /// Every handle, in slot order.
    #[cfg(test)]
    pub fn handles(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots.iter().filter(|&&slot| slot != 0).map(|&slot| slot_handle(slot))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    fn spread(key: u32) -> u64 {
        // Keys whose hashes collide in their low bits as well, so runs form.
        u64::from(key % 64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    proptest! {
        /// Against a map: inserts, removals and lookups agree, through growth.
        #[test]
        fn agrees_with_a_map(operations in prop::collection::vec((any::<bool>(), 0u32..400), 1..2_000)) {
            let mut table = HandleTable::with_capacity(4);
            let mut model: HashMap<u32, ()> = HashMap::new();
            for (insert, key) in operations {
                let hash = spread(key);
                match (insert, table.probe(hash, |handle| handle == key)) {
                    (true, Probe::Vacant(at)) => {
                        table.insert_at(at, hash, key);
                        model.insert(key, ());
                    }
                    (false, Probe::Found(at)) => {
                        table.remove_at(at);
                        model.remove(&key);
                    }
                    (true, Probe::Found(_)) => prop_assert!(model.contains_key(&key)),
                    (false, Probe::Vacant(_)) => prop_assert!(!model.contains_key(&key)),
                }
                prop_assert_eq!(table.len(), model.len());
            }
            for key in 0..400 {
                prop_assert_eq!(table.find(spread(key), |handle| handle == key).is_some(), model.contains_key(&key));
            }
            let mut handles: Vec<u32> = table.handles().collect();
            handles.sort_unstable();
            let mut expected: Vec<u32> = model.keys().copied().collect();
            expected.sort_unstable();
            prop_assert_eq!(handles, expected);
        }
    }

    #[test]
    fn touching_the_pages_keeps_every_record() {
        let mut table = HandleTable::with_capacity(10_000);
        for key in 0..5_000u32 {
            let Probe::Vacant(at) = table.probe(spread(key), |handle| handle == key) else { panic!("absent key found") };
            table.insert_at(at, spread(key), key);
        }
        let before: Vec<u32> = table.handles().collect();
        table.touch_pages();
        assert_eq!(table.handles().collect::<Vec<_>>(), before);
        assert!((0..5_000u32).all(|k| table.find(spread(k), |handle| handle == k) == Some(k)));
        assert_eq!(table.len(), 5_000);
    }

    #[test]
    fn a_full_table_grows_and_keeps_every_record() {
        let mut table = HandleTable::with_capacity(1);
        let capacity = table.capacity();
        for key in 0..=capacity as u32 {
            let Probe::Vacant(at) = table.probe(spread(key), |handle| handle == key) else { panic!("absent key found") };
            table.insert_at(at, spread(key), key);
        }
        assert_eq!(table.capacity(), 2 * capacity, "the table doubled");
        assert!((0..=capacity as u32).all(|k| table.find(spread(k), |handle| handle == k) == Some(k)));
        assert_eq!(table.find(spread(capacity as u32 + 1), |handle| handle == capacity as u32 + 1), None);
    }
}
