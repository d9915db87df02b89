//! `casino sim`: run a scenario against the engine in-process (the default)
//! or a running node over TCP (`--target tcp`), with a progress bar, and
//! print the report (text, or `--json`). Exits non-zero when a check fails,
//! naming the seed that reproduces the run.

use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use sim::{inprocess, Progress, Scenario};

#[derive(Args, Debug)]
pub struct SimArgs {
    /// A shipped scenario (steady, jackpot-night, promotion-spike,
    /// sweepstakes) or a TOML file of the same shape.
    #[arg(long, default_value = "steady")]
    scenario: String,
    /// Override the scenario's player count.
    #[arg(long)]
    players: Option<u64>,
    /// Override the scenario's bet count.
    #[arg(long)]
    bets: Option<u64>,
    /// Override the scenario's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Override the scenario's arrival rate (bets per second; paces TCP runs).
    #[arg(long)]
    rate: Option<u64>,
    /// In-process shards, one thread each.
    #[arg(long, default_value_t = 2)]
    shards: u32,
    /// "in-process" (the engine in this process) or "tcp" (a running node).
    #[arg(long, default_value = "in-process")]
    target: String,
    /// TCP: the node's binary protocol address.
    #[arg(long, default_value = "127.0.0.1:7700")]
    address: String,
    /// TCP: the node's data folder, whose journal gives the books.
    #[arg(long, default_value = "data")]
    data_dir: std::path::PathBuf,
    /// TCP: connections (one worker thread each; a second per connection for the sweepstakes operator).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// TCP: API keys of operator 1 (standard) and operator 2 (sweepstakes).
    #[arg(long, default_value = crate::node::DEV_OPERATOR_KEY)]
    api_key: String,
    #[arg(long, default_value = crate::node::DEV_SWEEPS_KEY)]
    sweeps_api_key: String,
    /// TCP: an admin key, for the node's invariant sweep at the end.
    #[arg(long, default_value = crate::node::DEV_ADMIN_KEY)]
    admin_key: String,
    /// TCP: the first player id (default: from the clock, so runs against one node do not collide).
    #[arg(long)]
    player_base: Option<u64>,
    /// In-process: plant a bug (shard 0 applies one retried play twice) to
    /// see the books catch it.
    #[arg(long)]
    plant_double_apply: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// Draw the latency percentiles per operation to this PNG file.
    #[arg(long)]
    plot: Option<std::path::PathBuf>,
}

pub fn run(args: SimArgs) -> anyhow::Result<()> {
    let mut scenario = Scenario::load(&args.scenario)?;
    scenario.players = args.players.unwrap_or(scenario.players);
    scenario.bets = args.bets.unwrap_or(scenario.bets);
    scenario.seed = args.seed.unwrap_or(scenario.seed);
    scenario.bets_per_second = args.rate.unwrap_or(scenario.bets_per_second);
    scenario.validate()?;
    let progress = Progress::default();
    let bar = ProgressBar::new(scenario.bets);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} bets, {per_sec}, {msg}")
            .map_err(|e| anyhow::anyhow!("progress template: {e}"))?,
    );
    let report = std::thread::scope(|scope| {
        let running = scope.spawn(|| match args.target.as_str() {
            "in-process" => Ok(inprocess::run_planted(&scenario, args.shards, &progress, args.plant_double_apply)),
            "tcp" => {
                let node = sim::tcp::NodeAddress {
                    address: args.address.clone(),
                    standard_key: args.api_key.clone(),
                    sweepstakes_key: args.sweeps_api_key.clone(),
                    admin_key: args.admin_key.clone(),
                    data_dir: args.data_dir.clone(),
                };
                let base = args.player_base.unwrap_or_else(|| {
                    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
                    1_000_000_000 + (secs % 100_000) * 100_000_000
                });
                sim::tcp::run(&scenario, &node, args.connections, base, &progress)
            }
            other => Err(anyhow::anyhow!("unknown target {other:?}: in-process or tcp")),
        });
        while !running.is_finished() {
            std::thread::sleep(Duration::from_millis(100));
            bar.set_position(progress.bets.load(Ordering::Relaxed));
            bar.set_message(format!(
                "{} commands, {} unexpected",
                progress.commands.load(Ordering::Relaxed),
                progress.unexpected.load(Ordering::Relaxed)
            ));
        }
        running.join().map_err(|_| anyhow::anyhow!("the simulation panicked"))?
    })?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    if let Some(path) = &args.plot {
        sim::plot::latency_png(&report, path)?;
        eprintln!("latency plot: {}", path.display());
    }
    if !report.passed {
        anyhow::bail!("the books do not balance: reproduce with --scenario {} --seed {}", args.scenario, report.seed);
    }
    Ok(())
}
