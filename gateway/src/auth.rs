//! Authentication. Operators and admins connect with API keys, which the
//! server keeps only as SHA-256 hashes. Player sessions carry tokens the
//! server signs (HMAC-SHA256 with the node's secret): operator, player,
//! session and expiry, so a bet's session is checked without a lookup and an
//! operator cannot present another operator's token.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use engine::{OperatorId, PlayerId, SessionId};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Who a connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Principal {
    Operator(OperatorId),
    Admin,
}

/// API keys by their SHA-256 hash.
#[derive(Clone, Debug, Default)]
pub struct ApiKeys {
    by_hash: HashMap<[u8; 32], Principal>,
}

pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl ApiKeys {
    pub fn insert_hash(&mut self, hash: [u8; 32], principal: Principal) {
        self.by_hash.insert(hash, principal);
    }

    /// Every operator a key authenticates as.
    pub fn operators(&self) -> impl Iterator<Item = OperatorId> + '_ {
        let mut seen: Vec<OperatorId> =
            self.by_hash.values().filter_map(|p| if let Principal::Operator(o) = p { Some(*o) } else { None }).collect();
        seen.sort();
        seen.dedup();
        seen.into_iter()
    }

    pub fn authenticate(&self, key: &str) -> Option<Principal> {
        self.by_hash.get(&hash_key(key)).copied()
    }
}

/// What a session token says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionClaims {
    pub operator: OperatorId,
    pub player: PlayerId,
    pub session: SessionId,
    pub expires_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenError {
    Invalid,
    Expired,
}

const CLAIMS_BYTES: usize = 4 + 8 + 8 + 8;
const TOKEN_BYTES: usize = 1 + CLAIMS_BYTES + 32;
const TOKEN_VERSION: u8 = 1;

/// The claims in a token's body (version byte first).
fn claims_of(body: &[u8]) -> SessionClaims {
    let u64_at = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().expect("eight bytes"));
    SessionClaims {
        operator: OperatorId(u32::from_le_bytes(body[1..5].try_into().expect("four bytes"))),
        player: PlayerId(u64_at(5)),
        session: SessionId(u64_at(13)),
        expires_ms: u64_at(21),
    }
}

/// The claims of a token whose MAC holds, unless expired at `now_ms`.
fn unexpired(claims: SessionClaims, now_ms: u64) -> Result<SessionClaims, TokenError> {
    if now_ms >= claims.expires_ms {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

/// Signs and verifies session tokens (and signs the same session's token
/// for the PAM HTTP API, under the same secret).
#[derive(Clone)]
pub struct TokenSigner {
    /// This signer's number in the process (see `verify_cached`).
    id: u64,
    /// Keyed once: each token then costs two SHA-256 compressions, not four.
    keyed: Hmac<Sha256>,
    pam: crate::pam::wire::Tokens,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner(..)")
    }
}

impl TokenSigner {
    pub fn new(secret: [u8; 32]) -> TokenSigner {
        TokenSigner {
            id: SIGNERS.fetch_add(1, Ordering::Relaxed),
            keyed: <Hmac<Sha256> as Mac>::new_from_slice(&secret).expect("HMAC takes keys of any length"),
            pam: crate::pam::wire::Tokens::new(secret),
        }
    }

    /// The PAM API's token for the same session (`X-Player-Token`).
    pub fn pam_token(&self, player: PlayerId, session: SessionId) -> String {
        self.pam.sign(player, session)
    }

    fn mac(&self, body: &[u8]) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    pub fn sign(&self, claims: &SessionClaims) -> Vec<u8> {
        let mut token = Vec::with_capacity(TOKEN_BYTES);
        token.push(TOKEN_VERSION);
        token.extend_from_slice(&claims.operator.0.to_le_bytes());
        token.extend_from_slice(&claims.player.0.to_le_bytes());
        token.extend_from_slice(&claims.session.0.to_le_bytes());
        token.extend_from_slice(&claims.expires_ms.to_le_bytes());
        let mac = self.mac(&token);
        token.extend_from_slice(&mac);
        token
    }

    pub fn verify(&self, token: &[u8], now_ms: u64) -> Result<SessionClaims, TokenError> {
        if token.len() != TOKEN_BYTES || token[0] != TOKEN_VERSION {
            return Err(TokenError::Invalid);
        }
        let (body, mac) = token.split_at(1 + CLAIMS_BYTES);
        let expected = self.mac(body);
        // Constant-time comparison: a forger learns nothing from timing.
        if mac.iter().zip(expected.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) != 0 {
            return Err(TokenError::Invalid);
        }
        unexpired(claims_of(body), now_ms)
    }
}

/// Slots of each thread's table of verified tokens (72 bytes each: 4.7 MB
/// a thread). Direct-mapped by the token's MAC, which is uniformly random,
/// so a lookup is one slot and a hostile client can only evict entries
/// (costing an HMAC), never insert one it did not have verified.
pub const VERIFIED_TOKENS_PER_THREAD: usize = 1 << 16;

/// A token whose MAC a signer has verified, and which signer.
#[derive(Clone, Copy)]
struct Verified {
    signer: u64,
    token: [u8; TOKEN_BYTES],
}

thread_local! {
    /// Tokens verified on this thread: the gateway's connection tasks run
    /// on a few worker threads and see the same players again and again
    /// (a player's every bet carries its token), so most verifications are
    /// a comparison of 61 bytes instead of an HMAC. Per thread, so there is
    /// no lock; bounded, as the table is fixed.
    static VERIFIED: std::cell::RefCell<Box<[Verified]>> =
        std::cell::RefCell::new(vec![Verified { signer: 0, token: [0; TOKEN_BYTES] }; VERIFIED_TOKENS_PER_THREAD].into_boxed_slice());
}

/// Each signer's number, so that one process's gateways with different
/// secrets (tests run several) never take each other's verifications.
static SIGNERS: AtomicU64 = AtomicU64::new(1);

impl TokenSigner {
    /// [`TokenSigner::verify`], remembering verified tokens in this
    /// thread's table: a token seen before is only compared, its expiry
    /// still checked on every use.
    pub fn verify_cached(&self, token: &[u8], now_ms: u64) -> Result<SessionClaims, TokenError> {
        let Ok(whole) = <[u8; TOKEN_BYTES]>::try_from(token) else {
            return Err(TokenError::Invalid);
        };
        let mac_word = u64::from_le_bytes(whole[1 + CLAIMS_BYTES..1 + CLAIMS_BYTES + 8].try_into().expect("eight bytes"));
        let slot = (mac_word as usize) & (VERIFIED_TOKENS_PER_THREAD - 1);
        let known = VERIFIED.with_borrow(|table| table[slot].signer == self.id && table[slot].token == whole);
        if known {
            return unexpired(claims_of(&whole[..1 + CLAIMS_BYTES]), now_ms);
        }
        let claims = self.verify(token, now_ms)?;
        VERIFIED.with_borrow_mut(|table| table[slot] = Verified { signer: self.id, token: whole });
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pam_token_of_a_session_verifies_on_the_pam_side() {
        let signer = TokenSigner::new([3; 32]);
        let token = signer.pam_token(PlayerId(42), SessionId(9));
        assert_eq!(crate::pam::wire::Tokens::new([3; 32]).verify(&token), Some((PlayerId(42), SessionId(9))));
        assert_eq!(crate::pam::wire::Tokens::new([4; 32]).verify(&token), None);
    }

    #[test]
    fn tokens_verify_and_refuse_forgery_and_expiry() {
        let signer = TokenSigner::new([3; 32]);
        let claims = SessionClaims { operator: OperatorId(1), player: PlayerId(42), session: SessionId(9), expires_ms: 1_000 };
        let token = signer.sign(&claims);
        assert_eq!(signer.verify(&token, 999), Ok(claims));
        assert_eq!(signer.verify(&token, 1_000), Err(TokenError::Expired));
        let mut forged = token.clone();
        forged[6] ^= 1; // another player
        assert_eq!(signer.verify(&forged, 0), Err(TokenError::Invalid));
        assert_eq!(TokenSigner::new([4; 32]).verify(&token, 0), Err(TokenError::Invalid));
        assert_eq!(signer.verify(&token[..10], 0), Err(TokenError::Invalid));
    }

    #[test]
    fn the_cache_answers_as_the_signer_does() {
        let signer = TokenSigner::new([3; 32]);
        let claims = SessionClaims { operator: OperatorId(1), player: PlayerId(42), session: SessionId(9), expires_ms: 1_000 };
        let token = signer.sign(&claims);
        assert_eq!(signer.verify_cached(&token, 10), Ok(claims));
        assert_eq!(signer.verify_cached(&token, 999), Ok(claims), "from the cache");
        assert_eq!(signer.verify_cached(&token, 1_000), Err(TokenError::Expired), "expiry still checked");
        let mut forged = token.clone();
        forged[6] ^= 1; // the same MAC, so the same slot, another player
        assert_eq!(signer.verify_cached(&forged, 10), Err(TokenError::Invalid));
        assert_eq!(signer.verify_cached(&token[..60], 10), Err(TokenError::Invalid));
        // Another signer (another secret) in the same thread does not take
        // the first one's verification, though the token sits in the table.
        let other = TokenSigner::new([4; 32]);
        assert_eq!(other.verify_cached(&token, 10), Err(TokenError::Invalid));
        assert_eq!(signer.verify_cached(&token, 10), Ok(claims), "still verified for its signer");
    }

    #[test]
    fn keys_are_found_by_their_hash() {
        let mut keys = ApiKeys::default();
        keys.insert_hash(hash_key("secret-1"), Principal::Operator(OperatorId(1)));
        assert_eq!(keys.authenticate("secret-1"), Some(Principal::Operator(OperatorId(1))));
        assert_eq!(keys.authenticate("secret-2"), None);
    }
}
