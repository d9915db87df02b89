//! The store on RocksDB: one database, a column family per [`Cf`], writes
//! as atomic `WriteBatch`es. Opened with paranoid checks and a WAL recovery
//! mode that tolerates only a torn tail (the unsynced end of the last
//! write, never acknowledged) and refuses corruption anywhere else.

use std::path::{Path, PathBuf};

use rocksdb::{
    BlockBasedOptions, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, DBRecoveryMode, Direction, IteratorMode, Options,
    WriteBatch, WriteOptions, DB,
};

use crate::error::{Problem, StoreError};
use crate::store::{Cf, KeyValue, Op, Store};

/// Tuning a node may change; the defaults suit one node per machine.
#[derive(Clone, Debug)]
pub struct RocksConfig {
    /// Memtable size per column family.
    pub write_buffer_bytes: usize,
    /// Background flush and compaction threads.
    pub background_jobs: i32,
    /// Block cache for reads (recovery, lookups).
    pub block_cache_bytes: usize,
}

impl Default for RocksConfig {
    fn default() -> Self {
        RocksConfig { write_buffer_bytes: 64 << 20, background_jobs: 2, block_cache_bytes: 64 << 20 }
    }
}

pub struct RocksStore {
    db: DB,
    path: PathBuf,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore").field("path", &self.path).finish()
    }
}

impl RocksStore {
    /// Opens (creating if missing) the database in `path`. A damaged
    /// database is refused with RocksDB's message, which names the file.
    pub fn open(path: &Path, config: &RocksConfig) -> Result<RocksStore, StoreError> {
        RocksStore::open_mode(path, config, false)
    }

    /// Opens an existing database to read it, beside a node that may be
    /// running on it (tools: the journal reader). Writes are refused.
    pub fn open_read_only(path: &Path, config: &RocksConfig) -> Result<RocksStore, StoreError> {
        RocksStore::open_mode(path, config, true)
    }

    fn open_mode(path: &Path, config: &RocksConfig, read_only: bool) -> Result<RocksStore, StoreError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_paranoid_checks(true);
        options.set_wal_recovery_mode(DBRecoveryMode::TolerateCorruptedTailRecords);
        options.set_max_background_jobs(config.background_jobs);
        options.set_keep_log_file_num(4);
        let cache = rocksdb::Cache::new_lru_cache(config.block_cache_bytes);
        let descriptors = Cf::ALL.iter().map(|cf| {
            let mut cf_options = Options::default();
            cf_options.set_write_buffer_size(config.write_buffer_bytes);
            cf_options.set_compression_type(DBCompressionType::Lz4);
            let mut table = BlockBasedOptions::default();
            table.set_block_cache(&cache);
            table.set_block_size(64 << 10);
            cf_options.set_block_based_table_factory(&table);
            ColumnFamilyDescriptor::new(cf.name(), cf_options)
        });
        let opened = if read_only {
            if !path.join("CURRENT").exists() {
                return Err(StoreError::new(path.display().to_string(), Problem::Missing("a RocksDB database (no CURRENT file)".into())));
            }
            DB::open_cf_descriptors_read_only(&options, path, descriptors, false)
        } else {
            DB::open_cf_descriptors(&options, path, descriptors)
        };
        let db = opened.map_err(|error| StoreError::new(path.display().to_string(), Problem::Engine(error.into_string())))?;
        Ok(RocksStore { db, path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn cf(&self, cf: Cf) -> Result<&ColumnFamily, StoreError> {
        self.db
            .cf_handle(cf.name())
            .ok_or_else(|| StoreError::new(self.location(), Problem::Missing(format!("column family {}", cf.name()))))
    }

    fn failed(&self, cf: Option<Cf>, error: rocksdb::Error) -> StoreError {
        let location = match cf {
            Some(cf) => format!("{} (column family {})", self.path.display(), cf.name()),
            None => self.path.display().to_string(),
        };
        StoreError::new(location, Problem::Engine(error.into_string()))
    }

    /// Flushes every memtable to SST files (tests use it to put data in files).
    pub fn flush(&self) -> Result<(), StoreError> {
        for cf in Cf::ALL {
            self.db.flush_cf(self.cf(cf)?).map_err(|e| self.failed(Some(cf), e))?;
        }
        Ok(())
    }
}

impl RocksStore {
    fn batch(&self, ops: &[Op]) -> Result<WriteBatch, StoreError> {
        let mut batch = WriteBatch::default();
        for op in ops {
            match op {
                Op::Put { cf, key, value } => batch.put_cf(self.cf(*cf)?, key, value),
                Op::Delete { cf, key } => batch.delete_cf(self.cf(*cf)?, key),
                Op::DeleteRange { cf, from, to } => {
                    if from > to {
                        return Err(StoreError::new(
                            format!("{} (column family {})", self.path.display(), cf.name()),
                            Problem::Engine("Invalid argument: delete range with start after end".into()),
                        ));
                    }
                    batch.delete_range_cf(self.cf(*cf)?, from, to)
                }
            }
        }
        Ok(batch)
    }
}

impl Store for RocksStore {
    fn write(&self, ops: &[Op], sync: bool) -> Result<(), StoreError> {
        let batch = self.batch(ops)?;
        let mut options = WriteOptions::default();
        options.set_sync(sync);
        self.db.write_opt(batch, &options).map_err(|e| self.failed(None, e))
    }

    fn write_unlogged(&self, ops: &[Op]) -> Result<(), StoreError> {
        let batch = self.batch(ops)?;
        let mut options = WriteOptions::default();
        options.disable_wal(true);
        self.db.write_opt(batch, &options).map_err(|e| self.failed(None, e))
    }

    fn persist(&self, cf: Cf) -> Result<(), StoreError> {
        self.db.flush_cf(self.cf(cf)?).map_err(|e| self.failed(Some(cf), e))
    }

    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get_cf(self.cf(cf)?, key).map_err(|e| self.failed(Some(cf), e))
    }

    fn scan(&self, cf: Cf, from: &[u8], to: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<(), StoreError> {
        if from >= to {
            return Ok(());
        }
        let mut read = rocksdb::ReadOptions::default();
        read.set_iterate_upper_bound(to.to_vec());
        read.fill_cache(false);
        read.set_readahead_size(4 << 20);
        let iterator = self.db.iterator_cf_opt(self.cf(cf)?, read, IteratorMode::From(from, Direction::Forward));
        for item in iterator {
            let (key, value) = item.map_err(|e| self.failed(Some(cf), e))?;
            if !visit(&key, &value) {
                break;
            }
        }
        Ok(())
    }

    fn last(&self, cf: Cf, from: &[u8], to: &[u8]) -> Result<Option<KeyValue>, StoreError> {
        if from >= to {
            return Ok(None);
        }
        let mut read = rocksdb::ReadOptions::default();
        read.set_iterate_lower_bound(from.to_vec());
        read.set_iterate_upper_bound(to.to_vec());
        let mut iterator = self.db.raw_iterator_cf_opt(self.cf(cf)?, read);
        iterator.seek_to_last();
        if iterator.valid() {
            let key = iterator.key().map(<[u8]>::to_vec);
            let value = iterator.value().map(<[u8]>::to_vec);
            if let (Some(key), Some(value)) = (key, value) {
                return Ok(Some((key, value)));
            }
        }
        iterator.status().map_err(|e| self.failed(Some(cf), e))?;
        Ok(None)
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }
}
