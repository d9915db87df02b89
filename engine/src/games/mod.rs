//! Built-in games, each defined by data with a version, each with its exact
//! theoretical return. A round of a built-in game is one command (see
//! `Action::Play`): the stake is debited, the outcome drawn from the shard's
//! RNG (or, in provably-fair mode, from the player's seeds), the win
//! credited and the round closed, all in one apply.

pub mod crash;
pub mod dice;
pub mod fair;
pub mod roulette;
pub mod slot;

use crate::rng::Draw;
pub use dice::DiceBet;
pub use roulette::RouletteBet;
pub use slot::SlotOutcome;

/// The catalogue: game ids as operators and sessions name them.
pub const SLOT_ID: &str = "lucky-lines";
pub const ROULETTE_ID: &str = "roulette-eu";
pub const DICE_ID: &str = "dice";
pub const CRASH_ID: &str = "crash";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum GameKind {
    Slot = 1,
    Roulette = 2,
    Dice = 3,
    Crash = 4,
}

impl GameKind {
    pub const ALL: [GameKind; 4] = [GameKind::Slot, GameKind::Roulette, GameKind::Dice, GameKind::Crash];

    pub fn from_id(id: &str) -> Option<GameKind> {
        GameKind::ALL.into_iter().find(|k| k.id() == id)
    }

    pub fn id(self) -> &'static str {
        match self {
            GameKind::Slot => SLOT_ID,
            GameKind::Roulette => ROULETTE_ID,
            GameKind::Dice => DICE_ID,
            GameKind::Crash => CRASH_ID,
        }
    }

    pub fn version(self) -> u16 {
        match self {
            GameKind::Slot => slot::VERSION,
            GameKind::Roulette => roulette::VERSION,
            GameKind::Dice => dice::VERSION,
            GameKind::Crash => crash::VERSION,
        }
    }

    pub fn from_u8(value: u8) -> Option<GameKind> {
        GameKind::ALL.into_iter().find(|k| *k as u8 == value)
    }
}

/// What the player chose for a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Choice {
    /// A spin of all 20 lines (the stake must be a multiple of 20).
    Slot,
    Roulette(RouletteBet),
    Dice(DiceBet),
    /// Cash-out target in hundredths (101 = 1.01x).
    Crash {
        target: u32,
    },
}

impl Choice {
    pub fn kind(&self) -> GameKind {
        match self {
            Choice::Slot => GameKind::Slot,
            Choice::Roulette(_) => GameKind::Roulette,
            Choice::Dice(_) => GameKind::Dice,
            Choice::Crash { .. } => GameKind::Crash,
        }
    }

    /// A stable 64-bit code of the choice, for fingerprints.
    pub fn code(&self) -> u64 {
        let kind = u64::from(self.kind() as u8) << 56;
        kind | match self {
            Choice::Slot => 0,
            Choice::Roulette(bet) => {
                let (variant, a, b): (u64, u8, u8) = match *bet {
                    RouletteBet::Straight(n) => (1, n, 0),
                    RouletteBet::Split(x, y) => (2, x, y),
                    RouletteBet::Street(r) => (3, r, 0),
                    RouletteBet::Trio { high } => (4, u8::from(high), 0),
                    RouletteBet::Corner(n) => (5, n, 0),
                    RouletteBet::FirstFour => (6, 0, 0),
                    RouletteBet::SixLine(r) => (7, r, 0),
                    RouletteBet::Column(c) => (8, c, 0),
                    RouletteBet::Dozen(d) => (9, d, 0),
                    RouletteBet::Red => (10, 0, 0),
                    RouletteBet::Black => (11, 0, 0),
                    RouletteBet::Odd => (12, 0, 0),
                    RouletteBet::Even => (13, 0, 0),
                    RouletteBet::Low => (14, 0, 0),
                    RouletteBet::High => (15, 0, 0),
                };
                variant << 16 | u64::from(a) << 8 | u64::from(b)
            }
            Choice::Dice(bet) => u64::from(bet.over) << 16 | u64::from(bet.target),
            Choice::Crash { target } => u64::from(*target),
        }
    }

    /// Whether the choice is on the table and the stake fits it.
    pub fn is_valid(&self, stake: u64) -> bool {
        match self {
            Choice::Slot => stake % slot::LINES as u64 == 0,
            Choice::Roulette(bet) => roulette::coverage(*bet).is_some(),
            Choice::Dice(bet) => dice::winning_rolls(*bet).is_some(),
            Choice::Crash { target } => crash::valid_target(*target),
        }
    }
}

/// What was drawn: enough to settle the round again and to show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Drawn {
    Slot(SlotOutcome),
    Roulette { pocket: u8 },
    Dice { roll: u16 },
    Crash { point: u32 },
}

/// Draws the outcome of a round.
pub fn draw(choice: &Choice, rng: &mut impl Draw) -> Drawn {
    match choice {
        Choice::Slot => Drawn::Slot(slot::play(rng)),
        Choice::Roulette(_) => Drawn::Roulette { pocket: roulette::draw(rng) },
        Choice::Dice(_) => Drawn::Dice { roll: dice::draw(rng) },
        Choice::Crash { .. } => Drawn::Crash { point: crash::draw(rng) },
    }
}

/// The win of a round from its recorded choice, outcome and stake; None if
/// they do not belong together. Settling and replaying both use this.
pub fn settle(choice: &Choice, drawn: &Drawn, stake: u64) -> Option<u64> {
    if !choice.is_valid(stake) {
        return None;
    }
    match (choice, drawn) {
        (Choice::Slot, Drawn::Slot(outcome)) if slot::is_valid(outcome) => Some(slot::round_win(outcome, stake)),
        (Choice::Roulette(bet), Drawn::Roulette { pocket }) if u32::from(*pocket) < roulette::POCKETS => {
            roulette::win(*bet, *pocket, stake)
        }
        (Choice::Dice(bet), Drawn::Dice { roll }) if u32::from(*roll) < dice::ROLLS => dice::win(*bet, *roll, stake),
        (Choice::Crash { target }, Drawn::Crash { point }) if *point >= 100 => crash::win(*target, *point, stake),
        _ => None,
    }
}

/// The exact theoretical return of a choice as `(numerator, denominator)`.
pub fn exact_return(choice: &Choice) -> Option<(u128, u128)> {
    match choice {
        Choice::Slot => {
            let exact = slot::exact();
            Some((exact.rtp_numerator, exact.rtp_denominator))
        }
        Choice::Roulette(bet) => roulette::exact_return(*bet).map(|(n, d)| (u128::from(n), u128::from(d))),
        Choice::Dice(bet) => dice::exact_return(*bet).map(|(n, d)| (u128::from(n), u128::from(d))),
        Choice::Crash { target } => crash::exact_return(*target),
    }
}

/// A round shown again from its record, as regulators ask ("replay last
/// game"): the outcome in words and the win recomputed from it.
pub fn describe(choice: &Choice, drawn: &Drawn) -> String {
    match drawn {
        Drawn::Slot(outcome) => {
            let mut text = String::new();
            for (at, stops) in outcome.spins.iter().enumerate() {
                let label = if at == 0 { "base spin".to_string() } else { format!("free spin {at}") };
                text.push_str(&format!("{label} (stops {stops:?}):\n"));
                let cells = slot::window(stops);
                for row in 0..slot::ROWS {
                    let names: Vec<&str> = cells.iter().map(|reel| slot::SYMBOL_NAMES[usize::from(reel[row])]).collect();
                    text.push_str(&format!("  {}\n", names.join(" | ")));
                }
            }
            text
        }
        Drawn::Roulette { pocket } => format!("bet {choice:?}; the ball landed on {pocket}"),
        Drawn::Dice { roll } => format!("bet {choice:?}; rolled {roll}"),
        Drawn::Crash { point } => format!("bet {choice:?}; crashed at {}.{:02}x", point / 100, point % 100),
    }
}
