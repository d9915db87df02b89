//! `casino dev --nodes 3`: a local cluster on loopback in one command.
//!
//! Starts N `casino node` processes (this same binary), each with its data
//! under `DATA/node-I`, the same token secret (kept in `DATA/cluster.toml`,
//! written once) and the development keys. Node I serves the binary
//! protocol on 127.0.0.1:77I0, metrics on 77I1, the PAM API on 77I2, and
//! talks raft on 77I3 (I counted from 0: node 1 is 7700 to 7703, node 2 is
//! 7710 to 7713, ...). Ctrl-C or SIGTERM stops them all (nodes are
//! crash-safe: every acknowledged write is synced, so they are simply
//! killed), and so does `casino dev` dying any other way, SIGKILL
//! included: each node watches a pipe from it (`--exit-with-stdin`). A
//! node that exits on its own is reported and the others keep serving (a
//! cluster of three serves on with two).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;

#[derive(Args, Debug)]
pub struct DevArgs {
    /// Nodes in the cluster (each shard has a replica on every node).
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// Shards (raft groups).
    #[arg(long, default_value_t = 2)]
    shards: u32,
    /// Folder of the cluster's data: DIR/node-1, DIR/node-2, ...
    #[arg(long, default_value = "data/dev")]
    data_dir: PathBuf,
    /// First port: node I uses BASE + 10 (I - 1) to BASE + 10 (I - 1) + 3.
    #[arg(long, default_value_t = 7700)]
    base_port: u16,
}

/// The shared settings: the token secret every member must share.
fn cluster_settings(dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("cluster.toml");
    if !path.exists() {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("no OS entropy: {e}"))?;
        let text = format!(
            "# Written by `casino dev`: every member of this local cluster shares it.\ntoken_secret = \"{}\"\n",
            engine::games::fair::to_hex(&secret)
        );
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(path)
}

pub fn run(args: DevArgs) -> anyhow::Result<()> {
    if !(1..=9).contains(&args.nodes) {
        bail!("--nodes is 1 to 9");
    }
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("creating {}", args.data_dir.display()))?;
    let settings = cluster_settings(&args.data_dir)?;
    let exe = std::env::current_exe().context("finding this binary")?;
    let port = |node: u16, offset: u16| args.base_port + 10 * (node - 1) + offset;
    let peers: Vec<String> = (1..=args.nodes).map(|node| format!("{node}=127.0.0.1:{}", port(node, 3))).collect();
    let stop = stop_on_signal()?;
    let mut children: Vec<(u16, Child)> = Vec::new();
    for node in 1..=args.nodes {
        let child = Command::new(&exe)
            .arg("node")
            .args(["--config", &settings.display().to_string()])
            .args(["--id", &node.to_string(), "--peers", &peers.join(",")])
            .args(["--shards", &args.shards.to_string()])
            .args(["--data-dir", &args.data_dir.join(format!("node-{node}")).display().to_string()])
            .args(["--listen", &format!("127.0.0.1:{}", port(node, 0))])
            .args(["--metrics-listen", &format!("127.0.0.1:{}", port(node, 1))])
            .args(["--pam-listen", &format!("127.0.0.1:{}", port(node, 2))])
            // The node stops when this pipe closes, which the kernel does
            // when this process ends, even by SIGKILL. `Child` keeps the
            // write end open for as long as it lives.
            .arg("--exit-with-stdin")
            .stdin(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting node {node}"))?;
        children.push((node, child));
    }
    println!(
        "casino dev: {} nodes, {} shards, data in {}; binary protocol on {}; Ctrl-C stops them",
        args.nodes,
        args.shards,
        args.data_dir.display(),
        (1..=args.nodes).map(|n| format!("127.0.0.1:{}", port(n, 0))).collect::<Vec<_>>().join(", ")
    );
    // Wait for them all; report each one that stops.
    let mut failed = false;
    while !children.is_empty() {
        std::thread::sleep(Duration::from_millis(200));
        if stop.load(Ordering::SeqCst) {
            for (node, mut child) in children.drain(..) {
                // Already gone after a Ctrl-C, which reaches the whole group.
                let _ = child.kill();
                let status = child.wait().with_context(|| format!("waiting for node {node}"))?;
                eprintln!("casino dev: node {node} stopped ({status})");
            }
            return Ok(());
        }
        let mut index = 0;
        while index < children.len() {
            match children[index].1.try_wait() {
                Ok(Some(status)) => {
                    let (node, _) = children.remove(index);
                    failed |= !status.success();
                    eprintln!("casino dev: node {node} stopped ({status})");
                }
                Ok(None) => index += 1,
                Err(error) => bail!("waiting for node {}: {error}", children[index].0),
            }
        }
    }
    if failed {
        bail!("a node stopped with an error");
    }
    Ok(())
}

/// A flag raised by SIGINT or SIGTERM, so that `casino dev` stops its nodes
/// instead of leaving them running (SIGTERM from a supervisor or `kill`
/// reaches this process alone, not its children).
fn stop_on_signal() -> anyhow::Result<Arc<AtomicBool>> {
    use tokio::signal::unix::{signal, SignalKind};
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("a runtime for signals")?;
    // Registered before any node starts, so no signal is missed.
    let (mut interrupt, mut terminate) =
        runtime.block_on(async { Ok::<_, std::io::Error>((signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?)) })?;
    let stop = Arc::new(AtomicBool::new(false));
    let raised = stop.clone();
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        runtime.block_on(async {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        });
        raised.store(true, Ordering::SeqCst);
    })?;
    Ok(stop)
}
