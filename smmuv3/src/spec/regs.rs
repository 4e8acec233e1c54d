//! SMMUv3 programming interface registers (IHI 0070, chapter 6): offsets and register words.
//!
//! Types only: the offsets of the non-secure register file in page 0 and page 1, and one
//! `#[bitfield]` type per register whose fields the model interprets. Reserved bits are explicit
//! padding, so `from_bits(raw).into_bits()` is the architectural "reserved bits masked" value for
//! registers whose every defined field is writable. ID registers (IDR0..IDR5) live in
//! [`crate::spec`]'s ID-register types; this file covers the control, queue and interrupt
//! registers.
//!
//! Beside each register type sit the pure functions that say what a write leaves in it
//! (`sanitise`: reserved and unadvertised bits dropped) and the register protocols that are
//! plain arithmetic on register values (the GERROR/GERRORN toggles). The device applies them;
//! it holds no masks of its own.

use bitfield_struct::bitfield;

use super::idr::Idr0;

/// Size of one SMMU register page (§6.1: page 0 at base, page 1 at base + 64 KiB).
pub const PAGE_SIZE: u64 = 0x1_0000;
/// Size of the MMIO region: two 64 KiB pages (Linux refuses less than 128 KiB).
pub const REGION_SIZE: u64 = 2 * PAGE_SIZE;

/// IDR0 (RO).
pub const IDR0: u64 = 0x000;
/// IDR1 (RO).
pub const IDR1: u64 = 0x004;
/// IDR2 (RO).
pub const IDR2: u64 = 0x008;
/// IDR3 (RO).
pub const IDR3: u64 = 0x00C;
/// IDR4 (RO).
pub const IDR4: u64 = 0x010;
/// IDR5 (RO).
pub const IDR5: u64 = 0x014;
/// IIDR (RO).
pub const IIDR: u64 = 0x018;
/// AIDR (RO).
pub const AIDR: u64 = 0x01C;
/// CR0: global enables.
pub const CR0: u64 = 0x020;
/// CR0ACK (RO): CR0 bits that have taken effect.
pub const CR0ACK: u64 = 0x024;
/// CR1: table and queue memory attributes.
pub const CR1: u64 = 0x028;
/// CR2: E2H, RECINVSID, PTM.
pub const CR2: u64 = 0x02C;
/// STATUSR (RO): DORMANT.
pub const STATUSR: u64 = 0x040;
/// GBPA: global bypass attributes.
pub const GBPA: u64 = 0x044;
/// AGBPA: IMPLEMENTATION DEFINED additional bypass attributes.
pub const AGBPA: u64 = 0x048;
/// IRQ_CTRL: interrupt enables.
pub const IRQ_CTRL: u64 = 0x050;
/// IRQ_CTRLACK (RO).
pub const IRQ_CTRLACK: u64 = 0x054;
/// GERROR (RO): global error flags.
pub const GERROR: u64 = 0x060;
/// GERRORN: global error acknowledge.
pub const GERRORN: u64 = 0x064;
/// GERROR_IRQ_CFG0 (64-bit): MSI address.
pub const GERROR_IRQ_CFG0: u64 = 0x068;
/// GERROR_IRQ_CFG1: MSI data.
pub const GERROR_IRQ_CFG1: u64 = 0x070;
/// GERROR_IRQ_CFG2: MSI attributes.
pub const GERROR_IRQ_CFG2: u64 = 0x074;
/// STRTAB_BASE (64-bit).
pub const STRTAB_BASE: u64 = 0x080;
/// STRTAB_BASE_CFG.
pub const STRTAB_BASE_CFG: u64 = 0x088;
/// CMDQ_BASE (64-bit).
pub const CMDQ_BASE: u64 = 0x090;
/// CMDQ_PROD.
pub const CMDQ_PROD: u64 = 0x098;
/// CMDQ_CONS.
pub const CMDQ_CONS: u64 = 0x09C;
/// EVENTQ_BASE (64-bit).
pub const EVENTQ_BASE: u64 = 0x0A0;
/// EVENTQ_PROD, page-0 alias (the architectural location is page 1, [`EVENTQ_PROD_P1`]).
pub const EVENTQ_PROD: u64 = 0x0A8;
/// EVENTQ_CONS, page-0 alias.
pub const EVENTQ_CONS: u64 = 0x0AC;
/// EVENTQ_IRQ_CFG0 (64-bit).
pub const EVENTQ_IRQ_CFG0: u64 = 0x0B0;
/// EVENTQ_IRQ_CFG1.
pub const EVENTQ_IRQ_CFG1: u64 = 0x0B8;
/// EVENTQ_IRQ_CFG2.
pub const EVENTQ_IRQ_CFG2: u64 = 0x0BC;
/// PRIQ_BASE (64-bit).
pub const PRIQ_BASE: u64 = 0x0C0;
/// PRIQ_PROD, page-0 alias.
pub const PRIQ_PROD: u64 = 0x0C8;
/// PRIQ_CONS, page-0 alias.
pub const PRIQ_CONS: u64 = 0x0CC;
/// PRIQ_IRQ_CFG0 (64-bit).
pub const PRIQ_IRQ_CFG0: u64 = 0x0D0;
/// PRIQ_IRQ_CFG1.
pub const PRIQ_IRQ_CFG1: u64 = 0x0D8;
/// PRIQ_IRQ_CFG2.
pub const PRIQ_IRQ_CFG2: u64 = 0x0DC;
/// First GATOS register (only with IDR0.ATOS).
pub const GATOS_FIRST: u64 = 0x100;
/// Last byte of the GATOS block.
pub const GATOS_LAST: u64 = 0x11F;
/// First Secure-bank register (S_IDR0); the Secure bank is RAZ/WI here.
pub const SECURE_FIRST: u64 = 0x8000;
/// Last byte of the Secure bank.
pub const SECURE_LAST: u64 = 0x8FFF;
/// EVENTQ_PROD in page 1 (where Linux accesses it).
pub const EVENTQ_PROD_P1: u64 = PAGE_SIZE + EVENTQ_PROD;
/// EVENTQ_CONS in page 1.
pub const EVENTQ_CONS_P1: u64 = PAGE_SIZE + EVENTQ_CONS;
/// PRIQ_PROD in page 1.
pub const PRIQ_PROD_P1: u64 = PAGE_SIZE + PRIQ_PROD;
/// PRIQ_CONS in page 1.
pub const PRIQ_CONS_P1: u64 = PAGE_SIZE + PRIQ_CONS;

/// Bits of each register that hold a defined field; everything else is reserved (RES0) and is
/// dropped on write (policy: reserved bits read as zero).
pub mod defined {
    /// CR0: SMMUEN, PRIQEN, EVENTQEN, CMDQEN, ATSCHK, VMW, DPT_WALK_EN (bits 5 and 9 reserved).
    pub const CR0: u32 = 0x5DF;
    /// CR1: six 2-bit attribute fields.
    pub const CR1: u32 = 0xFFF;
    /// CR2: E2H, RECINVSID, PTM.
    pub const CR2: u32 = 0x7;
    /// GBPA: UPDATE, ABORT, INSTCFG, PRIVCFG, NSCFG, SHCFG, ALLOCCFG, MTCFG, MemAttr.
    pub const GBPA: u32 = 0x801F_FF1F;
    /// IRQ_CTRL: GERROR_IRQEN, PRIQ_IRQEN, EVENTQ_IRQEN.
    pub const IRQ_CTRL: u32 = 0x7;
    /// GERROR / GERRORN: bits 0 and 2..=8.
    pub const GERROR: u32 = 0x1FD;
    /// STRTAB_BASE: RA and ADDR \[51:6\].
    pub const STRTAB_BASE: u64 = (1 << 62) | 0x000F_FFFF_FFFF_FFC0;
    /// STRTAB_BASE_CFG: FMT, SPLIT, LOG2SIZE.
    pub const STRTAB_BASE_CFG: u32 = 0x0003_07FF;
    /// Queue `*_BASE`: RA/WA, ADDR \[51:5\], LOG2SIZE.
    pub const QUEUE_BASE: u64 = (1 << 62) | 0x000F_FFFF_FFFF_FFFF;
    /// `*_IRQ_CFG0`: ADDR \[51:2\].
    pub const IRQ_CFG0: u64 = 0x000F_FFFF_FFFF_FFFC;
    /// `*_IRQ_CFG2`: SH, MemAttr.
    pub const IRQ_CFG2: u32 = 0x3F;
}

/// CR0 (0x020) and CR0ACK (0x024).
#[bitfield(u32)]
#[derive(PartialEq, Eq, Hash)]
pub struct Cr0 {
    /// SMMUEN (bit \[0\]): translation enabled; 0 routes traffic by GBPA.
    pub smmuen: bool,
    /// PRIQEN (bit \[1\]).
    pub priqen: bool,
    /// EVENTQEN (bit \[2\]).
    pub eventqen: bool,
    /// CMDQEN (bit \[3\]).
    pub cmdqen: bool,
    /// ATSCHK (bit \[4\]): check ATS-translated traffic against the STE.
    pub atschk: bool,
    #[bits(1)]
    __: u8,
    /// VMW (bits \[8:6\]): VMID wildcard (only with IDR0.VMW).
    #[bits(3)]
    pub vmw: u8,
    #[bits(1)]
    __: u8,
    /// DPT_WALK_EN (bit \[10\], v3.3).
    pub dpt_walk_en: bool,
    #[bits(21)]
    __: u32,
}

impl Cr0 {
    /// The value a write of `raw` leaves in CR0 on an SMMU presenting `idr0`: SMMUEN, PRIQEN,
    /// EVENTQEN, CMDQEN and ATSCHK; VMW only with IDR0.VMW. DPT_WALK_EN is dropped (the model
    /// does not implement device permission tables) and reserved bits read as zero.
    pub const fn sanitise(raw: u32, idr0: Idr0) -> Cr0 {
        let w = Cr0::from_bits(raw);
        Cr0::new()
            .with_smmuen(w.smmuen())
            .with_priqen(w.priqen())
            .with_eventqen(w.eventqen())
            .with_cmdqen(w.cmdqen())
            .with_atschk(w.atschk())
            .with_vmw(if idr0.vmw() { w.vmw() } else { 0 })
    }
}

/// CR1 (0x028): cacheability and shareability of table and queue accesses (stored only).
#[bitfield(u32)]
#[derive(PartialEq, Eq, Hash)]
pub struct Cr1 {
    /// QUEUE_IC (bits \[1:0\]).
    #[bits(2)]
    pub queue_ic: u8,
    /// QUEUE_OC (bits \[3:2\]).
    #[bits(2)]
    pub queue_oc: u8,
    /// QUEUE_SH (bits \[5:4\]).
    #[bits(2)]
    pub queue_sh: u8,
    /// TABLE_IC (bits \[7:6\]).
    #[bits(2)]
    pub table_ic: u8,
    /// TABLE_OC (bits \[9:8\]).
    #[bits(2)]
    pub table_oc: u8,
    /// TABLE_SH (bits \[11:10\]).
    #[bits(2)]
    pub table_sh: u8,
    #[bits(20)]
    __: u32,
}

impl Cr1 {
    /// The value a write of `raw` leaves in CR1: every attribute field, reserved bits zero.
    pub const fn sanitise(raw: u32) -> Cr1 {
        Cr1::from_bits(raw & defined::CR1)
    }
}

/// CR2 (0x02C).
#[bitfield(u32)]
#[derive(PartialEq, Eq, Hash)]
pub struct Cr2 {
    /// E2H (bit \[0\]): EL2-E2H translation regime (only with IDR0.HYP).
    pub e2h: bool,
    /// RECINVSID (bit \[1\]): record C_BAD_STREAMID for out-of-range StreamIDs.
    pub recinvsid: bool,
    /// PTM (bit \[2\]): private TLB maintenance (ignore broadcast TLBI).
    pub ptm: bool,
    #[bits(29)]
    __: u32,
}

impl Cr2 {
    /// The value a write of `raw` leaves in CR2 on an SMMU presenting `idr0`: RECINVSID and
    /// PTM; E2H only with IDR0.HYP (it is RES0 otherwise).
    pub const fn sanitise(raw: u32, idr0: Idr0) -> Cr2 {
        let w = Cr2::from_bits(raw);
        Cr2::new()
            .with_e2h(idr0.hyp() && w.e2h())
            .with_recinvsid(w.recinvsid())
            .with_ptm(w.ptm())
    }
}

/// GBPA (0x044): global bypass attributes, applied while CR0.SMMUEN = 0.
#[bitfield(u32)]
#[derive(PartialEq, Eq, Hash)]
pub struct Gbpa {
    /// MemAttr (bits \[3:0\]).
    #[bits(4)]
    pub mem_attr: u8,
    /// MTCFG (bit \[4\]): use MemAttr instead of the incoming memory type.
    pub mtcfg: bool,
    #[bits(3)]
    __: u8,
    /// ALLOCCFG (bits \[11:8\]).
    #[bits(4)]
    pub alloccfg: u8,
    /// SHCFG (bits \[13:12\]): 0 NSH, 1 incoming, 2 OSH, 3 ISH.
    #[bits(2)]
    pub shcfg: u8,
    /// NSCFG (bits \[15:14\]).
    #[bits(2)]
    pub nscfg: u8,
    /// PRIVCFG (bits \[17:16\]).
    #[bits(2)]
    pub privcfg: u8,
    /// INSTCFG (bits \[19:18\]).
    #[bits(2)]
    pub instcfg: u8,
    /// ABORT (bit \[20\]): terminate all incoming traffic while SMMUEN = 0.
    pub abort: bool,
    #[bits(10)]
    __: u16,
    /// UPDATE (bit \[31\]): set by software with new field values; cleared when they take effect.
    pub update: bool,
}

impl Gbpa {
    /// The attributes latched by a write of `raw` with UPDATE = 1, once the update has taken
    /// effect: every field kept, UPDATE clear, reserved bits zero.
    pub const fn latch(raw: u32) -> Gbpa {
        Gbpa::from_bits(raw & defined::GBPA).with_update(false)
    }
}

/// IRQ_CTRL (0x050) and IRQ_CTRLACK (0x054).
#[bitfield(u32)]
#[derive(PartialEq, Eq, Hash)]
pub struct IrqCtrl {
    /// GERROR_IRQEN (bit \[0\]).
    pub gerror_irqen: bool,
    /// PRIQ_IRQEN (bit \[1\]).
    pub priq_irqen: bool,
    /// EVENTQ_IRQEN (bit \[2\]).
    pub eventq_irqen: bool,
    #[bits(29)]
    __: u32,
}

impl IrqCtrl {
    /// The value a write of `raw` leaves in IRQ_CTRL on an SMMU presenting `idr0`:
    /// GERROR_IRQEN and EVENTQ_IRQEN; PRIQ_IRQEN only with IDR0.PRI.
    pub const fn sanitise(raw: u32, idr0: Idr0) -> IrqCtrl {
        let w = IrqCtrl::from_bits(raw);
        IrqCtrl::new()
            .with_gerror_irqen(w.gerror_irqen())
            .with_priq_irqen(idr0.pri() && w.priq_irqen())
            .with_eventq_irqen(w.eventq_irqen())
    }
}

/// GERROR (0x060) and GERRORN (0x064): an error is active while the two bits differ.
#[bitfield(u32)]
#[derive(PartialEq, Eq, Hash)]
pub struct Gerror {
    /// CMDQ_ERR (bit \[0\]): command-queue error, see CMDQ_CONS.ERR.
    pub cmdq_err: bool,
    #[bits(1)]
    __: u8,
    /// EVENTQ_ABT_ERR (bit \[2\]): abort writing an event record.
    pub eventq_abt_err: bool,
    /// PRIQ_ABT_ERR (bit \[3\]): abort writing a PRI record.
    pub priq_abt_err: bool,
    /// MSI_CMDQ_ABT_ERR (bit \[4\]): abort on a CMD_SYNC MSI write.
    pub msi_cmdq_abt_err: bool,
    /// MSI_EVENTQ_ABT_ERR (bit \[5\]).
    pub msi_eventq_abt_err: bool,
    /// MSI_PRIQ_ABT_ERR (bit \[6\]).
    pub msi_priq_abt_err: bool,
    /// MSI_GERROR_ABT_ERR (bit \[7\]).
    pub msi_gerror_abt_err: bool,
    /// SFM_ERR (bit \[8\]): Service Failure Mode.
    pub sfm_err: bool,
    #[bits(23)]
    __: u32,
}

impl Gerror {
    /// The errors active while GERROR is `gerror` and GERRORN is `gerrorn` (the bits that
    /// differ; IHI 0070 §7.5).
    pub const fn active(gerror: u32, gerrorn: u32) -> Gerror {
        Gerror::from_bits((gerror ^ gerrorn) & defined::GERROR)
    }

    /// The GERROR bits to toggle to raise `errors`: those of them not already active (an
    /// active error is not raised again until software acknowledges it).
    pub const fn to_raise(gerror: u32, gerrorn: u32, errors: Gerror) -> Gerror {
        let active = Gerror::active(gerror, gerrorn).into_bits();
        Gerror::from_bits(errors.into_bits() & defined::GERROR & !active)
    }

    /// GERRORN after software writes `written` to it: only active errors can be acknowledged
    /// (their GERRORN bit takes the written value); a write cannot make an inactive error
    /// active by making GERRORN differ from GERROR (policy).
    pub const fn acknowledge(gerror: u32, gerrorn: u32, written: u32) -> u32 {
        let active = Gerror::active(gerror, gerrorn).into_bits();
        gerrorn ^ ((gerrorn ^ written) & active)
    }
}

/// STRTAB_BASE (0x080, 64-bit).
#[bitfield(u64)]
#[derive(PartialEq, Eq, Hash)]
pub struct StrtabBase {
    #[bits(6)]
    __: u8,
    /// ADDR (bits \[51:6\]), stored shifted; see [`StrtabBase::addr`].
    #[bits(46)]
    pub addr_hi: u64,
    #[bits(10)]
    __: u16,
    /// RA (bit \[62\]): read-allocate hint.
    pub ra: bool,
    #[bits(1)]
    __: u8,
}

impl StrtabBase {
    /// The stream table's physical address (ADDR \[51:6\], low bits zero).
    pub const fn addr(&self) -> u64 {
        self.addr_hi() << 6
    }

    /// The value a write of `raw` leaves in STRTAB_BASE: RA and ADDR, reserved bits zero.
    pub const fn sanitise(raw: u64) -> StrtabBase {
        StrtabBase::from_bits(raw & defined::STRTAB_BASE)
    }
}

/// STRTAB_BASE_CFG (0x088).
#[bitfield(u32)]
#[derive(PartialEq, Eq, Hash)]
pub struct StrtabBaseCfg {
    /// LOG2SIZE (bits \[5:0\]): log2 of the number of StreamIDs covered.
    #[bits(6)]
    pub log2size: u8,
    /// SPLIT (bits \[10:6\]): StreamID bits resolved by the level-2 tables (6, 8 or 10).
    #[bits(5)]
    pub split: u8,
    #[bits(5)]
    __: u8,
    /// FMT (bits \[17:16\]): 0 linear, 1 two-level.
    #[bits(2)]
    pub fmt: u8,
    #[bits(14)]
    __: u16,
}

impl StrtabBaseCfg {
    /// The value a write of `raw` leaves in STRTAB_BASE_CFG: FMT, SPLIT and LOG2SIZE.
    pub const fn sanitise(raw: u32) -> StrtabBaseCfg {
        StrtabBaseCfg::from_bits(raw & defined::STRTAB_BASE_CFG)
    }
}

/// `*_BASE` of a queue (CMDQ_BASE 0x090, EVENTQ_BASE 0x0A0, PRIQ_BASE 0x0C0; 64-bit).
#[bitfield(u64)]
#[derive(PartialEq, Eq, Hash)]
pub struct QueueBase {
    /// LOG2SIZE (bits \[4:0\]): log2 of the number of entries.
    #[bits(5)]
    pub log2size: u8,
    /// ADDR (bits \[51:5\]), stored shifted; see [`QueueBase::addr`].
    #[bits(47)]
    pub addr_hi: u64,
    #[bits(10)]
    __: u16,
    /// RA / WA (bit \[62\]): allocation hint.
    pub ra: bool,
    #[bits(1)]
    __: u8,
}

impl QueueBase {
    /// The queue's physical address (ADDR \[51:5\], low bits zero).
    pub const fn addr(&self) -> u64 {
        self.addr_hi() << 5
    }

    /// The value a write of `raw` leaves in a `*_BASE` register: RA/WA, ADDR and LOG2SIZE.
    pub const fn sanitise(raw: u64) -> QueueBase {
        QueueBase::from_bits(raw & defined::QUEUE_BASE)
    }
}

/// A queue index register value: index \[n-1:0\] and wrap \[n\] for a queue of 2^n entries (n <= 19),
/// plus the flag bits the architecture puts above it. Used for CMDQ_PROD, EVENTQ_CONS and
/// PRIQ_CONS (OVACKFLG in bit \[31\]), EVENTQ_PROD and PRIQ_PROD (OVFLG in bit \[31\]).
#[bitfield(u32)]
#[derive(PartialEq, Eq, Hash)]
pub struct QueueIndex {
    /// Index and wrap bit (bits \[19:0\]; only \[n:0\] are meaningful).
    #[bits(20)]
    pub wrap_index: u32,
    #[bits(11)]
    __: u16,
    /// OVFLG (PROD) / OVACKFLG (CONS) (bit \[31\]); reserved in CMDQ_PROD.
    pub ovflg: bool,
}

impl QueueIndex {
    /// The value a write of `raw` leaves in EVENTQ_PROD/CONS or PRIQ_PROD/CONS: the index and
    /// wrap bit, and OVFLG/OVACKFLG; bits \[30:20\] reserved.
    pub const fn sanitise(raw: u32) -> QueueIndex {
        let w = QueueIndex::from_bits(raw);
        QueueIndex::new()
            .with_wrap_index(w.wrap_index())
            .with_ovflg(w.ovflg())
    }

    /// The value a write of `raw` leaves in CMDQ_PROD: the index and wrap bit only (CMDQ_PROD
    /// has no overflow flag).
    pub const fn sanitise_cmdq_prod(raw: u32) -> QueueIndex {
        QueueIndex::new().with_wrap_index(QueueIndex::from_bits(raw).wrap_index())
    }

    /// OVACKFLG, the name of bit \[31\] in a CONS register: the overflow the consumer has
    /// acknowledged.
    pub const fn ovackflg(&self) -> bool {
        self.ovflg()
    }

    /// True while an overflow the producer signalled in `prod` is not acknowledged in `cons`
    /// (OVFLG != OVACKFLG; IHI 0070 §7.4).
    pub const fn overflow_pending(prod: QueueIndex, cons: QueueIndex) -> bool {
        prod.ovflg() != cons.ovackflg()
    }
}

/// CMDQ_CONS (0x09C).
#[bitfield(u32)]
#[derive(PartialEq, Eq, Hash)]
pub struct CmdqCons {
    /// Read index and wrap bit (bits \[19:0\]; only \[n:0\] are meaningful).
    #[bits(20)]
    pub wrap_index: u32,
    #[bits(4)]
    __: u8,
    /// ERR (bits \[30:24\]): the error of the command at CONS, see [`CmdqErr`].
    #[bits(7)]
    pub err: CmdqErr,
    #[bits(1)]
    __: u8,
}

impl CmdqCons {
    /// The value a write of `raw` leaves in CMDQ_CONS: the read index and wrap bit, and ERR;
    /// bits \[23:20\] and \[31\] reserved.
    pub const fn sanitise(raw: u32) -> CmdqCons {
        let w = CmdqCons::from_bits(raw);
        CmdqCons::new()
            .with_wrap_index(w.wrap_index())
            .with_err(w.err())
    }
}

/// CMDQ_CONS.ERR: command-queue error codes (§7.1). Open: a raw 7-bit value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(transparent)]
pub struct CmdqErr(pub u8);

impl CmdqErr {
    /// No error.
    pub const CERROR_NONE: CmdqErr = CmdqErr(0);
    /// Illegal command: unknown opcode, reserved value, unsupported feature.
    pub const CERROR_ILL: CmdqErr = CmdqErr(1);
    /// Abort on the command fetch.
    pub const CERROR_ABT: CmdqErr = CmdqErr(2);
    /// A CMD_SYNC could not complete because an ATC invalidation failed.
    pub const CERROR_ATC_INV_SYNC: CmdqErr = CmdqErr(3);

    /// Raw bits for bitfield-struct.
    pub const fn into_bits(self) -> u8 {
        self.0
    }

    /// From raw bits (7-bit field).
    pub const fn from_bits(v: u8) -> Self {
        CmdqErr(v & 0x7f)
    }

    /// The architectural name.
    pub const fn name(self) -> &'static str {
        match self.0 {
            0 => "CERROR_NONE",
            1 => "CERROR_ILL",
            2 => "CERROR_ABT",
            3 => "CERROR_ATC_INV_SYNC",
            _ => "CERROR_RESERVED",
        }
    }
}

impl core::fmt::Display for CmdqErr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// `*_IRQ_CFG0` (GERROR 0x068, EVENTQ 0x0B0, PRIQ 0x0D0; 64-bit): MSI doorbell address.
#[bitfield(u64)]
#[derive(PartialEq, Eq, Hash)]
pub struct IrqCfg0 {
    #[bits(2)]
    __: u8,
    /// ADDR (bits \[51:2\]), stored shifted; see [`IrqCfg0::addr`].
    #[bits(50)]
    pub addr_hi: u64,
    #[bits(12)]
    __: u16,
}

impl IrqCfg0 {
    /// The MSI doorbell address (ADDR \[51:2\]); 0 selects the wired interrupt.
    pub const fn addr(&self) -> u64 {
        self.addr_hi() << 2
    }

    /// The value a write of `raw` leaves in a `*_IRQ_CFG0` register: ADDR only.
    pub const fn sanitise(raw: u64) -> IrqCfg0 {
        IrqCfg0::from_bits(raw & defined::IRQ_CFG0)
    }
}

/// `*_IRQ_CFG2` (GERROR 0x074, EVENTQ 0x0BC, PRIQ 0x0DC): MSI write attributes (stored only).
#[bitfield(u32)]
#[derive(PartialEq, Eq, Hash)]
pub struct IrqCfg2 {
    /// MemAttr (bits \[3:0\]).
    #[bits(4)]
    pub mem_attr: u8,
    /// SH (bits \[5:4\]).
    #[bits(2)]
    pub sh: u8,
    #[bits(26)]
    __: u32,
}

impl IrqCfg2 {
    /// The value a write of `raw` leaves in a `*_IRQ_CFG2` register: SH and MemAttr.
    pub const fn sanitise(raw: u32) -> IrqCfg2 {
        IrqCfg2::from_bits(raw & defined::IRQ_CFG2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Offsets match IHI 0070 §6.2 and the Linux driver's ARM_SMMU_* defines.
    #[test]
    fn test_register_offsets_match_linux() {
        assert_eq!(CR0, 0x20);
        assert_eq!(GBPA, 0x44);
        assert_eq!(IRQ_CTRL, 0x50);
        assert_eq!(GERRORN, 0x64);
        assert_eq!(GERROR_IRQ_CFG0, 0x68);
        assert_eq!(STRTAB_BASE_CFG, 0x88);
        assert_eq!(CMDQ_CONS, 0x9C);
        assert_eq!(EVENTQ_PROD_P1, 0x100A8);
        assert_eq!(EVENTQ_CONS_P1, 0x100AC);
        assert_eq!(PRIQ_PROD_P1, 0x100C8);
        assert_eq!(PRIQ_CONS_P1, 0x100CC);
        assert_eq!(PRIQ_IRQ_CFG2, 0xDC);
    }

    /// CR0 bit positions: SMMUEN 0, PRIQEN 1, EVENTQEN 2, CMDQEN 3, ATSCHK 4, VMW \[8:6\],
    /// DPT_WALK_EN 10; bits 5 and 9 reserved.
    #[test]
    fn test_cr0_bit_positions() {
        assert_eq!(Cr0::SMMUEN_OFFSET, 0);
        assert_eq!(Cr0::PRIQEN_OFFSET, 1);
        assert_eq!(Cr0::EVENTQEN_OFFSET, 2);
        assert_eq!(Cr0::CMDQEN_OFFSET, 3);
        assert_eq!(Cr0::ATSCHK_OFFSET, 4);
        assert_eq!((Cr0::VMW_OFFSET, Cr0::VMW_BITS), (6, 3));
        assert_eq!(Cr0::DPT_WALK_EN_OFFSET, 10);
        // Linux's final value 0x0D is CMDQEN | EVENTQEN | SMMUEN.
        let v = Cr0::from_bits(0x0D);
        assert!(v.smmuen() && v.eventqen() && v.cmdqen() && !v.priqen());
        // Reserved bits 5 and 9 are outside the defined mask.
        assert_eq!(defined::CR0 & ((1 << 5) | (1 << 9)), 0);
        assert!(Cr0::from_bits(defined::CR0).dpt_walk_en());
    }

    /// GBPA: UPDATE 31, ABORT 20, SHCFG \[13:12\]; QEMU's reset value 0x1000 is SHCFG = incoming.
    #[test]
    fn test_gbpa_bit_positions() {
        assert_eq!(Gbpa::UPDATE_OFFSET, 31);
        assert_eq!(Gbpa::ABORT_OFFSET, 20);
        assert_eq!((Gbpa::SHCFG_OFFSET, Gbpa::SHCFG_BITS), (12, 2));
        assert_eq!((Gbpa::INSTCFG_OFFSET, Gbpa::PRIVCFG_OFFSET), (18, 16));
        assert_eq!(Gbpa::from_bits(0x1000).shcfg(), 1);
        let g = Gbpa::from_bits(defined::GBPA);
        assert!(g.update() && g.abort() && g.mtcfg());
        assert_eq!((g.mem_attr(), g.alloccfg(), g.instcfg()), (0xF, 0xF, 3));
    }

    /// GERROR bits as Linux's GERROR_* defines (0x1FD mask).
    #[test]
    fn test_gerror_bit_positions() {
        assert_eq!(Gerror::CMDQ_ERR_OFFSET, 0);
        assert_eq!(Gerror::EVENTQ_ABT_ERR_OFFSET, 2);
        assert_eq!(Gerror::PRIQ_ABT_ERR_OFFSET, 3);
        assert_eq!(Gerror::MSI_CMDQ_ABT_ERR_OFFSET, 4);
        assert_eq!(Gerror::MSI_GERROR_ABT_ERR_OFFSET, 7);
        assert_eq!(Gerror::SFM_ERR_OFFSET, 8);
        assert_eq!(defined::GERROR, 0x1FD);
    }

    /// Queue and table base layouts: Linux writes RA/RWA (bit 62) | addr | LOG2SIZE.
    #[test]
    fn test_base_register_layouts() {
        let q = QueueBase::from_bits((1 << 62) | 0x8_1234_5000 | 0x13);
        assert_eq!(q.log2size(), 19);
        assert_eq!(q.addr(), 0x8_1234_5000);
        assert!(q.ra());
        // Bits above 51 (other than 62) are reserved.
        assert_eq!(
            QueueBase::from_bits(0x00F0_0000_0000_0020).addr(),
            0x0000_0000_0000_0020
        );
        let s = StrtabBase::from_bits((1 << 62) | 0x4_0000_0040 | 0x3f);
        assert_eq!(s.addr(), 0x4_0000_0040);
        let cfg = StrtabBaseCfg::from_bits(0x0001_0210);
        assert_eq!((cfg.fmt(), cfg.split(), cfg.log2size()), (1, 8, 16));
        assert_eq!(
            IrqCfg0::from_bits(0xFFFF_FFFF_FFFF_FFFF).addr(),
            0x000F_FFFF_FFFF_FFFC
        );
    }

    /// CMDQ_CONS.ERR sits in \[30:24\]; queue flags in bit 31.
    #[test]
    fn test_queue_index_layouts() {
        let c = CmdqCons::from_bits(0x0100_0005);
        assert_eq!(c.err(), CmdqErr::CERROR_ILL);
        assert_eq!(c.wrap_index(), 5);
        assert_eq!(
            CmdqCons::new().with_err(CmdqErr::CERROR_ABT).into_bits(),
            0x0200_0000
        );
        let p = QueueIndex::from_bits(0x8000_0003);
        assert!(p.ovflg());
        assert_eq!(p.wrap_index(), 3);
        assert_eq!(IrqCtrl::from_bits(0x7).into_bits(), 7);
        assert!(IrqCtrl::from_bits(0x5).eventq_irqen());
        assert_eq!(Cr2::from_bits(0x6).into_bits(), 6);
        assert_eq!(Cr1::from_bits(0xD75).table_sh(), 3);
        assert_eq!(Cr1::from_bits(0xD75).queue_ic(), 1);
    }

    /// What a write keeps: reserved bits dropped, features the ID registers do not advertise
    /// dropped, everything else as written.
    #[test]
    fn test_sanitise_drops_reserved_and_unadvertised_bits() {
        let plain = Idr0::new();
        let full = Idr0::new().with_vmw(true).with_hyp(true).with_pri(true);
        // CR0: the low five bits; VMW with IDR0.VMW; DPT_WALK_EN and reserved bits never.
        assert_eq!(Cr0::sanitise(u32::MAX, plain).into_bits(), 0x1F);
        assert_eq!(Cr0::sanitise(u32::MAX, full).into_bits(), 0x1DF);
        assert_eq!(Cr0::sanitise(0x0D, plain).into_bits(), 0x0D);
        // CR1/CR2: E2H only with IDR0.HYP.
        assert_eq!(Cr1::sanitise(u32::MAX).into_bits(), defined::CR1);
        assert_eq!(Cr2::sanitise(u32::MAX, plain).into_bits(), 0x6);
        assert_eq!(Cr2::sanitise(u32::MAX, full).into_bits(), defined::CR2);
        // IRQ_CTRL: PRIQ_IRQEN only with IDR0.PRI.
        assert_eq!(IrqCtrl::sanitise(u32::MAX, plain).into_bits(), 0x5);
        assert_eq!(IrqCtrl::sanitise(u32::MAX, full).into_bits(), 0x7);
        // GBPA: fields latched, UPDATE reads 0.
        let g = Gbpa::latch(0x8000_1000 | 1 << 20);
        assert!(!g.update() && g.abort());
        assert_eq!(g.into_bits(), 0x0010_1000);
        assert_eq!(
            Gbpa::latch(u32::MAX).into_bits(),
            defined::GBPA & !(1 << 31)
        );
        // Bases, MSI configuration.
        assert_eq!(
            StrtabBase::sanitise(u64::MAX).into_bits(),
            defined::STRTAB_BASE
        );
        assert_eq!(StrtabBaseCfg::sanitise(u32::MAX).into_bits(), 0x0003_07FF);
        assert_eq!(
            QueueBase::sanitise(u64::MAX).into_bits(),
            defined::QUEUE_BASE
        );
        assert_eq!(
            IrqCfg0::sanitise(u64::MAX).into_bits(),
            0x000F_FFFF_FFFF_FFFC
        );
        assert_eq!(IrqCfg2::sanitise(u32::MAX).into_bits(), 0x3F);
        // Queue indices: wrap/index [19:0], OVFLG [31]; CMDQ_PROD has no flag; CMDQ_CONS keeps
        // ERR [30:24].
        assert_eq!(QueueIndex::sanitise(u32::MAX).into_bits(), 0x800F_FFFF);
        assert_eq!(
            QueueIndex::sanitise_cmdq_prod(u32::MAX).into_bits(),
            0x000F_FFFF
        );
        assert_eq!(CmdqCons::sanitise(u32::MAX).into_bits(), 0x7F0F_FFFF);
    }

    /// GERROR protocol: an error is active while GERROR and GERRORN differ; raising an active
    /// error toggles nothing; GERRORN writes acknowledge active errors only.
    #[test]
    fn test_gerror_protocol() {
        let cmdq = Gerror::new().with_cmdq_err(true);
        let evtq = Gerror::new().with_eventq_abt_err(true);
        assert_eq!(Gerror::active(0x1, 0x0), cmdq);
        assert_eq!(Gerror::active(0x1, 0x1), Gerror::new());
        // CMDQ_ERR active: raising it again and EVENTQ_ABT_ERR toggles only the latter.
        let both = Gerror::from_bits(cmdq.into_bits() | evtq.into_bits());
        assert_eq!(Gerror::to_raise(0x1, 0x0, both), evtq);
        // Reserved bits are never raised.
        assert_eq!(
            Gerror::to_raise(0, 0, Gerror::from_bits(0x2)),
            Gerror::new()
        );
        // Acknowledge CMDQ_ERR; an attempt to flip the inactive EVENTQ_ABT_ERR is ignored.
        assert_eq!(Gerror::acknowledge(0x1, 0x0, 0x5), 0x1);
        // Writing GERRORN = GERROR acknowledges everything active.
        assert_eq!(Gerror::acknowledge(0x105, 0x001, 0x105), 0x105);
        // Bit 31 is not an error.
        assert_eq!(Gerror::acknowledge(0, 0, 0x8000_0000), 0);
    }

    /// OVFLG and OVACKFLG share bit 31; an overflow is pending while they differ.
    #[test]
    fn test_queue_overflow_pending() {
        let prod = QueueIndex::new().with_wrap_index(3).with_ovflg(true);
        let cons = QueueIndex::new().with_wrap_index(3);
        assert!(cons.ovackflg() == cons.ovflg());
        assert!(QueueIndex::overflow_pending(prod, cons));
        assert!(!QueueIndex::overflow_pending(prod, cons.with_ovflg(true)));
    }
}
