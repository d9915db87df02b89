//! `casino load`: drive a node over N connections with pipelining.
//!
//! Setup: `--players` wallets, each funded and given a session. Then each
//! connection runs `--depth` lanes at once; a lane repeats a round: a bet,
//! and once it is answered a win that closes the round (`--workload round`),
//! or one slot spin (`--workload slot`). Latency is recorded per request in
//! an HDR histogram. With `--rate R` (bets per second in total) each lane
//! sends on a fixed schedule and latency counts from the scheduled time, so
//! a slow server cannot hide its stalls (no coordinated omission).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use clap::{Args, ValueEnum};
use gateway::client::{Client, ClientConfig};
use gateway::proto::{self, client_frame::Body as In, server_frame::Body as Out};
use hdrhistogram::Histogram;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// A provider's bet, then a win that closes the round.
    Round,
    /// A spin of the built-in slot (one request).
    Slot,
}

#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    #[arg(long, default_value = "127.0.0.1:7700")]
    pub address: String,
    #[arg(long, default_value = crate::node::DEV_OPERATOR_KEY)]
    pub api_key: String,
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 64)]
    pub depth: usize,
    #[arg(long, default_value_t = 10_000)]
    pub players: u64,
    /// Bets (or spins) in total.
    #[arg(long, default_value_t = 1_000_000)]
    pub requests: u64,
    /// Target bets per second in total; 0 sends as fast as replies allow.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    #[arg(long, value_enum, default_value_t = Workload::Round)]
    pub workload: Workload,
    /// The currency of the operator to play in.
    #[arg(long, default_value = "EUR")]
    pub currency: String,
    /// A PEM CA certificate to connect with TLS.
    #[arg(long)]
    pub ca: Option<std::path::PathBuf>,
    #[arg(long, default_value = "localhost")]
    pub server_name: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug)]
pub struct LoadReport {
    pub bets: u64,
    pub requests: u64,
    pub seconds: f64,
    pub bets_per_second: f64,
    pub requests_per_second: f64,
    pub bet_latency_us: [u64; 4],
    pub refusals: u64,
}

struct Lane {
    client: Arc<Client>,
    tokens: Arc<Vec<(u64, Vec<u8>)>>,
    remaining: Arc<AtomicU64>,
    run: u64,
    lane: u64,
    lanes: u64,
    workload: Workload,
    currency: String,
    /// Time between this lane's bets when paced.
    period: Option<Duration>,
    start: Instant,
}

struct LaneResult {
    histogram: Histogram<u64>,
    bets: u64,
    requests: u64,
    refusals: u64,
}

fn refused(reply: &Out) -> bool {
    matches!(reply, Out::Error(_) | Out::Rejected(_))
}

impl Lane {
    async fn run(self) -> anyhow::Result<LaneResult> {
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
        let (mut bets, mut requests, mut refusals) = (0u64, 0u64, 0u64);
        let mut sequence = 0u64;
        loop {
            if self.remaining.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_err() {
                break;
            }
            let scheduled = match self.period {
                Some(period) => {
                    let at = self.start + period * (sequence as u32);
                    tokio::time::sleep_until(at.into()).await;
                    at
                }
                None => Instant::now(),
            };
            let (player, token) = &self.tokens[((self.lane + sequence * self.lanes) % self.tokens.len() as u64) as usize];
            let id = format!("{}-{}-{}", self.run, self.lane, sequence);
            sequence += 1;
            let request = match self.workload {
                Workload::Round => In::Bet(proto::Bet {
                    session_token: token.clone(),
                    tx_id: format!("b{id}"),
                    round_id: format!("r{id}"),
                    game_id: "provider-slot".into(),
                    currency: self.currency.clone(),
                    stake: Some(proto::Stake { kind: Some(proto::stake::Kind::Amount(100)) }),
                }),
                Workload::Slot => In::Play(proto::Play {
                    session_token: token.clone(),
                    tx_id: format!("s{id}"),
                    currency: self.currency.clone(),
                    stake: 100,
                    bet: "spin".into(),
                    provably_fair: false,
                }),
            };
            let reply = self.client.call_retrying(request).await?;
            histogram.record((scheduled.elapsed().as_micros() as u64).max(1))?;
            bets += 1;
            requests += 1;
            if refused(&reply) {
                refusals += 1;
                continue;
            }
            if self.workload == Workload::Round {
                let win = In::Win(proto::Win {
                    player_id: *player,
                    tx_id: format!("w{id}"),
                    bet_tx_id: format!("b{id}"),
                    amount: Some(proto::Stake { kind: Some(proto::stake::Kind::Amount(if sequence % 3 == 0 { 250 } else { 0 })) }),
                    close_round: true,
                });
                let reply = self.client.call_retrying(win).await?;
                requests += 1;
                refusals += u64::from(refused(&reply));
            }
        }
        Ok(LaneResult { histogram, bets, requests, refusals })
    }
}

async fn connect(args: &LoadArgs) -> anyhow::Result<Client> {
    let mut config = ClientConfig::new(args.address.clone(), args.api_key.clone());
    if let Some(ca) = &args.ca {
        config.tls = Some(gateway::tls::connector(ca, &args.server_name)?);
    }
    Ok(Client::connect(config).await?)
}

/// Creates, funds and opens a session for every player; returns (player, token).
async fn setup(client: &Arc<Client>, args: &LoadArgs, run: u64) -> anyhow::Result<Vec<(u64, Vec<u8>)>> {
    let game = match args.workload {
        Workload::Round => "provider-slot",
        Workload::Slot => engine::games::SLOT_ID,
    };
    let base = run * 1_000_000_000;
    let mut tasks = tokio::task::JoinSet::new();
    let chunk = args.players.div_ceil(64).max(1);
    for first in (0..args.players).step_by(chunk as usize) {
        let (client, currency) = (client.clone(), args.currency.clone());
        let last = (first + chunk).min(args.players);
        tasks.spawn(async move {
            let mut tokens = Vec::new();
            for player in base + first..base + last {
                let reply = client.call_retrying(In::CreateWallet(proto::CreateWallet { player_id: player })).await?;
                if let Out::Rejected(r) = &reply {
                    if r.name != "PlayerExists" {
                        bail!("creating player {player}: {}", r.name);
                    }
                }
                let deposit = In::Deposit(proto::Deposit {
                    player_id: player,
                    tx_id: format!("load-{player}"),
                    currency: currency.clone(),
                    amount: 1_000_000_000,
                });
                if let Out::Rejected(r) = client.call_retrying(deposit).await? {
                    bail!("funding player {player}: {}", r.name);
                }
                let open = In::OpenSession(proto::OpenSession {
                    player_id: player,
                    game_id: game.into(),
                    currency: currency.clone(),
                    duration_ms: 24 * 3_600_000,
                });
                match client.call_retrying(open).await? {
                    Out::SessionOpened(opened) => tokens.push((player, opened.token)),
                    other => bail!("opening a session for {player}: {other:?}"),
                }
            }
            Ok(tokens)
        });
    }
    let mut tokens = Vec::new();
    while let Some(result) = tasks.join_next().await {
        tokens.extend(result??);
    }
    Ok(tokens)
}

pub async fn drive(args: LoadArgs) -> anyhow::Result<LoadReport> {
    if args.connections == 0 || args.depth == 0 || args.players == 0 {
        bail!("--connections, --depth and --players must be positive");
    }
    let run = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_millis() as u64 % 1_000_000_000);
    let setup_client = Arc::new(connect(&args).await.context("connecting")?);
    let tokens = Arc::new(setup(&setup_client, &args, run).await?);
    let mut clients = Vec::new();
    for _ in 0..args.connections {
        clients.push(Arc::new(connect(&args).await?));
    }
    let lanes = (args.connections * args.depth) as u64;
    let period = (args.rate > 0).then(|| Duration::from_secs_f64(lanes as f64 / args.rate as f64));
    let remaining = Arc::new(AtomicU64::new(args.requests));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for lane in 0..lanes {
        let task = Lane {
            client: clients[lane as usize % args.connections].clone(),
            tokens: tokens.clone(),
            remaining: remaining.clone(),
            run,
            lane,
            lanes,
            workload: args.workload,
            currency: args.currency.clone(),
            period,
            start: start + period.map_or(Duration::ZERO, |p| p.mul_f64(lane as f64 / lanes as f64)),
        };
        tasks.spawn(task.run());
    }
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut bets, mut requests, mut refusals) = (0, 0, 0);
    while let Some(result) = tasks.join_next().await {
        let lane = result??;
        histogram.add(&lane.histogram)?;
        bets += lane.bets;
        requests += lane.requests;
        refusals += lane.refusals;
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(LoadReport {
        bets,
        requests,
        seconds,
        bets_per_second: bets as f64 / seconds,
        requests_per_second: requests as f64 / seconds,
        bet_latency_us: [
            histogram.value_at_quantile(0.5),
            histogram.value_at_quantile(0.99),
            histogram.value_at_quantile(0.999),
            histogram.max(),
        ],
        refusals,
    })
}

pub fn run(args: LoadArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let json = args.json;
    let (connections, depth, rate) = (args.connections, args.depth, args.rate);
    let report = runtime.block_on(drive(args))?;
    let [p50, p99, p999, max] = report.bet_latency_us;
    if json {
        println!(
            "{{\"bets\":{},\"requests\":{},\"seconds\":{:.3},\"bets_per_second\":{:.0},\"requests_per_second\":{:.0},\"latency_us_p50\":{p50},\"latency_us_p99\":{p99},\"latency_us_p999\":{p999},\"latency_us_max\":{max},\"refusals\":{},\"connections\":{connections},\"depth\":{depth},\"rate\":{rate}}}",
            report.bets, report.requests, report.seconds, report.bets_per_second, report.requests_per_second, report.refusals
        );
    } else {
        println!(
            "bets        {} in {:.2} s ({} connections x {} in flight{})",
            report.bets,
            report.seconds,
            connections,
            depth,
            if rate > 0 { format!(", paced at {rate}/s") } else { String::new() }
        );
        println!("throughput  {:.0} bets/s, {:.0} requests/s", report.bets_per_second, report.requests_per_second);
        println!("bet latency p50 {p50} us, p99 {p99} us, p99.9 {p999} us, max {max} us");
        println!("refusals    {}", report.refusals);
    }
    if report.refusals > 0 {
        bail!("{} requests were refused", report.refusals);
    }
    Ok(())
}
