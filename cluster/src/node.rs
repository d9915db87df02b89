//! A node: its shards, each on its own thread, behind bounded queues.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use engine::{Command, Context, Event, OperatorConfig, Outcome, Residency, Shard, ShardConfig};
use persistence::{CommitStats, GroupCommit, ShardLog};

use crate::durable::{self, Recovery, ShardDurability, SnapshotReport, StartError, Storage};
use crate::host::HostConfig;
use crate::replicated::{self, ClusterConfig, Replicated};
use crate::routing::SlotMap;
use crate::stats::RaftStats;

/// Where a shard thread hands an outcome. Implemented by the gateway's
/// connections; must not block (the shard thread calls it).
pub trait ReplySink: Send + Sync {
    fn deliver(&self, request_id: u64, outcome: Outcome);
    /// Many outcomes at once, in order: one hand-over (and at most one
    /// wake-up of whoever waits on the sink) for all of them.
    fn deliver_all(&self, outcomes: Vec<(u64, Outcome)>) {
        for (request_id, outcome) in outcomes {
            self.deliver(request_id, outcome);
        }
    }
    /// No outcome came in time (a replicated shard without a reachable
    /// leader or quorum): the command may or may not have applied, and
    /// sending it again with the same ids is safe.
    fn unavailable(&self, request_id: u64);
}

#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub shard_count: u32,
    /// Jobs a shard's queue holds before refusing more.
    pub queue_capacity: usize,
    /// Commands applied in one batch at most.
    pub batch_max: usize,
    pub reseed_interval: Duration,
    pub shard: ShardConfig,
    pub residency: Residency,
    /// Allocate and touch each shard's full index at start (see
    /// `Shard::preallocate`): what a serving node wants; tests leave it off.
    pub preallocate: bool,
    /// Where batches are logged before their replies go out; None keeps the
    /// node in memory only (benchmarks of the engine path, tests).
    pub storage: Option<Storage>,
    /// Some: every shard is a raft group with a replica on each peer
    /// (needs `storage`); None: this node alone holds its shards.
    pub cluster: Option<ClusterConfig>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            shard_count: 2,
            queue_capacity: 65_536,
            batch_max: 1_024,
            reseed_interval: Duration::from_secs(600),
            shard: ShardConfig::new(0),
            residency: Residency::default(),
            preallocate: false,
            storage: None,
            cluster: None,
        }
    }
}

/// The shard's queue is full: the request was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("shard {shard} is overloaded")]
pub struct Overloaded {
    pub shard: u32,
}

/// What a shard thread is asked to do.
enum Job {
    /// Commands from one reader for one shard, answered through one sink.
    /// Batching at the source means one queue operation (and at most one
    /// wake-up of the shard thread) for everything a socket read brought in.
    Commands { entries: Vec<(u64, Command)>, sink: Arc<dyn ReplySink> },
    /// Write a snapshot now (durable nodes only).
    Snapshot(Sender<Result<SnapshotReport, String>>),
    /// The shard's state as snapshot bytes, not written anywhere (tests, tools).
    Inspect(Sender<Vec<u8>>),
    /// Sweep the shard's invariants (conservation of money, ...): Err names the broken one.
    Check(Sender<Result<(), String>>),
}

/// The most commands one job may carry.
pub const JOB_COMMANDS_MAX: usize = 4_096;

/// Counters a shard thread publishes for status and metrics.
#[derive(Debug, Default)]
pub(crate) struct Published {
    pub applied_index: AtomicU64,
    pub snapshot_index: AtomicU64,
    pub wallets: AtomicU64,
    pub commands: AtomicU64,
    pub batches: AtomicU64,
    pub events: AtomicU64,
    /// The shard's raft leader as this node knows it (0: none known, or
    /// not replicated), and its term.
    pub leader: AtomicU64,
    pub term: AtomicU64,
    /// The shard's leader and its term as the replicated shard map records them.
    pub map_leader: AtomicU64,
    pub map_term: AtomicU64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardStatus {
    pub shard_id: u32,
    pub applied_index: u64,
    /// Index of the latest snapshot written (0: none).
    pub snapshot_index: u64,
    pub wallets: u64,
    pub queue_depth: usize,
    pub commands: u64,
    pub batches: u64,
    pub events: u64,
    /// The node that leads the shard's raft group, as this node knows it
    /// (0: none known, or a node without replication), and its term.
    pub leader: u64,
    pub term: u64,
    /// The leader and its term as this node's copy of the shard map records
    /// them (0: none recorded yet, or no replication).
    pub map_leader: u64,
    pub map_term: u64,
}

struct Worker {
    sender: Sender<Job>,
    published: Arc<Published>,
    thread: Option<JoinHandle<()>>,
}

/// How a node runs its shards.
enum Runtime {
    /// Each shard on a thread of its own, this node its only replica.
    Local(Vec<Worker>),
    /// One loop driving this node's replica of every shard's raft group.
    Replicated(Replicated),
}

pub struct Node {
    runtime: Runtime,
    node_id: u64,
    shard_count: u32,
    slots: SlotMap,
    commit: Option<Arc<GroupCommit>>,
    recoveries: Vec<Recovery>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("shards", &self.shard_count).finish()
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

pub(crate) fn os_entropy() -> Option<[u8; 32]> {
    let mut entropy = [0u8; 32];
    match getrandom::fill(&mut entropy) {
        Ok(()) => Some(entropy),
        Err(error) => {
            tracing::error!(%error, "no OS entropy: the shard RNG was not reseeded");
            None
        }
    }
}

/// The thread that owns one shard.
struct ShardLoop {
    shard: Shard,
    next_index: u64,
    receiver: Receiver<Job>,
    published: Arc<Published>,
    batch_max: usize,
    reseed_interval: Duration,
    last_reseed: Option<Instant>,
    durable: Option<ShardDurability>,
    /// A node without storage answers at once and keeps these for the next
    /// batch; a durable one hands them to the group commit's completion.
    spare_replies: Replies,
    spare_outcomes: Vec<Outcome>,
}

type Replies = Vec<(u64, Arc<dyn ReplySink>)>;

fn deliver(replies: &mut Replies, outcomes: &mut Vec<Outcome>) {
    deliver_grouped(replies.drain(..).zip(outcomes.drain(..)));
}

/// How soon an idle shard thread checks back while its next snapshot's
/// buffer is being prepared.
const SNAPSHOT_CHECK: Duration = Duration::from_millis(10);

/// Hands outcomes to their sinks, each run of consecutive outcomes for one
/// sink in one `deliver_all` (a connection's requests come in runs).
pub(crate) fn deliver_grouped(answers: impl Iterator<Item = ((u64, Arc<dyn ReplySink>), Outcome)>) {
    type Run = (Arc<dyn ReplySink>, Vec<(u64, Outcome)>);
    let mut run: Option<Run> = None;
    for ((request_id, sink), outcome) in answers {
        match &mut run {
            Some((current, outcomes)) if Arc::ptr_eq(current, &sink) => outcomes.push((request_id, outcome)),
            _ => {
                if let Some((current, outcomes)) = run.take() {
                    current.deliver_all(outcomes);
                }
                run = Some((sink, vec![(request_id, outcome)]));
            }
        }
    }
    if let Some((current, outcomes)) = run {
        current.deliver_all(outcomes);
    }
}

impl ShardLoop {
    /// Applies a batch, logs it (on a durable node) and sends its replies
    /// once the log entry is durable.
    fn commit(&mut self, commands: &[Command], mut replies: Replies, events: &mut Vec<Event>) {
        self.next_index += 1;
        let ctx = Context { index: self.next_index, timestamp_ms: now_ms() };
        let mut outcomes = std::mem::take(&mut self.spare_outcomes);
        outcomes.reserve(commands.len());
        self.shard.apply_batch(ctx, commands, &mut outcomes, events);
        self.published.applied_index.store(self.next_index, Ordering::Relaxed);
        self.published.wallets.store(self.shard.wallet_count() as u64, Ordering::Relaxed);
        self.published.commands.fetch_add(commands.len() as u64, Ordering::Relaxed);
        self.published.batches.fetch_add(1, Ordering::Relaxed);
        self.published.events.fetch_add(events.len() as u64, Ordering::Relaxed);
        match &mut self.durable {
            None => {
                deliver(&mut replies, &mut outcomes);
                self.spare_replies = replies;
                self.spare_outcomes = outcomes;
            }
            Some(durable) => {
                let ops = durable.stage(self.shard.config().shard_id, ctx, commands, events);
                durable.commit.submit(ops, Box::new(move || deliver(&mut { replies }, &mut { outcomes })));
                if durable.snapshot_due(&self.shard) {
                    // A failure is logged; the log keeps everything and the next one retries.
                    self.snapshot(Box::new(|_| ()));
                }
            }
        }
        // Event consumers (reports, fraud rules) read the journal.
        events.clear();
    }

    /// Snapshots the shard (see `ShardDurability::snapshot`); `answer`
    /// learns the outcome once the snapshot is durable.
    fn snapshot(&mut self, answer: Box<dyn FnOnce(Result<SnapshotReport, String>) + Send>) {
        let Some(durable) = &mut self.durable else {
            answer(Err("this node keeps no data: nothing to snapshot to".into()));
            return;
        };
        let published = self.published.clone();
        durable.snapshot(
            &self.shard,
            Box::new(move |outcome| {
                match &outcome {
                    Ok(report) => {
                        published.snapshot_index.store(report.index, Ordering::Relaxed);
                        tracing::info!(
                            shard = report.shard,
                            index = report.index,
                            bytes = report.bytes,
                            pause_ms = report.pause.as_millis() as u64,
                            ms = report.elapsed.as_millis() as u64,
                            "snapshot written"
                        );
                    }
                    // The log still holds everything: serving goes on, the next snapshot retries.
                    Err(error) => tracing::error!(%error, "snapshot failed"),
                }
                answer(outcome);
            }),
        );
    }

    fn reseed_if_due(&mut self, events: &mut Vec<Event>) {
        if self.last_reseed.is_some_and(|at| at.elapsed() < self.reseed_interval) {
            return;
        }
        self.last_reseed = Some(Instant::now());
        if let Some(entropy) = os_entropy() {
            self.commit(&[Command::Reseed { entropy }], Vec::new(), events);
        }
    }

    fn run(mut self) {
        let mut commands = Vec::with_capacity(self.batch_max);
        let mut events = Vec::new();
        loop {
            self.reseed_if_due(&mut events);
            // While a snapshot's buffer is prepared, check back soon: the
            // snapshot is due once it is ready, even if no command comes.
            let preparing = self.durable.as_ref().is_some_and(ShardDurability::preparing);
            let wait = if preparing { SNAPSHOT_CHECK } else { self.reseed_interval.min(Duration::from_secs(1)) };
            let first = match self.receiver.recv_timeout(wait) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    if self.durable.as_mut().is_some_and(|durable| durable.snapshot_due(&self.shard)) {
                        self.snapshot(Box::new(|_| ()));
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut replies: Replies = std::mem::take(&mut self.spare_replies);
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Commands { entries, sink } => {
                        for (request_id, command) in entries {
                            commands.push(command);
                            replies.push((request_id, sink.clone()));
                        }
                        if commands.len() < self.batch_max {
                            next = self.receiver.try_recv().ok();
                        }
                    }
                    Job::Snapshot(answer) => {
                        // Commands taken before it are applied first.
                        if !commands.is_empty() {
                            self.commit(&commands, std::mem::take(&mut replies), &mut events);
                            commands.clear();
                        }
                        self.snapshot(Box::new(move |outcome| {
                            let _ = answer.send(outcome);
                        }));
                    }
                    Job::Check(answer) => {
                        if !commands.is_empty() {
                            self.commit(&commands, std::mem::take(&mut replies), &mut events);
                            commands.clear();
                        }
                        let _ = answer.send(check_shard(&self.shard));
                    }
                    Job::Inspect(answer) => {
                        if !commands.is_empty() {
                            self.commit(&commands, std::mem::take(&mut replies), &mut events);
                            commands.clear();
                        }
                        let _ = answer.send(self.shard.snapshot());
                    }
                }
            }
            if !commands.is_empty() {
                self.commit(&commands, replies, &mut events);
                commands.clear();
            }
        }
    }
}

/// Sweeps a shard's invariants: Err names the broken one (the engine
/// panics on one, with its name).
pub(crate) fn check_shard(shard: &Shard) -> Result<(), String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| shard.check_invariants())).map_err(|panic| {
        panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
    })
}

/// Collects the outcomes of a broadcast.
struct Collect(mpsc::Sender<(u64, Option<Outcome>)>);

impl ReplySink for Collect {
    fn deliver(&self, request_id: u64, outcome: Outcome) {
        // The receiver waits for every shard; it is gone only if the caller gave up.
        let _ = self.0.send((request_id, Some(outcome)));
    }

    fn unavailable(&self, request_id: u64) {
        let _ = self.0.send((request_id, None));
    }
}

/// A shard as it comes back from its data (or new, on a node without any).
struct Started {
    shard: Shard,
    durable: Option<ShardDurability>,
    recovery: Option<Recovery>,
}

fn start_shard(config: &NodeConfig, shard_id: u32, commit: Option<&Arc<GroupCommit>>) -> Result<Started, StartError> {
    let shard_config = ShardConfig { shard_id, ..config.shard };
    let (Some(storage), Some(commit)) = (&config.storage, commit) else {
        let mut shard = Shard::with_residency(shard_config, config.residency);
        if config.preallocate {
            shard.preallocate();
        }
        return Ok(Started { shard, durable: None, recovery: None });
    };
    let log = ShardLog::open(storage.store.clone(), shard_id)?;
    let (shard, recovery) = durable::recover(&log, shard_config, config.residency, config.preallocate)?;
    let durable = ShardDurability::new(log, commit.clone(), storage.snapshot_every_commands, recovery.commands);
    Ok(Started { shard, durable: Some(durable), recovery: Some(recovery) })
}

impl Node {
    /// Starts the shards. A durable node first recovers each shard (in
    /// parallel, one thread each) from its snapshot and log, and refuses to
    /// start on data it cannot read back exactly. A replicated node opens
    /// its replica of every shard and joins its peers.
    pub fn start(config: NodeConfig) -> Result<Node, StartError> {
        if let Some(cluster) = &config.cluster {
            return Node::start_replicated(&config, cluster);
        }
        let commit = match &config.storage {
            Some(storage) => {
                durable::check_manifest(&*storage.store, config.shard_count)?;
                Some(Arc::new(GroupCommit::start(storage.store.clone(), storage.group)))
            }
            None => None,
        };
        let started: Vec<Result<Started, StartError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..config.shard_count)
                .map(|shard_id| {
                    let (config, commit) = (&config, commit.as_ref());
                    scope.spawn(move || start_shard(config, shard_id, commit))
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("shard recovery does not panic")).collect()
        });
        // Every shard must come back before any starts serving.
        let started: Vec<Started> = started.into_iter().collect::<Result<_, _>>()?;
        let mut workers = Vec::new();
        let mut recoveries = Vec::new();
        for (shard_id, started) in (0..config.shard_count).zip(started) {
            let Started { shard, durable, recovery } = started;
            let (sender, receiver) = bounded(config.queue_capacity);
            let published = Arc::new(Published::default());
            published.applied_index.store(shard.applied_index(), Ordering::Relaxed);
            published.wallets.store(shard.wallet_count() as u64, Ordering::Relaxed);
            if let Some(durable) = &durable {
                published.snapshot_index.store(durable.log.snapshot_meta().index, Ordering::Relaxed);
            }
            // A recovered RNG is as fresh as it was; the periodic reseed goes on from now.
            let last_reseed = shard.rng_seeded().then(Instant::now);
            let shard_loop = ShardLoop {
                next_index: shard.applied_index(),
                shard,
                receiver,
                published: published.clone(),
                batch_max: config.batch_max,
                reseed_interval: config.reseed_interval,
                last_reseed,
                durable,
                spare_replies: Vec::new(),
                spare_outcomes: Vec::new(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("shard-{shard_id}"))
                .spawn(move || abort_on_panic("a shard thread", move || shard_loop.run()))
                .expect("spawn a shard thread");
            workers.push(Worker { sender, published, thread: Some(thread) });
            recoveries.extend(recovery);
        }
        Ok(Node {
            runtime: Runtime::Local(workers),
            node_id: 0,
            shard_count: config.shard_count,
            slots: SlotMap::even(config.shard_count),
            commit,
            recoveries,
        })
    }

    fn start_replicated(config: &NodeConfig, cluster: &ClusterConfig) -> Result<Node, StartError> {
        let Some(storage) = &config.storage else {
            return Err(StartError::Cluster("a replicated node needs a data folder".into()));
        };
        durable::check_manifest(&*storage.store, config.shard_count)?;
        let mut voters: Vec<u64> = cluster.peers.iter().map(|(id, _)| *id).collect();
        voters.sort_unstable();
        let host = HostConfig {
            shard: config.shard,
            residency: config.residency,
            snapshot_every_commands: storage.snapshot_every_commands,
            batch_max: config.batch_max,
            preallocate: config.preallocate,
            snapshot_work_aside: true,
            lagging_kept: cluster.lagging,
            ..HostConfig::new(cluster.node, voters, config.shard_count)
        };
        let replicated = Replicated::start(host, cluster, storage.store.clone(), config.queue_capacity, config.reseed_interval)
            .map_err(StartError::Cluster)?;
        // Routing needs the shard map: wait for the metadata group to have one.
        let waiting = Instant::now();
        let mut logged = Instant::now();
        loop {
            let routes = &replicated.routes;
            if routes.version() > 0 {
                if routes.shard_count() != config.shard_count {
                    return Err(StartError::Cluster(format!(
                        "the cluster's shard map has {} shards; this node is configured for {}",
                        routes.shard_count(),
                        config.shard_count
                    )));
                }
                break;
            }
            if logged.elapsed() >= Duration::from_secs(2) {
                tracing::info!(
                    waited_ms = waiting.elapsed().as_millis() as u64,
                    "waiting for the cluster's shard map (a quorum of the metadata group)"
                );
                logged = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(Node {
            runtime: Runtime::Replicated(replicated),
            node_id: cluster.node,
            shard_count: config.shard_count,
            slots: SlotMap::even(config.shard_count),
            commit: None,
            recoveries: Vec::new(),
        })
    }

    /// How each shard came back at start (empty on a node without storage).
    pub fn recoveries(&self) -> &[Recovery] {
        &self.recoveries
    }

    /// Where a replicated node's raft loop spends its time (None on a node alone).
    pub fn raft_stats(&self) -> Option<Arc<RaftStats>> {
        match &self.runtime {
            Runtime::Local(_) => None,
            Runtime::Replicated(replicated) => Some(replicated.stats.clone()),
        }
    }

    /// Group commit counters (None on a node without storage, and on a
    /// replicated one: its raft loop writes for itself).
    pub fn commit_stats(&self) -> Option<Arc<CommitStats>> {
        self.commit.as_ref().map(|c| c.stats().clone())
    }

    /// This node's id in its cluster (0: a node without replication).
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// Whether the shards are raft groups replicated over peers.
    pub fn is_replicated(&self) -> bool {
        matches!(self.runtime, Runtime::Replicated(_))
    }

    /// Sends every shard a control job (after what its queue holds) and
    /// waits for each answer, in shard order.
    fn ask_every_shard<T>(workers: &[Worker], job: impl Fn(Sender<T>) -> Job) -> Vec<Option<T>> {
        let answers: Vec<Receiver<T>> = workers
            .iter()
            .map(|worker| {
                let (sender, receiver) = bounded(1);
                worker.sender.send(job(sender)).expect("shard threads live as long as the node");
                receiver
            })
            .collect();
        answers.into_iter().map(|answer| answer.recv().ok()).collect()
    }

    /// Asks the raft loop (after what its queue holds) and waits.
    fn ask_loop<T>(replicated: &Replicated, job: impl FnOnce(Sender<T>) -> replicated::Job) -> Option<T> {
        let (sender, receiver) = bounded(1);
        replicated.jobs.send(job(sender)).ok()?;
        receiver.recv().ok()
    }

    /// Writes a snapshot of every shard now; waits for all of them.
    pub fn snapshot(&self) -> Result<Vec<SnapshotReport>, String> {
        match &self.runtime {
            Runtime::Local(workers) => Node::ask_every_shard(workers, Job::Snapshot)
                .into_iter()
                .map(|answer| answer.unwrap_or_else(|| Err("a shard thread stopped".into())))
                .collect(),
            Runtime::Replicated(replicated) => {
                Node::ask_loop(replicated, replicated::Job::Snapshot).unwrap_or_else(|| Err("the raft loop stopped".into()))
            }
        }
    }

    /// Sweeps every shard's invariants (conservation of money among them),
    /// in shard order: a whole pass over each shard's state, for an
    /// administrator or a simulator's final check, not for the bet path.
    pub fn check_invariants(&self) -> Vec<Result<(), String>> {
        match &self.runtime {
            Runtime::Local(workers) => Node::ask_every_shard(workers, Job::Check)
                .into_iter()
                .map(|answer| answer.unwrap_or_else(|| Err("the shard thread stopped".into())))
                .collect(),
            Runtime::Replicated(replicated) => Node::ask_loop(replicated, replicated::Job::Check)
                .unwrap_or_else(|| vec![Err("the raft loop stopped".into()); self.shard_count as usize]),
        }
    }

    /// Every shard's state as snapshot bytes, in shard order (tests compare
    /// them across a restart, and replicas with each other; nothing is written).
    pub fn state_snapshots(&self) -> Vec<Vec<u8>> {
        match &self.runtime {
            Runtime::Local(workers) => Node::ask_every_shard(workers, Job::Inspect)
                .into_iter()
                .map(|answer| answer.expect("shard threads live as long as the node"))
                .collect(),
            Runtime::Replicated(replicated) => {
                Node::ask_loop(replicated, replicated::Job::Inspect).expect("the raft loop lives as long as the node")
            }
        }
    }

    pub fn shard_count(&self) -> u32 {
        self.shard_count
    }

    /// Queues a player command on its shard; the outcome goes to `sink`.
    /// Commands without a player (operator settings, reseeds) go through
    /// [`Node::broadcast`].
    pub fn submit(&self, command: Command, request_id: u64, sink: Arc<dyn ReplySink>) -> Result<(), Overloaded> {
        let player = command.player().expect("only player commands are submitted; broadcast the rest");
        let shard = self.shard_of(player);
        self.submit_batch(shard, vec![(request_id, command)], sink).map_err(|(overloaded, _)| overloaded)
    }

    /// The shard that owns a player: by the slot map of a node alone, by
    /// the replicated shard map's latest applied version on a cluster member.
    pub fn shard_of(&self, player: engine::PlayerId) -> u32 {
        match &self.runtime {
            Runtime::Local(_) => self.slots.shard_of(player),
            Runtime::Replicated(replicated) => replicated.routes.shard_of(player),
        }
    }

    /// The shard map's version (0 on a node alone: its map never changes).
    pub fn map_version(&self) -> u64 {
        match &self.runtime {
            Runtime::Local(_) => 0,
            Runtime::Replicated(replicated) => replicated.routes.version(),
        }
    }

    /// Queues many player commands of one shard as one job (each command's
    /// player must belong to `shard`). On a full queue the entries come back.
    #[allow(clippy::type_complexity)]
    pub fn submit_batch(
        &self,
        shard: u32,
        entries: Vec<(u64, Command)>,
        sink: Arc<dyn ReplySink>,
    ) -> Result<(), (Overloaded, Vec<(u64, Command)>)> {
        assert!(entries.len() <= JOB_COMMANDS_MAX, "a job of {} commands exceeds {JOB_COMMANDS_MAX}", entries.len());
        debug_assert!(
            entries.iter().all(|(_, c)| c.player().is_some_and(|p| self.shard_of(p) == shard)),
            "commands routed to the wrong shard"
        );
        self.send_commands(shard, entries, sink)
    }

    #[allow(clippy::type_complexity)]
    fn send_commands(
        &self,
        shard: u32,
        entries: Vec<(u64, Command)>,
        sink: Arc<dyn ReplySink>,
    ) -> Result<(), (Overloaded, Vec<(u64, Command)>)> {
        match &self.runtime {
            Runtime::Local(workers) => match workers[shard as usize].sender.try_send(Job::Commands { entries, sink }) {
                Ok(()) => Ok(()),
                Err(TrySendError::Full(Job::Commands { entries, .. })) | Err(TrySendError::Disconnected(Job::Commands { entries, .. })) => {
                    Err((Overloaded { shard }, entries))
                }
                Err(_) => unreachable!("the job sent was a command job"),
            },
            Runtime::Replicated(replicated) => match replicated.jobs.try_send(replicated::Job::Commands { shard, entries, sink }) {
                Ok(()) => Ok(()),
                Err(TrySendError::Full(replicated::Job::Commands { entries, .. }))
                | Err(TrySendError::Disconnected(replicated::Job::Commands { entries, .. })) => Err((Overloaded { shard }, entries)),
                Err(_) => unreachable!("the job sent was a command job"),
            },
        }
    }

    /// Applies a command on every shard and waits: the outcomes in shard
    /// order. On a replicated node a shard without a quorum answers after a
    /// while with None (it may yet apply it); a local node always answers.
    pub fn broadcast(&self, command: Command) -> Vec<Option<Outcome>> {
        let (sender, receiver) = mpsc::channel();
        let sink: Arc<dyn ReplySink> = Arc::new(Collect(sender));
        for shard in 0..self.shard_count {
            let mut entries = vec![(u64::from(shard), command.clone())];
            // Waits for room: a control command is not refused for load.
            while let Err((_, back)) = self.send_commands(shard, entries, sink.clone()) {
                entries = back;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        drop(sink);
        let mut outcomes: Vec<(u64, Option<Outcome>)> = receiver.iter().take(self.shard_count as usize).collect();
        outcomes.sort_by_key(|(shard, _)| *shard);
        outcomes.into_iter().map(|(_, outcome)| outcome).collect()
    }

    /// Configures an operator on every shard. A replicated node waits (and
    /// asks again, which is idempotent) until every shard's group has a
    /// quorum to apply it.
    pub fn configure_operator(&self, config: OperatorConfig) -> Outcome {
        loop {
            let outcomes = self.broadcast(Command::ConfigureOperator(config.clone()));
            if outcomes.iter().all(Option::is_some) {
                return outcomes.into_iter().flatten().find(|o| o.is_err()).unwrap_or(Ok(engine::Reply::Done));
            }
            tracing::info!(operator = config.operator.0, "waiting for every shard's raft group to have a leader and a quorum");
        }
    }

    pub fn status(&self) -> Vec<ShardStatus> {
        let status = |shard_id: usize, published: &Published, queue_depth: usize| ShardStatus {
            shard_id: shard_id as u32,
            applied_index: published.applied_index.load(Ordering::Relaxed),
            snapshot_index: published.snapshot_index.load(Ordering::Relaxed),
            wallets: published.wallets.load(Ordering::Relaxed),
            queue_depth,
            commands: published.commands.load(Ordering::Relaxed),
            batches: published.batches.load(Ordering::Relaxed),
            events: published.events.load(Ordering::Relaxed),
            leader: published.leader.load(Ordering::Relaxed),
            term: published.term.load(Ordering::Relaxed),
            map_leader: published.map_leader.load(Ordering::Relaxed),
            map_term: published.map_term.load(Ordering::Relaxed),
        };
        match &self.runtime {
            Runtime::Local(workers) => {
                workers.iter().enumerate().map(|(shard_id, worker)| status(shard_id, &worker.published, worker.sender.len())).collect()
            }
            Runtime::Replicated(replicated) => replicated
                .published
                .iter()
                .enumerate()
                .map(|(shard_id, published)| status(shard_id, published, replicated.jobs.len()))
                .collect(),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        match &mut self.runtime {
            Runtime::Local(workers) => {
                let threads: Vec<JoinHandle<()>> = workers.iter_mut().filter_map(|w| w.thread.take()).collect();
                // Dropping the senders ends each shard loop once its queue is empty.
                workers.clear();
                for thread in threads {
                    let _ = thread.join();
                }
            }
            Runtime::Replicated(replicated) => {
                let thread = replicated.thread.take();
                // Dropping the sender ends the loop.
                replicated.jobs.close();
                if let Some(thread) = thread {
                    let _ = thread.join();
                }
            }
        }
        // Then the group commit writes what the shards staged last.
        self.commit.take();
    }
}

/// Runs the body of a thread the node cannot live without (a shard's, the
/// raft loop's) and stops the whole process if it panics, as TiKV does: a
/// node half alive, its gateway taking requests that nothing will answer,
/// is worse than one that restarts and recovers from its log. The panic's
/// message is printed by the default hook first.
pub(crate) fn abort_on_panic(thread: &str, body: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).is_err() {
        tracing::error!(thread, "panicked: this node stops");
        eprintln!("casino node: {thread} panicked: this node stops");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::{Action, Amount, Currency, CurrencySpec, OperatorId, PlayerId, Reply, TxId};

    #[test]
    fn commands_reach_their_shards_and_replies_come_back() {
        let node = Node::start(NodeConfig { shard_count: 3, ..NodeConfig::default() }).expect("starts");
        let eur = Currency::new("EUR").expect("valid");
        let operator = OperatorConfig {
            operator: OperatorId(1),
            sweepstakes: false,
            currencies: vec![CurrencySpec { currency: eur, scale: 2 }],
            limit_increase_delay_ms: 0,
            redemption_min_minor: 0,
        };
        assert_eq!(node.configure_operator(operator), Ok(Reply::Done));
        let (sender, receiver) = mpsc::channel();
        let sink: Arc<dyn ReplySink> = Arc::new(Collect(sender));
        for player in 0..300u64 {
            let command = |action| Command::Player { operator: OperatorId(1), player: PlayerId(player), action };
            node.submit(command(Action::CreateWallet), player * 2, sink.clone()).expect("queued");
            let deposit = Action::Deposit { tx: TxId::new("d").expect("valid"), currency: eur, amount: Amount(500) };
            node.submit(command(deposit), player * 2 + 1, sink.clone()).expect("queued");
        }
        let replies: Vec<(u64, Option<Outcome>)> = receiver.iter().take(600).collect();
        assert_eq!(replies.len(), 600);
        assert!(replies.iter().all(|(_, outcome)| outcome.as_ref().is_some_and(|o| o.is_ok())), "{replies:?}");
        let status = node.status();
        assert_eq!(status.iter().map(|s| s.wallets).sum::<u64>(), 300);
        assert!(status.iter().all(|s| s.wallets > 50), "players spread over shards: {status:?}");
    }
}
