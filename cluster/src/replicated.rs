//! A replicated node's loop: one thread drives this node's replica of every
//! shard (a [`Host`]) and talks to the other nodes through the
//! [`Transport`].
//!
//! Each turn of the loop waits in the transport's poll until something
//! arrives or a tick is due, takes what has arrived (client jobs from the
//! gateway, raft messages read from the peers' connections by the loop
//! itself), ticks the raft clocks when a tick is
//! due, proposes every shard's queued commands as one entry each, and
//! handles every group's Ready with one write for all of them (see
//! `host.rs`). Under load, what arrives while a write is on the disk goes
//! into the next one: the batches grow with the load, as a group commit's do.
//!
//! Snapshots: the loop encodes a replica's state (it owns it), and a
//! writer thread of the node writes the bytes and truncates the log behind
//! them while the loop goes on (as TiKV's raft log GC runs off its store
//! loop); the loop hears each outcome back before that shard's next one.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, SendError, Sender, TryRecvError, TrySendError};
use engine::Command;

use crate::durable::SnapshotReport;
use crate::host::{Host, HostConfig};
use crate::map::Routes;
use crate::node::{check_shard, now_ms, os_entropy, Published, ReplySink};
use crate::replica::ReplicaError;
use crate::replica::{Compacted, Compaction};
use crate::stats::RaftStats;
use crate::transport::{Inbox, Incoming, Transport, Wake};

/// Where this node sits in its cluster.
#[derive(Clone)]
pub struct ClusterConfig {
    /// This node's id (1 to 32767), one of `peers`.
    pub node: u64,
    /// Every member's id and raft address, this node's included. Every
    /// shard has a replica on each.
    pub peers: Vec<(u64, SocketAddr)>,
    /// One raft clock tick. Heartbeats go every 2 ticks; a follower that
    /// hears nothing for 10 + 2 x its id ticks stands for election.
    pub tick: Duration,
    /// The secret every member holds (the settings' `token_secret`): a
    /// peer proves it before the raft port takes its messages.
    pub secret: [u8; 32],
    /// How far behind a follower a leader's compaction keeps its entries.
    pub lagging: crate::replica::Lagging,
}

/// Everything but the secret.
impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("node", &self.node)
            .field("peers", &self.peers)
            .field("tick", &self.tick)
            .field("lagging", &self.lagging)
            .finish_non_exhaustive()
    }
}

impl ClusterConfig {
    /// The address this node listens on for its peers.
    pub fn listen(&self) -> Option<SocketAddr> {
        self.peers.iter().find(|(id, _)| *id == self.node).map(|(_, address)| *address)
    }
}

/// The default raft tick: elections after 360 to 480 ms of silence.
pub const TICK_DEFAULT: Duration = Duration::from_millis(30);

/// What the gateway and tools ask of the loop.
pub(crate) enum Job {
    Commands { shard: u32, entries: Vec<(u64, Command)>, sink: Arc<dyn ReplySink> },
    Snapshot(SnapshotAnswer),
    Check(Sender<Vec<Result<(), String>>>),
    Inspect(Sender<Vec<Vec<u8>>>),
}

/// A turn of the loop slower than this is logged.
const SLOW_TURN: Duration = Duration::from_millis(50);
/// Client jobs taken in one turn at most.
const TAKE_PER_TURN: usize = 4_096;

/// Compactions the snapshot writer is handed at once (one per shard in
/// flight at most), and their outcomes.
struct WriterJob {
    compactions: Vec<Compaction>,
    /// An operator's request: reports of the shards with nothing new to
    /// write, and where the whole answer goes.
    answer: Option<(Vec<SnapshotReport>, SnapshotAnswer)>,
}

/// Where an operator's snapshot request is answered.
type SnapshotAnswer = Sender<Result<Vec<SnapshotReport>, String>>;

/// What the writer hands back to the loop, in order: each compaction's
/// outcome, then an operator's answer, which the loop sends once it has
/// taken those outcomes in (so a request right after it is not refused as
/// overlapping).
enum Written {
    Compaction(u32, Result<Compacted, persistence::StoreError>),
    Answer(SnapshotAnswer, Result<Vec<SnapshotReport>, String>),
}

/// The node's snapshot writer thread: writes what the loop hands it, in
/// order, and sends each outcome back (waking the loop). Dropped with the
/// loop: it finishes the write under way first.
struct SnapshotWriter {
    jobs: Option<Sender<WriterJob>>,
    done: Receiver<Written>,
    thread: Option<JoinHandle<()>>,
}

impl SnapshotWriter {
    fn start(shards: u32, wake: Arc<Wake>) -> Result<SnapshotWriter, String> {
        // At most one compaction per shard is in flight, and an operator's
        // request begins only when none is, so neither queue fills: the
        // loop never waits on the writer.
        let (jobs, receiver) = bounded::<WriterJob>(shards as usize + 1);
        let (finished, done) = bounded(shards as usize + 1);
        let thread = std::thread::Builder::new()
            .name("raft-snapshots".into())
            .spawn(move || {
                crate::node::abort_on_panic("the snapshot writer", move || {
                    for job in receiver {
                        // Hung up: the loop is gone, and so is the node.
                        if write_all(job, &finished).is_err() {
                            return;
                        }
                        wake.wake();
                    }
                })
            })
            .map_err(|e| format!("starting the snapshot writer: {e}"))?;
        Ok(SnapshotWriter { jobs: Some(jobs), done, thread: Some(thread) })
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        self.jobs = None;
        // Its outcomes have nowhere to go: a send fails and it stops.
        self.done = bounded(0).1;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Writes a job's compactions and sends each outcome, then the operator's
/// answer if it is one.
fn write_all(job: WriterJob, finished: &Sender<Written>) -> Result<(), SendError<Written>> {
    let mut reports = Vec::new();
    let mut failure = None;
    for compaction in job.compactions {
        let shard = compaction.shard();
        let outcome = compaction.write();
        match &outcome {
            Ok(done) => {
                reports.push(SnapshotReport { shard, index: done.index, bytes: done.bytes, pause: done.pause, elapsed: done.elapsed })
            }
            Err(error) => failure = Some(format!("shard {shard}: {error}")),
        }
        finished.send(Written::Compaction(shard, outcome))?;
    }
    if let Some((mut known, answer)) = job.answer {
        known.extend(reports);
        known.sort_by_key(|report| report.shard);
        let result = match failure {
            Some(why) => Err(why),
            None => Ok(known),
        };
        finished.send(Written::Answer(answer, result))?;
    }
    Ok(())
}

/// The loop's bounded queue of client jobs; a job sent wakes the loop if it
/// sleeps.
pub(crate) struct Jobs {
    queue: Sender<Job>,
    wake: Arc<Wake>,
}

impl Jobs {
    /// Waits for room.
    pub fn send(&self, job: Job) -> Result<(), SendError<Job>> {
        self.queue.send(job)?;
        self.wake.wake();
        Ok(())
    }

    pub fn try_send(&self, job: Job) -> Result<(), TrySendError<Job>> {
        self.queue.try_send(job)?;
        self.wake.wake();
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Drops the sending side: the loop ends once it sees the queue closed.
    pub fn close(&mut self) {
        self.queue = bounded(0).0;
        // Wakes it even mid-turn: a closed queue does not keep it from sleeping.
        self.wake.wake_now();
    }
}

pub(crate) struct Replicated {
    pub jobs: Jobs,
    pub published: Vec<Arc<Published>>,
    /// The shard map as this node last applied it (the gateway routes by it).
    pub routes: Arc<Routes>,
    /// Where the loop's time goes (the metrics endpoint reads it).
    pub stats: Arc<RaftStats>,
    pub thread: Option<JoinHandle<()>>,
}

/// An answer nobody waits for (the periodic reseed).
struct Ignore;

impl ReplySink for Ignore {
    fn deliver(&self, _: u64, outcome: engine::Outcome) {
        if let Err(rejection) = outcome {
            tracing::warn!(?rejection, "a reseed was refused");
        }
    }

    fn unavailable(&self, _: u64) {}
}

impl Replicated {
    /// Opens the host, binds the raft address and starts the transport and the loop.
    pub fn start(
        host_config: HostConfig,
        cluster: &ClusterConfig,
        store: Arc<dyn persistence::Store>,
        queue_capacity: usize,
        reseed_interval: Duration,
    ) -> Result<Replicated, String> {
        let listen = cluster.listen().ok_or_else(|| format!("node {} is not among the peers", cluster.node))?;
        let host = Host::open(host_config, store).map_err(|e| format!("opening the replicas: {e}"))?;
        let listener = TcpListener::bind(listen).map_err(|e| format!("binding the raft address {listen}: {e}"))?;
        let (transport, inbox) = Transport::start(cluster.node, cluster.secret, listener, &cluster.peers)
            .map_err(|e| format!("starting the raft transport: {e}"))?;
        let (queue, receiver) = bounded(queue_capacity);
        let jobs = Jobs { queue, wake: inbox.wake() };
        let published: Vec<Arc<Published>> = (0..host.shard_count()).map(|_| Arc::new(Published::default())).collect();
        let routes = Arc::new(Routes::new(host.map()));
        let stats = host.stats().clone();
        let writer = SnapshotWriter::start(host.shard_count(), inbox.wake())?;
        let state = Loop {
            writer,
            host,
            transport,
            jobs: receiver,
            inbox,
            arrived: Vec::new(),
            published: published.clone(),
            routes: routes.clone(),
            tick: cluster.tick,
            reseed_interval,
            last_reseed: None,
        };
        state.publish();
        let thread = std::thread::Builder::new()
            .name("raftstore".into())
            .spawn(move || crate::node::abort_on_panic("the raft loop", move || state.run()))
            .map_err(|e| format!("starting the raft loop: {e}"))?;
        Ok(Replicated { jobs, published, routes, stats, thread: Some(thread) })
    }
}

struct Loop {
    host: Host,
    writer: SnapshotWriter,
    transport: Transport,
    jobs: Receiver<Job>,
    inbox: Inbox,
    /// What the inbox handed over this turn (kept for its capacity).
    arrived: Vec<Incoming>,
    published: Vec<Arc<Published>>,
    routes: Arc<Routes>,
    tick: Duration,
    reseed_interval: Duration,
    last_reseed: Option<Instant>,
}

impl Loop {
    fn run(mut self) {
        let mut next_tick = Instant::now() + self.tick;
        let mut outbox = Vec::new();
        let (mut reported_drops, mut last_drop_report) = (0, Instant::now());
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            let (jobs, written) = (&self.jobs, &self.writer.done);
            self.inbox.wait(wait, || !jobs.is_empty() || !written.is_empty());
            // Snapshot writes done, before any request for the next.
            while let Ok(written) = self.writer.done.try_recv() {
                self.written(written);
            }
            for _ in 0..TAKE_PER_TURN {
                match self.jobs.try_recv() {
                    Ok(job) => self.job(job),
                    Err(TryRecvError::Empty) => break,
                    // The node is dropped.
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            let mut arrived = std::mem::take(&mut self.arrived);
            self.inbox.take(&mut arrived);
            for incoming in arrived.drain(..) {
                self.incoming(incoming);
            }
            self.arrived = arrived;
            let now = Instant::now();
            if now >= next_tick {
                self.host.tick(now_ms());
                next_tick = (next_tick + self.tick).max(now);
                self.reseed_if_due();
                let dropped = self.transport.dropped();
                if dropped > reported_drops && last_drop_report.elapsed() >= Duration::from_secs(1) {
                    tracing::warn!(messages = dropped - reported_drops, "raft messages dropped (a peer unreachable or its queue full)");
                    reported_drops = dropped;
                    last_drop_report = Instant::now();
                }
            }
            let started = Instant::now();
            self.host.propose_queued(now_ms());
            let proposed = started.elapsed();
            let (transport, mut failed, mut messages) = (&mut self.transport, Vec::new(), 0);
            let mut send = |outbox: &mut Vec<(u32, raft::eraftpb::Message)>| {
                messages += outbox.len();
                failed.extend(transport.send_all(outbox));
            };
            let report = match self.host.ready(&mut outbox, &mut send) {
                Ok(report) => report,
                // The store failed under raft: this replica cannot go on
                // safely. Stopping it leaves the others serving.
                Err(error) => fatal(&error),
            };
            let readied = started.elapsed();
            send(&mut outbox);
            let compactions = self.host.take_compactions();
            if !compactions.is_empty() {
                self.write_snapshots(WriterJob { compactions, answer: None });
            }
            for (shard, to) in failed {
                self.host.report_snapshot(shard, to, false);
            }
            self.publish();
            let turn = started.elapsed();
            self.host.stats().turn.observe(turn);
            if turn >= SLOW_TURN {
                tracing::warn!(
                    ms = turn.as_millis() as u64,
                    propose_ms = proposed.as_millis() as u64,
                    ready_ms = (readied - proposed).as_millis() as u64,
                    commands = report.commands_applied,
                    entries = report.entries_applied,
                    snapshots = report.snapshots,
                    messages,
                    "slow raft loop turn"
                );
            }
        }
    }

    fn job(&mut self, job: Job) {
        match job {
            Job::Commands { shard, entries, sink } => {
                if let Err(refused) = self.host.submit(shard, entries, &sink) {
                    for (request_id, _) in refused {
                        sink.unavailable(request_id);
                    }
                }
            }
            Job::Snapshot(answer) => {
                let shards = self.host.shard_count();
                if let Some(shard) = (0..shards).find(|&shard| self.host.compacting(shard)) {
                    let _ = answer.send(Err(format!("shard {shard}: the previous snapshot is still being written")));
                    return;
                }
                let (mut compactions, mut known, mut failure) = (Vec::new(), Vec::new(), None);
                for shard in 0..shards {
                    match self.host.begin_compaction(shard) {
                        Ok(Some(compaction)) => compactions.push(compaction),
                        // Nothing applied since the latest: it is the answer.
                        Ok(None) => {
                            let meta = self.host.replica(shard).snapshot_meta();
                            known.push(SnapshotReport {
                                shard,
                                index: meta.index,
                                bytes: meta.len,
                                pause: Duration::ZERO,
                                elapsed: Duration::ZERO,
                            });
                        }
                        Err(error) => failure = Some(format!("shard {shard}: {error}")),
                    }
                }
                match failure {
                    None => self.write_snapshots(WriterJob { compactions, answer: Some((known, answer)) }),
                    Some(why) => {
                        // Those begun are written all the same.
                        self.write_snapshots(WriterJob { compactions, answer: None });
                        let _ = answer.send(Err(why));
                    }
                }
            }
            Job::Check(answer) => {
                let checks = (0..self.host.shard_count()).map(|shard| check_shard(self.host.replica(shard).shard())).collect();
                let _ = answer.send(checks);
            }
            Job::Inspect(answer) => {
                let _ = answer.send((0..self.host.shard_count()).map(|shard| self.host.replica(shard).shard().snapshot()).collect());
            }
        }
    }

    /// Hands compactions to the writer thread (written here if it is gone,
    /// which cannot happen while the loop runs).
    fn write_snapshots(&mut self, job: WriterJob) {
        let job = match &self.writer.jobs {
            Some(jobs) => match jobs.try_send(job) {
                Ok(()) => return,
                Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => job,
            },
            None => job,
        };
        let (finished, outcomes) = bounded(job.compactions.len() + 1);
        let _ = write_all(job, &finished);
        drop(finished);
        for written in outcomes {
            self.written(written);
        }
    }

    fn written(&mut self, written: Written) {
        match written {
            Written::Compaction(shard, outcome) => self.host.compacted(shard, &outcome),
            Written::Answer(answer, result) => {
                let _ = answer.send(result);
            }
        }
    }

    fn incoming(&mut self, incoming: Incoming) {
        match incoming {
            Incoming::Raft { shard, message } => self.host.step(shard, message),
            Incoming::SnapshotStatus { shard, to, delivered } => self.host.report_snapshot(shard, to, delivered),
        }
    }

    /// The leader of a shard reseeds its RNG through the log, so every
    /// replica draws the same numbers.
    fn reseed_if_due(&mut self) {
        if self.last_reseed.is_some_and(|at| at.elapsed() < self.reseed_interval) {
            return;
        }
        let leading: Vec<u32> = (0..self.host.shard_count()).filter(|&s| self.host.replica(s).is_leader()).collect();
        if leading.is_empty() {
            return;
        }
        self.last_reseed = Some(Instant::now());
        let sink: Arc<dyn ReplySink> = Arc::new(Ignore);
        for shard in leading {
            if let Some(entropy) = os_entropy() {
                let _ = self.host.submit(shard, vec![(0, Command::Reseed { entropy })], &sink);
            }
        }
    }

    fn publish(&self) {
        if self.host.map().version() != self.routes.version() {
            self.routes.publish(self.host.map());
        }
        for (status, published) in self.host.status().into_iter().zip(&self.published) {
            let replica = self.host.replica(status.shard).machine();
            published.applied_index.store(status.applied, Ordering::Relaxed);
            published.snapshot_index.store(status.snapshot_index, Ordering::Relaxed);
            published.wallets.store(status.wallets, Ordering::Relaxed);
            published.leader.store(status.leader, Ordering::Relaxed);
            published.term.store(status.term, Ordering::Relaxed);
            let recorded = self.host.map().leader(status.shard);
            published.map_leader.store(recorded.node, Ordering::Relaxed);
            published.map_term.store(recorded.term, Ordering::Relaxed);
            published.commands.store(replica.commands_applied(), Ordering::Relaxed);
            published.batches.store(replica.batches_applied(), Ordering::Relaxed);
            published.events.store(replica.events_emitted(), Ordering::Relaxed);
        }
    }
}

/// The whole process stops (as TiKV does): a node half alive, its raft
/// loop gone while its gateway takes requests, would leave them unanswered.
fn fatal(error: &ReplicaError) -> ! {
    tracing::error!(%error, "the replicas' store failed: this node stops");
    eprintln!("casino node: the replicas' store failed: {error}");
    std::process::abort();
}
