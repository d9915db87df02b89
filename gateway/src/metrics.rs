//! Metrics in Prometheus's text format: requests and latency histograms per
//! operation, engine rejections by code, gateway errors by code,
//! connections, and per shard the queue depth, applied index and wallets.
//! Counters are atomics; `render` reads them without stopping anything.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cluster::{Histogram, Node};
use engine::{Outcome, Rejection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::error::ErrorCode;
use crate::proto::client_frame::Body as In;

/// Operations, for per-operation counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op(u8);

const OP_NAMES: [&str; 29] = [
    "hello",
    "ping",
    "create_wallet",
    "set_blocked",
    "deposit",
    "withdraw",
    "open_session",
    "close_session",
    "bet",
    "win",
    "rollback",
    "close_round",
    "get_balance",
    "set_limit",
    "set_session_time_limit",
    "self_exclude",
    "cool_off",
    "grant_bonus",
    "forfeit_bonus",
    "grant_sweeps",
    "request_redemption",
    "approve_redemption",
    "reject_redemption",
    "play",
    "rotate_seeds",
    "cluster_status",
    "take_snapshot",
    "check_invariants",
    "unknown",
];

impl Op {
    pub fn of(body: &In) -> Op {
        Op(match body {
            In::Hello(_) => 0,
            In::Ping(_) => 1,
            In::CreateWallet(_) => 2,
            In::SetBlocked(_) => 3,
            In::Deposit(_) => 4,
            In::Withdraw(_) => 5,
            In::OpenSession(_) => 6,
            In::CloseSession(_) => 7,
            In::Bet(_) => 8,
            In::Win(_) => 9,
            In::Rollback(_) => 10,
            In::CloseRound(_) => 11,
            In::GetBalance(_) => 12,
            In::SetLimit(_) => 13,
            In::SetSessionTimeLimit(_) => 14,
            In::SelfExclude(_) => 15,
            In::CoolOff(_) => 16,
            In::GrantBonus(_) => 17,
            In::ForfeitBonus(_) => 18,
            In::GrantSweeps(_) => 19,
            In::RequestRedemption(_) => 20,
            In::ApproveRedemption(_) => 21,
            In::RejectRedemption(_) => 22,
            In::Play(_) => 23,
            In::RotateSeeds(_) => 24,
            In::ClusterStatus(_) => 25,
            In::TakeSnapshot(_) => 26,
            In::CheckInvariants(_) => 27,
        })
    }

    /// A frame whose body is missing or unknown to this server.
    pub const UNKNOWN: Op = Op(28);

    pub fn name(self) -> &'static str {
        OP_NAMES[usize::from(self.0)]
    }
}

/// The PAM API's operations (`pam::operation_name`).
const PAM_OPS: [&str; 8] =
    ["getSession", "refreshSession", "getBalance", "getTransactions", "addTransaction", "getGameRound", "admin", "other"];

/// The PAM API's error codes (the spec's `ErrorCode` enum).
pub const PAM_ERROR_CODES: [&str; 22] = [
    "PAM_ERR_UNDEFINED",
    "PAM_ERR_ACC_NOT_FOUND",
    "PAM_ERR_GAME_NOT_FOUND",
    "PAM_ERR_ROUND_NOT_FOUND",
    "PAM_ERR_TRANS_NOT_FOUND",
    "PAM_ERR_CASH_OVERDRAFT",
    "PAM_ERR_BONUS_OVERDRAFT",
    "PAM_ERR_SESSION_NOT_FOUND",
    "PAM_ERR_SESSION_EXPIRED",
    "PAM_ERR_MISSING_PROVIDER",
    "PAM_ERR_TRANS_CURRENCY",
    "PAM_ERR_NEGATIVE_STAKE",
    "PAM_ERR_CANCEL_NOT_FOUND",
    "PAM_ERR_TRANS_ALREADY_CANCELLED",
    "PAM_ERR_CANCEL_NON_WITHDRAW",
    "PAM_ERR_BET_NOT_ALLOWED",
    "PAM_ERR_PLAYER_NOT_FOUND",
    "PAM_ERR_API_TOKEN",
    "PAM_ERR_TRANS_ALREADY_SETTLED",
    "PAM_ERR_DUPLICATE_TRANS",
    "PAM_ERR_PROMO_OVERDRAFT",
    "PAM_ERR_TIMEOUT",
];

#[derive(Debug)]
pub struct Metrics {
    pam_requests: [AtomicU64; PAM_OPS.len()],
    pam_latency: [Histogram; PAM_OPS.len()],
    pam_errors: [AtomicU64; PAM_ERROR_CODES.len()],
    requests: [AtomicU64; OP_NAMES.len()],
    latency: [Histogram; OP_NAMES.len()],
    rejections: Vec<(Rejection, AtomicU64)>,
    errors: Vec<(ErrorCode, AtomicU64)>,
    connections_open: AtomicI64,
    connections_total: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            pam_requests: Default::default(),
            pam_latency: Default::default(),
            pam_errors: Default::default(),
            requests: Default::default(),
            latency: Default::default(),
            rejections: Rejection::ALL.iter().map(|r| (*r, AtomicU64::new(0))).collect(),
            errors: ErrorCode::ALL.iter().map(|e| (*e, AtomicU64::new(0))).collect(),
            connections_open: AtomicI64::new(0),
            connections_total: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    pub fn request(&self, op: Op) {
        self.requests[usize::from(op.0)].fetch_add(1, Ordering::Relaxed);
    }

    /// A shard's answer: its latency from submission, and its rejection if any.
    pub fn observe(&self, op: Op, elapsed: Duration, outcome: &Outcome) {
        self.latency[usize::from(op.0)].observe(elapsed);
        if let Err(rejection) = outcome {
            if let Some((_, count)) = self.rejections.iter().find(|(r, _)| r == rejection) {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A rejection decided before the shard (the gateway's half of validation).
    pub fn rejection(&self, rejection: Rejection) {
        if let Some((_, count)) = self.rejections.iter().find(|(r, _)| *r == rejection) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn gateway_error(&self, code: ErrorCode) {
        if let Some((_, count)) = self.errors.iter().find(|(c, _)| *c == code) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A PAM API request answered: its operation, latency and error code.
    pub fn pam_request(&self, op: &str, code: Option<&str>, elapsed: Duration) {
        let at = PAM_OPS.iter().position(|o| *o == op).unwrap_or(PAM_OPS.len() - 1);
        self.pam_requests[at].fetch_add(1, Ordering::Relaxed);
        self.pam_latency[at].observe(elapsed);
        if let Some(at) = code.and_then(|code| PAM_ERROR_CODES.iter().position(|c| *c == code)) {
            self.pam_errors[at].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self, node: &Node) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP casino_requests_total Requests received, by operation.\n# TYPE casino_requests_total counter");
        for (at, name) in OP_NAMES.iter().enumerate() {
            let _ = writeln!(out, "casino_requests_total{{op=\"{name}\"}} {}", self.requests[at].load(Ordering::Relaxed));
        }
        let bets = self.requests[8].load(Ordering::Relaxed) + self.requests[23].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP casino_bets_total Bets and played rounds received.\n# TYPE casino_bets_total counter\ncasino_bets_total {bets}"
        );
        histograms(
            &mut out,
            "casino_request_duration_seconds",
            "Time from the socket read that brought a request until its answer is encoded, by operation.",
            labelled("op", &OP_NAMES, &self.latency),
        );
        let _ = writeln!(
            out,
            "# HELP casino_pam_requests_total PAM API requests answered, by operation.\n# TYPE casino_pam_requests_total counter"
        );
        for (at, name) in PAM_OPS.iter().enumerate() {
            let _ = writeln!(out, "casino_pam_requests_total{{op=\"{name}\"}} {}", self.pam_requests[at].load(Ordering::Relaxed));
        }
        histograms(
            &mut out,
            "casino_pam_request_duration_seconds",
            "PAM API request time in the server, by operation.",
            labelled("op", &PAM_OPS, &self.pam_latency),
        );
        let _ = writeln!(out, "# HELP casino_pam_errors_total PAM API error answers, by code.\n# TYPE casino_pam_errors_total counter");
        for (at, code) in PAM_ERROR_CODES.iter().enumerate() {
            let _ = writeln!(out, "casino_pam_errors_total{{code=\"{code}\"}} {}", self.pam_errors[at].load(Ordering::Relaxed));
        }
        let _ = writeln!(out, "# HELP casino_rejections_total Engine rejections, by code.\n# TYPE casino_rejections_total counter");
        for (rejection, count) in &self.rejections {
            let _ = writeln!(
                out,
                "casino_rejections_total{{code=\"{}\",name=\"{rejection:?}\"}} {}",
                rejection.code(),
                count.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(out, "# HELP casino_gateway_errors_total Gateway errors, by code.\n# TYPE casino_gateway_errors_total counter");
        for (code, count) in &self.errors {
            let _ = writeln!(
                out,
                "casino_gateway_errors_total{{code=\"{}\",name=\"{code:?}\"}} {}",
                code.code(),
                count.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP casino_connections Open connections.\n# TYPE casino_connections gauge\ncasino_connections {}",
            self.connections_open.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP casino_connections_total Connections accepted.\n# TYPE casino_connections_total counter\ncasino_connections_total {}",
            self.connections_total.load(Ordering::Relaxed)
        );
        let status = node.status();
        type Field = fn(&cluster::ShardStatus) -> u64;
        let mut families: Vec<(&str, &str, &str, Field)> = vec![
            ("casino_shard_queue_depth", "gauge", "Jobs waiting in a shard's queue.", |s| s.queue_depth as u64),
            ("casino_shard_applied_index", "gauge", "A shard's last applied batch.", |s| s.applied_index),
            ("casino_shard_commands_total", "counter", "Commands a shard applied.", |s| s.commands),
            ("casino_shard_wallets", "gauge", "Wallets a shard holds.", |s| s.wallets),
            ("casino_shard_snapshot_index", "gauge", "Index of a shard's latest snapshot.", |s| s.snapshot_index),
        ];
        if node.is_replicated() {
            families.push((
                "casino_shard_leader",
                "gauge",
                "The node leading a shard's raft group, as this node knows it (0: none).",
                |s| s.leader,
            ));
            families.push(("casino_shard_term", "gauge", "A shard's raft term.", |s| s.term));
            let _ = writeln!(
                out,
                "# HELP casino_shard_map_version The replicated shard map's version this node routes by.\n# TYPE casino_shard_map_version gauge\ncasino_shard_map_version {}",
                node.map_version()
            );
        }
        for (name, kind, help, field) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for shard in &status {
                let _ = writeln!(out, "{name}{{shard=\"{}\"}} {}", shard.shard_id, field(shard));
            }
        }
        if let Some(raft) = node.raft_stats() {
            histograms(
                &mut out,
                "casino_raft_write_duration_seconds",
                "The raft loop's store writes: a Ready's new entries and hard state (synced), and what needs no sync.",
                vec![("sync=\"true\"".into(), &raft.synced_write), ("sync=\"false\"".into(), &raft.unsynced_write)],
            );
            histograms(
                &mut out,
                "casino_raft_loop_turn_duration_seconds",
                "One turn of the raft loop: proposing, every group's Ready, sending.",
                vec![(String::new(), &raft.turn)],
            );
            histograms(
                &mut out,
                "casino_raft_commit_duration_seconds",
                "A proposal from the loop's first proposing it until this node answers it, applied, on the node that took it from a client.",
                vec![(String::new(), &raft.commit)],
            );
        }
        if let Some(commit) = node.commit_stats() {
            let counters = [
                ("casino_group_commits_total", "Group commits written (one write batch each).", &commit.groups),
                ("casino_fsyncs_total", "fsyncs of the store (one per group commit with sync durability).", &commit.syncs),
                ("casino_commit_submissions_total", "Shard batches made durable.", &commit.submissions),
                ("casino_commit_bytes_total", "Bytes written by group commits.", &commit.bytes),
                ("casino_commit_write_micros_total", "Time spent writing and syncing group commits, microseconds.", &commit.write_micros),
            ];
            for (name, help, value) in counters {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", value.load(Ordering::Relaxed));
            }
        }
        out
    }
}

/// A histogram series per name, labelled `label="name"`.
fn labelled<'a>(label: &'a str, names: &'a [&'a str], histograms: &'a [Histogram]) -> Vec<(String, &'a Histogram)> {
    names.iter().zip(histograms).map(|(name, histogram)| (format!("{label}=\"{name}\""), histogram)).collect()
}

/// One histogram family in the exposition format: a series per set of
/// labels (empty: none) that has observations.
fn histograms(out: &mut String, metric: &str, help: &str, series: Vec<(String, &Histogram)>) {
    let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} histogram");
    for (labels, histogram) in series {
        let count = histogram.count();
        if count == 0 {
            continue;
        }
        let (braced, prefix) =
            if labels.is_empty() { (String::new(), String::new()) } else { (format!("{{{labels}}}"), format!("{labels},")) };
        for (bound, cumulative) in histogram.cumulative() {
            let _ = writeln!(out, "{metric}_bucket{{{prefix}le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{metric}_bucket{{{prefix}le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{metric}_sum{braced} {}", histogram.sum_seconds());
        let _ = writeln!(out, "{metric}_count{braced} {count}");
    }
}

/// Serves `GET /metrics` (any path, in fact) over plain HTTP/1.1.
pub async fn serve_metrics(listener: TcpListener, metrics: Arc<Metrics>, node: Arc<Node>) -> std::io::Result<()> {
    loop {
        let (mut stream, _) = crate::net::accept(&listener).await;
        let (metrics, node) = (metrics.clone(), node.clone());
        tokio::spawn(async move {
            let mut request = [0u8; 1024];
            // One read is enough for a scrape's request line; the body is ignored.
            let _ = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut request)).await;
            let body = metrics.render(&node);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
