//! The configuration cache: decoded STEs keyed by StreamID and decoded CDs keyed by
//! (StreamID, CD index), invalidated exactly by the CFGI_* commands (IHI 0070 §4.3, §16.2,
//! §3.21).
//!
//! Concurrency: lookups take no locks and write no shared memory beyond an [`ArcSwap`] load;
//! STEs and CDs each live in [`SHARDS`] shards (STEs chosen by StreamID, CDs by a hash of
//! StreamID and CD index, so one stream's many substreams spread out), and each shard publishes
//! an immutable map snapshot. Writers
//! (inserts and invalidations) are serialised by one mutex and replace a shard's snapshot
//! (copy-on-write; shards are bounded, so a copy is bounded too).
//!
//! An insert can race with an invalidation: a translation misses, reads the old STE from memory,
//! then a CFGI for that STE completes, then the translation inserts what it read. To make
//! "after CMD_SYNC completes no stale configuration is used" hold, every insert carries a
//! [`Ticket`] taken *before* reading guest memory; every invalidation bumps a generation under
//! the writer lock, and an insert whose ticket is older is dropped.
//!
//! Semantics (IHI 0070 §4.3): CFGI_STE / CFGI_STE_RANGE also drop every CD cached through the
//! affected StreamIDs; CFGI_ALL drops everything.
//!
//! Policies:
//! - CFGI_CD with Leaf = 0 (its L1 CD descriptor may have changed) drops every CD of the
//!   StreamID, since other CDs of the same leaf table were resolved through that descriptor.
//! - L1 stream and CD descriptors are not cached at all (Linux installs L1 stream descriptors
//!   without a CFGI, so an invalid one must never be cached).
//! - Each STE shard holds at most [`STE_CAPACITY`] entries and each CD shard [`CD_CAPACITY`];
//!   inserting into a full shard evicts an arbitrary entry (a hostile guest cannot grow the
//!   cache without bound).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use super::{ContextConfig, StreamConfig};
use crate::cmdq::command::Command;

/// Number of shards of each map (a power of two).
pub const SHARDS: usize = 64;
/// Maximum cached STEs per shard.
pub const STE_CAPACITY: usize = 256;
/// Maximum cached CDs per shard.
pub const CD_CAPACITY: usize = 256;

/// Proof that an insert is based on memory read after the last invalidation it must respect.
/// Take it with [`ConfigCache::ticket`] *before* reading the STE/CD from guest memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

type SteMap = HashMap<u32, StreamConfig>;
type CdMap = HashMap<(u32, u32), ContextConfig>;

/// The lock-free configuration cache (see the module docs).
pub struct ConfigCache {
    /// STEs, sharded by StreamID.
    stes: Box<[ArcSwap<SteMap>]>,
    /// CDs, sharded by (StreamID, CD index) so that one stream's many substreams spread out.
    cds: Box<[ArcSwap<CdMap>]>,
    /// Bumped (under `writer`) by every invalidation; read with Acquire by [`Self::ticket`] so
    /// that memory reads after the ticket see guest writes made before the invalidation.
    generation: AtomicU64,
    /// Serialises inserts and invalidations (the copy-on-write of shard snapshots and the
    /// generation check of inserts).
    writer: Mutex<()>,
}

impl Default for ConfigCache {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for ConfigCache {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (stes, cds) = self.len();
        f.debug_struct("ConfigCache")
            .field("stes", &stes)
            .field("cds", &cds)
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .finish()
    }
}

const fn ste_shard(sid: u32) -> usize {
    (sid as usize) & (SHARDS - 1)
}

const fn cd_shard(sid: u32, index: u32) -> usize {
    // Fibonacci hashing of both ids; the top bits select the shard.
    let h = ((sid as u64) << 32 | index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h >> 58) as usize & (SHARDS - 1)
}

/// Insert into a bounded map, evicting an arbitrary other entry when full.
fn bounded_insert<K: Copy + Eq + core::hash::Hash, V>(
    m: &mut HashMap<K, V>,
    cap: usize,
    key: K,
    value: V,
) {
    if m.len() >= cap && !m.contains_key(&key) {
        if let Some(&victim) = m.keys().next() {
            m.remove(&victim);
        }
    }
    m.insert(key, value);
}

fn shards<T: Default>() -> Box<[ArcSwap<T>]> {
    (0..SHARDS)
        .map(|_| ArcSwap::from_pointee(T::default()))
        .collect()
}

impl ConfigCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self {
            stes: shards(),
            cds: shards(),
            generation: AtomicU64::new(0),
            writer: Mutex::new(()),
        }
    }

    /// The cached configuration of `sid` (lock-free).
    pub fn ste(&self, sid: u32) -> Option<StreamConfig> {
        // Indices are masked to SHARDS, the length of the shard arrays.
        self.stes[ste_shard(sid)].load().get(&sid).copied()
    }

    /// The cached CD `index` of `sid` (lock-free).
    pub fn cd(&self, sid: u32, index: u32) -> Option<ContextConfig> {
        self.cds[cd_shard(sid, index)]
            .load()
            .get(&(sid, index))
            .copied()
    }

    /// A ticket for a later insert; take it before reading guest memory.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.generation.load(Ordering::Acquire))
    }

    /// Cache `sid`'s decoded STE. Returns false (and caches nothing) if an invalidation
    /// happened since `ticket` was taken.
    pub fn insert_ste(&self, ticket: Ticket, sid: u32, cfg: StreamConfig) -> bool {
        let _w = self.lock();
        if !self.current(ticket) {
            return false;
        }
        let shard = &self.stes[ste_shard(sid)];
        let mut m = SteMap::clone(&shard.load());
        bounded_insert(&mut m, STE_CAPACITY, sid, cfg);
        shard.store(Arc::new(m));
        true
    }

    /// Cache CD `index` of `sid`. Returns false (and caches nothing) if an invalidation
    /// happened since `ticket` was taken.
    pub fn insert_cd(&self, ticket: Ticket, sid: u32, index: u32, cfg: ContextConfig) -> bool {
        let _w = self.lock();
        if !self.current(ticket) {
            return false;
        }
        let shard = &self.cds[cd_shard(sid, index)];
        let mut m = CdMap::clone(&shard.load());
        bounded_insert(&mut m, CD_CAPACITY, (sid, index), cfg);
        shard.store(Arc::new(m));
        true
    }

    /// CFGI_STE: drop `sid`'s STE and the CDs cached through it.
    pub fn invalidate_ste(&self, sid: u32) {
        self.invalidate_sids(sid, sid);
    }

    /// CFGI_STE_RANGE: drop the STEs and CDs of every StreamID in `first..=last`, cached or not.
    pub fn invalidate_sids(&self, first: u32, last: u32) {
        let _w = self.lock();
        self.bump();
        let in_range = |s: u32| (first..=last).contains(&s);
        for shard in self.stes.iter() {
            let cur = shard.load();
            if cur.keys().any(|&s| in_range(s)) {
                let mut m = SteMap::clone(&cur);
                m.retain(|&s, _| !in_range(s));
                shard.store(Arc::new(m));
            }
        }
        self.retain_cds(|s, _| !in_range(s));
    }

    /// CFGI_CD with Leaf = 1: drop CD `index` of `sid`.
    pub fn invalidate_cd(&self, sid: u32, index: u32) {
        let _w = self.lock();
        self.bump();
        let shard = &self.cds[cd_shard(sid, index)];
        let cur = shard.load();
        if cur.contains_key(&(sid, index)) {
            let mut m = CdMap::clone(&cur);
            m.remove(&(sid, index));
            shard.store(Arc::new(m));
        }
    }

    /// CFGI_CD_ALL (and CFGI_CD with Leaf = 0): drop every CD of `sid`.
    pub fn invalidate_cds(&self, sid: u32) {
        let _w = self.lock();
        self.bump();
        self.retain_cds(|s, _| s != sid);
    }

    /// CFGI_ALL, reset, SMMUEN transitions: drop everything.
    pub fn invalidate_all(&self) {
        let _w = self.lock();
        self.bump();
        for shard in self.stes.iter() {
            if !shard.load().is_empty() {
                shard.store(Arc::new(SteMap::default()));
            }
        }
        for shard in self.cds.iter() {
            if !shard.load().is_empty() {
                shard.store(Arc::new(CdMap::default()));
            }
        }
    }

    /// Apply a command's configuration-cache effect. Returns true for the CFGI_* commands
    /// (whatever they dropped), false for every other command (nothing done).
    pub fn apply(&self, cmd: &Command) -> bool {
        match *cmd {
            Command::CfgiSte { sid, .. } => self.invalidate_ste(sid.0),
            Command::CfgiSteRange { .. } => {
                if let Some((first, last)) = cmd.cfgi_sid_range() {
                    self.invalidate_sids(first, last);
                }
            }
            Command::CfgiAll => self.invalidate_all(),
            Command::CfgiCd { sid, ssid, leaf } => {
                if leaf {
                    self.invalidate_cd(sid.0, ssid.0);
                } else {
                    self.invalidate_cds(sid.0);
                }
            }
            Command::CfgiCdAll { sid } => self.invalidate_cds(sid.0),
            _ => return false,
        }
        true
    }

    /// Number of cached `(STEs, CDs)`.
    pub fn len(&self) -> (usize, usize) {
        let stes = self.stes.iter().map(|s| s.load().len()).sum();
        let cds = self.cds.iter().map(|s| s.load().len()).sum();
        (stes, cds)
    }

    /// True if nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }

    /// Keep only the CDs for which `keep(sid, index)` holds; called with the writer lock held.
    fn retain_cds(&self, keep: impl Fn(u32, u32) -> bool) {
        for shard in self.cds.iter() {
            let cur = shard.load();
            if cur.keys().any(|&(s, i)| !keep(s, i)) {
                let mut m = CdMap::clone(&cur);
                m.retain(|&(s, i), _| keep(s, i));
                shard.store(Arc::new(m));
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // A poisoned writer lock only means another writer panicked; the maps are always
        // replaced whole, so they are consistent.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        // Release: pairs with the Acquire in `ticket`.
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// True if no invalidation happened since `ticket` (writer lock held).
    fn current(&self, ticket: Ticket) -> bool {
        self.generation.load(Ordering::Relaxed) == ticket.0
    }
}
