//! `commit-floor`: the floor under a replicated, durable commit on this
//! machine (see `benches::floor::commit`): three threads with a log file
//! each, nothing but the sends, appends and fdatasyncs every replicated bet
//! needs. What it measures, the cluster cannot beat.
//!
//! cargo run --release -p benches --bin commit-floor -- DIR [--leader inline|aside] [--seconds S] [RATE ...]

use std::path::Path;

use benches::floor::{commit, Leader};

const USAGE: &str = "usage: commit-floor DIR [--leader inline|aside] [--seconds S] [RATE ...] (rates default to 1000 10000 30000)";

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or_else(|| anyhow::anyhow!(USAGE))?;
    let (mut leader, mut seconds, mut rates) = (Leader::Inline, 6.0, Vec::new());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--leader" => {
                leader = match args.next().as_deref() {
                    Some("inline") => Leader::Inline,
                    Some("aside") => Leader::Aside,
                    _ => anyhow::bail!(USAGE),
                }
            }
            "--seconds" => seconds = args.next().ok_or_else(|| anyhow::anyhow!(USAGE))?.parse()?,
            rate => rates.push(rate.replace('_', "").parse::<u64>().map_err(|_| anyhow::anyhow!(USAGE))?),
        }
    }
    for rate in if rates.is_empty() { vec![1_000, 10_000, 30_000] } else { rates } {
        let report = commit(Path::new(&dir), leader, rate, seconds)?;
        println!("{}", report.json(if leader == Leader::Inline { "commit-inline" } else { "commit-aside" }));
    }
    Ok(())
}
