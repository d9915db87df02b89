//! The betting engine: a pure, deterministic state machine for one shard.
//!
//! It owns the wallets and game sessions of the players whose slots belong
//! to the shard, and moves their money exactly once: bets, wins, rollbacks,
//! deposits, withdrawals, bonuses, sweepstakes coins, each keyed by a
//! transaction id, each checked against responsible-gaming limits in the
//! same step that debits.
//!
//! It does no I/O, reads no clock, spawns no thread and draws no ambient
//! randomness: time arrives in the [`Context`] the leader stamps on each
//! batch, and every replica that applies the same batches holds the same
//! state, down to the bytes of [`Shard::snapshot`].
//!
//! Key types: [`Shard`] (apply, snapshot, restore, check invariants),
//! [`Command`] and [`Action`] (the inputs), [`Reply`] and [`Rejection`] (the
//! outputs; rejection numbers are wire codes), [`Event`] (what happened, for
//! consumers off the bet path), [`Money`] and [`Amount`]. [`encode_batch`]
//! and [`encode_events`] give the canonical bytes of a log entry and of its
//! journal record; their decoders validate everything.
//!
//! Not here: networking, persistence, replication, routing (see the
//! `cluster`, `persistence` and `gateway` crates), and games' random
//! outcomes (a later module of this crate).

pub mod apply;
mod blocks;
pub mod bonus;
pub mod codec;
pub mod command;
pub mod currency;
pub mod entry;
pub mod event;
pub mod games;
pub mod ids;
pub mod index;
pub mod ledger;
pub mod limits;
pub mod money;
mod prefetch;
pub mod reply;
mod residents;
pub mod rng;
pub mod session;
pub mod shard;
pub mod sweeps;
mod table;
pub mod wallet;

pub use command::{
    Action, BonusTerms, Command, Context, OperatorConfig, Stake, SweepsGrantKind, LIMIT_INCREASE_DELAY_DEFAULT_MS, LOOKUP_MAX,
};
pub use currency::{Currency, CurrencySpec};
pub use entry::{decode_batch, decode_events, encode_batch, encode_events, BATCH_FORMAT_VERSION, EVENTS_FORMAT_VERSION};
pub use event::Event;
pub use ids::{BonusId, ExternalId, GameId, OperatorId, PlayerId, RedemptionId, RoundId, SessionId, TxId};
pub use limits::{LimitKind, LimitPeriod, LimitSource};
pub use money::{Amount, Money, Pockets};
pub use reply::{Balance, Found, Outcome, Rejection, Reply, RoundView, SessionView, TxReply};
pub use session::Locale;
pub use shard::{Residency, Shard, ShardConfig};
