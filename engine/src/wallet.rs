//! The wallet actor's state: currency accounts with their pockets, open
//! bets, live sessions, the active bonuses, sweepstakes lots and
//! responsible-gaming state. Small when idle: everything optional is empty
//! or `None`, and idle wallets are passivated to their encoded bytes.

use crate::bonus::ActiveBonus;
use crate::currency::Currency;
use crate::games::fair::FairSeeds;
use crate::ids::{BonusId, GameId, OperatorId, RoundId, TxId};
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

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wallet {
    pub operator: OperatorId,
    pub blocked: bool,
    /// Sorted by currency.
    pub accounts: Vec<Account>,
    /// In placement order.
    pub open_bets: Vec<OpenBet>,
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
            open_bets: Vec::new(),
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

    pub fn open_bet_position(&self, tx: &TxId) -> Option<usize> {
        self.open_bets.iter().position(|b| b.tx == *tx)
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
        // Most wallets have no open bet between rounds: give the buffer back
        // rather than keep ~700 bytes per wallet that has ever bet.
        if self.open_bets.is_empty() && self.open_bets.capacity() > 0 {
            self.open_bets = Vec::new();
        }
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
