//! `engine-bench`: rounds (a provider's bet and win, or a built-in slot spin) on one shard, one thread.
//!
//! cargo run --release -p benches --bin engine-bench -- [--wallets N] [--rounds N]
//!     [--latency-rounds N] [--warmup-rounds N] [--batch N] [--resident N] [--seed N] [--json]

use benches::engine_rounds::{run, Params, Workload};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "engine-bench: rounds on one shard, one thread

  --wallets N          wallets (default 1000000)
  --rounds N           rounds timed in batches (default 2000000)
  --latency-rounds N   rounds timed one command at a time (default 500000)
  --warmup-rounds N    untimed rounds first, to fill the index (default 700000)
  --batch N            commands per batch (default 1024, the node's batch_max)
  --resident N         resident wallets before passivation (default: the engine's)
  --seed N             player choice seed (default 42)
  --workload W         bet-win (a provider's bet and win: 2 commands a round)
                       or slot (a built-in slot spin: 1 Play command) (default bet-win)
  --json               one JSON line instead of text";

/// A batch as large as a node applies (`NodeConfig::batch_max`).
fn cluster_batch_max() -> usize {
    cluster::NodeConfig::default().batch_max
}

fn main() -> anyhow::Result<()> {
    let mut params = Params {
        workload: Workload::BetWin,
        wallets: 1_000_000,
        rounds: 2_000_000,
        latency_rounds: 500_000,
        warmup_rounds: 700_000,
        batch: cluster_batch_max(),
        resident_wallets_max: engine::Residency::default().resident_wallets_max,
        seed: 42,
    };
    let mut json = false;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || -> anyhow::Result<u64> {
            let text = args.next().ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
            Ok(text.replace('_', "").parse()?)
        };
        match flag.as_str() {
            "--wallets" => params.wallets = value()?,
            "--rounds" => params.rounds = value()?,
            "--latency-rounds" => params.latency_rounds = value()?,
            "--warmup-rounds" => params.warmup_rounds = value()?,
            "--batch" => params.batch = usize::try_from(value()?)?,
            "--resident" => params.resident_wallets_max = usize::try_from(value()?)?,
            "--seed" => params.seed = value()?,
            "--json" => json = true,
            "--workload" => {
                params.workload = match args.next().as_deref() {
                    Some("bet-win") => Workload::BetWin,
                    Some("slot") => Workload::Slot,
                    other => anyhow::bail!("--workload takes bet-win or slot, not {other:?}"),
                }
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => anyhow::bail!("unknown flag {other}\n{USAGE}"),
        }
    }
    anyhow::ensure!(params.wallets > 0 && params.batch > 0, "--wallets and --batch must be positive");
    let report = run(params)?;
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}
