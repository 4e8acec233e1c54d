//! Loom model of the configuration cache against CFGI (`smmuv3/src/config/cache.rs`): a
//! translation's fill (ticket, read the STE, insert) races the guest rewriting the STE and
//! issuing CFGI_STE. Once the invalidation returns, no lookup returns the stale STE.
//!
//! Run: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p viommu-smmuv3
//! --release --test loom_config` (`LOOM_MAX_PREEMPTIONS` overrides the bound, default 2).
#![cfg(loom)]

use loom::model::Builder;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;

use viommu_smmuv3::config::cache::ConfigCache;
use viommu_smmuv3::config::{StreamAttrs, StreamConfig};

/// The StreamID of the model.
const SID: u32 = 3;
/// Stack of the model thread (the cache's slot arrays are built on it).
const STACK: usize = 8 << 20;

/// Check `body` over every interleaving within `LOOM_MAX_PREEMPTIONS` or 2 preemptions.
fn model(body: impl Fn() + Send + Sync + 'static) {
    let mut b = Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    let body = std::sync::Arc::new(body);
    b.check(move || {
        let body = body.clone();
        thread::Builder::new()
            .stack_size(STACK)
            .spawn(move || body())
            .expect("model thread")
            .join()
            .expect("model thread panicked");
    });
}

/// Model 4: the guest turns a bypass STE into an abort STE and issues CFGI_STE while a
/// translation fills the cache from the STE it read. After the CFGI returns (the sync point of
/// CMD_SYNC follows it), lookups return nothing or the new STE, never the bypass one.
///
/// The loom build's cache has 4 STE and 4 CD slots (`config::cache::STE_CAPACITY`), so a cache
/// per execution stays small. Seeded bug caught: `ConfigCache::admit` ignoring the ticket (an
/// insert checks only the stream stamps it reads inside the slot's critical section): the
/// model fails with the bypass STE visible after the CFGI.
#[test]
fn loom_config_cache_vs_cfgi() {
    model(|| {
        let cache = Arc::new(ConfigCache::new());
        // The guest's STE: true = bypass (the old configuration), false = abort.
        let ste_bypass = Arc::new(AtomicBool::new(true));
        let fill = {
            let (cache, ste_bypass) = (cache.clone(), ste_bypass.clone());
            thread::spawn(move || {
                let ticket = cache.ticket();
                let cfg = if ste_bypass.load(Ordering::Acquire) {
                    StreamConfig::Bypass(StreamAttrs::INCOMING)
                } else {
                    StreamConfig::Abort
                };
                cache.insert_ste(ticket, SID, cfg);
            })
        };
        ste_bypass.store(false, Ordering::Release);
        cache.invalidate_ste(SID);
        let seen = cache.ste(SID);
        assert!(
            matches!(seen, None | Some(StreamConfig::Abort)),
            "stale STE after CFGI: {seen:?}"
        );
        fill.join().unwrap();
        let seen = cache.ste(SID);
        assert!(
            matches!(seen, None | Some(StreamConfig::Abort)),
            "late fill survived CFGI: {seen:?}"
        );
    });
}
