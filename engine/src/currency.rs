//! Currencies: a short code and, per operator, a minor-unit scale.

use std::fmt;

use crate::reply::Rejection;

/// Longest currency code, in bytes ("USDT" and "GC" fit; ISO 4217 codes are 3).
pub const CURRENCY_CODE_MAX_LEN: usize = 8;

/// The largest number of decimal places a currency may have (satoshis are 8).
pub const CURRENCY_SCALE_MAX: u8 = 12;

/// A currency code: 1 to 8 bytes of `A-Z` or `0-9`, stored inline.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Currency([u8; CURRENCY_CODE_MAX_LEN]);

impl Currency {
    /// Gold Coins: the sweepstakes play currency, bought, never redeemable.
    pub const GOLD_COINS: Currency = Currency(*b"GC\0\0\0\0\0\0");
    /// Sweeps Coins: granted, never bought; redeemable once played through.
    pub const SWEEPS_COINS: Currency = Currency(*b"SC\0\0\0\0\0\0");

    pub fn new(code: &str) -> Result<Currency, Rejection> {
        let bytes = code.as_bytes();
        if bytes.is_empty() || bytes.len() > CURRENCY_CODE_MAX_LEN || !bytes.iter().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
            return Err(Rejection::InvalidCurrency);
        }
        let mut inline = [0u8; CURRENCY_CODE_MAX_LEN];
        inline[..bytes.len()].copy_from_slice(bytes);
        Ok(Currency(inline))
    }

    pub fn as_str(&self) -> &str {
        let len = self.0.iter().position(|&b| b == 0).unwrap_or(CURRENCY_CODE_MAX_LEN);
        std::str::from_utf8(&self.0[..len]).expect("currency codes hold ASCII only")
    }

    pub(crate) fn to_bytes(self) -> [u8; CURRENCY_CODE_MAX_LEN] {
        self.0
    }

    pub(crate) fn from_raw(bytes: [u8; CURRENCY_CODE_MAX_LEN]) -> Option<Currency> {
        let len = bytes.iter().position(|&b| b == 0).unwrap_or(CURRENCY_CODE_MAX_LEN);
        let text = std::str::from_utf8(&bytes[..len]).ok()?;
        let parsed = Currency::new(text).ok()?;
        (parsed.0 == bytes).then_some(parsed)
    }

    /// Gold Coins and Sweeps Coins exist only for sweepstakes operators.
    pub fn is_sweepstakes(self) -> bool {
        self == Currency::GOLD_COINS || self == Currency::SWEEPS_COINS
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A currency an operator accepts, with its number of decimal places. The
/// engine counts minor units only; the scale is what adapters (the HTTP
/// wallet API's decimal amounts) and reports use to convert exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CurrencySpec {
    pub currency: Currency,
    pub scale: u8,
}
