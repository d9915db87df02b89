//! The links between bets and the bonus they were placed under, and the
//! retries that must replay rather than conflict, one table per rule (the
//! rules are stated in `engine/src/bonus.rs`):
//! - only stakes placed under the active bonus count toward its wagering;
//! - the bonus share of a win or refund follows the bet's bonus: to the
//!   bonus pocket while it is active, to cash once it converted, to the
//!   house (with a `BonusForfeited` event) once it was forfeited or expired;
//! - a bonus id is granted once per player;
//! - a bet retried through a newer session, and a redemption request or
//!   decision retried after it was decided, replay;
//! - a balance read already shows an expired bonus as gone.
//!
//! Each case builds a world of its own, runs its setup steps, then applies
//! one request and checks the outcome. A refusal or a replay must leave the
//! player's wallet, the books and the idempotency index as they were and
//! emit no event. The harness checks every invariant, money conservation
//! included, after every apply. Every case of a table runs even when an
//! earlier one fails, and each failure is reported with its case name.

mod support;

use engine::ledger::Ledger;
use engine::wallet::Wallet;
use engine::{
    Action, Amount, BonusId, BonusTerms, Currency, Event, Money, OperatorId, PlayerId, RedemptionId, Rejection, Reply, SessionId, Stake,
    SweepsGrantKind,
};
use support::*;

/// The player every case acts for (each case has a world of its own).
const P: u64 = 1;
/// Another player of the standard operator.
const OTHER: u64 = 2;
const SC: Currency = Currency::SWEEPS_COINS;

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

fn deposit_of(id: &str, minor: i64) -> Action {
    deposit_in(id, eur(), minor)
}

fn deposit_in(id: &str, currency: Currency, minor: i64) -> Action {
    Action::Deposit { tx: tx(id), currency, amount: Amount(minor) }
}

/// A EUR bet on game "slot".
fn bet_of(session: SessionId, id: &str, round_id: &str, minor: i64) -> Action {
    bet_in(session, id, round_id, "slot", eur(), auto(minor))
}

fn bet_in(session: SessionId, id: &str, round_id: &str, game_id: &str, currency: Currency, stake: Stake) -> Action {
    Action::Bet { tx: tx(id), session, round: round(round_id), game: Some(game(game_id)), currency, stake, alias: None }
}

fn win_of(id: &str, bet_id: &str, minor: i64, close_round: bool) -> Action {
    win_split(id, bet_id, auto(minor), close_round)
}

fn win_split(id: &str, bet_id: &str, amount: Stake, close_round: bool) -> Action {
    Action::Win { tx: tx(id), bet: tx(bet_id), amount, close_round }
}

/// A win the caller splits: `cash` to cash, `bonus` to the bonus share.
fn split(cash: i64, bonus: i64) -> Stake {
    Stake::Split { cash: Amount(cash), bonus: Amount(bonus), promo: Amount(0) }
}

fn rollback_of(id: &str, bet_id: &str) -> Action {
    Action::Rollback { tx: tx(id), bet: tx(bet_id), currency: eur() }
}

fn close(round_id: &str) -> Action {
    Action::CloseRound { round: round(round_id) }
}

fn bonus_id(id: &str) -> BonusId {
    BonusId::new(id).expect("valid bonus id")
}

/// Bonus terms with game "table" weighted 0%, "half" 50%, the rest 100%.
fn bonus_terms(bonus: &str, currency: Currency, amount: i64, multiple: u32, max_bet: i64, duration_ms: u64) -> BonusTerms {
    BonusTerms {
        bonus: bonus_id(bonus),
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

/// A 1,000 EUR bonus with a 1x requirement (1,000 of settled stake), a
/// 1,000 max bet and a week to play.
fn one_x(id: &str, bonus: &str) -> Action {
    grant(id, bonus_terms(bonus, eur(), 1_000, 1, 1_000, 7 * DAY_MS))
}

/// A 500 EUR bonus with a 10x requirement: a second, unrelated bonus.
fn small_grant(id: &str, bonus: &str) -> Action {
    grant(id, bonus_terms(bonus, eur(), 500, 10, 500, 7 * DAY_MS))
}

fn forfeit(bonus: &str) -> Action {
    Action::ForfeitBonus { bonus: bonus_id(bonus) }
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

fn approve(id: &str) -> Action {
    Action::ApproveRedemption { redemption: redemption(id) }
}

fn reject(id: &str) -> Action {
    Action::RejectRedemption { redemption: redemption(id) }
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
    /// A one-hour EUR session on "slot" for player `P`.
    fn slot_session(&mut self) -> SessionId {
        self.open_session(OPERATOR, "slot", eur(), HOUR_MS)
    }
}

impl Steps for World {
    fn must_as(&mut self, operator: OperatorId, action: Action) -> Reply {
        let shown = format!("{action:?}");
        self.act_as(operator, P, action).unwrap_or_else(|rejection| panic!("setup step {shown} was refused with {rejection:?}"))
    }
}

// ---- what a refusal or a replay must leave alone --------------------------

/// Everything a refused or replayed command must leave as it was.
#[derive(Debug, PartialEq)]
struct Books {
    wallet: Option<Wallet>,
    ledger: Ledger,
    index_len: usize,
}

fn books(world: &World, player: u64) -> Books {
    Books { wallet: world.shard.wallet(PlayerId(player)), ledger: world.shard.ledger().clone(), index_len: world.shard.index_len() }
}

/// The pockets (cash, bonus, promo) the wallet really holds in `currency`
/// (not the read-side view of `Shard::balance`).
fn pockets(world: &World, player: u64, currency: Currency) -> (i64, i64, i64) {
    let balance = world.shard.wallet(PlayerId(player)).expect("the player has a wallet").balance(currency);
    (balance.cash.minor() as i64, balance.bonus.minor() as i64, balance.promo.minor() as i64)
}

fn money(minor: i64) -> Money {
    Money::from_minor(minor as u64).expect("a test amount fits in Money")
}

// ---- tables ---------------------------------------------------------------

/// What the request of a case must do.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Refused with this code, leaving the wallet, the books and the index
    /// alone and emitting no event.
    Refused(Rejection),
    /// Replayed: `replayed == true`, the reply carries these pockets
    /// (cash, bonus, promo), and nothing changes, no event.
    Replays(i64, i64, i64),
    /// Accepted (not as a replay), leaving these pockets in the currency.
    Holds(Currency, i64, i64, i64),
}

use Expect::{Refused, Replays};

/// Accepted, leaving these EUR pockets.
fn eur_holds(cash: i64, bonus: i64, promo: i64) -> Expect {
    Expect::Holds(eur(), cash, bonus, promo)
}

/// What a request did, for a case's further checks.
struct After<'a> {
    name: &'static str,
    world: &'a World,
    player: u64,
    /// The events of the request alone.
    events: &'a [Event],
    ledger_before: &'a Ledger,
}

impl After<'_> {
    fn wallet(&self) -> Wallet {
        self.world.shard.wallet(PlayerId(self.player)).expect("the player has a wallet")
    }

    /// The house's gain in `currency` from the request (negative: it paid).
    fn house_change(&self, currency: Currency) -> i128 {
        self.world.shard.ledger().get(currency).house - self.ledger_before.get(currency).house
    }

    /// `BonusForfeited` events of the request, as (bonus id, amount), all in EUR for player `P`.
    fn forfeits(&self) -> Vec<(String, i64)> {
        self.events
            .iter()
            .filter_map(|event| match event {
                Event::BonusForfeited { player, bonus, currency, amount } => {
                    assert_eq!((*player, *currency), (PlayerId(self.player), eur()), "{}: forfeiture event {event:?}", self.name);
                    Some((bonus.as_str().to_string(), amount.minor() as i64))
                }
                _ => None,
            })
            .collect()
    }

    fn assert_forfeits(&self, expected: &[(&str, i64)]) {
        let expected: Vec<(String, i64)> = expected.iter().map(|(id, amount)| (id.to_string(), *amount)).collect();
        assert_eq!(self.forfeits(), expected, "{}: BonusForfeited events (bonus, amount) of the request", self.name);
    }

    fn assert_house_change(&self, change: i128) {
        assert_eq!(self.house_change(eur()), change, "{}: the house's gain in EUR from the request", self.name);
    }

    /// `BonusConverted` events of the request, as (bonus id, amount).
    fn conversions(&self) -> Vec<(String, i64)> {
        self.events
            .iter()
            .filter_map(|event| match event {
                Event::BonusConverted { bonus, amount, .. } => Some((bonus.as_str().to_string(), amount.minor() as i64)),
                _ => None,
            })
            .collect()
    }

    /// The EUR bonus `bonus` is active with `wagered` progress, and the
    /// request converted nothing.
    fn assert_active(&self, bonus: &str, wagered: i64) {
        let name = self.name;
        let wallet = self.wallet();
        let active =
            wallet.bonus(eur()).unwrap_or_else(|| panic!("{name}: no active EUR bonus, expected {bonus} (bonuses: {:?})", wallet.bonuses));
        assert_eq!(active.bonus.as_str(), bonus, "{name}: the active EUR bonus");
        assert_eq!(active.wagered, money(wagered), "{name}: wagering progress of {bonus}");
        assert_eq!(self.conversions(), Vec::<(String, i64)>::new(), "{name}: the request converted no bonus");
    }
}

struct Case {
    name: &'static str,
    /// Setup steps; returns the request under test.
    steps: fn(&mut World) -> Request,
    expect: Expect,
    /// Further checks on what the request did.
    check_after: fn(&After),
}

fn case(name: &'static str, steps: fn(&mut World) -> Request, expect: Expect) -> Case {
    Case { name, steps, expect, check_after: |_| {} }
}

impl Case {
    fn then(mut self, check_after: fn(&After)) -> Case {
        self.check_after = check_after;
        self
    }
}

impl Named for Case {
    fn name(&self) -> &'static str {
        self.name
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
            assert_eq!(books(&world, player), before, "{name}: the refusal changed the wallet, the books or the index");
            assert_eq!(events, Vec::<Event>::new(), "{name}: a refusal emits no event");
        }
        Expect::Replays(cash, bonus, promo) => {
            match &outcome {
                Ok(Reply::Tx(reply)) => {
                    assert!(reply.replayed, "{name}: {shown} must replay (replayed == true), got {reply:?}");
                    let replied =
                        (reply.balance.cash.minor() as i64, reply.balance.bonus.minor() as i64, reply.balance.promo.minor() as i64);
                    assert_eq!(replied, (cash, bonus, promo), "{name}: (cash, bonus, promo) in the replayed reply");
                }
                other => panic!("{name}: {shown} must replay, got {other:?}"),
            }
            assert_eq!(books(&world, player), before, "{name}: the replay changed the wallet, the books or the index");
            assert_eq!(events, Vec::<Event>::new(), "{name}: a replay emits no event");
        }
        Expect::Holds(currency, cash, bonus, promo) => {
            assert!(outcome.is_ok(), "{name}: expected {shown} to be accepted, got {outcome:?}");
            if let Ok(Reply::Tx(reply)) = &outcome {
                assert!(!reply.replayed, "{name}: a new request must not be marked replayed");
            }
            assert_eq!(pockets(&world, player, currency), (cash, bonus, promo), "{name}: (cash, bonus, promo) in {currency} afterwards");
        }
    }
    let ledger_before = before.ledger;
    (case.check_after)(&After { name, world: &world, player, events: &events, ledger_before: &ledger_before });
}

// ---- 1. wagering counts only stakes placed under the bonus ----------------

#[test]
fn only_stakes_placed_under_the_active_bonus_count_toward_its_wagering() {
    let cases = [
        case(
            "a stake placed before the grant and settled after it neither progresses nor converts the bonus",
            |w| {
                w.funded(P, 10_000);
                let s = w.slot_session();
                // Alone, this stake would meet the 1x requirement.
                w.must(bet_of(s, "b-1", "r-1", 1_000));
                w.must(one_x("g-1", "bon-1"));
                standard(close("r-1"))
            },
            eur_holds(9_000, 1_000, 0),
        )
        .then(|a| a.assert_active("bon-1", 0)),
        case(
            "a stake placed before the grant and settled by a closing win after it does not progress the bonus",
            |w| {
                w.funded(P, 10_000);
                let s = w.slot_session();
                w.must(bet_of(s, "b-1", "r-1", 1_000));
                w.must(one_x("g-1", "bon-1"));
                standard(win_of("w-1", "b-1", 500, true))
            },
            eur_holds(9_500, 1_000, 0),
        )
        .then(|a| a.assert_active("bon-1", 0)),
        case(
            "a stake placed under the bonus and settled counts toward it",
            |w| {
                w.funded(P, 10_000);
                w.must(one_x("g-1", "bon-1"));
                let s = w.slot_session();
                w.must(bet_of(s, "b-1", "r-1", 600));
                standard(close("r-1"))
            },
            eur_holds(9_400, 1_000, 0),
        )
        .then(|a| a.assert_active("bon-1", 600)),
        case(
            "a stake placed under the bonus that meets the requirement converts it",
            |w| {
                w.funded(P, 10_000);
                w.must(one_x("g-1", "bon-1"));
                let s = w.slot_session();
                w.must(bet_of(s, "b-1", "r-1", 1_000));
                standard(close("r-1"))
            },
            eur_holds(10_000, 0, 0),
        )
        .then(|a| {
            assert_eq!(a.conversions(), vec![("bon-1".to_string(), 1_000)], "{}: one conversion of the whole bonus pocket", a.name);
            assert!(a.wallet().bonuses.is_empty(), "{}: the converted bonus is no longer active", a.name);
        }),
        case(
            "in a round joined before and after the grant only the later stake counts",
            |w| {
                w.funded(P, 10_000);
                let s = w.slot_session();
                w.must(bet_of(s, "b-1", "r-1", 400));
                w.must(one_x("g-1", "bon-1"));
                w.must(bet_of(s, "b-2", "r-1", 300));
                standard(close("r-1"))
            },
            eur_holds(9_300, 1_000, 0),
        )
        .then(|a| a.assert_active("bon-1", 300)),
        case(
            "a stake placed under a forfeited bonus does not count toward the next one",
            |w| {
                w.funded(P, 10_000);
                w.must(one_x("g-1", "bon-1"));
                let s = w.slot_session();
                w.must(bet_of(s, "b-1", "r-1", 1_000));
                w.must(forfeit("bon-1"));
                w.must(one_x("g-2", "bon-2"));
                standard(close("r-1"))
            },
            eur_holds(9_000, 1_000, 0),
        )
        .then(|a| {
            a.assert_active("bon-2", 0);
            a.assert_forfeits(&[]);
        }),
        case(
            "a stake placed under a converted bonus does not count toward the next one",
            |w| {
                w.funded(P, 10_000);
                w.must(one_x("g-1", "bon-1"));
                let s = w.slot_session();
                w.must(bet_of(s, "b-1", "r-1", 1_000));
                w.must(bet_of(s, "b-2", "r-2", 600));
                w.must(close("r-1")); // bon-1 converts: 8,400 + 1,000 cash
                w.must(one_x("g-2", "bon-2"));
                standard(close("r-2"))
            },
            eur_holds(9_400, 1_000, 0),
        )
        .then(|a| a.assert_active("bon-2", 0)),
        case(
            "a stake in another currency does not count toward the bonus",
            |w| {
                w.funded(P, 10_000);
                w.must(deposit_in("d-usd", usd(), 10_000));
                w.must(one_x("g-1", "bon-1"));
                let s = w.open_session(OPERATOR, "slot", usd(), HOUR_MS);
                w.must(bet_in(s, "b-1", "r-1", "slot", usd(), auto(1_000)));
                standard(close("r-1"))
            },
            eur_holds(10_000, 1_000, 0),
        )
        .then(|a| a.assert_active("bon-1", 0)),
    ];
    table(&cases, run_case);
}

// ---- 2. the bonus share of a win or refund follows the bet's bonus --------

/// Player `P` with 300 cash, the 1x bonus "bon-1" (1,000) and bet "b-1" of
/// 500 in round "r-1", paid 300 from cash and 200 from bonus (40% bonus).
/// Pockets afterwards: (0, 800, 0).
fn bet_under_bonus(w: &mut World) -> SessionId {
    w.funded(P, 300);
    w.must(one_x("g-1", "bon-1"));
    let s = w.slot_session();
    w.must(bet_of(s, "b-1", "r-1", 500));
    s
}

/// Completes the wagering of "bon-1" with a 1,000 cash stake in round
/// "r-2": the 800 left in the bonus pocket converts. Pockets: (800, 0, 0).
fn convert_bon_1(w: &mut World, s: SessionId) {
    w.must(deposit_of("d-2", 1_000));
    w.must(bet_of(s, "b-2", "r-2", 1_000));
    w.must(close("r-2"));
    assert!(w.shard.wallet(PlayerId(P)).expect("exists").bonuses.is_empty(), "setup: bon-1 converted");
}

/// Lets the week of "bon-1" run out; the next command forfeits it.
fn let_bon_1_expire(w: &mut World) {
    w.advance(7 * DAY_MS + HOUR_MS);
}

#[test]
fn the_bonus_share_of_a_win_or_refund_follows_the_bonus_its_bet_was_placed_under() {
    let cases = [
        case(
            "while its bonus is active, a win's bonus share goes to the bonus pocket",
            |w| {
                bet_under_bonus(w);
                standard(win_of("w-1", "b-1", 1_000, false))
            },
            eur_holds(600, 1_200, 0),
        )
        .then(|a| {
            a.assert_forfeits(&[]);
            a.assert_house_change(-1_000);
        }),
        case(
            "while its bonus is active, a refund's bonus share goes back to the bonus pocket",
            |w| {
                bet_under_bonus(w);
                standard(rollback_of("rb-1", "b-1"))
            },
            eur_holds(300, 1_000, 0),
        )
        .then(|a| {
            a.assert_forfeits(&[]);
            a.assert_house_change(-500);
        }),
        case(
            "after its bonus converted, a win's bonus share goes to cash",
            |w| {
                let s = bet_under_bonus(w);
                convert_bon_1(w, s);
                standard(win_of("w-1", "b-1", 1_000, false))
            },
            eur_holds(1_800, 0, 0),
        )
        .then(|a| {
            a.assert_forfeits(&[]);
            a.assert_house_change(-1_000);
        }),
        case(
            "after its bonus converted, a refund's bonus share goes to cash",
            |w| {
                let s = bet_under_bonus(w);
                convert_bon_1(w, s);
                standard(rollback_of("rb-1", "b-1"))
            },
            eur_holds(1_300, 0, 0),
        )
        .then(|a| {
            a.assert_forfeits(&[]);
            a.assert_house_change(-500);
        }),
        case(
            "after the operator forfeited its bonus, a win's bonus share goes to the house",
            |w| {
                bet_under_bonus(w);
                w.must(forfeit("bon-1"));
                standard(win_of("w-1", "b-1", 1_000, false))
            },
            eur_holds(600, 0, 0),
        )
        .then(|a| {
            a.assert_forfeits(&[("bon-1", 400)]);
            a.assert_house_change(-600);
        }),
        case(
            "after the operator forfeited its bonus, a refund's bonus share goes to the house",
            |w| {
                bet_under_bonus(w);
                w.must(forfeit("bon-1"));
                standard(rollback_of("rb-1", "b-1"))
            },
            eur_holds(300, 0, 0),
        )
        .then(|a| {
            a.assert_forfeits(&[("bon-1", 200)]);
            a.assert_house_change(-300);
        }),
        case(
            "after its bonus expired, a win's bonus share goes to the house",
            |w| {
                bet_under_bonus(w);
                let_bon_1_expire(w);
                standard(win_of("w-1", "b-1", 1_000, false))
            },
            eur_holds(600, 0, 0),
        )
        .then(|a| {
            // The win's apply first forfeits the expired pocket, then the share.
            a.assert_forfeits(&[("bon-1", 800), ("bon-1", 400)]);
            a.assert_house_change(800 - 1_000 + 400);
        }),
        case(
            "after its bonus expired, a refund's bonus share goes to the house",
            |w| {
                bet_under_bonus(w);
                let_bon_1_expire(w);
                standard(rollback_of("rb-1", "b-1"))
            },
            eur_holds(300, 0, 0),
        )
        .then(|a| {
            a.assert_forfeits(&[("bon-1", 800), ("bon-1", 200)]);
            a.assert_house_change(800 - 500 + 200);
        }),
        case(
            "after its bonus expired and a command forfeited it, a win's bonus share still goes to the house",
            |w| {
                bet_under_bonus(w);
                let_bon_1_expire(w);
                w.must(Action::Balance { currency: eur() });
                standard(win_of("w-1", "b-1", 1_000, false))
            },
            eur_holds(600, 0, 0),
        )
        .then(|a| {
            a.assert_forfeits(&[("bon-1", 400)]);
            a.assert_house_change(-600);
        }),
        case(
            "after its bonus was forfeited and another granted, a win's bonus share goes to the house, not to the new bonus",
            |w| {
                bet_under_bonus(w);
                w.must(forfeit("bon-1"));
                w.must(small_grant("g-2", "bon-2"));
                standard(win_of("w-1", "b-1", 1_000, false))
            },
            eur_holds(600, 500, 0),
        )
        .then(|a| {
            a.assert_forfeits(&[("bon-1", 400)]);
            a.assert_house_change(-600);
        }),
        case(
            "after its bonus converted and another granted, a win's bonus share goes to cash, not to the new bonus",
            |w| {
                let s = bet_under_bonus(w);
                convert_bon_1(w, s);
                w.must(small_grant("g-2", "bon-2"));
                standard(win_of("w-1", "b-1", 1_000, false))
            },
            eur_holds(1_800, 500, 0),
        )
        .then(|a| a.assert_forfeits(&[])),
        case(
            "after its bonus was forfeited, a rounded-down bonus share goes to the house and the rest to cash",
            |w| {
                w.funded(P, 200);
                w.must(one_x("g-1", "bon-1"));
                let s = w.slot_session();
                w.must(bet_of(s, "b-1", "r-1", 300)); // 200 cash + 100 bonus: a third bonus
                w.must(forfeit("bon-1"));
                standard(win_of("w-1", "b-1", 1_000, false))
            },
            eur_holds(667, 0, 0),
        )
        .then(|a| {
            a.assert_forfeits(&[("bon-1", 333)]);
            a.assert_house_change(-667);
        }),
        case(
            "after its bonus was forfeited, a win on a cash-only stake forfeits nothing",
            |w| {
                w.funded(P, 10_000);
                w.must(one_x("g-1", "bon-1"));
                let s = w.slot_session();
                w.must(bet_of(s, "b-1", "r-1", 500));
                w.must(forfeit("bon-1"));
                standard(win_of("w-1", "b-1", 1_000, false))
            },
            eur_holds(10_500, 0, 0),
        )
        .then(|a| {
            a.assert_forfeits(&[]);
            a.assert_house_change(-1_000);
        }),
        case(
            "after its bonus was forfeited, the bonus part of a split win goes to the house",
            |w| {
                bet_under_bonus(w);
                w.must(forfeit("bon-1"));
                standard(win_split("w-1", "b-1", split(100, 50), false))
            },
            eur_holds(100, 0, 0),
        )
        .then(|a| {
            a.assert_forfeits(&[("bon-1", 50)]);
            a.assert_house_change(-100);
        }),
        case(
            "a bet placed with no bonus active has the bonus part of its split win paid to the bonus active at the win",
            |w| {
                w.funded(P, 10_000);
                let s = w.slot_session();
                w.must(bet_of(s, "b-1", "r-1", 500));
                w.must(one_x("g-1", "bon-1"));
                standard(win_split("w-1", "b-1", split(100, 50), false))
            },
            eur_holds(9_600, 1_050, 0),
        )
        .then(|a| {
            a.assert_forfeits(&[]);
            a.assert_house_change(-150);
        }),
        case(
            "a bet placed with no bonus active has the bonus part of its split win paid to cash when no bonus is active",
            |w| {
                w.funded(P, 10_000);
                let s = w.slot_session();
                w.must(bet_of(s, "b-1", "r-1", 500));
                standard(win_split("w-1", "b-1", split(100, 50), false))
            },
            eur_holds(9_650, 0, 0),
        )
        .then(|a| a.assert_forfeits(&[])),
        case(
            "after its bonus converted a week ago, a win's bonus share still goes to cash",
            |w| {
                let s = bet_under_bonus(w);
                convert_bon_1(w, s);
                // A week on, the next inserts age the oldest index records
                // out, the record of the conversion among them; the open bet stays.
                w.advance(8 * DAY_MS);
                for id in ["d-3", "d-4", "d-5"] {
                    w.must(deposit_of(id, 100));
                }
                standard(win_of("w-1", "b-1", 1_000, false))
            },
            eur_holds(2_100, 0, 0),
        )
        .then(|a| {
            a.assert_forfeits(&[]);
            a.assert_house_change(-1_000);
        }),
        case(
            "after its bonus was forfeited a week ago, a win's bonus share still goes to the house",
            |w| {
                bet_under_bonus(w);
                w.must(forfeit("bon-1"));
                w.advance(8 * DAY_MS);
                for id in ["d-3", "d-4", "d-5"] {
                    w.must(deposit_of(id, 100));
                }
                standard(win_of("w-1", "b-1", 1_000, false))
            },
            eur_holds(900, 0, 0),
        )
        .then(|a| {
            a.assert_forfeits(&[("bon-1", 400)]);
            a.assert_house_change(-600);
        }),
    ];
    table(&cases, run_case);
}

// ---- 3. a bonus id is granted once per player -----------------------------

/// Player `P` with 10,000 cash and the bonus "bon-1" granted by "g-1" with
/// the 1x terms, then ended by `end`.
fn granted_then(w: &mut World, end: fn(&mut World)) {
    w.funded(P, 10_000);
    w.must(one_x("g-1", "bon-1"));
    end(w);
}

fn converted(w: &mut World) {
    let s = w.slot_session();
    w.must(bet_of(s, "b-1", "r-1", 1_000));
    w.must(close("r-1"));
    assert!(w.shard.wallet(PlayerId(P)).expect("exists").bonuses.is_empty(), "setup: bon-1 converted");
}

fn forfeited(w: &mut World) {
    w.must(forfeit("bon-1"));
}

fn expired_and_forfeited(w: &mut World) {
    w.advance(7 * DAY_MS);
    w.must(Action::Balance { currency: eur() });
    assert!(w.shard.wallet(PlayerId(P)).expect("exists").bonuses.is_empty(), "setup: bon-1 forfeited at expiry");
}

#[test]
fn a_bonus_id_is_granted_once_per_player() {
    let used = Refused(Rejection::BonusIdUsed);
    let cases = [
        case(
            "the id of the active bonus, under a new transaction id",
            |w| {
                granted_then(w, |_| {});
                standard(one_x("g-2", "bon-1"))
            },
            used,
        ),
        case(
            "the id of the active bonus, with other terms",
            |w| {
                granted_then(w, |_| {});
                standard(small_grant("g-2", "bon-1"))
            },
            used,
        ),
        case(
            "the id of the active bonus, in another currency",
            |w| {
                granted_then(w, |_| {});
                standard(grant("g-2", bonus_terms("bon-1", usd(), 500, 10, 500, 7 * DAY_MS)))
            },
            used,
        ),
        case(
            "the id of a bonus that converted",
            |w| {
                granted_then(w, converted);
                standard(one_x("g-2", "bon-1"))
            },
            used,
        ),
        case(
            "the id of a bonus that converted, in another currency",
            |w| {
                granted_then(w, converted);
                standard(grant("g-2", bonus_terms("bon-1", usd(), 500, 10, 500, 7 * DAY_MS)))
            },
            used,
        ),
        case(
            "the id of a bonus the operator forfeited",
            |w| {
                granted_then(w, forfeited);
                standard(one_x("g-2", "bon-1"))
            },
            used,
        ),
        case(
            "the id of a bonus that expired and was forfeited",
            |w| {
                granted_then(w, expired_and_forfeited);
                standard(one_x("g-2", "bon-1"))
            },
            used,
        ),
        case(
            "a new id after the bonus was forfeited is accepted",
            |w| {
                granted_then(w, forfeited);
                standard(small_grant("g-2", "bon-2"))
            },
            eur_holds(10_000, 500, 0),
        ),
        case(
            "the same id for another player is accepted",
            |w| {
                granted_then(w, forfeited);
                w.funded(OTHER, 0);
                Request { operator: OPERATOR, player: OTHER, action: one_x("g-1", "bon-1") }
            },
            eur_holds(0, 1_000, 0),
        ),
        case(
            "the original grant retried after its bonus ended replays its first result",
            |w| {
                granted_then(w, forfeited);
                standard(one_x("g-1", "bon-1"))
            },
            Replays(10_000, 1_000, 0),
        ),
    ];
    table(&cases, run_case);
}

// ---- 4. a bet retried through a newer session -----------------------------

/// Player `P` with 10,000 cash and bet "b-1" of 300 in round "r-1" placed
/// through a first session, which is returned. Its reply: (9,700, 0, 0).
fn first_bet(w: &mut World) -> SessionId {
    w.funded(P, 10_000);
    let s = w.slot_session();
    w.must(bet_of(s, "b-1", "r-1", 300));
    s
}

#[test]
fn a_bet_retried_through_a_newer_session_replays_its_first_result() {
    let cases = [
        case(
            "a retry through a second live session",
            |w| {
                first_bet(w);
                let newer = w.slot_session();
                standard(bet_of(newer, "b-1", "r-1", 300))
            },
            Replays(9_700, 0, 0),
        ),
        case(
            "a retry through a session opened after the first one expired",
            |w| {
                first_bet(w);
                w.advance(2 * HOUR_MS);
                let newer = w.slot_session();
                standard(bet_of(newer, "b-1", "r-1", 300))
            },
            Replays(9_700, 0, 0),
        ),
        case(
            "a retry through a session opened after the first one was closed",
            |w| {
                let first = first_bet(w);
                w.must(Action::CloseSession { session: first });
                let newer = w.slot_session();
                standard(bet_of(newer, "b-1", "r-1", 300))
            },
            Replays(9_700, 0, 0),
        ),
        case(
            "a retry through a newer session after the bet's round closed",
            |w| {
                first_bet(w);
                w.must(close("r-1"));
                let newer = w.slot_session();
                standard(bet_of(newer, "b-1", "r-1", 300))
            },
            Replays(9_700, 0, 0),
        ),
        case(
            "a retry through a newer session after a win on the bet",
            |w| {
                first_bet(w);
                w.must(win_of("w-1", "b-1", 500, false));
                let newer = w.slot_session();
                standard(bet_of(newer, "b-1", "r-1", 300))
            },
            Replays(9_700, 0, 0),
        ),
        case(
            "a retry through a newer session with another amount is a conflict",
            |w| {
                first_bet(w);
                let newer = w.slot_session();
                standard(bet_of(newer, "b-1", "r-1", 301))
            },
            Refused(Rejection::TxConflict),
        ),
        case(
            "a retry through a newer session for another round is a conflict",
            |w| {
                first_bet(w);
                let newer = w.slot_session();
                standard(bet_of(newer, "b-1", "r-2", 300))
            },
            Refused(Rejection::TxConflict),
        ),
    ];
    table(&cases, run_case);
}

// ---- 5. a redemption retried after it was decided -------------------------

/// Sweepstakes player `P` with 5,000 redeemable Sweeps Coins, of which
/// "red-1" asks 1,500. Pockets afterwards: (3,500, 0, 1,500), which is also
/// the reply to the request.
fn requested(w: &mut World) {
    w.must_sweeps(Action::CreateWallet);
    w.must_sweeps(sweeps_grant("g-1", 5_000, 0));
    w.must_sweeps(redeem("red-1", 1_500));
}

#[test]
fn a_redemption_retried_after_its_decision_replays_and_moves_nothing() {
    let cases = [
        case(
            "a request retried while pending replays",
            |w| {
                requested(w);
                sweepstakes(redeem("red-1", 1_500))
            },
            Replays(3_500, 0, 1_500),
        ),
        case(
            "a request retried after approval replays and pays nothing more",
            |w| {
                requested(w);
                w.must_sweeps(approve("red-1"));
                sweepstakes(redeem("red-1", 1_500))
            },
            Replays(3_500, 0, 1_500),
        )
        .then(|a| {
            assert_eq!(pockets(a.world, P, SC), (3_500, 0, 0), "{}: (redeemable, unplayed, pending) afterwards", a.name);
            assert_eq!(a.world.shard.ledger().get(SC).withdrawn, 1_500, "{}: paid once", a.name);
        }),
        case(
            "a request retried after rejection replays and moves nothing",
            |w| {
                requested(w);
                w.must_sweeps(reject("red-1"));
                sweepstakes(redeem("red-1", 1_500))
            },
            Replays(3_500, 0, 1_500),
        )
        .then(|a| {
            assert_eq!(pockets(a.world, P, SC), (5_000, 0, 0), "{}: (redeemable, unplayed, pending) afterwards", a.name);
        }),
        case(
            "a request retried while pending with another amount is a conflict",
            |w| {
                requested(w);
                sweepstakes(redeem("red-1", 1_000))
            },
            Refused(Rejection::TxConflict),
        ),
        case(
            "a request retried after approval with another amount is a conflict",
            |w| {
                requested(w);
                w.must_sweeps(approve("red-1"));
                sweepstakes(redeem("red-1", 1_000))
            },
            Refused(Rejection::TxConflict),
        ),
        case(
            "a request retried after rejection with another amount is a conflict",
            |w| {
                requested(w);
                w.must_sweeps(reject("red-1"));
                sweepstakes(redeem("red-1", 2_000))
            },
            Refused(Rejection::TxConflict),
        ),
        case(
            "approving twice replays and pays once",
            |w| {
                requested(w);
                w.must_sweeps(approve("red-1"));
                sweepstakes(approve("red-1"))
            },
            Replays(3_500, 0, 0),
        ),
        case(
            "rejecting twice replays and returns the coins once",
            |w| {
                requested(w);
                w.must_sweeps(reject("red-1"));
                sweepstakes(reject("red-1"))
            },
            Replays(5_000, 0, 0),
        ),
        case(
            "rejecting an approved redemption",
            |w| {
                requested(w);
                w.must_sweeps(approve("red-1"));
                sweepstakes(reject("red-1"))
            },
            Refused(Rejection::RedemptionNotFound),
        ),
        case(
            "approving a rejected redemption",
            |w| {
                requested(w);
                w.must_sweeps(reject("red-1"));
                sweepstakes(approve("red-1"))
            },
            Refused(Rejection::RedemptionNotFound),
        ),
    ];
    table(&cases, run_case);
}

// ---- 6. a balance read shows an expired bonus as gone ---------------------

struct ExpiredRead {
    name: &'static str,
    /// The first command to touch the wallet after the expiry.
    command: fn() -> Action,
    /// Its outcome: accepted, or refused with this code.
    refusal: Option<Rejection>,
    /// EUR cash afterwards.
    cash: i64,
    /// The house's gain from the command, the forfeited 1,000 included.
    house_change: i128,
}

impl Named for ExpiredRead {
    fn name(&self) -> &'static str {
        self.name
    }
}

#[test]
fn a_balance_read_shows_an_expired_bonus_as_gone_and_the_next_command_forfeits_it() {
    let cases = [
        ExpiredRead {
            name: "a balance query",
            command: || Action::Balance { currency: eur() },
            refusal: None,
            cash: 200,
            house_change: 1_000,
        },
        ExpiredRead { name: "a deposit", command: || deposit_of("d-2", 100), refusal: None, cash: 300, house_change: 1_000 },
        ExpiredRead {
            name: "a win on a bet placed before the expiry",
            command: || win_of("w-1", "b-1", 50, true),
            refusal: None,
            cash: 250,
            house_change: 950,
        },
        ExpiredRead {
            name: "a refused withdrawal",
            command: || Action::Withdraw { tx: tx("wd-1"), currency: eur(), amount: Amount(1_000_000) },
            refusal: Some(Rejection::InsufficientFunds),
            cash: 200,
            house_change: 1_000,
        },
    ];
    table(&cases, |case| {
        let name = case.name;
        let mut world = World::new();
        world.funded(P, 300);
        world.must(grant("g-1", bonus_terms("bon-1", eur(), 1_000, 10, 500, DAY_MS)));
        let s = world.slot_session();
        world.must(bet_of(s, "b-1", "r-1", 100)); // all cash
        world.funded(OTHER, 100);
        let read = |world: &World| {
            let balance = world.shard.balance(PlayerId(P), eur()).expect("the player exists");
            (balance.cash.minor() as i64, balance.bonus.minor() as i64, balance.promo.minor() as i64)
        };
        let touch_other = |world: &mut World| {
            world.act(OTHER, Action::Balance { currency: eur() }).expect("the other player's query is accepted");
        };

        // The shard's clock moves only with an apply, here another player's.
        world.advance(DAY_MS - 1);
        touch_other(&mut world);
        assert_eq!(read(&world), (200, 1_000, 0), "{name}: just before the expiry the read shows the bonus");
        world.advance(1);
        assert_eq!(read(&world), (200, 1_000, 0), "{name}: the shard's clock has not reached the expiry yet");
        touch_other(&mut world);
        assert_eq!(world.shard.now_ms(), START_MS + DAY_MS, "{name}: the shard's clock is at the expiry");
        assert_eq!(read(&world), (200, 0, 0), "{name}: at the expiry the read shows the bonus gone");
        world.advance(HOUR_MS);
        touch_other(&mut world);
        assert_eq!(read(&world), (200, 0, 0), "{name}: past the expiry the read shows the bonus gone");
        let wallet = world.shard.wallet(PlayerId(P)).expect("the player exists");
        assert_eq!(wallet.bonuses.len(), 1, "{name}: no command touched the wallet, the bonus is not forfeited yet");
        assert_eq!(wallet.balance(eur()).bonus, money(1_000), "{name}: the pocket still holds the bonus");
        assert!(!world.events.iter().any(|e| matches!(e, Event::BonusForfeited { .. })), "{name}: nothing forfeited yet");

        let house = world.shard.ledger().get(eur()).house;
        let seen = world.events.len();
        let outcome = world.act(P, (case.command)());
        match case.refusal {
            None => assert!(outcome.is_ok(), "{name}: the command is accepted, got {outcome:?}"),
            Some(code) => assert_eq!(outcome, Err(code), "{name}: the command's outcome"),
        }
        if let Ok(Reply::Balance(reply)) = &outcome {
            assert_eq!(reply.bonus, Money::ZERO, "{name}: the balance reply shows the forfeit");
        }
        let forfeits: Vec<Event> = world.events[seen..].iter().filter(|e| matches!(e, Event::BonusForfeited { .. })).cloned().collect();
        let expected = Event::BonusForfeited { player: PlayerId(P), bonus: bonus_id("bon-1"), currency: eur(), amount: money(1_000) };
        assert_eq!(forfeits, vec![expected], "{name}: the command forfeits the expired bonus, with its event");
        let wallet = world.shard.wallet(PlayerId(P)).expect("the player exists");
        assert!(wallet.bonuses.is_empty(), "{name}: the bonus is no longer active");
        assert_eq!(pockets(&world, P, eur()), (case.cash, 0, 0), "{name}: the pockets really hold (cash, bonus, promo)");
        assert_eq!(read(&world), (case.cash, 0, 0), "{name}: the read agrees with the pockets");
        assert_eq!(world.shard.ledger().get(eur()).house - house, case.house_change, "{name}: the house's gain");
    });
}
