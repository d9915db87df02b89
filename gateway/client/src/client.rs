//! The Rust client: async, pipelined (many requests in flight on one
//! connection, replies matched by request id), reconnecting (a lost
//! connection is re-established on the next call), and retrying: a request
//! that failed because the connection dropped or a shard was overloaded is
//! sent again unchanged, with the same transaction ids, which the engine
//! answers with the stored result if it had applied it. Retrying never
//! double-spends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use parking_lot::Mutex;
use prost::Message;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::error::ErrorCode;
use crate::frame::{encode_frame, split_frame, MAX_FRAME_BYTES};
use crate::proto::{self, client_frame::Body as In, server_frame::Body as Out, ClientFrame, ServerFrame};
use crate::PROTOCOL_VERSION;

/// Refusals after which the same request may be sent again: the shard was
/// overloaded (nothing applied), or its replicas did not confirm in time
/// (maybe applied: the same ids replay the stored result).
fn retry_safe(code: u32) -> bool {
    code == ErrorCode::Overloaded.code() || code == ErrorCode::Unavailable.code()
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting: {0}")]
    Connect(std::io::Error),
    #[error("the connection closed before the reply")]
    Disconnected,
    #[error("the server refused the Hello: {code} {message}")]
    Refused { code: u32, message: String },
    #[error("gave up after {attempts} attempts: {last}")]
    GaveUp { attempts: u32, last: String },
    /// Refused before sending: the server would close the connection on it
    /// (`FrameTooLarge`), failing every other request in flight.
    #[error("the request encodes to {bytes} bytes, over the protocol's maximum frame of {MAX_FRAME_BYTES}")]
    TooLarge { bytes: usize },
    /// No reply within the call timeout. The request may or may not have
    /// applied; sending it again with the same ids is safe.
    #[error("no reply within {0:?}")]
    TimedOut(Duration),
}

/// The frame of a request, or `TooLarge` if the server would refuse it.
fn request_frame(request_id: u64, body: In, out: &mut Vec<u8>) -> Result<(), ClientError> {
    let frame = ClientFrame { request_id, body: Some(body) };
    let bytes = frame.encoded_len();
    if bytes > MAX_FRAME_BYTES {
        return Err(ClientError::TooLarge { bytes });
    }
    encode_frame(&frame, out);
    Ok(())
}

/// What an error frame with request id 0 (about the connection, not one
/// request) means for the requests waiting on it: the server refused the
/// connection outright (`TooManyConnections`, before reading anything), so
/// each gets that answer. Any other answers none of them: the server is
/// closing the connection (idle, or a frame too large), and the requests
/// it read are still answered while the rest fail as `Disconnected` when
/// it closes; or it could not read a frame of ours (`MalformedFrame`, a
/// protocol mismatch), whose request would then never be answered, so the
/// client drops the connection itself. Sending them again is safe.
fn refuses_every_request(body: &Out) -> bool {
    matches!(body, Out::Error(error) if error.code == ErrorCode::TooManyConnections.code())
}

fn unreadable_request(body: &Out) -> bool {
    matches!(body, Out::Error(error) if error.code == ErrorCode::MalformedFrame.code())
}

#[derive(Clone)]
pub struct ClientConfig {
    pub address: String,
    /// Other nodes of the same cluster, tried in turn when the node the
    /// client is on cannot be reached (any node serves any player, and
    /// retries keep their ids, so moving on never double-spends).
    pub fallbacks: Vec<String>,
    pub api_key: String,
    pub tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    /// Attempts after the first, for `call_retrying`.
    pub retries: u32,
    /// How long to wait for a node's TCP connection before trying the next
    /// (a host that is gone drops the packets: the system's own timeout is
    /// minutes).
    pub connect_timeout: Duration,
    /// How long a call waits for its reply (None: as long as the
    /// connection lives). A connection that lets a call time out is not
    /// used for new calls: it may be dead without knowing it.
    pub call_timeout: Option<Duration>,
    pub retry_backoff: Duration,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("address", &self.address)
            .field("fallbacks", &self.fallbacks)
            .field("tls", &self.tls.is_some())
            .field("retries", &self.retries)
            .finish()
    }
}

impl ClientConfig {
    pub fn new(address: impl Into<String>, api_key: impl Into<String>) -> ClientConfig {
        ClientConfig {
            address: address.into(),
            fallbacks: Vec::new(),
            api_key: api_key.into(),
            tls: None,
            retries: 5,
            retry_backoff: Duration::from_millis(50),
            connect_timeout: Duration::from_secs(2),
            call_timeout: Some(Duration::from_secs(60)),
        }
    }
}

type Waiting = Arc<Mutex<HashMap<u64, oneshot::Sender<Out>>>>;

struct Connection {
    frames: mpsc::UnboundedSender<Vec<u8>>,
    waiting: Waiting,
    alive: Arc<AtomicBool>,
}

pub struct Client {
    config: ClientConfig,
    /// The live connection, read on every call (a short synchronous lock).
    current: Mutex<Option<Arc<Connection>>>,
    /// Held only while reconnecting, so one task reconnects and the rest wait.
    reconnecting: tokio::sync::Mutex<()>,
    next_id: AtomicU64,
    hello: Mutex<Option<proto::HelloOk>>,
    /// Which of the address and its fallbacks (in that order) the client
    /// last reached: the first tried on the next reconnect.
    node: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("config", &self.config).finish()
    }
}

trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

impl Client {
    /// Connects and says Hello.
    pub async fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        let client = Client {
            config,
            current: Mutex::new(None),
            reconnecting: tokio::sync::Mutex::new(()),
            next_id: AtomicU64::new(1),
            hello: Mutex::new(None),
            node: std::sync::atomic::AtomicUsize::new(0),
        };
        client.connection().await?;
        Ok(client)
    }

    /// The server's HelloOk on the current connection.
    pub fn hello(&self) -> Option<proto::HelloOk> {
        self.hello.lock().clone()
    }

    /// A TCP connection to the node last reached, or else to the next of
    /// the address and its fallbacks that answers.
    async fn reach(&self) -> Result<TcpStream, ClientError> {
        let nodes: Vec<&String> = std::iter::once(&self.config.address).chain(&self.config.fallbacks).collect();
        let first = self.node.load(Ordering::Relaxed);
        let mut failed = None;
        for turn in 0..nodes.len() {
            let index = (first + turn) % nodes.len();
            match tokio::time::timeout(self.config.connect_timeout, TcpStream::connect(nodes[index])).await {
                Ok(Ok(tcp)) => {
                    self.node.store(index, Ordering::Relaxed);
                    return Ok(tcp);
                }
                Ok(Err(error)) => failed = Some(error),
                Err(_) => failed = Some(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("connecting to {}", nodes[index]))),
            }
        }
        Err(ClientError::Connect(failed.unwrap_or_else(|| std::io::Error::other("no address to connect to"))))
    }

    async fn open(&self) -> Result<Arc<Connection>, ClientError> {
        let tcp = self.reach().await?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = match &self.config.tls {
            Some((connector, name)) => Box::new(connector.connect(name.clone(), tcp).await.map_err(ClientError::Connect)?),
            None => Box::new(tcp),
        };
        let (mut reader, mut writer) = tokio::io::split(stream);
        let (frames, mut outgoing) = mpsc::unbounded_channel::<Vec<u8>>();
        let waiting: Waiting = Arc::new(Mutex::new(HashMap::new()));
        let alive = Arc::new(AtomicBool::new(true));
        tokio::spawn(async move {
            while let Some(first) = outgoing.recv().await {
                // Let other tasks queue their frames first: one write, many frames.
                tokio::task::yield_now().await;
                let mut bytes = first;
                while let Ok(more) = outgoing.try_recv() {
                    bytes.extend_from_slice(&more);
                    if bytes.len() > 256 * 1024 {
                        break;
                    }
                }
                // Flushed as well: TLS may keep what it was given until then.
                if writer.write_all(&bytes).await.is_err() || writer.flush().await.is_err() {
                    return;
                }
            }
            // The client is gone (every sender dropped): say so to the
            // server, whose close then ends the reader.
            let _ = writer.shutdown().await;
        });
        let (reader_waiting, reader_alive) = (waiting.clone(), alive.clone());
        tokio::spawn(async move {
            let mut buffer = BytesMut::with_capacity(64 * 1024);
            'read: loop {
                loop {
                    // A server that sends a bad frame cannot be trusted further.
                    let Ok(next) = split_frame(&mut buffer) else { break 'read };
                    let Some(frame) = next else { break };
                    let Ok(frame) = ServerFrame::decode(frame) else { break 'read };
                    let Some(body) = frame.body else { continue };
                    if frame.request_id == 0 {
                        if refuses_every_request(&body) {
                            for (_, waiter) in reader_waiting.lock().drain() {
                                let _ = waiter.send(body.clone());
                            }
                        } else if unreadable_request(&body) {
                            break 'read;
                        }
                    } else if let Some(waiter) = reader_waiting.lock().remove(&frame.request_id) {
                        let _ = waiter.send(body);
                    }
                }
                match reader.read_buf(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            reader_alive.store(false, Ordering::SeqCst);
            // Dropping the waiters tells their callers the connection is gone.
            reader_waiting.lock().clear();
        });
        let connection = Arc::new(Connection { frames, waiting, alive });
        let hello = In::Hello(proto::Hello { protocol_version: PROTOCOL_VERSION, api_key: self.config.api_key.clone() });
        match self.send(&connection, hello).await? {
            Out::HelloOk(ok) => {
                *self.hello.lock() = Some(ok);
                Ok(connection)
            }
            Out::Error(error) => Err(ClientError::Refused { code: error.code, message: error.message }),
            other => Err(ClientError::Refused { code: 0, message: format!("unexpected reply to Hello: {other:?}") }),
        }
    }

    fn live(&self) -> Option<Arc<Connection>> {
        self.current.lock().as_ref().filter(|c| c.alive.load(Ordering::SeqCst)).cloned()
    }

    async fn connection(&self) -> Result<Arc<Connection>, ClientError> {
        if let Some(connection) = self.live() {
            return Ok(connection);
        }
        let _reconnecting = self.reconnecting.lock().await;
        if let Some(connection) = self.live() {
            return Ok(connection);
        }
        let connection = self.open().await?;
        *self.current.lock() = Some(connection.clone());
        Ok(connection)
    }

    async fn send(&self, connection: &Connection, body: In) -> Result<Out, ClientError> {
        // Ids start at 1: 0 is the server's id for errors about the connection.
        let request_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut bytes = Vec::new();
        request_frame(request_id, body, &mut bytes)?;
        let (sender, receiver) = oneshot::channel();
        connection.waiting.lock().insert(request_id, sender);
        // The reader marks the connection dead before it drops its waiters;
        // a waiter registered after that would never be answered.
        if !connection.alive.load(Ordering::SeqCst) {
            connection.waiting.lock().remove(&request_id);
            return Err(ClientError::Disconnected);
        }
        if connection.frames.send(bytes).is_err() {
            connection.waiting.lock().remove(&request_id);
            return Err(ClientError::Disconnected);
        }
        let Some(limit) = self.config.call_timeout else {
            return receiver.await.map_err(|_| ClientError::Disconnected);
        };
        match tokio::time::timeout(limit, receiver).await {
            Ok(answer) => answer.map_err(|_| ClientError::Disconnected),
            Err(_) => {
                connection.waiting.lock().remove(&request_id);
                connection.alive.store(false, Ordering::SeqCst);
                Err(ClientError::TimedOut(limit))
            }
        }
    }

    /// Sends one request and waits for its reply. Many calls may be in
    /// flight at once on the same client (pipelining).
    pub async fn call(&self, body: In) -> Result<Out, ClientError> {
        let connection = self.connection().await?;
        self.send(&connection, body).await
    }

    /// `call`, sent again unchanged (same transaction ids) when the
    /// connection drops or the shard is overloaded, up to `retries` times.
    pub async fn call_retrying(&self, body: In) -> Result<Out, ClientError> {
        let mut last = String::new();
        for attempt in 0..=self.config.retries {
            if attempt > 0 {
                tokio::time::sleep(self.config.retry_backoff * attempt).await;
            }
            match self.call(body.clone()).await {
                Ok(Out::Error(error)) if retry_safe(error.code) => last = error.message,
                Ok(reply) => return Ok(reply),
                Err(error @ (ClientError::Disconnected | ClientError::Connect(_) | ClientError::TimedOut(_))) => last = error.to_string(),
                Err(error) => return Err(error),
            }
        }
        Err(ClientError::GaveUp { attempts: self.config.retries + 1, last })
    }
}

/// A client for one thread that waits for each reply: no runtime, one
/// connection, one request in flight. For tools and simulators that run
/// many threads, each with its own connection. No TLS.
#[derive(Debug)]
pub struct BlockingClient {
    stream: std::net::TcpStream,
    buffer: BytesMut,
    next_id: u64,
    out: Vec<u8>,
    /// Times an overloaded shard is retried (with the same ids) before giving up.
    pub retries: u32,
}

impl BlockingClient {
    /// Connects and says Hello.
    pub fn connect(address: &str, api_key: &str) -> Result<BlockingClient, ClientError> {
        let stream = std::net::TcpStream::connect(address).map_err(ClientError::Connect)?;
        let _ = stream.set_nodelay(true);
        let mut client = BlockingClient { stream, buffer: BytesMut::with_capacity(64 * 1024), next_id: 0, out: Vec::new(), retries: 20 };
        match client.call_once(In::Hello(proto::Hello { protocol_version: PROTOCOL_VERSION, api_key: api_key.into() }))? {
            Out::HelloOk(_) => Ok(client),
            Out::Error(error) => Err(ClientError::Refused { code: error.code, message: error.message }),
            other => Err(ClientError::Refused { code: 0, message: format!("unexpected reply to Hello: {other:?}") }),
        }
    }

    fn call_once(&mut self, body: In) -> Result<Out, ClientError> {
        use std::io::{Read, Write};
        self.next_id += 1;
        let request_id = self.next_id;
        self.out.clear();
        request_frame(request_id, body, &mut self.out)?;
        self.stream.write_all(&self.out).map_err(|_| ClientError::Disconnected)?;
        loop {
            while let Some(frame) = split_frame(&mut self.buffer).map_err(|_| ClientError::Disconnected)? {
                let frame = ServerFrame::decode(frame).map_err(|_| ClientError::Disconnected)?;
                if frame.request_id == request_id {
                    return frame.body.ok_or(ClientError::Disconnected);
                }
                if frame.request_id == 0 {
                    match frame.body {
                        Some(body) if refuses_every_request(&body) => return Ok(body),
                        // The server is closing: this request may or may not
                        // have been read; the caller sends it again.
                        _ => return Err(ClientError::Disconnected),
                    }
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            let read = self.stream.read(&mut chunk).map_err(|_| ClientError::Disconnected)?;
            if read == 0 {
                return Err(ClientError::Disconnected);
            }
            self.buffer.extend_from_slice(&chunk[..read]);
        }
    }

    /// Sends one request and waits for its reply; an overloaded shard is
    /// retried with the same request (same ids), backing off.
    pub fn call(&mut self, body: In) -> Result<Out, ClientError> {
        let mut last = String::new();
        for attempt in 0..=self.retries {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(1 << attempt.min(6)));
            }
            match self.call_once(body.clone())? {
                Out::Error(error) if retry_safe(error.code) => last = error.message,
                reply => return Ok(reply),
            }
        }
        Err(ClientError::GaveUp { attempts: self.retries + 1, last })
    }
}
