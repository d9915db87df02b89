//! Damage to RocksDB's own files: a flipped byte inside an SST file and a
//! truncated SST file are reported with the file's name, never read as
//! valid data.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use persistence::{Entry, RocksConfig, RocksStore, ShardLog, Store};

fn fill(dir: &Path) {
    let store: Arc<dyn Store> = Arc::new(RocksStore::open(dir, &RocksConfig::default()).expect("open"));
    let log = ShardLog::open(store.clone(), 0).expect("open the log");
    // Data that does not compress away, so the file has many blocks.
    let mut state = 0x1234_5678_u64;
    let entries: Vec<Entry> = (1..=2_000u64)
        .map(|index| {
            let data: Vec<u8> = (0..512)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            Entry { index, term: 1, data: data.into(), ..Entry::default() }
        })
        .collect();
    let mut ops = Vec::new();
    log.append(&entries, &mut ops);
    store.write(&ops, true).expect("write");
    drop(log);
    assert_eq!(Arc::strong_count(&store), 1);
    drop(store);
    // Flush what the WAL holds into SST files.
    let store = RocksStore::open(dir, &RocksConfig::default()).expect("reopen");
    store.flush().expect("flush");
}

fn largest_sst(dir: &Path) -> PathBuf {
    let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .expect("list")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sst"))
        .map(|p| (std::fs::metadata(&p).expect("stat").len(), p))
        .collect();
    files.sort();
    files.pop().expect("an SST file").1
}

fn read_all(dir: &Path) -> Result<u64, String> {
    let store: Arc<dyn Store> = Arc::new(RocksStore::open(dir, &RocksConfig::default()).map_err(|e| e.to_string())?);
    let log = ShardLog::open(store, 0).map_err(|e| e.to_string())?;
    log.scan_entries(1, &mut |_| true).map_err(|e| e.to_string())
}

#[test]
fn a_flipped_byte_in_an_sst_file_is_reported_with_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    fill(dir.path());
    assert_eq!(read_all(dir.path()), Ok(2_000));
    let sst = largest_sst(dir.path());
    let mut bytes = std::fs::read(&sst).expect("read");
    let middle = bytes.len() / 3;
    for byte in &mut bytes[middle..middle + 16] {
        *byte ^= 0x5A;
    }
    std::fs::write(&sst, &bytes).expect("write");
    let error = read_all(dir.path()).expect_err("the damage is found");
    let name = sst.file_name().expect("a name").to_string_lossy().into_owned();
    assert!(error.contains("Corruption") && error.contains(&name), "{error}");
}

#[test]
fn a_truncated_sst_file_is_reported_with_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    fill(dir.path());
    let sst = largest_sst(dir.path());
    let length = std::fs::metadata(&sst).expect("stat").len();
    std::fs::OpenOptions::new().write(true).open(&sst).expect("open").set_len(length / 2).expect("truncate");
    let error = read_all(dir.path()).expect_err("the damage is found");
    let name = sst.file_name().expect("a name").to_string_lossy().into_owned();
    assert!(error.contains(&name), "{error}");
}
