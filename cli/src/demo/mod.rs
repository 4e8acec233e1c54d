//! The demo run by `cargo run --release`: each part shows one device model at work.

pub mod core;
pub mod pamu;
pub mod smmuv3;

/// Run every part of the demo, printing to stdout.
pub fn run() {
    core::run();
    smmuv3::run();
    pamu::run();
}
