//! `etcd-cas`: bets as compare-and-swap transactions against an etcd
//! cluster, for comparing the engine's replicated throughput with etcd's.
//!
//! Each player's balance is one key, `p/<id>`. A bet is ONE transaction:
//! if the key's mod revision is still the one this client last saw, put the
//! debited balance; otherwise read the key, refresh the cached balance and
//! revision from it, and try the bet again (a conflict). Players are
//! partitioned over the connections, so no two connections ever write the
//! same key and conflicts stay rare.
//!
//! Phases: setup (put every balance to its starting value), the run (the
//! timed part: bets over `--connections` closed-loop connections, or paced to
//! `--rate` bets per second overall), and verification (read every balance
//! back and check that the total debited equals the stakes of the
//! acknowledged bets). The last line printed is a one-line summary;
//! the exit status is 0 only if the run finished and verified.
//!
//! A request that fails (connection lost, timeout, error status) may or may
//! not have been applied. The bet is then retried on a new connection, to
//! the next endpoint (so a member that is down costs a retry, not the run),
//! with the same compare and the same new balance: if the first attempt was
//! applied, the retry's compare fails and returns exactly the balance that
//! attempt wrote (no one else writes this key), and the bet counts as
//! acknowledged; otherwise the retry applies it. So the ledger is exact
//! even across errors. A bet that cannot be resolved after
//! `MAX_ATTEMPTS_PER_BET` failed requests stops the run.

mod etcd;

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;

use etcd::{Cas, Connection, Endpoint, KeyValue};

/// Every balance starts here.
const INITIAL_BALANCE: i64 = 1_000_000;
/// Stakes are drawn uniformly from 1..=MAX_STAKE.
const MAX_STAKE: u64 = 100;
/// Failed requests (not conflicts) after which one bet, one setup put or one
/// verification page gives up and the run fails.
const MAX_ATTEMPTS_PER_BET: u32 = 20;
/// Errors printed in full; later ones are only counted.
const ERRORS_PRINTED: u64 = 20;
/// Keys per verification range request.
const VERIFY_PAGE: i64 = 1000;
/// The histogram's range, microseconds (larger values are clamped).
const HISTOGRAM_MAX_US: u64 = 60_000_000;

#[derive(Parser, Debug)]
#[command(version, about = "Bets as compare-and-swap transactions against etcd's JSON gateway")]
struct Args {
    /// etcd client URLs, comma-separated; connections are spread over them,
    /// and one moves on to the next after a failed request.
    #[arg(long, value_delimiter = ',', required = true)]
    endpoints: Vec<String>,
    /// Players (balance keys `p/0` .. `p/<N-1>`), partitioned over connections.
    #[arg(long, default_value_t = 10_000)]
    players: u32,
    /// Bets in the run, in total.
    #[arg(long)]
    bets: u64,
    /// Concurrent connections, each with one request in flight at a time.
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// Pace the bets to this many per second overall instead of as fast as
    /// replies allow. Latency is then measured from each bet's scheduled
    /// time, so time spent behind schedule counts.
    #[arg(long)]
    rate: Option<f64>,
    /// Per-request timeout, milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Client worker threads (the cluster under test needs the cores more).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(problem) = validate(&args) {
        eprintln!("etcd-cas: {problem}");
        return ExitCode::from(2);
    }
    let endpoints = match args.endpoints.iter().map(|url| Endpoint::parse(url)).collect::<Result<Vec<_>, _>>() {
        Ok(endpoints) => endpoints,
        Err(problem) => {
            eprintln!("etcd-cas: {problem}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("etcd-cas: starting the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args, endpoints.into())) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(problem) => {
            eprintln!("etcd-cas: {problem}");
            ExitCode::FAILURE
        }
    }
}

fn validate(args: &Args) -> Result<(), String> {
    if args.connections == 0 || args.threads == 0 {
        return Err("--connections and --threads must be at least 1".into());
    }
    if args.players < args.connections {
        return Err(format!("--players ({}) must be at least --connections ({}): players are partitioned", args.players, args.connections));
    }
    if let Some(rate) = args.rate {
        if !(rate.is_finite() && rate > 0.0) {
            return Err("--rate must be a positive number of bets per second".into());
        }
    }
    if args.timeout_ms == 0 {
        return Err("--timeout-ms must be at least 1".into());
    }
    Ok(())
}

/// Runs the three phases; `Ok(verified)`, or `Err` if a phase could not finish.
async fn run(args: Args, endpoints: Arc<[Endpoint]>) -> Result<bool, String> {
    let timeout = Duration::from_millis(args.timeout_ms);
    let connections = args.connections as usize;
    let pacing = args.rate.map(|rate| Duration::from_secs_f64(connections as f64 / rate));
    eprintln!(
        "etcd-cas: {} endpoints, {} connections, {} players, {} bets, {}",
        endpoints.len(),
        connections,
        args.players,
        args.bets,
        match args.rate {
            Some(rate) => format!("paced at {rate} bets/s"),
            None => "closed loop".to_string(),
        }
    );

    // Setup: each connection puts its own players' balances.
    let started = Instant::now();
    let mut setups = Vec::with_capacity(connections);
    for index in 0..connections {
        let connection = Connection::new(endpoints.clone(), index, timeout);
        let ids: Vec<u32> = (index as u32..args.players).step_by(connections).collect();
        setups.push(tokio::spawn(setup(connection, ids)));
    }
    let mut workers = Vec::with_capacity(connections);
    for (index, setup) in setups.into_iter().enumerate() {
        let (connection, players) = setup.await.map_err(|e| format!("setup task: {e}"))??;
        let bets = args.bets / connections as u64 + u64::from((index as u64) < args.bets % connections as u64);
        workers.push(Worker::new(index, connection, players, bets)?);
    }
    eprintln!("etcd-cas: setup: {} balances put in {:.2} s", args.players, started.elapsed().as_secs_f64());

    // The run: the timed phase.
    let started = Instant::now();
    let tasks: Vec<_> = workers
        .into_iter()
        .enumerate()
        .map(|(index, worker)| {
            // Stagger the paced connections evenly over one interval.
            let schedule = pacing.map(|interval| (started + interval.mul_f64(index as f64 / connections as f64), interval));
            tokio::spawn(worker.run(schedule))
        })
        .collect();
    let mut total = Totals::new()?;
    let mut players = Vec::with_capacity(args.players as usize);
    let mut failures = Vec::new();
    for task in tasks {
        let outcome = task.await.map_err(|e| format!("bet task: {e}"))?;
        total.add(&outcome.totals)?;
        players.extend(outcome.players);
        failures.extend(outcome.failure);
    }
    let seconds = started.elapsed().as_secs_f64();
    let bets_per_s = total.bets as f64 / seconds;
    let histogram = &total.latency_us;
    eprintln!(
        "etcd-cas: run: {} bets acknowledged in {seconds:.2} s, {bets_per_s:.0} bets/s; latency us p50 {} p99 {} p99.9 {} max {}; \
         {} conflicts ({} of them found a failed attempt applied), {} errors, {} bets refused for lack of balance",
        total.bets,
        histogram.value_at_quantile(0.5),
        histogram.value_at_quantile(0.99),
        histogram.value_at_quantile(0.999),
        histogram.max(),
        total.conflicts,
        total.found_applied,
        total.errors,
        total.refused,
    );
    for failure in &failures {
        eprintln!("etcd-cas: {failure}");
    }

    // Verification, also after a failed run: every balance must be what the
    // acknowledged bets made it. (A bet left in doubt by a connection that
    // gave up may make it fail: that outcome is unknown to the client too.)
    let verified = match verify(Connection::new(endpoints.clone(), 0, timeout), &players, total.stakes).await {
        Ok(report) => {
            eprintln!("etcd-cas: verify: {report}");
            true
        }
        Err(problem) => {
            eprintln!("etcd-cas: verify FAILED: {problem}");
            false
        }
    };
    println!(
        "etcd-cas bets={} seconds={seconds:.3} bets_per_s={bets_per_s:.0} p50_us={} p99_us={} p999_us={} max_us={} conflicts={} errors={} verified={}",
        total.bets,
        histogram.value_at_quantile(0.5),
        histogram.value_at_quantile(0.99),
        histogram.value_at_quantile(0.999),
        histogram.max(),
        total.conflicts,
        total.errors,
        if verified { "ok" } else { "FAILED" },
    );
    if !failures.is_empty() {
        return Err(format!("{} of {connections} connections stopped before finishing their bets", failures.len()));
    }
    Ok(verified)
}

/// One player as a connection last saw it.
struct Player {
    id: u32,
    key: Vec<u8>,
    balance: i64,
    mod_revision: i64,
}

/// Puts the starting balance of `ids` over `connection`, and returns it and
/// the players with their mod revisions.
async fn setup(mut connection: Connection, ids: Vec<u32>) -> Result<(Connection, Vec<Player>), String> {
    let value = INITIAL_BALANCE.to_string().into_bytes();
    let mut players = Vec::with_capacity(ids.len());
    for id in ids {
        let key = format!("p/{id}").into_bytes();
        let mut attempts = 0;
        // A put is idempotent here, so a failed one is simply repeated; the
        // revision of the last one is the key's mod revision.
        let mod_revision = loop {
            let outcome = match connection.client().await {
                Ok(client) => client.put(&key, &value).await,
                Err(error) => Err(error),
            };
            match outcome {
                Ok(revision) => break revision,
                Err(error) => {
                    attempts += 1;
                    report_error(connection.endpoint(), &error);
                    if attempts >= MAX_ATTEMPTS_PER_BET {
                        return Err(format!(
                            "setup: putting p/{id} failed {attempts} times, last on {}: {error}",
                            connection.endpoint().url
                        ));
                    }
                    connection.failed();
                    tokio::time::sleep(backoff(attempts)).await;
                }
            }
        };
        players.push(Player { id, key, balance: INITIAL_BALANCE, mod_revision });
    }
    Ok((connection, players))
}

/// Counters and latencies of (part of) a run.
struct Totals {
    /// Acknowledged bets.
    bets: u64,
    /// Sum of their stakes.
    stakes: i64,
    /// Transactions whose compare failed.
    conflicts: u64,
    /// Of those, the ones that found an earlier, failed attempt of the same
    /// bet applied (so the bet was acknowledged by that read).
    found_applied: u64,
    /// Requests that failed (each then retried).
    errors: u64,
    /// Bets not sent because the cached balance was below the stake.
    refused: u64,
    /// Per acknowledged bet, from its first attempt (or its scheduled time
    /// when paced) to its acknowledgement, microseconds.
    latency_us: Histogram<u64>,
}

impl Totals {
    fn new() -> Result<Totals, String> {
        let latency_us = Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, 3).map_err(|e| format!("histogram: {e}"))?;
        Ok(Totals { bets: 0, stakes: 0, conflicts: 0, found_applied: 0, errors: 0, refused: 0, latency_us })
    }

    fn add(&mut self, other: &Totals) -> Result<(), String> {
        self.bets += other.bets;
        self.stakes += other.stakes;
        self.conflicts += other.conflicts;
        self.found_applied += other.found_applied;
        self.errors += other.errors;
        self.refused += other.refused;
        self.latency_us.add(&other.latency_us).map_err(|e| format!("merging histograms: {e}"))
    }
}

/// What a connection's run hands back.
struct Outcome {
    totals: Totals,
    players: Vec<Player>,
    /// Why it stopped early, if it did.
    failure: Option<String>,
}

/// One connection's share of the run: its players, its bets, its counters.
struct Worker {
    connection: Connection,
    players: Vec<Player>,
    bets: u64,
    random: SplitMix64,
    totals: Totals,
}

impl Worker {
    fn new(index: usize, connection: Connection, players: Vec<Player>, bets: u64) -> Result<Worker, String> {
        let totals = Totals::new()?;
        Ok(Worker { connection, players, bets, random: SplitMix64(index as u64), totals })
    }

    /// Places the bets, round-robin over the players. `schedule`: the first
    /// bet's time and the interval between bets, when paced.
    async fn run(mut self, schedule: Option<(Instant, Duration)>) -> Outcome {
        let mut failure = None;
        for bet in 0..self.bets {
            let start = match schedule {
                Some((first, interval)) => {
                    let due = first + interval.mul_f64(bet as f64);
                    tokio::time::sleep_until(due.into()).await;
                    due
                }
                None => Instant::now(),
            };
            let player = (bet % self.players.len() as u64) as usize;
            let stake = 1 + (self.random.next() % MAX_STAKE) as i64;
            match self.bet(player, stake).await {
                Ok(true) => {
                    self.totals.bets += 1;
                    self.totals.stakes += stake;
                    self.totals.latency_us.saturating_record(start.elapsed().as_micros().max(1) as u64);
                }
                Ok(false) => self.totals.refused += 1,
                Err(problem) => {
                    failure = Some(problem);
                    break;
                }
            }
        }
        Outcome { totals: self.totals, players: self.players, failure }
    }

    /// Places one bet on `self.players[index]`, retrying through conflicts and
    /// errors. `Ok(true)`: acknowledged; `Ok(false)`: the balance is below the
    /// stake; `Err`: `MAX_ATTEMPTS_PER_BET` requests failed.
    async fn bet(&mut self, index: usize, stake: i64) -> Result<bool, String> {
        let mut failed_attempts = 0;
        // The balance written by an attempt that failed with its outcome
        // unknown, while the compare it was sent with still stands.
        let mut in_doubt: Option<Vec<u8>> = None;
        loop {
            let player = &self.players[index];
            if player.balance < stake {
                return Ok(false);
            }
            let new_balance = player.balance - stake;
            let new_value = new_balance.to_string().into_bytes();
            let outcome = match self.connection.client().await {
                Ok(client) => client.compare_and_swap(&player.key, player.mod_revision, &new_value).await,
                Err(error) => Err(error),
            };
            let player = &mut self.players[index];
            match outcome {
                Ok(Cas::Swapped { revision }) => {
                    player.balance = new_balance;
                    player.mod_revision = revision;
                    return Ok(true);
                }
                Ok(Cas::Conflict { current }) => {
                    self.totals.conflicts += 1;
                    let Some(current) = current else {
                        return Err(format!("p/{} no longer exists", player.id));
                    };
                    let applied = in_doubt.as_deref() == Some(current.value.as_slice());
                    refresh(player, &current)?;
                    if applied {
                        // An earlier attempt of this very bet was applied
                        // before its request failed.
                        self.totals.found_applied += 1;
                        return Ok(true);
                    }
                    in_doubt = None;
                }
                Err(error) => {
                    self.totals.errors += 1;
                    report_error(self.connection.endpoint(), &error);
                    failed_attempts += 1;
                    if failed_attempts >= MAX_ATTEMPTS_PER_BET {
                        let last = &self.connection.endpoint().url;
                        return Err(format!("a bet on p/{} failed {failed_attempts} times, last on {last}: {error}", player.id));
                    }
                    self.connection.failed();
                    in_doubt = Some(new_value);
                    tokio::time::sleep(backoff(failed_attempts)).await;
                }
            }
        }
    }
}

/// Takes a player's balance and mod revision from the key as read.
fn refresh(player: &mut Player, current: &KeyValue) -> Result<(), String> {
    player.balance = parse_balance(&current.value).ok_or_else(|| format!("p/{} holds a non-numeric balance", player.id))?;
    player.mod_revision = current.mod_revision;
    Ok(())
}

fn parse_balance(value: &[u8]) -> Option<i64> {
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Reads every balance back (linearizable ranges over `p/`), and checks each
/// against the connection's cache and the total debited against `stakes`.
async fn verify(mut connection: Connection, players: &[Player], stakes: i64) -> Result<String, String> {
    let mut read = vec![None::<i64>; players.iter().map(|p| p.id as usize + 1).max().unwrap_or(0)];
    // `p/` up to but excluding `p0` ('0' follows '/'): every key under `p/`.
    let end = b"p0".to_vec();
    let mut start = b"p/".to_vec();
    let mut attempts = 0;
    loop {
        let page = match connection.client().await {
            Ok(client) => client.range(&start, &end, VERIFY_PAGE).await,
            Err(error) => Err(error),
        };
        let page = match page {
            Ok(page) => page,
            Err(error) => {
                attempts += 1;
                report_error(connection.endpoint(), &error);
                if attempts >= MAX_ATTEMPTS_PER_BET {
                    return Err(format!("reading balances failed {attempts} times, last on {}: {error}", connection.endpoint().url));
                }
                connection.failed();
                tokio::time::sleep(backoff(attempts)).await;
                continue;
            }
        };
        for kv in &page.kvs {
            let id = kv.key.strip_prefix(b"p/").and_then(|id| std::str::from_utf8(id).ok()).and_then(|id| id.parse::<usize>().ok());
            if let Some(slot) = id.and_then(|id| read.get_mut(id)) {
                *slot = Some(
                    parse_balance(&kv.value).ok_or_else(|| format!("{} holds a non-numeric balance", String::from_utf8_lossy(&kv.key)))?,
                );
            }
        }
        match page.kvs.last() {
            // The next page starts just after this page's last key.
            Some(last) if page.more => {
                start = last.key.clone();
                start.push(0);
            }
            _ => break,
        }
    }
    let mut debited = 0i64;
    let mut missing = 0u64;
    let mut mismatched = 0u64;
    for player in players {
        match read[player.id as usize] {
            Some(balance) => {
                debited += INITIAL_BALANCE - balance;
                mismatched += u64::from(balance != player.balance);
            }
            None => missing += 1,
        }
    }
    if missing > 0 || mismatched > 0 || debited != stakes {
        return Err(format!(
            "{missing} balances missing, {mismatched} differ from the acknowledged bets; debited {debited}, acknowledged stakes {stakes}"
        ));
    }
    Ok(format!("{} balances read back; debited {debited} = acknowledged stakes {stakes}", players.len()))
}

/// Prints the first `ERRORS_PRINTED` request errors; the rest are counted.
fn report_error(endpoint: &Endpoint, error: &etcd::Error) {
    static PRINTED: AtomicU64 = AtomicU64::new(0);
    let seen = PRINTED.fetch_add(1, Ordering::Relaxed);
    if seen < ERRORS_PRINTED {
        eprintln!("etcd-cas: {}: {error}", endpoint.url);
    } else if seen == ERRORS_PRINTED {
        eprintln!("etcd-cas: further errors are only counted");
    }
}

/// 50 ms, doubling per failed attempt, at most 1 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(50u64 << attempt.saturating_sub(1).min(5)).min(Duration::from_secs(1))
}

/// A small, fast generator for stakes (splitmix64), seeded per connection so
/// runs are repeatable.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
