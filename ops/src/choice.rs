//! Text forms of a game choice, for the command line.
//!
//! - lucky-lines: `spin` (the default)
//! - roulette-eu: `straight:N`, `split:A,B`, `street:ROW`, `trio:low|high`,
//!   `corner:N`, `first-four`, `six-line:ROW`, `column:C`, `dozen:D`, `red`,
//!   `black`, `odd`, `even`, `low`, `high` (default `straight:17`)
//! - dice: `under:T` or `over:T`, T in 0..10000 (default `under:5000`)
//! - crash: the cash-out target as `2.00` (default `2.00`)

use anyhow::{anyhow, bail, Context as _};
use engine::games::{Choice, DiceBet, GameKind, RouletteBet};

pub fn default_bet(kind: GameKind) -> &'static str {
    match kind {
        GameKind::Slot => "spin",
        GameKind::Roulette => "straight:17",
        GameKind::Dice => "under:5000",
        GameKind::Crash => "2.00",
    }
}

fn number<T: std::str::FromStr>(text: &str, what: &str) -> anyhow::Result<T> {
    text.trim().parse().map_err(|_| anyhow!("{what} must be a number, not {text:?}"))
}

pub fn parse(kind: GameKind, text: &str) -> anyhow::Result<Choice> {
    let (name, argument) = text.split_once(':').unwrap_or((text, ""));
    let choice = match kind {
        GameKind::Slot => match text {
            "spin" => Choice::Slot,
            _ => bail!("lucky-lines takes the bet `spin`"),
        },
        GameKind::Roulette => Choice::Roulette(match name {
            "straight" => RouletteBet::Straight(number(argument, "the number")?),
            "split" => {
                let (a, b) = argument.split_once(',').context("split takes two numbers: split:A,B")?;
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

pub fn game(id: &str) -> anyhow::Result<GameKind> {
    GameKind::from_id(id).ok_or_else(|| {
        let known: Vec<&str> = GameKind::ALL.iter().map(|k| k.id()).collect();
        anyhow!("unknown game {id:?}; the catalogue: {}", known.join(", "))
    })
}
