//! The atomics the lock-free structures are built from: std's, or loom's when built with
//! `RUSTFLAGS="--cfg loom"`, so the loom models can explore every interleaving of the real code.
//!
//! Besides the atomics, the shim carries what a waiting loop and a rare lock need: under loom a
//! spin must yield to the model's scheduler (a busy loop that never yields would never let the
//! thread it waits for run), and a lock must be loom's so the model sees who blocks whom.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::Mutex;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::Mutex;

/// A busy-wait hint (`std::hint::spin_loop`; under loom, a yield to the model's scheduler).
#[inline]
pub(crate) fn spin_loop() {
    #[cfg(loom)]
    loom::hint::spin_loop();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// Give up the CPU while waiting for another thread (`std::thread::yield_now`, or loom's).
#[inline]
pub(crate) fn yield_now() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::thread::yield_now();
}

/// A point where a protocol's correctness argument uses the single total order of SeqCst
/// operations: a SeqCst write before this point and a SeqCst read after it (of another
/// location) cannot both miss the other side's write-then-read (the store-buffering pattern).
///
/// In the std build the SeqCst accesses themselves give that order and this compiles to
/// nothing. Loom models SeqCst *accesses* only as AcqRel (its SeqCst-access hook is a no-op,
/// so it would report this pattern as a race that C11 forbids) and SeqCst *fences* exactly, so
/// under loom this is a `fence(SeqCst)`: the models check the argument as the code states it.
#[inline(always)]
pub(crate) fn seq_cst_point() {
    #[cfg(loom)]
    fence(Ordering::SeqCst);
}
