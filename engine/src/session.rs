//! Game sessions. A session is opened by the operator for one player, one
//! game and one currency, and expires. New bets need a live session; wins
//! and rollbacks never do (a round may settle long after its session).

use crate::currency::Currency;
use crate::ids::{GameId, SessionId};
use crate::reply::Rejection;

/// Live sessions a player may hold at once; expired ones are pruned first.
pub const SESSIONS_PER_PLAYER_MAX: usize = 8;
/// Longest session accepted: seven days.
pub const SESSION_DURATION_MAX_MS: u64 = 7 * 24 * 60 * 60 * 1000;

/// Where and in which language a session is played: an ISO 3166-1 alpha-2
/// country and an ISO 639-1 language, each stored as two upper-case ASCII
/// letters (the PAM API's form: `MT`, `EN`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Locale {
    country: [u8; 2],
    language: [u8; 2],
}

impl Locale {
    /// Two letters each, either case; anything else is `InvalidArgument`.
    pub fn new(country: &str, language: &str) -> Result<Locale, Rejection> {
        fn code(text: &str) -> Result<[u8; 2], Rejection> {
            match text.as_bytes() {
                [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => Ok([a.to_ascii_uppercase(), b.to_ascii_uppercase()]),
                _ => Err(Rejection::InvalidArgument),
            }
        }
        Ok(Locale { country: code(country)?, language: code(language)? })
    }

    pub fn country(&self) -> &str {
        std::str::from_utf8(&self.country).expect("ASCII letters")
    }

    pub fn language(&self) -> &str {
        std::str::from_utf8(&self.language).expect("ASCII letters")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub game: GameId,
    pub currency: Currency,
    pub opened_ms: u64,
    pub expires_ms: u64,
    /// Given by the operator when it opened the session, if at all.
    pub locale: Option<Locale>,
}

impl Session {
    pub fn is_live(&self, now_ms: u64) -> bool {
        now_ms < self.expires_ms
    }

    /// May this session take a new bet on `game` in `currency` now?
    pub fn check_bet(&self, now_ms: u64, game: &GameId, currency: Currency, time_limit_ms: Option<u64>) -> Result<(), Rejection> {
        if !self.is_live(now_ms) {
            return Err(Rejection::SessionExpired);
        }
        if self.game != *game {
            return Err(Rejection::SessionGameMismatch);
        }
        if self.currency != currency {
            return Err(Rejection::SessionCurrencyMismatch);
        }
        if let Some(limit_ms) = time_limit_ms {
            if now_ms.saturating_sub(self.opened_ms) >= limit_ms {
                return Err(Rejection::SessionTimeLimitExceeded);
            }
        }
        Ok(())
    }
}
