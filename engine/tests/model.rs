//! Property tests: random command sequences applied to the engine and to a
//! tiny reference model of its cash-pocket rules, compared after every
//! step; `check_invariants()` runs after every apply (in the harness).
//! Small id pools make replays, conflicts and out-of-order references
//! common. A second property checks determinism: shards that apply the same
//! commands, whatever their residency, snapshot to the same bytes, and a
//! restored shard goes on exactly like the original.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use engine::{Action, Amount, Command, Context, PlayerId, Rejection, Reply, Residency, Shard, ShardConfig};
use proptest::prelude::*;
use support::*;

/// Which bet a win or rollback names: most often one of the player's open
/// bets (resolved against the model when the op runs), else any pool id.
#[derive(Clone, Copy, Debug)]
enum Target {
    Open(u8),
    Pool(u8),
}

#[derive(Clone, Debug)]
enum Op {
    Deposit {
        player: u64,
        tx: u8,
        amount: i64,
    },
    Withdraw {
        player: u64,
        tx: u8,
        amount: i64,
    },
    Bet {
        player: u64,
        tx: u8,
        round: u8,
        amount: i64,
    },
    Win {
        player: u64,
        tx: u8,
        bet: Target,
        amount: i64,
        close: bool,
    },
    Rollback {
        player: u64,
        tx: u8,
        bet: Target,
    },
    /// A seamless-wallet payout naming only the round.
    Payout {
        player: u64,
        tx: u8,
        round: u8,
        amount: i64,
        close: bool,
    },
    CloseRound {
        player: u64,
        round: u8,
    },
    Advance {
        minutes: u8,
    },
}

const PLAYERS: u64 = 3;
const TX_POOL: u8 = 40;
const ROUND_POOL: u8 = 5;
/// The setup deposit's id, outside the generated pool.
const SEED_TX: u8 = 255;

fn amount() -> impl Strategy<Value = i64> {
    prop_oneof![8 => 1i64..2_000, 1 => Just(0i64), 1 => -5i64..0]
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![4 => any::<u8>().prop_map(Target::Open), 1 => (0..TX_POOL).prop_map(Target::Pool)]
}

fn op() -> impl Strategy<Value = Op> {
    let player = 1..=PLAYERS;
    let tx = 0..TX_POOL;
    let round = 0..ROUND_POOL;
    prop_oneof![
        2 => (player.clone(), tx.clone(), amount()).prop_map(|(player, tx, amount)| Op::Deposit { player, tx, amount }),
        1 => (player.clone(), tx.clone(), amount()).prop_map(|(player, tx, amount)| Op::Withdraw { player, tx, amount }),
        5 => (player.clone(), tx.clone(), round.clone(), amount()).prop_map(|(player, tx, round, amount)| Op::Bet { player, tx, round, amount }),
        4 => (player.clone(), tx.clone(), target(), amount(), any::<bool>())
            .prop_map(|(player, tx, bet, amount, close)| Op::Win { player, tx, bet, amount: amount.max(0), close }),
        2 => (player.clone(), tx.clone(), target()).prop_map(|(player, tx, bet)| Op::Rollback { player, tx, bet }),
        3 => (player.clone(), tx.clone(), round.clone(), amount(), any::<bool>())
            .prop_map(|(player, tx, round, amount, close)| Op::Payout { player, tx, round, amount: amount.max(0), close }),
        1 => (player, round).prop_map(|(player, round)| Op::CloseRound { player, round }),
        1 => (0u8..30).prop_map(|minutes| Op::Advance { minutes }),
    ]
}

fn tx_name(tx: u8) -> String {
    if tx == SEED_TX {
        return "seed".to_string();
    }
    format!("t{tx}")
}
fn round_name(round: u8) -> String {
    format!("r{round}")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Deposit,
    Withdraw,
    Bet,
    Win,
    Rollback,
    Payout,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BetState {
    Open,
    Settled,
    RolledBack,
    InAdvance,
}

#[derive(Clone, Debug)]
struct Record {
    kind: Kind,
    params: (i64, u8, bool),
    cash_after: i64,
    bet_found: bool,
    bet_state: Option<BetState>,
}

#[derive(Clone, Debug)]
struct OpenBet {
    tx: u8,
    round: u8,
    stake: i64,
    won: i64,
    /// A win of any amount (zero included) was credited.
    paid: bool,
}

/// The reference: one cash pocket per player, the rules written plainly.
#[derive(Default, Debug)]
struct Model {
    cash: BTreeMap<u64, i64>,
    records: BTreeMap<(u64, u8), Record>,
    open: BTreeMap<u64, Vec<OpenBet>>,
    closed_rounds: BTreeSet<(u64, u8)>,
    /// Rounds whose bets were all rolled back (until a new bet settles them).
    cancelled_rounds: BTreeSet<(u64, u8)>,
}

/// What the model expects: a rejection, or success with the cash after
/// and whether it was a replay.
#[derive(Debug, PartialEq, Eq)]
enum Expect {
    Refused(Rejection),
    Applied { cash: i64, replayed: bool, bet_found: bool },
    Done,
}

impl Model {
    /// Turns `Target::Open` into the id of one of the player's open bets.
    fn resolve(&self, op: &Op) -> Op {
        let pick = |player: u64, target: Target| match target {
            Target::Pool(id) => Target::Pool(id),
            Target::Open(k) => match self.open.get(&player).filter(|open| !open.is_empty()) {
                Some(open) => Target::Pool(open[usize::from(k) % open.len()].tx),
                None => Target::Pool(k % TX_POOL),
            },
        };
        match op.clone() {
            Op::Win { player, tx, bet, amount, close } => Op::Win { player, tx, bet: pick(player, bet), amount, close },
            Op::Rollback { player, tx, bet } => Op::Rollback { player, tx, bet: pick(player, bet) },
            other => other,
        }
    }

    fn replay(&self, player: u64, tx: u8, kind: Kind, params: (i64, u8, bool)) -> Option<Expect> {
        let record = self.records.get(&(player, tx))?;
        if record.bet_state == Some(BetState::InAdvance) {
            return Some(Expect::Refused(if kind == Kind::Bet { Rejection::BetRolledBackInAdvance } else { Rejection::TxConflict }));
        }
        if record.kind != kind || record.params != params {
            return Some(Expect::Refused(Rejection::TxConflict));
        }
        Some(Expect::Applied { cash: record.cash_after, replayed: true, bet_found: record.bet_found })
    }

    fn validate(amount: i64, zero_ok: bool) -> Result<(), Rejection> {
        if amount < 0 {
            Err(Rejection::NegativeAmount)
        } else if amount == 0 && !zero_ok {
            Err(Rejection::ZeroAmount)
        } else {
            Ok(())
        }
    }

    fn record(&mut self, player: u64, tx: u8, kind: Kind, params: (i64, u8, bool), bet_found: bool, bet_state: Option<BetState>) -> Expect {
        let cash = self.cash[&player];
        self.records.insert((player, tx), Record { kind, params, cash_after: cash, bet_found, bet_state });
        Expect::Applied { cash, replayed: false, bet_found }
    }

    fn settle(&mut self, player: u64, round: u8) -> bool {
        let open = self.open.entry(player).or_default();
        let settled: Vec<OpenBet> = open.iter().filter(|b| b.round == round).cloned().collect();
        open.retain(|b| b.round != round);
        for bet in &settled {
            self.records.get_mut(&(player, bet.tx)).expect("open bet recorded").bet_state = Some(BetState::Settled);
        }
        if !settled.is_empty() {
            self.closed_rounds.insert((player, round));
            self.cancelled_rounds.remove(&(player, round));
        }
        !settled.is_empty()
    }

    fn ended_refusal(&self, player: u64, bet: u8, for_win: bool) -> Rejection {
        let Some(record) = self.records.get(&(player, bet)) else {
            return Rejection::BetNotFound;
        };
        match (record.bet_state, for_win) {
            (None, _) => Rejection::NotABet,
            (Some(BetState::Settled), true) => Rejection::RoundClosed,
            (Some(BetState::Settled), false) => Rejection::BetAlreadySettled,
            (Some(BetState::RolledBack | BetState::InAdvance), true) => Rejection::WinOnRolledBackBet,
            (Some(BetState::RolledBack | BetState::InAdvance), false) => Rejection::BetAlreadyRolledBack,
            (Some(BetState::Open), _) => unreachable!("open bets are in the open list"),
        }
    }

    fn apply(&mut self, op: &Op) -> Expect {
        match *op {
            Op::Advance { .. } => Expect::Done,
            Op::Deposit { player, tx, amount } => {
                if let Err(r) = Self::validate(amount, false) {
                    return Expect::Refused(r);
                }
                if let Some(e) = self.replay(player, tx, Kind::Deposit, (amount, 0, false)) {
                    return e;
                }
                *self.cash.get_mut(&player).expect("player") += amount;
                self.record(player, tx, Kind::Deposit, (amount, 0, false), false, None)
            }
            Op::Withdraw { player, tx, amount } => {
                if let Err(r) = Self::validate(amount, false) {
                    return Expect::Refused(r);
                }
                if let Some(e) = self.replay(player, tx, Kind::Withdraw, (amount, 0, false)) {
                    return e;
                }
                if self.cash[&player] < amount {
                    return Expect::Refused(Rejection::InsufficientFunds);
                }
                *self.cash.get_mut(&player).expect("player") -= amount;
                self.record(player, tx, Kind::Withdraw, (amount, 0, false), false, None)
            }
            Op::Bet { player, tx, round, amount } => {
                if let Err(r) = Self::validate(amount, false) {
                    return Expect::Refused(r);
                }
                if let Some(e) = self.replay(player, tx, Kind::Bet, (amount, round, false)) {
                    return e;
                }
                if self.closed_rounds.contains(&(player, round)) {
                    return Expect::Refused(Rejection::RoundClosed);
                }
                if self.cash[&player] < amount {
                    return Expect::Refused(Rejection::InsufficientFunds);
                }
                *self.cash.get_mut(&player).expect("player") -= amount;
                self.open.entry(player).or_default().push(OpenBet { tx, round, stake: amount, won: 0, paid: false });
                self.record(player, tx, Kind::Bet, (amount, round, false), false, Some(BetState::Open))
            }
            Op::Win { player, tx, bet, amount, close } => {
                let Target::Pool(bet) = bet else { unreachable!("resolved") };
                if let Err(r) = Self::validate(amount, true) {
                    return Expect::Refused(r);
                }
                if let Some(e) = self.replay(player, tx, Kind::Win, (amount, bet, close)) {
                    return e;
                }
                let open = self.open.entry(player).or_default();
                let Some(at) = open.iter().position(|b| b.tx == bet) else {
                    return Expect::Refused(self.ended_refusal(player, bet, true));
                };
                open[at].won += amount;
                open[at].paid = true;
                let round = open[at].round;
                *self.cash.get_mut(&player).expect("player") += amount;
                if close {
                    self.settle(player, round);
                }
                self.record(player, tx, Kind::Win, (amount, bet, close), false, None)
            }
            Op::Rollback { player, tx, bet } => {
                let Target::Pool(bet) = bet else { unreachable!("resolved") };
                if let Some(e) = self.replay(player, tx, Kind::Rollback, (0, bet, false)) {
                    return e;
                }
                if tx == bet {
                    return Expect::Refused(Rejection::TxConflict);
                }
                let open = self.open.entry(player).or_default();
                let Some(at) = open.iter().position(|b| b.tx == bet) else {
                    if self.records.contains_key(&(player, bet)) {
                        return Expect::Refused(self.ended_refusal(player, bet, false));
                    }
                    let cash = self.cash[&player];
                    self.records.insert(
                        (player, bet),
                        Record {
                            kind: Kind::Bet,
                            params: (-1, 0, false),
                            cash_after: cash,
                            bet_found: false,
                            bet_state: Some(BetState::InAdvance),
                        },
                    );
                    return self.record(player, tx, Kind::Rollback, (0, bet, false), false, None);
                };
                if open[at].paid {
                    return Expect::Refused(Rejection::BetAlreadySettled);
                }
                let refunded = open.remove(at);
                if !open.iter().any(|b| b.round == refunded.round) {
                    self.cancelled_rounds.insert((player, refunded.round));
                }
                *self.cash.get_mut(&player).expect("player") += refunded.stake;
                self.records.get_mut(&(player, bet)).expect("bet").bet_state = Some(BetState::RolledBack);
                self.record(player, tx, Kind::Rollback, (0, bet, false), true, None)
            }
            Op::Payout { player, tx, round, amount, close } => {
                if let Err(r) = Self::validate(amount, true) {
                    return Expect::Refused(r);
                }
                if let Some(e) = self.replay(player, tx, Kind::Payout, (amount, round, close)) {
                    return e;
                }
                let open = self.open.entry(player).or_default();
                let Some(at) = open.iter().position(|b| b.round == round) else {
                    return Expect::Refused(if self.closed_rounds.contains(&(player, round)) {
                        Rejection::RoundClosed
                    } else if self.cancelled_rounds.contains(&(player, round)) {
                        Rejection::WinOnRolledBackBet
                    } else {
                        Rejection::RoundNotFound
                    });
                };
                open[at].won += amount;
                open[at].paid = true;
                *self.cash.get_mut(&player).expect("player") += amount;
                if close {
                    self.settle(player, round);
                }
                self.record(player, tx, Kind::Payout, (amount, round, close), false, None)
            }
            Op::CloseRound { player, round } => {
                if self.settle(player, round) || self.closed_rounds.contains(&(player, round)) {
                    Expect::Done
                } else {
                    Expect::Refused(Rejection::RoundNotFound)
                }
            }
        }
    }
}

fn action(op: &Op) -> Option<(u64, Action)> {
    let eur = eur();
    Some(match *op {
        Op::Advance { .. } => return None,
        Op::Deposit { player, tx: t, amount } => (player, Action::Deposit { tx: tx(&tx_name(t)), currency: eur, amount: Amount(amount) }),
        Op::Withdraw { player, tx: t, amount } => (player, Action::Withdraw { tx: tx(&tx_name(t)), currency: eur, amount: Amount(amount) }),
        Op::Bet { player, tx: t, round: r, amount } => (
            player,
            Action::Bet {
                tx: tx(&tx_name(t)),
                session: engine::SessionId(0),
                round: round(&round_name(r)),
                game: Some(game("slot")),
                currency: eur,
                stake: auto(amount),
                alias: None,
            },
        ),
        Op::Win { player, tx: t, bet: Target::Pool(bet), amount, close } => {
            (player, Action::Win { tx: tx(&tx_name(t)), bet: tx(&tx_name(bet)), amount: auto(amount), close_round: close })
        }
        Op::Rollback { player, tx: t, bet: Target::Pool(bet) } => {
            (player, Action::Rollback { tx: tx(&tx_name(t)), bet: tx(&tx_name(bet)), currency: eur })
        }
        Op::Payout { player, tx: t, round: r, amount, close } => (
            player,
            Action::Payout {
                tx: tx(&tx_name(t)),
                round: Some(round(&round_name(r))),
                game: Some(game("slot")),
                currency: eur,
                bet: None,
                amount: auto(amount),
                close_round: close,
                award: false,
                claim: false,
            },
        ),
        Op::CloseRound { player, round: r } => (player, Action::CloseRound { round: round(&round_name(r)) }),
        Op::Win { bet: Target::Open(_), .. } | Op::Rollback { bet: Target::Open(_), .. } => unreachable!("resolve targets first"),
    })
}

/// A world with `PLAYERS` funded players and a long session each; returns
/// the session ids so bets can use them.
fn setup() -> (World, Model, BTreeMap<u64, engine::SessionId>) {
    let mut world = World::new();
    let mut model = Model::default();
    let mut sessions = BTreeMap::new();
    for player in 1..=PLAYERS {
        world.act(player, Action::CreateWallet).expect("create");
        let session =
            match world.act(player, Action::OpenSession { game: game("slot"), currency: eur(), duration_ms: 7 * DAY_MS, locale: None }) {
                Ok(Reply::SessionOpened { session, .. }) => session,
                other => panic!("{other:?}"),
            };
        sessions.insert(player, session);
        world.act(player, Action::Deposit { tx: tx("seed"), currency: eur(), amount: Amount(5_000) }).expect("seed deposit");
        model.cash.insert(player, 5_000);
        model.records.insert(
            (player, SEED_TX),
            Record { kind: Kind::Deposit, params: (5_000, 0, false), cash_after: 5_000, bet_found: false, bet_state: None },
        );
    }
    (world, model, sessions)
}

impl Model {
    /// Applies `op` (not an advance) to the model and returns the shard's
    /// command for it, in the player's session.
    fn step(&mut self, op: &Op, sessions: &BTreeMap<u64, engine::SessionId>) -> Command {
        let op = &self.resolve(op);
        self.apply(op);
        let (player, action) = action(op).expect("not an advance");
        Command::Player { operator: OPERATOR, player: PlayerId(player), action: with_session(action, sessions[&player]) }
    }
}

fn with_session(action: Action, session: engine::SessionId) -> Action {
    match action {
        Action::Bet { tx, round, game, currency, stake, alias, .. } => Action::Bet { tx, session, round, game, currency, stake, alias },
        other => other,
    }
}

fn observe(outcome: &engine::Outcome) -> Expect {
    match outcome {
        Err(rejection) => Expect::Refused(*rejection),
        Ok(Reply::Tx(reply)) => {
            Expect::Applied { cash: reply.balance.cash.minor() as i64, replayed: reply.replayed, bet_found: reply.bet_found }
        }
        Ok(Reply::Done) => Expect::Done,
        Ok(other) => panic!("unexpected reply {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, max_shrink_iters: 2_000, .. ProptestConfig::default() })]

    #[test]
    fn engine_agrees_with_the_reference_model(ops in proptest::collection::vec(op(), 1..120)) {
        let (mut world, mut model, sessions) = setup();
        for (step, op) in ops.iter().enumerate() {
            if let Op::Advance { minutes } = op {
                world.advance(u64::from(*minutes) * 60_000);
                continue;
            }
            let op = &model.resolve(op);
            let (player, action) = action(op).expect("not an advance");
            let action = with_session(action, sessions[&player]);
            let before = world.shard.snapshot();
            let outcome = world.act(player, action.clone());
            let expected = model.apply(op);
            let actual = observe(&outcome);
            prop_assert_eq!(&actual, &expected, "step {} {:?}", step, op);
            prop_assert_eq!(world.cash(player), model.cash[&player], "cash after step {} {:?}", step, op);
            // A refusal or a replay changes nothing at all (the clock and
            // applied index aside, which the snapshot includes, so compare
            // the wallet instead).
            if matches!(expected, Expect::Refused(_)) || replayed(&outcome) {
                let restored = Shard::restore(&before, Residency::default()).expect("snapshot restores");
                prop_assert_eq!(restored.wallet(PlayerId(player)), world.shard.wallet(PlayerId(player)), "refusal or replay changed the wallet at step {}", step);
                prop_assert_eq!(restored.index_len(), world.shard.index_len());
            }
            // Replaying the same command now is a replay or the same refusal.
            let again = world.act(player, action);
            match &expected {
                Expect::Applied { cash, bet_found, .. } => {
                    let replay = Expect::Applied { cash: *cash, replayed: true, bet_found: *bet_found };
                    prop_assert_eq!(observe(&again), replay, "replay at step {}", step);
                }
                Expect::Refused(_) | Expect::Done => {}
            }
            prop_assert_eq!(world.cash(player), model.cash[&player], "replay moved money at step {}", step);
        }
    }

    #[test]
    fn replicas_agree_byte_for_byte_whatever_their_residency(ops in proptest::collection::vec(op(), 1..150)) {
        let config = ShardConfig { tx_retention_count: 16, ..ShardConfig::new(3) };
        let mut replicas = [
            Shard::with_residency(config, Residency::default()),
            Shard::with_residency(config, Residency { resident_wallets_max: 1 }),
        ];
        let mut events = [Vec::new(), Vec::new()];
        let mut now_ms = START_MS;
        let mut index = 0;
        let run = |replicas: &mut [Shard; 2], events: &mut [Vec<engine::Event>; 2], command: Command, now_ms: u64, index: &mut u64| {
            *index += 1;
            let ctx = Context { index: *index, timestamp_ms: now_ms };
            let a = replicas[0].apply(ctx, &command, &mut events[0]);
            let b = replicas[1].apply(ctx, &command, &mut events[1]);
            assert_eq!(a, b, "replicas replied differently to {command:?}");
            a
        };
        run(&mut replicas, &mut events, Command::ConfigureOperator(operator_config(OPERATOR, false)), now_ms, &mut index).expect("configures");
        let mut sessions = BTreeMap::new();
        for player in 1..=PLAYERS {
            run(&mut replicas, &mut events, Command::Player { operator: OPERATOR, player: PlayerId(player), action: Action::CreateWallet }, now_ms, &mut index).expect("creates");
            let open = Command::Player { operator: OPERATOR, player: PlayerId(player), action: Action::OpenSession { game: game("slot"), currency: eur(), duration_ms: 7 * DAY_MS, locale: None } };
            index += 1;
            let ctx = Context { index, timestamp_ms: now_ms };
            let session = replicas[0].apply(ctx, &open, &mut events[0]);
            prop_assert_eq!(&session, &replicas[1].apply(ctx, &open, &mut events[1]));
            if let Ok(Reply::SessionOpened { session, .. }) = session { sessions.insert(player, session); }
        }
        let mut model = Model::default();
        for player in 1..=PLAYERS {
            model.cash.insert(player, 0);
        }
        let mut restored_midway: Option<Shard> = None;
        for (step, op) in ops.iter().enumerate() {
            if let Op::Advance { minutes } = op {
                now_ms += u64::from(*minutes) * 60_000;
                continue;
            }
            let command = model.step(op, &sessions);
            let replied = run(&mut replicas, &mut events, command.clone(), now_ms, &mut index);
            if let Some(restored) = restored_midway.as_mut() {
                let mut sink = Vec::new();
                let again = restored.apply(Context { index, timestamp_ms: now_ms }, &command, &mut sink);
                prop_assert_eq!(again, replied, "restored shard replied differently at step {}", step);
            }
            if step == ops.len() / 2 {
                restored_midway = Some(Shard::restore(&replicas[1].snapshot(), Residency::default()).expect("restores"));
            }
        }
        prop_assert_eq!(&events[0], &events[1]);
        let snapshot = replicas[0].snapshot();
        prop_assert!(snapshot == replicas[1].snapshot(), "snapshots differ between residencies");
        if let Some(restored) = restored_midway {
            restored.check_invariants();
            prop_assert!(snapshot == restored.snapshot(), "a restored shard diverged");
        }
        let restored = Shard::restore(&snapshot, Residency::default()).expect("restores");
        prop_assert!(snapshot == restored.snapshot(), "restore is not the inverse of snapshot");
        replicas[0].check_invariants();
        replicas[1].check_invariants();
    }

    /// A batch replies, emits and ends as its commands applied one at a
    /// time do: the batch's prefetch pipeline (which runs ahead of the
    /// command applying) changes nothing, whether the wallets are resident
    /// or passive and whether later commands create or touch them first.
    #[test]
    fn a_batch_applies_as_its_commands_one_by_one(ops in proptest::collection::vec(op(), 1..150), residency in 1usize..4) {
        let config = ShardConfig { tx_retention_count: 16, ..ShardConfig::new(3) };
        let mut single = Shard::with_residency(config, Residency::default());
        let mut batched = Shard::with_residency(config, Residency { resident_wallets_max: residency });
        let (mut single_events, mut batched_events) = (Vec::new(), Vec::new());
        let (mut single_index, mut batched_index) = (0, 0);
        let mut now_ms = START_MS;
        // Set up without sessions first, so that session ids come out alike.
        let mut setup = vec![Command::ConfigureOperator(operator_config(OPERATOR, false))];
        for player in 1..=PLAYERS {
            setup.push(Command::Player { operator: OPERATOR, player: PlayerId(player), action: Action::CreateWallet });
            setup.push(Command::Player { operator: OPERATOR, player: PlayerId(player), action: Action::OpenSession { game: game("slot"), currency: eur(), duration_ms: 7 * DAY_MS, locale: None } });
        }
        let mut sessions = BTreeMap::new();
        for command in &setup {
            single_index += 1;
            let outcome = single.apply(Context { index: single_index, timestamp_ms: now_ms }, command, &mut single_events);
            if let (Command::Player { player, .. }, Ok(Reply::SessionOpened { session, .. })) = (command, &outcome) {
                sessions.insert(player.0, *session);
            }
        }
        batched_index += 1;
        let mut batched_outcomes = Vec::new();
        batched.apply_batch(Context { index: batched_index, timestamp_ms: now_ms }, &setup, &mut batched_outcomes, &mut batched_events);
        // The rest in batches that end where the clock moves.
        let mut model = Model::default();
        for player in 1..=PLAYERS {
            model.cash.insert(player, 0);
        }
        let mut batch: Vec<Command> = Vec::new();
        let mut single_outcomes = Vec::new();
        let flush = |batch: &mut Vec<Command>, now_ms: u64, batched: &mut Shard, outcomes: &mut Vec<engine::Outcome>, events: &mut Vec<engine::Event>, index: &mut u64| {
            if !batch.is_empty() {
                *index += 1;
                batched.apply_batch(Context { index: *index, timestamp_ms: now_ms }, batch, outcomes, events);
                batch.clear();
            }
        };
        for op in &ops {
            if let Op::Advance { minutes } = op {
                flush(&mut batch, now_ms, &mut batched, &mut batched_outcomes, &mut batched_events, &mut batched_index);
                now_ms += u64::from(*minutes) * 60_000;
                continue;
            }
            let command = model.step(op, &sessions);
            single_index += 1;
            single_outcomes.push(single.apply(Context { index: single_index, timestamp_ms: now_ms }, &command, &mut single_events));
            batch.push(command);
        }
        flush(&mut batch, now_ms, &mut batched, &mut batched_outcomes, &mut batched_events, &mut batched_index);
        prop_assert_eq!(&batched_outcomes[setup.len()..], &single_outcomes[..]);
        prop_assert_eq!(&batched_events, &single_events);
        for player in 1..=PLAYERS {
            prop_assert_eq!(batched.wallet(PlayerId(player)), single.wallet(PlayerId(player)), "player {}", player);
        }
        prop_assert_eq!(batched.index_len(), single.index_len());
        batched.check_invariants();
        single.check_invariants();
    }

    /// `Shard::read` (what a replicated node serves at a read index, never
    /// logged) answers exactly what applying the read would: for every
    /// player, passive or resident, known or not, of this operator or
    /// another, in a currency the operator has or not, bonuses expired or not.
    #[test]
    fn a_read_answers_what_applying_it_would(ops in proptest::collection::vec(op(), 1..80)) {
        let mut shard = Shard::with_residency(ShardConfig::new(3), Residency { resident_wallets_max: 1 });
        let mut events = Vec::new();
        let mut now_ms = START_MS;
        let mut apply = |shard: &mut Shard, command: &Command, now_ms: u64| {
            let index = shard.applied_index() + 1;
            shard.apply(Context { index, timestamp_ms: now_ms }, command, &mut events)
        };
        apply(&mut shard, &Command::ConfigureOperator(operator_config(OPERATOR, false)), now_ms).expect("configures");
        let other = engine::OperatorId(OPERATOR.0 + 1);
        apply(&mut shard, &Command::ConfigureOperator(operator_config(other, false)), now_ms).expect("configures");
        let mut sessions = BTreeMap::new();
        for player in 1..=PLAYERS {
            apply(&mut shard, &Command::Player { operator: OPERATOR, player: PlayerId(player), action: Action::CreateWallet }, now_ms).expect("creates");
            let open = Action::OpenSession { game: game("slot"), currency: eur(), duration_ms: 7 * DAY_MS, locale: None };
            if let Ok(Reply::SessionOpened { session, .. }) = apply(&mut shard, &Command::Player { operator: OPERATOR, player: PlayerId(player), action: open }, now_ms) {
                sessions.insert(player, session);
            }
        }
        let mut model = Model::default();
        for player in 1..=PLAYERS {
            model.cash.insert(player, 0);
        }
        let usd = engine::Currency::new("USD").expect("valid");
        let jpy = engine::Currency::new("JPY").expect("valid");
        for op in &ops {
            if let Op::Advance { minutes } = op {
                now_ms += u64::from(*minutes) * 60_000;
            } else {
                let op = &model.resolve(op);
                model.apply(op);
                let (player, action) = action(op).expect("not an advance");
                // Accepted or refused: the reads below check either state.
                let _ = apply(&mut shard, &Command::Player { operator: OPERATOR, player: PlayerId(player), action: with_session(action, sessions[&player]) }, now_ms);
            }
            for player in (1..=PLAYERS + 1).map(PlayerId) {
                for operator in [OPERATOR, other] {
                    for currency in [eur(), usd, jpy] {
                        let read = Command::Player { operator, player, action: Action::Balance { currency } };
                        let answered = shard.read(&read);
                        prop_assert!(Shard::is_read(&read));
                        let mut copy = Shard::restore(&shard.snapshot(), Residency::default()).expect("restores");
                        let applied = copy.apply(Context { index: shard.applied_index() + 1, timestamp_ms: now_ms }, &read, &mut Vec::new());
                        prop_assert_eq!(answered, Some(applied), "a read of {:?} in {:?} for {:?}", player, currency, operator);
                    }
                }
            }
        }
        let deposit = Command::Player { operator: OPERATOR, player: PlayerId(1), action: Action::Deposit { tx: engine::TxId::new("x").expect("valid"), currency: eur(), amount: Amount(1) } };
        prop_assert_eq!(shard.read(&deposit), None, "a write is not a read");
        prop_assert!(!Shard::is_read(&deposit));
    }
}
