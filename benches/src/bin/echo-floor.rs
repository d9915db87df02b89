//! `echo-floor`: the floor under a request over loopback on this machine
//! (see `benches::floor::echo`): one thread echoing 64-byte frames, one
//! sending open loop as `casino load --rate` does; with `--hand-over`, the
//! echo goes through a second thread and back, as the node's connection
//! thread hands a batch to its shard. What it measures, the node cannot beat.
//!
//! cargo run --release -p benches --bin echo-floor -- [--seconds S] [--hand-over] [RATE ...]

use benches::floor::echo;

const USAGE: &str = "usage: echo-floor [--seconds S] [--hand-over] [RATE ...] (requests per second; default 150000 300000)";

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut seconds, mut hand_over, mut rates) = (6.0, false, Vec::new());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => seconds = args.next().ok_or_else(|| anyhow::anyhow!(USAGE))?.parse()?,
            "--hand-over" => hand_over = true,
            rate => rates.push(rate.replace('_', "").parse::<u64>().map_err(|_| anyhow::anyhow!(USAGE))?),
        }
    }
    for rate in if rates.is_empty() { vec![150_000, 300_000] } else { rates } {
        println!("{}", echo(rate, seconds, hand_over)?.json(if hand_over { "echo-hand-over" } else { "echo" }));
    }
    Ok(())
}
