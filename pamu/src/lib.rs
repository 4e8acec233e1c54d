//! viommu-pamu (being written).
#![forbid(unsafe_code)]
pub mod caps;
pub mod device;
pub mod fault;
pub mod geometry;
pub mod msi;
pub mod paact;
pub mod spec;
pub mod trace;
pub mod translate;

pub use caps::{Caps, ConfigError, MpicVersion, PamuConfig};
pub use device::{BypassRegion, Pamu};
pub use fault::{OpError, PamuFault, Violation, WindowCause};
pub use trace::PamuEvent;
pub use translate::{PamuAttrs, PamuTranslation, Path};

#[cfg(any(test, feature = "test-utils"))]
pub mod testing;
