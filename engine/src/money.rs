//! Money: integers in minor units of a currency, never negative, checked
//! arithmetic only. Requests carry [`Amount`] (the raw signed integer from
//! the wire) and the engine turns it into [`Money`] or refuses it.

use std::fmt;

use crate::reply::Rejection;

/// The largest amount one command may move, in minor units (10^15: ten
/// trillion units of a two-decimal currency). Far below [`Money::MAX`], so
/// that a handful of maximal movements cannot overflow a balance.
pub const AMOUNT_MAX_MINOR: u64 = 1_000_000_000_000_000;

/// A non-negative quantity of minor units. Bounded by `i64::MAX` so every
/// balance fits the signed 64-bit integers of the wire protocols.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(u64);

impl Money {
    pub const ZERO: Money = Money(0);
    pub const MAX: Money = Money(i64::MAX as u64);

    /// A balance or total read from trusted state (snapshot, tests).
    /// Refuses values above [`Money::MAX`].
    pub fn from_minor(minor: u64) -> Option<Money> {
        (minor <= Money::MAX.0).then_some(Money(minor))
    }

    pub fn minor(self) -> u64 {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).and_then(Money::from_minor)
    }

    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0.checked_sub(other.0).map(Money)
    }

    pub fn saturating_sub(self, other: Money) -> Money {
        Money(self.0.saturating_sub(other.0))
    }

    pub fn min(self, other: Money) -> Money {
        Money(self.0.min(other.0))
    }

    /// `self * numerator / denominator`, rounded down, exact in 128 bits.
    pub fn mul_div_floor(self, numerator: u64, denominator: u64) -> Option<Money> {
        if denominator == 0 {
            return None;
        }
        let product = u128::from(self.0) * u128::from(numerator) / u128::from(denominator);
        u64::try_from(product).ok().and_then(Money::from_minor)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An amount as a request states it: a signed count of minor units. The
/// engine validates it (and the gateway before it): negative, zero where a
/// movement is required, and over [`AMOUNT_MAX_MINOR`] are each refused with
/// their own code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Amount(pub i64);

impl Amount {
    /// A movement amount: strictly positive and at most [`AMOUNT_MAX_MINOR`].
    pub fn positive(self) -> Result<Money, Rejection> {
        self.non_negative().and_then(|money| if money.is_zero() { Err(Rejection::ZeroAmount) } else { Ok(money) })
    }

    /// A part of a movement or a limit: zero allowed.
    pub fn non_negative(self) -> Result<Money, Rejection> {
        if self.0 < 0 {
            return Err(Rejection::NegativeAmount);
        }
        let minor = self.0 as u64;
        if minor > AMOUNT_MAX_MINOR {
            return Err(Rejection::AmountTooLarge);
        }
        Ok(Money(minor))
    }
}

/// Amounts held in each pocket of one currency account, or the split of a
/// stake or a win across them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Pockets {
    pub cash: Money,
    pub bonus: Money,
    pub promo: Money,
}

impl Pockets {
    pub fn total(&self) -> Option<Money> {
        self.cash.checked_add(self.bonus)?.checked_add(self.promo)
    }
}
