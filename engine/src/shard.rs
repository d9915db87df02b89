//! A shard: the wallets and sessions of the players whose slots it owns,
//! the idempotency index, and the books. The replicated state machine:
//! `apply_batch` is deterministic, and `snapshot` returns canonical bytes.
//!
//! Wallets are virtual actors. A wallet is activated (decoded into a
//! `Wallet`) on its first message and passivated (encoded to its canonical
//! bytes) when the number of resident wallets passes
//! `Residency::resident_wallets_max`: resident wallets wait in a FIFO in
//! activation order, and the front one is passivated unless it was touched
//! since it was queued, in which case it goes to the back (CLOCK's second
//! chance). Each batch passivates a bounded number, so no apply pays for a
//! sweep of the whole shard. Residency is
//! a memory choice of each replica, not replicated state: the snapshot
//! encodes a resident wallet and copies a passive one, which gives the same
//! bytes either way.

use std::collections::{BTreeMap, VecDeque};

use rustc_hash::FxHashMap;

use crate::apply::{Apply, SessionIds};
use crate::codec::{self, crc32c, DecodeError, Reader, Writer};
use crate::command::{Action, Command, Context, OperatorConfig};
use crate::currency::{Currency, CurrencySpec, CURRENCY_SCALE_MAX};
use crate::event::Event;
use crate::ids::{GameId, OperatorId, PlayerId, TxId};
use crate::index::{
    BetState, Detail, IndexKey, KeyKind, TxIndex, TxKind, TxRecord, RETENTION_COUNT_DEFAULT, RETENTION_COUNT_MAX, RETENTION_MS_DEFAULT,
};
use crate::ledger::{Ledger, Totals};
use crate::money::Money;
use crate::reply::{Balance, Outcome, Rejection, Reply};
use crate::residents::{Resident, Residents, Stage};
use crate::rng::ShardRng;
use crate::wallet::{PocketRules, Wallet, CURRENCIES_PER_WALLET_MAX, OPEN_BETS_PER_WALLET_MAX};

/// Currencies one operator may configure.
pub const OPERATOR_CURRENCIES_MAX: usize = 16;
/// Operators one shard may know.
pub const OPERATORS_MAX: usize = 1_024;
/// Commands one batch may carry (one raft entry's worth).
pub const BATCH_COMMANDS_MAX: usize = 8_192;

const SNAPSHOT_MAGIC: &[u8; 8] = b"CASINOSS";
/// 2: external ids up to 48 bytes, session locales, bet aliases, record details.
const SNAPSHOT_VERSION: u16 = 2;

/// Replicated settings: every replica of a shard must hold the same ones,
/// so they travel in the snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardConfig {
    pub shard_id: u32,
    /// Wallets the shard accepts before refusing new ones with `ShardFull`.
    pub wallets_max: u64,
    pub tx_retention_count: usize,
    pub tx_retention_ms: u64,
}

impl ShardConfig {
    pub fn new(shard_id: u32) -> ShardConfig {
        ShardConfig { shard_id, wallets_max: 4_000_000, tx_retention_count: RETENTION_COUNT_DEFAULT, tx_retention_ms: RETENTION_MS_DEFAULT }
    }
}

/// Local memory settings, free to differ between replicas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Residency {
    /// Resident (decoded) wallets kept before passivation starts.
    pub resident_wallets_max: usize,
}

impl Default for Residency {
    fn default() -> Self {
        Residency { resident_wallets_max: 1 << 20 }
    }
}

/// How many commands ahead of the one applying a batch prefetches the
/// table lines of a command's wallet and index keys (the first stage of
/// `Shard::prefetch`), then its wallet's slab entry, then its wallet's
/// heap. Each stage waits a few commands (a few hundred nanoseconds each)
/// for memory to answer the one before.
const PREFETCH_AHEAD: usize = 8;
const PREFETCH_ENTRY_AHEAD: usize = 4;
const PREFETCH_HEAP_AHEAD: usize = 2;
/// How many records from the front of the index's retention queue the
/// table lines of coming evictions are prefetched (about 1.5 records are
/// inserted per command, each evicting one in steady state): far ahead
/// first, then again just before ([`EVICTIONS_NEAR`]), each time the home
/// line and the one after. With the early prefetch alone, the eviction's
/// probe still waited on memory for 9% of the engine bench's CPU (on this
/// VM's shared cores a line fetched eight commands early seems often gone
/// again); the second, nearly free when the line is still there, cut that
/// to 5% and took the bench from 1.40-1.76M to 1.60-2.06M commands/s
/// (alternated builds, better in 6 of 7 pairs). Fetching the line after
/// the home line too (for the removal's shift) then took it from
/// 1.81-1.92M to 1.95-2.13M (4 of 4 pairs); the same for lookups' lines
/// did not help.
const EVICTIONS_AHEAD: usize = 12;
/// The second, near prefetch of the same lines (see [`EVICTIONS_AHEAD`]).
const EVICTIONS_NEAR: usize = 2;
/// And the whole slab slots this far from the front, before the first
/// table prefetch reads their keys: 1.88-2.28M -> 2.16-2.35M commands/s
/// (alternated builds, better in 6 of 7 pairs over two equivalent builds).
const EVICTIONS_SLAB_AHEAD: usize = 32;

/// Passivations (or second chances) one batch may perform, beyond two per
/// command in the batch: enough to keep up with activations, small enough
/// that no apply pays for a sweep.
const PASSIVATIONS_PER_BATCH_BASE: usize = 16;

#[derive(Debug)]
pub struct Shard {
    config: ShardConfig,
    residency: Residency,
    operators: BTreeMap<OperatorId, OperatorConfig>,
    resident: Residents,
    passive: FxHashMap<PlayerId, Box<[u8]>>,
    /// Each resident wallet once, with the clock when it was queued.
    residency_queue: VecDeque<(PlayerId, u64)>,
    /// Counts player commands; local, not replicated.
    residency_clock: u64,
    index: TxIndex,
    ledger: Ledger,
    applied_index: u64,
    now_ms: u64,
    session_ids: SessionIds,
    rng: ShardRng,
    /// A planted bug for testing checkers (see [`Shard::plant_double_apply`]):
    /// never set by the node, never replicated or snapshotted.
    planted_double_apply: bool,
}

fn validate_operator(config: &OperatorConfig) -> Result<(), Rejection> {
    if config.currencies.is_empty() || config.currencies.len() > OPERATOR_CURRENCIES_MAX {
        return Err(Rejection::InvalidArgument);
    }
    for (at, spec) in config.currencies.iter().enumerate() {
        if spec.scale > CURRENCY_SCALE_MAX {
            return Err(Rejection::InvalidCurrency);
        }
        if spec.currency.is_sweepstakes() != config.sweepstakes {
            return Err(Rejection::CurrencyNotAllowed);
        }
        if config.currencies[..at].iter().any(|other| other.currency == spec.currency) {
            return Err(Rejection::InvalidArgument);
        }
    }
    Ok(())
}

impl Shard {
    pub fn new(config: ShardConfig) -> Shard {
        Shard::with_residency(config, Residency::default())
    }

    pub fn with_residency(config: ShardConfig, residency: Residency) -> Shard {
        Shard {
            config,
            residency,
            operators: BTreeMap::new(),
            resident: Residents::default(),
            passive: FxHashMap::default(),
            residency_queue: VecDeque::new(),
            residency_clock: 0,
            index: TxIndex::new(config.tx_retention_count, config.tx_retention_ms),
            ledger: Ledger::default(),
            applied_index: 0,
            now_ms: 0,
            session_ids: SessionIds { shard_id: config.shard_id, next_sequence: 0 },
            rng: ShardRng::default(),
            planted_double_apply: false,
        }
    }

    /// Plants a bug, for testing the checkers that must catch it (the
    /// simulator's books): the next retried `Play` is applied again (money
    /// moves twice, its events appear twice) instead of answered from the
    /// index. Test-only: the node never calls it.
    pub fn plant_double_apply(&mut self) {
        self.planted_double_apply = true;
    }

    pub fn config(&self) -> ShardConfig {
        self.config
    }

    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// The shard's clock: the latest leader timestamp seen, never decreasing.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Whether the RNG has been seeded (games refuse to play until it is).
    pub fn rng_seeded(&self) -> bool {
        self.rng.is_seeded()
    }

    pub fn wallet_count(&self) -> usize {
        self.resident.len() + self.passive.len()
    }

    pub fn resident_wallet_count(&self) -> usize {
        self.resident.len()
    }

    pub fn index_len(&self) -> usize {
        self.index.len()
    }

    /// Bytes the idempotency index has allocated.
    pub fn index_allocated_bytes(&self) -> usize {
        self.index.allocated_bytes()
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Applies a batch (one raft entry) in order: one outcome per command,
    /// events appended in effect order. `ctx.index` must exceed the last
    /// applied index; the clock is `max(previous, ctx.timestamp_ms)`, so a
    /// new leader with a slower clock cannot move time backwards.
    pub fn apply_batch(&mut self, ctx: Context, commands: &[Command], outcomes: &mut Vec<Outcome>, events: &mut Vec<Event>) {
        assert!(ctx.index > self.applied_index, "applied index must increase: {} after {}", ctx.index, self.applied_index);
        assert!(commands.len() <= BATCH_COMMANDS_MAX, "batch of {} commands exceeds {BATCH_COMMANDS_MAX}", commands.len());
        self.now_ms = self.now_ms.max(ctx.timestamp_ms);
        // A software pipeline: while one command applies, memory brings in
        // what later ones will read, each stage using what the one before
        // brought (see `PREFETCH_AHEAD`).
        let ahead = |step: usize, distance: usize| step.checked_sub(PREFETCH_AHEAD - distance).and_then(|at| commands.get(at));
        for step in 0..commands.len() + PREFETCH_AHEAD {
            if let Some(later) = ahead(step, PREFETCH_AHEAD) {
                self.prefetch(later, Stage::Table);
            }
            if let Some(later) = ahead(step, PREFETCH_ENTRY_AHEAD) {
                self.prefetch(later, Stage::Entry);
            }
            if let Some(later) = ahead(step, PREFETCH_HEAP_AHEAD) {
                self.prefetch(later, Stage::Heap);
            }
            if let Some(command) = ahead(step, 0) {
                self.index.prefetch_front_slot(EVICTIONS_SLAB_AHEAD);
                self.index.prefetch_front_slot(EVICTIONS_SLAB_AHEAD + 1);
                self.index.prefetch_eviction(EVICTIONS_AHEAD);
                self.index.prefetch_eviction(EVICTIONS_AHEAD + 1);
                self.index.prefetch_eviction(EVICTIONS_NEAR);
                self.index.prefetch_eviction(EVICTIONS_NEAR + 1);
                let outcome = self.apply_one(command, events);
                outcomes.push(outcome);
            }
        }
        self.applied_index = ctx.index;
        self.passivate_some(commands.len().saturating_mul(2).saturating_add(PASSIVATIONS_PER_BATCH_BASE));
    }

    /// Asks the CPU for what `command` will read, stage by stage: first the
    /// table lines of its wallet and of its index keys, then its wallet's
    /// slab entry, then its wallet's heap. A hint, which changes no state
    /// (the keys named here need not be the ones the command ends up
    /// reading).
    fn prefetch(&self, command: &Command, stage: Stage) {
        let Command::Player { player, action, .. } = command else { return };
        self.resident.prefetch(*player, stage);
        if stage != Stage::Table {
            return;
        }
        let key = |kind, id| IndexKey { player: *player, kind, id };
        let (first, second) = match action {
            Action::Deposit { tx, .. } | Action::Withdraw { tx, .. } | Action::Play { tx, .. } => (key(KeyKind::Tx, tx.0), None),
            Action::Bet { tx, round, .. } => (key(KeyKind::Tx, tx.0), Some(key(KeyKind::Round, round.0))),
            Action::Win { tx, bet, .. } | Action::Rollback { tx, bet, .. } => (key(KeyKind::Tx, tx.0), Some(key(KeyKind::Tx, bet.0))),
            Action::Payout { tx, bet, .. } => (key(KeyKind::Tx, tx.0), bet.map(|bet| key(KeyKind::Tx, bet.0))),
            _ => return,
        };
        self.index.prefetch(&first);
        if let Some(second) = second {
            self.index.prefetch(&second);
        }
    }

    /// Applies one command as a batch of its own (tests, tools).
    pub fn apply(&mut self, ctx: Context, command: &Command, events: &mut Vec<Event>) -> Outcome {
        let mut outcomes = Vec::with_capacity(1);
        self.apply_batch(ctx, std::slice::from_ref(command), &mut outcomes, events);
        outcomes.pop().expect("one outcome per command")
    }

    fn apply_one(&mut self, command: &Command, events: &mut Vec<Event>) -> Outcome {
        match command {
            Command::Reseed { entropy } => {
                self.rng.reseed(entropy);
                events.push(Event::RngReseeded);
                Ok(Reply::Done)
            }
            Command::ConfigureOperator(config) => {
                validate_operator(config)?;
                if !self.operators.contains_key(&config.operator) && self.operators.len() >= OPERATORS_MAX {
                    return Err(Rejection::InvalidArgument);
                }
                self.operators.insert(config.operator, config.clone());
                events.push(Event::OperatorConfigured { operator: config.operator });
                Ok(Reply::Done)
            }
            Command::Claim { operator, key, player } => {
                if !self.operators.contains_key(operator) {
                    return Err(Rejection::UnknownOperator);
                }
                match self.index.claim_holder(*operator, key.0) {
                    Some(holder) if holder == *player => Ok(Reply::Done),
                    Some(_) => Err(Rejection::TxConflict),
                    None => {
                        self.index.insert_claim(*operator, key.0, *player, self.now_ms);
                        Ok(Reply::Done)
                    }
                }
            }
            Command::Player { operator, player, action } => {
                let Some(operator_config) = self.operators.get(operator) else {
                    return Err(Rejection::UnknownOperator);
                };
                if matches!(action, crate::command::Action::CreateWallet) {
                    if self.resident.contains(*player) || self.passive.contains_key(player) {
                        return Err(Rejection::PlayerExists);
                    }
                    if self.wallet_count() as u64 >= self.config.wallets_max {
                        return Err(Rejection::ShardFull);
                    }
                    self.residency_clock += 1;
                    self.resident.insert(*player, Resident { wallet: Wallet::new(*operator), touched: self.residency_clock });
                    self.residency_queue.push_back((*player, self.residency_clock));
                    events.push(Event::WalletCreated { player: *player, operator: *operator });
                    return Ok(Reply::Done);
                }
                self.residency_clock += 1;
                let Some(resident) =
                    activate(&mut self.resident, &mut self.passive, &mut self.residency_queue, *player, self.residency_clock)
                else {
                    return Err(Rejection::UnknownPlayer);
                };
                if resident.wallet.operator != *operator {
                    return Err(Rejection::ForeignPlayer);
                }
                resident.touched = self.residency_clock;
                Apply {
                    now_ms: self.now_ms,
                    player: *player,
                    operator: operator_config,
                    wallet: &mut resident.wallet,
                    index: &mut self.index,
                    ledger: &mut self.ledger,
                    events,
                    session_ids: &mut self.session_ids,
                    rng: &mut self.rng,
                    planted_double_apply: &mut self.planted_double_apply,
                    skip_record: false,
                }
                .run(action)
            }
        }
    }

    /// Passivates wallets from the front of the residency queue while more
    /// than `resident_wallets_max` are resident, at most `budget` steps.
    fn passivate_some(&mut self, mut budget: usize) {
        while self.resident.len() > self.residency.resident_wallets_max && budget > 0 {
            budget -= 1;
            let Some((player, queued)) = self.residency_queue.pop_front() else {
                return;
            };
            let touched = self.resident.get(player).expect("queued wallets are resident").touched;
            if touched > queued {
                self.residency_queue.push_back((player, self.residency_clock));
            } else {
                self.passivate(player);
            }
        }
    }

    fn passivate(&mut self, player: PlayerId) {
        if let Some(resident) = self.resident.remove(player) {
            self.passive.insert(player, codec::wallet_to_bytes(&resident.wallet));
        }
    }

    /// Allocates, up front, the idempotency index's full retention and the
    /// resident wallets' table, so neither grows (and pauses) in service. A
    /// local memory choice, not replicated state: the node calls it at start.
    pub fn preallocate(&mut self) {
        self.index.reserve_full();
        let capacity = self.residency.resident_wallets_max;
        self.resident.reserve(capacity.saturating_sub(self.resident.len()));
        self.residency_queue.reserve(capacity.saturating_sub(self.residency_queue.len()));
        // Touch the wallet table's pages too: write filler entries under ids
        // no player can have here (counting down from u64::MAX), then drop
        // them. The table keeps its capacity and its pages stay mapped, so a
        // new player in service does not wait on the kernel zeroing memory.
        if self.resident.is_empty() {
            for filler in 0..capacity as u64 {
                self.resident.insert(PlayerId(u64::MAX - filler), Resident { wallet: Wallet::new(OperatorId(0)), touched: 0 });
            }
            self.resident.clear();
        }
    }

    /// Passivates every resident wallet (memory measurements, tests).
    pub fn passivate_all(&mut self) {
        while let Some((player, _)) = self.residency_queue.pop_front() {
            self.passivate(player);
        }
        self.residency_queue.shrink_to_fit();
        self.passive.shrink_to_fit();
        self.resident.shrink_to_fit();
    }

    /// A copy of a player's wallet, whether resident or passive.
    pub fn wallet(&self, player: PlayerId) -> Option<Wallet> {
        if let Some(resident) = self.resident.get(player) {
            return Some(resident.wallet.clone());
        }
        self.passive.get(&player).map(|bytes| codec::wallet_from_bytes(bytes).expect("passive wallets were encoded by this shard"))
    }

    /// A balance read without activating the wallet. (Linearizable reads
    /// in a cluster go through the leader's read index; this is the local read.)
    pub fn balance(&self, player: PlayerId, currency: Currency) -> Option<Balance> {
        // A resident wallet is read in place; only a passive one is decoded.
        let decoded;
        let wallet = match self.resident.get(player) {
            Some(resident) => &resident.wallet,
            None => {
                decoded = self.wallet(player)?;
                &decoded
            }
        };
        let mut balance = wallet.balance(currency);
        // A bonus past its expiry is forfeited by the next apply; a read
        // already shows it gone.
        if wallet.bonus(currency).is_some_and(|b| b.expires_ms <= self.now_ms) {
            balance.bonus = Money::ZERO;
        }
        Some(balance)
    }

    /// Whether [`Shard::read`] answers `command` (a pure read), without
    /// looking at any state.
    pub fn is_read(command: &Command) -> bool {
        matches!(command, Command::Player { action: crate::command::Action::Balance { .. }, .. })
    }

    /// Answers a command that only reads, without applying it: exactly what
    /// applying it would answer, with nothing changed (no wallet activated;
    /// a bonus past its expiry reads as forfeited, as the next apply makes
    /// it). None: the command is not a pure read and must be applied. A
    /// replicated node serves these at a raft read index instead of logging
    /// them.
    pub fn read(&self, command: &Command) -> Option<Outcome> {
        let Command::Player { operator, player, action: crate::command::Action::Balance { currency } } = command else {
            return None;
        };
        let answer = || {
            let operator_config = self.operators.get(operator).ok_or(Rejection::UnknownOperator)?;
            let owner = match self.resident.get(*player) {
                Some(resident) => resident.wallet.operator,
                None => self.wallet(*player).ok_or(Rejection::UnknownPlayer)?.operator,
            };
            if owner != *operator {
                return Err(Rejection::ForeignPlayer);
            }
            if !operator_config.currencies.iter().any(|c| c.currency == *currency) {
                return Err(Rejection::UnknownCurrency);
            }
            self.balance(*player, *currency).map(Reply::Balance).ok_or(Rejection::UnknownPlayer)
        };
        Some(answer())
    }

    /// The operator's currency scale, for adapters converting decimals.
    pub fn currency_spec(&self, operator: OperatorId, currency: Currency) -> Option<CurrencySpec> {
        self.operators.get(&operator)?.currencies.iter().find(|c| c.currency == currency).copied()
    }

    fn sorted_players(&self) -> Vec<PlayerId> {
        let mut players: Vec<PlayerId> = self.resident.players().chain(self.passive.keys().copied()).collect();
        players.sort_unstable();
        players
    }

    /// Sweeps the whole shard and panics with context on any broken
    /// invariant: conservation per currency, no pocket above `Money::MAX`,
    /// sorted and bounded per-wallet lists, every open bet open in the
    /// index and nowhere else, bonus money only under an active bonus,
    /// pending redemptions matching the pending pocket.
    pub fn check_invariants(&self) {
        self.index.check_invariants();
        self.resident.check_invariants();
        for player in self.resident.players() {
            assert!(!self.passive.contains_key(&player), "player {player:?} both resident and passive");
        }
        assert_eq!(self.residency_queue.len(), self.resident.len(), "residency queue and resident wallets disagree");
        let mut sums: BTreeMap<Currency, u128> = BTreeMap::new();
        let mut open_bets = 0usize;
        for player in self.sorted_players() {
            let wallet = self.wallet(player).expect("listed players exist");
            assert!(self.operators.contains_key(&wallet.operator), "{player:?} has an unknown operator");
            assert!(wallet.accounts.len() <= CURRENCIES_PER_WALLET_MAX);
            assert!(wallet.accounts.windows(2).all(|w| w[0].currency < w[1].currency), "{player:?} accounts unsorted");
            for account in &wallet.accounts {
                let total = account.pockets.total().expect("pockets of one account fit in Money");
                *sums.entry(account.currency).or_default() += u128::from(total.minor());
                let has_bonus = wallet.bonus(account.currency).is_some();
                if PocketRules::of(account.currency) == PocketRules::Standard && !has_bonus {
                    assert!(
                        account.pockets.bonus.is_zero(),
                        "{player:?} holds bonus money in {} without an active bonus",
                        account.currency
                    );
                }
            }
            assert!(wallet.open_bets.len() <= OPEN_BETS_PER_WALLET_MAX);
            wallet.open_bets.check();
            for bet in &wallet.open_bets {
                let key = IndexKey { player, kind: KeyKind::Tx, id: bet.tx.0 };
                let record = self.index.get(&key).unwrap_or_else(|| panic!("open bet {:?} of {player:?} missing from the index", bet.tx));
                assert_eq!((record.kind, record.bet_state), (TxKind::Bet, BetState::Open), "open bet {:?} of {player:?}", bet.tx);
                assert!(wallet.account(bet.currency).is_some(), "open bet {:?} without its account", bet.tx);
                assert_eq!(wallet.open_bets.iter().filter(|b| b.tx == bet.tx).count(), 1, "bet {:?} open twice", bet.tx);
            }
            open_bets += wallet.open_bets.len();
            assert!(wallet.bonuses.windows(2).all(|w| w[0].currency < w[1].currency), "{player:?} has two bonuses in one currency");
            let pending: u128 = wallet.sweeps.as_ref().map_or(0, |s| s.redemptions.iter().map(|(_, a)| u128::from(a.minor())).sum());
            let pending_pocket = wallet.account(Currency::SWEEPS_COINS).map_or(0, |a| u128::from(a.pockets.promo.minor()));
            assert_eq!(pending, pending_pocket, "{player:?} pending redemptions disagree with the pending pocket");
        }
        assert_eq!(open_bets, self.index.open_bet_count(), "open bets in wallets and in the index disagree");
        let currencies: std::collections::BTreeSet<Currency> = sums.keys().copied().chain(self.ledger.totals().map(|(c, _)| *c)).collect();
        for currency in currencies {
            let held = i128::try_from(sums.get(&currency).copied().unwrap_or(0)).expect("sum of balances fits i128");
            let totals = self.ledger.get(currency);
            let net = i128::try_from(totals.deposited).expect("fits") - i128::try_from(totals.withdrawn).expect("fits");
            assert_eq!(
                held + totals.house,
                net,
                "money not conserved in {currency}: wallets {held} + house {} != deposited - withdrawn {net}",
                totals.house
            );
        }
    }

    /// Room for the snapshot, from what each wallet and record holds, erring
    /// large. Growing a buffer of hundreds of megabytes by doubling copied it
    /// and faulted in fresh pages at every step, all while the shard paused
    /// (5 s for 850 MB); room reserved and never written costs no memory, as
    /// the kernel maps pages only when they are first written. (Ahead of an
    /// automatic snapshot a node writes once only the part of a buffer it
    /// expects the snapshot to fill: `cluster`'s `durable.rs`.)
    pub fn snapshot_size_bound(&self) -> usize {
        const ID: usize = 1 + crate::ids::EXTERNAL_ID_MAX_LEN;
        const WALLET: usize = 512;
        const ACCOUNT: usize = 64;
        const OPEN_BET: usize = 5 * ID + 96;
        const SESSION: usize = ID + 64;
        const BONUS: usize = ID + 96;
        const RECORD: usize = 3 * ID + 96;
        let resident: usize = self
            .resident
            .wallets()
            .map(|wallet| {
                let weights: usize = wallet.bonuses.iter().map(|bonus| bonus.weights.len() * (ID + 1)).sum();
                WALLET
                    + wallet.accounts.len() * ACCOUNT
                    + wallet.open_bets.len() * OPEN_BET
                    + wallet.sessions.len() * SESSION
                    + wallet.bonuses.len() * BONUS
                    + weights
            })
            .sum();
        let passive: usize = self.passive.values().map(|bytes| bytes.len() + 16).sum();
        4_096 + resident + passive + self.index.len() * RECORD
    }

    /// Canonical bytes of the whole replicated state, with a CRC-32C trailer.
    /// Layout (all integers little-endian):
    /// magic "CASINOSS", version u16, config, applied index, clock, session
    /// sequence, RNG state (key, word position, seeded), operators (sorted), ledger (sorted), wallets (sorted by
    /// player: id u64, length u32, wallet bytes), index records (retention
    /// order), then crc32c u32 of everything before it.
    pub fn snapshot(&self) -> Vec<u8> {
        self.snapshot_into(Vec::new())
    }

    /// [`Shard::snapshot`], written into `buffer` (emptied first). A buffer
    /// with capacity is used as it is, and grows only if the snapshot needs
    /// more (a node prepares one with its pages already mapped, so that the
    /// shard does not pause while the kernel maps them); an unallocated one
    /// is replaced by one of [`Shard::snapshot_size_bound`] bytes. The bytes
    /// are the same either way.
    pub fn snapshot_into(&self, mut buffer: Vec<u8>) -> Vec<u8> {
        buffer.clear();
        if buffer.capacity() == 0 {
            buffer = Vec::with_capacity(self.snapshot_size_bound());
        }
        self.snapshot_after(buffer)
    }

    /// [`Shard::snapshot`], appended to the bytes already in `prefix` (a
    /// replicated machine's own header): one buffer, no copy of a large
    /// state. Reserve [`Shard::snapshot_size_bound`] beyond the prefix
    /// first, or the buffer grows as it goes.
    pub fn snapshot_after(&self, prefix: Vec<u8>) -> Vec<u8> {
        let start = prefix.len();
        let mut out = Writer { bytes: prefix };
        out.raw(SNAPSHOT_MAGIC);
        out.u16(SNAPSHOT_VERSION);
        out.u32(self.config.shard_id);
        out.u64(self.config.wallets_max);
        out.u64(self.config.tx_retention_count as u64);
        out.u64(self.config.tx_retention_ms);
        out.u64(self.applied_index);
        out.u64(self.now_ms);
        out.u64(self.session_ids.next_sequence);
        let (key, word_pos, seeded) = self.rng.state();
        out.raw(&key);
        out.u128(word_pos);
        out.u8(u8::from(seeded));
        out.u32(self.operators.len() as u32);
        for config in self.operators.values() {
            out.u32(config.operator.0);
            out.u8(u8::from(config.sweepstakes));
            out.u8(config.currencies.len() as u8);
            for spec in &config.currencies {
                out.currency(spec.currency);
                out.u8(spec.scale);
            }
            out.u64(config.limit_increase_delay_ms);
            out.u64(config.redemption_min_minor);
        }
        let totals: Vec<_> = self.ledger.totals().collect();
        out.u32(totals.len() as u32);
        for (currency, totals) in totals {
            out.currency(*currency);
            out.u128(totals.deposited);
            out.u128(totals.withdrawn);
            out.i128(totals.house);
        }
        let players = self.sorted_players();
        out.u64(players.len() as u64);
        let mut scratch = Writer::default();
        for player in players {
            out.u64(player.0);
            let bytes: &[u8] = if let Some(resident) = self.resident.get(player) {
                scratch.bytes.clear();
                codec::encode_wallet(&resident.wallet, &mut scratch);
                &scratch.bytes
            } else {
                self.passive.get(&player).expect("listed players exist")
            };
            out.u32(bytes.len() as u32);
            out.raw(bytes);
        }
        out.u64(self.index.len() as u64);
        for (key, record) in self.index.iter_in_order() {
            out.u64(key.player.0);
            out.u8(key.kind as u8);
            out.id(&key.id);
            out.u8(record.kind as u8);
            out.u8(record.bet_state as u8);
            out.u8(u8::from(record.bet_found));
            out.u64(record.fingerprint);
            out.u64(record.retained_since_ms);
            out.u64(record.created_ms);
            match &record.detail {
                Detail::Movement { balance, moved } => {
                    out.u8(1);
                    out.balance(balance);
                    out.pockets(moved);
                }
                Detail::Round { game, started_ms } => {
                    out.u8(2);
                    out.id(&game.0);
                    out.u64(*started_ms);
                }
                Detail::Alias { bet } => {
                    out.u8(3);
                    out.id(&bet.0);
                }
                Detail::Claim { player } => {
                    out.u8(4);
                    out.u64(player.0);
                }
            }
        }
        let checksum = crc32c(&out.bytes[start..]);
        out.u32(checksum);
        out.bytes
    }

    /// Rebuilds a shard from `snapshot` bytes, verifying the checksum first
    /// and every field after. All wallets start passive.
    pub fn restore(snapshot: &[u8], residency: Residency) -> Result<Shard, DecodeError> {
        if snapshot.len() < SNAPSHOT_MAGIC.len() + 2 + 4 {
            return Err(DecodeError::Truncated { offset: snapshot.len(), needed: SNAPSHOT_MAGIC.len() + 6 - snapshot.len() });
        }
        if &snapshot[..SNAPSHOT_MAGIC.len()] != SNAPSHOT_MAGIC {
            return Err(DecodeError::Magic);
        }
        let (body, trailer) = snapshot.split_at(snapshot.len() - 4);
        let stored = u32::from_le_bytes(trailer.try_into().expect("four bytes"));
        let computed = crc32c(body);
        if stored != computed {
            return Err(DecodeError::Checksum { stored, computed });
        }
        let mut reader = Reader::new(body);
        reader.take(SNAPSHOT_MAGIC.len())?;
        let version = reader.u16()?;
        if version != SNAPSHOT_VERSION {
            return Err(DecodeError::Version(version));
        }
        let config = ShardConfig {
            shard_id: reader.u32()?,
            wallets_max: reader.u64()?,
            tx_retention_count: usize::try_from(reader.u64()?)
                .ok()
                .filter(|c| *c <= RETENTION_COUNT_MAX)
                .ok_or_else(|| reader.invalid("retention count"))?,
            tx_retention_ms: reader.u64()?,
        };
        let mut shard = Shard::with_residency(config, residency);
        shard.applied_index = reader.u64()?;
        shard.now_ms = reader.u64()?;
        shard.session_ids.next_sequence = reader.u64()?;
        let key: [u8; 32] = reader.array()?;
        let word_pos = reader.u128()?;
        shard.rng = ShardRng::from_state(key, word_pos, reader.bool()?);
        let operator_count = reader.u32()? as usize;
        if operator_count > OPERATORS_MAX {
            return Err(reader.invalid("operator count"));
        }
        for _ in 0..operator_count {
            let operator = OperatorId(reader.u32()?);
            let sweepstakes = reader.bool()?;
            let mut currencies = Vec::new();
            for _ in 0..reader.count(OPERATOR_CURRENCIES_MAX)? {
                currencies.push(CurrencySpec { currency: reader.currency()?, scale: reader.u8()? });
            }
            let config = OperatorConfig {
                operator,
                sweepstakes,
                currencies,
                limit_increase_delay_ms: reader.u64()?,
                redemption_min_minor: reader.u64()?,
            };
            validate_operator(&config).map_err(|_| reader.invalid("operator"))?;
            if shard.operators.insert(operator, config).is_some() {
                return Err(reader.invalid("duplicate operator"));
            }
        }
        for _ in 0..reader.u32()? {
            let currency = reader.currency()?;
            let totals = Totals { deposited: reader.u128()?, withdrawn: reader.u128()?, house: reader.i128()? };
            shard.ledger.restore(currency, totals);
        }
        let wallet_count = reader.u64()?;
        let mut previous: Option<PlayerId> = None;
        for _ in 0..wallet_count {
            let player = PlayerId(reader.u64()?);
            if previous.is_some_and(|p| p >= player) {
                return Err(reader.invalid("wallet order"));
            }
            previous = Some(player);
            let len = reader.u32()? as usize;
            let bytes = reader.take(len)?;
            codec::wallet_from_bytes(bytes)?;
            shard.passive.insert(player, bytes.into());
        }
        let record_count = reader.u64()?;
        for _ in 0..record_count {
            let key = IndexKey {
                player: PlayerId(reader.u64()?),
                kind: KeyKind::from_u8(reader.u8()?).ok_or_else(|| reader.invalid("index key kind"))?,
                id: reader.id()?,
            };
            let record = TxRecord {
                kind: TxKind::from_u8(reader.u8()?).ok_or_else(|| reader.invalid("transaction kind"))?,
                bet_state: BetState::from_u8(reader.u8()?).ok_or_else(|| reader.invalid("bet state"))?,
                bet_found: reader.bool()?,
                fingerprint: reader.u64()?,
                retained_since_ms: reader.u64()?,
                created_ms: reader.u64()?,
                detail: match reader.u8()? {
                    1 => Detail::Movement { balance: reader.balance()?, moved: reader.pockets()? },
                    2 => Detail::Round { game: GameId(reader.id()?), started_ms: reader.u64()? },
                    3 => Detail::Alias { bet: TxId(reader.id()?) },
                    4 => Detail::Claim { player: PlayerId(reader.u64()?) },
                    _ => return Err(reader.invalid("record detail")),
                },
            };
            if !shard.index.push_restored(key, record) {
                return Err(reader.invalid("duplicate index key"));
            }
        }
        reader.finish()?;
        Ok(shard)
    }
}

/// Finds a wallet, decoding it from the passive tier (and queueing it for
/// later passivation) if needed.
fn activate<'a>(
    resident: &'a mut Residents,
    passive: &mut FxHashMap<PlayerId, Box<[u8]>>,
    queue: &mut VecDeque<(PlayerId, u64)>,
    player: PlayerId,
    clock: u64,
) -> Option<&'a mut Resident> {
    if let Some(handle) = resident.handle(player) {
        return Some(resident.at_mut(handle));
    }
    let bytes = passive.remove(&player)?;
    let wallet = codec::wallet_from_bytes(&bytes).expect("passive wallets were encoded by this shard");
    queue.push_back((player, clock));
    Some(resident.insert(player, Resident { wallet, touched: clock }))
}
