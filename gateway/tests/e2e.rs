//! End-to-end tests of the gateway: a real server on a loopback socket in
//! front of a real node, driven by the Rust client and by raw frames.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use casino_client::error::ErrorCode;
use casino_client::frame::{encode_frame, split_frame};
use casino_client::proto::{self, client_frame::Body as In, server_frame::Body as Out, ClientFrame, ServerFrame};
use casino_client::{Client, ClientConfig, ClientError};
use cluster::{Node, NodeConfig, SlotMap};
use engine::{Currency, CurrencySpec, OperatorConfig, OperatorId, PlayerId, Reply};
use gateway::auth::{hash_key, ApiKeys, Principal, TokenSigner};
use gateway::server::{Gateway, GatewayConfig};
use prost::Message;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// ---- keys and operators ---------------------------------------------------

const OPERATOR_KEY: &str = "e2e-operator-1";
const SWEEPS_KEY: &str = "e2e-sweeps-2";
const OTHER_OPERATOR_KEY: &str = "e2e-operator-3";
const ADMIN_KEY: &str = "e2e-admin";

/// A reply that must come long before this, or the test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(10);

fn spec(code: &str) -> CurrencySpec {
    CurrencySpec { currency: Currency::new(code).expect("valid code"), scale: 2 }
}

fn operators() -> Vec<OperatorConfig> {
    vec![
        OperatorConfig {
            operator: OperatorId(1),
            sweepstakes: false,
            currencies: vec![spec("EUR"), spec("USD")],
            limit_increase_delay_ms: 0,
            redemption_min_minor: 0,
        },
        OperatorConfig {
            operator: OperatorId(2),
            sweepstakes: true,
            currencies: vec![spec("GC"), spec("SC")],
            limit_increase_delay_ms: 0,
            redemption_min_minor: 1_000,
        },
        OperatorConfig {
            operator: OperatorId(3),
            sweepstakes: false,
            currencies: vec![spec("EUR")],
            limit_increase_delay_ms: 0,
            redemption_min_minor: 0,
        },
    ]
}

fn keys() -> ApiKeys {
    let mut keys = ApiKeys::default();
    keys.insert_hash(hash_key(OPERATOR_KEY), Principal::Operator(OperatorId(1)));
    keys.insert_hash(hash_key(SWEEPS_KEY), Principal::Operator(OperatorId(2)));
    keys.insert_hash(hash_key(OTHER_OPERATOR_KEY), Principal::Operator(OperatorId(3)));
    keys.insert_hash(hash_key(ADMIN_KEY), Principal::Admin);
    keys
}

// ---- the server -----------------------------------------------------------

struct TestServer {
    address: SocketAddr,
    gateway: Arc<Gateway>,
    node: Arc<Node>,
}

impl TestServer {
    fn metrics_text(&self) -> String {
        self.gateway.metrics().render(&self.node)
    }
}

/// Starts a node with the three operators and a gateway in front of it on
/// 127.0.0.1:0.
async fn start(config: GatewayConfig, node_config: NodeConfig) -> TestServer {
    start_with_tls(config, node_config, None).await
}

async fn start_with_tls(config: GatewayConfig, node_config: NodeConfig, tls: Option<tokio_rustls::TlsAcceptor>) -> TestServer {
    let node = Arc::new(Node::start(node_config).expect("a node without storage starts"));
    for operator in operators() {
        assert_eq!(node.configure_operator(operator), Ok(Reply::Done));
    }
    let gateway = Arc::new(Gateway::new(config, node.clone(), keys(), TokenSigner::new([7; 32]), tls));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let address = listener.local_addr().expect("bound");
    tokio::spawn(gateway.clone().serve(listener));
    TestServer { address, gateway, node }
}

async fn start_default() -> TestServer {
    start(GatewayConfig::default(), NodeConfig { shard_count: 2, ..NodeConfig::default() }).await
}

async fn client(address: SocketAddr, key: &str) -> Client {
    Client::connect(ClientConfig::new(address.to_string(), key)).await.expect("the client connects and says Hello")
}

// ---- requests and replies -------------------------------------------------

fn amount(minor: i64) -> Option<proto::Stake> {
    Some(proto::Stake { kind: Some(proto::stake::Kind::Amount(minor)) })
}

fn create_wallet(player: u64) -> In {
    In::CreateWallet(proto::CreateWallet { player_id: player })
}

fn deposit(player: u64, tx: &str, currency: &str, minor: i64) -> In {
    In::Deposit(proto::Deposit { player_id: player, tx_id: tx.into(), currency: currency.into(), amount: minor })
}

fn withdraw(player: u64, tx: &str, currency: &str, minor: i64) -> In {
    In::Withdraw(proto::Withdraw { player_id: player, tx_id: tx.into(), currency: currency.into(), amount: minor })
}

fn open_session(player: u64, game: &str, currency: &str, duration_ms: u64) -> In {
    In::OpenSession(proto::OpenSession {
        player_id: player,
        game_id: game.into(),
        currency: currency.into(),
        duration_ms,
        ..Default::default()
    })
}

fn bet(token: &[u8], tx: &str, round: &str, game: &str, currency: &str, minor: i64) -> In {
    In::Bet(proto::Bet {
        session_token: token.to_vec(),
        tx_id: tx.into(),
        round_id: round.into(),
        game_id: game.into(),
        currency: currency.into(),
        stake: amount(minor),
    })
}

fn win(player: u64, tx: &str, bet_tx: &str, minor: i64, close_round: bool) -> In {
    In::Win(proto::Win { player_id: player, tx_id: tx.into(), bet_tx_id: bet_tx.into(), amount: amount(minor), close_round })
}

fn get_balance(player: u64, currency: &str) -> In {
    In::GetBalance(proto::GetBalance { player_id: player, currency: currency.into() })
}

fn play(token: &[u8], tx: &str, currency: &str, stake: i64, bet: &str, provably_fair: bool) -> In {
    In::Play(proto::Play {
        session_token: token.to_vec(),
        tx_id: tx.into(),
        currency: currency.into(),
        stake,
        bet: bet.into(),
        provably_fair,
    })
}

fn ping() -> In {
    In::Ping(proto::Ping {})
}

fn hello(key: &str) -> In {
    In::Hello(proto::Hello { protocol_version: 1, api_key: key.into() })
}

#[track_caller]
fn tx(reply: Out) -> proto::TxResult {
    match reply {
        Out::Tx(tx) => tx,
        other => panic!("expected a TxResult, got {other:?}"),
    }
}

#[track_caller]
fn tx_balance(reply: Out) -> proto::Balance {
    tx(reply).balance.expect("a TxResult carries the balance")
}

#[track_caller]
fn balance(reply: Out) -> proto::Balance {
    match reply {
        Out::Balance(balance) => balance,
        other => panic!("expected a Balance, got {other:?}"),
    }
}

#[track_caller]
fn done(reply: Out) {
    assert!(matches!(reply, Out::Done(_)), "expected Done, got {reply:?}");
}

#[track_caller]
fn rejected(reply: Out) -> (u32, String) {
    match reply {
        Out::Rejected(r) => (r.code, r.name),
        other => panic!("expected a Rejected, got {other:?}"),
    }
}

#[track_caller]
fn error(reply: Out) -> u32 {
    match reply {
        Out::Error(e) => e.code,
        other => panic!("expected an Error, got {other:?}"),
    }
}

#[track_caller]
fn token(reply: Out) -> Vec<u8> {
    match reply {
        Out::SessionOpened(opened) => {
            // Every session also comes with its PAM API token, for the aggregator.
            let pam = gateway::pam::wire::Tokens::new([7; 32]);
            assert!(pam.verify(&opened.pam_token).is_some_and(|(_, s)| s.0 == opened.session_id), "{:?}", opened.pam_token);
            opened.token
        }
        other => panic!("expected SessionOpened, got {other:?}"),
    }
}

fn cash(minor: i64, currency: &str) -> proto::Balance {
    proto::Balance { currency: currency.into(), cash: minor, bonus: 0, promo: 0 }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_millis() as u64
}

// ---- raw connections ------------------------------------------------------

/// A connection spoken to frame by frame.
struct Raw {
    stream: TcpStream,
    buffer: BytesMut,
}

impl Raw {
    async fn connect(address: SocketAddr) -> Raw {
        let stream = TcpStream::connect(address).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Raw { stream, buffer: BytesMut::with_capacity(64 * 1024) }
    }

    /// Writes bytes; the server may already have closed (the error is returned).
    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    async fn send(&mut self, request_id: u64, body: In) {
        let mut bytes = Vec::new();
        encode_frame(&ClientFrame { request_id, body: Some(body) }, &mut bytes);
        self.write(&bytes).await.expect("the server reads");
    }

    /// The next frame, or None once the server closed the connection.
    async fn frame(&mut self) -> Option<ServerFrame> {
        loop {
            if let Some(frame) = split_frame(&mut self.buffer).expect("the server sends well-formed frames") {
                return Some(ServerFrame::decode(frame).expect("the server sends ServerFrames"));
            }
            match tokio::time::timeout(PATIENCE, self.stream.read_buf(&mut self.buffer)).await {
                Err(_) => panic!("no frame and no close within {PATIENCE:?}"),
                Ok(Ok(0)) | Ok(Err(_)) => return None,
                Ok(Ok(_)) => {}
            }
        }
    }

    /// The next frame, which must come.
    async fn reply(&mut self) -> (u64, Out) {
        let frame = self.frame().await.expect("a frame, not a closed connection");
        (frame.request_id, frame.body.expect("every server frame has a body"))
    }

    async fn call(&mut self, request_id: u64, body: In) -> Out {
        self.send(request_id, body).await;
        let (id, reply) = self.reply().await;
        assert_eq!(id, request_id, "the reply names its request");
        reply
    }

    async fn call_frame(&mut self, frame: ClientFrame) -> Out {
        let request_id = frame.request_id;
        let mut bytes = Vec::new();
        encode_frame(&frame, &mut bytes);
        self.write(&bytes).await.expect("written");
        let (id, reply) = self.reply().await;
        assert_eq!(id, request_id);
        reply
    }

    async fn hello(&mut self, key: &str) -> proto::HelloOk {
        match self.call(1, hello(key)).await {
            Out::HelloOk(ok) => ok,
            other => panic!("expected HelloOk, got {other:?}"),
        }
    }

    /// The server closes: no more frames, then end of stream.
    async fn assert_closed(&mut self) {
        if let Some(frame) = self.frame().await {
            panic!("expected the connection to close, got {frame:?}");
        }
    }
}

/// A frame header announcing `length` body bytes.
fn header(length: u32) -> [u8; 4] {
    length.to_le_bytes()
}

/// Bytes that are a frame of the right length but not a ClientFrame.
fn garbage_frame() -> Vec<u8> {
    // A field key that is an over-long varint: never a valid protobuf message.
    let body = [0xff_u8; 12];
    assert!(ClientFrame::decode(&body[..]).is_err(), "the garbage really is garbage");
    let mut bytes = header(body.len() as u32).to_vec();
    bytes.extend_from_slice(&body);
    bytes
}

// ---- every operation ------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_of_the_protocol_works_through_a_real_socket() {
    let server = start_default().await;
    let op = client(server.address, OPERATOR_KEY).await;
    let ok = op.hello().expect("a HelloOk");
    assert_eq!((ok.protocol_version, ok.role.as_str(), ok.operator_id), (1, "operator", 1));
    assert_eq!((ok.max_frame_bytes, ok.max_in_flight), (65_536, 1_024));

    // Ping.
    assert!(matches!(op.call(ping()).await.expect("pong"), Out::Pong(_)));

    // Wallet, deposit, withdraw, balance.
    let p = 1_001;
    done(op.call(create_wallet(p)).await.expect("reply"));
    let after = tx(op.call(deposit(p, "dep-1", "EUR", 10_000)).await.expect("reply"));
    assert_eq!((after.balance.clone(), after.replayed), (Some(cash(10_000, "EUR")), false));
    assert_eq!(tx_balance(op.call(withdraw(p, "wd-1", "EUR", 1_500)).await.expect("reply")), cash(8_500, "EUR"));
    assert_eq!(tx_balance(op.call(deposit(p, "dep-usd", "USD", 700)).await.expect("reply")), cash(700, "USD"));
    assert_eq!(balance(op.call(get_balance(p, "EUR")).await.expect("reply")), cash(8_500, "EUR"));

    // A session, a bet round with a win, a bet rolled back, a closed round.
    let before = now_ms();
    let opened = match op.call(open_session(p, "provider-slot", "EUR", 60_000)).await.expect("reply") {
        Out::SessionOpened(opened) => opened,
        other => panic!("expected SessionOpened, got {other:?}"),
    };
    assert_eq!(opened.token.len(), 61, "version, claims and HMAC");
    assert!(opened.expires_ms >= before + 60_000 && opened.expires_ms <= now_ms() + 60_000, "{}", opened.expires_ms);
    let session = opened.token;
    assert_eq!(
        tx_balance(op.call(bet(&session, "bet-1", "round-1", "provider-slot", "EUR", 500)).await.expect("reply")),
        cash(8_000, "EUR")
    );
    assert_eq!(tx_balance(op.call(win(p, "win-1", "bet-1", 1_200, false)).await.expect("reply")), cash(9_200, "EUR"));
    assert_eq!(
        tx_balance(op.call(bet(&session, "bet-2", "round-2", "provider-slot", "EUR", 300)).await.expect("reply")),
        cash(8_900, "EUR")
    );
    let rollback = In::Rollback(proto::Rollback { player_id: p, tx_id: "rb-1".into(), bet_tx_id: "bet-2".into(), currency: "EUR".into() });
    let refunded = tx(op.call(rollback).await.expect("reply"));
    assert_eq!((refunded.balance, refunded.bet_found), (Some(cash(9_200, "EUR")), true));
    done(op.call(In::CloseRound(proto::CloseRound { player_id: p, round_id: "round-1".into() })).await.expect("reply"));
    assert_eq!(rejected(op.call(win(p, "win-2", "bet-1", 100, false)).await.expect("reply")).0, 404, "the round is closed");

    // Blocking stops bets; unblocking lets the same (unrecorded) id through.
    let blocked = |blocked| In::SetBlocked(proto::SetBlocked { player_id: p, blocked });
    done(op.call(blocked(true)).await.expect("reply"));
    assert_eq!(rejected(op.call(bet(&session, "bet-3", "round-3", "provider-slot", "EUR", 200)).await.expect("reply")).0, 600);
    done(op.call(blocked(false)).await.expect("reply"));
    assert_eq!(
        tx_balance(op.call(bet(&session, "bet-3", "round-3", "provider-slot", "EUR", 200)).await.expect("reply")),
        cash(9_000, "EUR")
    );

    // A deposit limit binds at once.
    let limit = In::SetLimit(proto::SetLimit {
        player_id: p,
        source: proto::LimitSource::Player as i32,
        kind: proto::LimitKind::Deposit as i32,
        period: proto::LimitPeriod::Day as i32,
        currency: "EUR".into(),
        amount: Some(1_000),
    });
    done(op.call(limit).await.expect("reply"));
    assert_eq!(rejected(op.call(deposit(p, "dep-2", "EUR", 2_000)).await.expect("reply")), (603, "DepositLimitExceeded".into()));
    assert_eq!(tx_balance(op.call(deposit(p, "dep-2", "EUR", 600)).await.expect("reply")), cash(9_600, "EUR"));

    // A bonus: granted into the bonus pocket, then forfeited.
    let grant = In::GrantBonus(proto::GrantBonus {
        player_id: p,
        tx_id: "bonus-tx".into(),
        bonus_id: "welcome".into(),
        currency: "EUR".into(),
        amount: 2_000,
        wagering_multiple: 10,
        max_bet: 1_000,
        duration_ms: 86_400_000,
        weights: vec![proto::GameWeight { game_id: "provider-slot".into(), percent: 100 }],
        default_weight_percent: 50,
    });
    assert_eq!(
        tx_balance(op.call(grant).await.expect("reply")),
        proto::Balance { currency: "EUR".into(), cash: 9_600, bonus: 2_000, promo: 0 }
    );
    done(op.call(In::ForfeitBonus(proto::ForfeitBonus { player_id: p, bonus_id: "welcome".into() })).await.expect("reply"));
    assert_eq!(balance(op.call(get_balance(p, "EUR")).await.expect("reply")), cash(9_600, "EUR"));

    // Closing the session ends its bets.
    done(op.call(In::CloseSession(proto::CloseSession { session_token: session.clone() })).await.expect("reply"));
    assert_eq!(rejected(op.call(bet(&session, "bet-4", "round-4", "provider-slot", "EUR", 100)).await.expect("reply")).0, 500);

    // A session time limit: bets in a session older than the limit are refused.
    let q = 1_002;
    done(op.call(create_wallet(q)).await.expect("reply"));
    assert_eq!(tx_balance(op.call(deposit(q, "dep-q", "EUR", 5_000)).await.expect("reply")), cash(5_000, "EUR"));
    let q_session = token(op.call(open_session(q, "provider-slot", "EUR", 60_000)).await.expect("reply"));
    let time_limit = In::SetSessionTimeLimit(proto::SetSessionTimeLimit {
        player_id: q,
        source: proto::LimitSource::Player as i32,
        duration_ms: Some(1),
    });
    done(op.call(time_limit).await.expect("reply"));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(rejected(op.call(bet(&q_session, "bet-q", "round-q", "provider-slot", "EUR", 100)).await.expect("reply")).0, 606);

    // Cool-off stops deposits; self-exclusion stops sessions.
    done(op.call(In::CoolOff(proto::CoolOff { player_id: q, duration_ms: 3_600_000 })).await.expect("reply"));
    assert_eq!(rejected(op.call(deposit(q, "dep-q2", "EUR", 100)).await.expect("reply")), (602, "CoolingOff".into()));
    let r = 1_003;
    done(op.call(create_wallet(r)).await.expect("reply"));
    done(op.call(In::SelfExclude(proto::SelfExclude { player_id: r, until_ms: None })).await.expect("reply"));
    assert_eq!(rejected(op.call(open_session(r, "dice", "EUR", 60_000)).await.expect("reply")), (601, "SelfExcluded".into()));

    // Provably-fair seeds: the second rotation reveals the first seed.
    let rotate = |seed: &str| In::RotateSeeds(proto::RotateSeeds { player_id: p, client_seed: seed.into() });
    let first = match op.call(rotate("seed-a")).await.expect("reply") {
        Out::Seeds(seeds) => seeds,
        other => panic!("expected Seeds, got {other:?}"),
    };
    assert_eq!(
        (first.revealed_server_seed.len(), first.server_seed_hash.len(), first.client_seed.as_str(), first.nonce),
        (0, 32, "seed-a", 0)
    );
    let second = match op.call(rotate("seed-b")).await.expect("reply") {
        Out::Seeds(seeds) => seeds,
        other => panic!("expected Seeds, got {other:?}"),
    };
    assert_eq!(second.revealed_server_seed.len(), 32);
    assert_eq!(Sha256::digest(&second.revealed_server_seed).to_vec(), first.server_seed_hash, "the revealed seed is the committed one");
    assert_ne!(second.server_seed_hash, first.server_seed_hash);

    // The built-in games, each in its own session.
    let mut expected_cash = 9_600;
    for (game, bet_text, stake, fair) in [
        ("roulette-eu", "red", 100, false),
        ("lucky-lines", "spin", 100, false),
        ("dice", "under:5000", 100, false),
        ("crash", "2.00", 100, false),
        ("dice", "over:2500", 40, true),
    ] {
        let session = token(op.call(open_session(p, game, "EUR", 60_000)).await.expect("reply"));
        let tx_id = format!("play-{game}-{fair}");
        let played = match op.call(play(&session, &tx_id, "EUR", stake, bet_text, fair)).await.expect("reply") {
            Out::Played(played) => played,
            other => panic!("{game}: expected Played, got {other:?}"),
        };
        expected_cash += played.win - stake;
        let after = played.tx.expect("a Played carries its TxResult");
        assert_eq!(after.balance, Some(cash(expected_cash, "EUR")), "{game}");
        assert!(!after.replayed);
        // The win follows from the outcome text by the game's own rules.
        let kind = engine::games::GameKind::from_id(game).expect("a built-in game");
        let choice = gateway::choice::parse(kind, bet_text).expect("a valid bet");
        let drawn = match game {
            "roulette-eu" => Some(engine::games::Drawn::Roulette { pocket: played.outcome.parse().expect("a pocket") }),
            "dice" => Some(engine::games::Drawn::Dice { roll: played.outcome.parse().expect("a roll") }),
            "crash" => {
                let point: f64 = played.outcome.parse().expect("a crash point");
                assert!(point >= 1.0, "{point}");
                Some(engine::games::Drawn::Crash { point: (point * 100.0).round() as u32 })
            }
            _ => {
                assert!(played.outcome.split(';').all(|spin| spin.split(' ').count() == 5), "{}", played.outcome);
                None
            }
        };
        if let Some(drawn) = drawn {
            assert_eq!(engine::games::settle(&choice, &drawn, stake as u64), Some(played.win as u64), "{game}: {}", played.outcome);
        }
        // The same request again is a replay that moves nothing.
        let replay = tx(op.call(play(&session, &tx_id, "EUR", stake, bet_text, fair)).await.expect("reply"));
        assert_eq!((replay.balance, replay.replayed), (Some(cash(expected_cash, "EUR")), true), "{game}");
    }
    assert_eq!(balance(op.call(get_balance(p, "EUR")).await.expect("reply")), cash(expected_cash, "EUR"));

    // Sweepstakes: a purchase, a grant, redemptions approved and rejected.
    let sweeps = client(server.address, SWEEPS_KEY).await;
    let s = 2_001;
    done(sweeps.call(create_wallet(s)).await.expect("reply"));
    assert_eq!(tx_balance(sweeps.call(deposit(s, "gc-1", "GC", 5_000)).await.expect("reply")), cash(5_000, "GC"));
    assert_eq!(rejected(sweeps.call(deposit(s, "sc-buy", "SC", 5_000)).await.expect("reply")).0, 205, "SC is never bought");
    let grant = In::GrantSweeps(proto::GrantSweeps {
        player_id: s,
        tx_id: "sc-1".into(),
        kind: proto::SweepsGrantKind::DailyReward as i32,
        amount: 10_000,
        playthrough_multiple: 0,
    });
    assert_eq!(tx_balance(sweeps.call(grant).await.expect("reply")), cash(10_000, "SC"));
    let request =
        |id: &str, minor| In::RequestRedemption(proto::RequestRedemption { player_id: s, redemption_id: id.into(), amount: minor });
    let sc = |redeemable, pending| proto::Balance { currency: "SC".into(), cash: redeemable, bonus: 0, promo: pending };
    assert_eq!(rejected(sweeps.call(request("red-0", 500)).await.expect("reply")).0, 800, "below the minimum");
    assert_eq!(tx_balance(sweeps.call(request("red-1", 3_000)).await.expect("reply")), sc(7_000, 3_000));
    let approve = In::ApproveRedemption(proto::ApproveRedemption { player_id: s, redemption_id: "red-1".into() });
    assert_eq!(tx_balance(sweeps.call(approve).await.expect("reply")), sc(7_000, 0));
    assert_eq!(tx_balance(sweeps.call(request("red-2", 2_000)).await.expect("reply")), sc(5_000, 2_000));
    let reject = In::RejectRedemption(proto::RejectRedemption { player_id: s, redemption_id: "red-2".into() });
    assert_eq!(tx_balance(sweeps.call(reject).await.expect("reply")), sc(7_000, 0));
    assert_eq!(balance(sweeps.call(get_balance(s, "SC")).await.expect("reply")), sc(7_000, 0));

    // The admin sees the cluster.
    let admin = client(server.address, ADMIN_KEY).await;
    let ok = admin.hello().expect("a HelloOk");
    assert_eq!((ok.role.as_str(), ok.operator_id), ("admin", 0));
    assert!(matches!(admin.call(ping()).await.expect("pong"), Out::Pong(_)));
    let status = match admin.call(In::ClusterStatus(proto::ClusterStatus {})).await.expect("reply") {
        Out::ClusterStatus(status) => status,
        other => panic!("expected ClusterStatus, got {other:?}"),
    };
    assert_eq!((status.shard_count, status.slot_count), (2, u32::from(cluster::SLOT_COUNT)));
    assert_eq!(status.shards.iter().map(|s| s.shard_id).collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(status.shards.iter().map(|s| s.wallets).sum::<u64>(), 4, "players 1001, 1002, 1003 and 2001");
    assert!(status.shards.iter().all(|s| s.applied_index > 0 && s.queue_depth == 0), "{status:?}");
}

// ---- engine rejections ----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_rejections_come_back_as_rejected_with_their_documented_codes() {
    let server = start_default().await;
    let op = client(server.address, OPERATOR_KEY).await;
    let other = client(server.address, OTHER_OPERATOR_KEY).await;
    let p = 7;
    done(op.call(create_wallet(p)).await.expect("reply"));
    assert_eq!(rejected(op.call(create_wallet(p)).await.expect("reply")), (203, "PlayerExists".into()));
    assert_eq!(tx_balance(op.call(deposit(p, "d-1", "EUR", 1_000)).await.expect("reply")), cash(1_000, "EUR"));

    // Insufficient funds (300): a withdrawal and a bet beyond the balance, which move nothing.
    assert_eq!(rejected(op.call(withdraw(p, "w-1", "EUR", 1_001)).await.expect("reply")), (300, "InsufficientFunds".into()));
    let session = token(op.call(open_session(p, "provider-slot", "EUR", 60_000)).await.expect("reply"));
    assert_eq!(rejected(op.call(bet(&session, "b-1", "r-1", "provider-slot", "EUR", 5_000)).await.expect("reply")).0, 300);
    assert_eq!(balance(op.call(get_balance(p, "EUR")).await.expect("reply")), cash(1_000, "EUR"));

    // TxConflict (400): the same id with other parameters; the same parameters replay.
    assert_eq!(rejected(op.call(deposit(p, "d-1", "EUR", 2_000)).await.expect("reply")), (400, "TxConflict".into()));
    let replay = tx(op.call(deposit(p, "d-1", "EUR", 1_000)).await.expect("reply"));
    assert_eq!((replay.balance, replay.replayed), (Some(cash(1_000, "EUR")), true));

    // Unknown player (200), and a player of operator 1 addressed by operator 3 (201).
    assert_eq!(rejected(op.call(get_balance(999_999, "EUR")).await.expect("reply")), (200, "UnknownPlayer".into()));
    assert_eq!(rejected(other.call(get_balance(p, "EUR")).await.expect("reply")), (201, "ForeignPlayer".into()));
    assert_eq!(rejected(other.call(deposit(p, "d-foreign", "EUR", 10)).await.expect("reply")).0, 201);

    // More of the table: unknown currency, zero amount, a win on an unknown bet, an invalid id.
    assert_eq!(rejected(op.call(deposit(p, "d-2", "GBP", 10)).await.expect("reply")).0, 204);
    assert_eq!(rejected(op.call(deposit(p, "d-3", "EUR", 0)).await.expect("reply")).0, 100);
    assert_eq!(rejected(op.call(deposit(p, "d-4", "EUR", -5)).await.expect("reply")).0, 101);
    assert_eq!(rejected(op.call(win(p, "w-2", "no-such-bet", 10, true)).await.expect("reply")).0, 401);
    assert_eq!(rejected(op.call(deposit(p, "", "EUR", 10)).await.expect("reply")).0, 103, "an empty id");
    assert_eq!(rejected(op.call(deposit(p, "d-5", "eur", 10)).await.expect("reply")).0, 104, "a lower-case code");
    assert_eq!(balance(op.call(get_balance(p, "EUR")).await.expect("reply")), cash(1_000, "EUR"), "no refusal moved money");

    // The rejections are counted by code.
    let metrics = server.metrics_text();
    assert_eq!(metric(&metrics, "casino_rejections_total{code=\"300\",name=\"InsufficientFunds\"}"), Some(2));
    assert_eq!(metric(&metrics, "casino_rejections_total{code=\"201\",name=\"ForeignPlayer\"}"), Some(2));
}

// ---- gateway errors -------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_frame_is_refused_and_the_connection_stays_usable() {
    let server = start_default().await;
    let mut raw = Raw::connect(server.address).await;
    raw.hello(OPERATOR_KEY).await;
    raw.write(&garbage_frame()).await.expect("written");
    let (id, reply) = raw.reply().await;
    assert_eq!((id, error(reply)), (0, ErrorCode::MalformedFrame.code()));
    // A ClientFrame whose request id has the wrong wire type is malformed too.
    let mut wrong_type = header(3).to_vec();
    wrong_type.extend_from_slice(&[0x0a, 0x01, 0x00]);
    raw.write(&wrong_type).await.expect("written");
    let (id, reply) = raw.reply().await;
    assert_eq!((id, error(reply)), (0, 2000));
    assert!(matches!(raw.call(42, ping()).await, Out::Pong(_)), "the connection still works");
    assert!(server.metrics_text().contains("casino_gateway_errors_total{code=\"2000\",name=\"MalformedFrame\"} 2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_the_maximum_is_refused_and_the_connection_closes() {
    let server = start_default().await;
    // Announced and partly sent, as a client that means it would.
    let mut raw = Raw::connect(server.address).await;
    raw.hello(OPERATOR_KEY).await;
    let mut bytes = header(65_537).to_vec();
    bytes.extend_from_slice(&[0u8; 1_000]);
    let _ = raw.write(&bytes).await;
    let (id, reply) = raw.reply().await;
    assert_eq!((id, error(reply)), (0, ErrorCode::FrameTooLarge.code()));
    raw.assert_closed().await;
    // Just the header, before any Hello.
    let mut raw = Raw::connect(server.address).await;
    raw.write(&header(u32::MAX)).await.expect("written");
    let (id, reply) = raw.reply().await;
    assert_eq!((id, error(reply)), (0, 2001));
    raw.assert_closed().await;
    // The largest frame is still accepted: a 65,536-byte Hello body is read whole.
    let mut raw = Raw::connect(server.address).await;
    let padded = (0..16)
        .map(|less| ClientFrame { request_id: 5, body: Some(hello(&"k".repeat(65_536 - less))) })
        .find(|frame| frame.encoded_len() <= 65_536)
        .expect("a key length that fills the frame");
    assert_eq!(padded.encoded_len(), 65_536, "exactly the maximum");
    let mut bytes = Vec::new();
    encode_frame(&padded, &mut bytes);
    raw.write(&bytes).await.expect("written");
    let (id, reply) = raw.reply().await;
    assert_eq!((id, error(reply)), (5, ErrorCode::BadCredentials.code()), "read whole, refused only for its key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_frame_is_refused_and_the_connection_closes() {
    let server = start_default().await;
    let mut raw = Raw::connect(server.address).await;
    raw.hello(OPERATOR_KEY).await;
    raw.write(&header(0)).await.expect("written");
    let (id, reply) = raw.reply().await;
    assert_eq!((id, error(reply)), (0, ErrorCode::EmptyFrame.code()));
    raw.assert_closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsupported_version_is_refused_and_the_connection_closes() {
    let server = start_default().await;
    let mut raw = Raw::connect(server.address).await;
    let reply = raw.call(3, In::Hello(proto::Hello { protocol_version: 2, api_key: OPERATOR_KEY.into() })).await;
    assert_eq!(error(reply), ErrorCode::UnsupportedVersion.code());
    raw.assert_closed().await;
    let mut raw = Raw::connect(server.address).await;
    assert_eq!(error(raw.call(4, In::Hello(proto::Hello { protocol_version: 0, api_key: OPERATOR_KEY.into() })).await), 2002);
    raw.assert_closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_before_hello_is_not_authenticated_and_a_hello_may_follow() {
    let server = start_default().await;
    let mut raw = Raw::connect(server.address).await;
    assert_eq!(error(raw.call(9, ping()).await), ErrorCode::NotAuthenticated.code());
    assert_eq!(error(raw.call(10, get_balance(1, "EUR")).await), 2003);
    assert_eq!(raw.hello(OPERATOR_KEY).await.operator_id, 1);
    assert!(matches!(raw.call(11, ping()).await, Out::Pong(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_hello_is_not_authenticated_on_operator_and_admin_connections() {
    let server = start_default().await;
    let mut raw = Raw::connect(server.address).await;
    raw.hello(OPERATOR_KEY).await;
    assert_eq!(error(raw.call(2, hello(SWEEPS_KEY)).await), ErrorCode::NotAuthenticated.code());
    assert!(matches!(raw.call(3, ping()).await, Out::Pong(_)));
    // error.rs: NotAuthenticated is "a request before a successful Hello, or a second Hello".
    let mut admin = Raw::connect(server.address).await;
    admin.hello(ADMIN_KEY).await;
    assert_eq!(
        error(admin.call(2, hello(OPERATOR_KEY)).await),
        ErrorCode::NotAuthenticated.code(),
        "a second Hello on an admin connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_refused_and_the_connection_closes() {
    let server = start_default().await;
    let mut raw = Raw::connect(server.address).await;
    assert_eq!(error(raw.call(1, hello("not-a-key")).await), ErrorCode::BadCredentials.code());
    raw.assert_closed().await;
    let mut raw = Raw::connect(server.address).await;
    assert_eq!(error(raw.call(1, hello("")).await), 2004);
    raw.assert_closed().await;
    // The client reports the refusal with its code.
    match Client::connect(ClientConfig::new(server.address.to_string(), "wrong")).await {
        Err(ClientError::Refused { code, .. }) => assert_eq!(code, 2004),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_foreign_session_tokens_are_invalid() {
    let server = start_default().await;
    let op = client(server.address, OPERATOR_KEY).await;
    let other = client(server.address, OTHER_OPERATOR_KEY).await;
    done(op.call(create_wallet(5)).await.expect("reply"));
    tx(op.call(deposit(5, "d", "EUR", 1_000)).await.expect("reply"));
    let session = token(op.call(open_session(5, "provider-slot", "EUR", 60_000)).await.expect("reply"));
    let code = |reply: Out| error(reply);
    // Forged: random bytes, a flipped byte (another player), a truncated token.
    assert_eq!(code(op.call(bet(&[7u8; 61], "b", "r", "provider-slot", "EUR", 10)).await.expect("reply")), ErrorCode::TokenInvalid.code());
    let mut flipped = session.clone();
    flipped[6] ^= 1;
    assert_eq!(code(op.call(bet(&flipped, "b", "r", "provider-slot", "EUR", 10)).await.expect("reply")), 2005);
    assert_eq!(code(op.call(bet(&session[..60], "b", "r", "provider-slot", "EUR", 10)).await.expect("reply")), 2005);
    assert_eq!(code(op.call(bet(&[], "b", "r", "provider-slot", "EUR", 10)).await.expect("reply")), 2005);
    // Operator 3 presenting operator 1's token, to bet, play or close it.
    assert_eq!(code(other.call(bet(&session, "b", "r", "provider-slot", "EUR", 10)).await.expect("reply")), 2005);
    assert_eq!(code(other.call(play(&session, "p", "EUR", 20, "spin", false)).await.expect("reply")), 2005);
    assert_eq!(code(other.call(In::CloseSession(proto::CloseSession { session_token: session.clone() })).await.expect("reply")), 2005);
    // None of it moved money; the genuine token still works.
    assert_eq!(tx_balance(op.call(bet(&session, "b", "r", "provider-slot", "EUR", 10)).await.expect("reply")), cash(990, "EUR"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_token_is_refused() {
    let server = start_default().await;
    let op = client(server.address, OPERATOR_KEY).await;
    done(op.call(create_wallet(5)).await.expect("reply"));
    tx(op.call(deposit(5, "d", "EUR", 1_000)).await.expect("reply"));
    let session = token(op.call(open_session(5, "provider-slot", "EUR", 50)).await.expect("reply"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(error(op.call(bet(&session, "b", "r", "provider-slot", "EUR", 10)).await.expect("reply")), ErrorCode::TokenExpired.code());
    let dice = token(op.call(open_session(5, "dice", "EUR", 50)).await.expect("reply"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(error(op.call(play(&dice, "p", "EUR", 10, "under:5000", false)).await.expect("reply")), 2006);
    // An expired session may still be closed (the gateway lets the token through)...
    done(op.call(In::CloseSession(proto::CloseSession { session_token: dice })).await.expect("reply"));
    // ...unless the engine already pruned it, as it does expired sessions when one opens.
    let close = In::CloseSession(proto::CloseSession { session_token: session });
    assert_eq!(rejected(op.call(close).await.expect("reply")), (500, "SessionNotFound".into()));
    assert_eq!(balance(op.call(get_balance(5, "EUR")).await.expect("reply")), cash(1_000, "EUR"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_of_the_wrong_role_are_forbidden() {
    let server = start_default().await;
    let op = client(server.address, OPERATOR_KEY).await;
    done(op.call(create_wallet(5)).await.expect("reply"));
    tx(op.call(deposit(5, "d", "EUR", 1_000)).await.expect("reply"));
    let session = token(op.call(open_session(5, "provider-slot", "EUR", 60_000)).await.expect("reply"));
    let admin = client(server.address, ADMIN_KEY).await;
    assert_eq!(error(admin.call(bet(&session, "b", "r", "provider-slot", "EUR", 10)).await.expect("reply")), ErrorCode::Forbidden.code());
    assert_eq!(error(admin.call(deposit(5, "d2", "EUR", 10)).await.expect("reply")), 2007);
    assert_eq!(error(op.call(In::ClusterStatus(proto::ClusterStatus {})).await.expect("reply")), 2007);
    assert_eq!(balance(op.call(get_balance(5, "EUR")).await.expect("reply")), cash(1_000, "EUR"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_connection_rate_are_rate_limited() {
    let config = GatewayConfig { connection_rate: (5, 5), ..GatewayConfig::default() };
    let server = start(config, NodeConfig { shard_count: 2, ..NodeConfig::default() }).await;
    let mut raw = Raw::connect(server.address).await;
    raw.hello(OPERATOR_KEY).await;
    let mut bytes = Vec::new();
    for id in 1..=12 {
        encode_frame(&ClientFrame { request_id: id, body: Some(ping()) }, &mut bytes);
    }
    raw.write(&bytes).await.expect("written");
    let mut replies = HashMap::new();
    for _ in 0..12 {
        let (id, reply) = raw.reply().await;
        assert!(replies.insert(id, reply).is_none(), "one reply per request");
    }
    for id in 1..=5 {
        assert!(matches!(replies[&id], Out::Pong(_)), "request {id} is within the burst: {:?}", replies[&id]);
    }
    assert!(matches!(&replies[&6], Out::Error(e) if e.code == ErrorCode::RateLimited.code()), "{:?}", replies[&6]);
    let passed = replies.values().filter(|r| matches!(r, Out::Pong(_))).count();
    assert!(passed <= 6, "{passed} of 12 rapid requests passed a burst of 5");
    // The bucket refills at 5 a second.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(matches!(raw.call(100, ping()).await, Out::Pong(_)));
    // An admin connection has the same limit.
    let mut admin = Raw::connect(server.address).await;
    admin.hello(ADMIN_KEY).await;
    let mut bytes = Vec::new();
    for id in 1..=12 {
        encode_frame(&ClientFrame { request_id: id, body: Some(In::ClusterStatus(proto::ClusterStatus {})) }, &mut bytes);
    }
    admin.write(&bytes).await.expect("written");
    let mut limited = 0;
    for _ in 0..12 {
        match admin.reply().await.1 {
            Out::ClusterStatus(_) => {}
            reply => {
                assert_eq!(error(reply), ErrorCode::RateLimited.code());
                limited += 1;
            }
        }
    }
    assert!(limited >= 6, "{limited} of 12 rapid admin requests were limited by a burst of 5");

    // The operator's limit spans its connections.
    let config = GatewayConfig { operator_rate: (5, 5), ..GatewayConfig::default() };
    let server = start(config, NodeConfig { shard_count: 2, ..NodeConfig::default() }).await;
    let (mut a, mut b) = (Raw::connect(server.address).await, Raw::connect(server.address).await);
    a.hello(OPERATOR_KEY).await;
    b.hello(OPERATOR_KEY).await;
    let mut passed = 0;
    for id in 1..=4 {
        passed += usize::from(matches!(a.call(id, ping()).await, Out::Pong(_)));
        let reply = b.call(id, ping()).await;
        if !matches!(reply, Out::Pong(_)) {
            assert_eq!(error(reply), 2008);
        } else {
            passed += 1;
        }
    }
    assert!((5..=6).contains(&passed), "{passed} of 8 requests passed an operator burst of 5");
    // Another operator has its own bucket.
    let mut c = Raw::connect(server.address).await;
    c.hello(SWEEPS_KEY).await;
    assert!(matches!(c.call(1, ping()).await, Out::Pong(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_shard_queue_answers_overloaded_and_every_request_gets_one_reply() {
    let node_config = NodeConfig { shard_count: 2, queue_capacity: 1, batch_max: 1, ..NodeConfig::default() };
    let config = GatewayConfig { max_in_flight: 10_000, ..GatewayConfig::default() };
    let server = start(config, node_config).await;
    let mut raw = Raw::connect(server.address).await;
    raw.hello(OPERATOR_KEY).await;
    // Busy shards, queues of one, and more frames than the server reads at once:
    // whatever the server reads after its first submission finds the queues full.
    let held = hold_shards(&server.node);
    let count = 6_000u64;
    let mut bytes = Vec::new();
    for i in 0..count {
        encode_frame(&ClientFrame { request_id: 1_000 + i, body: Some(get_balance(i % 97, "EUR")) }, &mut bytes);
    }
    raw.write(&bytes).await.expect("written");
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(held);
    });
    let (mut overloaded, mut answered) = (0, 0);
    let mut seen = HashSet::new();
    for _ in 0..count {
        let (id, reply) = raw.reply().await;
        assert!((1_000..1_000 + count).contains(&id), "a reply to a request that was sent: {id}");
        assert!(seen.insert(id), "a second reply to request {id}");
        match reply {
            Out::Error(e) if e.code == ErrorCode::Overloaded.code() => overloaded += 1,
            Out::Rejected(r) if r.code == 200 => answered += 1,
            other => panic!("expected Overloaded or UnknownPlayer, got {other:?}"),
        }
    }
    release.join().expect("released");
    assert!(overloaded >= 1, "a queue of one overflowed under {count} pipelined requests");
    assert!(answered >= 1, "the shards answered some");
    // Nothing more comes for those requests.
    assert!(matches!(raw.call(1, ping()).await, Out::Pong(_)));
    assert!(tokio::time::timeout(Duration::from_millis(300), raw.frame()).await.is_err(), "no stray reply");
    assert!(server.metrics_text().contains(&format!("casino_gateway_errors_total{{code=\"2009\",name=\"Overloaded\"}} {overloaded}")));
    // The client retries an overloaded request with the same ids until it is taken.
    let op = client(server.address, OPERATOR_KEY).await;
    done(op.call_retrying(create_wallet(77)).await.expect("reply"));
    assert_eq!(tx_balance(op.call_retrying(deposit(77, "d", "EUR", 500)).await.expect("reply")), cash(500, "EUR"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_without_a_body_is_an_unknown_message() {
    let server = start_default().await;
    let mut raw = Raw::connect(server.address).await;
    raw.hello(OPERATOR_KEY).await;
    assert_eq!(error(raw.call_frame(ClientFrame { request_id: 77, body: None }).await), ErrorCode::UnknownMessage.code());
    // A message type from a later protocol (an unknown field number) is one too.
    let mut body = Vec::new();
    prost::encoding::uint64::encode(1, &78, &mut body);
    prost::encoding::message::encode(99, &proto::Ping {}, &mut body);
    let mut bytes = header(body.len() as u32).to_vec();
    bytes.extend_from_slice(&body);
    raw.write(&bytes).await.expect("written");
    let (id, reply) = raw.reply().await;
    assert_eq!((id, error(reply)), (78, 2011));
    assert!(matches!(raw.call(79, ping()).await, Out::Pong(_)), "the connection stays usable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_missing_fields_or_out_of_range_are_invalid() {
    let server = start_default().await;
    let op = client(server.address, OPERATOR_KEY).await;
    done(op.call(create_wallet(5)).await.expect("reply"));
    tx(op.call(deposit(5, "d", "EUR", 1_000)).await.expect("reply"));
    let slot = token(op.call(open_session(5, "provider-slot", "EUR", 60_000)).await.expect("reply"));
    let roulette = token(op.call(open_session(5, "roulette-eu", "EUR", 60_000)).await.expect("reply"));
    let invalid = ErrorCode::InvalidRequest.code();
    // A bet with no stake, and one whose stake names no kind.
    let mut no_stake = proto::Bet {
        session_token: slot.clone(),
        tx_id: "b".into(),
        round_id: "r".into(),
        game_id: "provider-slot".into(),
        currency: "EUR".into(),
        stake: None,
    };
    assert_eq!(error(op.call(In::Bet(no_stake.clone())).await.expect("reply")), invalid);
    no_stake.stake = Some(proto::Stake { kind: None });
    assert_eq!(error(op.call(In::Bet(no_stake)).await.expect("reply")), invalid);
    let no_amount = In::Win(proto::Win { player_id: 5, tx_id: "w".into(), bet_tx_id: "b".into(), amount: None, close_round: true });
    assert_eq!(error(op.call(no_amount).await.expect("reply")), invalid);
    // Unknown enum values.
    let limit = |source: i32, kind: i32, period: i32| {
        In::SetLimit(proto::SetLimit { player_id: 5, source, kind, period, currency: "EUR".into(), amount: Some(100) })
    };
    assert_eq!(error(op.call(limit(1, 99, 1)).await.expect("reply")), invalid, "an unknown limit kind");
    assert_eq!(error(op.call(limit(1, 0, 1)).await.expect("reply")), invalid, "an unspecified limit kind");
    assert_eq!(error(op.call(limit(1, 1, 7)).await.expect("reply")), invalid, "an unknown period");
    assert_eq!(error(op.call(limit(0, 1, 1)).await.expect("reply")), invalid, "an unspecified source");
    assert_eq!(error(op.call(limit(1, 1, -1)).await.expect("reply")), invalid, "a negative enum value");
    let grant = In::GrantSweeps(proto::GrantSweeps { player_id: 5, tx_id: "g".into(), kind: 0, amount: 10, playthrough_multiple: 0 });
    assert_eq!(error(op.call(grant).await.expect("reply")), invalid, "an unspecified grant kind");
    // Bets that do not parse, or do not fit their game.
    for text in ["nonsense", "", "straight:37", "split:1,5", "under:abc", "over:0", "0.5", "spinn"] {
        assert_eq!(error(op.call(play(&roulette, "p", "EUR", 100, text, false)).await.expect("reply")), invalid, "{text:?}");
    }
    // A bet that parses but is not this session's game is the engine's refusal.
    assert_eq!(rejected(op.call(play(&roulette, "p", "EUR", 100, "under:5000", false)).await.expect("reply")).0, 502);
    assert_eq!(balance(op.call(get_balance(5, "EUR")).await.expect("reply")), cash(1_000, "EUR"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_the_cap_gets_too_many_connections_and_is_closed() {
    let config = GatewayConfig { max_connections: 2, ..GatewayConfig::default() };
    let server = start(config, NodeConfig { shard_count: 2, ..NodeConfig::default() }).await;
    let mut first = Raw::connect(server.address).await;
    first.hello(OPERATOR_KEY).await;
    let mut second = Raw::connect(server.address).await;
    second.hello(SWEEPS_KEY).await;
    // The third hears why, and is closed, without having said anything.
    let mut third = Raw::connect(server.address).await;
    let (id, reply) = third.reply().await;
    assert_eq!((id, error(reply)), (0, ErrorCode::TooManyConnections.code()));
    third.assert_closed().await;
    // A fourth that says Hello at once (as the client does) hears the same.
    let mut fourth = Raw::connect(server.address).await;
    fourth.send(1, hello(OPERATOR_KEY)).await;
    let (id, reply) = fourth.reply().await;
    assert_eq!((id, error(reply)), (0, 2013));
    fourth.assert_closed().await;
    // The two inside are unaffected.
    assert!(matches!(first.call(2, ping()).await, Out::Pong(_)));
    assert!(matches!(second.call(2, ping()).await, Out::Pong(_)));
    // Once one leaves, a newcomer is let in.
    drop(first);
    let mut admitted = false;
    for _ in 0..100 {
        let mut next = Raw::connect(server.address).await;
        next.send(1, hello(OPERATOR_KEY)).await;
        let (_, reply) = next.reply().await;
        if matches!(reply, Out::HelloOk(_)) {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(admitted, "a place freed by a closed connection is given to a newcomer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_the_connection_cap_gets_an_error_and_never_hangs() {
    // Every connection is over a cap of 0: the server answers TooManyConnections
    // (request id 0) at once and closes, whatever the client sends.
    let config = GatewayConfig { max_connections: 0, ..GatewayConfig::default() };
    let server = start(config, NodeConfig { shard_count: 2, ..NodeConfig::default() }).await;
    for attempt in 0..3_000 {
        let connecting = Client::connect(ClientConfig::new(server.address.to_string(), OPERATOR_KEY));
        match tokio::time::timeout(Duration::from_millis(500), connecting).await {
            Ok(Err(_)) => {}
            Ok(Ok(_)) => panic!("attempt {attempt}: connected over the cap"),
            Err(_) => {
                panic!("attempt {attempt}: Client::connect still waiting for its HelloOk 500 ms after the server closed the connection")
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_with_idle_timeout() {
    let config = GatewayConfig { idle_timeout: Duration::from_millis(300), ..GatewayConfig::default() };
    let server = start(config, NodeConfig { shard_count: 2, ..NodeConfig::default() }).await;
    let mut raw = Raw::connect(server.address).await;
    raw.hello(OPERATOR_KEY).await;
    // Activity keeps it open past the timeout.
    for id in 2..12 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(matches!(raw.call(id, ping()).await, Out::Pong(_)));
    }
    let started = std::time::Instant::now();
    let (id, reply) = raw.reply().await;
    assert_eq!((id, error(reply)), (0, ErrorCode::IdleTimeout.code()));
    raw.assert_closed().await;
    assert!(started.elapsed() >= Duration::from_millis(200), "closed {:?} after the last request", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_waiting_for_its_replies_is_not_idle() {
    let config = GatewayConfig { idle_timeout: Duration::from_millis(100), ..GatewayConfig::default() };
    let server = start(config, NodeConfig { shard_count: 2, ..NodeConfig::default() }).await;
    let mut raw = Raw::connect(server.address).await;
    raw.hello(OPERATOR_KEY).await;
    // A slow shard: the request stays in flight for 400 ms, four idle timeouts.
    let held = hold_shards(&server.node);
    raw.send(2, get_balance(3, "EUR")).await;
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        drop(held);
    });
    let (id, reply) = raw.reply().await;
    release.join().expect("released");
    assert_eq!(id, 2, "the reply, not {reply:?}");
    assert_eq!(rejected(reply).0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_says_hello_is_closed_after_the_hello_timeout() {
    let config = GatewayConfig { hello_timeout: Duration::from_millis(100), ..GatewayConfig::default() };
    let server = start(config, NodeConfig { shard_count: 2, ..NodeConfig::default() }).await;
    let mut raw = Raw::connect(server.address).await;
    let (id, reply) = raw.reply().await;
    assert_eq!((id, error(reply)), (0, ErrorCode::IdleTimeout.code()));
    raw.assert_closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_before_the_hello_do_not_extend_its_deadline() {
    let config = GatewayConfig { hello_timeout: Duration::from_millis(300), ..GatewayConfig::default() };
    let server = start(config, NodeConfig { shard_count: 2, ..NodeConfig::default() }).await;
    let mut raw = Raw::connect(server.address).await;
    // A request every 50 ms, each refused as NotAuthenticated: activity,
    // but never a Hello. Sixty of them would span ten deadlines.
    let mut closed = false;
    for id in 1..=60 {
        let mut bytes = Vec::new();
        encode_frame(&ClientFrame { request_id: id, body: Some(ping()) }, &mut bytes);
        if raw.write(&bytes).await.is_err() {
            closed = true;
            break;
        }
        let (reply_id, reply) = raw.reply().await;
        if reply_id == 0 {
            assert_eq!(error(reply), ErrorCode::IdleTimeout.code());
            raw.assert_closed().await;
            closed = true;
            break;
        }
        assert_eq!(error(reply), ErrorCode::NotAuthenticated.code());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(closed, "sixty frames over ten Hello deadlines, and the connection is still open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_reply_still_in_the_making_when_the_client_half_closes_is_sent() {
    let server = start_default().await;
    let mut raw = Raw::connect(server.address).await;
    raw.hello(ADMIN_KEY).await;
    // The shards are held, so the sweep waits for them.
    let held = hold_shards(&server.node);
    raw.send(2, In::CheckInvariants(proto::CheckInvariants {})).await;
    raw.stream.shutdown().await.expect("half-close");
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(held);
    });
    let frame = raw.frame().await.expect("the sweep's reply before the close");
    release.join().expect("released");
    assert_eq!(frame.request_id, 2);
    match frame.body.expect("a body") {
        Out::InvariantsChecked(checked) => assert!(checked.shards.iter().all(|s| s.hold), "{checked:?}"),
        other => panic!("expected InvariantsChecked, got {other:?}"),
    }
    raw.assert_closed().await;
}

// ---- pipelining -----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_replies_come_back_matched_to_their_request_ids() {
    let server = start_default().await;
    let op = Arc::new(client(server.address, OPERATOR_KEY).await);
    // Players on both shards, each with a balance of its own.
    let slots = SlotMap::even(2);
    let players: Vec<u64> = (500..540).collect();
    let shards: HashSet<u32> = players.iter().map(|p| slots.shard_of(PlayerId(*p))).collect();
    assert_eq!(shards.len(), 2, "the players span both shards");
    let funded = |p: u64| 1_000 + (p as i64 - 500) * 37;
    let mut setup = tokio::task::JoinSet::new();
    for &p in &players {
        let op = op.clone();
        setup.spawn(async move {
            done(op.call(create_wallet(p)).await.expect("reply"));
            assert_eq!(tx_balance(op.call(deposit(p, "fund", "EUR", funded(p))).await.expect("reply")), cash(funded(p), "EUR"));
        });
    }
    while let Some(result) = setup.join_next().await {
        result.expect("setup");
    }

    // One raw connection, ids in no order, every request in one write.
    let mut raw = Raw::connect(server.address).await;
    raw.hello(OPERATOR_KEY).await;
    let mut expected: HashMap<u64, Option<i64>> = HashMap::new();
    let mut order = Vec::new();
    let mut bytes = Vec::new();
    for round in 0..5u64 {
        for (i, &p) in players.iter().enumerate() {
            let id = (round * 1_000 + i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            assert!(expected.insert(id, Some(funded(p))).is_none(), "ids are unique");
            encode_frame(&ClientFrame { request_id: id, body: Some(get_balance(p, "EUR")) }, &mut bytes);
            order.push(id);
            if i % 8 == 0 {
                // A ping, answered by the gateway itself, between the shard requests.
                let id = u64::MAX - round * 100 - i as u64;
                assert!(expected.insert(id, None).is_none());
                encode_frame(&ClientFrame { request_id: id, body: Some(ping()) }, &mut bytes);
                order.push(id);
            }
        }
    }
    raw.write(&bytes).await.expect("written");
    let mut arrival = Vec::new();
    for _ in 0..expected.len() {
        let (id, reply) = raw.reply().await;
        match expected.remove(&id) {
            Some(Some(minor)) => assert_eq!(balance(reply), cash(minor, "EUR"), "request {id}"),
            Some(None) => assert!(matches!(reply, Out::Pong(_)), "request {id}: {reply:?}"),
            None => panic!("a reply to an unknown or already answered request {id}"),
        }
        arrival.push(id);
    }
    assert!(expected.is_empty());
    if arrival == order {
        eprintln!("note: the replies happened to arrive in request order");
    }

    // The client pipelines too: many calls in flight on one connection, each
    // answered with its own player's balance.
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..400u64 {
        let op = op.clone();
        let p = players[(i * 7 % players.len() as u64) as usize];
        calls.spawn(async move { (p, op.call(get_balance(p, "EUR")).await.expect("reply")) });
    }
    while let Some(result) = calls.join_next().await {
        let (p, reply) = result.expect("a call");
        assert_eq!(balance(reply), cash(funded(p), "EUR"), "player {p}");
    }
    assert_eq!(metric(&server.metrics_text(), "casino_connections_total"), Some(2), "one client connection and one raw");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_in_flight_cap_the_server_stops_reading_but_answers_every_request() {
    let config = GatewayConfig { max_in_flight: 4, ..GatewayConfig::default() };
    let server = start(config, NodeConfig { shard_count: 2, ..NodeConfig::default() }).await;
    let mut raw = Raw::connect(server.address).await;
    assert_eq!(raw.hello(OPERATOR_KEY).await.max_in_flight, 4);
    let mut bytes = Vec::new();
    for id in 1..=2_000u64 {
        encode_frame(&ClientFrame { request_id: id, body: Some(get_balance(id % 50, "EUR")) }, &mut bytes);
    }
    // Write from another task: the server's reading is paced by its replies.
    let (mut reader, mut writer) = raw.stream.into_split();
    let sending = tokio::spawn(async move {
        writer.write_all(&bytes).await.expect("written");
        writer
    });
    let mut buffer = raw.buffer;
    let mut seen = HashSet::new();
    while seen.len() < 2_000 {
        while let Some(frame) = split_frame(&mut buffer).expect("well-formed") {
            let frame = ServerFrame::decode(frame).expect("a ServerFrame");
            assert_eq!(rejected(frame.body.expect("a body")).0, 200, "unknown players, answered by the shards");
            assert!(seen.insert(frame.request_id), "one reply per request");
        }
        if seen.len() == 2_000 {
            break;
        }
        let read = tokio::time::timeout(PATIENCE, reader.read_buf(&mut buffer)).await.expect("replies keep coming").expect("read");
        assert!(read > 0, "the server closed with {} of 2000 answered", seen.len());
    }
    sending.await.expect("the writer finished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_refuses_an_oversized_request_and_its_other_calls_go_on() {
    let server = start_default().await;
    let op = Arc::new(client(server.address, OPERATOR_KEY).await);
    done(op.call(create_wallet(70)).await.expect("a reply"));
    // Calls in flight while the oversized one is refused.
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..50u64 {
        let op = op.clone();
        calls.spawn(async move { op.call(deposit(70, &format!("d-{i}"), "EUR", 10)).await });
    }
    let huge = deposit(70, &"x".repeat(70_000), "EUR", 10);
    match op.call(huge).await {
        Err(ClientError::TooLarge { bytes }) => assert!(bytes > 65_536, "{bytes}"),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    while let Some(result) = calls.join_next().await {
        assert!(!tx(result.expect("a call").expect("a reply")).replayed);
    }
    assert_eq!(balance(op.call(get_balance(70, "EUR")).await.expect("a reply")), cash(500, "EUR"));
    assert_eq!(metric(&server.metrics_text(), "casino_gateway_errors_total{code=\"2001\",name=\"FrameTooLarge\"}"), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_without_a_reply_in_time_times_out_and_the_next_goes_on_a_new_connection() {
    let server = start_default().await;
    let mut config = ClientConfig::new(server.address.to_string(), OPERATOR_KEY);
    config.call_timeout = Some(Duration::from_millis(200));
    let op = Client::connect(config).await.expect("connects");
    let held = hold_shards(&server.node);
    match op.call(get_balance(3, "EUR")).await {
        Err(ClientError::TimedOut(limit)) => assert_eq!(limit, Duration::from_millis(200)),
        other => panic!("expected TimedOut, got {other:?}"),
    }
    drop(held);
    assert!(matches!(op.call(ping()).await, Ok(Out::Pong(_))));
    assert_eq!(metric(&server.metrics_text(), "casino_connections_total"), Some(2), "the timed-out connection was left for a new one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_the_gateway_makes_overtakes_a_slow_shard() {
    let server = start_default().await;
    let mut raw = Raw::connect(server.address).await;
    raw.hello(OPERATOR_KEY).await;
    // The shards are held: the balance request stays in flight while the
    // ping, sent after it, is answered by the gateway.
    let held = hold_shards(&server.node);
    raw.send(10, get_balance(3, "EUR")).await;
    raw.send(11, ping()).await;
    let (first, reply) = raw.reply().await;
    assert_eq!(first, 11, "the later request is answered first: {reply:?}");
    assert!(matches!(reply, Out::Pong(_)));
    drop(held);
    let (second, reply) = raw.reply().await;
    assert_eq!(second, 10);
    assert_eq!(rejected(reply).0, 200, "an unknown player, answered by its shard");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_frame_then_end_of_stream_closes_without_harm() {
    let server = start_default().await;
    let mut raw = Raw::connect(server.address).await;
    raw.hello(OPERATOR_KEY).await;
    // A header announcing 100 bytes, 10 of them, then the client's end.
    let mut bytes = header(100).to_vec();
    bytes.extend_from_slice(&[0x08; 10]);
    raw.write(&bytes).await.expect("written");
    raw.stream.shutdown().await.expect("half-closed");
    raw.assert_closed().await;
    // The server goes on serving.
    let mut other = Raw::connect(server.address).await;
    other.hello(OPERATOR_KEY).await;
    assert!(matches!(other.call(2, ping()).await, Out::Pong(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_frame_left_hanging_ends_in_idle_timeout() {
    let config = GatewayConfig { idle_timeout: Duration::from_millis(200), ..GatewayConfig::default() };
    let server = start(config, NodeConfig { shard_count: 2, ..NodeConfig::default() }).await;
    let mut raw = Raw::connect(server.address).await;
    raw.hello(OPERATOR_KEY).await;
    let mut bytes = header(100).to_vec();
    bytes.extend_from_slice(&[0x08; 10]);
    raw.write(&bytes).await.expect("written");
    let (id, reply) = raw.reply().await;
    assert_eq!((id, error(reply)), (0, ErrorCode::IdleTimeout.code()));
    raw.assert_closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reads_no_replies_is_held_back_then_disconnected() {
    let config = GatewayConfig { max_in_flight: 8, idle_timeout: Duration::from_millis(500), ..GatewayConfig::default() };
    let server = start(config, NodeConfig { shard_count: 2, ..NodeConfig::default() }).await;
    let mut raw = Raw::connect(server.address).await;
    raw.hello(OPERATOR_KEY).await;
    // Pings, which the gateway answers itself, far more than the socket
    // buffers on both sides hold (about 72 MB of requests and as much of
    // replies), and never a read.
    const PINGS: u64 = 8_000_000;
    let (_reader, mut writer) = raw.stream.into_split();
    let sending = tokio::spawn(async move {
        let mut sent = 0u64;
        let mut bytes = Vec::with_capacity(1 << 20);
        while sent < PINGS {
            bytes.clear();
            for id in sent..(sent + 50_000).min(PINGS) {
                encode_frame(&ClientFrame { request_id: id + 2, body: Some(ping()) }, &mut bytes);
            }
            if writer.write_all(&bytes).await.is_err() {
                return sent;
            }
            sent = (sent + 50_000).min(PINGS);
        }
        sent
    });
    // The server stops reading once its replies back up, then closes the
    // connection when its writes stall for the idle timeout: the client's
    // writes fail before it has sent them all.
    let sent = tokio::time::timeout(PATIENCE * 3, sending).await.expect("the server closed the connection").expect("the sender");
    assert!(sent < PINGS, "the server read all {PINGS} pings of a client that reads nothing");
    let answered = metric(&server.metrics_text(), "casino_requests_total{op=\"ping\"}").expect("the ping counter");
    assert!(answered < PINGS, "{answered} pings were taken");
    // Other connections are served throughout.
    let mut other = Raw::connect(server.address).await;
    other.hello(OPERATOR_KEY).await;
    assert!(matches!(other.call(2, ping()).await, Out::Pong(_)));
}

/// A reply sink that holds its shard's thread until released: work queued
/// behind it stays in flight for as long as the test wants.
struct HoldShard(std::sync::Mutex<std::sync::mpsc::Receiver<()>>);

impl cluster::ReplySink for HoldShard {
    fn deliver(&self, _request_id: u64, _outcome: engine::Outcome) {
        let _ = self.0.lock().expect("not poisoned").recv_timeout(PATIENCE);
    }
    fn unavailable(&self, request_id: u64) {
        panic!("request {request_id}: a node without replication always answers");
    }
}

/// Holds every shard of `node` busy (its thread inside a reply, its queue
/// empty) until the returned senders are dropped.
fn hold_shards(node: &Node) -> Vec<std::sync::mpsc::Sender<()>> {
    let slots = SlotMap::even(node.shard_count());
    let held = (0..node.shard_count())
        .map(|shard| {
            let player = (0..).find(|p| slots.shard_of(PlayerId(*p)) == shard).expect("a player on every shard");
            let (release, hold) = std::sync::mpsc::channel();
            let command = engine::Command::Player {
                operator: OperatorId(1),
                player: PlayerId(player),
                action: engine::Action::Balance { currency: Currency::new("EUR").expect("valid") },
            };
            node.submit(command, 0, Arc::new(HoldShard(std::sync::Mutex::new(hold)))).expect("queued");
            release
        })
        .collect();
    let deadline = std::time::Instant::now() + PATIENCE;
    while node.status().iter().any(|shard| shard.queue_depth > 0) {
        assert!(std::time::Instant::now() < deadline, "the shards took their jobs");
        std::thread::sleep(Duration::from_millis(1));
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_when_the_client_half_closes_are_still_answered() {
    let server = start_default().await;
    let mut raw = Raw::connect(server.address).await;
    raw.hello(OPERATOR_KEY).await;
    // The shards are busy, so these requests are in flight when the half-close arrives.
    let held = hold_shards(&server.node);
    let count = 200u64;
    let mut bytes = Vec::new();
    for id in 2..=count + 1 {
        encode_frame(&ClientFrame { request_id: id, body: Some(get_balance(id, "EUR")) }, &mut bytes);
    }
    raw.write(&bytes).await.expect("written");
    // "Done sending", while still listening.
    raw.stream.shutdown().await.expect("half-close");
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(held);
    });
    let mut ids = HashSet::new();
    while let Some(frame) = raw.frame().await {
        let reply = frame.body.expect("a body");
        assert_eq!(rejected(reply).0, 200, "unknown players");
        ids.insert(frame.request_id);
    }
    release.join().expect("released");
    assert_eq!(ids.len() as u64, count, "replies before the server closed: {} of {count}", ids.len());
}

// ---- reconnection ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reconnects_after_the_server_closes_its_connection_and_a_retried_deposit_is_not_credited_twice() {
    let config = GatewayConfig { idle_timeout: Duration::from_millis(200), ..GatewayConfig::default() };
    let server = start(config, NodeConfig { shard_count: 2, ..NodeConfig::default() }).await;
    let op = client(server.address, OPERATOR_KEY).await;
    done(op.call(create_wallet(11)).await.expect("reply"));
    let first = tx(op.call(deposit(11, "dep-retry", "EUR", 5_000)).await.expect("reply"));
    assert_eq!((first.balance, first.replayed), (Some(cash(5_000, "EUR")), false));
    assert_eq!(metric(&server.metrics_text(), "casino_connections_total"), Some(1));

    // Idle past the timeout: the server closes the connection.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(metric(&server.metrics_text(), "casino_connections"), Some(0), "the server closed it");

    // The retried deposit goes over a new connection and is a replay.
    let again = tx(op.call_retrying(deposit(11, "dep-retry", "EUR", 5_000)).await.expect("the client reconnects"));
    assert_eq!((again.balance, again.replayed), (Some(cash(5_000, "EUR")), true));
    assert_eq!(metric(&server.metrics_text(), "casino_connections_total"), Some(2));

    // Plain `call` reconnects too.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(balance(op.call(get_balance(11, "EUR")).await.expect("the client reconnects")), cash(5_000, "EUR"));
    assert_eq!(metric(&server.metrics_text(), "casino_connections_total"), Some(3));
    assert_eq!(op.hello().expect("a HelloOk").operator_id, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_client_closes_its_connection() {
    let server = start_default().await;
    let op = client(server.address, OPERATOR_KEY).await;
    assert!(matches!(op.call(ping()).await.expect("pong"), Out::Pong(_)));
    assert_eq!(metric(&server.metrics_text(), "casino_connections"), Some(1));
    drop(op);
    let mut open = None;
    for _ in 0..200 {
        open = metric(&server.metrics_text(), "casino_connections");
        if open == Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(open, Some(0), "the server still holds the connection of a client dropped 2 s ago");
}

// ---- isolation ------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_on_one_connection_does_not_disturb_another() {
    let server = start_default().await;
    let op = client(server.address, OPERATOR_KEY).await;
    done(op.call(create_wallet(21)).await.expect("reply"));
    tx(op.call(deposit(21, "d", "EUR", 100_000)).await.expect("reply"));
    let session = token(op.call(open_session(21, "provider-slot", "EUR", 600_000)).await.expect("reply"));

    let stop = Arc::new(AtomicBool::new(false));
    let refusals = Arc::new(AtomicU64::new(0));
    let attacker = {
        let (stop, refusals, address) = (stop.clone(), refusals.clone(), server.address);
        tokio::spawn(async move {
            let mut rounds = 0u64;
            while !stop.load(Ordering::SeqCst) || rounds < 3 {
                rounds += 1;
                let mut raw = Raw::connect(address).await;
                let mut bytes = Vec::new();
                for _ in 0..20 {
                    bytes.extend_from_slice(&garbage_frame());
                }
                bytes.extend_from_slice(&header(1 << 20));
                bytes.extend_from_slice(&[0xab; 4_096]);
                let _ = raw.write(&bytes).await;
                while let Some(frame) = raw.frame().await {
                    if let Some(Out::Error(e)) = frame.body {
                        assert!(e.code == 2000 || e.code == 2001, "{e:?}");
                        refusals.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            rounds
        })
    };

    let mut expected = 100_000;
    for i in 0..200 {
        let (bet_tx, round) = (format!("b{i}"), format!("r{i}"));
        expected -= 100;
        assert_eq!(
            tx_balance(op.call(bet(&session, &bet_tx, &round, "provider-slot", "EUR", 100)).await.expect("reply")),
            cash(expected, "EUR")
        );
        let won = if i % 4 == 0 { 250 } else { 0 };
        expected += won;
        assert_eq!(tx_balance(op.call(win(21, &format!("w{i}"), &bet_tx, won, true)).await.expect("reply")), cash(expected, "EUR"));
    }
    stop.store(true, Ordering::SeqCst);
    let rounds = attacker.await.expect("the attacker ran");
    assert!(rounds >= 3);
    assert!(refusals.load(Ordering::SeqCst) >= 3 * 21, "every garbage frame and every oversized one was refused");
    assert_eq!(balance(op.call(get_balance(21, "EUR")).await.expect("reply")), cash(expected, "EUR"));
}

// ---- TLS ------------------------------------------------------------------

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_nanos();
        let path = std::env::temp_dir().join(format!("casino-e2e-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create a temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A self-signed certificate for "localhost": (dir, cert path, key path).
fn self_signed(dir: &TempDir) -> (PathBuf, PathBuf) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("a certificate");
    let (cert, key) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).expect("write the certificate");
    std::fs::write(&key, certified.key_pair.serialize_pem()).expect("write the key");
    (cert, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_protocol_runs_over_tls_and_plain_tcp_gets_no_hello_ok_from_a_tls_port() {
    let dir = TempDir::new("tls");
    let (cert, key) = self_signed(&dir);
    let acceptor = gateway::tls::acceptor(&cert, &key).expect("a TLS acceptor");
    let server = start_with_tls(GatewayConfig::default(), NodeConfig { shard_count: 2, ..NodeConfig::default() }, Some(acceptor)).await;

    let mut config = ClientConfig::new(server.address.to_string(), OPERATOR_KEY);
    config.tls = Some(casino_client::tls::connector(&cert, "localhost").expect("a TLS connector"));
    let op = Client::connect(config).await.expect("Hello over TLS");
    assert_eq!(op.hello().expect("a HelloOk").operator_id, 1);
    done(op.call(create_wallet(31)).await.expect("reply"));
    assert_eq!(tx_balance(op.call(deposit(31, "tls-dep", "EUR", 4_200)).await.expect("reply")), cash(4_200, "EUR"));

    // The wrong name is refused by the client.
    let mut wrong_name = ClientConfig::new(server.address.to_string(), OPERATOR_KEY);
    wrong_name.tls = Some(casino_client::tls::connector(&cert, "example.com").expect("a TLS connector"));
    wrong_name.retries = 0;
    let refused = tokio::time::timeout(PATIENCE, Client::connect(wrong_name)).await.expect("no hang");
    assert!(refused.is_err(), "a certificate for localhost does not serve example.com");

    // Plain TCP against the TLS port: the client gets no HelloOk.
    let plain = tokio::time::timeout(PATIENCE, Client::connect(ClientConfig::new(server.address.to_string(), OPERATOR_KEY)))
        .await
        .expect("the plain client does not hang");
    assert!(plain.is_err(), "a plain client on a TLS port gets no HelloOk");
    let mut raw = Raw::connect(server.address).await;
    let mut bytes = Vec::new();
    encode_frame(&ClientFrame { request_id: 1, body: Some(hello(OPERATOR_KEY)) }, &mut bytes);
    let _ = raw.write(&bytes).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, raw.stream.read_to_end(&mut answer)).await.expect("the server closes");
    let mut buffer = BytesMut::from(&answer[..]);
    let hello_ok = matches!(split_frame(&mut buffer), Ok(Some(frame)) if matches!(ServerFrame::decode(&frame[..]), Ok(ServerFrame { body: Some(Out::HelloOk(_)), .. })));
    assert!(!hello_ok, "no HelloOk in plain text");

    // The TLS client is unaffected.
    assert_eq!(balance(op.call(get_balance(31, "EUR")).await.expect("reply")), cash(4_200, "EUR"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_handshake_that_never_starts_is_closed_after_the_hello_timeout() {
    let dir = TempDir::new("tls-stall");
    let (cert, key) = self_signed(&dir);
    let acceptor = gateway::tls::acceptor(&cert, &key).expect("a TLS acceptor");
    let config = GatewayConfig { hello_timeout: Duration::from_millis(100), ..GatewayConfig::default() };
    let server = start_with_tls(config, NodeConfig { shard_count: 2, ..NodeConfig::default() }, Some(acceptor)).await;
    // A client that connects and sends nothing must not hold a connection forever.
    let mut raw = TcpStream::connect(server.address).await.expect("connect");
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(3), raw.read_to_end(&mut answer)).await;
    assert!(closed.is_ok(), "a silent TLS connection is still open 3 s after connecting (hello_timeout 100 ms)");
}

// ---- metrics --------------------------------------------------------------

/// The value of one sample line, `name{labels} value`.
fn metric(text: &str, series: &str) -> Option<u64> {
    text.lines().find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
}

async fn http_get(address: SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: {address}\r\n\r\n").as_bytes()).await.expect("request");
    let mut response = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut response)).await.expect("a response").expect("read");
    let text = String::from_utf8(response).expect("text");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    (head.to_string(), body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_endpoint_serves_prometheus_text_counting_what_was_sent() {
    let server = start_default().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let metrics_address = listener.local_addr().expect("bound");
    tokio::spawn(gateway::metrics::serve_metrics(listener, server.gateway.metrics(), server.node.clone()));

    let op = client(server.address, OPERATOR_KEY).await;
    done(op.call(create_wallet(41)).await.expect("reply"));
    tx(op.call(deposit(41, "d", "EUR", 1_000)).await.expect("reply"));
    let session = token(op.call(open_session(41, "provider-slot", "EUR", 60_000)).await.expect("reply"));
    for i in 0..7 {
        tx(op.call(bet(&session, &format!("b{i}"), &format!("r{i}"), "provider-slot", "EUR", 100)).await.expect("reply"));
    }
    assert_eq!(rejected(op.call(bet(&session, "b-big", "r-big", "provider-slot", "EUR", 100_000)).await.expect("reply")).0, 300);

    let (head, body) = http_get(metrics_address, "/metrics").await;
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("Content-Type: text/plain; version=0.0.4"), "{head}");
    let length: usize =
        head.lines().find_map(|l| l.strip_prefix("Content-Length: ")).expect("a Content-Length").trim().parse().expect("a number");
    assert_eq!(length, body.len());
    assert_eq!(metric(&body, "casino_requests_total{op=\"bet\"}"), Some(8), "7 bets and 1 refused");
    assert_eq!(metric(&body, "casino_requests_total{op=\"deposit\"}"), Some(1));
    assert_eq!(metric(&body, "casino_requests_total{op=\"create_wallet\"}"), Some(1));
    assert_eq!(metric(&body, "casino_bets_total"), Some(8));
    assert_eq!(metric(&body, "casino_request_duration_seconds_count{op=\"bet\"}"), Some(8));
    assert_eq!(metric(&body, "casino_request_duration_seconds_bucket{op=\"bet\",le=\"+Inf\"}"), Some(8));
    assert_eq!(metric(&body, "casino_rejections_total{code=\"300\",name=\"InsufficientFunds\"}"), Some(1));
    assert_eq!(metric(&body, "casino_rejections_total{code=\"400\",name=\"TxConflict\"}"), Some(0));
    assert_eq!(metric(&body, "casino_connections"), Some(1));
    assert_eq!(metric(&body, "casino_connections_total"), Some(1));
    assert_eq!(metric(&body, "casino_shard_queue_depth{shard=\"0\"}"), Some(0));
    assert_eq!(metric(&body, "casino_shard_queue_depth{shard=\"1\"}"), Some(0));
    assert_eq!(
        metric(&body, "casino_shard_wallets{shard=\"0\"}").expect("shard 0")
            + metric(&body, "casino_shard_wallets{shard=\"1\"}").expect("shard 1"),
        1
    );
    assert!(body.contains("# TYPE casino_requests_total counter"));
    assert!(body.contains("# TYPE casino_connections gauge"));
    assert!(!body.contains("casino_raft_"), "a node alone has no raft loop to time");
    // Every sample line is `name{labels} number`.
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let (_, value) = line.rsplit_once(' ').expect("name and value");
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }

    // A second client's connection shows; a closed one leaves.
    let second = client(server.address, SWEEPS_KEY).await;
    assert!(matches!(second.call(ping()).await.expect("pong"), Out::Pong(_)));
    let (_, body) = http_get(metrics_address, "/").await;
    assert_eq!(metric(&body, "casino_connections"), Some(2));
    assert_eq!(metric(&body, "casino_requests_total{op=\"ping\"}"), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_gateway_error_sent_is_counted_by_its_code() {
    let mut expected: HashMap<u32, u64> = HashMap::new();
    let mut counted: HashMap<u32, u64> = HashMap::new();
    let count = |text: &str, counted: &mut HashMap<u32, u64>| {
        for code in ErrorCode::ALL {
            let series = format!("casino_gateway_errors_total{{code=\"{}\",name=\"{code:?}\"}}", code.code());
            *counted.entry(code.code()).or_default() += metric(text, &series).expect("a series per code");
        }
    };

    // One server for the frame, auth, token and request errors, and the timeouts.
    let config =
        GatewayConfig { idle_timeout: Duration::from_millis(500), hello_timeout: Duration::from_millis(500), ..GatewayConfig::default() };
    let server = start(config, NodeConfig { shard_count: 2, ..NodeConfig::default() }).await;
    let mut got = |code: u32| *expected.entry(code).or_default() += 1;
    let mut raw = Raw::connect(server.address).await;
    raw.hello(OPERATOR_KEY).await;
    done(raw.call(2, create_wallet(5)).await);
    tx(raw.call(3, deposit(5, "d", "EUR", 1_000)).await);
    let session = token(raw.call(4, open_session(5, "provider-slot", "EUR", 50)).await);
    raw.write(&garbage_frame()).await.expect("written");
    got(error(raw.reply().await.1));
    got(error(raw.call_frame(ClientFrame { request_id: 5, body: None }).await));
    got(error(raw.call(6, bet(&[1; 61], "b", "r", "provider-slot", "EUR", 10)).await));
    tokio::time::sleep(Duration::from_millis(100)).await;
    got(error(raw.call(7, bet(&session, "b", "r", "provider-slot", "EUR", 10)).await));
    got(error(raw.call(8, In::ClusterStatus(proto::ClusterStatus {})).await));
    got(error(raw.call(9, bet(&session[..10], "b", "r", "provider-slot", "EUR", 10)).await));
    let limit = In::SetLimit(proto::SetLimit { player_id: 5, source: 1, kind: 99, period: 1, currency: "EUR".into(), amount: None });
    got(error(raw.call(10, limit).await));
    got(error(raw.call(11, hello(OPERATOR_KEY)).await));
    raw.write(&header(70_000)).await.expect("written");
    got(error(raw.reply().await.1));
    let mut raw = Raw::connect(server.address).await;
    raw.write(&header(0)).await.expect("written");
    got(error(raw.reply().await.1));
    let mut raw = Raw::connect(server.address).await;
    got(error(raw.call(1, In::Hello(proto::Hello { protocol_version: 9, api_key: OPERATOR_KEY.into() })).await));
    let mut raw = Raw::connect(server.address).await;
    got(error(raw.call(1, hello("nobody")).await));
    let mut admin = Raw::connect(server.address).await;
    admin.hello(ADMIN_KEY).await;
    got(error(admin.call(2, get_balance(5, "EUR")).await));
    // A snapshot asked of a node that keeps no data.
    got(error(admin.call(3, In::TakeSnapshot(proto::TakeSnapshot {})).await));
    drop(admin);
    // Idle after a Hello, and silent without one.
    let (mut idle, mut silent) = (Raw::connect(server.address).await, Raw::connect(server.address).await);
    idle.hello(OPERATOR_KEY).await;
    got(error(idle.reply().await.1));
    got(error(silent.reply().await.1));
    count(&server.metrics_text(), &mut counted);

    // One with a connection cap and a rate limit.
    let config = GatewayConfig { max_connections: 1, connection_rate: (1, 1), ..GatewayConfig::default() };
    let server = start(config, NodeConfig { shard_count: 2, ..NodeConfig::default() }).await;
    let mut raw = Raw::connect(server.address).await;
    raw.hello(OPERATOR_KEY).await;
    assert!(matches!(raw.call(2, ping()).await, Out::Pong(_)));
    got(error(raw.call(3, ping()).await));
    let mut over = Raw::connect(server.address).await;
    got(error(over.reply().await.1));
    count(&server.metrics_text(), &mut counted);

    // One whose shards overflow.
    let node_config = NodeConfig { shard_count: 2, queue_capacity: 1, batch_max: 1, ..NodeConfig::default() };
    let server = start(GatewayConfig { max_in_flight: 10_000, ..GatewayConfig::default() }, node_config).await;
    let mut raw = Raw::connect(server.address).await;
    raw.hello(OPERATOR_KEY).await;
    let held = hold_shards(&server.node);
    let mut bytes = Vec::new();
    for id in 1..=6_000u64 {
        encode_frame(&ClientFrame { request_id: id, body: Some(get_balance(id, "EUR")) }, &mut bytes);
    }
    raw.write(&bytes).await.expect("written");
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(held);
    });
    for _ in 0..6_000 {
        if let Out::Error(e) = raw.reply().await.1 {
            got(e.code);
        }
    }
    release.join().expect("released");
    count(&server.metrics_text(), &mut counted);

    for code in ErrorCode::ALL {
        assert!(expected.contains_key(&code.code()), "the test provokes {code:?}");
    }
    let wrong: Vec<String> = ErrorCode::ALL
        .iter()
        .filter(|code| counted.get(&code.code()) != expected.get(&code.code()))
        .map(|code| format!("{code:?} ({}): sent {:?}, counted {:?}", code.code(), expected.get(&code.code()), counted.get(&code.code())))
        .collect();
    assert!(wrong.is_empty(), "casino_gateway_errors_total disagrees with the errors sent: {wrong:?}");
}

// ---- random bytes ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_on_a_fresh_connection_never_crash_the_server() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let config = GatewayConfig { hello_timeout: Duration::from_millis(200), ..GatewayConfig::default() };
    let server = start(config, NodeConfig { shard_count: 2, ..NodeConfig::default() }).await;
    let (address, gateway, node) = (server.address, server.gateway.clone(), server.node.clone());
    let handle = tokio::runtime::Handle::current();

    let mut hello_frame = Vec::new();
    encode_frame(&ClientFrame { request_id: 1, body: Some(hello(OPERATOR_KEY)) }, &mut hello_frame);
    // Pure noise; noise after a good Hello; frames of the right length around noise.
    let bytes = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..4_096),
        proptest::collection::vec(any::<u8>(), 0..4_096).prop_map(move |noise| [hello_frame.clone(), noise].concat()),
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..200), 1..20).prop_map(|bodies| {
            bodies.iter().flat_map(|body| [(body.len() as u32).to_le_bytes().to_vec(), body.clone()].concat()).collect::<Vec<u8>>()
        }),
    ];
    let result = tokio::task::spawn_blocking(move || {
        let mut runner = TestRunner::new(Config { cases: 64, failure_persistence: None, ..Config::default() });
        runner.run(&bytes, |bytes| {
            handle.block_on(async {
                let open = || metric(&gateway.metrics().render(&node), "casino_connections").expect("the gauge");
                let before = open();
                let mut raw = Raw::connect(address).await;
                let _ = raw.write(&bytes).await;
                // Read whatever comes until the server closes or goes quiet.
                let mut sink = Vec::new();
                let _ = tokio::time::timeout(Duration::from_millis(200), raw.stream.read_to_end(&mut sink)).await;
                drop(raw);
                // The connection's task finished its bookkeeping (a panicked one would not).
                // `<=`: the previous case's client, dropped at its end, may
                // close its own connection meanwhile.
                for _ in 0..200 {
                    if open() <= before {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                prop_assert!(open() <= before, "a connection fed {} random bytes is still counted", bytes.len());
                // The server still serves: a new client completes a Ping.
                let op = client(address, OPERATOR_KEY).await;
                prop_assert!(matches!(op.call(ping()).await, Ok(Out::Pong(_))));
                Ok(())
            })
        })
    })
    .await
    .expect("the property ran");
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
