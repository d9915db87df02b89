//! The byte store: four column families, atomic batches of writes, point
//! reads and ordered scans. Two implementations: [`crate::RocksStore`] (the
//! node's) and [`crate::MemStore`] (the simulator's and the tests', with
//! crash and corruption injection). Neither knows what the bytes mean.

use crate::error::StoreError;

/// The column families. Each has its own key layout (see `keys.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cf {
    /// Raft log entries: shard (u32 BE) + index (u64 BE).
    Log,
    /// Raft hard and conf state: shard (u32 BE).
    State,
    /// Snapshot metadata and chunks of each shard.
    Snapshot,
    /// The regulatory journal: what each applied entry did, kept after the
    /// log behind a snapshot is truncated.
    Journal,
}

impl Cf {
    pub const ALL: [Cf; 4] = [Cf::Log, Cf::State, Cf::Snapshot, Cf::Journal];

    pub fn name(self) -> &'static str {
        match self {
            Cf::Log => "log",
            Cf::State => "state",
            Cf::Snapshot => "snapshot",
            Cf::Journal => "journal",
        }
    }
}

/// One write. A batch of them is applied atomically and in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Put {
        cf: Cf,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        cf: Cf,
        key: Vec<u8>,
    },
    /// Deletes every key in `from..to`.
    DeleteRange {
        cf: Cf,
        from: Vec<u8>,
        to: Vec<u8>,
    },
}

impl Op {
    /// Bytes this op adds to a write batch, roughly (for batch sizing).
    pub fn size(&self) -> usize {
        match self {
            Op::Put { key, value, .. } => key.len() + value.len() + 8,
            Op::Delete { key, .. } => key.len() + 8,
            Op::DeleteRange { from, to, .. } => from.len() + to.len() + 8,
        }
    }
}

/// A key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Durable byte storage shared by every shard of a node.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Applies `ops` atomically and in order: after a crash either all of
    /// them are there or none. With `sync`, returns only once they are on
    /// stable storage (fsync); without, a process crash keeps them but a
    /// power loss may not.
    fn write(&self, ops: &[Op], sync: bool) -> Result<(), StoreError>;

    /// Applies `ops` without the write-ahead log: readable at once, durable
    /// only after [`Store::persist`] of their column family. For bulk data
    /// (snapshots) that would otherwise be written twice, to the log and to
    /// the files, and replayed from the log at every open.
    fn write_unlogged(&self, ops: &[Op]) -> Result<(), StoreError>;

    /// Makes every write to `cf` durable, unlogged ones included (RocksDB:
    /// flushes the column family's memtable to synced files).
    fn persist(&self, cf: Cf) -> Result<(), StoreError>;

    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Visits the keys in `from..to` in ascending order until `visit`
    /// returns false.
    fn scan(&self, cf: Cf, from: &[u8], to: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<(), StoreError>;

    /// The greatest key in `from..to` and its value.
    fn last(&self, cf: Cf, from: &[u8], to: &[u8]) -> Result<Option<KeyValue>, StoreError>;

    /// Where the store lives, for messages: a folder, or "memory".
    fn location(&self) -> String;
}
