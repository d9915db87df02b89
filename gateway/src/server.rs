//! The TCP server. One task reads a connection's frames and submits
//! commands to the shards; one task writes its replies, in whatever order
//! the shards answer, matched by request id.
//!
//! Protection, all bounded:
//! - at most `max_connections` connections (one over the cap gets
//!   `TooManyConnections` and is closed);
//! - at most `max_in_flight` frames in flight per connection, counted from
//!   their read until the writer takes their reply into its next write,
//!   whoever answers them (a shard or the gateway itself: `Pong`,
//!   `RateLimited`, `MalformedFrame`...): at the cap the reader stops
//!   reading until replies go out (TCP backpressure), so the reply channel
//!   never holds more than `max_in_flight` replies beside one closing frame
//!   and the writer's bookkeeping, and the writer at most one write batch;
//! - a client that does not read its replies for `idle_timeout` (the
//!   writer's socket stays full) is disconnected;
//! - token buckets per connection and per operator (`RateLimited`);
//! - a full shard queue answers `Overloaded` at once;
//! - a Hello must come within `hello_timeout`, and a connection idle for
//!   `idle_timeout` is closed (`IdleTimeout`);
//! - frames over `MAX_FRAME_BYTES` close the connection (`FrameTooLarge`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use cluster::{Node, ReplySink};
use engine::{Command, OperatorId, Outcome, PlayerId};
use prost::Message;
use rustc_hash::FxHashMap;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Notify, Semaphore};

use crate::auth::{ApiKeys, Principal, TokenSigner};
use crate::error::ErrorCode;
use crate::frame::{encode_frame, split_frame, FrameError, MAX_FRAME_BYTES};
use crate::metrics::{Metrics, Op};
use crate::proto::{self, client_frame::Body as In, server_frame::Body as Out, ClientFrame, ServerFrame};
use crate::rate::{SharedBucket, TokenBucket};
use crate::translate::{self, Routed};

pub use casino_client::PROTOCOL_VERSION;

#[derive(Clone, Debug)]
pub struct GatewayConfig {
    pub max_connections: usize,
    pub max_in_flight: usize,
    pub hello_timeout: Duration,
    pub idle_timeout: Duration,
    /// Requests per second and burst, per connection.
    pub connection_rate: (u32, u32),
    /// Requests per second and burst, per operator across its connections.
    pub operator_rate: (u32, u32),
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            max_connections: 10_000,
            max_in_flight: 1_024,
            hello_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            connection_rate: (1_000_000, 1_000_000),
            operator_rate: (2_000_000, 2_000_000),
        }
    }
}

/// What the gateway serves with.
pub struct Gateway {
    config: GatewayConfig,
    node: Arc<Node>,
    keys: ApiKeys,
    signer: TokenSigner,
    metrics: Arc<Metrics>,
    /// Built at start from the keys' operators and never changed: read
    /// without a lock; each bucket is one atomic word.
    operator_buckets: HashMap<OperatorId, SharedBucket>,
    connections: AtomicUsize,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("config", &self.config).field("tls", &self.tls.is_some()).finish()
    }
}

/// When a socket read returned: one clock read serves every request it
/// brought (rate buckets, token expiry, latency metrics).
struct ReadTime {
    instant: Instant,
    wall_ms: u64,
}

impl ReadTime {
    fn now() -> ReadTime {
        ReadTime { instant: Instant::now(), wall_ms: now_ms() }
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// What the writer task is told.
enum Outbound {
    /// A reply the gateway made itself to a frame it read; it holds that
    /// frame's in-flight permit, returned when the writer takes it.
    Frame(u64, Out),
    /// The error a connection is closed with (request id 0), made for no
    /// frame: it holds no permit.
    Last(Out),
    /// Requests going to a shard, one message for all that a read brought
    /// in: remember when, what, and for OpenSession whose session it is.
    Pending(Vec<(u64, PendingRequest)>),
    /// A shard's answer.
    Outcome(u64, Outcome),
    /// A shard's answers to several requests, in order.
    Outcomes(Vec<(u64, Outcome)>),
    /// A pending request was not taken after all (the shard was
    /// overloaded), or not confirmed in time (a replicated shard).
    Refused(u64, Out),
    /// Write what is queued, then close.
    Close,
}

/// What a connection's reads have queued and not yet flushed: the writer's
/// records of its requests and their commands per shard. A flush (once per
/// read, and before waiting at the in-flight cap) sends the records first,
/// in one message, so that the writer knows every request before its shard
/// can answer it.
struct Queued {
    pending: Vec<(u64, PendingRequest)>,
    batches: Vec<Vec<(u64, Command)>>,
}

struct ConnectionSink(mpsc::UnboundedSender<Outbound>);

impl ReplySink for ConnectionSink {
    fn deliver(&self, request_id: u64, outcome: Outcome) {
        // If the connection is gone its replies have nowhere to go; the
        // command was applied all the same, and a retry with the same ids
        // gets the stored result.
        let _ = self.0.send(Outbound::Outcome(request_id, outcome));
    }

    fn deliver_all(&self, outcomes: Vec<(u64, Outcome)>) {
        let _ = self.0.send(Outbound::Outcomes(outcomes));
    }

    fn unavailable(&self, request_id: u64) {
        let refusal = translate::error(ErrorCode::Unavailable, "the shard's replicas did not confirm in time; retry with the same ids");
        let _ = self.0.send(Outbound::Refused(request_id, refusal));
    }
}

impl Gateway {
    pub fn new(
        config: GatewayConfig,
        node: Arc<Node>,
        keys: ApiKeys,
        signer: TokenSigner,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Gateway {
        let operator_buckets =
            keys.operators().map(|operator| (operator, SharedBucket::new(config.operator_rate.0, config.operator_rate.1))).collect();
        Gateway {
            config,
            node,
            keys,
            signer,
            metrics: Arc::new(Metrics::default()),
            operator_buckets,
            connections: AtomicUsize::new(0),
            tls,
        }
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Accepts connections until the listener fails.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) -> std::io::Result<()> {
        loop {
            let (stream, peer) = crate::net::accept(&listener).await;
            let _ = stream.set_nodelay(true);
            let gateway = self.clone();
            tokio::spawn(async move {
                match gateway.tls.clone() {
                    // A handshake counts as a connection and has the Hello's deadline.
                    Some(acceptor) => {
                        gateway.connections.fetch_add(1, Ordering::SeqCst);
                        let handshake = tokio::time::timeout(gateway.config.hello_timeout, acceptor.accept(stream)).await;
                        gateway.connections.fetch_sub(1, Ordering::SeqCst);
                        match handshake {
                            Ok(Ok(tls)) => gateway.connection(tls, peer).await,
                            Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        }
                    }
                    None => gateway.connection(stream, peer).await,
                }
            });
        }
    }

    async fn connection<S: AsyncRead + AsyncWrite + Send + Unpin + 'static>(self: Arc<Self>, stream: S, peer: SocketAddr) {
        let (mut reader, writer) = tokio::io::split(stream);
        let (sender, receiver) = mpsc::unbounded_channel();
        let in_flight = Arc::new(Semaphore::new(self.config.max_in_flight));
        let writer_gone = Arc::new(Notify::new());
        let writer_task = tokio::spawn(write_loop(
            writer,
            receiver,
            self.signer.clone(),
            self.metrics.clone(),
            Permits { in_flight: in_flight.clone(), max: self.config.max_in_flight },
            self.config.idle_timeout,
            writer_gone.clone(),
        ));
        let count = self.connections.fetch_add(1, Ordering::SeqCst) + 1;
        self.metrics.connection_opened();
        if count > self.config.max_connections {
            self.metrics.gateway_error(ErrorCode::TooManyConnections);
            let _ = sender.send(Outbound::Last(translate::error(ErrorCode::TooManyConnections, "the server has too many connections")));
            let _ = sender.send(Outbound::Close);
        } else {
            tracing::debug!(%peer, "connection opened");
            self.read_loop(&mut reader, &sender, &in_flight, &writer_gone).await;
        }
        let _ = sender.send(Outbound::Close);
        drop(sender);
        let _ = writer_task.await;
        self.connections.fetch_sub(1, Ordering::SeqCst);
        self.metrics.connection_closed();
        tracing::debug!(%peer, "connection closed");
    }

    async fn read_loop<R: AsyncRead + Unpin>(
        &self,
        reader: &mut R,
        out: &mpsc::UnboundedSender<Outbound>,
        in_flight: &Arc<Semaphore>,
        writer_gone: &Notify,
    ) {
        let sink: Arc<dyn ReplySink> = Arc::new(ConnectionSink(out.clone()));
        let mut buffer = BytesMut::with_capacity(16 * 1024);
        // Requests read but not yet flushed: per read, one message to the
        // writer and one job per shard.
        let mut queued = Queued { pending: Vec::new(), batches: (0..self.node.shard_count()).map(|_| Vec::new()).collect() };
        let mut principal: Option<Principal> = None;
        let mut read_at = ReadTime::now();
        let mut bucket = TokenBucket::new(self.config.connection_rate.0, self.config.connection_rate.1);
        // The Hello's deadline runs from the connection's start, whatever
        // arrives before it.
        let hello_deadline = Instant::now() + self.config.hello_timeout;
        loop {
            loop {
                let frame = match split_frame(&mut buffer) {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(error) => {
                        let code = match error {
                            FrameError::TooLarge(_) => ErrorCode::FrameTooLarge,
                            FrameError::Empty => ErrorCode::EmptyFrame,
                        };
                        self.metrics.gateway_error(code);
                        let _ = out.send(Outbound::Last(translate::error(code, error.to_string())));
                        return;
                    }
                };
                // Every frame read holds a permit until the writer takes its reply.
                if !self.take_permit(in_flight, &mut queued, out, &sink).await {
                    return;
                }
                let Ok(frame) = ClientFrame::decode(frame) else {
                    self.metrics.gateway_error(ErrorCode::MalformedFrame);
                    let _ = out.send(Outbound::Frame(0, translate::error(ErrorCode::MalformedFrame, "not a ClientFrame")));
                    continue;
                };
                let request_id = frame.request_id;
                let Some(body) = frame.body else {
                    self.metrics.request(Op::UNKNOWN);
                    self.metrics.gateway_error(ErrorCode::UnknownMessage);
                    let _ = out.send(Outbound::Frame(request_id, translate::error(ErrorCode::UnknownMessage, "empty or unknown message")));
                    continue;
                };
                let keep_open = match principal {
                    None => self.hello(request_id, body, &mut principal, out),
                    Some(who) => self.request(request_id, body, who, &mut bucket, &read_at, out, &mut queued),
                };
                if !keep_open {
                    self.flush(&mut queued, out, &sink);
                    return;
                }
            }
            self.flush(&mut queued, out, &sink);
            let timeout = match principal {
                Some(_) => self.config.idle_timeout,
                None => hello_deadline.saturating_duration_since(Instant::now()),
            };
            let read = tokio::select! {
                read = tokio::time::timeout(timeout, reader.read_buf(&mut buffer)) => read,
                // The writer gave up on a client that reads nothing: close.
                () = writer_gone.notified() => return,
            };
            match read {
                // A connection waiting for its replies is not idle; one
                // past its Hello's deadline is closed all the same.
                Err(_) if principal.is_some() && in_flight.available_permits() < self.config.max_in_flight => {}
                Err(_) => {
                    self.metrics.gateway_error(ErrorCode::IdleTimeout);
                    let _ = out.send(Outbound::Last(translate::error(ErrorCode::IdleTimeout, "idle for too long")));
                    return;
                }
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(_)) => read_at = ReadTime::now(),
            }
        }
    }

    /// Takes an in-flight permit for the frame just read. At the cap,
    /// submits what is queued and waits for the writer to take a reply: the
    /// socket is not read meanwhile. False once the writer has gone (the
    /// connection is over).
    async fn take_permit(
        &self,
        in_flight: &Arc<Semaphore>,
        queued: &mut Queued,
        out: &mpsc::UnboundedSender<Outbound>,
        sink: &Arc<dyn ReplySink>,
    ) -> bool {
        match in_flight.try_acquire() {
            Ok(permit) => permit.forget(),
            Err(tokio::sync::TryAcquireError::Closed) => return false,
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                self.flush(queued, out, sink);
                let Ok(permit) = in_flight.acquire().await else { return false };
                permit.forget();
            }
        }
        true
    }

    /// The first frame. Returns false to close the connection.
    fn hello(&self, request_id: u64, body: In, principal: &mut Option<Principal>, out: &mpsc::UnboundedSender<Outbound>) -> bool {
        self.metrics.request(Op::of(&body));
        let reply = |code, message: &str| {
            self.metrics.gateway_error(code);
            let _ = out.send(Outbound::Frame(request_id, translate::error(code, message)));
        };
        let In::Hello(hello) = body else {
            reply(ErrorCode::NotAuthenticated, "the first frame must be a Hello");
            return true;
        };
        if hello.protocol_version != PROTOCOL_VERSION {
            reply(ErrorCode::UnsupportedVersion, "this server speaks protocol version 1");
            return false;
        }
        let Some(who) = self.keys.authenticate(&hello.api_key) else {
            reply(ErrorCode::BadCredentials, "unknown API key");
            return false;
        };
        *principal = Some(who);
        let (role, operator_id) = match who {
            Principal::Operator(operator) => ("operator", operator.0),
            Principal::Admin => ("admin", 0),
        };
        let ok = proto::HelloOk {
            protocol_version: PROTOCOL_VERSION,
            role: role.into(),
            operator_id,
            max_frame_bytes: MAX_FRAME_BYTES as u32,
            max_in_flight: self.config.max_in_flight as u32,
        };
        let _ = out.send(Outbound::Frame(request_id, Out::HelloOk(ok)));
        true
    }

    /// A request after the Hello, its permit taken. Returns false to close
    /// the connection.
    #[allow(clippy::too_many_arguments)]
    fn request(
        &self,
        request_id: u64,
        body: In,
        who: Principal,
        bucket: &mut TokenBucket,
        read_at: &ReadTime,
        out: &mpsc::UnboundedSender<Outbound>,
        queued: &mut Queued,
    ) -> bool {
        let op = Op::of(&body);
        self.metrics.request(op);
        let reply = |out_body: Out| {
            let _ = out.send(Outbound::Frame(request_id, out_body));
        };
        let rate_limited = || {
            self.metrics.gateway_error(ErrorCode::RateLimited);
            reply(translate::error(ErrorCode::RateLimited, "rate limit exceeded"));
        };
        let now = read_at.instant;
        // The connection's own bucket first, whatever its role: a
        // connection over its limit spends none of its operator's budget.
        if !bucket.try_take(now) {
            rate_limited();
            return true;
        }
        let operator = match who {
            Principal::Admin => {
                match body {
                    In::Hello(_) => {
                        self.metrics.gateway_error(ErrorCode::NotAuthenticated);
                        reply(translate::error(ErrorCode::NotAuthenticated, "already authenticated"));
                    }
                    In::Ping(_) => reply(Out::Pong(proto::Pong {})),
                    In::ClusterStatus(_) => reply(Out::ClusterStatus(self.cluster_status())),
                    In::CheckInvariants(_) => {
                        let (node, out) = (self.node.clone(), out.clone());
                        tokio::task::spawn_blocking(move || {
                            let shards = node
                                .check_invariants()
                                .into_iter()
                                .enumerate()
                                .map(|(shard, checked)| proto::ShardInvariants {
                                    shard_id: shard as u32,
                                    hold: checked.is_ok(),
                                    failure: checked.err().unwrap_or_default(),
                                })
                                .collect();
                            let _ = out.send(Outbound::Frame(request_id, Out::InvariantsChecked(proto::InvariantsChecked { shards })));
                        });
                    }
                    In::TakeSnapshot(_) => {
                        // Shards write their snapshots on their own threads; this
                        // connection waits without holding a runtime thread.
                        let (node, metrics) = (self.node.clone(), self.metrics.clone());
                        let out = out.clone();
                        tokio::task::spawn_blocking(move || {
                            let body = match node.snapshot() {
                                Ok(reports) => Out::SnapshotTaken(proto::SnapshotTaken {
                                    shards: reports
                                        .into_iter()
                                        .map(|r| proto::ShardSnapshot {
                                            shard_id: r.shard,
                                            index: r.index,
                                            bytes: r.bytes,
                                            micros: r.elapsed.as_micros() as u64,
                                            pause_micros: r.pause.as_micros() as u64,
                                        })
                                        .collect(),
                                }),
                                Err(why) => {
                                    metrics.gateway_error(ErrorCode::Unavailable);
                                    translate::error(ErrorCode::Unavailable, why)
                                }
                            };
                            let _ = out.send(Outbound::Frame(request_id, body));
                        });
                    }
                    _ => {
                        self.metrics.gateway_error(ErrorCode::Forbidden);
                        reply(translate::error(ErrorCode::Forbidden, "admin connections make cluster requests only"));
                    }
                }
                return true;
            }
            Principal::Operator(operator) => operator,
        };
        if !self.operator_buckets.get(&operator).is_none_or(|shared| shared.try_take(now)) {
            rate_limited();
            return true;
        }
        let (command, opens_session) = match translate::to_command(body, operator, &self.signer, read_at.wall_ms) {
            Ok(Routed::Local(local)) => {
                reply(local);
                return true;
            }
            Ok(Routed::Player { command, opens_session }) => (command, opens_session),
            Err(refusal) => {
                match &refusal {
                    translate::Refusal::Gateway(code, _) => self.metrics.gateway_error(*code),
                    translate::Refusal::Engine(rejection) => self.metrics.rejection(*rejection),
                }
                reply(translate::refusal(refusal));
                return true;
            }
        };
        let player = command.player().expect("player commands name a player");
        let session_for = opens_session.then_some((operator, player));
        queued.pending.push((request_id, PendingRequest { started: read_at.instant, op, session_for }));
        queued.batches[self.node.shard_of(player) as usize].push((request_id, command));
        true
    }

    /// Tells the writer of the queued requests, then submits their
    /// commands, one job per shard.
    fn flush(&self, queued: &mut Queued, out: &mpsc::UnboundedSender<Outbound>, sink: &Arc<dyn ReplySink>) {
        if !queued.pending.is_empty() {
            // The next read likely brings as many: start the next list at
            // this one's size rather than growing it from empty again.
            let capacity = queued.pending.len();
            let _ = out.send(Outbound::Pending(std::mem::replace(&mut queued.pending, Vec::with_capacity(capacity))));
        }
        for (shard, batch) in queued.batches.iter_mut().enumerate() {
            if batch.is_empty() {
                continue;
            }
            let entries = std::mem::take(batch);
            if let Err((overloaded, entries)) = self.node.submit_batch(shard as u32, entries, sink.clone()) {
                for (request_id, _) in entries {
                    let _ = out.send(Outbound::Refused(request_id, translate::error(ErrorCode::Overloaded, overloaded.to_string())));
                }
            }
        }
    }

    fn cluster_status(&self) -> proto::ClusterStatusReply {
        let shards = self
            .node
            .status()
            .into_iter()
            .map(|s| proto::ShardStatus {
                shard_id: s.shard_id,
                applied_index: s.applied_index,
                wallets: s.wallets,
                queue_depth: s.queue_depth as u32,
                snapshot_index: s.snapshot_index,
                leader: s.leader,
                term: s.term,
                map_leader: s.map_leader,
                map_term: s.map_term,
            })
            .collect();
        proto::ClusterStatusReply {
            shard_count: self.node.shard_count(),
            slot_count: u32::from(cluster::SLOT_COUNT),
            shards,
            node_id: self.node.node_id(),
            map_version: self.node.map_version(),
        }
    }
}

struct PendingRequest {
    started: Instant,
    op: Op,
    session_for: Option<(OperatorId, PlayerId)>,
}

/// The frame answering a request with its shard's outcome.
fn answer(
    pending: &mut FxHashMap<u64, PendingRequest>,
    in_flight: &Semaphore,
    metrics: &Metrics,
    signer: &TokenSigner,
    request_id: u64,
    outcome: Outcome,
) -> ServerFrame {
    in_flight.add_permits(1);
    let request = pending.remove(&request_id);
    if let Some(request) = &request {
        metrics.observe(request.op, request.started.elapsed(), &outcome);
    }
    let body = translate::to_reply(outcome, request.and_then(|r| r.session_for), signer);
    ServerFrame { request_id, body: Some(body) }
}

/// A connection's in-flight permits and their number.
struct Permits {
    in_flight: Arc<Semaphore>,
    max: usize,
}

/// Writes replies as they come, batching whatever is queued into one write.
/// A write that cannot go out within `stall` (the client reads nothing)
/// ends the connection. When it returns, `in_flight` is closed and
/// `gone` notified, so the reader stops too, waiting for a permit or for
/// bytes.
async fn write_loop<W: AsyncWrite + Unpin>(
    writer: W,
    receiver: mpsc::UnboundedReceiver<Outbound>,
    signer: TokenSigner,
    metrics: Arc<Metrics>,
    permits: Permits,
    stall: Duration,
    gone: Arc<Notify>,
) {
    write_replies(writer, receiver, signer, &metrics, &permits, stall).await;
    permits.in_flight.close();
    gone.notify_one();
}

async fn write_replies<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut receiver: mpsc::UnboundedReceiver<Outbound>,
    signer: TokenSigner,
    metrics: &Metrics,
    permits: &Permits,
    stall: Duration,
) {
    let in_flight = &*permits.in_flight;
    // Keyed by the client's request ids with Fx, not SipHash: a client
    // that chose colliding ids would slow only lookups among its own
    // requests in flight (at most `max_in_flight`).
    let mut pending: FxHashMap<u64, PendingRequest> = FxHashMap::default();
    let mut bytes = Vec::with_capacity(64 * 1024);
    let mut closing = false;
    while let Some(first) = receiver.recv().await {
        // Let the shards' other replies arrive first: one write, many frames.
        tokio::task::yield_now().await;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            let frame = match message {
                Outbound::Frame(request_id, body) => {
                    in_flight.add_permits(1);
                    Some(ServerFrame { request_id, body: Some(body) })
                }
                Outbound::Last(body) => Some(ServerFrame { request_id: 0, body: Some(body) }),
                Outbound::Pending(requests) => {
                    pending.extend(requests);
                    None
                }
                Outbound::Outcome(request_id, outcome) => Some(answer(&mut pending, in_flight, metrics, &signer, request_id, outcome)),
                Outbound::Outcomes(outcomes) => {
                    let last = outcomes.len().saturating_sub(1);
                    let mut frames = outcomes
                        .into_iter()
                        .map(|(request_id, outcome)| answer(&mut pending, in_flight, metrics, &signer, request_id, outcome));
                    for frame in frames.by_ref().take(last) {
                        encode_frame(&frame, &mut bytes);
                    }
                    frames.next()
                }
                Outbound::Refused(request_id, body) => {
                    in_flight.add_permits(1);
                    pending.remove(&request_id);
                    if let Some(code) = match &body {
                        Out::Error(error) => ErrorCode::from_code(error.code),
                        _ => None,
                    } {
                        metrics.gateway_error(code);
                    }
                    Some(ServerFrame { request_id, body: Some(body) })
                }
                Outbound::Close => {
                    closing = true;
                    None
                }
            };
            if let Some(frame) = frame {
                encode_frame(&frame, &mut bytes);
            }
            if bytes.len() < 256 * 1024 {
                next = receiver.try_recv().ok();
            }
        }
        if !bytes.is_empty() {
            let written = tokio::time::timeout(stall, async {
                writer.write_all(&bytes).await?;
                writer.flush().await
            })
            .await;
            match written {
                Ok(Ok(())) => bytes.clear(),
                Ok(Err(_)) => return,
                Err(_) => {
                    metrics.gateway_error(ErrorCode::IdleTimeout);
                    tracing::debug!(stall_ms = stall.as_millis() as u64, "the client read none of its replies: connection closed");
                    return;
                }
            }
        }
        // Close once every frame read has its reply written, whoever
        // answers it (a client that half-closes after its last request is
        // still answered, an admin request's reply included).
        if closing && in_flight.available_permits() >= permits.max {
            let _ = writer.shutdown().await;
            return;
        }
    }
}
