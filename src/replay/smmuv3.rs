//! Replay backend for the Arm SMMUv3 model (`kind: "smmuv3"`).

use std::sync::Arc;

use serde_json::{Map, Value};

use super::device::{ReplayDevice, ReplayIrq, ReplayMem};

/// Create an SMMUv3 from a replay `config` object.
///
/// # Errors
/// The model is not available yet.
pub fn create(
    _config: &Map<String, Value>,
    _mem: &ReplayMem,
    _irq: Arc<ReplayIrq>,
) -> Result<Box<dyn ReplayDevice>, String> {
    Err("the smmuv3 device model is not available in this build yet".into())
}
