//! Demo: pamu (being written).

/// Run this part of the demo.
pub fn run() {}
