//! Sweepstakes: Gold Coins and Sweeps Coins.
//!
//! Gold Coins (GC) are bought (a deposit in GC is a purchase), played, and
//! never redeemed or withdrawn. Sweeps Coins (SC) are never sold: they come
//! only from grants (with a purchase, as a daily reward, in a promotion, or
//! by mail-in request) and from wins.
//!
//! The SC account's pockets read: `cash` = redeemable, `bonus` = not yet
//! played through, `promo` = pending redemption.
//! - A grant adds to the unplayed pocket and opens a lot with a playthrough
//!   requirement of amount x multiple (multiple 0: redeemable at once).
//! - A stake is paid from unplayed first, then redeemable.
//! - Settled SC stakes play lots through in grant order (FIFO). When a lot
//!   is played through, up to its amount moves from unplayed to redeemable.
//!   When no unplayed coins are left at settlement, open lots are dropped:
//!   there is nothing left for them to release.
//! - SC wins are redeemable at once: the coins staked were already played.
//! - A redemption (at least the operator's minimum) moves redeemable to
//!   pending; approval pays it out (it leaves the books as a withdrawal),
//!   rejection returns it to redeemable.

use crate::ids::RedemptionId;
use crate::money::Money;

/// Most open playthrough lots per player.
pub const SWEEPS_LOTS_MAX: usize = 64;
/// Most pending redemptions per player.
pub const REDEMPTIONS_PENDING_MAX: usize = 16;
/// Largest playthrough multiple accepted.
pub const PLAYTHROUGH_MULTIPLE_MAX: u32 = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lot {
    /// Coins this lot releases when played through.
    pub amount: Money,
    /// Stake still needed to play it through.
    pub remaining: Money,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sweeps {
    pub lots: Vec<Lot>,
    pub redemptions: Vec<(RedemptionId, Money)>,
}

impl Sweeps {
    /// Applies settled SC stake to the lots, oldest first. Returns the coins
    /// released, capped at what is still unplayed.
    pub fn play_through(&mut self, mut stake: Money, unplayed: Money) -> Money {
        let mut released = Money::ZERO;
        while !stake.is_zero() {
            let Some(lot) = self.lots.first_mut() else {
                break;
            };
            let used = lot.remaining.min(stake);
            lot.remaining = lot.remaining.saturating_sub(used);
            stake = stake.saturating_sub(used);
            if lot.remaining.is_zero() {
                released = released.checked_add(lot.amount).unwrap_or(Money::MAX);
                self.lots.remove(0);
            }
        }
        released.min(unplayed)
    }

    pub fn is_empty(&self) -> bool {
        self.lots.is_empty() && self.redemptions.is_empty()
    }
}
