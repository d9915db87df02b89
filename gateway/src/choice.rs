//! Text forms of a game choice, used by the protocol's `Play.bet` field and
//! the command line.
//!
//! - lucky-lines: `spin` (the default)
//! - roulette-eu: `straight:N`, `split:A,B`, `street:ROW`, `trio:low|high`,
//!   `corner:N`, `first-four`, `six-line:ROW`, `column:C`, `dozen:D`, `red`,
//!   `black`, `odd`, `even`, `low`, `high` (default `straight:17`)
//! - dice: `under:T` or `over:T`, T in 0..10000 (default `under:5000`)
//! - crash: the cash-out target as `2.00` (default `2.00`)

use engine::games::{Choice, DiceBet, GameKind, RouletteBet};
use std::fmt;

pub fn default_bet(kind: GameKind) -> &'static str {
    match kind {
        GameKind::Slot => "spin",
        GameKind::Roulette => "straight:17",
        GameKind::Dice => "under:5000",
        GameKind::Crash => "2.00",
    }
}

/// Why a bet's text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChoiceError(pub String);

impl fmt::Display for ChoiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ChoiceError {}

macro_rules! bail {
    ($($arg:tt)*) => { return Err(ChoiceError(format!($($arg)*))) };
}

fn number<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, ChoiceError> {
    text.trim().parse().map_err(|_| ChoiceError(format!("{what} must be a number, not {text:?}")))
}

pub fn parse(kind: GameKind, text: &str) -> Result<Choice, ChoiceError> {
    let (name, argument) = text.split_once(':').unwrap_or((text, ""));
    let choice = match kind {
        GameKind::Slot => match text {
            "spin" => Choice::Slot,
            _ => bail!("lucky-lines takes the bet `spin`"),
        },
        GameKind::Roulette => Choice::Roulette(match name {
            "straight" => RouletteBet::Straight(number(argument, "the number")?),
            "split" => {
                let Some((a, b)) = argument.split_once(',') else { bail!("split takes two numbers: split:A,B") };
                RouletteBet::Split(number(a, "a number")?, number(b, "a number")?)
            }
            "street" => RouletteBet::Street(number(argument, "the row")?),
            "trio" => RouletteBet::Trio { high: argument == "high" },
            "corner" => RouletteBet::Corner(number(argument, "the corner's smallest number")?),
            "first-four" => RouletteBet::FirstFour,
            "six-line" => RouletteBet::SixLine(number(argument, "the row")?),
            "column" => RouletteBet::Column(number(argument, "the column")?),
            "dozen" => RouletteBet::Dozen(number(argument, "the dozen")?),
            "red" => RouletteBet::Red,
            "black" => RouletteBet::Black,
            "odd" => RouletteBet::Odd,
            "even" => RouletteBet::Even,
            "low" => RouletteBet::Low,
            "high" => RouletteBet::High,
            other => bail!("unknown roulette bet {other:?}"),
        }),
        GameKind::Dice => match name {
            "under" | "over" => Choice::Dice(DiceBet { target: number(argument, "the target")?, over: name == "over" }),
            _ => bail!("dice bets are under:T or over:T"),
        },
        GameKind::Crash => {
            let target: f64 = number(text, "the cash-out target")?;
            Choice::Crash { target: (target * 100.0).round() as u32 }
        }
    };
    let unit_stake = if kind == GameKind::Slot { 20 } else { 1 };
    if !choice.is_valid(unit_stake) {
        bail!("{text:?} is not a valid bet for {}", kind.id());
    }
    Ok(choice)
}

pub fn game(id: &str) -> Result<GameKind, ChoiceError> {
    GameKind::from_id(id).ok_or_else(|| {
        let known: Vec<&str> = GameKind::ALL.iter().map(|k| k.id()).collect();
        ChoiceError(format!("unknown game {id:?}; the catalogue: {}", known.join(", ")))
    })
}

/// The outcome as one line of text: slot stops ("3 1 4 1 5", spins
/// separated by ";"), the roulette pocket, the dice roll, the crash point.
pub fn outcome_text(drawn: &engine::games::Drawn) -> String {
    use engine::games::Drawn;
    match drawn {
        Drawn::Slot(outcome) => {
            outcome.spins.iter().map(|stops| stops.iter().map(u8::to_string).collect::<Vec<_>>().join(" ")).collect::<Vec<_>>().join(";")
        }
        Drawn::Roulette { pocket } => pocket.to_string(),
        Drawn::Dice { roll } => roll.to_string(),
        Drawn::Crash { point } => format!("{}.{:02}", point / 100, point % 100),
    }
}

/// The inverse of [`outcome_text`]: a recorded outcome read back, for
/// showing a round again.
pub fn parse_outcome(kind: GameKind, text: &str) -> Result<engine::games::Drawn, ChoiceError> {
    use engine::games::{Drawn, SlotOutcome};
    let text = text.trim();
    Ok(match kind {
        GameKind::Slot => {
            let mut spins = Vec::new();
            for spin in text.split(';') {
                let stops: Vec<u8> = spin.split_whitespace().map(|s| number(s, "a reel stop")).collect::<Result<_, _>>()?;
                let Ok(stops) = <[u8; engine::games::slot::REELS]>::try_from(stops) else { bail!("a spin has five reel stops") };
                spins.push(stops);
            }
            Drawn::Slot(SlotOutcome { spins })
        }
        GameKind::Roulette => Drawn::Roulette { pocket: number(text, "the pocket")? },
        GameKind::Dice => Drawn::Dice { roll: number(text, "the roll")? },
        GameKind::Crash => {
            let point: f64 = number(text, "the crash point")?;
            Drawn::Crash { point: (point * 100.0).round() as u32 }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::games::{self, Drawn, SlotOutcome};

    #[test]
    fn outcomes_read_back_as_written() {
        let cases = [
            (GameKind::Slot, Drawn::Slot(SlotOutcome { spins: vec![[1, 2, 3, 4, 5], [0, 0, 0, 0, 31]] })),
            (GameKind::Roulette, Drawn::Roulette { pocket: 17 }),
            (GameKind::Dice, Drawn::Dice { roll: 4_999 }),
            (GameKind::Crash, Drawn::Crash { point: 237 }),
        ];
        for (kind, drawn) in cases {
            assert_eq!(parse_outcome(kind, &outcome_text(&drawn)), Ok(drawn));
        }
        assert!(parse_outcome(GameKind::Slot, "1 2 3").is_err());
        let _ = games::SLOT_ID;
    }
}
