//! Fault identities: which architectural fault or event a [`DmaFault`](crate::traits::DmaFault)
//! reports, one closed enum per device with the manual's spelling of each name.
//!
//! Replay files, snapshots and logs carry the names ([`FaultId::name`], [`FaultId`]'s
//! `FromStr` and `Display`); the code matches on the variants.

use core::fmt;
use core::str::FromStr;

/// Defines a fault-identity enum whose variants each carry their architectural name.
macro_rules! fault_ids {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every identity, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The architectural name, as replay files and logs spell it.
            pub const fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $name {
            type Err = UnknownFault;

            fn from_str(s: &str) -> Result<Self, UnknownFault> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.name() == s)
                    .ok_or(UnknownFault)
            }
        }
    };
}

fault_ids! {
    /// An Arm SMMUv3 fault: the event it records (IHI 0070 §7.3, named as in the event
    /// table), or a termination that records no event.
    pub enum Smmuv3FaultId {
        /// F_UUT: unsupported upstream transaction.
        Uut = "F_UUT",
        /// C_BAD_STREAMID: StreamID out of range.
        BadStreamId = "C_BAD_STREAMID",
        /// F_STE_FETCH: external abort fetching an STE or L1 stream descriptor.
        SteFetch = "F_STE_FETCH",
        /// C_BAD_STE: invalid or illegal STE.
        BadSte = "C_BAD_STE",
        /// F_BAD_ATS_TREQ: ATS translation request not allowed.
        BadAtsTreq = "F_BAD_ATS_TREQ",
        /// F_STREAM_DISABLED: non-substream traffic with S1DSS = terminate.
        StreamDisabled = "F_STREAM_DISABLED",
        /// F_TRANSL_FORBIDDEN: ATS-translated traffic not allowed.
        TranslForbidden = "F_TRANSL_FORBIDDEN",
        /// C_BAD_SUBSTREAMID: SubstreamID out of range or not allowed.
        BadSubstreamId = "C_BAD_SUBSTREAMID",
        /// F_CD_FETCH: external abort fetching a CD or L1 CD descriptor.
        CdFetch = "F_CD_FETCH",
        /// C_BAD_CD: invalid or illegal CD.
        BadCd = "C_BAD_CD",
        /// F_WALK_EABT: external abort on a translation table walk.
        WalkEabt = "F_WALK_EABT",
        /// F_TRANSLATION: translation fault.
        Translation = "F_TRANSLATION",
        /// F_ADDR_SIZE: address size fault.
        AddrSize = "F_ADDR_SIZE",
        /// F_ACCESS: access flag fault.
        Access = "F_ACCESS",
        /// F_PERMISSION: permission fault.
        Permission = "F_PERMISSION",
        /// F_TLB_CONFLICT: TLB conflict.
        TlbConflict = "F_TLB_CONFLICT",
        /// F_CFG_CONFLICT: configuration cache conflict.
        CfgConflict = "F_CFG_CONFLICT",
        /// E_PAGE_REQUEST: speculative page request hint.
        PageRequest = "E_PAGE_REQUEST",
        /// F_VMS_FETCH: external abort fetching a VMS.
        VmsFetch = "F_VMS_FETCH",
        /// No event: CR0.SMMUEN = 0 and GBPA.ABORT = 1 terminate the transaction.
        GbpaAbort = "GBPA_ABORT",
        /// No event: STE.Config = abort (0b000) terminates the transaction.
        SteAbort = "STE_ABORT",
        /// No event: an ATS-translated transaction whose address has bits above the OAS is
        /// terminated (IMPLEMENTATION DEFINED, IHI 0070 §3.9.1.1).
        AtsAddrSize = "ATS_ADDR_SIZE",
        /// No event: the stream is served by host hardware (an accelerated vSMMU's nested
        /// stream), so the software model does not translate it. Its kind is
        /// [`FaultKind::Configuration`](crate::traits::FaultKind::Configuration).
        HostBacked = "HOST_BACKED",
    }
}

fault_ids! {
    /// An NXP PAMU fault: the access-violation cause captured in AVS1, or an operation error
    /// captured in POES1 (QorIQ reference manual, PAMU chapter).
    pub enum PamuFaultId {
        /// AV_GATE: PC.PGC = 1, the gate is closed (AVS1.GCV).
        AvGate = "AV_GATE",
        /// AV_LIODN: the LIODN has no entry in the PAACT (AVS1.LAV).
        AvLiodn = "AV_LIODN",
        /// AV_DISABLED: the PPAACE has V = 0 (AVS1.PDV).
        AvDisabled = "AV_DISABLED",
        /// AV_WINDOW: window access violation (AVS1.WAV).
        AvWindow = "AV_WINDOW",
        /// AV_PERMISSION: the (sub)window's access permissions refuse the access (AVS1.APV).
        AvPermission = "AV_PERMISSION",
        /// AV_OPERATION: operation translation violation (AVS1.OTV).
        AvOperation = "AV_OPERATION",
        /// OPERATION_ERROR: a malformed table (POES1.POED).
        OperationError = "OPERATION_ERROR",
    }
}

/// Which fault a device reported, per device type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultId {
    /// An Arm SMMUv3 fault.
    Smmuv3(Smmuv3FaultId),
    /// An NXP PAMU fault.
    Pamu(PamuFaultId),
    /// `RID_UNMAPPED`, before any IOMMU: the VMM's requester-ID map
    /// ([`IdMap`](crate::topology::IdMap)) sends the endpoint to no IOMMU, so its DMA is denied
    /// ([`TopologyError::Unmapped`](crate::topology::TopologyError::Unmapped); kind
    /// Configuration).
    RequesterUnmapped,
}

impl FaultId {
    /// The architectural name (`"F_TRANSLATION"`, `"C_BAD_STE"`, `"AV_WINDOW"`, ...), as replay
    /// files and logs spell it. Names are unique across devices.
    pub const fn name(self) -> &'static str {
        match self {
            FaultId::Smmuv3(f) => f.name(),
            FaultId::Pamu(f) => f.name(),
            FaultId::RequesterUnmapped => "RID_UNMAPPED",
        }
    }
}

impl From<Smmuv3FaultId> for FaultId {
    fn from(f: Smmuv3FaultId) -> Self {
        FaultId::Smmuv3(f)
    }
}

impl From<PamuFaultId> for FaultId {
    fn from(f: PamuFaultId) -> Self {
        FaultId::Pamu(f)
    }
}

impl PartialEq<Smmuv3FaultId> for FaultId {
    fn eq(&self, other: &Smmuv3FaultId) -> bool {
        *self == FaultId::Smmuv3(*other)
    }
}

impl PartialEq<PamuFaultId> for FaultId {
    fn eq(&self, other: &PamuFaultId) -> bool {
        *self == FaultId::Pamu(*other)
    }
}

impl fmt::Display for FaultId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FaultId {
    type Err = UnknownFault;

    /// The fault of any device with this architectural name.
    fn from_str(s: &str) -> Result<Self, UnknownFault> {
        if s == FaultId::RequesterUnmapped.name() {
            return Ok(FaultId::RequesterUnmapped);
        }
        s.parse()
            .map(FaultId::Smmuv3)
            .or_else(|_| s.parse().map(FaultId::Pamu))
    }
}

/// A name that is no fault of any device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("not the name of a fault")]
pub struct UnknownFault;

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name parses back to its identity, and no name is used twice.
    #[test]
    fn test_fault_names_round_trip_and_are_unique() {
        let all: Vec<FaultId> = Smmuv3FaultId::ALL
            .iter()
            .map(|&f| FaultId::from(f))
            .chain(PamuFaultId::ALL.iter().map(|&f| FaultId::from(f)))
            .chain([FaultId::RequesterUnmapped])
            .collect();
        for f in &all {
            assert_eq!(f.name().parse::<FaultId>(), Ok(*f));
            assert_eq!(f.to_string(), f.name());
        }
        let mut names: Vec<&str> = all.iter().map(|f| f.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len());
        assert_eq!("F_MADE_UP".parse::<FaultId>(), Err(UnknownFault));
        assert_eq!(
            "HOST_BACKED".parse(),
            Ok(FaultId::Smmuv3(Smmuv3FaultId::HostBacked))
        );
        assert_eq!(FaultId::Pamu(PamuFaultId::AvWindow), PamuFaultId::AvWindow);
    }
}
