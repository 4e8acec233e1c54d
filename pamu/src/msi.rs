//! MSI banks (Linux `fsl_msi.c`, `qoriq-mpic*.dtsi`; options in pamu/README.md): where each bank's
//! MSIIR lives, how an MSIIR write decodes, and the MMIO region a VMM can map for one bank (option
//! C).
//!
//! Each bank has its registers at CCSR + 0x41600 + bank·0x200 and an **alias page** at CCSR +
//! 0x44000 + bank·0x1000 whose only register is the MSIIR (MPIC 4.2: + 0x140) or MSIIR1 (MPIC
//! 4.3: + 0x148). The alias pages are what let one 4 KiB PAMU mapping expose exactly one bank.
//!
//! Policy (delivery): a decoded MSIIR write is delivered through
//! [`InterruptSink::send_msi`] with `addr` = that bank's MSIIR **alias** address (which names
//! the bank) and `data` = the bank-linear vector `SRS·32 + IBS` (0..255 on MPIC 4.2, 0..511 on
//! 4.3) — the bit the MPIC sets in `MSIR[SRS]` and whose cascade interrupt it raises. Bits of
//! the written value outside SRS/IBS are ignored.

use std::sync::Arc;

use viommu_common::access::AccessKind;
use viommu_common::mem::GuestRam;
use viommu_common::traits::{InterruptSink, MmioDevice, MmioError};

use crate::caps::{Caps, MpicVersion};
use crate::device::Pamu;
use crate::fault::PamuFault;
use crate::spec::regs::{Msiir, Msiir1};
use crate::trace::PamuEvent;
use crate::translate::{default_ioe, PamuTranslation};

/// Offset of the first bank's register block inside CCSR.
pub const BANK_REGS_OFFSET: u64 = 0x41600;
/// Stride between bank register blocks.
pub const BANK_REGS_STRIDE: u64 = 0x200;
/// Offset of the first bank's alias page inside CCSR.
pub const ALIAS_PAGE_OFFSET: u64 = 0x44000;
/// Size (and stride) of an alias page.
pub const ALIAS_PAGE_SIZE: u64 = 0x1000;

/// A decoded MSI: which bank, which MSIR (SRS) and which bit (IBS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MsiVector {
    /// Bank index.
    pub bank: u8,
    /// SRS: shared-register select (MSIR index).
    pub srs: u8,
    /// IBS: interrupt bit select inside the MSIR.
    pub ibs: u8,
}

impl MsiVector {
    /// The bank-linear vector `SRS·32 + IBS` (the `data` passed to the sink).
    pub fn index(&self) -> u32 {
        u32::from(self.srs) * 32 + u32::from(self.ibs)
    }
}

/// The MSI bank layout of one SoC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsiBanks {
    count: u8,
    version: MpicVersion,
    ccsr: u64,
}

impl MsiBanks {
    /// The layout a [`Caps`] advertises.
    pub fn new(caps: &Caps) -> Self {
        Self {
            count: caps.msi_banks,
            version: caps.mpic_version,
            ccsr: caps.ccsr_base,
        }
    }

    /// Number of banks.
    pub fn count(&self) -> u8 {
        self.count
    }

    /// MPIC generation.
    pub fn version(&self) -> MpicVersion {
        self.version
    }

    /// Offset of the MSIIR inside an alias page (0x140 on MPIC 4.2, MSIIR1 0x148 on 4.3).
    pub fn msiir_page_offset(&self) -> u64 {
        match self.version {
            MpicVersion::V4_2 => 0x140,
            MpicVersion::V4_3 => 0x148,
        }
    }

    /// Physical address of bank `bank`'s alias page, if the bank exists.
    pub fn alias_page(&self, bank: u8) -> Option<u64> {
        (bank < self.count)
            .then(|| self.ccsr + ALIAS_PAGE_OFFSET + u64::from(bank) * ALIAS_PAGE_SIZE)
    }

    /// Physical address of bank `bank`'s MSIIR through its alias page (P4080 bank 0:
    /// 0xF_FE04_4140).
    pub fn msiir_alias(&self, bank: u8) -> Option<u64> {
        self.alias_page(bank).map(|p| p + self.msiir_page_offset())
    }

    /// Physical address of bank `bank`'s MSIIR in its register block (0xF_FE04_1740 for P4080
    /// bank 0); all banks share one 4 KiB page there.
    pub fn msiir_canonical(&self, bank: u8) -> Option<u64> {
        (bank < self.count).then(|| {
            self.ccsr
                + BANK_REGS_OFFSET
                + u64::from(bank) * BANK_REGS_STRIDE
                + self.msiir_page_offset()
        })
    }

    /// The bank whose MSIIR (alias or canonical) a 4-byte write at `addr` hits.
    pub fn bank_at(&self, addr: u64) -> Option<u8> {
        (0..self.count)
            .find(|&b| self.msiir_alias(b) == Some(addr) || self.msiir_canonical(b) == Some(addr))
    }

    /// Decode the value written to bank `bank`'s MSIIR (MPIC 4.2, [`Msiir`]) or MSIIR1
    /// (MPIC 4.3, [`Msiir1`]).
    pub fn decode(&self, bank: u8, data: u32) -> MsiVector {
        let (srs, ibs) = match self.version {
            MpicVersion::V4_2 => {
                let r = Msiir::from_bits(data);
                (r.srs(), r.ibs())
            }
            MpicVersion::V4_3 => {
                let r = Msiir1::from_bits(data);
                (r.srs(), r.ibs())
            }
        };
        MsiVector { bank, srs, ibs }
    }

    /// Deliver `v` through `irq` (see the module's delivery policy).
    pub fn deliver(&self, v: MsiVector, irq: &dyn InterruptSink) {
        if let Some(a) = self.msiir_alias(v.bank) {
            irq.send_msi(a, v.index());
        }
    }
}

/// One bank's alias page as an MMIO region a VMM can put on its bus or map into a DMA window
/// like memory (option C, pamu/README.md). A 4-byte big-endian store at the MSIIR offset
/// delivers the MSI; every other offset reads as zero and ignores writes.
pub struct MsiBankRegion {
    banks: MsiBanks,
    bank: u8,
    irq: Arc<dyn InterruptSink>,
}

impl MsiBankRegion {
    /// The region of bank `bank`, delivering to `irq`; `None` if the bank does not exist.
    pub fn new(banks: MsiBanks, bank: u8, irq: Arc<dyn InterruptSink>) -> Option<Self> {
        (bank < banks.count()).then_some(Self { banks, bank, irq })
    }

    /// Physical (CCSR) address of the page, i.e. where a VMM maps the region.
    pub fn phys_addr(&self) -> u64 {
        self.banks.alias_page(self.bank).unwrap_or(0)
    }

    /// The bank.
    pub fn bank(&self) -> u8 {
        self.bank
    }
}

impl MmioDevice for MsiBankRegion {
    fn mmio_size(&self) -> u64 {
        ALIAS_PAGE_SIZE
    }

    fn mmio_read(&self, offset: u64, data: &mut [u8]) -> Result<(), MmioError> {
        data.fill(0);
        if offset.saturating_add(data.len() as u64) > ALIAS_PAGE_SIZE {
            return Err(MmioError::OutOfRange { offset });
        }
        Ok(())
    }

    fn mmio_write(&self, offset: u64, data: &[u8]) -> Result<(), MmioError> {
        if offset.saturating_add(data.len() as u64) > ALIAS_PAGE_SIZE {
            return Err(MmioError::OutOfRange { offset });
        }
        if offset == self.banks.msiir_page_offset() {
            let v: [u8; 4] = data.try_into().map_err(|_| MmioError::BadAccessSize {
                offset,
                size: data.len(),
            })?;
            let vec = self.banks.decode(self.bank, u32::from_be_bytes(v));
            self.banks.deliver(vec, &*self.irq);
        }
        Ok(())
    }
}

impl<M: GuestRam> Pamu<M> {
    /// An MSI: a 4-byte write of `data` at I/O address `iova` by LIODN `liodn`. It is translated
    /// like any DMA write; if the output lands on a bank's MSIIR (alias or canonical) the MSI
    /// is decoded and delivered through the interrupt sink and returned, otherwise
    /// `Ok(None)` with the translation left for the caller to perform the write.
    ///
    /// # Errors
    /// The [`PamuFault`] (captured as for [`Pamu::translate_op`]).
    pub fn msi_write(
        &self,
        liodn: u32,
        iova: u64,
        data: u32,
    ) -> Result<(PamuTranslation, Option<MsiVector>), PamuFault> {
        let t = self.translate_op(
            liodn,
            iova,
            4,
            AccessKind::Write,
            default_ioe(AccessKind::Write),
        )?;
        let Some(bank) = self.banks.bank_at(t.output) else {
            return Ok((t, None));
        };
        let v = self.banks.decode(bank, data);
        self.trace(PamuEvent::Msi {
            liodn,
            iova,
            output: t.output,
            data,
            vector: v,
        });
        self.banks.deliver(v, &*self.irq);
        Ok((t, Some(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::PamuConfig;
    use viommu_common::testing::{Irq, RecordingIrq};

    /// P4080 alias MSIIRs sit at 0x44140/0x45140/0x46140 and canonical at 0x41740/0x41940/0x41B40.
    #[test]
    fn test_p4080_bank_addresses() {
        let b = MsiBanks::new(&PamuConfig::p4080().caps().unwrap());
        assert_eq!(b.msiir_alias(0), Some(0xF_FE04_4140));
        assert_eq!(b.msiir_alias(1), Some(0xF_FE04_5140));
        assert_eq!(b.msiir_alias(2), Some(0xF_FE04_6140));
        assert_eq!(b.msiir_alias(3), None);
        assert_eq!(b.msiir_canonical(0), Some(0xF_FE04_1740));
        assert_eq!(b.msiir_canonical(2), Some(0xF_FE04_1B40));
        assert_eq!(b.bank_at(0xF_FE04_5140), Some(1));
        assert_eq!(b.bank_at(0xF_FE04_1940), Some(1));
        assert_eq!(b.bank_at(0xF_FE04_5144), None);
    }

    /// T4240 has a fourth bank and MSIIR1 at page offset 0x148 with the 4.3 encoding.
    #[test]
    fn test_t4240_bank_addresses_and_encoding() {
        let b = MsiBanks::new(&PamuConfig::t4240().caps().unwrap());
        assert_eq!(b.msiir_alias(3), Some(0xF_FE04_7148));
        // MSIIR1: SRS = data[3:0], IBS = data[8:4].
        let v = b.decode(3, (0x1F << 4) | 0xF);
        assert_eq!((v.srs, v.ibs, v.index()), (15, 31, 511));
        let p = MsiBanks::new(&PamuConfig::p4080().caps().unwrap());
        // MSIIR: SRS = data[7:5], IBS = data[4:0].
        let v = p.decode(0, (5 << 5) | 3);
        assert_eq!((v.srs, v.ibs, v.index()), (5, 3, 163));
    }

    /// Option C: the bank page as an MMIO region delivers a store to its MSIIR.
    #[test]
    fn test_bank_region_delivers_msiir_store() {
        let irq = Arc::new(RecordingIrq::new());
        let b = MsiBanks::new(&PamuConfig::p4080().caps().unwrap());
        let r = MsiBankRegion::new(b, 2, irq.clone()).unwrap();
        assert_eq!(r.phys_addr(), 0xF_FE04_6000);
        r.mmio_write(0x140, &0x23u32.to_be_bytes()).unwrap();
        r.mmio_write(0x100, &0x23u32.to_be_bytes()).unwrap();
        assert_eq!(
            irq.take(),
            vec![Irq::Msi {
                addr: 0xF_FE04_6140,
                data: 0x23
            }]
        );
        assert!(r.mmio_write(0x140, &[1, 2]).is_err());
        assert!(MsiBankRegion::new(b, 3, irq).is_none());
    }
}
