//! The idempotency index: every money movement's transaction id, per
//! player, with a fingerprint of its parameters and its stored result; the
//! end state of every bet; the ids of closed rounds; redemption ids and
//! their outcome; and how each bonus ended.
//!
//! Retention (part of the snapshot, so every replica evicts identically):
//! records are kept in insertion order and evicted from the oldest once the
//! shard holds more than `retention_count` of them, or once the oldest is
//! older than `retention_ms`. An open bet is never evicted: when it reaches
//! the front it goes to the back. The retention count bounds the records
//! other than open bets (themselves bounded per wallet), so a shard full of
//! open bets evicts and requeues nothing; mixed with others, eviction steps
//! over a few open bets per insert and the others settle a little above the
//! count (by about open bets / (`EVICTIONS_PER_INSERT_MAX` - 1)). Beyond retention a transaction id is forgotten: a replay of a
//! forgotten deposit would apply again, so operators must not retry older
//! than `retention_ms` (7 days by default), which is what every
//! seamless-wallet integration assumes.
//!
//! Parameters are compared by a 64-bit fingerprint. Two different requests
//! with the same id collide with probability 2^-64; the cost of a collision
//! is a replayed result where a conflict code was due, and no money moves.

use std::hash::{Hash, Hasher};

use rustc_hash::FxHasher;

use crate::blocks::Blocks;
use crate::ids::{ExternalId, GameId, OperatorId, PlayerId, TxId};
use crate::money::{Money, Pockets};
use crate::reply::Balance;
use crate::table::{HandleTable, Probe};

/// The largest retention count: index slots are addressed by 32-bit offsets.
pub const RETENTION_COUNT_MAX: usize = 1 << 30;
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
    /// The end of a bonus grant (converted or forfeited).
    Bonus = 4,
    /// A bet's alias (its seamless-wallet bet reference).
    Alias = 5,
    /// A transaction id claimed across players (`Command::Claim`); the key's
    /// player field holds the operator.
    Claim = 6,
}

impl KeyKind {
    pub fn from_u8(value: u8) -> Option<KeyKind> {
        [KeyKind::Tx, KeyKind::Round, KeyKind::Redemption, KeyKind::Bonus, KeyKind::Alias, KeyKind::Claim]
            .into_iter()
            .find(|k| *k as u8 == value)
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
    /// A sweepstakes redemption request (key kind `Redemption`), pending.
    Redemption = 9,
    /// A bonus converted to cash (key kind `Bonus`).
    BonusConverted = 10,
    /// A bonus forfeited to the house (key kind `Bonus`).
    BonusForfeited = 11,
    /// A redemption that was paid out.
    RedemptionPaid = 12,
    /// A redemption that was refused.
    RedemptionRejected = 13,
    /// A round of a built-in game (settled in the same apply).
    Play = 14,
    /// A promotional award paid by the house (a `Payout` that found no bet).
    Award = 15,
    /// A bet's alias (key kind `Alias`); open while its bet is.
    Alias = 16,
    /// A transaction id claimed for a player (key kind `Claim`).
    Claim = 17,
    /// A round whose bets were all rolled back (key kind `Round`).
    RoundCancelled = 18,
}

impl TxKind {
    pub fn from_u8(value: u8) -> Option<TxKind> {
        use TxKind::*;
        [
            Deposit,
            Withdraw,
            Bet,
            Win,
            Rollback,
            BonusGrant,
            SweepsGrant,
            RoundClosed,
            Redemption,
            BonusConverted,
            BonusForfeited,
            RedemptionPaid,
            RedemptionRejected,
            Play,
            Award,
            Alias,
            Claim,
            RoundCancelled,
        ]
        .into_iter()
        .find(|k| *k as u8 == value)
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
    /// When it was made (kept when an open bet is requeued).
    pub created_ms: u64,
    pub detail: Detail,
}

/// What a record holds besides its kind, by key kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    /// A money movement (and a rollback recorded in advance): the balance it
    /// left, returned again on replay, and what it moved per pocket.
    Movement { balance: Balance, moved: Pockets },
    /// A closed round: its game and when its first bet was placed.
    Round { game: GameId, started_ms: u64 },
    /// An alias: the bet it names.
    Alias { bet: TxId },
    /// A claim: the player who holds the id.
    Claim { player: PlayerId },
}

impl TxRecord {
    /// The stored balance of a movement (replies to replays).
    pub fn balance(&self) -> Option<Balance> {
        match self.detail {
            Detail::Movement { balance, .. } => Some(balance),
            Detail::Round { .. } | Detail::Alias { .. } | Detail::Claim { .. } => None,
        }
    }
}

/// One record in retention order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    key: IndexKey,
    record: TxRecord,
}

/// Records live in a FIFO slab in retention order (slot `i` has sequence
/// number `first_sequence + i`); a hash table of 8-byte slots
/// ([`HandleTable`]) maps each key's hash tag to its sequence number,
/// truncated to 32 bits (the live range is far shorter than 2^32, so
/// `stored - first` wrapping is the slab offset). Lookups of new ids (the
/// common case) read one line of the table and no record; eviction walks
/// the slab front sequentially. A batch prefetches the table lines of its
/// later commands' keys ([`TxIndex::prefetch`]) while it applies earlier ones.
#[derive(Debug, Clone)]
pub struct TxIndex {
    table: HandleTable,
    slab: Blocks<Slot>,
    first_sequence: u64,
    retention_count: usize,
    retention_ms: u64,
    /// Records of open bets and their aliases in the slab: the retention
    /// count bounds the others.
    open_bets: usize,
}

/// An open bet, or the alias of one: kept until the bet ends.
fn is_open_bet(record: &TxRecord) -> bool {
    matches!(record.kind, TxKind::Bet | TxKind::Alias) && record.bet_state == BetState::Open
}

/// Claims are keyed by their operator in the player field (key kind `Claim`).
fn claim_key(operator: OperatorId, id: ExternalId) -> IndexKey {
    IndexKey { player: PlayerId(u64::from(operator.0)), kind: KeyKind::Claim, id }
}

fn hash_key(key: &IndexKey) -> u64 {
    let mut hasher = FxHasher::default();
    key.hash(&mut hasher);
    hasher.finish()
}

impl TxIndex {
    /// Tables start with room for this many records at most and double up
    /// to the retention count as they fill (a one-time rehash per
    /// doubling), so that idle and test shards stay small.
    const PREALLOCATE_MAX: usize = 1 << 16;

    pub fn new(retention_count: usize, retention_ms: u64) -> TxIndex {
        // Table entries are 32-bit sequence offsets: the live range (the
        // retention count plus open bets) must stay far below 2^32.
        assert!(retention_count <= RETENTION_COUNT_MAX, "retention count {retention_count} too large for 32-bit index offsets");
        let capacity = retention_count.saturating_add(EVICTIONS_PER_INSERT_MAX).min(Self::PREALLOCATE_MAX);
        TxIndex {
            table: HandleTable::with_capacity(capacity),
            slab: Blocks::default(),
            first_sequence: 0,
            retention_count,
            retention_ms,
            open_bets: 0,
        }
    }

    fn offset(&self, stored: u32) -> usize {
        stored.wrapping_sub(self.first_sequence as u32) as usize
    }

    fn position(&self, key: &IndexKey) -> Option<usize> {
        let first = self.first_sequence as u32;
        let slab = &self.slab;
        self.table.find(hash_key(key), |stored| slab[stored.wrapping_sub(first) as usize].key == *key).map(|stored| self.offset(stored))
    }

    /// Asks the CPU for the table line where `key` is looked for: a hint
    /// for a lookup soon to come, which changes nothing.
    pub fn prefetch(&self, key: &IndexKey) {
        self.table.prefetch(hash_key(key));
    }

    /// Prefetches the whole slab slot `ahead` places from the front of the
    /// retention queue, for the [`TxIndex::prefetch_eviction`] that reads
    /// its key later and the eviction that copies it out. (Written
    /// millions of inserts ago, the slots are out of every cache, and the
    /// CPU's own prefetcher did not have them in time: the copy and the
    /// key's read were 8% of the engine bench's CPU.)
    pub fn prefetch_front_slot(&self, ahead: usize) {
        self.slab.prefetch(ahead);
    }

    /// Prefetches the table lines of the record `ahead` places from the
    /// front of the retention queue, which an insert soon evicts: its home
    /// line and the next, which the removal's shift often reads.
    pub fn prefetch_eviction(&self, ahead: usize) {
        if let Some(slot) = self.slab.get(ahead) {
            self.table.prefetch_for_removal(hash_key(&slot.key));
        }
    }

    pub fn get(&self, key: &IndexKey) -> Option<&TxRecord> {
        self.position(key).map(|at| &self.slab[at].record)
    }

    pub fn get_mut(&mut self, key: &IndexKey) -> Option<&mut TxRecord> {
        self.position(key).map(|at| &mut self.slab[at].record)
    }

    pub fn len(&self) -> usize {
        self.slab.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    /// Appends a record; false (and nothing changed) if the key is present.
    /// One probe finds or inserts.
    fn push(&mut self, key: IndexKey, record: TxRecord) -> bool {
        let sequence = (self.first_sequence + self.slab.len() as u64) as u32;
        let first = self.first_sequence as u32;
        let slab = &self.slab;
        let hash = hash_key(&key);
        match self.table.probe(hash, |stored| slab[stored.wrapping_sub(first) as usize].key == key) {
            Probe::Found(_) => false,
            Probe::Vacant(vacant) => {
                self.table.insert_at(vacant, hash, sequence);
                self.open_bets += usize::from(is_open_bet(&record));
                self.slab.push_back(Slot { key, record });
                true
            }
        }
    }

    /// Removes the front slot from the table and the slab.
    fn pop_front(&mut self) -> Slot {
        let slot = self.slab.pop_front().expect("pop_front on a non-empty index");
        let sequence = self.first_sequence as u32;
        match self.table.probe(hash_key(&slot.key), |stored| stored == sequence) {
            Probe::Found(at) => self.table.remove_at(at),
            Probe::Vacant(_) => panic!("index slot {sequence} missing from its table"),
        }
        self.first_sequence += 1;
        self.open_bets -= usize::from(is_open_bet(&slot.record));
        slot
    }

    /// Ends the open bet recorded under `key` (settled or rolled back).
    /// False if there is no open bet under it.
    pub fn end_bet(&mut self, key: &IndexKey, state: BetState) -> bool {
        debug_assert!(state != BetState::Open, "a bet ends in another state");
        let Some(at) = self.position(key) else { return false };
        let record = &mut self.slab[at].record;
        if !is_open_bet(record) {
            return false;
        }
        record.bet_state = state;
        self.open_bets -= 1;
        true
    }

    /// Who holds transaction id `id` of `operator` across players
    /// (`Command::Claim`): None while nobody does.
    pub fn claim_holder(&self, operator: OperatorId, id: ExternalId) -> Option<PlayerId> {
        match self.get(&claim_key(operator, id)).map(|r| r.detail) {
            Some(Detail::Claim { player }) => Some(player),
            _ => None,
        }
    }

    /// Claims `id` of `operator` for `player`. The caller has checked
    /// that nobody holds it.
    pub fn insert_claim(&mut self, operator: OperatorId, id: ExternalId, player: PlayerId, now_ms: u64) {
        let record = TxRecord {
            kind: TxKind::Claim,
            bet_state: BetState::NotABet,
            bet_found: false,
            fingerprint: 0,
            retained_since_ms: now_ms,
            created_ms: now_ms,
            detail: Detail::Claim { player },
        };
        self.insert(claim_key(operator, id), record, now_ms);
    }

    /// Records a new id. The caller has checked it is absent.
    pub fn insert(&mut self, key: IndexKey, record: TxRecord, now_ms: u64) {
        assert!(self.push(key, record), "transaction id recorded twice: {key:?}");
        self.evict(now_ms);
    }

    fn evict(&mut self, now_ms: u64) {
        for _ in 0..EVICTIONS_PER_INSERT_MAX {
            let Some(front) = self.slab.front() else {
                return;
            };
            // Open bets are kept beyond the count: only the others count.
            let too_many = self.slab.len() - self.open_bets > self.retention_count;
            let too_old = now_ms.saturating_sub(front.record.retained_since_ms) > self.retention_ms;
            if !too_many && !too_old {
                return;
            }
            let mut slot = self.pop_front();
            if is_open_bet(&slot.record) {
                // Open bets stay until they end; requeue with a fresh age.
                slot.record.retained_since_ms = now_ms;
                assert!(self.push(slot.key, slot.record), "a requeued key was just removed");
            }
        }
    }

    /// Records in retention order: the canonical order for snapshots.
    pub fn iter_in_order(&self) -> impl Iterator<Item = (&IndexKey, &TxRecord)> {
        self.slab.iter().map(|slot| (&slot.key, &slot.record))
    }

    /// Restores a record read from a snapshot, in order. False if the key
    /// is already present.
    pub(crate) fn push_restored(&mut self, key: IndexKey, record: TxRecord) -> bool {
        self.push(key, record)
    }

    /// Reserves room for the full retention count (plus slack for open
    /// bets) and touches every page of the slab and of the table, so that in
    /// service neither grows and no apply stops to have the kernel zero fresh
    /// memory.
    /// TigerBeetle's static allocation, for the structure that grows with
    /// traffic. (Beyond it, open bets grow the slab a block at a time, never
    /// by copying it.)
    pub fn reserve_full(&mut self) {
        let target = self.retention_count + self.retention_count / 8 + EVICTIONS_PER_INSERT_MAX;
        let filler = Slot {
            key: IndexKey { player: PlayerId(0), kind: KeyKind::Tx, id: ExternalId::new("x").expect("a valid id") },
            record: TxRecord {
                kind: TxKind::Deposit,
                bet_state: BetState::NotABet,
                bet_found: false,
                fingerprint: 0,
                retained_since_ms: 0,
                created_ms: 0,
                detail: Detail::Movement {
                    balance: Balance {
                        currency: crate::currency::Currency::GOLD_COINS,
                        cash: Money::ZERO,
                        bonus: Money::ZERO,
                        promo: Money::ZERO,
                    },
                    moved: Pockets::default(),
                },
            },
        };
        self.slab.reserve_touched(target, filler);
        self.table.reserve(target.saturating_sub(self.table.len()));
        self.table.touch_pages();
    }

    /// Bytes allocated for the slab and the table (from their capacities).
    pub fn allocated_bytes(&self) -> usize {
        self.slab.allocated_bytes() + self.table.allocated_bytes()
    }

    /// Open bets (not counting their aliases).
    pub fn open_bet_count(&self) -> usize {
        let counted = self.slab.iter().filter(|slot| is_open_bet(&slot.record)).count();
        assert_eq!(counted, self.open_bets, "the index's count of open bets drifted");
        self.slab.iter().filter(|slot| slot.record.kind == TxKind::Bet && slot.record.bet_state == BetState::Open).count()
    }

    pub fn check_invariants(&self) {
        assert_eq!(self.table.len(), self.slab.len(), "index table and slab disagree");
        for (at, slot) in self.slab.iter().enumerate() {
            assert_eq!(self.position(&slot.key), Some(at), "index slot {at} not found by its key");
        }
    }
}

/// A stable 64-bit fingerprint (a multiply-rotate mix over 64-bit words,
/// then the murmur3 finaliser for avalanche). Stable across platforms and compiler versions, unlike
/// `std`'s hashers, because it is stored in snapshots.
#[derive(Debug, Clone, Copy)]
pub struct Fingerprint(u64);

impl Default for Fingerprint {
    fn default() -> Self {
        Fingerprint(0xcbf2_9ce4_8422_2325)
    }
}

impl Fingerprint {
    const MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;

    fn word(mut self, word: u64) -> Fingerprint {
        self.0 = (self.0 ^ word).wrapping_mul(Self::MULTIPLIER).rotate_left(29);
        self
    }

    /// Mixes `bytes` eight at a time (little-endian, the last word zero
    /// padded), then their length, so adjacent fields cannot run together.
    pub fn bytes(mut self, bytes: &[u8]) -> Fingerprint {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self = self.word(u64::from_le_bytes(chunk.try_into().expect("chunks of eight")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self = self.word(u64::from_le_bytes(last));
        }
        self.word(bytes.len() as u64)
    }

    pub fn u64(self, value: u64) -> Fingerprint {
        self.word(value)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Fingerprints are stored in snapshots: they must never change.
    #[test]
    fn fingerprints_are_stable() {
        assert_eq!(Fingerprint::default().bytes(b"round-1").u64(500).finish(), Fingerprint::default().bytes(b"round-1").u64(500).finish());
        assert_ne!(Fingerprint::default().bytes(b"ab").bytes(b"c").finish(), Fingerprint::default().bytes(b"a").bytes(b"bc").finish());
        assert_eq!(Fingerprint::default().bytes(b"round-1").u64(500).finish(), FINGERPRINT_OF_ROUND_1_500);
    }

    const FINGERPRINT_OF_ROUND_1_500: u64 = 1_882_461_009_596_253_311;

    fn key(n: u64) -> IndexKey {
        IndexKey { player: PlayerId(n % 7), kind: KeyKind::Tx, id: ExternalId::new(&format!("tx-{n}")).expect("a valid id") }
    }

    fn record(kind: TxKind, bet_state: BetState) -> TxRecord {
        TxRecord {
            kind,
            bet_state,
            bet_found: false,
            fingerprint: 0,
            retained_since_ms: 0,
            created_ms: 0,
            detail: Detail::Movement {
                balance: Balance {
                    currency: crate::currency::Currency::GOLD_COINS,
                    cash: Money::ZERO,
                    bonus: Money::ZERO,
                    promo: Money::ZERO,
                },
                moved: Pockets::default(),
            },
        }
    }

    /// Open bets are kept beyond the retention count without being moved
    /// about: a shard full of open bets evicts nothing and requeues nothing.
    #[test]
    fn the_retention_count_bounds_the_records_other_than_open_bets() {
        let mut index = TxIndex::new(3, u64::MAX);
        for n in 0..100 {
            index.insert(key(n), record(TxKind::Bet, BetState::Open), 0);
        }
        assert_eq!((index.len(), index.open_bet_count()), (100, 100));
        let order: Vec<IndexKey> = index.iter_in_order().map(|(k, _)| *k).collect();
        assert_eq!(order, (0..100).map(key).collect::<Vec<_>>(), "nothing was requeued");
        for n in 100..110 {
            index.insert(key(n), record(TxKind::Deposit, BetState::NotABet), 0);
        }
        assert!(index.end_bet(&key(5), BetState::Settled));
        assert!(!index.end_bet(&key(5), BetState::Settled), "a bet ends once");
        assert!(!index.end_bet(&key(105), BetState::Settled), "a deposit is not a bet");
        assert_eq!(index.open_bet_count(), 99);
        for n in 110..400 {
            index.insert(key(n), record(TxKind::Deposit, BetState::NotABet), 0);
        }
        assert_eq!(index.open_bet_count(), 99, "open bets are never evicted");
        // With EVICTIONS_PER_INSERT_MAX pops per insert, some spent on open
        // bets, the others settle near open / (pops - 1) above the count.
        let others = index.len() - index.open_bet_count();
        assert!(others <= 3 + 99 / (EVICTIONS_PER_INSERT_MAX - 1) + 1, "{others} records besides open bets");
        assert!(index.get(&key(5)).is_none(), "an ended bet is evicted like any record");
    }
}
