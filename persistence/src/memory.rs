//! The in-memory twin of the RocksDB store, for the simulator and tests.
//! It keeps what was synced apart from what was only written, so a test can
//! "crash" it: [`MemStore::crash`] gives the store a restarted process
//! would find, with the synced writes and any prefix of the unsynced ones,
//! and none of the unlogged writes whose column family was not persisted.
//! [`MemStore::corrupt`] flips a byte of a stored value.

use std::collections::BTreeMap;
use std::ops::Bound;

use parking_lot::Mutex;

use crate::error::{Problem, StoreError};
use crate::store::{Cf, KeyValue, Op, Store};

type Tables = [BTreeMap<Vec<u8>, Vec<u8>>; 4];

#[derive(Debug, Default)]
struct Inner {
    /// What a reader sees: every write so far.
    current: Tables,
    /// What survives any crash: every synced write and all before it.
    durable: Tables,
    /// Unsynced batches since the last sync, oldest first.
    unsynced: Vec<Vec<Op>>,
    /// Writes made without the log, durable only once their column family
    /// is persisted (a later synced write does not carry them, as in
    /// RocksDB, where they sit in a memtable until it is flushed).
    unlogged: Vec<Op>,
}

/// A store in memory. Cheap to create; every clone of the `Arc` sees the same data.
#[derive(Debug, Default)]
pub struct MemStore {
    inner: Mutex<Inner>,
}

fn apply(tables: &mut Tables, ops: &[Op]) {
    for op in ops {
        match op {
            Op::Put { cf, key, value } => {
                tables[*cf as usize].insert(key.clone(), value.clone());
            }
            Op::Delete { cf, key } => {
                tables[*cf as usize].remove(key);
            }
            Op::DeleteRange { cf, from, to } => {
                if from < to {
                    let table = &mut tables[*cf as usize];
                    let doomed: Vec<Vec<u8>> = table.range(from.clone()..to.clone()).map(|(k, _)| k.clone()).collect();
                    for key in doomed {
                        table.remove(&key);
                    }
                }
            }
        }
    }
}

impl MemStore {
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// The store a process restarted after a crash would find: everything
    /// synced, plus the first `keep_unsynced` batches written since the
    /// last sync (a process crash keeps them all; a power loss may keep
    /// none; each is whole or absent).
    pub fn crash(&self, keep_unsynced: usize) -> MemStore {
        let inner = self.inner.lock();
        let mut tables = inner.durable.clone();
        for batch in inner.unsynced.iter().take(keep_unsynced) {
            apply(&mut tables, batch);
        }
        MemStore { inner: Mutex::new(Inner { current: tables.clone(), durable: tables, unsynced: Vec::new(), unlogged: Vec::new() }) }
    }

    /// Unsynced batches a crash could lose now.
    pub fn unsynced_batches(&self) -> usize {
        self.inner.lock().unsynced.len()
    }

    /// Flips the bits of byte `at` (modulo the length) of a stored value, in
    /// what readers see and in what survives a crash. False if the key is absent.
    pub fn corrupt(&self, cf: Cf, key: &[u8], at: usize) -> bool {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let mut found = false;
        for tables in [&mut inner.current, &mut inner.durable] {
            if let Some(value) = tables[cf as usize].get_mut(key) {
                if !value.is_empty() {
                    let at = at % value.len();
                    value[at] ^= 0xFF;
                    found = true;
                }
            }
        }
        found
    }
}

fn op_cf(op: &Op) -> Cf {
    match op {
        Op::Put { cf, .. } | Op::Delete { cf, .. } | Op::DeleteRange { cf, .. } => *cf,
    }
}

/// Refuses a reversed range, as RocksDB does (the whole batch is refused).
fn check_ranges(ops: &[Op]) -> Result<(), StoreError> {
    for op in ops {
        if let Op::DeleteRange { cf, from, to } = op {
            if from > to {
                return Err(StoreError::new(
                    format!("memory/{}", cf.name()),
                    Problem::Engine("Invalid argument: delete range with start after end".into()),
                ));
            }
        }
    }
    Ok(())
}

impl Store for MemStore {
    fn write(&self, ops: &[Op], sync: bool) -> Result<(), StoreError> {
        check_ranges(ops)?;
        let mut inner = self.inner.lock();
        apply(&mut inner.current, ops);
        if sync {
            let Inner { durable, unsynced, .. } = &mut *inner;
            for batch in unsynced.drain(..) {
                apply(durable, &batch);
            }
            apply(durable, ops);
        } else {
            inner.unsynced.push(ops.to_vec());
        }
        Ok(())
    }

    fn write_unlogged(&self, ops: &[Op]) -> Result<(), StoreError> {
        check_ranges(ops)?;
        let mut inner = self.inner.lock();
        apply(&mut inner.current, ops);
        inner.unlogged.extend_from_slice(ops);
        Ok(())
    }

    fn persist(&self, cf: Cf) -> Result<(), StoreError> {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let (persisted, kept): (Vec<Op>, Vec<Op>) = inner.unlogged.drain(..).partition(|op| op_cf(op) == cf);
        apply(&mut inner.durable, &persisted);
        inner.unlogged = kept;
        Ok(())
    }

    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.inner.lock().current[cf as usize].get(key).cloned())
    }

    fn scan(&self, cf: Cf, from: &[u8], to: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<(), StoreError> {
        if from >= to {
            return Ok(());
        }
        // Visit in pages so that `visit` runs without the lock held.
        let mut start = Bound::Included(from.to_vec());
        loop {
            let page: Vec<(Vec<u8>, Vec<u8>)> = {
                let inner = self.inner.lock();
                inner.current[cf as usize]
                    .range((start.clone(), Bound::Excluded(to.to_vec())))
                    .take(256)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            };
            let Some((last, _)) = page.last() else { return Ok(()) };
            start = Bound::Excluded(last.clone());
            for (key, value) in &page {
                if !visit(key, value) {
                    return Ok(());
                }
            }
        }
    }

    fn last(&self, cf: Cf, from: &[u8], to: &[u8]) -> Result<Option<KeyValue>, StoreError> {
        if from >= to {
            return Ok(None);
        }
        let inner = self.inner.lock();
        Ok(inner.current[cf as usize].range(from.to_vec()..to.to_vec()).next_back().map(|(k, v)| (k.clone(), v.clone())))
    }

    fn location(&self) -> String {
        "memory".into()
    }
}
