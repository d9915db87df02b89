//! The end of a run: throughput, latency per operation, outcomes, returns
//! per game, and the books check, as text or JSON.

use serde::Serialize;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    pub op: String,
    pub count: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
    /// (percentile, nanoseconds) from the median to the maximum, for plots.
    pub percentiles: Vec<(f64, u64)>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct GameReport {
    pub game: String,
    pub currency: String,
    pub rounds: u64,
    pub stakes: i128,
    pub wins: i128,
    /// Stakes less wins, in minor units.
    pub ggr: i128,
    /// Wins over stakes, in percent.
    pub rtp_percent: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Checks {
    pub wallets_checked: u64,
    /// Accounts whose balance differs from the one recomputed from events.
    pub balance_mismatches: u64,
    pub first_mismatch: Option<String>,
    /// Money movements that appear twice in the events.
    pub applied_twice: u64,
    pub first_applied_twice: Option<String>,
    /// Every shard's invariants (conservation of money among them) hold.
    pub invariants_hold: bool,
    /// Whether the invariants could be checked (in-process only: a node
    /// checks its own, and over TCP the books are the check).
    pub invariants_checked: bool,
    pub invariant_failure: Option<String>,
    /// Replies the workload did not expect (a retry not answered as a replay, ...).
    pub unexpected_outcomes: u64,
    pub first_unexpected: Option<String>,
}

impl Checks {
    pub fn passed(&self) -> bool {
        self.balance_mismatches == 0 && self.applied_twice == 0 && self.invariants_hold && self.unexpected_outcomes == 0
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub scenario: String,
    pub seed: u64,
    pub target: String,
    pub shards: u32,
    pub players: u64,
    pub bets: u64,
    pub commands: u64,
    pub seconds: f64,
    pub commands_per_second: f64,
    pub bets_per_second: f64,
    /// Seconds of simulated time the arrivals spanned.
    pub simulated_seconds: f64,
    pub latency: Vec<Latency>,
    /// Outcomes by name ("ok", "replayed", or a rejection's name), with counts.
    pub outcomes: Vec<(String, u64)>,
    pub games: Vec<GameReport>,
    pub checks: Checks,
    pub passed: bool,
}

impl Report {
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let workers = if self.target.starts_with("tcp") { "connections" } else { "shards" };
        let _ = writeln!(
            out,
            "scenario {} (seed {}), {} target, {} {workers}: {} players, {} bets, {} commands",
            self.scenario, self.seed, self.target, self.shards, self.players, self.bets, self.commands
        );
        let _ = writeln!(
            out,
            "{:.2} s: {:.0} commands/s, {:.0} bets/s ({:.0} s of simulated arrivals)",
            self.seconds, self.commands_per_second, self.bets_per_second, self.simulated_seconds
        );
        let what = if self.target.starts_with("tcp") { "round trip" } else { "apply" };
        let _ = writeln!(
            out,
            "\nlatency ({what}, per command)\n{:<14} {:>10} {:>9} {:>9} {:>9} {:>9}",
            "op", "count", "p50 µs", "p99 µs", "p999 µs", "max µs"
        );
        for l in &self.latency {
            let us = |ns: u64| ns as f64 / 1000.0;
            let _ = writeln!(
                out,
                "{:<14} {:>10} {:>9.2} {:>9.2} {:>9.2} {:>9.1}",
                l.op,
                l.count,
                us(l.p50_ns),
                us(l.p99_ns),
                us(l.p999_ns),
                us(l.max_ns)
            );
        }
        let _ = writeln!(out, "\noutcomes");
        for (name, count) in &self.outcomes {
            let _ = writeln!(out, "  {name:<28} {count:>10}");
        }
        let _ = writeln!(
            out,
            "\ngames\n{:<16} {:<4} {:>10} {:>16} {:>16} {:>16} {:>8}",
            "game", "cur", "rounds", "stakes", "wins", "GGR", "RTP %"
        );
        for g in &self.games {
            let _ = writeln!(
                out,
                "{:<16} {:<4} {:>10} {:>16} {:>16} {:>16} {:>8.3}",
                g.game, g.currency, g.rounds, g.stakes, g.wins, g.ggr, g.rtp_percent
            );
        }
        let c = &self.checks;
        let _ = writeln!(out, "\nbooks");
        let _ = writeln!(out, "  wallets checked against their events: {} ({} mismatches)", c.wallets_checked, c.balance_mismatches);
        if let Some(first) = &c.first_mismatch {
            let _ = writeln!(out, "    first: {first}");
        }
        let _ = writeln!(out, "  transactions applied twice: {}", c.applied_twice);
        if let Some(first) = &c.first_applied_twice {
            let _ = writeln!(out, "    first: {first}");
        }
        let invariants = match (c.invariants_checked, c.invariants_hold) {
            (false, _) => "not checked from outside the node",
            (true, true) => "hold",
            (true, false) => "BROKEN",
        };
        let _ = writeln!(out, "  shard invariants (money conserved): {invariants}");
        if let Some(failure) = &c.invariant_failure {
            let _ = writeln!(out, "    {failure}");
        }
        let _ = writeln!(out, "  unexpected replies: {}", c.unexpected_outcomes);
        if let Some(first) = &c.first_unexpected {
            let _ = writeln!(out, "    first: {first}");
        }
        let _ = writeln!(
            out,
            "\n{}",
            if self.passed { "all checks passed".to_string() } else { format!("CHECKS FAILED: reproduce with --seed {}", self.seed) }
        );
        out
    }
}
