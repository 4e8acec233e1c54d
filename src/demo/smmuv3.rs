//! Demo: smmuv3 (being written).

/// Run this part of the demo.
pub fn run() {}
