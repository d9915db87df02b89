//! A raft group's bounds: a leader that cannot commit refuses proposals
//! once its uncommitted entries reach `UNCOMMITTED_BYTES_MAX`, keeps
//! leading, and takes proposals again once its followers catch up; a
//! leader's compaction keeps the entries of a follower up to
//! `LAGGING_ENTRIES_KEPT` entries and `LAGGING_BYTES_KEPT` bytes behind,
//! and one further behind gets a snapshot.

use std::sync::Arc;

use cluster::replica::{Lagging, Machine, NotTaken, Replica, LAGGING_BYTES_KEPT, LAGGING_ENTRIES_KEPT, UNCOMMITTED_BYTES_MAX};
use persistence::{MemStore, Op, Store};
use raft::eraftpb::{Message, MessageType};

/// Counts the entries it applies.
#[derive(Default)]
struct Counter {
    applied: u64,
}

impl Machine for Counter {
    type Output = u64;
    fn apply(&mut self, _index: u64, _proposal: u64, _data: &[u8], _ops: &mut Vec<Op>) -> Result<Option<u64>, String> {
        self.applied += 1;
        Ok(Some(self.applied))
    }
    fn weight(_: &u64) -> u64 {
        1
    }
    fn snapshot(&self) -> Vec<u8> {
        self.applied.to_le_bytes().to_vec()
    }
    fn restore(&mut self, _index: u64, data: &[u8]) -> Result<(), String> {
        self.applied = u64::from_le_bytes(data.try_into().map_err(|_| "not a counter")?);
        Ok(())
    }
}

struct Group {
    replicas: Vec<Replica<Counter>>,
    in_flight: Vec<Message>,
    /// A replica (1-based id) cut off from the others.
    cut: Option<u64>,
    /// Snapshots delivered.
    snapshots: usize,
}

impl Group {
    fn new() -> Group {
        let replicas = (1..=3)
            .map(|id| {
                let store: Arc<dyn Store> = Arc::new(MemStore::new());
                Replica::open_machine(id, &[1, 2, 3], 0, Counter::default(), store).expect("opens")
            })
            .collect();
        Group { replicas, in_flight: Vec::new(), cut: None, snapshots: 0 }
    }

    /// Every replica handles its Ready; what they send is delivered, but
    /// for appends and their acknowledgments when `lose_appends`.
    fn settle(&mut self, lose_appends: bool) {
        for _ in 0..3 {
            for replica in &mut self.replicas {
                replica.ready(&mut self.in_flight).expect("ready");
            }
            for message in std::mem::take(&mut self.in_flight) {
                let append = matches!(message.get_msg_type(), MessageType::MsgAppend | MessageType::MsgAppendResponse);
                let cut = self.cut.is_some_and(|id| message.to == id || message.from == id);
                if cut && message.get_msg_type() == MessageType::MsgSnapshot {
                    self.replicas[message.from as usize - 1].report_snapshot(message.to, false);
                }
                if !(cut || lose_appends && append) {
                    self.snapshots += usize::from(message.get_msg_type() == MessageType::MsgSnapshot);
                    let from = message.from;
                    let (to, snapshot) = (message.to, message.get_msg_type() == MessageType::MsgSnapshot);
                    self.replicas[to as usize - 1].step(message);
                    if snapshot {
                        self.replicas[from as usize - 1].report_snapshot(to, true);
                    }
                }
            }
        }
    }

    fn turn(&mut self, lose_appends: bool) {
        for replica in &mut self.replicas {
            replica.tick();
        }
        self.settle(lose_appends);
    }

    fn leader(&self) -> usize {
        self.replicas.iter().position(|r| r.is_leader()).expect("a leader")
    }

    fn elect(&mut self) -> usize {
        for _ in 0..100 {
            self.turn(false);
            if self.replicas.iter().any(|r| r.is_leader()) && self.replicas.iter().all(|r| r.leader() != 0) {
                break;
            }
        }
        self.leader()
    }

    /// Cuts a follower off, commits `entries` entries of `size` bytes
    /// without it, snapshots the leader keeping what `lagging` allows,
    /// heals, and lets the follower catch up. Snapshots sent.
    fn lag_and_catch_up(&mut self, entries: u64, size: usize, lagging: Lagging) -> usize {
        let leader = self.elect();
        let follower = (leader + 1) % 3;
        self.cut = Some(follower as u64 + 1);
        let mut proposed = 0;
        while proposed < entries {
            for _ in 0..100.min(entries - proposed) {
                proposed += 1;
                self.replicas[leader].propose_data(proposed, vec![1; size]).expect("taken");
            }
            self.settle(false);
        }
        self.turn(false);
        let applied = self.replicas[leader].machine().applied;
        assert_eq!(applied, entries, "committed without the follower");
        assert_eq!(self.replicas[follower].machine().applied, 0);
        self.replicas[leader].compact(lagging).expect("compacts");
        let before = self.snapshots;
        self.cut = None;
        for _ in 0..40 {
            self.turn(false);
        }
        assert_eq!(self.replicas[follower].machine().applied, entries, "caught up");
        assert_eq!(self.replicas[follower].commit(), self.replicas[leader].commit());
        self.snapshots - before
    }
}

#[test]
fn a_leader_that_cannot_commit_refuses_proposals_past_its_uncommitted_bound_and_takes_them_again_after() {
    let mut group = Group::new();
    let leader = group.elect();
    let term = group.replicas[leader].term();
    let blob = 1 << 20;
    let mut taken = 0u64;
    let refused = loop {
        match group.replicas[leader].propose_data(taken + 1, vec![7; blob]) {
            Ok(()) => taken += 1,
            Err(refusal) => break refusal,
        }
        assert!(taken <= 2 * UNCOMMITTED_BYTES_MAX / blob as u64, "no bound on uncommitted entries");
        group.turn(true);
    };
    assert!(matches!(refused, NotTaken::Dropped), "{refused:?}");
    assert_eq!(taken, UNCOMMITTED_BYTES_MAX / blob as u64, "refused exactly past the bound");
    let replica = &group.replicas[leader];
    assert!(replica.is_leader() && replica.term() == term, "still leading through it");
    assert!(replica.commit() < replica.last_index(), "nothing committed while appends are lost");

    // The followers catch up: everything taken commits on every replica,
    // and the leader takes proposals again.
    for _ in 0..20 {
        group.turn(false);
    }
    assert!(group.replicas.iter().all(|r| r.machine().applied == taken), "every replica applied all {taken}");
    group.replicas[leader].propose_data(taken + 1, vec![7; blob]).expect("taken again");
    for _ in 0..5 {
        group.turn(false);
    }
    assert!(group.replicas.iter().all(|r| r.machine().applied == taken + 1));
}

#[test]
fn a_leaders_compaction_keeps_what_a_lagging_follower_needs_and_no_more() {
    let nodes = Lagging::default();
    assert_eq!(nodes, Lagging { entries: LAGGING_ENTRIES_KEPT, bytes: LAGGING_BYTES_KEPT });
    // 500 entries behind: it catches up by entries, no snapshot.
    assert_eq!(Group::new().lag_and_catch_up(500, 16, nodes), 0, "entries, not a snapshot");
    // Further behind than the leader keeps: a snapshot.
    assert_eq!(Group::new().lag_and_catch_up(LAGGING_ENTRIES_KEPT + 200, 16, nodes), 1, "a snapshot");
    // Few entries, but more bytes than kept (500 of 1 KiB against 256 KiB): a snapshot.
    let small = Lagging { entries: LAGGING_ENTRIES_KEPT, bytes: 256 << 10 };
    assert_eq!(Group::new().lag_and_catch_up(500, 1_024, small), 1, "a snapshot, past the bytes kept");
    assert_eq!(Group::new().lag_and_catch_up(200, 1_024, small), 0, "entries, within the bytes kept");
}
