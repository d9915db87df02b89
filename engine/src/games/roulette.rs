//! European roulette: one zero, pockets 0 to 36, every standard bet.
//!
//! A bet covers a set of numbers and pays `payout : 1`, so a winning bet
//! returns `stake x (payout + 1)`. Each bet covers n numbers and pays
//! 36/n - 1, so every bet returns exactly 36/37 (97.297%), computed below by
//! enumerating the 37 pockets.
//!
//! The table: numbers 1 to 36 in 12 rows of 3 (row r holds 3r+1, 3r+2,
//! 3r+3), columns 1 to 3, 0 above the first row.

use crate::rng::Draw;

pub const VERSION: u16 = 1;
pub const POCKETS: u32 = 37;

const RED: [u8; 18] = [1, 3, 5, 7, 9, 12, 14, 16, 18, 19, 21, 23, 25, 27, 30, 32, 34, 36];

/// A bet as the player places it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouletteBet {
    /// One number, 35:1.
    Straight(u8),
    /// Two adjacent numbers (including 0 with 1, 2 or 3), 17:1.
    Split(u8, u8),
    /// A row of three (`row` 0..=11), 11:1.
    Street(u8),
    /// 0 with 1 and 2, or 0 with 2 and 3 (`high`), 11:1.
    Trio {
        high: bool,
    },
    /// Four numbers meeting at a corner, named by the smallest (top left), 8:1.
    Corner(u8),
    /// 0, 1, 2, 3, 8:1.
    FirstFour,
    /// Two adjacent rows (`row` 0..=10 and the next), 5:1.
    SixLine(u8),
    /// A column (0..=2), 2:1.
    Column(u8),
    /// A dozen (0..=2), 2:1.
    Dozen(u8),
    Red,
    Black,
    Odd,
    Even,
    /// 1 to 18.
    Low,
    /// 19 to 36.
    High,
}

/// The numbers a bet covers (a bit per pocket) and its payout, or None if
/// the bet is not on the table.
pub fn coverage(bet: RouletteBet) -> Option<(u64, u64)> {
    let bit = |n: u8| 1u64 << n;
    let is_number = |n: u8| (1..=36).contains(&n);
    let set = |numbers: &mut dyn Iterator<Item = u8>| numbers.fold(0u64, |acc, n| acc | bit(n));
    Some(match bet {
        RouletteBet::Straight(n) if n <= 36 => (bit(n), 35),
        RouletteBet::Split(a, b) => {
            let (low, high) = (a.min(b), a.max(b));
            let zero_split = low == 0 && (1..=3).contains(&high);
            let beside = is_number(low) && high == low + 1 && low % 3 != 0;
            let below = is_number(low) && high == low + 3 && high <= 36;
            if !(zero_split || beside || below) {
                return None;
            }
            (bit(low) | bit(high), 17)
        }
        RouletteBet::Street(row) if row <= 11 => (set(&mut (3 * row + 1..=3 * row + 3)), 11),
        RouletteBet::Trio { high } => (if high { bit(0) | bit(2) | bit(3) } else { bit(0) | bit(1) | bit(2) }, 11),
        RouletteBet::Corner(n) if is_number(n) && n % 3 != 0 && n <= 32 => (bit(n) | bit(n + 1) | bit(n + 3) | bit(n + 4), 8),
        RouletteBet::FirstFour => (bit(0) | bit(1) | bit(2) | bit(3), 8),
        RouletteBet::SixLine(row) if row <= 10 => (set(&mut (3 * row + 1..=3 * row + 6)), 5),
        RouletteBet::Column(c) if c <= 2 => (set(&mut (1..=36).filter(|n| (n - 1) % 3 == c)), 2),
        RouletteBet::Dozen(d) if d <= 2 => (set(&mut (12 * d + 1..=12 * d + 12)), 2),
        RouletteBet::Red => (set(&mut RED.iter().copied()), 1),
        RouletteBet::Black => (set(&mut (1..=36).filter(|n| !RED.contains(n))), 1),
        RouletteBet::Odd => (set(&mut (1..=36).filter(|n| n % 2 == 1)), 1),
        RouletteBet::Even => (set(&mut (1..=36).filter(|n| n % 2 == 0)), 1),
        RouletteBet::Low => (set(&mut (1..=18)), 1),
        RouletteBet::High => (set(&mut (19..=36)), 1),
        _ => return None,
    })
}

pub fn draw(rng: &mut impl Draw) -> u8 {
    rng.below(POCKETS) as u8
}

/// What `stake` on `bet` wins when the ball lands in `pocket`.
pub fn win(bet: RouletteBet, pocket: u8, stake: u64) -> Option<u64> {
    let (covered, payout) = coverage(bet)?;
    Some(if covered & (1u64 << pocket) != 0 { stake * (payout + 1) } else { 0 })
}

/// Exact return of a bet as `numerator / 37`, by enumerating the pockets
/// with a unit stake.
pub fn exact_return(bet: RouletteBet) -> Option<(u64, u64)> {
    let total: u64 = (0..POCKETS as u8).map(|pocket| win(bet, pocket, 1)).sum::<Option<u64>>()?;
    Some((total, u64::from(POCKETS)))
}

/// Every bet on the table, for tests and reports.
pub fn every_bet() -> Vec<RouletteBet> {
    let mut bets = Vec::new();
    for n in 0..=36 {
        bets.push(RouletteBet::Straight(n));
        for m in n + 1..=36 {
            if coverage(RouletteBet::Split(n, m)).is_some() {
                bets.push(RouletteBet::Split(n, m));
            }
        }
        if coverage(RouletteBet::Corner(n)).is_some() {
            bets.push(RouletteBet::Corner(n));
        }
    }
    bets.extend((0..=11).map(RouletteBet::Street));
    bets.extend([RouletteBet::Trio { high: false }, RouletteBet::Trio { high: true }, RouletteBet::FirstFour]);
    bets.extend((0..=10).map(RouletteBet::SixLine));
    bets.extend((0..=2).map(RouletteBet::Column));
    bets.extend((0..=2).map(RouletteBet::Dozen));
    bets.extend([RouletteBet::Red, RouletteBet::Black, RouletteBet::Odd, RouletteBet::Even, RouletteBet::Low, RouletteBet::High]);
    bets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bet_returns_thirty_six_thirty_sevenths() {
        let bets = every_bet();
        // 37 straights, 60 splits (57 + 3 with zero), 22 corners, 12 streets,
        // 2 trios, first four, 11 six lines, 3 columns, 3 dozens, 6 even chances.
        assert_eq!(bets.len(), 37 + 60 + 22 + 12 + 3 + 11 + 3 + 3 + 6);
        for bet in bets {
            assert_eq!(exact_return(bet), Some((36, 37)), "{bet:?}");
        }
    }

    #[test]
    fn bets_off_the_table_are_refused() {
        for bet in [
            RouletteBet::Straight(37),
            RouletteBet::Split(3, 4),
            RouletteBet::Split(1, 5),
            RouletteBet::Corner(3),
            RouletteBet::Corner(33),
            RouletteBet::Street(12),
            RouletteBet::SixLine(11),
            RouletteBet::Column(3),
            RouletteBet::Dozen(3),
        ] {
            assert_eq!(coverage(bet), None, "{bet:?}");
        }
    }
}
