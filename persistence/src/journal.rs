//! The regulatory journal: per shard, one sealed record per applied log
//! index, written in the same atomic batch as the log entry it describes
//! and never truncated with the log. What a record holds is the engine's
//! business; this module frames and finds it.

use crate::error::{Problem, StoreError};
use crate::keys;
use crate::record::{open, seal};
use crate::store::{Cf, Op, Store};

/// Stages the journal record of `shard` at `index`.
pub fn append(shard: u32, index: u64, record: Vec<u8>, ops: &mut Vec<Op>) {
    ops.push(Op::Put { cf: Cf::Journal, key: keys::indexed(shard, index).to_vec(), value: seal(record) });
}

/// Visits `shard`'s journal records from `from` on, in index order, until
/// `visit` returns false; each record's checksum is checked first.
pub fn scan(store: &dyn Store, shard: u32, from: u64, visit: &mut dyn FnMut(u64, &[u8]) -> bool) -> Result<(), StoreError> {
    let mut failure = None;
    store.scan(Cf::Journal, &keys::indexed(shard, from), &keys::shard_end(shard), &mut |key, value| {
        let index = keys::index_of(key).unwrap_or(0);
        match open(value) {
            Ok(body) => visit(index, body),
            Err(problem) => {
                failure =
                    Some(StoreError::new(format!("{} (column family journal): shard {shard} record {index}", store.location()), problem));
                false
            }
        }
    })?;
    failure.map_or(Ok(()), Err)
}

/// The highest index in `shard`'s journal.
pub fn last_index(store: &dyn Store, shard: u32) -> Result<Option<u64>, StoreError> {
    let last = store.last(Cf::Journal, &keys::indexed(shard, 0), &keys::shard_end(shard))?;
    match last {
        None => Ok(None),
        Some((key, _)) => keys::index_of(&key).map(Some).ok_or_else(|| {
            StoreError::new(format!("{} (column family journal)", store.location()), Problem::Malformed("key length".into()))
        }),
    }
}
