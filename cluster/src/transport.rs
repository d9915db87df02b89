//! Raft messages between nodes over TCP, batched.
//!
//! Each node listens on its raft address and keeps one outgoing connection
//! per peer. The node's loop hands over all of a turn's messages at once
//! ([`Transport::send_all`]); each peer's share goes out in one write, made
//! by the loop itself when the connection is idle (nothing queued, no write
//! under way) and the socket takes it without waiting. Otherwise (a busy or
//! slow peer, a partial write, no connection yet, a snapshot) it goes to the
//! peer's bounded queue, drained by a writer thread of its own: whatever
//! has queued up while the previous write was on the wire goes out in the
//! next single write (up to `WRITE_BATCH_BYTES`), so a busy node sends few
//! large writes rather than one per message. Writing directly spares the
//! hand-over to that thread (a wake-up, on a small machine a good part of a
//! replicated bet's latency) without ever making the loop wait on a peer.
//! A full queue (`PEER_QUEUE` items, or `PEER_QUEUE_BYTES` bytes of
//! messages other than snapshots, of which raft sends one per follower and
//! shard at a time) or a broken connection drops messages, which raft
//! tolerates (it resends); a dropped or failed snapshot is reported back so
//! the leader tries again. A write that makes no progress for
//! `PEER_WRITE_TIMEOUT` (a peer that stopped reading, a connection dead
//! without a reset) breaks the connection, and the writer connects again
//! for what comes next.
//!
//! Receiving ([`Inbox`]): a thread per incoming connection checks the
//! handshake and hands the connection over; from then on the node's loop
//! reads its peers' connections itself, without waiting, when its poll
//! (epoll, through `mio`) says they have bytes, and steps the messages
//! straight into raft. A message from a peer thus wakes one thread, the
//! loop, instead of a reader thread that then woke the loop (two hand-overs
//! fewer on a replicated bet's path, its append and its acknowledgment,
//! though on the 2-core test machine no latency figure moved with them),
//! and no thread is left per connection. The poll also waits for the loop's other inputs: a
//! client job or a notice (a handed-over connection, a snapshot's report)
//! wakes it through [`Wake`]. A peer that connects again replaces its
//! previous connection; a turn reads at most `READ_PER_TURN` bytes from a
//! connection, so one busy peer cannot hold the loop.
//!
//! Wire: a connection starts with `MAGIC`, a version byte and the sender's
//! node id (u64 LE). The receiver answers with a fresh 16-byte nonce, and
//! the sender proves it holds the cluster's secret: HMAC-SHA256(secret,
//! `HANDSHAKE_LABEL` | sender id | receiver id | nonce), 32 bytes, checked
//! in constant time. Only then do frames follow: `[length u32 LE][shard u32
//! LE][raft Message, protobuf]`, the length counting the shard and the
//! message. A wrong proof, a handshake slower than `HANDSHAKE_TIMEOUT`, a
//! frame over `FRAME_MAX` or a message that does not parse closes the
//! connection. (The proof keeps anyone without the secret from speaking
//! raft to a node, which would let them write its log; it does not hide or
//! seal the stream from someone on the path between nodes: that is TLS,
//! not done yet.)

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};

const MAGIC: &[u8; 4] = b"CSRF";
/// 2: the handshake proves the cluster's secret.
const VERSION: u8 = 2;
const HANDSHAKE_LABEL: &[u8] = b"casino raft handshake v2";
const NONCE_BYTES: usize = 16;
const PROOF_BYTES: usize = 32;
/// The whole handshake, on either side, at most.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest frame: a snapshot travels as one message.
pub const FRAME_MAX: usize = 1 << 30;
/// Bytes written at once at most (more waits for the next write).
const WRITE_BATCH_BYTES: usize = 4 << 20;
/// Items (a turn's frames, or a snapshot) queued toward one peer at most.
pub const PEER_QUEUE: usize = 65_536;
/// Bytes of messages queued toward one peer at most, snapshots not counted
/// (raft sends one per follower and shard at a time); an item that does
/// not fit is dropped, unless the queue holds none.
pub const PEER_QUEUE_BYTES: usize = 64 << 20;
/// A write to a peer that makes no progress for this long breaks the
/// connection. Longer than etcd's 5 s: the peer's raft loop reads its
/// connections itself, and installing a large snapshot stops it for
/// seconds.
const PEER_WRITE_TIMEOUT: Duration = if cfg!(test) { Duration::from_millis(500) } else { Duration::from_secs(30) };
/// Incoming connections in their handshake at most, and open ones at most
/// (peers reconnect after a failure; a new one from a peer replaces its
/// old one).
const INBOUND_CONNECTIONS_MAX: usize = 64;
/// Bytes one turn of the loop reads from one connection at most.
const READ_PER_TURN: usize = 4 << 20;
/// Bytes read from a socket at once.
const READ_CHUNK: usize = 256 << 10;
/// Notices (handed-over connections, snapshot reports) waiting for the loop.
const NOTICES: usize = 1_024;
const WAKER: mio::Token = mio::Token(usize::MAX);

/// What the transport hands the node's loop.
#[derive(Debug)]
pub enum Incoming {
    Raft {
        shard: u32,
        message: Message,
    },
    /// How writing a snapshot message to a peer went.
    SnapshotStatus {
        shard: u32,
        to: u64,
        delivered: bool,
    },
}

enum Outgoing {
    Message {
        shard: u32,
        message: Message,
    },
    /// Frames already encoded (the rest of a direct write that the socket
    /// did not take at once), `count` messages.
    Encoded {
        bytes: Vec<u8>,
        count: usize,
    },
}

/// What the node's loop and a peer's writer thread share: the connection
/// (written under the lock: by the writer thread, or by the loop when it
/// finds the lock free and nothing queued) and how many items are queued
/// or being written by the thread (the loop writes directly only at zero,
/// so the peer gets the messages in order).
#[derive(Debug, Default)]
struct Link {
    stream: Mutex<Option<TcpStream>>,
    queued: AtomicUsize,
    /// The bytes of the queued items (only the loop adds, only the writer
    /// thread takes away, once written or dropped).
    queued_bytes: AtomicUsize,
}

#[derive(Debug)]
struct Peer {
    queue: Sender<Outgoing>,
    link: Arc<Link>,
    /// This turn's frames for the peer, and how many messages they hold.
    frames: Vec<u8>,
    count: usize,
}

/// The sending half: one queue and writer thread per peer.
#[derive(Debug)]
pub struct Transport {
    peers: HashMap<u64, Peer>,
    dropped: Arc<AtomicUsize>,
    /// Peer writes the loop made itself, whole.
    direct_writes: u64,
}

impl Transport {
    /// Listens on `listener` for peers' connections and starts a writer for
    /// each peer in `peers` (this node's own entry is skipped). Returns the
    /// sending half and the receiving one, for the node's loop.
    pub fn start(node: u64, secret: [u8; 32], listener: TcpListener, peers: &[(u64, SocketAddr)]) -> std::io::Result<(Transport, Inbox)> {
        let known: Vec<u64> = peers.iter().map(|(id, _)| *id).collect();
        let poll = mio::Poll::new()?;
        let wake = Arc::new(Wake { waker: mio::Waker::new(poll.registry(), WAKER)?, sleeping: AtomicBool::new(false) });
        let (sender, notices) = bounded(NOTICES);
        let notifier = Notifier { sender, wake: wake.clone() };
        let accepting = notifier.clone();
        std::thread::Builder::new().name("raft-accept".into()).spawn(move || accept(listener, node, secret, known, accepting))?;
        let dropped = Arc::new(AtomicUsize::new(0));
        let mut senders = HashMap::new();
        for &(peer, address) in peers.iter().filter(|(id, _)| *id != node) {
            let (sender, receiver) = bounded(PEER_QUEUE);
            let link = Arc::new(Link::default());
            let (notifier, dropped, shared) = (notifier.clone(), dropped.clone(), link.clone());
            std::thread::Builder::new()
                .name(format!("raft-to-{peer}"))
                .spawn(move || write_to(node, secret, peer, address, receiver, &shared, notifier, dropped))?;
            senders.insert(peer, Peer { queue: sender, link, frames: Vec::new(), count: 0 });
        }
        let inbox = Inbox {
            me: node,
            poll,
            events: mio::Events::with_capacity(INBOUND_CONNECTIONS_MAX + 1),
            wake,
            notices,
            connections: (0..INBOUND_CONNECTIONS_MAX).map(|_| None).collect(),
            readable: Vec::new(),
            chunk: vec![0; READ_CHUNK].into_boxed_slice(),
        };
        Ok((Transport { peers: senders, dropped, direct_writes: 0 }, inbox))
    }

    /// Sends the messages of `outbox` (each with its shard), emptied, to
    /// their `to` nodes: each peer's in one write, directly when its
    /// connection is idle, else through its writer thread. Snapshots always
    /// go through the thread, which reports how their write went. Returns
    /// (shard, to) of each snapshot dropped here (a full queue, an unknown
    /// node): the caller must tell raft it failed, since no writer will.
    pub fn send_all(&mut self, outbox: &mut Vec<(u32, Message)>) -> Vec<(u32, u64)> {
        let mut failed = Vec::new();
        for (shard, message) in outbox.drain(..) {
            let to = message.to;
            let Some(peer) = self.peers.get_mut(&to) else {
                tracing::warn!(to, shard, "a raft message for an unknown node was dropped");
                if message.get_msg_type() == MessageType::MsgSnapshot {
                    failed.push((shard, to));
                }
                continue;
            };
            if message.get_msg_type() == MessageType::MsgSnapshot {
                // What was encoded for the peer goes first, in order.
                self.direct_writes += u64::from(flush(peer, &self.dropped));
                if !enqueue(peer, Outgoing::Message { shard, message }, 1, &self.dropped) {
                    failed.push((shard, to));
                }
                continue;
            }
            if encode(shard, &message, &mut peer.frames) {
                peer.count += 1;
            } else {
                tracing::error!(to, shard, "a raft message too large to send was dropped");
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        for peer in self.peers.values_mut() {
            self.direct_writes += u64::from(flush(peer, &self.dropped));
        }
        failed
    }

    /// Messages dropped so far (full queues, broken connections).
    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Wakes the node's loop from its poll: for a client job, a handed-over
/// connection or a snapshot's report. Only a sleeping loop is woken (one
/// write to an eventfd); a busy one finds the work at its next turn.
#[derive(Debug)]
pub struct Wake {
    waker: mio::Waker,
    /// Set by the loop just before it polls with a timeout, cleared after.
    sleeping: AtomicBool,
}

impl Wake {
    /// Wakes the loop even if it is not asleep yet: its next poll returns
    /// at once (for a change it cannot see in its queues, such as the job
    /// queue closing).
    pub(crate) fn wake_now(&self) {
        if let Err(error) = self.waker.wake() {
            tracing::error!(%error, "waking the raft loop failed");
        }
    }

    /// Call after handing the loop something.
    pub fn wake(&self) {
        // Orders the caller's hand-over before the look at `sleeping`
        // (the loop orders its announcement before its look at its queues).
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) && self.sleeping.swap(false, Ordering::SeqCst) {
            self.wake_now();
        }
    }
}

/// What other threads hand the loop besides peers' bytes.
#[derive(Debug)]
enum Notice {
    /// A peer's connection whose handshake passed; `serial` counts
    /// accepted connections, so an older one handed over late does not
    /// replace a newer one.
    Connected { from: u64, serial: u64, stream: TcpStream },
    /// How writing a snapshot message to a peer went.
    Snapshot { shard: u32, to: u64, delivered: bool },
}

#[derive(Clone, Debug)]
struct Notifier {
    sender: Sender<Notice>,
    wake: Arc<Wake>,
}

impl Notifier {
    /// Waits for room: a lost snapshot report would leave a follower paused.
    fn send(&self, notice: Notice) {
        if self.sender.send(notice).is_ok() {
            self.wake.wake();
        }
    }
}

/// A peer's connection, read by the loop.
#[derive(Debug)]
struct Connection {
    stream: mio::net::TcpStream,
    from: u64,
    serial: u64,
    frames: Frames,
    /// Bytes may be waiting in the socket: the poll said so and a read
    /// has not yet met `WouldBlock` (the poll is edge-triggered).
    readable: bool,
}

/// The receiving half of the transport, driven by the node's loop: it
/// waits for its inputs ([`Inbox::wait`]) and takes what has arrived
/// ([`Inbox::take`]).
#[derive(Debug)]
pub struct Inbox {
    me: u64,
    poll: mio::Poll,
    events: mio::Events,
    wake: Arc<Wake>,
    notices: Receiver<Notice>,
    /// Slot i is registered under token i.
    connections: Vec<Option<Connection>>,
    /// Slots with `readable` set.
    readable: Vec<usize>,
    chunk: Box<[u8]>,
}

impl Inbox {
    /// What wakes the loop when another thread hands it something.
    pub fn wake(&self) -> Arc<Wake> {
        self.wake.clone()
    }

    /// Waits at most `timeout` for bytes from a peer, a notice, or a
    /// [`Wake`]; does not wait when something is already there, or when
    /// `busy` (the loop's own queue) says so.
    pub fn wait(&mut self, timeout: Duration, busy: impl Fn() -> bool) {
        let mut timeout = timeout;
        if !self.readable.is_empty() || !self.notices.is_empty() || busy() {
            timeout = Duration::ZERO;
        } else {
            self.wake.sleeping.store(true, Ordering::SeqCst);
            std::sync::atomic::fence(Ordering::SeqCst);
            // Announced first, then checked: what was handed over before
            // is seen here, what comes after wakes the poll.
            if !self.notices.is_empty() || busy() {
                timeout = Duration::ZERO;
            }
        }
        if let Err(error) = self.poll.poll(&mut self.events, Some(timeout)) {
            if error.kind() != std::io::ErrorKind::Interrupted {
                tracing::error!(%error, "polling the raft connections failed");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        self.wake.sleeping.store(false, Ordering::SeqCst);
        for event in &self.events {
            let slot = event.token().0;
            if let Some(Some(connection)) = self.connections.get_mut(slot) {
                if !connection.readable {
                    connection.readable = true;
                    self.readable.push(slot);
                }
            }
        }
    }

    /// Appends to `arrived` the snapshot reports and the peers' messages
    /// that have arrived (at most `READ_PER_TURN` bytes from each
    /// connection), and takes in handed-over connections.
    pub fn take(&mut self, arrived: &mut Vec<Incoming>) {
        while let Ok(notice) = self.notices.try_recv() {
            match notice {
                Notice::Snapshot { shard, to, delivered } => arrived.push(Incoming::SnapshotStatus { shard, to, delivered }),
                Notice::Connected { from, serial, stream } => self.adopt(from, serial, stream),
            }
        }
        let mut at = 0;
        while at < self.readable.len() {
            let slot = self.readable[at];
            match self.read(slot, arrived) {
                Ok(true) => at += 1,
                Ok(false) => {
                    if let Some(connection) = self.connections[slot].as_mut() {
                        connection.readable = false;
                    }
                    self.readable.swap_remove(at);
                }
                Err(error) => {
                    let from = self.connections[slot].as_ref().map(|connection| connection.from);
                    tracing::debug!(?from, %error, "a raft connection closed");
                    self.close(slot);
                    self.readable.swap_remove(at);
                }
            }
        }
    }

    /// Registers a peer's connection, in place of any earlier one from the
    /// same peer (a node keeps one connection to each peer: a new one means
    /// the old is gone, though its end may not have said so).
    fn adopt(&mut self, from: u64, serial: u64, stream: TcpStream) {
        if self.connections.iter().flatten().any(|c| c.from == from && c.serial > serial) {
            tracing::debug!(from, "an older raft connection, handed over late, was dropped");
            return;
        }
        let stale: Vec<usize> =
            (0..self.connections.len()).filter(|&slot| self.connections[slot].as_ref().is_some_and(|c| c.from == from)).collect();
        for slot in stale {
            self.close(slot);
            self.readable.retain(|&s| s != slot);
        }
        let Some(slot) = self.connections.iter().position(Option::is_none) else {
            tracing::warn!(from, "too many raft connections: one refused");
            return;
        };
        let mut stream = mio::net::TcpStream::from_std(stream);
        if let Err(error) = self.poll.registry().register(&mut stream, mio::Token(slot), mio::Interest::READABLE) {
            tracing::error!(from, %error, "registering a raft connection failed");
            return;
        }
        // Bytes may have come before the registration: read at once.
        self.connections[slot] = Some(Connection { stream, from, serial, frames: Frames::default(), readable: true });
        self.readable.push(slot);
    }

    fn close(&mut self, slot: usize) {
        if let Some(mut connection) = self.connections[slot].take() {
            let _ = self.poll.registry().deregister(&mut connection.stream);
        }
    }

    /// Reads from the connection in `slot` and takes its whole frames:
    /// Ok(true) if its socket may still hold bytes (this turn's share was
    /// read), Ok(false) once it has none, Err to close it (the peer closed,
    /// a broken frame, a message not for this node).
    fn read(&mut self, slot: usize, arrived: &mut Vec<Incoming>) -> std::io::Result<bool> {
        let me = self.me;
        let connection = self.connections[slot].as_mut().ok_or(std::io::ErrorKind::NotConnected)?;
        let mut budget = READ_PER_TURN;
        loop {
            if budget == 0 {
                return Ok(true);
            }
            let n = match connection.stream.read(&mut self.chunk) {
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => n,
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            budget = budget.saturating_sub(n);
            connection.frames.extend(&self.chunk[..n]);
            connection.frames.take(connection.from, me, arrived)?;
        }
    }
}

/// A connection's bytes read and not yet taken as frames (from `start` on).
#[derive(Debug, Default)]
struct Frames {
    buffer: Vec<u8>,
    start: usize,
}

impl Frames {
    /// Grown as the bytes arrive, not on a frame header's word.
    fn extend(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Takes the whole frames at the front into `arrived` (messages from
    /// peer `from` to node `me`); an error for a frame that must close the
    /// connection.
    fn take(&mut self, from: u64, me: u64, arrived: &mut Vec<Incoming>) -> std::io::Result<()> {
        loop {
            let rest = &self.buffer[self.start..];
            if rest.len() < 8 {
                break;
            }
            let length = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
            let shard = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
            if !(4..=FRAME_MAX).contains(&length) {
                return Err(invalid(format!("a frame of {length} bytes from node {from}")));
            }
            if rest.len() < 4 + length {
                break;
            }
            let message =
                Message::parse_from_bytes(&rest[8..4 + length]).map_err(|e| invalid(format!("a message from node {from}: {e}")))?;
            self.start += 4 + length;
            if message.from != from || message.to != me {
                return Err(invalid(format!("node {from} sent a message from {} to {}", message.from, message.to)));
            }
            // raft-rs reads a read-index request's context from its first entry.
            let read_index = matches!(message.get_msg_type(), MessageType::MsgReadIndex | MessageType::MsgReadIndexResp);
            if read_index && message.entries.is_empty() {
                tracing::warn!(from, shard, "a read-index message without its context was dropped");
                continue;
            }
            arrived.push(Incoming::Raft { shard, message });
        }
        if self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
            if self.buffer.capacity() > WRITE_BATCH_BYTES {
                self.buffer = Vec::new();
            }
        } else if self.start > self.buffer.len() / 2 {
            self.buffer.drain(..self.start);
            self.start = 0;
            // After a large frame (a snapshot), keep no more than a batch's room.
            if self.buffer.capacity() > WRITE_BATCH_BYTES {
                self.buffer.shrink_to(WRITE_BATCH_BYTES.max(self.buffer.len()));
            }
        }
        Ok(())
    }
}

/// The handshake's proof that `from` holds `secret`, for a connection to `to`.
fn proof(secret: &[u8; 32], from: u64, to: u64, nonce: &[u8; NONCE_BYTES]) -> [u8; PROOF_BYTES] {
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(HANDSHAKE_LABEL);
    mac.update(&from.to_le_bytes());
    mac.update(&to.to_le_bytes());
    mac.update(nonce);
    mac.finalize().into_bytes().into()
}

/// Appends `message`'s frame to `buffer`; false (and `buffer` as it was)
/// if it is too large to send.
fn encode(shard: u32, message: &Message, buffer: &mut Vec<u8>) -> bool {
    let start = buffer.len();
    buffer.extend_from_slice(&[0u8; 8]);
    if message.write_to_vec(buffer).is_err() || buffer.len() - start - 4 > FRAME_MAX {
        buffer.truncate(start);
        return false;
    }
    let length = (buffer.len() - start - 4) as u32;
    buffer[start..start + 4].copy_from_slice(&length.to_le_bytes());
    buffer[start + 4..start + 8].copy_from_slice(&shard.to_le_bytes());
    true
}

impl Outgoing {
    /// Bytes counted against `PEER_QUEUE_BYTES` (a snapshot: none).
    fn bytes(&self) -> usize {
        match self {
            Outgoing::Message { .. } => 0,
            Outgoing::Encoded { bytes, .. } => bytes.len(),
        }
    }
}

/// Queues `item` (`count` messages) for the peer's writer thread; false if
/// the queue is full, in items or bytes (the messages are dropped).
fn enqueue(peer: &Peer, item: Outgoing, count: usize, dropped: &AtomicUsize) -> bool {
    let bytes = item.bytes();
    let held = peer.link.queued_bytes.load(Ordering::SeqCst);
    if held > 0 && held.saturating_add(bytes) > PEER_QUEUE_BYTES {
        dropped.fetch_add(count, Ordering::Relaxed);
        return false;
    }
    peer.link.queued.fetch_add(1, Ordering::SeqCst);
    peer.link.queued_bytes.fetch_add(bytes, Ordering::SeqCst);
    match peer.queue.try_send(item) {
        Ok(()) => true,
        Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
            peer.link.queued.fetch_sub(1, Ordering::SeqCst);
            peer.link.queued_bytes.fetch_sub(bytes, Ordering::SeqCst);
            dropped.fetch_add(count, Ordering::Relaxed);
            false
        }
    }
}

/// Sends the frames encoded for `peer` so far: written here if its
/// connection is idle and the socket takes them without waiting (the rest
/// of a partial write is queued), queued for its writer thread otherwise.
/// True if they were all written here.
fn flush(peer: &mut Peer, dropped: &AtomicUsize) -> bool {
    if peer.frames.is_empty() {
        return false;
    }
    let count = std::mem::take(&mut peer.count);
    let mut written = 0;
    let mut stream = peer.link.stream.try_lock();
    // Under the lock, nothing queued means the writer thread is done with
    // all it took: what goes now comes after it.
    if let Some(connection) = stream.as_mut().filter(|_| peer.link.queued.load(Ordering::SeqCst) == 0) {
        if let Some(open) = connection.as_mut() {
            match write_now(open, &peer.frames) {
                Ok(n) => written = n,
                Err(error) => {
                    tracing::warn!(%error, "raft connection to peer broke");
                    // The writer thread connects again when it next has something.
                    **connection = None;
                    dropped.fetch_add(count, Ordering::Relaxed);
                    peer.frames.clear();
                    return false;
                }
            }
        }
    }
    let whole = written == peer.frames.len();
    if whole {
        peer.frames.clear();
    } else {
        let bytes = peer.frames.split_off(written);
        peer.frames.clear();
        let queued = enqueue(peer, Outgoing::Encoded { bytes, count }, count, dropped);
        if !queued && written > 0 {
            // A frame cut short must not be followed by others: the
            // connection goes (the writer thread connects again).
            if let Some(connection) = stream.as_mut() {
                **connection = None;
            }
        }
    }
    drop(stream);
    if peer.frames.capacity() > WRITE_BATCH_BYTES {
        peer.frames = Vec::new();
    }
    whole
}

/// Writes what `stream` takes of `bytes` without waiting for room: the
/// bytes written (0 if none).
fn write_now(stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<usize> {
    stream.set_nonblocking(true)?;
    let mut written = 0;
    let outcome = loop {
        match stream.write(&bytes[written..]) {
            Ok(0) => break Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                written += n;
                if written == bytes.len() {
                    break Ok(written);
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break Ok(written),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => break Err(error),
        }
    };
    // The writer thread writes with waiting.
    stream.set_nonblocking(false)?;
    outcome
}

fn accept(listener: TcpListener, me: u64, secret: [u8; 32], known: Vec<u64>, notifier: Notifier) {
    let open = Arc::new(AtomicUsize::new(0));
    let mut serial = 0u64;
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, "accepting a raft connection failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if open.load(Ordering::Relaxed) >= INBOUND_CONNECTIONS_MAX {
            tracing::warn!("too many raft connections in their handshake: one refused");
            continue;
        }
        open.fetch_add(1, Ordering::Relaxed);
        serial += 1;
        let (known, notifier, open) = (known.clone(), notifier.clone(), open.clone());
        let spawned = std::thread::Builder::new().name("raft-hello".into()).spawn(move || {
            match handshake(stream, me, &secret, &known) {
                Ok((from, stream)) => notifier.send(Notice::Connected { from, serial, stream }),
                Err(error) => tracing::debug!(%error, "a raft connection was refused"),
            }
            open.fetch_sub(1, Ordering::Relaxed);
        });
        if let Err(error) = spawned {
            tracing::error!(%error, "no thread for a raft connection's handshake");
        }
    }
}

/// Fills `buffer` from `stream` by `deadline`: the time limit is the whole
/// read's, not each byte's (a peer sending a byte now and then is cut off).
fn read_exact_by(stream: &mut TcpStream, buffer: &mut [u8], deadline: std::time::Instant) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buffer.len() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buffer[filled..]) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => filled += n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

fn invalid(what: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
}

/// Checks an incoming connection's hello and proof of the cluster's
/// secret; the peer's id and the stream, ready for the loop (non-blocking).
fn handshake(mut stream: TcpStream, me: u64, secret: &[u8; 32], known: &[u64]) -> std::io::Result<(u64, TcpStream)> {
    let deadline = std::time::Instant::now() + HANDSHAKE_TIMEOUT;
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let mut hello = [0u8; 13];
    read_exact_by(&mut stream, &mut hello, deadline)?;
    if &hello[..4] != MAGIC || hello[4] != VERSION {
        return Err(invalid("not a raft connection of this version".into()));
    }
    let from = u64::from_le_bytes(hello[5..13].try_into().expect("8 bytes"));
    if !known.contains(&from) || from == me {
        return Err(invalid(format!("node {from} is not a peer")));
    }
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::fill(&mut nonce).map_err(|error| std::io::Error::other(format!("no OS entropy for a handshake: {error}")))?;
    stream.write_all(&nonce)?;
    let mut offered = [0u8; PROOF_BYTES];
    read_exact_by(&mut stream, &mut offered, deadline)?;
    let expected = proof(secret, from, me, &nonce);
    // Constant time: a forger learns nothing from how long a refusal takes.
    if offered.iter().zip(expected.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) != 0 {
        tracing::warn!(from, "a raft connection without the cluster's secret was refused");
        return Err(invalid(format!("node {from} did not prove the cluster's secret")));
    }
    stream.set_read_timeout(None)?;
    stream.set_write_timeout(None)?;
    stream.set_nonblocking(true)?;
    Ok((from, stream))
}

fn connect(node: u64, secret: &[u8; 32], peer: u64, address: SocketAddr) -> std::io::Result<TcpStream> {
    let deadline = std::time::Instant::now() + HANDSHAKE_TIMEOUT;
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_millis(500))?;
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(PEER_WRITE_TIMEOUT))?;
    let mut hello = Vec::with_capacity(13);
    hello.extend_from_slice(MAGIC);
    hello.push(VERSION);
    hello.extend_from_slice(&node.to_le_bytes());
    stream.write_all(&hello)?;
    let mut nonce = [0u8; NONCE_BYTES];
    read_exact_by(&mut stream, &mut nonce, deadline)?;
    stream.write_all(&proof(secret, node, peer, &nonce))?;
    stream.set_read_timeout(None)?;
    Ok(stream)
}

#[allow(clippy::too_many_arguments)]
fn write_to(
    node: u64,
    secret: [u8; 32],
    peer: u64,
    address: SocketAddr,
    queue: Receiver<Outgoing>,
    link: &Link,
    notifier: Notifier,
    dropped: Arc<AtomicUsize>,
) {
    let mut buffer = Vec::with_capacity(WRITE_BATCH_BYTES);
    let mut snapshots: Vec<u32> = Vec::new();
    let mut failed_connects = 0u32;
    while let Ok(first) = queue.recv() {
        buffer.clear();
        snapshots.clear();
        // Queue items taken, the messages they hold, and their bytes.
        let (mut items, mut count, mut taken_bytes) = (0usize, 0usize, 0usize);
        let mut next = Some(first);
        while let Some(outgoing) = next.take() {
            items += 1;
            taken_bytes += outgoing.bytes();
            match outgoing {
                Outgoing::Encoded { bytes, count: held } => {
                    buffer.extend_from_slice(&bytes);
                    count += held;
                }
                Outgoing::Message { shard, message } => {
                    let snapshot = message.get_msg_type() == MessageType::MsgSnapshot;
                    if encode(shard, &message, &mut buffer) {
                        count += 1;
                        if snapshot {
                            snapshots.push(shard);
                        }
                    } else {
                        tracing::error!(peer, shard, "a raft message too large to send was dropped");
                        dropped.fetch_add(1, Ordering::Relaxed);
                        if snapshot {
                            notifier.send(Notice::Snapshot { shard, to: peer, delivered: false });
                        }
                    }
                }
            }
            if buffer.len() < WRITE_BATCH_BYTES {
                next = queue.try_recv().ok();
            }
        }
        let mut connection = link.stream.lock();
        if connection.is_none() {
            match connect(node, &secret, peer, address) {
                Ok(stream) => {
                    if failed_connects > 0 {
                        tracing::info!(peer, %address, "raft connection to peer restored");
                    }
                    failed_connects = 0;
                    *connection = Some(stream);
                }
                Err(error) => {
                    if failed_connects == 0 {
                        tracing::warn!(peer, %address, %error, "cannot reach peer; its messages are dropped until it answers");
                    }
                    failed_connects += 1;
                    // Not a busy loop while the peer is down; what queues meanwhile is stale.
                    std::thread::sleep(Duration::from_millis(20));
                    while let Ok(stale) = queue.try_recv() {
                        items += 1;
                        taken_bytes += stale.bytes();
                        match stale {
                            Outgoing::Encoded { count: held, .. } => count += held,
                            Outgoing::Message { shard, message } => {
                                count += 1;
                                if message.get_msg_type() == MessageType::MsgSnapshot {
                                    snapshots.push(shard);
                                }
                            }
                        }
                    }
                }
            }
        }
        let delivered = match connection.as_mut() {
            Some(stream) => match stream.write_all(&buffer) {
                Ok(()) => true,
                Err(error) => {
                    tracing::warn!(peer, %error, "raft connection to peer broke");
                    *connection = None;
                    false
                }
            },
            None => false,
        };
        // Written (or dropped) under the lock: the loop may write directly again.
        link.queued_bytes.fetch_sub(taken_bytes, Ordering::SeqCst);
        link.queued.fetch_sub(items, Ordering::SeqCst);
        drop(connection);
        if !delivered {
            dropped.fetch_add(count, Ordering::Relaxed);
        }
        for &shard in &snapshots {
            notifier.send(Notice::Snapshot { shard, to: peer, delivered });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(shard: u32, message: &Message) -> Vec<u8> {
        let body = message.write_to_bytes().expect("encodes");
        let mut out = ((body.len() + 4) as u32).to_le_bytes().to_vec();
        out.extend_from_slice(&shard.to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    fn hello(node: u64) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.push(VERSION);
        out.extend_from_slice(&node.to_le_bytes());
        out
    }

    const SECRET: [u8; 32] = [5; 32];

    /// Connects as node `from` to node 1, proving `secret`.
    fn handshake(address: SocketAddr, from: u64, secret: &[u8; 32]) -> TcpStream {
        let mut peer = TcpStream::connect(address).expect("connects");
        peer.write_all(&hello(from)).expect("hello");
        let mut nonce = [0u8; NONCE_BYTES];
        peer.read_exact(&mut nonce).expect("a nonce");
        peer.write_all(&proof(secret, from, 1, &nonce)).expect("proof");
        peer
    }

    fn message(from: u64, to: u64, kind: MessageType) -> Message {
        let mut message = Message::default();
        message.set_msg_type(kind);
        message.from = from;
        message.to = to;
        message
    }

    /// The connection is closed by the node within 10 s (a read sees the
    /// end or a reset, not a timeout).
    fn closed(stream: &mut TcpStream) -> bool {
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let mut byte = [0u8; 1];
        match stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(error) => !matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        }
    }

    /// Drives `inbox` on a thread as the node's loop does, handing what
    /// arrives to the channel returned, until the flag is set.
    fn drive(mut inbox: Inbox) -> (Receiver<Incoming>, Arc<AtomicBool>) {
        let (sender, received) = bounded(1024);
        let stop = Arc::new(AtomicBool::new(false));
        let halt = stop.clone();
        std::thread::spawn(move || {
            let mut arrived = Vec::new();
            while !halt.load(Ordering::Relaxed) {
                inbox.wait(Duration::from_millis(20), || false);
                inbox.take(&mut arrived);
                for incoming in arrived.drain(..) {
                    let _ = sender.send(incoming);
                }
            }
        });
        (received, stop)
    }

    fn heartbeat_from(received: &Receiver<Incoming>, from: u64) {
        match received.recv_timeout(Duration::from_secs(10)).expect("a message") {
            Incoming::Raft { message, .. } => assert_eq!((message.from, message.get_msg_type()), (from, MessageType::MsgHeartbeat)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn peers_messages_arrive_and_bad_connections_are_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("bound");
        let (_transport, inbox) =
            Transport::start(1, SECRET, listener, &[(1, address), (2, "127.0.0.1:9".parse().expect("an address"))]).expect("starts");
        let (received, stop) = drive(inbox);
        // A peer's heartbeat arrives, with its shard.
        let mut peer = handshake(address, 2, &SECRET);
        peer.write_all(&frame(7, &message(2, 1, MessageType::MsgHeartbeat))).expect("frame");
        match received.recv_timeout(Duration::from_secs(10)).expect("a message") {
            Incoming::Raft { shard, message } => {
                assert_eq!((shard, message.from, message.get_msg_type()), (7, 2, MessageType::MsgHeartbeat))
            }
            other => panic!("{other:?}"),
        }
        // A read index without its context is dropped, the connection kept.
        peer.write_all(&frame(0, &message(2, 1, MessageType::MsgReadIndex))).expect("frame");
        peer.write_all(&frame(0, &message(2, 1, MessageType::MsgHeartbeat))).expect("frame");
        match received.recv_timeout(Duration::from_secs(10)).expect("a message") {
            Incoming::Raft { message, .. } => assert_eq!(message.get_msg_type(), MessageType::MsgHeartbeat),
            other => panic!("{other:?}"),
        }
        // A message for another node closes the connection.
        peer.write_all(&frame(0, &message(2, 3, MessageType::MsgHeartbeat))).expect("frame");
        assert!(closed(&mut peer));
        // So do an unknown node, a wrong magic, the previous version (no
        // handshake), and an oversized frame.
        let mut old_version = hello(2);
        old_version[4] = 1;
        for opening in [hello(9), b"HTTP/1.1 GET /\r\n\r\n".to_vec(), old_version] {
            let mut stranger = TcpStream::connect(address).expect("connects");
            stranger.write_all(&opening).expect("written");
            assert!(closed(&mut stranger), "{opening:?}");
        }
        let mut oversized = handshake(address, 2, &SECRET);
        oversized.write_all(&[((FRAME_MAX + 5) as u32).to_le_bytes().to_vec(), vec![0; 4]].concat()).expect("written");
        assert!(closed(&mut oversized));
        // A peer without the cluster's secret is refused before any frame:
        // its well-formed heartbeat never arrives.
        let mut impostor = handshake(address, 2, &[6; 32]);
        let _ = impostor.write_all(&frame(0, &message(2, 1, MessageType::MsgHeartbeat)));
        assert!(closed(&mut impostor));
        // One that says hello and then nothing is dropped after the
        // handshake's time limit.
        let mut silent = TcpStream::connect(address).expect("connects");
        silent.write_all(&hello(2)).expect("hello");
        silent.read_exact(&mut [0u8; NONCE_BYTES]).expect("a nonce");
        assert!(closed(&mut silent), "a silent peer is closed after {HANDSHAKE_TIMEOUT:?}");
        // So is one that trickles its hello a byte at a time: the time limit
        // is the handshake's, not each read's.
        let mut trickler = TcpStream::connect(address).expect("connects");
        for byte in hello(2) {
            let _ = trickler.write_all(&[byte]);
            std::thread::sleep(Duration::from_millis(250));
        }
        assert!(closed(&mut trickler), "a peer trickling its hello over {HANDSHAKE_TIMEOUT:?} is cut off");
        // A frame announcing a gigabyte and sending little allocates as it
        // reads, and the connection ends cleanly when the peer goes.
        let mut liar = handshake(address, 2, &SECRET);
        liar.write_all(&[((FRAME_MAX) as u32).to_le_bytes().to_vec(), 0u32.to_le_bytes().to_vec(), vec![1; 100]].concat())
            .expect("written");
        drop(liar);
        assert!(received.recv_timeout(Duration::from_millis(200)).is_err(), "nothing arrived from the bad connections");
        stop.store(true, Ordering::Relaxed);
    }

    /// Frames split anywhere across reads arrive whole; a peer that
    /// connects again replaces its previous connection, which is closed.
    #[test]
    fn split_frames_arrive_and_a_reconnecting_peer_replaces_its_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("bound");
        let peers = [(1, address), (2, "127.0.0.1:9".parse().expect("an address")), (3, "127.0.0.1:9".parse().expect("an address"))];
        let (_transport, inbox) = Transport::start(1, SECRET, listener, &peers).expect("starts");
        let (received, stop) = drive(inbox);
        let mut first = handshake(address, 2, &SECRET);
        let mut bytes = Vec::new();
        for _ in 0..3 {
            bytes.extend(frame(4, &message(2, 1, MessageType::MsgHeartbeat)));
        }
        for piece in bytes.chunks(5) {
            first.write_all(piece).expect("written");
            first.flush().expect("flushed");
            std::thread::sleep(Duration::from_millis(2));
        }
        for _ in 0..3 {
            heartbeat_from(&received, 2);
        }
        // Another peer's connection is not disturbed by node 2's return.
        let mut other = handshake(address, 3, &SECRET);
        other.write_all(&frame(0, &message(3, 1, MessageType::MsgHeartbeat))).expect("frame");
        heartbeat_from(&received, 3);
        let mut second = handshake(address, 2, &SECRET);
        second.write_all(&frame(0, &message(2, 1, MessageType::MsgHeartbeat))).expect("frame");
        heartbeat_from(&received, 2);
        assert!(closed(&mut first), "the replaced connection is closed");
        other.write_all(&frame(0, &message(3, 1, MessageType::MsgHeartbeat))).expect("frame");
        heartbeat_from(&received, 3);
        stop.store(true, Ordering::Relaxed);
    }

    /// Frames cut at every point and fed in pieces of every size from 1 to
    /// 40 bytes come out whole and in order, whatever the reads' sizes.
    #[test]
    fn frames_split_anywhere_come_out_whole_and_in_order() {
        let mut stream = Vec::new();
        for (n, kind) in [MessageType::MsgAppend, MessageType::MsgHeartbeat, MessageType::MsgAppendResponse].into_iter().enumerate() {
            let mut m = message(2, 1, kind);
            m.index = n as u64 + 1;
            m.entries = vec![raft::eraftpb::Entry { data: vec![n as u8; 7 * n].into(), ..Default::default() }].into();
            stream.extend(frame(n as u32, &m));
        }
        for piece in 1..=40 {
            let (mut frames, mut arrived) = (Frames::default(), Vec::new());
            for bytes in stream.chunks(piece) {
                frames.extend(bytes);
                frames.take(2, 1, &mut arrived).expect("well-formed frames");
            }
            let got: Vec<(u32, u64)> = arrived
                .iter()
                .map(|incoming| match incoming {
                    Incoming::Raft { shard, message } => (*shard, message.index),
                    other => panic!("{other:?}"),
                })
                .collect();
            assert_eq!(got, vec![(0, 1), (1, 2), (2, 3)], "pieces of {piece} bytes");
            assert!(frames.buffer.is_empty() && frames.start == 0, "nothing left over");
        }
    }

    /// Bytes of any value, in pieces of any size, end in an error or in
    /// waiting for more: never a panic, and never more memory than the bytes
    /// given.
    #[test]
    fn garbage_never_panics_and_allocates_only_what_arrives() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..2_000 {
            let (mut frames, mut arrived) = (Frames::default(), Vec::new());
            let length = (next() % 300) as usize;
            let mut bytes: Vec<u8> = (0..length).map(|_| next() as u8).collect();
            // Half the cases open with a plausible header, so the parser is reached.
            if next() % 2 == 0 && bytes.len() >= 8 {
                let body = (bytes.len() - 4) as u32;
                bytes[..4].copy_from_slice(&body.to_le_bytes());
            }
            let piece = 1 + (next() % 64) as usize;
            for chunk in bytes.chunks(piece) {
                frames.extend(chunk);
                if frames.take(2, 1, &mut arrived).is_err() {
                    break;
                }
                assert!(frames.buffer.capacity() <= (2 * length).max(64), "allocated beyond what arrived");
            }
        }
    }

    /// Handshakes run on threads of their own, so a connection can be
    /// handed over after a newer one from the same peer: it is dropped.
    #[test]
    fn an_older_connection_handed_over_late_does_not_replace_a_newer_one() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("bound");
        let (_transport, mut inbox) =
            Transport::start(1, SECRET, listener, &[(1, address), (2, "127.0.0.1:9".parse().expect("an address"))]).expect("starts");
        let side = TcpListener::bind("127.0.0.1:0").expect("bind");
        let pair = || {
            let client = TcpStream::connect(side.local_addr().expect("bound")).expect("connects");
            let (server, _) = side.accept().expect("accepts");
            server.set_nonblocking(true).expect("non-blocking");
            (client, server)
        };
        let (mut newer_client, newer) = pair();
        let (mut older_client, older) = pair();
        inbox.adopt(2, 5, newer);
        inbox.adopt(2, 3, older);
        assert!(closed(&mut older_client), "the older connection is dropped");
        newer_client.write_all(&frame(0, &message(2, 1, MessageType::MsgHeartbeat))).expect("frame");
        let mut arrived = Vec::new();
        for _ in 0..500 {
            inbox.wait(Duration::from_millis(20), || false);
            inbox.take(&mut arrived);
            if !arrived.is_empty() {
                break;
            }
        }
        match arrived.pop() {
            Some(Incoming::Raft { message, .. }) => assert_eq!(message.from, 2),
            other => panic!("the newer connection's message: {other:?}"),
        }
    }

    /// Reads one frame (shard, message) from a node's outgoing connection.
    fn read_frame(stream: &mut TcpStream) -> (u32, Message) {
        let mut header = [0u8; 8];
        stream.read_exact(&mut header).expect("a frame header");
        let length = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let mut body = vec![0u8; length - 4];
        stream.read_exact(&mut body).expect("a frame body");
        (u32::from_le_bytes(header[4..].try_into().expect("4 bytes")), Message::parse_from_bytes(&body).expect("a message"))
    }

    /// Node 1's transport with node 2 a listener of the test's own.
    fn toward_a_test_peer() -> (Transport, Inbox, TcpListener) {
        let own = TcpListener::bind("127.0.0.1:0").expect("bind");
        let own_address = own.local_addr().expect("bound");
        let peer = TcpListener::bind("127.0.0.1:0").expect("bind");
        let peer_address = peer.local_addr().expect("bound");
        let (transport, inbox) = Transport::start(1, SECRET, own, &[(1, own_address), (2, peer_address)]).expect("starts");
        (transport, inbox, peer)
    }

    /// An append from node 1 to node 2 numbered `n`, one entry of `bytes`.
    fn numbered(n: u64, bytes: usize) -> (u32, Message) {
        let mut m = message(1, 2, MessageType::MsgAppend);
        m.index = n;
        m.entries = vec![raft::eraftpb::Entry { data: vec![n as u8; bytes].into(), ..Default::default() }].into();
        (3, m)
    }

    /// Takes node 1's connection on `listener` as node 2 would: its hello
    /// and its proof of the secret for `nonce`.
    fn accept_as_peer(listener: &TcpListener, nonce: [u8; NONCE_BYTES]) -> (TcpStream, [u8; 13], [u8; PROOF_BYTES]) {
        let (mut stream, _) = listener.accept().expect("the node connects");
        let mut hello = [0u8; 13];
        stream.read_exact(&mut hello).expect("hello");
        stream.write_all(&nonce).expect("nonce");
        let mut offered = [0u8; PROOF_BYTES];
        stream.read_exact(&mut offered).expect("proof");
        (stream, hello, offered)
    }

    /// Messages written directly by the loop and those left to the writer
    /// thread (no connection yet, a socket buffer full because the peer
    /// does not read, the rest of a partial write) reach the peer whole and
    /// in the order they were sent.
    #[test]
    fn direct_and_queued_writes_arrive_whole_and_in_order() {
        let (mut transport, _inbox, peer) = toward_a_test_peer();
        // The first goes through the writer thread, which connects.
        assert!(transport.send_all(&mut vec![numbered(0, 10)]).is_empty());
        let nonce = [9u8; NONCE_BYTES];
        let (mut stream, hello, offered) = accept_as_peer(&peer, nonce);
        assert_eq!(hello.to_vec(), self::hello(1));
        assert_eq!(offered, proof(&SECRET, 1, 2, &nonce));
        assert_eq!(read_frame(&mut stream).1.index, 0);
        // Idle: the next turn is written by the loop itself, in one write.
        for _ in 0..100 {
            if transport.peers[&2].link.queued.load(Ordering::SeqCst) == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut outbox: Vec<(u32, Message)> = (1..=3).map(|n| numbered(n, 10)).collect();
        assert!(transport.send_all(&mut outbox).is_empty() && outbox.is_empty());
        assert_eq!(transport.direct_writes, 1);
        for n in 1..=3 {
            let (shard, message) = read_frame(&mut stream);
            assert_eq!((shard, message.index), (3, n));
        }
        // The peer stops reading: turns of 1 MB fill the socket's buffers,
        // the rest of a partial write and what follows queue for the thread.
        let mut n = 4;
        for _ in 0..24 {
            let mut outbox: Vec<(u32, Message)> = (0..16).map(|i| numbered(n + i, 64 << 10)).collect();
            n += 16;
            transport.send_all(&mut outbox);
        }
        assert!(transport.peers[&2].link.queued.load(Ordering::SeqCst) > 0, "24 MB unread: some had to wait for the thread");
        for expected in 4..n {
            let (_, message) = read_frame(&mut stream);
            assert_eq!(message.index, expected, "in order");
            assert_eq!(message.entries[0].data.len(), 64 << 10, "whole");
        }
        // Drained: direct writes again.
        for _ in 0..100 {
            if transport.peers[&2].link.queued.load(Ordering::SeqCst) == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(transport.peers[&2].link.queued.load(Ordering::SeqCst), 0);
        let before = transport.direct_writes;
        transport.send_all(&mut vec![numbered(n, 10)]);
        assert_eq!(transport.direct_writes, before + 1);
        assert_eq!(read_frame(&mut stream).1.index, n);
        assert_eq!(transport.dropped(), 0);
    }

    /// A peer that takes the connection and then reads nothing: what waits
    /// for it never passes `PEER_QUEUE_BYTES` (the rest is dropped), and
    /// the stuck write gives up after `PEER_WRITE_TIMEOUT`, so the writer
    /// connects again instead of hanging on the dead connection forever.
    #[test]
    fn a_peer_that_stops_reading_holds_bounded_bytes_and_its_stuck_write_gives_up() {
        let (mut transport, _inbox, peer) = toward_a_test_peer();
        let append = |bytes: usize| numbered(1, bytes);
        assert!(transport.send_all(&mut vec![append(10)]).is_empty());
        let _silent = accept_as_peer(&peer, [9u8; NONCE_BYTES]);
        // 256 turns of 1 MB toward a peer that reads nothing.
        let mut most = 0;
        for _ in 0..256 {
            transport.send_all(&mut vec![append(1 << 20)]);
            most = most.max(transport.peers[&2].link.queued_bytes.load(Ordering::SeqCst));
        }
        assert!(most <= PEER_QUEUE_BYTES, "{most} bytes queued");
        assert!(transport.dropped() > 100, "the rest dropped: {}", transport.dropped());
        // The writer's stuck write gives up; it connects again for what follows.
        peer.set_nonblocking(true).expect("nonblocking");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let again = loop {
            transport.send_all(&mut vec![append(10)]);
            match peer.accept() {
                Ok(connection) => break connection,
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(std::time::Instant::now() < deadline, "the writer never gave up its stuck write");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(error) => panic!("{error}"),
            }
        };
        drop(again);
    }
}
