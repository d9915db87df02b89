//! The transaction scripts: one function per player action, each in three
//! phases (TigerBeetle's shape): validate the request on its own, check it
//! against state without changing anything, then commit every effect. A
//! refusal therefore leaves the player's money and records as they were.
//!
//! Time-driven transitions are the exception, by design: a bonus that has
//! expired is forfeited by the first command that touches the wallet after
//! its expiry, whatever that command's outcome, and limit windows roll over
//! when a check reads them. They would have happened at that time anyway;
//! the engine has no timer, so they happen at the first apply that looks.

use crate::bonus::{ActiveBonus, BONUS_WEIGHTS_MAX, WAGERING_MULTIPLE_MAX};
use crate::command::{Action, BonusTerms, OperatorConfig, Stake, SweepsGrantKind, LOOKUP_MAX};
use crate::currency::Currency;
use crate::event::Event;
use crate::games::fair::{server_seed_hash, FairDraw, FairSeeds};
use crate::games::{self, Choice, GameKind};
use crate::ids::{BonusId, ExternalId, GameId, PlayerId, RedemptionId, RoundId, SessionId, TxId};
use crate::index::{BetState, Detail, Fingerprint, IndexKey, KeyKind, TxIndex, TxKind, TxRecord};
use crate::ledger::Ledger;
use crate::limits::{LimitKind, LimitPeriod, LimitSource};
use crate::money::{Amount, Money, Pockets, AMOUNT_MAX_MINOR};
use crate::reply::{Balance, Found, Outcome, Rejection, Reply, RoundView, SessionView, TxReply};
use crate::rng::ShardRng;
use crate::session::{Locale, Session, SESSIONS_PER_PLAYER_MAX, SESSION_DURATION_MAX_MS};
use crate::sweeps::{Lot, PLAYTHROUGH_MULTIPLE_MAX, REDEMPTIONS_PENDING_MAX, SWEEPS_LOTS_MAX};
use crate::wallet::{self, BonusLink, OpenBet, PocketRules, Wallet, OPEN_BETS_PER_WALLET_MAX};

/// Longest session time limit a player or operator may set: 24 hours.
pub const SESSION_TIME_LIMIT_MAX_MS: u64 = 24 * 60 * 60 * 1000;
/// Longest cool-off: 6 weeks (longer breaks are self-exclusions).
pub const COOL_OFF_MAX_MS: u64 = 42 * 24 * 60 * 60 * 1000;

/// Everything one player action may touch, borrowed from the shard.
pub(crate) struct Apply<'a> {
    pub now_ms: u64,
    pub player: PlayerId,
    pub operator: &'a OperatorConfig,
    pub wallet: &'a mut Wallet,
    pub index: &'a mut TxIndex,
    pub ledger: &'a mut Ledger,
    pub events: &'a mut Vec<Event>,
    /// Source of session ids: `shard id << 40 | sequence`.
    pub session_ids: &'a mut SessionIds,
    pub rng: &'a mut ShardRng,
    /// The planted bug of `Shard::plant_double_apply`.
    pub planted_double_apply: &'a mut bool,
    /// Set while the planted bug re-applies a recorded transaction: its
    /// record exists, so it is not recorded again.
    pub skip_record: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionIds {
    pub shard_id: u32,
    pub next_sequence: u64,
}

impl SessionIds {
    fn next(&mut self) -> SessionId {
        assert!(self.next_sequence < 1 << 40, "session sequence exhausted on shard {}", self.shard_id);
        let id = SessionId(u64::from(self.shard_id) << 40 | self.next_sequence);
        self.next_sequence += 1;
        id
    }
}

/// A payout's checked request, as its paths (a win, an award) take it.
#[derive(Clone, Copy)]
struct Credit<'r> {
    tx: &'r TxId,
    key: IndexKey,
    print: u64,
    round: Option<&'r RoundId>,
    game: Option<&'r GameId>,
    currency: Currency,
    rules: PocketRules,
    requested: Pockets,
    auto: bool,
    total: Money,
}

/// Which way a reference to an ended bet is being used, for its refusal code.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Win,
    Rollback,
}

fn validate_stake(stake: &Stake) -> Result<(Pockets, bool), Rejection> {
    match stake {
        Stake::Auto(amount) => {
            let total = amount.non_negative()?;
            Ok((Pockets { cash: total, bonus: Money::ZERO, promo: Money::ZERO }, true))
        }
        Stake::Split { cash, bonus, promo } => {
            let parts = Pockets { cash: cash.non_negative()?, bonus: bonus.non_negative()?, promo: promo.non_negative()? };
            let total = parts.total().ok_or(Rejection::AmountTooLarge)?;
            if total.minor() > AMOUNT_MAX_MINOR {
                return Err(Rejection::AmountTooLarge);
            }
            Ok((parts, false))
        }
    }
}

fn fingerprint_pockets(print: Fingerprint, parts: &Pockets, auto: bool) -> Fingerprint {
    print.u64(u64::from(auto)).u64(parts.cash.minor()).u64(parts.bonus.minor()).u64(parts.promo.minor())
}

impl Apply<'_> {
    pub fn run(&mut self, action: &Action) -> Outcome {
        self.expire_bonuses();
        let outcome = match action {
            Action::CreateWallet => Err(Rejection::PlayerExists),
            Action::SetBlocked { blocked } => {
                self.wallet.blocked = *blocked;
                self.events.push(Event::PlayerBlocked { player: self.player, blocked: *blocked });
                Ok(Reply::Done)
            }
            Action::Deposit { tx, currency, amount } => self.deposit(tx, *currency, *amount),
            Action::Withdraw { tx, currency, amount } => self.withdraw(tx, *currency, *amount),
            Action::OpenSession { game, currency, duration_ms, locale } => self.open_session(game, *currency, *duration_ms, *locale),
            Action::SessionInfo { session } => self.session_info(*session),
            Action::RefreshSession { session } => self.refresh_session(*session),
            Action::CloseSession { session } => self.close_session(*session),
            Action::Bet { tx, session, round, game, currency, stake, alias } => {
                self.bet(tx, *session, round, game.as_ref(), *currency, stake, alias.as_ref())
            }
            Action::Payout { tx, round, game, currency, bet, amount, close_round, award, claim } => {
                self.payout(tx, round.as_ref(), game.as_ref(), *currency, bet.as_ref(), amount, *close_round, *award, *claim)
            }
            Action::Lookup { txs } => self.lookup(txs),
            Action::RoundInfo { round } => self.round_info(round),
            Action::Win { tx, bet, amount, close_round } => self.win(tx, bet, amount, *close_round),
            Action::Rollback { tx, bet, currency } => self.rollback(tx, bet, *currency),
            Action::CloseRound { round } => self.close_round(round),
            Action::Balance { currency } => {
                self.rules(*currency)?;
                Ok(Reply::Balance(self.wallet.balance(*currency)))
            }
            Action::SetLimit { source, kind, period, currency, amount } => self.set_limit(*source, *kind, *period, *currency, *amount),
            Action::SetSessionTimeLimit { source, duration_ms } => self.set_session_time_limit(*source, *duration_ms),
            Action::SelfExclude { until_ms } => self.self_exclude(*until_ms),
            Action::CoolOff { duration_ms } => self.cool_off(*duration_ms),
            Action::GrantBonus { tx, terms } => self.grant_bonus(tx, terms),
            Action::ForfeitBonus { bonus } => self.forfeit_bonus(bonus),
            Action::GrantSweeps { tx, kind, amount, playthrough_multiple } => self.grant_sweeps(tx, *kind, *amount, *playthrough_multiple),
            Action::RequestRedemption { redemption, amount } => self.request_redemption(redemption, *amount),
            Action::ApproveRedemption { redemption } => self.finish_redemption(redemption, true),
            Action::RejectRedemption { redemption } => self.finish_redemption(redemption, false),
            Action::Play { tx, session, currency, stake, choice, fair } => self.play(tx, *session, *currency, *stake, choice, *fair),
            Action::RotateSeeds { client_seed } => self.rotate_seeds(*client_seed),
        };
        self.wallet.tidy();
        outcome
    }

    // ---- shared steps -------------------------------------------------

    fn key(&self, kind: KeyKind, id: ExternalId) -> IndexKey {
        IndexKey { player: self.player, kind, id }
    }

    fn tx_key(&self, tx: &TxId) -> IndexKey {
        self.key(KeyKind::Tx, tx.0)
    }

    /// Same id: the stored result if the parameters match, else a conflict.
    fn replay(&self, key: &IndexKey, kind: TxKind, fingerprint: u64) -> Option<Outcome> {
        self.replay_any(key, &[kind], fingerprint)
    }

    /// `replay` for a movement whose record may have moved on to a later
    /// kind (a redemption request, since paid or rejected).
    fn replay_any(&self, key: &IndexKey, kinds: &[TxKind], fingerprint: u64) -> Option<Outcome> {
        let record = self.index.get(key)?;
        if record.kind == TxKind::Bet && record.bet_state == BetState::RolledBackInAdvance {
            return Some(Err(if kinds.contains(&TxKind::Bet) { Rejection::BetRolledBackInAdvance } else { Rejection::TxConflict }));
        }
        if !kinds.contains(&record.kind) || record.fingerprint != fingerprint {
            return Some(Err(Rejection::TxConflict));
        }
        let balance = record.balance().expect("transaction keys hold movements");
        Some(Ok(Reply::Tx(TxReply { balance, replayed: true, bet_found: record.bet_found })))
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        key: IndexKey,
        kind: TxKind,
        fingerprint: u64,
        balance: Balance,
        moved: Pockets,
        bet_state: BetState,
        bet_found: bool,
    ) -> Outcome {
        if std::mem::take(&mut self.skip_record) {
            return Ok(Reply::Tx(TxReply { balance, replayed: false, bet_found }));
        }
        let record = TxRecord {
            kind,
            bet_state,
            bet_found,
            fingerprint,
            retained_since_ms: self.now_ms,
            created_ms: self.now_ms,
            detail: Detail::Movement { balance, moved },
        };
        self.index.insert(key, record, self.now_ms);
        Ok(Reply::Tx(TxReply { balance, replayed: false, bet_found }))
    }

    /// The pocket rules of a currency this operator accepts.
    fn rules(&self, currency: Currency) -> Result<PocketRules, Rejection> {
        // Operator configuration guarantees a sweepstakes operator lists
        // only Gold and Sweeps Coins, and a standard one only real currencies.
        if !self.operator.currencies.iter().any(|c| c.currency == currency) {
            return Err(Rejection::UnknownCurrency);
        }
        Ok(PocketRules::of(currency))
    }

    fn check_may_play(&self) -> Result<(), Rejection> {
        match &self.wallet.responsible {
            Some(responsible) => responsible.check_may_play(self.now_ms),
            None => Ok(()),
        }
    }

    /// The checks every new stake passes first: the player may play (not
    /// blocked, excluded or cooling off) and the session is theirs. Returns
    /// the session and the session time limit in force.
    fn stake_session(&self, session: SessionId) -> Result<(Session, Option<u64>), Rejection> {
        if self.wallet.blocked {
            return Err(Rejection::PlayerBlocked);
        }
        self.check_may_play()?;
        let time_limit_ms = self.wallet.responsible.as_ref().and_then(|r| r.session_time_limit_ms(self.now_ms));
        let live = *self.wallet.sessions.iter().find(|s| s.id == session).ok_or(Rejection::SessionNotFound)?;
        Ok((live, time_limit_ms))
    }

    /// Plans a stake's debit without changing anything: the active bonus's
    /// maximum bet, the split across pockets (the caller's `explicit` split,
    /// or the documented order), the funds, and the limits (a refusal by a
    /// limit emits `LimitHit`). Returns the pockets afterwards and the split.
    fn plan_stake(
        &mut self,
        currency: Currency,
        rules: PocketRules,
        total: Money,
        explicit: Option<Pockets>,
    ) -> Result<(Pockets, Pockets), Rejection> {
        if let Some(bonus) = self.wallet.bonus(currency) {
            if total > bonus.max_bet {
                return Err(Rejection::BonusMaxBetExceeded);
            }
        }
        let mut pockets = self.wallet.account(currency).map(|a| a.pockets).unwrap_or_default();
        let parts = match explicit {
            None => wallet::split_auto_stake(&pockets, total, rules)?,
            Some(_) if rules == PocketRules::SweepsCoins => return Err(Rejection::InvalidArgument),
            Some(parts) => parts,
        };
        wallet::debit(&mut pockets, &parts)?;
        if let Some(responsible) = self.wallet.responsible.as_mut() {
            if let Err(hit) = responsible.check_stake(self.now_ms, currency, total) {
                return Err(self.limit_hit(currency, hit));
            }
        }
        Ok((pockets, parts))
    }

    fn limit_hit(&mut self, currency: Currency, hit: crate::limits::LimitHit) -> Rejection {
        self.events.push(Event::LimitHit { player: self.player, kind: hit.kind, period: hit.period, currency, limit: hit.limit });
        hit.rejection()
    }

    /// Where a win's or refund's bonus share goes (rules in `bonus.rs`):
    /// returns the credit and the part forfeited to the house.
    fn route_bonus_share(&self, currency: Currency, rules: PocketRules, link: BonusLink, parts: Pockets) -> (Pockets, Money) {
        if rules != PocketRules::Standard || parts.bonus.is_zero() {
            return (parts, Money::ZERO);
        }
        let to_cash = Pockets {
            cash: parts.cash.checked_add(parts.bonus).expect("parts were summed within bounds"),
            bonus: Money::ZERO,
            promo: parts.promo,
        };
        let forfeit = (Pockets { bonus: Money::ZERO, ..parts }, parts.bonus);
        let active = self.wallet.bonus(currency).map(|b| b.bonus);
        match link {
            BonusLink::Active(placed) if active == Some(placed) => (parts, Money::ZERO),
            // Links are moved on when a bonus ends, so an active link to an
            // inactive bonus cannot happen; forfeiting is the safe reading.
            BonusLink::Active(_) | BonusLink::Forfeited(_) => forfeit,
            BonusLink::Converted(_) => (to_cash, Money::ZERO),
            BonusLink::None if active.is_some() => (parts, Money::ZERO),
            BonusLink::None => (to_cash, Money::ZERO),
        }
    }

    /// Sends a forfeited bonus share to the house, with its event.
    fn forfeit_share(&mut self, currency: Currency, link: BonusLink, amount: Money) {
        if amount.is_zero() {
            return;
        }
        self.ledger.to_house(currency, amount);
        let bonus = link.id().expect("only a bet placed under a bonus forfeits a share");
        self.events.push(Event::BonusForfeited { player: self.player, bonus, currency, amount });
    }

    /// Moves the open bets placed under `bonus` on to how it ended.
    fn relink_open_bets(&mut self, bonus: BonusId, ended: BonusLink) {
        self.wallet.open_bets.relink(BonusLink::Active(bonus), ended);
    }

    /// Remembers how a bonus ended, so its bets' later shares follow it.
    fn record_bonus_end(&mut self, bonus: BonusId, kind: TxKind, currency: Currency) {
        let key = self.key(KeyKind::Bonus, bonus.0);
        let balance = self.wallet.balance(currency);
        let record = TxRecord {
            kind,
            bet_state: BetState::NotABet,
            bet_found: false,
            fingerprint: 0,
            retained_since_ms: self.now_ms,
            created_ms: self.now_ms,
            detail: Detail::Movement { balance, moved: Pockets::default() },
        };
        self.index.insert(key, record, self.now_ms);
    }

    // ---- cash in and out ----------------------------------------------

    fn deposit(&mut self, tx: &TxId, currency: Currency, amount: Amount) -> Outcome {
        let money = amount.positive()?;
        let print = Fingerprint::default().bytes(&currency.to_bytes()).u64(money.minor()).finish();
        let key = self.tx_key(tx);
        if let Some(outcome) = self.replay(&key, TxKind::Deposit, print) {
            return outcome;
        }
        self.rules(currency)?;
        if currency == Currency::SWEEPS_COINS {
            return Err(Rejection::CurrencyNotAllowed);
        }
        self.check_may_play()?;
        let current = self.wallet.account(currency).map(|a| a.pockets.cash).unwrap_or_default();
        current.checked_add(money).ok_or(Rejection::BalanceOverflow)?;
        if let Some(responsible) = self.wallet.responsible.as_mut() {
            if let Err(hit) = responsible.check_deposit(self.now_ms, currency, money) {
                return Err(self.limit_hit(currency, hit));
            }
        }

        let account = self.wallet.account_mut(currency)?;
        account.pockets.cash = account.pockets.cash.checked_add(money).expect("checked above");
        self.ledger.deposit(currency, money);
        if let Some(responsible) = self.wallet.responsible.as_mut() {
            responsible.record_deposit(self.now_ms, currency, money);
        }
        self.events.push(Event::Deposited { player: self.player, tx: *tx, currency, amount: money });
        let balance = self.wallet.balance(currency);
        self.record(key, TxKind::Deposit, print, balance, Pockets { cash: money, ..Pockets::default() }, BetState::NotABet, false)
    }

    fn withdraw(&mut self, tx: &TxId, currency: Currency, amount: Amount) -> Outcome {
        let money = amount.positive()?;
        let print = Fingerprint::default().bytes(&currency.to_bytes()).u64(money.minor()).finish();
        let key = self.tx_key(tx);
        if let Some(outcome) = self.replay(&key, TxKind::Withdraw, print) {
            return outcome;
        }
        self.rules(currency)?;
        if currency.is_sweepstakes() {
            return Err(Rejection::CurrencyNotAllowed);
        }
        let cash = self.wallet.account(currency).map(|a| a.pockets.cash).unwrap_or_default();
        let remaining = cash.checked_sub(money).ok_or(Rejection::InsufficientFunds)?;
        self.wallet.account_mut(currency).expect("a funded account exists").pockets.cash = remaining;
        self.ledger.withdraw(currency, money);
        self.events.push(Event::Withdrawn { player: self.player, tx: *tx, currency, amount: money });
        let balance = self.wallet.balance(currency);
        self.record(key, TxKind::Withdraw, print, balance, Pockets { cash: money, ..Pockets::default() }, BetState::NotABet, false)
    }

    // ---- sessions -----------------------------------------------------

    fn open_session(&mut self, game: &GameId, currency: Currency, duration_ms: u64, locale: Option<Locale>) -> Outcome {
        if duration_ms == 0 || duration_ms > SESSION_DURATION_MAX_MS {
            return Err(Rejection::InvalidArgument);
        }
        self.rules(currency)?;
        if self.wallet.blocked {
            return Err(Rejection::PlayerBlocked);
        }
        self.check_may_play()?;
        let now_ms = self.now_ms;
        self.wallet.sessions.retain(|s| s.is_live(now_ms));
        if self.wallet.sessions.len() >= SESSIONS_PER_PLAYER_MAX {
            return Err(Rejection::TooManySessions);
        }
        let id = self.session_ids.next();
        let expires_ms = now_ms.saturating_add(duration_ms);
        self.wallet.sessions.push(Session { id, game: *game, currency, opened_ms: now_ms, expires_ms, locale });
        self.events.push(Event::SessionOpened { player: self.player, session: id, game: *game, currency, expires_ms });
        Ok(Reply::SessionOpened { session: id, expires_ms })
    }

    /// The live session `session` (expired: `SessionExpired`).
    fn live_session(&self, session: SessionId) -> Result<Session, Rejection> {
        let found = *self.wallet.sessions.iter().find(|s| s.id == session).ok_or(Rejection::SessionNotFound)?;
        if !found.is_live(self.now_ms) {
            return Err(Rejection::SessionExpired);
        }
        Ok(found)
    }

    fn session_info(&mut self, session: SessionId) -> Outcome {
        let live = self.live_session(session)?;
        Ok(Reply::Session(SessionView {
            session: live.id,
            game: live.game,
            currency: live.currency,
            opened_ms: live.opened_ms,
            expires_ms: live.expires_ms,
            locale: live.locale,
            balance: self.wallet.balance(live.currency),
        }))
    }

    fn refresh_session(&mut self, session: SessionId) -> Outcome {
        let old = self.live_session(session)?;
        if self.wallet.blocked {
            return Err(Rejection::PlayerBlocked);
        }
        self.check_may_play()?;
        self.rules(old.currency)?;
        // The successor takes the old one's place (the count does not
        // change) with a new id only: same start, so the session time limit
        // still counts from it, and same expiry.
        self.close_session(session)?;
        let id = self.session_ids.next();
        self.wallet.sessions.push(Session { id, ..old });
        self.events.push(Event::SessionOpened {
            player: self.player,
            session: id,
            game: old.game,
            currency: old.currency,
            expires_ms: old.expires_ms,
        });
        Ok(Reply::SessionOpened { session: id, expires_ms: old.expires_ms })
    }

    fn close_session(&mut self, session: SessionId) -> Outcome {
        let at = self.wallet.sessions.iter().position(|s| s.id == session).ok_or(Rejection::SessionNotFound)?;
        self.wallet.sessions.remove(at);
        self.events.push(Event::SessionClosed { player: self.player, session });
        Ok(Reply::Done)
    }

    // ---- the bet round ------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn bet(
        &mut self,
        tx: &TxId,
        session: SessionId,
        round: &RoundId,
        game: Option<&GameId>,
        currency: Currency,
        stake: &Stake,
        alias: Option<&TxId>,
    ) -> Outcome {
        let (requested, auto) = validate_stake(stake)?;
        let total = requested.total().ok_or(Rejection::AmountTooLarge)?;
        if total.is_zero() {
            return Err(Rejection::ZeroAmount);
        }
        let mut print =
            // The session is not part of the identity: a retry after a
            // session refresh is the same bet.
            // A game left to the session is part of it as such (ids are never empty).
            Fingerprint::default().bytes(round.0.as_bytes()).bytes(game.map_or(&[][..], |g| g.0.as_bytes())).bytes(&currency.to_bytes());
        if let Some(alias) = alias {
            print = print.bytes(b"alias").bytes(alias.0.as_bytes());
        }
        let print = fingerprint_pockets(print, &requested, auto).finish();
        let key = self.tx_key(tx);
        if let Some(outcome) = self.replay(&key, TxKind::Bet, print) {
            return outcome;
        }
        if let Some(alias) = alias {
            if alias == tx || self.index.get(&self.key(KeyKind::Alias, alias.0)).is_some() {
                return Err(Rejection::TxConflict);
            }
            // A rollback that named the bet by its alias before it came.
            if let Some(record) = self.index.get(&self.tx_key(alias)) {
                return Err(if record.bet_state == BetState::RolledBackInAdvance {
                    Rejection::BetRolledBackInAdvance
                } else {
                    Rejection::TxConflict
                });
            }
        }

        let rules = self.rules(currency)?;
        let (live, time_limit_ms) = self.stake_session(session)?;
        let game = &game.copied().unwrap_or(live.game);
        live.check_bet(self.now_ms, game, currency, time_limit_ms)?;
        if self.round_record(round) == Some(TxKind::RoundClosed) {
            return Err(Rejection::RoundClosed);
        }
        if let Some(sibling) = self.wallet.open_bets.position_of_round(round).map(|at| &self.wallet.open_bets[at]) {
            if sibling.game != *game || sibling.currency != currency {
                return Err(Rejection::RoundMismatch);
            }
        }
        if self.wallet.open_bets.len() >= OPEN_BETS_PER_WALLET_MAX {
            return Err(Rejection::TooManyOpenBets);
        }
        let (pockets, parts) = self.plan_stake(currency, rules, total, (!auto).then_some(requested))?;

        // Commit. The debit succeeded on a copy, so the account exists.
        let account = self.wallet.account_mut(currency).expect("a funded account exists");
        account.pockets = pockets;
        self.ledger.to_house(currency, total);
        let mut counted = false;
        if let Some(responsible) = self.wallet.responsible.as_mut() {
            counted = responsible.counts(currency);
            responsible.record_stake(self.now_ms, currency, total);
        }
        let bonus = self.wallet.bonus(currency).map_or(BonusLink::None, |b| BonusLink::Active(b.bonus));
        self.wallet.open_bets.push(OpenBet {
            tx: *tx,
            round: *round,
            game: *game,
            currency,
            stake: parts,
            won: Money::ZERO,
            placed_ms: self.now_ms,
            counted,
            bonus,
            alias: alias.copied(),
            paid: false,
        });
        self.events.push(Event::BetPlaced { player: self.player, tx: *tx, round: *round, game: *game, currency, stake: parts });
        let balance = self.wallet.balance(currency);
        let placed = self.record(key, TxKind::Bet, print, balance, parts, BetState::Open, false);
        if let Some(alias) = alias {
            let record = TxRecord {
                kind: TxKind::Alias,
                bet_state: BetState::Open,
                bet_found: false,
                fingerprint: 0,
                retained_since_ms: self.now_ms,
                created_ms: self.now_ms,
                detail: Detail::Alias { bet: *tx },
            };
            self.index.insert(self.key(KeyKind::Alias, alias.0), record, self.now_ms);
        }
        placed
    }

    /// The id a reference names: a transaction's own id first, else the bet
    /// an alias stands for, else itself (unknown).
    fn resolve(&self, name: &TxId) -> TxId {
        if self.index.get(&self.tx_key(name)).is_some() {
            return *name;
        }
        match self.index.get(&self.key(KeyKind::Alias, name.0)).map(|r| r.detail) {
            Some(Detail::Alias { bet }) => bet,
            _ => *name,
        }
    }

    /// Ends an open bet (and its alias) in the index.
    fn end_bet(&mut self, bet: &OpenBet, state: BetState) {
        let ended = self.index.end_bet(&self.tx_key(&bet.tx), state);
        assert!(ended, "an open bet is open in the index");
        if let Some(alias) = bet.alias {
            let key = self.key(KeyKind::Alias, alias.0);
            if let Some(record) = self.index.get(&key) {
                debug_assert_eq!(record.kind, TxKind::Alias);
            }
            let ended = self.index.end_bet(&key, state);
            assert!(ended, "an open bet's alias is open in the index");
        }
    }

    /// The refusal for a reference to a bet that is not open.
    fn ended_bet_refusal(&self, bet: &TxId, purpose: Purpose) -> Rejection {
        let Some(record) = self.index.get(&self.tx_key(bet)) else {
            return Rejection::BetNotFound;
        };
        if record.kind == TxKind::Play {
            // A built-in game's round settles in the apply that plays it.
            return match purpose {
                Purpose::Win => Rejection::RoundClosed,
                Purpose::Rollback => Rejection::BetAlreadySettled,
            };
        }
        if record.kind != TxKind::Bet {
            return Rejection::NotABet;
        }
        match (record.bet_state, purpose) {
            (BetState::Settled, Purpose::Win) => Rejection::RoundClosed,
            (BetState::Settled, Purpose::Rollback) => Rejection::BetAlreadySettled,
            (BetState::RolledBack | BetState::RolledBackInAdvance, Purpose::Win) => Rejection::WinOnRolledBackBet,
            (BetState::RolledBack | BetState::RolledBackInAdvance, Purpose::Rollback) => Rejection::BetAlreadyRolledBack,
            (BetState::NotABet, _) => Rejection::NotABet,
            (BetState::Open, _) => panic!("bet {bet:?} of player {:?} is open in the index but not in the wallet", self.player),
        }
    }

    fn win(&mut self, tx: &TxId, bet: &TxId, amount: &Stake, close_round: bool) -> Outcome {
        let (requested, auto) = validate_stake(amount)?;
        let total = requested.total().ok_or(Rejection::AmountTooLarge)?;
        let print =
            fingerprint_pockets(Fingerprint::default().bytes(bet.0.as_bytes()).u64(u64::from(close_round)), &requested, auto).finish();
        let key = self.tx_key(tx);
        if let Some(outcome) = self.replay(&key, TxKind::Win, print) {
            return outcome;
        }
        let Some(at) = self.wallet.open_bets.position_of_tx(bet) else {
            return Err(self.ended_bet_refusal(bet, Purpose::Win));
        };
        let (balance, parts) = self.credit_win(tx, at, requested, auto, total, close_round)?;
        self.record(key, TxKind::Win, print, balance, parts, BetState::NotABet, false)
    }

    /// Credits a win to open bet `at` (every check that does not depend on
    /// how the bet was found); returns the balance and the credit per pocket.
    fn credit_win(
        &mut self,
        tx: &TxId,
        at: usize,
        requested: Pockets,
        auto: bool,
        total: Money,
        close_round: bool,
    ) -> Result<(Balance, Pockets), Rejection> {
        let open = self.wallet.open_bets[at];
        let bet = &open.tx;
        let rules = PocketRules::of(open.currency);
        let parts = if auto {
            wallet::split_auto_win(total, &open.stake, rules)
        } else {
            if rules == PocketRules::SweepsCoins && !(requested.bonus.is_zero() && requested.promo.is_zero()) {
                return Err(Rejection::InvalidArgument);
            }
            requested
        };
        let (parts, forfeited) = self.route_bonus_share(open.currency, rules, open.bonus, parts);
        let won = open.won.checked_add(total).ok_or(Rejection::BalanceOverflow)?;
        let account = self.wallet.account_mut(open.currency).expect("a bet's account exists");
        wallet::credit(&mut account.pockets, &parts)?;

        self.ledger.from_house(open.currency, total);
        self.forfeit_share(open.currency, open.bonus, forfeited);
        self.wallet.open_bets.set_paid(at, won);
        if let Some(responsible) = self.wallet.responsible.as_mut() {
            responsible.record_win(self.now_ms, open.currency, total);
        }
        self.events.push(Event::WinCredited {
            player: self.player,
            tx: *tx,
            bet: *bet,
            round: open.round,
            game: open.game,
            currency: open.currency,
            win: parts,
        });
        if close_round {
            self.settle_round(&open.round);
        }
        Ok((self.wallet.balance(open.currency), parts))
    }

    #[allow(clippy::too_many_arguments)]
    fn payout(
        &mut self,
        tx: &TxId,
        round: Option<&RoundId>,
        game: Option<&GameId>,
        currency: Currency,
        bet: Option<&TxId>,
        amount: &Stake,
        close_round: bool,
        award: bool,
        claim: bool,
    ) -> Outcome {
        let (requested, auto) = validate_stake(amount)?;
        let total = requested.total().ok_or(Rejection::AmountTooLarge)?;
        let mut print = Fingerprint::default().bytes(&currency.to_bytes());
        if let Some(round) = round {
            print = print.bytes(b"round").bytes(round.0.as_bytes());
        }
        if let Some(game) = game {
            print = print.bytes(b"game").bytes(game.0.as_bytes());
        }
        if let Some(bet) = bet {
            print = print.bytes(b"bet").bytes(bet.0.as_bytes());
        }
        let print = fingerprint_pockets(print.u64(u64::from(close_round)).u64(u64::from(award)), &requested, auto).finish();
        let key = self.tx_key(tx);
        if let Some(outcome) = self.replay_any(&key, &[TxKind::Win, TxKind::Award], print) {
            return outcome;
        }
        let rules = self.rules(currency)?;
        let holder = if claim { self.index.claim_holder(self.operator.operator, tx.0) } else { None };
        if holder.is_some_and(|holder| holder != self.player) {
            return Err(Rejection::TxConflict);
        }
        let credit = Credit { tx, key, print, round, game, currency, rules, requested, auto, total };
        let outcome = self.pay(&credit, bet, close_round, award)?;
        if claim && holder.is_none() {
            self.index.insert_claim(self.operator.operator, tx.0, self.player, self.now_ms);
        }
        Ok(outcome)
    }

    /// `payout` past its checks of identity: finds the bet and pays it (or awards).
    fn pay(&mut self, credit: &Credit<'_>, bet: Option<&TxId>, close_round: bool, award: bool) -> Outcome {
        let Credit { tx, key, print, round, game, currency, requested, auto, total, .. } = *credit;
        let target = match bet {
            Some(name) => {
                let bet = self.resolve(name);
                match self.wallet.open_bets.position_of_tx(&bet) {
                    Some(at) => Some(at),
                    None if award && self.index.get(&self.tx_key(&bet)).is_none() => None,
                    None => return Err(self.ended_bet_refusal(&bet, Purpose::Win)),
                }
            }
            None => round.and_then(|round| self.wallet.open_bets.position_of_round(round)),
        };
        let Some(at) = target else {
            if !award {
                return Err(match round.and_then(|round| self.round_record(round)) {
                    Some(TxKind::RoundClosed) => Rejection::RoundClosed,
                    Some(_) => Rejection::WinOnRolledBackBet,
                    None => Rejection::RoundNotFound,
                });
            }
            return self.award(credit);
        };
        let open = self.wallet.open_bets[at];
        if round.is_some_and(|round| open.round != *round) || game.is_some_and(|game| open.game != *game) {
            return Err(Rejection::RoundMismatch);
        }
        if open.currency != currency {
            return Err(Rejection::CurrencyMismatch);
        }
        let (balance, parts) = self.credit_win(tx, at, requested, auto, total, close_round)?;
        self.record(key, TxKind::Win, print, balance, parts, BetState::NotABet, false)
    }

    /// A promotional award: the house pays `total` into the named pockets
    /// (automatic: cash) with no bet behind it.
    fn award(&mut self, credit: &Credit<'_>) -> Outcome {
        let Credit { tx, key, print, round, game, currency, rules, requested, auto, total } = *credit;
        let parts = if auto { Pockets { cash: total, ..Pockets::default() } } else { requested };
        if rules == PocketRules::SweepsCoins {
            // Sweeps Coins come only from grants, with their playthrough.
            return Err(Rejection::CurrencyNotAllowed);
        }
        if !parts.bonus.is_zero() && self.wallet.bonus(currency).is_none() {
            // Bonus money exists only under an active bonus.
            return Err(Rejection::BonusNotFound);
        }
        let mut pockets = self.wallet.account(currency).map(|a| a.pockets).unwrap_or_default();
        wallet::credit(&mut pockets, &parts)?;

        self.wallet.account_mut(currency)?.pockets = pockets;
        self.ledger.from_house(currency, total);
        if let Some(responsible) = self.wallet.responsible.as_mut() {
            responsible.record_win(self.now_ms, currency, total);
        }
        self.events.push(Event::AwardCredited {
            player: self.player,
            tx: *tx,
            round: round.copied(),
            game: game.copied(),
            currency,
            amount: parts,
        });
        let balance = self.wallet.balance(currency);
        self.record(key, TxKind::Award, print, balance, parts, BetState::NotABet, false)
    }

    fn rollback(&mut self, tx: &TxId, bet: &TxId, currency: Currency) -> Outcome {
        let print = Fingerprint::default().bytes(bet.0.as_bytes()).bytes(&currency.to_bytes()).finish();
        let key = self.tx_key(tx);
        if let Some(outcome) = self.replay(&key, TxKind::Rollback, print) {
            return outcome;
        }
        let rules = self.rules(currency)?;
        if tx == bet {
            // One id cannot name both the refund and the bet it refunds.
            return Err(Rejection::TxConflict);
        }
        let named = *bet;
        let bet = &self.resolve(&named);
        if bet == tx {
            // The same through an alias.
            return Err(Rejection::TxConflict);
        }
        let Some(at) = self.wallet.open_bets.position_of_tx(bet) else {
            if self.index.get(&self.tx_key(bet)).is_some() {
                return Err(self.ended_bet_refusal(bet, Purpose::Rollback));
            }
            // Unknown bet: record it as rolled back, so that it is refused if it arrives.
            let balance = self.wallet.balance(currency);
            let bet_key = self.tx_key(bet);
            let tombstone = TxRecord {
                kind: TxKind::Bet,
                bet_state: BetState::RolledBackInAdvance,
                bet_found: false,
                fingerprint: 0,
                retained_since_ms: self.now_ms,
                created_ms: self.now_ms,
                detail: Detail::Movement { balance, moved: Pockets::default() },
            };
            self.index.insert(bet_key, tombstone, self.now_ms);
            self.events.push(Event::RollbackRecordedInAdvance { player: self.player, tx: *tx, bet: *bet });
            return self.record(key, TxKind::Rollback, print, balance, Pockets::default(), BetState::NotABet, false);
        };
        let open = self.wallet.open_bets[at];
        if open.currency != currency {
            return Err(Rejection::CurrencyMismatch);
        }
        if open.paid {
            return Err(Rejection::BetAlreadySettled);
        }
        let (refund, forfeited) = self.route_bonus_share(currency, rules, open.bonus, open.stake);
        let account = self.wallet.account_mut(currency).expect("a bet's account exists");
        wallet::credit(&mut account.pockets, &refund)?;

        let total = open.stake_total();
        self.ledger.from_house(currency, total);
        self.forfeit_share(currency, open.bonus, forfeited);
        self.wallet.open_bets.remove(at);
        self.end_bet(&open, BetState::RolledBack);
        if self.wallet.open_bets.position_of_round(&open.round).is_none() {
            // Its round is over with nothing to settle: a payout to it is refused as cancelled.
            self.remember_round(&open.round, TxKind::RoundCancelled, open.game, open.placed_ms);
        }
        if let Some(responsible) = self.wallet.responsible.as_mut().filter(|_| open.counted) {
            responsible.record_refund(self.now_ms, open.placed_ms, currency, total);
        }
        self.events.push(Event::BetRolledBack { player: self.player, tx: *tx, bet: *bet, round: open.round, currency, refund });
        let balance = self.wallet.balance(currency);
        self.record(key, TxKind::Rollback, print, balance, refund, BetState::NotABet, true)
    }

    fn lookup(&mut self, txs: &[TxId]) -> Outcome {
        if txs.is_empty() || txs.len() > LOOKUP_MAX {
            return Err(Rejection::InvalidArgument);
        }
        let found = txs
            .iter()
            .map(|name| {
                let tx = self.resolve(name);
                let record = self.index.get(&self.tx_key(&tx))?;
                let Detail::Movement { balance, moved } = record.detail else { return None };
                Some(Found {
                    tx,
                    kind: record.kind,
                    bet_state: record.bet_state,
                    bet_found: record.bet_found,
                    created_ms: record.created_ms,
                    currency: balance.currency,
                    moved,
                })
            })
            .collect();
        Ok(Reply::Found(found))
    }

    fn round_info(&mut self, round: &RoundId) -> Outcome {
        let mut open = self.wallet.open_bets.in_round(round);
        if let Some(first) = open.next() {
            let started_ms = open.map(|b| b.placed_ms).fold(first.placed_ms, u64::min);
            return Ok(Reply::Round(RoundView { game: first.game, started_ms, closed_ms: None }));
        }
        match self.index.get(&self.key(KeyKind::Round, round.0)) {
            Some(TxRecord { detail: Detail::Round { game, started_ms }, created_ms, .. }) => {
                Ok(Reply::Round(RoundView { game: *game, started_ms: *started_ms, closed_ms: Some(*created_ms) }))
            }
            _ => Err(Rejection::RoundNotFound),
        }
    }

    /// The kind of the round's record: closed, or cancelled (its bets all
    /// rolled back); None while open or unknown.
    fn round_record(&self, round: &RoundId) -> Option<TxKind> {
        self.index.get(&self.key(KeyKind::Round, round.0)).map(|r| r.kind)
    }

    /// Records how a round ended (a cancelled round may yet be reopened by a
    /// new bet and then close: the record is replaced).
    fn remember_round(&mut self, round: &RoundId, kind: TxKind, game: GameId, started_ms: u64) {
        let key = self.key(KeyKind::Round, round.0);
        let now_ms = self.now_ms;
        if let Some(record) = self.index.get_mut(&key) {
            let started_ms = match record.detail {
                Detail::Round { started_ms: earlier, .. } => earlier.min(started_ms),
                _ => started_ms,
            };
            record.kind = kind;
            record.created_ms = now_ms;
            record.detail = Detail::Round { game, started_ms };
            return;
        }
        let record = TxRecord {
            kind,
            bet_state: BetState::NotABet,
            bet_found: false,
            fingerprint: 0,
            retained_since_ms: now_ms,
            created_ms: now_ms,
            detail: Detail::Round { game, started_ms },
        };
        self.index.insert(key, record, now_ms);
    }

    fn close_round(&mut self, round: &RoundId) -> Outcome {
        if self.settle_round(round) || self.round_record(round) == Some(TxKind::RoundClosed) {
            return Ok(Reply::Done);
        }
        Err(Rejection::RoundNotFound)
    }

    /// Ends every open bet of the round as settled; false if it had none.
    fn settle_round(&mut self, round: &RoundId) -> bool {
        let mut stake = Money::ZERO;
        let mut win = Money::ZERO;
        let mut bet_count = 0u32;
        let mut first: Option<OpenBet> = None;
        let mut started_ms = u64::MAX;
        while let Some(at) = self.wallet.open_bets.position_of_round(round) {
            let bet = self.wallet.open_bets.remove(at);
            self.end_bet(&bet, BetState::Settled);
            started_ms = started_ms.min(bet.placed_ms);
            stake = stake.checked_add(bet.stake_total()).unwrap_or(Money::MAX);
            win = win.checked_add(bet.won).unwrap_or(Money::MAX);
            bet_count += 1;
            if let Some(bonus) = self.wallet.bonus_mut(bet.currency).filter(|b| BonusLink::Active(b.bonus) == bet.bonus) {
                bonus.add_wagering(bet.stake_total(), &bet.game);
            }
            first.get_or_insert(bet);
        }
        let Some(first) = first else { return false };
        let currency = first.currency;
        self.remember_round(round, TxKind::RoundClosed, first.game, started_ms);
        self.events.push(Event::RoundSettled { player: self.player, round: *round, game: first.game, currency, stake, win, bet_count });
        self.convert_completed_bonus(currency);
        if currency == Currency::SWEEPS_COINS {
            self.play_through(stake);
        }
        true
    }

    // ---- bonuses ------------------------------------------------------

    fn convert_completed_bonus(&mut self, currency: Currency) {
        let Some(at) = self.wallet.bonuses.iter().position(|b| b.currency == currency && b.is_complete()) else {
            return;
        };
        let bonus = self.wallet.bonuses.remove(at);
        let account = self.wallet.account_mut(currency).expect("a bonus's account exists");
        let amount = account.pockets.bonus;
        account.pockets.cash = account.pockets.cash.checked_add(amount).expect("cash + bonus fits: both are one player's money");
        account.pockets.bonus = Money::ZERO;
        self.events.push(Event::BonusConverted { player: self.player, bonus: bonus.bonus, currency, amount });
        self.relink_open_bets(bonus.bonus, BonusLink::Converted(bonus.bonus));
        self.record_bonus_end(bonus.bonus, TxKind::BonusConverted, currency);
    }

    fn forfeit(&mut self, at: usize) {
        let bonus = self.wallet.bonuses.remove(at);
        let account = self.wallet.account_mut(bonus.currency).expect("a bonus's account exists");
        let amount = account.pockets.bonus;
        account.pockets.bonus = Money::ZERO;
        self.ledger.to_house(bonus.currency, amount);
        self.events.push(Event::BonusForfeited { player: self.player, bonus: bonus.bonus, currency: bonus.currency, amount });
        self.relink_open_bets(bonus.bonus, BonusLink::Forfeited(bonus.bonus));
        self.record_bonus_end(bonus.bonus, TxKind::BonusForfeited, bonus.currency);
    }

    fn expire_bonuses(&mut self) {
        while let Some(at) = self.wallet.bonuses.iter().position(|b| b.expires_ms <= self.now_ms) {
            self.forfeit(at);
        }
    }

    fn forfeit_bonus(&mut self, bonus: &BonusId) -> Outcome {
        let at = self.wallet.bonuses.iter().position(|b| b.bonus == *bonus).ok_or(Rejection::BonusNotFound)?;
        self.forfeit(at);
        Ok(Reply::Done)
    }

    fn grant_bonus(&mut self, tx: &TxId, terms: &BonusTerms) -> Outcome {
        let amount = terms.amount.positive()?;
        let max_bet = terms.max_bet.positive()?;
        if terms.duration_ms == 0
            || terms.wagering_multiple > WAGERING_MULTIPLE_MAX
            || terms.weights.len() > BONUS_WEIGHTS_MAX
            || terms.default_weight_percent > 100
            || terms.weights.iter().any(|(_, percent)| *percent > 100)
        {
            return Err(Rejection::InvalidArgument);
        }
        let mut weights = terms.weights.clone();
        weights.sort_by_key(|(game, _)| *game);
        if weights.windows(2).any(|pair| pair[0].0 == pair[1].0) {
            return Err(Rejection::InvalidArgument);
        }
        let mut print = Fingerprint::default()
            .bytes(terms.bonus.0.as_bytes())
            .bytes(&terms.currency.to_bytes())
            .u64(amount.minor())
            .u64(u64::from(terms.wagering_multiple))
            .u64(max_bet.minor())
            .u64(terms.duration_ms)
            .u64(u64::from(terms.default_weight_percent));
        for (game, percent) in &weights {
            print = print.bytes(game.0.as_bytes()).u64(u64::from(*percent));
        }
        let print = print.finish();
        let key = self.tx_key(tx);
        if let Some(outcome) = self.replay(&key, TxKind::BonusGrant, print) {
            return outcome;
        }
        let currency = terms.currency;
        if self.rules(currency)? != PocketRules::Standard || currency.is_sweepstakes() {
            return Err(Rejection::CurrencyNotAllowed);
        }
        if self.wallet.bonuses.iter().any(|b| b.bonus == terms.bonus) || self.index.get(&self.key(KeyKind::Bonus, terms.bonus.0)).is_some()
        {
            return Err(Rejection::BonusIdUsed);
        }
        if self.wallet.bonus(currency).is_some() {
            return Err(Rejection::BonusAlreadyActive);
        }
        let wagering_required = amount.mul_div_floor(u64::from(terms.wagering_multiple), 1).ok_or(Rejection::AmountTooLarge)?;
        let current = self.wallet.account(currency).map(|a| a.pockets.bonus).unwrap_or_default();
        current.checked_add(amount).ok_or(Rejection::BalanceOverflow)?;

        let account = self.wallet.account_mut(currency)?;
        account.pockets.bonus = account.pockets.bonus.checked_add(amount).expect("checked above");
        self.ledger.from_house(currency, amount);
        let active = ActiveBonus {
            bonus: terms.bonus,
            currency,
            granted: amount,
            wagering_required,
            wagered: Money::ZERO,
            max_bet,
            expires_ms: self.now_ms.saturating_add(terms.duration_ms),
            weights,
            default_weight_percent: terms.default_weight_percent,
        };
        let at = self.wallet.bonuses.partition_point(|b| b.currency < currency);
        self.wallet.bonuses.insert(at, active);
        self.events.push(Event::BonusGranted { player: self.player, tx: *tx, bonus: terms.bonus, currency, amount, wagering_required });
        self.convert_completed_bonus(currency);
        let balance = self.wallet.balance(currency);
        self.record(key, TxKind::BonusGrant, print, balance, Pockets { bonus: amount, ..Pockets::default() }, BetState::NotABet, false)
    }

    // ---- sweepstakes --------------------------------------------------

    fn grant_sweeps(&mut self, tx: &TxId, kind: SweepsGrantKind, amount: Amount, multiple: u32) -> Outcome {
        if !self.operator.sweepstakes {
            return Err(Rejection::NotSweepstakes);
        }
        let amount = amount.positive()?;
        if multiple > PLAYTHROUGH_MULTIPLE_MAX {
            return Err(Rejection::InvalidArgument);
        }
        let print = Fingerprint::default().u64(kind as u64).u64(amount.minor()).u64(u64::from(multiple)).finish();
        let key = self.tx_key(tx);
        if let Some(outcome) = self.replay(&key, TxKind::SweepsGrant, print) {
            return outcome;
        }
        self.rules(Currency::SWEEPS_COINS)?;
        let lots = self.wallet.sweeps.as_ref().map_or(0, |s| s.lots.len());
        if multiple > 0 && lots >= SWEEPS_LOTS_MAX {
            return Err(Rejection::TooManyGrants);
        }
        let playthrough = amount.mul_div_floor(u64::from(multiple), 1).ok_or(Rejection::AmountTooLarge)?;
        let current = self.wallet.account(Currency::SWEEPS_COINS).map(|a| a.pockets).unwrap_or_default();
        let credit =
            if multiple == 0 { Pockets { cash: amount, ..Pockets::default() } } else { Pockets { bonus: amount, ..Pockets::default() } };
        let mut after = current;
        wallet::credit(&mut after, &credit)?;

        self.wallet.account_mut(Currency::SWEEPS_COINS)?.pockets = after;
        if multiple > 0 {
            self.wallet.sweeps_mut().lots.push(Lot { amount, remaining: playthrough });
        }
        self.ledger.from_house(Currency::SWEEPS_COINS, amount);
        self.events.push(Event::SweepsGranted { player: self.player, tx: *tx, kind, amount, playthrough });
        let balance = self.wallet.balance(Currency::SWEEPS_COINS);
        self.record(key, TxKind::SweepsGrant, print, balance, credit, BetState::NotABet, false)
    }

    fn play_through(&mut self, stake: Money) {
        let unplayed = self.wallet.account(Currency::SWEEPS_COINS).map(|a| a.pockets.bonus).unwrap_or_default();
        let Some(sweeps) = self.wallet.sweeps.as_mut() else {
            return;
        };
        let released = sweeps.play_through(stake, unplayed);
        let open_sweeps_bets = self.wallet.open_bets.iter().any(|b| b.currency == Currency::SWEEPS_COINS);
        let account = self.wallet.account_mut(Currency::SWEEPS_COINS).expect("a sweeps bet's account exists");
        account.pockets.bonus = account.pockets.bonus.saturating_sub(released);
        account.pockets.cash = account.pockets.cash.checked_add(released).expect("redeemable + unplayed fits");
        let nothing_left = account.pockets.bonus.is_zero();
        if nothing_left && !open_sweeps_bets {
            if let Some(sweeps) = self.wallet.sweeps.as_mut() {
                sweeps.lots.clear();
            }
        }
        if !released.is_zero() {
            self.events.push(Event::SweepsRedeemable { player: self.player, amount: released });
        }
    }

    fn request_redemption(&mut self, redemption: &RedemptionId, amount: Amount) -> Outcome {
        if !self.operator.sweepstakes {
            return Err(Rejection::NotSweepstakes);
        }
        let amount = amount.positive()?;
        let print = Fingerprint::default().u64(amount.minor()).finish();
        let key = self.key(KeyKind::Redemption, redemption.0);
        if let Some(outcome) = self.replay_any(&key, &[TxKind::Redemption, TxKind::RedemptionPaid, TxKind::RedemptionRejected], print) {
            return outcome;
        }
        // Still pending though its record aged out of retention: a retry.
        if let Some((_, pending)) = self.wallet.sweeps.as_ref().and_then(|s| s.redemptions.iter().find(|(id, _)| id == redemption)) {
            if *pending != amount {
                return Err(Rejection::TxConflict);
            }
            return Ok(Reply::Tx(TxReply { balance: self.wallet.balance(Currency::SWEEPS_COINS), replayed: true, bet_found: false }));
        }
        if amount.minor() < self.operator.redemption_min_minor {
            return Err(Rejection::RedemptionBelowMinimum);
        }
        if self.wallet.sweeps.as_ref().map_or(0, |s| s.redemptions.len()) >= REDEMPTIONS_PENDING_MAX {
            return Err(Rejection::TooManyGrants);
        }
        let redeemable = self.wallet.account(Currency::SWEEPS_COINS).map(|a| a.pockets.cash).unwrap_or_default();
        if redeemable < amount {
            return Err(Rejection::InsufficientRedeemable);
        }
        let account = self.wallet.account_mut(Currency::SWEEPS_COINS).expect("a funded account exists");
        account.pockets.cash = redeemable.saturating_sub(amount);
        account.pockets.promo = account.pockets.promo.checked_add(amount).expect("pending + redeemable fits: both are one player's coins");
        self.wallet.sweeps_mut().redemptions.push((*redemption, amount));
        self.events.push(Event::RedemptionRequested { player: self.player, redemption: *redemption, amount });
        let balance = self.wallet.balance(Currency::SWEEPS_COINS);
        self.record(key, TxKind::Redemption, print, balance, Pockets { cash: amount, ..Pockets::default() }, BetState::NotABet, false)
    }

    fn finish_redemption(&mut self, redemption: &RedemptionId, paid: bool) -> Outcome {
        if !self.operator.sweepstakes {
            return Err(Rejection::NotSweepstakes);
        }
        let finished = if paid { TxKind::RedemptionPaid } else { TxKind::RedemptionRejected };
        let key = self.key(KeyKind::Redemption, redemption.0);
        let pending = self.wallet.sweeps.as_ref().and_then(|s| s.redemptions.iter().position(|(id, _)| id == redemption));
        let Some(at) = pending else {
            // Already finished the same way: a retry, answered as a replay.
            return match self.index.get(&key) {
                Some(record) if record.kind == finished => {
                    Ok(Reply::Tx(TxReply { balance: self.wallet.balance(Currency::SWEEPS_COINS), replayed: true, bet_found: false }))
                }
                _ => Err(Rejection::RedemptionNotFound),
            };
        };
        let sweeps = self.wallet.sweeps.as_mut().expect("a pending redemption has sweeps state");
        let (_, amount) = sweeps.redemptions.remove(at);
        if let Some(record) = self.index.get_mut(&key) {
            record.kind = finished;
        }
        let account = self.wallet.account_mut(Currency::SWEEPS_COINS).expect("a pending redemption's account exists");
        account.pockets.promo = account.pockets.promo.checked_sub(amount).expect("pending holds every pending redemption");
        if paid {
            self.ledger.withdraw(Currency::SWEEPS_COINS, amount);
            self.events.push(Event::RedemptionPaid { player: self.player, redemption: *redemption, amount });
        } else {
            account.pockets.cash = account.pockets.cash.checked_add(amount).expect("pending came out of redeemable");
            self.events.push(Event::RedemptionRejected { player: self.player, redemption: *redemption, amount });
        }
        Ok(Reply::Tx(TxReply { balance: self.wallet.balance(Currency::SWEEPS_COINS), replayed: false, bet_found: false }))
    }

    // ---- responsible gaming -------------------------------------------

    fn set_limit(
        &mut self,
        source: LimitSource,
        kind: LimitKind,
        period: LimitPeriod,
        currency: Currency,
        amount: Option<Amount>,
    ) -> Outcome {
        let value = amount.map(|a| a.non_negative()).transpose()?;
        self.rules(currency)?;
        let delay_ms = self.operator.limit_increase_delay_ms;
        let responsible = self.wallet.responsible_mut();
        responsible.set_limit(source, kind, period, currency, value, self.now_ms, delay_ms)?;
        let effective_ms = responsible
            .limits
            .iter()
            .find(|l| l.kind == kind && l.period == period && l.currency == currency)
            .and_then(|l| l.bound.pending)
            .map_or(self.now_ms, |p| p.effective_ms);
        self.events.push(Event::LimitChanged { player: self.player, source, kind, period, currency, amount: value, effective_ms });
        Ok(Reply::Done)
    }

    fn set_session_time_limit(&mut self, source: LimitSource, duration_ms: Option<u64>) -> Outcome {
        if duration_ms.is_some_and(|d| d == 0 || d > SESSION_TIME_LIMIT_MAX_MS) {
            return Err(Rejection::InvalidArgument);
        }
        let delay_ms = self.operator.limit_increase_delay_ms;
        let responsible = self.wallet.responsible_mut();
        responsible.set_session_time(source, duration_ms, self.now_ms, delay_ms);
        let effective_ms = responsible.session_time.pending.map_or(self.now_ms, |p| p.effective_ms);
        self.events.push(Event::SessionTimeLimitChanged { player: self.player, source, duration_ms, effective_ms });
        Ok(Reply::Done)
    }

    fn self_exclude(&mut self, until_ms: Option<u64>) -> Outcome {
        let until_ms = until_ms.unwrap_or(u64::MAX);
        self.wallet.responsible_mut().self_exclude(until_ms, self.now_ms)?;
        self.events.push(Event::SelfExcluded { player: self.player, until_ms });
        Ok(Reply::Done)
    }

    fn cool_off(&mut self, duration_ms: u64) -> Outcome {
        if duration_ms == 0 || duration_ms > COOL_OFF_MAX_MS {
            return Err(Rejection::InvalidArgument);
        }
        let until_ms = self.now_ms.saturating_add(duration_ms);
        self.wallet.responsible_mut().cool_off(until_ms)?;
        self.events.push(Event::CoolOffStarted { player: self.player, until_ms });
        Ok(Reply::Done)
    }

    // ---- built-in games -----------------------------------------------

    /// One round of a built-in game: the bet round's checks, then debit,
    /// draw, credit and close in this one apply. The round is recorded as
    /// settled under its transaction id: a rollback naming it is refused with
    /// `BetAlreadySettled`, a win with `RoundClosed`.
    fn play(&mut self, tx: &TxId, session: SessionId, currency: Currency, stake: Amount, choice: &Choice, fair: bool) -> Outcome {
        let stake = stake.positive()?;
        if !choice.is_valid(stake.minor()) {
            return Err(Rejection::InvalidChoice);
        }
        let print = Fingerprint::default().u64(choice.code()).bytes(&currency.to_bytes()).u64(stake.minor()).u64(u64::from(fair)).finish();
        let key = self.tx_key(tx);
        if let Some(outcome) = self.replay(&key, TxKind::Play, print) {
            let replayed = matches!(outcome, Ok(Reply::Tx(TxReply { replayed: true, .. })));
            if !(replayed && std::mem::take(self.planted_double_apply)) {
                return outcome;
            }
            self.skip_record = true;
        }
        let rules = self.rules(currency)?;
        let (live, time_limit_ms) = self.stake_session(session)?;
        let kind = GameKind::from_id(live.game.as_str()).ok_or(Rejection::UnknownGame)?;
        let game = live.game;
        live.check_bet(self.now_ms, &game, currency, time_limit_ms)?;
        if kind != choice.kind() {
            return Err(Rejection::SessionGameMismatch);
        }
        let (mut pockets, parts) = self.plan_stake(currency, rules, stake, None)?;
        if fair && self.wallet.fair.is_none() {
            return Err(Rejection::FairSeedsMissing);
        }
        if !fair && !self.rng.is_seeded() {
            return Err(Rejection::RngNotSeeded);
        }

        // Draw and settle. Nothing has changed yet; from here on every step commits.
        let (drawn, fair_record) = match self.wallet.fair.as_deref_mut().filter(|_| fair) {
            Some(seeds) => {
                let mut draw = FairDraw::new(seeds.server_seed, seeds.client_seed, seeds.nonce);
                let drawn = games::draw(choice, &mut draw);
                let record = (seeds.nonce, server_seed_hash(&seeds.server_seed));
                seeds.nonce += 1;
                (drawn, Some(record))
            }
            None => (games::draw(choice, self.rng), None),
        };
        let win_minor = games::settle(choice, &drawn, stake.minor()).expect("a drawn outcome settles its own choice");
        let win = Money::from_minor(win_minor).ok_or(Rejection::BalanceOverflow)?;
        let bonus = self.wallet.bonus(currency).map_or(BonusLink::None, |b| BonusLink::Active(b.bonus));
        let (credit, forfeited) = self.route_bonus_share(currency, rules, bonus, wallet::split_auto_win(win, &parts, rules));
        wallet::credit(&mut pockets, &credit)?;

        self.wallet.account_mut(currency).expect("a funded account exists").pockets = pockets;
        self.ledger.to_house(currency, stake);
        self.ledger.from_house(currency, win);
        self.forfeit_share(currency, bonus, forfeited);
        if let Some(responsible) = self.wallet.responsible.as_mut() {
            responsible.record_stake(self.now_ms, currency, stake);
            responsible.record_win(self.now_ms, currency, win);
        }
        let round = RoundId(tx.0);
        self.events.push(Event::BetPlaced { player: self.player, tx: *tx, round, game, currency, stake: parts });
        if !win.is_zero() {
            self.events.push(Event::WinCredited { player: self.player, tx: *tx, bet: *tx, round, game, currency, win: credit });
        }
        self.events.push(Event::GamePlayed {
            player: self.player,
            tx: *tx,
            game: kind,
            version: kind.version(),
            choice: *choice,
            stake,
            drawn: drawn.clone(),
            win,
            fair: fair_record,
        });
        self.events.push(Event::RoundSettled { player: self.player, round, game, currency, stake, win, bet_count: 1 });
        if let Some(active) = self.wallet.bonus_mut(currency) {
            active.add_wagering(stake, &game);
        }
        self.convert_completed_bonus(currency);
        if currency == Currency::SWEEPS_COINS {
            self.play_through(stake);
        }
        let balance = self.wallet.balance(currency);
        match self.record(key, TxKind::Play, print, balance, parts, BetState::Settled, false)? {
            Reply::Tx(reply) => Ok(Reply::Played { tx: reply, win, drawn }),
            other => unreachable!("record replies with Tx, not {other:?}"),
        }
    }

    fn rotate_seeds(&mut self, client_seed: ExternalId) -> Outcome {
        if !self.rng.is_seeded() {
            return Err(Rejection::RngNotSeeded);
        }
        let revealed = self.wallet.fair.as_ref().map(|seeds| seeds.server_seed);
        let server_seed = self.rng.bytes32();
        let hash = server_seed_hash(&server_seed);
        self.wallet.fair = Some(Box::new(FairSeeds { server_seed, client_seed, nonce: 0 }));
        self.events.push(Event::SeedsRotated { player: self.player, revealed, server_seed_hash: hash });
        Ok(Reply::Seeds { revealed, server_seed_hash: hash, client_seed, nonce: 0 })
    }
}
