//! Raft messages between nodes over TCP, batched.
//!
//! Each node listens on its raft address and keeps one outgoing connection
//! per peer, written by a thread of its own from a bounded queue: whatever
//! has queued up while the previous write was on the wire goes out in the
//! next single write (up to `WRITE_BATCH_BYTES`), so a busy node sends few
//! large writes rather than one per message. A full queue or a broken
//! connection drops messages, which raft tolerates (it resends); a dropped
//! or failed snapshot is reported back so the leader tries again.
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
use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use hmac::{Hmac, Mac};
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
/// Messages queued toward one peer at most.
pub const PEER_QUEUE: usize = 65_536;
/// Connections accepted at once at most (peers reconnect after a failure).
const INBOUND_CONNECTIONS_MAX: usize = 64;

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

struct Outgoing {
    shard: u32,
    message: Message,
}

/// The sending half: one queue and writer thread per peer.
#[derive(Debug)]
pub struct Transport {
    peers: HashMap<u64, Sender<Outgoing>>,
    dropped: Arc<AtomicUsize>,
}

impl Transport {
    /// Listens on `listener` for peers' connections and starts a writer for
    /// each peer in `peers` (this node's own entry is skipped). Received
    /// messages and snapshot reports go to `inbound` (a full queue drops
    /// them, as the network may).
    pub fn start(
        node: u64,
        secret: [u8; 32],
        listener: TcpListener,
        peers: &[(u64, SocketAddr)],
        inbound: Sender<Incoming>,
    ) -> std::io::Result<Transport> {
        let known: Vec<u64> = peers.iter().map(|(id, _)| *id).collect();
        let accepting = inbound.clone();
        std::thread::Builder::new().name("raft-accept".into()).spawn(move || accept(listener, node, secret, known, accepting))?;
        let dropped = Arc::new(AtomicUsize::new(0));
        let mut senders = HashMap::new();
        for &(peer, address) in peers.iter().filter(|(id, _)| *id != node) {
            let (sender, receiver) = bounded(PEER_QUEUE);
            let (inbound, dropped) = (inbound.clone(), dropped.clone());
            std::thread::Builder::new()
                .name(format!("raft-to-{peer}"))
                .spawn(move || write_to(node, secret, peer, address, receiver, inbound, dropped))?;
            senders.insert(peer, sender);
        }
        Ok(Transport { peers: senders, dropped })
    }

    /// Queues `message` (of `shard`'s group) toward its `to` node. False:
    /// it was dropped (a full queue, an unknown node); for a snapshot the
    /// caller must tell raft it failed, since no writer will.
    pub fn send(&self, shard: u32, message: Message) -> bool {
        let to = message.to;
        let Some(queue) = self.peers.get(&to) else {
            tracing::warn!(to, shard, "a raft message for an unknown node was dropped");
            return false;
        };
        match queue.try_send(Outgoing { shard, message }) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Messages dropped so far (full queues, broken connections).
    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::Relaxed)
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

fn accept(listener: TcpListener, me: u64, secret: [u8; 32], known: Vec<u64>, inbound: Sender<Incoming>) {
    let open = Arc::new(AtomicUsize::new(0));
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
            tracing::warn!("too many raft connections: one refused");
            continue;
        }
        open.fetch_add(1, Ordering::Relaxed);
        let (known, inbound, open) = (known.clone(), inbound.clone(), open.clone());
        let spawned = std::thread::Builder::new().name("raft-from".into()).spawn(move || {
            if let Err(error) = read_from(stream, me, &secret, &known, &inbound) {
                tracing::debug!(%error, "a raft connection closed");
            }
            open.fetch_sub(1, Ordering::Relaxed);
        });
        if let Err(error) = spawned {
            tracing::error!(%error, "no thread for a raft connection");
        }
    }
}

fn invalid(what: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
}

fn read_from(mut stream: TcpStream, me: u64, secret: &[u8; 32], known: &[u64], inbound: &Sender<Incoming>) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    stream.set_write_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let mut hello = [0u8; 13];
    stream.read_exact(&mut hello)?;
    if &hello[..4] != MAGIC || hello[4] != VERSION {
        return Err(invalid("not a raft connection of this version".into()));
    }
    let from = u64::from_le_bytes(hello[5..13].try_into().expect("8 bytes"));
    if !known.contains(&from) {
        return Err(invalid(format!("node {from} is not a peer")));
    }
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::fill(&mut nonce).map_err(|error| std::io::Error::other(format!("no OS entropy for a handshake: {error}")))?;
    stream.write_all(&nonce)?;
    let mut offered = [0u8; PROOF_BYTES];
    stream.read_exact(&mut offered)?;
    let expected = proof(secret, from, me, &nonce);
    // Constant time: a forger learns nothing from how long a refusal takes.
    if offered.iter().zip(expected.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) != 0 {
        tracing::warn!(from, "a raft connection without the cluster's secret was refused");
        return Err(invalid(format!("node {from} did not prove the cluster's secret")));
    }
    stream.set_read_timeout(None)?;
    stream.set_write_timeout(None)?;
    let mut reader = BufReader::with_capacity(256 << 10, stream);
    let mut body = Vec::new();
    loop {
        let mut header = [0u8; 8];
        reader.read_exact(&mut header)?;
        let length = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let shard = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        if !(4..=FRAME_MAX).contains(&length) {
            return Err(invalid(format!("a frame of {length} bytes from node {from}")));
        }
        // Grown as the bytes arrive, not allocated on the header's word.
        body.clear();
        (&mut reader).take((length - 4) as u64).read_to_end(&mut body)?;
        if body.len() != length - 4 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let message = Message::parse_from_bytes(&body).map_err(|e| invalid(format!("a message from node {from}: {e}")))?;
        if body.capacity() > WRITE_BATCH_BYTES {
            body = Vec::new();
        }
        if message.from != from || message.to != me {
            return Err(invalid(format!("node {from} sent a message from {} to {}", message.from, message.to)));
        }
        // raft-rs reads a read-index request's context from its first entry.
        let read_index = matches!(message.get_msg_type(), MessageType::MsgReadIndex | MessageType::MsgReadIndexResp);
        if read_index && message.entries.is_empty() {
            tracing::warn!(from, shard, "a read-index message without its context was dropped");
            continue;
        }
        // A full inbox drops it: raft resends.
        let _ = inbound.try_send(Incoming::Raft { shard, message });
    }
}

fn connect(node: u64, secret: &[u8; 32], peer: u64, address: SocketAddr) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_millis(500))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let mut hello = Vec::with_capacity(13);
    hello.extend_from_slice(MAGIC);
    hello.push(VERSION);
    hello.extend_from_slice(&node.to_le_bytes());
    stream.write_all(&hello)?;
    let mut nonce = [0u8; NONCE_BYTES];
    stream.read_exact(&mut nonce)?;
    stream.write_all(&proof(secret, node, peer, &nonce))?;
    stream.set_read_timeout(None)?;
    Ok(stream)
}

fn write_to(
    node: u64,
    secret: [u8; 32],
    peer: u64,
    address: SocketAddr,
    queue: Receiver<Outgoing>,
    inbound: Sender<Incoming>,
    dropped: Arc<AtomicUsize>,
) {
    let mut connection: Option<TcpStream> = None;
    let mut buffer = Vec::with_capacity(WRITE_BATCH_BYTES);
    let mut snapshots: Vec<u32> = Vec::new();
    let mut failed_connects = 0u32;
    while let Ok(first) = queue.recv() {
        buffer.clear();
        snapshots.clear();
        let mut count = 0usize;
        let mut next = Some(first);
        while let Some(outgoing) = next.take() {
            let snapshot = outgoing.message.get_msg_type() == MessageType::MsgSnapshot;
            let start = buffer.len();
            buffer.extend_from_slice(&[0u8; 8]);
            if outgoing.message.write_to_vec(&mut buffer).is_err() || buffer.len() - start - 4 > FRAME_MAX {
                tracing::error!(peer, shard = outgoing.shard, bytes = buffer.len() - start, "a raft message too large to send was dropped");
                buffer.truncate(start);
                if snapshot {
                    let _ = inbound.send(Incoming::SnapshotStatus { shard: outgoing.shard, to: peer, delivered: false });
                }
                if buffer.len() < WRITE_BATCH_BYTES {
                    next = queue.try_recv().ok();
                }
                continue;
            }
            if snapshot {
                snapshots.push(outgoing.shard);
            }
            let length = (buffer.len() - start - 4) as u32;
            buffer[start..start + 4].copy_from_slice(&length.to_le_bytes());
            buffer[start + 4..start + 8].copy_from_slice(&outgoing.shard.to_le_bytes());
            count += 1;
            if buffer.len() < WRITE_BATCH_BYTES {
                next = queue.try_recv().ok();
            }
        }
        if connection.is_none() {
            match connect(node, &secret, peer, address) {
                Ok(stream) => {
                    if failed_connects > 0 {
                        tracing::info!(peer, %address, "raft connection to peer restored");
                    }
                    failed_connects = 0;
                    connection = Some(stream);
                }
                Err(error) => {
                    if failed_connects == 0 {
                        tracing::warn!(peer, %address, %error, "cannot reach peer; its messages are dropped until it answers");
                    }
                    failed_connects += 1;
                    // Not a busy loop while the peer is down; what queues meanwhile is stale.
                    std::thread::sleep(Duration::from_millis(20));
                    while let Ok(stale) = queue.try_recv() {
                        count += 1;
                        if stale.message.get_msg_type() == MessageType::MsgSnapshot {
                            snapshots.push(stale.shard);
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
                    connection = None;
                    false
                }
            },
            None => false,
        };
        if !delivered {
            dropped.fetch_add(count, Ordering::Relaxed);
        }
        for &shard in &snapshots {
            // Waits for room: a lost report would leave the follower paused.
            let _ = inbound.send(Incoming::SnapshotStatus { shard, to: peer, delivered });
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

    /// The connection is closed by the node (a read sees the end).
    fn closed(stream: &mut TcpStream) -> bool {
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let mut byte = [0u8; 1];
        matches!(stream.read(&mut byte), Ok(0) | Err(_))
    }

    #[test]
    fn peers_messages_arrive_and_bad_connections_are_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("bound");
        let (inbound, received) = bounded(16);
        let _transport = Transport::start(1, SECRET, listener, &[(1, address), (2, "127.0.0.1:9".parse().expect("an address"))], inbound)
            .expect("starts");
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
        // A frame announcing a gigabyte and sending little allocates as it
        // reads, and the connection ends cleanly when the peer goes.
        let mut liar = handshake(address, 2, &SECRET);
        liar.write_all(&[((FRAME_MAX) as u32).to_le_bytes().to_vec(), 0u32.to_le_bytes().to_vec(), vec![1; 100]].concat())
            .expect("written");
        drop(liar);
        assert!(received.recv_timeout(Duration::from_millis(200)).is_err(), "nothing arrived from the bad connections");
    }
}
