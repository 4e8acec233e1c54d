//! The configuration cache: decoded STEs keyed by StreamID and decoded CDs keyed by
//! (StreamID, CD index), invalidated exactly by the CFGI_* commands (IHI 0070 §4.3, §16.2,
//! §3.21).
//!
//! Storage: two fixed arrays of seqlock slots (`config::slots`), allocated once. An STE lives
//! in the slot its StreamID selects (`sid mod` [`STE_SLOTS`]), a CD in the slot a hash of
//! (StreamID, CD index) selects, so one stream's many substreams spread out. A slot holds one
//! entry: inserting a colliding one replaces it (bounded memory: a hostile guest cannot grow the
//! cache). Values are kept packed (`config::words`). Lookups take no lock and write nothing
//! shared; an insert is a few stores into one slot, never an allocation.
//!
//! Validity is a pair of stamps written with each entry and compared on every lookup:
//! - the **epoch**, bumped by CFGI_ALL (and by ranges that cover every stream slot), so that
//!   dropping everything is one increment, not a sweep;
//! - the **stream generation** of the StreamID's slot (`sid mod` [`STE_SLOTS`], shared by the
//!   StreamIDs that collide there), bumped by CFGI_STE and CFGI_STE_RANGE: it drops the STE
//!   and every CD cached through it in one increment. CDs are stamped with the sum of it and
//!   the slot's **CD generation**, which CFGI_CD_ALL and CFGI_CD with Leaf = 0 bump (both
//!   only increase, so the sum changes whenever either does).
//!
//! CFGI_CD with Leaf = 1 empties the one slot that can hold that CD.
//!
//! An insert can race with an invalidation: a translation misses, reads the old STE from memory,
//! then a CFGI for that STE completes, then the translation inserts what it read. To make
//! "after CMD_SYNC completes no stale configuration is used" hold, every insert carries a
//! [`Ticket`] (the count of invalidations so far) taken *before* reading guest memory, and is
//! admitted only if no invalidation happened since. The argument:
//! - Every invalidation first increments the ticket counter, then (Release) the stamp or the
//!   slot it invalidates.
//! - An insert compares its ticket with the counter *inside* the slot's write critical
//!   section, after loading the stamps it writes (Acquire). If it loaded a stamp an
//!   invalidation incremented, that invalidation's counter increment happened before, so the
//!   ticket is refused. If it loaded the older stamp, the entry carries it and no lookup after
//!   the invalidation accepts it. A Leaf = 1 CFGI_CD and the insert enter the same slot's
//!   critical section one after the other: if the insert enters first, the clear that follows
//!   removes its entry; if the clear enters first, the insert's entry observes the counter
//!   increment made before it, and is refused.
//! - A lookup loads the current stamps before the slot, so once an invalidation has returned
//!   (and CMD_SYNC completed) no entry stamped before it is used.
//!
//! Semantics (IHI 0070 §4.3): CFGI_STE / CFGI_STE_RANGE also drop every CD cached through the
//! affected StreamIDs; CFGI_ALL drops everything.
//!
//! Policies:
//! - CFGI_CD with Leaf = 0 (its L1 CD descriptor may have changed) drops every CD of the
//!   StreamID, since other CDs of the same leaf table were resolved through that descriptor.
//! - L1 stream and CD descriptors are not cached at all (Linux installs L1 stream descriptors
//!   without a CFGI, so an invalid one must never be cached).
//! - Invalidating one StreamID also drops the entries of the StreamIDs sharing its stream
//!   generation (conservative), and any invalidation refuses every insert whose ticket
//!   predates it.

use crate::sync::{AtomicU64, Ordering};

use super::slots::{Slots, EMPTY};
use super::words::Packed;
use super::{ContextConfig, StreamConfig};
use crate::cmdq::command::Command;

/// The arrays are sized as `SHARDS` groups of [`STE_CAPACITY`] STE slots and of
/// [`CD_CAPACITY`] CD slots. (The loom build uses 4 + 4 slots so that its models, which build a
/// cache per execution, stay small; the protocol does not depend on the sizes.)
#[cfg(not(loom))]
pub const SHARDS: usize = 64;
/// STE slots per group of [`SHARDS`].
#[cfg(not(loom))]
pub const STE_CAPACITY: usize = 64;
/// CD slots per group of [`SHARDS`].
#[cfg(not(loom))]
pub const CD_CAPACITY: usize = 64;
/// The loom build's single group.
#[cfg(loom)]
pub const SHARDS: usize = 1;
/// The loom build's STE slots.
#[cfg(loom)]
pub const STE_CAPACITY: usize = 4;
/// The loom build's CD slots.
#[cfg(loom)]
pub const CD_CAPACITY: usize = 4;
/// STE slots (and stream generations): at most this many STEs are cached.
pub const STE_SLOTS: usize = SHARDS * STE_CAPACITY;
/// CD slots: at most this many CDs are cached.
pub const CD_SLOTS: usize = SHARDS * CD_CAPACITY;

/// Proof that an insert is based on memory read after the last invalidation it must respect.
/// Take it with [`ConfigCache::ticket`] *before* reading the STE/CD from guest memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

/// The lock-free configuration cache (see the module docs).
pub struct ConfigCache {
    /// STEs, in slot `sid mod STE_SLOTS`.
    stes: Slots,
    /// CDs, in the slot a hash of (StreamID, CD index) selects.
    cds: Slots,
    /// Stream generations, per STE slot.
    streams: Box<[AtomicU64]>,
    /// CD generations, per STE slot (bumped by CFGI_CD_ALL and Leaf = 0 CFGI_CD).
    cd_streams: Box<[AtomicU64]>,
    /// Bumped by CFGI_ALL.
    epoch: AtomicU64,
    /// Bumped first by every invalidation; a [`Ticket`] is its value.
    generation: AtomicU64,
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

const fn ste_slot(sid: u32) -> usize {
    (sid as usize) & (STE_SLOTS - 1)
}

const fn cd_key(sid: u32, index: u32) -> u64 {
    (sid as u64) << 32 | index as u64
}

const fn cd_slot(key: u64) -> usize {
    // Fibonacci hashing of both ids; the top bits select the slot.
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52) as usize & (CD_SLOTS - 1)
}

impl ConfigCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self {
            stes: Slots::new(STE_SLOTS),
            cds: Slots::new(CD_SLOTS),
            streams: (0..STE_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            cd_streams: (0..STE_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            epoch: AtomicU64::new(0),
            generation: AtomicU64::new(0),
        }
    }

    /// The stamps current for `sid`'s STE: (epoch, stream generation).
    fn stamps(&self, sid: u32) -> [u64; 2] {
        [
            self.epoch.load(Ordering::Acquire),
            self.streams[ste_slot(sid)].load(Ordering::Acquire),
        ]
    }

    /// The stamps current for `sid`'s CDs: (epoch, stream generation + CD generation). Both
    /// generations only increase, so their sum changes whenever either does.
    fn cd_stamps(&self, sid: u32) -> [u64; 2] {
        let [epoch, stream] = self.stamps(sid);
        let cds = self.cd_streams[ste_slot(sid)].load(Ordering::Acquire);
        [epoch, stream.wrapping_add(cds)]
    }

    /// The value in slot `i` of `slots` if it is `key`'s and stamped with `stamps` (the key
    /// and stamps are compared before any data word is read, so a miss is cheap).
    #[inline]
    fn valid<T: Packed>(slots: &Slots, i: usize, key: u64, stamps: [u64; 2]) -> Option<T> {
        let words = slots.read_with(i, |k, tags, w| {
            (k == key && tags == stamps).then(|| w.all())
        })?;
        T::unpack(&words)
    }

    /// The cached configuration of `sid` (lock-free).
    pub fn ste(&self, sid: u32) -> Option<StreamConfig> {
        let stamps = self.stamps(sid);
        Self::valid(&self.stes, ste_slot(sid), u64::from(sid), stamps)
    }

    /// The cached CD `index` of `sid` (lock-free).
    pub fn cd(&self, sid: u32, index: u32) -> Option<ContextConfig> {
        let stamps = self.cd_stamps(sid);
        let key = cd_key(sid, index);
        Self::valid(&self.cds, cd_slot(key), key, stamps)
    }

    /// A ticket for a later insert; take it before reading guest memory.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.generation.load(Ordering::Acquire))
    }

    /// `stamps` if no invalidation happened since `ticket`, else `None` (runs inside the
    /// slot's critical section, after the stamps were loaded).
    fn admit(&self, ticket: Ticket, stamps: [u64; 2]) -> Option<[u64; 2]> {
        (self.generation.load(Ordering::Acquire) == ticket.0).then_some(stamps)
    }

    /// Cache `sid`'s decoded STE. Returns false (and caches nothing) if an invalidation
    /// happened since `ticket` was taken (or another insert is filling the same slot).
    pub fn insert_ste(&self, ticket: Ticket, sid: u32, cfg: StreamConfig) -> bool {
        self.stes
            .try_write(ste_slot(sid), u64::from(sid), &cfg.pack(), || {
                self.admit(ticket, self.stamps(sid))
            })
    }

    /// Cache CD `index` of `sid`. Returns false (and caches nothing) if an invalidation
    /// happened since `ticket` was taken (or another insert is filling the same slot).
    pub fn insert_cd(&self, ticket: Ticket, sid: u32, index: u32, cfg: ContextConfig) -> bool {
        let key = cd_key(sid, index);
        self.cds.try_write(cd_slot(key), key, &cfg.pack(), || {
            self.admit(ticket, self.cd_stamps(sid))
        })
    }

    /// CFGI_STE: drop `sid`'s STE and the CDs cached through it.
    pub fn invalidate_ste(&self, sid: u32) {
        self.invalidate_sids(sid, sid);
    }

    /// CFGI_STE_RANGE: drop the STEs and CDs of every StreamID in `first..=last`, cached or not.
    /// A range covering at least every stream slot drops everything (one epoch increment).
    pub fn invalidate_sids(&self, first: u32, last: u32) {
        self.bump();
        let n = u64::from(last).saturating_sub(u64::from(first)) + 1;
        if n >= STE_SLOTS as u64 {
            self.epoch.fetch_add(1, Ordering::Release);
            return;
        }
        for sid in first..=last {
            self.streams[ste_slot(sid)].fetch_add(1, Ordering::Release);
        }
    }

    /// CFGI_CD with Leaf = 1: drop CD `index` of `sid`.
    pub fn invalidate_cd(&self, sid: u32, index: u32) {
        self.bump();
        let key = cd_key(sid, index);
        self.cds.clear(cd_slot(key), key);
    }

    /// CFGI_CD_ALL (and CFGI_CD with Leaf = 0): drop every CD of `sid`.
    pub fn invalidate_cds(&self, sid: u32) {
        self.bump();
        self.cd_streams[ste_slot(sid)].fetch_add(1, Ordering::Release);
    }

    /// CFGI_ALL, reset, SMMUEN transitions: drop everything, in O(1).
    pub fn invalidate_all(&self) {
        self.bump();
        self.epoch.fetch_add(1, Ordering::Release);
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

    /// Number of cached `(STEs, CDs)`: a sweep of both arrays, for diagnostics and traces.
    pub fn len(&self) -> (usize, usize) {
        let count = |slots: &Slots, stamps: &dyn Fn(u64) -> [u64; 2]| {
            (0..slots.len())
                .filter_map(|i| slots.read_with(i, |key, tags, _| Some((key, tags))))
                .filter(|&(key, tags)| key != EMPTY && tags == stamps(key))
                .count()
        };
        (
            count(&self.stes, &|k| self.stamps(k as u32)),
            count(&self.cds, &|k| self.cd_stamps((k >> 32) as u32)),
        )
    }

    /// True if nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }

    /// Count an invalidation: refuses every insert whose ticket predates it.
    fn bump(&self) {
        // AcqRel: the Release half pairs with the Acquire of `ticket` and `admit`; the stamp
        // or slot change that follows is ordered after it.
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}
