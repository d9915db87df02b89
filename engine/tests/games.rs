//! Built-in games through the shard: fair randomness, replicas that agree,
//! reseeding, provably-fair rounds that verify (and tampered ones that do
//! not), round replay from the record, and the refusals.

mod support;

use engine::games::fair::{server_seed_hash, FairDraw};
use engine::games::{self, Choice, DiceBet, Drawn, GameKind, RouletteBet};
use engine::rng::{Draw, ShardRng};
use engine::{Action, Amount, Command, Context, Event, ExternalId, PlayerId, Rejection, Reply, Residency, SessionId, Shard, ShardConfig};
use support::*;

/// Pearson's chi-square statistic of `samples` draws of `below(n)`.
fn chi_square(rng: &mut impl Draw, n: u32, samples: u32) -> f64 {
    let mut counts = vec![0u64; n as usize];
    for _ in 0..samples {
        counts[rng.below(n) as usize] += 1;
    }
    let expected = f64::from(samples) / f64::from(n);
    counts.iter().map(|&c| (c as f64 - expected).powi(2) / expected).sum()
}

#[test]
fn rejection_sampling_is_unbiased_on_small_ranges() {
    // Critical values of chi-square at p = 0.001 for n - 1 degrees of freedom.
    let cases = [(2u32, 10.83), (3, 13.82), (5, 18.47), (6, 20.52), (7, 22.46), (10, 27.88), (37, 67.99)];
    let mut rng = ShardRng::from_key([42; 32]);
    for (n, critical) in cases {
        let statistic = chi_square(&mut rng, n, 1_000_000);
        assert!(statistic < critical, "below({n}): chi-square {statistic:.2} exceeds {critical} (p < 0.001)");
    }
}

/// A source whose words cycle through a range chosen so that `word mod n`
/// would be biased: values that are hit once more by the modulo are exactly
/// those rejection sampling must refuse.
#[test]
fn modulo_bias_is_rejected_at_the_top_of_the_word_range() {
    struct Top(u32);
    impl Draw for Top {
        fn next_u32(&mut self) -> u32 {
            self.0 = self.0.wrapping_add(1);
            self.0
        }
    }
    // For n = 10, 2^32 mod 10 = 6: the six largest words must be rejected.
    let mut source = Top(u32::MAX - 7);
    let first = source.below(10); // word MAX - 6: the last accepted
    assert_eq!(first, (u32::MAX - 6) % 10);
    // The next six words (MAX - 5 ..= MAX) are rejected; then 0 wraps in.
    assert_eq!(source.below(10), 0);
}

fn seeded_world() -> World {
    let mut world = World::new();
    world.run(Command::Reseed { entropy: [5; 32] }).expect("reseeds");
    world
}

/// Plays one round in EUR.
fn play() -> impl Fn(&mut World, u64, SessionId, &str, i64, Choice, bool) -> engine::Outcome {
    |world: &mut World, player: u64, session: SessionId, tx_id: &str, stake: i64, choice: Choice, fair: bool| {
        world.act(player, Action::Play { tx: tx(tx_id), session, currency: eur(), stake: Amount(stake), choice, fair })
    }
}

#[test]
fn a_played_round_moves_money_once_and_records_its_outcome() {
    let mut world = seeded_world();
    world.funded(1, 100_000);
    let session = world.session_for(1, games::ROULETTE_ID, eur());
    let play = play();
    let mut cash = 100_000i64;
    for round in 0..200 {
        world.events.clear();
        let outcome = play(&mut world, 1, session, &format!("p{round}"), 100, Choice::Roulette(RouletteBet::Red), false).expect("plays");
        let Reply::Played { tx: reply, win, drawn } = outcome else { panic!("expected Played") };
        let Drawn::Roulette { pocket } = drawn else { panic!("a roulette outcome") };
        assert!(pocket <= 36);
        cash = cash - 100 + win.minor() as i64;
        assert_eq!(reply.balance.cash.minor() as i64, cash);
        let recorded = world.events.iter().find_map(|e| match e {
            Event::GamePlayed { choice, drawn, stake, win, game, version, .. } => {
                Some((*choice, drawn.clone(), *stake, *win, *game, *version))
            }
            _ => None,
        });
        let (choice, drawn, stake, recorded_win, game, version) = recorded.expect("a GamePlayed event");
        assert_eq!((game, version), (GameKind::Roulette, 1));
        // Replay: the record alone gives the win again.
        assert_eq!(games::settle(&choice, &drawn, stake.minor()), Some(recorded_win.minor()));
        assert!(games::describe(&choice, &drawn).contains(&pocket.to_string()));
    }
    assert_eq!(world.cash(1), cash);
    // The same request again is a replay: nothing moves.
    let again = play(&mut world, 1, session, "p0", 100, Choice::Roulette(RouletteBet::Red), false);
    assert!(replayed(&again), "{again:?}");
    assert_eq!(world.cash(1), cash);
    // A rollback or a win naming a played round is refused: it is settled.
    assert_eq!(rejected(world.rollback(1, "rb", "p1")), Rejection::BetAlreadySettled);
    assert_eq!(rejected(world.win(1, "w", "p1", 10, true)), Rejection::RoundClosed);
}

#[test]
fn games_are_refused_with_their_own_codes() {
    let mut world = World::new();
    world.funded(1, 10_000);
    let roulette = world.session_for(1, games::ROULETTE_ID, eur());
    let play = play();
    let red = Choice::Roulette(RouletteBet::Red);
    assert_eq!(rejected(play(&mut world, 1, roulette, "a", 100, red, false)), Rejection::RngNotSeeded);
    world.run(Command::Reseed { entropy: [1; 32] }).expect("reseeds");
    assert_eq!(rejected(play(&mut world, 1, roulette, "a", 100, red, true)), Rejection::FairSeedsMissing);
    assert_eq!(
        rejected(play(&mut world, 1, roulette, "a", 100, Choice::Roulette(RouletteBet::Split(3, 4)), false)),
        Rejection::InvalidChoice
    );
    assert_eq!(
        rejected(play(&mut world, 1, roulette, "a", 100, Choice::Dice(DiceBet { target: 5_000, over: false }), false)),
        Rejection::SessionGameMismatch
    );
    let slot = world.session_for(1, games::SLOT_ID, eur());
    assert_eq!(
        rejected(play(&mut world, 1, slot, "a", 30, Choice::Slot, false)),
        Rejection::InvalidChoice,
        "a slot stake is a multiple of 20"
    );
    let provider = world.session(1); // game "slot" is a provider's, not built in
    assert_eq!(rejected(play(&mut world, 1, provider, "a", 100, red, false)), Rejection::UnknownGame);
    assert_eq!(rejected(play(&mut world, 1, roulette, "a", 100_000, red, false)), Rejection::InsufficientFunds);
    assert_eq!(rejected(play(&mut world, 1, roulette, "a", -1, red, false)), Rejection::NegativeAmount);
    assert_eq!(world.cash(1), 10_000);
}

fn replica_commands() -> Vec<Command> {
    let player = |action| Command::Player { operator: OPERATOR, player: PlayerId(1), action };
    let mut commands = vec![
        Command::ConfigureOperator(operator_config(OPERATOR, false)),
        Command::Reseed { entropy: [9; 32] },
        player(Action::CreateWallet),
        player(Action::Deposit { tx: tx("d"), currency: eur(), amount: Amount(1_000_000) }),
        player(Action::OpenSession { game: game(games::SLOT_ID), currency: eur(), duration_ms: HOUR_MS, locale: None }),
    ];
    let session = SessionId(u64::from(7u32) << 40);
    for round in 0..300 {
        commands.push(player(Action::Play {
            tx: tx(&format!("s{round}")),
            session,
            currency: eur(),
            stake: Amount(100),
            choice: Choice::Slot,
            fair: false,
        }));
    }
    commands
}

fn run_all(shard: &mut Shard, commands: &[Command]) -> Vec<engine::Outcome> {
    let mut events = Vec::new();
    commands
        .iter()
        .enumerate()
        .map(|(at, command)| shard.apply(Context { index: at as u64 + 1, timestamp_ms: START_MS }, command, &mut events))
        .collect()
}

#[test]
fn replicas_fed_the_same_commands_draw_the_same_outcomes() {
    let commands = replica_commands();
    let mut a = Shard::new(ShardConfig::new(7));
    let mut b = Shard::with_residency(ShardConfig::new(7), Residency { resident_wallets_max: 1 });
    let outcomes_a = run_all(&mut a, &commands);
    let outcomes_b = run_all(&mut b, &commands);
    assert_eq!(outcomes_a, outcomes_b);
    assert!(outcomes_a.iter().filter(|o| matches!(o, Ok(Reply::Played { .. }))).count() == 300);
    assert_eq!(a.snapshot(), b.snapshot());
    // A replica restored midway draws the rest identically.
    let mut c = Shard::new(ShardConfig::new(7));
    run_all(&mut c, &commands[..150]);
    let mut restored = Shard::restore(&c.snapshot(), Residency::default()).expect("restores");
    let mut events = Vec::new();
    for (at, command) in commands.iter().enumerate().skip(150) {
        let outcome = restored.apply(Context { index: at as u64 + 1, timestamp_ms: START_MS }, command, &mut events);
        assert_eq!(outcome, outcomes_a[at], "command {at} after restore");
    }
    assert_eq!(restored.snapshot(), a.snapshot());
}

#[test]
fn a_reseed_changes_future_outcomes() {
    let commands = replica_commands();
    let mut plain = Shard::new(ShardConfig::new(7));
    let plain_outcomes = run_all(&mut plain, &commands);
    let mut reseeded = Shard::new(ShardConfig::new(7));
    let mut with_reseed = commands.clone();
    with_reseed.insert(5, Command::Reseed { entropy: [10; 32] });
    let reseeded_outcomes = run_all(&mut reseeded, &with_reseed);
    let draws = |outcomes: &[engine::Outcome]| -> Vec<Drawn> {
        outcomes.iter().filter_map(|o| if let Ok(Reply::Played { drawn, .. }) = o { Some(drawn.clone()) } else { None }).collect()
    };
    let (a, b) = (draws(&plain_outcomes), draws(&reseeded_outcomes));
    assert_eq!(a.len(), 300);
    assert_eq!(b.len(), 300);
    let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    // Two independent streams agree on a slot outcome rarely (the most
    // likely outcome has probability far below 5%).
    assert!(same < 30, "{same} of 300 outcomes unchanged by the reseed");
}

#[test]
fn provably_fair_rounds_verify_from_the_revealed_seed_and_tampered_ones_do_not() {
    let mut world = seeded_world();
    world.funded(1, 1_000_000);
    let session = world.session_for(1, games::DICE_ID, eur());
    let client = ExternalId::new("my-lucky-seed").expect("valid");
    let Ok(Reply::Seeds { revealed: None, server_seed_hash: shown_hash, nonce: 0, .. }) =
        world.act(1, Action::RotateSeeds { client_seed: client })
    else {
        panic!("seeds set")
    };
    let bet = Choice::Dice(DiceBet { target: 4_000, over: true });
    let play = play();
    let mut recorded = Vec::new();
    for round in 0..50 {
        world.events.clear();
        let Ok(Reply::Played { drawn, win, .. }) = play(&mut world, 1, session, &format!("f{round}"), 100, bet, true) else {
            panic!("plays")
        };
        let fair =
            world.events.iter().find_map(|e| if let Event::GamePlayed { fair, .. } = e { *fair } else { None }).expect("fair record");
        assert_eq!(fair, (round, shown_hash), "nonce and the hash shown before play");
        recorded.push((drawn, win));
    }
    let Ok(Reply::Seeds { revealed: Some(server_seed), .. }) = world.act(1, Action::RotateSeeds { client_seed: client }) else {
        panic!("rotates")
    };
    assert_eq!(server_seed_hash(&server_seed), shown_hash, "the revealed seed matches the hash shown before play");
    for (nonce, (drawn, win)) in recorded.iter().enumerate() {
        let mut draw = FairDraw::new(server_seed, client, nonce as u64);
        let again = games::draw(&bet, &mut draw);
        assert_eq!(&again, drawn, "round {nonce} verifies");
        assert_eq!(games::settle(&bet, &again, 100), Some(win.minor()));
    }
    // A tampered seed neither matches the hash nor reproduces the rounds.
    let mut tampered = server_seed;
    tampered[0] ^= 1;
    assert_ne!(server_seed_hash(&tampered), shown_hash);
    let reproduced = recorded
        .iter()
        .enumerate()
        .filter(|(nonce, (drawn, _))| games::draw(&bet, &mut FairDraw::new(tampered, client, *nonce as u64)) == *drawn)
        .count();
    assert!(reproduced < 10, "{reproduced} of 50 rounds reproduced with a tampered seed");
}

#[test]
fn every_game_plays_through_the_shard_and_keeps_the_books() {
    let mut world = seeded_world();
    world.funded(1, 10_000_000);
    let cases = [
        (games::SLOT_ID, Choice::Slot, 100),
        (games::ROULETTE_ID, Choice::Roulette(RouletteBet::Straight(0)), 100),
        (games::DICE_ID, Choice::Dice(DiceBet { target: 100, over: false }), 100),
        (games::CRASH_ID, Choice::Crash { target: 1_000 }, 100),
    ];
    let play = play();
    for (game_id, choice, stake) in cases {
        let session = world.session_for(1, game_id, eur());
        for round in 0..300 {
            play(&mut world, 1, session, &format!("{game_id}-{round}"), stake, choice, false).expect("plays");
        }
        world.act(1, Action::CloseSession { session }).expect("closes");
    }
    // `check_invariants` ran after every apply (conservation among them).
    let totals = world.shard.ledger().get(eur());
    assert_eq!(totals.deposited, 10_000_000);
    assert_eq!(i128::from(world.cash(1)) + totals.house, 10_000_000);
}
