//! The books: every wallet's balance recomputed from the events the engine
//! emitted, independently of how the engine keeps it, and every money
//! movement's id counted, so that a transaction applied twice shows.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};

use engine::{Currency, Event, GameId, Money, PlayerId, Pockets, TxId};

fn total(pockets: &Pockets) -> i128 {
    i128::from(pockets.cash.minor()) + i128::from(pockets.bonus.minor()) + i128::from(pockets.promo.minor())
}

fn money(amount: Money) -> i128 {
    i128::from(amount.minor())
}

/// Stakes and wins of one game in one currency.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GameBook {
    pub rounds: u64,
    pub stakes: i128,
    pub wins: i128,
}

#[derive(Debug, Default)]
pub struct Books {
    /// Expected total (cash + bonus + promo) per account.
    pub balances: HashMap<(PlayerId, Currency), i128>,
    /// Per game id and currency.
    pub games: BTreeMap<(String, String), GameBook>,
    /// Digests of (kind, player, id) of every movement seen.
    seen: HashSet<u64>,
    /// Movements seen twice.
    pub applied_twice: u64,
    pub first_applied_twice: Option<String>,
}

impl Books {
    fn once(&mut self, kind: u8, player: PlayerId, tx: &TxId) {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (kind, player.0, tx.as_str()).hash(&mut hasher);
        if !self.seen.insert(hasher.finish()) {
            self.applied_twice += 1;
            if self.first_applied_twice.is_none() {
                self.first_applied_twice = Some(format!("player {} transaction {} (event kind {kind})", player.0, tx.as_str()));
            }
        }
    }

    fn add(&mut self, player: PlayerId, currency: Currency, delta: i128) {
        *self.balances.entry((player, currency)).or_default() += delta;
    }

    fn game(&mut self, game: &GameId, currency: Currency) -> &mut GameBook {
        self.games.entry((game.as_str().to_string(), currency.to_string())).or_default()
    }

    pub fn record(&mut self, event: &Event) {
        match event {
            Event::WalletCreated { .. } => {}
            Event::Deposited { player, tx, currency, amount } => {
                self.once(1, *player, tx);
                self.add(*player, *currency, money(*amount));
            }
            Event::Withdrawn { player, tx, currency, amount } => {
                self.once(2, *player, tx);
                self.add(*player, *currency, -money(*amount));
            }
            Event::BetPlaced { player, tx, game, currency, stake, .. } => {
                self.once(3, *player, tx);
                self.add(*player, *currency, -total(stake));
                let book = self.game(game, *currency);
                book.rounds += 1;
                book.stakes += total(stake);
            }
            Event::WinCredited { player, tx, game, currency, win, .. } => {
                self.once(4, *player, tx);
                self.add(*player, *currency, total(win));
                self.game(game, *currency).wins += total(win);
            }
            Event::BetRolledBack { player, tx, currency, refund, .. } => {
                self.once(5, *player, tx);
                self.add(*player, *currency, total(refund));
            }
            Event::AwardCredited { player, tx, game, currency, amount, .. } => {
                self.once(8, *player, tx);
                self.add(*player, *currency, total(amount));
                if let Some(game) = game {
                    self.game(game, *currency).wins += total(amount);
                }
            }
            Event::BonusGranted { player, tx, currency, amount, .. } => {
                self.once(6, *player, tx);
                self.add(*player, *currency, money(*amount));
            }
            Event::BonusForfeited { player, currency, amount, .. } => self.add(*player, *currency, -money(*amount)),
            Event::SweepsGranted { player, tx, amount, .. } => {
                self.once(7, *player, tx);
                self.add(*player, Currency::SWEEPS_COINS, money(*amount));
            }
            Event::RedemptionPaid { player, amount, .. } => self.add(*player, Currency::SWEEPS_COINS, -money(*amount)),
            // Moves between pockets, or no money at all.
            Event::BonusConverted { .. }
            | Event::RedemptionRequested { .. }
            | Event::RedemptionRejected { .. }
            | Event::SweepsRedeemable { .. }
            | Event::OperatorConfigured { .. }
            | Event::PlayerBlocked { .. }
            | Event::SessionOpened { .. }
            | Event::SessionClosed { .. }
            | Event::RollbackRecordedInAdvance { .. }
            | Event::RoundSettled { .. }
            | Event::LimitHit { .. }
            | Event::LimitChanged { .. }
            | Event::SessionTimeLimitChanged { .. }
            | Event::SelfExcluded { .. }
            | Event::CoolOffStarted { .. }
            | Event::RngReseeded
            | Event::GamePlayed { .. }
            | Event::SeedsRotated { .. } => {}
        }
    }

    /// Adds another shard's books to these.
    pub fn merge_games(&mut self, other: &Books) {
        for (key, book) in &other.games {
            let mine = self.games.entry(key.clone()).or_default();
            mine.rounds += book.rounds;
            mine.stakes += book.stakes;
            mine.wins += book.wins;
        }
    }
}
