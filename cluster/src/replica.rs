//! One replica of a shard's raft group: raft-rs's `RawNode` over the
//! shard's [`ShardLog`], driven through its Ready loop, applying committed
//! batches to an [`engine::Shard`]. No threads and no sockets: the caller
//! moves messages between replicas, ticks the clock and calls
//! [`Replica::ready`], which is how the deterministic simulator (`sim/`)
//! drives three of them over a simulated network and disk, and how a node
//! will drive many (the replication issue's next steps).
//!
//! A log entry's data is an engine batch (`engine::encode_batch`) whose
//! context carries the leader's clock; the index applied is the raft entry's
//! own, so every replica applies the same batch at the same index. Its
//! context bytes carry the proposal's id, so the proposing replica can
//! answer the client once the entry is applied.
//!
//! Logs are compacted behind engine snapshots (`compact`; a leader keeps
//! the entries a follower up to `LAGGING_ENTRIES_KEPT` and
//! `LAGGING_BYTES_KEPT` behind still needs);
//! a follower too far behind gets the leader's snapshot and installs it whole (engine
//! state and log), and the caller's transport reports how sending one went
//! (`report_snapshot`).
//!
//! Determinism: raft-rs draws election timeouts from the thread's RNG; each
//! replica is given a one-value range (`min_election_tick` =
//! `max_election_tick` - 1, distinct per replica), so no randomness is
//! left and a seed of the simulator replays exactly.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::{decode_batch, encode_batch, Command, Context, Event, Outcome, Residency, Shard, ShardConfig};
use persistence::{ConfState, HardState, Op, ShardLog, Store, StoreError};
use raft::eraftpb::{Entry, EntryType, Message};
use raft::{Config, RawNode, SnapshotStatus, StateRole};

/// Ticks between heartbeats.
pub const HEARTBEAT_TICKS: usize = 2;
/// The shortest election timeout, in ticks (replica `id` waits this plus `2 id`).
pub const ELECTION_TICKS: usize = 10;
/// A leader's log holds at most this many bytes of entries not yet
/// committed (raft-rs's `max_uncommitted_size`); past it a proposal is
/// refused, and the host proposes it again at a later tick. Without it a
/// leader that cannot commit (a slow or lost quorum) grows its log with
/// every proposal forwarded to it.
pub const UNCOMMITTED_BYTES_MAX: u64 = 64 << 20;
/// A node's leaders, compacting, keep the log entries of a follower at most
/// this many entries behind (entries hold up to `batch_max` commands each;
/// `HostConfig::lagging_entries_kept`).
pub const LAGGING_ENTRIES_KEPT: u64 = 10_000;
/// And at most this many bytes of entries for one (TiKV's
/// `raft-log-gc-size-limit`): entries hold up to `batch_max` commands, so
/// the entry bound alone could keep gigabytes while a follower is down.
pub const LAGGING_BYTES_KEPT: u64 = 256 << 20;

/// How far behind a follower may be for a leader's compaction to keep the
/// entries it needs (`Replica::begin_compaction`): in entries, and in the
/// bytes of those entries (as the log's cache counts them). Sizes are
/// known for the latest `LAGGING_ENTRIES_KEPT` entries applied since the
/// replica opened; a follower behind those gets the snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lagging {
    pub entries: u64,
    pub bytes: u64,
}

impl Default for Lagging {
    fn default() -> Lagging {
        Lagging { entries: LAGGING_ENTRIES_KEPT, bytes: LAGGING_BYTES_KEPT }
    }
}

/// What a raft group replicates: a deterministic state machine that
/// applies committed entries in log order and snapshots to bytes. Every
/// replica of a group applies the same entries and answers the same.
pub trait Machine {
    /// What applying one entry answers (the engine: one outcome per command).
    type Output: std::fmt::Debug + Clone + PartialEq;
    /// Applies a committed entry's bytes at raft index `index`, proposed
    /// under `proposal` (0: none), staging any writes of its own (the
    /// engine's journal record) in `ops`. None: the entry is a copy of a
    /// proposal already applied (a proposer sent it again), and nothing was
    /// done. Err: the bytes are not an entry of this machine.
    fn apply(&mut self, index: u64, proposal: u64, data: &[u8], ops: &mut Vec<Op>) -> Result<Option<Self::Output>, String>;
    /// Units of work in an output, counted toward the next snapshot.
    fn weight(output: &Self::Output) -> u64;
    /// The state as bytes, at the last index applied.
    fn snapshot(&self) -> Vec<u8>;
    /// [`Machine::snapshot`] into `buffer` (emptied first), used as it is
    /// if it has room: a node prepares one with its pages mapped, so that
    /// encoding does not stop on page faults. The bytes are the same.
    fn snapshot_into(&self, _buffer: Vec<u8>) -> Vec<u8> {
        self.snapshot()
    }
    /// Bytes a snapshot takes at most (0: unknown, nothing is prepared).
    fn snapshot_size_bound(&self) -> usize {
        0
    }
    /// Replaces the state with a snapshot's (taken at `index`).
    fn restore(&mut self, index: u64, data: &[u8]) -> Result<(), String>;
    /// Called once when a replica opens without a snapshot to restore.
    fn prepare(&mut self) {}
}

/// The engine as a raft group's machine: a shard applying batches of
/// commands (`engine::encode_batch`) stamped with the proposer's clock, at
/// the raft entry's index, each batch's events journaled.
pub struct Engine {
    shard: Shard,
    /// The proposal ids of the latest entries applied, oldest first, and
    /// the same as a set: a copy of one of them is skipped. Replicated
    /// state (in the snapshot), so every replica skips the same copies.
    proposals: VecDeque<u64>,
    proposal_set: HashSet<u64>,
    residency: Residency,
    preallocate: bool,
    events: Vec<Event>,
    outcomes: Vec<Outcome>,
    /// Commands, batches and events applied since this replica opened.
    counters: [u64; 3],
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("shard", &self.shard.config().shard_id).field("applied", &self.shard.applied_index()).finish()
    }
}

impl Engine {
    /// A new shard; with `preallocate`, its tables are allocated up front
    /// (`Shard::preallocate`, also after restoring a snapshot): what a
    /// serving node wants.
    pub fn new(config: ShardConfig, residency: Residency, preallocate: bool) -> Engine {
        Engine {
            shard: Shard::with_residency(config, residency),
            proposals: VecDeque::new(),
            proposal_set: HashSet::new(),
            residency,
            preallocate,
            events: Vec::new(),
            outcomes: Vec::new(),
            counters: [0; 3],
        }
    }

    pub fn shard(&self) -> &Shard {
        &self.shard
    }

    /// Whether an entry proposed under `proposal` was applied (among the
    /// latest `PROPOSALS_REMEMBERED`).
    pub fn remembers(&self, proposal: u64) -> bool {
        self.proposal_set.contains(&proposal)
    }

    /// Commands applied since this replica opened.
    pub fn commands_applied(&self) -> u64 {
        self.counters[0]
    }

    /// Batches (log entries with commands) applied since this replica opened.
    pub fn batches_applied(&self) -> u64 {
        self.counters[1]
    }

    /// Events emitted since this replica opened.
    pub fn events_emitted(&self) -> u64 {
        self.counters[2]
    }
}

impl Machine for Engine {
    type Output = Vec<Outcome>;

    fn apply(&mut self, index: u64, proposal: u64, data: &[u8], ops: &mut Vec<Op>) -> Result<Option<Vec<Outcome>>, String> {
        // A copy of an applied proposal (its proposer sent it again after a
        // leader change or a timeout) must not apply: a command refused the
        // first time (not recorded by the engine) could succeed the second.
        if proposal != 0 && self.proposal_set.contains(&proposal) {
            return Ok(None);
        }
        let (context, commands) = decode_batch(data).map_err(|e| e.to_string())?;
        if proposal != 0 {
            self.proposals.push_back(proposal);
            self.proposal_set.insert(proposal);
            if self.proposals.len() > PROPOSALS_REMEMBERED {
                let oldest = self.proposals.pop_front().expect("not empty");
                self.proposal_set.remove(&oldest);
            }
        }
        let stamped = Context { index, timestamp_ms: context.timestamp_ms };
        self.outcomes.clear();
        self.events.clear();
        self.shard.apply_batch(stamped, &commands, &mut self.outcomes, &mut self.events);
        self.counters[0] += commands.len() as u64;
        self.counters[1] += 1;
        self.counters[2] += self.events.len() as u64;
        // The regulatory journal: every replica keeps its own.
        let mut record = Vec::with_capacity(32 + self.events.len() * 64);
        engine::encode_events(stamped, &self.events, &mut record);
        persistence::journal::append(self.shard.config().shard_id, index, record, ops);
        Ok(Some(std::mem::take(&mut self.outcomes)))
    }

    fn weight(output: &Vec<Outcome>) -> u64 {
        output.len() as u64
    }

    /// The proposal ids (`ENGINE_SNAPSHOT_MAGIC`, a count, the ids oldest
    /// first), then the shard's own snapshot.
    fn snapshot(&self) -> Vec<u8> {
        self.snapshot_into(Vec::with_capacity(self.snapshot_size_bound()))
    }

    fn snapshot_size_bound(&self) -> usize {
        8 + self.proposals.len() * 8 + self.shard.snapshot_size_bound()
    }

    fn snapshot_into(&self, mut out: Vec<u8>) -> Vec<u8> {
        out.clear();
        out.extend_from_slice(ENGINE_SNAPSHOT_MAGIC);
        out.extend_from_slice(&(self.proposals.len() as u32).to_le_bytes());
        for proposal in &self.proposals {
            out.extend_from_slice(&proposal.to_le_bytes());
        }
        // The shard's bytes follow in the same buffer (a large state is not copied).
        self.shard.snapshot_after(out)
    }

    fn restore(&mut self, index: u64, data: &[u8]) -> Result<(), String> {
        let body = data.strip_prefix(ENGINE_SNAPSHOT_MAGIC).ok_or("not a replicated engine snapshot")?;
        let count = body.get(..4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize).ok_or("truncated")?;
        if count > PROPOSALS_REMEMBERED {
            return Err(format!("{count} proposal ids"));
        }
        let ids = body.get(4..4 + count * 8).ok_or("truncated")?;
        let proposals: VecDeque<u64> = ids.chunks_exact(8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))).collect();
        let data = &body[4 + count * 8..];
        let mut shard = Shard::restore(data, self.residency).map_err(|e| e.to_string())?;
        // Entries without commands (a new leader's empty one) move the raft
        // index, not the engine's: the engine may be behind the snapshot's index.
        if shard.applied_index() > index || shard.config().shard_id != self.shard.config().shard_id {
            return Err(format!("it holds shard {} at index {}", shard.config().shard_id, shard.applied_index()));
        }
        if self.preallocate {
            shard.preallocate();
        }
        self.shard = shard;
        self.proposal_set = proposals.iter().copied().collect();
        self.proposals = proposals;
        Ok(())
    }

    fn prepare(&mut self) {
        if self.preallocate {
            self.shard.preallocate();
        }
    }
}

/// Proposal ids an engine replica remembers: far more entries than a
/// proposer's retries span (it gives up after about 5 s).
pub const PROPOSALS_REMEMBERED: usize = 65_536;
const ENGINE_SNAPSHOT_MAGIC: &[u8; 4] = b"CSE1";

/// A proposal that was applied: its id, the index it was applied at and
/// what the machine answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied<O> {
    pub proposal: u64,
    pub index: u64,
    pub output: O,
    /// The entry's data (shared, not copied), for observers such as the simulator.
    pub data: bytes::Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    #[error("a committed entry at {index} does not apply: {why}")]
    Entry { index: u64, why: String },
    #[error("a snapshot at {index} does not restore: {why}")]
    Snapshot { index: u64, why: String },
}

/// Why a proposal was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotTaken {
    /// This replica does not lead; the id of the one it believes leads (0: none known).
    NotLeader(u64),
    /// Raft dropped it: a leadership transfer under way, or the leader's
    /// uncommitted entries at [`UNCOMMITTED_BYTES_MAX`].
    Dropped,
}

pub struct Replica<M: Machine = Engine> {
    id: u64,
    raw: RawNode<ShardLog>,
    machine: M,
    /// Index of the last entry applied (empty entries included).
    applied: u64,
    /// The planted bug of `plant_unsynced_writes`.
    sync: bool,
    /// Commands applied since the latest snapshot.
    since_snapshot: u64,
    /// Read points raft has confirmed, as (context bytes, index).
    reads: Vec<(Vec<u8>, u64)>,
    /// Proposal ids of copies skipped since the last `take_duplicates`.
    duplicates: Vec<u64>,
    /// Bytes of the entries applied since opening (or the latest snapshot
    /// installed), and for each of the latest `LAGGING_ENTRIES_KEPT`, its
    /// index and the bytes applied before it: what keeping entries from
    /// there for a follower would hold.
    applied_bytes: u64,
    sizes: VecDeque<(u64, u64)>,
}

/// A snapshot taken by [`Replica::begin_compaction`], still to be written
/// (with the log's truncation behind it). It may be written on any thread
/// while the replica goes on: its log is the replica's, and a snapshot the
/// replica installs from the leader meanwhile makes it stop, or not start.
pub struct Compaction {
    log: ShardLog,
    index: u64,
    term: u64,
    data: Vec<u8>,
    checksum: u32,
    keep_from: u64,
    started: Instant,
    pause: Duration,
}

/// A compaction written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compacted {
    pub shard: u32,
    pub index: u64,
    pub bytes: u64,
    /// Whether it was written: false if a newer snapshot was in place first
    /// (or was being installed), which `index` and `bytes` then describe.
    pub written: bool,
    /// How long the replica paused to snapshot its machine.
    pub pause: Duration,
    /// From the pause's start until written.
    pub elapsed: Duration,
}

impl Compaction {
    pub fn shard(&self) -> u32 {
        self.log.shard()
    }

    /// The snapshot's size.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// Writes the snapshot (synced), then truncates the log behind it.
    pub fn write(self) -> Result<Compacted, StoreError> {
        let written = self.log.save_snapshot_keeping(self.index, self.term, &self.data, self.checksum, self.keep_from)?;
        // Not written: the snapshot in place (installed from the leader, or
        // being installed: then the one before it) is the one to report.
        let (index, bytes) = match &written {
            Some(_) => (self.index, self.data.len() as u64),
            None => {
                let meta = self.log.snapshot_meta();
                (meta.index, meta.len)
            }
        };
        Ok(Compacted {
            shard: self.log.shard(),
            index,
            bytes,
            written: written.is_some(),
            pause: self.pause,
            elapsed: self.started.elapsed(),
        })
    }
}

impl std::fmt::Debug for Compaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compaction").field("shard", &self.shard()).field("index", &self.index).field("bytes", &self.data.len()).finish()
    }
}

/// What [`Replica::begin`] left for [`Replica::finish`]: raft's Ready,
/// whose entries and hard state the caller writes in between (synced if
/// [`Pending::must_sync`]).
pub struct Pending(raft::Ready);

/// Entries [`Replica::finish`] found committed, to apply
/// ([`Replica::apply_committed`]) before the replica's next Ready.
#[must_use]
#[derive(Debug)]
pub struct Committed(Vec<Entry>);

impl Pending {
    /// Whether the write of what `begin` staged must be synced: it holds
    /// new entries, a snapshot, or a new term or vote (raft's own rule, as
    /// etcd's). A commit index and journal records alone need not be: a
    /// restart learns the commit index again and applies the log again.
    pub fn must_sync(&self) -> bool {
        self.0.must_sync()
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("number", &self.0.number()).finish()
    }
}

impl<M: Machine> std::fmt::Debug for Replica<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica").field("id", &self.id).field("applied", &self.applied).finish()
    }
}

fn raft_config(id: u64, applied: u64) -> Config {
    let min = ELECTION_TICKS + 2 * id as usize;
    Config {
        id,
        election_tick: ELECTION_TICKS,
        heartbeat_tick: HEARTBEAT_TICKS,
        min_election_tick: min,
        max_election_tick: min + 1,
        applied,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 256,
        max_uncommitted_size: UNCOMMITTED_BYTES_MAX,
        check_quorum: true,
        pre_vote: true,
        ..Config::default()
    }
}

fn logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

impl Replica<Engine> {
    /// Opens replica `id` of shard `config.shard_id` on `store`, its engine
    /// without preallocation (see [`Replica::open_machine`]).
    pub fn open(
        id: u64,
        voters: &[u64],
        config: ShardConfig,
        residency: Residency,
        store: Arc<dyn Store>,
    ) -> Result<Replica, ReplicaError> {
        Replica::open_machine(id, voters, config.shard_id, Engine::new(config, residency, false), store)
    }

    pub fn shard(&self) -> &Shard {
        self.machine.shard()
    }

    /// Proposes `commands` as one batch stamped with the proposer's clock
    /// (the shard's clock never goes back: it takes the later of its own and
    /// this). A follower forwards it to its leader, without any word back
    /// if it is lost: the proposer watches for its id being applied and
    /// proposes again after a while.
    pub fn propose(&mut self, proposal: u64, timestamp_ms: u64, commands: &[Command]) -> Result<(), NotTaken> {
        let mut data = Vec::with_capacity(32 + commands.len() * 96);
        encode_batch(Context { index: 0, timestamp_ms }, commands, &mut data);
        self.propose_data(proposal, data)
    }
}

impl<M: Machine> Replica<M> {
    /// Opens replica `id` of group `group` (its log keyed by that id) on
    /// `store`, with `machine` as the state it applies to. A store without a
    /// raft state starts a new group of `voters`; otherwise the replica
    /// recovers: the machine from its latest snapshot, then raft hands it
    /// the committed entries after it to apply again.
    pub fn open_machine(id: u64, voters: &[u64], group: u32, mut machine: M, store: Arc<dyn Store>) -> Result<Replica<M>, ReplicaError> {
        let log = ShardLog::open(store.clone(), group)?;
        if log.hard_state() == HardState::default() && log.last_index() == 0 {
            let mut ops = Vec::new();
            let conf = ConfState { voters: voters.to_vec(), ..ConfState::default() };
            log.set_state(HardState::default(), Some(conf), &mut ops);
            store.write(&ops, true)?;
        }
        // The latest snapshot, then the log after it.
        let applied = match log.load_snapshot()? {
            Some((meta, data)) => {
                machine.restore(meta.index, &data).map_err(|why| ReplicaError::Snapshot { index: meta.index, why })?;
                meta.index
            }
            None => {
                machine.prepare();
                0
            }
        };
        let raw = RawNode::new(&raft_config(id, applied), log, &logger())?;
        Ok(Replica {
            id,
            raw,
            machine,
            applied,
            sync: true,
            since_snapshot: 0,
            reads: Vec::new(),
            duplicates: Vec::new(),
            applied_bytes: 0,
            sizes: VecDeque::new(),
        })
    }

    pub fn machine(&self) -> &M {
        &self.machine
    }

    /// The latest snapshot's metadata (index 0: none).
    pub fn snapshot_meta(&self) -> persistence::SnapshotMeta {
        self.raw.store().snapshot_meta()
    }

    /// Snapshots sent to followers are read beside the caller
    /// (`ShardLog::load_snapshots_aside`).
    pub fn load_snapshots_aside(&self) {
        self.raw.store().load_snapshots_aside();
    }

    /// Index of the latest snapshot (0: none).
    pub fn snapshot_index(&self) -> u64 {
        self.raw.store().snapshot_meta().index
    }

    /// Snapshots the engine at the applied index and truncates the log
    /// behind it, here and now: [`Replica::begin_compaction`], then its
    /// write.
    pub fn compact(&mut self, lagging: Lagging) -> Result<(), ReplicaError> {
        if let Some(compaction) = self.begin_compaction(lagging, Vec::new())? {
            compaction.write()?;
        }
        Ok(())
    }

    /// Snapshots the machine at the applied index (here: the replica owns
    /// it) and returns the write of that snapshot, and of the log's
    /// truncation behind it, for whoever runs it: the node's snapshot
    /// writer thread, while this replica goes on. None if the latest
    /// snapshot is already at the applied index. A leader keeps the entries
    /// a follower still needs, if it is at most `lagging` behind in entries
    /// and their bytes (a restart, a short partition; nodes use
    /// [`Lagging::default`]), so that it catches up by entries;
    /// replicas further behind get the snapshot instead. The snapshot is
    /// encoded into `buffer` if it has room (one prepared with its pages
    /// mapped), else into a fresh one.
    pub fn begin_compaction(&mut self, lagging: Lagging, buffer: Vec<u8>) -> Result<Option<Compaction>, ReplicaError> {
        let index = self.applied;
        if index <= self.snapshot_index() {
            return Ok(None);
        }
        let started = Instant::now();
        let term = self.raw.raft.raft_log.term(index)?;
        let data = if buffer.capacity() == 0 { self.machine.snapshot() } else { self.machine.snapshot_into(buffer) };
        let mut keep_from = index + 1;
        if self.is_leader() {
            // The slowest follower within the bound: one further behind
            // (down for long) gets the snapshot, and keeps nothing for the others.
            let slowest = (self.raw.raft.prs().iter())
                .filter(|(id, _)| **id != self.id)
                .map(|(_, progress)| progress.matched)
                .filter(|matched| index.saturating_sub(*matched) <= lagging.entries)
                .filter(|matched| self.bytes_after(*matched).is_some_and(|bytes| bytes <= lagging.bytes))
                .min();
            if let Some(matched) = slowest {
                keep_from = matched + 1;
            }
        }
        self.since_snapshot = 0;
        let checksum = crc32c::crc32c(&data);
        Ok(Some(Compaction { log: self.raw.store().clone(), index, term, data, checksum, keep_from, started, pause: started.elapsed() }))
    }

    /// Bytes of the entries applied after `index`, if known.
    fn bytes_after(&self, index: u64) -> Option<u64> {
        if index >= self.applied {
            return Some(0);
        }
        let &(front, _) = self.sizes.front()?;
        let position = usize::try_from((index + 1).checked_sub(front)?).ok()?;
        let &(_, before) = self.sizes.get(position)?;
        Some(self.applied_bytes - before)
    }

    /// Work applied since the latest snapshot began (what a restart replays,
    /// once that snapshot is written): the engine counts commands.
    pub fn since_snapshot(&self) -> u64 {
        self.since_snapshot
    }

    /// Tells the leader how sending a snapshot to `to` went, as a transport
    /// does: delivered (it then probes the follower with appends, which
    /// find where the follower really is), or failed (it sends again).
    pub fn report_snapshot(&mut self, to: u64, delivered: bool) {
        self.raw.report_snapshot(to, if delivered { SnapshotStatus::Finish } else { SnapshotStatus::Failure });
    }

    /// A planted bug, for the simulator's own tests only: write the log and
    /// the hard state without syncing them, and tell raft they are
    /// persisted all the same. A crash then loses entries this replica
    /// acknowledged; the simulator must notice.
    pub fn plant_unsynced_writes(&mut self) {
        self.sync = false;
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    pub fn leader(&self) -> u64 {
        self.raw.raft.leader_id
    }

    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    pub fn applied(&self) -> u64 {
        self.applied
    }

    pub fn commit(&self) -> u64 {
        self.raw.raft.raft_log.committed
    }

    /// The index of the last entry in this replica's log.
    pub fn last_index(&self) -> u64 {
        self.raw.raft.raft_log.last_index()
    }

    pub fn tick(&mut self) {
        self.raw.tick();
    }

    /// A message from another replica (one that cannot be stepped, for
    /// example from a stale term, is dropped as raft-rs says).
    pub fn step(&mut self, message: Message) {
        let _ = self.raw.step(message);
    }

    /// Proposes an entry's bytes under `proposal` (carried in the entry's
    /// context; the apply reports it). A follower forwards it to the leader
    /// it knows; without one it is refused.
    pub fn propose_data(&mut self, proposal: u64, data: Vec<u8>) -> Result<(), NotTaken> {
        if self.leader() == raft::INVALID_ID {
            return Err(NotTaken::NotLeader(raft::INVALID_ID));
        }
        self.raw.propose(proposal.to_le_bytes().to_vec(), data).map_err(|_| NotTaken::Dropped)
    }

    /// Handles whatever raft has ready with a write of its own: [`begin`],
    /// one write (synced if [`Pending::must_sync`]), [`finish`],
    /// [`apply_committed`], and an unsynced write of what those two staged.
    /// Every message goes to `outbox`, for the caller to send once this
    /// returns.
    /// Returns the batches applied (with the proposal id they were proposed
    /// under, by whichever replica). A node hosting many replicas calls
    /// `begin` on each, writes once for all of them, then `finish` on each.
    ///
    /// [`begin`]: Replica::begin
    /// [`finish`]: Replica::finish
    /// [`apply_committed`]: Replica::apply_committed
    pub fn ready(&mut self, outbox: &mut Vec<Message>) -> Result<Vec<Applied<M::Output>>, ReplicaError> {
        let mut applied = Vec::new();
        let mut ops = Vec::new();
        let Some(pending) = self.begin(&mut ops, outbox, &mut applied)? else {
            return Ok(applied);
        };
        let store = self.raw.store().store().clone();
        if !ops.is_empty() {
            store.write(&ops, self.sync && pending.must_sync())?;
        }
        ops.clear();
        let committed = self.finish(pending, &mut ops, outbox);
        self.apply_committed(committed, &mut ops, &mut applied)?;
        if !ops.is_empty() {
            // A commit index and journal records: rebuilt from the log.
            store.write(&ops, false)?;
        }
        Ok(applied)
    }

    /// First half of handling raft's Ready: messages that may leave at once
    /// go to `outbox`; a snapshot from the leader is installed; committed
    /// entries are applied (their journal records staged in `ops`); new
    /// entries and the hard state are staged in `ops`, which the caller
    /// must write, synced if [`Pending::must_sync`], before
    /// [`Replica::finish`]. None: nothing ready.
    pub fn begin(
        &mut self,
        ops: &mut Vec<Op>,
        outbox: &mut Vec<Message>,
        applied: &mut Vec<Applied<M::Output>>,
    ) -> Result<Option<Pending>, ReplicaError> {
        if !self.raw.has_ready() {
            return Ok(None);
        }
        let mut ready = self.raw.ready();
        outbox.extend(ready.take_messages());
        if !ready.snapshot().is_empty() {
            // The leader's state replaces ours (it is past our log).
            let snapshot = ready.snapshot().clone();
            let (index, term) = (snapshot.get_metadata().index, snapshot.get_metadata().term);
            let started = Instant::now();
            self.machine.restore(index, &snapshot.data).map_err(|why| ReplicaError::Snapshot { index, why })?;
            self.raw.store().install_snapshot(index, term, &snapshot.data, crc32c::crc32c(&snapshot.data))?;
            let (group, bytes, ms) = (self.raw.store().shard(), snapshot.data.len(), started.elapsed().as_millis() as u64);
            tracing::info!(group, index, bytes, ms, "installed a snapshot from the leader");
            self.applied = index;
            self.since_snapshot = 0;
            // The entries whose sizes were known are gone.
            self.sizes.clear();
        }
        self.reads.extend(ready.take_read_states().into_iter().map(|state| (state.request_ctx, state.index)));
        self.apply(ready.take_committed_entries(), applied, ops)?;
        if !ready.entries().is_empty() {
            self.raw.store().append(ready.entries(), ops);
        }
        if let Some(hard) = ready.hs() {
            self.raw.store().set_state(hard.clone(), None, ops);
        }
        Ok(Some(Pending(ready)))
    }

    /// Second half, once what [`Replica::begin`] staged is durable: the
    /// messages that had to wait for it (a follower's acknowledgments) and
    /// those advancing raft makes go to `outbox`, and the new commit index
    /// is staged in `ops`. Returns what that commits, for
    /// [`Replica::apply_committed`]: a caller sends `outbox` first, so no
    /// acknowledgment waits for an apply.
    pub fn finish(&mut self, pending: Pending, ops: &mut Vec<Op>, outbox: &mut Vec<Message>) -> Committed {
        let mut ready = pending.0;
        outbox.extend(ready.take_persisted_messages());
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            let mut hard = self.raw.store().hard_state();
            hard.commit = commit;
            self.raw.store().set_state(hard, None, ops);
        }
        outbox.extend(light.take_messages());
        Committed(light.take_committed_entries())
    }

    /// Applies what [`Replica::finish`] committed, its journal records
    /// staged in `ops` (the caller writes them; they need no sync: the log
    /// is durable and a restart re-applies it).
    pub fn apply_committed(
        &mut self,
        committed: Committed,
        ops: &mut Vec<Op>,
        applied: &mut Vec<Applied<M::Output>>,
    ) -> Result<(), ReplicaError> {
        self.apply(committed.0, applied, ops)?;
        self.raw.advance_apply();
        Ok(())
    }

    /// Asks for a linearizable read point (raft's ReadIndex): once the
    /// leader has confirmed with a quorum that it still leads, the read is
    /// answered at its commit index, and any replica that has applied that
    /// far may serve it (see [`Replica::take_reads`]). A follower forwards
    /// the request to the leader; without a known leader it is dropped and
    /// the caller asks again.
    pub fn read_index(&mut self, context: u64) {
        self.raw.read_index(context.to_le_bytes().to_vec());
    }

    /// Proposal ids whose copies were skipped since the last call (their
    /// first copy was applied, maybe before this replica saw it: a proposer
    /// still waiting on one cannot know its outcome).
    pub fn take_duplicates(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.duplicates)
    }

    /// The read points learnt so far, as (context, index): serve a read once
    /// [`Replica::applied`] has reached its index.
    pub fn take_reads(&mut self) -> Vec<(u64, u64)> {
        self.reads
            .drain(..)
            .filter_map(|(context, index)| <[u8; 8]>::try_from(&context[..]).ok().map(|c| (u64::from_le_bytes(c), index)))
            .collect()
    }

    fn apply(&mut self, entries: Vec<Entry>, applied: &mut Vec<Applied<M::Output>>, ops: &mut Vec<Op>) -> Result<(), ReplicaError> {
        for entry in entries {
            self.applied = entry.index;
            self.sizes.push_back((entry.index, self.applied_bytes));
            if self.sizes.len() > LAGGING_ENTRIES_KEPT as usize {
                self.sizes.pop_front();
            }
            self.applied_bytes += (entry.data.len() + entry.context.len() + 24) as u64;
            if entry.get_entry_type() != EntryType::EntryNormal || entry.data.is_empty() {
                // A new leader's empty entry, or a configuration change
                // (none in this slice).
                continue;
            }
            let proposal = <[u8; 8]>::try_from(&entry.context[..]).map(u64::from_le_bytes).unwrap_or(0);
            let applied_output = self
                .machine
                .apply(entry.index, proposal, &entry.data, ops)
                .map_err(|why| ReplicaError::Entry { index: entry.index, why })?;
            let Some(output) = applied_output else {
                self.duplicates.push(proposal);
                continue;
            };
            self.since_snapshot += M::weight(&output);
            // Every replica applies it; the proposer's caller answers the client.
            applied.push(Applied { proposal, index: entry.index, output, data: entry.data });
        }
        Ok(())
    }
}
