//! The configuration cache: CFGI semantics, ticket races, bounds, concurrent readers.

use std::sync::Arc;

use viommu_common::id::{StreamId, SubstreamId};

use super::*;
use crate::cmdq::command::Command;
use crate::config::cache::{ConfigCache, CD_CAPACITY, SHARDS, STE_CAPACITY};
use crate::config::cd::decode_cd;
use crate::config::ste::decode_ste;
use crate::config::{ContextConfig, StreamConfig};
use crate::spec::cd::Cd;
use crate::spec::ste::Ste;

fn bypass_cfg() -> StreamConfig {
    decode_ste(&Ste::from_words(bypass(false)), &caps()).unwrap()
}

fn cd_cfg(asid: u16) -> ContextConfig {
    let s1 = single();
    decode_cd(&Cd::from_words(s1_cd(asid, 0x1000, 16, 5)), &caps(), &s1).unwrap()
}

fn filled() -> ConfigCache {
    let c = ConfigCache::new();
    for sid in [1u32, 2, 3, 0x100, 0x101] {
        assert!(c.insert_ste(c.ticket(), sid, bypass_cfg()));
        for ssid in 0..3 {
            assert!(c.insert_cd(c.ticket(), sid, ssid, cd_cfg(ssid as u16)));
        }
    }
    c
}

/// Inserted entries are found; others are not.
#[test]
fn test_cache_insert_lookup() {
    let c = filled();
    assert_eq!(c.ste(1), Some(bypass_cfg()));
    assert_eq!(c.cd(2, 1), Some(cd_cfg(1)));
    assert_eq!(c.ste(4), None);
    assert_eq!(c.cd(2, 3), None);
    assert_eq!(c.len(), (5, 15));
}

/// CFGI_STE drops the STE and (policy) its CDs, nothing else.
#[test]
fn test_cache_cfgi_ste() {
    let c = filled();
    assert!(c.apply(&Command::CfgiSte {
        sid: StreamId(2),
        leaf: true
    }));
    assert_eq!(c.ste(2), None);
    assert_eq!(c.cd(2, 0), None);
    assert!(c.ste(1).is_some() && c.cd(3, 2).is_some());
    assert_eq!(c.len(), (4, 12));
}

/// CFGI_STE_RANGE drops exactly the aligned window; CFGI_ALL drops everything.
#[test]
fn test_cache_cfgi_range_and_all() {
    let c = filled();
    // SID 0x101, Range 0: window 0x100..=0x101.
    assert!(c.apply(&Command::CfgiSteRange {
        sid: StreamId(0x101),
        range: 0
    }));
    assert_eq!((c.ste(0x100), c.ste(0x101)), (None, None));
    assert!(c.ste(3).is_some());
    // SID 2, Range 1: window 0..=3.
    c.apply(&Command::CfgiSteRange {
        sid: StreamId(2),
        range: 1,
    });
    assert!(c.is_empty());
    let c = filled();
    assert!(c.apply(&Command::CfgiAll));
    assert!(c.is_empty());
}

/// CFGI_CD (Leaf 1) drops one CD; Leaf 0 and CFGI_CD_ALL drop all of the stream's CDs.
#[test]
fn test_cache_cfgi_cd() {
    let c = filled();
    c.apply(&Command::CfgiCd {
        sid: StreamId(1),
        ssid: SubstreamId(1),
        leaf: true,
    });
    assert_eq!(c.cd(1, 1), None);
    assert!(c.cd(1, 0).is_some() && c.cd(1, 2).is_some() && c.ste(1).is_some());
    c.apply(&Command::CfgiCd {
        sid: StreamId(2),
        ssid: SubstreamId(0),
        leaf: false,
    });
    assert_eq!((c.cd(2, 0), c.cd(2, 1), c.cd(2, 2)), (None, None, None));
    assert!(c.ste(2).is_some());
    c.apply(&Command::CfgiCdAll { sid: StreamId(3) });
    assert_eq!(c.cd(3, 2), None);
    assert_eq!(c.len(), (5, 8));
    // Non-CFGI commands do nothing.
    assert!(!c.apply(&Command::TlbiNsnhAll));
    assert_eq!(c.len(), (5, 8));
}

/// An insert based on memory read before an invalidation is dropped.
#[test]
fn test_cache_stale_insert_after_invalidation_is_dropped() {
    let c = ConfigCache::new();
    let t = c.ticket();
    // ... translation reads the old STE from memory here ...
    c.invalidate_ste(7);
    assert!(!c.insert_ste(t, 7, bypass_cfg()));
    assert_eq!(c.ste(7), None);
    // Any invalidation counts (conservative), and a fresh ticket works.
    let t = c.ticket();
    c.invalidate_cd(9, 0);
    assert!(!c.insert_cd(t, 7, 0, cd_cfg(1)));
    assert!(c.insert_ste(c.ticket(), 7, bypass_cfg()));
}

/// A guest touching more streams than fit keeps the cache bounded.
#[test]
fn test_cache_bounded() {
    let c = ConfigCache::new();
    for sid in 0..(SHARDS * STE_CAPACITY * 2) as u32 {
        c.insert_ste(c.ticket(), sid, StreamConfig::Abort);
    }
    // More CDs than all CD shards can hold, from one stream's substreams and a few streams.
    let n = (SHARDS * CD_CAPACITY + SHARDS * CD_CAPACITY / 4) as u32;
    for k in 0..n {
        c.insert_cd(c.ticket(), k % 4, k, cd_cfg(1));
    }
    let (stes, cds) = c.len();
    assert_eq!(stes, SHARDS * STE_CAPACITY);
    assert!(
        cds <= SHARDS * CD_CAPACITY && cds > SHARDS * CD_CAPACITY / 2,
        "{cds}"
    );
    // The most recent insert is always present.
    assert!(c.cd((n - 1) % 4, n - 1).is_some());
}

/// Readers on other threads see either the old or no entry during invalidation, never a torn
/// state, and never a stale entry once `invalidate` has returned.
#[test]
fn test_cache_concurrent_readers_and_invalidation() {
    let c = Arc::new(ConfigCache::new());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let c = c.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut hits = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for sid in 0..64 {
                        if let Some(s) = c.ste(sid) {
                            assert!(matches!(s, StreamConfig::Abort | StreamConfig::Bypass(_)));
                            hits += 1;
                        }
                    }
                }
                hits
            })
        })
        .collect();
    for round in 0..200u32 {
        let cfg = if round % 2 == 0 {
            StreamConfig::Abort
        } else {
            bypass_cfg()
        };
        for sid in 0..64 {
            c.insert_ste(c.ticket(), sid, cfg);
        }
        c.invalidate_sids(0, 31);
        for sid in 0..32 {
            assert_eq!(c.ste(sid), None);
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
}
