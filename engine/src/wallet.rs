//! The wallet actor's state: currency accounts with their pockets, open
//! bets, live sessions, the active bonuses, sweepstakes lots and
//! responsible-gaming state. Small when idle: everything optional is empty
//! or `None`, and idle wallets are passivated to their encoded bytes.

use crate::bonus::ActiveBonus;
use crate::currency::Currency;
use crate::games::fair::FairSeeds;
use crate::ids::{BonusId, ExternalId, GameId, OperatorId, RoundId, TxId};
use crate::limits::Responsible;
use crate::money::{Money, Pockets};
use crate::reply::{Balance, Rejection};
use crate::session::Session;
use crate::sweeps::Sweeps;

/// Currency accounts a wallet may hold.
pub const CURRENCIES_PER_WALLET_MAX: usize = 4;
/// Open (unsettled, not rolled back) bets a wallet may hold.
pub const OPEN_BETS_PER_WALLET_MAX: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Account {
    pub currency: Currency,
    pub pockets: Pockets,
}

/// A bet that has been placed and has not ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenBet {
    pub tx: TxId,
    pub round: RoundId,
    pub game: GameId,
    pub currency: Currency,
    pub stake: Pockets,
    /// Total credited by wins so far. A bet with wins can no longer be
    /// rolled back (the seamless-wallet APIs call it settled).
    pub won: Money,
    pub placed_ms: u64,
    /// Whether responsible-gaming usage counted this stake; only a counted
    /// stake's refund gives allowance back.
    pub counted: bool,
    /// The bonus active in this currency when the bet was placed, and how it
    /// has ended since: only its bets count toward its wagering, and the
    /// bonus share of a win or a refund follows it (see `bonus.rs`).
    pub bonus: BonusLink,
    /// The bet's alias, ended with it.
    pub alias: Option<TxId>,
    /// Whether a win (of any amount, zero included) was credited to it: a
    /// paid bet can no longer be rolled back.
    pub paid: bool,
}

/// A bet's tie to the bonus it was placed under. Updated on the bet when
/// the bonus converts or is forfeited, so it holds for as long as the bet is
/// open, whatever the index's retention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BonusLink {
    /// No bonus was active when the bet was placed.
    None,
    Active(BonusId),
    Converted(BonusId),
    Forfeited(BonusId),
}

impl BonusLink {
    pub fn id(self) -> Option<BonusId> {
        match self {
            BonusLink::None => None,
            BonusLink::Active(id) | BonusLink::Converted(id) | BonusLink::Forfeited(id) => Some(id),
        }
    }
}

impl OpenBet {
    pub fn stake_total(&self) -> Money {
        self.stake.total().expect("a stake's parts were summed when it was placed")
    }
}

/// A wallet's open bets in placement order, each with a compact key (a
/// 32-bit fingerprint of its round and one of its id) kept in a separate
/// array: a bet looks for its round's other bets and a win for its bet by
/// scanning 8 bytes per open bet instead of the ~300-byte bets themselves
/// (with 50 open bets that was 15 KB read per bet, a tenth of a durable
/// node's CPU). The keys are derived from the bets: they are not encoded,
/// equality ignores them, and `check` verifies them.
///
/// Each bet is boxed: a wallet's list grows by moving pointers, not its
/// ~300-byte bets. As a `Vec` of bets, every doubling copied them into a
/// block of the next size class, fresh pages that the kernel zeroed inside
/// an apply: with wallets holding tens of open bets, their lists crossed
/// 32 together and the raft loop's turns grew to 50-120 ms, 7% of its
/// samples in that growth. A bet's box is one small allocation, reused
/// from the bets that ended.
#[derive(Clone, Debug, Default)]
pub struct OpenBets {
    #[expect(clippy::vec_box, reason = "the bets are boxed so that growing the list moves pointers, not bets")]
    bets: Vec<Box<OpenBet>>,
    keys: Vec<u64>,
}

/// A 32-bit fingerprint of an id: its six words mixed (equal ids give
/// equal fingerprints; unequal ones collide one time in 2^32, and a
/// collision only costs a comparison of the ids).
fn fingerprint(id: &ExternalId) -> u32 {
    let hash = id.words().fold(0u64, |hash, word| (hash ^ word).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    (hash >> 32) as u32
}

fn key_of(bet: &OpenBet) -> u64 {
    u64::from(fingerprint(&bet.round.0)) << 32 | u64::from(fingerprint(&bet.tx.0))
}

impl PartialEq for OpenBets {
    fn eq(&self, other: &Self) -> bool {
        self.bets == other.bets
    }
}

impl Eq for OpenBets {}

impl From<Vec<OpenBet>> for OpenBets {
    fn from(bets: Vec<OpenBet>) -> Self {
        let keys = bets.iter().map(key_of).collect();
        OpenBets { bets: bets.into_iter().map(Box::new).collect(), keys }
    }
}

impl std::ops::Index<usize> for OpenBets {
    type Output = OpenBet;
    fn index(&self, at: usize) -> &OpenBet {
        &self.bets[at]
    }
}

/// A wallet's open bets in placement order.
pub type OpenBetsIter<'a> = std::iter::Map<std::slice::Iter<'a, Box<OpenBet>>, fn(&Box<OpenBet>) -> &OpenBet>;

impl<'a> IntoIterator for &'a OpenBets {
    type Item = &'a OpenBet;
    type IntoIter = OpenBetsIter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl OpenBets {
    pub fn len(&self) -> usize {
        self.bets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bets.is_empty()
    }

    pub fn iter(&self) -> OpenBetsIter<'_> {
        self.bets.iter().map(|bet| &**bet)
    }

    pub fn to_vec(&self) -> Vec<OpenBet> {
        self.iter().copied().collect()
    }

    /// The keys, for prefetching: they are what a scan reads first.
    pub fn keys(&self) -> &[u64] {
        &self.keys
    }

    pub fn push(&mut self, bet: OpenBet) {
        self.keys.push(key_of(&bet));
        self.bets.push(Box::new(bet));
    }

    pub fn remove(&mut self, at: usize) -> OpenBet {
        self.keys.remove(at);
        *self.bets.remove(at)
    }

    /// Records a win of `won` in total on the bet at `at`, which is then paid.
    pub fn set_paid(&mut self, at: usize, won: Money) {
        self.bets[at].won = won;
        self.bets[at].paid = true;
    }

    /// Rewrites the bonus link of every bet tied to `from`.
    pub fn relink(&mut self, from: BonusLink, to: BonusLink) {
        for bet in self.bets.iter_mut().filter(|b| b.bonus == from) {
            bet.bonus = to;
        }
    }

    /// The first open bet in `round`.
    pub fn position_of_round(&self, round: &RoundId) -> Option<usize> {
        let print = u64::from(fingerprint(&round.0));
        self.keys.iter().enumerate().filter(|(_, key)| *key >> 32 == print).map(|(at, _)| at).find(|&at| self.bets[at].round == *round)
    }

    /// The open bet with id `tx`.
    pub fn position_of_tx(&self, tx: &TxId) -> Option<usize> {
        let print = fingerprint(&tx.0);
        self.keys.iter().enumerate().filter(|(_, key)| **key as u32 == print).map(|(at, _)| at).find(|&at| self.bets[at].tx == *tx)
    }

    /// The open bets in `round`, in placement order.
    pub fn in_round<'a>(&'a self, round: &'a RoundId) -> impl Iterator<Item = &'a OpenBet> + 'a {
        let print = u64::from(fingerprint(&round.0));
        self.keys.iter().zip(&self.bets).filter(move |(key, bet)| **key >> 32 == print && bet.round == *round).map(|(_, bet)| &**bet)
    }

    /// Gives the buffers back once empty (most wallets have no open bet
    /// between rounds; an emptied buffer would keep ~700 bytes).
    pub fn release_if_empty(&mut self) {
        if self.bets.is_empty() && (self.bets.capacity() > 0 || self.keys.capacity() > 0) {
            *self = OpenBets::default();
        }
    }

    /// Panics unless every key is its bet's.
    pub fn check(&self) {
        assert_eq!(self.keys.len(), self.bets.len(), "open bets and their keys differ in number");
        for (key, bet) in self.keys.iter().zip(&self.bets) {
            assert_eq!(*key, key_of(bet), "open bet {:?} has a stale key", bet.tx);
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wallet {
    pub operator: OperatorId,
    pub blocked: bool,
    /// Sorted by currency.
    pub accounts: Vec<Account>,
    /// In placement order.
    pub open_bets: OpenBets,
    /// In opening order.
    pub sessions: Vec<Session>,
    /// Sorted by currency; at most one per currency.
    pub bonuses: Vec<ActiveBonus>,
    pub sweeps: Option<Box<Sweeps>>,
    pub responsible: Option<Box<Responsible>>,
    /// Provably-fair seeds, once the player has set a client seed.
    pub fair: Option<Box<FairSeeds>>,
}

impl Wallet {
    pub fn new(operator: OperatorId) -> Wallet {
        Wallet {
            operator,
            blocked: false,
            accounts: Vec::new(),
            open_bets: OpenBets::default(),
            sessions: Vec::new(),
            bonuses: Vec::new(),
            sweeps: None,
            responsible: None,
            fair: None,
        }
    }

    pub fn account(&self, currency: Currency) -> Option<&Account> {
        self.accounts.iter().find(|a| a.currency == currency)
    }

    pub fn balance(&self, currency: Currency) -> Balance {
        let pockets = self.account(currency).map(|a| a.pockets).unwrap_or_default();
        Balance { currency, cash: pockets.cash, bonus: pockets.bonus, promo: pockets.promo }
    }

    /// The account for `currency`, created empty if the wallet has room.
    pub fn account_mut(&mut self, currency: Currency) -> Result<&mut Account, Rejection> {
        let at = match self.accounts.binary_search_by(|a| a.currency.cmp(&currency)) {
            Ok(at) => at,
            Err(at) => {
                if self.accounts.len() >= CURRENCIES_PER_WALLET_MAX {
                    return Err(Rejection::TooManyCurrencies);
                }
                self.accounts.insert(at, Account { currency, pockets: Pockets::default() });
                at
            }
        };
        Ok(&mut self.accounts[at])
    }

    pub fn bonus(&self, currency: Currency) -> Option<&ActiveBonus> {
        self.bonuses.iter().find(|b| b.currency == currency)
    }

    pub fn bonus_mut(&mut self, currency: Currency) -> Option<&mut ActiveBonus> {
        self.bonuses.iter_mut().find(|b| b.currency == currency)
    }

    pub fn responsible_mut(&mut self) -> &mut Responsible {
        self.responsible.get_or_insert_with(Default::default)
    }

    pub fn sweeps_mut(&mut self) -> &mut Sweeps {
        self.sweeps.get_or_insert_with(Default::default)
    }

    /// Drops sub-state that has become empty, so idle wallets stay small
    /// and snapshots stay canonical.
    pub fn tidy(&mut self) {
        self.open_bets.release_if_empty();
        if self.sweeps.as_ref().is_some_and(|s| s.is_empty()) {
            self.sweeps = None;
        }
        if self.responsible.as_ref().is_some_and(|r| **r == Responsible::default()) {
            self.responsible = None;
        }
    }
}

/// How a currency's pockets behave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PocketRules {
    /// Cash, bonus and promo; stakes from cash then bonus.
    Standard,
    /// Sweeps Coins: redeemable (cash), unplayed (bonus), pending (promo);
    /// stakes from unplayed then redeemable.
    SweepsCoins,
}

impl PocketRules {
    pub fn of(currency: Currency) -> PocketRules {
        if currency == Currency::SWEEPS_COINS {
            PocketRules::SweepsCoins
        } else {
            PocketRules::Standard
        }
    }
}

/// Splits an automatic stake across pockets in the documented order.
pub fn split_auto_stake(pockets: &Pockets, total: Money, rules: PocketRules) -> Result<Pockets, Rejection> {
    let (first, second) = match rules {
        PocketRules::Standard => (pockets.cash, pockets.bonus),
        PocketRules::SweepsCoins => (pockets.bonus, pockets.cash),
    };
    let from_first = first.min(total);
    let from_second = total.saturating_sub(from_first);
    if from_second > second {
        return Err(Rejection::InsufficientFunds);
    }
    Ok(match rules {
        PocketRules::Standard => Pockets { cash: from_first, bonus: from_second, promo: Money::ZERO },
        PocketRules::SweepsCoins => Pockets { cash: from_second, bonus: from_first, promo: Money::ZERO },
    })
}

/// Takes `stake` out of `pockets`, each part from its pocket.
pub fn debit(pockets: &mut Pockets, stake: &Pockets) -> Result<(), Rejection> {
    let cash = pockets.cash.checked_sub(stake.cash).ok_or(Rejection::InsufficientFunds)?;
    let bonus = pockets.bonus.checked_sub(stake.bonus).ok_or(Rejection::InsufficientBonus)?;
    let promo = pockets.promo.checked_sub(stake.promo).ok_or(Rejection::InsufficientPromo)?;
    *pockets = Pockets { cash, bonus, promo };
    Ok(())
}

/// Adds `credit` to `pockets`, all or nothing.
pub fn credit(pockets: &mut Pockets, credit: &Pockets) -> Result<(), Rejection> {
    let cash = pockets.cash.checked_add(credit.cash).ok_or(Rejection::BalanceOverflow)?;
    let bonus = pockets.bonus.checked_add(credit.bonus).ok_or(Rejection::BalanceOverflow)?;
    let promo = pockets.promo.checked_add(credit.promo).ok_or(Rejection::BalanceOverflow)?;
    *pockets = Pockets { cash, bonus, promo };
    Ok(())
}

/// The automatic split of a win: bonus in the proportion the bet was paid
/// from bonus, rounded down; the rest to cash. (Sweeps Coins wins are all
/// redeemable, i.e. cash.)
pub fn split_auto_win(win: Money, stake: &Pockets, rules: PocketRules) -> Pockets {
    let bonus = match (rules, stake.total()) {
        (PocketRules::Standard, Some(total)) if !total.is_zero() => {
            win.mul_div_floor(stake.bonus.minor(), total.minor()).unwrap_or(Money::ZERO)
        }
        _ => Money::ZERO,
    };
    Pockets { cash: win.saturating_sub(bonus), bonus, promo: Money::ZERO }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn bet(tx: u8, round: u8) -> OpenBet {
        OpenBet {
            tx: TxId::new(&format!("tx-{tx}")).expect("valid"),
            round: RoundId::new(&format!("round-{round}")).expect("valid"),
            game: GameId::new("slot").expect("valid"),
            currency: Currency::new("EUR").expect("valid"),
            stake: Pockets::default(),
            won: Money::ZERO,
            placed_ms: u64::from(tx),
            counted: false,
            bonus: BonusLink::None,
            alias: None,
            paid: false,
        }
    }

    proptest! {
        /// Pushes and removals (a few rounds, ids reused once freed) keep
        /// the keys true, and the keyed lookups find what a scan of the
        /// bets finds.
        #[test]
        fn keyed_lookups_find_what_a_scan_finds(steps in prop::collection::vec((any::<bool>(), 0u8..24, 0u8..4, 0usize..64), 1..200)) {
            let mut open = OpenBets::default();
            let mut plain: Vec<OpenBet> = Vec::new();
            for (push, tx, round, at) in steps {
                if push && plain.iter().all(|b| b.tx != bet(tx, round).tx) {
                    open.push(bet(tx, round));
                    plain.push(bet(tx, round));
                } else if !plain.is_empty() {
                    let at = at % plain.len();
                    prop_assert_eq!(open.remove(at), plain.remove(at));
                }
                open.check();
                prop_assert_eq!(open.to_vec(), plain.clone());
                for probe in 0..24 {
                    let tx = bet(probe, 0).tx;
                    prop_assert_eq!(open.position_of_tx(&tx), plain.iter().position(|b| b.tx == tx));
                }
                for probe in 0..5 {
                    let round = bet(0, probe).round;
                    prop_assert_eq!(open.position_of_round(&round), plain.iter().position(|b| b.round == round));
                    let listed: Vec<&OpenBet> = open.in_round(&round).collect();
                    let scanned: Vec<&OpenBet> = plain.iter().filter(|b| b.round == round).collect();
                    prop_assert_eq!(listed, scanned);
                }
            }
            open.release_if_empty();
            prop_assert_eq!(OpenBets::from(plain.clone()), open.clone());
            open.check();
        }
    }

    #[test]
    fn a_stale_key_is_caught() {
        let mut open = OpenBets::from(vec![bet(1, 1), bet(2, 1)]);
        open.check();
        open.bets[1].round = bet(2, 2).round;
        assert!(std::panic::catch_unwind(|| open.check()).is_err());
    }
}
