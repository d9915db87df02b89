//! A durable node over the in-memory store: replies wait for the group
//! commit, a crashed node recovers to exactly the state it acknowledged
//! (the same snapshot bytes), snapshots truncate the log, and damaged or
//! mismatched data stops the start with an error that names it.

use std::sync::{mpsc, Arc};

use cluster::{Node, NodeConfig, ReplySink, StartError, Storage};
use engine::games::{self, Choice};
use engine::{Action, Amount, Command, Currency, CurrencySpec, GameId, OperatorConfig, OperatorId, Outcome, PlayerId, Reply, TxId};
use persistence::{Cf, Durability, GroupConfig, MemStore, Op, Store};

struct Collect(mpsc::Sender<(u64, Outcome)>);

impl ReplySink for Collect {
    fn deliver(&self, request_id: u64, outcome: Outcome) {
        let _ = self.0.send((request_id, outcome));
    }
    fn unavailable(&self, request_id: u64) {
        panic!("request {request_id}: a node without replication always answers");
    }
}

fn eur() -> Currency {
    Currency::new("EUR").expect("valid")
}

fn config(store: &Arc<MemStore>, shards: u32, snapshot_every_commands: u64) -> NodeConfig {
    NodeConfig {
        shard_count: shards,
        storage: Some(Storage {
            store: store.clone(),
            group: GroupConfig { durability: Durability::Sync, ..GroupConfig::default() },
            snapshot_every_commands,
        }),
        ..NodeConfig::default()
    }
}

/// Sends commands and waits for every reply.
fn run(node: &Node, commands: Vec<Command>) -> Vec<Outcome> {
    let (sender, receiver) = mpsc::channel();
    let sink: Arc<dyn ReplySink> = Arc::new(Collect(sender));
    let count = commands.len();
    for (id, command) in commands.into_iter().enumerate() {
        node.submit(command, id as u64, sink.clone()).expect("queued");
    }
    drop(sink);
    let mut replies: Vec<(u64, Outcome)> = receiver.iter().take(count).collect();
    replies.sort_by_key(|(id, _)| *id);
    assert_eq!(replies.len(), count);
    replies.into_iter().map(|(_, outcome)| outcome).collect()
}

fn player(id: u64, action: Action) -> Command {
    Command::Player { operator: OperatorId(1), player: PlayerId(id), action }
}

fn tx(text: &str) -> TxId {
    TxId::new(text).expect("valid")
}

/// Wallets, deposits, sessions and slot spins: state in every structure.
fn drive(node: &Node, players: std::ops::Range<u64>, round: u32) {
    if round == 0 {
        let operator = OperatorConfig {
            operator: OperatorId(1),
            sweepstakes: false,
            currencies: vec![CurrencySpec { currency: eur(), scale: 2 }],
            limit_increase_delay_ms: 0,
            redemption_min_minor: 0,
        };
        assert_eq!(node.configure_operator(operator), Ok(Reply::Done));
        let created = run(node, players.clone().map(|p| player(p, Action::CreateWallet)).collect());
        assert!(created.iter().all(Result::is_ok), "{created:?}");
        let deposits = players.clone().map(|p| player(p, Action::Deposit { tx: tx("d0"), currency: eur(), amount: Amount(100_000) }));
        assert!(run(node, deposits.collect()).iter().all(Result::is_ok));
    }
    let game = GameId::new(games::SLOT_ID).expect("valid");
    let opened = run(
        node,
        players.clone().map(|p| player(p, Action::OpenSession { game, currency: eur(), duration_ms: 3_600_000, locale: None })).collect(),
    );
    let spins = players.zip(opened).map(|(p, opened)| {
        let Ok(Reply::SessionOpened { session, .. }) = opened else { panic!("session: {opened:?}") };
        player(
            p,
            Action::Play {
                tx: tx(&format!("spin-{round}")),
                session,
                currency: eur(),
                stake: Amount(100),
                choice: Choice::Slot,
                fair: false,
            },
        )
    });
    let played = run(node, spins.collect());
    assert!(played.iter().all(Result::is_ok), "{played:?}");
}

#[test]
fn a_crashed_node_recovers_exactly_what_it_acknowledged() {
    let store = Arc::new(MemStore::new());
    let node = Node::start(config(&store, 2, 0)).expect("starts");
    drive(&node, 0..200, 0);
    drive(&node, 0..200, 1);
    // Every reply was sent after its write was synced: a crash now loses nothing.
    assert_eq!(store.unsynced_batches(), 0);
    let before = node.state_snapshots();
    let crashed = Arc::new(store.crash(0));
    drop(node);
    let node = Node::start(config(&crashed, 2, 0)).expect("recovers");
    assert!(node.recoveries().iter().all(|r| r.snapshot_index == 0 && r.entries > 0), "{:?}", node.recoveries());
    assert!(node.state_snapshots() == before, "the recovered state is byte for byte the acknowledged one");
    // Retried requests are answered from the recovered index: no double spend.
    let retry = run(&node, vec![player(7, Action::Deposit { tx: tx("d0"), currency: eur(), amount: Amount(100_000) })]);
    let Ok(Reply::Tx(reply)) = &retry[0] else { panic!("{retry:?}") };
    assert!(reply.replayed);
}

#[test]
fn snapshots_truncate_the_log_and_recovery_replays_only_what_follows() {
    let store = Arc::new(MemStore::new());
    let node = Node::start(config(&store, 2, 0)).expect("starts");
    drive(&node, 0..100, 0);
    let reports = node.snapshot().expect("snapshots");
    assert_eq!(reports.len(), 2);
    assert!(reports.iter().all(|r| r.index > 0 && r.bytes > 0));
    let status = node.status();
    assert!(status.iter().zip(&reports).all(|(s, r)| s.snapshot_index == r.index));
    drive(&node, 0..100, 1);
    let before = node.state_snapshots();
    let crashed = Arc::new(store.crash(0));
    drop(node);
    // The log holds only what followed the snapshots.
    let mut log_entries = 0;
    crashed
        .scan(Cf::Log, &[0], &[0xFF; 5], &mut |_, _| {
            log_entries += 1;
            true
        })
        .expect("scan");
    let node = Node::start(config(&crashed, 2, 0)).expect("recovers");
    let recoveries = node.recoveries();
    assert_eq!(recoveries.iter().map(|r| r.entries).sum::<u64>(), log_entries);
    assert!(recoveries.iter().zip(&reports).all(|(r, s)| r.snapshot_index == s.index), "{recoveries:?}");
    assert!(node.state_snapshots() == before);
}

#[test]
fn shards_snapshot_themselves_every_so_many_commands() {
    let store = Arc::new(MemStore::new());
    let node = Node::start(config(&store, 1, 150)).expect("starts");
    drive(&node, 0..100, 0);
    drive(&node, 0..100, 1);
    // The snapshot is written beside the shard: wait for it.
    let mut status = node.status();
    for _ in 0..1_000 {
        if status[0].snapshot_index > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        status = node.status();
    }
    assert!(status[0].snapshot_index > 0, "{status:?}");
    let before = node.state_snapshots();
    let crashed = Arc::new(store.crash(0));
    drop(node);
    let node = Node::start(config(&crashed, 1, 150)).expect("recovers");
    assert!(node.recoveries()[0].snapshot_index > 0);
    assert!(node.state_snapshots() == before);
}

#[test]
fn buffered_durability_can_lose_unsynced_batches_but_never_half_of_one() {
    let store = Arc::new(MemStore::new());
    let mut config_buffered = config(&store, 1, 0);
    if let Some(storage) = &mut config_buffered.storage {
        storage.group.durability = Durability::Buffered;
    }
    let node = Node::start(config_buffered).expect("starts");
    drive(&node, 0..50, 0);
    let written = store.unsynced_batches();
    assert!(written > 2, "buffered writes are not synced");
    drop(node);
    // A power loss keeps any prefix of the unsynced batches; each recovers
    // to the state after exactly the entries it kept, each entry with its
    // journal record.
    let mut applied = Vec::new();
    for keep in 0..=written {
        let crashed = Arc::new(store.crash(keep));
        let log = persistence::ShardLog::open(crashed.clone(), 0).expect("open the log");
        let last_logged = log.last_index();
        let last_journal = persistence::journal::last_index(&*crashed, 0).expect("journal").unwrap_or(0);
        assert_eq!(last_logged, last_journal, "keep {keep}: a log entry and its journal record are one write");
        drop(log);
        let node = Node::start(config(&crashed, 1, 0)).expect("recovers from any prefix");
        assert_eq!(node.recoveries()[0].applied_index, last_logged, "keep {keep}");
        applied.push(last_logged);
    }
    assert!(applied.windows(2).all(|w| w[0] <= w[1]) && applied.first() < applied.last(), "{applied:?}");
}

#[test]
fn damaged_data_stops_the_start_with_its_name() {
    let store = Arc::new(MemStore::new());
    let node = Node::start(config(&store, 2, 0)).expect("starts");
    drive(&node, 0..20, 0);
    drop(node);
    // Flip a byte of shard 1's entry 3.
    let mut key = 1u32.to_be_bytes().to_vec();
    key.extend_from_slice(&3u64.to_be_bytes());
    assert!(store.corrupt(Cf::Log, &key, 20));
    let error = Node::start(config(&store, 2, 0)).expect_err("refused");
    let message = error.to_string();
    assert!(message.contains("column family log") && message.contains("shard 1 entry 3") && message.contains("checksum"), "{message}");
    // A node configured for another shard count would route players to the wrong shards.
    let other = Arc::new(MemStore::new());
    drop(Node::start(config(&other, 2, 0)).expect("starts"));
    let error = Node::start(config(&other, 3, 0)).expect_err("refused");
    assert!(matches!(error, StartError::ShardCount { stored: 2, configured: 3, .. }), "{error}");
    // An intact record the engine cannot read (a batch from a future format, say).
    let other = Arc::new(MemStore::new());
    drop(Node::start(config(&other, 1, 0)).expect("starts"));
    let entry = persistence::Entry { index: 1, term: 1, data: vec![99u8; 30].into(), ..persistence::Entry::default() };
    let mut key = 0u32.to_be_bytes().to_vec();
    key.extend_from_slice(&1u64.to_be_bytes());
    other.write(&[Op::Put { cf: Cf::Log, key, value: persistence::encode_entry(&entry) }], true).expect("write");
    let error = Node::start(config(&other, 1, 0)).expect_err("refused");
    assert!(matches!(error, StartError::Engine { shard: 0, .. }), "{error}");
    assert!(error.to_string().contains("entry 1"), "{error}");
}
