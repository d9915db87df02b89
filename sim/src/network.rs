//! What the deterministic simulators (`replication`, `cluster`) share: the
//! faults of their simulated network and disks, and running one seed with
//! any panic inside (raft-rs's own checks included) turned into a failure
//! that names the seed.

/// What can go wrong, per step.
#[derive(Debug, Clone, Copy)]
pub struct NetworkFaults {
    pub drop_percent: u32,
    pub duplicate_percent: u32,
    /// Messages arrive 0 to this many steps late (so they also reorder).
    pub max_delay_steps: u64,
    /// Chance per step that a node is cut off from the others for a while.
    pub partition_per_mille: u32,
    /// Chance per step that a node crashes (and restarts a while later),
    /// losing a random part of what it wrote since its last sync.
    pub crash_per_mille: u32,
}

impl Default for NetworkFaults {
    fn default() -> Self {
        NetworkFaults { drop_percent: 10, duplicate_percent: 5, max_delay_steps: 4, partition_per_mille: 8, crash_per_mille: 4 }
    }
}

/// Takes from `in_flight` (in send order) what arrives at `step` or
/// before, in send order; the rest stays in flight. A message delayed
/// longer than one sent after it arrives at a later step: that is the
/// reordering.
pub fn take_due<T>(in_flight: &mut Vec<(u64, T)>, step: u64) -> Vec<T> {
    let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(in_flight).into_iter().partition(|(at, _)| *at <= step);
    *in_flight = waiting;
    due.into_iter().map(|(_, item)| item).collect()
}

/// Runs one seed: Err names the seed and what failed, a panic included.
pub fn caught<R>(seed: u64, run: impl FnOnce() -> Result<R, String> + std::panic::UnwindSafe) -> Result<R, String> {
    match std::panic::catch_unwind(run) {
        Ok(result) => result.map_err(|why| if why.starts_with("seed ") { why } else { format!("seed {seed}: {why}") }),
        Err(payload) => {
            let why = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".to_string());
            Err(format!("seed {seed}: panicked: {why}"))
        }
    }
}
