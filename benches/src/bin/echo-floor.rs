//! `echo-floor`: the floor under a request over loopback on this machine
//! (see `benches::floor::echo`): one thread echoing 64-byte frames, one
//! sending open loop as `casino load --rate` does. What it measures, the
//! node cannot beat.
//!
//! cargo run --release -p benches --bin echo-floor -- [--seconds S] [RATE ...]

use benches::floor::echo;

const USAGE: &str = "usage: echo-floor [--seconds S] [RATE ...] (requests per second; default 150000 300000)";

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut seconds, mut rates) = (6.0, Vec::new());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => seconds = args.next().ok_or_else(|| anyhow::anyhow!(USAGE))?.parse()?,
            rate => rates.push(rate.replace('_', "").parse::<u64>().map_err(|_| anyhow::anyhow!(USAGE))?),
        }
    }
    for rate in if rates.is_empty() { vec![150_000, 300_000] } else { rates } {
        println!("{}", echo(rate, seconds)?.json("echo"));
    }
    Ok(())
}
