//! "Lucky Lines": a 5-reel, 3-row video slot with 20 paylines, a wild and a
//! scatter, and free spins. Defined by data (reel strips, paytable, lines);
//! its theoretical return is computed exactly from that data.
//!
//! Rules:
//! - The stake is split evenly over the 20 lines (it must be a multiple of 20
//!   minor units). Each reel stops uniformly at one of its strip positions;
//!   the window shows that position and the next two (wrapping).
//! - A line pays for 3, 4 or 5 of a symbol in a row from the leftmost reel;
//!   WILD substitutes for every symbol but SCATTER, and a run of wilds pays as
//!   wilds if that is worth more. A line pays `multiple x line bet`.
//! - SCATTER pays anywhere: 3, 4, 5 scatters in the window pay 2, 10, 50 x the
//!   stake, and 3 or more award 10 free spins, played at once on the same
//!   reels, where every win is doubled. Free spins do not award more free
//!   spins.
//!
//! Exact return: a payline shows one row of each reel, and a reel's symbol
//! at a given row is distributed as the strip's symbol counts, independently
//! across reels; so the expected line win is a sum over symbol 5-tuples
//! weighted by those counts, the same for every line. The scatter count's
//! distribution is the convolution over reels of each reel's distribution
//! (enumerated over its stops). By linearity of expectation,
//! RTP = E[spin] x (1 + 10 x 2 x P(3+ scatters)), with E[spin] the expected
//! win of one spin per unit stake. All counts are integers; the result is an
//! exact fraction.

use crate::rng::Draw;

pub const VERSION: u16 = 1;
pub const LINES: usize = 20;
pub const REELS: usize = 5;
pub const ROWS: usize = 3;
pub const FREE_SPINS: usize = 10;
pub const FREE_SPIN_MULTIPLIER: u64 = 2;

pub const WILD: u8 = 0;
pub const SCATTER: u8 = 1;
pub const SYMBOLS: usize = 10;
pub const SYMBOL_NAMES: [&str; SYMBOLS] = ["WILD", "SCATTER", "SEVEN", "BELL", "STAR", "MELON", "GRAPE", "PLUM", "LEMON", "CHERRY"];

/// Line pays for 3, 4 and 5 in a row, as multiples of the line bet.
const PAYS: [[u64; 3]; SYMBOLS] = [
    [150, 750, 3_000], // WILD
    [0, 0, 0],         // SCATTER (pays anywhere, below)
    [75, 300, 1_500],  // SEVEN
    [45, 180, 750],    // BELL
    [30, 120, 450],    // STAR
    [20, 60, 300],     // MELON
    [15, 45, 225],     // GRAPE
    [12, 30, 150],     // PLUM
    [8, 25, 90],       // LEMON
    [5, 16, 75],       // CHERRY
];

/// Scatter pays for 0..=5 scatters in the window, as multiples of the stake.
const SCATTER_PAYS: [u64; 6] = [0, 0, 0, 2, 10, 50];

/// Rows (0 top, 1 middle, 2 bottom) of each reel for each payline.
pub const PAYLINES: [[u8; REELS]; LINES] = [
    [1, 1, 1, 1, 1],
    [0, 0, 0, 0, 0],
    [2, 2, 2, 2, 2],
    [0, 1, 2, 1, 0],
    [2, 1, 0, 1, 2],
    [0, 0, 1, 0, 0],
    [2, 2, 1, 2, 2],
    [1, 2, 2, 2, 1],
    [1, 0, 0, 0, 1],
    [1, 0, 1, 0, 1],
    [1, 2, 1, 2, 1],
    [0, 1, 0, 1, 0],
    [2, 1, 2, 1, 2],
    [1, 1, 0, 1, 1],
    [1, 1, 2, 1, 1],
    [0, 1, 1, 1, 0],
    [2, 1, 1, 1, 2],
    [0, 2, 0, 2, 0],
    [2, 0, 2, 0, 2],
    [0, 2, 2, 2, 0],
];

/// The reel strips (symbol indices). Scatters stand at least three apart so
/// the window shows at most one per reel; wilds are on the middle reels.
pub const STRIPS: [&[u8]; REELS] = [
    &[9, 8, 7, 1, 6, 5, 3, 4, 2, 9, 8, 7, 6, 5, 3, 4, 9, 8, 7, 6, 5, 9, 8, 7, 6, 9, 8, 7, 9, 8, 9, 9],
    &[8, 9, 7, 1, 6, 5, 0, 3, 4, 2, 8, 9, 7, 6, 5, 0, 3, 4, 8, 9, 7, 6, 5, 8, 9, 7, 6, 8, 9, 7, 8, 9],
    &[8, 9, 7, 1, 6, 5, 0, 3, 4, 2, 8, 9, 7, 6, 5, 0, 3, 4, 8, 9, 7, 6, 5, 8, 9, 7, 6, 8, 9, 7, 8, 9],
    &[8, 9, 7, 1, 6, 5, 0, 3, 4, 2, 8, 9, 7, 6, 5, 0, 3, 4, 8, 9, 7, 6, 5, 8, 9, 7, 6, 8, 9, 7, 8, 9],
    &[9, 8, 7, 1, 6, 5, 3, 4, 2, 9, 8, 7, 6, 5, 3, 4, 9, 8, 7, 6, 5, 9, 8, 7, 6, 9, 8, 7, 9, 8, 9, 9],
];

/// Where the reels stopped: one strip position per reel.
pub type Stops = [u8; REELS];

/// The symbols in the window, `[reel][row]`.
pub fn window(stops: &Stops) -> [[u8; ROWS]; REELS] {
    let mut out = [[0u8; ROWS]; REELS];
    for (reel, strip) in STRIPS.iter().enumerate() {
        for (row, cell) in out[reel].iter_mut().enumerate() {
            *cell = strip[(usize::from(stops[reel]) + row) % strip.len()];
        }
    }
    out
}

/// The pay of one line's five symbols, as a multiple of the line bet.
pub fn line_multiple(symbols: &[u8; REELS]) -> u64 {
    // The run of wilds from the left, and the symbol they stand in for.
    let wild_run = symbols.iter().take_while(|&&s| s == WILD).count();
    let wild_pay = if wild_run >= 3 { PAYS[usize::from(WILD)][wild_run - 3] } else { 0 };
    let Some(&symbol) = symbols.iter().find(|&&s| s != WILD) else {
        return wild_pay;
    };
    if symbol == SCATTER {
        return wild_pay;
    }
    let run = symbols.iter().take_while(|&&s| s == symbol || s == WILD).count();
    let symbol_pay = if run >= 3 { PAYS[usize::from(symbol)][run - 3] } else { 0 };
    symbol_pay.max(wild_pay)
}

/// One spin's win as (line multiples summed, scatter count).
pub fn spin_pays(stops: &Stops) -> (u64, usize) {
    let cells = window(stops);
    let mut lines = 0u64;
    for line in &PAYLINES {
        let mut symbols = [0u8; REELS];
        for reel in 0..REELS {
            symbols[reel] = cells[reel][usize::from(line[reel])];
        }
        lines += line_multiple(&symbols);
    }
    let scatters = cells.iter().flatten().filter(|&&s| s == SCATTER).count();
    (lines, scatters)
}

/// The win of one spin for `stake` (a multiple of 20), without free spins.
fn spin_win(stops: &Stops, stake: u64) -> (u64, usize) {
    let (lines, scatters) = spin_pays(stops);
    let line_bet = stake / LINES as u64;
    (lines * line_bet + SCATTER_PAYS[scatters.min(5)] * stake, scatters)
}

pub fn draw_stops(rng: &mut impl Draw) -> Stops {
    let mut stops = [0u8; REELS];
    for (reel, strip) in STRIPS.iter().enumerate() {
        stops[reel] = rng.below(strip.len() as u32) as u8;
    }
    stops
}

/// A played round: the base spin, then the free spins if awarded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotOutcome {
    pub spins: Vec<Stops>,
}

/// Plays a round: draws the base spin and any free spins.
pub fn play(rng: &mut impl Draw) -> SlotOutcome {
    let base = draw_stops(rng);
    let mut spins = vec![base];
    if spin_pays(&base).1 >= 3 {
        for _ in 0..FREE_SPINS {
            spins.push(draw_stops(rng));
        }
    }
    SlotOutcome { spins }
}

/// The win of a recorded round (used to settle and to replay).
pub fn round_win(outcome: &SlotOutcome, stake: u64) -> u64 {
    outcome.spins.iter().enumerate().map(|(at, stops)| spin_win(stops, stake).0 * if at == 0 { 1 } else { FREE_SPIN_MULTIPLIER }).sum()
}

/// Whether a recorded round is well formed: stops on the strips, and free
/// spins exactly when the base spin awarded them.
pub fn is_valid(outcome: &SlotOutcome) -> bool {
    let stops_ok = outcome.spins.iter().all(|stops| stops.iter().zip(STRIPS.iter()).all(|(s, strip)| usize::from(*s) < strip.len()));
    let Some(base) = outcome.spins.first() else {
        return false;
    };
    let expected = if spin_pays(base).1 >= 3 { 1 + FREE_SPINS } else { 1 };
    stops_ok && outcome.spins.len() == expected
}

/// The exact theoretical return, as a fraction `numerator / denominator`,
/// with the hit frequency of the base spin (any win) as a fraction too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exact {
    pub rtp_numerator: u128,
    pub rtp_denominator: u128,
    pub free_spins_numerator: u128,
    pub free_spins_denominator: u128,
}

pub fn exact() -> Exact {
    // Symbol counts per reel.
    let mut counts = [[0u128; SYMBOLS]; REELS];
    for (reel, strip) in STRIPS.iter().enumerate() {
        for &symbol in strip.iter() {
            counts[reel][usize::from(symbol)] += 1;
        }
    }
    let lengths: Vec<u128> = STRIPS.iter().map(|s| s.len() as u128).collect();
    let cycle: u128 = lengths.iter().product();

    // Expected line multiple x cycle, over symbol 5-tuples.
    let mut line_sum = 0u128;
    let mut tuple = [0u8; REELS];
    for code in 0..SYMBOLS.pow(REELS as u32) {
        let mut rest = code;
        let mut weight = 1u128;
        for reel in 0..REELS {
            tuple[reel] = (rest % SYMBOLS) as u8;
            rest /= SYMBOLS;
            weight *= counts[reel][usize::from(tuple[reel])];
        }
        if weight != 0 {
            line_sum += weight * u128::from(line_multiple(&tuple));
        }
    }

    // Scatter count distribution, x cycle.
    let mut distribution = vec![1u128];
    for strip in STRIPS.iter() {
        let mut per_reel = [0u128; ROWS + 1];
        for stop in 0..strip.len() {
            let shown = (0..ROWS).filter(|row| strip[(stop + row) % strip.len()] == SCATTER).count();
            per_reel[shown] += 1;
        }
        let mut next = vec![0u128; distribution.len() + ROWS];
        for (have, ways) in distribution.iter().enumerate() {
            for (add, reel_ways) in per_reel.iter().enumerate() {
                next[have + add] += ways * reel_ways;
            }
        }
        distribution = next;
    }
    let scatter_sum: u128 = distribution.iter().enumerate().map(|(n, ways)| ways * u128::from(SCATTER_PAYS[n.min(5)])).sum();
    let triggers: u128 = distribution.iter().skip(3).sum();

    // Twenty line bets make the stake, so per unit stake
    // E[spin] = E[one line's multiple] + E[scatter multiple] = (line_sum + scatter_sum) / cycle,
    // and RTP = E[spin] x (1 + FREE_SPINS x MULTIPLIER x triggers / cycle).
    let spin_numerator = line_sum + scatter_sum; // over cycle
    let boost_numerator = cycle + FREE_SPINS as u128 * u128::from(FREE_SPIN_MULTIPLIER) * triggers; // over cycle
    Exact {
        rtp_numerator: spin_numerator * boost_numerator,
        rtp_denominator: cycle * cycle,
        free_spins_numerator: triggers,
        free_spins_denominator: cycle,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_pay_left_to_right_with_wild_substitution() {
        assert_eq!(line_multiple(&[2, 2, 2, 9, 9]), 75);
        assert_eq!(line_multiple(&[2, 0, 2, 2, 9]), 300);
        assert_eq!(line_multiple(&[0, 0, 0, 9, 8]), 150, "three wilds pay as wilds, more than as three cherries");
        assert_eq!(line_multiple(&[0, 0, 0, 0, 0]), 3_000);
        assert_eq!(line_multiple(&[9, 9, 1, 9, 9]), 0, "a scatter breaks a line");
        assert_eq!(line_multiple(&[8, 9, 9, 9, 9]), 0, "runs start on the leftmost reel");
    }

    #[test]
    fn scatters_stand_at_least_three_apart() {
        for strip in STRIPS {
            let at: Vec<usize> = strip.iter().enumerate().filter(|(_, s)| **s == SCATTER).map(|(i, _)| i).collect();
            for pair in at.windows(2) {
                assert!(pair[1] - pair[0] >= 3);
            }
            if let (Some(first), Some(last)) = (at.first(), at.last()) {
                assert!(first + strip.len() - last >= 3 || at.len() == 1);
            }
        }
    }

    /// The closed form agrees with brute-force enumeration of every stop
    /// combination of the base spin (lines and scatter pays, no free spins).
    #[test]
    fn the_closed_form_matches_full_cycle_enumeration_of_the_base_spin() {
        let exact = exact();
        let lengths: Vec<usize> = STRIPS.iter().map(|s| s.len()).collect();
        let mut total = 0u128;
        let mut triggers = 0u128;
        let mut stops = [0u8; REELS];
        for a in 0..lengths[0] {
            for b in 0..lengths[1] {
                for c in 0..lengths[2] {
                    for d in 0..lengths[3] {
                        for e in 0..lengths[4] {
                            stops = [a as u8, b as u8, c as u8, d as u8, e as u8];
                            let (win, scatters) = spin_win(&stops, LINES as u64);
                            total += u128::from(win);
                            triggers += u128::from(scatters >= 3);
                        }
                    }
                }
            }
        }
        let _ = stops;
        let cycle: u128 = lengths.iter().map(|&l| l as u128).product();
        assert_eq!(triggers, exact.free_spins_numerator);
        // With a stake of 20 the line bet is 1, so `total` is E[spin] x cycle x 20
        // (20 times the closed form's spin numerator); the free-spin boost multiplies both.
        let boost = cycle + FREE_SPINS as u128 * u128::from(FREE_SPIN_MULTIPLIER) * triggers;
        assert_eq!(total * boost, exact.rtp_numerator * LINES as u128, "closed form and enumeration disagree");
    }
}
