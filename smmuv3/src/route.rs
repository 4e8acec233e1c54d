//! The route cache: (StreamID, SubstreamID) to the [`Route`] translation uses, in a fixed
//! array of lock-free slots, so an IOTLB hit costs one atomic load, one slot load and the
//! IOTLB probe.
//!
//! Validity is a generation: every change that can alter a route (CFGI_*, CR0.SMMUEN
//! transitions, reset) bumps it *after* the configuration cache has been invalidated, and an
//! entry is used only if it was resolved under the current generation, taken *before* the
//! configuration was read. So a route can never outlive the CFGI (and CMD_SYNC) that removed
//! its configuration. A slot holds one entry; a colliding stream replaces it (bounded memory).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwapOption;

use crate::translate::Route;

/// Number of slots (a power of two).
pub const SLOTS: usize = 1024;

/// Key value meaning "no SubstreamID".
const NO_SSID: u64 = 1 << 32;

#[derive(Debug)]
struct Entry {
    key: u64,
    generation: u64,
    route: Route,
}

/// The route cache (see the module docs).
pub(crate) struct RouteCache {
    slots: Box<[ArcSwapOption<Entry>]>,
    /// Bumped after every invalidation of the configuration a route depends on. Acquire/Release
    /// pair with the configuration cache's own generation: a route resolved after reading
    /// generation `g` used configuration at least as new as the invalidation that produced `g`.
    generation: AtomicU64,
}

fn key(sid: u32, ssid: Option<u32>) -> u64 {
    (u64::from(sid) << 33) | ssid.map_or(NO_SSID, u64::from)
}

fn slot_of(key: u64) -> usize {
    // Fibonacci hashing of the key; SLOTS is a power of two.
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54) as usize & (SLOTS - 1)
}

impl RouteCache {
    pub(crate) fn new() -> Self {
        Self {
            slots: (0..SLOTS).map(|_| ArcSwapOption::empty()).collect(),
            generation: AtomicU64::new(0),
        }
    }

    /// The current generation; take it before resolving a route to insert.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The cached route of `(sid, ssid)`, if resolved under the current generation.
    pub(crate) fn get(&self, sid: u32, ssid: Option<u32>) -> Option<Route> {
        let k = key(sid, ssid);
        let g = self.generation();
        let slot = self.slots.get(slot_of(k))?;
        let e = slot.load();
        match e.as_deref() {
            Some(e) if e.key == k && e.generation == g => Some(e.route),
            _ => None,
        }
    }

    /// Cache `route` resolved under `generation` (ignored if it is no longer current).
    pub(crate) fn insert(&self, generation: u64, sid: u32, ssid: Option<u32>, route: Route) {
        if generation != self.generation() {
            return;
        }
        let k = key(sid, ssid);
        if let Some(slot) = self.slots.get(slot_of(k)) {
            slot.store(Some(Arc::new(Entry {
                key: k,
                generation,
                route,
            })));
        }
    }

    /// Invalidate every cached route.
    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}
