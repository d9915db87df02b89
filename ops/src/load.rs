//! `casino load`: drive a node over N connections with pipelining.
//!
//! Setup (through the Rust client): `--players` wallets, each funded and
//! given a session. Then each connection keeps `--depth` rounds in flight; a
//! round is a bet and, once it is answered, a win that closes the round
//! (`--workload round`), a bet alone (`--workload bet`), or one slot spin
//! (`--workload slot`). Latency is recorded per request in
//! an HDR histogram. With `--rate R` (bets per second in total) the load is
//! open-loop instead: the bets are due on a schedule (bet k at k / R
//! seconds, sent by connection k mod N), and each connection, at most once a
//! millisecond, sends the bets it has due, without waiting for replies, so a
//! slow server cannot slow the senders down (no coordinated omission);
//! latency counts from when each request was sent. A pacer thread wakes the
//! connections in turns spread evenly over each millisecond (tokio's timer
//! ticks by the millisecond and would wake them all at once: one burst of
//! every connection's requests, whose last reply waits for all the others),
//! and skips a turn whose connection has nothing due. (A ticker waking every
//! connection every 100 us was tried: p50 fell, p99 rose with its
//! wake-ups.)
//! `--warmup-requests N` leaves the first N bets out of the histogram: the
//! first milliseconds on new connections meet a node's cold caches and first
//! allocations (a one-off stall of tens of milliseconds, seen in captures).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use casino_client::proto::{self, client_frame::Body as In, server_frame::Body as Out};
use casino_client::{Client, ClientConfig};
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use tokio::sync::Notify;

/// How often each open-loop connection sends what is due, at most.
const PACE: Duration = Duration::from_millis(1);

/// When an open-loop run's bets are due: `rate` a second in total from
/// `start` (taken before the connections say Hello: what falls due while
/// they do goes out at their first turn, one reason for
/// `--warmup-requests`), taken by the connections in turn, so that their
/// sends are spread rather than in step.
#[derive(Clone, Copy, Debug)]
struct Schedule {
    start: Instant,
    rate: f64,
    connections: u64,
}

impl Schedule {
    /// How many of `connection`'s bets are due `elapsed` seconds after the
    /// start: bet k (from 1) is due at k / rate and goes to connection
    /// (k - 1) mod connections, so the first connections take the extra
    /// bets when the count does not divide evenly.
    fn due(&self, connection: u64, elapsed: f64) -> u64 {
        let n = self.connections as f64;
        ((elapsed * self.rate + n - 1.0 - connection as f64) / n).max(0.0) as u64
    }

    /// Seconds after the start at which `connection`'s bet number `n`
    /// (from 1) is due.
    fn due_at(&self, connection: u64, n: u64) -> f64 {
        ((n - 1) as f64 * self.connections as f64 + connection as f64 + 1.0) / self.rate
    }

    /// When `connection`'s bet number `n` is meant to be sent, in seconds
    /// after the start: the connection's first [`Pacer`] slot at or after
    /// the bet is due. A bet's latency counts from then, not from when it
    /// was sent, so a sender held up (its socket full, its task late) adds
    /// the delay to the figures instead of hiding it (coordinated omission).
    fn slot_at(&self, connection: u64, n: u64) -> f64 {
        let (connections, step) = (self.connections as f64, PACE.as_secs_f64() / self.connections as f64);
        let turns = ((self.due_at(connection, n) / step - connection as f64) / connections).ceil().max(0.0);
        (connection as f64 + turns * connections) * step
    }
}

/// Wakes open-loop connections when they have bets due: in turns, their
/// slots spread evenly over each [`PACE`] (connection c's slots are c, c +
/// connections, ... steps of PACE / connections), so a connection sends at
/// most once per PACE and never in step with the others (tokio's timer
/// ticks by the millisecond and would wake them all at once: one burst of
/// every connection's requests, whose last reply waits for all the others).
/// A slot whose connection has nothing new due is skipped without waking
/// anyone: at a low rate the generator wakes once per bet, not
/// connections x 1,000 times a second, and its wake-ups do not crowd the
/// server it measures on a small machine. A wake-up missed while a
/// connection was busy is kept for it (`Notify` stores one), and what it
/// sends is computed from the clock, so lateness never loses requests.
struct Pacer {
    turns: Arc<Vec<Notify>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Pacer {
    /// `counts`: each connection's bets in all (it is not woken past them).
    fn start(schedule: Schedule, counts: Vec<u64>) -> anyhow::Result<Pacer> {
        let connections = counts.len();
        let turns: Arc<Vec<Notify>> = Arc::new((0..connections).map(|_| Notify::new()).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let (wake, halt) = (turns.clone(), stop.clone());
        let step = PACE.as_secs_f64() / connections.max(1) as f64;
        let thread = std::thread::Builder::new().name("pacer".into()).spawn(move || {
            let n = connections as u64;
            // Bets each connection was woken for so far, and the next slot.
            let mut woken = vec![0u64; connections];
            let mut slot = 0u64;
            while !halt.load(Ordering::Relaxed) {
                // The first slot, from `slot` on, whose connection then has a bet it was not woken for.
                let next = (0..n)
                    .filter(|&c| woken[c as usize] < counts[c as usize])
                    .map(|c| {
                        let first = slot + (c + n - slot % n) % n;
                        let due = schedule.due_at(c, woken[c as usize] + 1);
                        let late = (due - first as f64 * step).max(0.0);
                        first + (late / (step * n as f64)).ceil() as u64 * n
                    })
                    .min();
                let Some(next) = next else { return };
                let at = schedule.start + Duration::from_secs_f64(next as f64 * step);
                // Short sleeps, so that a stop is seen soon.
                let now = Instant::now();
                if at > now {
                    std::thread::sleep((at - now).min(Duration::from_millis(50)));
                    continue;
                }
                let c = (next % n) as usize;
                woken[c] = schedule.due(c as u64, schedule.start.elapsed().as_secs_f64()).min(counts[c]);
                wake[c].notify_one();
                slot = next + 1;
            }
        })?;
        Ok(Pacer { turns, stop, thread: Some(thread) })
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// A provider's bet, then a win that closes the round.
    Round,
    /// A provider's bet alone, each on a round of its own left open: the
    /// check-and-debit path. Needs players x 64 >= requests (64 open bets
    /// per wallet at most).
    Bet,
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
    /// Bets sent first and left out of the latency histogram (steady-state
    /// latency: the first requests on new connections meet cold caches and
    /// first allocations). Counted in throughput all the same.
    #[arg(long, default_value_t = 0)]
    pub warmup_requests: u64,
    /// Threads of the load generator's runtime.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
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

/// One request of a lane's round, ready to send.
fn bet_request(workload: Workload, token: &[u8], currency: &str, id: &str) -> In {
    match workload {
        Workload::Round | Workload::Bet => In::Bet(proto::Bet {
            session_token: token.to_vec(),
            tx_id: format!("b{id}"),
            round_id: format!("r{id}"),
            game_id: "provider-slot".into(),
            currency: currency.to_string(),
            stake: Some(proto::Stake { kind: Some(proto::stake::Kind::Amount(100)) }),
        }),
        Workload::Slot => In::Play(proto::Play {
            session_token: token.to_vec(),
            tx_id: format!("s{id}"),
            currency: currency.to_string(),
            stake: 100,
            bet: "spin".into(),
            provably_fair: false,
        }),
    }
}

/// One connection's driver, written against the socket directly (one task,
/// no per-request future, frames encoded straight into the write buffer) so
/// that the generator costs far less than the server it measures. Replies
/// are matched to their send times by request id; for `round`, a bet's
/// reply sends its win.
/// - `rate: Some(schedule)`: open loop; at each of its turns (`turn`, from
///   the [`Pacer`]) it writes the bets its schedule has due by then,
///   whatever the replies.
/// - `rate: None`: closed loop; `depth` bets (or rounds) outstanding, each
///   reply releasing the next.
async fn drive_connection(
    args: LoadArgs,
    tokens: Arc<Vec<(u64, Vec<u8>)>>,
    count: u64,
    rate: Option<(Schedule, Arc<Vec<Notify>>)>,
    warmup: u64,
    run: u64,
    connection: u64,
) -> anyhow::Result<LaneResult> {
    use bytes::BytesMut;
    use casino_client::frame::{encode_frame, split_frame};
    use prost::Message;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let tcp = tokio::net::TcpStream::connect(&args.address).await?;
    tcp.set_nodelay(true)?;
    // Over TLS when a CA is given, as the setup's client connected.
    let (mut reader, mut writer): (Box<dyn tokio::io::AsyncRead + Send + Unpin>, Box<dyn tokio::io::AsyncWrite + Send + Unpin>) =
        match &args.ca {
            Some(ca) => {
                let (connector, name) = casino_client::tls::connector(ca, &args.server_name)?;
                let (reader, writer) = tokio::io::split(connector.connect(name, tcp).await?);
                (Box::new(reader), Box::new(writer))
            }
            None => {
                let (reader, writer) = tcp.into_split();
                (Box::new(reader), Box::new(writer))
            }
        };
    let mut out = Vec::with_capacity(64 * 1024);
    let mut buffer = BytesMut::with_capacity(64 * 1024);
    let hello = In::Hello(proto::Hello { protocol_version: 1, api_key: args.api_key.clone() });
    encode_frame(&proto::ClientFrame { request_id: 0, body: Some(hello) }, &mut out);
    writer.write_all(&out).await?;
    writer.flush().await?;
    out.clear();
    loop {
        if let Some(frame) = split_frame(&mut buffer)? {
            match proto::ServerFrame::decode(frame)?.body {
                Some(Out::HelloOk(_)) => break,
                other => bail!("Hello refused: {other:?}"),
            }
        }
        if reader.read_buf(&mut buffer).await? == 0 {
            bail!("the server closed the connection during Hello");
        }
    }
    // Request ids: bets are 1..=count, their wins count+1..; a bet's slot holds its send time.
    let mut sent_at: Vec<Option<Instant>> = vec![None; count as usize + 1];
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut bets, mut requests, mut refusals, mut answered, mut expected) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut sent = 0u64;
    // Bets stride over the players by a prime that does not divide their
    // number, so that every player is reached.
    let stride = [7_919u64, 7_927, 7_933].into_iter().find(|p| tokens.len() as u64 % p != 0).unwrap_or(1);
    let player_of = |sequence: u64| &tokens[((connection + sequence * stride) % tokens.len() as u64) as usize];
    // `at`: when the bet counts as sent (see `Schedule::slot_at`).
    let send_bet = |sent: &mut u64, expected: &mut u64, out: &mut Vec<u8>, sent_at: &mut [Option<Instant>], at: Instant| {
        *sent += 1;
        let (_, token) = player_of(*sent);
        let request = bet_request(args.workload, token, &args.currency, &format!("{run}-p{connection}-{sent}"));
        encode_frame(&proto::ClientFrame { request_id: *sent, body: Some(request) }, out);
        sent_at[*sent as usize] = Some(at);
        *expected += 1;
    };
    if rate.is_none() {
        let now = Instant::now();
        while sent < count.min(args.depth as u64) {
            send_bet(&mut sent, &mut expected, &mut out, &mut sent_at, now);
        }
    }
    // `out[written..]` is still to be written. Writes go out as the socket
    // takes them while replies keep being read: a connection that waited
    // for a whole write before reading again could deadlock with a server
    // waiting for it to read (both sockets full) once it falls behind.
    // A TLS stream may hold back what it was given until flushed; flushes
    // are their own branch so that no written count is ever lost to a
    // cancelled future.
    let (mut written, mut unflushed) = (0usize, false);
    let (rate, turns) = rate.unzip();
    let turn = turns.as_ref().map(|turns| &turns[connection as usize]);
    while sent < count || answered < expected || written < out.len() || unflushed {
        tokio::select! {
            () = async { if let Some(turn) = turn { turn.notified().await } }, if turn.is_some() && sent < count => {
                let Some(schedule) = rate else { continue };
                let due = schedule.due(connection, schedule.start.elapsed().as_secs_f64()).min(count);
                let now = Instant::now();
                while sent < due {
                    let slot = schedule.start + Duration::from_secs_f64(schedule.slot_at(connection, sent + 1));
                    send_bet(&mut sent, &mut expected, &mut out, &mut sent_at, slot.min(now));
                }
            }
            // Each step one cancel-safe call: a write (Some: bytes taken) or,
            // with everything written, a flush (None).
            step = async {
                if written < out.len() {
                    writer.write(&out[written..]).await.map(Some)
                } else {
                    writer.flush().await.map(|()| None)
                }
            }, if written < out.len() || unflushed => {
                match step? {
                    Some(0) => bail!("the server closed the connection"),
                    Some(n) => (written, unflushed) = (written + n, true),
                    None => unflushed = false,
                }
                if written == out.len() {
                    out.clear();
                    written = 0;
                }
            }
            read = reader.read_buf(&mut buffer) => {
                if read? == 0 {
                    bail!("the server closed the connection");
                }
                let now = Instant::now();
                while let Some(frame) = split_frame(&mut buffer)? {
                    let frame = proto::ServerFrame::decode(frame)?;
                    let reply = frame.body.context("a reply without a body")?;
                    answered += 1;
                    requests += 1;
                    let was_refused = refused(&reply);
                    refusals += u64::from(was_refused);
                    let mut round_over = true;
                    if frame.request_id <= count {
                        let at = sent_at[frame.request_id as usize].take().context("a reply to a bet never sent")?;
                        if frame.request_id > warmup {
                            // Past the histogram's 60 s, counted as 60 s rather than ending the run.
                            histogram.saturating_record((now.duration_since(at).as_micros() as u64).max(1));
                        }
                        bets += 1;
                        if args.workload == Workload::Round && !was_refused {
                            let sequence = frame.request_id;
                            let (player, _) = player_of(sequence);
                            let id = format!("{run}-p{connection}-{sequence}");
                            let win = In::Win(proto::Win { player_id: *player, tx_id: format!("w{id}"), bet_tx_id: format!("b{id}"), amount: Some(proto::Stake { kind: Some(proto::stake::Kind::Amount(0)) }), close_round: true });
                            encode_frame(&proto::ClientFrame { request_id: count + sequence, body: Some(win) }, &mut out);
                            expected += 1;
                            round_over = false;
                        }
                    }
                    if rate.is_none() && round_over && sent < count {
                        send_bet(&mut sent, &mut expected, &mut out, &mut sent_at, now);
                    }
                }
            }
        }
    }
    Ok(LaneResult { histogram, bets, requests, refusals })
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

async fn connect(args: &LoadArgs) -> anyhow::Result<Client> {
    let mut config = ClientConfig::new(args.address.clone(), args.api_key.clone());
    if let Some(ca) = &args.ca {
        config.tls = Some(casino_client::tls::connector(ca, &args.server_name)?);
    }
    Ok(Client::connect(config).await?)
}

/// Creates, funds and opens a session for every player; returns (player, token).
async fn setup(client: &Arc<Client>, args: &LoadArgs, run: u64) -> anyhow::Result<Vec<(u64, Vec<u8>)>> {
    let game = match args.workload {
        Workload::Round | Workload::Bet => "provider-slot",
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
                    ..Default::default()
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
    if args.workload == Workload::Bet && args.players * 60 < args.requests {
        bail!("--workload bet leaves every round open: use at least requests / 60 players ({})", args.requests.div_ceil(60));
    }
    let run = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_millis() as u64 % 1_000_000_000);
    let setup_client = Arc::new(connect(&args).await.context("connecting")?);
    let tokens = Arc::new(setup(&setup_client, &args, run).await?);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let connections = args.connections as u64;
    let counts: Vec<u64> = (0..connections).map(|c| args.requests / connections + u64::from(c < args.requests % connections)).collect();
    let schedule = Schedule { start, rate: args.rate as f64, connections };
    let pacer = if args.rate > 0 { Some(Pacer::start(schedule, counts.clone())?) } else { None };
    for connection in 0..connections {
        let count = counts[connection as usize];
        let rate = pacer.as_ref().map(|pacer| (schedule, pacer.turns.clone()));
        let warmup = args.warmup_requests / connections;
        tasks.spawn(drive_connection(args.clone(), tokens.clone(), count, rate, warmup, run, connection));
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
    drop(pacer);
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
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads.max(1)).enable_all().build()?;
    let json = args.json;
    let (connections, depth, rate, warmup) = (args.connections, args.depth, args.rate, args.warmup_requests);
    let report = runtime.block_on(drive(args))?;
    let [p50, p99, p999, max] = report.bet_latency_us;
    if json {
        println!(
            "{{\"bets\":{},\"requests\":{},\"seconds\":{:.3},\"bets_per_second\":{:.0},\"requests_per_second\":{:.0},\"latency_us_p50\":{p50},\"latency_us_p99\":{p99},\"latency_us_p999\":{p999},\"latency_us_max\":{max},\"refusals\":{},\"connections\":{connections},\"depth\":{depth},\"rate\":{rate},\"warmup_requests\":{warmup}}}",
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
        let after = if warmup > 0 { format!(" (after the first {warmup} bets)") } else { String::new() };
        println!("bet latency p50 {p50} us, p99 {p99} us, p99.9 {p999} us, max {max} us{after}");
        println!("refusals    {}", report.refusals);
    }
    if report.refusals > 0 {
        bail!("{} requests were refused", report.refusals);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bet k (from 1) is due at k / rate, by connection (k - 1) mod n: the
    /// connections' counts add up to the bets due, and each connection's
    /// bets fall due in turn, the extra ones on the first connections.
    #[test]
    fn the_schedule_deals_bets_in_turn_at_the_rate() {
        let schedule = Schedule { start: Instant::now(), rate: 1_000.0, connections: 4 };
        for ms in 0..50u64 {
            let t = ms as f64 / 1_000.0 + 0.000_5;
            let due: u64 = (0..4).map(|c| schedule.due(c, t)).sum();
            assert_eq!(due, ms, "at {t} s");
        }
        // Bets 1 to 5 at 1 to 5 ms: connections 0, 1, 2, 3, then 0 again.
        let times: Vec<f64> = [(0, 1), (1, 1), (2, 1), (3, 1), (0, 2)].iter().map(|&(c, n)| schedule.due_at(c, n)).collect();
        for (k, at) in times.iter().enumerate() {
            assert!((at - (k + 1) as f64 / 1_000.0).abs() < 1e-9, "bet {} at {at}", k + 1);
        }
        // A connection's n-th bet is counted from its due time on.
        for c in 0..4 {
            for n in 1..10 {
                let at = schedule.due_at(c, n);
                assert_eq!(schedule.due(c, at + 1e-9), n);
                assert_eq!(schedule.due(c, at - 1e-6), n - 1);
            }
        }
    }

    /// A bet counts as sent at its connection's first pacing slot at or
    /// after its due time: on the connection's grid, never before the bet
    /// is due, less than one pace after it.
    #[test]
    fn a_bet_counts_from_its_connections_first_slot_after_it_is_due() {
        let step = PACE.as_secs_f64() / 4.0;
        for rate in [1_000.0, 150_000.0, 7_777.0] {
            let schedule = Schedule { start: Instant::now(), rate, connections: 4 };
            for c in 0..4 {
                for n in 1..500 {
                    let (due, slot) = (schedule.due_at(c, n), schedule.slot_at(c, n));
                    assert!(slot >= due - 1e-12 && slot < due + PACE.as_secs_f64(), "rate {rate} bet {n} of {c}: due {due}, slot {slot}");
                    let turns = (slot / step - c as f64) / 4.0;
                    assert!((turns - turns.round()).abs() < 1e-6, "slot {slot} is on connection {c}'s grid");
                }
            }
        }
    }
}
