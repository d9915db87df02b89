//! The idempotency index: every money movement's transaction id, per
//! player, with a fingerprint of its parameters and its stored result; the
//! end state of every bet; the ids of closed rounds; and redemption ids.
//!
//! Retention (part of the snapshot, so every replica evicts identically):
//! records are kept in insertion order and evicted from the oldest once the
//! shard holds more than `retention_count` of them, or once the oldest is
//! older than `retention_ms`. An open bet is never evicted: when it reaches
//! the front it goes to the back, so the index holds at most
//! `retention_count` records plus the open bets (themselves bounded per
//! wallet). Beyond retention a transaction id is forgotten: a replay of a
//! forgotten deposit would apply again, so operators must not retry older
//! than `retention_ms` (7 days by default), which is what every
//! seamless-wallet integration assumes.
//!
//! Parameters are compared by a 64-bit fingerprint. Two different requests
//! with the same id collide with probability 2^-64; the cost of a collision
//! is a replayed result where a conflict code was due, and no money moves.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use crate::ids::{ExternalId, PlayerId};
use crate::reply::Balance;

/// Default number of records kept per shard beyond open bets.
pub const RETENTION_COUNT_DEFAULT: usize = 2_000_000;
/// Default age after which records are dropped: 7 days.
pub const RETENTION_MS_DEFAULT: u64 = 7 * 24 * 60 * 60 * 1000;
/// Records evicted at most per insert, which bounds the work of one apply.
const EVICTIONS_PER_INSERT_MAX: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum KeyKind {
    Tx = 1,
    Round = 2,
    Redemption = 3,
}

impl KeyKind {
    pub fn from_u8(value: u8) -> Option<KeyKind> {
        [KeyKind::Tx, KeyKind::Round, KeyKind::Redemption].into_iter().find(|k| *k as u8 == value)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IndexKey {
    pub player: PlayerId,
    pub kind: KeyKind,
    pub id: ExternalId,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TxKind {
    Deposit = 1,
    Withdraw = 2,
    Bet = 3,
    Win = 4,
    Rollback = 5,
    BonusGrant = 6,
    SweepsGrant = 7,
    /// A closed round (key kind `Round`).
    RoundClosed = 8,
    /// A sweepstakes redemption request (key kind `Redemption`).
    Redemption = 9,
}

impl TxKind {
    pub fn from_u8(value: u8) -> Option<TxKind> {
        use TxKind::*;
        [Deposit, Withdraw, Bet, Win, Rollback, BonusGrant, SweepsGrant, RoundClosed, Redemption].into_iter().find(|k| *k as u8 == value)
    }
}

/// Where a bet is in its life. Only meaningful for `TxKind::Bet`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum BetState {
    NotABet = 0,
    Open = 1,
    Settled = 2,
    RolledBack = 3,
    /// A rollback arrived first; the bet itself is refused if it comes.
    RolledBackInAdvance = 4,
}

impl BetState {
    pub fn from_u8(value: u8) -> Option<BetState> {
        use BetState::*;
        [NotABet, Open, Settled, RolledBack, RolledBackInAdvance].into_iter().find(|s| *s as u8 == value)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxRecord {
    pub kind: TxKind,
    pub bet_state: BetState,
    /// For rollbacks: whether the bet was known.
    pub bet_found: bool,
    pub fingerprint: u64,
    /// When this record entered (or re-entered) the retention queue.
    pub retained_since_ms: u64,
    /// The result returned to the original request, returned again on replay.
    pub balance: Balance,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxIndex {
    records: FxHashMap<IndexKey, TxRecord>,
    order: VecDeque<IndexKey>,
    retention_count: usize,
    retention_ms: u64,
}

impl TxIndex {
    pub fn new(retention_count: usize, retention_ms: u64) -> TxIndex {
        TxIndex { records: FxHashMap::default(), order: VecDeque::new(), retention_count, retention_ms }
    }

    pub fn get(&self, key: &IndexKey) -> Option<&TxRecord> {
        self.records.get(key)
    }

    pub fn get_mut(&mut self, key: &IndexKey) -> Option<&mut TxRecord> {
        self.records.get_mut(key)
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Records a new id. The caller has checked it is absent.
    pub fn insert(&mut self, key: IndexKey, record: TxRecord, now_ms: u64) {
        let previous = self.records.insert(key, record);
        assert!(previous.is_none(), "transaction id recorded twice: {key:?}");
        self.order.push_back(key);
        self.evict(now_ms);
    }

    fn evict(&mut self, now_ms: u64) {
        for _ in 0..EVICTIONS_PER_INSERT_MAX {
            let Some(front) = self.order.front().copied() else { return };
            let record = self.records.get(&front).copied().expect("every queued key has a record");
            let too_many = self.records.len() > self.retention_count;
            let too_old = now_ms.saturating_sub(record.retained_since_ms) > self.retention_ms;
            if !too_many && !too_old {
                return;
            }
            self.order.pop_front();
            if record.kind == TxKind::Bet && record.bet_state == BetState::Open {
                // Open bets stay until they end; requeue with a fresh age.
                if let Some(kept) = self.records.get_mut(&front) {
                    kept.retained_since_ms = now_ms;
                }
                self.order.push_back(front);
            } else {
                self.records.remove(&front);
            }
        }
    }

    /// Records in retention order: the canonical order for snapshots.
    pub fn iter_in_order(&self) -> impl Iterator<Item = (&IndexKey, &TxRecord)> {
        self.order.iter().map(|key| (key, self.records.get(key).expect("every queued key has a record")))
    }

    pub fn retention(&self) -> (usize, u64) {
        (self.retention_count, self.retention_ms)
    }

    /// Restores a record read from a snapshot, in order.
    pub(crate) fn push_restored(&mut self, key: IndexKey, record: TxRecord) -> bool {
        if self.records.insert(key, record).is_some() {
            return false;
        }
        self.order.push_back(key);
        true
    }

    pub fn open_bet_count(&self) -> usize {
        self.records.values().filter(|r| r.kind == TxKind::Bet && r.bet_state == BetState::Open).count()
    }

    pub fn check_invariants(&self) {
        assert_eq!(self.records.len(), self.order.len(), "index map and queue disagree");
    }
}

/// A stable 64-bit fingerprint (FNV-1a, then the murmur3 finaliser for
/// avalanche). Stable across platforms and compiler versions, unlike
/// `std`'s hashers, because it is stored in snapshots.
#[derive(Debug, Clone, Copy)]
pub struct Fingerprint(u64);

impl Default for Fingerprint {
    fn default() -> Self {
        Fingerprint(0xcbf2_9ce4_8422_2325)
    }
}

impl Fingerprint {
    pub fn bytes(mut self, bytes: &[u8]) -> Fingerprint {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Length-delimit so that adjacent fields cannot run into each other.
        self.0 ^= bytes.len() as u64;
        self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        self
    }

    pub fn u64(self, value: u64) -> Fingerprint {
        self.bytes(&value.to_le_bytes())
    }

    pub fn finish(self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 33;
        h
    }
}
