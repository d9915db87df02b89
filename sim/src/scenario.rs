//! Scenarios: what a run plays, from a TOML file with a seed. Four ship
//! with the crate (`sim/scenarios/`); any file of the same shape works.

use serde::{Deserialize, Serialize};

/// How bets arrive over the run's simulated time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arrival {
    /// `bets_per_second` throughout.
    Steady,
    /// From a tenth of the rate up to the full rate.
    Ramp,
    /// The rate, and ten times it in the middle tenth of the run.
    Spike,
}

/// Shares of bets by game (any positive numbers; they are normalised).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    pub slot: u32,
    pub roulette: u32,
    pub dice: u32,
    pub crash: u32,
    /// A game provider's rounds through the seamless-wallet commands: a bet,
    /// then a win that closes the round (or a close with no win).
    pub provider: u32,
}

/// Probabilities per bet of the other things players and integrations do.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rates {
    pub deposit: f64,
    pub withdrawal: f64,
    /// The same request sent again (a timeout on the caller's side).
    pub retry: f64,
    /// A provider's rollback that arrives before the bet it cancels.
    pub rollback_before_bet: f64,
    /// A provider's win sent twice.
    pub duplicate_win: f64,
    /// A bet on a session that has expired.
    pub expired_session: f64,
    /// The player closes the game session and opens a new one (leaves the
    /// game and comes back).
    pub session_churn: f64,
    /// A bonus granted (standard players).
    pub bonus: f64,
    /// A Sweeps Coins redemption requested and approved (sweepstakes players).
    pub redemption: f64,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub seed: u64,
    pub players: u64,
    pub bets: u64,
    pub arrival: Arrival,
    pub bets_per_second: u64,
    /// Pareto shape of player activity: lower means a heavier tail.
    pub activity_alpha: f64,
    /// Stakes are drawn log-uniformly between these, in minor units.
    pub stake_min: u64,
    pub stake_max: u64,
    /// Share of players on the sweepstakes operator (Gold and Sweeps Coins).
    pub sweepstakes_share: f64,
    pub mix: Mix,
    pub rates: Rates,
}

const BUILT_IN: [(&str, &str); 4] = [
    ("steady", include_str!("../scenarios/steady.toml")),
    ("jackpot-night", include_str!("../scenarios/jackpot-night.toml")),
    ("promotion-spike", include_str!("../scenarios/promotion-spike.toml")),
    ("sweepstakes", include_str!("../scenarios/sweepstakes.toml")),
];

impl Scenario {
    /// The names of the scenarios that ship with the crate.
    pub fn built_in_names() -> impl Iterator<Item = &'static str> {
        BUILT_IN.iter().map(|(name, _)| *name)
    }

    /// A shipped scenario by name, or a TOML file by path.
    pub fn load(name_or_path: &str) -> anyhow::Result<Scenario> {
        let text = match BUILT_IN.iter().find(|(name, _)| *name == name_or_path) {
            Some((_, text)) => (*text).to_string(),
            None => std::fs::read_to_string(name_or_path).map_err(|e| {
                anyhow::anyhow!(
                    "{name_or_path:?} is neither a scenario ({}) nor a readable file: {e}",
                    Scenario::built_in_names().collect::<Vec<_>>().join(", ")
                )
            })?,
        };
        let scenario: Scenario = toml::from_str(&text).map_err(|e| anyhow::anyhow!("parsing scenario {name_or_path}: {e}"))?;
        scenario.validate()?;
        Ok(scenario)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let mix = &self.mix;
        let rates = &self.rates;
        let probabilities = [
            rates.deposit,
            rates.withdrawal,
            rates.retry,
            rates.rollback_before_bet,
            rates.duplicate_win,
            rates.expired_session,
            rates.session_churn,
            rates.bonus,
            rates.redemption,
            self.sweepstakes_share,
        ];
        anyhow::ensure!(self.players > 0 && self.bets > 0, "players and bets must be positive");
        anyhow::ensure!(self.players <= 100_000_000, "at most 100,000,000 players");
        anyhow::ensure!(self.bets_per_second > 0, "bets_per_second must be positive");
        anyhow::ensure!(self.activity_alpha > 0.1 && self.activity_alpha < 10.0, "activity_alpha must be within 0.1 to 10");
        anyhow::ensure!(self.stake_min >= 20 && self.stake_min <= self.stake_max, "stakes: 20 <= stake_min <= stake_max");
        anyhow::ensure!(self.stake_max <= 10_000_000, "stake_max at most 10,000,000 minor units");
        anyhow::ensure!(mix.slot + mix.roulette + mix.dice + mix.crash + mix.provider > 0, "the game mix is empty");
        anyhow::ensure!(probabilities.iter().all(|p| (0.0..=1.0).contains(p)), "rates and shares are probabilities (0 to 1)");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_scenarios_parse_and_validate() {
        for name in Scenario::built_in_names() {
            let scenario = Scenario::load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(scenario.name, name);
        }
        assert!(Scenario::load("no-such-scenario").is_err());
    }
}
