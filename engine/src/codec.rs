//! Canonical binary encoding of shard state: fixed-width little-endian
//! integers, counts before lists, lists in their canonical order. Used for
//! snapshots and for passivated wallets, so that two shards that applied the
//! same commands hold byte-identical snapshots whichever wallets happen to
//! be resident. Every read is validated: a decoder never trusts its input.

use crate::bonus::ActiveBonus;
use crate::currency::{Currency, CURRENCY_CODE_MAX_LEN};
use crate::games::fair::FairSeeds;
use crate::ids::{BonusId, ExternalId, GameId, OperatorId, RedemptionId, RoundId, SessionId, TxId, EXTERNAL_ID_MAX_LEN};
use crate::limits::{Bound, LimitKind, LimitPeriod, MoneyLimit, Pending, Responsible, Usage};
use crate::money::{Money, Pockets};
use crate::reply::Balance;
use crate::session::{Locale, Session};
use crate::sweeps::{Lot, Sweeps};
use crate::wallet::{Account, BonusLink, OpenBet, Wallet};

/// Why bytes could not be decoded. The offset is where reading stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated at byte {offset}: needed {needed} more bytes")]
    Truncated { offset: usize, needed: usize },
    #[error("invalid {what} at byte {offset}")]
    Invalid { what: &'static str, offset: usize },
    #[error("{extra} trailing bytes after the end")]
    Trailing { extra: usize },
    #[error("bad magic: not a shard snapshot")]
    Magic,
    #[error("unsupported format version {0}")]
    Version(u16),
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum { stored: u32, computed: u32 },
}

#[derive(Debug, Default)]
pub struct Writer {
    pub bytes: Vec<u8>,
}

impl Writer {
    pub fn u8(&mut self, value: u8) {
        self.bytes.push(value);
    }
    pub fn u16(&mut self, value: u16) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }
    pub fn u32(&mut self, value: u32) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }
    pub fn u64(&mut self, value: u64) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }
    pub fn u128(&mut self, value: u128) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }
    pub fn i128(&mut self, value: i128) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }
    pub fn i64(&mut self, value: i64) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }
    pub fn raw(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }
    pub fn money(&mut self, value: Money) {
        self.u64(value.minor());
    }
    pub fn pockets(&mut self, value: &Pockets) {
        self.money(value.cash);
        self.money(value.bonus);
        self.money(value.promo);
    }
    pub fn id(&mut self, value: &ExternalId) {
        let bytes = value.as_bytes();
        self.u8(bytes.len() as u8);
        self.raw(bytes);
    }
    pub fn currency(&mut self, value: Currency) {
        self.raw(&value.to_bytes());
    }
    pub fn balance(&mut self, value: &Balance) {
        self.currency(value.currency);
        self.pockets(&Pockets { cash: value.cash, bonus: value.bonus, promo: value.promo });
    }
    /// Lists are short and bounded by named constants (well under 256).
    pub fn count(&mut self, len: usize) {
        self.u8(u8::try_from(len).expect("per-wallet lists are bounded far below 256"));
    }
    /// A presence flag (0 or 1), then the value if present.
    pub fn option_u64(&mut self, value: Option<u64>) {
        match value {
            Some(v) => {
                self.u8(1);
                self.u64(v);
            }
            None => self.u8(0),
        }
    }
    /// A presence flag, then the id if present.
    pub fn option_id(&mut self, value: Option<&ExternalId>) {
        match value {
            Some(id) => {
                self.u8(1);
                self.id(id);
            }
            None => self.u8(0),
        }
    }
    /// A presence flag, then country and language, two letters each.
    pub fn locale(&mut self, value: Option<Locale>) {
        match value {
            Some(locale) => {
                self.u8(1);
                self.raw(locale.country().as_bytes());
                self.raw(locale.language().as_bytes());
            }
            None => self.u8(0),
        }
    }
    fn bound(&mut self, bound: &Bound<u64>) {
        self.option_u64(bound.player);
        self.option_u64(bound.operator);
        match bound.pending {
            Some(pending) => {
                self.u8(1);
                self.option_u64(pending.value);
                self.u64(pending.effective_ms);
            }
            None => self.u8(0),
        }
    }
}

#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, offset: 0 }
    }
    pub fn offset(&self) -> usize {
        self.offset
    }
    pub fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.offset.checked_add(len).filter(|end| *end <= self.bytes.len());
        let Some(end) = end else {
            return Err(DecodeError::Truncated { offset: self.offset, needed: len - (self.bytes.len() - self.offset) });
        };
        let slice = &self.bytes[self.offset..end];
        self.offset = end;
        Ok(slice)
    }
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    pub fn invalid(&self, what: &'static str) -> DecodeError {
        DecodeError::Invalid { what, offset: self.offset }
    }
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub fn u128(&mut self) -> Result<u128, DecodeError> {
        Ok(u128::from_le_bytes(self.array()?))
    }
    pub fn i128(&mut self) -> Result<i128, DecodeError> {
        Ok(i128::from_le_bytes(self.array()?))
    }
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.offset
    }
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.invalid("flag")),
        }
    }
    pub fn money(&mut self) -> Result<Money, DecodeError> {
        let minor = self.u64()?;
        Money::from_minor(minor).ok_or_else(|| self.invalid("amount"))
    }
    pub fn pockets(&mut self) -> Result<Pockets, DecodeError> {
        Ok(Pockets { cash: self.money()?, bonus: self.money()?, promo: self.money()? })
    }
    pub fn id(&mut self) -> Result<ExternalId, DecodeError> {
        let len = usize::from(self.u8()?);
        if len > EXTERNAL_ID_MAX_LEN {
            return Err(self.invalid("id length"));
        }
        let bytes = self.take(len)?;
        ExternalId::from_bytes(bytes).map_err(|_| self.invalid("id"))
    }
    pub fn currency(&mut self) -> Result<Currency, DecodeError> {
        let raw: [u8; CURRENCY_CODE_MAX_LEN] = self.array()?;
        Currency::from_raw(raw).ok_or_else(|| self.invalid("currency"))
    }
    pub fn balance(&mut self) -> Result<Balance, DecodeError> {
        let currency = self.currency()?;
        let pockets = self.pockets()?;
        Ok(Balance { currency, cash: pockets.cash, bonus: pockets.bonus, promo: pockets.promo })
    }
    pub fn count(&mut self, max: usize) -> Result<usize, DecodeError> {
        let count = usize::from(self.u8()?);
        if count > max {
            return Err(self.invalid("list length"));
        }
        Ok(count)
    }
    pub fn option_u64(&mut self) -> Result<Option<u64>, DecodeError> {
        Ok(if self.bool()? { Some(self.u64()?) } else { None })
    }
    pub fn option_id(&mut self) -> Result<Option<ExternalId>, DecodeError> {
        Ok(if self.bool()? { Some(self.id()?) } else { None })
    }
    /// Only the canonical form (upper-case letters) is accepted.
    pub fn locale(&mut self) -> Result<Option<Locale>, DecodeError> {
        if !self.bool()? {
            return Ok(None);
        }
        let mut code = || -> Result<String, DecodeError> {
            let (a, b) = (self.u8()?, self.u8()?);
            if !(a.is_ascii_uppercase() && b.is_ascii_uppercase()) {
                return Err(self.invalid("locale"));
            }
            Ok(String::from_utf8(vec![a, b]).expect("ASCII"))
        };
        let (country, language) = (code()?, code()?);
        Ok(Some(Locale::new(&country, &language).map_err(|_| self.invalid("locale"))?))
    }
    fn bound(&mut self) -> Result<Bound<u64>, DecodeError> {
        let player = self.option_u64()?;
        let operator = self.option_u64()?;
        let pending = if self.bool()? { Some(Pending { value: self.option_u64()?, effective_ms: self.u64()? }) } else { None };
        Ok(Bound { player, operator, pending })
    }
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.bytes.len() - self.offset {
            0 => Ok(()),
            extra => Err(DecodeError::Trailing { extra }),
        }
    }
}

fn money_bound(bound: &Bound<Money>) -> Bound<u64> {
    Bound {
        player: bound.player.map(Money::minor),
        operator: bound.operator.map(Money::minor),
        pending: bound.pending.map(|p| Pending { value: p.value.map(Money::minor), effective_ms: p.effective_ms }),
    }
}

fn bound_money(reader: &Reader<'_>, bound: Bound<u64>) -> Result<Bound<Money>, DecodeError> {
    let convert = |value: Option<u64>| value.map(|v| Money::from_minor(v).ok_or_else(|| reader.invalid("limit"))).transpose();
    let pending = match bound.pending {
        Some(p) => Some(Pending { value: convert(p.value)?, effective_ms: p.effective_ms }),
        None => None,
    };
    Ok(Bound { player: convert(bound.player)?, operator: convert(bound.operator)?, pending })
}

pub fn encode_wallet(wallet: &Wallet, out: &mut Writer) {
    out.u32(wallet.operator.0);
    out.u8(u8::from(wallet.blocked));
    out.count(wallet.accounts.len());
    for account in &wallet.accounts {
        out.currency(account.currency);
        out.pockets(&account.pockets);
    }
    out.count(wallet.open_bets.len());
    for bet in &wallet.open_bets {
        out.id(&bet.tx.0);
        out.id(&bet.round.0);
        out.id(&bet.game.0);
        out.currency(bet.currency);
        out.pockets(&bet.stake);
        out.money(bet.won);
        out.u64(bet.placed_ms);
        out.u8(u8::from(bet.counted));
        let tag = match bet.bonus {
            BonusLink::None => 0,
            BonusLink::Active(_) => 1,
            BonusLink::Converted(_) => 2,
            BonusLink::Forfeited(_) => 3,
        };
        out.u8(tag);
        if let Some(id) = bet.bonus.id() {
            out.id(&id.0);
        }
        out.option_id(bet.alias.as_ref().map(|a| &a.0));
        out.u8(u8::from(bet.paid));
    }
    out.count(wallet.sessions.len());
    for session in &wallet.sessions {
        out.u64(session.id.0);
        out.id(&session.game.0);
        out.currency(session.currency);
        out.u64(session.opened_ms);
        out.u64(session.expires_ms);
        out.locale(session.locale);
    }
    out.count(wallet.bonuses.len());
    for bonus in &wallet.bonuses {
        out.id(&bonus.bonus.0);
        out.currency(bonus.currency);
        out.money(bonus.granted);
        out.money(bonus.wagering_required);
        out.money(bonus.wagered);
        out.money(bonus.max_bet);
        out.u64(bonus.expires_ms);
        out.count(bonus.weights.len());
        for (game, percent) in &bonus.weights {
            out.id(&game.0);
            out.u8(*percent);
        }
        out.u8(bonus.default_weight_percent);
    }
    match &wallet.sweeps {
        None => out.u8(0),
        Some(sweeps) => {
            out.u8(1);
            out.count(sweeps.lots.len());
            for lot in &sweeps.lots {
                out.money(lot.amount);
                out.money(lot.remaining);
            }
            out.count(sweeps.redemptions.len());
            for (id, amount) in &sweeps.redemptions {
                out.id(&id.0);
                out.money(*amount);
            }
        }
    }
    match &wallet.responsible {
        None => out.u8(0),
        Some(responsible) => {
            out.u8(1);
            out.count(responsible.limits.len());
            for limit in &responsible.limits {
                out.u8(limit.kind as u8);
                out.u8(limit.period as u8);
                out.currency(limit.currency);
                out.bound(&money_bound(&limit.bound));
            }
            out.count(responsible.usage.len());
            for usage in &responsible.usage {
                out.currency(usage.currency);
                out.u8(usage.period as u8);
                out.u64(usage.window_start_ms);
                out.money(usage.deposited);
                out.money(usage.wagered);
                out.i128(usage.net_loss);
            }
            out.bound(&responsible.session_time);
            out.u64(responsible.excluded_until_ms);
            out.u64(responsible.cool_off_until_ms);
        }
    }
    match &wallet.fair {
        None => out.u8(0),
        Some(fair) => {
            out.u8(1);
            out.raw(&fair.server_seed);
            out.id(&fair.client_seed);
            out.u64(fair.nonce);
        }
    }
}

pub fn decode_wallet(reader: &mut Reader<'_>) -> Result<Wallet, DecodeError> {
    use crate::bonus::BONUS_WEIGHTS_MAX;
    use crate::limits::MONEY_LIMITS_MAX;
    use crate::session::SESSIONS_PER_PLAYER_MAX;
    use crate::sweeps::{REDEMPTIONS_PENDING_MAX, SWEEPS_LOTS_MAX};
    use crate::wallet::{CURRENCIES_PER_WALLET_MAX, OPEN_BETS_PER_WALLET_MAX};

    let mut wallet = Wallet::new(OperatorId(reader.u32()?));
    wallet.blocked = reader.bool()?;
    for _ in 0..reader.count(CURRENCIES_PER_WALLET_MAX)? {
        wallet.accounts.push(Account { currency: reader.currency()?, pockets: reader.pockets()? });
    }
    for _ in 0..reader.count(OPEN_BETS_PER_WALLET_MAX)? {
        let bet = OpenBet {
            tx: TxId(reader.id()?),
            round: RoundId(reader.id()?),
            game: GameId(reader.id()?),
            currency: reader.currency()?,
            stake: reader.pockets()?,
            won: reader.money()?,
            placed_ms: reader.u64()?,
            counted: reader.bool()?,
            bonus: match reader.u8()? {
                0 => BonusLink::None,
                1 => BonusLink::Active(BonusId(reader.id()?)),
                2 => BonusLink::Converted(BonusId(reader.id()?)),
                3 => BonusLink::Forfeited(BonusId(reader.id()?)),
                _ => return Err(reader.invalid("bonus link")),
            },
            alias: reader.option_id()?.map(TxId),
            paid: reader.bool()?,
        };
        if bet.stake.total().is_none() {
            return Err(reader.invalid("stake"));
        }
        wallet.open_bets.push(bet);
    }
    for _ in 0..reader.count(SESSIONS_PER_PLAYER_MAX)? {
        wallet.sessions.push(Session {
            id: SessionId(reader.u64()?),
            game: GameId(reader.id()?),
            currency: reader.currency()?,
            opened_ms: reader.u64()?,
            expires_ms: reader.u64()?,
            locale: reader.locale()?,
        });
    }
    for _ in 0..reader.count(CURRENCIES_PER_WALLET_MAX)? {
        let bonus = BonusId(reader.id()?);
        let currency = reader.currency()?;
        let granted = reader.money()?;
        let wagering_required = reader.money()?;
        let wagered = reader.money()?;
        let max_bet = reader.money()?;
        let expires_ms = reader.u64()?;
        let mut weights = Vec::new();
        for _ in 0..reader.count(BONUS_WEIGHTS_MAX)? {
            weights.push((GameId(reader.id()?), reader.u8()?));
        }
        let default_weight_percent = reader.u8()?;
        wallet.bonuses.push(ActiveBonus {
            bonus,
            currency,
            granted,
            wagering_required,
            wagered,
            max_bet,
            expires_ms,
            weights,
            default_weight_percent,
        });
    }
    if reader.bool()? {
        let mut sweeps = Sweeps::default();
        for _ in 0..reader.count(SWEEPS_LOTS_MAX)? {
            sweeps.lots.push(Lot { amount: reader.money()?, remaining: reader.money()? });
        }
        for _ in 0..reader.count(REDEMPTIONS_PENDING_MAX)? {
            sweeps.redemptions.push((RedemptionId(reader.id()?), reader.money()?));
        }
        wallet.sweeps = Some(Box::new(sweeps));
    }
    if reader.bool()? {
        let mut responsible = Responsible::default();
        for _ in 0..reader.count(MONEY_LIMITS_MAX)? {
            let kind = LimitKind::from_u8(reader.u8()?).ok_or_else(|| reader.invalid("limit kind"))?;
            let period = LimitPeriod::from_u8(reader.u8()?).ok_or_else(|| reader.invalid("limit period"))?;
            let currency = reader.currency()?;
            let raw = reader.bound()?;
            let bound = bound_money(reader, raw)?;
            responsible.limits.push(MoneyLimit { kind, period, currency, bound });
        }
        for _ in 0..reader.count(3 * CURRENCIES_PER_WALLET_MAX)? {
            let currency = reader.currency()?;
            let period = LimitPeriod::from_u8(reader.u8()?).ok_or_else(|| reader.invalid("limit period"))?;
            responsible.usage.push(Usage {
                currency,
                period,
                window_start_ms: reader.u64()?,
                deposited: reader.money()?,
                wagered: reader.money()?,
                net_loss: reader.i128()?,
            });
        }
        responsible.session_time = reader.bound()?;
        responsible.excluded_until_ms = reader.u64()?;
        responsible.cool_off_until_ms = reader.u64()?;
        wallet.responsible = Some(Box::new(responsible));
    }
    if reader.bool()? {
        let server_seed: [u8; 32] = reader.array()?;
        wallet.fair = Some(Box::new(FairSeeds { server_seed, client_seed: reader.id()?, nonce: reader.u64()? }));
    }
    Ok(wallet)
}

/// One wallet as standalone bytes (a passivated actor).
pub fn wallet_to_bytes(wallet: &Wallet) -> Box<[u8]> {
    let mut writer = Writer::default();
    encode_wallet(wallet, &mut writer);
    writer.bytes.into_boxed_slice()
}

pub fn wallet_from_bytes(bytes: &[u8]) -> Result<Wallet, DecodeError> {
    let mut reader = Reader::new(bytes);
    let wallet = decode_wallet(&mut reader)?;
    reader.finish()?;
    Ok(wallet)
}

/// CRC-32C (Castagnoli), the checksum of snapshots: the `crc32c` crate,
/// which uses the CPU's CRC instruction (SSE 4.2) where there is one; a
/// byte-at-a-time table was a quarter of a snapshot's time.
pub fn crc32c(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }
}
