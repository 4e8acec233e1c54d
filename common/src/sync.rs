//! The atomics the lock-free structures are built from: std's, or loom's when built with
//! `RUSTFLAGS="--cfg loom"`, so the loom models can explore every interleaving of the real code.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
