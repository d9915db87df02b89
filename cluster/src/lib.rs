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
//! On a durable node (`NodeConfig::storage`) each applied batch is logged
//! with its journal record through the node's group commit, and its replies
//! go out only once that write is durable; shards snapshot themselves and
//! recover from snapshot plus log at start (see `durable.rs`).
//!
//! On a cluster member (`NodeConfig::cluster`) every shard is instead a
//! raft-rs group with a replica on each member, all driven by one loop
//! (`replicated.rs`, `host.rs`), and the shard map is itself replicated
//! (`map.rs`). `stats.rs` holds the latency histograms the metrics show.
//!
//! Key types: [`Node`], [`NodeConfig`], [`Storage`], [`ReplySink`], [`SlotMap`], [`RaftStats`].

mod durable;
pub mod host;
pub mod map;
mod node;
pub mod replica;
mod replicated;
mod routing;
pub mod stats;
pub mod transport;

pub use durable::{check_manifest, read_journal, recover, Recovery, SnapshotReport, StartError, Storage, SINGLE_NODE_TERM};
pub use node::{Node, NodeConfig, Overloaded, ReplySink, ShardStatus, JOB_COMMANDS_MAX};
pub use replicated::{ClusterConfig, TICK_DEFAULT};
pub use routing::{slot_of, SlotMap, SLOT_COUNT};
pub use stats::{Histogram, RaftStats};
