//! The `viommu` binary: the demo (no arguments) and `viommu replay FILE`.

mod demo;
mod replay;

fn main() {
    demo::run();
}
