//! The order of a node's Ready (`Host::ready`). Three hosts on memory
//! stores, a message pump of this test's own, and every store write,
//! message hand-over and answer of the leader and a follower recorded in
//! order:
//! - the leader's and a follower's writes of a new entry are synced;
//! - the leader sends its appends before its write (they replicate while
//!   it writes), a follower acknowledges only after its write;
//! - the leader answers the committed command before any write of the
//!   Ready that commits it, and that Ready's writes (a commit index and
//!   journal records) are not synced.
//!
//! And when a proposal is made again: not while it sits in its leader's
//! log in the same term, however slow the commit; yes when a forward to the
//! leader was lost.

use std::collections::VecDeque;
use std::sync::Arc;

use cluster::host::{Host, HostConfig};
use cluster::ReplySink;
use engine::{Action, Amount, Command, Currency, CurrencySpec, OperatorConfig, OperatorId, Outcome, PlayerId, TxId};
use parking_lot::Mutex;
use persistence::{Cf, KeyValue, MemStore, Op, Store, StoreError};
use raft::eraftpb::{Message, MessageType};

#[derive(Clone, Debug, PartialEq)]
enum Event {
    Write { synced: bool },
    Send(Vec<MessageType>),
    Answer(u64),
}

type Log = Arc<Mutex<Vec<Event>>>;

/// A memory store that logs each write and whether it was synced.
#[derive(Debug)]
struct Recording {
    inner: MemStore,
    log: Log,
}

impl Store for Recording {
    fn write(&self, ops: &[Op], sync: bool) -> Result<(), StoreError> {
        self.log.lock().push(Event::Write { synced: sync });
        self.inner.write(ops, sync)
    }
    fn write_unlogged(&self, ops: &[Op]) -> Result<(), StoreError> {
        self.inner.write_unlogged(ops)
    }
    fn persist(&self, cf: Cf) -> Result<(), StoreError> {
        self.inner.persist(cf)
    }
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(cf, key)
    }
    fn scan(&self, cf: Cf, from: &[u8], to: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<(), StoreError> {
        self.inner.scan(cf, from, to, visit)
    }
    fn last(&self, cf: Cf, from: &[u8], to: &[u8]) -> Result<Option<KeyValue>, StoreError> {
        self.inner.last(cf, from, to)
    }
    fn location(&self) -> String {
        "memory".into()
    }
}

/// Answers, into the node's log.
struct Answers(Log);

impl ReplySink for Answers {
    fn deliver(&self, request_id: u64, _: Outcome) {
        self.0.lock().push(Event::Answer(request_id));
    }
    fn unavailable(&self, request_id: u64) {
        panic!("request {request_id} answered unavailable");
    }
}

struct Cluster {
    hosts: Vec<Host>,
    logs: Vec<Log>,
    sinks: Vec<Arc<dyn ReplySink>>,
    in_flight: VecDeque<(u32, Message)>,
    now_ms: u64,
}

impl Cluster {
    fn new() -> Cluster {
        let logs: Vec<Log> = (0..3).map(|_| Log::default()).collect();
        let hosts = (1..=3u64)
            .map(|node| {
                let store = Arc::new(Recording { inner: MemStore::new(), log: logs[node as usize - 1].clone() });
                Host::open(HostConfig::new(node, vec![1, 2, 3], 1), store).expect("opens")
            })
            .collect();
        let sinks = logs.iter().map(|log| Arc::new(Answers(log.clone())) as Arc<dyn ReplySink>).collect();
        Cluster { hosts, logs, sinks, in_flight: VecDeque::new(), now_ms: 1_800_000_000_000 }
    }

    /// One Ready of node `index` (0-based), its messages into the network:
    /// those it lets leave before its write as it hands them over, the
    /// rest after it returns.
    fn ready(&mut self, index: usize) {
        let now_ms = self.now_ms;
        let Cluster { hosts, logs, in_flight, .. } = self;
        let log = &logs[index];
        let mut send = |messages: &mut Vec<(u32, Message)>| {
            if !messages.is_empty() {
                log.lock().push(Event::Send(messages.iter().map(|(_, m)| m.get_msg_type()).collect()));
            }
            in_flight.extend(messages.drain(..));
        };
        let host = &mut hosts[index];
        host.propose_queued(now_ms);
        let mut outbox = Vec::new();
        host.ready(&mut outbox, &mut send).expect("ready");
        send(&mut outbox);
    }

    /// Node `index`'s events since the last call, with the positions of its
    /// first synced write and of its first hand-over holding a `kind` message.
    fn synced_write_and_send(&mut self, index: usize, kind: MessageType) -> (Vec<Event>, Option<usize>, Option<usize>) {
        let events = std::mem::take(&mut *self.logs[index].lock());
        let synced = events.iter().position(|e| *e == Event::Write { synced: true });
        let send = events.iter().position(|e| matches!(e, Event::Send(types) if types.contains(&kind)));
        (events, synced, send)
    }

    /// Delivers what is in flight to node `index`, keeping the rest.
    fn deliver_to(&mut self, index: usize) {
        let node = index as u64 + 1;
        let (mine, others): (VecDeque<_>, VecDeque<_>) = self.in_flight.drain(..).partition(|(_, m)| m.to == node);
        self.in_flight = others;
        for (group, message) in mine {
            self.hosts[index].step(group, message);
        }
    }

    /// Every node ticks, readies and receives, `turns` times.
    fn run(&mut self, turns: usize) {
        for _ in 0..turns {
            self.now_ms += 30;
            for index in 0..3 {
                self.hosts[index].tick(self.now_ms);
                self.ready(index);
            }
            for index in 0..3 {
                self.deliver_to(index);
            }
        }
    }

    /// Sends `command` through node `index` and runs until it is answered.
    fn call(&mut self, index: usize, request_id: u64, command: Command) {
        let sink = self.sinks[index].clone();
        self.hosts[index].submit(0, vec![(request_id, command)], &sink).expect("taken");
        for _ in 0..100 {
            if self.logs[index].lock().contains(&Event::Answer(request_id)) {
                return;
            }
            self.run(1);
        }
        panic!("request {request_id} not answered");
    }
}

fn player(action: Action) -> Command {
    Command::Player { operator: OperatorId(1), player: PlayerId(7), action }
}

fn deposit(tx: &str) -> Command {
    let eur = Currency::new("EUR").expect("valid");
    player(Action::Deposit { tx: TxId::new(tx).expect("valid"), currency: eur, amount: Amount(100) })
}

/// Three nodes with an elected leader, the shard map, an operator and a
/// funded wallet, everything delivered; the leader's index.
fn settled() -> (Cluster, usize) {
    let mut cluster = Cluster::new();
    // An elected leader, the shard map, a funded wallet.
    for _ in 0..200 {
        cluster.run(1);
        if cluster.hosts.iter().all(|h| h.map().version() >= 1 && h.replica(0).leader() != 0) {
            break;
        }
    }
    let leader = cluster.hosts[0].replica(0).leader() as usize - 1;
    let eur = Currency::new("EUR").expect("valid");
    let operator = OperatorConfig {
        operator: OperatorId(1),
        sweepstakes: false,
        currencies: vec![CurrencySpec { currency: eur, scale: 2 }],
        limit_increase_delay_ms: 0,
        redemption_min_minor: 0,
    };
    cluster.call(leader, 1, Command::ConfigureOperator(operator));
    cluster.call(leader, 2, player(Action::CreateWallet));
    cluster.call(leader, 3, deposit("d1"));
    // Quiet: everything delivered, every Ready handled.
    for _ in 0..3 {
        for index in 0..3 {
            cluster.ready(index);
            cluster.deliver_to(index);
        }
    }
    assert!(cluster.in_flight.is_empty(), "{:?}", cluster.in_flight);
    for log in &cluster.logs {
        log.lock().clear();
    }
    (cluster, leader)
}

#[test]
fn a_leader_replicates_while_it_writes_answers_before_its_write_and_syncs_only_what_raft_must() {
    let (mut cluster, leader) = settled();
    let follower = (leader + 1) % 3;

    // The leader proposes: its write of the entry is synced.
    let sink = cluster.sinks[leader].clone();
    cluster.hosts[leader].submit(0, vec![(4, deposit("d2"))], &sink).expect("taken");
    cluster.ready(leader);
    let (events, synced, append) = cluster.synced_write_and_send(leader, MessageType::MsgAppend);
    assert!(synced.is_some(), "the leader syncs its new entry: {events:?}");
    assert!(matches!((append, synced), (Some(a), Some(w)) if a < w), "the leader's append leaves before its write: {events:?}");

    // A follower's write of it is synced too, and it acknowledges after it.
    cluster.deliver_to(follower);
    cluster.ready(follower);
    let (events, synced, ack) = cluster.synced_write_and_send(follower, MessageType::MsgAppendResponse);
    assert!(synced.is_some(), "the follower syncs the new entry: {events:?}");
    assert!(matches!((synced, ack), (Some(w), Some(a)) if w < a), "the follower acknowledges after its write: {events:?}");

    // The leader commits: it answers before writing, and writes unsynced.
    cluster.in_flight.retain(|(_, m)| m.from == follower as u64 + 1);
    cluster.deliver_to(leader);
    cluster.ready(leader);
    let events = std::mem::take(&mut *cluster.logs[leader].lock());
    let answer = events.iter().position(|e| *e == Event::Answer(4));
    let first_write = events.iter().position(|e| matches!(e, Event::Write { .. }));
    assert!(matches!((answer, first_write), (Some(a), Some(w)) if a < w), "the answer before the leader's write: {events:?}");
    assert!(!events.contains(&Event::Write { synced: true }), "a Ready that only commits is not synced: {events:?}");
}

fn answers(cluster: &Cluster, index: usize, request_id: u64) -> usize {
    cluster.logs[index].lock().iter().filter(|e| **e == Event::Answer(request_id)).count()
}

#[test]
fn a_proposal_in_its_leaders_log_is_not_proposed_again_and_a_lost_forward_is() {
    let (mut cluster, leader) = settled();
    let follower = (leader + 1) % 3;
    let (term, before) = (cluster.hosts[leader].replica(0).term(), cluster.hosts[leader].replica(0).last_index());

    // The leader's appends and their acknowledgments are lost for 30 ticks
    // (retry_ticks is 20): heartbeats keep it leading, nothing commits.
    let sink = cluster.sinks[leader].clone();
    cluster.hosts[leader].submit(0, vec![(4, deposit("slow"))], &sink).expect("taken");
    for _ in 0..30 {
        cluster.now_ms += 30;
        for index in 0..3 {
            cluster.hosts[index].tick(cluster.now_ms);
            cluster.ready(index);
        }
        cluster.in_flight.retain(|(_, m)| !matches!(m.get_msg_type(), MessageType::MsgAppend | MessageType::MsgAppendResponse));
        for index in 0..3 {
            cluster.deliver_to(index);
        }
    }
    let replica = cluster.hosts[leader].replica(0);
    assert!(replica.is_leader() && replica.term() == term, "the leader kept its term");
    assert_eq!(replica.last_index() - before, 1, "proposed once, not again while its term lasts");
    assert_eq!(answers(&cluster, leader, 4), 0);
    cluster.run(10);
    assert_eq!(answers(&cluster, leader, 4), 1, "committed once the network heals");

    // A proposal forwarded by a follower is lost on its way to the leader:
    // the follower proposes it again after retry_ticks, and it is answered once.
    let sink = cluster.sinks[follower].clone();
    cluster.hosts[follower].submit(0, vec![(5, deposit("forwarded"))], &sink).expect("taken");
    cluster.ready(follower);
    let forwards = cluster.in_flight.len();
    cluster.in_flight.retain(|(_, m)| m.get_msg_type() != MessageType::MsgPropose);
    assert_eq!(forwards - cluster.in_flight.len(), 1, "the follower forwarded the proposal");
    cluster.run(15);
    assert_eq!(answers(&cluster, follower, 5), 0, "not before retry_ticks");
    cluster.run(15);
    assert_eq!(answers(&cluster, follower, 5), 1, "proposed again and answered once");
    cluster.run(30);
    assert_eq!(answers(&cluster, follower, 5), 1);
}
