//! Responsible gaming: deposit, loss and wager limits per day, week and
//! month; a session time limit; self-exclusion and cool-off.
//!
//! Rules, as regulators and the industry's wallet APIs state them:
//! - Checked atomically with the debit (or deposit) in the same apply.
//! - The lowest applicable limit wins: a player-set and an operator-set
//!   limit may both exist for the same kind and period; the smaller binds.
//! - A player's decrease (or a first limit) applies at once. An increase or a
//!   removal waits `limit_increase_delay_ms` (24 h by default) and then
//!   applies. Operator-set limits apply at once either way.
//! - Periods are calendar windows in UTC: the day, the ISO week (from
//!   Monday), the calendar month. Usage counts from when the player's first
//!   limit was set (the engine keeps no usage for players without limits,
//!   which keeps idle wallets small).
//! - Loss is net: stakes minus wins minus refunds within the window. A stake
//!   is refused if net loss plus the stake would pass the limit, since the
//!   stake may be lost in full.

use crate::currency::Currency;
use crate::money::Money;
use crate::reply::Rejection;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum LimitKind {
    Deposit = 1,
    Loss = 2,
    Wager = 3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum LimitPeriod {
    Day = 1,
    Week = 2,
    Month = 3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum LimitSource {
    Player = 1,
    Operator = 2,
}

impl LimitKind {
    pub const ALL: [LimitKind; 3] = [LimitKind::Deposit, LimitKind::Loss, LimitKind::Wager];
    pub fn from_u8(value: u8) -> Option<LimitKind> {
        LimitKind::ALL.into_iter().find(|k| *k as u8 == value)
    }
    fn refusal(self) -> Rejection {
        match self {
            LimitKind::Deposit => Rejection::DepositLimitExceeded,
            LimitKind::Loss => Rejection::LossLimitExceeded,
            LimitKind::Wager => Rejection::WagerLimitExceeded,
        }
    }
}

impl LimitPeriod {
    pub const ALL: [LimitPeriod; 3] = [LimitPeriod::Day, LimitPeriod::Week, LimitPeriod::Month];
    pub fn from_u8(value: u8) -> Option<LimitPeriod> {
        LimitPeriod::ALL.into_iter().find(|p| *p as u8 == value)
    }

    /// Start of the calendar window holding `now_ms`, in ms since the epoch.
    pub fn window_start_ms(self, now_ms: u64) -> u64 {
        const DAY_MS: u64 = 86_400_000;
        let days = now_ms / DAY_MS;
        let start_days = match self {
            LimitPeriod::Day => days,
            // 1970-01-01 was a Thursday: three days after a Monday.
            LimitPeriod::Week => days.saturating_sub((days + 3) % 7),
            LimitPeriod::Month => days - (day_of_month(days) - 1),
        };
        start_days * DAY_MS
    }
}

impl LimitSource {
    pub fn from_u8(value: u8) -> Option<LimitSource> {
        [LimitSource::Player, LimitSource::Operator].into_iter().find(|s| *s as u8 == value)
    }
}

/// Day of the month (1..=31) of a day count since 1970-01-01, by Howard
/// Hinnant's `civil_from_days`, restricted to dates after the epoch.
fn day_of_month(days: u64) -> u64 {
    let z = days + 719_468;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    doy - (153 * mp + 2) / 5 + 1
}

/// A player's raise or removal waiting out the delay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending<T> {
    pub value: Option<T>,
    pub effective_ms: u64,
}

/// One bound (a money limit or the session time limit) from both sources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bound<T> {
    pub player: Option<T>,
    pub operator: Option<T>,
    pub pending: Option<Pending<T>>,
}

impl<T: Copy + Ord> Bound<T> {
    fn empty() -> Bound<T> {
        Bound { player: None, operator: None, pending: None }
    }

    /// Applies a pending raise whose time has come.
    fn settle(&mut self, now_ms: u64) {
        if let Some(pending) = self.pending {
            if pending.effective_ms <= now_ms {
                self.player = pending.value;
                self.pending = None;
            }
        }
    }

    /// The binding value now: the lowest of the two sources.
    pub fn effective(&self, now_ms: u64) -> Option<T> {
        let player = match self.pending {
            Some(pending) if pending.effective_ms <= now_ms => pending.value,
            _ => self.player,
        };
        match (player, self.operator) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn set(&mut self, source: LimitSource, value: Option<T>, now_ms: u64, delay_ms: u64) {
        self.settle(now_ms);
        match source {
            LimitSource::Operator => self.operator = value,
            LimitSource::Player => {
                // None means "no limit", the loosest possible value.
                let tighter_or_equal = match (value, self.player) {
                    (_, None) => true,
                    (None, Some(_)) => false,
                    (Some(new), Some(current)) => new <= current,
                };
                if tighter_or_equal {
                    self.player = value;
                    self.pending = None;
                } else {
                    self.pending = Some(Pending { value, effective_ms: now_ms.saturating_add(delay_ms) });
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.player.is_none() && self.operator.is_none() && self.pending.is_none()
    }
}

/// A money limit for one kind, period and currency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MoneyLimit {
    pub kind: LimitKind,
    pub period: LimitPeriod,
    pub currency: Currency,
    pub bound: Bound<Money>,
}

/// What a player moved within the current window of one period and currency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub currency: Currency,
    pub period: LimitPeriod,
    pub window_start_ms: u64,
    pub deposited: Money,
    pub wagered: Money,
    /// Stakes minus wins minus refunds; negative when the player is ahead.
    pub net_loss: i128,
}

impl Usage {
    fn roll(&mut self, now_ms: u64) {
        let start = self.period.window_start_ms(now_ms);
        if start != self.window_start_ms {
            *self = Usage { window_start_ms: start, deposited: Money::ZERO, wagered: Money::ZERO, net_loss: 0, ..*self };
        }
    }
}

/// The largest number of money limits a player may hold (3 kinds x 3
/// periods x 4 currencies).
pub const MONEY_LIMITS_MAX: usize = 36;

/// All responsible-gaming state of one player. Absent (`None` in the wallet)
/// for players who never set a limit or exclusion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Responsible {
    pub limits: Vec<MoneyLimit>,
    pub usage: Vec<Usage>,
    pub session_time: Bound<u64>,
    /// 0: none; `u64::MAX`: permanent.
    pub excluded_until_ms: u64,
    pub cool_off_until_ms: u64,
}

/// A refusal by a limit, for the `LimitHit` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitHit {
    pub kind: LimitKind,
    pub period: LimitPeriod,
    pub limit: Money,
}

impl Default for Responsible {
    fn default() -> Self {
        Responsible { limits: Vec::new(), usage: Vec::new(), session_time: Bound::empty(), excluded_until_ms: 0, cool_off_until_ms: 0 }
    }
}

impl Responsible {
    // Each argument is one field of the limit being changed; a struct for
    // them would only be unpacked again here.
    #[allow(clippy::too_many_arguments)]
    pub fn set_limit(
        &mut self,
        source: LimitSource,
        kind: LimitKind,
        period: LimitPeriod,
        currency: Currency,
        value: Option<Money>,
        now_ms: u64,
        delay_ms: u64,
    ) -> Result<(), Rejection> {
        // Usage is kept per currency with a limit: at most as many currencies
        // as a wallet may hold accounts, which bounds the encoded wallet.
        let tracked = |c: Currency| self.usage.iter().any(|u| u.currency == c);
        if value.is_some() && !tracked(currency) {
            let mut currencies: Vec<Currency> = self.usage.iter().map(|u| u.currency).collect();
            currencies.dedup();
            if currencies.len() >= crate::wallet::CURRENCIES_PER_WALLET_MAX {
                return Err(Rejection::TooManyCurrencies);
            }
        }
        let position = self.limits.iter().position(|l| l.kind == kind && l.period == period && l.currency == currency);
        let index = match position {
            Some(index) => index,
            None => {
                if value.is_none() {
                    return Ok(());
                }
                if self.limits.len() >= MONEY_LIMITS_MAX {
                    return Err(Rejection::InvalidArgument);
                }
                self.limits.push(MoneyLimit { kind, period, currency, bound: Bound::empty() });
                self.limits.sort_by_key(|l| (l.currency, l.kind, l.period));
                self.limits.iter().position(|l| l.kind == kind && l.period == period && l.currency == currency).expect("just inserted")
            }
        };
        self.limits[index].bound.set(source, value, now_ms, delay_ms);
        if self.limits[index].bound.is_empty() {
            self.limits.remove(index);
        }
        for period in LimitPeriod::ALL {
            if !self.usage.iter().any(|u| u.currency == currency && u.period == period) {
                self.usage.push(Usage {
                    currency,
                    period,
                    window_start_ms: period.window_start_ms(now_ms),
                    deposited: Money::ZERO,
                    wagered: Money::ZERO,
                    net_loss: 0,
                });
            }
        }
        self.usage.sort_by_key(|u| (u.currency, u.period));
        Ok(())
    }

    pub fn set_session_time(&mut self, source: LimitSource, value: Option<u64>, now_ms: u64, delay_ms: u64) {
        self.session_time.set(source, value, now_ms, delay_ms);
    }

    /// Self-exclusion can be extended, never shortened.
    pub fn self_exclude(&mut self, until_ms: u64, now_ms: u64) -> Result<(), Rejection> {
        if until_ms <= now_ms {
            return Err(Rejection::InvalidArgument);
        }
        if until_ms < self.excluded_until_ms {
            return Err(Rejection::ExclusionCannotBeShortened);
        }
        self.excluded_until_ms = until_ms;
        Ok(())
    }

    pub fn cool_off(&mut self, until_ms: u64) -> Result<(), Rejection> {
        if until_ms < self.cool_off_until_ms {
            return Err(Rejection::ExclusionCannotBeShortened);
        }
        self.cool_off_until_ms = until_ms;
        Ok(())
    }

    /// Refuses play for excluded or cooling-off players.
    pub fn check_may_play(&self, now_ms: u64) -> Result<(), Rejection> {
        if now_ms < self.excluded_until_ms {
            return Err(Rejection::SelfExcluded);
        }
        if now_ms < self.cool_off_until_ms {
            return Err(Rejection::CoolingOff);
        }
        Ok(())
    }

    pub fn session_time_limit_ms(&self, now_ms: u64) -> Option<u64> {
        self.session_time.effective(now_ms)
    }

    fn settle_and_roll(&mut self, now_ms: u64) {
        for limit in &mut self.limits {
            limit.bound.settle(now_ms);
        }
        for usage in &mut self.usage {
            usage.roll(now_ms);
        }
    }

    fn check(&mut self, now_ms: u64, currency: Currency, kinds: &[LimitKind], amount: Money) -> Result<(), LimitHit> {
        self.settle_and_roll(now_ms);
        for limit in self.limits.iter().filter(|l| l.currency == currency && kinds.contains(&l.kind)) {
            let Some(bound) = limit.bound.effective(now_ms) else {
                continue;
            };
            let Some(usage) = self.usage.iter().find(|u| u.currency == currency && u.period == limit.period) else {
                continue;
            };
            let used: i128 = match limit.kind {
                LimitKind::Deposit => i128::from(usage.deposited.minor()),
                LimitKind::Wager => i128::from(usage.wagered.minor()),
                LimitKind::Loss => usage.net_loss,
            };
            if used + i128::from(amount.minor()) > i128::from(bound.minor()) {
                return Err(LimitHit { kind: limit.kind, period: limit.period, limit: bound });
            }
        }
        Ok(())
    }

    pub fn check_deposit(&mut self, now_ms: u64, currency: Currency, amount: Money) -> Result<(), LimitHit> {
        self.check(now_ms, currency, &[LimitKind::Deposit], amount)
    }

    pub fn check_stake(&mut self, now_ms: u64, currency: Currency, stake: Money) -> Result<(), LimitHit> {
        self.check(now_ms, currency, &[LimitKind::Wager, LimitKind::Loss], stake)
    }

    fn each_usage(&mut self, now_ms: u64, currency: Currency, mut update: impl FnMut(&mut Usage)) {
        for usage in self.usage.iter_mut().filter(|u| u.currency == currency) {
            usage.roll(now_ms);
            update(usage);
        }
    }

    pub fn record_deposit(&mut self, now_ms: u64, currency: Currency, amount: Money) {
        self.each_usage(now_ms, currency, |u| u.deposited = u.deposited.checked_add(amount).unwrap_or(Money::MAX));
    }

    pub fn record_stake(&mut self, now_ms: u64, currency: Currency, stake: Money) {
        self.each_usage(now_ms, currency, |u| {
            u.wagered = u.wagered.checked_add(stake).unwrap_or(Money::MAX);
            u.net_loss += i128::from(stake.minor());
        });
    }

    pub fn record_win(&mut self, now_ms: u64, currency: Currency, win: Money) {
        self.each_usage(now_ms, currency, |u| u.net_loss -= i128::from(win.minor()));
    }

    /// Whether stakes in `currency` are being counted (a limit was set).
    pub fn counts(&self, currency: Currency) -> bool {
        self.usage.iter().any(|u| u.currency == currency)
    }

    /// A refund undoes a counted stake (the caller knows whether it was) in
    /// the windows that still hold the bet.
    pub fn record_refund(&mut self, now_ms: u64, bet_ms: u64, currency: Currency, stake: Money) {
        self.each_usage(now_ms, currency, |u| {
            if u.period.window_start_ms(bet_ms) == u.window_start_ms {
                u.wagered = u.wagered.saturating_sub(stake);
                u.net_loss -= i128::from(stake.minor());
            }
        });
    }
}

impl LimitHit {
    pub fn rejection(&self) -> Rejection {
        self.kind.refusal()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400_000;

    #[test]
    fn windows_follow_the_utc_calendar() {
        // 2026-11-24 (a Tuesday) 13:00 UTC.
        let now = 1_795_525_200_000;
        let day_start = 1_795_478_400_000; // 2026-11-24 00:00
        assert_eq!(LimitPeriod::Day.window_start_ms(now), day_start);
        assert_eq!(LimitPeriod::Week.window_start_ms(now), day_start - DAY); // Monday 23rd
        assert_eq!(LimitPeriod::Month.window_start_ms(now), day_start - 23 * DAY); // 1st
                                                                                   // 2024-03-01 00:00 UTC, after a leap day.
        let march = 1_709_251_200_000;
        assert_eq!(LimitPeriod::Month.window_start_ms(march + 5 * DAY), march);
        assert_eq!(LimitPeriod::Month.window_start_ms(march - 1), march - 29 * DAY);
    }

    #[test]
    fn a_raise_waits_out_the_delay_and_a_cut_applies_at_once() {
        let mut bound = Bound::<Money>::empty();
        let m = |v| Money::from_minor(v).expect("small");
        bound.set(LimitSource::Player, Some(m(100)), 0, DAY);
        assert_eq!(bound.effective(0), Some(m(100)));
        bound.set(LimitSource::Player, Some(m(500)), 10, DAY);
        assert_eq!(bound.effective(10 + DAY - 1), Some(m(100)));
        assert_eq!(bound.effective(10 + DAY), Some(m(500)));
        bound.set(LimitSource::Player, Some(m(50)), 20, DAY);
        assert_eq!(bound.effective(20), Some(m(50)));
        assert_eq!(bound.pending, None);
        bound.set(LimitSource::Operator, Some(m(30)), 30, DAY);
        assert_eq!(bound.effective(30), Some(m(30)), "the lowest applicable limit wins");
    }
}
