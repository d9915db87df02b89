//! Between the wire and the engine: a `ClientFrame`'s body becomes an
//! engine `Command` (or a refusal), and an engine outcome becomes a
//! `ServerFrame` body. Validation here is the gateway's half of the pair;
//! the engine validates again on apply.

use engine::games::{Choice, GameKind};
use engine::{
    Action, Amount, BonusId, BonusTerms, Command, Currency, ExternalId, GameId, LimitKind, LimitPeriod, LimitSource, Locale, OperatorId,
    Outcome, PlayerId, RedemptionId, Rejection, Reply, RoundId, Stake, SweepsGrantKind, TxId,
};

use crate::auth::{SessionClaims, TokenError, TokenSigner};
use crate::choice;
use crate::error::ErrorCode;
use crate::proto::{self, client_frame::Body as In, server_frame::Body as Out};

/// Why a request did not become a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A gateway error (protocol, auth, shape of the request).
    Gateway(ErrorCode, String),
    /// A value the engine would refuse the same way (a bad id or currency).
    Engine(Rejection),
}

impl From<Rejection> for Refusal {
    fn from(rejection: Rejection) -> Self {
        Refusal::Engine(rejection)
    }
}

fn invalid(message: impl Into<String>) -> Refusal {
    Refusal::Gateway(ErrorCode::InvalidRequest, message.into())
}

fn tx(text: &str) -> Result<TxId, Refusal> {
    Ok(TxId::new(text)?)
}

fn currency(text: &str) -> Result<Currency, Refusal> {
    Ok(Currency::new(text)?)
}

fn stake(stake: &Option<proto::Stake>) -> Result<Stake, Refusal> {
    match stake.as_ref().and_then(|s| s.kind.as_ref()) {
        Some(proto::stake::Kind::Amount(amount)) => Ok(Stake::Auto(Amount(*amount))),
        Some(proto::stake::Kind::Split(split)) => {
            Ok(Stake::Split { cash: Amount(split.cash), bonus: Amount(split.bonus), promo: Amount(split.promo) })
        }
        None => Err(invalid("a stake needs an amount or a split")),
    }
}

fn limit_source(value: i32) -> Result<LimitSource, Refusal> {
    u8::try_from(value).ok().and_then(LimitSource::from_u8).ok_or_else(|| invalid("unknown limit source"))
}

/// What a request turns into.
#[derive(Debug)]
pub enum Routed {
    /// A player command for the player's shard. `opens_session` marks an
    /// OpenSession, whose reply needs the player to sign its token.
    Player { command: Command, opens_session: bool },
    /// Answered by the gateway itself.
    Local(Out),
}

/// Checks a session token for this operator at `now_ms`.
pub fn session(signer: &TokenSigner, operator: OperatorId, token: &[u8], now_ms: u64) -> Result<SessionClaims, Refusal> {
    match signer.verify_cached(token, now_ms) {
        Ok(claims) if claims.operator == operator => Ok(claims),
        Ok(_) | Err(TokenError::Invalid) => Err(Refusal::Gateway(ErrorCode::TokenInvalid, "the session token is not valid".into())),
        Err(TokenError::Expired) => Err(Refusal::Gateway(ErrorCode::TokenExpired, "the session token has expired".into())),
    }
}

/// Turns an operator's request into a command for its player's shard.
pub fn to_command(body: In, operator: OperatorId, signer: &TokenSigner, now_ms: u64) -> Result<Routed, Refusal> {
    let mut opens_session = false;
    let (player, action) = match body {
        In::Hello(_) => return Err(Refusal::Gateway(ErrorCode::NotAuthenticated, "already authenticated".into())),
        In::Ping(_) => return Ok(Routed::Local(Out::Pong(proto::Pong {}))),
        In::ClusterStatus(_) => return Err(Refusal::Gateway(ErrorCode::Forbidden, "cluster status is for admins".into())),
        In::TakeSnapshot(_) => return Err(Refusal::Gateway(ErrorCode::Forbidden, "snapshots are for admins".into())),
        In::CheckInvariants(_) => return Err(Refusal::Gateway(ErrorCode::Forbidden, "invariant checks are for admins".into())),
        In::CreateWallet(r) => (r.player_id, Action::CreateWallet),
        In::SetBlocked(r) => (r.player_id, Action::SetBlocked { blocked: r.blocked }),
        In::Deposit(r) => (r.player_id, Action::Deposit { tx: tx(&r.tx_id)?, currency: currency(&r.currency)?, amount: Amount(r.amount) }),
        In::Withdraw(r) => {
            (r.player_id, Action::Withdraw { tx: tx(&r.tx_id)?, currency: currency(&r.currency)?, amount: Amount(r.amount) })
        }
        In::OpenSession(r) => {
            opens_session = true;
            (
                r.player_id,
                Action::OpenSession {
                    game: GameId::new(&r.game_id)?,
                    currency: currency(&r.currency)?,
                    duration_ms: r.duration_ms,
                    locale: match (r.country.as_str(), r.language.as_str()) {
                        ("", "") => None,
                        (country, language) => Some(Locale::new(country, language)?),
                    },
                },
            )
        }
        In::CloseSession(r) => {
            let claims = session(signer, operator, &r.session_token, 0)?;
            (claims.player.0, Action::CloseSession { session: claims.session })
        }
        In::Bet(r) => {
            let claims = session(signer, operator, &r.session_token, now_ms)?;
            let action = Action::Bet {
                tx: tx(&r.tx_id)?,
                session: claims.session,
                round: RoundId::new(&r.round_id)?,
                game: Some(GameId::new(&r.game_id)?),
                currency: currency(&r.currency)?,
                stake: stake(&r.stake)?,
                alias: None,
            };
            (claims.player.0, action)
        }
        In::Win(r) => {
            (r.player_id, Action::Win { tx: tx(&r.tx_id)?, bet: tx(&r.bet_tx_id)?, amount: stake(&r.amount)?, close_round: r.close_round })
        }
        In::Rollback(r) => (r.player_id, Action::Rollback { tx: tx(&r.tx_id)?, bet: tx(&r.bet_tx_id)?, currency: currency(&r.currency)? }),
        In::CloseRound(r) => (r.player_id, Action::CloseRound { round: RoundId::new(&r.round_id)? }),
        In::GetBalance(r) => (r.player_id, Action::Balance { currency: currency(&r.currency)? }),
        In::SetLimit(r) => {
            let kind = u8::try_from(r.kind).ok().and_then(LimitKind::from_u8).ok_or_else(|| invalid("unknown limit kind"))?;
            let period = u8::try_from(r.period).ok().and_then(LimitPeriod::from_u8).ok_or_else(|| invalid("unknown limit period"))?;
            let action = Action::SetLimit {
                source: limit_source(r.source)?,
                kind,
                period,
                currency: currency(&r.currency)?,
                amount: r.amount.map(Amount),
            };
            (r.player_id, action)
        }
        In::SetSessionTimeLimit(r) => {
            (r.player_id, Action::SetSessionTimeLimit { source: limit_source(r.source)?, duration_ms: r.duration_ms })
        }
        In::SelfExclude(r) => (r.player_id, Action::SelfExclude { until_ms: r.until_ms }),
        In::CoolOff(r) => (r.player_id, Action::CoolOff { duration_ms: r.duration_ms }),
        In::GrantBonus(r) => {
            let weights = r
                .weights
                .iter()
                .map(|w| Ok((GameId::new(&w.game_id)?, u8::try_from(w.percent).map_err(|_| invalid("a weight is a percentage"))?)))
                .collect::<Result<Vec<_>, Refusal>>()?;
            let terms = BonusTerms {
                bonus: BonusId::new(&r.bonus_id)?,
                currency: currency(&r.currency)?,
                amount: Amount(r.amount),
                wagering_multiple: r.wagering_multiple,
                max_bet: Amount(r.max_bet),
                duration_ms: r.duration_ms,
                weights,
                default_weight_percent: u8::try_from(r.default_weight_percent).map_err(|_| invalid("a weight is a percentage"))?,
            };
            (r.player_id, Action::GrantBonus { tx: tx(&r.tx_id)?, terms })
        }
        In::ForfeitBonus(r) => (r.player_id, Action::ForfeitBonus { bonus: BonusId::new(&r.bonus_id)? }),
        In::GrantSweeps(r) => {
            let kind = match r.kind {
                1 => SweepsGrantKind::PurchaseBonus,
                2 => SweepsGrantKind::DailyReward,
                3 => SweepsGrantKind::Promotion,
                4 => SweepsGrantKind::MailIn,
                _ => return Err(invalid("unknown sweeps grant kind")),
            };
            (
                r.player_id,
                Action::GrantSweeps { tx: tx(&r.tx_id)?, kind, amount: Amount(r.amount), playthrough_multiple: r.playthrough_multiple },
            )
        }
        In::RequestRedemption(r) => {
            (r.player_id, Action::RequestRedemption { redemption: RedemptionId::new(&r.redemption_id)?, amount: Amount(r.amount) })
        }
        In::ApproveRedemption(r) => (r.player_id, Action::ApproveRedemption { redemption: RedemptionId::new(&r.redemption_id)? }),
        In::RejectRedemption(r) => (r.player_id, Action::RejectRedemption { redemption: RedemptionId::new(&r.redemption_id)? }),
        In::Play(r) => {
            let claims = session(signer, operator, &r.session_token, now_ms)?;
            let choice = parse_bet(&r.bet)?;
            let action = Action::Play {
                tx: tx(&r.tx_id)?,
                session: claims.session,
                currency: currency(&r.currency)?,
                stake: Amount(r.stake),
                choice,
                fair: r.provably_fair,
            };
            (claims.player.0, action)
        }
        In::RotateSeeds(r) => (r.player_id, Action::RotateSeeds { client_seed: ExternalId::new(&r.client_seed)? }),
    };
    Ok(Routed::Player { command: Command::Player { operator, player: PlayerId(player), action }, opens_session })
}

/// A bet's text names its game: "spin" is the slot; roulette, dice and crash
/// forms are distinct (see `choice.rs`).
fn parse_bet(text: &str) -> Result<Choice, Refusal> {
    let kind = if text == "spin" {
        GameKind::Slot
    } else if text.starts_with("under:") || text.starts_with("over:") {
        GameKind::Dice
    } else if text.parse::<f64>().is_ok() {
        GameKind::Crash
    } else {
        GameKind::Roulette
    };
    choice::parse(kind, text).map_err(|e| invalid(e.0))
}

fn balance(balance: engine::Balance) -> proto::Balance {
    proto::Balance {
        currency: balance.currency.as_str().to_string(),
        cash: balance.cash.minor() as i64,
        bonus: balance.bonus.minor() as i64,
        promo: balance.promo.minor() as i64,
    }
}

fn tx_result(reply: engine::TxReply) -> proto::TxResult {
    proto::TxResult { balance: Some(balance(reply.balance)), replayed: reply.replayed, bet_found: reply.bet_found }
}

/// An engine outcome as a reply body. `session_for` is the (operator,
/// player) of an OpenSession request, to sign its token.
pub fn to_reply(outcome: Outcome, session_for: Option<(OperatorId, PlayerId)>, signer: &TokenSigner) -> Out {
    match outcome {
        Err(rejection) => Out::Rejected(proto::Rejected { code: u32::from(rejection.code()), name: format!("{rejection:?}") }),
        Ok(Reply::Done) => Out::Done(proto::Done {}),
        Ok(Reply::Tx(reply)) => Out::Tx(tx_result(reply)),
        Ok(Reply::Balance(b)) => Out::Balance(balance(b)),
        Ok(Reply::SessionOpened { session, expires_ms }) => {
            let token = session_for
                .map(|(operator, player)| signer.sign(&SessionClaims { operator, player, session, expires_ms }))
                .unwrap_or_default();
            let pam_token = session_for.map(|(_, player)| signer.pam_token(player, session)).unwrap_or_default();
            Out::SessionOpened(proto::SessionOpened { session_id: session.0, expires_ms, token, pam_token })
        }
        Ok(Reply::Played { tx, win, drawn }) => {
            Out::Played(proto::Played { tx: Some(tx_result(tx)), win: win.minor() as i64, outcome: choice::outcome_text(&drawn) })
        }
        Ok(Reply::Seeds { revealed, server_seed_hash, client_seed, nonce }) => Out::Seeds(proto::Seeds {
            revealed_server_seed: revealed.map(|s| s.to_vec()).unwrap_or_default(),
            server_seed_hash: server_seed_hash.to_vec(),
            client_seed: client_seed.as_str().to_string(),
            nonce,
        }),
        // Answers to the PAM adapter's reads, which this protocol does not send.
        Ok(Reply::Session(_) | Reply::Found(_) | Reply::Round(_)) => {
            error(ErrorCode::InvalidRequest, "a reply this protocol does not carry")
        }
    }
}

pub fn error(code: ErrorCode, message: impl Into<String>) -> Out {
    Out::Error(proto::Error { code: code.code(), message: message.into() })
}

pub fn refusal(refusal: Refusal) -> Out {
    match refusal {
        Refusal::Gateway(code, message) => error(code, message),
        Refusal::Engine(rejection) => Out::Rejected(proto::Rejected { code: u32::from(rejection.code()), name: format!("{rejection:?}") }),
    }
}
