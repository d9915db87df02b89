//! Process memory, read from `/proc/self/statm` (Linux).

/// Resident set size in bytes, or None where `/proc` is unavailable.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
