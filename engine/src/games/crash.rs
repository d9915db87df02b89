//! Crash: a multiplier rises from 1.00x and crashes at a point drawn before
//! the round; the player names a cash-out target, and wins `stake x target`
//! if the crash point reaches it.
//!
//! The crash point, in hundredths: draw `u` uniform in `0..2^32`, let
//! `v = 2^32 - u` (in `1..=2^32`) and `K = floor((10,000 - edge) x 2^32 / 100)`;
//! the point is `max(100, floor(K / v))`. So `P(point >= T) = min(2^32,
//! floor(K / T)) / 2^32` exactly, and a target T returns
//! `T/100 x floor(K/T) / 2^32`, just under `1 - edge`.

use crate::rng::Draw;

pub const VERSION: u16 = 1;
pub const EDGE_BASIS_POINTS: u64 = 100;
/// Cash-out targets from 1.01x to 10,000x, in hundredths.
pub const TARGET_MIN: u32 = 101;
pub const TARGET_MAX: u32 = 1_000_000;

const SPAN: u64 = 1 << 32;
const K: u64 = (10_000 - EDGE_BASIS_POINTS) * SPAN / 100;

/// The crash point in hundredths.
pub fn point_from(u: u32) -> u32 {
    let v = SPAN - u64::from(u);
    u32::try_from((K / v).max(100)).unwrap_or(u32::MAX)
}

pub fn draw(rng: &mut impl Draw) -> u32 {
    point_from(rng.next_u32())
}

pub fn valid_target(target: u32) -> bool {
    (TARGET_MIN..=TARGET_MAX).contains(&target)
}

pub fn win(target: u32, point: u32, stake: u64) -> Option<u64> {
    if !valid_target(target) {
        return None;
    }
    Some(if point >= target { u64::try_from(u128::from(stake) * u128::from(target) / 100).ok()? } else { 0 })
}

/// Exact return of a target as a fraction.
pub fn exact_return(target: u32) -> Option<(u128, u128)> {
    if !valid_target(target) {
        return None;
    }
    let winning = (K / u64::from(target)).min(SPAN);
    Some((u128::from(winning) * u128::from(target), u128::from(SPAN) * 100))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_point_distribution_matches_the_closed_form() {
        // P(point >= T) = #{u : floor(K / (2^32 - u)) >= T} / 2^32.
        for target in [101u32, 150, 200, 1_000, 100_000] {
            let (numerator, denominator) = exact_return(target).expect("valid");
            let rtp = numerator as f64 / denominator as f64;
            assert!((0.9899..=0.99).contains(&rtp), "{target}: {rtp}");
            // The smallest u that reaches the target, found by the formula, really does.
            let winning = (K / u64::from(target)).min(SPAN);
            let threshold = (SPAN - winning) as u32;
            assert!(point_from(threshold) >= target);
            if threshold > 0 {
                assert!(point_from(threshold - 1) < target);
            }
        }
        assert_eq!(point_from(0), 100);
        assert_eq!(point_from(u32::MAX), u32::try_from(K).unwrap_or(u32::MAX));
    }
}
