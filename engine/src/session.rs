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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub game: GameId,
    pub currency: Currency,
    pub opened_ms: u64,
    pub expires_ms: u64,
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
