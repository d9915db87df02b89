//! A node: its shards, each on its own thread, behind bounded queues.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use engine::{Command, Context, Event, OperatorConfig, Outcome, Residency, Shard, ShardConfig};

use crate::routing::SlotMap;

/// Where a shard thread hands an outcome. Implemented by the gateway's
/// connections; must not block (the shard thread calls it).
pub trait ReplySink: Send + Sync {
    fn deliver(&self, request_id: u64, outcome: Outcome);
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
        }
    }
}

/// The shard's queue is full: the request was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("shard {shard} is overloaded")]
pub struct Overloaded {
    pub shard: u32,
}

/// Commands from one reader for one shard, answered through one sink.
/// Batching at the source means one queue operation (and at most one
/// wake-up of the shard thread) for everything a socket read brought in.
struct Job {
    entries: Vec<(u64, Command)>,
    sink: Arc<dyn ReplySink>,
}

/// The most commands one job may carry.
pub const JOB_COMMANDS_MAX: usize = 4_096;

/// Counters a shard thread publishes for status and metrics.
#[derive(Debug, Default)]
struct Published {
    applied_index: AtomicU64,
    wallets: AtomicU64,
    commands: AtomicU64,
    batches: AtomicU64,
    events: AtomicU64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardStatus {
    pub shard_id: u32,
    pub applied_index: u64,
    pub wallets: u64,
    pub queue_depth: usize,
    pub commands: u64,
    pub batches: u64,
    pub events: u64,
}

struct Worker {
    sender: Sender<Job>,
    published: Arc<Published>,
    thread: Option<JoinHandle<()>>,
}

pub struct Node {
    workers: Vec<Worker>,
    slots: SlotMap,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("shards", &self.workers.len()).finish()
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn os_entropy() -> Option<[u8; 32]> {
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
}

impl ShardLoop {
    fn apply(&mut self, commands: &[Command], outcomes: &mut Vec<Outcome>, events: &mut Vec<Event>) {
        self.next_index += 1;
        let ctx = Context { index: self.next_index, timestamp_ms: now_ms() };
        self.shard.apply_batch(ctx, commands, outcomes, events);
        self.published.applied_index.store(self.next_index, Ordering::Relaxed);
        self.published.wallets.store(self.shard.wallet_count() as u64, Ordering::Relaxed);
        self.published.commands.fetch_add(commands.len() as u64, Ordering::Relaxed);
        self.published.batches.fetch_add(1, Ordering::Relaxed);
        self.published.events.fetch_add(events.len() as u64, Ordering::Relaxed);
    }

    fn reseed_if_due(&mut self) {
        if self.last_reseed.is_some_and(|at| at.elapsed() < self.reseed_interval) {
            return;
        }
        self.last_reseed = Some(Instant::now());
        if let Some(entropy) = os_entropy() {
            let (mut outcomes, mut events) = (Vec::new(), Vec::new());
            self.apply(&[Command::Reseed { entropy }], &mut outcomes, &mut events);
        }
    }

    fn run(mut self) {
        let mut commands = Vec::with_capacity(self.batch_max);
        let mut replies: Vec<(u64, Arc<dyn ReplySink>)> = Vec::with_capacity(self.batch_max);
        let mut outcomes = Vec::with_capacity(self.batch_max);
        let mut events = Vec::new();
        loop {
            self.reseed_if_due();
            let first = match self.receiver.recv_timeout(self.reseed_interval.min(Duration::from_secs(1))) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut next = Some(first);
            while let Some(job) = next.take() {
                for (request_id, command) in job.entries {
                    commands.push(command);
                    replies.push((request_id, job.sink.clone()));
                }
                if commands.len() < self.batch_max {
                    next = self.receiver.try_recv().ok();
                }
            }
            self.apply(&commands, &mut outcomes, &mut events);
            for ((request_id, sink), outcome) in replies.drain(..).zip(outcomes.drain(..)) {
                sink.deliver(request_id, outcome);
            }
            commands.clear();
            // The regulatory journal and event consumers take these in a later issue.
            events.clear();
        }
    }
}

/// Collects the outcomes of a broadcast.
struct Collect(mpsc::Sender<(u64, Outcome)>);

impl ReplySink for Collect {
    fn deliver(&self, request_id: u64, outcome: Outcome) {
        // The receiver waits for every shard; it is gone only if the caller gave up.
        let _ = self.0.send((request_id, outcome));
    }
}

impl Node {
    pub fn start(config: NodeConfig) -> Node {
        let mut workers = Vec::new();
        for shard_id in 0..config.shard_count {
            let (sender, receiver) = bounded(config.queue_capacity);
            let published = Arc::new(Published::default());
            let mut shard = Shard::with_residency(ShardConfig { shard_id, ..config.shard }, config.residency);
            if config.preallocate {
                shard.preallocate();
            }
            let shard_loop = ShardLoop {
                shard,
                next_index: 0,
                receiver,
                published: published.clone(),
                batch_max: config.batch_max,
                reseed_interval: config.reseed_interval,
                last_reseed: None,
            };
            let thread = std::thread::Builder::new()
                .name(format!("shard-{shard_id}"))
                .spawn(move || shard_loop.run())
                .expect("spawn a shard thread");
            workers.push(Worker { sender, published, thread: Some(thread) });
        }
        Node { workers, slots: SlotMap::even(config.shard_count) }
    }

    pub fn shard_count(&self) -> u32 {
        self.workers.len() as u32
    }

    /// Queues a player command on its shard; the outcome goes to `sink`.
    /// Commands without a player (operator settings, reseeds) go through
    /// [`Node::broadcast`].
    pub fn submit(&self, command: Command, request_id: u64, sink: Arc<dyn ReplySink>) -> Result<(), Overloaded> {
        let player = command.player().expect("only player commands are submitted; broadcast the rest");
        let shard = self.slots.shard_of(player);
        self.submit_batch(shard, vec![(request_id, command)], sink).map_err(|(overloaded, _)| overloaded)
    }

    /// The shard that owns a player.
    pub fn shard_of(&self, player: engine::PlayerId) -> u32 {
        self.slots.shard_of(player)
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
            entries.iter().all(|(_, c)| c.player().is_some_and(|p| self.slots.shard_of(p) == shard)),
            "commands routed to the wrong shard"
        );
        match self.workers[shard as usize].sender.try_send(Job { entries, sink }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(job)) | Err(TrySendError::Disconnected(job)) => Err((Overloaded { shard }, job.entries)),
        }
    }

    /// Applies a command on every shard and waits: the outcomes in shard order.
    pub fn broadcast(&self, command: Command) -> Vec<Outcome> {
        let (sender, receiver) = mpsc::channel();
        let sink: Arc<dyn ReplySink> = Arc::new(Collect(sender));
        for (shard, worker) in self.workers.iter().enumerate() {
            worker
                .sender
                .send(Job { entries: vec![(shard as u64, command.clone())], sink: sink.clone() })
                .expect("shard threads live as long as the node");
        }
        drop(sink);
        let mut outcomes: Vec<(u64, Outcome)> = receiver.iter().take(self.workers.len()).collect();
        outcomes.sort_by_key(|(shard, _)| *shard);
        outcomes.into_iter().map(|(_, outcome)| outcome).collect()
    }

    /// Configures an operator on every shard.
    pub fn configure_operator(&self, config: OperatorConfig) -> Outcome {
        let outcomes = self.broadcast(Command::ConfigureOperator(config));
        outcomes.into_iter().find(|o| o.is_err()).unwrap_or(Ok(engine::Reply::Done))
    }

    pub fn status(&self) -> Vec<ShardStatus> {
        self.workers
            .iter()
            .enumerate()
            .map(|(shard_id, worker)| ShardStatus {
                shard_id: shard_id as u32,
                applied_index: worker.published.applied_index.load(Ordering::Relaxed),
                wallets: worker.published.wallets.load(Ordering::Relaxed),
                queue_depth: worker.sender.len(),
                commands: worker.published.commands.load(Ordering::Relaxed),
                batches: worker.published.batches.load(Ordering::Relaxed),
                events: worker.published.events.load(Ordering::Relaxed),
            })
            .collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let threads: Vec<JoinHandle<()>> = self.workers.iter_mut().filter_map(|w| w.thread.take()).collect();
        // Dropping the senders ends each shard loop once its queue is empty.
        self.workers.clear();
        for thread in threads {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::{Action, Amount, Currency, CurrencySpec, OperatorId, PlayerId, Reply, TxId};

    #[test]
    fn commands_reach_their_shards_and_replies_come_back() {
        let node = Node::start(NodeConfig { shard_count: 3, ..NodeConfig::default() });
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
        let replies: Vec<(u64, Outcome)> = receiver.iter().take(600).collect();
        assert_eq!(replies.len(), 600);
        assert!(replies.iter().all(|(_, outcome)| outcome.is_ok()), "{replies:?}");
        let status = node.status();
        assert_eq!(status.iter().map(|s| s.wallets).sum::<u64>(), 300);
        assert!(status.iter().all(|s| s.wallets > 50), "players spread over shards: {status:?}");
    }
}
