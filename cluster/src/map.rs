//! The cluster's placement: a versioned shard map (player slot -> shard ->
//! replicas and leader) kept in a raft group of its own, the metadata
//! group, with a replica on every node beside the shards' (`Host` drives it
//! in the same loop and write). Every node routes by its applied copy of
//! the map, so moving or splitting shards changes the map, not the
//! gateways.
//!
//! Two changes today. `Bootstrap`: the first leader of the metadata group
//! proposes it (slots dealt round-robin over the configured shards, every
//! shard on every voter); later bootstraps are refused, so the first
//! committed one wins on every node. `Leader`: a shard's new leader records
//! itself with its term; a record of an older term than the map's is
//! refused, so the map ends with the latest leader whatever order the
//! records commit in. (A node forwards requests to the leader its own
//! replica knows, which may be newer than the map's for a moment.)

use engine::PlayerId;
use persistence::Op;

use crate::replica::Machine;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::routing::{slot_of, SlotMap, SLOT_COUNT};

/// The metadata group's id (its log is keyed as a shard's would be).
pub const META_GROUP: u32 = u32::MAX;
const FORMAT: u8 = 1;
const BOOTSTRAP: u8 = 1;
const LEADER: u8 = 2;
/// The map's own encoding (in snapshots): 1 had no leaders.
const MAP_FORMAT: u8 = 2;
/// Replicas per shard at most.
pub const REPLICAS_MAX: usize = 7;

/// A shard's leader as the map records it (node 0: none recorded yet).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Leader {
    pub node: u64,
    pub term: u64,
}

/// Where every slot lives, at a version (0: not yet bootstrapped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardMap {
    version: u64,
    slots: SlotMap,
    replicas: Vec<Vec<u64>>,
    leaders: Vec<Leader>,
}

impl Default for ShardMap {
    fn default() -> Self {
        ShardMap { version: 0, slots: SlotMap::from_slots(vec![0; usize::from(SLOT_COUNT)]), replicas: Vec::new(), leaders: Vec::new() }
    }
}

/// A change to the map, as the metadata group's log carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapChange {
    /// The first map: `shard_count` shards, slots dealt round-robin, each
    /// shard replicated on `replicas`.
    Bootstrap { shard_count: u32, replicas: Vec<u64> },
    /// `node` leads `shard` since `term`.
    Leader { shard: u32, node: u64, term: u64 },
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        if self.0.len() < N {
            return Err("truncated".into());
        }
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        Ok(head.try_into().expect("N bytes"))
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take()?))
    }
    fn ids(&mut self) -> Result<Vec<u64>, String> {
        let count = usize::from(self.u8()?);
        if count > REPLICAS_MAX {
            return Err(format!("{count} replicas"));
        }
        (0..count).map(|_| self.u64()).collect()
    }
}

fn put_ids(out: &mut Vec<u8>, ids: &[u64]) {
    out.push(ids.len() as u8);
    for id in ids {
        out.extend_from_slice(&id.to_le_bytes());
    }
}

impl MapChange {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            MapChange::Bootstrap { shard_count, replicas } => {
                let mut out = vec![FORMAT, BOOTSTRAP];
                out.extend_from_slice(&shard_count.to_le_bytes());
                put_ids(&mut out, replicas);
                out
            }
            MapChange::Leader { shard, node, term } => {
                let mut out = vec![FORMAT, LEADER];
                out.extend_from_slice(&shard.to_le_bytes());
                out.extend_from_slice(&node.to_le_bytes());
                out.extend_from_slice(&term.to_le_bytes());
                out
            }
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<MapChange, String> {
        let mut input = Reader(bytes);
        match (input.u8()?, input.u8()?) {
            (FORMAT, BOOTSTRAP) => {
                let shard_count = input.u32()?;
                let replicas = input.ids()?;
                if !input.0.is_empty() {
                    return Err("trailing bytes".into());
                }
                Ok(MapChange::Bootstrap { shard_count, replicas })
            }
            (FORMAT, LEADER) => {
                let change = MapChange::Leader { shard: input.u32()?, node: input.u64()?, term: input.u64()? };
                if !input.0.is_empty() {
                    return Err("trailing bytes".into());
                }
                Ok(change)
            }
            (format, kind) => Err(format!("unknown map change {format}/{kind}")),
        }
    }
}

/// The applied shard map as requests are routed by it, read without a lock
/// on every request: the shard of each slot and the map's version, each an
/// atomic that the raft loop stores when the map changes. A lookup reads
/// one slot, so it sees that slot's shard in the old map or the new one,
/// as it would with the whole map behind a lock.
#[derive(Debug)]
pub struct Routes {
    version: AtomicU64,
    shard_count: AtomicU32,
    shard_of_slot: Box<[AtomicU32]>,
}

impl Routes {
    pub fn new(map: &ShardMap) -> Routes {
        let routes = Routes {
            version: AtomicU64::new(0),
            shard_count: AtomicU32::new(0),
            shard_of_slot: (0..SLOT_COUNT).map(|_| AtomicU32::new(0)).collect(),
        };
        routes.publish(map);
        routes
    }

    /// Stores `map`'s routes; its version last, so that a reader that sees
    /// the version (with acquire) sees the slots too.
    pub fn publish(&self, map: &ShardMap) {
        for (slot, shard) in self.shard_of_slot.iter().enumerate() {
            shard.store(map.slots.shard_of_slot(slot as u16), Ordering::Relaxed);
        }
        self.shard_count.store(map.shard_count(), Ordering::Relaxed);
        self.version.store(map.version(), Ordering::Release);
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The map's shard count (read after [`Routes::version`] to match it).
    pub fn shard_count(&self) -> u32 {
        self.shard_count.load(Ordering::Relaxed)
    }

    pub fn shard_of(&self, player: PlayerId) -> u32 {
        self.shard_of_slot[usize::from(slot_of(player))].load(Ordering::Relaxed)
    }
}

impl ShardMap {
    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn shard_count(&self) -> u32 {
        self.replicas.len() as u32
    }

    pub fn shard_of(&self, player: PlayerId) -> u32 {
        self.slots.shard_of_slot(slot_of(player))
    }

    /// The nodes holding a replica of `shard`.
    pub fn replicas(&self, shard: u32) -> &[u64] {
        self.replicas.get(shard as usize).map_or(&[], Vec::as_slice)
    }

    /// `shard`'s leader as last recorded (node 0: none yet).
    pub fn leader(&self, shard: u32) -> Leader {
        self.leaders.get(shard as usize).copied().unwrap_or_default()
    }

    /// Applies a change: the map after it, or why it is refused (the map
    /// is then unchanged).
    pub fn apply(&mut self, change: &MapChange) -> Result<u64, String> {
        match change {
            MapChange::Bootstrap { shard_count, replicas } => {
                if self.version > 0 {
                    return Err(format!("the map is already at version {}", self.version));
                }
                if *shard_count == 0 || replicas.is_empty() || replicas.len() > REPLICAS_MAX {
                    return Err(format!("{shard_count} shards on {} replicas", replicas.len()));
                }
                self.slots = SlotMap::even(*shard_count);
                self.replicas = vec![replicas.clone(); *shard_count as usize];
                self.leaders = vec![Leader::default(); *shard_count as usize];
                self.version = 1;
                Ok(self.version)
            }
            MapChange::Leader { shard, node, term } => {
                let Some(recorded) = self.leaders.get_mut(*shard as usize) else {
                    return Err(format!("shard {shard} is not in the map (version {})", self.version));
                };
                if !self.replicas[*shard as usize].contains(node) {
                    return Err(format!("node {node} holds no replica of shard {shard}"));
                }
                if *term <= recorded.term {
                    return Err(format!("shard {shard}'s leader is recorded at term {}, not older {term}", recorded.term));
                }
                *recorded = Leader { node: *node, term: *term };
                self.version += 1;
                Ok(self.version)
            }
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![MAP_FORMAT];
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.replicas.len() as u32).to_le_bytes());
        for shard in self.slots.slots() {
            out.extend_from_slice(&shard.to_le_bytes());
        }
        for replicas in &self.replicas {
            put_ids(&mut out, replicas);
        }
        for leader in &self.leaders {
            out.extend_from_slice(&leader.node.to_le_bytes());
            out.extend_from_slice(&leader.term.to_le_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<ShardMap, String> {
        let mut input = Reader(bytes);
        let format = input.u8()?;
        if format != 1 && format != MAP_FORMAT {
            return Err("unknown shard map format".into());
        }
        let version = input.u64()?;
        let shard_count = input.u32()?;
        let slots = (0..SLOT_COUNT).map(|_| input.u32()).collect::<Result<Vec<_>, _>>()?;
        if slots.iter().any(|shard| *shard >= shard_count.max(1)) {
            return Err("a slot names a shard beyond the count".into());
        }
        let replicas = (0..shard_count).map(|_| input.ids()).collect::<Result<Vec<_>, _>>()?;
        let leaders = match format {
            1 => vec![Leader::default(); shard_count as usize],
            _ => (0..shard_count).map(|_| Ok(Leader { node: input.u64()?, term: input.u64()? })).collect::<Result<Vec<_>, String>>()?,
        };
        if !input.0.is_empty() {
            return Err("trailing bytes".into());
        }
        Ok(ShardMap { version, slots: SlotMap::from_slots(slots), replicas, leaders })
    }
}

/// The metadata group's machine: the map, changed by committed entries.
#[derive(Debug, Default)]
pub struct MapMachine {
    map: ShardMap,
}

impl MapMachine {
    pub fn map(&self) -> &ShardMap {
        &self.map
    }
}

impl Machine for MapMachine {
    type Output = Result<u64, String>;

    /// Changes are idempotent by themselves (a second bootstrap, a leader
    /// of a term not newer than the map's, are refused), so copies need no
    /// skipping.
    fn apply(&mut self, _index: u64, _proposal: u64, data: &[u8], _ops: &mut Vec<Op>) -> Result<Option<Self::Output>, String> {
        let change = MapChange::decode(data)?;
        Ok(Some(self.map.apply(&change)))
    }

    fn weight(_output: &Self::Output) -> u64 {
        1
    }

    fn snapshot(&self) -> Vec<u8> {
        self.map.encode()
    }

    fn restore(&mut self, _index: u64, data: &[u8]) -> Result<(), String> {
        self.map = ShardMap::decode(data)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_bootstrap_wins_and_the_map_round_trips() {
        let mut machine = MapMachine::default();
        let mut ops = Vec::new();
        let first = MapChange::Bootstrap { shard_count: 3, replicas: vec![1, 2, 3] };
        assert_eq!(machine.apply(1, 0, &first.encode(), &mut ops), Ok(Some(Ok(1))));
        let second = MapChange::Bootstrap { shard_count: 5, replicas: vec![1] };
        assert!(matches!(machine.apply(2, 0, &second.encode(), &mut ops), Ok(Some(Err(_)))));
        assert_eq!(machine.map().shard_count(), 3);
        assert_eq!(machine.map().replicas(2), &[1, 2, 3]);
        let even = SlotMap::even(3);
        for player in 0..1_000 {
            assert_eq!(machine.map().shard_of(PlayerId(player)), even.shard_of(PlayerId(player)));
        }
        let mut restored = MapMachine::default();
        restored.restore(2, &machine.snapshot()).expect("restores");
        assert_eq!(restored.map(), machine.map());
        assert!(machine.apply(3, 0, b"\x01\x09", &mut ops).is_err(), "an unknown change is an error");
        assert!(ShardMap::decode(&machine.snapshot()[..10]).is_err(), "a truncated map is refused");
    }

    #[test]
    fn a_leader_is_recorded_only_at_a_newer_term() {
        let mut machine = MapMachine::default();
        let mut ops = Vec::new();
        let leader = |shard, node, term| MapChange::Leader { shard, node, term }.encode();
        assert!(matches!(machine.apply(1, 0, &leader(0, 1, 2), &mut ops), Ok(Some(Err(_)))), "no map yet");
        let bootstrap = MapChange::Bootstrap { shard_count: 2, replicas: vec![1, 2, 3] };
        assert_eq!(machine.apply(2, 0, &bootstrap.encode(), &mut ops), Ok(Some(Ok(1))));
        assert_eq!(machine.map().leader(1), Leader::default());
        assert_eq!(machine.apply(3, 0, &leader(1, 2, 5), &mut ops), Ok(Some(Ok(2))));
        assert_eq!(machine.map().leader(1), Leader { node: 2, term: 5 });
        // An older or equal term (a record that committed late), a shard
        // beyond the map, a node without a replica: refused, map unchanged.
        for stale in [leader(1, 3, 4), leader(1, 3, 5), leader(2, 1, 9), leader(0, 4, 9)] {
            assert!(matches!(machine.apply(4, 0, &stale, &mut ops), Ok(Some(Err(_)))));
        }
        assert_eq!((machine.map().version(), machine.map().leader(1)), (2, Leader { node: 2, term: 5 }));
        assert_eq!(machine.apply(5, 0, &leader(1, 3, 6), &mut ops), Ok(Some(Ok(3))));
        assert_eq!(MapChange::decode(&leader(1, 3, 6)), Ok(MapChange::Leader { shard: 1, node: 3, term: 6 }));
        // Round trip with the leaders; a snapshot of the first format (no
        // leaders) still opens, without them.
        let mut restored = MapMachine::default();
        restored.restore(5, &machine.snapshot()).expect("restores");
        assert_eq!(restored.map(), machine.map());
        let mut old = machine.snapshot();
        old[0] = 1;
        old.truncate(old.len() - 2 * 16);
        let old = ShardMap::decode(&old).expect("the first format");
        assert_eq!((old.version(), old.replicas(1), old.leader(1)), (3, &[1, 2, 3][..], Leader::default()));
    }

    #[test]
    fn routes_follow_the_map_they_were_last_given() {
        let routes = Routes::new(&ShardMap::default());
        assert_eq!((routes.version(), routes.shard_count()), (0, 0));
        let mut machine = MapMachine::default();
        let mut ops = Vec::new();
        let bootstrap = MapChange::Bootstrap { shard_count: 5, replicas: vec![1, 2, 3] };
        assert_eq!(machine.apply(1, 0, &bootstrap.encode(), &mut ops), Ok(Some(Ok(1))));
        routes.publish(machine.map());
        assert_eq!((routes.version(), routes.shard_count()), (1, 5));
        let shards: std::collections::HashSet<u32> = (0..10_000).map(|p| routes.shard_of(PlayerId(p))).collect();
        assert_eq!(shards.len(), 5, "players spread over every shard");
        for player in 0..10_000 {
            assert_eq!(routes.shard_of(PlayerId(player)), machine.map().shard_of(PlayerId(player)));
        }
    }
}
