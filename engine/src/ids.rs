//! Identifiers. Numeric ids are engine-assigned; external ids (transactions,
//! rounds, games, bonuses, redemptions) come from operators and game
//! providers, so they are validated byte strings of bounded length.

use std::fmt;

use crate::reply::Rejection;

/// An operator (a casino brand) that owns players and funds their wallets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OperatorId(pub u32);

/// A player. Globally unique across operators; the wallet records which
/// operator owns it and the engine refuses commands from any other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PlayerId(pub u64);

/// A game session, assigned by the shard when the session opens:
/// `shard id << 40 | sequence`, so it is unique across shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub u64);

/// Longest external id accepted, in bytes. The seamless-wallet APIs of the
/// industry cap their ids at 40 characters (the PAM API does); the eight
/// more let an adapter keep several such id spaces apart with a prefix
/// (the PAM adapter's `W`, `D`, `C`... and a provider tag, `gateway/src/pam`).
pub const EXTERNAL_ID_MAX_LEN: usize = 48;

/// An id chosen outside the engine: 1 to 48 printable ASCII bytes
/// (0x21..=0x7E). Stored inline and zero padded, so it is `Copy`, costs no
/// allocation on the bet path, and padding can never be confused with content.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExternalId([u8; EXTERNAL_ID_MAX_LEN]);

impl ExternalId {
    /// Validates and stores `text`. Empty, over-long (over 48) or non-printable ids
    /// are refused with [`Rejection::InvalidId`].
    pub fn new(text: &str) -> Result<Self, Rejection> {
        Self::from_bytes(text.as_bytes())
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Rejection> {
        if bytes.is_empty() || bytes.len() > EXTERNAL_ID_MAX_LEN {
            return Err(Rejection::InvalidId);
        }
        if !bytes.iter().all(|b| (0x21..=0x7E).contains(b)) {
            return Err(Rejection::InvalidId);
        }
        let mut inline = [0u8; EXTERNAL_ID_MAX_LEN];
        inline[..bytes.len()].copy_from_slice(bytes);
        Ok(Self(inline))
    }

    pub fn as_bytes(&self) -> &[u8] {
        let len = self.0.iter().position(|&b| b == 0).unwrap_or(EXTERNAL_ID_MAX_LEN);
        &self.0[..len]
    }

    pub fn as_str(&self) -> &str {
        // Only printable ASCII is ever stored, which is valid UTF-8.
        std::str::from_utf8(self.as_bytes()).expect("external ids hold printable ASCII only")
    }
}

impl fmt::Debug for ExternalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for ExternalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! external_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub ExternalId);

        impl $name {
            pub fn new(text: &str) -> Result<Self, Rejection> {
                ExternalId::new(text).map(Self)
            }
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0.as_str())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0.as_str())
            }
        }
    };
}

external_id!(
    /// A money movement's idempotency key, unique per player.
    TxId
);
external_id!(
    /// A game round: one or more bets and the wins that settle them.
    RoundId
);
external_id!(
    /// A game as the provider names it.
    GameId
);
external_id!(
    /// A bonus grant.
    BonusId
);
external_id!(
    /// A sweepstakes redemption request.
    RedemptionId
);
