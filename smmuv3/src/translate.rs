//! Translation pipeline (provisional).

use crate::device::{GuestRam, SmmuV3};

impl<M> SmmuV3<M>
where
    M: GuestRam,
{
    /// Drop every cached configuration (provisional until the config cache lands).
    pub(crate) fn config_invalidate_all(&self) -> String {
        "nothing cached".into()
    }

    /// CFGI_STE (provisional).
    pub(crate) fn config_invalidate_ste(&self, _sid: u32, _leaf: bool) -> String {
        "nothing cached".into()
    }

    /// CFGI_STE_RANGE (provisional).
    pub(crate) fn config_invalidate_range(&self, _first: u32, _last: u32) -> String {
        "nothing cached".into()
    }

    /// CFGI_CD / CFGI_CD_ALL (provisional).
    pub(crate) fn config_invalidate_cd(
        &self,
        _sid: u32,
        _ssid: Option<u32>,
        _leaf: bool,
    ) -> String {
        "nothing cached".into()
    }
}
