//! Test harness: a shard with a clock the test controls, helpers that build
//! commands, and `check_invariants()` after every apply.
#![allow(dead_code)]

use engine::{
    Action, Amount, Balance, Command, Context, Currency, CurrencySpec, Event, GameId, OperatorConfig, OperatorId, Outcome, PlayerId,
    Rejection, Reply, RoundId, SessionId, Shard, ShardConfig, Stake, TxId, LIMIT_INCREASE_DELAY_DEFAULT_MS,
};

pub const HOUR_MS: u64 = 60 * 60 * 1000;
pub const DAY_MS: u64 = 24 * HOUR_MS;
/// 2026-11-24 12:00 UTC, a Tuesday.
pub const START_MS: u64 = 1_795_521_600_000;

pub const OPERATOR: OperatorId = OperatorId(1);
pub const OTHER_OPERATOR: OperatorId = OperatorId(2);
pub const SWEEPS_OPERATOR: OperatorId = OperatorId(3);

pub fn eur() -> Currency {
    Currency::new("EUR").expect("valid")
}
pub fn usd() -> Currency {
    Currency::new("USD").expect("valid")
}
pub fn tx(id: &str) -> TxId {
    TxId::new(id).expect("valid test id")
}
pub fn round(id: &str) -> RoundId {
    RoundId::new(id).expect("valid test id")
}
pub fn game(id: &str) -> GameId {
    GameId::new(id).expect("valid test id")
}
pub fn auto(minor: i64) -> Stake {
    Stake::Auto(Amount(minor))
}

pub fn operator_config(operator: OperatorId, sweepstakes: bool) -> OperatorConfig {
    let currencies = if sweepstakes {
        vec![CurrencySpec { currency: Currency::GOLD_COINS, scale: 2 }, CurrencySpec { currency: Currency::SWEEPS_COINS, scale: 2 }]
    } else {
        vec![CurrencySpec { currency: eur(), scale: 2 }, CurrencySpec { currency: usd(), scale: 2 }]
    };
    OperatorConfig {
        operator,
        sweepstakes,
        currencies,
        limit_increase_delay_ms: LIMIT_INCREASE_DELAY_DEFAULT_MS,
        redemption_min_minor: 1_000,
    }
}

pub struct World {
    pub shard: Shard,
    pub index: u64,
    pub now_ms: u64,
    pub events: Vec<Event>,
}

impl Default for World {
    fn default() -> Self {
        World::new()
    }
}

impl World {
    /// A shard with a standard operator (EUR, USD), a second standard
    /// operator and a sweepstakes operator (GC, SC) configured.
    pub fn new() -> World {
        World::with_config(ShardConfig::new(7))
    }

    pub fn with_config(config: ShardConfig) -> World {
        let mut world = World { shard: Shard::new(config), index: 0, now_ms: START_MS, events: Vec::new() };
        for (operator, sweepstakes) in [(OPERATOR, false), (OTHER_OPERATOR, false), (SWEEPS_OPERATOR, true)] {
            world.run(Command::ConfigureOperator(operator_config(operator, sweepstakes))).expect("operator configures");
        }
        world.events.clear();
        world
    }

    pub fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
    }

    pub fn run(&mut self, command: Command) -> Outcome {
        self.index += 1;
        let ctx = Context { index: self.index, timestamp_ms: self.now_ms };
        let outcome = self.shard.apply(ctx, &command, &mut self.events);
        self.shard.check_invariants();
        outcome
    }

    pub fn act_as(&mut self, operator: OperatorId, player: u64, action: Action) -> Outcome {
        self.run(Command::Player { operator, player: PlayerId(player), action })
    }

    pub fn act(&mut self, player: u64, action: Action) -> Outcome {
        self.act_as(OPERATOR, player, action)
    }

    /// Creates a wallet for `player` under `OPERATOR` and deposits `minor` EUR.
    pub fn funded(&mut self, player: u64, minor: i64) {
        self.act(player, Action::CreateWallet).expect("wallet created");
        if minor > 0 {
            self.deposit(player, &format!("dep-{player}"), minor).expect("deposit");
        }
    }

    pub fn deposit(&mut self, player: u64, id: &str, minor: i64) -> Outcome {
        self.act(player, Action::Deposit { tx: tx(id), currency: eur(), amount: Amount(minor) })
    }

    /// Opens a one-hour EUR session on game "slot" and returns its id.
    pub fn session(&mut self, player: u64) -> SessionId {
        self.session_for(player, "slot", eur())
    }

    pub fn session_for(&mut self, player: u64, game_id: &str, currency: Currency) -> SessionId {
        match self.act(player, Action::OpenSession { game: game(game_id), currency, duration_ms: HOUR_MS, locale: None }) {
            Ok(Reply::SessionOpened { session, .. }) => session,
            other => panic!("session did not open: {other:?}"),
        }
    }

    pub fn bet(&mut self, player: u64, session: SessionId, tx_id: &str, round_id: &str, minor: i64) -> Outcome {
        self.act(
            player,
            Action::Bet {
                tx: tx(tx_id),
                session,
                round: round(round_id),
                game: Some(game("slot")),
                currency: eur(),
                stake: auto(minor),
                alias: None,
            },
        )
    }

    pub fn win(&mut self, player: u64, tx_id: &str, bet_id: &str, minor: i64, close_round: bool) -> Outcome {
        self.act(player, Action::Win { tx: tx(tx_id), bet: tx(bet_id), amount: auto(minor), close_round })
    }

    pub fn rollback(&mut self, player: u64, tx_id: &str, bet_id: &str) -> Outcome {
        self.act(player, Action::Rollback { tx: tx(tx_id), bet: tx(bet_id), currency: eur() })
    }

    pub fn balance(&self, player: u64) -> Balance {
        self.shard.balance(PlayerId(player), eur()).expect("player exists")
    }

    pub fn cash(&self, player: u64) -> i64 {
        self.balance(player).cash.minor() as i64
    }
}

/// The rejection of an outcome, or a panic naming what came instead.
pub fn rejected(outcome: Outcome) -> Rejection {
    match outcome {
        Err(rejection) => rejection,
        Ok(reply) => panic!("expected a rejection, got {reply:?}"),
    }
}

/// The balance in a successful movement's reply.
pub fn replied_balance(outcome: &Outcome) -> Balance {
    outcome.as_ref().ok().and_then(Reply::balance).unwrap_or_else(|| panic!("expected a balance, got {outcome:?}"))
}

pub fn replayed(outcome: &Outcome) -> bool {
    matches!(outcome, Ok(Reply::Tx(reply)) if reply.replayed)
}

// ---- tables ---------------------------------------------------------------

pub trait Named {
    fn name(&self) -> &'static str;
}

pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<String>() {
        return text.clone();
    }
    if let Some(text) = payload.downcast_ref::<&str>() {
        return (*text).to_string();
    }
    "a panic without a message".to_string()
}

/// Runs every case, catching failures (an engine panic included) so that all
/// of them are reported together, each under its case name.
pub fn table<C: Named>(cases: &[C], run: fn(&C)) {
    let mut names = std::collections::HashSet::new();
    for case in cases {
        assert!(names.insert(case.name()), "case name {:?} appears twice in its table", case.name());
    }
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(case)))
                .err()
                .map(|payload| format!("  [{}] {}", case.name(), panic_text(&*payload)))
        })
        .collect();
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}
