//! Bet+win rounds applied to one shard on one thread, over many wallets.
//!
//! Phases:
//! 1. Memory: on a shard that keeps few idempotency records, create
//!    `wallets` wallets with a deposit each, few resident at a time, then
//!    passivate all and read the resident memory per idle wallet. (The
//!    deposits' idempotency records are the index's cost, bounded by its
//!    retention and reported as bytes per record.)
//! 2. On a shard with the default retention: the same wallets, a session
//!    each, and `warmup_rounds` untimed rounds so the index is full and
//!    evicting (steady state).
//! 3. Throughput: `rounds` rounds (a bet, then a win that closes the round)
//!    for uniformly random players, applied in batches of `batch` commands
//!    (one raft entry's worth); only `apply_batch` is timed.
//! 4. Latency: the same, one command per batch, each apply timed into an
//!    HDR histogram.

use std::time::{Duration, Instant};

use engine::{
    Action, Amount, Command, Context, Currency, CurrencySpec, Event, GameId, OperatorConfig, OperatorId, Outcome, PlayerId, Reply,
    Residency, RoundId, SessionId, Shard, ShardConfig, Stake, TxId, LIMIT_INCREASE_DELAY_DEFAULT_MS,
};
use hdrhistogram::Histogram;

use crate::memory::resident_bytes;

/// What a round is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// A provider's bet, then a win that closes the round: two commands.
    BetWin,
    /// A spin of the built-in slot: one `Play` command (debit, draw, credit, close).
    Slot,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::BetWin => "bet-win",
            Workload::Slot => "slot",
        }
    }

    pub fn commands_per_round(self) -> u64 {
        match self {
            Workload::BetWin => 2,
            Workload::Slot => 1,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub workload: Workload,
    pub wallets: u64,
    pub rounds: u64,
    pub latency_rounds: u64,
    pub warmup_rounds: u64,
    pub batch: usize,
    pub resident_wallets_max: usize,
    pub seed: u64,
}

#[derive(Clone, Debug)]
pub struct Report {
    pub params: Params,
    pub idle_wallet_bytes_rss: Option<f64>,
    pub idle_wallet_bytes_encoded: f64,
    pub index_records: usize,
    /// The index's allocation divided by its records, at the end of the run.
    pub index_bytes_per_record: f64,
    pub commands: u64,
    pub elapsed: Duration,
    pub commands_per_second: f64,
    pub latency_ns_p50: u64,
    pub latency_ns_p99: u64,
    pub latency_ns_p999: u64,
    pub latency_ns_max: u64,
    pub rejections: u64,
}

const OPERATOR: OperatorId = OperatorId(1);
const START_MS: u64 = 1_795_521_600_000;

fn eur() -> Currency {
    Currency::new("EUR").expect("valid code")
}

/// A small, fast, seeded generator for picking players (not for games).
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn id<T>(text: &str, wrap: fn(engine::ExternalId) -> T) -> T {
    wrap(engine::ExternalId::new(text).expect("bench ids are valid"))
}

struct Driver {
    shard: Shard,
    index: u64,
    now_ms: u64,
    outcomes: Vec<Outcome>,
    events: Vec<Event>,
    rejections: u64,
}

impl Driver {
    fn apply(&mut self, commands: &[Command]) -> Duration {
        self.index += 1;
        self.outcomes.clear();
        self.events.clear();
        let ctx = Context { index: self.index, timestamp_ms: self.now_ms };
        let started = Instant::now();
        self.shard.apply_batch(ctx, commands, &mut self.outcomes, &mut self.events);
        let elapsed = started.elapsed();
        self.rejections += self.outcomes.iter().filter(|o| o.is_err()).count() as u64;
        elapsed
    }
}

fn player_command(player: u64, action: Action) -> Command {
    Command::Player { operator: OPERATOR, player: PlayerId(player), action }
}

fn new_driver(config: ShardConfig, residency: Residency) -> Driver {
    let mut driver = Driver {
        shard: Shard::with_residency(config, residency),
        index: 0,
        now_ms: START_MS,
        outcomes: Vec::new(),
        events: Vec::new(),
        rejections: 0,
    };
    let operator = OperatorConfig {
        operator: OPERATOR,
        sweepstakes: false,
        currencies: vec![CurrencySpec { currency: eur(), scale: 2 }],
        limit_increase_delay_ms: LIMIT_INCREASE_DELAY_DEFAULT_MS,
        redemption_min_minor: 0,
    };
    driver.apply(&[Command::ConfigureOperator(operator)]);
    driver
}

/// Creates and funds `wallets` wallets, `batch` commands per apply.
fn create_wallets(driver: &mut Driver, wallets: u64, batch_size: usize) {
    let mut batch = Vec::with_capacity(batch_size);
    for player in 0..wallets {
        batch.push(player_command(player, Action::CreateWallet));
        batch.push(player_command(
            player,
            Action::Deposit { tx: id(&format!("d{player}"), TxId), currency: eur(), amount: Amount(1_000_000) },
        ));
        if batch.len() >= batch_size {
            driver.apply(&batch);
            batch.clear();
        }
    }
    driver.apply(&batch);
}

pub fn run(params: Params) -> anyhow::Result<Report> {
    let wallets_max = params.wallets.max(1) * 2;

    // Phase 1: idle wallet memory.
    let rss_before = resident_bytes();
    let config = ShardConfig { wallets_max, tx_retention_count: 1_024, ..ShardConfig::new(1) };
    let mut memory = new_driver(config, Residency { resident_wallets_max: 4_096 });
    create_wallets(&mut memory, params.wallets, params.batch);
    memory.shard.passivate_all();
    let rss_after = resident_bytes();
    let idle_wallet_bytes_rss = match (rss_before, rss_after) {
        (Some(before), Some(after)) if params.wallets > 0 => Some(after.saturating_sub(before) as f64 / params.wallets as f64),
        _ => None,
    };
    let idle_wallet_bytes_encoded = memory.shard.snapshot().len() as f64 / params.wallets.max(1) as f64;
    anyhow::ensure!(memory.rejections == 0, "setup was refused {} times", memory.rejections);
    drop(memory);

    // Phase 2: the measured shard.
    let config = ShardConfig { wallets_max, ..ShardConfig::new(1) };
    let mut driver = new_driver(config, Residency { resident_wallets_max: params.resident_wallets_max });
    create_wallets(&mut driver, params.wallets, params.batch);
    let mut sessions = Vec::with_capacity(params.wallets as usize);
    let game = match params.workload {
        Workload::BetWin => id("provider-slot-1", GameId),
        Workload::Slot => id(engine::games::SLOT_ID, GameId),
    };
    driver.apply(&[Command::Reseed { entropy: [7; 32] }]);
    for player in 0..params.wallets {
        let open = player_command(player, Action::OpenSession { game, currency: eur(), duration_ms: 7 * 24 * 3_600_000, locale: None });
        driver.apply(std::slice::from_ref(&open));
        match driver.outcomes.first() {
            Some(Ok(Reply::SessionOpened { session, .. })) => sessions.push(*session),
            other => anyhow::bail!("session for {player} did not open: {other:?}"),
        }
    }
    anyhow::ensure!(driver.rejections == 0, "setup was refused {} times", driver.rejections);
    let mut batch = Vec::with_capacity(params.batch);

    let mut random = XorShift(params.seed | 1);
    let mut round_number = 0u64;
    let mut next_round = |random: &mut XorShift, batch: &mut Vec<Command>| {
        let player = random.next() % params.wallets;
        let session: SessionId = sessions[player as usize];
        if params.workload == Workload::Slot {
            let tx = id(&format!("s{round_number}"), TxId);
            let action =
                Action::Play { tx, session, currency: eur(), stake: Amount(100), choice: engine::games::Choice::Slot, fair: false };
            batch.push(player_command(player, action));
            round_number += 1;
            return;
        }
        let bet = id(&format!("b{round_number}"), TxId);
        batch.push(player_command(
            player,
            Action::Bet {
                tx: bet,
                session,
                round: id(&format!("r{round_number}"), RoundId),
                game: Some(game),
                currency: eur(),
                stake: Stake::Auto(Amount(100)),
                alias: None,
            },
        ));
        let win = if round_number % 3 == 0 { 250 } else { 0 };
        batch.push(player_command(
            player,
            Action::Win { tx: id(&format!("w{round_number}"), TxId), bet, amount: Stake::Auto(Amount(win)), close_round: true },
        ));
        round_number += 1;
    };

    for _ in 0..params.warmup_rounds {
        next_round(&mut random, &mut batch);
        if batch.len() >= params.batch {
            driver.apply(&batch);
            batch.clear();
        }
    }
    driver.apply(&batch);
    batch.clear();
    anyhow::ensure!(driver.rejections == 0, "warm-up was refused {} times", driver.rejections);
    let index_records = driver.shard.index_len();

    let mut elapsed = Duration::ZERO;
    let mut commands = 0u64;
    for _ in 0..params.rounds {
        next_round(&mut random, &mut batch);
        if batch.len() >= params.batch {
            elapsed += driver.apply(&batch);
            commands += batch.len() as u64;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        elapsed += driver.apply(&batch);
        commands += batch.len() as u64;
        batch.clear();
    }

    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    for _ in 0..params.latency_rounds {
        next_round(&mut random, &mut batch);
        for command in batch.drain(..) {
            let took = driver.apply(std::slice::from_ref(&command));
            histogram.record(took.as_nanos().max(1) as u64)?;
        }
    }
    let index_bytes_per_record = driver.shard.index_allocated_bytes() as f64 / driver.shard.index_len().max(1) as f64;
    driver.shard.check_invariants();

    Ok(Report {
        params,
        idle_wallet_bytes_rss,
        idle_wallet_bytes_encoded,
        index_records,
        index_bytes_per_record,
        commands,
        elapsed,
        commands_per_second: commands as f64 / elapsed.as_secs_f64().max(1e-9),
        latency_ns_p50: histogram.value_at_quantile(0.50),
        latency_ns_p99: histogram.value_at_quantile(0.99),
        latency_ns_p999: histogram.value_at_quantile(0.999),
        latency_ns_max: histogram.max(),
        rejections: driver.rejections,
    })
}

impl Report {
    pub fn to_json(&self) -> String {
        format!(
            concat!(
                "{{\"workload\":\"{}\",\"wallets\":{},\"rounds\":{},\"batch\":{},\"resident_wallets_max\":{},\"commands\":{},",
                "\"elapsed_s\":{:.3},\"commands_per_second\":{:.0},\"latency_ns_p50\":{},\"latency_ns_p99\":{},",
                "\"latency_ns_p999\":{},\"latency_ns_max\":{},\"idle_wallet_bytes_rss\":{},\"idle_wallet_bytes_encoded\":{:.1},",
                "\"index_records\":{},\"index_bytes_per_record\":{:.1},\"rejections\":{}}}"
            ),
            self.params.workload.name(),
            self.params.wallets,
            self.params.rounds,
            self.params.batch,
            self.params.resident_wallets_max,
            self.commands,
            self.elapsed.as_secs_f64(),
            self.commands_per_second,
            self.latency_ns_p50,
            self.latency_ns_p99,
            self.latency_ns_p999,
            self.latency_ns_max,
            self.idle_wallet_bytes_rss.map_or("null".to_string(), |b| format!("{b:.1}")),
            self.idle_wallet_bytes_encoded,
            self.index_records,
            self.index_bytes_per_record,
            self.rejections,
        )
    }

    pub fn to_text(&self) -> String {
        format!(
            "engine rounds ({}), one thread\n  wallets              {}\n  commands             {} in {:.3} s (batches of {})\n  throughput           {:.0} commands/s\n  apply latency        p50 {} ns, p99 {} ns, p99.9 {} ns, max {} ns ({} commands timed one by one)\n  idle wallet memory   {} bytes resident each, {:.1} bytes encoded each\n  idempotency index    {} records during the run, {:.1} bytes allocated each\n  rejections           {}\n",
            self.params.workload.name(),
            self.params.wallets,
            self.commands,
            self.elapsed.as_secs_f64(),
            self.params.batch,
            self.commands_per_second,
            self.latency_ns_p50,
            self.latency_ns_p99,
            self.latency_ns_p999,
            self.latency_ns_max,
            self.params.latency_rounds * self.params.workload.commands_per_round(),
            self.idle_wallet_bytes_rss.map_or("n/a".to_string(), |b| format!("{b:.1}")),
            self.idle_wallet_bytes_encoded,
            self.index_records,
            self.index_bytes_per_record,
            self.rejections,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_benchmark_runs_without_rejections() {
        let report = run(Params {
            workload: Workload::BetWin,
            wallets: 2_000,
            rounds: 3_000,
            latency_rounds: 500,
            warmup_rounds: 1_000,
            batch: 128,
            resident_wallets_max: 512,
            seed: 7,
        })
        .expect("runs");
        assert_eq!(report.rejections, 0, "{report:?}");
        assert_eq!(report.commands, 6_000);
        assert!(report.to_json().contains("\"commands\":6000"));
    }

    #[test]
    fn the_slot_benchmark_spins_without_rejections() {
        let report = run(Params {
            workload: Workload::Slot,
            wallets: 1_000,
            rounds: 3_000,
            latency_rounds: 500,
            warmup_rounds: 500,
            batch: 128,
            resident_wallets_max: 512,
            seed: 7,
        })
        .expect("runs");
        assert_eq!(report.rejections, 0, "{report:?}");
        assert_eq!(report.commands, 3_000);
    }
}
