//! The TCP target: a running `casino node`, over the binary protocol through
//! the client crate (`BlockingClient`), from many worker threads at once
//! (each holds a client per operator and waits for each reply, so the load
//! is closed-loop and paced to the scenario's arrival rate). The books come from the node's own
//! regulatory journal, read from its data folder when the run is over, and
//! every account's balance is asked of the node and compared with them.

use std::path::Path;

use casino_client::proto::{self, client_frame::Body as In, server_frame::Body as Out};
use casino_client::BlockingClient;
use engine::games::roulette::RouletteBet;
use engine::games::Choice;
use engine::{
    Action, Balance, Command, Currency, Event, Money, OperatorId, Outcome, PlayerId, Rejection, Reply, SessionId, Stake, TxReply,
};

use crate::books::Books;
use crate::inprocess::{check_balance, drive, summarize, Partition, Progress, Target};
use crate::report::Report;
use crate::scenario::Scenario;

/// The gateway refuses an expired session's token itself, before the engine.
const TOKEN_EXPIRED: u32 = 2006;

/// Where the node is and how to reach it.
#[derive(Clone, Debug)]
pub struct NodeAddress {
    pub address: String,
    /// The API keys of the standard operator (1) and the sweepstakes operator (2).
    pub standard_key: String,
    pub sweepstakes_key: String,
    /// An admin key, to ask the node to sweep its invariants at the end.
    pub admin_key: String,
    /// The node's data folder, whose journal gives the books.
    pub data_dir: std::path::PathBuf,
}

/// A node through the client crate's `BlockingClient`: one client per
/// operator (an API key is an operator) for each worker thread, each call
/// waiting for its reply (an overloaded shard is retried with the same ids).
#[derive(Debug)]
pub struct Tcp {
    standard: BlockingClient,
    sweepstakes: BlockingClient,
}

impl Tcp {
    pub fn connect(node: &NodeAddress) -> anyhow::Result<Tcp> {
        Ok(Tcp {
            standard: BlockingClient::connect(&node.address, &node.standard_key)?,
            sweepstakes: BlockingClient::connect(&node.address, &node.sweepstakes_key)?,
        })
    }

    fn call(&mut self, operator: OperatorId, body: In) -> Option<Out> {
        let client = if operator == OperatorId(2) { &mut self.sweepstakes } else { &mut self.standard };
        client.call(body).ok()
    }
}

fn choice_text(choice: &Choice) -> String {
    match choice {
        Choice::Slot => "spin".into(),
        Choice::Roulette(RouletteBet::Red) => "red".into(),
        Choice::Roulette(RouletteBet::Black) => "black".into(),
        Choice::Roulette(RouletteBet::Dozen(d)) => format!("dozen:{d}"),
        Choice::Roulette(RouletteBet::Straight(n)) => format!("straight:{n}"),
        Choice::Roulette(other) => format!("{other:?}"),
        Choice::Dice(bet) => format!("{}:{}", if bet.over { "over" } else { "under" }, bet.target),
        Choice::Crash { target } => format!("{}.{:02}", target / 100, target % 100),
    }
}

fn stake(stake: &Stake) -> Option<proto::Stake> {
    let kind = match stake {
        Stake::Auto(amount) => proto::stake::Kind::Amount(amount.0),
        Stake::Split { cash, bonus, promo } => proto::stake::Kind::Split(proto::Split { cash: cash.0, bonus: bonus.0, promo: promo.0 }),
    };
    Some(proto::Stake { kind: Some(kind) })
}

/// The request for a command the workload makes (None: not sent to a node).
fn request(command: &Command, token: &[u8]) -> Option<In> {
    let Command::Player { player, action, .. } = command else { return None };
    let player_id = player.0;
    Some(match action {
        Action::CreateWallet => In::CreateWallet(proto::CreateWallet { player_id }),
        Action::Deposit { tx, currency, amount } => {
            In::Deposit(proto::Deposit { player_id, tx_id: tx.as_str().into(), currency: currency.to_string(), amount: amount.0 })
        }
        Action::Withdraw { tx, currency, amount } => {
            In::Withdraw(proto::Withdraw { player_id, tx_id: tx.as_str().into(), currency: currency.to_string(), amount: amount.0 })
        }
        Action::OpenSession { game, currency, duration_ms, locale } => In::OpenSession(proto::OpenSession {
            player_id,
            game_id: game.as_str().into(),
            currency: currency.to_string(),
            duration_ms: *duration_ms,
            country: locale.map(|l| l.country().to_string()).unwrap_or_default(),
            language: locale.map(|l| l.language().to_string()).unwrap_or_default(),
        }),
        Action::Play { tx, currency, stake, choice, fair, .. } => In::Play(proto::Play {
            session_token: token.to_vec(),
            tx_id: tx.as_str().into(),
            currency: currency.to_string(),
            stake: stake.0,
            bet: choice_text(choice),
            provably_fair: *fair,
        }),
        Action::Bet { tx, round, game, currency, stake: amount, .. } => In::Bet(proto::Bet {
            session_token: token.to_vec(),
            tx_id: tx.as_str().into(),
            round_id: round.as_str().into(),
            game_id: game.as_ref().map_or("", |g| g.as_str()).into(),
            currency: currency.to_string(),
            stake: stake(amount),
        }),
        Action::Win { tx, bet, amount, close_round } => In::Win(proto::Win {
            player_id,
            tx_id: tx.as_str().into(),
            bet_tx_id: bet.as_str().into(),
            amount: stake(amount),
            close_round: *close_round,
        }),
        Action::Rollback { tx, bet, currency } => In::Rollback(proto::Rollback {
            player_id,
            tx_id: tx.as_str().into(),
            bet_tx_id: bet.as_str().into(),
            currency: currency.to_string(),
        }),
        Action::CloseSession { .. } => In::CloseSession(proto::CloseSession { session_token: token.to_vec() }),
        Action::CloseRound { round } => In::CloseRound(proto::CloseRound { player_id, round_id: round.as_str().into() }),
        Action::GrantBonus { tx, terms } => In::GrantBonus(proto::GrantBonus {
            player_id,
            tx_id: tx.as_str().into(),
            bonus_id: terms.bonus.as_str().into(),
            currency: terms.currency.to_string(),
            amount: terms.amount.0,
            wagering_multiple: terms.wagering_multiple,
            max_bet: terms.max_bet.0,
            duration_ms: terms.duration_ms,
            weights: terms.weights.iter().map(|(g, p)| proto::GameWeight { game_id: g.as_str().into(), percent: u32::from(*p) }).collect(),
            default_weight_percent: u32::from(terms.default_weight_percent),
        }),
        Action::GrantSweeps { tx, kind, amount, playthrough_multiple } => In::GrantSweeps(proto::GrantSweeps {
            player_id,
            tx_id: tx.as_str().into(),
            kind: *kind as i32,
            amount: amount.0,
            playthrough_multiple: *playthrough_multiple,
        }),
        Action::RequestRedemption { redemption, amount } => {
            In::RequestRedemption(proto::RequestRedemption { player_id, redemption_id: redemption.as_str().into(), amount: amount.0 })
        }
        Action::ApproveRedemption { redemption } => {
            In::ApproveRedemption(proto::ApproveRedemption { player_id, redemption_id: redemption.as_str().into() })
        }
        Action::Balance { currency } => In::GetBalance(proto::GetBalance { player_id, currency: currency.to_string() }),
        _ => return None,
    })
}

fn balance(balance: Option<proto::Balance>) -> Balance {
    let balance = balance.unwrap_or_default();
    let money = |minor: i64| Money::from_minor(u64::try_from(minor).unwrap_or(0)).unwrap_or(Money::ZERO);
    Balance {
        currency: Currency::new(&balance.currency).unwrap_or(Currency::GOLD_COINS),
        cash: money(balance.cash),
        bonus: money(balance.bonus),
        promo: money(balance.promo),
    }
}

impl Target for Tcp {
    fn apply(&mut self, command: &Command, token: &[u8], _timestamp_ms: u64, _events: &mut Vec<Event>) -> (Outcome, Vec<u8>) {
        let Some(body) = request(command, token) else { return (Err(Rejection::InvalidArgument), Vec::new()) };
        let operator = match command {
            Command::Player { operator, .. } => *operator,
            _ => OperatorId(1),
        };
        let tx = |t: proto::TxResult| TxReply { balance: balance(t.balance), replayed: t.replayed, bet_found: t.bet_found };
        match self.call(operator, body) {
            Some(Out::Tx(t)) => (Ok(Reply::Tx(tx(t))), Vec::new()),
            Some(Out::Played(p)) => (Ok(Reply::Tx(tx(p.tx.unwrap_or_default()))), Vec::new()),
            Some(Out::Done(_)) => (Ok(Reply::Done), Vec::new()),
            Some(Out::Balance(b)) => (Ok(Reply::Balance(balance(Some(b)))), Vec::new()),
            Some(Out::SessionOpened(o)) => {
                (Ok(Reply::SessionOpened { session: SessionId(o.session_id), expires_ms: o.expires_ms }), o.token)
            }
            Some(Out::Rejected(r)) => (Err(Rejection::from_code(r.code as u16).unwrap_or(Rejection::InvalidArgument)), Vec::new()),
            Some(Out::Error(e)) if e.code == TOKEN_EXPIRED => (Err(Rejection::SessionExpired), Vec::new()),
            // Anything else (a gateway error, a connection given up on) is a
            // reply the workload did not expect: the run fails and says so.
            _ => (Err(Rejection::InvalidArgument), Vec::new()),
        }
    }

    fn balance(&mut self, operator: OperatorId, player: PlayerId, currency: Currency) -> Option<i128> {
        match self.call(operator, In::GetBalance(proto::GetBalance { player_id: player.0, currency: currency.to_string() }))? {
            Out::Balance(b) => Some(i128::from(b.cash) + i128::from(b.bonus) + i128::from(b.promo)),
            _ => None,
        }
    }

    fn check_invariants(&mut self) -> Option<Result<(), String>> {
        // Asked of the node once, at the end of the run (see `run`).
        None
    }
}

/// The books of `players` from the node's journal in `data_dir`.
fn journal_books(data_dir: &Path, players: &std::collections::HashSet<PlayerId>) -> anyhow::Result<Books> {
    let path = data_dir.join("db");
    let store = persistence::RocksStore::open_read_only(&path, &persistence::RocksConfig::default())?;
    let mut books = Books::default();
    cluster::read_journal(&store, None, 1, &mut |_, _, _, events| {
        for event in events.iter().filter(|e| event_player(e).is_some_and(|p| players.contains(&p))) {
            books.record(event);
        }
        true
    })?;
    Ok(books)
}

fn event_player(event: &Event) -> Option<PlayerId> {
    match event {
        Event::Deposited { player, .. }
        | Event::Withdrawn { player, .. }
        | Event::BetPlaced { player, .. }
        | Event::WinCredited { player, .. }
        | Event::BetRolledBack { player, .. }
        | Event::BonusGranted { player, .. }
        | Event::BonusForfeited { player, .. }
        | Event::SweepsGranted { player, .. }
        | Event::RedemptionPaid { player, .. } => Some(*player),
        _ => None,
    }
}

/// Runs `scenario` against the node at `node` from `connections` worker
/// threads; player ids start at `player_base` (so that runs against one
/// node do not collide).
pub fn run(scenario: &Scenario, node: &NodeAddress, connections: usize, player_base: u64, progress: &Progress) -> anyhow::Result<Report> {
    let connections = connections.max(1);
    let mut partitions = Vec::new();
    for worker in 0..connections as u64 {
        let players: Vec<u64> = (0..scenario.players).filter(|p| p % connections as u64 == worker).map(|p| player_base + p).collect();
        partitions.push(Partition { players, target: Box::new(Tcp::connect(node)?) as Box<dyn Target>, configure: false, paced: true });
    }
    let (mut results, seconds) = drive(scenario, partitions, progress);
    let players: std::collections::HashSet<PlayerId> = results.iter().flat_map(|r| r.players.iter().map(|(p, _)| *p)).collect();
    let operators: std::collections::HashMap<PlayerId, OperatorId> = results.iter().flat_map(|r| r.players.iter().copied()).collect();
    let books = journal_books(&node.data_dir, &players)?;
    // The node's own invariants (money conserved in each shard), swept on request.
    let mut admin = BlockingClient::connect(&node.address, &node.admin_key)?;
    let invariants = match admin.call(In::CheckInvariants(proto::CheckInvariants {}))? {
        Out::InvariantsChecked(checked) => checked.shards,
        other => anyhow::bail!("the node refused the invariant check: {other:?}"),
    };
    let mut checks = crate::report::Checks { invariants_hold: true, ..Default::default() };
    if let Some(first) = results.first_mut() {
        for (&(player, currency), &expected) in &books.balances {
            let operator = operators.get(&player).copied().unwrap_or(OperatorId(1));
            check_balance(&mut checks, &mut *first.target, operator, player, currency, expected);
        }
        first.checks.wallets_checked += checks.wallets_checked;
        first.checks.balance_mismatches += checks.balance_mismatches;
        first.checks.first_mismatch = first.checks.first_mismatch.take().or(checks.first_mismatch);
        first.checks.invariants_checked = !invariants.is_empty();
        if let Some(broken) = invariants.iter().find(|s| !s.hold) {
            first.checks.invariants_hold = false;
            first.checks.invariant_failure = Some(format!("node shard {}: {}", broken.shard_id, broken.failure));
        }
    }
    Ok(summarize(scenario, &format!("tcp {}", node.address), connections as u32, results, seconds, Some(books)))
}
