//! A shard's durability: what the shard thread writes for every batch it
//! applies, how it snapshots, and how it recovers at start.
//!
//! Each applied batch becomes one log entry (the batch's `Context` and
//! commands, `engine::encode_batch`) and one journal record (the events it
//! emitted, `engine::encode_events`), staged together and written by the
//! node's group commit; the batch's replies go out only when that write is
//! durable. The engine is deterministic, so the log is enough to rebuild the
//! state: recovery restores the latest snapshot and re-applies every entry
//! after it with the context it was first applied with. Today every entry
//! is committed when written (one replica, term 1); raft supplies terms and
//! commit indexes in the replication issue.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use engine::{Command, Context, Event, Residency, Shard, ShardConfig};
use persistence::{journal, Cf, Entry, GroupCommit, Op, ShardLog, Store, StoreError};

/// The only term until raft elects leaders.
pub const SINGLE_NODE_TERM: u64 = 1;
const MANIFEST_KEY: &[u8] = b"node-manifest";
const MANIFEST_VERSION: u8 = 1;

/// What a node needs to be durable.
#[derive(Clone, Debug)]
pub struct Storage {
    pub store: Arc<dyn Store>,
    pub group: persistence::GroupConfig,
    /// A shard snapshots itself after this many commands (0: only on demand).
    pub snapshot_every_commands: u64,
}

/// Why a node could not start on its data.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The stored bytes were intact (checksums match) but the engine
    /// refused them: a format or version problem, or a bug.
    #[error("shard {shard}: {what} in {location}: {problem}")]
    Engine { shard: u32, what: String, location: String, problem: String },
    #[error("the data in {location} was written by a node of {stored} shards; this one is configured for {configured}")]
    ShardCount { location: String, stored: u32, configured: u32 },
    /// A replicated node could not join its cluster.
    #[error("{0}")]
    Cluster(String),
}

/// How one shard came back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    pub shard: u32,
    pub snapshot_index: u64,
    pub snapshot_bytes: u64,
    pub entries: u64,
    pub commands: u64,
    pub applied_index: u64,
    pub elapsed: Duration,
}

/// A snapshot one shard wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotReport {
    pub shard: u32,
    pub index: u64,
    pub bytes: u64,
    /// How long the shard stopped applying: the wait for its staged
    /// writes and the encoding. The write that follows runs beside it.
    pub pause: Duration,
    /// From the start until the snapshot was durable and the log truncated.
    pub elapsed: Duration,
}

/// Where a snapshot's outcome goes (run on the thread that wrote it).
pub type SnapshotAnswer = Box<dyn FnOnce(Result<SnapshotReport, String>) + Send>;

/// Checks (or, on an empty store, records) the shard count the data was
/// written with. A store that holds data but no manifest is refused: the
/// shard count it was written with is unknown.
pub fn check_manifest(store: &dyn Store, shard_count: u32) -> Result<(), StartError> {
    let location = || format!("{} (column family state): node manifest", store.location());
    match store.get(Cf::State, MANIFEST_KEY)? {
        Some(value) => {
            let body = persistence::unseal(&value).map_err(|problem| StartError::Store(StoreError::new(location(), problem)))?;
            let stored = match body {
                [MANIFEST_VERSION, a, b, c, d] => u32::from_le_bytes([*a, *b, *c, *d]),
                _ => {
                    let problem = persistence::Problem::Malformed(format!("{} bytes", body.len()));
                    return Err(StartError::Store(StoreError::new(location(), problem)));
                }
            };
            if stored != shard_count {
                return Err(StartError::ShardCount { location: store.location(), stored, configured: shard_count });
            }
            Ok(())
        }
        None => {
            for cf in [Cf::Log, Cf::Snapshot, Cf::Journal, Cf::State] {
                if store.last(cf, &[], &[0xFF; 32])?.is_some() {
                    let problem = persistence::Problem::Missing(format!("the manifest, though column family {} holds data", cf.name()));
                    return Err(StartError::Store(StoreError::new(location(), problem)));
                }
            }
            let mut body = vec![MANIFEST_VERSION];
            body.extend_from_slice(&shard_count.to_le_bytes());
            store.write(&[Op::Put { cf: Cf::State, key: MANIFEST_KEY.to_vec(), value: persistence::seal(body) }], true)?;
            Ok(())
        }
    }
}

/// Rebuilds shard `config.shard_id` from its latest snapshot and the log
/// after it. With `preallocate`, the shard's tables are allocated (see
/// `Shard::preallocate`) before the log is replayed, so that the replay
/// does not wait on the kernel for fresh pages either.
pub fn recover(log: &ShardLog, config: ShardConfig, residency: Residency, preallocate: bool) -> Result<(Shard, Recovery), StartError> {
    let started = Instant::now();
    let shard_id = config.shard_id;
    let location = format!("{} (column family {})", log.store().location(), Cf::Log.name());
    let mut recovery = Recovery { shard: shard_id, ..Recovery::default() };
    let mut shard = match log.load_snapshot()? {
        Some((meta, data)) => {
            let shard = Shard::restore(&data, residency).map_err(|error| StartError::Engine {
                shard: shard_id,
                what: format!("snapshot at {}", meta.index),
                location: format!("{} (column family {})", log.store().location(), Cf::Snapshot.name()),
                problem: error.to_string(),
            })?;
            if shard.applied_index() != meta.index || shard.config().shard_id != shard_id {
                return Err(StartError::Engine {
                    shard: shard_id,
                    what: format!("snapshot at {}", meta.index),
                    location: log.store().location(),
                    problem: format!("holds shard {} at index {}", shard.config().shard_id, shard.applied_index()),
                });
            }
            if shard.config() != config {
                // The replicated settings are the snapshot's: replicas must agree on them.
                tracing::warn!(
                    shard = shard_id,
                    stored = ?shard.config(),
                    configured = ?config,
                    "the snapshot's shard settings differ from the configured ones; the snapshot's are kept"
                );
            }
            recovery.snapshot_index = meta.index;
            recovery.snapshot_bytes = meta.len;
            shard
        }
        None => Shard::with_residency(config, residency),
    };
    if preallocate {
        shard.preallocate();
    }
    let mut failure = None;
    let (mut outcomes, mut events) = (Vec::new(), Vec::new());
    log.scan_entries(log.first_index(), &mut |entry| {
        let fail = |problem: String| StartError::Engine {
            shard: shard_id,
            what: format!("entry {}", entry.index),
            location: location.clone(),
            problem,
        };
        let (ctx, commands) = match engine::decode_batch(&entry.data) {
            Ok(decoded) => decoded,
            Err(error) => {
                failure = Some(fail(error.to_string()));
                return false;
            }
        };
        if ctx.index != entry.index || ctx.index <= shard.applied_index() {
            failure = Some(fail(format!("holds a batch for index {} after index {}", ctx.index, shard.applied_index())));
            return false;
        }
        shard.apply_batch(ctx, &commands, &mut outcomes, &mut events);
        outcomes.clear();
        events.clear();
        recovery.entries += 1;
        recovery.commands += commands.len() as u64;
        true
    })?;
    if let Some(error) = failure {
        return Err(error);
    }
    recovery.applied_index = shard.applied_index();
    recovery.elapsed = started.elapsed();
    Ok((shard, recovery))
}

/// Reads the regulatory journal of `shards` (None: every shard that has
/// one) from log index `from` on: `visit` gets each batch's shard, index,
/// context and events, in index order per shard, and returns false to stop.
/// A record the engine cannot decode is an error naming it.
pub fn read_journal(
    store: &dyn Store,
    shards: Option<&[u32]>,
    from: u64,
    visit: &mut dyn FnMut(u32, u64, Context, Vec<Event>) -> bool,
) -> Result<(), StoreError> {
    let all: Vec<u32>;
    let shards = match shards {
        Some(shards) => shards,
        None => {
            all = (0u32..).take_while(|shard| journal::last_index(store, *shard).ok().flatten().is_some()).collect();
            &all
        }
    };
    for &shard in shards {
        let mut failure = None;
        let mut stopped = false;
        journal::scan(store, shard, from, &mut |index, record| match engine::decode_events(record) {
            Ok((ctx, events)) => {
                stopped = !visit(shard, index, ctx, events);
                !stopped
            }
            Err(error) => {
                let location = format!("{} (column family {}): shard {shard} record {index}", store.location(), Cf::Journal.name());
                failure = Some(StoreError::new(location, persistence::Problem::Malformed(error.to_string())));
                false
            }
        })?;
        if let Some(error) = failure {
            return Err(error);
        }
        if stopped {
            break;
        }
    }
    Ok(())
}

/// The durable half of a shard thread.
pub(crate) struct ShardDurability {
    pub log: Arc<ShardLog>,
    pub commit: Arc<GroupCommit>,
    snapshot_every_commands: u64,
    since_snapshot: u64,
    /// The thread writing this shard's latest snapshot, if any.
    writing: Option<JoinHandle<()>>,
    /// The thread preparing the next automatic snapshot's buffer, if any,
    /// and the state's size bound when it started.
    preparing: Option<(JoinHandle<Vec<u8>>, usize)>,
    /// The latest snapshot from a prepared buffer: its bytes, and the size
    /// bound the buffer was prepared for. Their ratio says how much of the
    /// next buffer to map (the bound errs large, by 2 to 3 times for open
    /// bets and index records).
    last_fill: Option<(usize, usize)>,
}

/// Room prepared for an automatic snapshot beyond the state's size bound
/// when the preparation starts, for what the shard applies meanwhile.
const PREPARED_ROOM_NUMERATOR: usize = 5;
const PREPARED_ROOM_DENOMINATOR: usize = 4;

/// What a snapshot is expected to take beyond the ratio of the last one
/// to its bound: an eighth more.
const MAPPED_MARGIN_DENOMINATOR: usize = 8;

/// Starts a thread preparing the buffer of a snapshot whose state has
/// size bound `bound`: room for it and what is applied meanwhile, mapped as
/// far as `last_fill` (the last snapshot's bytes and bound) suggests.
pub(crate) fn prepare_buffer(bound: usize, last_fill: Option<(usize, usize)>, name: String) -> std::io::Result<JoinHandle<Vec<u8>>> {
    let capacity = bound.saturating_mul(PREPARED_ROOM_NUMERATOR) / PREPARED_ROOM_DENOMINATOR;
    let mapped = bytes_to_map(bound, capacity, last_fill);
    std::thread::Builder::new().name(name).spawn(move || mapped_buffer(capacity, mapped))
}

/// An empty buffer of `capacity` whose first `mapped` bytes have been
/// written once, so the kernel has mapped their pages: encoding a snapshot
/// into them does not stop on page faults. (Encoding 847 MB into a fresh
/// buffer paused a shard 1-2.6 s, a quarter of it in the kernel zeroing
/// pages on first write.) Pages beyond `mapped` cost nothing until written.
/// (Not `vec![0; n]`: zeroed memory is mapped lazily, the very faults this
/// avoids.)
fn mapped_buffer(capacity: usize, mapped: usize) -> Vec<u8> {
    let mut buffer = Vec::with_capacity(capacity);
    buffer.resize(mapped.min(capacity), 0u8);
    buffer.clear();
    buffer
}

/// How much of a buffer prepared for a state of size bound `bound` to map:
/// as much as the last snapshot took of its bound, and an eighth more; half
/// the bound when no snapshot has told yet (open bets and index records,
/// the bulk of a large state, encode to well under half their bound: about
/// 100 bytes against 341 and 243). Never beyond `capacity`.
fn bytes_to_map(bound: usize, capacity: usize, last_fill: Option<(usize, usize)>) -> usize {
    let expected = match last_fill {
        Some((bytes, last_bound)) if last_bound > 0 => {
            let expected = usize::try_from(bound as u128 * bytes as u128 / last_bound as u128).unwrap_or(usize::MAX);
            expected.saturating_add(expected / MAPPED_MARGIN_DENOMINATOR)
        }
        _ => bound / 2,
    };
    expected.min(capacity)
}

impl Drop for ShardDurability {
    fn drop(&mut self) {
        // A node that stops lets its last snapshot finish (or fail) first.
        if let Some(writer) = self.writing.take() {
            let _ = writer.join();
        }
        // A buffer in preparation is left to its thread, which frees it.
    }
}

impl ShardDurability {
    pub fn new(log: ShardLog, commit: Arc<GroupCommit>, snapshot_every_commands: u64, replayed_commands: u64) -> ShardDurability {
        ShardDurability {
            log: Arc::new(log),
            commit,
            snapshot_every_commands,
            since_snapshot: replayed_commands,
            writing: None,
            preparing: None,
            last_fill: None,
        }
    }

    /// Stages the log entry and journal record of a batch just applied.
    pub fn stage(&mut self, shard_id: u32, ctx: Context, commands: &[Command], events: &[Event]) -> Vec<Op> {
        let mut data = Vec::with_capacity(32 + commands.len() * 64);
        engine::encode_batch(ctx, commands, &mut data);
        let entry = Entry { index: ctx.index, term: SINGLE_NODE_TERM, data: data.into(), ..Entry::default() };
        let mut ops = Vec::with_capacity(2);
        self.log.append(std::slice::from_ref(&entry), &mut ops);
        let mut record = Vec::with_capacity(32 + events.len() * 64);
        engine::encode_events(ctx, events, &mut record);
        journal::append(shard_id, ctx.index, record, &mut ops);
        self.since_snapshot += commands.len() as u64;
        ops
    }

    /// Whether the automatic snapshot is due now. Once enough commands
    /// have been applied it first has a buffer for the snapshot prepared
    /// beside the shard ([`mapped_buffer`]), and is due once that is ready
    /// (or at once if no thread could be started for it).
    pub fn snapshot_due(&mut self, shard: &Shard) -> bool {
        if self.snapshot_every_commands == 0 || self.since_snapshot < self.snapshot_every_commands || self.writing() {
            return false;
        }
        if let Some((preparing, _)) = &self.preparing {
            return preparing.is_finished();
        }
        let bound = shard.snapshot_size_bound();
        match prepare_buffer(bound, self.last_fill, format!("snapshot-buffer-{}", shard.config().shard_id)) {
            Ok(preparing) => {
                self.preparing = Some((preparing, bound));
                false
            }
            Err(error) => {
                tracing::warn!(%error, "could not prepare a snapshot buffer beside the shard; snapshotting without");
                true
            }
        }
    }

    /// Whether a buffer for the next snapshot is being prepared (the shard
    /// thread then checks back soon even when idle).
    pub fn preparing(&self) -> bool {
        self.preparing.is_some()
    }

    /// Whether a snapshot of this shard is still being written.
    pub fn writing(&self) -> bool {
        self.writing.as_ref().is_some_and(|writer| !writer.is_finished())
    }

    /// Snapshots `shard`: waits until every entry already staged is durable
    /// (so the snapshot never gets ahead of the log and journal it
    /// replaces), encodes the state on the shard's thread (which owns it),
    /// and writes the bytes, then truncates the log, on a thread of their
    /// own while the shard goes on applying. `answer` gets the outcome; a
    /// snapshot asked for while the previous one is still being written is
    /// refused.
    pub fn snapshot(&mut self, shard: &Shard, answer: SnapshotAnswer) {
        if self.writing() {
            answer(Err(format!("shard {}: the previous snapshot is still being written", shard.config().shard_id)));
            return;
        }
        if let Some(writer) = self.writing.take() {
            let _ = writer.join();
        }
        let started = Instant::now();
        // A prepared buffer if it is ready; one still being prepared (an
        // on-demand snapshot came first) is left to its thread.
        let (buffer, prepared_for) = match self.preparing.take() {
            Some((preparing, bound)) if preparing.is_finished() => (preparing.join().unwrap_or_default(), Some(bound)),
            _ => (Vec::new(), None),
        };
        self.commit.barrier();
        let data = shard.snapshot_into(buffer);
        if let Some(bound) = prepared_for {
            self.last_fill = Some((data.len(), bound));
        }
        let (shard_id, index, pause) = (shard.config().shard_id, shard.applied_index(), started.elapsed());
        self.since_snapshot = 0;
        let log = self.log.clone();
        let write = move || {
            // Off the shard's thread: the state is encoded, the shard moves on.
            let checksum = persistence::checksum(&data);
            let written = if index > log.snapshot_meta().index {
                log.save_snapshot(index, SINGLE_NODE_TERM, &data, checksum).map(|_| ())
            } else {
                Ok(())
            };
            let report = SnapshotReport { shard: shard_id, index, bytes: data.len() as u64, pause, elapsed: started.elapsed() };
            answer(written.map(|()| report).map_err(|error| error.to_string()));
        };
        match std::thread::Builder::new().name(format!("snapshot-{shard_id}")).spawn(write) {
            Ok(writer) => self.writing = Some(writer),
            Err(error) => tracing::error!(%error, shard = shard_id, "could not start the snapshot writer"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first prepared buffer is mapped to half its bound; later ones as much as
    /// the last snapshot took of its bound, an eighth more, never beyond
    /// the capacity.
    #[test]
    fn a_prepared_buffer_maps_what_the_last_snapshot_suggests() {
        assert_eq!(bytes_to_map(1_000, 1_250, None), 500, "no snapshot yet: half the bound");
        // The last snapshot took 40% of its bound; the state has doubled.
        assert_eq!(bytes_to_map(2_000, 2_500, Some((400, 1_000))), 800 + 100);
        assert_eq!(bytes_to_map(1_000, 1_250, Some((1_000, 1_000))), 1_125);
        assert_eq!(bytes_to_map(1_000, 1_100, Some((1_000, 1_000))), 1_100, "capped at the capacity");
        assert_eq!(bytes_to_map(1_000, 1_250, Some((7, 0))), 500, "a zero bound tells nothing");
        assert_eq!(bytes_to_map(usize::MAX, usize::MAX, Some((usize::MAX, 1))), usize::MAX, "no overflow");
    }

    #[test]
    fn a_mapped_buffer_is_empty_with_its_capacity() {
        let buffer = mapped_buffer(1 << 20, 1 << 16);
        assert!(buffer.is_empty());
        assert!(buffer.capacity() >= 1 << 20);
        assert!(mapped_buffer(10, 1 << 20).capacity() < 1 << 20, "never maps beyond the capacity");
    }
}
