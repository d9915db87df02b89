//! Dice: a roll from 0 to 9,999; the player bets it lands under or over a
//! target. The house edge is part of the game's data (in basis points); the
//! payout multiplier, in ten-thousandths, is
//! `floor((10,000 - edge) x 10,000 / winning rolls)`, so the exact return is
//! `winning rolls x multiplier / 10,000^2`, at most `1 - edge` (the floor
//! can only lower it). A win is `floor(stake x multiplier / 10,000)`.

use crate::rng::Draw;

pub const VERSION: u16 = 1;
pub const ROLLS: u32 = 10_000;
/// The catalogue's house edge: 1%.
pub const EDGE_BASIS_POINTS: u64 = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DiceBet {
    /// Wins if the roll is below `target` (under) or at or above it (over).
    pub target: u16,
    pub over: bool,
}

/// Winning rolls of a bet; None if the bet is outside 1% to 98% chance.
pub fn winning_rolls(bet: DiceBet) -> Option<u64> {
    let target = u64::from(bet.target);
    if target == 0 || target >= u64::from(ROLLS) {
        return None;
    }
    let rolls = if bet.over { u64::from(ROLLS) - target } else { target };
    (100..=9_800).contains(&rolls).then_some(rolls)
}

/// Payout multiplier in ten-thousandths.
pub fn multiplier(bet: DiceBet) -> Option<u64> {
    let rolls = winning_rolls(bet)?;
    Some((10_000 - EDGE_BASIS_POINTS) * 10_000 / rolls)
}

pub fn draw(rng: &mut impl Draw) -> u16 {
    rng.below(ROLLS) as u16
}

pub fn win(bet: DiceBet, roll: u16, stake: u64) -> Option<u64> {
    let multiplier = multiplier(bet)?;
    let wins = if bet.over { roll >= bet.target } else { roll < bet.target };
    Some(if wins { u64::try_from(u128::from(stake) * u128::from(multiplier) / 10_000).ok()? } else { 0 })
}

/// Exact return as a fraction (before the per-stake rounding of wins).
pub fn exact_return(bet: DiceBet) -> Option<(u64, u64)> {
    Some((winning_rolls(bet)? * multiplier(bet)?, 10_000 * u64::from(ROLLS)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_stay_within_the_edge() {
        for target in (100..=9_900).step_by(7) {
            for over in [false, true] {
                let bet = DiceBet { target, over };
                if let Some((numerator, denominator)) = exact_return(bet) {
                    let rtp = numerator as f64 / denominator as f64;
                    assert!(rtp <= 0.99 && rtp > 0.9899, "{bet:?}: {rtp}");
                }
            }
        }
        assert_eq!(multiplier(DiceBet { target: 5_000, over: false }), Some(19_800));
        assert_eq!(win(DiceBet { target: 5_000, over: false }, 4_999, 100), Some(198));
        assert_eq!(win(DiceBet { target: 5_000, over: false }, 5_000, 100), Some(0));
        assert_eq!(winning_rolls(DiceBet { target: 50, over: false }), None, "below 1% chance");
    }
}
