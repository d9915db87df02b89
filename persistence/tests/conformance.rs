//! The conformance suite: every test runs against both stores, RocksDB and
//! its in-memory twin, so the simulator's store behaves as the node's does.
//! "Crash" is a reopen of what survives: for the memory store, only the
//! synced writes (and persisted unlogged ones), as after a power loss; for
//! RocksDB, the database after its handle is closed and opened again, which
//! is what a crashed process leaves (a close flushes memtables, so RocksDB's
//! variant cannot tell a missing fsync: the memory store's can, and the
//! tests below that only it can run say so).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use persistence::{
    journal, Cf, ConfState, Durability, Entry, GroupCommit, GroupConfig, HardState, MemStore, Op, Problem, RocksConfig, RocksStore,
    ShardLog, Store, SNAPSHOT_CHUNK_BYTES,
};
use raft::eraftpb::Snapshot;
use raft::{GetEntriesContext, Storage, StorageError};

trait Subject {
    fn open() -> Self;
    fn store(&self) -> Arc<dyn Store>;
    /// Opens what a restarted process would find.
    fn crash_reopen(&mut self);
}

struct Memory(Arc<MemStore>);

impl Subject for Memory {
    fn open() -> Self {
        Memory(Arc::new(MemStore::new()))
    }
    fn store(&self) -> Arc<dyn Store> {
        self.0.clone()
    }
    fn crash_reopen(&mut self) {
        self.0 = Arc::new(self.0.crash(0));
    }
}

struct Rocks {
    dir: tempfile::TempDir,
    store: Option<Arc<RocksStore>>,
}

impl Subject for Rocks {
    fn open() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = RocksStore::open(&dir.path().join("db"), &RocksConfig::default()).expect("open");
        Rocks { dir, store: Some(Arc::new(store)) }
    }
    fn store(&self) -> Arc<dyn Store> {
        self.store.clone().expect("open")
    }
    fn crash_reopen(&mut self) {
        let store = self.store.take().expect("open");
        assert_eq!(Arc::strong_count(&store), 1, "the test holds no other handle");
        drop(store);
        let store = RocksStore::open(&self.dir.path().join("db"), &RocksConfig::default()).expect("reopen");
        self.store = Some(Arc::new(store));
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[test] fn $name() { super::$name::<super::Memory>() })*
        }
        mod rocksdb {
            $(#[test] fn $name() { super::$name::<super::Rocks>() })*
        }
    };
}

conformance!(
    writes_reads_and_scans,
    batches_are_atomic_and_synced_writes_survive_a_crash,
    unlogged_writes_are_readable_and_durable_once_persisted,
    log_follows_the_raft_storage_contract,
    log_state_survives_reopen,
    snapshots_round_trip_and_truncate_the_log,
    a_snapshot_may_keep_entries_for_a_lagging_follower,
    an_installed_snapshot_replaces_the_whole_log,
    a_log_compacted_on_another_thread_reads_as_compacted_never_as_damaged,
    a_snapshot_to_send_is_read_beside_the_caller_once_asked,
    damaged_records_are_reported_by_name,
    journal_records_are_framed_and_checked,
    group_commit_acknowledges_only_durable_writes,
);

fn put(cf: Cf, key: &[u8], value: &[u8]) -> Op {
    Op::Put { cf, key: key.to_vec(), value: value.to_vec() }
}

fn collect(store: &dyn Store, cf: Cf, from: &[u8], to: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut seen = Vec::new();
    store
        .scan(cf, from, to, &mut |k, v| {
            seen.push((k.to_vec(), v.to_vec()));
            true
        })
        .expect("scan");
    seen
}

fn writes_reads_and_scans<S: Subject>() {
    let subject = S::open();
    let store = subject.store();
    for cf in Cf::ALL {
        store.write(&[put(cf, b"a", b"1"), put(cf, b"b", b"2"), put(cf, b"c", b"3"), put(cf, b"d", b"4")], false).expect("write");
        assert_eq!(store.get(cf, b"b").expect("get"), Some(b"2".to_vec()));
        assert_eq!(store.get(cf, b"z").expect("get"), None);
        store.write(&[Op::Delete { cf, key: b"a".to_vec() }], false).expect("delete");
        store.write(&[Op::DeleteRange { cf, from: b"c".to_vec(), to: b"d".to_vec() }], false).expect("delete range");
        let seen = collect(&*store, cf, b"a", b"z");
        assert_eq!(seen, vec![(b"b".to_vec(), b"2".to_vec()), (b"d".to_vec(), b"4".to_vec())], "{cf:?}");
        assert_eq!(store.last(cf, b"a", b"d").expect("last"), Some((b"b".to_vec(), b"2".to_vec())));
        assert_eq!(store.last(cf, b"e", b"z").expect("last"), None);
        assert_eq!(collect(&*store, cf, b"z", b"a"), vec![], "an empty range visits nothing");
        let mut visited = 0;
        store
            .scan(cf, b"a", b"z", &mut |_, _| {
                visited += 1;
                false
            })
            .expect("scan");
        assert_eq!(visited, 1, "a scan stops when told");
    }
    // Column families are separate key spaces.
    store.write(&[put(Cf::Log, b"k", b"log")], false).expect("write");
    assert_eq!(store.get(Cf::Journal, b"k").expect("get"), None);
    // A reversed range is refused, whole: the put before it is not applied.
    let bad = [put(Cf::State, b"x", b"1"), Op::DeleteRange { cf: Cf::State, from: b"b".to_vec(), to: b"a".to_vec() }];
    assert!(store.write(&bad, true).is_err());
    assert_eq!(store.get(Cf::State, b"x").expect("get"), None);
}

fn batches_are_atomic_and_synced_writes_survive_a_crash<S: Subject>() {
    let mut subject = S::open();
    let store = subject.store();
    let batch: Vec<Op> = (0..100u32).map(|i| put(Cf::Log, &i.to_be_bytes(), &[7; 100])).collect();
    store.write(&batch, true).expect("write");
    let range = Op::DeleteRange { cf: Cf::Log, from: 10u32.to_be_bytes().to_vec(), to: 20u32.to_be_bytes().to_vec() };
    store.write(&[range], true).expect("write");
    drop(store);
    subject.crash_reopen();
    let store = subject.store();
    let keys: Vec<u32> = collect(&*store, Cf::Log, &[0; 4], &[0xFF; 4])
        .iter()
        .map(|(k, _)| u32::from_be_bytes(k.as_slice().try_into().expect("4 bytes")))
        .collect();
    let expected: Vec<u32> = (0..100).filter(|i| !(10..20).contains(i)).collect();
    assert_eq!(keys, expected, "every synced write survives, in order");
}

fn unlogged_writes_are_readable_and_durable_once_persisted<S: Subject>() {
    let mut subject = S::open();
    let store = subject.store();
    let big = vec![3u8; 1 << 20];
    let ops: Vec<Op> = (0..8u32).map(|i| put(Cf::Snapshot, &i.to_be_bytes(), &big)).collect();
    store.write_unlogged(&ops).expect("write");
    assert_eq!(store.get(Cf::Snapshot, &3u32.to_be_bytes()).expect("get").map(|v| v.len()), Some(1 << 20));
    store.persist(Cf::Snapshot).expect("persist");
    store.write(&[put(Cf::Snapshot, b"meta", b"after the chunks")], true).expect("write");
    drop(store);
    subject.crash_reopen();
    let store = subject.store();
    assert_eq!(collect(&*store, Cf::Snapshot, &[0; 4], &[0xFF; 4]).len(), 8 + 1);
}

/// Only the memory store can lose what a power loss loses.
#[test]
fn a_power_loss_keeps_synced_writes_and_persisted_unlogged_ones_only() {
    let store = MemStore::new();
    store.write(&[put(Cf::Log, b"synced", b"1")], true).expect("write");
    store.write(&[put(Cf::Log, b"unsynced", b"2")], false).expect("write");
    store.write_unlogged(&[put(Cf::Snapshot, b"chunk-a", b"3")]).expect("write");
    // A later synced write carries the unsynced batch, not the unlogged one.
    store.write(&[put(Cf::State, b"meta", b"4")], true).expect("write");
    let crashed = store.crash(0);
    assert!(crashed.get(Cf::Log, b"unsynced").expect("get").is_some());
    assert!(crashed.get(Cf::Snapshot, b"chunk-a").expect("get").is_none(), "never persisted");
    store.write_unlogged(&[put(Cf::Journal, b"other", b"5")]).expect("write");
    store.persist(Cf::Snapshot).expect("persist");
    let crashed = store.crash(0);
    assert!(crashed.get(Cf::Snapshot, b"chunk-a").expect("get").is_some(), "persisted");
    assert!(crashed.get(Cf::Journal, b"other").expect("get").is_none(), "another column family was not persisted");
    // Any prefix of unsynced batches survives whole.
    let store = MemStore::new();
    for i in 0..5u8 {
        store.write(&[put(Cf::Log, &[i, 0], b"a"), put(Cf::Log, &[i, 1], b"b")], false).expect("write");
    }
    for keep in 0..=5usize {
        let crashed = store.crash(keep);
        let present = collect(&crashed, Cf::Log, &[0], &[0xFF]).len();
        assert_eq!(present, keep * 2, "batches are whole or absent");
    }
}

fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
    Entry { index, term, data: data.to_vec().into(), ..Entry::default() }
}

fn write_entries(log: &ShardLog, entries: &[Entry]) {
    let mut ops = Vec::new();
    log.append(entries, &mut ops);
    log.store().write(&ops, true).expect("write");
}

fn log_follows_the_raft_storage_contract<S: Subject>() {
    let subject = S::open();
    let log = ShardLog::open(subject.store(), 3).expect("open");
    let other = ShardLog::open(subject.store(), 4).expect("open");
    assert_eq!((Storage::first_index(&log).expect("first"), Storage::last_index(&log).expect("last")), (1, 0));
    assert_eq!(log.term(0).expect("term of the empty log"), 0);
    write_entries(&log, &(1..=10).map(|i| entry(i, 1, &[i as u8; 10])).collect::<Vec<_>>());
    write_entries(&other, &[entry(1, 9, b"other shard")]);
    let all = log.entries(1, 11, None, GetEntriesContext::empty(false)).expect("entries");
    assert_eq!(all.len(), 10);
    assert_eq!(all[4].data.as_ref(), &[5u8; 10]);
    assert_eq!(log.term(10).expect("term"), 1);
    assert!(matches!(log.term(11), Err(raft::Error::Store(StorageError::Unavailable))));
    assert!(matches!(log.entries(5, 12, None, GetEntriesContext::empty(false)), Err(raft::Error::Store(StorageError::Unavailable))));
    // A size limit still returns at least one entry.
    let limited = log.entries(2, 11, 1, GetEntriesContext::empty(false)).expect("entries");
    assert_eq!(limited.len(), 1);
    let limited = log.entries(2, 11, 80, GetEntriesContext::empty(false)).expect("entries");
    assert!(limited.len() > 1 && limited.len() < 9, "{}", limited.len());
    // A new leader overwrites a suffix.
    write_entries(&log, &[entry(8, 2, b"new"), entry(9, 2, b"newer")]);
    assert_eq!(Storage::last_index(&log).expect("last"), 9);
    assert_eq!(log.term(8).expect("term"), 2);
    assert_eq!(log.term(7).expect("term"), 1);
    let tail = log.entries(7, 10, None, GetEntriesContext::empty(false)).expect("entries");
    assert_eq!(tail.iter().map(|e| e.term).collect::<Vec<_>>(), vec![1, 2, 2]);
    // Hard and conf state.
    let hard = HardState { term: 2, vote: 1, commit: 9, ..HardState::default() };
    let conf = ConfState { voters: vec![1, 2, 3], ..ConfState::default() };
    let mut ops = Vec::new();
    log.set_state(hard.clone(), Some(conf.clone()), &mut ops);
    log.store().write(&ops, true).expect("write");
    let state = log.initial_state().expect("state");
    assert_eq!((state.hard_state, state.conf_state), (hard, conf));
    // The other shard's log is untouched.
    assert_eq!(other.entries(1, 2, None, GetEntriesContext::empty(false)).expect("entries")[0].term, 9);
    // What the entry cache answered, the store answers too (a log opened
    // now reads through the store).
    let reopened = ShardLog::open(subject.store(), 3).expect("open");
    for (low, high, limit) in [(1, 10, None), (2, 10, Some(1)), (2, 10, Some(80)), (7, 10, None)] {
        let cached = log.entries(low, high, limit, GetEntriesContext::empty(false)).expect("entries");
        let stored = reopened.entries(low, high, limit, GetEntriesContext::empty(false)).expect("entries");
        assert_eq!(cached, stored, "entries {low}..{high} limited to {limit:?}");
    }
    for index in 1..=9 {
        assert_eq!(log.term(index).expect("term"), reopened.term(index).expect("term"), "term of {index}");
    }
}

fn log_state_survives_reopen<S: Subject>() {
    let mut subject = S::open();
    {
        let log = ShardLog::open(subject.store(), 0).expect("open");
        write_entries(&log, &(1..=5).map(|i| entry(i, 3, b"x")).collect::<Vec<_>>());
        let hard = HardState { term: 3, commit: 5, ..HardState::default() };
        let mut ops = Vec::new();
        log.set_state(hard, None, &mut ops);
        log.store().write(&ops, true).expect("write");
    }
    subject.crash_reopen();
    let log = ShardLog::open(subject.store(), 0).expect("reopen");
    assert_eq!((log.first_index(), log.last_index()), (1, 5));
    assert_eq!(log.term(5).expect("term"), 3);
    assert_eq!(log.hard_state().commit, 5);
    let mut seen = Vec::new();
    let last = log
        .scan_entries(2, &mut |e| {
            seen.push(e.index);
            true
        })
        .expect("scan");
    assert_eq!((seen, last), (vec![2, 3, 4, 5], 5));
}

fn snapshots_round_trip_and_truncate_the_log<S: Subject>() {
    let mut subject = S::open();
    // Larger than one chunk, so the snapshot spans several.
    let data: Vec<u8> = (0..SNAPSHOT_CHUNK_BYTES * 2 + 1234).map(|i| (i % 251) as u8).collect();
    {
        let log = ShardLog::open(subject.store(), 1).expect("open");
        write_entries(&log, &(1..=20).map(|i| entry(i, 1, b"e")).collect::<Vec<_>>());
        let refused = log.save_snapshot(12, 1, &data, persistence::checksum(&data) ^ 1).expect_err("bad checksum");
        assert!(matches!(refused.problem, Problem::Checksum { .. }), "{refused}");
        assert!(refused.to_string().contains("before writing"), "{refused}");
        let meta = log.save_snapshot(12, 1, &data, persistence::checksum(&data)).expect("save");
        assert_eq!((meta.index, meta.chunks), (12, 3));
        assert_eq!(log.first_index(), 13);
        assert!(matches!(log.entries(5, 14, None, GetEntriesContext::empty(false)), Err(raft::Error::Store(StorageError::Compacted))));
        assert_eq!(log.term(12).expect("term at the snapshot"), 1);
        // A newer snapshot replaces the older one's chunks.
        let small = b"small state".to_vec();
        log.save_snapshot(15, 1, &small, persistence::checksum(&small)).expect("save");
        let chunks = collect(&*subject.store(), Cf::Snapshot, &[0, 0, 0, 1, 1], &[0, 0, 0, 2]);
        assert_eq!(chunks.len(), 1, "older chunks are deleted");
        log.save_snapshot(17, 1, &data, persistence::checksum(&data)).expect("save");
    }
    subject.crash_reopen();
    let log = ShardLog::open(subject.store(), 1).expect("reopen");
    assert_eq!((log.first_index(), log.last_index()), (18, 20));
    let (meta, loaded) = log.load_snapshot().expect("load").expect("a snapshot");
    assert_eq!(meta.index, 17);
    assert!(loaded == data, "the same bytes come back");
    let snapshot = log.snapshot(17, 0).expect("raft snapshot");
    assert_eq!(snapshot.get_metadata().index, 17);
    assert_eq!(snapshot.data.len(), data.len());
    let remaining = collect(&*subject.store(), Cf::Log, &[0, 0, 0, 1], &[0, 0, 0, 2]);
    assert_eq!(remaining.len(), 3, "the log behind the snapshot is gone");
}

fn a_snapshot_may_keep_entries_for_a_lagging_follower<S: Subject>() {
    let mut subject = S::open();
    let data = b"state at 12".to_vec();
    {
        let log = ShardLog::open(subject.store(), 1).expect("open");
        write_entries(&log, &(1..=20).map(|i| entry(i, 1 + i / 10, b"e")).collect::<Vec<_>>());
        // A follower has 7: the log keeps 8 on, and 7 for its term.
        log.save_snapshot_keeping(12, 2, &data, persistence::checksum(&data), 8).expect("save").expect("newer");
        assert_eq!((log.first_index(), log.last_index(), log.snapshot_meta().index), (8, 20, 12));
        // Not newer (one written in the background finding a newer one in
        // place): nothing written; a clone is the same log.
        let clone = log.clone();
        assert_eq!(clone.save_snapshot_keeping(12, 2, &data, persistence::checksum(&data), 1).expect("save"), None);
        assert_eq!(clone.save_snapshot_keeping(9, 2, &data, persistence::checksum(&data), 1).expect("save"), None);
        assert!(clone.save_snapshot(11, 2, &data, persistence::checksum(&data)).is_err(), "an older snapshot is refused");
        assert_eq!((clone.first_index(), clone.snapshot_meta().index), (8, 12));
        let kept = log.entries(8, 14, None, GetEntriesContext::empty(false)).expect("kept entries");
        assert_eq!(kept.iter().map(|e| e.index).collect::<Vec<_>>(), (8..14).collect::<Vec<_>>());
        assert_eq!(log.term(7).expect("the term before the first"), 1);
        assert_eq!(log.term(11).expect("a kept entry's term"), 2);
        assert!(matches!(log.term(6), Err(raft::Error::Store(StorageError::Compacted))));
        assert!(matches!(log.entries(7, 9, None, GetEntriesContext::empty(false)), Err(raft::Error::Store(StorageError::Compacted))));
        let held = collect(&*subject.store(), Cf::Log, &[0, 0, 0, 1], &[0, 0, 0, 2]);
        assert_eq!(held.len(), 14, "7 to 20 held");
        // A later snapshot never brings back what was deleted, and keeping
        // past its own index keeps nothing behind it.
        log.save_snapshot_keeping(15, 2, &data, persistence::checksum(&data), 3).expect("save").expect("newer");
        assert_eq!(log.first_index(), 8);
        clone.save_snapshot_keeping(16, 2, &data, persistence::checksum(&data), 40).expect("save").expect("newer");
        assert_eq!(log.first_index(), 17);
        assert_eq!(collect(&*subject.store(), Cf::Log, &[0, 0, 0, 1], &[0, 0, 0, 2]).len(), 4, "17 to 20");
        // Keeping from one past the previous snapshot, whose entry is gone:
        // its term is still known.
        log.save_snapshot_keeping(17, 2, &data, persistence::checksum(&data), 17).expect("save").expect("newer");
        assert_eq!(log.first_index(), 17);
        assert_eq!(log.term(16).expect("the term before the first"), 2);
    }
    // A restart serves from one past the snapshot; the kept entry goes at the next.
    subject.crash_reopen();
    let log = ShardLog::open(subject.store(), 1).expect("reopen");
    assert_eq!((log.first_index(), log.last_index()), (18, 20));
    assert!(matches!(log.term(16), Err(raft::Error::Store(StorageError::Compacted))));
    log.save_snapshot(18, 2, &data, persistence::checksum(&data)).expect("save");
    assert_eq!(collect(&*subject.store(), Cf::Log, &[0, 0, 0, 1], &[0, 0, 0, 2]).len(), 2, "19 and 20");
}

fn an_installed_snapshot_replaces_the_whole_log<S: Subject>() {
    let mut subject = S::open();
    let data = b"the leader's state".to_vec();
    {
        let log = ShardLog::open(subject.store(), 1).expect("open");
        write_entries(&log, &(1..=20).map(|i| entry(i, 1, b"e")).collect::<Vec<_>>());
        let meta = log.install_snapshot(12, 3, &data, persistence::checksum(&data)).expect("install");
        assert_eq!(meta.index, 12);
        assert_eq!((log.first_index(), log.last_index()), (13, 12), "no entry is left, before or after it");
        assert_eq!(log.term(12).expect("term at the snapshot"), 3);
        write_entries(&log, &[entry(13, 3, b"next")]);
    }
    subject.crash_reopen();
    let log = ShardLog::open(subject.store(), 1).expect("reopen");
    assert_eq!((log.first_index(), log.last_index()), (13, 13));
    assert!(log.load_snapshot().expect("load").is_some_and(|(meta, loaded)| meta.index == 12 && loaded == data));
    let remaining = collect(&*subject.store(), Cf::Log, &[0, 0, 0, 1], &[0, 0, 0, 2]);
    assert_eq!(remaining.len(), 1, "only the entry appended after it");
}

/// With `load_snapshots_aside`, raft's ask for a snapshot to send is
/// answered "temporarily unavailable" while a thread reads it, then with
/// it; a newer snapshot saved meanwhile is read in its turn.
fn a_snapshot_to_send_is_read_beside_the_caller_once_asked<S: Subject>() {
    let subject = S::open();
    let log = ShardLog::open(subject.store(), 1).expect("open");
    write_entries(&log, &(1..=30).map(|i| entry(i, 1, b"e")).collect::<Vec<_>>());
    let data = vec![5u8; SNAPSHOT_CHUNK_BYTES + 100];
    log.save_snapshot(10, 1, &data, persistence::checksum(&data)).expect("save");
    log.load_snapshots_aside();
    let asked = |at_least: u64| -> (usize, Snapshot) {
        for asks in 1..=2_000 {
            match log.snapshot(at_least, 2) {
                Ok(snapshot) => return (asks, snapshot),
                Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable)) => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                Err(other) => panic!("{other:?}"),
            }
        }
        panic!("never read");
    };
    let (asks, snapshot) = asked(0);
    assert!(asks > 1, "the first ask starts the read and is told to ask again");
    assert_eq!((snapshot.get_metadata().index, snapshot.data.len()), (10, data.len()));
    // A newer snapshot is the one read next; one newer than any is not to be had.
    let newer = vec![6u8; 100];
    log.save_snapshot(20, 1, &newer, persistence::checksum(&newer)).expect("save");
    let (_, snapshot) = asked(0);
    assert_eq!((snapshot.get_metadata().index, &snapshot.data[..]), (20, &newer[..]));
    assert!(matches!(log.snapshot(25, 2), Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable))));
}

/// A store whose writes that delete log entries return a millisecond late.
#[derive(Debug)]
struct PausingAfterTruncation(Arc<dyn Store>);

impl Store for PausingAfterTruncation {
    fn write(&self, ops: &[Op], sync: bool) -> Result<(), persistence::StoreError> {
        self.0.write(ops, sync)?;
        if ops.iter().any(|op| matches!(op, Op::DeleteRange { cf: Cf::Log, .. })) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Ok(())
    }
    fn write_unlogged(&self, ops: &[Op]) -> Result<(), persistence::StoreError> {
        self.0.write_unlogged(ops)
    }
    fn persist(&self, cf: Cf) -> Result<(), persistence::StoreError> {
        self.0.persist(cf)
    }
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, persistence::StoreError> {
        self.0.get(cf, key)
    }
    fn scan(&self, cf: Cf, from: &[u8], to: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<(), persistence::StoreError> {
        self.0.scan(cf, from, to, visit)
    }
    fn last(&self, cf: Cf, from: &[u8], to: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>, persistence::StoreError> {
        self.0.last(cf, from, to)
    }
    fn location(&self) -> String {
        self.0.location()
    }
}

/// A replica's loop reads its log (raft-rs asks entries, terms and the
/// snapshot) while a writer thread saves snapshots and truncates the log
/// behind them (a node's snapshot writer). Every read is answered, or
/// refused as compacted, unavailable or temporarily unavailable, which
/// raft-rs handles; any other error would stop it.
fn a_log_compacted_on_another_thread_reads_as_compacted_never_as_damaged<S: Subject>() {
    let subject = S::open();
    // The writer thread stops for a moment after each truncation, as a
    // thread on a busy machine may: a reader must not see the store
    // truncated under bounds that say otherwise.
    let store: Arc<dyn Store> = Arc::new(PausingAfterTruncation(subject.store()));
    let log = ShardLog::open(store, 1).expect("open");
    // Longer than the log's cache, so the oldest entries come from the store.
    let last = 6_000u64;
    write_entries(&log, &(1..=last).map(|i| entry(i, 1, b"entry")).collect::<Vec<_>>());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (log, stop) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            let data = vec![3u8; 64 << 10];
            for index in (20..last - 100).step_by(20) {
                log.save_snapshot_keeping(index, 1, &data, persistence::checksum(&data), index - 10).expect("save").expect("newer");
            }
            // The last one keeps nothing: the whole log goes.
            log.save_snapshot_keeping(last, 1, &data, persistence::checksum(&data), last + 1).expect("save").expect("newer");
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        })
    };
    // Entries raft asks are within the log's last index: they are there or
    // compacted, never unavailable.
    let compacted = |error: &raft::Error| matches!(error, raft::Error::Store(StorageError::Compacted));
    let tolerated = |error: &raft::Error| {
        matches!(
            error,
            raft::Error::Store(StorageError::Compacted | StorageError::Unavailable | StorageError::SnapshotTemporarilyUnavailable)
        )
    };
    let mut reads = 0u64;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let first = Storage::first_index(&log).expect("first");
        let end = Storage::last_index(&log).expect("last") + 1;
        for low in [first.saturating_sub(1).max(1), first, first + 5] {
            if low < end {
                if let Err(error) = log.entries(low, (low + 30).min(end), None, GetEntriesContext::empty(false)) {
                    assert!(compacted(&error), "entries from {low}: {error:?}");
                }
            }
            if let Err(error) = log.term(low) {
                assert!(tolerated(&error), "term of {low}: {error:?}");
            }
        }
        if reads % 16 == 0 {
            if let Err(error) = log.snapshot(0, 2) {
                assert!(tolerated(&error), "snapshot: {error:?}");
            }
        }
        reads += 1;
    }
    writer.join().expect("the writer");
    assert!(reads > 10, "reads during the compactions: {reads}");
    assert_eq!((log.snapshot_meta().index, Storage::first_index(&log).expect("first")), (last, last + 1));
}

fn damaged_records_are_reported_by_name<S: Subject>() {
    let subject = S::open();
    let store = subject.store();
    let log = ShardLog::open(store.clone(), 2).expect("open");
    write_entries(&log, &(1..=5).map(|i| entry(i, 1, b"payload")).collect::<Vec<_>>());
    let key = |index: u64| {
        let mut key = 2u32.to_be_bytes().to_vec();
        key.extend_from_slice(&index.to_be_bytes());
        key
    };
    // A flipped byte in entry 3.
    let mut value = store.get(Cf::Log, &key(3)).expect("get").expect("present");
    value[6] ^= 0x40;
    store.write(&[put(Cf::Log, &key(3), &value)], true).expect("write");
    let error = log.scan_entries(1, &mut |_| true).expect_err("damage found");
    assert!(matches!(error.problem, Problem::Checksum { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains("column family log") && message.contains("shard 2 entry 3"), "{message}");
    // Read through the store (a log opened now has nothing in its entry cache).
    let reopened = ShardLog::open(store.clone(), 2).expect("open");
    assert!(reopened.entries(1, 6, None, GetEntriesContext::empty(false)).is_err());
    // A truncated last entry is found when the log is opened.
    let value = store.get(Cf::Log, &key(5)).expect("get").expect("present");
    store.write(&[put(Cf::Log, &key(5), &value[..value.len() / 2])], true).expect("write");
    let error = ShardLog::open(store.clone(), 2).expect_err("damage found");
    assert!(error.to_string().contains("shard 2 entry 5"), "{error}");
    // A hole in the log.
    store.write(&[put(Cf::Log, &key(5), &value), Op::Delete { cf: Cf::Log, key: key(4) }], true).expect("write");
    store.write(&[put(Cf::Log, &key(3), &persistence::encode_entry(&entry(3, 1, b"payload")))], true).expect("write");
    let error = log.scan_entries(1, &mut |_| true).expect_err("hole found");
    assert!(matches!(error.problem, Problem::Missing(_)), "{error}");
    assert!(error.to_string().contains("jumps from 3 to 5"), "{error}");
    // A damaged snapshot chunk and damaged state.
    let data = vec![9u8; 1000];
    let log = ShardLog::open(store.clone(), 6).expect("open");
    log.save_snapshot(1, 1, &data, persistence::checksum(&data)).expect("save");
    let mut chunk_key = 6u32.to_be_bytes().to_vec();
    chunk_key.push(1);
    chunk_key.extend_from_slice(&1u64.to_be_bytes());
    chunk_key.extend_from_slice(&0u32.to_be_bytes());
    store.write(&[put(Cf::Snapshot, &chunk_key, &[9u8; 999])], true).expect("write");
    let error = log.load_snapshot().expect_err("short chunk found");
    assert!(error.to_string().contains("column family snapshot") && error.to_string().contains("snapshot at 1"), "{error}");
    let mut flipped = vec![9u8; 1000];
    flipped[500] = 8;
    store.write(&[put(Cf::Snapshot, &chunk_key, &flipped)], true).expect("write");
    assert!(matches!(log.load_snapshot().expect_err("flip found").problem, Problem::Checksum { .. }));
    store.write(&[put(Cf::State, &6u32.to_be_bytes(), b"garbage!")], true).expect("write");
    let error = ShardLog::open(store, 6).expect_err("bad state found");
    assert!(error.to_string().contains("column family state") && error.to_string().contains("hard state"), "{error}");
}

fn journal_records_are_framed_and_checked<S: Subject>() {
    let subject = S::open();
    let store = subject.store();
    let mut ops = Vec::new();
    for index in 1..=4u64 {
        journal::append(5, index, format!("record {index}").into_bytes(), &mut ops);
    }
    journal::append(6, 1, b"other shard".to_vec(), &mut ops);
    store.write(&ops, true).expect("write");
    let mut seen = Vec::new();
    journal::scan(&*store, 5, 2, &mut |index, body| {
        seen.push((index, String::from_utf8_lossy(body).into_owned()));
        true
    })
    .expect("scan");
    assert_eq!(seen, vec![(2, "record 2".into()), (3, "record 3".into()), (4, "record 4".into())]);
    assert_eq!(journal::last_index(&*store, 5).expect("last"), Some(4));
    assert_eq!(journal::last_index(&*store, 7).expect("last"), None);
    let mut key = 5u32.to_be_bytes().to_vec();
    key.extend_from_slice(&3u64.to_be_bytes());
    store.write(&[put(Cf::Journal, &key, b"not sealed")], true).expect("write");
    let error = journal::scan(&*store, 5, 1, &mut |_, _| true).expect_err("damage found");
    assert!(error.to_string().contains("column family journal") && error.to_string().contains("shard 5 record 3"), "{error}");
}

fn group_commit_acknowledges_only_durable_writes<S: Subject>() {
    let mut subject = S::open();
    let acknowledged = Arc::new(AtomicUsize::new(0));
    {
        let commit = GroupCommit::start(subject.store(), GroupConfig { durability: Durability::Sync, ..GroupConfig::default() });
        std::thread::scope(|scope| {
            for shard in 0..4u32 {
                let commit = &commit;
                let acknowledged = acknowledged.clone();
                let store = subject.store();
                scope.spawn(move || {
                    for i in 0..500u32 {
                        let mut key = shard.to_be_bytes().to_vec();
                        key.extend_from_slice(&i.to_be_bytes());
                        let ops = vec![put(Cf::Log, &key, b"v")];
                        let acknowledged = acknowledged.clone();
                        let store = store.clone();
                        commit.submit(
                            ops,
                            Box::new(move || {
                                // When the completion runs, the write is there.
                                assert!(store.get(Cf::Log, &key).expect("get").is_some());
                                acknowledged.fetch_add(1, Ordering::SeqCst);
                            }),
                        );
                    }
                });
            }
        });
        commit.barrier();
        assert_eq!(acknowledged.load(Ordering::SeqCst), 2000);
        let stats = commit.stats();
        let syncs = stats.syncs.load(Ordering::Relaxed);
        assert_eq!(stats.submissions.load(Ordering::Relaxed), 2001);
        assert!((1..=2001).contains(&syncs), "{syncs}");
    }
    subject.crash_reopen();
    assert_eq!(collect(&*subject.store(), Cf::Log, &[0; 4], &[0xFF; 4]).len(), 2000, "every acknowledged write survives");
}
