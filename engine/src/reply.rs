//! What an apply returns: a [`Reply`] on success, or a [`Rejection`]. A
//! rejected command is a value, not an error: it changes nothing (save the
//! one documented exception, a rollback of an unknown bet, which succeeds
//! and says so) and its number is its wire code, stable forever.

use crate::currency::Currency;
use crate::games::Drawn;
use crate::ids::{ExternalId, GameId, SessionId, TxId};
use crate::index::{BetState, TxKind};
use crate::money::{Money, Pockets};
use crate::session::Locale;

/// Why a command was refused. The numbers are the wire codes: never renumber,
/// never reuse; add new variants with new numbers. Grouped by hundreds:
/// 1xx malformed input, 2xx unknown or foreign parties, 3xx money,
/// 4xx transaction identity and ordering, 5xx sessions, 6xx responsible
/// gaming, 7xx bonuses, 8xx sweepstakes, 9xx capacity, 10xx games.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Rejection {
    /// An amount that must move money was zero.
    ZeroAmount = 100,
    /// An amount was below zero.
    NegativeAmount = 101,
    /// An amount exceeded `AMOUNT_MAX_MINOR`.
    AmountTooLarge = 102,
    /// An external id was empty, longer than 48 bytes, or not printable ASCII.
    InvalidId = 103,
    /// A currency code was not 1 to 8 characters of `A-Z0-9`, or a scale
    /// exceeded `CURRENCY_SCALE_MAX`.
    InvalidCurrency = 104,
    /// A field was out of its documented range (a duration, a percentage, a
    /// multiple, a stake split that does not add up).
    InvalidArgument = 105,

    /// No wallet exists for this player on this shard.
    UnknownPlayer = 200,
    /// The player belongs to another operator.
    ForeignPlayer = 201,
    /// The operator has not been configured.
    UnknownOperator = 202,
    /// A wallet already exists for this player.
    PlayerExists = 203,
    /// The currency is not among the operator's currencies.
    UnknownCurrency = 204,
    /// The operation is not allowed in this currency: a purchase (deposit)
    /// of Sweeps Coins, a withdrawal of Gold or Sweeps Coins, a bonus in a
    /// sweepstakes currency. (A currency outside the operator's list, such
    /// as Gold Coins for a standard operator, is `UnknownCurrency`.)
    CurrencyNotAllowed = 205,
    /// A sweepstakes operation for an operator not in sweepstakes mode.
    NotSweepstakes = 206,
    /// The currency differs from the one of the bet referred to.
    CurrencyMismatch = 207,

    /// The cash pocket cannot pay the debit.
    InsufficientFunds = 300,
    /// The bonus pocket cannot pay its part of the stake.
    InsufficientBonus = 301,
    /// The promo pocket cannot pay its part of the stake.
    InsufficientPromo = 302,
    /// The credit would take a balance or a running total past `Money::MAX`.
    BalanceOverflow = 303,

    /// The transaction id was already used by this player with different
    /// parameters. (Same parameters replay the original result instead.)
    TxConflict = 400,
    /// A win or rollback refers to a bet this shard does not know, or that
    /// has aged out of retention.
    BetNotFound = 401,
    /// A rollback refers to a bet whose round has closed.
    BetAlreadySettled = 402,
    /// A rollback refers to a bet already rolled back by another transaction.
    BetAlreadyRolledBack = 403,
    /// A win or a bet refers to a round that has closed.
    RoundClosed = 404,
    /// A bet arrived after a rollback of its transaction id was recorded.
    BetRolledBackInAdvance = 405,
    /// A win refers to a bet that was rolled back.
    WinOnRolledBackBet = 406,
    /// A bet joins an open round with another game or currency.
    RoundMismatch = 407,
    /// The transaction id is another kind of movement than the one referred to
    /// (a rollback of a win, a win "on" a deposit).
    NotABet = 408,
    /// No open or closed round with this id.
    RoundNotFound = 409,

    /// No such open session for this player.
    SessionNotFound = 500,
    /// The session's expiry has passed (wins and rollbacks are still accepted).
    SessionExpired = 501,
    /// The bet's game differs from the session's game.
    SessionGameMismatch = 502,
    /// The bet's currency differs from the session's currency.
    SessionCurrencyMismatch = 503,

    /// The operator has blocked this player from betting.
    PlayerBlocked = 600,
    /// The player has excluded themselves until a date (or for good).
    SelfExcluded = 601,
    /// The player is in a cool-off period.
    CoolingOff = 602,
    /// The deposit would exceed a deposit limit.
    DepositLimitExceeded = 603,
    /// The stake could take net losses past a loss limit.
    LossLimitExceeded = 604,
    /// The stake would take total wagers past a wager limit.
    WagerLimitExceeded = 605,
    /// The session has lasted longer than the player's session time limit.
    SessionTimeLimitExceeded = 606,
    /// A self-exclusion or cool-off cannot be shortened or lifted early.
    ExclusionCannotBeShortened = 607,

    /// The stake exceeds the active bonus's maximum bet.
    BonusMaxBetExceeded = 700,
    /// A bonus is already active in this currency.
    BonusAlreadyActive = 701,
    /// No active bonus with this id.
    BonusNotFound = 702,
    /// This bonus id was already granted to the player.
    BonusIdUsed = 703,

    /// The redemption is below the operator's minimum.
    RedemptionBelowMinimum = 800,
    /// Not enough redeemable Sweeps Coins.
    InsufficientRedeemable = 801,
    /// No pending redemption with this id (an approval of a rejected one,
    /// or the reverse, also gets this code).
    RedemptionNotFound = 802,

    /// The player has the maximum number of currency accounts.
    TooManyCurrencies = 900,
    /// The player has the maximum number of open bets.
    TooManyOpenBets = 901,
    /// The player has the maximum number of live sessions.
    TooManySessions = 902,
    /// The player has the maximum number of Sweeps Coins grants or pending
    /// redemptions in play.
    TooManyGrants = 903,
    /// The shard holds its maximum number of wallets.
    ShardFull = 904,

    /// The shard's RNG has not been seeded yet: no game can be played.
    RngNotSeeded = 1000,
    /// The session's game is not a built-in game.
    UnknownGame = 1001,
    /// Provably-fair play before the player's seeds were set.
    FairSeedsMissing = 1002,
    /// The bet is not on the game's table, or the stake does not fit it (a
    /// slot stake not a multiple of 20, a dice chance outside 1% to 98%, a
    /// crash target outside 1.01x to 10,000x).
    InvalidChoice = 1003,
}

impl Rejection {
    pub fn code(self) -> u16 {
        self as u16
    }

    /// Every variant, for tests and documentation generators.
    pub const ALL: &'static [Rejection] = &[
        Rejection::ZeroAmount,
        Rejection::NegativeAmount,
        Rejection::AmountTooLarge,
        Rejection::InvalidId,
        Rejection::InvalidCurrency,
        Rejection::InvalidArgument,
        Rejection::UnknownPlayer,
        Rejection::ForeignPlayer,
        Rejection::UnknownOperator,
        Rejection::PlayerExists,
        Rejection::UnknownCurrency,
        Rejection::CurrencyNotAllowed,
        Rejection::NotSweepstakes,
        Rejection::CurrencyMismatch,
        Rejection::InsufficientFunds,
        Rejection::InsufficientBonus,
        Rejection::InsufficientPromo,
        Rejection::BalanceOverflow,
        Rejection::TxConflict,
        Rejection::BetNotFound,
        Rejection::BetAlreadySettled,
        Rejection::BetAlreadyRolledBack,
        Rejection::RoundClosed,
        Rejection::BetRolledBackInAdvance,
        Rejection::WinOnRolledBackBet,
        Rejection::RoundMismatch,
        Rejection::NotABet,
        Rejection::RoundNotFound,
        Rejection::SessionNotFound,
        Rejection::SessionExpired,
        Rejection::SessionGameMismatch,
        Rejection::SessionCurrencyMismatch,
        Rejection::PlayerBlocked,
        Rejection::SelfExcluded,
        Rejection::CoolingOff,
        Rejection::DepositLimitExceeded,
        Rejection::LossLimitExceeded,
        Rejection::WagerLimitExceeded,
        Rejection::SessionTimeLimitExceeded,
        Rejection::ExclusionCannotBeShortened,
        Rejection::BonusMaxBetExceeded,
        Rejection::BonusAlreadyActive,
        Rejection::BonusNotFound,
        Rejection::BonusIdUsed,
        Rejection::RedemptionBelowMinimum,
        Rejection::InsufficientRedeemable,
        Rejection::RedemptionNotFound,
        Rejection::TooManyCurrencies,
        Rejection::TooManyOpenBets,
        Rejection::TooManySessions,
        Rejection::TooManyGrants,
        Rejection::ShardFull,
        Rejection::RngNotSeeded,
        Rejection::UnknownGame,
        Rejection::FairSeedsMissing,
        Rejection::InvalidChoice,
    ];

    pub fn from_code(code: u16) -> Option<Rejection> {
        Rejection::ALL.iter().copied().find(|r| r.code() == code)
    }
}

/// One currency account of a wallet. For Sweeps Coins the pockets read:
/// `cash` = redeemable, `bonus` = not yet played through, `promo` = pending
/// redemption (still the player's until paid).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Balance {
    pub currency: Currency,
    pub cash: Money,
    pub bonus: Money,
    pub promo: Money,
}

/// The result of a money movement, stored with its transaction id so that a
/// replay returns it unchanged (with `replayed` set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxReply {
    /// The account as the movement left it.
    pub balance: Balance,
    /// True when this reply is the stored result of an earlier identical request.
    pub replayed: bool,
    /// For rollbacks: false when the bet was unknown and the rollback was
    /// recorded in advance (a late bet with that id will be refused).
    pub bet_found: bool,
}

/// A live session as `SessionInfo` reads it, with the balance in its currency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionView {
    pub session: SessionId,
    pub game: GameId,
    pub currency: Currency,
    pub opened_ms: u64,
    pub expires_ms: u64,
    pub locale: Option<Locale>,
    pub balance: Balance,
}

/// One transaction as `Lookup` reads it from the idempotency index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    /// The record's own id: the bet's, when it was named by its alias.
    pub tx: TxId,
    pub kind: TxKind,
    /// For bets: open, settled, rolled back (or rolled back in advance).
    pub bet_state: BetState,
    /// For rollbacks: whether the bet was known.
    pub bet_found: bool,
    /// When it was applied (the apply context's clock).
    pub created_ms: u64,
    pub currency: Currency,
    /// What it moved, per pocket: a bet's stake, a win's or award's credit,
    /// a rollback's refund, a deposit's or withdrawal's amount (zero for a
    /// rollback recorded in advance).
    pub moved: Pockets,
}

/// A round as `RoundInfo` reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoundView {
    pub game: GameId,
    /// When its first bet was placed.
    pub started_ms: u64,
    /// When it closed; None while it has open bets.
    pub closed_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A money movement was applied (or replayed).
    Tx(TxReply),
    /// A round of a built-in game was played. (A replay of the same request
    /// answers with `Tx`, `replayed` set; the outcome is in the round's
    /// `GamePlayed` event.)
    Played { tx: TxReply, win: Money, drawn: Drawn },
    /// Provably-fair seeds were set: the revealed previous server seed, if
    /// any, and the hash of the new one.
    Seeds { revealed: Option<[u8; 32]>, server_seed_hash: [u8; 32], client_seed: ExternalId, nonce: u64 },
    /// A balance query.
    Balance(Balance),
    /// A session opened.
    SessionOpened { session: SessionId, expires_ms: u64 },
    /// A session's details.
    Session(SessionView),
    /// `Lookup`'s answer: one entry per id asked, in order.
    Found(Vec<Option<Found>>),
    /// A round's details.
    Round(RoundView),
    /// A command without a result of its own was applied.
    Done,
}

impl Reply {
    /// The balance carried by a movement or query reply.
    pub fn balance(&self) -> Option<Balance> {
        match self {
            Reply::Tx(tx) | Reply::Played { tx, .. } => Some(tx.balance),
            Reply::Balance(balance) => Some(*balance),
            Reply::Session(view) => Some(view.balance),
            Reply::SessionOpened { .. } | Reply::Seeds { .. } | Reply::Found(_) | Reply::Round(_) | Reply::Done => None,
        }
    }
}

pub type Outcome = Result<Reply, Rejection>;
