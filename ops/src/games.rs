//! `casino rng`, `casino rtp` and `casino fair`: the games as laboratories
//! and players check them.

use std::io::Write;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use engine::games::fair::{from_hex, server_seed_hash, to_hex, FairDraw};
use engine::games::{self, Choice, GameKind};
use engine::rng::ShardRng;
use engine::ExternalId;

use gateway::choice;

/// The shard owner reseeds periodically; the laboratory stream does the
/// same, every this many bytes (or rounds, for outcomes).
const RESEED_EVERY_BYTES: u64 = 1 << 20;
const RESEED_EVERY_ROUNDS: u64 = 100_000;

#[derive(Subcommand, Debug)]
pub enum RngCommand {
    /// Raw generator output (binary) to stdout.
    Raw {
        #[arg(long)]
        bytes: u64,
        /// A fixed 64-hex-digit key instead of OS entropy, with no reseeding
        /// (reproducible output for comparisons).
        #[arg(long)]
        key: Option<String>,
    },
    /// Scaled outcomes of a game, one round per line.
    Outcomes {
        #[arg(long)]
        game: String,
        #[arg(long)]
        count: u64,
        /// The bet (see `casino rtp --help`); outcomes do not depend on it
        /// except for its game.
        #[arg(long)]
        bet: Option<String>,
        #[arg(long)]
        key: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct RtpArgs {
    /// lucky-lines, roulette-eu, dice or crash.
    #[arg(long)]
    game: String,
    /// Rounds to simulate.
    #[arg(long, default_value_t = 10_000_000)]
    spins: u64,
    /// roulette-eu: straight:N, split:A,B, street:ROW, trio:low|high,
    /// corner:N, first-four, six-line:ROW, column:C, dozen:D, red, black, odd,
    /// even, low, high; dice: under:T or over:T; crash: a target like 2.00.
    #[arg(long)]
    bet: Option<String>,
    /// A fixed 64-hex-digit key instead of OS entropy (reproducible runs).
    #[arg(long)]
    key: Option<String>,
    /// One line of JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
pub enum RoundCommand {
    /// Show a settled round again from its record (game, bet, stake,
    /// outcome as `Played.outcome` or the GamePlayed event gives it): the
    /// reels, pocket, roll or crash point, and the win recomputed.
    Show {
        #[arg(long)]
        game: String,
        #[arg(long)]
        bet: Option<String>,
        #[arg(long)]
        stake: u64,
        /// e.g. "3 1 4 1 5" (slot; free spins after ";"), "17", "4999", "2.37".
        #[arg(long)]
        outcome: String,
        /// The win the record says, to check against the recomputed one.
        #[arg(long)]
        win: Option<u64>,
    },
}

pub fn round(command: RoundCommand) -> anyhow::Result<()> {
    let RoundCommand::Show { game, bet, stake, outcome, win } = command;
    let (kind, choice) = choice_for(&game, &bet)?;
    let drawn = choice::parse_outcome(kind, &outcome)?;
    let recomputed =
        games::settle(&choice, &drawn, stake).context("the outcome does not fit the game or the stake does not fit the bet")?;
    println!("game     {} v{}", kind.id(), kind.version());
    println!("bet      {choice:?}, stake {stake}");
    print!("{}", games::describe(&choice, &drawn));
    println!();
    println!("win      {recomputed}");
    if let Some(recorded) = win {
        if recorded != recomputed {
            bail!("the record says {recorded}, the rules give {recomputed}");
        }
        println!("the recorded win matches the rules");
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum FairCommand {
    /// Recompute a provably-fair round from its seeds and nonce.
    Verify {
        /// The revealed server seed, 64 hex digits.
        #[arg(long)]
        server_seed: String,
        #[arg(long)]
        client_seed: String,
        #[arg(long)]
        nonce: u64,
        #[arg(long)]
        game: String,
        #[arg(long)]
        bet: Option<String>,
        /// The stake in minor units, to show the win.
        #[arg(long, default_value_t = 100)]
        stake: u64,
    },
}

fn key_from(text: &Option<String>) -> anyhow::Result<Option<[u8; 32]>> {
    let Some(text) = text else { return Ok(None) };
    let bytes = from_hex(text).context("the key must be hex")?;
    let key: [u8; 32] = bytes.try_into().map_err(|_| anyhow::anyhow!("the key must be 64 hex digits (32 bytes)"))?;
    Ok(Some(key))
}

fn os_entropy() -> anyhow::Result<[u8; 32]> {
    let mut entropy = [0u8; 32];
    getrandom::fill(&mut entropy).map_err(|e| anyhow::anyhow!("no OS entropy: {e}"))?;
    Ok(entropy)
}

/// The generator as a shard holds it: unseeded, then reseeded from OS
/// entropy (or keyed directly, for reproducible output).
struct Source {
    rng: ShardRng,
    reseeding: bool,
}

impl Source {
    fn new(key: Option<[u8; 32]>) -> anyhow::Result<Source> {
        Ok(match key {
            Some(key) => Source { rng: ShardRng::from_key(key), reseeding: false },
            None => {
                let mut rng = ShardRng::default();
                rng.reseed(&os_entropy()?);
                Source { rng, reseeding: true }
            }
        })
    }

    fn maybe_reseed(&mut self, done: u64, every: u64) -> anyhow::Result<()> {
        if self.reseeding && done > 0 && done % every == 0 {
            self.rng.reseed(&os_entropy()?);
        }
        Ok(())
    }
}

fn choice_for(game: &str, bet: &Option<String>) -> anyhow::Result<(GameKind, Choice)> {
    let kind = choice::game(game)?;
    let text = bet.as_deref().unwrap_or(choice::default_bet(kind));
    Ok((kind, choice::parse(kind, text)?))
}

pub fn rng(command: RngCommand) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    match command {
        RngCommand::Raw { bytes, key } => {
            let mut source = Source::new(key_from(&key)?)?;
            let mut buffer = vec![0u8; 1 << 16];
            let mut written = 0u64;
            while written < bytes {
                let chunk = (bytes - written).min(buffer.len() as u64) as usize;
                // Reseed on the boundaries of RESEED_EVERY_BYTES (a multiple of the chunk size).
                source.maybe_reseed(written, RESEED_EVERY_BYTES)?;
                source.rng.fill_bytes(&mut buffer[..chunk]);
                out.write_all(&buffer[..chunk])?;
                written += chunk as u64;
            }
        }
        RngCommand::Outcomes { game, count, bet, key } => {
            let (_, choice) = choice_for(&game, &bet)?;
            let mut source = Source::new(key_from(&key)?)?;
            for round in 0..count {
                source.maybe_reseed(round, RESEED_EVERY_ROUNDS)?;
                writeln!(out, "{}", choice::outcome_text(&games::draw(&choice, &mut source.rng)))?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// Exact sums of a simulation: rounds, hits, and the win and its square
/// (in minor units of a fixed stake), so mean and variance are exact.
#[derive(Debug, Default)]
struct Tally {
    rounds: u64,
    hits: u64,
    win: u128,
    win_squared: u128,
}

pub fn rtp(args: RtpArgs) -> anyhow::Result<()> {
    let (kind, choice) = choice_for(&args.game, &args.bet)?;
    if args.spins == 0 {
        bail!("--spins must be positive");
    }
    let stake: u64 = if kind == GameKind::Slot { 20 } else { 100 };
    let mut source = Source::new(key_from(&args.key)?)?;
    let started = std::time::Instant::now();
    let mut tally = Tally::default();
    for round in 0..args.spins {
        source.maybe_reseed(round, RESEED_EVERY_ROUNDS)?;
        let drawn = games::draw(&choice, &mut source.rng);
        let win = games::settle(&choice, &drawn, stake).context("a drawn round settles")?;
        tally.rounds += 1;
        tally.hits += u64::from(win > 0);
        tally.win += u128::from(win);
        tally.win_squared += u128::from(win) * u128::from(win);
    }
    let elapsed = started.elapsed();
    let n = tally.rounds as f64;
    let stake = stake as f64;
    let mean = tally.win as f64 / n / stake;
    let variance = (tally.win_squared as f64 / n / (stake * stake) - mean * mean).max(0.0);
    let half_width = 2.5758 * (variance / n).sqrt();
    let (numerator, denominator) = games::exact_return(&choice).context("a valid choice has a return")?;
    let theoretical = numerator as f64 / denominator as f64;
    let inside = (mean - half_width..=mean + half_width).contains(&theoretical);
    let hit_frequency = tally.hits as f64 / n;
    if args.json {
        println!(
            "{{\"game\":\"{}\",\"version\":{},\"bet\":\"{:?}\",\"rounds\":{},\"rtp_measured\":{:.6},\"ci99_low\":{:.6},\"ci99_high\":{:.6},\"rtp_theoretical\":{:.6},\"theoretical_inside_ci\":{},\"hit_frequency\":{:.6},\"seconds\":{:.3}}}",
            kind.id(),
            kind.version(),
            choice,
            tally.rounds,
            mean,
            mean - half_width,
            mean + half_width,
            theoretical,
            inside,
            hit_frequency,
            elapsed.as_secs_f64()
        );
    } else {
        println!("game               {} v{} ({choice:?})", kind.id(), kind.version());
        println!("rounds             {} in {:.2} s", tally.rounds, elapsed.as_secs_f64());
        println!(
            "RTP measured       {:.4}%  (99% CI {:.4}% .. {:.4}%)",
            mean * 100.0,
            (mean - half_width) * 100.0,
            (mean + half_width) * 100.0
        );
        println!("RTP theoretical    {:.4}%  (exact: {numerator} / {denominator})", theoretical * 100.0);
        println!("inside the CI      {}", if inside { "yes" } else { "NO" });
        println!("hit frequency      {:.4}%", hit_frequency * 100.0);
    }
    if !inside {
        bail!("the theoretical return lies outside the 99% confidence interval");
    }
    Ok(())
}

pub fn fair(command: FairCommand) -> anyhow::Result<()> {
    match command {
        FairCommand::Verify { server_seed, client_seed, nonce, game, bet, stake } => {
            let seed: [u8; 32] = from_hex(&server_seed)
                .context("the server seed must be hex")?
                .try_into()
                .map_err(|_| anyhow::anyhow!("the server seed must be 64 hex digits"))?;
            let client =
                ExternalId::new(&client_seed).map_err(|_| anyhow::anyhow!("the client seed must be 1 to 40 printable ASCII characters"))?;
            let (_, choice) = choice_for(&game, &bet)?;
            let mut draw = FairDraw::new(seed, client, nonce);
            let drawn = games::draw(&choice, &mut draw);
            let win = games::settle(&choice, &drawn, stake).context("the stake does not fit the bet (a slot stake is a multiple of 20)")?;
            println!("server seed hash   {}", to_hex(&server_seed_hash(&seed)));
            println!("outcome            {}", choice::outcome_text(&drawn));
            println!("win for stake {stake}  {win}");
            println!("{}", games::describe(&choice, &drawn));
        }
    }
    Ok(())
}
