//! `casino pam-load`: bet+win pairs over the PAM HTTP API.
//!
//! Setup (admin paths): `--players` wallets from `--player-base`, each
//! funded with `--funds` EUR and given a session. Then `--connections`
//! keep-alive connections each play their own players in turn: a WITHDRAW
//! of `--stake`, then a DEPOSIT that ends the round (a win of twice the
//! stake every fourth round, nothing otherwise). Closed loop: each
//! connection waits for every answer (HTTP/1.1 answers in order). Every
//! answer must be `OK`; at the end every player's balance is read back and
//! must equal what the answers said (funds - stakes + wins), or the run
//! fails. Latency per request in an HDR histogram.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use gateway::pam::client::PamClient;
use hdrhistogram::Histogram;
use serde_json::json;

#[derive(Args, Debug, Clone)]
pub struct PamLoadArgs {
    /// The node's PAM API address.
    #[arg(long, default_value = "127.0.0.1:7702")]
    pub address: SocketAddr,
    #[arg(long, default_value = crate::node::DEV_OPERATOR_KEY)]
    pub api_key: String,
    /// The admin key, to create the players and their sessions.
    #[arg(long, default_value = crate::node::DEV_ADMIN_KEY)]
    pub admin_key: String,
    /// The operator the API key belongs to.
    #[arg(long, default_value_t = 1)]
    pub operator: u32,
    #[arg(long, default_value_t = 128)]
    pub connections: usize,
    #[arg(long, default_value_t = 10_000)]
    pub players: u64,
    /// First player id (ids must be new to the node).
    #[arg(long, default_value_t = 5_000_000_000)]
    pub player_base: u64,
    /// Bet+win pairs in total.
    #[arg(long, default_value_t = 200_000)]
    pub pairs: u64,
    /// Stake of each bet, EUR.
    #[arg(long, default_value = "1.00")]
    pub stake: String,
    /// Funds of each player, EUR.
    #[arg(long, default_value = "100000")]
    pub funds: String,
    /// Pairs each connection writes at once before it reads their answers
    /// (HTTP/1.1 pipelining; latency is then the batch's round trip); 0:
    /// no pipelining, each request waits for the answer to the one before.
    #[arg(long, default_value_t = 0)]
    pub pipeline: usize,
    #[arg(long)]
    pub json: bool,
    /// Threads of the load generator's runtime.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

#[derive(Debug)]
pub struct PamLoadReport {
    pub pairs: u64,
    pub elapsed: Duration,
    pub withdraw: Histogram<u64>,
    pub deposit: Histogram<u64>,
    pub balances_checked: u64,
}

const HEADERS_CORRELATION: (&str, &str) = ("X-Correlation-ID", "pam-load");

struct Player {
    id: u64,
    token: String,
    /// Minor units (cents) the answers say the player holds.
    cash: i64,
}

fn cents(text: &str) -> anyhow::Result<i64> {
    gateway::pam::wire::to_minor(text, 2).map_err(|e| anyhow::anyhow!("{text:?} is not an EUR amount: {e:?}"))
}

fn cash_of(body: &serde_json::Value) -> anyhow::Result<i64> {
    let balance = if body["transactionResult"].is_object() { &body["transactionResult"]["balance"] } else { &body["balance"] };
    cents(&balance["cashAmount"].to_string())
}

async fn setup(args: &PamLoadArgs) -> anyhow::Result<Vec<Player>> {
    let mut admin = PamClient::connect(args.address, &args.admin_key).await.context("connecting to the PAM API")?;
    let funds = cents(&args.funds)?;
    let mut players = Vec::with_capacity(args.players as usize);
    for n in 0..args.players {
        let id = args.player_base + n;
        let created = admin
            .send("POST", "/admin/players", &[], Some(&json!({"operatorId": args.operator, "playerId": id.to_string()}).to_string()))
            .await?;
        if created.body["status"] != "OK" {
            bail!("creating player {id}: {} (use a --player-base new to this node)", created.body);
        }
        let funded = admin
            .send(
                "POST",
                &format!("/admin/players/{id}/deposits"),
                &[],
                Some(&format!(
                    r#"{{"operatorId":{},"currency":"EUR","amount":{},"transactionId":"pam-load-fund"}}"#,
                    args.operator, args.funds
                )),
            )
            .await?;
        if funded.body["status"] != "OK" {
            bail!("funding player {id}: {}", funded.body);
        }
        let session = admin
            .send(
                "POST",
                &format!("/admin/players/{id}/sessions"),
                &[],
                Some(
                    &json!({"operatorId": args.operator, "gameId": "pam-load", "currency": "EUR", "durationMs": 86_400_000u64}).to_string(),
                ),
            )
            .await?;
        let Some(token) = session.body["token"].as_str() else { bail!("opening a session for {id}: {}", session.body) };
        players.push(Player { id, token: token.to_string(), cash: funds });
    }
    Ok(players)
}

fn transaction(kind: &str, id: &str, round: &str, cash: &str) -> String {
    format!(
        r#"{{"currency":"EUR","provider":"pam-load","transactionType":"{kind}","cashAmount":{cash},"bonusAmount":0,"promoAmount":0,"transactionDateTime":"2026-11-24T12:00:00Z","providerTransactionId":"{id}","providerRoundId":"{round}","providerGameId":"pam-load"}}"#
    )
}

async fn drive_connection(
    args: Arc<PamLoadArgs>,
    mut players: Vec<Player>,
    pairs: Arc<AtomicU64>,
    connection: usize,
) -> anyhow::Result<(Histogram<u64>, Histogram<u64>, Vec<Player>)> {
    let mut withdraw = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut deposit = withdraw.clone();
    let mut client = PamClient::connect(args.address, &args.api_key).await?;
    let stake = cents(&args.stake)?;
    let win_text = gateway::pam::wire::from_minor((stake * 2) as u64, 2);
    let mut turn = 0usize;
    let mut round = 0u64;
    if args.pipeline == 0 {
        while pairs.fetch_add(1, Ordering::Relaxed) < args.pairs {
            let at = turn % players.len();
            turn += 1;
            round += 1;
            closed_loop_pair(&mut client, &mut players[at], round, connection, stake, &win_text, &args.stake, &mut withdraw, &mut deposit)
                .await?;
        }
        return Ok((withdraw, deposit, players));
    }
    let mut requests = Vec::new();
    let mut batch: Vec<(usize, i64)> = Vec::with_capacity(args.pipeline);
    loop {
        // Up to `pipeline` pairs: a withdraw and its deposit each, in order.
        batch.clear();
        requests.clear();
        while batch.len() < args.pipeline && pairs.fetch_add(1, Ordering::Relaxed) < args.pairs {
            let at = turn % players.len();
            turn += 1;
            round += 1;
            let player = &players[at];
            let round_id = format!("{}-{connection}-{round}", player.id);
            let path = format!("/players/{}/transactions?provider=pam-load", player.id);
            let headers = [("X-Player-Token", player.token.as_str()), HEADERS_CORRELATION];
            let win = if round % 4 == 0 { win_text.as_str() } else { "0" };
            client.encode(
                "POST",
                &path,
                &headers,
                Some(&transaction("WITHDRAW", &format!("{round_id}-b"), &round_id, &args.stake)),
                &mut requests,
            );
            client.encode("POST", &path, &headers, Some(&transaction("DEPOSIT", &format!("{round_id}-w"), &round_id, win)), &mut requests);
            batch.push((at, if round % 4 == 0 { stake * 2 } else { 0 }));
        }
        if batch.is_empty() {
            break;
        }
        let started = Instant::now();
        let answers = client.pipeline(&requests, batch.len() * 2).await?;
        let elapsed = started.elapsed().as_micros().max(1) as u64;
        for (pair, (at, won)) in batch.iter().enumerate() {
            let player = &mut players[*at];
            let (bet, paid) = (&answers[pair * 2], &answers[pair * 2 + 1]);
            withdraw.record(elapsed)?;
            deposit.record(elapsed)?;
            if bet.body["status"] != "OK" {
                bail!("a withdraw of player {} was refused: {}", player.id, bet.body);
            }
            player.cash -= stake;
            if cash_of(&bet.body)? != player.cash {
                bail!("player {}: the withdraw answered {} cents, expected {}", player.id, cash_of(&bet.body)?, player.cash);
            }
            if paid.body["status"] != "OK" {
                bail!("a deposit of player {} was refused: {}", player.id, paid.body);
            }
            player.cash += won;
            if cash_of(&paid.body)? != player.cash {
                bail!("player {}: the deposit answered {} cents, expected {}", player.id, cash_of(&paid.body)?, player.cash);
            }
        }
    }
    Ok((withdraw, deposit, players))
}

/// One pair without pipelining: the withdraw, its answer, the deposit, its answer.
#[allow(clippy::too_many_arguments)]
async fn closed_loop_pair(
    client: &mut PamClient,
    player: &mut Player,
    round: u64,
    connection: usize,
    stake: i64,
    win_text: &str,
    stake_text: &str,
    withdraw: &mut Histogram<u64>,
    deposit: &mut Histogram<u64>,
) -> anyhow::Result<()> {
    let round_id = format!("{}-{connection}-{round}", player.id);
    let path = format!("/players/{}/transactions?provider=pam-load", player.id);
    let headers = [("X-Player-Token", player.token.as_str()), HEADERS_CORRELATION];
    let started = Instant::now();
    let bet = client.send("POST", &path, &headers, Some(&transaction("WITHDRAW", &format!("{round_id}-b"), &round_id, stake_text))).await?;
    withdraw.record(started.elapsed().as_micros().max(1) as u64)?;
    if bet.body["status"] != "OK" {
        bail!("a withdraw of player {} was refused: {}", player.id, bet.body);
    }
    player.cash -= stake;
    if cash_of(&bet.body)? != player.cash {
        bail!("player {}: the withdraw answered {} cents, expected {}", player.id, cash_of(&bet.body)?, player.cash);
    }
    let (win, won) = if round % 4 == 0 { (win_text, stake * 2) } else { ("0", 0) };
    let started = Instant::now();
    let paid = client.send("POST", &path, &headers, Some(&transaction("DEPOSIT", &format!("{round_id}-w"), &round_id, win))).await?;
    deposit.record(started.elapsed().as_micros().max(1) as u64)?;
    if paid.body["status"] != "OK" {
        bail!("a deposit of player {} was refused: {}", player.id, paid.body);
    }
    player.cash += won;
    if cash_of(&paid.body)? != player.cash {
        bail!("player {}: the deposit answered {} cents, expected {}", player.id, cash_of(&paid.body)?, player.cash);
    }
    Ok(())
}

pub async fn drive(args: PamLoadArgs) -> anyhow::Result<PamLoadReport> {
    if args.connections == 0 || args.players < args.connections as u64 {
        bail!("need at least one player per connection (players {} < connections {})", args.players, args.connections);
    }
    let mut players = setup(&args).await?;
    let args = Arc::new(args);
    let pairs = Arc::new(AtomicU64::new(0));
    // Each connection owns its players: one player's requests stay in order.
    let mut shares: Vec<Vec<Player>> = (0..args.connections).map(|_| Vec::new()).collect();
    for (n, player) in players.drain(..).enumerate() {
        shares[n % args.connections].push(player);
    }
    let started = Instant::now();
    let tasks: Vec<_> = shares
        .into_iter()
        .enumerate()
        .map(|(connection, share)| tokio::spawn(drive_connection(args.clone(), share, pairs.clone(), connection)))
        .collect();
    let mut withdraw = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut deposit = withdraw.clone();
    let mut players = Vec::new();
    for task in tasks {
        let (w, d, share) = task.await??;
        withdraw.add(&w)?;
        deposit.add(&d)?;
        players.extend(share);
    }
    let elapsed = started.elapsed();
    // The books: every balance as the answers said.
    let mut client = PamClient::connect(args.address, &args.api_key).await?;
    for player in &players {
        let read = client
            .send(
                "GET",
                &format!("/players/{}/balance?provider=pam-load", player.id),
                &[("X-Player-Token", &player.token), HEADERS_CORRELATION],
                None,
            )
            .await?;
        if cash_of(&read.body)? != player.cash {
            bail!("player {}: the node holds {} cents, the answers said {}", player.id, cash_of(&read.body)?, player.cash);
        }
    }
    Ok(PamLoadReport { pairs: withdraw.len(), elapsed, withdraw, deposit, balances_checked: players.len() as u64 })
}

pub fn run(args: PamLoadArgs) -> anyhow::Result<()> {
    let json = args.json;
    let (connections, players) = (args.connections, args.players);
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build()?
    };
    let report = runtime.block_on(drive(args))?;
    let rate = report.pairs as f64 / report.elapsed.as_secs_f64();
    let us = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q);
    if json {
        println!(
            "{}",
            json!({
                "pairs": report.pairs,
                "seconds": report.elapsed.as_secs_f64(),
                "pairs_per_second": rate,
                "requests_per_second": rate * 2.0,
                "connections": connections,
                "players": players,
                "balances_checked": report.balances_checked,
                "withdraw_us": {"p50": us(&report.withdraw, 0.5), "p99": us(&report.withdraw, 0.99), "p999": us(&report.withdraw, 0.999), "max": report.withdraw.max()},
                "deposit_us": {"p50": us(&report.deposit, 0.5), "p99": us(&report.deposit, 0.99), "p999": us(&report.deposit, 0.999), "max": report.deposit.max()},
            })
        );
    } else {
        println!(
            "{} bet+win pairs in {:.2} s: {rate:.0} pairs/s ({:.0} requests/s) over {connections} connections, {players} players",
            report.pairs,
            report.elapsed.as_secs_f64(),
            rate * 2.0
        );
        for (name, h) in [("WITHDRAW", &report.withdraw), ("DEPOSIT", &report.deposit)] {
            println!("  {name:<8} p50 {} us  p99 {} us  p99.9 {} us  max {} us", us(h, 0.5), us(h, 0.99), us(h, 0.999), h.max());
        }
        println!("  books: {} balances read back, each as the answers said", report.balances_checked);
    }
    Ok(())
}
