//! Translation pipeline (provisional).

use crate::device::{GuestRam, SmmuV3};

impl<M> SmmuV3<M>
where
    M: GuestRam,
{
    /// Drop every cached configuration (provisional until the config cache lands).
    pub(crate) fn config_invalidate_all(&self) {}
}
