//! Identifier newtypes, so a StreamID cannot be passed where an ASID is expected.

macro_rules! id_newtype {
    ($(#[$m:meta])* $name:ident($t:ty)) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub $t);

        impl From<$t> for $name {
            fn from(v: $t) -> Self {
                Self(v)
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }
    };
}

id_newtype!(
    /// A PCI requester ID: bus in bits 15:8, device in bits 7:3, function in bits 2:0.
    RequesterId(u16)
);
id_newtype!(
    /// An SMMUv3 StreamID (up to 32 bits).
    StreamId(u32)
);
id_newtype!(
    /// An SMMUv3 SubstreamID (PASID, up to 20 bits).
    SubstreamId(u32)
);
id_newtype!(
    /// A stage-1 address-space identifier (8 or 16 bits).
    Asid(u16)
);
id_newtype!(
    /// A stage-2 virtual-machine identifier (8 or 16 bits).
    Vmid(u16)
);
id_newtype!(
    /// A PAMU logical I/O device number.
    Liodn(u16)
);

impl RequesterId {
    /// Build a requester ID from bus, device (0..32) and function (0..8).
    pub const fn new(bus: u8, dev: u8, func: u8) -> Self {
        Self(((bus as u16) << 8) | (((dev & 0x1f) as u16) << 3) | ((func & 7) as u16))
    }

    /// The bus number.
    pub const fn bus(self) -> u8 {
        (self.0 >> 8) as u8
    }

    /// The device/function byte (devfn).
    pub const fn devfn(self) -> u8 {
        (self.0 & 0xff) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RID packing follows PCI: 01:02.3 is 0x0113.
    #[test]
    fn test_rid_packing() {
        let rid = RequesterId::new(1, 2, 3);
        assert_eq!(rid.0, 0x0113);
        assert_eq!(rid.bus(), 1);
        assert_eq!(rid.devfn(), 0x13);
        assert_eq!(format!("{}", StreamId(0x42)), "0x42");
    }
}
