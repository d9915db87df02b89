//! Group commit: one writer thread takes the staged writes of every shard,
//! writes all that is waiting as one atomic batch, syncs once, and only then
//! runs each submission's completion (which sends the replies). Many shards
//! and many requests share one fsync; a reply never leaves before its
//! write is durable.
//!
//! A write that fails leaves the shards' memory ahead of the disk; the
//! node cannot serve on from there, so the writer stops the process (as
//! TigerBeetle and TiKV do on a failed fsync) after logging the error.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::store::{Op, Store};

/// How far a write goes before its reply is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// fsync once per group (the default): an acknowledged bet survives a
    /// power loss.
    #[default]
    Sync,
    /// Written to the write-ahead log without fsync: survives a process
    /// crash (the OS has the bytes), not a power loss or kernel crash.
    Buffered,
}

impl std::str::FromStr for Durability {
    type Err = String;
    fn from_str(text: &str) -> Result<Durability, String> {
        match text {
            "sync" => Ok(Durability::Sync),
            "buffered" => Ok(Durability::Buffered),
            other => Err(format!("unknown durability {other:?}: sync or buffered")),
        }
    }
}

/// Writes to make durable, and what to do once they are.
pub struct Submission {
    pub ops: Vec<Op>,
    pub done: Box<dyn FnOnce() + Send>,
}

impl std::fmt::Debug for Submission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Submission").field("ops", &self.ops.len()).finish()
    }
}

/// Counters for metrics and figures.
#[derive(Debug, Default)]
pub struct CommitStats {
    pub groups: AtomicU64,
    pub syncs: AtomicU64,
    pub submissions: AtomicU64,
    pub bytes: AtomicU64,
    /// Sum of write+sync time, microseconds.
    pub write_micros: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
pub struct GroupConfig {
    pub durability: Durability,
    /// Submissions waiting at most (a full queue blocks the submitter).
    pub queue_capacity: usize,
    /// A group stops growing past this many bytes.
    pub group_bytes_max: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig { durability: Durability::Sync, queue_capacity: 4_096, group_bytes_max: 16 << 20 }
    }
}

pub struct GroupCommit {
    sender: Option<Sender<Submission>>,
    stats: Arc<CommitStats>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").field("stats", &self.stats).finish()
    }
}

impl GroupCommit {
    pub fn start(store: Arc<dyn Store>, config: GroupConfig) -> GroupCommit {
        let (sender, receiver) = bounded(config.queue_capacity);
        let stats = Arc::new(CommitStats::default());
        let writer_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || run(store, receiver, config, writer_stats))
            .expect("spawn the group commit thread");
        GroupCommit { sender: Some(sender), stats, thread: Some(thread) }
    }

    /// Queues writes; `done` runs on the writer thread once they are
    /// durable. Blocks while the queue is full (backpressure on the shard).
    pub fn submit(&self, ops: Vec<Op>, done: Box<dyn FnOnce() + Send>) {
        let sender = self.sender.as_ref().expect("running until dropped");
        if sender.send(Submission { ops, done }).is_err() {
            // The writer is gone: nothing more can be made durable, and a
            // node that went on applying would answer nothing, or worse.
            fatal("the group commit thread has stopped");
        }
    }

    /// Waits until everything submitted before this call is durable.
    pub fn barrier(&self) {
        let (sender, receiver) = bounded(1);
        self.submit(
            Vec::new(),
            Box::new(move || {
                let _ = sender.send(());
            }),
        );
        if receiver.recv().is_err() {
            fatal("the group commit thread stopped before a barrier");
        }
    }

    pub fn stats(&self) -> &Arc<CommitStats> {
        &self.stats
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.sender.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Stops the process: the shards' memory is ahead of what is durable, or
/// nothing can be made durable any more. A supervisor restarts the node,
/// which recovers from what is on disk.
fn fatal(why: &str) -> ! {
    tracing::error!(why, "stopping the node");
    eprintln!("fatal: {why}");
    std::process::exit(70);
}

fn run(store: Arc<dyn Store>, receiver: Receiver<Submission>, config: GroupConfig, stats: Arc<CommitStats>) {
    let mut ops: Vec<Op> = Vec::new();
    let mut done: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
    while let Ok(first) = receiver.recv() {
        let mut bytes = 0usize;
        let mut next = Some(first);
        while let Some(submission) = next.take() {
            bytes += submission.ops.iter().map(Op::size).sum::<usize>();
            ops.extend(submission.ops);
            done.push(submission.done);
            if bytes < config.group_bytes_max {
                next = receiver.try_recv().ok();
            }
        }
        let started = Instant::now();
        let sync = config.durability == Durability::Sync;
        if !ops.is_empty() || sync {
            if let Err(error) = store.write(&ops, sync) {
                fatal(&format!("group commit failed (memory is ahead of the disk): {error}"));
            }
        }
        stats.write_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        stats.groups.fetch_add(1, Ordering::Relaxed);
        if sync {
            stats.syncs.fetch_add(1, Ordering::Relaxed);
        }
        stats.submissions.fetch_add(done.len() as u64, Ordering::Relaxed);
        stats.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        ops.clear();
        for finish in done.drain(..) {
            // A completion that panics must not take the writer with it.
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(finish)).is_err() {
                fatal("a group commit completion panicked");
            }
        }
    }
}
