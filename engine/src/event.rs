//! Events: what every apply tells the world. Consumers that may lag
//! (reports, leaderboards, fraud rules, regulatory exports) read committed
//! events off the bet path. An event is emitted only by an apply that
//! changed state, except `LimitHit`, which records a refusal regulators
//! want to see.
//!
//! Order within one apply is the order of the effects; the shell stamps each
//! event with the log index of its batch.

use crate::command::SweepsGrantKind;
use crate::currency::Currency;
use crate::games::{Choice, Drawn, GameKind};
use crate::ids::{BonusId, GameId, OperatorId, PlayerId, RedemptionId, RoundId, SessionId, TxId};
use crate::limits::{LimitKind, LimitPeriod, LimitSource};
use crate::money::{Money, Pockets};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    OperatorConfigured {
        operator: OperatorId,
    },
    WalletCreated {
        player: PlayerId,
        operator: OperatorId,
    },
    PlayerBlocked {
        player: PlayerId,
        blocked: bool,
    },
    Deposited {
        player: PlayerId,
        tx: TxId,
        currency: Currency,
        amount: Money,
    },
    Withdrawn {
        player: PlayerId,
        tx: TxId,
        currency: Currency,
        amount: Money,
    },
    SessionOpened {
        player: PlayerId,
        session: SessionId,
        game: GameId,
        currency: Currency,
        expires_ms: u64,
    },
    SessionClosed {
        player: PlayerId,
        session: SessionId,
    },
    /// A stake left the player's pockets for the house.
    BetPlaced {
        player: PlayerId,
        tx: TxId,
        round: RoundId,
        game: GameId,
        currency: Currency,
        stake: Pockets,
    },
    /// A win moved from the house to the player's pockets.
    WinCredited {
        player: PlayerId,
        tx: TxId,
        bet: TxId,
        round: RoundId,
        game: GameId,
        currency: Currency,
        win: Pockets,
    },
    /// A bet was refunded; it has ended.
    BetRolledBack {
        player: PlayerId,
        tx: TxId,
        bet: TxId,
        round: RoundId,
        currency: Currency,
        refund: Pockets,
    },
    /// A rollback named a bet the shard had not seen; the bet id is now refused.
    RollbackRecordedInAdvance {
        player: PlayerId,
        tx: TxId,
        bet: TxId,
    },
    /// A round closed: its open bets ended as settled.
    RoundSettled {
        player: PlayerId,
        round: RoundId,
        game: GameId,
        currency: Currency,
        stake: Money,
        win: Money,
        bet_count: u32,
    },
    /// A limit refused a deposit or stake.
    LimitHit {
        player: PlayerId,
        kind: LimitKind,
        period: LimitPeriod,
        currency: Currency,
        limit: Money,
    },
    LimitChanged {
        player: PlayerId,
        source: LimitSource,
        kind: LimitKind,
        period: LimitPeriod,
        currency: Currency,
        amount: Option<Money>,
        effective_ms: u64,
    },
    SessionTimeLimitChanged {
        player: PlayerId,
        source: LimitSource,
        duration_ms: Option<u64>,
        effective_ms: u64,
    },
    SelfExcluded {
        player: PlayerId,
        until_ms: u64,
    },
    CoolOffStarted {
        player: PlayerId,
        until_ms: u64,
    },
    BonusGranted {
        player: PlayerId,
        tx: TxId,
        bonus: BonusId,
        currency: Currency,
        amount: Money,
        wagering_required: Money,
    },
    BonusConverted {
        player: PlayerId,
        bonus: BonusId,
        currency: Currency,
        amount: Money,
    },
    BonusForfeited {
        player: PlayerId,
        bonus: BonusId,
        currency: Currency,
        amount: Money,
    },
    SweepsGranted {
        player: PlayerId,
        tx: TxId,
        kind: SweepsGrantKind,
        amount: Money,
        playthrough: Money,
    },
    SweepsRedeemable {
        player: PlayerId,
        amount: Money,
    },
    RedemptionRequested {
        player: PlayerId,
        redemption: RedemptionId,
        amount: Money,
    },
    RedemptionPaid {
        player: PlayerId,
        redemption: RedemptionId,
        amount: Money,
    },
    RedemptionRejected {
        player: PlayerId,
        redemption: RedemptionId,
        amount: Money,
    },
    /// The shard's RNG took fresh entropy.
    RngReseeded,
    /// A round of a built-in game, with everything needed to show it again
    /// and recompute its win: game and version, choice, stake, outcome, win,
    /// and for provably-fair rounds the nonce and the server seed's hash.
    GamePlayed {
        player: PlayerId,
        tx: TxId,
        game: GameKind,
        version: u16,
        choice: Choice,
        stake: Money,
        drawn: Drawn,
        win: Money,
        fair: Option<(u64, [u8; 32])>,
    },
    /// Provably-fair seeds changed; the previous server seed is revealed.
    SeedsRotated {
        player: PlayerId,
        revealed: Option<[u8; 32]>,
        server_seed_hash: [u8; 32],
    },
    /// A promotional award moved from the house to the player's pockets
    /// (a `Payout` with `award` that found no open bet).
    AwardCredited {
        player: PlayerId,
        tx: TxId,
        round: Option<RoundId>,
        game: Option<GameId>,
        currency: Currency,
        amount: Pockets,
    },
}
