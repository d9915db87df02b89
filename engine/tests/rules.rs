//! The engine's rules, one table per rule group. Each case builds a world of
//! its own, runs its setup steps, then applies one request and checks the
//! outcome: a refusal must carry its exact `Rejection` and leave every
//! balance, open bet, the books and the idempotency index as they were; an
//! acceptance must leave the stated pockets. Every case of a table runs even
//! when an earlier one fails, and each failure is reported with its case name.

mod support;

use std::collections::HashSet;

use engine::ledger::Ledger;
use engine::money::AMOUNT_MAX_MINOR;
use engine::wallet::{Account, OpenBet};
use engine::{
    Action, Amount, BonusId, BonusTerms, Currency, Event, ExternalId, GameId, LimitKind, LimitPeriod, LimitSource, Money, OperatorId,
    PlayerId, RedemptionId, Rejection, Reply, RoundId, SessionId, Stake, SweepsGrantKind, TxId, TxReply,
};
use support::*;

/// The player every case acts for (each case has a world of its own).
const P: u64 = 1;
const SC: Currency = Currency::SWEEPS_COINS;
const GC: Currency = Currency::GOLD_COINS;
const MINUTE_MS: u64 = 60 * 1000;
const AMOUNT_MAX: i64 = AMOUNT_MAX_MINOR as i64;

use LimitKind::{Deposit, Loss, Wager};
use LimitPeriod::{Day, Month, Week};
use LimitSource::{Operator, Player};

// ---- requests and actions -------------------------------------------------

/// The request a case is about: who sends what for whom.
struct Request {
    operator: OperatorId,
    player: u64,
    action: Action,
}

/// A request for player `P` of the standard operator.
fn standard(action: Action) -> Request {
    Request { operator: OPERATOR, player: P, action }
}

/// A request for player `P` of the sweepstakes operator.
fn sweepstakes(action: Action) -> Request {
    Request { operator: SWEEPS_OPERATOR, player: P, action }
}

fn gbp() -> Currency {
    Currency::new("GBP").expect("valid code")
}

fn deposit_of(id: &str, minor: i64) -> Action {
    deposit_in(id, eur(), minor)
}

fn deposit_in(id: &str, currency: Currency, minor: i64) -> Action {
    Action::Deposit { tx: tx(id), currency, amount: Amount(minor) }
}

fn withdrawal_of(id: &str, minor: i64) -> Action {
    withdrawal_in(id, eur(), minor)
}

fn withdrawal_in(id: &str, currency: Currency, minor: i64) -> Action {
    Action::Withdraw { tx: tx(id), currency, amount: Amount(minor) }
}

/// A EUR bet on game "slot".
fn bet_of(session: SessionId, id: &str, round_id: &str, minor: i64) -> Action {
    bet_in(session, id, round_id, "slot", eur(), auto(minor))
}

fn bet_in(session: SessionId, id: &str, round_id: &str, game_id: &str, currency: Currency, stake: Stake) -> Action {
    Action::Bet { tx: tx(id), session, round: round(round_id), game: Some(game(game_id)), currency, stake, alias: None }
}

fn win_of(id: &str, bet_id: &str, minor: i64, close_round: bool) -> Action {
    Action::Win { tx: tx(id), bet: tx(bet_id), amount: auto(minor), close_round }
}

fn rollback_of(id: &str, bet_id: &str) -> Action {
    rollback_in(id, bet_id, eur())
}

fn rollback_in(id: &str, bet_id: &str, currency: Currency) -> Action {
    Action::Rollback { tx: tx(id), bet: tx(bet_id), currency }
}

fn close(round_id: &str) -> Action {
    Action::CloseRound { round: round(round_id) }
}

/// A EUR limit.
fn limit(source: LimitSource, kind: LimitKind, period: LimitPeriod, minor: Option<i64>) -> Action {
    limit_in(source, kind, period, eur(), minor)
}

fn limit_in(source: LimitSource, kind: LimitKind, period: LimitPeriod, currency: Currency, minor: Option<i64>) -> Action {
    Action::SetLimit { source, kind, period, currency, amount: minor.map(Amount) }
}

/// Bonus terms with game "table" weighted 0%, "half" 50%, the rest 100%.
fn bonus_terms(bonus_id: &str, currency: Currency, amount: i64, multiple: u32, max_bet: i64, duration_ms: u64) -> BonusTerms {
    BonusTerms {
        bonus: BonusId::new(bonus_id).expect("valid bonus id"),
        currency,
        amount: Amount(amount),
        wagering_multiple: multiple,
        max_bet: Amount(max_bet),
        duration_ms,
        weights: vec![(game("table"), 0), (game("half"), 50)],
        default_weight_percent: 100,
    }
}

fn grant(id: &str, terms: BonusTerms) -> Action {
    Action::GrantBonus { tx: tx(id), terms }
}

/// 1,000 EUR bonus "bon-1": wagering 10x, max bet 500, a week to play.
fn standard_grant(id: &str) -> Action {
    grant(id, bonus_terms("bon-1", eur(), 1_000, 10, 500, 7 * DAY_MS))
}

fn sweeps_grant(id: &str, minor: i64, playthrough_multiple: u32) -> Action {
    Action::GrantSweeps { tx: tx(id), kind: SweepsGrantKind::Promotion, amount: Amount(minor), playthrough_multiple }
}

fn redemption(id: &str) -> RedemptionId {
    RedemptionId::new(id).expect("valid redemption id")
}

fn redeem(id: &str, minor: i64) -> Action {
    Action::RequestRedemption { redemption: redemption(id), amount: Amount(minor) }
}

/// Setup steps: each must be accepted, or the case fails naming the step.
trait Steps {
    fn must_as(&mut self, operator: OperatorId, action: Action) -> Reply;
    /// An action of player `P` of the standard operator.
    fn must(&mut self, action: Action) -> Reply {
        self.must_as(OPERATOR, action)
    }
    /// An action of player `P` of the sweepstakes operator.
    fn must_sweeps(&mut self, action: Action) -> Reply {
        self.must_as(SWEEPS_OPERATOR, action)
    }
    fn open_session(&mut self, operator: OperatorId, game_id: &str, currency: Currency, duration_ms: u64) -> SessionId {
        match self.must_as(operator, Action::OpenSession { game: game(game_id), currency, duration_ms, locale: None }) {
            Reply::SessionOpened { session, .. } => session,
            other => panic!("setup: OpenSession replied {other:?}"),
        }
    }
    /// Creates player `P` under the sweepstakes operator.
    fn sweeps_player(&mut self) {
        self.must_sweeps(Action::CreateWallet);
    }
    /// A one-hour Sweeps Coins session on "slot" for the sweepstakes player.
    fn sweeps_session(&mut self) -> SessionId {
        self.open_session(SWEEPS_OPERATOR, "slot", SC, HOUR_MS)
    }
}

impl Steps for World {
    fn must_as(&mut self, operator: OperatorId, action: Action) -> Reply {
        let shown = format!("{action:?}");
        self.act_as(operator, P, action).unwrap_or_else(|rejection| panic!("setup step {shown} was refused with {rejection:?}"))
    }
}

// ---- what a refusal must leave alone --------------------------------------

/// Everything a refused command must leave as it was.
#[derive(Debug, PartialEq)]
struct Books {
    accounts: Option<Vec<Account>>,
    open_bets: Option<Vec<OpenBet>>,
    ledger: Ledger,
    index_len: usize,
}

fn books(world: &World, player: u64) -> Books {
    let wallet = world.shard.wallet(PlayerId(player));
    Books {
        accounts: wallet.as_ref().map(|w| w.accounts.clone()),
        open_bets: wallet.map(|w| w.open_bets.to_vec()),
        ledger: world.shard.ledger().clone(),
        index_len: world.shard.index_len(),
    }
}

fn pockets(world: &World, player: u64, currency: Currency) -> (i64, i64, i64) {
    let balance = world.shard.balance(PlayerId(player), currency).expect("the player has a wallet");
    (balance.cash.minor() as i64, balance.bonus.minor() as i64, balance.promo.minor() as i64)
}

fn money(minor: i64) -> Money {
    Money::from_minor(minor as u64).expect("a test amount fits in Money")
}

// ---- tables ---------------------------------------------------------------

/// What the request of a case must do.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Refused with this code, leaving the books alone and emitting no event.
    Refused(Rejection),
    /// Refused by this limit (a EUR one): its kind's code, the books left
    /// alone, and exactly one `LimitHit` event naming the binding limit.
    LimitHit(LimitKind, LimitPeriod, i64),
    /// Accepted, leaving these pockets (cash, bonus, promo) in the currency.
    Holds(Currency, i64, i64, i64),
}

use Expect::{LimitHit, Refused};

/// Accepted, leaving this much EUR cash and nothing in the other pockets.
fn cash(minor: i64) -> Expect {
    Expect::Holds(eur(), minor, 0, 0)
}

fn holds(currency: Currency, cash: i64, bonus: i64, promo: i64) -> Expect {
    Expect::Holds(currency, cash, bonus, promo)
}

struct Case {
    name: &'static str,
    /// Setup steps; returns the request under test.
    steps: fn(&mut World) -> Request,
    expect: Expect,
    /// Further checks on the world afterwards.
    check_after: fn(&World, &str),
}

fn case(name: &'static str, steps: fn(&mut World) -> Request, expect: Expect) -> Case {
    Case { name, steps, expect, check_after: |_, _| {} }
}

impl Case {
    fn then(mut self, check_after: fn(&World, &str)) -> Case {
        self.check_after = check_after;
        self
    }
}

impl Named for Case {
    fn name(&self) -> &'static str {
        self.name
    }
}

fn limit_code(kind: LimitKind) -> Rejection {
    match kind {
        LimitKind::Deposit => Rejection::DepositLimitExceeded,
        LimitKind::Loss => Rejection::LossLimitExceeded,
        LimitKind::Wager => Rejection::WagerLimitExceeded,
    }
}

fn run_case(case: &Case) {
    let name = case.name;
    let mut world = World::new();
    let Request { operator, player, action } = (case.steps)(&mut world);
    let shown = format!("{action:?}");
    let before = books(&world, player);
    let seen = world.events.len();
    let outcome = world.act_as(operator, player, action);
    let events = world.events[seen..].to_vec();
    match case.expect {
        Expect::Refused(code) => {
            assert_eq!(outcome, Err(code), "{name}: outcome of {shown}");
            assert_eq!(books(&world, player), before, "{name}: the refusal changed balances, bets, books or the index");
            assert_eq!(events, Vec::<Event>::new(), "{name}: a refusal emits no event");
        }
        Expect::LimitHit(kind, period, limit) => {
            assert_eq!(outcome, Err(limit_code(kind)), "{name}: outcome of {shown}");
            assert_eq!(books(&world, player), before, "{name}: the refusal changed balances, bets, books or the index");
            let hit = Event::LimitHit { player: PlayerId(player), kind, period, currency: eur(), limit: money(limit) };
            assert_eq!(events, vec![hit], "{name}: a limit refusal emits exactly its LimitHit event");
        }
        Expect::Holds(currency, cash, bonus, promo) => {
            assert!(outcome.is_ok(), "{name}: expected {shown} to be accepted, got {outcome:?}");
            assert_eq!(pockets(&world, player, currency), (cash, bonus, promo), "{name}: (cash, bonus, promo) in {currency} afterwards");
        }
    }
    (case.check_after)(&world, name);
}

// ---- 1. idempotency and ordering ------------------------------------------

struct Replay {
    name: &'static str,
    /// Setup steps; returns the request that is sent twice.
    setup: fn(&mut World) -> Request,
    /// Moves the balance between the original and the replay.
    meanwhile: fn(&mut World),
    /// The currency of the balance the request replies with.
    currency: fn() -> Currency,
}

impl Named for Replay {
    fn name(&self) -> &'static str {
        self.name
    }
}

fn run_replay(case: &Replay) {
    let name = case.name;
    let mut world = World::new();
    let Request { operator, player, action } = (case.setup)(&mut world);
    let first = match world.act_as(operator, player, action.clone()) {
        Ok(Reply::Tx(reply)) => reply,
        other => panic!("{name}: the original request replied {other:?}"),
    };
    assert!(!first.replayed, "{name}: the original request must not be marked replayed");
    (case.meanwhile)(&mut world);
    let moved = world.shard.balance(PlayerId(player), (case.currency)()).expect("the player exists");
    assert_ne!(moved, first.balance, "{name}: the balance must move between the request and its replay");

    let wallet = world.shard.wallet(PlayerId(player));
    let before = books(&world, player);
    let seen = world.events.len();
    let again = world.act_as(operator, player, action);
    let expected = TxReply { balance: first.balance, replayed: true, bet_found: first.bet_found };
    assert_eq!(again, Ok(Reply::Tx(expected)), "{name}: the replay returns the original result, marked replayed");
    assert_eq!(world.shard.wallet(PlayerId(player)), wallet, "{name}: the replay changed the wallet");
    assert_eq!(books(&world, player), before, "{name}: the replay changed the books or the index");
    assert_eq!(world.events[seen..].to_vec(), Vec::<Event>::new(), "{name}: a replay emits no event");
}

fn deposit_more(world: &mut World) {
    world.must(deposit_of("d-more", 100));
}

fn grant_more_sweeps(world: &mut World) {
    world.must_sweeps(sweeps_grant("g-more", 500, 0));
}

#[test]
fn a_repeated_request_replays_its_first_result_and_changes_nothing() {
    let cases = [
        Replay {
            name: "a deposit",
            setup: |w| {
                w.funded(P, 0);
                standard(deposit_of("d-1", 500))
            },
            meanwhile: deposit_more,
            currency: eur,
        },
        Replay {
            name: "a withdrawal",
            setup: |w| {
                w.funded(P, 10_000);
                standard(withdrawal_of("w-1", 400))
            },
            meanwhile: deposit_more,
            currency: eur,
        },
        Replay {
            name: "a bet, replayed after its session expired",
            setup: |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                standard(bet_of(s, "b-1", "r-1", 300))
            },
            meanwhile: |w| {
                w.advance(2 * HOUR_MS);
                deposit_more(w);
            },
            currency: eur,
        },
        Replay {
            name: "a win that closed its round",
            setup: |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 300));
                standard(win_of("w-1", "b-1", 500, true))
            },
            meanwhile: deposit_more,
            currency: eur,
        },
        Replay {
            name: "a rollback",
            setup: |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 300));
                standard(rollback_of("rb-1", "b-1"))
            },
            meanwhile: deposit_more,
            currency: eur,
        },
        Replay {
            name: "a rollback of an unknown bet",
            setup: |w| {
                w.funded(P, 10_000);
                standard(rollback_of("rb-1", "b-unknown"))
            },
            meanwhile: deposit_more,
            currency: eur,
        },
        Replay {
            name: "a bonus grant",
            setup: |w| {
                w.funded(P, 10_000);
                standard(standard_grant("g-1"))
            },
            meanwhile: deposit_more,
            currency: eur,
        },
        Replay {
            name: "a sweeps grant",
            setup: |w| {
                w.sweeps_player();
                sweepstakes(sweeps_grant("g-1", 2_000, 1))
            },
            meanwhile: grant_more_sweeps,
            currency: || SC,
        },
        Replay {
            name: "a redemption request",
            setup: |w| {
                w.sweeps_player();
                w.must_sweeps(sweeps_grant("g-1", 5_000, 0));
                sweepstakes(redeem("red-1", 1_000))
            },
            meanwhile: grant_more_sweeps,
            currency: || SC,
        },
    ];
    table(&cases, run_replay);
}

#[test]
fn a_reused_id_with_other_parameters_is_a_conflict() {
    let conflict = Refused(Rejection::TxConflict);
    let cases = [
        case(
            "a deposit id reused with another amount",
            |w| {
                w.funded(P, 0);
                w.must(deposit_of("d-1", 500));
                standard(deposit_of("d-1", 600))
            },
            conflict,
        ),
        case(
            "a deposit id reused in another currency",
            |w| {
                w.funded(P, 0);
                w.must(deposit_of("d-1", 500));
                standard(deposit_in("d-1", usd(), 500))
            },
            conflict,
        ),
        case(
            "a withdrawal id reused with another amount",
            |w| {
                w.funded(P, 10_000);
                w.must(withdrawal_of("w-1", 400));
                standard(withdrawal_of("w-1", 300))
            },
            conflict,
        ),
        case(
            "a bet id reused with another amount",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 300));
                standard(bet_of(s, "b-1", "r-1", 301))
            },
            conflict,
        ),
        case(
            "a bet id reused for another round",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 300));
                standard(bet_of(s, "b-1", "r-2", 300))
            },
            conflict,
        ),
        case(
            "a bet id reused for another game",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 300));
                standard(bet_in(s, "b-1", "r-1", "poker", eur(), auto(300)))
            },
            conflict,
        ),
        case(
            "a bet id reused in another currency",
            |w| {
                w.funded(P, 10_000);
                w.must(deposit_in("d-usd", usd(), 10_000));
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 300));
                standard(bet_in(s, "b-1", "r-1", "slot", usd(), auto(300)))
            },
            conflict,
        ),
        case(
            "a win id reused with another amount",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 300));
                w.must(win_of("w-1", "b-1", 500, false));
                standard(win_of("w-1", "b-1", 600, false))
            },
            conflict,
        ),
        case(
            "a rollback id reused for another bet",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 300));
                w.must(bet_of(s, "b-2", "r-2", 300));
                w.must(rollback_of("rb-1", "b-1"));
                standard(rollback_of("rb-1", "b-2"))
            },
            conflict,
        ),
        case(
            "a deposit id reused for a withdrawal",
            |w| {
                w.funded(P, 10_000);
                standard(withdrawal_of("dep-1", 10_000))
            },
            conflict,
        ),
        case(
            "a bet id reused for a deposit",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 300));
                standard(deposit_of("b-1", 300))
            },
            conflict,
        ),
        case(
            "a deposit id reused for a bet",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                standard(bet_of(s, "dep-1", "r-1", 300))
            },
            conflict,
        ),
        case(
            "a win id reused for a rollback",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 300));
                w.must(win_of("w-1", "b-1", 500, false));
                standard(rollback_of("w-1", "b-1"))
            },
            conflict,
        ),
        case(
            "a bonus grant id reused with another amount",
            |w| {
                w.funded(P, 10_000);
                w.must(standard_grant("g-1"));
                standard(grant("g-1", bonus_terms("bon-1", eur(), 2_000, 10, 500, 7 * DAY_MS)))
            },
            conflict,
        ),
        case(
            "a sweeps grant id reused with another amount",
            |w| {
                w.sweeps_player();
                w.must_sweeps(sweeps_grant("g-1", 1_000, 0));
                sweepstakes(sweeps_grant("g-1", 2_000, 0))
            },
            conflict,
        ),
        case(
            "a redemption id reused with another amount",
            |w| {
                w.sweeps_player();
                w.must_sweeps(sweeps_grant("g-1", 5_000, 0));
                w.must_sweeps(redeem("red-1", 1_000));
                sweepstakes(redeem("red-1", 1_500))
            },
            conflict,
        ),
    ];
    table(&cases, run_case);
}

#[test]
fn a_reference_to_a_bet_in_the_wrong_state_is_refused_with_its_own_code() {
    let cases = [
        case(
            "a bet whose id was rolled back in advance",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.must(rollback_of("rb-1", "b-1"));
                standard(bet_of(s, "b-1", "r-1", 300))
            },
            Refused(Rejection::BetRolledBackInAdvance),
        ),
        case(
            "a second rollback of a bet under a new id",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 300));
                w.must(rollback_of("rb-1", "b-1"));
                standard(rollback_of("rb-2", "b-1"))
            },
            Refused(Rejection::BetAlreadyRolledBack),
        ),
        case(
            "a second rollback in advance of an unknown bet under a new id",
            |w| {
                w.funded(P, 10_000);
                w.must(rollback_of("rb-1", "b-1"));
                standard(rollback_of("rb-2", "b-1"))
            },
            Refused(Rejection::BetAlreadyRolledBack),
        ),
        case(
            "a rollback after the bet's round closed",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 300));
                w.must(close("r-1"));
                standard(rollback_of("rb-1", "b-1"))
            },
            Refused(Rejection::BetAlreadySettled),
        ),
        case(
            "a rollback of a bet that already has a win",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 300));
                w.must(win_of("w-1", "b-1", 500, false));
                standard(rollback_of("rb-1", "b-1"))
            },
            Refused(Rejection::BetAlreadySettled),
        ),
        case(
            "a win on a closed round",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 300));
                w.must(close("r-1"));
                standard(win_of("w-1", "b-1", 500, false))
            },
            Refused(Rejection::RoundClosed),
        ),
        case(
            "a win on a rolled back bet",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 300));
                w.must(rollback_of("rb-1", "b-1"));
                standard(win_of("w-1", "b-1", 500, false))
            },
            Refused(Rejection::WinOnRolledBackBet),
        ),
        case(
            "a win on a bet rolled back in advance",
            |w| {
                w.funded(P, 10_000);
                w.must(rollback_of("rb-1", "b-1"));
                standard(win_of("w-1", "b-1", 500, false))
            },
            Refused(Rejection::WinOnRolledBackBet),
        ),
        case(
            "a win naming a bet never seen",
            |w| {
                w.funded(P, 10_000);
                standard(win_of("w-1", "b-never", 500, true))
            },
            Refused(Rejection::BetNotFound),
        ),
        case(
            "a rollback naming a deposit",
            |w| {
                w.funded(P, 10_000);
                standard(rollback_of("rb-1", "dep-1"))
            },
            Refused(Rejection::NotABet),
        ),
        case(
            "a win naming a deposit",
            |w| {
                w.funded(P, 10_000);
                standard(win_of("w-1", "dep-1", 500, false))
            },
            Refused(Rejection::NotABet),
        ),
        case(
            "a new bet on a closed round id",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 300));
                w.must(close("r-1"));
                standard(bet_of(s, "b-2", "r-1", 300))
            },
            Refused(Rejection::RoundClosed),
        ),
        case(
            "a bet joining an open round with another game",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                let poker = w.open_session(OPERATOR, "poker", eur(), HOUR_MS);
                w.must(bet_of(s, "b-1", "r-1", 300));
                standard(bet_in(poker, "b-2", "r-1", "poker", eur(), auto(300)))
            },
            Refused(Rejection::RoundMismatch),
        ),
        case(
            "a bet joining an open round in another currency",
            |w| {
                w.funded(P, 10_000);
                w.must(deposit_in("d-usd", usd(), 10_000));
                let s = w.session(P);
                let dollars = w.open_session(OPERATOR, "slot", usd(), HOUR_MS);
                w.must(bet_of(s, "b-1", "r-1", 300));
                standard(bet_in(dollars, "b-2", "r-1", "slot", usd(), auto(300)))
            },
            Refused(Rejection::RoundMismatch),
        ),
        case(
            "closing an unknown round",
            |w| {
                w.funded(P, 10_000);
                standard(close("r-unknown"))
            },
            Refused(Rejection::RoundNotFound),
        ),
        case(
            "closing an already closed round again is accepted",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 300));
                w.must(close("r-1"));
                standard(close("r-1"))
            },
            cash(9_700),
        ),
        case(
            "a second bet joining an open round with the same game is accepted",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 300));
                standard(bet_of(s, "b-2", "r-1", 200))
            },
            cash(9_500),
        ),
    ];
    table(&cases, run_case);
}

struct Found {
    name: &'static str,
    steps: fn(&mut World) -> Request,
    bet_found: bool,
    replayed: bool,
    cash: i64,
}

impl Named for Found {
    fn name(&self) -> &'static str {
        self.name
    }
}

#[test]
fn a_rollback_says_whether_it_found_its_bet() {
    let cases = [
        Found {
            name: "a rollback of an unknown bet succeeds without finding it",
            steps: |w| {
                w.funded(P, 10_000);
                standard(rollback_of("rb-1", "b-1"))
            },
            bet_found: false,
            replayed: false,
            cash: 10_000,
        },
        Found {
            name: "a replayed rollback of an unknown bet still did not find it",
            steps: |w| {
                w.funded(P, 10_000);
                w.must(rollback_of("rb-1", "b-1"));
                standard(rollback_of("rb-1", "b-1"))
            },
            bet_found: false,
            replayed: true,
            cash: 10_000,
        },
        Found {
            name: "a rollback of an open bet finds it and refunds it",
            steps: |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 300));
                standard(rollback_of("rb-1", "b-1"))
            },
            bet_found: true,
            replayed: false,
            cash: 10_000,
        },
    ];
    table(&cases, |case| {
        let name = case.name;
        let mut world = World::new();
        let Request { operator, player, action } = (case.steps)(&mut world);
        let reply = match world.act_as(operator, player, action) {
            Ok(Reply::Tx(reply)) => reply,
            other => panic!("{name}: expected a movement reply, got {other:?}"),
        };
        assert_eq!(reply.bet_found, case.bet_found, "{name}: bet_found");
        assert_eq!(reply.replayed, case.replayed, "{name}: replayed");
        assert_eq!(reply.balance.cash, money(case.cash), "{name}: cash in the reply");
        assert_eq!(world.cash(P), case.cash, "{name}: cash in the wallet");
    });
}

// ---- 2. sessions ----------------------------------------------------------

#[test]
fn a_new_bet_needs_a_live_matching_session_but_wins_and_rollbacks_do_not() {
    let cases = [
        case(
            "a bet without a session",
            |w| {
                w.funded(P, 10_000);
                standard(bet_of(SessionId(424_242), "b-1", "r-1", 300))
            },
            Refused(Rejection::SessionNotFound),
        ),
        case(
            "a bet on a closed session",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.must(Action::CloseSession { session: s });
                standard(bet_of(s, "b-1", "r-1", 300))
            },
            Refused(Rejection::SessionNotFound),
        ),
        case(
            "a bet one millisecond before the session expires is accepted",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.advance(HOUR_MS - 1);
                standard(bet_of(s, "b-1", "r-1", 300))
            },
            cash(9_700),
        ),
        case(
            "a bet after the session expired",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.advance(HOUR_MS);
                standard(bet_of(s, "b-1", "r-1", 300))
            },
            Refused(Rejection::SessionExpired),
        ),
        case(
            "a win on an earlier bet after the session expired is accepted",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 300));
                w.advance(2 * HOUR_MS);
                standard(win_of("w-1", "b-1", 500, true))
            },
            cash(10_200),
        ),
        case(
            "a rollback of an earlier bet after the session expired is accepted",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 300));
                w.advance(2 * HOUR_MS);
                standard(rollback_of("rb-1", "b-1"))
            },
            cash(10_000),
        ),
        case(
            "a bet on another game than the session's",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                standard(bet_in(s, "b-1", "r-1", "poker", eur(), auto(300)))
            },
            Refused(Rejection::SessionGameMismatch),
        ),
        case(
            "a bet in another currency than the session's",
            |w| {
                w.funded(P, 10_000);
                w.must(deposit_in("d-usd", usd(), 10_000));
                let s = w.session(P);
                standard(bet_in(s, "b-1", "r-1", "slot", usd(), auto(300)))
            },
            Refused(Rejection::SessionCurrencyMismatch),
        ),
        case(
            "a blocked player's new bet",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.must(Action::SetBlocked { blocked: true });
                standard(bet_of(s, "b-1", "r-1", 300))
            },
            Refused(Rejection::PlayerBlocked),
        ),
        case(
            "a blocked player's new session",
            |w| {
                w.funded(P, 10_000);
                w.must(Action::SetBlocked { blocked: true });
                standard(Action::OpenSession { game: game("slot"), currency: eur(), duration_ms: HOUR_MS, locale: None })
            },
            Refused(Rejection::PlayerBlocked),
        ),
        case(
            "a blocked player's win on an earlier bet is accepted",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 300));
                w.must(Action::SetBlocked { blocked: true });
                standard(win_of("w-1", "b-1", 500, true))
            },
            cash(10_200),
        ),
        case(
            "a blocked player's rollback of an earlier bet is accepted",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 300));
                w.must(Action::SetBlocked { blocked: true });
                standard(rollback_of("rb-1", "b-1"))
            },
            cash(10_000),
        ),
        case(
            "an unblocked player may bet again",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.must(Action::SetBlocked { blocked: true });
                w.must(Action::SetBlocked { blocked: false });
                standard(bet_of(s, "b-1", "r-1", 300))
            },
            cash(9_700),
        ),
        case(
            "a ninth live session",
            |w| {
                w.funded(P, 10_000);
                for _ in 0..8 {
                    w.session(P);
                }
                standard(Action::OpenSession { game: game("slot"), currency: eur(), duration_ms: HOUR_MS, locale: None })
            },
            Refused(Rejection::TooManySessions),
        ),
        case(
            "a ninth session when one of eight has expired is accepted",
            |w| {
                w.funded(P, 10_000);
                w.session(P);
                w.advance(HOUR_MS);
                for _ in 0..7 {
                    w.session(P);
                }
                standard(Action::OpenSession { game: game("slot"), currency: eur(), duration_ms: HOUR_MS, locale: None })
            },
            cash(10_000),
        )
        .then(|w, name| {
            let wallet = w.shard.wallet(PlayerId(P)).expect("the player exists");
            assert_eq!(wallet.sessions.len(), 8, "{name}: the expired session was pruned, eight live ones remain");
        }),
    ];
    table(&cases, run_case);
}

// ---- 3. responsible gaming ------------------------------------------------

#[test]
fn each_limit_refuses_the_movement_that_would_pass_it() {
    let cases = [
        case(
            "a deposit past the daily deposit limit",
            |w| {
                w.funded(P, 0);
                w.must(limit(Player, Deposit, Day, Some(1_000)));
                w.must(deposit_of("d-1", 600));
                standard(deposit_of("d-2", 500))
            },
            LimitHit(Deposit, Day, 1_000),
        ),
        case(
            "a deposit up to the daily deposit limit is accepted",
            |w| {
                w.funded(P, 0);
                w.must(limit(Player, Deposit, Day, Some(1_000)));
                w.must(deposit_of("d-1", 600));
                standard(deposit_of("d-2", 400))
            },
            cash(1_000),
        ),
        case(
            "a deposit past the weekly deposit limit on a later day of the week",
            |w| {
                w.funded(P, 0);
                w.must(limit(Player, Deposit, Week, Some(1_000)));
                w.must(deposit_of("d-1", 600));
                w.advance(DAY_MS);
                standard(deposit_of("d-2", 500))
            },
            LimitHit(Deposit, Week, 1_000),
        ),
        case(
            "a weekly deposit limit starts afresh on Monday",
            |w| {
                w.funded(P, 0);
                w.must(limit(Player, Deposit, Week, Some(1_000)));
                w.must(deposit_of("d-1", 600));
                w.advance(6 * DAY_MS); // Tuesday 24th to Monday 30th November
                standard(deposit_of("d-2", 500))
            },
            cash(1_100),
        ),
        case(
            "a deposit past the monthly deposit limit in a later week of the month",
            |w| {
                w.funded(P, 0);
                w.must(limit(Player, Deposit, Month, Some(1_000)));
                w.must(deposit_of("d-1", 600));
                w.advance(6 * DAY_MS); // Monday 30th November: a new week, the same month
                standard(deposit_of("d-2", 500))
            },
            LimitHit(Deposit, Month, 1_000),
        ),
        case(
            "a stake past the daily wager limit",
            |w| {
                w.funded(P, 10_000);
                w.must(limit(Player, Wager, Day, Some(1_000)));
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 600));
                w.must(close("r-1"));
                standard(bet_of(s, "b-2", "r-2", 500))
            },
            LimitHit(Wager, Day, 1_000),
        ),
        case(
            "a win gives no wager allowance back",
            |w| {
                w.funded(P, 10_000);
                w.must(limit(Player, Wager, Day, Some(1_000)));
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 600));
                w.must(win_of("w-1", "b-1", 600, true));
                standard(bet_of(s, "b-2", "r-2", 500))
            },
            LimitHit(Wager, Day, 1_000),
        ),
        case(
            "a stake past the daily loss limit",
            |w| {
                w.funded(P, 10_000);
                w.must(limit(Player, Loss, Day, Some(1_000)));
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 600));
                w.must(close("r-1"));
                standard(bet_of(s, "b-2", "r-2", 500))
            },
            LimitHit(Loss, Day, 1_000),
        ),
        case(
            "a loss limit counts losses net of wins",
            |w| {
                w.funded(P, 10_000);
                w.must(limit(Player, Loss, Day, Some(1_000)));
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 600));
                w.must(win_of("w-1", "b-1", 600, true));
                standard(bet_of(s, "b-2", "r-2", 600))
            },
            cash(9_400),
        ),
        case(
            "a loss limit counts losses net of refunds",
            |w| {
                w.funded(P, 10_000);
                w.must(limit(Player, Loss, Day, Some(1_000)));
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 600));
                w.must(rollback_of("rb-1", "b-1"));
                standard(bet_of(s, "b-2", "r-2", 1_000))
            },
            cash(9_000),
        ),
        case(
            "an operator limit below the player's binds",
            |w| {
                w.funded(P, 0);
                w.must(limit(Player, Deposit, Day, Some(1_000)));
                w.must(limit(Operator, Deposit, Day, Some(500)));
                standard(deposit_of("d-1", 600))
            },
            LimitHit(Deposit, Day, 500),
        ),
        case(
            "a player limit below the operator's binds",
            |w| {
                w.funded(P, 0);
                w.must(limit(Operator, Deposit, Day, Some(1_000)));
                w.must(limit(Player, Deposit, Day, Some(500)));
                standard(deposit_of("d-1", 600))
            },
            LimitHit(Deposit, Day, 500),
        ),
        case(
            "a weekly limit below the daily one binds",
            |w| {
                w.funded(P, 0);
                w.must(limit(Player, Deposit, Day, Some(1_000)));
                w.must(limit(Player, Deposit, Week, Some(500)));
                standard(deposit_of("d-1", 600))
            },
            LimitHit(Deposit, Week, 500),
        ),
        case(
            "a limit in one currency does not bind another",
            |w| {
                w.funded(P, 0);
                w.must(limit(Player, Deposit, Day, Some(500)));
                standard(deposit_in("d-1", usd(), 600))
            },
            holds(usd(), 600, 0, 0),
        ),
    ];
    table(&cases, run_case);
}

#[test]
fn a_refund_of_a_stake_placed_before_the_first_limit_gives_no_extra_allowance() {
    // Usage counts from when the first limit is set, so a stake placed
    // before it was never counted; its refund must not be taken off stakes
    // that were counted after. Here the player stakes 1,000 under the limit
    // of 1,000, then has the earlier, uncounted stake refunded: the limit
    // is used up, so a further stake must be refused.
    let cases = [
        case(
            "under a wager limit",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.must(bet_of(s, "b-early", "r-early", 1_000));
                w.must(limit(Player, Wager, Day, Some(1_000)));
                w.must(bet_of(s, "b-1", "r-1", 1_000));
                w.must(close("r-1"));
                w.must(rollback_of("rb-early", "b-early"));
                standard(bet_of(s, "b-2", "r-2", 500))
            },
            LimitHit(Wager, Day, 1_000),
        ),
        case(
            "under a loss limit",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.must(bet_of(s, "b-early", "r-early", 1_000));
                w.must(limit(Player, Loss, Day, Some(1_000)));
                w.must(bet_of(s, "b-1", "r-1", 1_000));
                w.must(close("r-1"));
                w.must(rollback_of("rb-early", "b-early"));
                standard(bet_of(s, "b-2", "r-2", 500))
            },
            LimitHit(Loss, Day, 1_000),
        ),
        case(
            "a refund of a stake placed under the limit does give its allowance back",
            |w| {
                w.funded(P, 10_000);
                w.must(limit(Player, Loss, Day, Some(1_000)));
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 1_000));
                w.must(rollback_of("rb-1", "b-1"));
                standard(bet_of(s, "b-2", "r-2", 1_000))
            },
            cash(9_000),
        ),
    ];
    table(&cases, run_case);
}

#[test]
fn a_looser_player_limit_waits_out_the_delay_and_every_other_change_applies_at_once() {
    let cases = [
        case(
            "a player's decrease applies at once",
            |w| {
                w.funded(P, 0);
                w.must(limit(Player, Deposit, Day, Some(1_000)));
                w.must(limit(Player, Deposit, Day, Some(500)));
                standard(deposit_of("d-1", 600))
            },
            LimitHit(Deposit, Day, 500),
        ),
        case(
            "a player's increase does not apply before the delay",
            |w| {
                w.funded(P, 0);
                w.must(limit(Player, Deposit, Day, Some(500)));
                w.must(limit(Player, Deposit, Day, Some(2_000)));
                w.advance(LIMIT_DELAY_MS - 1);
                standard(deposit_of("d-1", 600))
            },
            LimitHit(Deposit, Day, 500),
        ),
        case(
            "a player's increase applies once the delay has passed",
            |w| {
                w.funded(P, 0);
                w.must(limit(Player, Deposit, Day, Some(500)));
                w.must(limit(Player, Deposit, Day, Some(2_000)));
                w.advance(LIMIT_DELAY_MS);
                standard(deposit_of("d-1", 600))
            },
            cash(600),
        ),
        case(
            "a player's removal does not apply before the delay",
            |w| {
                w.funded(P, 0);
                w.must(limit(Player, Deposit, Day, Some(500)));
                w.must(limit(Player, Deposit, Day, None));
                w.advance(LIMIT_DELAY_MS - 1);
                standard(deposit_of("d-1", 600))
            },
            LimitHit(Deposit, Day, 500),
        ),
        case(
            "a player's removal applies once the delay has passed",
            |w| {
                w.funded(P, 0);
                w.must(limit(Player, Deposit, Day, Some(500)));
                w.must(limit(Player, Deposit, Day, None));
                w.advance(LIMIT_DELAY_MS);
                standard(deposit_of("d-1", 5_000))
            },
            cash(5_000),
        ),
        case(
            "an operator's decrease applies at once",
            |w| {
                w.funded(P, 0);
                w.must(limit(Operator, Deposit, Day, Some(1_000)));
                w.must(limit(Operator, Deposit, Day, Some(500)));
                standard(deposit_of("d-1", 600))
            },
            LimitHit(Deposit, Day, 500),
        ),
        case(
            "an operator's increase applies at once",
            |w| {
                w.funded(P, 0);
                w.must(limit(Operator, Deposit, Day, Some(500)));
                w.must(limit(Operator, Deposit, Day, Some(2_000)));
                standard(deposit_of("d-1", 600))
            },
            cash(600),
        ),
        case(
            "an operator's removal applies at once",
            |w| {
                w.funded(P, 0);
                w.must(limit(Operator, Deposit, Day, Some(500)));
                w.must(limit(Operator, Deposit, Day, None));
                standard(deposit_of("d-1", 5_000))
            },
            cash(5_000),
        ),
    ];
    table(&cases, run_case);
}

/// The harness operators' `limit_increase_delay_ms`.
const LIMIT_DELAY_MS: u64 = DAY_MS;

#[test]
fn the_daily_window_starts_afresh_at_utc_midnight() {
    // START_MS is 12:00 UTC, so midnight is twelve hours on.
    let cases = [
        case(
            "deposits still count one millisecond before midnight",
            |w| {
                w.funded(P, 0);
                w.must(limit(Player, Deposit, Day, Some(1_000)));
                w.must(deposit_of("d-1", 1_000));
                w.advance(12 * HOUR_MS - 1);
                standard(deposit_of("d-2", 1))
            },
            LimitHit(Deposit, Day, 1_000),
        ),
        case(
            "the deposit allowance is whole again at midnight",
            |w| {
                w.funded(P, 0);
                w.must(limit(Player, Deposit, Day, Some(1_000)));
                w.must(deposit_of("d-1", 1_000));
                w.advance(12 * HOUR_MS);
                standard(deposit_of("d-2", 1_000))
            },
            cash(2_000),
        ),
        case(
            "stakes still count one millisecond before midnight",
            |w| {
                w.funded(P, 10_000);
                w.must(limit(Player, Wager, Day, Some(1_000)));
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 1_000));
                w.must(close("r-1"));
                w.advance(12 * HOUR_MS - 1);
                let late = w.session(P);
                standard(bet_of(late, "b-2", "r-2", 1))
            },
            LimitHit(Wager, Day, 1_000),
        ),
        case(
            "the wager allowance is whole again at midnight",
            |w| {
                w.funded(P, 10_000);
                w.must(limit(Player, Wager, Day, Some(1_000)));
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 1_000));
                w.must(close("r-1"));
                w.advance(12 * HOUR_MS);
                let late = w.session(P);
                standard(bet_of(late, "b-2", "r-2", 1_000))
            },
            cash(8_000),
        ),
    ];
    table(&cases, run_case);
}

#[test]
fn a_session_time_limit_refuses_bets_once_the_session_has_lasted_it() {
    let cases = [
        case(
            "a bet just before the session has lasted the player's limit is accepted",
            |w| {
                w.funded(P, 10_000);
                w.must(Action::SetSessionTimeLimit { source: Player, duration_ms: Some(30 * MINUTE_MS) });
                let s = w.session(P);
                w.advance(30 * MINUTE_MS - 1);
                standard(bet_of(s, "b-1", "r-1", 300))
            },
            cash(9_700),
        ),
        case(
            "a bet once the session has lasted the player's limit",
            |w| {
                w.funded(P, 10_000);
                w.must(Action::SetSessionTimeLimit { source: Player, duration_ms: Some(30 * MINUTE_MS) });
                let s = w.session(P);
                w.advance(30 * MINUTE_MS);
                standard(bet_of(s, "b-1", "r-1", 300))
            },
            Refused(Rejection::SessionTimeLimitExceeded),
        ),
        case(
            "a bet once the session has lasted the operator's limit",
            |w| {
                w.funded(P, 10_000);
                w.must(Action::SetSessionTimeLimit { source: Operator, duration_ms: Some(30 * MINUTE_MS) });
                let s = w.session(P);
                w.advance(30 * MINUTE_MS);
                standard(bet_of(s, "b-1", "r-1", 300))
            },
            Refused(Rejection::SessionTimeLimitExceeded),
        ),
        case(
            "a limit set during a session counts from the session's opening",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.advance(40 * MINUTE_MS);
                w.must(Action::SetSessionTimeLimit { source: Player, duration_ms: Some(30 * MINUTE_MS) });
                standard(bet_of(s, "b-1", "r-1", 300))
            },
            Refused(Rejection::SessionTimeLimitExceeded),
        ),
    ];
    table(&cases, run_case);
}

#[test]
fn self_exclusion_and_cool_off_stop_play_and_deposits_but_not_withdrawals() {
    let cases = [
        case(
            "a self-excluded player's bet",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.must(Action::SelfExclude { until_ms: Some(w.now_ms + 30 * DAY_MS) });
                standard(bet_of(s, "b-1", "r-1", 300))
            },
            Refused(Rejection::SelfExcluded),
        ),
        case(
            "a self-excluded player's deposit",
            |w| {
                w.funded(P, 10_000);
                w.must(Action::SelfExclude { until_ms: Some(w.now_ms + 30 * DAY_MS) });
                standard(deposit_of("d-1", 500))
            },
            Refused(Rejection::SelfExcluded),
        ),
        case(
            "a self-excluded player's new session",
            |w| {
                w.funded(P, 10_000);
                w.must(Action::SelfExclude { until_ms: Some(w.now_ms + 30 * DAY_MS) });
                standard(Action::OpenSession { game: game("slot"), currency: eur(), duration_ms: HOUR_MS, locale: None })
            },
            Refused(Rejection::SelfExcluded),
        ),
        case(
            "a self-excluded player's withdrawal is accepted",
            |w| {
                w.funded(P, 10_000);
                w.must(Action::SelfExclude { until_ms: Some(w.now_ms + 30 * DAY_MS) });
                standard(withdrawal_of("w-1", 4_000))
            },
            cash(6_000),
        ),
        case(
            "a permanently self-excluded player's withdrawal is accepted",
            |w| {
                w.funded(P, 10_000);
                w.must(Action::SelfExclude { until_ms: None });
                standard(withdrawal_of("w-1", 10_000))
            },
            cash(0),
        ),
        case(
            "a self-exclusion shortened",
            |w| {
                w.funded(P, 10_000);
                w.must(Action::SelfExclude { until_ms: Some(w.now_ms + 30 * DAY_MS) });
                standard(Action::SelfExclude { until_ms: Some(w.now_ms + 10 * DAY_MS) })
            },
            Refused(Rejection::ExclusionCannotBeShortened),
        ),
        case(
            "a permanent self-exclusion turned into a dated one",
            |w| {
                w.funded(P, 10_000);
                w.must(Action::SelfExclude { until_ms: None });
                standard(Action::SelfExclude { until_ms: Some(w.now_ms + 365 * DAY_MS) })
            },
            Refused(Rejection::ExclusionCannotBeShortened),
        ),
        case(
            "a self-exclusion extended is accepted",
            |w| {
                w.funded(P, 10_000);
                w.must(Action::SelfExclude { until_ms: Some(w.now_ms + 10 * DAY_MS) });
                standard(Action::SelfExclude { until_ms: Some(w.now_ms + 30 * DAY_MS) })
            },
            cash(10_000),
        ),
        case(
            "a bet after the self-exclusion ended is accepted",
            |w| {
                w.funded(P, 10_000);
                w.must(Action::SelfExclude { until_ms: Some(w.now_ms + 30 * DAY_MS) });
                w.advance(30 * DAY_MS);
                let s = w.session(P);
                standard(bet_of(s, "b-1", "r-1", 300))
            },
            cash(9_700),
        ),
        case(
            "a cooling-off player's bet",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.must(Action::CoolOff { duration_ms: DAY_MS });
                standard(bet_of(s, "b-1", "r-1", 300))
            },
            Refused(Rejection::CoolingOff),
        ),
        case(
            "a cooling-off player's deposit",
            |w| {
                w.funded(P, 10_000);
                w.must(Action::CoolOff { duration_ms: DAY_MS });
                standard(deposit_of("d-1", 500))
            },
            Refused(Rejection::CoolingOff),
        ),
        case(
            "a cooling-off player's withdrawal is accepted",
            |w| {
                w.funded(P, 10_000);
                w.must(Action::CoolOff { duration_ms: DAY_MS });
                standard(withdrawal_of("w-1", 4_000))
            },
            cash(6_000),
        ),
        case(
            "a cool-off shortened",
            |w| {
                w.funded(P, 10_000);
                w.must(Action::CoolOff { duration_ms: DAY_MS });
                standard(Action::CoolOff { duration_ms: HOUR_MS })
            },
            Refused(Rejection::ExclusionCannotBeShortened),
        ),
        case(
            "a bet one millisecond before the cool-off ends",
            |w| {
                w.funded(P, 10_000);
                let s = w.open_session(OPERATOR, "slot", eur(), 2 * DAY_MS);
                w.must(Action::CoolOff { duration_ms: DAY_MS });
                w.advance(DAY_MS - 1);
                standard(bet_of(s, "b-1", "r-1", 300))
            },
            Refused(Rejection::CoolingOff),
        ),
        case(
            "a bet once the cool-off has ended is accepted",
            |w| {
                w.funded(P, 10_000);
                w.must(Action::CoolOff { duration_ms: DAY_MS });
                w.advance(DAY_MS);
                let s = w.session(P);
                standard(bet_of(s, "b-1", "r-1", 300))
            },
            cash(9_700),
        ),
    ];
    table(&cases, run_case);
}

// ---- 4. bonuses -----------------------------------------------------------

#[test]
fn a_bonus_is_staked_after_cash_and_won_back_in_proportion() {
    let cases = [
        case(
            "a grant puts its amount in the bonus pocket",
            |w| {
                w.funded(P, 300);
                standard(standard_grant("g-1"))
            },
            holds(eur(), 300, 1_000, 0),
        )
        .then(|w, name| {
            assert_eq!(w.shard.ledger().get(eur()).house, -1_000, "{name}: the house funds the grant");
        }),
        case(
            "a stake within the cash leaves the bonus alone",
            |w| {
                w.funded(P, 300);
                w.must(standard_grant("g-1"));
                let s = w.session(P);
                standard(bet_of(s, "b-1", "r-1", 200))
            },
            holds(eur(), 100, 1_000, 0),
        ),
        case(
            "a stake above the cash takes the rest from the bonus",
            |w| {
                w.funded(P, 300);
                w.must(standard_grant("g-1"));
                let s = w.session(P);
                standard(bet_of(s, "b-1", "r-1", 500))
            },
            holds(eur(), 0, 800, 0),
        ),
        case(
            "a win goes to bonus in the proportion its stake came from bonus",
            |w| {
                w.funded(P, 300);
                w.must(standard_grant("g-1"));
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 500)); // 300 cash + 200 bonus: 40% bonus
                standard(win_of("w-1", "b-1", 1_000, false))
            },
            holds(eur(), 600, 1_200, 0),
        ),
        case(
            "the bonus share of a win is rounded down",
            |w| {
                w.funded(P, 200);
                w.must(standard_grant("g-1"));
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 300)); // 200 cash + 100 bonus: a third bonus
                standard(win_of("w-1", "b-1", 1_000, false))
            },
            holds(eur(), 667, 1_233, 0),
        ),
        case(
            "a win on a cash-only stake goes to cash",
            |w| {
                w.funded(P, 10_000);
                w.must(standard_grant("g-1"));
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 500));
                standard(win_of("w-1", "b-1", 1_000, false))
            },
            holds(eur(), 10_500, 1_000, 0),
        ),
        case(
            "a rollback refunds each pocket its part",
            |w| {
                w.funded(P, 300);
                w.must(standard_grant("g-1"));
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 500));
                standard(rollback_of("rb-1", "b-1"))
            },
            holds(eur(), 300, 1_000, 0),
        ),
    ];
    table(&cases, run_case);
}

#[test]
fn bonus_rules_refuse_with_their_own_code() {
    let cases = [
        case(
            "a stake above the bonus's max bet",
            |w| {
                w.funded(P, 10_000);
                w.must(standard_grant("g-1"));
                let s = w.session(P);
                standard(bet_of(s, "b-1", "r-1", 501))
            },
            Refused(Rejection::BonusMaxBetExceeded),
        ),
        case(
            "a stake at the bonus's max bet is accepted",
            |w| {
                w.funded(P, 10_000);
                w.must(standard_grant("g-1"));
                let s = w.session(P);
                standard(bet_of(s, "b-1", "r-1", 500))
            },
            holds(eur(), 9_500, 1_000, 0),
        ),
        case(
            "a second grant in the same currency",
            |w| {
                w.funded(P, 10_000);
                w.must(standard_grant("g-1"));
                standard(grant("g-2", bonus_terms("bon-2", eur(), 500, 10, 500, 7 * DAY_MS)))
            },
            Refused(Rejection::BonusAlreadyActive),
        ),
        case(
            "a grant in another currency while one is active is accepted",
            |w| {
                w.funded(P, 10_000);
                w.must(standard_grant("g-1"));
                standard(grant("g-2", bonus_terms("bon-2", usd(), 500, 10, 500, 7 * DAY_MS)))
            },
            holds(usd(), 0, 500, 0),
        ),
        case(
            "forfeiting an unknown bonus",
            |w| {
                w.funded(P, 10_000);
                w.must(standard_grant("g-1"));
                standard(Action::ForfeitBonus { bonus: BonusId::new("bon-unknown").expect("valid") })
            },
            Refused(Rejection::BonusNotFound),
        ),
    ];
    table(&cases, run_case);
}

struct Wagering {
    name: &'static str,
    /// The game every stake is placed on.
    game: &'static str,
    /// One bet per round.
    stakes: &'static [i64],
    /// Whether each round is closed after its bet.
    close_rounds: bool,
    /// Progress of the still active bonus, or None if it converted.
    wagered: Option<i64>,
    cash: i64,
    bonus: i64,
}

/// A wagering case; `pockets` is (cash, bonus) afterwards.
fn wagering(
    name: &'static str,
    game: &'static str,
    stakes: &'static [i64],
    close_rounds: bool,
    wagered: Option<i64>,
    pockets: (i64, i64),
) -> Wagering {
    Wagering { name, game, stakes, close_rounds, wagered, cash: pockets.0, bonus: pockets.1 }
}

impl Named for Wagering {
    fn name(&self) -> &'static str {
        self.name
    }
}

#[test]
fn bonus_wagering_counts_settled_stakes_by_game_weight_and_converts_when_complete() {
    // A 1,000 bonus with a 1x requirement: 1,000 of weighted settled stake.
    let cases = [
        wagering("an open stake does not count", "slot", &[600], false, Some(0), (9_400, 1_000)),
        wagering("a settled stake on a game weighted 100% counts in full", "slot", &[600], true, Some(600), (9_400, 1_000)),
        wagering("a settled stake on a game weighted 50% counts half", "half", &[600, 600], true, Some(600), (8_800, 1_000)),
        wagering("a settled stake on a game weighted 0% does not count", "table", &[600, 600], true, Some(0), (8_800, 1_000)),
        wagering("reaching the requirement converts the bonus pocket to cash", "slot", &[600, 400], true, None, (10_000, 0)),
        wagering("reaching the requirement on a game weighted 50% converts too", "half", &[1_000, 1_000], true, None, (9_000, 0)),
    ];
    table(&cases, |case| {
        let name = case.name;
        let mut world = World::new();
        world.funded(P, 10_000);
        world.must(grant("g-1", bonus_terms("bon-1", eur(), 1_000, 1, 1_000, 7 * DAY_MS)));
        let session = world.open_session(OPERATOR, case.game, eur(), HOUR_MS);
        let seen = world.events.len();
        for (at, stake) in case.stakes.iter().enumerate() {
            let (bet_id, round_id) = (format!("b-{at}"), format!("r-{at}"));
            world.must(bet_in(session, &bet_id, &round_id, case.game, eur(), auto(*stake)));
            if case.close_rounds {
                world.must(close(&round_id));
            }
        }
        let wallet = world.shard.wallet(PlayerId(P)).expect("the player exists");
        let converted: Vec<&Event> = world.events[seen..].iter().filter(|e| matches!(e, Event::BonusConverted { .. })).collect();
        match case.wagered {
            Some(wagered) => {
                assert_eq!(wallet.bonuses.len(), 1, "{name}: the bonus is still active");
                assert_eq!(wallet.bonuses[0].wagered, money(wagered), "{name}: wagering progress");
                assert!(converted.is_empty(), "{name}: no conversion yet, got {converted:?}");
            }
            None => {
                assert!(wallet.bonuses.is_empty(), "{name}: the converted bonus is no longer active: {:?}", wallet.bonuses);
                let bonus = BonusId::new("bon-1").expect("valid");
                let expected = Event::BonusConverted { player: PlayerId(P), bonus, currency: eur(), amount: money(1_000) };
                assert_eq!(converted, vec![&expected], "{name}: one BonusConverted event for the whole bonus pocket");
            }
        }
        assert_eq!(pockets(&world, P, eur()), (case.cash, case.bonus, 0), "{name}: (cash, bonus, promo) afterwards");
    });
}

struct Expiry {
    name: &'static str,
    /// Time from the grant (a bonus lasting one day) to the command.
    wait_ms: u64,
    command: fn() -> Action,
    forfeited: bool,
    cash: i64,
}

impl Named for Expiry {
    fn name(&self) -> &'static str {
        self.name
    }
}

#[test]
fn an_expired_bonus_is_forfeited_to_the_house_on_the_next_command() {
    let balance = || Action::Balance { currency: eur() };
    let cases = [
        Expiry { name: "a command just before expiry keeps the bonus", wait_ms: DAY_MS - 1, command: balance, forfeited: false, cash: 300 },
        Expiry { name: "a balance query at expiry forfeits the bonus", wait_ms: DAY_MS, command: balance, forfeited: true, cash: 300 },
        Expiry {
            name: "a deposit after expiry forfeits the bonus",
            wait_ms: 3 * DAY_MS,
            command: || deposit_of("d-1", 100),
            forfeited: true,
            cash: 400,
        },
        Expiry {
            name: "the operator forfeits an active bonus by its id",
            wait_ms: 0,
            command: || Action::ForfeitBonus { bonus: BonusId::new("bon-1").expect("valid") },
            forfeited: true,
            cash: 300,
        },
    ];
    table(&cases, |case| {
        let name = case.name;
        let mut world = World::new();
        world.funded(P, 300);
        world.must(grant("g-1", bonus_terms("bon-1", eur(), 1_000, 10, 500, DAY_MS)));
        world.advance(case.wait_ms);
        let house = world.shard.ledger().get(eur()).house;
        let seen = world.events.len();
        let outcome = world.act(P, (case.command)());
        assert!(outcome.is_ok(), "{name}: the command is accepted, got {outcome:?}");
        let forfeits: Vec<Event> = world.events[seen..].iter().filter(|e| matches!(e, Event::BonusForfeited { .. })).cloned().collect();
        let wallet = world.shard.wallet(PlayerId(P)).expect("the player exists");
        let house_gain = world.shard.ledger().get(eur()).house - house;
        if case.forfeited {
            let expected = Event::BonusForfeited {
                player: PlayerId(P),
                bonus: BonusId::new("bon-1").expect("valid"),
                currency: eur(),
                amount: money(1_000),
            };
            assert_eq!(forfeits, vec![expected], "{name}: one BonusForfeited event for the bonus pocket");
            assert!(wallet.bonuses.is_empty(), "{name}: the bonus is no longer active");
            assert_eq!(house_gain, 1_000, "{name}: the bonus pocket returns to the house");
            assert_eq!(pockets(&world, P, eur()), (case.cash, 0, 0), "{name}: (cash, bonus, promo) afterwards");
            if let Ok(Reply::Balance(reply)) = outcome {
                assert_eq!(reply.bonus, Money::ZERO, "{name}: the balance reply already shows the forfeit");
            }
        } else {
            assert_eq!(forfeits, Vec::<Event>::new(), "{name}: nothing forfeited");
            assert_eq!(wallet.bonuses.len(), 1, "{name}: the bonus is still active");
            assert_eq!(house_gain, 0, "{name}: the house gains nothing");
            assert_eq!(pockets(&world, P, eur()), (case.cash, 1_000, 0), "{name}: (cash, bonus, promo) afterwards");
        }
    });
}

// ---- 5. sweepstakes -------------------------------------------------------

#[test]
fn sweepstakes_coins_are_bought_granted_played_through_and_redeemed_by_their_own_rules() {
    let cases = [
        case(
            "a Sweeps Coins deposit",
            |w| {
                w.sweeps_player();
                sweepstakes(deposit_in("d-1", SC, 5_000))
            },
            Refused(Rejection::CurrencyNotAllowed),
        ),
        case(
            "a Gold Coins deposit is a purchase",
            |w| {
                w.sweeps_player();
                sweepstakes(deposit_in("d-1", GC, 5_000))
            },
            holds(GC, 5_000, 0, 0),
        )
        .then(|w, name| {
            assert_eq!(w.shard.ledger().get(GC).deposited, 5_000, "{name}: the purchase is booked as deposited");
        }),
        case(
            "a Gold Coins withdrawal",
            |w| {
                w.sweeps_player();
                w.must_sweeps(deposit_in("d-1", GC, 5_000));
                sweepstakes(withdrawal_in("w-1", GC, 1_000))
            },
            Refused(Rejection::CurrencyNotAllowed),
        ),
        case(
            "a Sweeps Coins withdrawal",
            |w| {
                w.sweeps_player();
                w.must_sweeps(sweeps_grant("g-1", 5_000, 0));
                sweepstakes(withdrawal_in("w-1", SC, 1_000))
            },
            Refused(Rejection::CurrencyNotAllowed),
        ),
        case(
            "a real currency for the sweepstakes operator",
            |w| {
                w.sweeps_player();
                sweepstakes(deposit_in("d-1", eur(), 5_000))
            },
            Refused(Rejection::UnknownCurrency),
        ),
        case(
            "Gold Coins for a standard operator",
            |w| {
                w.funded(P, 0);
                standard(deposit_in("d-1", GC, 5_000))
            },
            Refused(Rejection::UnknownCurrency),
        ),
        case(
            "Sweeps Coins for a standard operator",
            |w| {
                w.funded(P, 0);
                standard(Action::Balance { currency: SC })
            },
            Refused(Rejection::UnknownCurrency),
        ),
        case(
            "a sweeps grant for a standard operator",
            |w| {
                w.funded(P, 0);
                standard(sweeps_grant("g-1", 5_000, 0))
            },
            Refused(Rejection::NotSweepstakes),
        ),
        case(
            "a grant without playthrough is redeemable at once",
            |w| {
                w.sweeps_player();
                sweepstakes(sweeps_grant("g-1", 2_000, 0))
            },
            holds(SC, 2_000, 0, 0),
        ),
        case(
            "a grant with playthrough lands in the unplayed pocket",
            |w| {
                w.sweeps_player();
                sweepstakes(sweeps_grant("g-1", 2_000, 1))
            },
            holds(SC, 0, 2_000, 0),
        ),
        case(
            "unplayed coins cannot be redeemed",
            |w| {
                w.sweeps_player();
                w.must_sweeps(sweeps_grant("g-1", 2_000, 1));
                sweepstakes(redeem("red-1", 1_000))
            },
            Refused(Rejection::InsufficientRedeemable),
        ),
        case(
            "an open stake plays nothing through",
            |w| {
                w.sweeps_player();
                w.must_sweeps(sweeps_grant("g-1", 1_000, 1));
                w.must_sweeps(sweeps_grant("g-2", 1_000, 1));
                let s = w.sweeps_session();
                sweepstakes(bet_in(s, "b-1", "r-1", "slot", SC, auto(1_000)))
            },
            holds(SC, 0, 1_000, 0),
        ),
        case(
            "unplayed coins become redeemable once enough stake has settled",
            |w| {
                w.sweeps_player();
                w.must_sweeps(sweeps_grant("g-1", 1_000, 1));
                w.must_sweeps(sweeps_grant("g-2", 1_000, 1));
                let s = w.sweeps_session();
                w.must_sweeps(bet_in(s, "b-1", "r-1", "slot", SC, auto(1_000)));
                sweepstakes(close("r-1"))
            },
            holds(SC, 1_000, 0, 0),
        ),
        case(
            "coins released by playthrough can be redeemed",
            |w| {
                w.sweeps_player();
                w.must_sweeps(sweeps_grant("g-1", 1_000, 1));
                w.must_sweeps(sweeps_grant("g-2", 1_000, 1));
                let s = w.sweeps_session();
                w.must_sweeps(bet_in(s, "b-1", "r-1", "slot", SC, auto(1_000)));
                w.must_sweeps(close("r-1"));
                sweepstakes(redeem("red-1", 1_000))
            },
            holds(SC, 0, 0, 1_000),
        ),
        case(
            "a Sweeps Coins win is redeemable at once",
            |w| {
                w.sweeps_player();
                w.must_sweeps(sweeps_grant("g-1", 2_000, 1));
                let s = w.sweeps_session();
                w.must_sweeps(bet_in(s, "b-1", "r-1", "slot", SC, auto(500)));
                sweepstakes(win_of("w-1", "b-1", 800, false))
            },
            holds(SC, 800, 1_500, 0),
        ),
    ];
    table(&cases, run_case);
}

#[test]
fn a_redemption_moves_redeemable_coins_to_pending_and_then_out_or_back() {
    let cases = [
        case(
            "a redemption below the operator's minimum",
            |w| {
                w.sweeps_player();
                w.must_sweeps(sweeps_grant("g-1", 5_000, 0));
                sweepstakes(redeem("red-1", 999))
            },
            Refused(Rejection::RedemptionBelowMinimum),
        ),
        case(
            "a redemption at the operator's minimum is accepted",
            |w| {
                w.sweeps_player();
                w.must_sweeps(sweeps_grant("g-1", 5_000, 0));
                sweepstakes(redeem("red-1", 1_000))
            },
            holds(SC, 4_000, 0, 1_000),
        ),
        case(
            "a redemption above the redeemable coins",
            |w| {
                w.sweeps_player();
                w.must_sweeps(sweeps_grant("g-1", 2_000, 0));
                sweepstakes(redeem("red-1", 2_001))
            },
            Refused(Rejection::InsufficientRedeemable),
        ),
        case(
            "a redemption request moves redeemable coins to pending",
            |w| {
                w.sweeps_player();
                w.must_sweeps(sweeps_grant("g-1", 2_000, 0));
                sweepstakes(redeem("red-1", 1_500))
            },
            holds(SC, 500, 0, 1_500),
        )
        .then(|w, name| {
            assert_eq!(w.shard.ledger().get(SC).withdrawn, 0, "{name}: nothing has left the books yet");
        }),
        case(
            "an approved redemption leaves the books as withdrawn",
            |w| {
                w.sweeps_player();
                w.must_sweeps(sweeps_grant("g-1", 2_000, 0));
                w.must_sweeps(redeem("red-1", 1_500));
                sweepstakes(Action::ApproveRedemption { redemption: redemption("red-1") })
            },
            holds(SC, 500, 0, 0),
        )
        .then(|w, name| {
            assert_eq!(w.shard.ledger().get(SC).withdrawn, 1_500, "{name}: the paid redemption counts as withdrawn");
        }),
        case(
            "a rejected redemption returns to redeemable",
            |w| {
                w.sweeps_player();
                w.must_sweeps(sweeps_grant("g-1", 2_000, 0));
                w.must_sweeps(redeem("red-1", 1_500));
                sweepstakes(Action::RejectRedemption { redemption: redemption("red-1") })
            },
            holds(SC, 2_000, 0, 0),
        )
        .then(|w, name| {
            assert_eq!(w.shard.ledger().get(SC).withdrawn, 0, "{name}: nothing left the books");
        }),
        case(
            "approving an unknown redemption",
            |w| {
                w.sweeps_player();
                w.must_sweeps(sweeps_grant("g-1", 2_000, 0));
                w.must_sweeps(redeem("red-1", 1_500));
                sweepstakes(Action::ApproveRedemption { redemption: redemption("red-unknown") })
            },
            Refused(Rejection::RedemptionNotFound),
        ),
        case(
            "approving a redemption for a player who never asked for one",
            |w| {
                w.sweeps_player();
                sweepstakes(Action::ApproveRedemption { redemption: redemption("red-1") })
            },
            Refused(Rejection::RedemptionNotFound),
        ),
        case(
            "approving a redemption twice replays the approval and pays once",
            |w| {
                w.sweeps_player();
                w.must_sweeps(sweeps_grant("g-1", 2_000, 0));
                w.must_sweeps(redeem("red-1", 1_500));
                w.must_sweeps(Action::ApproveRedemption { redemption: redemption("red-1") });
                sweepstakes(Action::ApproveRedemption { redemption: redemption("red-1") })
            },
            holds(Currency::SWEEPS_COINS, 500, 0, 0),
        ),
        case(
            "rejecting an approved redemption",
            |w| {
                w.sweeps_player();
                w.must_sweeps(sweeps_grant("g-1", 2_000, 0));
                w.must_sweeps(redeem("red-1", 1_500));
                w.must_sweeps(Action::ApproveRedemption { redemption: redemption("red-1") });
                sweepstakes(Action::RejectRedemption { redemption: redemption("red-1") })
            },
            Refused(Rejection::RedemptionNotFound),
        ),
        case(
            "a redemption for a standard operator",
            |w| {
                w.funded(P, 10_000);
                standard(redeem("red-1", 1_000))
            },
            Refused(Rejection::NotSweepstakes),
        ),
    ];
    table(&cases, run_case);
}

// ---- 6. bad input ---------------------------------------------------------

#[test]
fn bad_input_is_refused_with_its_own_code_and_never_panics() {
    let cases = [
        case(
            "a zero deposit",
            |w| {
                w.funded(P, 0);
                standard(deposit_of("d-1", 0))
            },
            Refused(Rejection::ZeroAmount),
        ),
        case(
            "a zero withdrawal",
            |w| {
                w.funded(P, 10_000);
                standard(withdrawal_of("w-1", 0))
            },
            Refused(Rejection::ZeroAmount),
        ),
        case(
            "a zero stake",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                standard(bet_of(s, "b-1", "r-1", 0))
            },
            Refused(Rejection::ZeroAmount),
        ),
        case(
            "a zero split stake",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                standard(bet_in(s, "b-1", "r-1", "slot", eur(), Stake::Split { cash: Amount(0), bonus: Amount(0), promo: Amount(0) }))
            },
            Refused(Rejection::ZeroAmount),
        ),
        case(
            "a negative deposit",
            |w| {
                w.funded(P, 0);
                standard(deposit_of("d-1", -1))
            },
            Refused(Rejection::NegativeAmount),
        ),
        case(
            "a negative withdrawal",
            |w| {
                w.funded(P, 10_000);
                standard(withdrawal_of("w-1", -500))
            },
            Refused(Rejection::NegativeAmount),
        ),
        case(
            "a negative stake",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                standard(bet_of(s, "b-1", "r-1", -300))
            },
            Refused(Rejection::NegativeAmount),
        ),
        case(
            "a negative win",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 300));
                standard(win_of("w-1", "b-1", -1, true))
            },
            Refused(Rejection::NegativeAmount),
        ),
        case(
            "the most negative deposit",
            |w| {
                w.funded(P, 0);
                standard(deposit_of("d-1", i64::MIN))
            },
            Refused(Rejection::NegativeAmount),
        ),
        case(
            "a deposit one above the largest amount",
            |w| {
                w.funded(P, 0);
                standard(deposit_of("d-1", AMOUNT_MAX + 1))
            },
            Refused(Rejection::AmountTooLarge),
        ),
        case(
            "a deposit of i64::MAX",
            |w| {
                w.funded(P, 0);
                standard(deposit_of("d-1", i64::MAX))
            },
            Refused(Rejection::AmountTooLarge),
        ),
        case(
            "a deposit of the largest amount is accepted",
            |w| {
                w.funded(P, 0);
                standard(deposit_of("d-1", AMOUNT_MAX))
            },
            cash(AMOUNT_MAX),
        ),
        case(
            "a bonus grant above the largest amount",
            |w| {
                w.funded(P, 0);
                standard(grant("g-1", bonus_terms("bon-1", eur(), AMOUNT_MAX + 1, 1, 500, DAY_MS)))
            },
            Refused(Rejection::AmountTooLarge),
        ),
        case(
            "a split stake whose parts sum above the largest amount",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                let stake = Stake::Split { cash: Amount(AMOUNT_MAX), bonus: Amount(AMOUNT_MAX), promo: Amount(0) };
                standard(bet_in(s, "b-1", "r-1", "slot", eur(), stake))
            },
            Refused(Rejection::AmountTooLarge),
        ),
        case(
            "a split stake whose every part is the largest amount",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                let stake = Stake::Split { cash: Amount(AMOUNT_MAX), bonus: Amount(AMOUNT_MAX), promo: Amount(AMOUNT_MAX) };
                standard(bet_in(s, "b-1", "r-1", "slot", eur(), stake))
            },
            Refused(Rejection::AmountTooLarge),
        ),
        case(
            "a split win whose parts sum above the largest amount",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 300));
                let amount = Stake::Split { cash: Amount(AMOUNT_MAX), bonus: Amount(0), promo: Amount(1) };
                standard(Action::Win { tx: tx("w-1"), bet: tx("b-1"), amount, close_round: true })
            },
            Refused(Rejection::AmountTooLarge),
        ),
        case(
            "a deposit for an unknown player",
            |w| {
                w.funded(P, 0);
                Request { operator: OPERATOR, player: 2, action: deposit_of("d-1", 500) }
            },
            Refused(Rejection::UnknownPlayer),
        ),
        case(
            "a deposit for another operator's player",
            |w| {
                w.funded(P, 10_000);
                Request { operator: OTHER_OPERATOR, player: P, action: deposit_of("d-1", 500) }
            },
            Refused(Rejection::ForeignPlayer),
        ),
        case(
            "a bet for another operator's player",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                Request { operator: OTHER_OPERATOR, player: P, action: bet_of(s, "b-1", "r-1", 300) }
            },
            Refused(Rejection::ForeignPlayer),
        ),
        case(
            "a deposit through an unknown operator",
            |w| {
                w.funded(P, 10_000);
                Request { operator: OperatorId(99), player: P, action: deposit_of("d-1", 500) }
            },
            Refused(Rejection::UnknownOperator),
        ),
        case(
            "a wallet created through an unknown operator",
            |_| Request { operator: OperatorId(99), player: P, action: Action::CreateWallet },
            Refused(Rejection::UnknownOperator),
        ),
        case(
            "a deposit in a currency the operator lacks",
            |w| {
                w.funded(P, 0);
                standard(deposit_in("d-1", gbp(), 500))
            },
            Refused(Rejection::UnknownCurrency),
        ),
        case(
            "a balance in a currency the operator lacks",
            |w| {
                w.funded(P, 0);
                standard(Action::Balance { currency: gbp() })
            },
            Refused(Rejection::UnknownCurrency),
        ),
        case(
            "a session in a currency the operator lacks",
            |w| {
                w.funded(P, 0);
                standard(Action::OpenSession { game: game("slot"), currency: gbp(), duration_ms: HOUR_MS, locale: None })
            },
            Refused(Rejection::UnknownCurrency),
        ),
        case(
            "a bet in a currency the operator lacks",
            |w| {
                w.funded(P, 10_000);
                let s = w.session(P);
                standard(bet_in(s, "b-1", "r-1", "slot", gbp(), auto(300)))
            },
            Refused(Rejection::UnknownCurrency),
        ),
        case(
            "a limit in a currency the operator lacks",
            |w| {
                w.funded(P, 0);
                standard(limit_in(Player, Deposit, Day, gbp(), Some(500)))
            },
            Refused(Rejection::UnknownCurrency),
        ),
        case(
            "a rollback in a currency the operator lacks",
            |w| {
                w.funded(P, 0);
                standard(rollback_in("rb-1", "b-1", gbp()))
            },
            Refused(Rejection::UnknownCurrency),
        ),
        case(
            "a second wallet for the same player",
            |w| {
                w.funded(P, 10_000);
                standard(Action::CreateWallet)
            },
            Refused(Rejection::PlayerExists),
        ),
        case(
            "a second wallet for the same player through another operator",
            |w| {
                w.funded(P, 10_000);
                Request { operator: OTHER_OPERATOR, player: P, action: Action::CreateWallet }
            },
            Refused(Rejection::PlayerExists),
        ),
    ];
    table(&cases, run_case);
}

/// Deposits the largest amount until one more would pass `Money::MAX`.
fn fill_to_the_brim(world: &mut World) {
    world.funded(P, 0);
    let deposits = Money::MAX.minor() / AMOUNT_MAX_MINOR;
    for n in 0..deposits {
        world.must(deposit_of(&format!("fill-{n}"), AMOUNT_MAX));
    }
}

#[test]
fn a_balance_cannot_be_pushed_past_money_max() {
    let headroom = (Money::MAX.minor() % AMOUNT_MAX_MINOR) as i64;
    assert!(headroom > 0 && headroom < AMOUNT_MAX, "the brim leaves less room than one largest amount");
    let cases = [
        case(
            "one more largest deposit",
            |w| {
                fill_to_the_brim(w);
                standard(deposit_of("over", AMOUNT_MAX))
            },
            Refused(Rejection::BalanceOverflow),
        ),
        case(
            "a deposit of exactly the headroom is accepted",
            |w| {
                fill_to_the_brim(w);
                let headroom = (Money::MAX.minor() % AMOUNT_MAX_MINOR) as i64;
                standard(deposit_of("last", headroom))
            },
            cash(i64::MAX),
        ),
        case(
            "a largest win on a full balance",
            |w| {
                fill_to_the_brim(w);
                let s = w.session(P);
                w.must(bet_of(s, "b-1", "r-1", 1));
                standard(win_of("w-1", "b-1", AMOUNT_MAX, true))
            },
            Refused(Rejection::BalanceOverflow),
        ),
    ];
    table(&cases, run_case);
}

struct Text {
    name: &'static str,
    text: &'static str,
    expected: Result<(), Rejection>,
}

impl Named for Text {
    fn name(&self) -> &'static str {
        self.name
    }
}

const FORTY: &str = "012345678901234567890123456789012345678901234567";
const FORTY_ONE: &str = "0123456789012345678901234567890123456789012345678";

#[test]
fn external_ids_are_one_to_forty_printable_ascii_bytes() {
    assert_eq!((FORTY.len(), FORTY_ONE.len()), (48, 49), "the fixtures' lengths");
    let invalid = Err(Rejection::InvalidId);
    let cases = [
        Text { name: "a short id", text: "tx-1", expected: Ok(()) },
        Text { name: "an id of 48 bytes", text: FORTY, expected: Ok(()) },
        Text { name: "printable punctuation", text: "!~{}[]:;@#", expected: Ok(()) },
        Text { name: "an empty id", text: "", expected: invalid },
        Text { name: "an id of 49 bytes", text: FORTY_ONE, expected: invalid },
        Text { name: "an id with a space inside", text: "tx 1", expected: invalid },
        Text { name: "an id with a trailing space", text: "tx-1 ", expected: invalid },
        Text { name: "an id with a non-ASCII letter", text: "tx-é", expected: invalid },
        Text { name: "an id with a tab", text: "tx\t1", expected: invalid },
        Text { name: "an id with a NUL byte", text: "tx\u{0}1", expected: invalid },
        Text { name: "an id with DEL", text: "tx\u{7f}", expected: invalid },
    ];
    table(&cases, |case| {
        let name = case.name;
        let text = case.text;
        assert_eq!(ExternalId::new(text).map(|_| ()), case.expected, "{name}: ExternalId::new({text:?})");
        assert_eq!(TxId::new(text).map(|_| ()), case.expected, "{name}: TxId::new({text:?})");
        assert_eq!(RoundId::new(text).map(|_| ()), case.expected, "{name}: RoundId::new({text:?})");
        assert_eq!(GameId::new(text).map(|_| ()), case.expected, "{name}: GameId::new({text:?})");
        assert_eq!(BonusId::new(text).map(|_| ()), case.expected, "{name}: BonusId::new({text:?})");
        assert_eq!(RedemptionId::new(text).map(|_| ()), case.expected, "{name}: RedemptionId::new({text:?})");
        if let Ok(id) = ExternalId::new(text) {
            assert_eq!(id.as_str(), text, "{name}: an accepted id reads back unchanged");
        }
    });
}

#[test]
fn currency_codes_are_one_to_eight_uppercase_letters_or_digits() {
    let invalid = Err(Rejection::InvalidCurrency);
    let cases = [
        Text { name: "an ISO code", text: "EUR", expected: Ok(()) },
        Text { name: "a code with digits", text: "USDT0", expected: Ok(()) },
        Text { name: "a code of 8 characters", text: "ABCDEFGH", expected: Ok(()) },
        Text { name: "a lowercase code", text: "eur", expected: invalid },
        Text { name: "a mixed-case code", text: "Eur", expected: invalid },
        Text { name: "a code of 9 characters", text: "ABCDEFGHI", expected: invalid },
        Text { name: "an empty code", text: "", expected: invalid },
        Text { name: "a code with a space", text: "EU R", expected: invalid },
        Text { name: "a code with a non-ASCII letter", text: "EÜR", expected: invalid },
    ];
    table(&cases, |case| {
        let name = case.name;
        let text = case.text;
        let parsed = Currency::new(text);
        assert_eq!(parsed.map(|_| ()), case.expected, "{name}: Currency::new({text:?})");
        if let Ok(currency) = parsed {
            assert_eq!(currency.as_str(), text, "{name}: an accepted code reads back unchanged");
        }
    });
}

#[test]
fn every_rejection_has_a_unique_code_that_round_trips() {
    let mut codes = HashSet::new();
    for rejection in Rejection::ALL {
        let code = rejection.code();
        assert!(codes.insert(code), "{rejection:?}: code {code} is used twice");
        assert_eq!(Rejection::from_code(code), Some(*rejection), "{rejection:?}: from_code({code})");
        assert!((100..1_100).contains(&code), "{rejection:?}: code {code} is outside the documented groups (1xx to 10xx)");
    }
    let distinct: HashSet<&Rejection> = Rejection::ALL.iter().collect();
    assert_eq!(distinct.len(), Rejection::ALL.len(), "Rejection::ALL lists a variant twice");
    for unused in [0, 99, 199, 999, u16::MAX] {
        assert_eq!(Rejection::from_code(unused), None, "code {unused} names no rejection");
    }
}
