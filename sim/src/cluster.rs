//! The deterministic cluster simulator: three nodes in one process, each a
//! `cluster::host::Host` (the same code a `casino node --id N` runs in its
//! raft loop: a replica of every shard, one synced write per turn for all
//! of them, proposals forwarded to leaders, retries, read-index reads) on
//! its own in-memory store, over a simulated network that drops, delays,
//! duplicates and reorders messages and partitions nodes, with nodes
//! crashing (losing writes not yet synced; some in the middle of a Ready,
//! after a leader's appends have left and before its write of them) and
//! restarting from their stores. One seed drives everything: a failure names its seed, and the
//! seed replays it.
//!
//! Clients send single commands to any live node, as clients of a real
//! cluster do: deposits and withdrawals (each with its own transaction id)
//! and balance reads. A request not answered, or answered "unavailable",
//! is sent again after a while, with the same ids, to any live node. At the
//! end the network heals, every request is retried until answered, and the
//! checks run:
//! - every node's replica of each shard has applied the same index and
//!   snapshots to the same bytes;
//! - each balance is the funding plus every deposit less every withdrawal,
//!   each exactly once (a movement applied twice, or lost after its
//!   acknowledgment, shows here);
//! - an answer to a retry agrees with the first answer to that request;
//! - reads are linearizable: a balance read of a deposit-only player is
//!   never below what a deposit acknowledged before the read was sent left,
//!   nor above what every deposit sent before it was answered adds up to;
//! - each wallet's history is linearizable: its deposits, withdrawals
//!   (applied or refused) and reads, each taking effect at one moment
//!   between its first send and its first answer, can be put in one order
//!   that keeps every answer true (`linearizable`);
//! - every replica's invariants (money conserved) hold.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::network::{caught, take_due, NetworkFaults};
use cluster::host::{Host, HostConfig};
use cluster::map::Leader;
use cluster::replica::{Compaction, Lagging};
use cluster::{ReplySink, SlotMap};
use engine::{Action, Amount, Command, Currency, CurrencySpec, OperatorConfig, OperatorId, Outcome, PlayerId, Reply, TxId};
use parking_lot::Mutex;
use persistence::{MemStore, Store};
use raft::eraftpb::{Message, MessageType};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

const NODES: u64 = 3;
const SHARDS: u32 = 2;
/// Players 1 to SAVERS only deposit (their balances only grow, which the
/// read check uses); the others deposit and withdraw.
const SAVERS: u64 = 4;
const PLAYERS: u64 = 8;
const OPERATOR: OperatorId = OperatorId(1);
const FUND: i64 = 1_000_000;
/// The last player is funded with little, so that some of its withdrawals
/// are refused (and a refused one must stay refused, retries and all).
const FUND_SHORT: i64 = 150;

fn fund_of(player: PlayerId) -> i64 {
    if player.0 == PLAYERS {
        FUND_SHORT
    } else {
        FUND
    }
}
/// Steps a request waits for an answer before the client sends it again.
const RETRY_AFTER: u64 = 150;

/// What can go wrong: the network's and disks' faults, and a planted bug.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    pub network: NetworkFaults,
    /// Plant a bug in nodes 2 and 3: balance reads answered from the local
    /// replica at once, without a read index (`Host::plant_stale_reads`).
    pub plant_stale_reads: bool,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub seed: u64,
    pub requests: u64,
    pub movements: u64,
    pub reads: u64,
    /// Requests sent more than once.
    pub retried: u64,
    /// Answers "unavailable" (no leader or quorum in time).
    pub unavailable: u64,
    pub crashes: u64,
    /// Crashes during a Ready: after the messages that leave before the
    /// node's write, before that write is durable.
    pub crashes_in_ready: u64,
    pub partitions: u64,
    pub max_term: u64,
    /// Sum over shards of the applied index at the end.
    pub applied: u64,
    /// Snapshots delivered to replicas too far behind the leader's log.
    pub snapshots_sent: u64,
    /// Compactions (snapshots taken to truncate a log) written at a later
    /// step than they were taken, as a node's writer thread writes them.
    pub compactions_written: u64,
    /// Of those, found older than a snapshot installed from the leader
    /// meanwhile (and so not written).
    pub compactions_superseded: u64,
    /// Compactions taken and never written: their node crashed first.
    pub compactions_lost: u64,
}

/// Answers a node's host delivered, collected for the client.
#[derive(Default)]
struct Inbox(Mutex<Vec<(u64, Option<Outcome>)>>);

impl ReplySink for Inbox {
    fn deliver(&self, request_id: u64, outcome: Outcome) {
        self.0.lock().push((request_id, Some(outcome)));
    }

    fn unavailable(&self, request_id: u64) {
        self.0.lock().push((request_id, None));
    }
}

struct Node {
    store: Arc<MemStore>,
    host: Option<Host>,
    /// Compactions the host began, written at later steps (a node's
    /// snapshot writer thread, here as steps between Readys); a crash loses
    /// those not yet written.
    compactions: Vec<Compaction>,
    inbox: Arc<Inbox>,
    down_until: u64,
    cut_until: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Setup,
    Deposit(i64),
    Withdraw(i64),
    Read,
}

struct Request {
    command: Command,
    player: PlayerId,
    kind: Kind,
    sent_at: u64,
    /// Last (re)sent at this step.
    tried_at: u64,
    tries: u32,
    /// The first answer (a balance, or the rejection).
    answer: Option<Outcome>,
    answered_at: u64,
}

fn eur() -> Currency {
    Currency::new("EUR").expect("valid")
}

fn host_config(node: u64) -> HostConfig {
    HostConfig {
        snapshot_every_commands: 40,
        retry_ticks: 20,
        give_up_ticks: 120,
        batch_max: 16,
        // Small, so that some lagging replicas catch up by the entries a
        // leader kept behind its snapshot and others by the snapshot.
        // Some lagging replicas catch up by kept entries, others (6 entries
        // or 400 bytes behind) by a snapshot.
        lagging_kept: Lagging { entries: 6, bytes: 400 },
        ..HostConfig::new(node, (1..=NODES).collect(), SHARDS)
    }
}

fn open(node: u64, store: &Arc<MemStore>, faults: &Faults) -> Result<Host, String> {
    let mut host = Host::open(host_config(node), store.clone() as Arc<dyn Store>).map_err(|e| format!("node {node} does not open: {e}"))?;
    if faults.plant_stale_reads && node != 1 {
        host.plant_stale_reads();
    }
    Ok(host)
}

/// Runs `steps` steps with `faults`, then heals, finishes every request and
/// checks. Err names the seed and what failed (a panic inside, raft-rs's
/// own checks included, is a failure too).
pub fn run(seed: u64, steps: u64, faults: Faults) -> Result<RunReport, String> {
    caught(seed, || simulate(seed, steps, faults))
}

fn balance_of(outcome: &Outcome) -> Option<i64> {
    match outcome {
        Ok(Reply::Tx(tx)) => Some(tx.balance.cash.minor() as i64),
        Ok(Reply::Balance(balance)) => Some(balance.cash.minor() as i64),
        _ => None,
    }
}

fn simulate(seed: u64, steps: u64, faults: Faults) -> Result<RunReport, String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut roll = move |n: u64| if n == 0 { 0 } else { rng.next_u64() % n };
    let slots = SlotMap::even(SHARDS);
    let mut nodes = Vec::new();
    for id in 1..=NODES {
        let store = Arc::new(MemStore::new());
        let host = open(id, &store, &faults)?;
        nodes.push(Node {
            store,
            host: Some(host),
            compactions: Vec::new(),
            inbox: Arc::new(Inbox::default()),
            down_until: 0,
            cut_until: 0,
        });
    }
    let mut report = RunReport { seed, ..RunReport::default() };
    let mut in_flight: Vec<(u64, (u32, Message))> = Vec::new();
    let mut requests: Vec<Request> = Vec::new();
    // Which request each request id sent stands for (ids are never reused).
    let mut sent: BTreeMap<u64, usize> = BTreeMap::new();
    let mut next_request_id = 1u64;
    let mut next_tx = 0u64;
    // Setup: the operator on every shard, then a funded wallet per player.
    let configure = Command::ConfigureOperator(OperatorConfig {
        operator: OPERATOR,
        sweepstakes: false,
        currencies: vec![CurrencySpec { currency: eur(), scale: 2 }],
        limit_increase_delay_ms: 0,
        redemption_min_minor: 0,
    });
    // Stages, each sent once the previous one is answered.
    let mut stages: Vec<Vec<Command>> = vec![
        (0..SHARDS).map(|_| configure.clone()).collect(),
        (1..=PLAYERS).map(|p| Command::Player { operator: OPERATOR, player: PlayerId(p), action: Action::CreateWallet }).collect(),
        (1..=PLAYERS)
            .map(|p| {
                let action =
                    Action::Deposit { tx: TxId::new("fund").expect("valid"), currency: eur(), amount: Amount(fund_of(PlayerId(p))) };
                Command::Player { operator: OPERATOR, player: PlayerId(p), action }
            })
            .collect(),
    ];
    stages.reverse();
    let healed_after = steps;
    let limit = steps + 3_000;
    let mut step = 0u64;
    loop {
        let healing = step >= healed_after;
        let now_ms = 1_800_000_000_000 + step * 10;
        // Faults (none once healing).
        for (at, node) in nodes.iter_mut().enumerate() {
            let id = at as u64 + 1;
            if healing {
                node.cut_until = 0;
                node.down_until = node.down_until.min(step);
            }
            if node.host.is_none() && step >= node.down_until {
                node.host = Some(open(id, &node.store, &faults)?);
                node.inbox = Arc::new(Inbox::default());
            }
            if !healing && node.host.is_some() && roll(1000) < u64::from(faults.network.crash_per_mille) {
                node.host = None;
                report.compactions_lost += node.compactions.len() as u64;
                node.compactions.clear();
                // The disk keeps what was synced, and maybe some of the rest.
                node.store = Arc::new(node.store.crash(roll(3) as usize));
                node.down_until = step + 5 + roll(60);
                report.crashes += 1;
            }
            if !healing && roll(1000) < u64::from(faults.network.partition_per_mille) {
                node.cut_until = step + 10 + roll(80);
                report.partitions += 1;
            }
        }
        for (shard, message) in take_due(&mut in_flight, step) {
            let (from, to) = (message.from as usize - 1, message.to as usize - 1);
            let cut = |n: &Node| !healing && n.cut_until > step;
            let arrives = !(cut(&nodes[from]) || cut(&nodes[to])) && nodes[to].host.is_some();
            if message.get_msg_type() == MessageType::MsgSnapshot {
                report.snapshots_sent += u64::from(arrives);
                if let Some(sender) = nodes[from].host.as_mut() {
                    sender.report_snapshot(shard, message.to, arrives);
                }
            }
            if arrives {
                if let Some(host) = nodes[to].host.as_mut() {
                    host.step(shard, message);
                }
            }
        }
        // The client: setup first; then new requests and retries, each to a live node.
        let live: Vec<usize> = (0..nodes.len()).filter(|&n| nodes[n].host.is_some()).collect();
        let mut to_send: Vec<usize> = Vec::new();
        let all_answered = requests.iter().all(|r| r.answer.is_some());
        if all_answered {
            if let Some(stage) = stages.pop() {
                for command in stage {
                    let player = command.player().unwrap_or(PlayerId(0));
                    to_send.push(requests.len());
                    requests.push(Request {
                        command,
                        player,
                        kind: Kind::Setup,
                        sent_at: step,
                        tried_at: step,
                        tries: 0,
                        answer: None,
                        answered_at: 0,
                    });
                }
            }
        }
        let ready = stages.is_empty() && requests.iter().all(|r| r.kind != Kind::Setup || r.answer.is_some());
        if ready && !healing && roll(2) == 0 {
            for _ in 0..1 + roll(3) {
                let player = PlayerId(1 + roll(PLAYERS));
                let (kind, action) = match roll(10) {
                    0..=3 => (Kind::Read, Action::Balance { currency: eur() }),
                    n => {
                        let tx = TxId::new(&format!("t{next_tx}")).expect("valid id");
                        next_tx += 1;
                        let amount = 1 + roll(100) as i64;
                        if player.0 > SAVERS && n >= 7 {
                            (Kind::Withdraw(amount), Action::Withdraw { tx, currency: eur(), amount: Amount(amount) })
                        } else {
                            (Kind::Deposit(amount), Action::Deposit { tx, currency: eur(), amount: Amount(amount) })
                        }
                    }
                };
                to_send.push(requests.len());
                requests.push(Request {
                    command: Command::Player { operator: OPERATOR, player, action },
                    player,
                    kind,
                    sent_at: step,
                    tried_at: step,
                    tries: 0,
                    answer: None,
                    answered_at: 0,
                });
            }
        }
        for (index, request) in requests.iter_mut().enumerate() {
            if request.answer.is_none() && step >= request.tried_at + RETRY_AFTER {
                to_send.push(index);
            }
        }
        if !live.is_empty() {
            for index in to_send {
                let request = &mut requests[index];
                let node = live[roll(live.len() as u64) as usize];
                let shard = match &request.command {
                    Command::Player { player, .. } => slots.shard_of(*player),
                    // The operator's configuration goes to shard (request index) of the setup.
                    _ => index as u32 % SHARDS,
                };
                let request_id = next_request_id;
                next_request_id += 1;
                sent.insert(request_id, index);
                if request.tries > 0 {
                    report.retried += 1;
                }
                request.tries += 1;
                request.tried_at = step;
                let sink: Arc<dyn ReplySink> = nodes[node].inbox.clone();
                let host = nodes[node].host.as_mut().expect("live");
                // A full host refuses: the request waits for its retry.
                let _ = host.submit(shard, vec![(request_id, request.command.clone())], &sink);
            }
        }
        // Every live node: tick, propose, handle its Ready; collect messages.
        // Now and then a node crashes during its Ready: what raft lets leave
        // before the write (a leader's appends) is in the network, the write
        // is not durable (the disk is what a crash just before it leaves),
        // and the messages and answers that follow the write never happen.
        let mut outbox = Vec::new();
        for node in nodes.iter_mut() {
            let Some(host) = node.host.as_mut() else { continue };
            // The writer thread's progress: each compaction waiting is
            // written now or at a later step, in the order taken.
            while !node.compactions.is_empty() && roll(10) == 0 {
                let compaction = node.compactions.remove(0);
                let shard = compaction.shard();
                let outcome = compaction.write();
                host.compacted(shard, &outcome);
                let done = outcome.map_err(|e| format!("node {}: writing a compaction of shard {shard}: {e}", host.node()))?;
                report.compactions_written += 1;
                report.compactions_superseded += u64::from(!done.written);
            }
            host.tick(now_ms);
            host.propose_queued(now_ms);
            let crash_in_ready = !healing && roll(2000) < u64::from(faults.network.crash_per_mille);
            let disk_after_crash = crash_in_ready.then(|| node.store.crash(roll(3) as usize));
            let mut messages = Vec::new();
            let (inbox, mut sends, mut answered_before_write) = (node.inbox.clone(), 0, 0);
            // `send` is called before the write, then once after it.
            host.ready(&mut messages, &mut |ready: &mut Vec<(u32, Message)>| {
                sends += 1;
                if sends == 1 || !crash_in_ready {
                    outbox.append(ready);
                } else {
                    if sends == 2 {
                        answered_before_write = inbox.0.lock().len();
                    }
                    ready.clear();
                }
            })
            .map_err(|e| format!("node {}: {e}", host.node()))?;
            if let Some(disk) = disk_after_crash {
                node.inbox.0.lock().truncate(answered_before_write);
                node.host = None;
                report.compactions_lost += node.compactions.len() as u64;
                node.compactions.clear();
                node.store = Arc::new(disk);
                node.down_until = step + 5 + roll(60);
                report.crashes += 1;
                report.crashes_in_ready += 1;
                continue;
            }
            outbox.extend(messages);
            node.compactions.extend(host.take_compactions());
            for shard in 0..SHARDS {
                report.max_term = report.max_term.max(host.replica(shard).term());
            }
        }
        // Answers.
        for node in &nodes {
            let answers: Vec<(u64, Option<Outcome>)> = std::mem::take(&mut *node.inbox.0.lock());
            for (request_id, outcome) in answers {
                let Some(&index) = sent.get(&request_id) else { return Err(format!("an answer to unknown request {request_id}")) };
                let request = &mut requests[index];
                let Some(outcome) = outcome else {
                    report.unavailable += 1;
                    // Sent again at the next retry point.
                    continue;
                };
                check_answer(request, &outcome, index)?;
                match &request.answer {
                    None => {
                        request.answer = Some(outcome);
                        request.answered_at = step;
                    }
                    Some(first) if request.kind != Kind::Read && balance_of(first) != balance_of(&outcome) => {
                        return Err(format!("request {index} answered {first:?} first and {outcome:?} on a retry"));
                    }
                    Some(_) => {}
                }
            }
        }
        for (shard, message) in outbox {
            if !healing && roll(100) < u64::from(faults.network.drop_percent) {
                if message.get_msg_type() == MessageType::MsgSnapshot {
                    if let Some(sender) = nodes[message.from as usize - 1].host.as_mut() {
                        sender.report_snapshot(shard, message.to, false);
                    }
                }
                continue;
            }
            let copies = if !healing && roll(100) < u64::from(faults.network.duplicate_percent) { 2 } else { 1 };
            for _ in 0..copies {
                let delay = if healing { 0 } else { roll(faults.network.max_delay_steps + 1) };
                in_flight.push((step + 1 + delay, (shard, message.clone())));
            }
        }
        step += 1;
        let settled = requests.iter().all(|r| r.answer.is_some());
        if healing && ready && settled && caught_up(&nodes) {
            break;
        }
        if step >= limit {
            let open = requests.iter().filter(|r| r.answer.is_none()).count();
            if open == 0 {
                return Err(format!("the replicas have not caught up with their leaders {} steps after healing", limit - healed_after));
            }
            return Err(format!("{open} requests still unanswered {} steps after healing", limit - healed_after));
        }
    }
    check_reads(&requests)?;
    check_histories(&requests)?;
    check_books(&nodes, &requests, &mut report)?;
    report.requests = requests.len() as u64;
    report.movements = requests.iter().filter(|r| matches!(r.kind, Kind::Deposit(_) | Kind::Withdraw(_))).count() as u64;
    report.reads = requests.iter().filter(|r| r.kind == Kind::Read).count() as u64;
    Ok(report)
}

fn check_answer(request: &Request, outcome: &Outcome, index: usize) -> Result<(), String> {
    match (request.kind, outcome) {
        (Kind::Setup, Ok(_)) | (Kind::Setup, Err(engine::Rejection::PlayerExists)) => Ok(()),
        (Kind::Deposit(_) | Kind::Withdraw(_), Ok(Reply::Tx(_))) | (Kind::Read, Ok(Reply::Balance(_))) => Ok(()),
        (Kind::Withdraw(_), Err(engine::Rejection::InsufficientFunds)) => Ok(()),
        _ => Err(format!("request {index} ({:?} of {:?}) answered {outcome:?}", request.kind, request.player)),
    }
}

/// Every replica of each shard, and of the metadata group, at the same index, commit and applied.
fn caught_up(nodes: &[Node]) -> bool {
    let hosts: Vec<&Host> = nodes.iter().filter_map(|n| n.host.as_ref()).collect();
    if hosts.len() != nodes.len() {
        return false;
    }
    let meta = hosts[0].meta();
    // The shard map is bootstrapped: the metadata group has had a leader.
    let meta_caught_up = meta.machine().map().version() > 0
        && meta.applied() == meta.commit()
        && hosts.iter().all(|h| h.meta().applied() == meta.applied() && h.meta().commit() == meta.commit());
    // Every shard has a leader all agree on, and every replica has applied
    // the leader's whole log. (A commit index is not synced on its own, as
    // etcd's is not: after every replica restarts, each may know a lower
    // one than was answered, until a leader commits again.)
    meta_caught_up
        && (0..SHARDS).all(|shard| {
            let first = hosts[0].replica(shard);
            let leader = first.leader();
            leader != 0
                && hosts.iter().all(|h| {
                    let replica = h.replica(shard);
                    replica.leader() == leader && replica.applied() == replica.last_index() && replica.applied() == first.applied()
                })
                // and the map records it (the record is committed and applied).
                && hosts.iter().all(|h| h.map().leader(shard) == Leader { node: leader, term: first.term() })
        })
}

/// Reads of deposit-only players against the deposits around them.
fn check_reads(requests: &[Request]) -> Result<(), String> {
    for (index, read) in requests.iter().enumerate().filter(|(_, r)| r.kind == Kind::Read && r.player.0 <= SAVERS) {
        let seen = read.answer.as_ref().and_then(balance_of).ok_or_else(|| format!("read {index} has no balance"))?;
        let deposits = requests.iter().filter(|r| r.player == read.player && matches!(r.kind, Kind::Deposit(_)));
        // Acknowledged before the read was first sent: the read must see it.
        let floor = deposits.clone().filter(|d| d.answered_at < read.sent_at).filter_map(|d| d.answer.as_ref().and_then(balance_of)).max();
        let floor = floor.unwrap_or(FUND);
        // Sent before the read was answered: the most it can see.
        let ceiling: i64 = FUND
            + deposits.filter(|d| d.sent_at <= read.answered_at).map(|d| if let Kind::Deposit(a) = d.kind { a } else { 0 }).sum::<i64>();
        if seen < floor || seen > ceiling {
            return Err(format!(
                "read {index} of {:?} (sent at step {}, answered at {}) saw {seen}, outside [{floor}, {ceiling}]: not linearizable",
                read.player, read.sent_at, read.answered_at
            ));
        }
    }
    Ok(())
}

/// One request of a wallet's history, as the linearizability check sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    pub sent_at: u64,
    pub answered_at: u64,
    pub kind: OpKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// A movement of `amount` (negative: a withdrawal) that applied and
    /// answered the balance `after` it.
    Moved { amount: i64, after: i64 },
    /// A withdrawal of `amount` refused for lack of funds.
    Refused { amount: i64 },
    /// A read that answered `balance`.
    Read { balance: i64 },
}

/// Every wallet's history against `linearizable`.
fn check_histories(requests: &[Request]) -> Result<(), String> {
    for player in (1..=PLAYERS).map(PlayerId) {
        let ops: Vec<Op> = requests
            .iter()
            .filter(|r| r.player == player)
            .filter_map(|r| {
                let answer = r.answer.as_ref()?;
                let kind = match (r.kind, answer) {
                    (Kind::Deposit(amount), Ok(_)) => OpKind::Moved { amount, after: balance_of(answer)? },
                    (Kind::Withdraw(amount), Ok(_)) => OpKind::Moved { amount: -amount, after: balance_of(answer)? },
                    (Kind::Withdraw(amount), Err(_)) => OpKind::Refused { amount },
                    (Kind::Read, _) => OpKind::Read { balance: balance_of(answer)? },
                    _ => return None,
                };
                Some(Op { sent_at: r.sent_at, answered_at: r.answered_at, kind })
            })
            .collect();
        linearizable(fund_of(player), &ops).map_err(|why| format!("{player:?}'s history is not linearizable: {why}"))?;
    }
    Ok(())
}

/// Whether the operations on one balance starting at `initial` can be
/// ordered so that each takes effect at a moment between its send and its
/// answer (one answered before another was sent comes first) and every
/// answer is what that order gives: a depth-first search over the
/// operations that may come next, remembering the sets of operations
/// already placed that led nowhere (the balance follows from the set), as
/// Wing and Gong's checker does, and placing an operation that leaves the
/// balance as it is (a read, a refusal) as soon as it holds. Err says how
/// far the longest order got.
pub fn linearizable(initial: i64, ops: &[Op]) -> Result<(), String> {
    let words = ops.len().div_ceil(64).max(1);
    let mut dead: std::collections::HashSet<Vec<u64>> = std::collections::HashSet::new();
    let mut placed = vec![0u64; words];
    let mut order: Vec<usize> = Vec::new();
    let mut longest = 0;
    // (the balance, the next candidate to try at this depth)
    let mut stack: Vec<(i64, usize)> = vec![(initial, 0)];
    let is_placed = |placed: &[u64], i: usize| placed[i / 64] & (1 << (i % 64)) != 0;
    while let Some(&(balance, from)) = stack.last() {
        if order.len() == ops.len() {
            return Ok(());
        }
        // What may come next: any operation not placed that no unplaced
        // operation must precede (none was answered before it was sent).
        let first_answer = (0..ops.len()).filter(|&i| !is_placed(&placed, i)).map(|i| ops[i].answered_at).min().unwrap_or(u64::MAX);
        let open = |i: usize| !is_placed(&placed, i) && ops[i].sent_at <= first_answer;
        let after_of = |i: usize| match ops[i].kind {
            OpKind::Moved { amount, after } => (balance + amount == after && after >= 0).then_some(after),
            OpKind::Refused { amount } => (balance < amount).then_some(balance),
            OpKind::Read { balance: seen } => (seen == balance).then_some(balance),
        };
        let unless_dead = |i: usize, after: i64| {
            let mut with = placed.clone();
            with[i / 64] |= 1 << (i % 64);
            (!dead.contains(&with)).then_some((i, after))
        };
        // A read or a refusal that holds now goes now, the only choice
        // tried at this depth: it leaves the balance as it is, and placing
        // it early only loosens what the others wait for, so if any order
        // exists, one with it here does. Without this, a read left behind
        // once the balance moved on is found stranded only after every
        // order of the operations around it was tried (2^n for n at once).
        let keeps_balance = (0..ops.len()).find(|&i| open(i) && !matches!(ops[i].kind, OpKind::Moved { .. }) && after_of(i).is_some());
        let next = match keeps_balance {
            Some(i) if from == 0 => unless_dead(i, balance),
            Some(_) => None,
            None => (from..ops.len()).find_map(|i| if open(i) { unless_dead(i, after_of(i)?) } else { None }),
        };
        match next {
            Some((i, after)) => {
                if let Some(top) = stack.last_mut() {
                    top.1 = i + 1;
                }
                placed[i / 64] |= 1 << (i % 64);
                order.push(i);
                longest = longest.max(order.len());
                stack.push((after, 0));
            }
            None => {
                stack.pop();
                dead.insert(placed.clone());
                if let Some(i) = order.pop() {
                    placed[i / 64] &= !(1 << (i % 64));
                }
            }
        }
    }
    Err(format!("{} operations, and no order of more than {longest} keeps every answer true: {ops:?}", ops.len()))
}

fn check_books(nodes: &[Node], requests: &[Request], report: &mut RunReport) -> Result<(), String> {
    let hosts: Vec<&Host> = nodes.iter().filter_map(|n| n.host.as_ref()).collect();
    // One shard map everywhere, routing as the clients did (bootstrapped
    // once: a second bootstrap would have dealt the slots again), each
    // shard's leader recorded with its term.
    let map = hosts[0].map();
    if map.version() == 0 || hosts.iter().any(|h| h.map() != map) {
        return Err(format!("shard maps differ: {:?}", hosts.iter().map(|h| h.map().version()).collect::<Vec<_>>()));
    }
    for shard in 0..SHARDS {
        let replica = hosts[0].replica(shard);
        if map.leader(shard) != (Leader { node: replica.leader(), term: replica.term() }) {
            return Err(format!(
                "the map records {:?} as shard {shard}'s leader, not node {} at term {}",
                map.leader(shard),
                replica.leader(),
                replica.term()
            ));
        }
    }
    if (1..=PLAYERS).any(|p| map.shard_of(PlayerId(p)) != SlotMap::even(SHARDS).shard_of(PlayerId(p))) {
        return Err("the shard map routes players elsewhere than the clients did".into());
    }
    for shard in 0..SHARDS {
        let first = hosts[0].replica(shard);
        let bytes = first.shard().snapshot();
        for host in &hosts[1..] {
            if host.replica(shard).shard().snapshot() != bytes {
                return Err(format!("shard {shard}: node {} differs from node 1 at index {}", host.node(), first.applied()));
            }
        }
        for host in &hosts {
            let engine = host.replica(shard).shard();
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| engine.check_invariants()))
                .map_err(|_| format!("shard {shard} on node {}: invariants fail", host.node()))?;
        }
        report.applied += first.applied();
    }
    let slots = SlotMap::even(SHARDS);
    for player in (1..=PLAYERS).map(PlayerId) {
        // Each movement once, as first answered: a refused withdrawal never.
        let expected = fund_of(player)
            + requests
                .iter()
                .filter(|r| r.player == player)
                .map(|r| match (r.kind, &r.answer) {
                    (Kind::Deposit(amount), _) => amount,
                    (Kind::Withdraw(amount), Some(Ok(_))) => -amount,
                    _ => 0,
                })
                .sum::<i64>();
        let engine = hosts[0].replica(slots.shard_of(player)).shard();
        let balance = engine.balance(player, eur()).map(|b| b.cash.minor() as i64);
        if balance != Some(expected) {
            return Err(format!("{player:?} holds {balance:?}; its movements, each once, add up to {expected}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(sent_at: u64, answered_at: u64, kind: OpKind) -> Op {
        Op { sent_at, answered_at, kind }
    }

    #[test]
    fn a_history_is_linearizable_only_if_one_order_keeps_every_answer() {
        use OpKind::*;
        // In sequence.
        let plain =
            [op(1, 2, Moved { amount: 10, after: 110 }), op(3, 4, Read { balance: 110 }), op(5, 6, Moved { amount: -60, after: 50 })];
        assert_eq!(linearizable(100, &plain), Ok(()));
        // Two overlapping deposits may apply in either order, and a read
        // overlapping both may see any of the three balances.
        for seen in [100, 105, 110, 115] {
            let overlapping =
                [op(1, 9, Moved { amount: 10, after: 115 }), op(2, 8, Moved { amount: 5, after: 105 }), op(3, 7, Read { balance: seen })];
            assert_eq!(linearizable(100, &overlapping).is_ok(), seen != 110, "a read of {seen}");
        }
        // A read sent after a deposit was answered must see it.
        let stale = [op(1, 2, Moved { amount: 10, after: 110 }), op(3, 4, Read { balance: 100 })];
        assert!(linearizable(100, &stale).is_err());
        // A withdrawal refused with the money there, nothing concurrent.
        let refused = [op(1, 2, Refused { amount: 50 })];
        assert!(linearizable(100, &refused).is_err());
        // ... and one refused while a withdrawal overlapping it took the money.
        let raced = [op(1, 5, Moved { amount: -80, after: 20 }), op(2, 4, Refused { amount: 50 })];
        assert_eq!(linearizable(100, &raced), Ok(()));
        // Answers that no order gives: the same balance after two deposits.
        let twice = [op(1, 9, Moved { amount: 10, after: 110 }), op(2, 8, Moved { amount: 10, after: 110 })];
        assert!(linearizable(100, &twice).is_err());
    }
}
