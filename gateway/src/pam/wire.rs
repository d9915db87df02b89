//! The PAM API's values and ours: ids in their namespaces, decimal amounts
//! in minor units, session tokens, and timestamps.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use engine::{PlayerId, RoundId, SessionId, TxId};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The PAM API's transaction types, each with the two-letter prefix that
/// keeps its ids apart in the engine (a CANCEL may carry the id of the
/// WITHDRAW it cancels, and a DEPOSIT the id of its WITHDRAW).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxType {
    Withdraw,
    Deposit,
    Cancel,
    PromoWithdraw,
    PromoDeposit,
    PromoCancel,
}

impl TxType {
    pub const ALL: [TxType; 6] =
        [TxType::Withdraw, TxType::Deposit, TxType::Cancel, TxType::PromoWithdraw, TxType::PromoDeposit, TxType::PromoCancel];

    pub fn parse(text: &str) -> Option<TxType> {
        TxType::ALL.into_iter().find(|t| t.name() == text)
    }

    pub fn name(self) -> &'static str {
        match self {
            TxType::Withdraw => "WITHDRAW",
            TxType::Deposit => "DEPOSIT",
            TxType::Cancel => "CANCEL",
            TxType::PromoWithdraw => "PROMOWITHDRAW",
            TxType::PromoDeposit => "PROMODEPOSIT",
            TxType::PromoCancel => "PROMOCANCEL",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            TxType::Withdraw => "WD",
            TxType::Deposit => "DP",
            TxType::Cancel => "CN",
            TxType::PromoWithdraw => "PW",
            TxType::PromoDeposit => "PD",
            TxType::PromoCancel => "PC",
        }
    }

    /// The withdraw type a deposit or cancel of this type refers to.
    pub fn withdraw(self) -> TxType {
        match self {
            TxType::Withdraw | TxType::Deposit | TxType::Cancel => TxType::Withdraw,
            TxType::PromoWithdraw | TxType::PromoDeposit | TxType::PromoCancel => TxType::PromoWithdraw,
        }
    }
}

/// Longest PAM id (the spec's `maxLength` for every id).
pub const PAM_ID_MAX_LEN: usize = 40;
const TAG_LEN: usize = 6;

/// A provider's namespace: six characters of the SHA-256 of its name, so
/// that two providers' ids never meet in one player's records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Provider([u8; TAG_LEN]);

impl Provider {
    pub fn new(name: &str) -> Provider {
        let digest = Sha256::digest(name.as_bytes());
        let encoded = URL_SAFE_NO_PAD.encode(&digest[..6]);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&encoded.as_bytes()[..TAG_LEN]);
        Provider(tag)
    }

    fn tag(&self) -> &str {
        std::str::from_utf8(&self.0).expect("base64 is ASCII")
    }

    /// The engine's id for a PAM transaction id of one type: prefix, tag,
    /// then the id itself, so that it reads back (`split`). None when the id
    /// is not 1 to 40 printable ASCII characters.
    pub fn tx(&self, kind: TxType, id: &str) -> Option<TxId> {
        if id.is_empty() || id.len() > PAM_ID_MAX_LEN {
            return None;
        }
        TxId::new(&format!("{}{}{id}", kind.prefix(), self.tag())).ok()
    }

    /// The engine's id of a provider's round.
    pub fn round(&self, id: &str) -> Option<RoundId> {
        if id.is_empty() || id.len() > PAM_ID_MAX_LEN {
            return None;
        }
        RoundId::new(&format!("{}{id}", self.tag())).ok()
    }

    /// The type and PAM id of an engine id made by `tx` for this provider.
    pub fn split<'a>(&self, tx: &'a TxId) -> Option<(TxType, &'a str)> {
        let text = tx.as_str();
        let (prefix, rest) = text.split_at_checked(2)?;
        let (tag, id) = rest.split_at_checked(TAG_LEN)?;
        let kind = TxType::ALL.into_iter().find(|t| t.prefix() == prefix)?;
        (tag == self.tag() && !id.is_empty()).then_some((kind, id))
    }
}

/// Why an amount was refused before it reached the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AmountError {
    /// Not a JSON number.
    NotANumber,
    /// Finer than the currency's minor unit: it would have to be rounded.
    TooPrecise,
    /// Beyond what an i64 of minor units holds.
    TooLarge,
}

/// A JSON number's text to minor units at `scale`, exactly: `12.5` EUR
/// (scale 2) is 1250; `0.001` EUR is refused, never rounded.
pub fn to_minor(text: &str, scale: u8) -> Result<i64, AmountError> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(at) => {
            let exponent = &body[at + 1..];
            let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 4 {
                return Err(if digits.bytes().all(|b| b.is_ascii_digit()) && !digits.is_empty() {
                    AmountError::TooLarge
                } else {
                    AmountError::NotANumber
                });
            }
            (&body[..at], exponent.parse::<i32>().map_err(|_| AmountError::NotANumber)?)
        }
        None => (body, 0),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((whole, fraction)) if !fraction.is_empty() => (whole, fraction),
        Some(_) => return Err(AmountError::NotANumber),
        None => (mantissa, ""),
    };
    let json_integer = whole == "0" || (!whole.is_empty() && !whole.starts_with('0'));
    if !json_integer || !whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(AmountError::NotANumber);
    }
    // value = digits × 10^(exponent - fraction digits); minor = value × 10^scale.
    let digits = format!("{whole}{fraction}");
    let digits = digits.trim_start_matches('0');
    let mut shift = exponent - fraction.len() as i32 + i32::from(scale);
    let mut significant = digits;
    while shift < 0 {
        match significant.strip_suffix('0') {
            Some(rest) => significant = rest,
            None if significant.is_empty() => break,
            None => return Err(AmountError::TooPrecise),
        }
        shift += 1;
    }
    if significant.is_empty() {
        return Ok(0);
    }
    if significant.len() as i32 + shift > 19 {
        return Err(AmountError::TooLarge);
    }
    let mut minor: i128 = significant.parse().map_err(|_| AmountError::TooLarge)?;
    for _ in 0..shift.max(0) {
        minor *= 10;
    }
    let minor = if negative { -minor } else { minor };
    i64::try_from(minor).map_err(|_| AmountError::TooLarge)
}

/// Minor units at `scale` as the API's decimal number text: `1250` at scale
/// 2 is `12.50`.
pub fn from_minor(minor: u64, scale: u8) -> String {
    if scale == 0 {
        return minor.to_string();
    }
    let text = format!("{minor:0>width$}", width = usize::from(scale) + 1);
    let (whole, fraction) = text.split_at(text.len() - usize::from(scale));
    format!("{whole}.{fraction}")
}

/// A player id on the API: the engine's numeric id in decimal.
pub fn player(text: &str) -> Option<PlayerId> {
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    text.parse().ok().map(PlayerId)
}

const TOKEN_MAC_LEN: usize = 14;

/// PAM session tokens: 40 URL-safe characters (the API allows 32 to 40)
/// carrying the player and session ids and 112 bits of HMAC-SHA256 under
/// the node's secret, domain-separated from the binary protocol's tokens.
/// Expiry and invalidation live in the engine's session, so a refreshed or
/// closed session's token stops working at once.
#[derive(Clone)]
pub struct Tokens {
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens(..)")
    }
}

impl Tokens {
    pub fn new(secret: [u8; 32]) -> Tokens {
        let mut keyed = <Hmac<Sha256> as Mac>::new_from_slice(&secret).expect("HMAC takes keys of any length");
        keyed.update(b"casino pam session token v1");
        Tokens { keyed }
    }

    fn mac(&self, body: &[u8; 16]) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    pub fn sign(&self, player: PlayerId, session: SessionId) -> String {
        let mut bytes = [0u8; 16 + TOKEN_MAC_LEN];
        bytes[..8].copy_from_slice(&player.0.to_le_bytes());
        bytes[8..16].copy_from_slice(&session.0.to_le_bytes());
        let body: [u8; 16] = bytes[..16].try_into().expect("sixteen bytes");
        bytes[16..].copy_from_slice(&self.mac(&body)[..TOKEN_MAC_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn verify(&self, token: &str) -> Option<(PlayerId, SessionId)> {
        if token.len() != 40 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        let body: [u8; 16] = bytes.get(..16)?.try_into().ok()?;
        let expected = self.mac(&body);
        let mac = bytes.get(16..)?;
        if mac.len() != TOKEN_MAC_LEN || mac.iter().zip(expected.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) != 0 {
            return None;
        }
        let player = PlayerId(u64::from_le_bytes(body[..8].try_into().ok()?));
        let session = SessionId(u64::from_le_bytes(body[8..].try_into().ok()?));
        Some((player, session))
    }
}

/// Milliseconds since the epoch as RFC 3339 UTC (`2026-11-24T12:00:00.000Z`).
pub fn timestamp(ms: u64) -> String {
    let seconds = ms / 1000;
    let (days, in_day) = (seconds / 86_400, seconds % 86_400);
    // Howard Hinnant's civil-from-days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z", in_day / 3600, in_day % 3600 / 60, in_day % 60, ms % 1000)
}

/// Whether `text` is an RFC 3339 date-time (`1994-11-05T13:15:30Z`, with
/// optional fractions and a numeric offset), as the spec's `date-time` asks.
pub fn is_timestamp(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| bytes.get(range).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let number = |range: std::ops::Range<usize>| text.get(range).and_then(|t| t.parse::<u32>().ok()).unwrap_or(99);
    if bytes.len() < 20 || !(digits(0..4) && digits(5..7) && digits(8..10) && digits(11..13) && digits(14..16) && digits(17..19)) {
        return false;
    }
    if bytes[4] != b'-' || bytes[7] != b'-' || !matches!(bytes[10], b'T' | b't') || bytes[13] != b':' || bytes[16] != b':' {
        return false;
    }
    if !(1..=12).contains(&number(5..7))
        || !(1..=31).contains(&number(8..10))
        || number(11..13) > 23
        || number(14..16) > 59
        || number(17..19) > 60
    {
        return false;
    }
    let mut at = 19;
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while bytes.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        if at == start {
            return false;
        }
    }
    match &bytes[at..] {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()) && number(at + 1..at + 3) <= 23 && number(at + 4..at + 6) <= 59
        }
        _ => false,
    }
}

/// Decodes `%XX` escapes (and `+` as a space, as form encoding writes it).
/// None for a bad escape or bytes that are not UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(at + 1..at + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                at += 3;
            }
            b'+' => {
                out.push(b' ');
                at += 1;
            }
            byte => {
                out.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// A query string's value for `name` (the first), decoded.
pub fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(key, _)| *key == name)
        .and_then(|(_, v)| percent_decode(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_convert_exactly_or_not_at_all() {
        assert_eq!(to_minor("12.5", 2), Ok(1250));
        assert_eq!(to_minor("12.50", 2), Ok(1250));
        assert_eq!(to_minor("12.500000", 2), Ok(1250));
        assert_eq!(to_minor("1236.123456", 6), Ok(1_236_123_456));
        assert_eq!(to_minor("0", 2), Ok(0));
        assert_eq!(to_minor("-0.0", 2), Ok(0));
        assert_eq!(to_minor("-1.25", 2), Ok(-125));
        assert_eq!(to_minor("1e2", 2), Ok(10_000));
        assert_eq!(to_minor("1.5E-1", 2), Ok(15));
        assert_eq!(to_minor("25E-3", 2), Err(AmountError::TooPrecise));
        assert_eq!(to_minor("0.001", 2), Err(AmountError::TooPrecise));
        assert_eq!(to_minor("0.0010", 3), Ok(1));
        assert_eq!(to_minor("92233720368547758.07", 2), Ok(i64::MAX));
        assert_eq!(to_minor("92233720368547758.08", 2), Err(AmountError::TooLarge));
        assert_eq!(to_minor("1e400", 2), Err(AmountError::TooLarge));
        assert_eq!(to_minor("1e99999", 2), Err(AmountError::TooLarge));
        for bad in ["", "-", "01", "1.", ".5", "1e", "1e+", "\"1\"", "1,5", "0x10", "1e2.5", "--1", "+1", "NaN", "Infinity"] {
            assert_eq!(to_minor(bad, 2), Err(AmountError::NotANumber), "{bad:?}");
        }
        assert_eq!(from_minor(1250, 2), "12.50");
        assert_eq!(from_minor(5, 2), "0.05");
        assert_eq!(from_minor(0, 2), "0.00");
        assert_eq!(from_minor(7, 0), "7");
        assert_eq!(from_minor(i64::MAX as u64, 2), "92233720368547758.07");
        for minor in [0u64, 1, 99, 100, 12_345, i64::MAX as u64] {
            assert_eq!(to_minor(&from_minor(minor, 2), 2), Ok(minor as i64));
        }
    }

    #[test]
    fn ids_keep_their_type_and_provider_and_read_back() {
        let evolution = Provider::new("Evolution");
        let red_tiger = Provider::new("RedTiger");
        let id = "42a9e3d4eddade52363a5c4fac852e80681c2fe5";
        let withdraw = evolution.tx(TxType::Withdraw, id).expect("40 printable characters");
        let cancel = evolution.tx(TxType::Cancel, id).expect("same id, another type");
        assert_ne!(withdraw, cancel);
        assert_ne!(Some(withdraw), red_tiger.tx(TxType::Withdraw, id), "another provider, another namespace");
        assert_eq!(evolution.split(&withdraw), Some((TxType::Withdraw, id)));
        assert_eq!(evolution.split(&cancel), Some((TxType::Cancel, id)));
        assert_eq!(red_tiger.split(&withdraw), None);
        assert_eq!(evolution.tx(TxType::Deposit, &"x".repeat(41)), None);
        assert_eq!(evolution.tx(TxType::Deposit, ""), None);
        assert_eq!(evolution.tx(TxType::Deposit, "with space"), None);
        assert_eq!(evolution.tx(TxType::Deposit, "ünï"), None);
        assert!(evolution.round(id).is_some());
    }

    #[test]
    fn tokens_are_forty_characters_and_refuse_forgery() {
        let tokens = Tokens::new([9; 32]);
        let token = tokens.sign(PlayerId(42), SessionId(7 << 40 | 3));
        assert_eq!(token.len(), 40);
        assert_eq!(tokens.verify(&token), Some((PlayerId(42), SessionId(7 << 40 | 3))));
        let mut forged = token.clone().into_bytes();
        forged[0] = if forged[0] == b'A' { b'B' } else { b'A' };
        assert_eq!(tokens.verify(std::str::from_utf8(&forged).expect("ASCII")), None);
        assert_eq!(Tokens::new([8; 32]).verify(&token), None);
        assert_eq!(tokens.verify(&token[..39]), None);
        assert_eq!(tokens.verify("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"), None);
    }

    #[test]
    fn players_are_decimal_engine_ids() {
        assert_eq!(player("42"), Some(PlayerId(42)));
        assert_eq!(player("18446744073709551615"), Some(PlayerId(u64::MAX)));
        for bad in ["", "042", "-1", "18446744073709551616", "73619e57b3bc4b4e9014132be3bd12a9", "1 "] {
            assert_eq!(player(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(timestamp(1_795_521_600_123), "2026-11-24T12:00:00.123Z");
        assert_eq!(timestamp(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn timestamps_are_checked_as_rfc3339() {
        for good in ["1994-11-05T13:15:30Z", "2026-11-24T06:00:00.123456Z", "2026-11-24t06:00:00+01:00", "2000-02-29T23:59:60-12:30"] {
            assert!(is_timestamp(good), "{good}");
        }
        for bad in [
            "",
            "1994-11-05",
            "1994-11-05 13:15:30Z",
            "1994-13-05T13:15:30Z",
            "1994-11-05T13:15:30",
            "1994-11-05T13:15:30.Z",
            "1994-11-05T25:15:30Z",
            "1994-11-05T13:15:30+0100",
            "١٩٩٤-11-05T13:15:30Z",
        ] {
            assert!(!is_timestamp(bad), "{bad}");
        }
    }

    #[test]
    fn queries_decode() {
        assert_eq!(query_value(Some("provider=Red%20Tiger&x=1"), "provider").as_deref(), Some("Red Tiger"));
        assert_eq!(query_value(Some("provider=a+b"), "provider").as_deref(), Some("a b"));
        assert_eq!(query_value(Some("x=1"), "provider"), None);
        assert_eq!(query_value(Some("provider"), "provider").as_deref(), Some(""));
        assert_eq!(query_value(Some("provider=%zz"), "provider"), None);
        assert_eq!(query_value(None, "provider"), None);
    }
}
