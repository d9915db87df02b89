//! The deterministic replication simulator: three replicas of one shard
//! (`cluster::replica::Replica`, raft-rs over a `ShardLog` each on its own
//! in-memory store) in one process, over a simulated network that drops,
//! delays, duplicates and reorders messages and partitions replicas, with
//! replicas crashing (losing what they had not synced) and restarting from
//! their stores, and compacting their logs behind snapshots, which lagging
//! replicas then receive. One seed drives
//! everything: a failure names its seed, and the seed replays it.
//!
//! A client proposes batches of deposits, bets and wins (each with its own
//! transaction id) to whichever replica leads, and retries, with the same
//! ids, any batch not answered within a while. At the end the network heals and the
//! checks run:
//! - every replica has applied the same index and snapshots to the same
//!   bytes;
//! - every answered movement (deposit, bet, win) was applied, and none was
//!   applied twice (the committed log replayed into a fresh shard: each
//!   transaction id's event at most once);
//! - each balance is what its player's applied movements add up to, and the
//!   shard's invariants (money conserved) hold;
//! - every answer the client got (balances included) is what applying the
//!   committed log in order gives at that index: each wallet's history, as
//!   clients saw it, is linearizable.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::network::{caught, take_due, NetworkFaults};
use cluster::replica::{Lagging, NotTaken, Replica};
use engine::{Action, Amount, Command, Currency, CurrencySpec, Event, OperatorConfig, OperatorId, PlayerId, TxId};
use persistence::{MemStore, Store};
use raft::eraftpb::{Message, MessageType};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

const REPLICAS: u64 = 3;
const PLAYERS: u64 = 4;
const OPERATOR: OperatorId = OperatorId(1);
/// Steps a batch waits for its answer before the client retries it.
const RETRY_AFTER: u64 = 60;
/// A replica snapshots and truncates its log once it has applied this many
/// entries past its latest snapshot.
const COMPACT_AFTER: u64 = 40;
/// A leader compacting keeps the entries of a replica this far behind, in
/// entries and their bytes (so some catch up by entries kept behind a
/// snapshot, others by the snapshot).
const LAGGING_KEPT: Lagging = Lagging { entries: 6, bytes: 2_048 };

/// What can go wrong: the network's and disks' faults, and a planted bug.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    pub network: NetworkFaults,
    /// Plant a bug in replica 1: it never syncs (`Replica::plant_unsynced_writes`).
    pub plant_unsynced_writes: bool,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub seed: u64,
    pub applied_index: u64,
    pub batches_answered: u64,
    pub retries: u64,
    /// Deposits, bets and wins applied.
    pub movements_applied: u64,
    pub bets_applied: u64,
    pub crashes: u64,
    pub partitions: u64,
    pub max_term: u64,
    pub snapshots_taken: u64,
    pub snapshots_sent: u64,
}

struct Node {
    store: Arc<MemStore>,
    replica: Option<Replica>,
    /// Down until this step (crashed).
    down_until: u64,
    /// Cut off until this step (partitioned).
    cut_until: u64,
}

struct Pending {
    proposal: u64,
    commands: Vec<Command>,
    txs: Vec<(PlayerId, TxId)>,
    sent_at: u64,
}

fn eur() -> Currency {
    Currency::new("EUR").expect("valid")
}

fn open(id: u64, store: &Arc<MemStore>, faults: &Faults) -> Result<Replica, String> {
    let voters: Vec<u64> = (1..=REPLICAS).collect();
    let mut replica =
        Replica::open(id, &voters, engine::ShardConfig::new(0), engine::Residency::default(), store.clone() as Arc<dyn Store>)
            .map_err(|e| format!("replica {id} does not open: {e}"))?;
    if id == 1 && faults.plant_unsynced_writes {
        replica.plant_unsynced_writes();
    }
    Ok(replica)
}

/// Runs `steps` steps with `faults`, then heals and checks. Err names the
/// seed and what failed (a panic inside, raft-rs's own checks included, is
/// a failure too).
pub fn run(seed: u64, steps: u64, faults: Faults) -> Result<RunReport, String> {
    caught(seed, || simulate(seed, steps, faults))
}

fn simulate(seed: u64, steps: u64, faults: Faults) -> Result<RunReport, String> {
    let fail = |what: String| format!("seed {seed}: {what}");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut roll = move |n: u64| if n == 0 { 0 } else { rng.next_u64() % n };
    let mut nodes: Vec<Node> = Vec::new();
    for id in 1..=REPLICAS {
        let store = Arc::new(MemStore::new());
        let replica = open(id, &store, &faults).map_err(fail)?;
        nodes.push(Node { store, replica: Some(replica), down_until: 0, cut_until: 0 });
    }
    let mut report = RunReport { seed, ..RunReport::default() };
    let mut in_flight: Vec<(u64, Message)> = Vec::new();
    let mut pending: Vec<Pending> = Vec::new();
    let mut answered: BTreeSet<(PlayerId, TxId)> = BTreeSet::new();
    let mut sessions: BTreeMap<PlayerId, engine::SessionId> = BTreeMap::new();
    // Bets proposed so far, for wins to name.
    let mut bets: Vec<(PlayerId, TxId)> = Vec::new();
    // What the client was told, by log index: each answer must be what the
    // log's order gives (the wallets' histories are linearizable).
    let mut told: BTreeMap<u64, Vec<engine::Outcome>> = BTreeMap::new();
    // Every batch applied, by index, as replicas applied it: all must agree,
    // and since logs are truncated behind snapshots this is the history the
    // checks replay.
    let mut history: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut next_proposal = 1u64;
    let mut next_tx = 0u64;
    let mut setup_done = false;
    let total = steps + 600;
    for step in 0..total {
        let healing = step >= steps;
        // Faults (none once healing).
        for (at, node) in nodes.iter_mut().enumerate() {
            let id = at as u64 + 1;
            if healing {
                node.cut_until = 0;
                node.down_until = node.down_until.min(step);
            }
            // A crashed replica restarts from what its store kept (all of it
            // was synced: the replica writes with sync on).
            if node.replica.is_none() && step >= node.down_until {
                node.replica = Some(open(id, &node.store, &faults).map_err(fail)?);
            }
            if !healing && node.replica.is_some() && roll(1000) < u64::from(faults.network.crash_per_mille) {
                node.replica = None;
                // The disk keeps what was synced, and maybe some of the rest.
                node.store = Arc::new(node.store.crash(roll(3) as usize));
                node.down_until = step + 5 + roll(40);
                report.crashes += 1;
            }
            if !healing && roll(1000) < u64::from(faults.network.partition_per_mille) {
                node.cut_until = step + 10 + roll(60);
                report.partitions += 1;
            }
        }
        for message in take_due(&mut in_flight, step) {
            let (from, to) = (message.from as usize - 1, message.to as usize - 1);
            let cut = |n: &Node| !healing && n.cut_until > step;
            let arrives = !(cut(&nodes[from]) || cut(&nodes[to])) && nodes[to].replica.is_some();
            if message.get_msg_type() == MessageType::MsgSnapshot {
                if !arrives {
                    // The sender's transport reports a snapshot it could not deliver.
                    if let Some(sender) = nodes[from].replica.as_mut() {
                        sender.report_snapshot(message.to, false);
                    }
                    continue;
                }
                report.snapshots_sent += 1;
                if let Some(sender) = nodes[from].replica.as_mut() {
                    sender.report_snapshot(message.to, true);
                }
            }
            if !arrives {
                continue;
            }
            if let Some(replica) = nodes[to].replica.as_mut() {
                replica.step(message);
            }
        }
        // Tick, then handle readiness; collect what to send and what applied.
        let mut outbox = Vec::new();
        for node in nodes.iter_mut() {
            let Some(replica) = node.replica.as_mut() else { continue };
            replica.tick();
            let applied = replica.ready(&mut outbox).map_err(|e| fail(format!("replica {}: {e}", replica.id())))?;
            for batch in &applied {
                match history.get(&batch.index) {
                    Some(data) if data[..] != batch.data[..] => {
                        return Err(fail(format!(
                            "replica {} applied another batch at {} than another replica",
                            replica.id(),
                            batch.index
                        )));
                    }
                    Some(_) => {}
                    None => {
                        history.insert(batch.index, batch.data.to_vec());
                    }
                }
            }
            if replica.applied() >= replica.snapshot_index() + COMPACT_AFTER {
                replica.compact(LAGGING_KEPT).map_err(|e| fail(format!("replica {} compacting: {e}", replica.id())))?;
                report.snapshots_taken += 1;
            }
            for batch in applied {
                if let Some(at) = pending.iter().position(|p| p.proposal == batch.proposal) {
                    let done = pending.remove(at);
                    report.batches_answered += 1;
                    told.insert(batch.index, batch.output.clone());
                    for (tx, outcome) in done.txs.iter().zip(batch.output.iter().skip(done.commands.len() - done.txs.len())) {
                        if outcome.is_ok() {
                            answered.insert(*tx);
                        }
                    }
                    if done.txs.is_empty() {
                        for (command, outcome) in done.commands.iter().zip(batch.output.iter()) {
                            if let (Command::Player { player, .. }, Ok(engine::Reply::SessionOpened { session, .. })) = (command, outcome) {
                                sessions.insert(*player, *session);
                            }
                        }
                        setup_done = sessions.len() == PLAYERS as usize;
                    }
                }
            }
            report.max_term = report.max_term.max(replica.term());
        }
        for message in outbox {
            if !healing && roll(100) < u64::from(faults.network.drop_percent) {
                if message.get_msg_type() == MessageType::MsgSnapshot {
                    if let Some(sender) = nodes[message.from as usize - 1].replica.as_mut() {
                        sender.report_snapshot(message.to, false);
                    }
                }
                continue;
            }
            let copies = if !healing && roll(100) < u64::from(faults.network.duplicate_percent) { 2 } else { 1 };
            for _ in 0..copies {
                let delay = if healing { 0 } else { roll(faults.network.max_delay_steps + 1) };
                in_flight.push((step + 1 + delay, message.clone()));
            }
        }
        // The client: the operator and wallets first, then deposits; retries
        // of batches not answered in time, with the same transaction ids.
        let leader = nodes.iter_mut().filter_map(|n| n.replica.as_mut()).filter(|r| r.is_leader()).max_by_key(|r| r.term());
        let Some(leader) = leader else { continue };
        let mut retry = None;
        if let Some(stale) = pending.iter_mut().find(|p| step >= p.sent_at + RETRY_AFTER) {
            stale.sent_at = step;
            retry = Some(stale.commands.clone());
            report.retries += 1;
        }
        let (commands, txs) = match retry {
            Some(commands) => {
                let txs = pending.iter().find(|p| p.commands == commands).map(|p| p.txs.clone()).unwrap_or_default();
                (commands, txs)
            }
            None if !setup_done && pending.is_empty() => (setup_commands(), Vec::new()),
            None if setup_done && !healing && roll(3) == 0 && pending.len() < 8 => {
                let mut commands = Vec::new();
                let mut txs = Vec::new();
                for _ in 0..1 + roll(4) {
                    let player = PlayerId(1 + roll(PLAYERS));
                    let tx = TxId::new(&format!("t{next_tx}")).expect("valid id");
                    next_tx += 1;
                    let action = match roll(10) {
                        0..=3 => Action::Deposit { tx, currency: eur(), amount: Amount(1 + roll(1_000) as i64) },
                        4..=7 => {
                            bets.push((player, tx));
                            Action::Bet {
                                tx,
                                session: sessions[&player],
                                round: engine::RoundId::new(&format!("r{}", tx.as_str())).expect("valid id"),
                                game: None,
                                currency: eur(),
                                stake: engine::Stake::Auto(Amount(1 + roll(500) as i64)),
                                alias: None,
                            }
                        }
                        _ => match bets.get(roll(bets.len() as u64) as usize).copied() {
                            Some((bettor, bet)) => {
                                commands.push(Command::Player {
                                    operator: OPERATOR,
                                    player: bettor,
                                    action: Action::Win {
                                        tx,
                                        bet,
                                        amount: engine::Stake::Auto(Amount(roll(1_000) as i64)),
                                        close_round: true,
                                    },
                                });
                                txs.push((bettor, tx));
                                continue;
                            }
                            None => Action::Deposit { tx, currency: eur(), amount: Amount(1 + roll(1_000) as i64) },
                        },
                    };
                    commands.push(Command::Player { operator: OPERATOR, player, action });
                    txs.push((player, tx));
                }
                (commands, txs)
            }
            None => continue,
        };
        let proposal = next_proposal;
        next_proposal += 1;
        match leader.propose(proposal, 1_800_000_000_000 + step * 10, &commands) {
            Ok(()) => {
                // A retry takes the new proposal id; the old one may still commit.
                pending.retain(|p| p.commands != commands);
                pending.push(Pending { proposal, commands, txs, sent_at: step });
            }
            Err(NotTaken::NotLeader(_) | NotTaken::Dropped) => {}
        }
    }
    check(seed, &nodes, &answered, &told, &history, &mut report).map_err(fail)?;
    Ok(report)
}

fn setup_commands() -> Vec<Command> {
    let mut commands = vec![Command::ConfigureOperator(OperatorConfig {
        operator: OPERATOR,
        sweepstakes: false,
        currencies: vec![CurrencySpec { currency: eur(), scale: 2 }],
        limit_increase_delay_ms: 0,
        redemption_min_minor: 0,
    })];
    for player in 1..=PLAYERS {
        commands.push(Command::Player { operator: OPERATOR, player: PlayerId(player), action: Action::CreateWallet });
    }
    for player in 1..=PLAYERS {
        let open = Action::OpenSession {
            game: engine::GameId::new("slot").expect("valid id"),
            currency: eur(),
            duration_ms: 24 * 60 * 60 * 1000,
            locale: None,
        };
        commands.push(Command::Player { operator: OPERATOR, player: PlayerId(player), action: open });
    }
    commands
}

fn check(
    seed: u64,
    nodes: &[Node],
    answered: &BTreeSet<(PlayerId, TxId)>,
    told: &BTreeMap<u64, Vec<engine::Outcome>>,
    history: &BTreeMap<u64, Vec<u8>>,
    report: &mut RunReport,
) -> Result<(), String> {
    let replicas: Vec<&Replica> = nodes.iter().filter_map(|n| n.replica.as_ref()).collect();
    if replicas.len() != REPLICAS as usize {
        return Err("a replica is still down after healing".into());
    }
    let index = replicas[0].applied();
    for replica in &replicas {
        if replica.applied() != index || replica.commit() != index {
            return Err(format!(
                "replica {} applied {} (commit {}), replica 1 applied {index}",
                replica.id(),
                replica.applied(),
                replica.commit()
            ));
        }
    }
    let snapshot = replicas[0].shard().snapshot();
    for replica in &replicas[1..] {
        if replica.shard().snapshot() != snapshot {
            return Err(format!("replica {} differs from replica 1 at index {index}", replica.id()));
        }
    }
    // The history of applied batches, replayed into a fresh shard: what was
    // applied (logs are truncated behind snapshots; replicas applied these).
    let mut shard = engine::Shard::new(engine::ShardConfig::new(0));
    let mut events = Vec::new();
    let mut outcomes = Vec::new();
    let mut failure = None;
    for (&at, data) in history.range(..=index) {
        match engine::decode_batch(data) {
            Ok((context, commands)) => {
                let stamped = engine::Context { index: at, timestamp_ms: context.timestamp_ms };
                outcomes.clear();
                shard.apply_batch(stamped, &commands, &mut outcomes, &mut events);
                if let Some(answer) = told.get(&at) {
                    if *answer != outcomes {
                        failure = Some(format!("the answer at index {at} differs from the log's: {answer:?} vs {outcomes:?}"));
                    }
                }
            }
            Err(e) => failure = Some(format!("the batch at {at} does not decode: {e}")),
        }
    }
    if let Some(failure) = failure {
        return Err(failure);
    }
    if let Some(index) = told.keys().find(|i| **i > index) {
        return Err(format!("an answer at index {index} is beyond the applied index"));
    }
    if shard.snapshot() != snapshot {
        return Err("the committed log replayed does not give the replicas' state".into());
    }
    // Each movement (a deposit, a bet, a win: their ids never repeat across
    // kinds) at most once; each player's cash what its movements add up to.
    let mut applied: BTreeMap<(PlayerId, TxId), u64> = BTreeMap::new();
    let mut sums: BTreeMap<PlayerId, i128> = BTreeMap::new();
    let total = |p: &engine::Pockets| i128::from(p.total().map_or(u64::MAX, |m| m.minor()));
    for event in &events {
        let (player, tx, delta) = match event {
            Event::Deposited { player, tx, amount, .. } => (player, tx, i128::from(amount.minor())),
            Event::BetPlaced { player, tx, stake, .. } => (player, tx, -total(stake)),
            Event::WinCredited { player, tx, win, .. } => (player, tx, total(win)),
            _ => continue,
        };
        *applied.entry((*player, *tx)).or_default() += 1;
        *sums.entry(*player).or_default() += delta;
    }
    if let Some(((player, tx), times)) = applied.iter().find(|(_, times)| **times > 1) {
        return Err(format!("movement {tx:?} of {player:?} applied {times} times"));
    }
    if let Some((player, tx)) = answered.iter().find(|key| !applied.contains_key(key)) {
        return Err(format!("answered movement {tx:?} of {player:?} is not in the log"));
    }
    for (player, sum) in &sums {
        let balance = shard.balance(*player, eur()).map(|b| i128::from(b.cash.minor())).unwrap_or(0);
        if balance != *sum {
            return Err(format!("{player:?} holds {balance}, its movements add up to {sum}"));
        }
    }
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| shard.check_invariants()))
        .map_err(|_| format!("seed {seed}: shard invariants fail"))?;
    report.applied_index = index;
    report.movements_applied = applied.len() as u64;
    report.bets_applied = events.iter().filter(|e| matches!(e, Event::BetPlaced { .. })).count() as u64;
    Ok(())
}
