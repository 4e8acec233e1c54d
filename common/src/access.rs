//! What a DMA transaction asks for: direction, privilege and instruction-vs-data.

use crate::id::{StreamId, SubstreamId};

/// The kind of access a transaction makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessKind {
    /// Data read.
    Read,
    /// Data write.
    Write,
    /// Instruction fetch (a read that must also pass execute-never checks).
    Exec,
}

impl AccessKind {
    /// True for writes (the RnW bit of an SMMU event record is the negation).
    pub const fn is_write(self) -> bool {
        matches!(self, AccessKind::Write)
    }

    /// The permission this access needs.
    pub const fn required(self) -> Perms {
        match self {
            AccessKind::Read => Perms::R,
            AccessKind::Write => Perms::W,
            AccessKind::Exec => Perms::RX,
        }
    }
}

/// A set of access permissions: read, write, execute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Perms(u8);

impl Perms {
    /// No access.
    pub const NONE: Perms = Perms(0);
    /// Read.
    pub const R: Perms = Perms(1);
    /// Write.
    pub const W: Perms = Perms(2);
    /// Execute.
    pub const X: Perms = Perms(4);
    /// Read and write.
    pub const RW: Perms = Perms(3);
    /// Read and execute.
    pub const RX: Perms = Perms(5);
    /// Everything.
    pub const RWX: Perms = Perms(7);

    /// Raw bits (R = 1, W = 2, X = 4).
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Build from raw bits; bits above the three defined ones are dropped.
    pub const fn from_bits(bits: u8) -> Self {
        Perms(bits & 7)
    }

    /// True if every permission in `other` is present in `self`.
    pub const fn contains(self, other: Perms) -> bool {
        self.0 & other.0 == other.0
    }

    /// Intersection (used to combine stage-1 and stage-2 permissions).
    pub const fn intersect(self, other: Perms) -> Perms {
        Perms(self.0 & other.0)
    }

    /// Union.
    pub const fn union(self, other: Perms) -> Perms {
        Perms(self.0 | other.0)
    }

    /// True if `access` is allowed.
    pub const fn allows(self, access: AccessKind) -> bool {
        self.contains(access.required())
    }

    /// Readable.
    pub const fn read(self) -> bool {
        self.0 & 1 != 0
    }

    /// Writable.
    pub const fn write(self) -> bool {
        self.0 & 2 != 0
    }

    /// Executable.
    pub const fn exec(self) -> bool {
        self.0 & 4 != 0
    }
}

impl core::fmt::Display for Perms {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let c = |b: bool, ch: char| if b { ch } else { '-' };
        write!(
            f,
            "{}{}{}",
            c(self.read(), 'r'),
            c(self.write(), 'w'),
            c(self.exec(), 'x')
        )
    }
}

/// A DMA translation request from an endpoint.
///
/// `stream` is the device identifier the IOMMU sees: an SMMUv3 StreamID or a PAMU LIODN
/// (after requester-ID mapping, see [`crate::topology`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DmaRequest {
    /// StreamID (SMMUv3) or LIODN (PAMU).
    pub stream: StreamId,
    /// SubstreamID / PASID, if the transaction carries one.
    pub substream: Option<SubstreamId>,
    /// Input (I/O virtual) address.
    pub addr: u64,
    /// Length in bytes of the access (at least 1).
    pub len: u64,
    /// Direction and instruction/data.
    pub access: AccessKind,
    /// Privileged (PnU = 1) rather than unprivileged.
    pub privileged: bool,
}

impl DmaRequest {
    /// An unprivileged data read of `len` bytes at `addr` without a substream.
    pub const fn read(stream: u32, addr: u64, len: u64) -> Self {
        Self::new(stream, addr, len, AccessKind::Read)
    }

    /// An unprivileged data write of `len` bytes at `addr` without a substream.
    pub const fn write(stream: u32, addr: u64, len: u64) -> Self {
        Self::new(stream, addr, len, AccessKind::Write)
    }

    /// An unprivileged request without a substream.
    pub const fn new(stream: u32, addr: u64, len: u64, access: AccessKind) -> Self {
        Self {
            stream: StreamId(stream),
            substream: None,
            addr,
            len,
            access,
            privileged: false,
        }
    }

    /// The same request with a substream (PASID).
    pub const fn with_substream(mut self, ssid: u32) -> Self {
        self.substream = Some(SubstreamId(ssid));
        self
    }

    /// The same request, privileged.
    pub const fn privileged(mut self) -> Self {
        self.privileged = true;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exec needs read and execute; write needs write only.
    #[test]
    fn test_perms_allow() {
        assert!(Perms::RX.allows(AccessKind::Exec));
        assert!(!Perms::X.allows(AccessKind::Exec));
        assert!(!Perms::R.allows(AccessKind::Write));
        assert!(Perms::RW.allows(AccessKind::Write));
        assert_eq!(Perms::RW.intersect(Perms::RX), Perms::R);
        assert_eq!(Perms::from_bits(0xff), Perms::RWX);
        assert_eq!(Perms::RW.to_string(), "rw-");
    }
}
