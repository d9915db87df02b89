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
#[derive(Clone, Copy, PartialOrd, Ord)]
pub struct ExternalId([u8; EXTERNAL_ID_MAX_LEN]);

/// Byte equality, as six 8-byte words without a call to `memcmp`: ids are
/// compared in loops (a bet looks for its round among the wallet's open
/// bets), where the call cost a fifth of a node's shard thread.
impl PartialEq for ExternalId {
    fn eq(&self, other: &Self) -> bool {
        self.words().zip(other.words()).fold(0, |diff, (a, b)| diff | (a ^ b)) == 0
    }
}

impl Eq for ExternalId {}

/// The bytes, as `derive` would (equal ids hash equally).
impl std::hash::Hash for ExternalId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl ExternalId {
    /// Validates and stores `text`. Empty, over-long (over 48) or non-printable ids
    /// are refused with [`Rejection::InvalidId`].
    #[inline]
    pub fn new(text: &str) -> Result<Self, Rejection> {
        Self::from_bytes(text.as_bytes())
    }

    /// Inline, so that the id is built where the caller wants it rather
    /// than copied out of a returned `Result`.
    #[inline]
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Rejection> {
        if bytes.is_empty() || bytes.len() > EXTERNAL_ID_MAX_LEN {
            return Err(Rejection::InvalidId);
        }
        // Without an early exit, so that it compiles to vector compares:
        // every request's ids pass here on the gateway's thread.
        if !bytes.iter().fold(true, |printable, &b| printable & (b.wrapping_sub(0x21) < 0x5E)) {
            return Err(Rejection::InvalidId);
        }
        // Word by word, each assembled in a register and stored whole: a
        // `memcpy` of the length followed by the wide loads that move the
        // id on stalled on store forwarding (5% of a node's CPU).
        let mut inline = [0u8; EXTERNAL_ID_MAX_LEN];
        for (word, chunk) in inline.chunks_exact_mut(8).zip(bytes.chunks(8)) {
            let value = chunk.iter().rev().fold(0u64, |value, &byte| value << 8 | u64::from(byte));
            word.copy_from_slice(&value.to_le_bytes());
        }
        Ok(Self(inline))
    }

    /// The id as six 8-byte words (native order), padding included.
    pub fn words(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.chunks_exact(8).map(|word| u64::from_ne_bytes(word.try_into().expect("eight bytes")))
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
            #[inline]
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Accepted exactly when 1 to 48 bytes, each printable ASCII.
        #[test]
        fn ids_are_accepted_exactly_when_printable(bytes in prop::collection::vec(any::<u8>(), 0..56)) {
            let valid = !bytes.is_empty() && bytes.len() <= EXTERNAL_ID_MAX_LEN && bytes.iter().all(|b| (0x21..=0x7E).contains(b));
            let id = ExternalId::from_bytes(&bytes);
            prop_assert_eq!(id.is_ok(), valid);
            if let Ok(id) = id {
                prop_assert_eq!(id.as_bytes(), &bytes[..]);
            }
        }

        /// The word-wise equality is byte equality, whatever the lengths.
        #[test]
        fn ids_are_equal_exactly_when_their_bytes_are(a in "[!-~]{1,48}", b in "[!-~]{1,48}", same in any::<bool>()) {
            let b = if same { a.clone() } else { b };
            let (x, y) = (ExternalId::new(&a).expect("valid"), ExternalId::new(&b).expect("valid"));
            prop_assert_eq!(x == y, a == b);
            prop_assert_eq!(x == y, x.cmp(&y) == std::cmp::Ordering::Equal);
        }
    }
}
