//! A FIFO queue in fixed-size blocks: `VecDeque`'s operations (push at the
//! back, pop at the front, index by position) without its growth, which
//! copies the whole queue into an allocation twice its size. For the
//! idempotency index (millions of 160-byte records) that copy was hundreds
//! of megabytes, made while an apply waited. Here growth adds one block;
//! blocks emptied at the front are kept and reused at the back, so a queue
//! of steady length allocates nothing.

/// Records per block: 16,384 index records are about 2.6 MB.
const BLOCK: usize = 1 << 14;

#[derive(Debug, Clone)]
pub struct Blocks<T> {
    /// Every block but the last is full; the first's first `head` slots are
    /// already popped.
    blocks: Vec<Vec<T>>,
    head: usize,
    len: usize,
    /// Emptied blocks, with their capacity, for the back to reuse.
    spare: Vec<Vec<T>>,
    /// Values the blocks may hold, in use and spare, before emptied blocks
    /// are freed rather than kept: what `reserve_touched` asked for. After
    /// a burst beyond it (a flood of open bets), memory goes back down.
    keep: usize,
}

impl<T: Copy> Default for Blocks<T> {
    fn default() -> Self {
        Blocks { blocks: Vec::new(), head: 0, len: 0, spare: Vec::new(), keep: 0 }
    }
}

impl<T: Copy> Blocks<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn place(&self, at: usize) -> (usize, usize) {
        let position = self.head + at;
        (position / BLOCK, position % BLOCK)
    }

    pub fn get(&self, at: usize) -> Option<&T> {
        if at >= self.len {
            return None;
        }
        let (block, slot) = self.place(at);
        Some(&self.blocks[block][slot])
    }

    pub fn get_mut(&mut self, at: usize) -> Option<&mut T> {
        if at >= self.len {
            return None;
        }
        let (block, slot) = self.place(at);
        Some(&mut self.blocks[block][slot])
    }

    /// Asks the CPU for every cache line of the value at `at` (a hint;
    /// nothing happens past the end).
    pub fn prefetch(&self, at: usize) {
        if let Some(value) = self.get(at) {
            // From the line the value starts in to the line it ends in.
            let start = std::ptr::from_ref(value).cast::<u8>();
            let skew = start.addr() % 64;
            let line = start.wrapping_sub(skew);
            for offset in (0..skew + std::mem::size_of::<T>()).step_by(64) {
                crate::prefetch::prefetch(line.wrapping_add(offset));
            }
        }
    }

    pub fn front(&self) -> Option<&T> {
        self.get(0)
    }

    pub fn push_back(&mut self, value: T) {
        if self.blocks.last().is_none_or(|block| block.len() == BLOCK) {
            let block = self.spare.pop().unwrap_or_else(|| Vec::with_capacity(BLOCK));
            self.blocks.push(block);
        }
        self.blocks.last_mut().expect("a block at the back").push(value);
        self.len += 1;
    }

    pub fn pop_front(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let value = self.blocks[0][self.head];
        self.head += 1;
        self.len -= 1;
        if self.head == BLOCK || self.len == 0 {
            // The first block is used up (or the queue is empty): keep it
            // for the back. (Shifting the list of blocks down is a copy of a
            // few hundred pointers once per `BLOCK` pops.)
            let mut block = self.blocks.remove(0);
            // One spare is always kept, so a queue of steady length does
            // not allocate; more only within the reservation.
            let held = (self.blocks.len() + self.spare.len()) * BLOCK;
            if self.spare.is_empty() || held < self.keep {
                block.clear();
                self.spare.push(block);
            }
            self.head = 0;
        }
        Some(value)
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.blocks.iter().flatten().skip(self.head)
    }

    /// Allocates blocks for `total` values and writes `filler` into every
    /// slot (so the kernel maps their pages now, not during an apply),
    /// keeping them for the back to use.
    pub fn reserve_touched(&mut self, total: usize, filler: T) {
        self.keep = self.keep.max(total);
        let mut held = self.blocks.len() * BLOCK - self.head + self.spare.len() * BLOCK;
        while held < total {
            let mut block = Vec::with_capacity(BLOCK);
            block.resize(BLOCK, filler);
            block.clear();
            self.spare.push(block);
            held += BLOCK;
        }
    }

    /// Bytes the blocks hold, in use or spare.
    pub fn allocated_bytes(&self) -> usize {
        (self.blocks.len() + self.spare.len()) * BLOCK * std::mem::size_of::<T>()
    }
}

/// Indexing checks only that the slot exists in its block (a position
/// past the queue's end panics; the caller's positions come from the
/// index's table, which holds only live ones).
impl<T: Copy> std::ops::Index<usize> for Blocks<T> {
    type Output = T;
    fn index(&self, at: usize) -> &T {
        let (block, slot) = self.place(at);
        &self.blocks[block][slot]
    }
}

impl<T: Copy> std::ops::IndexMut<usize> for Blocks<T> {
    fn index_mut(&mut self, at: usize) -> &mut T {
        self.get_mut(at).expect("index within the queue")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Against `VecDeque`, across block boundaries: pushes, pops,
        /// positions, iteration and reuse of emptied blocks.
        #[test]
        fn behaves_as_a_vecdeque(operations in prop::collection::vec((0u8..3, 1usize..40_000), 1..12)) {
            let mut blocks = Blocks::default();
            let mut model = std::collections::VecDeque::new();
            let mut next = 0u64;
            for (operation, count) in operations {
                for _ in 0..count {
                    match operation {
                        0 | 1 => {
                            blocks.push_back(next);
                            model.push_back(next);
                            next += 1;
                        }
                        _ => prop_assert_eq!(blocks.pop_front(), model.pop_front()),
                    }
                }
                prop_assert_eq!(blocks.len(), model.len());
                prop_assert_eq!(blocks.front(), model.front());
                for at in [0, model.len() / 2, model.len().saturating_sub(1), model.len()] {
                    prop_assert_eq!(blocks.get(at), model.get(at));
                }
                prop_assert!(blocks.iter().eq(model.iter()));
            }
            // Blocks held never exceed what the longest queue needed plus one.
            prop_assert!(blocks.blocks.len() + blocks.spare.len() <= next as usize / BLOCK + 2);
        }
    }

    #[test]
    fn a_reserved_queue_allocates_no_block_until_it_is_outgrown() {
        let mut blocks = Blocks::default();
        blocks.reserve_touched(3 * BLOCK, 0u64);
        let bytes = blocks.allocated_bytes();
        assert_eq!(bytes, 3 * BLOCK * 8);
        for value in 0..2 * BLOCK as u64 {
            blocks.push_back(value);
        }
        for value in 0..5 * BLOCK as u64 {
            assert_eq!(blocks.pop_front(), Some(value));
            blocks.push_back(2 * BLOCK as u64 + value);
        }
        assert_eq!(blocks.allocated_bytes(), bytes, "a steady queue reuses its emptied blocks");
        for value in 0..2 * BLOCK as u64 {
            blocks.push_back(value);
        }
        assert!(blocks.allocated_bytes() > bytes, "growth adds blocks");
        assert_eq!(blocks.len(), 4 * BLOCK);
        // Drained, it keeps its reservation, not its peak.
        while blocks.pop_front().is_some() {}
        assert_eq!(blocks.allocated_bytes(), bytes, "blocks beyond the reservation are freed once emptied");
    }

    #[test]
    fn an_unreserved_queue_keeps_one_spare_block() {
        let mut blocks = Blocks::default();
        for value in 0..4 * BLOCK as u64 {
            blocks.push_back(value);
        }
        while blocks.pop_front().is_some() {}
        assert_eq!(blocks.allocated_bytes(), BLOCK * 8);
        for value in 0..BLOCK as u64 {
            blocks.push_back(value);
        }
        assert_eq!(blocks.allocated_bytes(), BLOCK * 8, "the spare block is reused");
    }
}
