//! The PAM seamless-wallet API through real HTTP requests: a node and the
//! PAM server on a loopback socket, driven by `PamClient`. One test per
//! rule of the spec (../shared/specs/pam_api.yml) and of our mapping
//! (docs/pam.md); the shards' invariants, conservation included, are
//! checked at the end of each.

use std::net::SocketAddr;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use cluster::{Node, NodeConfig, ReplySink};
use engine::{Action, Command, Currency, CurrencySpec, OperatorConfig, OperatorId, Outcome, PlayerId, Reply};
use gateway::auth::{hash_key, ApiKeys, Principal};
use gateway::metrics::Metrics;
use gateway::pam::client::{PamClient, PamResponse};
use gateway::pam::{PamConfig, PamServer, BODY_MAX_BYTES};
use serde_json::{json, Value};
use tokio::net::TcpListener;

const OPERATOR_KEY: &str = "pam-operator-1";
const OTHER_OPERATOR_KEY: &str = "pam-operator-3";
const ADMIN_KEY: &str = "pam-admin";
const GAME: &str = "starburst";
const PROVIDER: &str = "Evolution";

fn spec(code: &str, scale: u8) -> CurrencySpec {
    CurrencySpec { currency: Currency::new(code).expect("valid code"), scale }
}

fn operators() -> Vec<OperatorConfig> {
    let operator = |id, currencies| OperatorConfig {
        operator: OperatorId(id),
        sweepstakes: false,
        currencies,
        limit_increase_delay_ms: 0,
        redemption_min_minor: 0,
    };
    vec![operator(1, vec![spec("EUR", 2), spec("USD", 2), spec("BTC", 8)]), operator(3, vec![spec("EUR", 2)])]
}

struct Harness {
    address: SocketAddr,
    node: Arc<Node>,
    metrics: Arc<Metrics>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        for (shard, checked) in self.node.check_invariants().into_iter().enumerate() {
            if let Err(failure) = checked {
                if !std::thread::panicking() {
                    panic!("shard {shard} invariants: {failure}");
                }
            }
        }
    }
}

async fn start() -> Harness {
    let node = Arc::new(Node::start(NodeConfig { shard_count: 2, ..NodeConfig::default() }).expect("a node without storage starts"));
    let operators = operators();
    for operator in &operators {
        assert_eq!(node.configure_operator(operator.clone()), Ok(Reply::Done));
    }
    let mut keys = ApiKeys::default();
    keys.insert_hash(hash_key(OPERATOR_KEY), Principal::Operator(OperatorId(1)));
    keys.insert_hash(hash_key(OTHER_OPERATOR_KEY), Principal::Operator(OperatorId(3)));
    keys.insert_hash(hash_key(ADMIN_KEY), Principal::Admin);
    let metrics = Arc::new(Metrics::default());
    let server = Arc::new(PamServer::new(PamConfig::default(), node.clone(), keys, [5; 32], &operators, metrics.clone()));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let address = listener.local_addr().expect("bound");
    tokio::spawn(server.serve(listener));
    Harness { address, node, metrics }
}

struct Collect(mpsc::Sender<Outcome>);

impl ReplySink for Collect {
    fn deliver(&self, _request_id: u64, outcome: Outcome) {
        let _ = self.0.send(outcome);
    }
    fn unavailable(&self, request_id: u64) {
        panic!("request {request_id}: a node without replication always answers");
    }
}

impl Harness {
    async fn client(&self, key: &str) -> PamClient {
        PamClient::connect(self.address, key).await.expect("connects")
    }

    /// An engine command straight to the node (what the binary protocol does).
    fn engine(&self, player: u64, action: Action) -> Outcome {
        let (sender, receiver) = mpsc::channel();
        let command = Command::Player { operator: OperatorId(1), player: PlayerId(player), action };
        self.node.submit(command, 0, Arc::new(Collect(sender))).expect("queued");
        receiver.recv_timeout(Duration::from_secs(10)).expect("answered")
    }

    /// Creates player `player` of operator 1 with `cash` EUR and opens a
    /// session on `GAME`; returns its token.
    async fn player(&self, player: u64, cash: &str) -> String {
        let mut admin = self.client(ADMIN_KEY).await;
        let created =
            admin.send("POST", "/admin/players", &[], Some(&json!({"operatorId": 1, "playerId": player.to_string()}).to_string())).await;
        assert_eq!(created.expect("answered").status, 200);
        let funded = admin
            .send(
                "POST",
                &format!("/admin/players/{player}/deposits"),
                &[],
                Some(&format!(r#"{{"operatorId":1,"currency":"EUR","amount":{cash},"transactionId":"fund-{player}"}}"#)),
            )
            .await
            .expect("answered");
        assert_eq!(funded.status, 200, "{:?}", funded.body);
        self.session(player, json!({"operatorId": 1, "gameId": GAME, "currency": "EUR", "country": "mt", "language": "en"})).await
    }

    async fn session(&self, player: u64, request: Value) -> String {
        let mut admin = self.client(ADMIN_KEY).await;
        let opened =
            admin.send("POST", &format!("/admin/players/{player}/sessions"), &[], Some(&request.to_string())).await.expect("answered");
        assert_eq!(opened.status, 200, "{:?}", opened.body);
        opened.body["token"].as_str().expect("a token").to_string()
    }
}

/// A PAM call with the required headers.
async fn call(client: &mut PamClient, method: &str, path: &str, token: &str, body: Option<Value>) -> PamResponse {
    let body = body.map(|b| b.to_string());
    client
        .send(method, path, &[("X-Player-Token", token), ("X-Correlation-ID", "corr-1")], body.as_deref())
        .await
        .expect("the server answers")
}

fn transaction(kind: &str, id: &str, cash: &str, extra: Value) -> Value {
    let mut body = json!({
        "currency": "EUR",
        "provider": PROVIDER,
        "transactionType": kind,
        "cashAmount": serde_json::from_str::<Value>(cash).expect("a number"),
        "bonusAmount": 0,
        "promoAmount": 0,
        "transactionDateTime": "2026-11-24T12:00:00Z",
        "providerTransactionId": id,
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    body
}

fn transactions(player: u64) -> String {
    format!("/players/{player}/transactions?provider={PROVIDER}")
}

async fn add(client: &mut PamClient, player: u64, token: &str, body: Value) -> PamResponse {
    call(client, "POST", &transactions(player), token, Some(body)).await
}

fn cash(response: &PamResponse) -> String {
    let balance = if response.body["transactionResult"].is_object() {
        &response.body["transactionResult"]["balance"]
    } else {
        &response.body["balance"]
    };
    balance["cashAmount"].to_string()
}

fn ok(response: &PamResponse) -> &PamResponse {
    assert_eq!((response.status, response.body["status"].as_str()), (200, Some("OK")), "{:?}", response.body);
    response
}

fn refused(response: &PamResponse, code: &str) -> PamResponse {
    assert_eq!(
        (response.status, response.body["status"].as_str(), response.code()),
        (200, Some("ERROR"), Some(code)),
        "{:?}",
        response.body
    );
    response.clone()
}

/// A balance as the server writes it: exact decimals.
fn pockets(cash: &str, bonus: &str, promo: &str) -> Value {
    serde_json::from_str(&format!(r#"{{"cashAmount":{cash},"bonusAmount":{bonus},"promoAmount":{promo}}}"#)).expect("JSON")
}

fn round(id: &str) -> Value {
    json!({ "providerRoundId": id, "providerGameId": GAME })
}

#[tokio::test]
async fn sessions_read_refresh_and_expire() {
    let harness = start().await;
    let token = harness.player(1, "100").await;
    assert_eq!(token.len(), 40, "the spec's tokens are 32 to 40 characters");
    let mut client = harness.client(OPERATOR_KEY).await;
    let session = call(&mut client, "GET", &format!("/players/session?provider={PROVIDER}"), &token, None).await;
    ok(&session);
    assert_eq!(
        session.body["session"],
        json!({"playerId": "1", "token": token, "currency": "EUR", "country": "MT", "language": "EN", "gameId": GAME})
    );
    assert_eq!(session.header("x-correlation-id"), Some("corr-1"), "the correlation id comes back");

    let refreshed = call(&mut client, "PUT", &format!("/players/session?provider={PROVIDER}"), &token, None).await;
    let fresh = ok(&refreshed).body["session"]["token"].as_str().expect("a token").to_string();
    assert_ne!(fresh, token);
    let old = call(&mut client, "GET", &format!("/players/1/balance?provider={PROVIDER}"), &token, None).await;
    assert_eq!((old.status, old.code()), (401, Some("PAM_ERR_SESSION_NOT_FOUND")), "the old token is invalidated");
    let balance = call(&mut client, "GET", &format!("/players/1/balance?provider={PROVIDER}"), &fresh, None).await;
    assert_eq!(ok(&balance).body["balance"], pockets("100.00", "0.00", "0.00"));

    // A session without a locale reports the configured default.
    let plain = harness.session(1, json!({"operatorId": 1, "gameId": GAME, "currency": "EUR"})).await;
    let session = call(&mut client, "GET", &format!("/players/session?provider={PROVIDER}"), &plain, None).await;
    assert_eq!((ok(&session).body["session"]["country"].as_str(), session.body["session"]["language"].as_str()), (Some("MT"), Some("EN")));

    // Expired: 401 with its own code; a withdraw on it too.
    let short = harness.session(1, json!({"operatorId": 1, "gameId": GAME, "currency": "EUR", "durationMs": 1})).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let expired = call(&mut client, "GET", &format!("/players/session?provider={PROVIDER}"), &short, None).await;
    assert_eq!((expired.status, expired.code()), (401, Some("PAM_ERR_SESSION_EXPIRED")));
    let bet = add(&mut client, 1, &short, transaction("WITHDRAW", "late-bet", "1", round("r-late"))).await;
    assert_eq!((bet.status, bet.code()), (401, Some("PAM_ERR_SESSION_EXPIRED")));
}

#[tokio::test]
async fn credentials_are_checked_before_anything_else() {
    let harness = start().await;
    let token = harness.player(1, "100").await;
    let other = harness.player(2, "100").await;
    let path = format!("/players/1/balance?provider={PROVIDER}");
    let headers = [("X-Player-Token", token.as_str()), ("X-Correlation-ID", "c")];
    for key in ["", "wrong-key", ADMIN_KEY] {
        let mut client = harness.client(key).await;
        let answer = client.send("GET", &path, &headers, None).await.expect("answered");
        assert_eq!((answer.status, answer.code()), (401, Some("PAM_ERR_API_TOKEN")), "key {key:?}");
    }
    let mut operator = harness.client(OPERATOR_KEY).await;
    let admin_path = operator.send("POST", "/admin/players", &[], Some(r#"{"operatorId":1,"playerId":"9"}"#)).await.expect("answered");
    assert_eq!((admin_path.status, admin_path.code()), (401, Some("PAM_ERR_API_TOKEN")), "operators cannot reach admin paths");

    // Another player's token, a forged token, no token.
    let foreign = call(&mut operator, "GET", &path, &other, None).await;
    assert_eq!((foreign.status, foreign.code()), (401, Some("PAM_ERR_SESSION_NOT_FOUND")));
    let forged = format!("{}{}", &token[..39], if token.ends_with('A') { 'B' } else { 'A' });
    let answer = call(&mut operator, "GET", &path, &forged, None).await;
    assert_eq!((answer.status, answer.code()), (401, Some("PAM_ERR_SESSION_NOT_FOUND")));
    let answer = operator.send("GET", &path, &[("X-Correlation-ID", "c")], None).await.expect("answered");
    assert_eq!((answer.status, answer.code()), (401, Some("PAM_ERR_SESSION_NOT_FOUND")));

    // Another operator's key on this operator's player: not its player.
    let mut stranger = harness.client(OTHER_OPERATOR_KEY).await;
    refused(&call(&mut stranger, "GET", &path, &token, None).await, "PAM_ERR_PLAYER_NOT_FOUND");

    // The provider is required: 400 where the spec documents it, else 401.
    let answer = call(&mut operator, "GET", "/players/1/balance", &token, None).await;
    assert_eq!((answer.status, answer.code()), (401, Some("PAM_ERR_MISSING_PROVIDER")));
    let answer = call(&mut operator, "POST", "/players/1/transactions", &token, Some(transaction("WITHDRAW", "t", "1", json!({})))).await;
    assert_eq!((answer.status, answer.code()), (400, Some("PAM_ERR_MISSING_PROVIDER")));
    let answer = operator.send("GET", &path, &[("X-Player-Token", &token)], None).await.expect("answered");
    assert_eq!(answer.status, 401, "X-Correlation-ID is required");
    refused(
        &call(&mut operator, "GET", &format!("/players/abc/balance?provider={PROVIDER}"), &token, None).await,
        "PAM_ERR_PLAYER_NOT_FOUND",
    );
}

#[tokio::test]
async fn a_withdraw_and_its_deposit_settle_a_round_and_replays_return_the_stored_result() {
    let harness = start().await;
    let token = harness.player(1, "100.00").await;
    let mut client = harness.client(OPERATOR_KEY).await;
    let bet = transaction("WITHDRAW", "bet-1", "12.5", round("round-1"));
    let placed = add(&mut client, 1, &token, bet.clone()).await;
    assert_eq!(cash(ok(&placed)), "87.50");
    let id = placed.body["transactionResult"]["transactionId"].clone();
    assert_eq!(id.as_str().map(str::len), Some(16));
    let replay = add(&mut client, 1, &token, bet.clone()).await;
    assert_eq!((cash(ok(&replay)), &replay.body["transactionResult"]["transactionId"]), ("87.50".to_string(), &id), "idempotent");
    let mut changed = bet.clone();
    changed["cashAmount"] = json!(13);
    refused(&add(&mut client, 1, &token, changed).await, "PAM_ERR_DUPLICATE_TRANS");

    // A deposit for the round (isGameOver absent: the round ends).
    let win = transaction("DEPOSIT", "win-1", "30", round("round-1"));
    assert_eq!(cash(ok(&add(&mut client, 1, &token, win.clone()).await)), "117.50");
    assert_eq!(cash(ok(&add(&mut client, 1, &token, win.clone()).await)), "117.50", "a replayed deposit pays once");
    let mut elsewhere = win.clone();
    elsewhere["providerRoundId"] = json!("round-2");
    refused(&add(&mut client, 1, &token, elsewhere).await, "PAM_ERR_DUPLICATE_TRANS");
    let mut other_game = win.clone();
    other_game["providerGameId"] = json!("another-game");
    refused(&add(&mut client, 1, &token, other_game).await, "PAM_ERR_DUPLICATE_TRANS");
    let late = refused(
        &add(&mut client, 1, &token, transaction("DEPOSIT", "win-2", "5", round("round-1"))).await,
        "PAM_ERR_TRANS_ALREADY_SETTLED",
    );
    assert_eq!(cash(&late), "117.50", "an error says the balance");
    let nowhere =
        refused(&add(&mut client, 1, &token, transaction("DEPOSIT", "win-3", "5", round("no-round"))).await, "PAM_ERR_TRANS_NOT_FOUND");
    assert_eq!(cash(&nowhere), "117.50");

    // Several deposits while the game goes on, the last one ends it.
    ok(&add(&mut client, 1, &token, transaction("WITHDRAW", "bet-2", "10", round("round-3"))).await);
    let mut partial = transaction("DEPOSIT", "win-4", "1", round("round-3"));
    partial["isGameOver"] = json!(false);
    ok(&add(&mut client, 1, &token, partial).await);
    ok(&add(&mut client, 1, &token, transaction("DEPOSIT", "win-5", "0", round("round-3"))).await);
    refused(&add(&mut client, 1, &token, transaction("DEPOSIT", "win-6", "1", round("round-3"))).await, "PAM_ERR_TRANS_ALREADY_SETTLED");
    let balance = call(&mut client, "GET", &format!("/players/1/balance?provider={PROVIDER}"), &token, None).await;
    assert_eq!(cash(ok(&balance)), "108.50");
}

#[tokio::test]
async fn cancels_follow_the_spec_case_by_case() {
    let harness = start().await;
    let token = harness.player(1, "100").await;
    let mut client = harness.client(OPERATOR_KEY).await;

    // Red Tiger style: the cancel carries the withdraw's own id.
    ok(&add(&mut client, 1, &token, transaction("WITHDRAW", "stake-1", "10", round("r-1"))).await);
    let cancel = transaction("CANCEL", "stake-1", "10", json!({}));
    assert_eq!(cash(ok(&add(&mut client, 1, &token, cancel.clone()).await)), "100.00");
    assert_eq!(cash(ok(&add(&mut client, 1, &token, cancel).await)), "100.00", "a retried cancel refunds once");
    let again = transaction("CANCEL", "another-cancel", "10", json!({"providerBetRef": "stake-1"}));
    refused(&add(&mut client, 1, &token, again).await, "PAM_ERR_TRANS_ALREADY_CANCELLED");
    refused(
        &add(&mut client, 1, &token, transaction("DEPOSIT", "win-1", "5", json!({"providerBetRef": "stake-1"}))).await,
        "PAM_ERR_TRANS_ALREADY_CANCELLED",
    );

    // Evolution style: a reference shared by the withdraw, its deposit and its cancel.
    ok(&add(
        &mut client,
        1,
        &token,
        transaction("WITHDRAW", "debit-2", "10", json!({"providerBetRef": "ref-2", "providerRoundId": "r-2", "providerGameId": GAME})),
    )
    .await);
    ok(&add(
        &mut client,
        1,
        &token,
        transaction("DEPOSIT", "credit-2", "4", json!({"providerBetRef": "ref-2", "providerRoundId": "r-2", "providerGameId": GAME})),
    )
    .await);
    let settled = refused(
        &add(&mut client, 1, &token, transaction("CANCEL", "debit-2", "10", json!({"providerBetRef": "ref-2"}))).await,
        "PAM_ERR_TRANS_ALREADY_SETTLED",
    );
    assert_eq!(cash(&settled), "94.00");

    // Nothing to cancel; something that is not a withdraw.
    let unknown = refused(
        &add(&mut client, 1, &token, transaction("CANCEL", "c-9", "1", json!({"providerBetRef": "never-placed"}))).await,
        "PAM_ERR_CANCEL_NOT_FOUND",
    );
    assert_eq!(cash(&unknown), "94.00");
    refused(
        &add(&mut client, 1, &token, transaction("WITHDRAW", "never-placed", "1", round("r-9"))).await,
        "PAM_ERR_TRANS_ALREADY_CANCELLED",
    );
    refused(
        &add(&mut client, 1, &token, transaction("CANCEL", "c-10", "1", json!({"providerBetRef": "credit-2"}))).await,
        "PAM_ERR_CANCEL_NON_WITHDRAW",
    );

    // Caleta style: the bet is its own reference; the cancel has its own id.
    ok(&add(
        &mut client,
        1,
        &token,
        transaction("WITHDRAW", "uuid-3", "2", json!({"providerBetRef": "uuid-3", "providerRoundId": "r-3", "providerGameId": GAME})),
    )
    .await);
    assert_eq!(
        cash(ok(&add(&mut client, 1, &token, transaction("CANCEL", "uuid-4", "0", json!({"providerBetRef": "uuid-3"}))).await)),
        "94.00"
    );
}

#[tokio::test]
async fn each_pocket_overdraws_with_its_own_code_and_amounts_are_exact() {
    let harness = start().await;
    let token = harness.player(1, "10").await;
    let mut client = harness.client(OPERATOR_KEY).await;
    let bet = |id: &str, cash: &str, bonus: i64, promo: i64| {
        let mut body = transaction("WITHDRAW", id, cash, round(&format!("r-{id}")));
        body["bonusAmount"] = json!(bonus);
        body["promoAmount"] = json!(promo);
        body
    };
    refused(&add(&mut client, 1, &token, bet("a", "10.01", 0, 0)).await, "PAM_ERR_CASH_OVERDRAFT");
    refused(&add(&mut client, 1, &token, bet("b", "1", 1, 0)).await, "PAM_ERR_BONUS_OVERDRAFT");
    refused(&add(&mut client, 1, &token, bet("c", "1", 0, 1)).await, "PAM_ERR_PROMO_OVERDRAFT");
    refused(&add(&mut client, 1, &token, bet("d", "-1", 0, 0)).await, "PAM_ERR_NEGATIVE_STAKE");
    // Finer than a cent: refused, never rounded.
    let fine = refused(&add(&mut client, 1, &token, bet("e", "0.001", 0, 0)).await, "PAM_ERR_UNDEFINED");
    assert_eq!(cash(&fine), "10.00");
    // A number in exponent form is exact too.
    assert_eq!(cash(ok(&add(&mut client, 1, &token, bet("f", "2.5E-1", 0, 0)).await)), "9.75");
    // Not a number at all: a malformed body.
    let mut text = bet("g", "1", 0, 0);
    text["cashAmount"] = json!("1.00");
    assert_eq!(add(&mut client, 1, &token, text).await.status, 400);
    // The session's currency only.
    let mut usd = bet("h", "1", 0, 0);
    usd["currency"] = json!("USD");
    refused(&add(&mut client, 1, &token, usd).await, "PAM_ERR_TRANS_CURRENCY");
    let mut other = bet("i", "1", 0, 0);
    other["currency"] = json!("GBP");
    refused(&add(&mut client, 1, &token, other).await, "PAM_ERR_TRANS_CURRENCY");
    // A game other than the session's.
    let mut game = bet("j", "1", 0, 0);
    game["providerGameId"] = json!("another-game");
    refused(&add(&mut client, 1, &token, game).await, "PAM_ERR_GAME_NOT_FOUND");
    // A blocked player may not bet.
    assert_eq!(harness.engine(1, Action::SetBlocked { blocked: true }), Ok(Reply::Done));
    refused(&add(&mut client, 1, &token, bet("k", "1", 0, 0)).await, "PAM_ERR_BET_NOT_ALLOWED");

    // An 8-decimal currency converts just as exactly.
    assert_eq!(harness.engine(1, Action::SetBlocked { blocked: false }), Ok(Reply::Done));
    let btc = harness.session(1, json!({"operatorId": 1, "gameId": GAME, "currency": "BTC"})).await;
    let balance = call(&mut client, "GET", &format!("/players/1/balance?provider={PROVIDER}"), &btc, None).await;
    assert_eq!(ok(&balance).body["balance"]["cashAmount"].to_string(), "0.00000000");
}

#[tokio::test]
async fn promo_transactions_have_their_own_namespace_and_awards_need_no_withdraw() {
    let harness = start().await;
    let token = harness.player(1, "50").await;
    let mut client = harness.client(OPERATOR_KEY).await;
    // A promo payout with no bet behind it: paid by the house into the promo pocket.
    let mut award = transaction("PROMODEPOSIT", "fs-win-1", "0", json!({}));
    award["promoAmount"] = json!(7.5);
    let paid = ok(&add(&mut client, 1, &token, award.clone()).await).body["transactionResult"]["balance"].clone();
    assert_eq!(paid, pockets("50.00", "0.00", "7.50"));
    ok(&add(&mut client, 1, &token, award).await);
    // Spending the promo pocket in a tournament buy-in, then its cancel.
    let mut buy_in = transaction("PROMOWITHDRAW", "buy-1", "0", round("t-1"));
    buy_in["promoAmount"] = json!(5);
    ok(&add(&mut client, 1, &token, buy_in).await);
    // A CANCEL does not reach a PROMOWITHDRAW: each cancel type has its withdraw type.
    refused(
        &add(&mut client, 1, &token, transaction("CANCEL", "c-1", "0", json!({"providerBetRef": "buy-1"}))).await,
        "PAM_ERR_CANCEL_NOT_FOUND",
    );
    let refunded = ok(&add(&mut client, 1, &token, transaction("PROMOCANCEL", "pc-1", "0", json!({"providerBetRef": "buy-1"}))).await).body
        ["transactionResult"]["balance"]["promoAmount"]
        .to_string();
    assert_eq!(refunded, "7.50");
    // A PROMODEPOSIT to an open promo round is that round's win.
    let mut buy_in = transaction("PROMOWITHDRAW", "buy-2", "0", round("t-2"));
    buy_in["promoAmount"] = json!(5);
    ok(&add(&mut client, 1, &token, buy_in).await);
    assert_eq!(cash(ok(&add(&mut client, 1, &token, transaction("PROMODEPOSIT", "prize-2", "20", round("t-2"))).await)), "70.00");
    let round_read = call(&mut client, "GET", &format!("/players/1/gamerounds/t-2?provider={PROVIDER}"), &token, None).await;
    assert!(ok(&round_read).body["gameround"]["endTime"].is_string(), "the prize ended the round");
}

#[tokio::test]
async fn lookups_find_transactions_by_id_or_bet_reference_and_rounds_by_id() {
    let harness = start().await;
    let token = harness.player(1, "100").await;
    let mut client = harness.client(OPERATOR_KEY).await;
    ok(&add(
        &mut client,
        1,
        &token,
        transaction("WITHDRAW", "debit-1", "10", json!({"providerBetRef": "ref-1", "providerRoundId": "r-1", "providerGameId": GAME})),
    )
    .await);
    ok(&add(
        &mut client,
        1,
        &token,
        transaction(
            "DEPOSIT",
            "credit-1",
            "2.5",
            json!({"providerBetRef": "ref-1", "providerRoundId": "r-1", "providerGameId": GAME, "isGameOver": false}),
        ),
    )
    .await);

    let by_ref = call(&mut client, "GET", &format!("{}&providerBetRef=ref-1", transactions(1)), &token, None).await;
    let found = ok(&by_ref).body["transactions"].as_array().expect("a list").clone();
    assert_eq!(found.len(), 1, "a reference names the withdraw");
    assert_eq!(
        (found[0]["transactionType"].as_str(), found[0]["providerTransactionId"].as_str(), found[0]["providerBetRef"].as_str()),
        (Some("WITHDRAW"), Some("debit-1"), Some("ref-1"))
    );
    assert_eq!(
        (found[0]["cashAmount"].to_string(), found[0]["currency"].as_str(), found[0]["provider"].as_str()),
        ("10.00".into(), Some("EUR"), Some(PROVIDER))
    );
    assert!(found[0]["transactionDateTime"].as_str().is_some_and(|t| t.ends_with('Z')));

    let by_id = call(&mut client, "GET", &format!("{}&providerTransactionId=credit-1", transactions(1)), &token, None).await;
    let found = ok(&by_id).body["transactions"].as_array().expect("a list").clone();
    assert_eq!(
        (found.len(), found[0]["transactionType"].as_str(), found[0]["cashAmount"].to_string()),
        (1, Some("DEPOSIT"), "2.50".into())
    );
    let none = call(&mut client, "GET", &format!("{}&providerTransactionId=nothing", transactions(1)), &token, None).await;
    assert_eq!(ok(&none).body["transactions"], json!([]));
    let other_provider =
        call(&mut client, "GET", "/players/1/transactions?provider=RedTiger&providerTransactionId=credit-1", &token, None).await;
    assert_eq!(ok(&other_provider).body["transactions"], json!([]), "each provider has its own ids");
    assert_eq!(call(&mut client, "GET", &transactions(1), &token, None).await.status, 400, "one lookup parameter is required");

    let open = call(&mut client, "GET", &format!("/players/1/gamerounds/r-1?provider={PROVIDER}"), &token, None).await;
    let open = &ok(&open).body["gameround"];
    assert_eq!(
        (open["providerGameId"].as_str(), open["providerRoundId"].as_str(), open["endTime"].is_null()),
        (Some(GAME), Some("r-1"), true)
    );
    ok(&add(
        &mut client,
        1,
        &token,
        transaction("DEPOSIT", "credit-2", "0", json!({"providerBetRef": "ref-1", "providerRoundId": "r-1", "providerGameId": GAME})),
    )
    .await);
    let closed = call(&mut client, "GET", &format!("/players/1/gamerounds/r-1?provider={PROVIDER}"), &token, None).await;
    assert!(ok(&closed).body["gameround"]["endTime"].is_string());
    refused(
        &call(&mut client, "GET", &format!("/players/1/gamerounds/r-404?provider={PROVIDER}"), &token, None).await,
        "PAM_ERR_ROUND_NOT_FOUND",
    );
}

#[tokio::test]
async fn bad_requests_get_stable_answers_and_nothing_moves() {
    let harness = start().await;
    let token = harness.player(1, "100").await;
    let mut client = harness.client(OPERATOR_KEY).await;
    for body in ["{", "[]", r#"{"currency":"EUR"}"#, "null"] {
        let answer = client
            .send("POST", &transactions(1), &[("X-Player-Token", &token), ("X-Correlation-ID", "c")], Some(body))
            .await
            .expect("answered");
        assert_eq!((answer.status, answer.body["status"].as_str()), (400, Some("ERROR")), "{body}");
    }
    let mut bad = transaction("WITHDRAW", "x", "1", round("r"));
    bad["transactionType"] = json!("BET");
    assert_eq!(add(&mut client, 1, &token, bad).await.status, 400);
    let long = transaction("WITHDRAW", &"x".repeat(41), "1", round("r"));
    assert_eq!(add(&mut client, 1, &token, long).await.status, 400);
    let spaced = transaction("WITHDRAW", "with space", "1", round("r"));
    assert_eq!(add(&mut client, 1, &token, spaced).await.status, 400, "ids are printable ASCII");
    let huge = "x".repeat(BODY_MAX_BYTES + 1);
    let answer = client.send("POST", &transactions(1), &[("X-Player-Token", &token), ("X-Correlation-ID", "c")], Some(&huge)).await;
    assert_eq!(answer.expect("answered").status, 413);
    let mut fresh = harness.client(OPERATOR_KEY).await;
    let answer = fresh.send("DELETE", &transactions(1), &[], None).await.expect("answered");
    assert_eq!((answer.status, answer.header("allow")), (405, Some("GET, POST")));
    assert_eq!(fresh.send("GET", "/nowhere", &[], None).await.expect("answered").status, 404);
    let balance = call(&mut fresh, "GET", &format!("/players/1/balance?provider={PROVIDER}"), &token, None).await;
    assert_eq!(cash(ok(&balance)), "100.00", "no refused request moved money");
    let metrics = harness.metrics.render(&harness.node);
    assert!(metrics.contains("casino_pam_requests_total{op=\"addTransaction\"}"), "PAM metrics are exported");
}

#[tokio::test]
async fn a_deposit_id_belongs_to_one_player_across_players_and_shards() {
    let harness = start().await;
    let first = harness.player(1, "100").await;
    let mut client = harness.client(OPERATOR_KEY).await;
    ok(&add(&mut client, 1, &first, transaction("WITHDRAW", "bet-1", "10", round("r-1"))).await);
    ok(&add(&mut client, 1, &first, transaction("DEPOSIT", "shared-win", "5", round("r-1"))).await);
    // Players 2 to 9 spread over both shards; none may reuse the deposit id.
    for player in 2..10 {
        let token = harness.player(player, "100").await;
        ok(&add(&mut client, player, &token, transaction("WITHDRAW", "bet-1", "10", round("r-1"))).await);
        let duplicate = refused(
            &add(&mut client, player, &token, transaction("DEPOSIT", "shared-win", "5", round("r-1"))).await,
            "PAM_ERR_DUPLICATE_TRANS",
        );
        assert_eq!(cash(&duplicate), "90.00", "player {player} was not paid");
        // Their own deposit id pays.
        ok(&add(&mut client, player, &token, transaction("DEPOSIT", &format!("win-{player}"), "5", round("r-1"))).await);
    }
    assert!(harness.node.status().iter().all(|s| s.wallets > 0), "both shards hold players");
}

#[tokio::test]
async fn retries_replay_after_the_session_moved_on_and_cancelled_rounds_stay_cancelled() {
    let harness = start().await;
    let token = harness.player(1, "100").await;
    let mut client = harness.client(OPERATOR_KEY).await;
    // A withdraw naming no game plays the session's.
    let bet = transaction("WITHDRAW", "bet-1", "10", json!({"providerRoundId": "r-1"}));
    assert_eq!(cash(ok(&add(&mut client, 1, &token, bet.clone()).await)), "90.00");
    // The session is refreshed; the provider retries the withdraw with the old token.
    let refreshed = call(&mut client, "PUT", &format!("/players/session?provider={PROVIDER}"), &token, None).await;
    let fresh = ok(&refreshed).body["session"]["token"].as_str().expect("a token").to_string();
    let retry = add(&mut client, 1, &token, bet.clone()).await;
    assert_eq!(cash(ok(&retry)), "90.00", "the stored result, not a session error");
    // A new withdraw needs the live session.
    let other = add(&mut client, 1, &token, transaction("WITHDRAW", "bet-2", "10", json!({"providerRoundId": "r-2"}))).await;
    assert_eq!((other.status, other.code()), (401, Some("PAM_ERR_SESSION_NOT_FOUND")));

    // A zero deposit that leaves the round open still settles the bet.
    let mut zero = transaction("DEPOSIT", "win-0", "0", json!({"providerRoundId": "r-1"}));
    zero["isGameOver"] = json!(false);
    ok(&add(&mut client, 1, &fresh, zero).await);
    refused(&add(&mut client, 1, &fresh, transaction("CANCEL", "bet-1", "10", json!({}))).await, "PAM_ERR_TRANS_ALREADY_SETTLED");

    // Every withdraw of a round cancelled: a deposit naming only the round is too late.
    ok(&add(&mut client, 1, &fresh, transaction("WITHDRAW", "bet-3", "10", json!({"providerRoundId": "r-3"}))).await);
    ok(&add(&mut client, 1, &fresh, transaction("CANCEL", "bet-3", "10", json!({}))).await);
    let late = refused(
        &add(&mut client, 1, &fresh, transaction("DEPOSIT", "win-3", "5", json!({"providerRoundId": "r-3"}))).await,
        "PAM_ERR_TRANS_ALREADY_CANCELLED",
    );
    assert_eq!(cash(&late), "90.00");
}
