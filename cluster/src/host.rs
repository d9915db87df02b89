//! The shard replicas one node hosts (multi-raft, as TiKV's raftstore
//! hosts regions), without threads or sockets: the node's loop (and the
//! deterministic simulator) feeds it client commands, raft messages and
//! clock ticks, and calls [`Host::ready`], which handles every group's
//! Ready with one write for all of them (synced when raft requires it).
//!
//! Client commands: writes wait in a per-shard queue until the loop calls
//! [`Host::propose_queued`], which proposes each shard's queue as one raft
//! entry (up to `batch_max` commands). A replica that does not lead forwards
//! the proposal to the one that does (raft-rs does this), and every replica
//! applies the committed entry to its own engine with the same result, so
//! the node that took the request answers it from its own apply: no outcome
//! travels between nodes, and a client may talk to any node.
//!
//! A proposal keeps its id (`node << 48 | incarnation << 32 | sequence`,
//! carried in the entry's context; the incarnation counts the host's
//! openings on its store, so an entry proposed before a crash, committed
//! after the restart, can never answer a new proposal) until it is answered. It is proposed again, with the same id and
//! the same commands, when the shard's leader or term changes, or, for a
//! proposal forwarded to another node's leader (a message that may be lost
//! unseen), when `retry_ticks` pass without it applying. A proposal in its
//! own leader's log is not proposed again while that term lasts: only a new
//! leader can drop it, and copies would only lengthen the log of a leader
//! already slow to commit;
//! the first apply of that id answers, later copies are ignored, and their
//! money movements are replays the engine answers from its index (same
//! transaction ids), so a retry never double-spends. After `give_up_ticks`
//! the client hears [`ReplySink::unavailable`]: the command may or may not
//! have applied, and retrying it with the same ids is safe.
//!
//! Reads the engine can answer without applying (`Shard::read`: balances)
//! are linearizable through raft's ReadIndex: the read waits for the leader
//! to confirm with a quorum that it still leads, then is served by this
//! node's replica once it has applied up to the leader's commit index at
//! that moment. No log entry, no disk write.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use engine::{Command, Residency, ShardConfig};
use persistence::{Cf, Op, Store, StoreError};
use raft::eraftpb::Message;

use crate::durable::prepare_buffer;
use crate::map::{MapChange, MapMachine, ShardMap, META_GROUP};
use crate::node::{deliver_grouped, ReplySink};
use crate::replica::{Applied, Compacted, Compaction, Engine, Lagging, Machine, Pending, Replica, ReplicaError};
use crate::stats::RaftStats;

/// How a host runs its replicas.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// This node's id in every group (1 and up).
    pub node: u64,
    /// Every group's voters: today each shard has a replica on every node.
    pub voters: Vec<u64>,
    pub shard_count: u32,
    pub shard: ShardConfig,
    pub residency: Residency,
    /// A replica snapshots itself (and compacts its log) after this many
    /// commands; 0: only when asked. The first is staggered by the node's
    /// place among the voters (the second voter's a third later with three),
    /// so that the replicas of a group do not all pause at once.
    pub snapshot_every_commands: u64,
    /// Ticks after which a proposal or read not answered is made again.
    pub retry_ticks: u64,
    /// Ticks after which it is given up (the client hears `unavailable`).
    pub give_up_ticks: u64,
    /// Proposals and reads waiting for an answer, at most (then `submit`
    /// refuses: the node is overloaded).
    pub waiting_max: usize,
    /// Commands in one raft entry, at most.
    pub batch_max: usize,
    /// Allocate each engine's tables up front (`Shard::preallocate`).
    pub preallocate: bool,
    /// A leader's compaction keeps the entries of a follower at most this
    /// far behind, in entries and bytes (`Replica::begin_compaction`).
    pub lagging_kept: Lagging,
    /// Snapshot work on threads beside the loop: before an automatic
    /// snapshot, map its buffer's pages, so that encoding does not stop on
    /// page faults (the snapshot is due once the buffer is ready); and read
    /// a snapshot raft sends to a follower (`ShardLog::load_snapshots_aside`).
    /// Nodes do; the simulator does not (a thread's timing would make a
    /// seed's run vary).
    pub snapshot_work_aside: bool,
}

impl HostConfig {
    pub fn new(node: u64, voters: Vec<u64>, shard_count: u32) -> HostConfig {
        HostConfig {
            node,
            voters,
            shard_count,
            shard: ShardConfig::new(0),
            residency: Residency::default(),
            snapshot_every_commands: 0,
            retry_ticks: 20,
            give_up_ticks: 170,
            waiting_max: 16_384,
            batch_max: 1_024,
            preallocate: false,
            lagging_kept: Lagging::default(),
            snapshot_work_aside: false,
        }
    }
}

type Replies = Vec<(u64, Arc<dyn ReplySink>)>;

/// A proposal waiting to be applied.
struct Proposal {
    shard: u32,
    commands: Vec<Command>,
    replies: Replies,
    created: u64,
    /// When the loop first proposed it, for the commit histogram.
    started: Instant,
    /// When it was last handed to raft (None: not yet).
    proposed: Option<Handed>,
}

/// When and to whom a proposal was last handed to raft.
#[derive(Clone, Copy, Debug)]
struct Handed {
    at_tick: u64,
    leader: u64,
    term: u64,
    /// This replica led: the entry is in its own log, and only a new term
    /// can take it out (a new leader overwriting it), so it is not
    /// proposed again while the term holds, however long its commit takes.
    /// A forwarded proposal may be lost on the way, unseen: it is proposed
    /// again after `retry_ticks`.
    appended: bool,
}

/// Reads of one shard waiting for their read index.
struct Read {
    shard: u32,
    commands: Vec<Command>,
    replies: Replies,
    created: u64,
    asked: u64,
    /// The index to reach before serving, once raft has confirmed it.
    index: Option<u64>,
}

/// One replica's state, for status and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaStatus {
    pub shard: u32,
    pub leader: u64,
    pub term: u64,
    pub commit: u64,
    pub applied: u64,
    pub snapshot_index: u64,
    pub wallets: u64,
}

/// Messages to send, each with its group (a shard, or [`META_GROUP`]).
pub type Outbox = Vec<(u32, Message)>;

/// What [`Host::ready`] did, for counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadyReport {
    pub entries_applied: u64,
    pub commands_applied: u64,
    pub writes: u64,
    pub snapshots: u64,
}

pub struct Host {
    config: HostConfig,
    store: Arc<dyn Store>,
    replicas: Vec<Replica>,
    /// This node's replica of the metadata group (the shard map).
    meta: Replica<MapMachine>,
    /// When this node last proposed the map's bootstrap (as its leader).
    bootstrap_proposed: Option<u64>,
    /// Per shard, the term and tick at which this node last proposed to
    /// record itself as the shard's leader in the map.
    leader_proposed: Vec<Option<(u64, u64)>>,
    /// Writes and reads taken since the last `propose_queued`, per shard.
    queued: Vec<(Vec<Command>, Replies)>,
    queued_reads: Vec<(Vec<Command>, Replies)>,
    /// Ordered maps, so that every pass over them (and so a simulated run)
    /// goes the same way each time.
    proposals: BTreeMap<u64, Proposal>,
    reads: BTreeMap<u64, Read>,
    /// The planted bug of `plant_stale_reads`.
    stale_reads: bool,
    /// `node << 48 | incarnation << 32`: the high bits of this opening's ids.
    id_base: u64,
    next_sequence: u64,
    ticks: u64,
    /// Write and commit latencies, for the metrics (never read back here).
    stats: Arc<RaftStats>,
    /// Per shard, the commands after which the next snapshot is due.
    snapshot_due: Vec<u64>,
    /// Per shard, whether a compaction is begun and not yet written.
    compacting: Vec<bool>,
    /// Per shard, the thread mapping the next snapshot's buffer and the
    /// size bound it was started for, and the last snapshot encoded into a
    /// prepared buffer: its bytes and that bound (what to map next time).
    preparing: Vec<Option<(JoinHandle<Vec<u8>>, usize)>>,
    last_fill: Vec<Option<(usize, usize)>>,
    /// Compactions begun by `ready`, for the runtime to write
    /// (`take_compactions`, then `compacted`).
    compactions: Vec<Compaction>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").field("node", &self.config.node).field("replicas", &self.replicas.len()).finish()
    }
}

const INCARNATION_KEY: &[u8] = b"host-incarnation";

/// A synced write slower than this is logged.
const SLOW_WRITE: Duration = Duration::from_millis(20);

/// Counts this store's openings (synced before any proposal is made).
fn next_incarnation(store: &dyn Store) -> Result<u64, ReplicaError> {
    let previous = match store.get(Cf::State, INCARNATION_KEY)? {
        Some(value) => {
            let body = persistence::unseal(&value)
                .map_err(|problem| StoreError::new(format!("{} (column family state): host incarnation", store.location()), problem))?;
            <[u8; 8]>::try_from(body).map(u64::from_le_bytes).unwrap_or(0)
        }
        None => 0,
    };
    let next = previous.wrapping_add(1);
    store
        .write(&[Op::Put { cf: Cf::State, key: INCARNATION_KEY.to_vec(), value: persistence::seal(next.to_le_bytes().to_vec()) }], true)?;
    Ok(next)
}

/// Commands before a replica's first snapshot: `snapshot_every_commands`,
/// and a share of it by the node's place among the voters.
fn first_snapshot_due(config: &HostConfig) -> u64 {
    let every = config.snapshot_every_commands;
    let place = config.voters.iter().position(|&voter| voter == config.node).unwrap_or(0) as u64;
    every.saturating_add(every / (config.voters.len().max(1) as u64) * place)
}

impl Host {
    /// Opens this node's replica of every shard on `store` (recovering each
    /// from its snapshot and log, or starting new groups of the voters).
    pub fn open(config: HostConfig, store: Arc<dyn Store>) -> Result<Host, ReplicaError> {
        assert!(config.node > 0 && config.node < 1 << 15, "node ids are 1 to 32767");
        let replicas = (0..config.shard_count)
            .map(|shard_id| {
                let shard = ShardConfig { shard_id, ..config.shard };
                let engine = Engine::new(shard, config.residency, config.preallocate);
                Replica::open_machine(config.node, &config.voters, shard_id, engine, store.clone())
            })
            .collect::<Result<Vec<_>, _>>()?;
        if config.snapshot_work_aside {
            for replica in &replicas {
                replica.load_snapshots_aside();
            }
        }
        let empty = || (0..config.shard_count).map(|_| (Vec::new(), Vec::new())).collect();
        let incarnation = next_incarnation(&*store)?;
        let meta = Replica::open_machine(config.node, &config.voters, META_GROUP, MapMachine::default(), store.clone())?;
        Ok(Host {
            meta,
            bootstrap_proposed: None,
            leader_proposed: vec![None; config.shard_count as usize],
            queued: empty(),
            queued_reads: empty(),
            replicas,
            store,
            proposals: BTreeMap::new(),
            reads: BTreeMap::new(),
            stale_reads: false,
            id_base: config.node << 48 | (incarnation & 0xFFFF) << 32,
            next_sequence: 1,
            ticks: 0,
            stats: Arc::new(RaftStats::default()),
            snapshot_due: vec![first_snapshot_due(&config); config.shard_count as usize],
            compacting: vec![false; config.shard_count as usize],
            preparing: (0..config.shard_count).map(|_| None).collect(),
            last_fill: vec![None; config.shard_count as usize],
            compactions: Vec::new(),
            config,
        })
    }

    /// A planted bug, for the simulator's own tests only: answer balance
    /// reads from this replica's state at once, without a read index. A
    /// follower behind its leader (or a deposed leader) then answers stale
    /// balances; the simulator must notice.
    pub fn plant_stale_reads(&mut self) {
        self.stale_reads = true;
    }

    pub fn node(&self) -> u64 {
        self.config.node
    }

    /// Where this host's time goes: its writes and its proposals' commits.
    pub fn stats(&self) -> &Arc<RaftStats> {
        &self.stats
    }

    pub fn shard_count(&self) -> u32 {
        self.config.shard_count
    }

    pub fn replica(&self, shard: u32) -> &Replica {
        &self.replicas[shard as usize]
    }

    /// This node's replica of the metadata group.
    pub fn meta(&self) -> &Replica<MapMachine> {
        &self.meta
    }

    /// The shard map as this node has applied it (version 0 until the
    /// metadata group's first leader has bootstrapped it).
    pub fn map(&self) -> &ShardMap {
        self.meta.machine().map()
    }

    /// Proposals and reads waiting for an answer.
    pub fn waiting(&self) -> usize {
        self.proposals.len() + self.reads.len()
    }

    /// Takes client commands for `shard` (each command's player must belong
    /// to it); the outcomes go to `sink`. Refused (handed back) when the
    /// host already waits on `waiting_max` proposals and reads.
    #[allow(clippy::type_complexity)]
    pub fn submit(&mut self, shard: u32, entries: Vec<(u64, Command)>, sink: &Arc<dyn ReplySink>) -> Result<(), Vec<(u64, Command)>> {
        if shard >= self.config.shard_count || self.waiting() >= self.config.waiting_max {
            return Err(entries);
        }
        for (request_id, command) in entries {
            let (commands, replies) =
                if engine::Shard::is_read(&command) { &mut self.queued_reads[shard as usize] } else { &mut self.queued[shard as usize] };
            commands.push(command);
            replies.push((request_id, sink.clone()));
        }
        Ok(())
    }

    fn next_id(&mut self) -> u64 {
        let id = self.id_base | self.next_sequence;
        // After 2^32 proposals the sequence starts again: the first ones
        // were answered or given up long before.
        self.next_sequence = (self.next_sequence + 1) & 0xFFFF_FFFF;
        id
    }

    /// Proposes what was submitted since the last call: each shard's writes
    /// as entries of up to `batch_max` commands stamped `now_ms`, each
    /// shard's reads as one read-index request.
    pub fn propose_queued(&mut self, now_ms: u64) {
        let started = Instant::now();
        for shard in 0..self.config.shard_count {
            let (commands, replies) = std::mem::take(&mut self.queued[shard as usize]);
            let mut commands = commands.into_iter();
            let mut replies = replies.into_iter();
            loop {
                let batch: Vec<Command> = commands.by_ref().take(self.config.batch_max).collect();
                if batch.is_empty() {
                    break;
                }
                let answers: Replies = replies.by_ref().take(batch.len()).collect();
                let id = self.next_id();
                let mut proposal = Proposal { shard, commands: batch, replies: answers, created: self.ticks, started, proposed: None };
                self.try_propose(id, &mut proposal, now_ms);
                self.proposals.insert(id, proposal);
            }
            let (commands, replies) = std::mem::take(&mut self.queued_reads[shard as usize]);
            if !commands.is_empty() && self.stale_reads {
                let engine = self.replicas[shard as usize].shard();
                for (command, (request_id, sink)) in commands.iter().zip(replies) {
                    sink.deliver(request_id, engine.read(command).expect("a pure read"));
                }
            } else if !commands.is_empty() {
                let id = self.next_id();
                self.replicas[shard as usize].read_index(id);
                self.reads.insert(id, Read { shard, commands, replies, created: self.ticks, asked: self.ticks, index: None });
            }
        }
    }

    fn try_propose(&mut self, id: u64, proposal: &mut Proposal, now_ms: u64) {
        let replica = &mut self.replicas[proposal.shard as usize];
        let appended = replica.is_leader();
        if replica.propose(id, now_ms, &proposal.commands).is_ok() {
            proposal.proposed = Some(Handed { at_tick: self.ticks, leader: replica.leader(), term: replica.term(), appended });
        }
    }

    /// A message from another node's replica of `shard`.
    pub fn step(&mut self, shard: u32, message: Message) {
        if shard == META_GROUP {
            self.meta.step(message);
            return;
        }
        match self.replicas.get_mut(shard as usize) {
            Some(replica) => replica.step(message),
            None => tracing::warn!(shard, from = message.from, "a raft message for a shard this node does not host was dropped"),
        }
    }

    /// How sending a snapshot of `shard` to node `to` went.
    pub fn report_snapshot(&mut self, shard: u32, to: u64, delivered: bool) {
        if shard == META_GROUP {
            self.meta.report_snapshot(to, delivered);
        } else if let Some(replica) = self.replicas.get_mut(shard as usize) {
            replica.report_snapshot(to, delivered);
        }
    }

    /// One clock tick for every replica; proposes again what waited too
    /// long or whose leader changed, and gives up on what waited longest.
    pub fn tick(&mut self, now_ms: u64) {
        self.ticks += 1;
        for replica in &mut self.replicas {
            replica.tick();
        }
        self.meta.tick();
        self.bootstrap_if_due();
        self.record_leaders_if_due();
        let (ticks, retry, give_up) = (self.ticks, self.config.retry_ticks, self.config.give_up_ticks);
        let mut expired = Vec::new();
        let mut again = Vec::new();
        for (id, proposal) in &self.proposals {
            if ticks - proposal.created >= give_up {
                expired.push(*id);
                continue;
            }
            let replica = &self.replicas[proposal.shard as usize];
            // Applied, though this node never saw it (a snapshot covered it):
            // sending it again would only make a skipped copy.
            if replica.machine().remembers(*id) {
                expired.push(*id);
                continue;
            }
            let leader = replica.leader();
            let due = match proposal.proposed {
                None => true,
                Some(handed) => {
                    handed.leader != leader || handed.term != replica.term() || (!handed.appended && ticks - handed.at_tick >= retry)
                }
            };
            if due && leader != raft::INVALID_ID {
                again.push(*id);
            }
        }
        for id in expired {
            if let Some(proposal) = self.proposals.remove(&id) {
                for (request_id, sink) in proposal.replies {
                    sink.unavailable(request_id);
                }
            }
        }
        for id in again {
            if let Some(mut proposal) = self.proposals.remove(&id) {
                self.try_propose(id, &mut proposal, now_ms);
                self.proposals.insert(id, proposal);
            }
        }
        let mut expired = Vec::new();
        let mut ask = Vec::new();
        for (id, read) in &mut self.reads {
            if ticks - read.created >= give_up {
                expired.push(*id);
            } else if read.index.is_none() && ticks - read.asked >= retry {
                read.asked = ticks;
                ask.push((*id, read.shard));
            }
        }
        for id in expired {
            if let Some(read) = self.reads.remove(&id) {
                for (request_id, sink) in read.replies {
                    sink.unavailable(request_id);
                }
            }
        }
        for (id, shard) in ask {
            self.replicas[shard as usize].read_index(id);
        }
    }

    /// The metadata group's leader proposes the first map while there is
    /// none (again every `retry_ticks`, until one is applied; the first
    /// committed wins, later ones are refused by the map).
    fn bootstrap_if_due(&mut self) {
        if self.map().version() > 0 || !self.meta.is_leader() {
            return;
        }
        if self.bootstrap_proposed.is_some_and(|at| self.ticks - at < self.config.retry_ticks) {
            return;
        }
        let change = MapChange::Bootstrap { shard_count: self.config.shard_count, replicas: self.config.voters.clone() };
        let id = self.next_id();
        if self.meta.propose_data(id, change.encode()).is_ok() {
            self.bootstrap_proposed = Some(self.ticks);
        }
    }

    /// Each shard this node leads is recorded in the map with its term,
    /// proposed to the metadata group (again every `retry_ticks` until the
    /// map shows it; a newer leader's record makes this one's refused).
    fn record_leaders_if_due(&mut self) {
        if self.map().version() == 0 {
            return;
        }
        for shard in 0..self.config.shard_count {
            let replica = &self.replicas[shard as usize];
            let (node, term) = (self.config.node, replica.term());
            if !replica.is_leader() || self.map().leader(shard) == (crate::map::Leader { node, term }) {
                continue;
            }
            if self.leader_proposed[shard as usize]
                .is_some_and(|(at_term, at)| at_term == term && self.ticks - at < self.config.retry_ticks)
            {
                continue;
            }
            let id = self.next_id();
            if self.meta.propose_data(id, MapChange::Leader { shard, node, term }.encode()).is_ok() {
                self.leader_proposed[shard as usize] = Some((term, self.ticks));
            }
        }
    }

    /// Handles every replica's Ready: one write of all their new entries
    /// and hard states (and the journal records of what they applied before
    /// it), then each one's second half, then an unsynced write of what that
    /// staged. Messages to send go to `outbox` with their shard; proposals
    /// and reads this node took are answered as they apply.
    ///
    /// The messages raft lets leave before the write (a leader's appends
    /// and heartbeats: raft-rs's `Ready::messages`) are handed to `send`
    /// before it, which must send them and empty the vector: a leader
    /// writes its log while its followers write theirs (Raft thesis,
    /// 10.2.1), and counts itself toward a commit only once its own write
    /// is done. What must wait for the write (a follower's
    /// acknowledgments) is handed to `send` right after it, before what it
    /// commits is applied. Messages made later are left in `outbox` for the
    /// caller to send.
    ///
    /// The entries a Ready commits are on a quorum's disks already, and a
    /// restart applies them again from the log, so their answers go out
    /// before the write, not after it. The write is synced only when raft
    /// says it must ([`Pending::must_sync`]: new entries, a snapshot, a new
    /// term or vote), as etcd does: a commit index and journal records alone
    /// are rebuilt from the log after a crash.
    pub fn ready(&mut self, outbox: &mut Outbox, send: &mut dyn FnMut(&mut Outbox)) -> Result<ReadyReport, ReplicaError> {
        let mut report = ReadyReport::default();
        let mut ops = Vec::new();
        let mut pendings = Vec::new();
        let mut applied = Vec::new();
        let mut messages = Vec::new();
        let mut must_sync = false;
        for (shard, replica) in self.replicas.iter_mut().enumerate() {
            if let Some(pending) = replica.begin(&mut ops, &mut messages, &mut applied)? {
                must_sync |= pending.must_sync();
                pendings.push((shard, pending));
            }
            outbox.extend(messages.drain(..).map(|m| (shard as u32, m)));
        }
        let mut map_changes = Vec::new();
        let meta_pending = self.meta.begin(&mut ops, &mut messages, &mut map_changes)?;
        must_sync |= meta_pending.as_ref().is_some_and(Pending::must_sync);
        outbox.extend(messages.drain(..).map(|m| (META_GROUP, m)));
        send(outbox);
        self.answer(&mut applied, &mut report);
        if !ops.is_empty() {
            let started = Instant::now();
            self.store.write(&ops, must_sync)?;
            report.writes += 1;
            let took = started.elapsed();
            if must_sync { &self.stats.synced_write } else { &self.stats.unsynced_write }.observe(took);
            if must_sync && took >= SLOW_WRITE {
                // As etcd warns of a slow fdatasync: every group waited on it.
                tracing::warn!(ms = took.as_millis() as u64, ops = ops.len(), "slow synced write of the raft log");
            }
        }
        ops.clear();
        let mut committed = Vec::with_capacity(pendings.len());
        for (shard, pending) in pendings {
            committed.push((shard, self.replicas[shard].finish(pending, &mut ops, &mut messages)));
            outbox.extend(messages.drain(..).map(|m| (shard as u32, m)));
        }
        let meta_committed = meta_pending.map(|pending| self.meta.finish(pending, &mut ops, &mut messages));
        outbox.extend(messages.drain(..).map(|m| (META_GROUP, m)));
        // Acknowledgments first: the leader commits while this node applies.
        send(outbox);
        for (shard, entries) in committed {
            self.replicas[shard].apply_committed(entries, &mut ops, &mut applied)?;
        }
        if let Some(entries) = meta_committed {
            self.meta.apply_committed(entries, &mut ops, &mut map_changes)?;
        }
        for change in map_changes {
            match change.output {
                Ok(version) => tracing::info!(version, index = change.index, "shard map changed"),
                Err(why) => tracing::debug!(%why, index = change.index, "a shard map change was refused"),
            }
        }
        self.answer(&mut applied, &mut report);
        if !ops.is_empty() {
            let started = Instant::now();
            self.store.write(&ops, false)?;
            report.writes += 1;
            self.stats.unsynced_write.observe(started.elapsed());
        }
        // A skipped copy of a proposal still waiting here: its first copy
        // applied where this node did not see it (a snapshot covered it), so
        // its outcome is unknown here. The client retries with the same ids.
        for replica in &mut self.replicas {
            for id in replica.take_duplicates() {
                if let Some(proposal) = self.proposals.remove(&id) {
                    for (request_id, sink) in proposal.replies {
                        sink.unavailable(request_id);
                    }
                }
            }
        }
        self.serve_reads();
        if self.config.snapshot_every_commands > 0 {
            for shard in 0..self.config.shard_count as usize {
                if self.compacting[shard] || self.replicas[shard].since_snapshot() < self.snapshot_due[shard] {
                    continue;
                }
                let Some(buffer) = self.snapshot_buffer(shard) else { continue };
                if let Some(compaction) = self.replicas[shard].begin_compaction(self.config.lagging_kept, buffer.0)? {
                    if let Some(bound) = buffer.1 {
                        self.last_fill[shard] = Some((compaction.bytes(), bound));
                    }
                    self.compacting[shard] = true;
                    self.compactions.push(compaction);
                    report.snapshots += 1;
                }
                self.snapshot_due[shard] = self.config.snapshot_every_commands;
            }
        }
        Ok(report)
    }

    /// Answers the proposals this node took among the batches `applied`
    /// (and empties it).
    fn answer(&mut self, applied: &mut Vec<Applied<Vec<engine::Outcome>>>, report: &mut ReadyReport) {
        let mut answers = Vec::new();
        for batch in applied.drain(..) {
            report.entries_applied += 1;
            report.commands_applied += batch.output.len() as u64;
            if let Some(proposal) = self.proposals.remove(&batch.proposal) {
                self.stats.commit.observe(proposal.started.elapsed());
                answers.extend(proposal.replies.into_iter().zip(batch.output));
            }
        }
        // One hand-over per connection and call, not one per answer.
        answers.sort_by_key(|((_, sink), _)| Arc::as_ptr(sink).cast::<()>() as usize);
        deliver_grouped(answers.into_iter());
    }

    fn serve_reads(&mut self) {
        for replica in &mut self.replicas {
            for (id, index) in replica.take_reads() {
                if let Some(read) = self.reads.get_mut(&id) {
                    read.index = Some(index);
                }
            }
        }
        let servable: Vec<u64> = self
            .reads
            .iter()
            .filter(|(_, read)| read.index.is_some_and(|index| self.replicas[read.shard as usize].applied() >= index))
            .map(|(id, _)| *id)
            .collect();
        for id in servable {
            let Some(read) = self.reads.remove(&id) else { continue };
            let shard = self.replicas[read.shard as usize].shard();
            for (command, (request_id, sink)) in read.commands.iter().zip(read.replies) {
                let outcome = shard.read(command).expect("only pure reads wait for a read index");
                sink.deliver(request_id, outcome);
            }
        }
    }

    /// The buffer for `shard`'s due snapshot, and the size bound it was
    /// prepared for: a fresh one if buffers are not prepared (or no thread
    /// could be started to), None while one is being prepared (the
    /// snapshot waits for it).
    fn snapshot_buffer(&mut self, shard: usize) -> Option<(Vec<u8>, Option<usize>)> {
        if !self.config.snapshot_work_aside {
            return Some((Vec::new(), None));
        }
        match self.preparing[shard].take() {
            Some((preparing, bound)) if preparing.is_finished() => Some((preparing.join().unwrap_or_default(), Some(bound))),
            Some(unfinished) => {
                self.preparing[shard] = Some(unfinished);
                None
            }
            None => {
                let bound = self.replicas[shard].machine().snapshot_size_bound();
                match prepare_buffer(bound, self.last_fill[shard], format!("snapshot-buffer-{shard}")) {
                    Ok(preparing) => {
                        self.preparing[shard] = Some((preparing, bound));
                        None
                    }
                    Err(error) => {
                        tracing::warn!(%error, shard, "could not prepare a snapshot buffer beside the loop; snapshotting without");
                        Some((Vec::new(), None))
                    }
                }
            }
        }
    }

    /// Snapshots `shard`'s replica now (an operator asked), for the caller
    /// to write (then `compacted`). None if one is being written or the
    /// latest is at the applied index.
    pub fn begin_compaction(&mut self, shard: u32) -> Result<Option<Compaction>, ReplicaError> {
        let at = shard as usize;
        if self.compacting[at] {
            return Ok(None);
        }
        // A fresh buffer: one being prepared is left for the automatic snapshot.
        let compaction = self.replicas[at].begin_compaction(self.config.lagging_kept, Vec::new())?;
        self.compacting[at] = compaction.is_some();
        Ok(compaction)
    }

    /// Whether a snapshot of `shard` is begun and not yet written.
    pub fn compacting(&self, shard: u32) -> bool {
        self.compacting[shard as usize]
    }

    /// The snapshots `ready` began, to write off the loop (any thread;
    /// in order per shard) and report with `compacted`.
    pub fn take_compactions(&mut self) -> Vec<Compaction> {
        std::mem::take(&mut self.compactions)
    }

    /// How writing a compaction of `shard` went: the next may begin. A
    /// failed write leaves the previous snapshot and the whole log on disk
    /// (a restart reads them; this replica already serves the new
    /// snapshot, whose chunks were durable); the next is due after as many
    /// commands again.
    pub fn compacted(&mut self, shard: u32, outcome: &Result<Compacted, StoreError>) {
        self.compacting[shard as usize] = false;
        match outcome {
            Ok(done) => tracing::info!(
                shard,
                index = done.index,
                bytes = done.bytes,
                written = done.written,
                pause_ms = done.pause.as_millis() as u64,
                ms = done.elapsed.as_millis() as u64,
                "snapshot written"
            ),
            Err(error) => tracing::error!(shard, %error, "writing a snapshot failed; on disk the log stays whole until the next"),
        }
    }

    pub fn status(&self) -> Vec<ReplicaStatus> {
        self.replicas
            .iter()
            .enumerate()
            .map(|(shard, replica)| ReplicaStatus {
                shard: shard as u32,
                leader: replica.leader(),
                term: replica.term(),
                commit: replica.commit(),
                applied: replica.applied(),
                snapshot_index: replica.snapshot_index(),
                wallets: replica.shard().wallet_count() as u64,
            })
            .collect()
    }
}
