//! The in-process target: each shard an `engine::Shard` on a thread of its
//! own, driven command by command by a seeded generator over the players
//! the shard owns (the node's slot map decides which). Everything but the
//! clock on the wall is a function of the seed: the same seed gives the
//! same commands, outcomes, events and books.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use engine::games::dice::DiceBet;
use engine::games::roulette::RouletteBet;
use engine::games::{self, Choice};
use engine::{
    Action, Amount, BonusId, BonusTerms, Command, Context, Currency, CurrencySpec, Event, GameId, OperatorConfig, OperatorId, Outcome,
    PlayerId, RedemptionId, Rejection, Reply, RoundId, SessionId, Shard, ShardConfig, Stake, SweepsGrantKind, TxId,
    LIMIT_INCREASE_DELAY_DEFAULT_MS,
};
use hdrhistogram::Histogram;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::books::Books;
use crate::report::{Checks, GameReport, Latency, Report};
use crate::scenario::{Arrival, Scenario};

/// What a run drives: shards in this process, or a node over TCP.
pub trait Target: Send {
    /// Applies one command. `token` is the session token of a command that
    /// names a session (a node's gateway takes tokens; the engine takes the
    /// session id in the command). Returns the outcome and, for a session
    /// opened over TCP, its token; appends the events it saw (in-process).
    fn apply(&mut self, command: &Command, token: &[u8], timestamp_ms: u64, events: &mut Vec<Event>) -> (Outcome, Vec<u8>);
    /// An account's total (cash + bonus + promo) as the target holds it.
    fn balance(&mut self, operator: OperatorId, player: PlayerId, currency: Currency) -> Option<i128>;
    /// The target's own invariants (conservation of money); None where it
    /// cannot check them.
    fn check_invariants(&mut self) -> Option<Result<(), String>>;
}

/// Shards in this process: the fastest target, and the only one whose
/// events come back with each apply.
pub struct InProcess {
    shard: Shard,
    index: u64,
    outcomes: Vec<Outcome>,
}

impl std::fmt::Debug for InProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcess").field("shard", &self.shard.config().shard_id).field("index", &self.index).finish()
    }
}

impl InProcess {
    pub fn new(shard: Shard) -> InProcess {
        InProcess { shard, index: 0, outcomes: Vec::with_capacity(1) }
    }
}

impl Target for InProcess {
    fn apply(&mut self, command: &Command, _token: &[u8], timestamp_ms: u64, events: &mut Vec<Event>) -> (Outcome, Vec<u8>) {
        self.index += 1;
        let ctx = Context { index: self.index, timestamp_ms };
        self.shard.apply_batch(ctx, std::slice::from_ref(command), &mut self.outcomes, events);
        (self.outcomes.pop().expect("one outcome per command"), Vec::new())
    }

    fn balance(&mut self, _operator: OperatorId, player: PlayerId, currency: Currency) -> Option<i128> {
        self.shard.balance(player, currency).map(|b| i128::from(b.cash.minor()) + i128::from(b.bonus.minor()) + i128::from(b.promo.minor()))
    }

    fn check_invariants(&mut self) -> Option<Result<(), String>> {
        let shard = &self.shard;
        Some(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| shard.check_invariants())).map_err(|panic| {
            let why = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
            format!("shard {}: {}", shard.config().shard_id, why.unwrap_or_default())
        }))
    }
}

/// Counters a caller can watch while a run goes (a progress bar).
#[derive(Debug, Default)]
pub struct Progress {
    pub bets: AtomicU64,
    pub commands: AtomicU64,
    pub unexpected: AtomicU64,
}

const STANDARD: OperatorId = OperatorId(1);
const SWEEPSTAKES: OperatorId = OperatorId(2);
/// 2026-01-01T00:00:00Z: the simulated clock starts here.
const START_MS: u64 = 1_767_225_600_000;
const FUND: i64 = 1_000_000_000;
const PROVIDER_GAME: &str = "provider-slot";
/// Players per shard that also hold a one-millisecond session, for bets on expired sessions.
const EXPIRED_POOL: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Game {
    Slot,
    Roulette,
    Dice,
    Crash,
    Provider,
}

impl Game {
    fn id(self) -> &'static str {
        match self {
            Game::Slot => games::SLOT_ID,
            Game::Roulette => games::ROULETTE_ID,
            Game::Dice => games::DICE_ID,
            Game::Crash => games::CRASH_ID,
            Game::Provider => PROVIDER_GAME,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
enum Op {
    Setup,
    Deposit,
    Withdraw,
    Play,
    Bet,
    Win,
    CloseRound,
    Rollback,
    Bonus,
    Redemption,
    Session,
}

const OP_NAMES: [&str; 11] =
    ["setup", "deposit", "withdraw", "play", "bet", "win", "close_round", "rollback", "bonus", "redemption", "session"];

/// What the workload expects a command to get.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Applied, not a replay.
    Applied,
    /// The stored result of an earlier identical request.
    Replayed,
    Refused(Rejection),
    /// Refused for one of these reasons.
    RefusedOneOf(&'static [Rejection]),
    /// Applied, or refused for one of these reasons.
    AppliedOr(&'static [Rejection]),
}

struct Player {
    id: PlayerId,
    operator: OperatorId,
    currency: Currency,
    game: Game,
    session: SessionId,
    token: Vec<u8>,
}

pub(crate) struct Worker<'a> {
    scenario: &'a Scenario,
    progress: &'a Progress,
    target: Box<dyn Target + 'a>,
    rng: ChaCha8Rng,
    /// Wall-clock pacing of arrivals (TCP): wait until each bet is due.
    paced_from: Option<Instant>,
    /// Whether the target reports events (else the books come from elsewhere).
    books_from_events: bool,
    /// Simulated milliseconds since START_MS.
    clock_ms: f64,
    players: Vec<Player>,
    /// Cumulative activity weights of `players`, for weighted picks.
    cumulative: Vec<f64>,
    expired: Vec<(usize, SessionId, Vec<u8>)>,
    next_id: u64,
    books: Books,
    events: Vec<Event>,
    latency: Vec<Histogram<u64>>,
    counts: BTreeMap<String, u64>,
    unexpected: u64,
    first_unexpected: Option<String>,
    commands: u64,
    bets: u64,
    /// This shard's bets and their arrival rate.
    bets_target: u64,
    rate_per_ms: f64,
}

fn uniform(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

fn id<T>(make: fn(&str) -> Result<T, Rejection>, text: &str) -> T {
    make(text).unwrap_or_else(|r| panic!("the generator made an invalid id {text:?}: {r:?}"))
}

impl<'a> Worker<'a> {
    fn chance(&mut self, probability: f64) -> bool {
        probability > 0.0 && uniform(&mut self.rng) < probability
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{}", self.next_id)
    }

    /// Applies one command as a batch of its own, timing it, recording its
    /// events in the books and checking its outcome against `expect`.
    fn apply(&mut self, operator: OperatorId, player: PlayerId, action: Action, token: &[u8], op: Op, expect: Expect) {
        let _checked = self.outcome(operator, player, action, token, op, expect);
    }

    /// `apply`, for a caller that goes on from the outcome.
    fn outcome(&mut self, operator: OperatorId, player: PlayerId, action: Action, token: &[u8], op: Op, expect: Expect) -> Outcome {
        let command = Command::Player { operator, player, action };
        self.apply_command(command, token, op, expect).0
    }

    fn apply_command(&mut self, command: Command, token: &[u8], op: Op, expect: Expect) -> (Outcome, Vec<u8>) {
        let started = Instant::now();
        let (outcome, new_token) = self.target.apply(&command, token, START_MS + self.clock_ms as u64, &mut self.events);
        let elapsed = started.elapsed().as_nanos() as u64;
        let _ = self.latency[op as usize].record(elapsed.max(1));
        for event in self.events.drain(..) {
            self.books.record(&event);
        }
        self.commands += 1;
        let (name, fits) = match (&outcome, expect) {
            (Ok(Reply::Tx(tx)), Expect::Replayed) => ("replayed".to_string(), tx.replayed),
            (Ok(_), Expect::Replayed) => ("ok".to_string(), false),
            (Ok(reply), Expect::Applied | Expect::AppliedOr(_)) => {
                let replayed = matches!(reply, Reply::Tx(tx) | Reply::Played { tx, .. } if tx.replayed);
                (if replayed { "replayed" } else { "ok" }.to_string(), !replayed)
            }
            (Ok(_), Expect::Refused(_) | Expect::RefusedOneOf(_)) => ("ok".to_string(), false),
            (Err(r), Expect::Refused(wanted)) => (format!("{r:?}"), *r == wanted),
            (Err(r), Expect::RefusedOneOf(allowed)) => (format!("{r:?}"), allowed.contains(r)),
            (Err(r), Expect::AppliedOr(allowed)) => (format!("{r:?}"), allowed.contains(r)),
            (Err(r), Expect::Applied | Expect::Replayed) => (format!("{r:?}"), false),
        };
        *self.counts.entry(name).or_default() += 1;
        if !fits {
            self.unexpected += 1;
            self.progress.unexpected.fetch_add(1, Ordering::Relaxed);
            if self.first_unexpected.is_none() {
                self.first_unexpected = Some(format!("{command:?} expected {expect:?}, got {outcome:?}"));
            }
        }
        (outcome, new_token)
    }

    /// Configures the two operators and seeds the RNG: in-process only (a
    /// node has its operators from its settings and seeds itself).
    fn configure(&mut self) {
        let seed_entropy = {
            let mut entropy = [0u8; 32];
            self.rng.fill_bytes(&mut entropy);
            entropy
        };
        let spec = |code: &str| CurrencySpec { currency: Currency::new(code).expect("valid code"), scale: 2 };
        for (operator, sweepstakes, currencies) in [(STANDARD, false, vec![spec("EUR")]), (SWEEPSTAKES, true, vec![spec("GC"), spec("SC")])]
        {
            let config = OperatorConfig {
                operator,
                sweepstakes,
                currencies,
                limit_increase_delay_ms: LIMIT_INCREASE_DELAY_DEFAULT_MS,
                redemption_min_minor: 100,
            };
            let _checked = self.apply_command(Command::ConfigureOperator(config), &[], Op::Setup, Expect::Applied);
        }
        let _checked = self.apply_command(Command::Reseed { entropy: seed_entropy }, &[], Op::Setup, Expect::Applied);
    }

    fn setup(&mut self, players: Vec<u64>) {
        let mix = &self.scenario.mix;
        let shares = [
            (Game::Slot, mix.slot),
            (Game::Roulette, mix.roulette),
            (Game::Dice, mix.dice),
            (Game::Crash, mix.crash),
            (Game::Provider, mix.provider),
        ];
        let mix_total: u32 = shares.iter().map(|(_, s)| s).sum();
        let mut weight_sum = 0.0;
        for raw in players {
            let player = PlayerId(raw);
            let sweepstakes = self.chance(self.scenario.sweepstakes_share);
            let (operator, currency) =
                if sweepstakes { (SWEEPSTAKES, Currency::SWEEPS_COINS) } else { (STANDARD, Currency::new("EUR").expect("valid")) };
            let mut pick = (self.rng.next_u64() % u64::from(mix_total)) as u32;
            let game = shares
                .iter()
                .find(|(_, share)| {
                    if pick < *share {
                        true
                    } else {
                        pick -= share;
                        false
                    }
                })
                .map_or(Game::Slot, |(g, _)| *g);
            self.apply(operator, player, Action::CreateWallet, &[], Op::Setup, Expect::Applied);
            if sweepstakes {
                let purchase = Action::Deposit { tx: id(TxId::new, "gc-0"), currency: Currency::GOLD_COINS, amount: Amount(FUND) };
                self.apply(operator, player, purchase, &[], Op::Setup, Expect::Applied);
                let grant = Action::GrantSweeps {
                    tx: id(TxId::new, "sc-0"),
                    kind: SweepsGrantKind::PurchaseBonus,
                    amount: Amount(FUND),
                    playthrough_multiple: 1,
                };
                self.apply(operator, player, grant, &[], Op::Setup, Expect::Applied);
            } else {
                let deposit = Action::Deposit { tx: id(TxId::new, "d-0"), currency, amount: Amount(FUND) };
                self.apply(operator, player, deposit, &[], Op::Setup, Expect::Applied);
            }
            let open = Action::OpenSession { game: id(GameId::new, game.id()), currency, duration_ms: 24 * 3_600_000, locale: None };
            let open = Command::Player { operator, player, action: open };
            let (Ok(Reply::SessionOpened { session, .. }), token) = self.apply_command(open, &[], Op::Setup, Expect::Applied) else {
                continue;
            };
            if self.expired.len() < EXPIRED_POOL {
                let short = Action::OpenSession { game: id(GameId::new, game.id()), currency, duration_ms: 1, locale: None };
                let short = Command::Player { operator, player, action: short };
                if let (Ok(Reply::SessionOpened { session, .. }), token) = self.apply_command(short, &[], Op::Setup, Expect::Applied) {
                    self.expired.push((self.players.len(), session, token));
                }
            }
            // Pareto activity: a few players bet far more than most.
            let u = 1.0 - uniform(&mut self.rng);
            weight_sum += u.powf(-1.0 / self.scenario.activity_alpha);
            self.cumulative.push(weight_sum);
            self.players.push(Player { id: player, operator, currency, game, session, token });
        }
    }

    fn pick_player(&mut self) -> usize {
        let total = *self.cumulative.last().expect("players");
        let target = uniform(&mut self.rng) * total;
        self.cumulative.partition_point(|w| *w <= target).min(self.players.len() - 1)
    }

    fn stake(&mut self, game: Game) -> i64 {
        let (min, max) = (self.scenario.stake_min as f64, self.scenario.stake_max as f64);
        let stake = (min.ln() + uniform(&mut self.rng) * (max.ln() - min.ln())).exp() as i64;
        if game == Game::Slot {
            (stake / 20).max(1) * 20
        } else {
            stake.max(1)
        }
    }

    fn choice(&mut self, game: Game) -> Choice {
        match game {
            Game::Slot | Game::Provider => Choice::Slot,
            Game::Roulette => match self.rng.next_u64() % 4 {
                0 => Choice::Roulette(RouletteBet::Red),
                1 => Choice::Roulette(RouletteBet::Black),
                2 => Choice::Roulette(RouletteBet::Dozen((self.rng.next_u64() % 3) as u8)),
                _ => Choice::Roulette(RouletteBet::Straight((self.rng.next_u64() % 37) as u8)),
            },
            Game::Dice => Choice::Dice(DiceBet { target: 200 + (self.rng.next_u64() % 9_601) as u16, over: self.rng.next_u64() % 2 == 0 }),
            Game::Crash => Choice::Crash { target: 101 + (self.rng.next_u64() % 900) as u32 },
        }
    }

    /// The simulated arrival rate at this point of the run, per millisecond.
    fn advance_clock(&mut self) {
        let progress = self.bets as f64 / self.bets_target.max(1) as f64;
        let factor = match self.scenario.arrival {
            Arrival::Steady => 1.0,
            Arrival::Ramp => 0.1 + 0.9 * progress,
            Arrival::Spike if (0.45..0.55).contains(&progress) => 10.0,
            Arrival::Spike => 1.0,
        };
        self.clock_ms += 1.0 / (self.rate_per_ms * factor);
        if let Some(start) = self.paced_from {
            let due = std::time::Duration::from_micros((self.clock_ms * 1000.0) as u64);
            let now = start.elapsed();
            if due > now + std::time::Duration::from_millis(1) {
                std::thread::sleep(due - now);
            }
        }
    }

    fn bet_round(&mut self) {
        let at = self.pick_player();
        let (player, operator, currency, game, session, token) = {
            let p = &self.players[at];
            (p.id, p.operator, p.currency, p.game, p.session, p.token.clone())
        };
        let stake = self.stake(game);
        let rates = self.scenario.rates.clone();
        let tx = id(TxId::new, &self.fresh("b"));
        if game == Game::Provider {
            let round = id(RoundId::new, &self.fresh("r"));
            let bet = Action::Bet {
                tx,
                session,
                round,
                game: Some(id(GameId::new, PROVIDER_GAME)),
                currency,
                stake: Stake::Auto(Amount(stake)),
                alias: None,
            };
            if self.chance(rates.rollback_before_bet) {
                let rollback = Action::Rollback { tx: id(TxId::new, &self.fresh("x")), bet: tx, currency };
                self.apply(operator, player, rollback, &[], Op::Rollback, Expect::Applied);
                self.apply(operator, player, bet, &token, Op::Bet, Expect::Refused(Rejection::BetRolledBackInAdvance));
                self.bets += 1;
                self.advance_clock();
                return;
            }
            self.apply(operator, player, bet.clone(), &token, Op::Bet, Expect::Applied);
            if self.chance(rates.retry) {
                self.apply(operator, player, bet, &token, Op::Bet, Expect::Replayed);
            }
            // A provider's game: a win three times in ten, of 0.5x to 5.9x (RTP about 96%).
            if uniform(&mut self.rng) < 0.3 {
                let win = (stake as f64 * (0.5 + 5.4 * uniform(&mut self.rng))) as i64;
                let win = Action::Win {
                    tx: id(TxId::new, &self.fresh("w")),
                    bet: tx,
                    amount: Stake::Auto(Amount(win.max(1))),
                    close_round: true,
                };
                self.apply(operator, player, win.clone(), &[], Op::Win, Expect::Applied);
                if self.chance(rates.duplicate_win) {
                    self.apply(operator, player, win, &[], Op::Win, Expect::Replayed);
                }
            } else {
                self.apply(operator, player, Action::CloseRound { round }, &[], Op::CloseRound, Expect::Applied);
            }
        } else {
            let choice = self.choice(game);
            let play = Action::Play { tx, session, currency, stake: Amount(stake), choice, fair: false };
            self.apply(operator, player, play.clone(), &token, Op::Play, Expect::Applied);
            if self.chance(rates.retry) {
                self.apply(operator, player, play, &token, Op::Play, Expect::Replayed);
            }
        }
        if self.chance(rates.expired_session) && !self.expired.is_empty() {
            let (at, session, expired_token) = self.expired[(self.rng.next_u64() % self.expired.len() as u64) as usize].clone();
            let p = &self.players[at];
            let (player, operator, currency, game) = (p.id, p.operator, p.currency, p.game);
            let tx = id(TxId::new, &self.fresh("e"));
            let action = if game == Game::Provider {
                let round = id(RoundId::new, &self.fresh("r"));
                Action::Bet {
                    tx,
                    session,
                    round,
                    game: Some(id(GameId::new, PROVIDER_GAME)),
                    currency,
                    stake: Stake::Auto(Amount(100)),
                    alias: None,
                }
            } else {
                let choice = self.choice(game);
                Action::Play { tx, session, currency, stake: Amount(100), choice, fair: false }
            };
            let op = if game == Game::Provider { Op::Bet } else { Op::Play };
            // A wallet drops its expired sessions when it opens another: then the session is not found.
            let refused = Expect::RefusedOneOf(&[Rejection::SessionExpired, Rejection::SessionNotFound]);
            self.apply(operator, player, action, &expired_token, op, refused);
        }
        if self.chance(rates.session_churn) {
            self.apply(operator, player, Action::CloseSession { session }, &token, Op::Session, Expect::Applied);
            let open = Action::OpenSession { game: id(GameId::new, game.id()), currency, duration_ms: 24 * 3_600_000, locale: None };
            let open = Command::Player { operator, player, action: open };
            if let (Ok(Reply::SessionOpened { session, .. }), token) = self.apply_command(open, &[], Op::Session, Expect::Applied) {
                let p = &mut self.players[at];
                p.session = session;
                p.token = token;
            }
        }
        let sweepstakes = operator == SWEEPSTAKES;
        if self.chance(rates.deposit) {
            let currency = if sweepstakes { Currency::GOLD_COINS } else { currency };
            let amount = self.stake(Game::Provider) * 10;
            let deposit = Action::Deposit { tx: id(TxId::new, &self.fresh("d")), currency, amount: Amount(amount) };
            self.apply(operator, player, deposit, &[], Op::Deposit, Expect::Applied);
        }
        if !sweepstakes && self.chance(rates.withdrawal) {
            let amount = self.stake(Game::Provider);
            let withdraw = Action::Withdraw { tx: id(TxId::new, &self.fresh("o")), currency, amount: Amount(amount) };
            self.apply(operator, player, withdraw, &[], Op::Withdraw, Expect::AppliedOr(&[Rejection::InsufficientFunds]));
        }
        if !sweepstakes && self.chance(rates.bonus) {
            let terms = BonusTerms {
                bonus: id(BonusId::new, &self.fresh("bonus-")),
                currency,
                amount: Amount(self.stake(Game::Provider) * 5),
                wagering_multiple: 10,
                max_bet: Amount(10_000_000),
                duration_ms: 7 * 24 * 3_600_000,
                weights: Vec::new(),
                default_weight_percent: 100,
            };
            let grant = Action::GrantBonus { tx: id(TxId::new, &self.fresh("g")), terms };
            self.apply(
                operator,
                player,
                grant,
                &[],
                Op::Bonus,
                Expect::AppliedOr(&[Rejection::BonusAlreadyActive, Rejection::TooManyGrants]),
            );
        }
        if sweepstakes && self.chance(rates.redemption) {
            let redemption = id(RedemptionId::new, &self.fresh("q"));
            let amount = self.stake(Game::Provider);
            let request = Action::RequestRedemption { redemption, amount: Amount(amount) };
            let allowed = &[Rejection::InsufficientRedeemable, Rejection::RedemptionBelowMinimum, Rejection::TooManyGrants];
            if self.outcome(operator, player, request, &[], Op::Redemption, Expect::AppliedOr(allowed)).is_ok() {
                self.apply(operator, player, Action::ApproveRedemption { redemption }, &[], Op::Redemption, Expect::Applied);
            }
        }
        self.bets += 1;
        self.advance_clock();
    }

    fn run(mut self) -> ShardResult<'a> {
        while self.bets < self.bets_target {
            let before = (self.bets, self.commands);
            for _ in 0..256 {
                if self.bets >= self.bets_target {
                    break;
                }
                self.bet_round();
            }
            self.progress.bets.fetch_add(self.bets - before.0, Ordering::Relaxed);
            self.progress.commands.fetch_add(self.commands - before.1, Ordering::Relaxed);
        }
        let mut checks = Checks { invariants_hold: true, ..Checks::default() };
        if self.books_from_events {
            let operators: std::collections::HashMap<PlayerId, OperatorId> = self.players.iter().map(|p| (p.id, p.operator)).collect();
            let balances: Vec<((PlayerId, Currency), i128)> = self.books.balances.iter().map(|(k, v)| (*k, *v)).collect();
            for ((player, currency), expected) in balances {
                let operator = operators.get(&player).copied().unwrap_or(STANDARD);
                check_balance(&mut checks, &mut *self.target, operator, player, currency, expected);
            }
        }
        match self.target.check_invariants() {
            Some(Ok(())) => checks.invariants_checked = true,
            Some(Err(failure)) => {
                checks.invariants_checked = true;
                checks.invariants_hold = false;
                checks.invariant_failure = Some(failure);
            }
            None => {}
        }
        checks.applied_twice = self.books.applied_twice;
        checks.first_applied_twice = self.books.first_applied_twice.clone();
        checks.unexpected_outcomes = self.unexpected;
        checks.first_unexpected = self.first_unexpected.clone();
        let players = self.players.iter().map(|p| (p.id, p.operator)).collect();
        ShardResult {
            books: self.books,
            latency: self.latency,
            counts: self.counts,
            checks,
            commands: self.commands,
            bets: self.bets,
            clock_ms: self.clock_ms,
            players,
            target: self.target,
        }
    }
}

/// Compares one account with its books.
pub(crate) fn check_balance(
    checks: &mut Checks,
    target: &mut dyn Target,
    operator: OperatorId,
    player: PlayerId,
    currency: Currency,
    expected: i128,
) {
    checks.wallets_checked += 1;
    let actual = target.balance(operator, player, currency);
    if actual != Some(expected) {
        checks.balance_mismatches += 1;
        if checks.first_mismatch.is_none() {
            checks.first_mismatch = Some(format!("player {} {currency}: the events say {expected}, the target {actual:?}", player.0));
        }
    }
}

/// What a worker leaves: its books, figures and checks, its players and target.
pub(crate) struct ShardResult<'a> {
    pub books: Books,
    latency: Vec<Histogram<u64>>,
    counts: BTreeMap<String, u64>,
    pub checks: Checks,
    commands: u64,
    bets: u64,
    clock_ms: f64,
    pub players: Vec<(PlayerId, OperatorId)>,
    pub target: Box<dyn Target + 'a>,
}

/// Runs `scenario` against `shards` in-process shards, one thread each.
pub fn run(scenario: &Scenario, shards: u32, progress: &Progress) -> Report {
    run_planted(scenario, shards, progress, false)
}

/// `run`, against an engine with a planted bug when `plant_double_apply`:
/// shard 0 applies one retried `Play` twice (`Shard::plant_double_apply`).
/// The books must catch it; tests of the checker use this.
pub fn run_planted(scenario: &Scenario, shards: u32, progress: &Progress, plant_double_apply: bool) -> Report {
    let shards = shards.max(1);
    let slots = cluster::SlotMap::even(shards);
    let mut owned: Vec<Vec<u64>> = vec![Vec::new(); shards as usize];
    for player in 0..scenario.players {
        owned[slots.shard_of(PlayerId(player)) as usize].push(player);
    }
    let partitions = owned
        .into_iter()
        .enumerate()
        .map(|(shard_id, players)| {
            let config = ShardConfig { wallets_max: scenario.players + 1, ..ShardConfig::new(shard_id as u32) };
            let mut shard = Shard::new(config);
            if plant_double_apply && shard_id == 0 {
                shard.plant_double_apply();
            }
            Partition { players, target: Box::new(InProcess::new(shard)) as Box<dyn Target>, configure: true, paced: false }
        })
        .collect();
    let (results, seconds) = drive(scenario, partitions, progress);
    summarize(scenario, "in-process", shards, results, seconds, None)
}

/// Players driven through one target by one thread.
pub(crate) struct Partition<'a> {
    pub players: Vec<u64>,
    pub target: Box<dyn Target + 'a>,
    /// Configure operators and seed the RNG first (an engine of our own).
    pub configure: bool,
    /// Pace arrivals in wall-clock time (a node); else time is simulated.
    pub paced: bool,
}

/// Drives each partition on a thread of its own; their results and the seconds it took.
pub(crate) fn drive<'a>(scenario: &'a Scenario, partitions: Vec<Partition<'a>>, progress: &'a Progress) -> (Vec<ShardResult<'a>>, f64) {
    let started = Instant::now();
    let total: usize = partitions.iter().map(|p| p.players.len()).sum();
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = partitions
            .into_iter()
            .enumerate()
            .map(|(at, partition)| {
                let share = partition.players.len() as f64 / total.max(1) as f64;
                let bets_target = (scenario.bets as f64 * share).round() as u64;
                scope.spawn(move || {
                    let Partition { players, target, configure, paced } = partition;
                    let books_from_events = !paced;
                    let mut worker = Worker {
                        scenario,
                        progress,
                        target,
                        rng: ChaCha8Rng::seed_from_u64(scenario.seed ^ (at as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                        paced_from: None,
                        books_from_events,
                        clock_ms: 0.0,
                        players: Vec::with_capacity(players.len()),
                        cumulative: Vec::with_capacity(players.len()),
                        expired: Vec::new(),
                        next_id: 0,
                        books: Books::default(),
                        events: Vec::new(),
                        latency: (0..OP_NAMES.len())
                            .map(|_| Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds"))
                            .collect(),
                        counts: BTreeMap::new(),
                        unexpected: 0,
                        first_unexpected: None,
                        commands: 0,
                        bets: 0,
                        bets_target,
                        rate_per_ms: (scenario.bets_per_second as f64 * share / 1000.0).max(1e-9),
                    };
                    if configure {
                        worker.configure();
                    }
                    if players.is_empty() {
                        worker.bets_target = 0;
                    } else {
                        worker.setup(players);
                    }
                    progress.commands.fetch_add(worker.commands, Ordering::Relaxed);
                    if paced {
                        worker.paced_from = Some(Instant::now());
                    }
                    worker.run()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a worker does not panic")).collect()
    });
    (results, started.elapsed().as_secs_f64())
}

/// The report of a run: `books`, when given, are the run's books from
/// elsewhere (a node's journal) rather than from the workers' events.
pub(crate) fn summarize(
    scenario: &Scenario,
    target: &str,
    shards: u32,
    results: Vec<ShardResult<'_>>,
    seconds: f64,
    books: Option<Books>,
) -> Report {
    let mut report = Report {
        scenario: scenario.name.clone(),
        seed: scenario.seed,
        target: target.into(),
        shards,
        players: scenario.players,
        seconds,
        checks: Checks { invariants_hold: true, ..Checks::default() },
        ..Report::default()
    };
    let mut latency: Vec<Histogram<u64>> =
        (0..OP_NAMES.len()).map(|_| Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")).collect();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let from_workers = books.is_none();
    let mut games = books.unwrap_or_default();
    for result in &results {
        report.commands += result.commands;
        report.bets += result.bets;
        report.simulated_seconds = report.simulated_seconds.max(result.clock_ms / 1000.0);
        for (mine, theirs) in latency.iter_mut().zip(&result.latency) {
            mine.add(theirs).expect("same bounds");
        }
        for (name, count) in &result.counts {
            *counts.entry(name.clone()).or_default() += count;
        }
        if from_workers {
            games.merge_games(&result.books);
        }
        let (c, r) = (&mut report.checks, &result.checks);
        c.wallets_checked += r.wallets_checked;
        c.balance_mismatches += r.balance_mismatches;
        c.first_mismatch = c.first_mismatch.take().or_else(|| r.first_mismatch.clone());
        c.applied_twice += r.applied_twice;
        c.first_applied_twice = c.first_applied_twice.take().or_else(|| r.first_applied_twice.clone());
        c.invariants_hold &= r.invariants_hold;
        c.invariants_checked |= r.invariants_checked;
        c.invariant_failure = c.invariant_failure.take().or_else(|| r.invariant_failure.clone());
        c.unexpected_outcomes += r.unexpected_outcomes;
        c.first_unexpected = c.first_unexpected.take().or_else(|| r.first_unexpected.clone());
    }
    if !from_workers {
        report.checks.applied_twice += games.applied_twice;
        report.checks.first_applied_twice = report.checks.first_applied_twice.take().or_else(|| games.first_applied_twice.clone());
    }
    report.commands_per_second = report.commands as f64 / seconds.max(1e-9);
    report.bets_per_second = report.bets as f64 / seconds.max(1e-9);
    report.latency = OP_NAMES
        .iter()
        .zip(&latency)
        .filter(|(_, h)| !h.is_empty())
        .map(|(name, h)| Latency {
            op: (*name).to_string(),
            count: h.len(),
            p50_ns: h.value_at_quantile(0.5),
            p99_ns: h.value_at_quantile(0.99),
            p999_ns: h.value_at_quantile(0.999),
            max_ns: h.max(),
            percentiles: crate::plot::QUANTILES.iter().map(|q| (q * 100.0, h.value_at_quantile(*q))).collect(),
        })
        .collect();
    report.outcomes = counts.into_iter().collect();
    report.games = games
        .games
        .iter()
        .map(|((game, currency), book)| GameReport {
            game: game.clone(),
            currency: currency.clone(),
            rounds: book.rounds,
            stakes: book.stakes,
            wins: book.wins,
            ggr: book.stakes - book.wins,
            rtp_percent: if book.stakes > 0 { book.wins as f64 * 100.0 / book.stakes as f64 } else { 0.0 },
        })
        .collect();
    report.passed = report.checks.passed();
    report
}
