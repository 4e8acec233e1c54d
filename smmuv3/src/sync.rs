//! The atomics the lock-free caches (configuration and route caches) are built from: std's, or
//! loom's when built with `RUSTFLAGS="--cfg loom"`, so a loom model can explore every
//! interleaving of the real code.

#[cfg(loom)]
pub(crate) use loom::hint::spin_loop;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::hint::spin_loop;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU64, Ordering};
