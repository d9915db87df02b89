//! A raft group's bounds: a leader that cannot commit refuses proposals
//! once its uncommitted entries reach `UNCOMMITTED_BYTES_MAX`, keeps
//! leading, and takes proposals again once its followers catch up.

use std::sync::Arc;

use cluster::replica::{Machine, NotTaken, Replica, UNCOMMITTED_BYTES_MAX};
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
}

impl Group {
    fn new() -> Group {
        let replicas = (1..=3)
            .map(|id| {
                let store: Arc<dyn Store> = Arc::new(MemStore::new());
                Replica::open_machine(id, &[1, 2, 3], 0, Counter::default(), store).expect("opens")
            })
            .collect();
        Group { replicas, in_flight: Vec::new() }
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
                if !(lose_appends && append) {
                    self.replicas[message.to as usize - 1].step(message);
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
}

#[test]
fn a_leader_that_cannot_commit_refuses_proposals_past_its_uncommitted_bound_and_takes_them_again_after() {
    let mut group = Group::new();
    for _ in 0..100 {
        group.turn(false);
        if group.replicas.iter().any(|r| r.is_leader()) && group.replicas.iter().all(|r| r.leader() != 0) {
            break;
        }
    }
    let leader = group.leader();
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
