//! `casino admin`: cluster administration over the binary protocol, on a
//! connection authenticated with an admin key.
//!
//! - `casino admin status`: each shard's applied and snapshot index, raft leader and term,
//!   wallets and queue depth.
//! - `casino admin snapshot`: every shard writes a snapshot now and
//!   truncates its log behind it (before a planned restart, say, so that
//!   recovery replays little).
//! - `casino admin check`: every shard sweeps its invariants (money
//!   conserved, bets consistent); non-zero exit if one is broken.

use anyhow::bail;
use casino_client::proto::{self, client_frame::Body as In, server_frame::Body as Out};
use casino_client::{Client, ClientConfig};
use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct AdminArgs {
    #[arg(long, global = true, default_value = "127.0.0.1:7700")]
    address: String,
    #[arg(long, global = true, default_value = crate::node::DEV_ADMIN_KEY)]
    api_key: String,
    /// A PEM CA certificate to connect with TLS (a node with `[tls]`).
    #[arg(long, global = true)]
    ca: Option<std::path::PathBuf>,
    /// The name the node's certificate must carry, with `--ca`.
    #[arg(long, global = true, default_value = "localhost")]
    server_name: String,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Each shard's indexes, wallets and queue depth.
    Status,
    /// Snapshot every shard now.
    Snapshot,
    /// Sweep every shard's invariants (conservation of money, ...).
    Check,
}

pub fn run(args: AdminArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut config = ClientConfig::new(args.address.clone(), args.api_key.clone());
        if let Some(ca) = &args.ca {
            config.tls = Some(casino_client::tls::connector(ca, &args.server_name)?);
        }
        let client = Client::connect(config).await?;
        let request = match args.command {
            AdminCommand::Status => In::ClusterStatus(proto::ClusterStatus {}),
            AdminCommand::Snapshot => In::TakeSnapshot(proto::TakeSnapshot {}),
            AdminCommand::Check => In::CheckInvariants(proto::CheckInvariants {}),
        };
        match client.call(request).await? {
            Out::ClusterStatus(status) => {
                match status.node_id {
                    0 => println!("{} shards over {} slots", status.shard_count, status.slot_count),
                    node => println!(
                        "{} shards over {} slots (shard map version {}); this is node {node} of a replicated cluster",
                        status.shard_count, status.slot_count, status.map_version
                    ),
                }
                println!(
                    "{:>5} {:>14} {:>14} {:>12} {:>8} {:>7} {:>7} {:>11}",
                    "shard", "applied", "snapshot", "wallets", "queue", "leader", "term", "map leader"
                );
                for s in status.shards {
                    println!(
                        "{:>5} {:>14} {:>14} {:>12} {:>8} {:>7} {:>7} {:>11}",
                        s.shard_id,
                        s.applied_index,
                        s.snapshot_index,
                        s.wallets,
                        s.queue_depth,
                        s.leader,
                        s.term,
                        format!("{}@{}", s.map_leader, s.map_term)
                    );
                }
                Ok(())
            }
            Out::SnapshotTaken(taken) => {
                println!("{:>5} {:>14} {:>14} {:>10} {:>10}", "shard", "index", "bytes", "ms", "pause ms");
                for s in taken.shards {
                    println!(
                        "{:>5} {:>14} {:>14} {:>10.1} {:>10.1}",
                        s.shard_id,
                        s.index,
                        s.bytes,
                        s.micros as f64 / 1000.0,
                        s.pause_micros as f64 / 1000.0
                    );
                }
                Ok(())
            }
            Out::InvariantsChecked(checked) => {
                for s in &checked.shards {
                    println!(
                        "shard {:>3}: {}",
                        s.shard_id,
                        if s.hold { "invariants hold".to_string() } else { format!("BROKEN: {}", s.failure) }
                    );
                }
                if checked.shards.iter().any(|s| !s.hold) {
                    bail!("an invariant is broken");
                }
                Ok(())
            }
            Out::Error(error) => bail!("refused: {} (code {})", error.message, error.code),
            other => bail!("unexpected reply: {other:?}"),
        }
    })
}
