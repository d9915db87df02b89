//! Errors that say where and what: every failure names the store (its
//! folder or "memory"), the column family and key or the file, and what is
//! wrong with it, so an operator can find the damage without a debugger.

/// A storage failure. `location` is where (store, column family, record),
/// `problem` is what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {problem}")]
pub struct StoreError {
    pub location: String,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The bytes on disk do not match their checksum.
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum { stored: u32, computed: u32 },
    /// A record is shorter than its header says, or malformed.
    #[error("malformed record: {0}")]
    Malformed(String),
    /// Records that must follow each other do not (a hole in the log).
    #[error("missing record: {0}")]
    Missing(String),
    /// The storage engine refused (I/O error, corruption it detected itself:
    /// RocksDB names the file in its message).
    #[error("{0}")]
    Engine(String),
}

impl StoreError {
    pub fn new(location: impl Into<String>, problem: Problem) -> StoreError {
        StoreError { location: location.into(), problem }
    }

    pub fn is_corruption(&self) -> bool {
        match &self.problem {
            Problem::Checksum { .. } | Problem::Malformed(_) | Problem::Missing(_) => true,
            Problem::Engine(message) => message.contains("Corruption"),
        }
    }
}
