//! The node runtime: shards on their own threads, and the routing of a
//! player to its shard.
//!
//! Each shard is owned by one thread (no locks on the bet path): it takes
//! jobs from a bounded queue, applies as many as are waiting (up to a
//! batch) in one `apply_batch`, stamped with its own log index and the
//! wall-clock time, and hands each outcome to the job's reply sink. A full
//! queue is refused at once (`Overloaded`), never buffered without bound.
//! The shard thread also owns the RNG's freshness: it reseeds the shard with
//! OS entropy when it starts and every `reseed_interval` after.
//!
//! Replication (raft-rs) and persistence (RocksDB) wrap this loop in later
//! issues; today a node is one replica in memory.
//!
//! Key types: [`Node`], [`NodeConfig`], [`ReplySink`], [`SlotMap`].

mod node;
mod routing;

pub use node::{Node, NodeConfig, Overloaded, ReplySink, ShardStatus, JOB_COMMANDS_MAX};
pub use routing::{slot_of, SlotMap, SLOT_COUNT};
