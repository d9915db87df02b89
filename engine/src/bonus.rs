//! Bonus grants. One active bonus per currency; its money sits in the
//! account's bonus pocket.
//!
//! Rules (documented for operators and players):
//! - A stake is paid from cash first, then from bonus ("real money first").
//! - A win is credited to bonus in the proportion its bet was paid from
//!   bonus (rounded down), the rest to cash. A bet remembers the bonus
//!   active when it was placed, and the bonus share of its wins and refund
//!   follows that bonus: to the bonus pocket while it is active; to cash if
//!   it has converted; to the house if it was forfeited or expired (bonus
//!   winnings go with the bonus). A bet placed with no bonus active has its
//!   bonus share (only a caller's explicit split can have one) paid to the
//!   active bonus, or to cash if none.
//! - Wagering progress counts when a bet is settled (its round closes), not
//!   when it is placed, so a rollback needs no undo. Only bets placed under
//!   the bonus count, at the game's contribution weight (percent).
//! - A bonus id is granted once per player; its end (converted or
//!   forfeited) is kept in the idempotency index for its retention.
//! - When wagering reaches the requirement, the bonus pocket converts to cash.
//! - At expiry, or when the operator forfeits it, the bonus pocket returns
//!   to the house.
//! - While a bonus is active, a stake above its maximum bet is refused.

use crate::currency::Currency;
use crate::ids::{BonusId, GameId};
use crate::money::Money;

/// The most games a bonus may weight individually.
pub const BONUS_WEIGHTS_MAX: usize = 32;
/// The largest wagering multiple accepted.
pub const WAGERING_MULTIPLE_MAX: u32 = 1_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveBonus {
    pub bonus: BonusId,
    pub currency: Currency,
    pub granted: Money,
    pub wagering_required: Money,
    pub wagered: Money,
    pub max_bet: Money,
    pub expires_ms: u64,
    /// Sorted by game id, unique.
    pub weights: Vec<(GameId, u8)>,
    pub default_weight_percent: u8,
}

impl ActiveBonus {
    pub fn weight_percent(&self, game: &GameId) -> u8 {
        match self.weights.binary_search_by(|(g, _)| g.cmp(game)) {
            Ok(at) => self.weights[at].1,
            Err(_) => self.default_weight_percent,
        }
    }

    /// Counts a settled stake; returns true when the requirement is met.
    pub fn add_wagering(&mut self, stake: Money, game: &GameId) -> bool {
        let counted = stake.mul_div_floor(u64::from(self.weight_percent(game)), 100).unwrap_or(Money::MAX);
        self.wagered = self.wagered.checked_add(counted).unwrap_or(Money::MAX);
        self.is_complete()
    }

    pub fn is_complete(&self) -> bool {
        self.wagered >= self.wagering_required
    }
}
