//! Durable storage for a node's shards: the raft log (entries, hard and
//! conf state), snapshots and the regulatory journal, as bytes in four
//! column families of one [`Store`]: RocksDB on disk ([`RocksStore`]) or its
//! in-memory twin ([`MemStore`]) for the simulator and tests. It knows
//! nothing of bets.
//!
//! - [`ShardLog`]: one shard's log over a store, implementing
//!   `raft::Storage`; writes are staged as [`Op`]s.
//! - [`GroupCommit`]: one writer thread that writes every shard's staged
//!   ops as one batch with one fsync, then runs their completions.
//! - [`journal`]: framing of the journal records.
//!
//! Every record is sealed with a CRC-32C and checked on read; errors name
//! the store, column family and record ([`StoreError`]).

mod error;
mod group;
pub mod journal;
mod keys;
mod log;
mod memory;
mod record;
mod rocks;
mod store;

pub use error::{Problem, StoreError};
pub use group::{CommitStats, Durability, GroupCommit, GroupConfig, Submission};
pub use log::{decode_entry, encode_entry, ShardLog, SnapshotMeta, SNAPSHOT_CHUNK_BYTES};
pub use memory::MemStore;
pub use raft::eraftpb::{ConfState, Entry, EntryType, HardState};
pub use rocks::{RocksConfig, RocksStore};
pub use store::{Cf, KeyValue, Op, Store};

/// Appends a CRC-32C to `body`: the framing of every record this crate
/// stores, for callers that store small records of their own.
pub fn seal(body: Vec<u8>) -> Vec<u8> {
    record::seal(body)
}

/// The body of a value made by [`seal`], after checking its checksum.
pub fn unseal(value: &[u8]) -> Result<&[u8], Problem> {
    record::open(value)
}

/// CRC-32C, the checksum of every record (exported so callers seal
/// snapshot data with the same function the store checks it with).
pub fn checksum(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}
