//! One shard's raft log on a [`Store`]: entries, hard and conf state, and
//! the latest snapshot, implementing raft-rs's [`raft::Storage`] so the
//! replication layer can use it as is.
//!
//! Writes are staged, not performed: `append` and `set_state` add [`Op`]s to
//! a batch the caller hands to the group commit (so many shards share one
//! fsync), and update the cached bounds at once. Reads (`entries`, `term`)
//! see only what the group commit has written: until then a staged entry
//! reads as unavailable. raft-rs keeps entries it has not been told are
//! persisted in its own unstable log and asks storage only for the others,
//! so the replication layer must report persistence (`on_persist_ready`)
//! from the group commit's completion, never before. Snapshots are written
//! directly by [`ShardLog::save_snapshot`] (big, rare), possibly on another
//! thread than the one appending: clones of a `ShardLog` share one log, one
//! snapshot is written at a time (one being written gives way to a
//! snapshot installed from the leader), and the new bounds are published
//! before the truncation, so a reader that meets entries or a snapshot
//! replaced under it hears `Compacted` or `SnapshotTemporarilyUnavailable`,
//! as raft-rs expects of a log compacted in the background. Every record is sealed with a CRC-32C and checked
//! when read.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use raft::eraftpb::{ConfState, Entry, EntryType, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};

use crate::error::{Problem, StoreError};
use crate::keys;
use crate::record::{open, seal, In, Out};
use crate::store::{Cf, Op, Store};

/// Snapshot data is stored in chunks of this size.
pub const SNAPSHOT_CHUNK_BYTES: usize = 4 << 20;
/// Chunks written in one unlogged batch, at most (in bytes).
const UNLOGGED_BATCH_BYTES: usize = 8 << 20;
const RECORD_VERSION: u8 = 1;

/// Where a snapshot sits in the log, and what it holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SnapshotMeta {
    pub index: u64,
    pub term: u64,
    pub conf_state: ConfState,
    pub len: u64,
    pub chunks: u32,
    /// CRC-32C of the whole data.
    pub checksum: u32,
}

#[derive(Debug, Default)]
struct Cached {
    hard_state: HardState,
    conf_state: ConfState,
    snapshot: SnapshotMeta,
    last_index: u64,
    last_term: u64,
    /// The first entry the log serves: one past the snapshot, or earlier
    /// when a snapshot kept entries for a lagging follower
    /// ([`ShardLog::save_snapshot_keeping`]); the entry before it is kept
    /// too. At opening, one past the snapshot.
    first: u64,
    /// The term of the entry before `first` (raft asks it of storage).
    before_first_term: u64,
    /// The latest entries appended, consecutive and ending at `last_index`
    /// when not empty (TiKV's entry cache): raft reads them back to apply
    /// them and to send them to followers, and asks their terms, without a
    /// trip through the store. Bounded by `CACHE_ENTRIES_MAX` and `CACHE_BYTES_MAX`.
    recent: VecDeque<Entry>,
    recent_bytes: usize,
}

/// The entry cache's bounds.
const CACHE_ENTRIES_MAX: usize = 4_096;
const CACHE_BYTES_MAX: usize = 32 << 20;

/// An entry's size as `entries` counts it against its limit.
fn entry_bytes(entry: &Entry) -> usize {
    entry.data.len() + entry.context.len() + 24
}

impl Cached {
    /// The cached entries from `low` up to `high` (exclusive), at most
    /// `max_size` bytes but at least one; None if the cache does not hold them all.
    fn recent_range(&self, low: u64, high: u64, max_size: u64) -> Option<Vec<Entry>> {
        let front = self.recent.front()?.index;
        if low < front || high > self.last_index + 1 || low >= high {
            return None;
        }
        let mut size = 0u64;
        let mut entries = Vec::with_capacity((high - low) as usize);
        for entry in self.recent.range((low - front) as usize..(high - front) as usize) {
            size += entry_bytes(entry) as u64;
            if !entries.is_empty() && size > max_size {
                break;
            }
            entries.push(entry.clone());
        }
        Some(entries)
    }

    fn recent_term(&self, index: u64) -> Option<u64> {
        let front = self.recent.front()?.index;
        let offset = usize::try_from(index.checked_sub(front)?).ok()?;
        self.recent.get(offset).map(|entry| entry.term)
    }

    /// Forgets cached entries at or before `index` (compacted away).
    fn forget_through(&mut self, index: u64) {
        while self.recent.front().is_some_and(|entry| entry.index <= index) {
            let entry = self.recent.pop_front().expect("not empty");
            self.recent_bytes -= entry_bytes(&entry);
        }
    }
}

/// A clone is the same log (the replica's loop appends to it while a
/// writer thread saves a snapshot through another clone).
#[derive(Clone)]
pub struct ShardLog {
    shard: u32,
    store: Arc<dyn Store>,
    cached: Arc<RwLock<Cached>>,
    /// Held while a snapshot is written: one at a time.
    snapshotting: Arc<Mutex<()>>,
    /// The latest snapshot index an install has started at.
    installing: Arc<AtomicU64>,
    /// Whether snapshots to send are read beside the caller, and the one
    /// being read or read.
    aside: Arc<AtomicBool>,
    sending: Arc<Mutex<Sending>>,
}

/// A snapshot read beside the raft loop for sending: handed over once, and
/// forgotten when a newer one is published.
#[derive(Default)]
struct Sending {
    loading: bool,
    /// The snapshot index it was read at, and what reading it gave.
    loaded: Option<(u64, Result<Snapshot, StoreError>)>,
}

impl std::fmt::Debug for ShardLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cached = self.cached.read();
        f.debug_struct("ShardLog")
            .field("shard", &self.shard)
            .field("snapshot_index", &cached.snapshot.index)
            .field("last_index", &cached.last_index)
            .finish()
    }
}

fn encode_conf_state(out: &mut Out, conf: &ConfState) {
    out.u64s(&conf.voters);
    out.u64s(&conf.learners);
    out.u64s(&conf.voters_outgoing);
    out.u64s(&conf.learners_next);
    out.u8(u8::from(conf.auto_leave));
}

fn decode_conf_state(input: &mut In<'_>) -> Result<ConfState, Problem> {
    let voters = input.u64s()?;
    let learners = input.u64s()?;
    let voters_outgoing = input.u64s()?;
    let learners_next = input.u64s()?;
    let auto_leave = match input.u8()? {
        0 => false,
        1 => true,
        other => return Err(Problem::Malformed(format!("auto_leave {other}"))),
    };
    Ok(ConfState { voters, learners, voters_outgoing, learners_next, auto_leave, ..ConfState::default() })
}

pub fn encode_entry(entry: &Entry) -> Vec<u8> {
    let mut out = Out(Vec::with_capacity(entry.data.len() + entry.context.len() + 40));
    out.u8(RECORD_VERSION);
    out.u8(entry.entry_type as u8);
    out.u64(entry.term);
    out.u64(entry.index);
    out.bytes(&entry.data);
    out.bytes(&entry.context);
    seal(out.0)
}

pub fn decode_entry(value: &[u8]) -> Result<Entry, Problem> {
    let mut input = In::new(open(value)?);
    let version = input.u8()?;
    if version != RECORD_VERSION {
        return Err(Problem::Malformed(format!("entry format version {version}")));
    }
    let entry_type = match input.u8()? {
        0 => EntryType::EntryNormal,
        1 => EntryType::EntryConfChange,
        2 => EntryType::EntryConfChangeV2,
        other => return Err(Problem::Malformed(format!("entry type {other}"))),
    };
    let term = input.u64()?;
    let index = input.u64()?;
    let data = input.bytes()?.to_vec().into();
    let context = input.bytes()?.to_vec().into();
    input.finish()?;
    Ok(Entry { entry_type, term, index, data, context, ..Entry::default() })
}

fn encode_state(hard: &HardState, conf: &ConfState) -> Vec<u8> {
    let mut out = Out::default();
    out.u8(RECORD_VERSION);
    out.u64(hard.term);
    out.u64(hard.vote);
    out.u64(hard.commit);
    encode_conf_state(&mut out, conf);
    seal(out.0)
}

fn decode_state(value: &[u8]) -> Result<(HardState, ConfState), Problem> {
    let mut input = In::new(open(value)?);
    let version = input.u8()?;
    if version != RECORD_VERSION {
        return Err(Problem::Malformed(format!("state format version {version}")));
    }
    let hard = HardState { term: input.u64()?, vote: input.u64()?, commit: input.u64()?, ..HardState::default() };
    let conf = decode_conf_state(&mut input)?;
    input.finish()?;
    Ok((hard, conf))
}

fn encode_snapshot_meta(meta: &SnapshotMeta) -> Vec<u8> {
    let mut out = Out::default();
    out.u8(RECORD_VERSION);
    out.u64(meta.index);
    out.u64(meta.term);
    encode_conf_state(&mut out, &meta.conf_state);
    out.u64(meta.len);
    out.u32(meta.chunks);
    out.u32(meta.checksum);
    seal(out.0)
}

fn decode_snapshot_meta(value: &[u8]) -> Result<SnapshotMeta, Problem> {
    let mut input = In::new(open(value)?);
    let version = input.u8()?;
    if version != RECORD_VERSION {
        return Err(Problem::Malformed(format!("snapshot format version {version}")));
    }
    let meta = SnapshotMeta {
        index: input.u64()?,
        term: input.u64()?,
        conf_state: decode_conf_state(&mut input)?,
        len: input.u64()?,
        chunks: input.u32()?,
        checksum: input.u32()?,
    };
    input.finish()?;
    let expected_chunks = meta.len.div_ceil(SNAPSHOT_CHUNK_BYTES as u64);
    if u64::from(meta.chunks) != expected_chunks {
        return Err(Problem::Malformed(format!("{} chunks for {} bytes", meta.chunks, meta.len)));
    }
    Ok(meta)
}

fn storage_error(error: StoreError) -> raft::Error {
    raft::Error::Store(StorageError::Other(Box::new(error)))
}

impl ShardLog {
    /// Opens shard `shard`'s log: reads its state and snapshot metadata and
    /// finds the last entry. Damaged records are reported, not skipped.
    pub fn open(store: Arc<dyn Store>, shard: u32) -> Result<ShardLog, StoreError> {
        let log = ShardLog {
            shard,
            store,
            cached: Arc::new(RwLock::new(Cached::default())),
            snapshotting: Arc::new(Mutex::new(())),
            installing: Arc::new(AtomicU64::new(0)),
            aside: Arc::new(AtomicBool::new(false)),
            sending: Arc::new(Mutex::new(Sending::default())),
        };
        let mut cached = Cached::default();
        if let Some(value) = log.store.get(Cf::State, &keys::shard_prefix(shard))? {
            let (hard, conf) = decode_state(&value).map_err(|p| log.error(Cf::State, "hard state", p))?;
            cached.hard_state = hard;
            cached.conf_state = conf;
        }
        if let Some(value) = log.store.get(Cf::Snapshot, &keys::snapshot_meta(shard))? {
            cached.snapshot = decode_snapshot_meta(&value).map_err(|p| log.error(Cf::Snapshot, "snapshot metadata", p))?;
        }
        cached.last_index = cached.snapshot.index;
        cached.last_term = cached.snapshot.term;
        cached.first = cached.snapshot.index + 1;
        cached.before_first_term = cached.snapshot.term;
        let from = keys::indexed(shard, cached.snapshot.index + 1);
        if let Some((key, value)) = log.store.last(Cf::Log, &from, &keys::shard_end(shard))? {
            let index = keys::index_of(&key).unwrap_or(0);
            let entry = decode_entry(&value).map_err(|p| log.error(Cf::Log, &format!("entry {index}"), p))?;
            if entry.index != index {
                return Err(log.error(Cf::Log, &format!("entry {index}"), Problem::Malformed(format!("holds index {}", entry.index))));
            }
            cached.last_index = index;
            cached.last_term = entry.term;
        }
        *log.cached.write() = cached;
        Ok(log)
    }

    pub fn shard(&self) -> u32 {
        self.shard
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn error(&self, cf: Cf, what: &str, problem: Problem) -> StoreError {
        StoreError::new(format!("{} (column family {}): shard {} {what}", self.store.location(), cf.name(), self.shard), problem)
    }

    pub fn first_index(&self) -> u64 {
        self.cached.read().first
    }

    pub fn last_index(&self) -> u64 {
        self.cached.read().last_index
    }

    pub fn hard_state(&self) -> HardState {
        self.cached.read().hard_state.clone()
    }

    pub fn snapshot_meta(&self) -> SnapshotMeta {
        self.cached.read().snapshot.clone()
    }

    /// Stages `entries` (consecutive, starting at most one past the last
    /// entry and after the snapshot): entries from the first one's index on
    /// are replaced. Panics on a hole or an overwrite of compacted entries,
    /// as raft-rs's own storage does: both are bugs of the caller.
    pub fn append(&self, entries: &[Entry], ops: &mut Vec<Op>) {
        let Some(first) = entries.first() else { return };
        let mut cached = self.cached.write();
        assert!(first.index > cached.snapshot.index, "append at {} overwrites the snapshot at {}", first.index, cached.snapshot.index);
        assert!(first.index <= cached.last_index + 1, "append at {} leaves a hole after {}", first.index, cached.last_index);
        for (offset, entry) in entries.iter().enumerate() {
            assert_eq!(entry.index, first.index + offset as u64, "entries must be consecutive");
        }
        if first.index <= cached.last_index {
            ops.push(Op::DeleteRange {
                cf: Cf::Log,
                from: keys::indexed(self.shard, first.index).to_vec(),
                to: keys::shard_end(self.shard),
            });
        }
        for entry in entries {
            ops.push(Op::Put { cf: Cf::Log, key: keys::indexed(self.shard, entry.index).to_vec(), value: encode_entry(entry) });
        }
        // The cache: drop what these entries replace, keep it consecutive.
        while cached.recent.back().is_some_and(|entry| entry.index >= first.index) {
            let entry = cached.recent.pop_back().expect("not empty");
            cached.recent_bytes -= entry_bytes(&entry);
        }
        if cached.recent.back().is_some_and(|entry| entry.index + 1 != first.index) {
            cached.recent.clear();
            cached.recent_bytes = 0;
        }
        for entry in entries {
            cached.recent_bytes += entry_bytes(entry);
            cached.recent.push_back(entry.clone());
        }
        while cached.recent.len() > CACHE_ENTRIES_MAX || (cached.recent_bytes > CACHE_BYTES_MAX && cached.recent.len() > 1) {
            let entry = cached.recent.pop_front().expect("not empty");
            cached.recent_bytes -= entry_bytes(&entry);
        }
        let last = entries.last().expect("not empty");
        cached.last_index = last.index;
        cached.last_term = last.term;
    }

    /// Stages the hard state (and conf state).
    pub fn set_state(&self, hard: HardState, conf: Option<ConfState>, ops: &mut Vec<Op>) {
        let mut cached = self.cached.write();
        cached.hard_state = hard;
        if let Some(conf) = conf {
            cached.conf_state = conf;
        }
        ops.push(Op::Put {
            cf: Cf::State,
            key: keys::shard_prefix(self.shard).to_vec(),
            value: encode_state(&cached.hard_state, &cached.conf_state),
        });
    }

    /// Visits the stored entries from `low` on, in order, until `visit`
    /// returns false; checks each one's checksum and that they follow each
    /// other without a hole. Returns the index of the last one visited.
    pub fn scan_entries(&self, low: u64, visit: &mut dyn FnMut(Entry) -> bool) -> Result<u64, StoreError> {
        let mut expected = low;
        let mut failure = None;
        self.store.scan(Cf::Log, &keys::indexed(self.shard, low), &keys::shard_end(self.shard), &mut |key, value| {
            let index = keys::index_of(key).unwrap_or(0);
            if index != expected {
                failure = Some(self.error(
                    Cf::Log,
                    &format!("entry {expected}"),
                    Problem::Missing(format!("the log jumps from {} to {index}", expected.saturating_sub(1))),
                ));
                return false;
            }
            match decode_entry(value) {
                Ok(entry) if entry.index == index => {
                    expected += 1;
                    visit(entry)
                }
                Ok(entry) => {
                    failure =
                        Some(self.error(Cf::Log, &format!("entry {index}"), Problem::Malformed(format!("holds index {}", entry.index))));
                    false
                }
                Err(problem) => {
                    failure = Some(self.error(Cf::Log, &format!("entry {index}"), problem));
                    false
                }
            }
        })?;
        match failure {
            Some(error) => Err(error),
            None => Ok(expected.saturating_sub(1)),
        }
    }

    /// Writes a snapshot of the state at `index` (synced), then truncates
    /// the log up to it. `data` is checked against `checksum` (the CRC-32C
    /// the caller computed when it made the bytes) before anything is
    /// written. Chunks go first, without the write-ahead log (a snapshot is
    /// large: written once, to files, and never replayed from the log at
    /// open), made durable by a flush; then the snapshot becomes current
    /// for readers, and the metadata, written with the truncation in one
    /// synced batch, makes it current on disk. A crash (or a failed write)
    /// in between leaves the previous snapshot in force on disk, with the
    /// whole log, and the new chunks as garbage the next snapshot deletes.
    /// A snapshot not newer than the one in place is refused.
    pub fn save_snapshot(&self, index: u64, term: u64, data: &[u8], checksum: u32) -> Result<SnapshotMeta, StoreError> {
        let _writing = self.snapshotting.lock();
        self.write_snapshot(index, term, data, checksum, index + 1, false)?.ok_or_else(|| self.not_newer(index))
    }

    /// As [`ShardLog::save_snapshot`], but the log keeps its entries from
    /// `keep_from` on (and the one before, for its term), so that a
    /// follower that far behind gets entries rather than the whole
    /// snapshot (TiKV's raft log GC waits for lagging followers the same
    /// way). `keep_from` is taken between the current first index and one
    /// past `index`. Kept entries serve followers only: a restart forgets
    /// them (the next snapshot deletes them).
    ///
    /// None, and nothing written, if a snapshot at `index` or later is
    /// already in place, or an install of one begins while this is written
    /// (a snapshot written in the background gives way to one installed
    /// from the leader).
    pub fn save_snapshot_keeping(
        &self,
        index: u64,
        term: u64,
        data: &[u8],
        checksum: u32,
        keep_from: u64,
    ) -> Result<Option<SnapshotMeta>, StoreError> {
        let _writing = self.snapshotting.lock();
        self.write_snapshot(index, term, data, checksum, keep_from, true)
    }

    /// Whether a snapshot at `index` or later is being installed: one
    /// being written at `index` stops (its chunks are garbage the next
    /// snapshot deletes), so that the install does not wait for it.
    fn superseded(&self, index: u64) -> bool {
        self.installing.load(Ordering::SeqCst) >= index
    }

    fn not_newer(&self, index: u64) -> StoreError {
        let current = self.snapshot_meta().index;
        self.error(Cf::Snapshot, &format!("snapshot at {index}"), Problem::Malformed(format!("not newer than the one at {current}")))
    }

    /// Writes a snapshot (the caller holds `snapshotting`); None if one at
    /// `index` or later is already in place, or, if `yields`, is being
    /// installed.
    fn write_snapshot(
        &self,
        index: u64,
        term: u64,
        data: &[u8],
        checksum: u32,
        keep_from: u64,
        yields: bool,
    ) -> Result<Option<SnapshotMeta>, StoreError> {
        let computed = crc32c::crc32c(data);
        if computed != checksum {
            return Err(self.error(
                Cf::Snapshot,
                &format!("snapshot at {index} (before writing)"),
                Problem::Checksum { stored: checksum, computed },
            ));
        }
        // A snapshot at the current one's index would overwrite its chunks in place.
        if index <= self.snapshot_meta().index {
            return Ok(None);
        }
        let conf_state = self.cached.read().conf_state.clone();
        let chunks = data.chunks(SNAPSHOT_CHUNK_BYTES);
        let chunk_count = chunks.len() as u32;
        // Chunks of an unfinished snapshot (a crash between chunks and metadata) go first.
        let mut ops = vec![Op::DeleteRange {
            cf: Cf::Snapshot,
            from: keys::snapshot_chunks_before(self.shard, index).to_vec(),
            to: keys::snapshot_chunks_before(self.shard, u64::MAX).to_vec(),
        }];
        let mut pending = 0usize;
        for (number, chunk) in chunks.enumerate() {
            ops.push(Op::Put {
                cf: Cf::Snapshot,
                key: keys::snapshot_chunk(self.shard, index, number as u32).to_vec(),
                value: chunk.to_vec(),
            });
            pending += chunk.len();
            // Small batches: the raft log's synced writes queue behind each.
            if pending >= UNLOGGED_BATCH_BYTES {
                self.store.write_unlogged(&ops)?;
                ops.clear();
                pending = 0;
                if yields && self.superseded(index) {
                    return Ok(None);
                }
            }
        }
        self.store.write_unlogged(&ops)?;
        self.store.persist(Cf::Snapshot)?;
        if yields && self.superseded(index) {
            return Ok(None);
        }
        ops.clear();
        let meta = SnapshotMeta { index, term, conf_state, len: data.len() as u64, chunks: chunk_count, checksum };
        ops.push(Op::Put { cf: Cf::Snapshot, key: keys::snapshot_meta(self.shard).to_vec(), value: encode_snapshot_meta(&meta) });
        ops.push(Op::DeleteRange {
            cf: Cf::Snapshot,
            from: keys::snapshot_chunks_before(self.shard, 0).to_vec(),
            to: keys::snapshot_chunks_before(self.shard, index).to_vec(),
        });
        let mut keep_from = keep_from.clamp(self.first_index().min(index + 1), index + 1);
        // Raft asks the term of the entry before the first: known now (in
        // the log, or the current snapshot's), perhaps not once it is replaced.
        let before_first_term = match keep_from {
            k if k > index => term,
            k => match raft::Storage::term(self, k - 1) {
                Ok(known) => known,
                Err(_) => {
                    keep_from = index + 1;
                    term
                }
            },
        };
        // Deleted: every entry before `keep_from`'s predecessor (through the
        // snapshot's own index when nothing is kept: the snapshot has its term).
        let delete_to = if keep_from > index { index + 1 } else { keep_from - 1 };
        ops.push(Op::DeleteRange {
            cf: Cf::Log,
            from: keys::indexed(self.shard, 0).to_vec(),
            to: keys::indexed(self.shard, delete_to).to_vec(),
        });
        // Readers see the new bounds before anything they describe as gone
        // is deleted: entries before `keep_from` read as compacted, and the
        // snapshot is served from its chunks, already durable. (The other
        // order let a reader on another thread find the store truncated
        // under bounds that said otherwise: an error raft-rs stops on.) If
        // the write then fails, what the bounds hide is still on disk, and
        // a restart reads the previous snapshot and the whole log.
        {
            let mut cached = self.cached.write();
            cached.snapshot = meta.clone();
            cached.first = keep_from;
            cached.before_first_term = before_first_term;
            cached.forget_through(keep_from - 1);
            if cached.last_index < index {
                cached.last_index = index;
                cached.last_term = term;
                cached.recent.clear();
                cached.recent_bytes = 0;
            }
        }
        // A snapshot read to send and not taken is of the previous one.
        self.sending.lock().loaded = None;
        self.store.write(&ops, true)?;
        Ok(Some(meta))
    }

    /// Installs a snapshot received from the group's leader: saved as
    /// [`ShardLog::save_snapshot`] saves one, and then every entry after it
    /// is dropped too, since the log it came from replaces this one.
    pub fn install_snapshot(&self, index: u64, term: u64, data: &[u8], checksum: u32) -> Result<SnapshotMeta, StoreError> {
        // A compaction being written on another thread gives way.
        self.installing.fetch_max(index, Ordering::SeqCst);
        let _writing = self.snapshotting.lock();
        let meta = self.write_snapshot(index, term, data, checksum, index + 1, false)?.ok_or_else(|| self.not_newer(index))?;
        let ops = [Op::DeleteRange { cf: Cf::Log, from: keys::indexed(self.shard, index + 1).to_vec(), to: keys::shard_end(self.shard) }];
        self.store.write(&ops, true)?;
        let mut cached = self.cached.write();
        cached.last_index = index;
        cached.last_term = term;
        cached.first = index + 1;
        cached.before_first_term = term;
        cached.recent.clear();
        cached.recent_bytes = 0;
        Ok(meta)
    }

    /// From now on, a snapshot raft asks to send is read by a thread of its
    /// own (`Storage::snapshot`). Nodes set it; the simulator does not (a
    /// thread's timing would make a seed's run vary).
    pub fn load_snapshots_aside(&self) {
        self.aside.store(true, Ordering::SeqCst);
    }

    /// The latest snapshot as raft sends it, read from the store now.
    fn read_snapshot(&self, request_index: u64) -> raft::Result<Snapshot> {
        let current = self.snapshot_meta().index;
        let loaded = self.load_snapshot().map_err(|error| {
            // A newer snapshot, written meanwhile, deleted this one's chunks:
            // raft asks again.
            if self.snapshot_meta().index != current {
                raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable)
            } else {
                storage_error(error)
            }
        })?;
        let Some((meta, data)) = loaded else {
            return Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable));
        };
        if meta.index < request_index {
            return Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable));
        }
        let mut snapshot = Snapshot { data: data.into(), ..Snapshot::default() };
        let metadata = snapshot.mut_metadata();
        metadata.index = meta.index;
        metadata.term = meta.term;
        metadata.set_conf_state(meta.conf_state);
        Ok(snapshot)
    }

    /// The latest snapshot's metadata and data, checked against its checksum.
    pub fn load_snapshot(&self) -> Result<Option<(SnapshotMeta, Vec<u8>)>, StoreError> {
        let meta = self.snapshot_meta();
        if meta.index == 0 && meta.chunks == 0 {
            return Ok(None);
        }
        let what = format!("snapshot at {}", meta.index);
        // The length is checked at the end; reserve no more than a chunk's worth on its word.
        let mut data = Vec::with_capacity(usize::try_from(meta.len).unwrap_or(0).min(SNAPSHOT_CHUNK_BYTES));
        for number in 0..meta.chunks {
            let key = keys::snapshot_chunk(self.shard, meta.index, number);
            match self.store.get(Cf::Snapshot, &key)? {
                Some(chunk) => data.extend_from_slice(&chunk),
                None => {
                    return Err(self.error(Cf::Snapshot, &what, Problem::Missing(format!("chunk {number} of {}", meta.chunks))));
                }
            }
        }
        if data.len() as u64 != meta.len {
            return Err(self.error(Cf::Snapshot, &what, Problem::Malformed(format!("{} bytes, metadata says {}", data.len(), meta.len))));
        }
        let computed = crc32c::crc32c(&data);
        if computed != meta.checksum {
            return Err(self.error(Cf::Snapshot, &what, Problem::Checksum { stored: meta.checksum, computed }));
        }
        Ok(Some((meta, data)))
    }
}

impl raft::Storage for ShardLog {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let cached = self.cached.read();
        // A snapshot holds committed state only, so the commit index is at
        // least its index even when the commit index written after it (in an
        // unsynced write) was lost.
        let mut hard_state = cached.hard_state.clone();
        hard_state.commit = hard_state.commit.max(cached.snapshot.index);
        Ok(RaftState { hard_state, conf_state: cached.conf_state.clone() })
    }

    fn entries(&self, low: u64, high: u64, max_size: impl Into<Option<u64>>, _context: GetEntriesContext) -> raft::Result<Vec<Entry>> {
        let max_size = max_size.into().unwrap_or(u64::MAX);
        let (first, last) = {
            let cached = self.cached.read();
            if low >= cached.first {
                if let Some(entries) = cached.recent_range(low, high, max_size) {
                    return Ok(entries);
                }
            }
            (cached.first, cached.last_index)
        };
        if low < first {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > last + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let mut entries = Vec::new();
        let mut size = 0u64;
        let mut limited = false;
        self.scan_entries(low, &mut |entry| {
            if entry.index >= high {
                return false;
            }
            size += (entry.data.len() + entry.context.len() + 24) as u64;
            // raft-rs returns at least one entry whatever the limit.
            if !entries.is_empty() && size > max_size {
                limited = true;
                return false;
            }
            entries.push(entry);
            true
        })
        .map_err(|error| {
            // A snapshot may have truncated the log under the scan.
            if low < ShardLog::first_index(self) {
                raft::Error::Store(StorageError::Compacted)
            } else {
                storage_error(error)
            }
        })?;
        if !limited && (entries.len() as u64) < high - low {
            // Truncated under the scan, with nothing left where it looked.
            if low < ShardLog::first_index(self) {
                return Err(raft::Error::Store(StorageError::Compacted));
            }
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(entries)
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        let (snapshot_index, snapshot_term, first, last_index, last_term) = {
            let cached = self.cached.read();
            if let Some(term) = cached.recent_term(index) {
                return Ok(term);
            }
            if index + 1 == cached.first {
                return Ok(cached.before_first_term);
            }
            (cached.snapshot.index, cached.snapshot.term, cached.first, cached.last_index, cached.last_term)
        };
        if index == snapshot_index {
            return Ok(snapshot_term);
        }
        // Kept behind the snapshot: from the entry before the first one.
        if index < snapshot_index && index + 1 < first {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if index > last_index {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        if index == last_index {
            return Ok(last_term);
        }
        let value = self.store.get(Cf::Log, &keys::indexed(self.shard, index)).map_err(storage_error)?;
        let Some(value) = value else {
            // A snapshot may have truncated the log since the bounds were read.
            let compacted = index < ShardLog::first_index(self);
            return Err(raft::Error::Store(if compacted { StorageError::Compacted } else { StorageError::Unavailable }));
        };
        let entry = decode_entry(&value).map_err(|p| storage_error(self.error(Cf::Log, &format!("entry {index}"), p)))?;
        Ok(entry.term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(ShardLog::first_index(self))
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(ShardLog::last_index(self))
    }

    /// The latest snapshot, to send to a follower. Read from the store
    /// here, or, once [`ShardLog::load_snapshots_aside`] is set, by a thread
    /// of its own while raft hears `SnapshotTemporarilyUnavailable` and asks
    /// again (TiKV generates snapshots the same way): a large one takes the
    /// store's reads and a checksum over every byte, which would stop the
    /// loop that asks.
    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if !self.aside.load(Ordering::SeqCst) {
            return self.read_snapshot(request_index);
        }
        let current = self.snapshot_meta().index;
        if current < request_index {
            return Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable));
        }
        let mut sending = self.sending.lock();
        match sending.loaded.take() {
            Some((index, Ok(snapshot))) if index == current => return Ok(snapshot),
            Some((index, Err(error))) if index == current => return Err(storage_error(error)),
            // Read at an older snapshot than the one now in place: read again.
            _ => {}
        }
        if !sending.loading {
            sending.loading = true;
            let log = self.clone();
            let load = move || {
                let failed = |why: String| Some((current, Err(StoreError::new(log.store.location(), Problem::Engine(why)))));
                let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| log.read_snapshot(request_index)));
                let loaded = match read {
                    Ok(Ok(snapshot)) => Some((snapshot.get_metadata().index, Ok(snapshot))),
                    Ok(Err(raft::Error::Store(StorageError::Other(error)))) => match error.downcast::<StoreError>() {
                        Ok(error) => Some((current, Err(*error))),
                        Err(other) => failed(other.to_string()),
                    },
                    // Replaced meanwhile, or none yet: raft's next ask reads again.
                    Ok(Err(_)) => None,
                    Err(_) => failed(format!("shard {}: reading the snapshot to send panicked", log.shard)),
                };
                let mut sending = log.sending.lock();
                sending.loading = false;
                sending.loaded = loaded;
            };
            if let Err(error) = std::thread::Builder::new().name(format!("snapshot-load-{}", self.shard)).spawn(load) {
                tracing::warn!(%error, shard = self.shard, "could not load a snapshot beside the loop; loading it here");
                sending.loading = false;
                drop(sending);
                return self.read_snapshot(request_index);
            }
        }
        Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable))
    }
}
