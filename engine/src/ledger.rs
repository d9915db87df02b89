//! The shard's books, per currency: money that entered (deposits, Gold
//! Coins purchases), money that left (withdrawals, paid redemptions), and
//! the house account, which takes stakes, pays wins and funds grants. The
//! house may go below zero (it pays more than it took); wallets never do.
//!
//! Conservation, checked after every apply in tests: for each currency,
//! the sum of every wallet's pockets plus the house equals deposited minus
//! withdrawn.

use std::collections::BTreeMap;

use crate::currency::Currency;
use crate::money::Money;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub deposited: u128,
    pub withdrawn: u128,
    pub house: i128,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    totals: BTreeMap<Currency, Totals>,
}

impl Ledger {
    fn entry(&mut self, currency: Currency) -> &mut Totals {
        self.totals.entry(currency).or_default()
    }

    pub fn deposit(&mut self, currency: Currency, amount: Money) {
        let totals = self.entry(currency);
        totals.deposited = totals.deposited.checked_add(u128::from(amount.minor())).expect("u128 deposits cannot overflow");
    }

    pub fn withdraw(&mut self, currency: Currency, amount: Money) {
        let totals = self.entry(currency);
        totals.withdrawn = totals.withdrawn.checked_add(u128::from(amount.minor())).expect("u128 withdrawals cannot overflow");
    }

    /// A stake or a forfeiture: player to house.
    pub fn to_house(&mut self, currency: Currency, amount: Money) {
        let totals = self.entry(currency);
        totals.house = totals.house.checked_add(i128::from(amount.minor())).expect("i128 house cannot overflow");
    }

    /// A win, a refund or a grant: house to player.
    pub fn from_house(&mut self, currency: Currency, amount: Money) {
        let totals = self.entry(currency);
        totals.house = totals.house.checked_sub(i128::from(amount.minor())).expect("i128 house cannot overflow");
    }

    pub fn totals(&self) -> impl Iterator<Item = (&Currency, &Totals)> {
        self.totals.iter()
    }

    pub fn get(&self, currency: Currency) -> Totals {
        self.totals.get(&currency).copied().unwrap_or_default()
    }

    pub(crate) fn restore(&mut self, currency: Currency, totals: Totals) {
        self.totals.insert(currency, totals);
    }
}
