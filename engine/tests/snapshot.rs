//! Snapshots and the wallet codec.
//!
//! A "rich" shard exercises every piece of wallet state (several currencies
//! and operators, open bets with and without a bonus, wins on open bets,
//! every pocket, live and expired sessions, active bonuses with weights and
//! progress, sweepstakes lots and pending redemptions, limits with pending
//! raises, a session time limit, self-exclusion, cool-off, the blocked flag,
//! provably-fair seeds, rounds of built-in games on the seeded shard RNG)
//! and of the index (every kind of record). It is built on two replicas in
//! lockstep, one with default residency and one that keeps a single wallet
//! resident, and their replies must agree at every step. Then:
//! - a restored shard snapshots to the same bytes and holds the same wallets;
//! - passivation does not change the snapshot;
//! - the two residencies give the same bytes;
//! - a restored shard goes on exactly like the original.
//!
//! Corruption: a flipped byte, a truncation, a wrong magic, another version,
//! appended bytes are all refused, and even a corrupted body under a valid
//! checksum is refused or restored, never a panic. The wallet codec never
//! panics on arbitrary bytes, accepts only canonical bytes, and round-trips
//! every wallet.

mod support;

use std::collections::BTreeSet;
use std::panic::{self, AssertUnwindSafe};
use std::sync::OnceLock;

use engine::bonus::ActiveBonus;
use engine::codec::{crc32c, wallet_from_bytes, wallet_to_bytes, DecodeError};
use engine::games::dice::DiceBet;
use engine::games::fair::FairSeeds;
use engine::games::{Choice, DICE_ID, SLOT_ID};
use engine::limits::{Bound, MoneyLimit, Pending, Responsible, Usage};
use engine::session::{Session, SESSIONS_PER_PLAYER_MAX};
use engine::sweeps::{Lot, Sweeps};
use engine::wallet::{Account, BonusLink, OpenBet, Wallet, CURRENCIES_PER_WALLET_MAX};
use engine::{
    Action, Amount, BonusId, BonusTerms, Command, Context, Currency, CurrencySpec, Event, ExternalId, GameId, LimitKind, LimitPeriod,
    LimitSource, Money, OperatorConfig, OperatorId, Outcome, PlayerId, Pockets, RedemptionId, Rejection, Reply, Residency, RoundId,
    SessionId, Shard, ShardConfig, Stake, SweepsGrantKind, TxId, LIMIT_INCREASE_DELAY_DEFAULT_MS,
};
use proptest::prelude::*;
use support::{auto, eur, game, operator_config, round, tx, usd, DAY_MS, HOUR_MS, OPERATOR, OTHER_OPERATOR, START_MS, SWEEPS_OPERATOR};

const MINUTE_MS: u64 = 60 * 1000;
const SC: Currency = Currency::SWEEPS_COINS;
const GC: Currency = Currency::GOLD_COINS;
/// A standard operator with four currencies, one of them without decimals.
const MULTI_OPERATOR: OperatorId = OperatorId(4);

// The players of the rich shard, with ids far apart so that their order matters.
/// Standard: limits with pending raises, two bonuses, every kind of bet; blocked at the end.
const ALICE: PlayerId = PlayerId(3);
/// Standard: an open bet, then self-excluded and cooling off.
const BOB: PlayerId = PlayerId(17);
/// Sweepstakes: Gold Coins, Sweeps Coins lots, redemptions in every state.
const CAROL: PlayerId = PlayerId(42);
/// The other standard operator's player: blocked, idle.
const DAVE: PlayerId = PlayerId(1_000_000_007);
/// Four currency accounts, four bonuses, limits in four currencies, eight sessions.
const ERIN: PlayerId = PlayerId(u64::MAX / 3);
/// A wallet with nothing in it.
const FRANK: PlayerId = PlayerId(u64::MAX - 1);
/// A session that has expired and is still listed.
const GINA: PlayerId = PlayerId(u64::MAX);
/// Created only after the snapshot, by the continuation.
const HENRY: PlayerId = PlayerId(5);

const PLAYERS: [PlayerId; 7] = [ALICE, BOB, CAROL, DAVE, ERIN, FRANK, GINA];

fn gbp() -> Currency {
    Currency::new("GBP").expect("valid code")
}
fn jpy() -> Currency {
    Currency::new("JPY").expect("valid code")
}
fn cad() -> Currency {
    Currency::new("CAD").expect("valid code")
}

fn bonus_id(id: &str) -> BonusId {
    BonusId::new(id).expect("valid bonus id")
}
fn redemption(id: &str) -> RedemptionId {
    RedemptionId::new(id).expect("valid redemption id")
}
fn split(cash: i64, bonus: i64, promo: i64) -> Stake {
    Stake::Split { cash: Amount(cash), bonus: Amount(bonus), promo: Amount(promo) }
}
fn bet(session: SessionId, id: &str, round_id: &str, game_id: &str, currency: Currency, stake: Stake) -> Action {
    Action::Bet { tx: tx(id), session, round: round(round_id), game: Some(game(game_id)), currency, stake, alias: None }
}
fn win(id: &str, bet_id: &str, amount: Stake, close_round: bool) -> Action {
    Action::Win { tx: tx(id), bet: tx(bet_id), amount, close_round }
}
fn rollback(id: &str, bet_id: &str, currency: Currency) -> Action {
    Action::Rollback { tx: tx(id), bet: tx(bet_id), currency }
}
fn close(round_id: &str) -> Action {
    Action::CloseRound { round: round(round_id) }
}
fn deposit(id: &str, currency: Currency, minor: i64) -> Action {
    Action::Deposit { tx: tx(id), currency, amount: Amount(minor) }
}
fn limit(source: LimitSource, kind: LimitKind, period: LimitPeriod, currency: Currency, minor: Option<i64>) -> Action {
    Action::SetLimit { source, kind, period, currency, amount: minor.map(Amount) }
}
fn grant(
    id: &str,
    bonus: &str,
    currency: Currency,
    amount: i64,
    multiple: u32,
    weights: &[(&str, u8)],
    default_weight_percent: u8,
) -> Action {
    let terms = BonusTerms {
        bonus: bonus_id(bonus),
        currency,
        amount: Amount(amount),
        wagering_multiple: multiple,
        max_bet: Amount(1_500),
        duration_ms: 7 * DAY_MS,
        weights: weights.iter().map(|(g, percent)| (game(g), *percent)).collect(),
        default_weight_percent,
    };
    Action::GrantBonus { tx: tx(id), terms }
}
fn play(id: &str, session: SessionId, currency: Currency, stake: i64, choice: Choice, fair: bool) -> Action {
    Action::Play { tx: tx(id), session, currency, stake: Amount(stake), choice, fair }
}
fn sweeps_grant(id: &str, kind: SweepsGrantKind, minor: i64, playthrough_multiple: u32) -> Action {
    Action::GrantSweeps { tx: tx(id), kind, amount: Amount(minor), playthrough_multiple }
}

fn multi_operator_config(operator: OperatorId, currencies: &[Currency]) -> OperatorConfig {
    OperatorConfig {
        operator,
        sweepstakes: false,
        currencies: currencies.iter().map(|&currency| CurrencySpec { currency, scale: if currency == jpy() { 0 } else { 2 } }).collect(),
        limit_increase_delay_ms: LIMIT_INCREASE_DELAY_DEFAULT_MS,
        redemption_min_minor: 1_000,
    }
}

// ---- replicas in lockstep -------------------------------------------------

/// Shards fed the same commands in the same batches. After every apply each
/// shard's invariants are checked and every reply must equal the first's.
struct Replicas {
    shards: Vec<(String, Shard)>,
    events: Vec<Vec<Event>>,
    index: u64,
    now_ms: u64,
}

impl Replicas {
    fn new(config: ShardConfig) -> Replicas {
        let mut replicas = Replicas { shards: Vec::new(), events: Vec::new(), index: 0, now_ms: START_MS };
        replicas.add("default residency", Shard::with_residency(config, Residency::default()));
        replicas.add("one resident wallet", Shard::with_residency(config, Residency { resident_wallets_max: 1 }));
        replicas
    }

    fn add(&mut self, name: &str, shard: Shard) {
        self.shards.push((name.to_string(), shard));
        self.events.push(Vec::new());
    }

    fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
    }

    fn run_batch(&mut self, commands: &[Command]) -> Vec<Outcome> {
        self.index += 1;
        let ctx = Context { index: self.index, timestamp_ms: self.now_ms };
        let mut first: Option<Vec<Outcome>> = None;
        for ((name, shard), events) in self.shards.iter_mut().zip(self.events.iter_mut()) {
            let mut outcomes = Vec::new();
            shard.apply_batch(ctx, commands, &mut outcomes, events);
            shard.check_invariants();
            match &first {
                None => first = Some(outcomes),
                Some(expected) => assert_eq!(&outcomes, expected, "replica {name:?} replied differently to {commands:?}"),
            }
        }
        first.expect("at least one replica")
    }

    fn run(&mut self, command: Command) -> Outcome {
        self.run_batch(std::slice::from_ref(&command)).pop().expect("one outcome")
    }

    fn act(&mut self, operator: OperatorId, player: PlayerId, action: Action) -> Outcome {
        self.run(Command::Player { operator, player, action })
    }

    /// A step that must be accepted.
    fn must(&mut self, operator: OperatorId, player: PlayerId, action: Action) -> Reply {
        let shown = format!("{action:?}");
        self.act(operator, player, action).unwrap_or_else(|rejection| panic!("step {shown} for {player:?} was refused with {rejection:?}"))
    }

    fn session(&mut self, operator: OperatorId, player: PlayerId, game_id: &str, currency: Currency, duration_ms: u64) -> SessionId {
        match self.must(operator, player, Action::OpenSession { game: game(game_id), currency, duration_ms, locale: None }) {
            Reply::SessionOpened { session, .. } => session,
            other => panic!("OpenSession replied {other:?}"),
        }
    }

    fn shard(&self, at: usize) -> &Shard {
        &self.shards[at].1
    }
}

/// The rich shard (on two replicas); see the module doc. Ends blocked,
/// excluded and cooling off where it says so, with bonuses active.
fn rich(config: ShardConfig) -> Replicas {
    let mut r = Replicas::new(config);
    for (operator, sweepstakes) in [(OPERATOR, false), (OTHER_OPERATOR, false), (SWEEPS_OPERATOR, true)] {
        r.run(Command::ConfigureOperator(operator_config(operator, sweepstakes))).expect("operator configures");
    }
    r.run(Command::ConfigureOperator(multi_operator_config(MULTI_OPERATOR, &[eur(), usd(), gbp(), jpy()]))).expect("operator configures");
    r.run(Command::Reseed { entropy: [7; 32] }).expect("the RNG reseeds");

    // Alice: everything a standard wallet can hold.
    let (op, p) = (OPERATOR, ALICE);
    r.must(op, p, Action::CreateWallet);
    r.must(op, p, limit(LimitSource::Player, LimitKind::Deposit, LimitPeriod::Day, eur(), Some(50_000)));
    r.must(op, p, deposit("d-1", eur(), 20_000));
    r.must(op, p, deposit("d-2", usd(), 5_000));
    r.advance(MINUTE_MS);
    r.must(op, p, limit(LimitSource::Player, LimitKind::Deposit, LimitPeriod::Day, eur(), Some(100_000))); // a raise: pending
    r.must(op, p, limit(LimitSource::Operator, LimitKind::Loss, LimitPeriod::Week, eur(), Some(40_000)));
    r.must(op, p, limit(LimitSource::Player, LimitKind::Wager, LimitPeriod::Month, usd(), Some(100_000)));
    r.must(op, p, Action::SetSessionTimeLimit { source: LimitSource::Player, duration_ms: Some(2 * HOUR_MS) });
    r.must(op, p, Action::SetSessionTimeLimit { source: LimitSource::Player, duration_ms: Some(3 * HOUR_MS) }); // pending
    r.must(op, p, Action::SetSessionTimeLimit { source: LimitSource::Operator, duration_ms: Some(4 * HOUR_MS) });
    r.must(op, p, Action::Withdraw { tx: tx("w-1"), currency: eur(), amount: Amount(1_000) });
    let slot = r.session(op, p, "slot", eur(), DAY_MS);
    let half = r.session(op, p, "half", eur(), DAY_MS);
    let usd_slot = r.session(op, p, "slot", usd(), DAY_MS);
    r.must(op, p, bet(slot, "b-pre", "r-pre", "slot", eur(), auto(700))); // before the bonus
    r.advance(MINUTE_MS);
    r.must(op, p, grant("g-1", "bon-1", eur(), 2_000, 5, &[("half", 50), ("table", 0), ("live", 25)], 100));
    r.must(op, p, bet(slot, "b-1", "r-1", "slot", eur(), auto(1_000)));
    r.must(op, p, bet(slot, "b-2", "r-1", "slot", eur(), auto(500)));
    r.must(op, p, bet(half, "b-3", "r-3", "half", eur(), auto(400)));
    r.must(op, p, close("r-3")); // 200 of wagering
    r.must(op, p, bet(slot, "b-4", "r-4", "slot", eur(), auto(300)));
    r.must(op, p, win("w-4", "b-4", auto(900), false)); // open, with a win
    r.must(op, p, bet(slot, "b-5", "r-5", "slot", eur(), auto(200)));
    r.must(op, p, rollback("rb-5", "b-5", eur()));
    r.must(op, p, rollback("rb-ghost", "b-ghost", eur())); // recorded in advance
    r.must(op, p, bet(slot, "b-6", "r-6", "slot", eur(), split(100, 300, 0)));
    r.must(op, p, win("w-6", "b-6", split(50, 20, 30), false)); // fills the promo pocket
    r.must(op, p, bet(slot, "b-7", "r-7", "slot", eur(), split(0, 0, 10)));
    r.advance(MINUTE_MS);
    r.must(op, p, bet(usd_slot, "b-u1", "r-u1", "slot", usd(), auto(250))); // before the USD bonus
    r.must(op, p, grant("g-u0", "bon-u0", usd(), 100, 0, &[], 100)); // nothing to wager: converts at once
    r.must(op, p, grant("g-u1", "bon-u1", usd(), 300, 5, &[], 80));
    r.must(op, p, bet(usd_slot, "b-u2", "r-u2", "slot", usd(), auto(400)));
    r.must(op, p, bet(usd_slot, "b-u3", "r-u3", "slot", usd(), auto(100)));
    r.must(op, p, Action::RotateSeeds { client_seed: ExternalId::new("alice-seed").expect("valid") });
    let lines = r.session(op, p, SLOT_ID, eur(), DAY_MS);
    let dice = r.session(op, p, DICE_ID, usd(), DAY_MS);
    r.must(op, p, play("play-1", lines, eur(), 100, Choice::Slot, true));
    r.must(op, p, play("play-2", lines, eur(), 200, Choice::Slot, false));
    r.must(op, p, play("play-3", dice, usd(), 50, Choice::Dice(DiceBet { target: 5_000, over: true }), true));
    r.must(op, p, win("w-u3", "b-u3", auto(2_000), true)); // the player is ahead in USD
    r.must(op, p, Action::SetBlocked { blocked: true });

    // Bob: an open bet, then a self-exclusion and a cool-off.
    let (op, p) = (OPERATOR, BOB);
    r.must(op, p, Action::CreateWallet);
    r.must(op, p, deposit("d-1", eur(), 3_000));
    let bob_slot = r.session(op, p, "slot", eur(), HOUR_MS);
    r.must(op, p, bet(bob_slot, "b-1", "r-1", "slot", eur(), auto(100)));
    r.must(op, p, grant("g-1", "bon-b", eur(), 100, 5, &[], 100));
    r.must(op, p, bet(bob_slot, "b-2", "r-2", "slot", eur(), auto(50)));
    r.must(op, p, Action::ForfeitBonus { bonus: bonus_id("bon-b") }); // b-2 stays open, linked to a forfeited bonus
    r.must(op, p, Action::SelfExclude { until_ms: Some(START_MS + 30 * DAY_MS) });
    r.must(op, p, Action::CoolOff { duration_ms: 7 * DAY_MS });

    // Carol: sweepstakes.
    let (op, p) = (SWEEPS_OPERATOR, CAROL);
    r.must(op, p, Action::CreateWallet);
    r.must(op, p, deposit("p-1", GC, 10_000));
    r.must(op, p, sweeps_grant("sg-1", SweepsGrantKind::PurchaseBonus, 5_000, 1));
    r.must(op, p, sweeps_grant("sg-2", SweepsGrantKind::DailyReward, 3_500, 0));
    r.must(op, p, sweeps_grant("sg-3", SweepsGrantKind::MailIn, 2_000, 2));
    let sc_slot = r.session(op, p, "slot", SC, HOUR_MS);
    let gc_slot = r.session(op, p, "slot", GC, HOUR_MS);
    r.must(op, p, bet(sc_slot, "sb-1", "sr-1", "slot", SC, auto(1_000)));
    r.must(op, p, close("sr-1")); // plays the first lot part way
    r.must(op, p, bet(sc_slot, "sb-2", "sr-2", "slot", SC, auto(500)));
    r.must(op, p, bet(gc_slot, "gb-1", "gr-1", "slot", GC, auto(500)));
    r.must(op, p, Action::RequestRedemption { redemption: redemption("red-3"), amount: Amount(1_000) });
    r.must(op, p, Action::ApproveRedemption { redemption: redemption("red-3") });
    r.must(op, p, Action::RequestRedemption { redemption: redemption("red-4"), amount: Amount(1_000) });
    r.must(op, p, Action::RejectRedemption { redemption: redemption("red-4") });
    r.must(op, p, Action::RequestRedemption { redemption: redemption("red-1"), amount: Amount(1_000) });
    r.must(op, p, Action::RequestRedemption { redemption: redemption("red-2"), amount: Amount(1_000) });
    r.must(op, p, limit(LimitSource::Player, LimitKind::Wager, LimitPeriod::Day, GC, Some(1_000_000)));

    // Dave: blocked and idle, under the other operator.
    let (op, p) = (OTHER_OPERATOR, DAVE);
    r.must(op, p, Action::CreateWallet);
    r.must(op, p, deposit("d-1", eur(), 777));
    r.must(op, p, Action::SetBlocked { blocked: true });

    // Erin: every list at its largest where it is cheap to get there.
    let (op, p) = (MULTI_OPERATOR, ERIN);
    r.must(op, p, Action::CreateWallet);
    let mut slots = Vec::new();
    for (at, currency) in [eur(), usd(), gbp(), jpy()].into_iter().enumerate() {
        r.must(op, p, deposit(&format!("d-{currency}"), currency, 10_000 + at as i64));
        r.must(op, p, limit(LimitSource::Player, LimitKind::Loss, LimitPeriod::Day, currency, Some(9_000)));
        r.must(op, p, grant(&format!("g-{currency}"), &format!("bon-{currency}"), currency, 500, 3, &[("half", 50)], 90));
        let slot = r.session(op, p, "slot", currency, 2 * DAY_MS);
        slots.push(slot);
        r.session(op, p, "half", currency, 2 * DAY_MS);
        r.must(op, p, bet(slot, &format!("b-{currency}"), &format!("r-{currency}"), "slot", currency, auto(1_000)));
    }
    // b-JPY stays open while its bonus converts: 2,000 settled at 90%.
    let jpy_slot = slots[3];
    r.must(op, p, bet(jpy_slot, "b-JPY-2", "r-JPY-2", "slot", jpy(), auto(1_500)));
    r.must(op, p, bet(jpy_slot, "b-JPY-3", "r-JPY-2", "slot", jpy(), auto(500)));
    r.must(op, p, close("r-JPY-2"));

    r.must(OPERATOR, FRANK, Action::CreateWallet);
    r.must(OPERATOR, GINA, Action::CreateWallet);
    r.session(OPERATOR, GINA, "slot", eur(), MINUTE_MS);
    r.advance(2 * MINUTE_MS);

    // A replaced operator configuration, and a batch of several commands.
    let mut other = operator_config(OTHER_OPERATOR, false);
    other.limit_increase_delay_ms = 2 * DAY_MS;
    r.run(Command::ConfigureOperator(other)).expect("operator reconfigures");
    let batch = [
        Command::Player { operator: OPERATOR, player: FRANK, action: Action::Balance { currency: eur() } },
        Command::Player { operator: OPERATOR, player: ALICE, action: win("w-2", "b-2", auto(10), false) },
        Command::Player { operator: OTHER_OPERATOR, player: FRANK, action: Action::Balance { currency: eur() } }, // foreign
    ];
    r.run_batch(&batch);
    r
}

/// The commands played after the snapshot: time passes (pending raises
/// apply, sessions and then bonuses expire), rounds settle, redemptions
/// end, refusals and replays of every kind.
fn continue_play(r: &mut Replicas) {
    r.advance(25 * HOUR_MS);
    let (op, p) = (OPERATOR, ALICE);
    let _ = r.act(op, p, bet(SessionId(0), "b-x", "r-x", "slot", eur(), auto(10))); // blocked
    r.must(op, p, Action::SetBlocked { blocked: false });
    r.must(op, p, win("w-b1", "b-1", auto(3_000), true)); // settles b-1 and b-2 under bon-1
    r.must(op, p, close("r-pre")); // placed before bon-1: no progress
    r.must(op, p, close("r-6"));
    r.must(op, p, rollback("rb-7", "b-7", eur()));
    r.must(op, p, win("w-u2", "b-u2", auto(800), true));
    r.must(op, p, rollback("rb-u1", "b-u1", usd()));
    r.must(op, p, deposit("d-3", eur(), 60_000)); // the raised deposit limit now applies
    let _ = r.act(op, p, deposit("d-1", eur(), 20_001)); // conflict
    let _ = r.act(op, p, deposit("d-1", eur(), 20_000)); // replay
    let slot = r.session(op, p, "slot", eur(), HOUR_MS);
    r.must(op, p, bet(slot, "b-8", "r-8", "slot", eur(), auto(1_000)));
    let _ = r.act(op, p, bet(slot, "b-8", "r-8", "slot", eur(), auto(1_000))); // replay
    let _ = r.act(op, p, bet(slot, "b-ghost", "r-9", "slot", eur(), auto(100))); // rolled back in advance
    r.must(op, p, Action::ForfeitBonus { bonus: bonus_id("bon-u1") });
    let _ = r.act(op, p, grant("g-u2", "bon-u1", usd(), 300, 5, &[], 80)); // the id was used
    r.advance(4 * HOUR_MS);
    let _ = r.act(op, p, bet(slot, "b-9", "r-9", "slot", eur(), auto(100))); // session over
    r.must(op, p, win("w-8", "b-8", auto(2_500), true));
    let dice = r.session(op, p, DICE_ID, eur(), HOUR_MS);
    r.must(op, p, play("play-4", dice, eur(), 300, Choice::Dice(DiceBet { target: 3_000, over: false }), true));
    let _ = r.act(op, p, play("play-4", dice, eur(), 300, Choice::Dice(DiceBet { target: 3_000, over: false }), true)); // replay
    r.run(Command::Reseed { entropy: [9; 32] }).expect("the RNG reseeds");
    r.must(op, p, play("play-5", dice, eur(), 300, Choice::Dice(DiceBet { target: 7_000, over: true }), false));
    r.must(op, p, Action::RotateSeeds { client_seed: ExternalId::new("alice-seed-2").expect("valid") });
    r.must(op, p, play("play-6", dice, eur(), 300, Choice::Dice(DiceBet { target: 7_000, over: true }), true));

    let (op, p) = (OPERATOR, BOB);
    let _ = r.act(op, p, Action::OpenSession { game: game("slot"), currency: eur(), duration_ms: HOUR_MS, locale: None }); // excluded
    r.must(op, p, Action::Withdraw { tx: tx("wd-1"), currency: eur(), amount: Amount(500) });
    r.must(op, p, win("w-b1", "b-1", auto(250), true));

    let (op, p) = (SWEEPS_OPERATOR, CAROL);
    r.must(op, p, Action::ApproveRedemption { redemption: redemption("red-1") });
    r.must(op, p, Action::RejectRedemption { redemption: redemption("red-2") });
    r.must(op, p, close("sr-2"));
    r.must(op, p, win("gw-1", "gb-1", auto(1_200), true));
    let _ = r.act(op, p, Action::RequestRedemption { redemption: redemption("red-3"), amount: Amount(1_000) }); // replay
    r.must(op, p, sweeps_grant("sg-4", SweepsGrantKind::Promotion, 700, 3));

    let _ = r.act(OTHER_OPERATOR, DAVE, Action::OpenSession { game: game("slot"), currency: eur(), duration_ms: HOUR_MS, locale: None }); // blocked
    r.must(OTHER_OPERATOR, DAVE, deposit("d-2", eur(), 1));

    let (op, p) = (MULTI_OPERATOR, ERIN);
    for currency in [eur(), usd(), gbp(), jpy()] {
        r.must(op, p, win(&format!("w-{currency}"), &format!("b-{currency}"), auto(1_700), true));
    }

    r.must(OPERATOR, HENRY, Action::CreateWallet);
    r.must(OPERATOR, HENRY, deposit("d-1", usd(), 42));
    r.advance(7 * DAY_MS); // bon-1 and Erin's bonuses expire
    r.must(OPERATOR, ALICE, Action::Balance { currency: eur() });
    r.must(MULTI_OPERATOR, ERIN, Action::Balance { currency: gbp() });
    r.must(OPERATOR, GINA, Action::Balance { currency: eur() });
}

/// The configurations the rich shard is built under: the default, and one
/// whose index keeps only a few records, so eviction and the requeueing of
/// open bets are in the snapshot too.
fn configs() -> [(&'static str, ShardConfig); 2] {
    [("default retention", ShardConfig::new(9)), ("short retention", ShardConfig { tx_retention_count: 12, ..ShardConfig::new(9) })]
}

fn wallets(shard: &Shard, players: &[PlayerId]) -> Vec<(PlayerId, Option<Wallet>)> {
    players.iter().map(|&p| (p, shard.wallet(p))).collect()
}

/// The wallets of the rich shard, once.
fn rich_wallets() -> &'static Vec<Wallet> {
    static WALLETS: OnceLock<Vec<Wallet>> = OnceLock::new();
    WALLETS.get_or_init(|| {
        let r = rich(ShardConfig::new(9));
        PLAYERS.iter().map(|&p| r.shard(0).wallet(p).expect("the player exists")).collect()
    })
}

/// The encoded wallets of the rich shard, once.
fn rich_wallet_bytes() -> &'static Vec<Vec<u8>> {
    static BYTES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    BYTES.get_or_init(|| rich_wallets().iter().map(|w| wallet_to_bytes(w).to_vec()).collect())
}

// ---- the fixture ------------------------------------------------------------

#[test]
fn the_rich_shard_uses_every_piece_of_wallet_state() {
    let all = rich_wallets();
    fn any(all: &[Wallet], what: &str, test: impl Fn(&Wallet) -> bool) {
        assert!(all.iter().any(test), "no wallet of the rich shard has {what}");
    }
    fn any_bet(all: &[Wallet], what: &str, test: impl Fn(&OpenBet) -> bool) {
        assert!(all.iter().flat_map(|w| w.open_bets.iter()).any(test), "no open bet of the rich shard has {what}");
    }
    let bets = || all.iter().flat_map(|w| w.open_bets.iter());
    let limits = || all.iter().filter_map(|w| w.responsible.as_ref()).flat_map(|r| r.limits.iter());
    let usage = || all.iter().filter_map(|w| w.responsible.as_ref()).flat_map(|r| r.usage.iter());

    any(all, "the blocked flag", |w| w.blocked);
    any(all, "the most currency accounts", |w| w.accounts.len() == CURRENCIES_PER_WALLET_MAX);
    any(all, "cash, bonus and promo in one standard account", |w| {
        w.accounts.iter().any(|a| a.currency != SC && !a.pockets.cash.is_zero() && !a.pockets.bonus.is_zero() && !a.pockets.promo.is_zero())
    });
    any(all, "redeemable, unplayed and pending Sweeps Coins", |w| {
        w.account(SC).is_some_and(|a| !a.pockets.cash.is_zero() && !a.pockets.bonus.is_zero() && !a.pockets.promo.is_zero())
    });
    any_bet(all, "a bonus", |b| b.bonus != BonusLink::None);
    any_bet(all, "no bonus", |b| b.bonus == BonusLink::None);
    any_bet(all, "an active bonus", |b| matches!(b.bonus, BonusLink::Active(_)));
    any_bet(all, "a converted bonus", |b| matches!(b.bonus, BonusLink::Converted(_)));
    any_bet(all, "a forfeited bonus", |b| matches!(b.bonus, BonusLink::Forfeited(_)));
    any_bet(all, "a win", |b| !b.won.is_zero());
    any_bet(all, "a counted stake", |b| b.counted);
    any_bet(all, "an uncounted stake", |b| !b.counted);
    any_bet(all, "a stake partly from bonus", |b| !b.stake.bonus.is_zero() && !b.stake.cash.is_zero());
    any_bet(all, "a stake from promo", |b| !b.stake.promo.is_zero());
    any_bet(all, "Sweeps Coins", |b| b.currency == SC);
    any_bet(all, "Gold Coins", |b| b.currency == GC);
    assert!(bets().map(|b| b.round).collect::<BTreeSet<_>>().len() < bets().count(), "no two open bets share a round");
    any(all, "the most sessions", |w| w.sessions.len() == SESSIONS_PER_PLAYER_MAX);
    any(all, "an expired session", |w| w.sessions.iter().any(|s| s.expires_ms < START_MS + 30 * MINUTE_MS));
    any(all, "two active bonuses", |w| w.bonuses.len() >= 2);
    any(all, "a bonus with weights and progress", |w| w.bonuses.iter().any(|b| !b.weights.is_empty() && !b.wagered.is_zero()));
    any(all, "a bonus without weights", |w| w.bonuses.iter().any(|b| b.weights.is_empty()));
    any(all, "sweepstakes lots", |w| w.sweeps.as_ref().is_some_and(|s| s.lots.len() >= 2));
    any(all, "pending redemptions", |w| w.sweeps.as_ref().is_some_and(|s| s.redemptions.len() >= 2));
    assert!(limits().any(|l| l.bound.pending.is_some()), "no limit with a pending raise");
    assert!(limits().any(|l| l.bound.operator.is_some()), "no operator-set limit");
    assert!(limits().any(|l| l.bound.player.is_some()), "no player-set limit");
    for kind in LimitKind::ALL {
        assert!(limits().any(|l| l.kind == kind), "no {kind:?} limit");
    }
    assert!(
        usage().any(|u| !u.deposited.is_zero() && !u.wagered.is_zero() && u.net_loss != 0),
        "no usage with deposits, wagers and losses"
    );
    assert!(usage().any(|u| u.net_loss < 0), "no usage with the player ahead");
    any(all, "a session time limit with a pending raise", |w| {
        w.responsible.as_ref().is_some_and(|r| r.session_time.pending.is_some() && r.session_time.operator.is_some())
    });
    any(all, "a self-exclusion", |w| w.responsible.as_ref().is_some_and(|r| r.excluded_until_ms > 0));
    any(all, "a cool-off", |w| w.responsible.as_ref().is_some_and(|r| r.cool_off_until_ms > 0));
    any(all, "no responsible-gaming state", |w| w.responsible.is_none());
    any(all, "provably-fair seeds in use", |w| w.fair.as_ref().is_some_and(|f| f.nonce > 0));
    any(all, "nothing at all", |w| w.accounts.is_empty() && w.sessions.is_empty());
    let operators: BTreeSet<OperatorId> = all.iter().map(|w| w.operator).collect();
    assert_eq!(operators.len(), 4, "the rich shard has players of four operators");
}

// ---- snapshot, restore, residency ---------------------------------------------

#[test]
fn a_restored_shard_snapshots_to_the_same_bytes_and_holds_the_same_wallets() {
    for (config_name, config) in configs() {
        let r = rich(config);
        let original = r.shard(0);
        let snapshot = original.snapshot();
        for residency in [Residency::default(), Residency { resident_wallets_max: 1 }] {
            let restored = Shard::restore(&snapshot, residency).unwrap_or_else(|e| panic!("{config_name}: restore failed: {e}"));
            let name = format!("{config_name}, {residency:?}");
            restored.check_invariants();
            assert!(restored.snapshot() == snapshot, "{name}: the restored shard snapshots to other bytes");
            assert_eq!(wallets(&restored, &PLAYERS), wallets(original, &PLAYERS), "{name}: wallets differ after restore");
            assert_eq!(restored.wallet_count(), original.wallet_count(), "{name}: wallet count");
            assert_eq!(restored.ledger(), original.ledger(), "{name}: the books");
            assert_eq!(restored.index_len(), original.index_len(), "{name}: index length");
            assert_eq!(restored.config(), original.config(), "{name}: shard config");
            assert_eq!(
                (restored.applied_index(), restored.now_ms()),
                (original.applied_index(), original.now_ms()),
                "{name}: applied index and clock"
            );
            for player in PLAYERS {
                for currency in [eur(), usd(), gbp(), jpy(), GC, SC] {
                    assert_eq!(
                        restored.balance(player, currency),
                        original.balance(player, currency),
                        "{name}: balance of {player:?} in {currency}"
                    );
                }
            }
            for operator in [OPERATOR, OTHER_OPERATOR, SWEEPS_OPERATOR, MULTI_OPERATOR] {
                for currency in [eur(), usd(), gbp(), jpy(), GC, SC] {
                    assert_eq!(
                        restored.currency_spec(operator, currency),
                        original.currency_spec(operator, currency),
                        "{name}: {operator:?} {currency}"
                    );
                }
            }
        }
    }
}

#[test]
fn passivating_every_wallet_does_not_change_the_snapshot() {
    for (config_name, config) in configs() {
        let mut r = rich(config);
        let shard = &mut r.shards[0].1;
        assert!(shard.resident_wallet_count() > 1, "{config_name}: the default residency keeps wallets resident");
        let before = shard.snapshot();
        let wallets_before = wallets(shard, &PLAYERS);
        shard.passivate_all();
        assert_eq!(shard.resident_wallet_count(), 0, "{config_name}: every wallet is passive");
        shard.check_invariants();
        assert!(shard.snapshot() == before, "{config_name}: passivation changed the snapshot");
        assert_eq!(wallets(shard, &PLAYERS), wallets_before, "{config_name}: passivation changed a wallet");
    }
}

/// A snapshot written into a buffer given to it (a node prepares one with
/// its pages mapped) has the same bytes as one into a fresh buffer; a
/// buffer with room is used in place (no copy, no new allocation), one
/// without grows, and what a buffer held before is gone.
#[test]
fn a_snapshot_into_a_given_buffer_has_the_same_bytes_and_uses_the_buffer_when_it_has_room() {
    let r = rich(ShardConfig::new(9));
    let shard = r.shard(0);
    let expected = shard.snapshot();
    let mut roomy = Vec::with_capacity(shard.snapshot_size_bound());
    roomy.extend_from_slice(b"stale bytes of an earlier use");
    let at = roomy.as_ptr();
    let written = shard.snapshot_into(roomy);
    assert!(written == expected, "a roomy buffer gave other bytes");
    assert_eq!(written.as_ptr(), at, "a buffer with room was replaced");
    let small = shard.snapshot_into(vec![7u8; 16]);
    assert!(small == expected, "a small buffer gave other bytes");
    assert!(shard.snapshot_into(Vec::new()) == expected, "an unallocated buffer gave other bytes");
    assert!(shard.snapshot_size_bound() >= expected.len(), "the bound is a bound");
    // After a header of the caller's: the same bytes follow it, checksum
    // included, and they restore.
    let after = shard.snapshot_after(b"header".to_vec());
    assert!(after.starts_with(b"header") && after[6..] == expected[..], "a snapshot after a prefix gave other bytes");
    assert!(Shard::restore(&after[6..], Residency::default()).is_ok());
}

#[test]
fn shards_fed_the_same_commands_snapshot_identically_whatever_their_residency() {
    for (config_name, config) in configs() {
        let r = rich(config);
        let (default, small) = (r.shard(0), r.shard(1));
        assert!(default.resident_wallet_count() > small.resident_wallet_count(), "{config_name}: the residencies differ");
        assert!(default.snapshot() == small.snapshot(), "{config_name}: snapshots differ between residencies");
        assert_eq!(r.events[0], r.events[1], "{config_name}: events differ between residencies");
        assert_eq!(wallets(default, &PLAYERS), wallets(small, &PLAYERS), "{config_name}: wallets differ between residencies");
    }
}

#[test]
fn a_restored_shard_goes_on_exactly_like_the_original() {
    for (config_name, config) in configs() {
        let mut r = rich(config);
        let snapshot = r.shard(0).snapshot();
        for (name, residency) in [
            ("restored, default residency", Residency::default()),
            ("restored, one resident wallet", Residency { resident_wallets_max: 1 }),
        ] {
            let restored = Shard::restore(&snapshot, residency).unwrap_or_else(|e| panic!("{config_name}: restore failed: {e}"));
            r.add(name, restored);
        }
        let seen: Vec<usize> = r.events.iter().map(Vec::len).collect();
        // Every reply is compared across the four shards as it is applied.
        continue_play(&mut r);
        let first_events = &r.events[0][seen[0]..];
        assert!(first_events.iter().any(|e| matches!(e, Event::BonusForfeited { .. })), "{config_name}: the continuation forfeits a bonus");
        let mut players = PLAYERS.to_vec();
        players.push(HENRY);
        let expected = r.shard(0).snapshot();
        for (at, (name, shard)) in r.shards.iter().enumerate() {
            assert_eq!(&r.events[at][seen[at]..], first_events, "{config_name}: {name} emitted other events");
            assert!(shard.snapshot() == expected, "{config_name}: {name} snapshots to other bytes");
            assert_eq!(wallets(shard, &players), wallets(r.shard(0), &players), "{config_name}: {name} holds other wallets");
        }
        assert!(expected != snapshot, "{config_name}: the continuation changed the state");
    }
}

// ---- corruption -------------------------------------------------------------

/// A shard with one operator and one funded wallet.
fn small_snapshot() -> Vec<u8> {
    let mut r = Replicas::new(ShardConfig::new(1));
    r.run(Command::ConfigureOperator(operator_config(OPERATOR, false))).expect("operator configures");
    r.must(OPERATOR, ALICE, Action::CreateWallet);
    r.must(OPERATOR, ALICE, deposit("d-1", eur(), 1_234));
    r.shard(0).snapshot()
}

fn rich_snapshot() -> Vec<u8> {
    rich(ShardConfig::new(9)).shard(0).snapshot()
}

/// The snapshots corruption is tried on: a small one, an empty shard's, a rich one.
fn sample_snapshots() -> Vec<(&'static str, Vec<u8>)> {
    vec![("small", small_snapshot()), ("empty", Shard::new(ShardConfig::new(2)).snapshot()), ("rich", rich_snapshot())]
}

/// Every position of a snapshot up to 64 KiB, else 512 evenly spaced ones
/// (the first and last included).
fn positions(len: usize) -> Vec<usize> {
    if len <= 1 << 16 {
        return (0..len).collect();
    }
    let mut at: Vec<usize> = (0..512).map(|i| i * (len - 1) / 511).collect();
    at.dedup();
    at
}

/// Replaces the trailer with the checksum of everything before it.
fn reseal(bytes: &mut [u8]) {
    let body = bytes.len() - 4;
    let checksum = crc32c(&bytes[..body]);
    bytes[body..].copy_from_slice(&checksum.to_le_bytes());
}

/// `body` followed by its checksum.
fn sealed(body: &[u8]) -> Vec<u8> {
    let mut bytes = body.to_vec();
    bytes.extend_from_slice(&crc32c(body).to_le_bytes());
    bytes
}

fn restore(bytes: &[u8]) -> Result<Shard, DecodeError> {
    Shard::restore(bytes, Residency::default())
}

#[test]
fn the_sample_snapshots_restore_before_corruption() {
    for (name, snapshot) in sample_snapshots() {
        let restored = restore(&snapshot).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(restored.snapshot() == snapshot, "{name}: restore is not the inverse of snapshot");
    }
}

#[test]
fn flipping_any_byte_of_a_snapshot_makes_restore_fail() {
    for (name, snapshot) in sample_snapshots() {
        let mut accepted = Vec::new();
        let mut tried = 0;
        for at in positions(snapshot.len()) {
            for mask in [0x01u8, 0x80, 0xFF] {
                let mut bytes = snapshot.clone();
                bytes[at] ^= mask;
                tried += 1;
                match restore(&bytes) {
                    Ok(_) => accepted.push(format!("byte {at} ^ {mask:#04x}: restored")),
                    Err(DecodeError::Checksum { .. }) => {}
                    Err(DecodeError::Magic) if at < 8 => {}
                    Err(other) => accepted.push(format!("byte {at} ^ {mask:#04x}: {other} (expected a checksum error)")),
                }
            }
        }
        assert!(tried > 0);
        assert!(
            accepted.is_empty(),
            "{name} snapshot ({} bytes): {} of {tried} flips not refused by the checksum:\n{}",
            snapshot.len(),
            accepted.len(),
            accepted.join("\n")
        );
    }
}

#[test]
fn truncating_a_snapshot_anywhere_makes_restore_fail() {
    for (name, snapshot) in sample_snapshots() {
        let accepted: Vec<usize> = (0..snapshot.len()).filter(|&len| restore(&snapshot[..len]).is_ok()).collect();
        assert!(accepted.is_empty(), "{name} snapshot: truncations to these lengths were restored: {accepted:?}");
    }
}

#[test]
fn truncating_the_body_under_a_valid_checksum_still_makes_restore_fail() {
    for (name, snapshot) in sample_snapshots() {
        let body = &snapshot[..snapshot.len() - 4];
        let accepted: Vec<usize> = (0..body.len()).filter(|&len| restore(&sealed(&body[..len])).is_ok()).collect();
        assert!(accepted.is_empty(), "{name} snapshot: bodies truncated to these lengths were restored: {accepted:?}");
    }
}

#[test]
fn a_snapshot_with_a_wrong_magic_is_refused_as_not_a_snapshot() {
    for (name, snapshot) in sample_snapshots() {
        for at in 0..8 {
            let mut bytes = snapshot.clone();
            bytes[at] = b'X';
            if bytes == snapshot {
                bytes[at] = b'Y';
            }
            reseal(&mut bytes);
            assert_eq!(restore(&bytes).err(), Some(DecodeError::Magic), "{name}: magic byte {at} changed");
        }
        assert_eq!(restore(b"NOTASNAPSHOT-AT-ALL").err(), Some(DecodeError::Magic), "{name}: other bytes");
    }
}

#[test]
fn a_snapshot_of_another_format_version_is_refused_by_its_version() {
    for (name, snapshot) in sample_snapshots() {
        assert_eq!(u16::from_le_bytes([snapshot[8], snapshot[9]]), 2, "{name}: the current format is version 2");
        for version in [0u16, 1, 3, 0x0200, u16::MAX] {
            let mut bytes = snapshot.clone();
            bytes[8..10].copy_from_slice(&version.to_le_bytes());
            reseal(&mut bytes);
            assert_eq!(restore(&bytes).err(), Some(DecodeError::Version(version)), "{name}: version {version} with a valid checksum");
        }
    }
}

#[test]
fn a_snapshot_with_bytes_appended_is_refused() {
    for (name, snapshot) in sample_snapshots() {
        for extra in [&[0u8][..], &[0xFF], &[1, 2, 3, 4], &[0; 9]] {
            let mut bytes = snapshot.clone();
            bytes.extend_from_slice(extra);
            assert!(restore(&bytes).is_err(), "{name}: {} bytes appended after the checksum were accepted", extra.len());
            // Inside the checksum, the decoder itself must notice.
            let mut body = snapshot[..snapshot.len() - 4].to_vec();
            body.extend_from_slice(extra);
            assert_eq!(
                restore(&sealed(&body)).err(),
                Some(DecodeError::Trailing { extra: extra.len() }),
                "{name}: {} bytes appended under a valid checksum",
                extra.len()
            );
        }
    }
}

#[test]
fn a_corrupted_body_under_a_valid_checksum_is_refused_or_restored_but_never_panics() {
    for (name, snapshot) in sample_snapshots() {
        let mut panics = Vec::new();
        let (mut refused, mut restored) = (0, 0);
        for at in positions(snapshot.len() - 4) {
            for mask in [0x01u8, 0x10, 0x80, 0xFF] {
                let mut bytes = snapshot.clone();
                bytes[at] ^= mask;
                reseal(&mut bytes);
                match panic::catch_unwind(AssertUnwindSafe(|| restore(&bytes).map(|_| ()))) {
                    Ok(Ok(())) => restored += 1,
                    Ok(Err(_)) => refused += 1,
                    Err(payload) => panics.push(format!("byte {at} ^ {mask:#04x}: {}", support::panic_text(&*payload))),
                }
            }
        }
        let shown: Vec<&String> = panics.iter().take(12).collect();
        assert!(
            panics.is_empty(),
            "{name} snapshot: restore panicked on {} corrupted bodies ({refused} refused, {restored} restored), first ones:\n{}",
            panics.len(),
            shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
        );
        assert!(refused > 0, "{name}: some corruption must be refused");
    }
}

// ---- the wallet codec -----------------------------------------------------------

#[test]
fn every_wallet_of_the_rich_shard_round_trips_through_its_bytes() {
    for wallet in rich_wallets() {
        let bytes = wallet_to_bytes(wallet);
        assert_eq!(wallet_from_bytes(&bytes).as_ref(), Ok(wallet), "wallet of operator {:?} did not round-trip", wallet.operator);
        assert_eq!(wallet_to_bytes(&wallet_from_bytes(&bytes).expect("decodes")), bytes, "re-encoding changed the bytes");
        assert!(wallet_from_bytes(&bytes[..bytes.len() - 1]).is_err(), "a wallet missing its last byte was accepted");
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert_eq!(wallet_from_bytes(&longer).err(), Some(DecodeError::Trailing { extra: 1 }), "a wallet with a byte appended");
    }
}

#[test]
fn limits_span_at_most_four_currencies_so_that_every_wallet_survives_passivation_and_restore() {
    // Limits need no account. The encoded wallet keeps usage windows for at
    // most four currencies, so a limit in a fifth one must be refused: if it
    // were accepted, the wallet could not be decoded once passivated.
    let five = [eur(), usd(), gbp(), jpy(), cad()];
    let mut r = Replicas::new(ShardConfig::new(4)); // the second replica keeps one wallet resident
    r.run(Command::ConfigureOperator(multi_operator_config(MULTI_OPERATOR, &five))).expect("operator configures");
    r.must(MULTI_OPERATOR, ERIN, Action::CreateWallet);
    r.must(MULTI_OPERATOR, FRANK, Action::CreateWallet);
    // Every limit there is, in four currencies: the longest lists a wallet can hold.
    for currency in &five[..4] {
        for kind in LimitKind::ALL {
            for period in LimitPeriod::ALL {
                r.must(MULTI_OPERATOR, ERIN, limit(LimitSource::Player, kind, period, *currency, Some(5_000)));
            }
        }
    }
    let before = r.shard(0).wallet(ERIN).expect("the player exists");
    let responsible = before.responsible.as_ref().expect("limits were set");
    assert_eq!((responsible.limits.len(), responsible.usage.len()), (36, 12), "(limits, usage windows) held");
    let (seen, ledger) = (r.events[0].len(), r.shard(0).ledger().clone());
    for kind in LimitKind::ALL {
        let outcome = r.act(MULTI_OPERATOR, ERIN, limit(LimitSource::Player, kind, LimitPeriod::Day, cad(), Some(5_000)));
        assert_eq!(outcome, Err(Rejection::TooManyCurrencies), "a {kind:?} limit in a fifth currency");
        let outcome = r.act(MULTI_OPERATOR, ERIN, limit(LimitSource::Operator, kind, LimitPeriod::Week, cad(), Some(5_000)));
        assert_eq!(outcome, Err(Rejection::TooManyCurrencies), "an operator's {kind:?} limit in a fifth currency");
    }
    assert_eq!(r.shard(0).wallet(ERIN).as_ref(), Some(&before), "the refusals changed the wallet");
    assert_eq!(r.shard(0).ledger(), &ledger, "the refusals changed the books");
    assert_eq!(&r.events[0][seen..], &[] as &[Event], "the refusals emitted events");

    assert_eq!(wallet_from_bytes(&wallet_to_bytes(&before)), Ok(before.clone()), "the wallet does not round-trip through its bytes");
    // Another player's command passivates Erin on the second replica, and
    // the next one of hers activates her again (decoding her bytes).
    r.must(MULTI_OPERATOR, FRANK, Action::Balance { currency: eur() });
    r.shards[1].1.passivate_all(); // residency is local: certain, whatever the eviction order
    r.must(MULTI_OPERATOR, ERIN, deposit("d-1", gbp(), 4_000));
    let snapshot = r.shard(0).snapshot();
    assert!(r.shard(1).snapshot() == snapshot, "the replicas' snapshots differ");
    let restored = restore(&snapshot).unwrap_or_else(|e| panic!("the shard's own snapshot does not restore: {e}"));
    assert_eq!(restored.wallet(ERIN), r.shard(0).wallet(ERIN), "the restored wallet");
}

// Strategies for arbitrary (structurally valid) wallets.

fn external_id() -> impl Strategy<Value = ExternalId> {
    prop::collection::vec(0x21u8..=0x7E, 1..=40).prop_map(|bytes| ExternalId::from_bytes(&bytes).expect("printable ASCII"))
}

fn currency() -> impl Strategy<Value = Currency> {
    prop_oneof![
        3 => prop::sample::select(vec![eur(), usd(), gbp(), jpy(), GC, SC]),
        1 => prop::collection::vec(prop_oneof![b'A'..=b'Z', b'0'..=b'9'], 1..=8)
            .prop_map(|code| Currency::new(std::str::from_utf8(&code).expect("ASCII")).expect("a valid code")),
    ]
}

fn money() -> impl Strategy<Value = Money> + Clone {
    prop_oneof![0u64..10_000, 0..=Money::MAX.minor()].prop_map(|minor| Money::from_minor(minor).expect("at most Money::MAX"))
}

/// A part of a stake: three of them always add up within `Money::MAX`.
fn part() -> impl Strategy<Value = Money> + Clone {
    prop_oneof![0u64..10_000, 0..=Money::MAX.minor() / 3].prop_map(|minor| Money::from_minor(minor).expect("small"))
}

fn pockets(part: impl Strategy<Value = Money> + Clone) -> impl Strategy<Value = Pockets> {
    (part.clone(), part.clone(), part).prop_map(|(cash, bonus, promo)| Pockets { cash, bonus, promo })
}

fn bound<T: std::fmt::Debug + Clone + 'static>(value: impl Strategy<Value = T> + Clone) -> impl Strategy<Value = Bound<T>> {
    let pending = (prop::option::of(value.clone()), any::<u64>()).prop_map(|(value, effective_ms)| Pending { value, effective_ms });
    (prop::option::of(value.clone()), prop::option::of(value), prop::option::of(pending)).prop_map(|(player, operator, pending)| Bound {
        player,
        operator,
        pending,
    })
}

fn open_bet() -> impl Strategy<Value = OpenBet> {
    (
        external_id(),
        external_id(),
        external_id(),
        currency(),
        pockets(part()),
        money(),
        any::<u64>(),
        any::<bool>(),
        prop::option::of((0u8..3, external_id())),
        (prop::option::of(external_id()), any::<bool>()),
    )
        .prop_map(|(tx, round, game, currency, stake, won, placed_ms, counted, bonus, (alias, paid))| OpenBet {
            tx: TxId(tx),
            round: RoundId(round),
            game: GameId(game),
            currency,
            stake,
            won,
            placed_ms,
            counted,
            bonus: match bonus {
                None => BonusLink::None,
                Some((0, id)) => BonusLink::Active(BonusId(id)),
                Some((1, id)) => BonusLink::Converted(BonusId(id)),
                Some((_, id)) => BonusLink::Forfeited(BonusId(id)),
            },
            alias: alias.map(TxId),
            paid,
        })
}

fn session() -> impl Strategy<Value = Session> {
    let locale = prop::option::of(("[A-Za-z]{2}", "[A-Za-z]{2}"))
        .prop_map(|codes| codes.map(|(country, language)| engine::Locale::new(&country, &language).expect("two letters each")));
    (any::<u64>(), external_id(), currency(), any::<u64>(), any::<u64>(), locale).prop_map(
        |(id, game, currency, opened_ms, expires_ms, locale)| Session {
            id: SessionId(id),
            game: GameId(game),
            currency,
            opened_ms,
            expires_ms,
            locale,
        },
    )
}

fn active_bonus() -> impl Strategy<Value = ActiveBonus> {
    (
        external_id(),
        currency(),
        (money(), money(), money(), money()),
        any::<u64>(),
        prop::collection::vec((external_id(), any::<u8>()), 0..=32),
        any::<u8>(),
    )
        .prop_map(|(bonus, currency, (granted, wagering_required, wagered, max_bet), expires_ms, weights, default_weight_percent)| {
            ActiveBonus {
                bonus: BonusId(bonus),
                currency,
                granted,
                wagering_required,
                wagered,
                max_bet,
                expires_ms,
                weights: weights.into_iter().map(|(g, percent)| (GameId(g), percent)).collect(),
                default_weight_percent,
            }
        })
}

fn sweeps() -> impl Strategy<Value = Sweeps> {
    (
        prop::collection::vec((money(), money()).prop_map(|(amount, remaining)| Lot { amount, remaining }), 0..=64),
        prop::collection::vec((external_id().prop_map(RedemptionId), money()), 0..=16),
    )
        .prop_map(|(lots, redemptions)| Sweeps { lots, redemptions })
}

fn responsible() -> impl Strategy<Value = Responsible> {
    let limit =
        (prop::sample::select(LimitKind::ALL.to_vec()), prop::sample::select(LimitPeriod::ALL.to_vec()), currency(), bound(money()))
            .prop_map(|(kind, period, currency, bound)| MoneyLimit { kind, period, currency, bound });
    let usage = (currency(), prop::sample::select(LimitPeriod::ALL.to_vec()), any::<u64>(), money(), money(), any::<i128>()).prop_map(
        |(currency, period, window_start_ms, deposited, wagered, net_loss)| Usage {
            currency,
            period,
            window_start_ms,
            deposited,
            wagered,
            net_loss,
        },
    );
    (prop::collection::vec(limit, 0..=36), prop::collection::vec(usage, 0..=12), bound(any::<u64>()), any::<u64>(), any::<u64>()).prop_map(
        |(limits, usage, session_time, excluded_until_ms, cool_off_until_ms)| Responsible {
            limits,
            usage,
            session_time,
            excluded_until_ms,
            cool_off_until_ms,
        },
    )
}

fn fair_seeds() -> impl Strategy<Value = FairSeeds> {
    (any::<[u8; 32]>(), external_id(), any::<u64>()).prop_map(|(server_seed, client_seed, nonce)| FairSeeds {
        server_seed,
        client_seed,
        nonce,
    })
}

fn wallet() -> impl Strategy<Value = Wallet> {
    (
        any::<u32>(),
        any::<bool>(),
        prop::collection::vec((currency(), pockets(money())).prop_map(|(currency, pockets)| Account { currency, pockets }), 0..=4),
        prop::collection::vec(open_bet(), 0..=8),
        prop::collection::vec(session(), 0..=8),
        prop::collection::vec(active_bonus(), 0..=4),
        prop::option::of(sweeps()),
        prop::option::of(responsible()),
        prop::option::of(fair_seeds()),
    )
        .prop_map(|(operator, blocked, accounts, open_bets, sessions, bonuses, sweeps, responsible, fair)| Wallet {
            operator: OperatorId(operator),
            blocked,
            accounts,
            open_bets: open_bets.into(),
            sessions,
            bonuses,
            sweeps: sweeps.map(Box::new),
            responsible: responsible.map(Box::new),
            fair: fair.map(Box::new),
        })
}

proptest! {
    // No regression files: the repository is not ours to write into.
    #![proptest_config(ProptestConfig { cases: 512, max_shrink_iters: 4_000, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn wallet_from_bytes_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        // Ok or Err, whichever: the property is that it returns.
        let _ = wallet_from_bytes(&bytes);
    }

    #[test]
    fn wallet_from_bytes_never_panics_on_damaged_wallet_bytes_and_accepts_only_canonical_ones(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let samples = rich_wallet_bytes();
        let mut bytes = samples[which.index(samples.len())].clone();
        for (at, value) in edits {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        if let Ok(wallet) = wallet_from_bytes(&bytes) {
            // A passive wallet is copied into snapshots as it is, an active
            // one re-encoded: both must give the same bytes.
            prop_assert_eq!(wallet_to_bytes(&wallet).to_vec(), bytes, "accepted bytes that do not re-encode to themselves");
        }
    }

    #[test]
    fn any_wallet_round_trips_through_its_bytes(wallet in wallet()) {
        let bytes = wallet_to_bytes(&wallet);
        prop_assert_eq!(wallet_from_bytes(&bytes), Ok(wallet));
    }
}
