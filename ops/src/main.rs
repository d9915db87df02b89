//! `casino`: the command-line binary.
//!
//! - `casino rng raw --bytes N`: raw output of the shard RNG (ChaCha20,
//!   seeded and periodically reseeded from OS entropy), binary, to stdout.
//! - `casino rng outcomes --game G --count N [--bet B]`: scaled outcomes of a
//!   game, one round per line.
//! - `casino rtp --game G --spins N [--bet B]`: measured return, hit
//!   frequency and 99% confidence interval beside the exact theoretical return.
//! - `casino fair verify ...`: recompute a provably-fair round from its seeds.
//! - `casino round show ...`: show a settled round again from its record.
//! - `casino node`: serve the binary protocol (see docs/protocol.md); with
//!   `--id N --peers ...`, as a member of a replicated cluster.
//! - `casino dev --nodes 3`: a local replicated cluster on loopback.
//! - `casino load`: a load generator for a node.
//! - `casino pam-load`: bet+win pairs over a node's PAM HTTP API, books checked.
//! - `casino admin status|snapshot`: cluster administration.
//! - `casino journal --data-dir D`: the regulatory journal, one event a line.
//! - `casino sim --scenario S`: a seeded simulation run with the books checked.
//! - `casino key-hash KEY`: the hash a settings file stores for an API key.

mod admin;
mod dev;
mod games;
mod journal;
mod load;
mod node;
mod pam_load;
mod sim;

use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(name = "casino", version, about = "The casino engine's command-line binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The random number generator, as a testing laboratory examines it.
    Rng {
        #[command(subcommand)]
        command: games::RngCommand,
    },
    /// Measure a game's return by simulation, beside its exact value.
    Rtp(games::RtpArgs),
    /// Built-in games' rounds, as regulators ask to see them.
    Round {
        #[command(subcommand)]
        command: games::RoundCommand,
    },
    /// Provably-fair rounds.
    Fair {
        #[command(subcommand)]
        command: games::FairCommand,
    },
    /// Serve the binary protocol in front of this node's shards.
    Node(node::NodeArgs),
    /// Start a local replicated cluster on loopback (N node processes).
    Dev(dev::DevArgs),
    /// Drive a node with pipelined bets over many connections.
    Load(load::LoadArgs),
    /// Drive a node's PAM HTTP API with bet+win pairs and check the books.
    PamLoad(pam_load::PamLoadArgs),
    /// Cluster administration (an admin key): status, snapshots.
    Admin(admin::AdminArgs),
    /// Read the regulatory journal of a data folder (beside a running node too).
    Journal(journal::JournalArgs),
    /// Run a simulation scenario in-process and check the books.
    Sim(sim::SimArgs),
    /// Print the SHA-256 of an API key, as the settings file stores it.
    KeyHash { key: String },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Rng { command } => games::rng(command),
        Command::Rtp(args) => games::rtp(args),
        Command::Round { command } => games::round(command),
        Command::Fair { command } => games::fair(command),
        Command::Node(args) => node::run(args),
        Command::Dev(args) => dev::run(args),
        Command::Load(args) => load::run(args),
        Command::PamLoad(args) => pam_load::run(args),
        Command::Admin(args) => admin::run(args),
        Command::Journal(args) => journal::run(args),
        Command::Sim(args) => sim::run(args),
        Command::KeyHash { key } => {
            println!("{}", engine::games::fair::to_hex(&gateway::auth::hash_key(&key)));
            Ok(())
        }
    }
}
