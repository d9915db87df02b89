//! Commands: the only way shard state changes. Every field is validated by
//! the engine on apply (the gateway validates too, but a replica must never
//! trust what it replicates).

use crate::currency::{Currency, CurrencySpec};
use crate::games::Choice;
use crate::ids::{BonusId, ExternalId, GameId, OperatorId, PlayerId, RedemptionId, RoundId, SessionId, TxId};
use crate::limits::{LimitKind, LimitPeriod, LimitSource};
use crate::money::Amount;
use crate::session::Locale;

/// Operator-wide settings, replicated to every shard by a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorConfig {
    pub operator: OperatorId,
    /// Sweepstakes operators deal in Gold and Sweeps Coins only.
    pub sweepstakes: bool,
    /// Accepted currencies and their scales (at most `OPERATOR_CURRENCIES_MAX`).
    pub currencies: Vec<CurrencySpec>,
    /// How long a player's raised or removed limit waits before it applies.
    pub limit_increase_delay_ms: u64,
    /// Smallest Sweeps Coins redemption, in minor units.
    pub redemption_min_minor: u64,
}

/// Most ids one `Lookup` reads.
pub const LOOKUP_MAX: usize = 16;

/// The default cooling-off delay before a raised limit applies: 24 hours.
pub const LIMIT_INCREASE_DELAY_DEFAULT_MS: u64 = 24 * 60 * 60 * 1000;

/// How a stake or a win is split across pockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stake {
    /// The engine splits it: a stake is paid from cash first, then bonus; a
    /// win is credited in the proportions the bet was paid (see `wallet.rs`).
    Auto(Amount),
    /// The caller names each pocket's part (the seamless-wallet APIs do).
    Split { cash: Amount, bonus: Amount, promo: Amount },
}

/// Where Sweeps Coins come from. They are never sold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SweepsGrantKind {
    /// Given with a Gold Coins purchase.
    PurchaseBonus = 1,
    DailyReward = 2,
    Promotion = 3,
    /// The free alternative method of entry, required by sweepstakes law.
    MailIn = 4,
}

/// A bonus offer as granted to one player.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BonusTerms {
    pub bonus: BonusId,
    pub currency: Currency,
    pub amount: Amount,
    /// Wagering requirement as a multiple of the amount (0 to 1000).
    pub wagering_multiple: u32,
    /// Largest stake allowed while the bonus is active.
    pub max_bet: Amount,
    /// Lifetime from the grant.
    pub duration_ms: u64,
    /// Percentage of a stake on a given game that counts toward wagering.
    pub weights: Vec<(GameId, u8)>,
    /// Percentage for games not listed in `weights`.
    pub default_weight_percent: u8,
}

// Player commands are nearly all of them: boxing their action would cost an
// allocation per command to save bytes on the rare operator command.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Create or replace an operator's settings.
    ConfigureOperator(OperatorConfig),
    /// Mix fresh OS entropy into the shard's RNG. Proposed by the shard's
    /// owner when the shard starts and periodically after.
    Reseed { entropy: [u8; 32] },
    /// Anything addressed to one player's wallet and sessions.
    Player { operator: OperatorId, player: PlayerId, action: Action },
    /// Reserve transaction id `key` of an operator for `player`, across all
    /// players (whose ids are otherwise each player's own): the first claim
    /// wins, the same claim again is `Done`, another player's is
    /// `TxConflict`. The seamless-wallet APIs ask a deposit's id to be
    /// unique across players. Routed by the key (`Command::player`).
    Claim { operator: OperatorId, key: TxId, player: PlayerId },
}

impl Command {
    /// What routes this command to its shard (None: every shard): the
    /// player, or for a claim a stand-in derived from its key, so that every
    /// claim of one key meets on one shard.
    pub fn player(&self) -> Option<PlayerId> {
        match self {
            Command::ConfigureOperator(_) | Command::Reseed { .. } => None,
            Command::Player { player, .. } => Some(*player),
            Command::Claim { operator, key, .. } => {
                Some(PlayerId(crate::index::Fingerprint::default().u64(u64::from(operator.0)).bytes(key.0.as_bytes()).finish()))
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create the wallet (idempotent only in the sense that a second one is
    /// refused with `PlayerExists`).
    CreateWallet,
    /// Operator blocks or unblocks betting. Wins and rollbacks still apply.
    SetBlocked {
        blocked: bool,
    },
    /// Operator-funded deposit to the cash pocket. For sweepstakes
    /// operators a deposit of Gold Coins is a purchase.
    Deposit {
        tx: TxId,
        currency: Currency,
        amount: Amount,
    },
    /// Withdrawal from the cash pocket (not for Gold or Sweeps Coins).
    Withdraw {
        tx: TxId,
        currency: Currency,
        amount: Amount,
    },
    OpenSession {
        game: GameId,
        currency: Currency,
        duration_ms: u64,
        locale: Option<Locale>,
    },
    /// The session's details and the balance in its currency. Refused with
    /// `SessionNotFound` or `SessionExpired` like a bet would be.
    SessionInfo {
        session: SessionId,
    },
    /// Close a live session and open its successor in one apply: same game,
    /// currency, locale and length, a new id (so a leaked id dies).
    RefreshSession {
        session: SessionId,
    },
    CloseSession {
        session: SessionId,
    },
    /// Debit a stake and open (or join) a round. `game` None is the
    /// session's game. `alias`, when given, is a second id by which payouts,
    /// rollbacks and lookups may name the bet (the seamless-wallet APIs' bet
    /// reference); it shares the bet's fate.
    Bet {
        tx: TxId,
        session: SessionId,
        round: RoundId,
        game: Option<GameId>,
        currency: Currency,
        stake: Stake,
        alias: Option<TxId>,
    },
    /// Credit a win to the round of bet `bet`; `close_round` settles the round.
    Win {
        tx: TxId,
        bet: TxId,
        amount: Stake,
        close_round: bool,
    },
    /// Refund bet `bet`. An unknown bet is recorded so it cannot arrive later.
    /// `currency` must be the bet's; it names the balance returned when the
    /// bet is unknown.
    Rollback {
        tx: TxId,
        bet: TxId,
        currency: Currency,
    },
    /// A seamless-wallet win: credit `amount` in `currency` to bet `bet`
    /// when named (by its id or its alias), else to the first open bet of
    /// round `round`; the bet must be of `round` and `game` when they are
    /// given. `close_round` settles the bet's round. With `award`, a credit
    /// that finds no open bet is a promotional award paid by the house
    /// instead of a refusal. With `claim`, the payout also claims `tx`
    /// across the operator's players as `Command::Claim` would, in the same
    /// apply (another player's claim refuses it with `TxConflict`): the
    /// caller sets it only when the claim routes to this same shard.
    Payout {
        tx: TxId,
        round: Option<RoundId>,
        game: Option<GameId>,
        currency: Currency,
        bet: Option<TxId>,
        amount: Stake,
        close_round: bool,
        award: bool,
        claim: bool,
    },
    /// Read the records of up to `LOOKUP_MAX` transaction ids (an alias
    /// answers with the bet it names). Changes nothing.
    Lookup {
        txs: Vec<TxId>,
    },
    /// Read a round: its game, when it started, and when it closed.
    RoundInfo {
        round: RoundId,
    },
    /// Settle every open bet of the round.
    CloseRound {
        round: RoundId,
    },
    Balance {
        currency: Currency,
    },
    /// Set (Some) or remove (None) a deposit, loss or wager limit.
    SetLimit {
        source: LimitSource,
        kind: LimitKind,
        period: LimitPeriod,
        currency: Currency,
        amount: Option<Amount>,
    },
    /// Set or remove the session time limit.
    SetSessionTimeLimit {
        source: LimitSource,
        duration_ms: Option<u64>,
    },
    /// Exclude until a time, or for good (None).
    SelfExclude {
        until_ms: Option<u64>,
    },
    /// A short break that cannot be cut short.
    CoolOff {
        duration_ms: u64,
    },
    GrantBonus {
        tx: TxId,
        terms: BonusTerms,
    },
    /// Operator cancels an active bonus; the bonus pocket returns to the house.
    ForfeitBonus {
        bonus: BonusId,
    },
    GrantSweeps {
        tx: TxId,
        kind: SweepsGrantKind,
        amount: Amount,
        playthrough_multiple: u32,
    },
    RequestRedemption {
        redemption: RedemptionId,
        amount: Amount,
    },
    /// The redemption is paid out: the coins leave the system.
    ApproveRedemption {
        redemption: RedemptionId,
    },
    /// The redemption is refused: the coins become redeemable again.
    RejectRedemption {
        redemption: RedemptionId,
    },
    /// Play one round of a built-in game (the session's game): debit,
    /// draw, credit, close, in one apply. `fair` draws from the player's
    /// provably-fair seeds instead of the shard's RNG.
    Play {
        tx: TxId,
        session: SessionId,
        currency: Currency,
        stake: Amount,
        choice: Choice,
        fair: bool,
    },
    /// Set the provably-fair client seed and a fresh server seed (revealing
    /// the previous one); the nonce restarts at 0.
    RotateSeeds {
        client_seed: ExternalId,
    },
}

/// What the leader stamps on a batch before replication: its log index and
/// its wall-clock time. The engine's only clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context {
    pub index: u64,
    pub timestamp_ms: u64,
}
