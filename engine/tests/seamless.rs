//! The actions behind the seamless-wallet adapter: session reads and
//! refreshes, bet aliases, payouts by round or alias (and promotional
//! awards), lookups and round reads. `check_invariants()` runs after every
//! apply (conservation included), as everywhere in these tests.

mod support;

use engine::index::{BetState, TxKind};
use engine::{Action, Amount, Locale, Money, Pockets, Rejection, Reply, Stake};
use support::*;

fn split(cash: i64, bonus: i64, promo: i64) -> Stake {
    Stake::Split { cash: Amount(cash), bonus: Amount(bonus), promo: Amount(promo) }
}

fn pockets(cash: u64, bonus: u64, promo: u64) -> Pockets {
    let m = |minor| Money::from_minor(minor).expect("fits");
    Pockets { cash: m(cash), bonus: m(bonus), promo: m(promo) }
}

fn bet_with_alias(
    world: &mut World,
    session: engine::SessionId,
    id: &str,
    alias: Option<&str>,
    round_id: &str,
    minor: i64,
) -> engine::Outcome {
    world.act(
        1,
        Action::Bet {
            tx: tx(id),
            session,
            round: round(round_id),
            game: Some(game("slot")),
            currency: eur(),
            stake: split(minor, 0, 0),
            alias: alias.map(tx),
        },
    )
}

#[allow(clippy::too_many_arguments)]
fn payout(
    world: &mut World,
    id: &str,
    round_id: Option<&str>,
    bet: Option<&str>,
    minor: i64,
    close_round: bool,
    award: bool,
) -> engine::Outcome {
    world.act(
        1,
        Action::Payout {
            tx: tx(id),
            round: round_id.map(round),
            game: Some(game("slot")),
            currency: eur(),
            bet: bet.map(tx),
            amount: split(minor, 0, 0),
            close_round,
            award,
            claim: false,
        },
    )
}

#[test]
fn a_session_reads_with_its_locale_and_balance_and_refreshes_into_a_new_id() {
    let mut world = World::new();
    world.funded(1, 10_000);
    let locale = Locale::new("mt", "en").expect("two letters each");
    assert_eq!((locale.country(), locale.language()), ("MT", "EN"), "stored upper-case");
    assert_eq!(Locale::new("MLT", "en"), Err(Rejection::InvalidArgument));
    assert_eq!(Locale::new("M1", "en"), Err(Rejection::InvalidArgument));
    let opened = world.act(1, Action::OpenSession { game: game("slot"), currency: eur(), duration_ms: HOUR_MS, locale: Some(locale) });
    let Ok(Reply::SessionOpened { session, expires_ms }) = opened else { panic!("{opened:?}") };
    let Ok(Reply::Session(view)) = world.act(1, Action::SessionInfo { session }) else { panic!("no session view") };
    assert_eq!((view.session, view.game, view.currency, view.expires_ms), (session, game("slot"), eur(), expires_ms));
    assert_eq!(view.locale, Some(locale));
    assert_eq!(view.balance.cash.minor(), 10_000);

    world.advance(10 * 60 * 1000);
    let Ok(Reply::SessionOpened { session: fresh, expires_ms: fresh_expiry }) = world.act(1, Action::RefreshSession { session }) else {
        panic!("refresh refused")
    };
    assert_ne!(fresh, session);
    assert_eq!(fresh_expiry, expires_ms, "a refresh replaces the id only: the expiry stays");
    assert_eq!(rejected(world.act(1, Action::SessionInfo { session })), Rejection::SessionNotFound, "the old id is dead");
    assert_eq!(rejected(world.act(1, Action::RefreshSession { session })), Rejection::SessionNotFound);
    let Ok(Reply::Session(view)) = world.act(1, Action::SessionInfo { session: fresh }) else { panic!("no session view") };
    assert_eq!(view.locale, Some(locale), "the locale carries over");

    world.advance(HOUR_MS);
    assert_eq!(rejected(world.act(1, Action::SessionInfo { session: fresh })), Rejection::SessionExpired);
    assert_eq!(rejected(world.act(1, Action::RefreshSession { session: fresh })), Rejection::SessionExpired);
}

#[test]
fn a_payout_finds_its_bet_by_alias_or_by_round_and_settles_the_round() {
    let mut world = World::new();
    world.funded(1, 10_000);
    let session = world.session(1);
    bet_with_alias(&mut world, session, "bet-1", Some("ref-1"), "r-1", 1_000).expect("bet placed");
    assert_eq!(rejected(bet_with_alias(&mut world, session, "bet-2", Some("ref-1"), "r-2", 1_000)), Rejection::TxConflict, "alias taken");
    assert_eq!(rejected(bet_with_alias(&mut world, session, "bet-3", Some("bet-3"), "r-3", 1_000)), Rejection::TxConflict);

    // By alias, round left open; then a second win by round closes it.
    let paid = payout(&mut world, "win-1", Some("r-1"), Some("ref-1"), 500, false, false);
    assert_eq!(replied_balance(&paid).cash.minor(), 9_500);
    assert!(replayed(&payout(&mut world, "win-1", Some("r-1"), Some("ref-1"), 500, false, false)));
    assert_eq!(rejected(payout(&mut world, "win-1", Some("r-1"), Some("ref-1"), 501, false, false)), Rejection::TxConflict);
    assert_eq!(rejected(payout(&mut world, "win-x", Some("r-9"), Some("ref-1"), 1, false, false)), Rejection::RoundMismatch);
    payout(&mut world, "win-2", Some("r-1"), None, 300, true, false).expect("paid by round");
    assert_eq!(world.cash(1), 9_800);

    assert_eq!(rejected(payout(&mut world, "win-3", Some("r-1"), None, 1, true, false)), Rejection::RoundClosed);
    assert_eq!(rejected(payout(&mut world, "win-4", Some("r-1"), Some("ref-1"), 1, true, false)), Rejection::RoundClosed);
    assert_eq!(rejected(payout(&mut world, "win-5", Some("r-unknown"), None, 1, true, false)), Rejection::RoundNotFound);
    assert_eq!(rejected(payout(&mut world, "win-6", None, Some("ref-unknown"), 1, true, false)), Rejection::BetNotFound);

    // A round's record keeps its game and times once the round closed.
    let Ok(Reply::Round(view)) = world.act(1, Action::RoundInfo { round: round("r-1") }) else { panic!("round unread") };
    assert_eq!((view.game, view.closed_ms.is_some()), (game("slot"), true));
    assert_eq!(rejected(world.act(1, Action::RoundInfo { round: round("r-unknown") })), Rejection::RoundNotFound);
}

#[test]
fn a_rollback_by_alias_ends_the_bet_and_its_alias_and_a_late_aliased_bet_is_refused() {
    let mut world = World::new();
    world.funded(1, 10_000);
    let session = world.session(1);
    bet_with_alias(&mut world, session, "bet-1", Some("ref-1"), "r-1", 1_000).expect("bet placed");
    let refunded = world.act(1, Action::Rollback { tx: tx("rb-1"), bet: tx("ref-1"), currency: eur() });
    assert_eq!(replied_balance(&refunded).cash.minor(), 10_000);
    assert_eq!(
        rejected(world.act(1, Action::Rollback { tx: tx("rb-2"), bet: tx("ref-1"), currency: eur() })),
        Rejection::BetAlreadyRolledBack
    );
    assert_eq!(rejected(payout(&mut world, "win-1", Some("r-1"), Some("ref-1"), 1, true, false)), Rejection::WinOnRolledBackBet);

    // A rollback that names a bet (by the alias it will have) before it comes.
    let early = world.act(1, Action::Rollback { tx: tx("rb-3"), bet: tx("ref-2"), currency: eur() });
    assert!(matches!(early, Ok(Reply::Tx(reply)) if !reply.bet_found));
    assert_eq!(rejected(bet_with_alias(&mut world, session, "bet-2", Some("ref-2"), "r-2", 1_000)), Rejection::BetRolledBackInAdvance);
    assert_eq!(world.cash(1), 10_000);
}

#[test]
fn an_award_pays_from_the_house_only_when_no_bet_is_open_for_it() {
    let mut world = World::new();
    world.funded(1, 10_000);
    let session = world.session(1);
    // No bet: an award (promo pocket here), recorded as such.
    let awarded = world.act(
        1,
        Action::Payout {
            tx: tx("promo-1"),
            round: None,
            game: None,
            currency: eur(),
            bet: None,
            amount: split(0, 0, 250),
            close_round: true,
            award: true,
            claim: false,
        },
    );
    assert_eq!(replied_balance(&awarded).promo.minor(), 250);
    assert!(matches!(world.events.last(), Some(engine::Event::AwardCredited { .. })));
    // Without `award` the same request is a refusal.
    assert_eq!(rejected(payout(&mut world, "promo-2", Some("free-1"), None, 100, true, false)), Rejection::RoundNotFound);
    // Bonus money only under an active bonus.
    let bonus = world.act(
        1,
        Action::Payout {
            tx: tx("promo-3"),
            round: None,
            game: None,
            currency: eur(),
            bet: None,
            amount: split(0, 5, 0),
            close_round: true,
            award: true,
            claim: false,
        },
    );
    assert_eq!(rejected(bonus), Rejection::BonusNotFound);
    // With a bet open in the round, an award-flagged payout is its win.
    bet_with_alias(&mut world, session, "buy-in", None, "tournament-1", 1_000).expect("bet placed");
    payout(&mut world, "prize", Some("tournament-1"), None, 4_000, true, true).expect("paid");
    let Ok(Reply::Found(found)) = world.act(1, Action::Lookup { txs: vec![tx("prize"), tx("promo-1"), tx("buy-in")] }) else {
        panic!("lookup refused")
    };
    let kinds: Vec<_> = found.iter().map(|f| f.map(|f| (f.kind, f.moved))).collect();
    assert_eq!(
        kinds,
        vec![
            Some((TxKind::Win, pockets(4_000, 0, 0))),
            Some((TxKind::Award, pockets(0, 0, 250))),
            Some((TxKind::Bet, pockets(1_000, 0, 0)))
        ]
    );
    assert_eq!(world.cash(1), 13_000);
}

#[test]
fn a_lookup_reads_records_by_id_or_alias_and_changes_nothing() {
    let setup = || {
        let mut world = World::new();
        world.funded(1, 10_000);
        let session = world.session(1);
        bet_with_alias(&mut world, session, "bet-1", Some("ref-1"), "r-1", 1_000).expect("bet placed");
        world.advance(5_000);
        world
    };
    // A twin that applies a balance read instead: same index, same clock.
    let mut twin = setup();
    twin.act(1, Action::Balance { currency: eur() }).expect("a balance");
    let mut world = setup();
    let placed_at = world.now_ms - 5_000;
    let Ok(Reply::Found(found)) = world.act(1, Action::Lookup { txs: vec![tx("ref-1"), tx("nothing"), tx("dep-1")] }) else {
        panic!("lookup refused")
    };
    let bet = found[0].expect("found by its alias");
    assert_eq!(
        (bet.tx, bet.kind, bet.bet_state, bet.created_ms, bet.currency),
        (tx("bet-1"), TxKind::Bet, BetState::Open, placed_at, eur())
    );
    assert_eq!(found[1], None);
    assert_eq!(found[2].map(|f| (f.kind, f.moved)), Some((TxKind::Deposit, pockets(10_000, 0, 0))));
    assert_eq!(world.shard.snapshot(), twin.shard.snapshot(), "a lookup changes no more than a balance read");
    assert_eq!(rejected(world.act(1, Action::Lookup { txs: Vec::new() })), Rejection::InvalidArgument);
    let too_many = (0..=engine::LOOKUP_MAX).map(|n| tx(&format!("t-{n}"))).collect();
    assert_eq!(rejected(world.act(1, Action::Lookup { txs: too_many })), Rejection::InvalidArgument);
}

#[test]
fn an_aliased_bet_is_kept_with_its_alias_while_open_and_both_age_out_after() {
    // Retention of 2 records: open bets and their aliases are kept beyond it.
    let mut world = World::with_config(engine::ShardConfig { tx_retention_count: 2, ..engine::ShardConfig::new(7) });
    world.funded(1, 100_000);
    let session = world.session(1);
    bet_with_alias(&mut world, session, "bet-1", Some("ref-1"), "r-1", 1_000).expect("bet placed");
    for n in 0..20 {
        world.deposit(1, &format!("filler-{n}"), 1).expect("deposit");
    }
    payout(&mut world, "win-1", Some("r-1"), Some("ref-1"), 10, true, false).expect("the alias survived retention");
    for n in 20..40 {
        world.deposit(1, &format!("filler-{n}"), 1).expect("deposit");
    }
    let Ok(Reply::Found(found)) = world.act(1, Action::Lookup { txs: vec![tx("ref-1"), tx("bet-1")] }) else { panic!("lookup refused") };
    assert_eq!(found, vec![None, None], "ended, the bet and its alias age out like any record");
}

#[test]
fn a_claimed_id_belongs_to_its_first_player_of_that_operator() {
    let mut world = World::new();
    let claim = |operator, key: &str, player| engine::Command::Claim { operator, key: tx(key), player: engine::PlayerId(player) };
    assert_eq!(world.run(claim(OPERATOR, "deposit-1", 1)), Ok(Reply::Done));
    assert_eq!(world.run(claim(OPERATOR, "deposit-1", 1)), Ok(Reply::Done), "the same claim again");
    assert_eq!(world.run(claim(OPERATOR, "deposit-1", 2)), Err(Rejection::TxConflict), "another player's");
    assert_eq!(world.run(claim(OTHER_OPERATOR, "deposit-1", 2)), Ok(Reply::Done), "another operator's ids are its own");
    assert_eq!(world.run(claim(engine::OperatorId(99), "deposit-1", 2)), Err(Rejection::UnknownOperator));
    // A claim routes by its key: every claim of one key meets on one shard.
    assert_eq!(claim(OPERATOR, "k", 1).player(), claim(OPERATOR, "k", 2).player());
    assert_ne!(claim(OPERATOR, "k", 1).player(), claim(OTHER_OPERATOR, "k", 1).player());
    // A payout that claims its id in the same apply: refused whole when
    // another player holds the id, and holding it once paid.
    world.funded(2, 1_000);
    let session = world.session_for(2, "slot", eur());
    world
        .act(
            2,
            Action::Bet {
                tx: tx("b"),
                session,
                round: round("r"),
                game: Some(game("slot")),
                currency: eur(),
                stake: split(100, 0, 0),
                alias: None,
            },
        )
        .expect("bet");
    let claiming = |id: &str| Action::Payout {
        tx: tx(id),
        round: Some(round("r")),
        game: None,
        currency: eur(),
        bet: None,
        amount: split(50, 0, 0),
        close_round: false,
        award: false,
        claim: true,
    };
    assert_eq!(rejected(world.act(2, claiming("deposit-1"))), Rejection::TxConflict);
    assert_eq!(world.cash(2), 900, "nothing paid");
    world.act(2, claiming("deposit-2")).expect("paid and claimed");
    assert_eq!(world.cash(2), 950);
    assert!(replayed(&world.act(2, claiming("deposit-2"))));
    assert_eq!(world.run(claim(OPERATOR, "deposit-2", 2)), Ok(Reply::Done), "held by its payer");
    assert_eq!(world.run(claim(OPERATOR, "deposit-2", 1)), Err(Rejection::TxConflict));
    // Claims are part of the replicated state.
    let restored = engine::Shard::restore(&world.shard.snapshot(), engine::Residency::default()).expect("restores");
    assert_eq!(restored.snapshot(), world.shard.snapshot());
}

#[test]
fn a_bet_paid_even_nothing_cannot_be_rolled_back_and_a_cancelled_round_refuses_payouts() {
    let mut world = World::new();
    world.funded(1, 10_000);
    let session = world.session(1);
    bet_with_alias(&mut world, session, "bet-1", None, "r-1", 1_000).expect("bet placed");
    payout(&mut world, "zero", Some("r-1"), Some("bet-1"), 0, false, false).expect("a zero win, the round goes on");
    assert_eq!(rejected(world.rollback(1, "rb-1", "bet-1")), Rejection::BetAlreadySettled, "a paid bet is settled");

    // Every bet of a round rolled back: a payout to the round is refused as
    // cancelled; the round is not closed (a new bet may reopen it).
    bet_with_alias(&mut world, session, "bet-2", None, "r-2", 1_000).expect("bet placed");
    bet_with_alias(&mut world, session, "bet-3", None, "r-2", 500).expect("bet placed");
    world.rollback(1, "rb-2", "bet-2").expect("refunded");
    payout(&mut world, "early", Some("r-2"), None, 1, false, false).expect("one bet still open: paid");
    world.rollback(1, "rb-3", "bet-3").expect_err("paid: settled");
    bet_with_alias(&mut world, session, "bet-4", None, "r-3", 500).expect("bet placed");
    world.rollback(1, "rb-4", "bet-4").expect("refunded");
    assert_eq!(rejected(payout(&mut world, "late", Some("r-3"), None, 1, true, false)), Rejection::WinOnRolledBackBet);
    let Ok(Reply::Round(view)) = world.act(1, Action::RoundInfo { round: round("r-3") }) else { panic!("round unread") };
    assert!(view.closed_ms.is_some(), "a cancelled round reads as ended");
    bet_with_alias(&mut world, session, "bet-5", None, "r-3", 500).expect("a new bet reopens a cancelled round");
    payout(&mut world, "win-5", Some("r-3"), None, 100, true, false).expect("and its payout closes it");
    assert_eq!(rejected(payout(&mut world, "win-6", Some("r-3"), None, 1, true, false)), Rejection::RoundClosed);
}

#[test]
fn a_rollback_cannot_name_itself_through_an_alias_and_sweeps_coins_are_never_awarded() {
    let mut world = World::new();
    world.funded(1, 10_000);
    let session = world.session(1);
    bet_with_alias(&mut world, session, "bet-1", Some("ref-1"), "r-1", 1_000).expect("bet placed");
    let own = world.act(1, Action::Rollback { tx: tx("bet-1"), bet: tx("ref-1"), currency: eur() });
    assert_eq!(rejected(own), Rejection::TxConflict);

    world.act_as(SWEEPS_OPERATOR, 2, Action::CreateWallet).expect("a sweepstakes wallet");
    let award = world.act_as(
        SWEEPS_OPERATOR,
        2,
        Action::Payout {
            tx: tx("sc-award"),
            round: None,
            game: None,
            currency: engine::Currency::SWEEPS_COINS,
            bet: None,
            amount: split(100, 0, 0),
            close_round: true,
            award: true,
            claim: false,
        },
    );
    assert_eq!(rejected(award), Rejection::CurrencyNotAllowed);
}
