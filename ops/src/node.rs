//! `casino node`: serve the gateway in front of this node's shards.
//!
//! Settings come from an optional TOML file (`--config`) and flags, over
//! defaults that make a working development node: one standard operator
//! (EUR, USD) and one sweepstakes operator (GC, SC) with well-known keys, an
//! admin key, loopback addresses. See `ops/casino.example.toml`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use cluster::{Node, NodeConfig};
use engine::{Currency, CurrencySpec, OperatorConfig, OperatorId, LIMIT_INCREASE_DELAY_DEFAULT_MS};
use gateway::auth::{hash_key, ApiKeys, Principal, TokenSigner};
use gateway::server::{Gateway, GatewayConfig};
use serde::Deserialize;

pub const DEV_OPERATOR_KEY: &str = "dev-operator-key";
pub const DEV_SWEEPS_KEY: &str = "dev-sweeps-key";
pub const DEV_ADMIN_KEY: &str = "dev-admin-key";

#[derive(Args, Debug)]
pub struct NodeArgs {
    /// A TOML settings file (see ops/casino.example.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address of the binary protocol.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Address of the Prometheus metrics endpoint.
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Address of the PAM seamless-wallet HTTP API (default 127.0.0.1:7702).
    #[arg(long)]
    pam_listen: Option<SocketAddr>,
    /// Do not serve the PAM HTTP API.
    #[arg(long, conflicts_with = "pam_listen")]
    no_pam: bool,
    /// Shards (each on its own thread).
    #[arg(long)]
    shards: Option<u32>,
    /// Threads serving connections.
    #[arg(long)]
    worker_threads: Option<usize>,
    /// Folder of the node's data (RocksDB under DIR/db); default ./data.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Keep everything in memory: nothing survives a restart.
    #[arg(long, conflicts_with = "data_dir")]
    in_memory: bool,
    /// "sync" (fsync per group commit, the default) or "buffered".
    #[arg(long)]
    durability: Option<persistence::Durability>,
    /// A shard snapshots itself after this many commands (0: only on demand).
    #[arg(long)]
    snapshot_every: Option<u64>,
    /// This node's id in a replicated cluster (1 to 32767); needs --peers.
    #[arg(long, requires = "peers")]
    id: Option<u64>,
    /// Every member of the cluster as ID=HOST:PORT (raft addresses), this
    /// node's included, comma-separated: 1=127.0.0.1:7703,2=127.0.0.1:7713,...
    #[arg(long, requires = "id", value_delimiter = ',')]
    peers: Vec<String>,
    /// A leader compacting its log keeps the entries of a follower at most
    /// this many entries behind (default 10,000; and 256 MiB of them): a
    /// follower further behind is sent a snapshot.
    #[arg(long, requires = "id")]
    lagging_entries_kept: Option<u64>,
    /// Stop when standard input closes: `casino dev` starts its nodes so,
    /// holding the other end of each pipe, and the kernel closes it however
    /// `casino dev` ends (SIGKILL included), so no node outlives it. The
    /// node stops as if killed: every acknowledged write is already synced.
    #[arg(long)]
    exit_with_stdin: bool,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<SocketAddr>,
    metrics_listen: Option<SocketAddr>,
    shards: Option<u32>,
    worker_threads: Option<usize>,
    storage: Option<StorageSettings>,
    /// 64 hex digits; tokens survive restarts only with a fixed secret.
    token_secret: Option<String>,
    gateway: Option<GatewaySettings>,
    pam: Option<PamSettings>,
    cluster: Option<ClusterSettings>,
    tls: Option<TlsSettings>,
    #[serde(default)]
    operators: Vec<OperatorSettings>,
    #[serde(default)]
    admins: Vec<AdminSettings>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct GatewaySettings {
    max_connections: Option<usize>,
    max_in_flight: Option<usize>,
    idle_timeout_ms: Option<u64>,
    hello_timeout_ms: Option<u64>,
    connection_rate: Option<u32>,
    connection_burst: Option<u32>,
    operator_rate: Option<u32>,
    operator_burst: Option<u32>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct PamSettings {
    /// False: no PAM HTTP API.
    enabled: Option<bool>,
    listen: Option<SocketAddr>,
    /// Reported for sessions opened without a locale: two letters each.
    default_country: Option<String>,
    default_language: Option<String>,
    max_connections: Option<usize>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct ClusterSettings {
    /// This node's id.
    id: u64,
    /// "ID=HOST:PORT" of every member, this node's included.
    peers: Vec<String>,
    /// One raft clock tick in milliseconds (default 30).
    tick_ms: Option<u64>,
    /// A leader compacting keeps a follower's entries this far behind at most.
    lagging_entries_kept: Option<u64>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct StorageSettings {
    /// Folder of the node's data; RocksDB lives in DIR/db.
    data_dir: Option<PathBuf>,
    /// True: no data folder, nothing survives a restart.
    in_memory: Option<bool>,
    /// "sync" or "buffered".
    durability: Option<String>,
    snapshot_every_commands: Option<u64>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct TlsSettings {
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct OperatorSettings {
    id: u32,
    /// SHA-256 of the API key, 64 hex digits (`casino key-hash KEY` prints it).
    api_key_sha256: String,
    #[serde(default)]
    sweepstakes: bool,
    /// "CODE:SCALE" each, e.g. "EUR:2".
    currencies: Vec<String>,
    limit_increase_delay_ms: Option<u64>,
    redemption_min_minor: Option<u64>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct AdminSettings {
    api_key_sha256: String,
}

/// Everything a node runs with.
pub struct Settings {
    pub listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    /// None: the PAM HTTP API is off.
    pub pam_listen: Option<SocketAddr>,
    pub pam: gateway::pam::PamConfig,
    pub shards: u32,
    pub worker_threads: usize,
    pub token_secret: [u8; 32],
    pub gateway: GatewayConfig,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub operators: Vec<OperatorConfig>,
    pub keys: ApiKeys,
    pub development_keys: bool,
    /// None: in memory only.
    pub data_dir: Option<PathBuf>,
    pub durability: persistence::Durability,
    pub snapshot_every_commands: u64,
    /// Some: a member of a replicated cluster.
    pub cluster: Option<cluster::ClusterConfig>,
}

fn parse_peers(peers: &[String]) -> anyhow::Result<Vec<(u64, SocketAddr)>> {
    let mut parsed: Vec<(u64, SocketAddr)> = Vec::new();
    for peer in peers {
        let (id, address) = peer.split_once('=').with_context(|| format!("peer {peer:?} must be ID=HOST:PORT"))?;
        let id: u64 = id.trim().parse().with_context(|| format!("peer {peer:?}: the id is not a number"))?;
        let address = std::net::ToSocketAddrs::to_socket_addrs(address.trim())
            .with_context(|| format!("peer {peer:?}: cannot resolve {address:?}"))?
            .next()
            .with_context(|| format!("peer {peer:?}: {address:?} resolves to nothing"))?;
        if !(1..1 << 15).contains(&id) {
            bail!("peer {peer:?}: ids are 1 to 32767");
        }
        if parsed.iter().any(|(seen, _)| *seen == id) {
            bail!("peer id {id} is listed twice");
        }
        parsed.push((id, address));
    }
    Ok(parsed)
}

/// Default commands between a shard's snapshots: bounds the log a restart
/// replays (about 3 s at the engine's speed) against the pause a snapshot
/// costs the shard.
pub const SNAPSHOT_EVERY_COMMANDS_DEFAULT: u64 = 4_000_000;

fn from_hex_32(text: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = engine::games::fair::from_hex(text).context("not hex")?;
    bytes.try_into().map_err(|_| anyhow::anyhow!("not 32 bytes"))
}

fn currency_spec(text: &str) -> anyhow::Result<CurrencySpec> {
    let (code, scale) = text.split_once(':').with_context(|| format!("currency {text:?} must be CODE:SCALE"))?;
    let currency = Currency::new(code).map_err(|_| anyhow::anyhow!("invalid currency code {code:?}"))?;
    Ok(CurrencySpec { currency, scale: scale.parse().with_context(|| format!("invalid scale in {text:?}"))? })
}

fn development_operators() -> (Vec<OperatorConfig>, ApiKeys) {
    let spec = |code: &str| CurrencySpec { currency: Currency::new(code).expect("valid code"), scale: 2 };
    let operators = vec![
        OperatorConfig {
            operator: OperatorId(1),
            sweepstakes: false,
            currencies: vec![spec("EUR"), spec("USD")],
            limit_increase_delay_ms: LIMIT_INCREASE_DELAY_DEFAULT_MS,
            redemption_min_minor: 0,
        },
        OperatorConfig {
            operator: OperatorId(2),
            sweepstakes: true,
            currencies: vec![spec("GC"), spec("SC")],
            limit_increase_delay_ms: LIMIT_INCREASE_DELAY_DEFAULT_MS,
            redemption_min_minor: 5_000,
        },
    ];
    let mut keys = ApiKeys::default();
    keys.insert_hash(hash_key(DEV_OPERATOR_KEY), Principal::Operator(OperatorId(1)));
    keys.insert_hash(hash_key(DEV_SWEEPS_KEY), Principal::Operator(OperatorId(2)));
    keys.insert_hash(hash_key(DEV_ADMIN_KEY), Principal::Admin);
    (operators, keys)
}

impl Settings {
    pub fn load(args: &NodeArgs) -> anyhow::Result<Settings> {
        let file: FileSettings = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => FileSettings::default(),
        };
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut gateway = GatewayConfig::default();
        if let Some(g) = &file.gateway {
            gateway.max_connections = g.max_connections.unwrap_or(gateway.max_connections);
            gateway.max_in_flight = g.max_in_flight.unwrap_or(gateway.max_in_flight);
            gateway.idle_timeout = g.idle_timeout_ms.map_or(gateway.idle_timeout, Duration::from_millis);
            gateway.hello_timeout = g.hello_timeout_ms.map_or(gateway.hello_timeout, Duration::from_millis);
            gateway.connection_rate =
                (g.connection_rate.unwrap_or(gateway.connection_rate.0), g.connection_burst.unwrap_or(gateway.connection_rate.1));
            gateway.operator_rate =
                (g.operator_rate.unwrap_or(gateway.operator_rate.0), g.operator_burst.unwrap_or(gateway.operator_rate.1));
        }
        if gateway.max_in_flight == 0 || gateway.max_in_flight > cluster::JOB_COMMANDS_MAX || gateway.max_connections == 0 {
            bail!("max_in_flight must be 1 to {} and max_connections positive", cluster::JOB_COMMANDS_MAX);
        }
        let (operators, keys, development_keys) = if file.operators.is_empty() {
            let (operators, keys) = development_operators();
            (operators, keys, true)
        } else {
            let mut keys = ApiKeys::default();
            let mut operators = Vec::new();
            for o in &file.operators {
                keys.insert_hash(
                    from_hex_32(&o.api_key_sha256).context("api_key_sha256 must be 64 hex digits")?,
                    Principal::Operator(OperatorId(o.id)),
                );
                operators.push(OperatorConfig {
                    operator: OperatorId(o.id),
                    sweepstakes: o.sweepstakes,
                    currencies: o.currencies.iter().map(|c| currency_spec(c)).collect::<anyhow::Result<_>>()?,
                    limit_increase_delay_ms: o.limit_increase_delay_ms.unwrap_or(LIMIT_INCREASE_DELAY_DEFAULT_MS),
                    redemption_min_minor: o.redemption_min_minor.unwrap_or(0),
                });
            }
            for admin in &file.admins {
                keys.insert_hash(from_hex_32(&admin.api_key_sha256).context("api_key_sha256 must be 64 hex digits")?, Principal::Admin);
            }
            (operators, keys, false)
        };
        let token_secret = match &file.token_secret {
            Some(hex) => from_hex_32(hex).context("token_secret must be 64 hex digits")?,
            None => {
                let mut secret = [0u8; 32];
                getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("no OS entropy: {e}"))?;
                secret
            }
        };
        let mut pam = gateway::pam::PamConfig { operator_rate: gateway.operator_rate, ..gateway::pam::PamConfig::default() };
        let pam_file = file.pam.as_ref();
        if let Some(p) = pam_file {
            let country = p.default_country.as_deref().unwrap_or(pam.default_locale.country()).to_string();
            let language = p.default_language.as_deref().unwrap_or(pam.default_locale.language()).to_string();
            pam.default_locale = engine::Locale::new(&country, &language)
                .map_err(|_| anyhow::anyhow!("[pam] default_country and default_language are two letters each"))?;
            pam.max_connections = p.max_connections.unwrap_or(pam.max_connections);
        }
        let pam_enabled = !args.no_pam && pam_file.and_then(|p| p.enabled).unwrap_or(true);
        let pam_listen = pam_enabled
            .then(|| args.pam_listen.or(pam_file.and_then(|p| p.listen)).unwrap_or_else(|| "127.0.0.1:7702".parse().expect("valid")));
        let storage =
            file.storage.unwrap_or(StorageSettings { data_dir: None, in_memory: None, durability: None, snapshot_every_commands: None });
        let in_memory = args.in_memory || (args.data_dir.is_none() && storage.in_memory.unwrap_or(false));
        let data_dir = (!in_memory).then(|| args.data_dir.clone().or(storage.data_dir).unwrap_or_else(|| PathBuf::from("data")));
        let durability = match (args.durability, &storage.durability) {
            (Some(durability), _) => durability,
            (None, Some(text)) => text.parse().map_err(|e: String| anyhow::anyhow!(e))?,
            (None, None) => persistence::Durability::default(),
        };
        let cluster = match (args.id, file.cluster) {
            (Some(id), _) => Some((id, args.peers.clone(), None, args.lagging_entries_kept)),
            (None, Some(c)) => Some((c.id, c.peers, c.tick_ms, args.lagging_entries_kept.or(c.lagging_entries_kept))),
            (None, None) => None,
        };
        let cluster = match cluster {
            None => None,
            Some((node, peers, tick_ms, lagging_entries_kept)) => {
                let peers = parse_peers(&peers)?;
                if !peers.iter().any(|(id, _)| *id == node) {
                    bail!("node {node} is not among the peers; list every member, this one included");
                }
                if data_dir.is_none() {
                    bail!("a cluster member keeps its raft log on disk: it cannot run --in-memory");
                }
                if file.token_secret.is_none() {
                    bail!("a cluster member needs token_secret in its settings file, the same on every member, so that a session token from one node is valid on all");
                }
                Some(cluster::ClusterConfig {
                    node,
                    peers,
                    tick: tick_ms.map_or(cluster::TICK_DEFAULT, Duration::from_millis),
                    secret: token_secret,
                    lagging: cluster::replica::Lagging {
                        entries: lagging_entries_kept.unwrap_or(cluster::replica::LAGGING_ENTRIES_KEPT),
                        ..cluster::replica::Lagging::default()
                    },
                })
            }
        };
        Ok(Settings {
            cluster,
            data_dir,
            durability,
            snapshot_every_commands: args.snapshot_every.or(storage.snapshot_every_commands).unwrap_or(SNAPSHOT_EVERY_COMMANDS_DEFAULT),
            listen: args.listen.or(file.listen).unwrap_or_else(|| "127.0.0.1:7700".parse().expect("valid")),
            metrics_listen: args.metrics_listen.or(file.metrics_listen).unwrap_or_else(|| "127.0.0.1:7701".parse().expect("valid")),
            pam_listen,
            pam,
            shards: args.shards.or(file.shards).unwrap_or(1).max(1),
            worker_threads: args.worker_threads.or(file.worker_threads).unwrap_or(cores).max(1),
            token_secret,
            gateway,
            tls: file.tls.map(|t| (t.cert, t.key)),
            operators,
            keys,
            development_keys,
        })
    }
}

pub fn run(args: NodeArgs) -> anyhow::Result<()> {
    let settings = Settings::load(&args)?;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    if args.exit_with_stdin {
        std::thread::Builder::new().name("stdin-watch".into()).spawn(|| {
            // Reads (and discards) until end of file or an error: either
            // means the process at the other end is gone.
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            tracing::warn!("standard input closed: stopping (--exit-with-stdin)");
            std::process::exit(0);
        })?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(settings.worker_threads).enable_all().build()?;
    runtime.block_on(serve(settings, None))
}

/// Starts a node and its gateway; `ready` learns the bound addresses
/// (tests bind port 0).
pub async fn serve(settings: Settings, ready: Option<tokio::sync::oneshot::Sender<(SocketAddr, SocketAddr)>>) -> anyhow::Result<()> {
    let storage = match &settings.data_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating the data folder {}", dir.display()))?;
            let store = persistence::RocksStore::open(&dir.join("db"), &persistence::RocksConfig::default())
                .with_context(|| format!("opening the data in {}", dir.display()))?;
            Some(cluster::Storage {
                store: Arc::new(store),
                group: persistence::GroupConfig { durability: settings.durability, ..persistence::GroupConfig::default() },
                snapshot_every_commands: settings.snapshot_every_commands,
            })
        }
        None => None,
    };
    let node_config =
        NodeConfig { shard_count: settings.shards, preallocate: true, storage, cluster: settings.cluster.clone(), ..NodeConfig::default() };
    let node = Arc::new(Node::start(node_config).context("recovering the node from its data")?);
    for recovery in node.recoveries() {
        tracing::info!(
            shard = recovery.shard,
            snapshot_index = recovery.snapshot_index,
            snapshot_bytes = recovery.snapshot_bytes,
            entries = recovery.entries,
            commands = recovery.commands,
            applied_index = recovery.applied_index,
            ms = recovery.elapsed.as_millis() as u64,
            "shard recovered"
        );
    }
    for operator in &settings.operators {
        node.configure_operator(operator.clone()).map_err(|r| anyhow::anyhow!("operator {:?} refused: {r:?}", operator.operator))?;
    }
    let tls = match &settings.tls {
        Some((cert, key)) => Some(gateway::tls::acceptor(cert, key)?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(settings.listen).await.with_context(|| format!("binding {}", settings.listen))?;
    let metrics_listener =
        tokio::net::TcpListener::bind(settings.metrics_listen).await.with_context(|| format!("binding {}", settings.metrics_listen))?;
    let (address, metrics_address) = (listener.local_addr()?, metrics_listener.local_addr()?);
    let gateway = Arc::new(Gateway::new(
        settings.gateway.clone(),
        node.clone(),
        settings.keys.clone(),
        TokenSigner::new(settings.token_secret),
        tls.clone(),
    ));
    tokio::spawn(gateway::metrics::serve_metrics(metrics_listener, gateway.metrics(), node.clone()));
    let pam_address = match settings.pam_listen {
        Some(pam_listen) => {
            let pam_listener =
                tokio::net::TcpListener::bind(pam_listen).await.with_context(|| format!("binding the PAM API on {pam_listen}"))?;
            let pam_address = pam_listener.local_addr()?;
            let server = Arc::new(gateway::pam::PamServer::new(
                settings.pam.clone(),
                node.clone(),
                settings.keys.clone(),
                settings.token_secret,
                &settings.operators,
                gateway.metrics(),
            ));
            tokio::spawn(async move {
                if let Err(error) = server.serve(pam_listener).await {
                    tracing::error!(%error, "the PAM API stopped accepting connections");
                }
            });
            Some(pam_address)
        }
        None => None,
    };
    tracing::info!(%address, %metrics_address, pam_address = ?pam_address, shards = settings.shards, tls = tls.is_some(), "casino node serving");
    println!(
        "casino node: binary protocol on {address}{}, metrics on http://{metrics_address}/metrics",
        if tls.is_some() { " (TLS)" } else { "" }
    );
    match pam_address {
        Some(pam_address) => println!("  PAM seamless-wallet API (docs/pam.md) on http://{pam_address}/players/..."),
        None => println!("  PAM seamless-wallet API: off"),
    }
    println!(
        "  shards: {}, operators: {}",
        settings.shards,
        settings.operators.iter().map(|o| o.operator.0.to_string()).collect::<Vec<_>>().join(", ")
    );
    if let Some(cluster) = &settings.cluster {
        let members: Vec<String> = cluster.peers.iter().map(|(id, address)| format!("{id}={address}")).collect();
        println!(
            "  cluster: node {} of {} (raft on {}), every shard replicated on all",
            cluster.node,
            members.join(", "),
            cluster.listen().map_or_else(String::new, |a| a.to_string())
        );
    }
    match &settings.data_dir {
        Some(dir) => {
            let recovered = node.recoveries();
            let commands: u64 = recovered.iter().map(|r| r.commands).sum();
            let slowest = recovered.iter().map(|r| r.elapsed).max().unwrap_or_default();
            println!(
                "  data: {} ({:?} durability); recovered {} wallets, replayed {commands} logged commands in {} ms",
                dir.display(),
                settings.durability,
                node.status().iter().map(|s| s.wallets).sum::<u64>(),
                slowest.as_millis()
            );
        }
        None => println!("  data: in memory only (--in-memory): nothing survives a restart"),
    }
    if settings.development_keys {
        println!("  development keys (no operators configured): operator 1 (EUR, USD) \"{DEV_OPERATOR_KEY}\", sweepstakes operator 2 (GC, SC) \"{DEV_SWEEPS_KEY}\", admin \"{DEV_ADMIN_KEY}\"");
    }
    println!("  try: casino load --address {address} --api-key {DEV_OPERATOR_KEY} --requests 100000");
    println!("  protocol: docs/protocol.md and gateway/proto/casino.proto");
    if let Some(ready) = ready {
        let _ = ready.send((address, metrics_address));
    }
    gateway.serve(listener).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_settings_parse_and_hold_their_keys() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/casino.example.toml");
        let args = args(Some(path.into()));
        let settings = Settings::load(&args).expect("the example parses");
        assert_eq!(settings.operators.len(), 2);
        assert!(!settings.development_keys);
        assert_eq!(settings.keys.authenticate("operator-one-key"), Some(Principal::Operator(OperatorId(1))));
        assert_eq!(settings.keys.authenticate("sweeps-two-key"), Some(Principal::Operator(OperatorId(2))));
        assert_eq!(settings.keys.authenticate("admin-key"), Some(Principal::Admin));
        assert_eq!(settings.keys.authenticate(DEV_OPERATOR_KEY), None);
        assert_eq!(settings.gateway.max_in_flight, 1_024);
        assert_eq!(settings.pam_listen, Some("127.0.0.1:7702".parse().expect("an address")));
        assert_eq!((settings.pam.default_locale.country(), settings.pam.default_locale.language()), ("MT", "EN"));
    }

    fn args(config: Option<PathBuf>) -> NodeArgs {
        NodeArgs {
            config,
            listen: None,
            metrics_listen: None,
            shards: None,
            worker_threads: None,
            data_dir: None,
            in_memory: false,
            durability: None,
            snapshot_every: None,
            lagging_entries_kept: None,
            pam_listen: None,
            no_pam: false,
            id: None,
            peers: Vec::new(),
            exit_with_stdin: false,
        }
    }

    #[test]
    fn cluster_settings_are_checked() {
        let dir = std::env::temp_dir().join(format!("casino-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("folder");
        let file = dir.join("cluster.toml");
        let load = |text: &str| {
            std::fs::write(&file, text).expect("written");
            Settings::load(&args(Some(file.clone())))
        };
        let secret = format!("token_secret = \"{}\"\n", "ab".repeat(32));
        let member = format!(
            "{secret}[cluster]\nid = 2\npeers = [\"1=127.0.0.1:7703\", \"2=127.0.0.1:7713\", \"3=127.0.0.1:7723\"]\ntick_ms = 50\n"
        );
        let settings = load(&member).expect("a member's settings");
        let cluster = settings.cluster.expect("a cluster member");
        assert_eq!((cluster.node, cluster.peers.len(), cluster.tick), (2, 3, Duration::from_millis(50)));
        assert_eq!(cluster.listen(), Some("127.0.0.1:7713".parse().expect("an address")));
        let refused = |text: &str, why: &str| {
            let error = load(text).err().unwrap_or_else(|| panic!("accepted: {text}")).to_string();
            assert!(error.contains(why), "{error}");
        };
        refused(&format!("{secret}[cluster]\nid = 4\npeers = [\"1=127.0.0.1:7703\"]\n"), "not among the peers");
        refused(&format!("{secret}[cluster]\nid = 1\npeers = [\"1=127.0.0.1:7703\", \"1=127.0.0.1:7713\"]\n"), "listed twice");
        refused(&format!("{secret}[cluster]\nid = 1\npeers = [\"1:127.0.0.1:7703\"]\n"), "ID=HOST:PORT");
        refused("[cluster]\nid = 1\npeers = [\"1=127.0.0.1:7703\"]\n", "token_secret");
        refused(&format!("{secret}[storage]\nin_memory = true\n[cluster]\nid = 1\npeers = [\"1=127.0.0.1:7703\"]\n"), "in-memory");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
