//! `casino sim`: run a scenario against the engine in-process, with a
//! progress bar, and print the report (text, or `--json`). Exits non-zero
//! when a check fails, naming the seed that reproduces the run.

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
    /// In-process shards, one thread each.
    #[arg(long, default_value_t = 2)]
    shards: u32,
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
    scenario.validate()?;
    let progress = Progress::default();
    let bar = ProgressBar::new(scenario.bets);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} bets, {per_sec}, {msg}")
            .map_err(|e| anyhow::anyhow!("progress template: {e}"))?,
    );
    let report = std::thread::scope(|scope| {
        let running = scope.spawn(|| inprocess::run(&scenario, args.shards, &progress));
        while !running.is_finished() {
            std::thread::sleep(Duration::from_millis(100));
            bar.set_position(progress.bets.load(Ordering::Relaxed));
            bar.set_message(format!(
                "{} commands, {} unexpected",
                progress.commands.load(Ordering::Relaxed),
                progress.unexpected.load(Ordering::Relaxed)
            ));
        }
        running.join().map_err(|_| anyhow::anyhow!("the simulation panicked"))
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
