//! `casino journal`: the regulatory journal of a node's data folder, read
//! while the node runs or not: one line per event, in log order per shard,
//! with the batch's log index and time. The journal keeps every batch's
//! events after the log behind a snapshot is gone.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use persistence::{RocksConfig, RocksStore};

#[derive(Args, Debug)]
pub struct JournalArgs {
    /// The node's data folder (its RocksDB is DIR/db).
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// Only this shard (default: every shard in the folder).
    #[arg(long)]
    shard: Option<u32>,
    /// The first log index to show.
    #[arg(long, default_value_t = 1)]
    from: u64,
    /// Events to show at most (0: all).
    #[arg(long, default_value_t = 100)]
    limit: u64,
}

pub fn run(args: JournalArgs) -> anyhow::Result<()> {
    let path = args.data_dir.join("db");
    let store = RocksStore::open_read_only(&path, &RocksConfig::default()).with_context(|| format!("opening {}", path.display()))?;
    let shards = args.shard.map(|shard| vec![shard]);
    let mut shown = 0u64;
    cluster::read_journal(&store, shards.as_deref(), args.from, &mut |shard, index, ctx, events| {
        for event in events {
            println!("shard {shard} index {index} at_ms {}: {event:?}", ctx.timestamp_ms);
            shown += 1;
            if args.limit > 0 && shown >= args.limit {
                return false;
            }
        }
        true
    })?;
    Ok(())
}
