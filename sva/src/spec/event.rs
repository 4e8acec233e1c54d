//! The iommufd vEVENTQ framing around SMMUv3 event records (viommu-smmuv3's [`EvtEntry`]).
//!
//! [`EvtEntry`]: viommu_smmuv3::spec::evt::EvtEntry

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The header iommufd puts before every vEVENT (`struct iommufd_vevent_header`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct VeventHeader {
    /// `IOMMU_VEVENTQ_FLAG_LOST_EVENTS` (bit 0) or 0.
    pub flags: u32,
    /// 0..=i32::MAX, then wraps to 0. Lost events consume sequence numbers too.
    pub sequence: u32,
}
const _: () = assert!(core::mem::size_of::<VeventHeader>() == 8);

/// `IOMMU_VEVENTQ_FLAG_LOST_EVENTS`: the header carries no record; events were dropped.
pub const VEVENTQ_FLAG_LOST_EVENTS: u32 = 1;
/// The sequence number space: `sequence` runs modulo 2^31.
pub const VEVENT_SEQUENCE_MODULUS: u64 = 1 << 31;

#[cfg(test)]
mod tests {
    use viommu_smmuv3::spec::evt::{EventId, EvtClass, EvtEntry, EvtW0, EvtW1};

    #[test]
    fn event_word_fields_sit_at_linux_positions() {
        assert_eq!(
            EvtW0::new().with_event_id(EventId::F_TRANSLATION).raw(),
            0x10
        );
        assert_eq!(EvtW0::new().with_ssv(true).raw(), 1 << 11);
        assert_eq!(EvtW0::new().with_ssid(0xfffff).raw(), 0xfffff << 12);
        assert_eq!(EvtW0::new().with_sid(0x42).raw(), 0x42 << 32);
        assert_eq!(EvtW1::new().with_stag(0xffff).raw(), 0xffff);
        assert_eq!(EvtW1::new().with_stall(true).raw(), 1 << 31);
        assert_eq!(EvtW1::new().with_pnu(true).raw(), 1 << 33);
        assert_eq!(EvtW1::new().with_ind(true).raw(), 1 << 34);
        assert_eq!(EvtW1::new().with_rnw(true).raw(), 1 << 35);
        assert_eq!(EvtW1::new().with_s2(true).raw(), 1 << 39);
        assert_eq!(EvtW1::new().with_class(EvtClass(3)).raw(), 3 << 40);
        assert_eq!(EvtW1::new().with_ttrnw(true).raw(), 1 << 44);
        assert_eq!(core::mem::size_of::<EvtEntry>(), 32);
    }

    #[test]
    fn event_names_follow_the_manual() {
        assert_eq!(EventId(0x10).name(), Some("F_TRANSLATION"));
        assert_eq!(EventId(0x04).name(), Some("C_BAD_STE"));
        assert_eq!(EventId(0xE3).name(), None);
    }
}
