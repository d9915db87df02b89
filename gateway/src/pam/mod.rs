//! The seamless-wallet HTTP API for game aggregators: the open PAM API of
//! the Valkyrie aggregator (`../shared/specs/pam_api.yml`), served by
//! `casino node` next to the binary protocol. An adapter, not a second
//! engine: every request becomes engine commands for the player's shard,
//! exactly as a binary-protocol request does, and every rule (idempotency,
//! funds per pocket, sessions, limits) is the engine's.
//!
//! How the API maps onto the engine (docs/pam.md has the whole story):
//! - `Authorization: Bearer KEY` is an operator's API key (the binary
//!   protocol's); the admin key reaches the `/admin/...` paths only.
//! - `playerId` is the engine's numeric player id in decimal.
//! - `X-Player-Token` is a 40-character token for (player, session),
//!   signed by the node; the session itself (expiry, invalidation by a
//!   refresh) lives in the engine.
//! - Transaction ids live in per-type, per-provider namespaces
//!   (`wire::Provider::tx`): WITHDRAW is a bet, DEPOSIT a payout to its
//!   round (or to the bet named by `providerBetRef`), CANCEL a rollback of
//!   the WITHDRAW named by `providerBetRef` or else by its own id; the PROMO
//!   types are the same on their own namespace, and a PROMODEPOSIT with no
//!   bet to pay is a promotional award from the house.
//! - Business errors answer HTTP 200 with `status: ERROR`; authentication
//!   and session errors 401; malformed requests 400.

mod body;
pub mod client;
pub mod wire;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cluster::{Node, ReplySink};
use engine::index::{BetState, TxKind};
use engine::{
    Action, Amount, Balance, Command, Currency, GameId, Locale, OperatorConfig, OperatorId, Outcome, PlayerId, Rejection, Reply, SessionId,
    Stake, TxId,
};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};

use crate::auth::{ApiKeys, Principal};
use crate::metrics::Metrics;
use crate::rate::SharedBucket;
use wire::{Provider, TxType};

/// Largest request body accepted.
pub const BODY_MAX_BYTES: usize = 64 * 1024;
/// A request body must arrive within this (then 408).
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// An engine answer must come within this (then 503 `PAM_ERR_TIMEOUT`; the
/// command may still apply, and a retry with the same ids gets its result).
const ENGINE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
pub struct PamConfig {
    pub max_connections: usize,
    /// A connection that sends no complete request headers for this long is closed.
    pub header_timeout: Duration,
    /// Requests per second and burst, per operator.
    pub operator_rate: (u32, u32),
    /// Reported for sessions opened without a locale.
    pub default_locale: Locale,
}

impl Default for PamConfig {
    fn default() -> Self {
        PamConfig {
            max_connections: 10_000,
            header_timeout: Duration::from_secs(30),
            operator_rate: (2_000_000, 2_000_000),
            default_locale: Locale::new("MT", "EN").expect("valid"),
        }
    }
}

/// The PAM API server.
pub struct PamServer {
    config: PamConfig,
    node: Arc<Node>,
    keys: ApiKeys,
    tokens: wire::Tokens,
    /// (operator, currency) to the currency's scale.
    scales: HashMap<(OperatorId, Currency), u8>,
    buckets: HashMap<OperatorId, SharedBucket>,
    metrics: Arc<Metrics>,
    connections: Arc<Semaphore>,
}

impl std::fmt::Debug for PamServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PamServer").field("config", &self.config).finish()
    }
}

/// An answer: HTTP status and JSON body (and, for 405, the methods allowed).
struct Answer {
    status: StatusCode,
    body: Value,
    /// The body already written out (the hot paths skip building a `Value`).
    text: Option<String>,
    allow: Option<&'static str>,
}

impl Answer {
    fn ok(mut body: Value) -> Answer {
        body["status"] = json!("OK");
        Answer { status: StatusCode::OK, body, text: None, allow: None }
    }

    /// An OK answer whose members (JSON text, without braces) are written already.
    fn ok_members(members: &str) -> Answer {
        Answer { status: StatusCode::OK, body: Value::Null, text: Some(format!(r#"{{"status":"OK",{members}}}"#)), allow: None }
    }

    fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Answer {
        Answer { status, body: json!({ "status": "ERROR", "error": { "code": code, "message": message.into() } }), text: None, allow: None }
    }

    /// A business error: HTTP 200, `status: ERROR`.
    fn refused(code: &str, message: impl Into<String>) -> Answer {
        Answer::error(StatusCode::OK, code, message)
    }

    fn bad_request(message: impl Into<String>) -> Answer {
        Answer::error(StatusCode::BAD_REQUEST, "PAM_ERR_UNDEFINED", message)
    }

    fn unauthorized(code: &str, message: impl Into<String>) -> Answer {
        Answer::error(StatusCode::UNAUTHORIZED, code, message)
    }

    fn with(mut self, key: &str, value: Value) -> Answer {
        self.body[key] = value;
        self
    }
}

/// The API's code for an engine refusal.
fn pam_code(rejection: Rejection) -> &'static str {
    use Rejection::*;
    match rejection {
        InsufficientFunds => "PAM_ERR_CASH_OVERDRAFT",
        InsufficientBonus => "PAM_ERR_BONUS_OVERDRAFT",
        InsufficientPromo => "PAM_ERR_PROMO_OVERDRAFT",
        NegativeAmount => "PAM_ERR_NEGATIVE_STAKE",
        TxConflict => "PAM_ERR_DUPLICATE_TRANS",
        UnknownPlayer | ForeignPlayer => "PAM_ERR_PLAYER_NOT_FOUND",
        SessionNotFound => "PAM_ERR_SESSION_NOT_FOUND",
        SessionExpired => "PAM_ERR_SESSION_EXPIRED",
        SessionCurrencyMismatch | CurrencyMismatch | UnknownCurrency | CurrencyNotAllowed => "PAM_ERR_TRANS_CURRENCY",
        SessionGameMismatch => "PAM_ERR_GAME_NOT_FOUND",
        RoundNotFound | BetNotFound | RoundMismatch => "PAM_ERR_TRANS_NOT_FOUND",
        RoundClosed | BetAlreadySettled => "PAM_ERR_TRANS_ALREADY_SETTLED",
        BetAlreadyRolledBack | WinOnRolledBackBet | BetRolledBackInAdvance => "PAM_ERR_TRANS_ALREADY_CANCELLED",
        NotABet => "PAM_ERR_CANCEL_NON_WITHDRAW",
        PlayerBlocked
        | SelfExcluded
        | CoolingOff
        | DepositLimitExceeded
        | LossLimitExceeded
        | WagerLimitExceeded
        | SessionTimeLimitExceeded
        | BonusMaxBetExceeded
        | TooManyOpenBets => "PAM_ERR_BET_NOT_ALLOWED",
        _ => "PAM_ERR_UNDEFINED",
    }
}

fn refusal(rejection: Rejection) -> Answer {
    let code = pam_code(rejection);
    let message = format!("{rejection:?} (engine code {})", rejection.code());
    match rejection {
        Rejection::SessionNotFound | Rejection::SessionExpired => Answer::unauthorized(code, message),
        _ => Answer::refused(code, message),
    }
}

/// One engine reply, delivered once (None: the shard's raft group did
/// not answer in time).
struct OneShot(Mutex<Option<oneshot::Sender<Option<Outcome>>>>);

impl ReplySink for OneShot {
    fn deliver(&self, _request_id: u64, outcome: Outcome) {
        if let Some(sender) = self.0.lock().take() {
            let _ = sender.send(Some(outcome));
        }
    }

    fn unavailable(&self, _request_id: u64) {
        if let Some(sender) = self.0.lock().take() {
            let _ = sender.send(None);
        }
    }
}

/// A request's checked parts.
struct Caller {
    operator: OperatorId,
    provider: Provider,
    provider_name: String,
}

impl PamServer {
    pub fn new(
        config: PamConfig,
        node: Arc<Node>,
        keys: ApiKeys,
        token_secret: [u8; 32],
        operators: &[OperatorConfig],
        metrics: Arc<Metrics>,
    ) -> PamServer {
        let scales = operators.iter().flat_map(|o| o.currencies.iter().map(|c| ((o.operator, c.currency), c.scale))).collect();
        let buckets = keys.operators().map(|o| (o, SharedBucket::new(config.operator_rate.0, config.operator_rate.1))).collect();
        PamServer {
            connections: Arc::new(Semaphore::new(config.max_connections)),
            config,
            node,
            keys,
            tokens: wire::Tokens::new(token_secret),
            scales,
            buckets,
            metrics,
        }
    }

    /// Accepts connections until the listener fails.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) -> std::io::Result<()> {
        loop {
            let (stream, peer) = crate::net::accept(&listener).await;
            let Ok(permit) = self.connections.clone().try_acquire_owned() else {
                // Over the cap: close at once; the client sees a reset.
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let server = self.clone();
            tokio::spawn(async move {
                let _permit = permit;
                server.connection(stream, peer).await;
            });
        }
    }

    async fn connection(self: Arc<Self>, stream: tokio::net::TcpStream, peer: SocketAddr) {
        let io = hyper_util::rt::TokioIo::new(stream);
        let server = self.clone();
        let service = hyper::service::service_fn(move |request| {
            let server = server.clone();
            async move { Ok::<_, Infallible>(server.handle(request).await) }
        });
        let served = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(self.config.header_timeout)
            .max_buf_size(BODY_MAX_BYTES + 16 * 1024)
            .pipeline_flush(true)
            .serve_connection(io, service)
            .await;
        if let Err(error) = served {
            tracing::debug!(%peer, %error, "PAM connection ended");
        }
    }

    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let started = Instant::now();
        let correlation = request.headers().get("x-correlation-id").cloned();
        let (parts, body) = request.into_parts();
        let operation = operation_name(&parts.method, parts.uri.path());
        let answer = self.route(&parts, body).await;
        self.metrics.pam_request(operation, error_code(&answer.body), started.elapsed());
        let text = match answer.text {
            Some(text) => text.into_bytes(),
            None => serde_json::to_vec(&answer.body).expect("JSON values serialize"),
        };
        let mut response = Response::new(Full::new(Bytes::from(text)));
        *response.status_mut() = answer.status;
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(allow) = answer.allow {
            response.headers_mut().insert(hyper::header::ALLOW, HeaderValue::from_static(allow));
        }
        if let Some(correlation) = correlation {
            response.headers_mut().insert("x-correlation-id", correlation);
        }
        response
    }

    async fn route(&self, parts: &hyper::http::request::Parts, body: Incoming) -> Answer {
        let segments: Vec<&str> = parts.uri.path().trim_start_matches('/').split('/').collect();
        let method = &parts.method;
        let principal = match bearer(parts) {
            Some(key) => self.keys.authenticate(key),
            None => None,
        };
        if segments.first() == Some(&"admin") {
            if principal != Some(Principal::Admin) {
                return Answer::unauthorized("PAM_ERR_API_TOKEN", "the admin paths need the admin key");
            }
            return self.admin(method, &segments[1..], body).await;
        }
        let known = matches!(
            (method, segments.as_slice()),
            (&Method::GET | &Method::PUT, ["players", "session"])
                | (&Method::GET, ["players", _, "balance"])
                | (&Method::GET | &Method::POST, ["players", _, "transactions"])
                | (&Method::GET, ["players", _, "gamerounds", _])
        );
        if !known {
            let allow = match segments.as_slice() {
                ["players", "session"] => Some("GET, PUT"),
                ["players", _, "transactions"] => Some("GET, POST"),
                ["players", _, "balance"] | ["players", _, "gamerounds", _] => Some("GET"),
                _ => None,
            };
            return match allow {
                Some(allow) => Answer {
                    allow: Some(allow),
                    ..Answer::error(StatusCode::METHOD_NOT_ALLOWED, "PAM_ERR_UNDEFINED", "method not allowed on this path")
                },
                None => Answer::error(StatusCode::NOT_FOUND, "PAM_ERR_UNDEFINED", "no such path"),
            };
        }
        // A malformed request gets 400 where the spec documents it; the
        // operations that document only 200 and 401 get 401 with the same
        // error body, which their generated clients can read.
        let malformed =
            if matches!(segments.as_slice(), ["players", _, "transactions"]) { StatusCode::BAD_REQUEST } else { StatusCode::UNAUTHORIZED };
        let operator = match principal {
            Some(Principal::Operator(operator)) => operator,
            Some(Principal::Admin) => return Answer::unauthorized("PAM_ERR_API_TOKEN", "the admin key reaches the admin paths only"),
            None => return Answer::unauthorized("PAM_ERR_API_TOKEN", "missing or unknown API token"),
        };
        if !self.buckets.get(&operator).is_none_or(|bucket| bucket.try_take(Instant::now())) {
            return Answer::error(StatusCode::TOO_MANY_REQUESTS, "PAM_ERR_UNDEFINED", "rate limit exceeded");
        }
        let Some(provider_name) = wire::query_value(parts.uri.query(), "provider") else {
            return Answer::error(malformed, "PAM_ERR_MISSING_PROVIDER", "the provider query parameter is required");
        };
        if parts.headers.get("x-correlation-id").is_none() {
            return Answer::error(malformed, "PAM_ERR_UNDEFINED", "the X-Correlation-ID header is required");
        }
        let Some(token) = parts.headers.get("x-player-token").and_then(|v| v.to_str().ok()) else {
            return Answer::unauthorized("PAM_ERR_SESSION_NOT_FOUND", "the X-Player-Token header is required");
        };
        let Some((token_player, session)) = self.tokens.verify(token) else {
            return Answer::unauthorized("PAM_ERR_SESSION_NOT_FOUND", "no session has this token");
        };
        let caller = Caller { operator, provider: Provider::new(&provider_name), provider_name };
        let player = match segments.as_slice() {
            ["players", "session"] => None,
            [_, id, ..] => match wire::percent_decode(id) {
                Some(text) if !text.is_empty() && text.chars().count() <= wire::PAM_ID_MAX_LEN => match wire::player(&text) {
                    Some(player) => Some(player),
                    None => return Answer::refused("PAM_ERR_PLAYER_NOT_FOUND", "player ids are decimal numbers"),
                },
                _ => return Answer::error(malformed, "PAM_ERR_PLAYER_NOT_FOUND", "playerId must be 1 to 40 characters"),
            },
            _ => None,
        };
        if player.is_some_and(|p| p != token_player) {
            return Answer::unauthorized("PAM_ERR_SESSION_NOT_FOUND", "the token is not a session of this player");
        }
        match (method, segments.as_slice()) {
            (&Method::GET, ["players", "session"]) => self.get_session(&caller, token_player, session, token).await,
            (&Method::PUT, ["players", "session"]) => self.refresh_session(&caller, token_player, session).await,
            (&Method::GET, [_, _, "balance"]) => self.balance(&caller, token_player, session).await,
            (&Method::GET, [_, _, "transactions"]) => self.transactions(&caller, token_player, parts.uri.query()).await,
            (&Method::POST, [_, _, "transactions"]) => match read_body(body).await {
                Ok(bytes) => self.add_transaction(&caller, token_player, session, &bytes).await,
                Err(answer) => answer,
            },
            (&Method::GET, [_, _, "gamerounds", round]) => self.game_round(&caller, token_player, round).await,
            _ => unreachable!("routes were matched above"),
        }
    }

    /// Applies one command on its player's shard and waits for the outcome.
    async fn call(&self, operator: OperatorId, player: PlayerId, action: Action) -> Result<Outcome, Answer> {
        self.submit(Command::Player { operator, player, action }).await
    }

    async fn submit(&self, command: Command) -> Result<Outcome, Answer> {
        let (sender, receiver) = oneshot::channel();
        let sink: Arc<dyn ReplySink> = Arc::new(OneShot(Mutex::new(Some(sender))));
        if let Err(overloaded) = self.node.submit(command, 0, sink) {
            return Err(Answer::error(StatusCode::SERVICE_UNAVAILABLE, "PAM_ERR_UNDEFINED", format!("{overloaded}; retry")));
        }
        match tokio::time::timeout(ENGINE_TIMEOUT, receiver).await {
            Ok(Ok(Some(outcome))) => Ok(outcome),
            Ok(Ok(None)) => Err(Answer::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "PAM_ERR_TIMEOUT",
                "the shard's replicas did not confirm in time; retry with the same ids",
            )),
            Ok(Err(_)) => Err(Answer::error(StatusCode::SERVICE_UNAVAILABLE, "PAM_ERR_UNDEFINED", "the shard stopped; retry")),
            Err(_) => Err(Answer::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "PAM_ERR_TIMEOUT",
                "no answer from the shard in time; retry with the same ids",
            )),
        }
    }

    fn scale(&self, operator: OperatorId, currency: Currency) -> Option<u8> {
        self.scales.get(&(operator, currency)).copied()
    }

    fn balance_json(&self, operator: OperatorId, balance: &Balance) -> Value {
        raw_number(self.balance_text(operator, balance))
    }

    /// A `Balance` object as JSON text, amounts with the currency's decimals.
    fn balance_text(&self, operator: OperatorId, balance: &Balance) -> String {
        let scale = self.scale(operator, balance.currency).unwrap_or(2);
        format!(
            r#"{{"cashAmount":{},"bonusAmount":{},"promoAmount":{}}}"#,
            wire::from_minor(balance.cash.minor(), scale),
            wire::from_minor(balance.bonus.minor(), scale),
            wire::from_minor(balance.promo.minor(), scale)
        )
    }

    async fn session_view(&self, caller: &Caller, player: PlayerId, session: SessionId) -> Result<engine::SessionView, Answer> {
        match self.call(caller.operator, player, Action::SessionInfo { session }).await? {
            Ok(Reply::Session(view)) => Ok(view),
            Ok(other) => Err(Answer::bad_request(format!("unexpected engine reply {other:?}"))),
            Err(rejection) => Err(refusal(rejection)),
        }
    }

    fn session_json(&self, player: PlayerId, token: &str, view: &engine::SessionView) -> Value {
        let locale = view.locale.unwrap_or(self.config.default_locale);
        json!({
            "playerId": player.0.to_string(),
            "token": token,
            "currency": view.currency.to_string(),
            "country": locale.country(),
            "language": locale.language(),
            "gameId": view.game.as_str(),
        })
    }

    async fn get_session(&self, caller: &Caller, player: PlayerId, session: SessionId, token: &str) -> Answer {
        match self.session_view(caller, player, session).await {
            Ok(view) => Answer::ok(json!({ "session": self.session_json(player, token, &view) })),
            Err(answer) => answer,
        }
    }

    async fn refresh_session(&self, caller: &Caller, player: PlayerId, session: SessionId) -> Answer {
        let fresh = match self.call(caller.operator, player, Action::RefreshSession { session }).await {
            Ok(Ok(Reply::SessionOpened { session, .. })) => session,
            Ok(Ok(other)) => return Answer::bad_request(format!("unexpected engine reply {other:?}")),
            Ok(Err(rejection)) => return refusal(rejection),
            Err(answer) => return answer,
        };
        let token = self.tokens.sign(player, fresh);
        match self.session_view(caller, player, fresh).await {
            Ok(view) => Answer::ok(json!({ "session": self.session_json(player, &token, &view) })),
            Err(answer) => answer,
        }
    }

    async fn balance(&self, caller: &Caller, player: PlayerId, session: SessionId) -> Answer {
        match self.session_view(caller, player, session).await {
            Ok(view) => Answer::ok_members(&format!(r#""balance":{}"#, self.balance_text(caller.operator, &view.balance))),
            Err(answer) => answer,
        }
    }

    /// The balance in `currency` for an error reply that carries one.
    async fn current_balance(&self, caller: &Caller, player: PlayerId, currency: Currency) -> Option<Value> {
        match self.call(caller.operator, player, Action::Balance { currency }).await {
            Ok(Ok(Reply::Balance(balance))) => Some(self.balance_json(caller.operator, &balance)),
            _ => None,
        }
    }

    async fn refused_with_balance(&self, caller: &Caller, player: PlayerId, currency: Currency, answer: Answer) -> Answer {
        match self.current_balance(caller, player, currency).await {
            Some(balance) => answer.with("transactionResult", json!({ "balance": balance })),
            None => answer,
        }
    }

    async fn add_transaction(&self, caller: &Caller, player: PlayerId, session: SessionId, bytes: &[u8]) -> Answer {
        let body = match body::TransactionBody::parse(bytes) {
            Ok(body) => body,
            Err(message) => return Answer::bad_request(message),
        };
        let kind = TxType::parse(&body.transaction_type).expect("checked with the body");
        let Ok(currency) = Currency::new(&body.currency) else {
            return Answer::refused("PAM_ERR_TRANS_CURRENCY", format!("unknown currency {:?}", body.currency));
        };
        let Some(scale) = self.scale(caller.operator, currency) else {
            return Answer::refused("PAM_ERR_TRANS_CURRENCY", format!("the operator does not deal in {currency}"));
        };
        let mut parts = [0i64; 3];
        for (at, (name, raw)) in
            [("cashAmount", &body.cash_amount), ("bonusAmount", &body.bonus_amount), ("promoAmount", &body.promo_amount)]
                .into_iter()
                .enumerate()
        {
            // Well-formed numbers that do not fit the currency are refused
            // as business errors (with the balance), never rounded.
            let unfit = match wire::to_minor(&raw.to_string(), scale) {
                Ok(minor) => {
                    parts[at] = minor;
                    continue;
                }
                Err(wire::AmountError::NotANumber) => return Answer::bad_request(format!("{name} must be a JSON number")),
                Err(wire::AmountError::TooPrecise) => format!("{name} {raw} is finer than {currency}'s {scale} decimals"),
                Err(wire::AmountError::TooLarge) => format!("{name} {raw} is too large"),
            };
            return self.refused_with_balance(caller, player, currency, Answer::refused("PAM_ERR_UNDEFINED", unfit)).await;
        }
        if parts.iter().any(|&p| p < 0) {
            return self
                .refused_with_balance(caller, player, currency, Answer::refused("PAM_ERR_NEGATIVE_STAKE", "amounts must not be negative"))
                .await;
        }
        let stake = Stake::Split { cash: Amount(parts[0]), bonus: Amount(parts[1]), promo: Amount(parts[2]) };
        let id_error = |what: &str| Answer::bad_request(format!("{what} must be 1 to 40 printable ASCII characters"));
        let Some(tx) = caller.provider.tx(kind, &body.provider_transaction_id) else { return id_error("providerTransactionId") };
        let bet_ref = match body.provider_bet_ref.as_deref() {
            Some(reference) => match caller.provider.tx(kind.withdraw(), reference) {
                Some(id) => Some(id),
                None => return id_error("providerBetRef"),
            },
            None => None,
        };
        let round = match body.provider_round_id.as_deref() {
            Some(round) => match caller.provider.round(round) {
                Some(id) => Some(id),
                None => return id_error("providerRoundId"),
            },
            None => None,
        };
        let game = match body.provider_game_id.as_deref() {
            Some(game) => match GameId::new(game).ok().filter(|_| game.len() <= wire::PAM_ID_MAX_LEN) {
                Some(id) => Some(id),
                None => return id_error("providerGameId"),
            },
            None => None,
        };
        let action = match kind {
            TxType::Withdraw | TxType::PromoWithdraw => {
                // No game named: the engine takes the session's (after its
                // replay check, so a retry on an expired session still replays).
                // A withdraw without a round is a round of its own.
                let round = match round {
                    Some(round) => round,
                    None => match caller.provider.round(&body.provider_transaction_id) {
                        Some(round) => round,
                        None => return id_error("providerTransactionId"),
                    },
                };
                // The bet is named by its reference when it differs from its id.
                let alias = bet_ref.filter(|reference| {
                    body.provider_bet_ref.as_deref() != Some(body.provider_transaction_id.as_str()) && *reference != tx
                });
                Action::Bet { tx, session, round, game, currency, stake, alias }
            }
            TxType::Deposit | TxType::PromoDeposit => Action::Payout {
                tx,
                round,
                game,
                currency,
                bet: bet_ref,
                amount: stake,
                // A deposit ends its round unless it says the game goes on.
                close_round: body.is_game_over.unwrap_or(true),
                award: kind == TxType::PromoDeposit,
                // Claimed in the same apply when the claim's shard is the player's.
                claim: self.node.shard_of(claim_route(caller.operator, &tx, player)) == self.node.shard_of(player),
            },
            TxType::Cancel | TxType::PromoCancel => {
                let bet = match bet_ref {
                    Some(bet) => bet,
                    None => match caller.provider.tx(kind.withdraw(), &body.provider_transaction_id) {
                        Some(bet) => bet,
                        None => return id_error("providerTransactionId"),
                    },
                };
                Action::Rollback { tx, bet, currency }
            }
        };
        if matches!(action, Action::Payout { claim: false, .. }) {
            // A deposit's id is the player's across all players: claimed on
            // the shard its id routes to before it is paid (on the player's
            // own shard the payout claims it in the same apply).
            match self.submit(Command::Claim { operator: caller.operator, key: tx, player }).await {
                Ok(Ok(_)) => {}
                Ok(Err(rejection)) => return self.refused_with_balance(caller, player, currency, refusal(rejection)).await,
                Err(answer) => return answer,
            }
        }
        let is_cancel = matches!(action, Action::Rollback { .. });
        let cancelled = match &action {
            Action::Rollback { bet, .. } => Some(*bet),
            _ => None,
        };
        match self.call(caller.operator, player, action).await {
            Err(answer) => answer,
            Ok(Ok(reply)) => {
                let Some(balance) = reply.balance() else {
                    return Answer::bad_request(format!("unexpected engine reply {reply:?}"));
                };
                let balance = self.balance_text(caller.operator, &balance);
                let bet_found = match reply {
                    Reply::Tx(tx) => tx.bet_found,
                    _ => true,
                };
                if is_cancel && !bet_found {
                    // Nothing to cancel (recorded, so that the withdraw is
                    // refused if it comes late): say what the id was instead.
                    let cancelled = cancelled.expect("a cancel names its withdraw");
                    let non_withdraw = self.names_a_deposit(caller, player, &cancelled).await;
                    let answer = if non_withdraw {
                        Answer::refused("PAM_ERR_CANCEL_NON_WITHDRAW", "the transaction cancelled is not a withdraw")
                    } else {
                        Answer::refused("PAM_ERR_CANCEL_NOT_FOUND", "no withdraw with this id")
                    };
                    return answer.with("transactionResult", json!({ "balance": raw_number(balance) }));
                }
                Answer::ok_members(&format!(
                    r#""transactionResult":{{"transactionId":"{}","balance":{balance}}}"#,
                    transaction_id(player, &tx)
                ))
            }
            Ok(Err(rejection)) => {
                let answer = refusal(rejection);
                if answer.status == StatusCode::OK {
                    self.refused_with_balance(caller, player, currency, answer).await
                } else {
                    answer
                }
            }
        }
    }

    /// Whether the PAM id behind a cancel's target is a deposit's.
    async fn names_a_deposit(&self, caller: &Caller, player: PlayerId, cancelled: &TxId) -> bool {
        let Some((_, id)) = caller.provider.split(cancelled) else { return false };
        let txs: Vec<TxId> = [TxType::Deposit, TxType::PromoDeposit].into_iter().filter_map(|t| caller.provider.tx(t, id)).collect();
        matches!(self.call(caller.operator, player, Action::Lookup { txs }).await, Ok(Ok(Reply::Found(found))) if found.iter().any(Option::is_some))
    }

    async fn transactions(&self, caller: &Caller, player: PlayerId, query: Option<&str>) -> Answer {
        let by_ref = wire::query_value(query, "providerBetRef");
        let by_id = wire::query_value(query, "providerTransactionId");
        for (name, id) in [("providerBetRef", &by_ref), ("providerTransactionId", &by_id)] {
            if id.as_ref().is_some_and(|id| id.is_empty() || id.chars().count() > wire::PAM_ID_MAX_LEN) {
                return Answer::bad_request(format!("{name} must be 1 to 40 characters"));
            }
        }
        let (types, id): (&[TxType], String) = match (by_ref, by_id) {
            // A reference names withdraws (by their reference or their id).
            (Some(reference), _) => (&[TxType::Withdraw, TxType::PromoWithdraw], reference),
            (None, Some(id)) => (&TxType::ALL, id),
            (None, None) => return Answer::bad_request("providerTransactionId or providerBetRef is required"),
        };
        let txs: Vec<TxId> = types.iter().filter_map(|t| caller.provider.tx(*t, &id)).collect();
        if txs.is_empty() {
            // No such id can exist.
            return Answer::ok(json!({ "transactions": [] }));
        }
        let found = match self.call(caller.operator, player, Action::Lookup { txs }).await {
            Ok(Ok(Reply::Found(found))) => found,
            Ok(Ok(other)) => return Answer::bad_request(format!("unexpected engine reply {other:?}")),
            Ok(Err(rejection)) => return refusal(rejection),
            Err(answer) => return answer,
        };
        let mut transactions = Vec::new();
        for found in found.into_iter().flatten() {
            // A withdraw that never came (its cancel came first) is not one.
            if found.kind == TxKind::Bet && found.bet_state == BetState::RolledBackInAdvance {
                continue;
            }
            let Some((kind, pam_id)) = caller.provider.split(&found.tx) else { continue };
            let scale = self.scale(caller.operator, found.currency).unwrap_or(2);
            let amount = |m: engine::Money| raw_number(wire::from_minor(m.minor(), scale));
            let mut transaction = json!({
                "currency": found.currency.to_string(),
                "provider": caller.provider_name,
                "transactionType": kind.name(),
                "cashAmount": amount(found.moved.cash),
                "bonusAmount": amount(found.moved.bonus),
                "promoAmount": amount(found.moved.promo),
                "transactionDateTime": wire::timestamp(found.created_ms),
                "providerTransactionId": pam_id,
            });
            if found.tx.as_str() != txs_name(&caller.provider, kind, &id) {
                // Found by its reference.
                transaction["providerBetRef"] = json!(id);
            }
            transactions.push(transaction);
        }
        Answer::ok(json!({ "transactions": transactions }))
    }

    async fn game_round(&self, caller: &Caller, player: PlayerId, round: &str) -> Answer {
        let Some(pam_round) = wire::percent_decode(round).filter(|r| !r.is_empty() && r.chars().count() <= wire::PAM_ID_MAX_LEN) else {
            // The spec documents 200 and 401 only for this operation.
            return Answer::unauthorized("PAM_ERR_ROUND_NOT_FOUND", "providerGameRoundId must be 1 to 40 characters");
        };
        let Some(id) = caller.provider.round(&pam_round) else {
            return Answer::refused("PAM_ERR_ROUND_NOT_FOUND", "no such round");
        };
        match self.call(caller.operator, player, Action::RoundInfo { round: id }).await {
            Ok(Ok(Reply::Round(view))) => {
                let mut round = json!({
                    "providerGameId": view.game.as_str(),
                    "providerRoundId": pam_round,
                    "startTime": wire::timestamp(view.started_ms),
                });
                if let Some(closed) = view.closed_ms {
                    round["endTime"] = json!(wire::timestamp(closed));
                }
                Answer::ok(json!({ "gameround": round }))
            }
            Ok(Ok(other)) => Answer::bad_request(format!("unexpected engine reply {other:?}")),
            Ok(Err(Rejection::RoundNotFound)) => Answer::refused("PAM_ERR_ROUND_NOT_FOUND", "no such round"),
            Ok(Err(rejection)) => refusal(rejection),
            Err(answer) => answer,
        }
    }

    // ---- admin: test environments -----------------------------------------

    async fn admin(&self, method: &Method, segments: &[&str], body: Incoming) -> Answer {
        if method != Method::POST {
            return Answer::error(StatusCode::METHOD_NOT_ALLOWED, "PAM_ERR_UNDEFINED", "admin paths take POST");
        }
        let bytes = match read_body(body).await {
            Ok(bytes) => bytes,
            Err(answer) => return answer,
        };
        let request: Value = match serde_json::from_slice(&bytes) {
            Ok(value) => value,
            Err(error) => return Answer::bad_request(format!("invalid JSON: {error}")),
        };
        let Some(operator) = request["operatorId"].as_u64().and_then(|o| u32::try_from(o).ok()).map(OperatorId) else {
            return Answer::bad_request("operatorId is required");
        };
        let text = |key: &str| request[key].as_str().map(str::to_string);
        match segments {
            ["players"] => {
                let Some(player) = text("playerId").as_deref().and_then(wire::player) else {
                    return Answer::bad_request("playerId (a decimal number) is required");
                };
                match self.call(operator, player, Action::CreateWallet).await {
                    Ok(Ok(_)) => Answer::ok(json!({ "playerId": player.0.to_string() })),
                    Ok(Err(rejection)) => refusal(rejection),
                    Err(answer) => answer,
                }
            }
            ["players", player, "deposits"] => {
                let Some(player) = wire::player(player) else { return Answer::bad_request("player ids are decimal numbers") };
                let (Some(currency), Some(tx)) = (text("currency"), text("transactionId")) else {
                    return Answer::bad_request("currency, amount and transactionId are required");
                };
                let Ok(currency) = Currency::new(&currency) else { return Answer::bad_request("unknown currency") };
                let Some(scale) = self.scale(operator, currency) else { return Answer::bad_request("the operator does not deal in it") };
                let Some(Ok(minor)) = request.get("amount").map(|a| wire::to_minor(&a.to_string(), scale)) else {
                    return Answer::bad_request("amount must be a number in the currency's decimals");
                };
                let Ok(tx) = TxId::new(&tx) else { return Answer::bad_request("transactionId must be printable ASCII") };
                match self.call(operator, player, Action::Deposit { tx, currency, amount: Amount(minor) }).await {
                    Ok(Ok(reply)) => match reply.balance() {
                        Some(balance) => Answer::ok(json!({ "balance": self.balance_json(operator, &balance) })),
                        None => Answer::ok(json!({})),
                    },
                    Ok(Err(rejection)) => refusal(rejection),
                    Err(answer) => answer,
                }
            }
            ["players", player, "sessions"] => {
                let Some(player) = wire::player(player) else { return Answer::bad_request("player ids are decimal numbers") };
                let (Some(game), Some(currency)) = (text("gameId"), text("currency")) else {
                    return Answer::bad_request("gameId and currency are required");
                };
                let (Ok(game), Ok(currency)) = (GameId::new(&game), Currency::new(&currency)) else {
                    return Answer::bad_request("invalid gameId or currency");
                };
                let duration_ms = request["durationMs"].as_u64().unwrap_or(3_600_000);
                let locale = match (text("country"), text("language")) {
                    (None, None) => None,
                    (Some(country), Some(language)) => match Locale::new(&country, &language) {
                        Ok(locale) => Some(locale),
                        Err(_) => return Answer::bad_request("country and language are two letters each"),
                    },
                    _ => return Answer::bad_request("country and language come together"),
                };
                match self.call(operator, player, Action::OpenSession { game, currency, duration_ms, locale }).await {
                    Ok(Ok(Reply::SessionOpened { session, expires_ms })) => Answer::ok(json!({
                        "token": self.tokens.sign(player, session),
                        "expiresAt": wire::timestamp(expires_ms),
                    })),
                    Ok(Ok(other)) => Answer::bad_request(format!("unexpected engine reply {other:?}")),
                    Ok(Err(rejection)) => refusal(rejection),
                    Err(answer) => answer,
                }
            }
            _ => Answer::error(StatusCode::NOT_FOUND, "PAM_ERR_UNDEFINED", "no such admin path"),
        }
    }
}

/// Where a claim of `key` routes (`Command::player` of the claim).
fn claim_route(operator: OperatorId, key: &TxId, player: PlayerId) -> PlayerId {
    Command::Claim { operator, key: *key, player }.player().expect("a claim routes by its key")
}

/// The engine id `Provider::tx` makes for `id` as a `kind`.
fn txs_name(provider: &Provider, kind: TxType, id: &str) -> String {
    provider.tx(kind, id).map(|t| t.as_str().to_string()).unwrap_or_default()
}

/// The PAM-side transaction id of a movement: 16 hex digits, the same for
/// every replay.
fn transaction_id(player: PlayerId, tx: &TxId) -> String {
    format!("{:016x}", engine::index::Fingerprint::default().u64(player.0).bytes(tx.as_str().as_bytes()).finish())
}

/// A decimal as an exact JSON number.
fn raw_number(text: String) -> Value {
    // A plain decimal is always a valid JSON number; serde_json keeps it as
    // written only through RawValue, so parse it as a Number from its text.
    serde_json::from_str::<Value>(&text).unwrap_or(Value::Null)
}

fn bearer(parts: &hyper::http::request::Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).map(str::trim)
}

async fn read_body(body: Incoming) -> Result<Bytes, Answer> {
    match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, BODY_MAX_BYTES).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(_)) => {
            Err(Answer::error(StatusCode::PAYLOAD_TOO_LARGE, "PAM_ERR_UNDEFINED", format!("bodies are limited to {BODY_MAX_BYTES} bytes")))
        }
        Err(_) => Err(Answer::error(StatusCode::REQUEST_TIMEOUT, "PAM_ERR_TIMEOUT", "the body did not arrive in time")),
    }
}

fn error_code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

fn operation_name(method: &Method, path: &str) -> &'static str {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (&Method::GET, ["players", "session"]) => "getSession",
        (&Method::PUT, ["players", "session"]) => "refreshSession",
        (&Method::GET, ["players", _, "balance"]) => "getBalance",
        (&Method::GET, ["players", _, "transactions"]) => "getTransactions",
        (&Method::POST, ["players", _, "transactions"]) => "addTransaction",
        (&Method::GET, ["players", _, "gamerounds", _]) => "getGameRound",
        (_, ["admin", ..]) => "admin",
        _ => "other",
    }
}
