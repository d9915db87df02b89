//! Floors: what this machine gives a request when nothing of ours is in
//! the way, measured the way `casino load` measures the node, so a gap
//! between a floor and the node is the node's (or the load generator's),
//! and a goal under a floor is out of this machine's reach.
//!
//! - [`commit`]: a replicated, durable commit. Three "nodes" (threads)
//!   with a log file each, the leader's batch sent to two followers over
//!   loopback TCP, each copy appended and fdatasynced, a bet answered once
//!   two of the three copies are synced. No raft, no engine, no RocksDB.
//! - [`echo`]: a request over loopback. One mio server thread echoing
//!   64-byte frames, one mio client thread sending open loop on 4
//!   connections in turns spread over each millisecond, as `casino load
//!   --rate` does. No decoding, no engine; with `hand_over`, each batch
//!   goes to a second thread and back before it is written, as the node's
//!   connection thread hands its batch to its shard.
//!
//! Both are open loop: request k is due at k / rate, whatever came before.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// A run with no progress for this long failed (a thread died).
const STUCK: Duration = Duration::from_secs(5);

/// What a floor measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub rate: u64,
    pub requests: u64,
    /// Requests in the histogram (the first tenth is warm-up).
    pub recorded: u64,
    /// Turns: the leader's batches written ([`commit`]) or the sender's
    /// turns, one connection's each ([`echo`]).
    pub turns: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Report {
    fn new(rate: u64, requests: u64, turns: u64, histogram: &Histogram<u64>) -> Report {
        Report {
            rate,
            requests,
            recorded: histogram.len(),
            turns,
            p50_us: histogram.value_at_quantile(0.5),
            p99_us: histogram.value_at_quantile(0.99),
            p999_us: histogram.value_at_quantile(0.999),
            max_us: histogram.max(),
        }
    }

    pub fn json(&self, what: &str) -> String {
        let ms = |us: u64| us as f64 / 1000.0;
        format!(
            "{{\"floor\":\"{what}\",\"rate\":{},\"requests\":{},\"turns\":{},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3},\"max_ms\":{:.3}}}",
            self.rate,
            self.requests,
            self.turns,
            ms(self.p50_us),
            ms(self.p99_us),
            ms(self.p999_us),
            ms(self.max_us)
        )
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

fn stuck(what: &str) -> std::io::Error {
    std::io::Error::new(ErrorKind::TimedOut, format!("{what}: no progress for {STUCK:?}"))
}

// ---------------------------------------------------------------------------
// A replicated, durable commit.

/// Where the leader's own copy is written.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Leader {
    /// By the loop, between its turns, as the cluster's raft loop does: the
    /// loop sends the batch to the followers, then appends and syncs it,
    /// and meanwhile takes in nothing.
    Inline,
    /// By a writer thread while the loop goes on taking bets and
    /// acknowledgments; a bet is answered once committed (two copies of
    /// three) and on the leader's own disk (raft-rs's rule for applying).
    Aside,
}

/// About the size of one bet's raft entry in the cluster.
const ENTRY: usize = 300;

enum Event {
    Due(Instant),
    Acked(usize, u64),
    Synced(u64),
}

fn append(file: &mut File, bytes: &[u8]) -> std::io::Result<()> {
    file.write_all(bytes)?;
    file.sync_data()
}

/// A follower: appends and syncs what has arrived whole, then acknowledges
/// the last index. Messages: [last index u64][entries u32][entries * ENTRY].
fn follower(mut stream: std::net::TcpStream, mut file: File) -> std::io::Result<()> {
    let mut buffer = vec![0u8; 1 << 20];
    let mut held = 0usize;
    loop {
        if held == buffer.len() {
            buffer.resize(2 * held, 0);
        }
        let read = stream.read(&mut buffer[held..])?;
        if read == 0 {
            return Ok(());
        }
        held += read;
        let (mut at, mut last) = (0, None);
        while held - at >= 12 {
            let count = u32::from_le_bytes(buffer[at + 8..at + 12].try_into().expect("4 bytes")) as usize;
            if held - at < 12 + count * ENTRY {
                break;
            }
            last = Some(u64::from_le_bytes(buffer[at..at + 8].try_into().expect("8 bytes")));
            at += 12 + count * ENTRY;
        }
        if let Some(last) = last {
            append(&mut file, &buffer[..at])?;
            stream.write_all(&last.to_le_bytes())?;
            buffer.copy_within(at..held, 0);
            held -= at;
        }
    }
}

/// Commits `rate * seconds` bets through a leader and two followers whose
/// logs are files in `dir` (appended, growing, as RocksDB's write-ahead log
/// is). Latency runs from the moment a bet was due to the leader's turn that
/// sees it committed.
pub fn commit(dir: &Path, leader: Leader, rate: u64, seconds: f64) -> std::io::Result<Report> {
    std::fs::create_dir_all(dir)?;
    let open = |name: &str| OpenOptions::new().create(true).truncate(true).write(true).open(dir.join(name));
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let total = ((rate as f64 * seconds) as u64).max(1);
    let (events, inbox) = mpsc::sync_channel::<Event>(total as usize + 16);
    let mut links = Vec::new();
    for id in 0..2 {
        let link = std::net::TcpStream::connect(address)?;
        link.set_nodelay(true)?;
        let (accepted, _) = listener.accept()?;
        accepted.set_nodelay(true)?;
        let file = open(&format!("follower-{id}.log"))?;
        thread::spawn(move || follower(accepted, file));
        let mut acks = link.try_clone()?;
        let events = events.clone();
        thread::spawn(move || {
            let mut word = [0u8; 8];
            while acks.read_exact(&mut word).is_ok() {
                if events.send(Event::Acked(id, u64::from_le_bytes(word))).is_err() {
                    return;
                }
            }
        });
        links.push(link);
    }
    let mut file = Some(open("leader.log")?);
    let (to_writer, writes) = mpsc::sync_channel::<(u64, Vec<u8>)>(total as usize + 16);
    if leader == Leader::Aside {
        let mut file = file.take().expect("opened above");
        let events = events.clone();
        thread::spawn(move || -> std::io::Result<()> {
            while let Ok((mut last, mut bytes)) = writes.recv() {
                while let Ok((more, more_bytes)) = writes.try_recv() {
                    last = more;
                    bytes.extend_from_slice(&more_bytes);
                }
                append(&mut file, &bytes)?;
                if events.send(Event::Synced(last)).is_err() {
                    break;
                }
            }
            Ok(())
        });
    }
    let start = Instant::now() + Duration::from_millis(20);
    let pacer = thread::spawn(move || {
        for k in 0..total {
            let due = start + Duration::from_secs_f64(k as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
            if events.send(Event::Due(due)).is_err() {
                return;
            }
        }
    });

    let warmup = total / 10;
    let mut due: Vec<Instant> = Vec::with_capacity(total as usize);
    let (mut proposed, mut synced, mut acked, mut answered) = (0u64, 0u64, [0u64; 2], 0u64);
    let (mut histogram, mut turns, mut batch) = (histogram(), 0u64, Vec::new());
    while answered < total {
        let mut event = Some(inbox.recv_timeout(STUCK).map_err(|_: RecvTimeoutError| stuck("commit floor"))?);
        while let Some(next) = event {
            match next {
                Event::Due(at) => due.push(at),
                Event::Acked(id, last) => acked[id] = acked[id].max(last),
                Event::Synced(last) => synced = synced.max(last),
            }
            event = inbox.try_recv().ok();
        }
        let new = due.len() as u64 - proposed;
        if new > 0 {
            proposed += new;
            batch.clear();
            batch.extend_from_slice(&proposed.to_le_bytes());
            batch.extend_from_slice(&(new as u32).to_le_bytes());
            batch.resize(12 + new as usize * ENTRY, 0x5a);
            for link in &mut links {
                link.write_all(&batch)?;
            }
            match &mut file {
                Some(file) => {
                    append(file, &batch)?;
                    synced = proposed;
                }
                None => to_writer.send((proposed, batch.clone())).map_err(|_| stuck("the leader's writer"))?,
            }
            turns += 1;
        }
        let mut copies = [synced, acked[0], acked[1]];
        copies.sort_unstable();
        let committed = copies[1].min(synced);
        let now = Instant::now();
        while answered < committed {
            if answered >= warmup {
                histogram.saturating_record(now.duration_since(due[answered as usize]).as_micros() as u64);
            }
            answered += 1;
        }
    }
    drop(links);
    pacer.join().map_err(|_| stuck("the pacer"))?;
    Ok(Report::new(rate, total, turns, &histogram))
}

// ---------------------------------------------------------------------------
// A request over loopback.

const FRAME: usize = 64;
const CONNECTIONS: usize = 4;
const PACE: Duration = Duration::from_millis(1);
const LISTENER: mio::Token = mio::Token(usize::MAX);

/// Reads what has arrived on `stream` into `held`; false once it closed.
fn drain(stream: &mut mio::net::TcpStream, held: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut chunk = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(false),
            Ok(read) => held.extend_from_slice(&chunk[..read]),
            Err(error) if error.kind() == ErrorKind::WouldBlock => return Ok(true),
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
}

/// Writes all of `bytes`, waiting out a full socket buffer (rare: the
/// other side reads as fast as it can).
fn send(stream: &mut mio::net::TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        match stream.write(bytes) {
            Ok(written) => bytes = &bytes[written..],
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => thread::yield_now(),
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

const WAKER: mio::Token = mio::Token(usize::MAX - 1);

/// Echoes whole frames until a connection closes: straight back from the
/// reading thread, or (`hand_over`) through a second thread and back, as
/// the node's connection thread hands a batch to its shard and the shard
/// its answers back.
fn serve(mut listener: mio::net::TcpListener, hand_over: bool) -> std::io::Result<()> {
    let mut poll = mio::Poll::new()?;
    poll.registry().register(&mut listener, LISTENER, mio::Interest::READABLE)?;
    let waker = std::sync::Arc::new(mio::Waker::new(poll.registry(), WAKER)?);
    let (to_shard, jobs) = crossbeam_channel::bounded::<(usize, Vec<u8>)>(1024);
    let (to_connections, answers) = crossbeam_channel::bounded::<(usize, Vec<u8>)>(1024);
    let shard = hand_over.then(|| {
        let waker = waker.clone();
        thread::spawn(move || {
            while let Ok(job) = jobs.recv() {
                if to_connections.send(job).is_err() || waker.wake().is_err() {
                    return;
                }
            }
        })
    });
    let mut events = mio::Events::with_capacity(64);
    let mut streams: Vec<(mio::net::TcpStream, Vec<u8>)> = Vec::new();
    let outcome = loop {
        poll.poll(&mut events, Some(STUCK))?;
        if events.is_empty() {
            break Err(stuck("echo server"));
        }
        let mut closed = false;
        for event in &events {
            match event.token() {
                LISTENER => {
                    while let Ok((mut stream, _)) = listener.accept() {
                        stream.set_nodelay(true)?;
                        poll.registry().register(&mut stream, mio::Token(streams.len()), mio::Interest::READABLE)?;
                        streams.push((stream, Vec::new()));
                    }
                }
                WAKER => {
                    while let Ok((token, bytes)) = answers.try_recv() {
                        send(&mut streams[token].0, &bytes)?;
                    }
                }
                token => {
                    let (stream, held) = &mut streams[token.0];
                    closed |= !drain(stream, held)?;
                    let whole = held.len() / FRAME * FRAME;
                    if hand_over {
                        if whole > 0 {
                            to_shard.send((token.0, held[..whole].to_vec())).map_err(|_| stuck("the echo shard"))?;
                        }
                    } else {
                        send(stream, &held[..whole])?;
                    }
                    held.drain(..whole);
                }
            }
        }
        if closed {
            break Ok(());
        }
    };
    drop(to_shard);
    if let Some(shard) = shard {
        shard.join().map_err(|_| stuck("the echo shard"))?;
    }
    outcome
}

/// Sends `rate * seconds` 64-byte requests to an echo server (answering
/// from its reading thread, or through a second thread and back with
/// `hand_over`), open loop:
/// request k due at k / rate, on connection k mod 4, each connection
/// sending what it has due in its turn, the turns spread evenly over each
/// millisecond. Latency runs from the send to the echo's arrival.
pub fn echo(rate: u64, seconds: f64, hand_over: bool) -> std::io::Result<Report> {
    let listener = mio::net::TcpListener::bind("127.0.0.1:0".parse::<SocketAddr>().expect("an address"))?;
    let address = listener.local_addr()?;
    let server = thread::spawn(move || serve(listener, hand_over));
    let report = drive(address, rate, seconds);
    let served = server.join().map_err(|_| stuck("echo server"))?;
    let report = report?;
    served?;
    Ok(report)
}

fn drive(address: SocketAddr, rate: u64, seconds: f64) -> std::io::Result<Report> {
    let mut poll = mio::Poll::new()?;
    let mut streams = Vec::new();
    for c in 0..CONNECTIONS {
        let stream = std::net::TcpStream::connect(address)?;
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        let mut stream = mio::net::TcpStream::from_std(stream);
        poll.registry().register(&mut stream, mio::Token(c), mio::Interest::READABLE)?;
        streams.push((stream, Vec::new()));
    }
    let total = ((rate as f64 * seconds) as u64).max(CONNECTIONS as u64);
    let warmup = total / 10;
    let n = CONNECTIONS as u64;
    let mut histogram = histogram();
    let mut events = mio::Events::with_capacity(64);
    let start = Instant::now();
    let slot = PACE / CONNECTIONS as u32;
    let (mut turn, mut sent, mut received, mut progress) = (0u32, [0u64; CONNECTIONS], 0u64, Instant::now());
    let mut frames = Vec::new();
    while received < total {
        let now = Instant::now();
        if now.duration_since(progress) > STUCK {
            return Err(stuck("echo client"));
        }
        let next_turn = start + slot * turn;
        if now >= next_turn {
            let c = turn as usize % CONNECTIONS;
            turn += 1;
            // Requests 0..=elapsed * rate are due; connection c's are those k
            // with k mod n = c.
            let due_all = ((now.duration_since(start).as_secs_f64() * rate as f64) as u64 + 1).min(total);
            let due = (due_all + n - 1 - c as u64) / n;
            if due > sent[c] {
                frames.clear();
                let at = start.elapsed().as_nanos() as u64;
                for _ in sent[c]..due {
                    frames.extend_from_slice(&at.to_le_bytes());
                    frames.resize(frames.len() + FRAME - 8, 0);
                }
                send(&mut streams[c].0, &frames)?;
                sent[c] = due;
            }
            continue;
        }
        poll.poll(&mut events, Some(next_turn - now))?;
        for event in &events {
            let (stream, held) = &mut streams[event.token().0];
            drain(stream, held)?;
            let now = start.elapsed().as_nanos() as u64;
            let whole = held.len() / FRAME;
            for frame in held.chunks_exact(FRAME) {
                let at = u64::from_le_bytes(frame[..8].try_into().expect("8 bytes"));
                if received >= warmup {
                    histogram.saturating_record(now.saturating_sub(at) / 1_000);
                }
                received += 1;
                progress = Instant::now();
            }
            held.drain(..whole * FRAME);
        }
    }
    Ok(Report::new(rate, total, u64::from(turn), &histogram))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commit_floor_answers_every_bet_either_way() {
        let dir = std::env::temp_dir().join(format!("commit-floor-test-{}", std::process::id()));
        for leader in [Leader::Inline, Leader::Aside] {
            let report = commit(&dir, leader, 2_000, 0.25).expect("runs");
            assert_eq!(report.requests, 500);
            // Everything after the warm-up tenth was answered and recorded.
            assert_eq!(report.recorded, 450, "{leader:?}");
            assert!(report.turns >= 1 && report.turns <= 500);
            assert!(report.p50_us <= report.p99_us && report.p99_us <= report.max_us);
            // Each follower's log holds every bet.
            for id in 0..2 {
                let len = std::fs::metadata(dir.join(format!("follower-{id}.log"))).expect("written").len();
                assert_eq!(len, 500 * ENTRY as u64 + 12 * report.turns, "{leader:?}");
            }
        }
        std::fs::remove_dir_all(&dir).expect("removed");
    }

    #[test]
    fn the_echo_floor_gets_every_request_back() {
        for hand_over in [false, true] {
            let report = echo(20_000, 0.25, hand_over).expect("runs");
            assert_eq!(report.requests, 5_000);
            assert_eq!(report.recorded, 4_500);
            assert!(report.p50_us <= report.p99_us && report.p99_us <= report.max_us);
        }
    }
}
